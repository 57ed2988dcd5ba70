"""``sorep.reference`` glue without pw.x bands: the analysis calcfunction on analytic BandsData, plots, exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory
from ase.build import bulk

from aiida_sorep.core.effective_mass import HBAR2_OVER_2ME
from aiida_sorep.workflows.reference import compute_reference_properties

ReferenceWorkChain = WorkflowFactory('sorep.reference')

A = 4.0  # Å, simple cubic
M_E, M_H, GAP = 0.3, -0.5, 2.0


def model_bands(fractional: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Parabolic VB (max 0 at Gamma) and CB (min GAP at Gamma): (n_k, 2) in eV; k computed here with 2π/a."""
    k2 = np.sum((2 * np.pi / A * fractional) ** 2, axis=1)
    return np.stack([HBAR2_OVER_2ME * k2 / M_H + shift, GAP + HBAR2_OVER_2ME * k2 / M_E + shift], axis=1)


def analytic_inputs(shift: float = 0.0, smearing: str = 'cold', degauss: float = 0.01):
    """SCF BandsData on a 4x4x4 grid (weights) and a labelled Gamma-X-M-Gamma path BandsData, both stored."""
    cell = np.eye(3) * A
    grid = np.array([[i, j, k] for i in range(-1, 3) for j in range(-1, 3) for k in range(-1, 3)]) / 4.0
    scf_kpoints = orm.KpointsData()
    scf_kpoints.set_cell(cell)
    scf_kpoints.set_kpoints(grid, weights=np.full(len(grid), 1.0 / len(grid)))
    scf = orm.BandsData()
    scf.set_kpointsdata(scf_kpoints)
    scf.set_bands(model_bands(grid, shift), units='eV')

    n = 15
    t = np.linspace(0, 1, n)
    gx = np.stack([0.5 * t, 0 * t, 0 * t], axis=1)
    xm = np.stack([0.5 + 0 * t, 0.5 * t, 0 * t], axis=1)[1:]
    mg = np.stack([0.5 * t[::-1], 0.5 * t[::-1], 0 * t], axis=1)[1:]
    path = np.concatenate([gx, xm, mg])
    path_kpoints = orm.KpointsData()
    path_kpoints.set_cell(cell)
    path_kpoints.set_kpoints(path, labels=[(0, 'GAMMA'), (n - 1, 'X'), (2 * n - 2, 'M'), (3 * n - 3, 'GAMMA')])
    band_structure = orm.BandsData()
    band_structure.set_kpointsdata(path_kpoints)
    band_structure.set_bands(model_bands(path, shift), units='eV')
    settings = {
        'smearing': smearing,
        'degauss': degauss,
        'temperature': 300.0,
        'edge_window': 0.1,
        'tcm_thresholds': {'min_band_gap': 0.5, 'max_electron_mass': 0.5, 'min_hole_mass': -1.0},
    }
    return {
        'scf_bands': scf.store(),
        'scf_parameters': orm.Dict({'number_of_electrons': 2.0}).store(),
        'band_structure': band_structure.store(),
        'settings': orm.Dict(settings).store(),
    }


@pytest.mark.parametrize('occupations', [('cold', 0.01), ('fixed', 0.0)])
def test_masses_from_analytic_parabolic_bandsdata(occupations):
    """The calcfunction recovers the model's masses from BandsData (cartesian k in 1/Å with 2π), holes negative."""
    smearing, degauss = occupations
    results, node = compute_reference_properties.run_get_node(
        **analytic_inputs(shift=1.7, smearing=smearing, degauss=degauss)
    )
    assert node.is_finished_ok, node.exit_message
    props = results['properties'].get_dict()
    assert props['band_gap'] == pytest.approx(GAP)
    assert props['vbm'] == pytest.approx(1.7)
    assert props['fermi_energy'] == pytest.approx(1.7 + GAP / 2)
    assert props['electron_mass'] == pytest.approx(M_E, rel=1e-3)
    assert props['hole_mass'] == pytest.approx(M_H, rel=1e-3)
    assert [s['label'] for s in props['electron_masses']] == ['GAMMA-X', 'X-M', 'M-GAMMA']
    assert [s['qualifies'] for s in props['electron_masses']] == [True, False, True]
    assert props['is_tcm_candidate'] is True
    assert props['tcm'] == {'n_type': True, 'p_type': True, 'reason': props['tcm']['reason']}
    assert props['mass_edges']['vbm'] == pytest.approx(1.7)


