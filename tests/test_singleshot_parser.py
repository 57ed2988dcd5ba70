"""Tests of ``SingleShotParser`` (``sorep.singleshot``) on stored real pw.x outputs and hand-trimmed failures.

The ``stock_*`` fixtures are real outputs of Debian's pw.x 6.7 (regenerate them with
``tests/fixtures/singleshot/generate_fixtures.py``); the ``failed_*`` ones are hand-trimmed copies of ``stock_si``.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from ase.io import read
from scipy.integrate import simpson
from scipy.special import erf

from aiida_sorep.parsers.singleshot import SingleShotParser, detect_flavour, fermi_settings_from_parameters

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'singleshot'


def _description(folder: pathlib.Path) -> dict:
    """Inputs of a fixture: ``inputs.json``, or else rebuilt from the pw.x input ``aiida.in`` (patched fixtures)."""
    if (folder / 'inputs.json').is_file():
        return json.loads((folder / 'inputs.json').read_text())
    from ase.io.espresso import read_fortran_namelist

    text = (folder / 'aiida.in').read_text()
    with (folder / 'aiida.in').open() as handle:
        namelists, cards = read_fortran_namelist(handle)
    atoms = read(folder / 'aiida.in', format='espresso-in')
    keep = ('ecutwfc', 'ecutrho', 'occupations', 'smearing', 'degauss')
    mesh = cards[cards.index(next(c for c in cards if c.startswith('K_POINTS'))) + 1].split()[:3]
    assert 'electron_maxstep = 0' in text
    return {
        'cell': atoms.cell.tolist(),
        'symbols': atoms.get_chemical_symbols(),
        'positions': atoms.positions.tolist(),
        'parameters': {
            'CONTROL': {'calculation': 'scf'},
            'SYSTEM': {key: value for key, value in namelists['system'].items() if key in keep},
        },
        'kpoints_mesh': [int(value) for value in mesh],
        'allow_random_wavefunctions': False,
    }


def _structure(description: dict) -> orm.StructureData:
    structure = orm.StructureData(cell=description['cell'])
    for symbol, position in zip(description['symbols'], description['positions'], strict=True):
        structure.append_atom(position=position, symbols=symbol)
    return structure


@pytest.fixture
def singleshot_node(aiida_localhost, pseudo_family):
    """Return a factory of stored ``CalcJobNode``s of ``sorep.singleshot`` whose ``retrieved`` holds a fixture."""

    def factory(
        name: str, *, exit_status: int | None = None, sorep_parameters: dict | None = None, allow: bool | None = None
    ):
        folder = FIXTURES / name
        description = _description(folder)
        structure = _structure(description)
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh(description['kpoints_mesh'])
        inputs = {
            'parameters': orm.Dict(description['parameters']),
            'structure': structure,
            'kpoints': kpoints,
            'allow_random_wavefunctions': orm.Bool(
                description['allow_random_wavefunctions'] if allow is None else allow
            ),
        }
        if sorep_parameters is not None:
            inputs['sorep_parameters'] = orm.Dict(sorep_parameters)
        for kind, pseudo in pseudo_family.get_pseudos(structure=structure).items():
            inputs[f'pseudos__{kind}'] = pseudo

        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:sorep.singleshot')
        node.set_option('resources', {'num_machines': 1})
        node.set_option('max_wallclock_seconds', 600)
        node.set_option('output_filename', 'aiida.out')
        node.set_option('parser_name', 'sorep.singleshot')
        if exit_status is not None:
            node.set_exit_status(exit_status)
        for label, value in inputs.items():
            value.store()
            node.base.links.add_incoming(value, link_type=LinkType.INPUT_CALC, link_label=label)
        node.store()

        retrieved = orm.FolderData()
        for path in folder.iterdir():
            if path.name in ('aiida.out', 'data-file-schema.xml', 'CRASH'):
                retrieved.base.repository.put_object_from_file(str(path), path.name)
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        return node

    return factory


def _rounded(value, digits: int = 6):
    """Round the floats of a nested structure so that the regression files are stable."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(item, digits) for item in value]
    return value


