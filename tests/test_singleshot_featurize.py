"""Tests of the ``sorep.featurize`` calcfunction: new features from stored eigenvalues, without pw.x."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.plugins import CalculationFactory
from aiida_quantumespresso.parsers.parse_xml.parse import parse_xml
from ase.build import bulk
from scipy.integrate import simpson

from aiida_sorep.calculations.featurize import bands_to_arrays, parse_feature_parameters
from aiida_sorep.core.features import DEFAULT_FEATURE_PARAMETERS, FeatureKind
from aiida_sorep.data.features import SorepFeaturesData

FIXTURES_DIR = pathlib.Path(__file__).resolve().parent / 'fixtures'

featurize = CalculationFactory('sorep.featurize')


@pytest.fixture
def silicon_single_shot():
    """Return (bands, fermi Dict, structure) of the stored real stock single shot of Si (eigenvalues from its XML)."""
    with (FIXTURES_DIR / 'singleshot' / 'stock_si' / 'data-file-schema.xml').open() as handle:
        parsed, _ = parse_xml(handle)
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    kpoints.set_kpoints(parsed['k_points'], cartesian=True, weights=parsed['k_points_weights'])
    bands = orm.BandsData()
    bands.set_kpointsdata(kpoints)
    bands.set_bands(np.asarray(parsed['bands']['bands'])[0], units='eV')
    eigenvalues = bands.get_bands()
    vbm, cbm = eigenvalues[:, :4].max(), eigenvalues[:, 4:].min()
    fermi = orm.Dict({'fermi_energy': 0.5 * (vbm + cbm), 'vbm': vbm, 'cbm': cbm, 'number_of_electrons': 8.0})
    return bands, fermi, structure


def test_parse_feature_parameters():
    """Defaults with per-kind overrides; ``only_given`` keeps only the named kinds; bad kinds are named."""
    parameters = parse_feature_parameters({'fermi': {'n_points': 101, 'width': 0.1}, 'cbm': None})
    assert set(parameters) == {FeatureKind.VBM, FeatureKind.FERMI, FeatureKind.CONCATENATED}
    assert parameters[FeatureKind.FERMI].n_points == 101
    assert parameters[FeatureKind.FERMI].window == DEFAULT_FEATURE_PARAMETERS[FeatureKind.FERMI].window
    assert set(parse_feature_parameters({'vbm': {}}, only_given=True)) == {FeatureKind.VBM}
    with pytest.raises(ValueError, match='unknown feature kind `fermy`'):
        parse_feature_parameters({'fermy': {}})


def test_bands_to_arrays_rescales_weights(silicon_single_shot):
    """Weights of any normalisation are rescaled to QE's convention (sum 2 for one spin channel)."""
    bands, _, _ = silicon_single_shot
    eigenvalues, weights = bands_to_arrays(bands)
    assert eigenvalues.shape == (1, 8, 8)
    assert weights.sum() == pytest.approx(2.0)


def test_featurize_counts_all_states(silicon_single_shot):
    """A Fermi-centred map wide enough to hold every band integrates (times the volume) to 2 x 8 states."""
    bands, fermi, structure = silicon_single_shot
    parameters = orm.Dict({'fermi': {'window': [-25.0, 25.0], 'n_points': 4097}})
    results, node = featurize.run_get_node(bands, fermi, parameters, structure)
    assert node.is_finished_ok
    assert set(results) == {'fermi'}
    features = results['fermi']
    assert isinstance(features, SorepFeaturesData)
    assert features.creator.uuid == node.uuid
    assert features.parameters['reference_energies'] == [pytest.approx(fermi['fermi_energy'])]
    integral = simpson(features.features, x=features.energies) * structure.get_cell_volume()
    assert integral == pytest.approx(16.0, abs=1e-6)


def test_featurize_concatenated_blocks(silicon_single_shot):
    """The concatenated map has three blocks centred on the VBM, the Fermi level and the CBM."""
    bands, fermi, structure = silicon_single_shot
    results = featurize(bands, fermi, orm.Dict({'concatenated': {'n_points': 300}}), structure)
    features = results['concatenated']
    assert features.features.shape == (300,)
    assert features.parameters['reference_energies'] == pytest.approx(
        [fermi['vbm'], fermi['fermi_energy'], fermi['cbm']]
    )
    np.testing.assert_allclose(features.energies[:100], features.energies[100:200])