def test_analysis_failure_is_an_exit_code():
    """Inconsistent inputs (too few electrons for the bands) give exit 401 with the reason, not an exception."""
    inputs = analytic_inputs()
    inputs['scf_parameters'] = orm.Dict({'number_of_electrons': 6.0})  # 3 bands needed, 2 available
    _, node = compute_reference_properties.run_get_node(**inputs)
    assert node.exit_status == 401
    assert 'analysis of the eigenvalues failed' in node.exit_message


def test_plot_reference_png(tmp_path):
    """The plot helper writes a PNG with the masses annotated (from a work chain-like node)."""
    from aiida_sorep.plotting.bands import plot_band_structure

    inputs = analytic_inputs()
    results, _ = compute_reference_properties.run_get_node(**inputs)
    props = results['properties'].get_dict()
    bands = inputs['band_structure']
    filename = tmp_path / 'bands.png'
    fig = plot_band_structure(bands.get_kpoints(cartesian=True), bands.get_bands(), props['segments'], props, filename)
    assert filename.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    texts = [text.get_text() for text in fig.axes[0].texts]
    assert any('0.30' in text for text in texts)
    assert any('-0.50' in text for text in texts)


def test_sparse_band_path_exit_code(pw_code, pseudo_family):
    """A band path with 2-point segments stops with 203 before any pw.x run."""
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
    builder = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast')
    builder.bands_kpoints_distance = orm.Float(5.0)
    _, node = run_get_node(builder)
    assert node.exit_status == ReferenceWorkChain.exit_codes.ERROR_BAND_PATH_TOO_SPARSE.status == 203
    assert 'GAMMA-X: 2' in node.exit_message
    assert not [n for n in node.called if n.process_label == 'PwBandsWorkChain']


def test_explicit_path_without_segments_exit_code(pw_code, pseudo_family):
    """An explicit path whose labelled points leave no segment stops with 204."""
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
    builder = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast')
    builder.pop('bands_kpoints_distance')
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    kpoints.set_kpoints([[0, 0, 0], [0.5, 0, 0.5]], labels=[(0, 'GAMMA'), (1, 'X')])
    builder.bands_kpoints = kpoints
    _, node = run_get_node(builder)
    assert node.exit_status == 204


def test_failed_child_exit_code(pw_code, pseudo_family):
    """A real pw.x failure (too few bands) propagates as 301 with the child's exit status."""
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
    overrides = {'pw_bands': {'scf': {'pw': {'parameters': {'SYSTEM': {'nbnd': 2}}}}}}
    builder = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast', overrides=overrides)
    _, node = run_get_node(builder)
    assert node.exit_status == ReferenceWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_BANDS.status == 301
    child = next(n for n in node.called if n.process_label == 'PwBandsWorkChain')
    assert child.is_failed
    assert str(child.exit_status) in node.exit_message


def test_protocols_and_builder(pw_code, pseudo_family):
    """Protocols: three levels, low/normal/high PseudoDojo cutoffs (Ry), no MPI by default, cold smearing."""
    assert set(ReferenceWorkChain.get_available_protocols()) == {'fast', 'balanced', 'stringent'}
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
    cutoffs = {}
    for protocol in ('fast', 'balanced', 'stringent'):
        builder = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure, protocol=protocol)
        system = builder.pw_bands.scf.pw.parameters.get_dict()['SYSTEM']
        assert system['smearing'] == 'cold'
        assert builder.pw_bands.scf.pw.metadata.options.withmpi is False
        assert builder.pw_bands.bands.pw.metadata.options.withmpi is False
        cutoffs[protocol] = system['ecutwfc']
    assert cutoffs == {'fast': 28.0, 'balanced': 36.0, 'stringent': 48.0}  # PseudoDojo Si hints, 2 Ry/Ha
    balanced = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure)
    assert balanced.pw_bands.scf.kpoints_distance.value == 0.15
    mpi = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure, options={'withmpi': True})
    assert mpi.pw_bands.scf.pw.metadata.options.withmpi is True


def test_both_band_paths_rejected(pw_code, pseudo_family):
    """``bands_kpoints`` and ``bands_kpoints_distance`` together are refused when the process is created."""
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
    builder = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast')
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    kpoints.set_kpoints([[0, 0, 0], [0.25, 0, 0.25], [0.5, 0, 0.5]], labels=[(0, 'GAMMA'), (2, 'X')])
    builder.bands_kpoints = kpoints
    with pytest.raises(ValueError, match='either `bands_kpoints` or `bands_kpoints_distance`'):
        run_get_node(builder)


def test_invalid_tcm_thresholds_rejected(pw_code, pseudo_family):
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
    overrides = {'tcm_thresholds': {'min_hole_mass': 1.0}}
    builder = ReferenceWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast', overrides=overrides)
    with pytest.raises(ValueError, match='min_hole_mass must be < 0'):
        run_get_node(builder)