def _states_in_window(eigenvalues: np.ndarray, weights: np.ndarray, lower: float, upper: float, width: float) -> float:
    """Number of states (per cell, spin included) of a Gaussian-broadened spectrum between two energies (eV).

    QE's Gaussian: ``delta(x) = exp(-x^2) / sqrt(pi)`` with ``x = (E - e) / width``, so its integral is
    ``(1 + erf(x)) / 2``.
    """
    cdf = lambda x: 0.5 * (1 + erf(x / width))  # noqa: E731
    inside = cdf(upper - eigenvalues) - cdf(lower - eigenvalues)
    return float(np.einsum('k,skn->', weights, inside))


def test_detect_flavour():
    """The patched binary is recognised by its ``single-shot`` marker; anything else is stock."""
    assert detect_flavour('     convergence NOT achieved after   0 iterations: stopping').value == 'stock'
    assert detect_flavour('     Single-shot run: SCF loop skipped (electron_maxstep = 0)').value == 'patched'


def test_fermi_settings_from_parameters():
    """The Fermi-level smearing follows the pw.x input unless ``sorep_parameters`` override it (degauss Ry -> eV)."""
    cold = {'SYSTEM': {'occupations': 'smearing', 'smearing': 'cold', 'degauss': 0.01}}
    smearing, width = fermi_settings_from_parameters(cold)
    assert smearing == 'cold'
    assert width == pytest.approx(0.136056931, rel=1e-6)
    assert fermi_settings_from_parameters({'SYSTEM': {'occupations': 'fixed'}}) == ('fixed', 0.0)
    assert fermi_settings_from_parameters({}) == ('fixed', 0.0)
    assert fermi_settings_from_parameters(cold, {'smearing': 'gaussian', 'width': 0.1}) == ('gaussian', 0.1)
    assert fermi_settings_from_parameters(cold, {'smearing': 'fixed'}) == ('fixed', 0.0)


def test_stock_si(singleshot_node, data_regression, num_regression):
    """Stock pw.x on Si (exit status 2, 'convergence NOT achieved'): parsed as a successful single shot."""
    node = singleshot_node('stock_si')
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert set(results) >= {'output_band', 'output_parameters', 'fermi', 'features'}
    assert set(results['features']) == {'vbm', 'fermi', 'cbm', 'concatenated'}

    fermi = results['fermi'].get_dict()
    assert fermi['single_shot_flavour'] == 'stock'
    assert fermi['method'] == 'midgap'
    assert not fermi['is_metal']
    assert fermi['vbm'] < fermi['fermi_energy'] < fermi['cbm']
    assert 'fermi_energy' not in results['output_parameters'].get_dict()  # stock pw.x writes 0: not reported

    bands = results['output_band']
    eigenvalues = bands.get_bands()  # (n_k, n_bands), eV
    assert eigenvalues.shape == (8, 8)
    assert fermi['vbm_location'][1] == 0  # Gamma
    top_valence_at_gamma = eigenvalues[0, 1:4]
    np.testing.assert_allclose(top_valence_at_gamma, fermi['vbm'], atol=1e-6)  # triply degenerate
    data_regression.check(_rounded(fermi))
    num_regression.check(
        {name: node.features for name, node in results['features'].items()}, default_tolerance={'atol': 1e-8}
    )


def test_stock_al_metal(singleshot_node, data_regression):
    """Stock pw.x on Al with cold smearing: two-stage Fermi level, metal, electron count recovered."""
    node = singleshot_node('stock_al')
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    fermi = results['fermi'].get_dict()
    assert fermi['is_metal']
    assert fermi['method'].startswith('two-stage')
    assert fermi['smearing'] == 'cold'
    assert abs(fermi['n_electrons_error']) < 1e-6
    data_regression.check(_rounded(fermi))


