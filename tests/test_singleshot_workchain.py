"""Tests of ``SingleShotWorkChain`` (``sorep.singleshot``): protocols, restart handlers and real pw.x runs."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import engine, orm
from aiida.common import LinkType
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from aiida.plugins import WorkflowFactory
from ase.build import bulk
from plumpy import ProcessState
from scipy.integrate import simpson
from scipy.special import erf

from aiida_sorep.calculations.featurize import parse_feature_parameters
from aiida_sorep.core.features import DEFAULT_FEATURE_PARAMETERS
from aiida_sorep.install.pseudos import recommended_cutoffs

SingleShotWorkChain = WorkflowFactory('sorep.singleshot')
HARTREE_TO_RY = 2.0


@pytest.fixture
def silicon() -> orm.StructureData:
    """Primitive diamond Si (2 atoms)."""
    return orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))


def test_protocols_available():
    """Three named protocols with descriptions; ``balanced`` is the default."""
    protocols = SingleShotWorkChain.get_available_protocols()
    assert set(protocols) == {'fast', 'balanced', 'stringent'}
    assert all(value['description'] for value in protocols.values())
    assert SingleShotWorkChain.get_default_protocol() == 'balanced'


@pytest.mark.parametrize(
    ('protocol', 'distance', 'stringency', 'degauss'),
    [(None, 0.15, 'normal', 0.02), ('fast', 0.30, 'low', 0.0275), ('stringent', 0.10, 'high', 0.0125)],
)
def test_builder_from_protocol(pw_code, pseudo_family, silicon, protocol, distance, stringency, degauss):
    """k-point spacing, cutoffs from the family's stringency, smearing, serial by default."""
    builder = SingleShotWorkChain.get_builder_from_protocol(pw_code, silicon, protocol=protocol)
    assert builder.kpoints_distance.value == pytest.approx(distance)
    system = builder.singleshot.parameters['SYSTEM']
    expected = recommended_cutoffs(stringency)['Si']
    assert system['ecutwfc'] == pytest.approx(expected['cutoff_wfc'] * HARTREE_TO_RY)
    assert system['ecutrho'] == pytest.approx(expected['cutoff_rho'] * HARTREE_TO_RY)
    assert (system['occupations'], system['smearing'], system['degauss']) == ('smearing', 'cold', degauss)
    assert builder.singleshot.metadata['options']['withmpi'] is False
    assert builder.singleshot.allow_random_wavefunctions.value is False
    assert builder.singleshot.pseudos['Si'].element == 'Si'
    features = parse_feature_parameters(builder.singleshot.sorep_parameters['features'])
    assert features == DEFAULT_FEATURE_PARAMETERS  # the protocol spells out the paper's four maps


def test_builder_overrides_deep_merged(pw_code, pseudo_family, silicon):
    """Overrides replace single keys and keep the rest of the protocol; options reach the CalcJob."""
    overrides = {
        'kpoints_distance': 0.5,
        'singleshot': {
            'parameters': {'SYSTEM': {'degauss': 0.05, 'ecutwfc': 30.0, 'ecutrho': 120.0}},
            'sorep_parameters': {'smearing': 'gaussian', 'width': 0.1},
        },
    }
    options = {'max_wallclock_seconds': 120, 'withmpi': True}
    builder = SingleShotWorkChain.get_builder_from_protocol(pw_code, silicon, overrides=overrides, options=options)
    system = builder.singleshot.parameters['SYSTEM']
    assert (system['smearing'], system['degauss'], system['ecutwfc'], system['ecutrho']) == ('cold', 0.05, 30.0, 120.0)
    assert builder.kpoints_distance.value == 0.5
    sorep_parameters = builder.singleshot.sorep_parameters.get_dict()
    assert (sorep_parameters['smearing'], sorep_parameters['width']) == ('gaussian', 0.1)
    assert sorep_parameters['features']['fermi']['window'] == [-5.0, 5.0]  # the protocol's maps are kept
    assert builder.singleshot.metadata['options']['max_wallclock_seconds'] == 120
    assert builder.singleshot.metadata['options']['withmpi'] is True


def test_builder_errors(pw_code, pseudo_family, silicon):
    """Unknown protocol and uninstalled family fail when the builder is made, with a useful message."""
    with pytest.raises(ValueError, match='medium'):
        SingleShotWorkChain.get_builder_from_protocol(pw_code, silicon, protocol='medium')
    with pytest.raises(ValueError, match=r'SSSP/1\.3/PBE/efficiency` is not installed'):
        SingleShotWorkChain.get_builder_from_protocol(pw_code, silicon, pseudo_family='SSSP/1.3/PBE/efficiency')


