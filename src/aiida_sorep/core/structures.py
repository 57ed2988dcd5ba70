"""Reference crystal structures used by the kinetic-SOREP tests, benchmarks and docs (pymatgen ``Structure``).

Sources (experimental structures):

* Si, Ge (diamond, Fd-3m): a = 5.431 Å and 5.658 Å (room-temperature lattice constants, e.g. Kittel,
  *Introduction to Solid State Physics*, 8th ed., Table 1.3).
* SnO2 (rutile, P4_2/mnm): a = 4.7374 Å, c = 3.1864 Å, O at (x, x, 0) with x = 0.3056; Bolzan, Fong, Kennedy &
  Howard, Acta Cryst. B53, 373 (1997).
* K2Sn2O3 (cubic, I2_13, No. 199, 14 atoms in the body-centred primitive cell, conventional a = 8.5142 Å): the
  PBE-relaxed structure of the Materials Project (Jain et al., APL Mater. 1, 011002 (2013)), as distributed in
  the test data of atomate (``atomate/vasp/test_files/lobster/vasp_lobster_output/POSCAR``). K2Sn2O3 is the
  low-hole-mass p-type transparent-conductor candidate of Hautier et al., Nat. Commun. 4, 2292 (2013). PBE
  overestimates lattice constants by about 1 %; the experimental refinement is not used here.
* BaTiO3, four phases (5-atom primitive cells); the source of each is in :data:`BATIO3_SOURCES`, with a
  ``verified`` flag that says whether the numbers were checked, in a file read here, against the published
  refinement:

  - cubic Pm-3m: Buttner & Maslen, Acta Cryst. B48, 764 (1992), COD 2100862 (verified);
  - orthorhombic Amm2: Xiao, Jin & Wang, Mater. Chem. Phys. 111, 209 (2008), ICSD 161341 (verified, with
    one oxygen moved from an empty edge-centre site to the apical site: see its ``checked_against``);
  - tetragonal P4mm and rhombohedral R3m: Kwei, Lawson, Billinge & Cheong, J. Phys. Chem. 97, 2368 (1993),
    **not verified**: the numbers were entered from memory of that paper's tables and no copy of them could
    be retrieved to check them. They have the published space groups and ferroelectric displacements of
    ~0.1 Å, which is what the clustering test needs, but should not be quoted as experimental data.

This module does not import ``aiida``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from pymatgen.core import Lattice, Structure

__all__ = (
    'BATIO3_PHASES',
    'BATIO3_SOURCES',
    'PublishedStructure',
    'batio3',
    'diamond',
    'distorted_copy',
    'k2sn2o3',
    'rutile_sno2',
)

BATIO3_PHASES = ('cubic', 'tetragonal', 'orthorhombic', 'rhombohedral')


@dataclasses.dataclass(frozen=True)
class PublishedStructure:
    """Where a reference structure comes from.

    :param citation: the refinement the numbers are taken from.
    :param database: database entry of that refinement (COD or ICSD number), or ``''``.
    :param temperature: measurement temperature (K), or ``None`` when not known here.
    :param verified: ``True`` when the numbers were checked against a copy of the published entry.
    :param checked_against: the copy that was read to check them, or why they are not verified.
    """

    citation: str
    database: str
    temperature: float | None
    verified: bool
    checked_against: str


_KWEI_1993 = 'G. H. Kwei, A. C. Lawson, S. J. L. Billinge and S.-W. Cheong, J. Phys. Chem. 97, 2368 (1993)'
_NOT_RETRIEVED = 'entered from memory of the paper; no copy of its tables could be retrieved to check them'

BATIO3_SOURCES: dict[str, PublishedStructure] = {
    'cubic': PublishedStructure(
        citation='R. H. Buttner and E. N. Maslen, Acta Cryst. B48, 764-769 (1992)',
        database='COD 2100862 (also ICSD 67518)',
        temperature=None,
        verified=True,
        checked_against='COD 2100862 as shipped in cif2cell 2.1.0 (PyPI sdist, cifs/BaTiO3_cubic.cif): '
        'Pm-3m, a = 4.006(2) Å, Ba 1a, Ti 1b, O 3c (origin shifted here to put Ba at 0,0,0)',
    ),
    'tetragonal': PublishedStructure(
        citation=_KWEI_1993,
        database='',
        temperature=None,
        verified=False,
        checked_against=f'{_NOT_RETRIEVED} (a catalogue record of the paper gives a = 3.9998, c = 4.0180 Å, '
        'against 3.9970 and 4.0314 here)',
    ),
    'orthorhombic': PublishedStructure(
        citation='C. J. Xiao, C. Q. Jin and X. H. Wang, Mater. Chem. Phys. 111, 209-212 (2008), '
        '"Crystal structure of dense nanocrystalline BaTiO3 ceramics"',
        database='ICSD 161341',
        temperature=293.0,
        verified=True,
        checked_against='ICSD 161341 as shipped in cif2cell 2.1.0 (PyPI sdist, cifs/BaTiO3_orthorhombic.cif): '
        'Amm2, a = 4.0094(3), b = 5.6214(9), c = 5.6386(3) Å; Ba 2a (0, 0, 0), Ti 2b (1/2, 0, 0.5100), '
        'O1 2b (1/2, 1/2, 0.4900), O2 4e (1/2, 0.7525, 0.7396). As printed there, O1 is on 2b, an empty '
        'edge-centre site of the perovskite 2.7 and 2.9 Å from Ti, which leaves Ti with four O neighbours; '
        'O1 is put here on 2a (0, 0, 0.4900), the apical site, which gives a TiO6 octahedron '
        '(2 x 2.01, 2 x 1.90, 2 x 2.08 Å). That one coordinate is a correction made here, not published',
    ),
    'rhombohedral': PublishedStructure(
        citation=_KWEI_1993,
        database='',
        temperature=None,
        verified=False,
        checked_against=_NOT_RETRIEVED,
    ),
}


def diamond(element: str, a: float) -> Structure:
    """Primitive diamond cell (2 atoms) with conventional lattice constant ``a`` (Å)."""
    lattice = Lattice(0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    return Structure(lattice, [element, element], np.array([[0, 0, 0], [0.25, 0.25, 0.25]]))


def rutile_sno2() -> Structure:
    """Rutile SnO2 (6 atoms), Bolzan et al., Acta Cryst. B53, 373 (1997)."""
    return Structure.from_spacegroup(
        'P4_2/mnm', Lattice.tetragonal(4.7374, 3.1864), ['Sn', 'O'], [[0, 0, 0], [0.3056, 0.3056, 0]]
    )


def k2sn2o3() -> Structure:
    """K2Sn2O3 (14 atoms, I2_13), the Materials Project PBE structure (see the module docstring)."""
    half = 4.257108  # a / 2, Å
    lattice = Lattice(half * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]))
    species = ['K'] * 4 + ['Sn'] * 4 + ['O'] * 6
    frac = [
        [0.481900, 0.500000, 0.000000], [0.018100, 0.018100, 0.018100],
        [0.000000, 0.481900, 0.500000], [0.500000, 0.000000, 0.481900],
        [0.500000, 0.000000, 0.011623], [0.000000, 0.011623, 0.500000],
        [0.488377, 0.488377, 0.488377], [0.011623, 0.500000, 0.000000],
        [0.750000, 0.979273, 0.229273], [0.250000, 0.520727, 0.270727],
        [0.979273, 0.229273, 0.750000], [0.229273, 0.750000, 0.979273],
        [0.270727, 0.250000, 0.520727], [0.520727, 0.270727, 0.250000],
    ]  # fmt: skip
    return Structure(lattice, species, frac)


def batio3(phase: str) -> Structure:
    """BaTiO3 polymorph ``phase`` (one of :data:`BATIO3_PHASES`), 5 atoms (primitive cell).

    The source of each phase, and whether its numbers were verified, is ``BATIO3_SOURCES[phase]``.
    """
    if phase == 'cubic':  # Buttner & Maslen (1992)
        lattice = Lattice.cubic(4.006)
        frac = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=float)
        return Structure(lattice, ['Ba', 'Ti', 'O', 'O', 'O'], frac)
    if phase == 'tetragonal':  # not verified, see BATIO3_SOURCES
        return Structure.from_spacegroup(
            'P4mm',
            Lattice.tetragonal(3.9970, 4.0314),
            ['Ba', 'Ti', 'O', 'O'],
            [[0, 0, 0], [0.5, 0.5, 0.5224], [0.5, 0.5, -0.0244], [0.5, 0, 0.4895]],
        )
    if phase == 'orthorhombic':  # Xiao, Jin & Wang (2008), ICSD 161341
        conventional = Structure.from_spacegroup(
            'Amm2',
            Lattice.orthorhombic(4.0094, 5.6214, 5.6386),
            ['Ba', 'Ti', 'O', 'O'],
            [[0, 0, 0], [0.5, 0, 0.5100], [0, 0, 0.4900], [0.5, 0.7525, 0.7396]],  # O1: see BATIO3_SOURCES
        )
        return conventional.get_primitive_structure()
    if phase == 'rhombohedral':  # not verified, see BATIO3_SOURCES
        # rhombohedral axes: O at (x, x, z) and its two cyclic permutations
        x_ti, x_o, z_o = 0.4863, 0.5109, 0.0187
        frac = np.array([[0, 0, 0], [x_ti, x_ti, x_ti], [x_o, x_o, z_o], [x_o, z_o, x_o], [z_o, x_o, x_o]])
        return Structure(Lattice.rhombohedral(4.0036, 89.839), ['Ba', 'Ti', 'O', 'O', 'O'], frac)
    raise ValueError(f'unknown BaTiO3 phase {phase!r}: choose one of {BATIO3_PHASES}')


def distorted_copy(structure: Structure, max_displacement: float, rng: np.random.Generator) -> Structure:
    """Copy of ``structure`` with every atom moved by a random vector of length < ``max_displacement`` (Å)."""
    directions = rng.normal(size=(len(structure), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lengths = rng.uniform(0.0, max_displacement, size=len(structure))
    return Structure(
        structure.lattice,
        structure.species,
        structure.cart_coords + directions * lengths[:, None],
        coords_are_cartesian=True,
    )