def test_stock_batio3_larger_cell(singleshot_node, data_regression):
    """Stock pw.x on cubic BaTiO3 (5 atoms, 27 atomic wavefunctions with semicore states): an insulator."""
    node = singleshot_node('stock_batio3')
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    fermi = results['fermi'].get_dict()
    assert fermi['number_of_atomic_wfc'] == 5 + 10 + 3 * 4
    assert fermi['number_of_bands'] == 27
    assert fermi['band_gap'] > 0.5
    assert fermi['vbm'] < fermi['fermi_energy'] < fermi['cbm']
    data_regression.check(_rounded(fermi))


def test_random_wavefunctions_warning(singleshot_node):
    """fcc Mg (5 atomic wavefunctions, 10 electrons) run with padding allowed: outputs and warning 720."""
    node = singleshot_node('stock_mg_random')
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == 720
    assert 'random wavefunctions' in calcfunction.exit_message
    fermi = results['fermi'].get_dict()
    assert fermi['number_of_random_wfc'] == 1
    assert fermi['number_of_bands'] == 6
    assert set(results['features']) == {'vbm', 'fermi', 'cbm', 'concatenated'}


def test_features_integrate_to_states(singleshot_node):
    """Each default map times the volume integrates to the number of states of the broadened spectrum in its window."""
    node = singleshot_node('stock_si')
    results, _ = SingleShotParser.parse_from_node(node, store_provenance=False)
    volume = node.inputs.structure.get_cell_volume()
    eigenvalues = results['output_band'].get_bands()[np.newaxis]
    weights = results['output_band'].get_kpoints(also_weights=True)[1]
    for name in ('vbm', 'fermi', 'cbm'):
        features = results['features'][name]
        parameters = features.parameters
        reference = parameters['reference_energies'][0]
        lower, upper = parameters['window']
        integral = simpson(features.features, x=features.energies) * volume
        expected = _states_in_window(eigenvalues, weights, reference + lower, reference + upper, parameters['width'])
        assert integral == pytest.approx(expected, abs=2e-3), name
    assert _states_in_window(eigenvalues, weights, -100, 100, 0.05) == pytest.approx(16.0)  # 2 x 8 bands


def test_sorep_parameters_override(singleshot_node):
    """``sorep_parameters`` change the Fermi-level smearing and the feature grids."""
    overrides = {'smearing': 'gaussian', 'width': 0.1, 'features': {'fermi': {'n_points': 101}, 'cbm': None}}
    node = singleshot_node('stock_al', sorep_parameters=overrides)
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    fermi = results['fermi'].get_dict()
    assert (fermi['smearing'], fermi['width'], fermi['method']) == ('gaussian', 0.1, 'bisection')
    assert set(results['features']) == {'vbm', 'fermi', 'concatenated'}
    assert results['features']['fermi'].features.shape == (101,)


@pytest.mark.parametrize(
    ('name', 'exit_status', 'scheduler_status'),
    [
        ('failed_missing_xml', 303, None),
        ('failed_missing_stdout', 302, None),
        ('failed_truncated_xml', 321, None),
        ('failed_no_eigenvalues', 315, None),
        ('failed_crash', 464, None),  # killed in the diagonalization, with the CRASH file naming the error
        ('failed_interrupted', 312, None),  # killed in the diagonalization, no end marker
        ('failed_walltime', 400, None),
        ('failed_interrupted', 110, 110),  # the scheduler said: out of memory
        ('failed_interrupted', 120, 120),  # the scheduler said: out of walltime
    ],
)
def test_failures(singleshot_node, name, exit_status, scheduler_status):
    """Runs that really failed map to their exit codes; the parser never raises."""
    node = singleshot_node(name, exit_status=scheduler_status)
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == exit_status, calcfunction.exit_message
    assert 'features' not in results
    assert 'fermi' not in results