@pytest.fixture
def workchain(pw_code, pseudo_family, silicon):
    """Return a set-up ``SingleShotWorkChain`` process (not run), with explicit k-points."""
    builder = SingleShotWorkChain.get_builder_from_protocol(pw_code, silicon, protocol='fast')
    builder.pop('kpoints_distance')
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([2, 2, 2])
    builder.kpoints = kpoints
    parameters = builder.singleshot.parameters.get_dict()
    parameters['CONTROL']['max_seconds'] = 100
    builder.singleshot.parameters = orm.Dict(parameters)
    builder.singleshot.metadata['options']['max_wallclock_seconds'] = 300
    process = instantiate_process(get_manager().get_runner(), SingleShotWorkChain, **dict(builder))
    process.setup()
    process.validate_kpoints()
    return process


def _inject_failed_child(process, computer, exit_status: int) -> orm.CalcJobNode:
    """Store a finished ``sorep.singleshot`` CalcJobNode with ``exit_status`` as the work chain's last child."""
    node = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:sorep.singleshot')
    node.set_option('resources', {'num_machines': 1})
    node.set_option('max_wallclock_seconds', 300)
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    node.store()
    remote = orm.RemoteData(remote_path='/tmp/nowhere', computer=computer)
    remote.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='remote_folder')
    remote.store()
    node.seal()
    process.ctx.setdefault('children', []).append(node)
    process.ctx.iteration += 1
    return node


@pytest.mark.parametrize('exit_status', [400, 340, 120])
def test_handle_out_of_walltime(workchain, aiida_localhost, exit_status):
    """Walltime (pw.x 400, interrupted 340, scheduler 120): restart from scratch with twice the walltime."""
    _inject_failed_child(workchain, aiida_localhost, exit_status)
    result = workchain.inspect_process()
    assert result.status == 0  # handled: the loop goes on
    assert workchain.ctx.inputs.metadata['options']['max_wallclock_seconds'] == 600
    assert workchain.ctx.inputs.parameters['CONTROL']['max_seconds'] == 200
    assert 'parent_folder' not in workchain.ctx.inputs


def test_handle_node_failure(workchain, aiida_localhost):
    """A node failure (140) reruns the calculation unchanged."""
    before = dict(workchain.ctx.inputs.metadata['options'])
    _inject_failed_child(workchain, aiida_localhost, 140)
    result = workchain.inspect_process()
    assert result.status == 0
    assert workchain.ctx.inputs.metadata['options'] == before


@pytest.mark.parametrize('exit_status', [312, 420, 110])
def test_unhandled_failures(workchain, aiida_localhost, exit_status):
    """Failures a restart cannot fix (crash, Fermi level, out of memory) abort instead of looping."""
    options = dict(workchain.ctx.inputs.metadata['options'])
    _inject_failed_child(workchain, aiida_localhost, exit_status)
    result = workchain.inspect_process()
    assert result == SingleShotWorkChain.exit_codes.ERROR_UNHANDLED_FAILURE
    assert workchain.ctx.inputs.metadata['options'] == options


def _assert_features_integrate(results, structure: orm.StructureData) -> None:
    """Each centred map times the volume integrates to the number of Gaussian-broadened states in its window."""
    eigenvalues = results['output_band'].get_bands()
    weights = results['output_band'].get_kpoints(also_weights=True)[1]
    volume = structure.get_cell_volume()
    for name in ('vbm', 'fermi', 'cbm'):
        node = results['features'][name]
        parameters = node.parameters
        lower, upper = (parameters['reference_energies'][0] + bound for bound in parameters['window'])
        width = parameters['width']
        expected = np.einsum(
            'k,kn->', weights, 0.5 * (erf((upper - eigenvalues) / width) - erf((lower - eigenvalues) / width))
        )
        assert simpson(node.features, x=node.energies) * volume == pytest.approx(expected, abs=2e-3), name


def _assert_outputs_from_calcjob(node: orm.WorkChainNode, results) -> None:
    """Every output of the work chain was created by its (single) ``SingleShotCalculation``."""
    calcjobs = [child for child in node.called if isinstance(child, orm.CalcJobNode)]
    assert len(calcjobs) == 1
    assert calcjobs[0].process_class.__name__ == 'SingleShotCalculation'
    for output in [results['output_band'], results['fermi'], *results['features'].values()]:
        assert output.creator.uuid == calcjobs[0].uuid


