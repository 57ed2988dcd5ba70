"""The reference structures: space groups, published cell parameters, chemistry and stated provenance."""

import numpy as np
import pytest
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from aiida_sorep.core import structures

SPACE_GROUPS = {'cubic': 221, 'tetragonal': 99, 'orthorhombic': 38, 'rhombohedral': 160}


@pytest.mark.parametrize('phase', structures.BATIO3_PHASES)
def test_batio3_space_group_and_octahedra(phase):
    structure = structures.batio3(phase)
    assert structure.composition.reduced_formula == 'BaTiO3'
    assert len(structure) == 5
    assert SpacegroupAnalyzer(structure, symprec=1e-3).get_space_group_number() == SPACE_GROUPS[phase]
    titanium = next(site for site in structure if site.specie.symbol == 'Ti')
    oxygens = [n for n in structure.get_neighbors(titanium, 2.4) if n.specie.symbol == 'O']
    assert len(oxygens) == 6  # a TiO6 octahedron
    assert all(1.75 < n.nn_distance < 2.3 for n in oxygens)
    barium = next(site for site in structure if site.specie.symbol == 'Ba')
    assert len([n for n in structure.get_neighbors(barium, 3.2) if n.specie.symbol == 'O']) == 12


def test_batio3_cells_are_the_published_ones():
    """The verified phases have the cell parameters of the entries named in BATIO3_SOURCES."""
    np.testing.assert_allclose(structures.batio3('cubic').lattice.abc, [4.006] * 3)
    conventional = SpacegroupAnalyzer(structures.batio3('orthorhombic')).get_conventional_standard_structure()
    np.testing.assert_allclose(sorted(conventional.lattice.abc), [4.0094, 5.6214, 5.6386], atol=1e-6)


def test_every_phase_states_its_source():
    assert set(structures.BATIO3_SOURCES) == set(structures.BATIO3_PHASES)
    verified = {phase for phase, source in structures.BATIO3_SOURCES.items() if source.verified}
    assert verified == {'cubic', 'orthorhombic'}
    for source in structures.BATIO3_SOURCES.values():
        assert source.citation and source.checked_against


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match='unknown BaTiO3 phase'):
        structures.batio3('monoclinic')