@pytest.mark.parametrize('name', ['patched_si', 'patched_al'])
def test_patched(singleshot_node, name):
    """Real outputs of the patched pw.x (exit 0, ``single-shot`` marker): its Fermi level next to the rebuilt one."""
    node = singleshot_node(name)
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    fermi = results['fermi'].get_dict()
    assert fermi['single_shot_flavour'] == 'patched'
    assert results['output_parameters']['fermi_energy'] == pytest.approx(fermi['pwx_fermi_energy'])
    if fermi['is_metal']:
        assert abs(fermi['pwx_fermi_energy_difference']) < 1e-3  # same cold smearing: agree to 1 meV
    else:
        assert fermi['vbm'] < fermi['fermi_energy'] < fermi['cbm']
        assert fermi['vbm'] - 1e-3 <= fermi['pwx_fermi_energy'] < fermi['cbm']  # fixed occupations: the HOMO


@pytest.mark.parametrize('name', ['si', 'al'])
def test_patched_equals_stock(singleshot_node, name):
    """Stock and patched pw.x give the same eigenvalues and the same rebuilt Fermi level and features."""
    stock, _ = SingleShotParser.parse_from_node(singleshot_node(f'stock_{name}'), store_provenance=False)
    patched, _ = SingleShotParser.parse_from_node(singleshot_node(f'patched_{name}'), store_provenance=False)
    np.testing.assert_allclose(patched['output_band'].get_bands(), stock['output_band'].get_bands(), atol=1e-6)
    assert patched['fermi']['fermi_energy'] == pytest.approx(stock['fermi']['fermi_energy'], abs=1e-6)
    for kind in ('vbm', 'fermi', 'cbm', 'concatenated'):
        np.testing.assert_allclose(patched['features'][kind].features, stock['features'][kind].features, atol=1e-6)


@pytest.mark.parametrize(
    ('sorep_parameters', 'exit_status', 'words'),
    [
        ({'smearing': 'lorentzian'}, 420, 'Fermi level could not be rebuilt'),
        ({'features': {'bogus': {}}}, 421, 'features could not be computed'),
    ],
)
def test_fermi_and_feature_failures_are_exit_codes(singleshot_node, sorep_parameters, exit_status, words):
    """Parameters that the input validator refuses at submission give 420/421, not a traceback, if they reach the
    parser (a node built by hand or by an older version); the bands are attached all the same."""
    from aiida_sorep.calculations.singleshot import validate_sorep_parameters

    assert validate_sorep_parameters(orm.Dict(sorep_parameters), None) is not None
    node = singleshot_node('stock_al', sorep_parameters=sorep_parameters)
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == exit_status
    assert words in calcfunction.exit_message
    assert 'output_band' in results
    assert 'features' not in results


def test_unexpected_exception_is_350(singleshot_node):
    """An inconsistent node (padded output, padding not allowed in its inputs) gives 350, not a traceback."""
    node = singleshot_node('stock_mg_random', allow=False)
    results, calcfunction = SingleShotParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == 350
    assert 'allow_random_wavefunctions' in calcfunction.exit_message
    assert 'output_band' in results  # what could be parsed is attached


def test_qe_xml_schema_is_built_once_per_process(singleshot_node):
    """Two parses reuse one ``XMLSchema`` object (aiida-quantumespresso would build it for every parse)."""
    from aiida_quantumespresso.parsers.parse_xml import parse as qe_parse_xml

    qe_parse_xml.XMLSchema.cache_clear()
    for name in ('stock_si', 'stock_al'):
        _, calcfunction = SingleShotParser.parse_from_node(singleshot_node(name), store_provenance=False)
        assert calcfunction.is_finished_ok, calcfunction.exit_message
    info = qe_parse_xml.XMLSchema.cache_info()
    assert info.misses == 1  # both files were written by QE 6.7 against the same schema
    assert info.hits == 1