def test_silicon_stock_pwx(pw_code, pseudo_family, silicon):
    """Real stock pw.x on Si: VBM at Gamma triply degenerate, Fermi level in the gap, features, provenance."""
    builder = SingleShotWorkChain.get_builder_from_protocol(pw_code, silicon, protocol='fast')
    results, node = engine.run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    fermi = results['fermi'].get_dict()
    assert fermi['single_shot_flavour'] == 'stock'
    assert not fermi['is_metal']
    assert fermi['vbm'] < fermi['fermi_energy'] < fermi['cbm']
    assert fermi['method'] == 'midgap'

    bands = results['output_band']
    np.testing.assert_allclose(bands.get_kpoints()[0], 0.0)  # the unshifted mesh starts at Gamma
    _, k_index, band = fermi['vbm_location']
    assert k_index == 0
    eigenvalues = bands.get_bands()
    assert band == 3
    np.testing.assert_allclose(eigenvalues[0, 1:4], fermi['vbm'], atol=1e-5)  # bands 2-4 at Gamma: t2 triplet
    assert eigenvalues[0, 0] < fermi['vbm'] - 5  # the s-like band is well below
    _assert_features_integrate(results, silicon)
    _assert_outputs_from_calcjob(node, results)


def test_mgo_stock_pwx(pw_code, pseudo_family):
    """Real stock pw.x on rock-salt MgO (9 atomic orbitals, 16 electrons): a wide-gap insulator."""
    structure = orm.StructureData(ase=bulk('MgO', 'rocksalt', a=4.21))
    builder = SingleShotWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast')
    results, node = engine.run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    fermi = results['fermi'].get_dict()
    assert fermi['number_of_atomic_wfc'] == 5 + 4
    assert fermi['number_of_bands'] == 9
    assert fermi['vbm'] < fermi['fermi_energy'] < fermi['cbm']
    assert fermi['band_gap'] > 3.0
    assert fermi['vbm_location'][1] == 0  # O 2p VBM at Gamma
    _assert_features_integrate(results, structure)
    _assert_outputs_from_calcjob(node, results)


def test_random_wavefunctions_through_workchain(pw_code, pseudo_family):
    """fcc Mg needs one random band: refused by default, and with padding allowed finishes with 720 and outputs."""
    structure = orm.StructureData(ase=bulk('Mg', 'fcc', a=4.52))
    overrides = {'singleshot': {'allow_random_wavefunctions': True}}
    builder = SingleShotWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast', overrides=overrides)
    results, node = engine.run_get_node(builder)
    assert node.exit_status == SingleShotWorkChain.exit_codes.WARNING_RANDOM_WAVEFUNCTIONS.status
    assert results['fermi']['number_of_random_wfc'] == 1
    assert set(results['features']) == {'vbm', 'fermi', 'cbm', 'concatenated'}

    refused = SingleShotWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast')
    with pytest.raises(ValueError, match='allow_random_wavefunctions'):
        engine.run(refused)


def test_patched_pwx_through_workchain(pw_code, patched_pw_code, pseudo_family, silicon):
    """The patched pw.x through the work chain: exit 0, same spectrum and features as stock, its Fermi level valid.

    fcc Al is a metal: both Fermi levels solve the same cold-smearing equation and agree to 1 meV. Si is an
    insulator: the parser puts the Fermi level at mid-gap, while pw.x's bisection on the non-monotonic cold-smearing
    electron count may land a fraction of the smearing width *below* the VBM (0.04 eV here), still a valid root of
    N(E_F) = N_e. That is why aiida-sorep rebuilds the Fermi level instead of using pw.x's.
    """
    from aiida_sorep.core.fermi import count_electrons

    aluminium = orm.StructureData(ase=bulk('Al', 'fcc', a=4.05))
    for structure in (silicon, aluminium):
        patched, patched_node = engine.run_get_node(
            SingleShotWorkChain.get_builder_from_protocol(patched_pw_code, structure, protocol='fast')
        )
        stock, _ = engine.run_get_node(
            SingleShotWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast')
        )
        assert patched_node.is_finished_ok, patched_node.exit_message
        fermi = patched['fermi'].get_dict()
        assert fermi['single_shot_flavour'] == 'patched'
        np.testing.assert_allclose(patched['output_band'].get_bands(), stock['output_band'].get_bands(), atol=1e-8)
        for name in ('vbm', 'fermi', 'cbm', 'concatenated'):
            np.testing.assert_allclose(patched['features'][name].features, stock['features'][name].features, atol=1e-8)
        if fermi['is_metal']:
            assert structure is aluminium
            assert abs(fermi['pwx_fermi_energy_difference']) < 1e-3
        else:
            assert structure is silicon
            assert fermi['vbm'] < fermi['fermi_energy'] < fermi['cbm']
            assert fermi['vbm'] - fermi['width'] < fermi['pwx_fermi_energy'] < fermi['cbm']
            bands = patched['output_band']
            n_electrons = count_electrons(
                bands.get_bands()[np.newaxis],
                bands.get_kpoints(also_weights=True)[1],
                fermi['pwx_fermi_energy'],
                fermi['smearing'],
                fermi['width'],
            )
            assert n_electrons == pytest.approx(fermi['number_of_electrons'], abs=1e-4)
