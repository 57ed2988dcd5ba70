"""Integration tests of ``sorep.reference`` with the real pw.x (fast protocol, tiny cells)."""

from __future__ import annotations

from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory
from ase.build import bulk

from aiida_sorep.plotting.bands import plot_reference
from aiida_sorep.workflows.reference import query_reference_results

ReferenceWorkChain = WorkflowFactory('sorep.reference')


def run_reference(code, structure, **kwargs):
    builder = ReferenceWorkChain.get_builder_from_protocol(code, structure, protocol='fast', **kwargs)
    return run_get_node(builder)


def assert_outputs_linked(node):
    """All outputs exist and come from the children (PwBandsWorkChain, seekpath, analysis)."""
    for name in ('properties', 'band_structure', 'scf_bands', 'primitive_structure', 'cell_info'):
        assert name in node.outputs, name
    called = {
        link.link_label: link.node
        for link in node.base.links.get_outgoing().all()
        if link.link_type.value.startswith('call')
    }
    assert {'pw_bands', 'analysis', 'cell_info'} <= set(called)
    pw_bands = called['pw_bands']
    assert pw_bands.is_finished_ok
    assert node.outputs.band_structure.uuid == pw_bands.outputs.band_structure.uuid
    analysis = called['analysis']
    assert node.outputs.properties.creator.uuid == analysis.uuid
    assert analysis.inputs.band_structure.uuid == pw_bands.outputs.band_structure.uuid
    scf = pw_bands.base.links.get_outgoing(link_label_filter='scf').one().node
    assert analysis.inputs.scf_bands.uuid == scf.outputs.output_band.uuid == node.outputs.scf_bands.uuid


def test_silicon_fast(pw_code, pseudo_family, tmp_path):
    """Conventional 8-atom Si: seekpath reduces it to 2 atoms; indirect gap 0.4-0.8 eV; masses of the right sign."""
    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431, cubic=True))
    results, node = run_reference(pw_code, structure)
    assert node.is_finished_ok, node.exit_message
    assert_outputs_linked(node)
    props = results['properties'].get_dict()
    assert not props['is_metal']
    assert 0.4 < props['band_gap'] < 0.8
    assert not props['is_direct_gap']
    assert props['direct_gap'] > props['band_gap'] + 0.1
    assert props['vbm'] < props['fermi_energy'] < props['cbm']
    assert props['fermi_method'] == 'midgap'
    assert props['electron_mass'] > 0
    assert props['hole_mass'] < 0
    assert props['mass_edges']['source'] == 'scf_mp_grid'
    assert props['mass_edges']['cbm'] == props['cbm']
    labels = [segment['label'] for segment in props['electron_masses']]
    assert 'GAMMA-X' in labels
    # PBE Si passes the default criteria through its light holes (gap > 0.5 eV, m_h* >= -1).
    assert props['is_tcm_candidate'] is (props['band_gap'] > 0.5 and props['hole_mass'] >= -1.0)
    assert props['tcm_thresholds'] == {'min_band_gap': 0.5, 'max_electron_mass': 0.5, 'min_hole_mass': -1.0}
    # Along the path the CBM valley is seen only along Gamma-X: the longitudinal mass (~0.9 m_e) is the one found.
    assert props['electron_mass_segment'] == 'GAMMA-X'
    assert 0.7 < props['electron_mass'] < 1.2
    info = results['cell_info'].get_dict()
    assert info['seekpath_changed_cell'] is True
    assert (info['n_sites_input'], info['n_sites_primitive']) == (8, 2)
    assert len(results['primitive_structure'].sites) == 2
    # The QueryBuilder recipe of docs/reference.md finds this run.
    row = next(row for row in query_reference_results() if row['pk'] == node.pk)
    assert row['formula'] == 'Si8'
    assert row['band_gap'] == props['band_gap']
    assert (row['electron_mass'], row['hole_mass']) == (props['electron_mass'], props['hole_mass'])
    assert row['is_tcm_candidate'] is props['is_tcm_candidate']
    # The plot helper works on the real node.
    plot_reference(node, tmp_path / 'si.png')
    assert (tmp_path / 'si.png').read_bytes()[:4] == b'\x89PNG'


def test_aluminium_metal(pw_code, pseudo_family, tmp_path):
    """One-atom Al: a metal, masses None, label False, exit status 0."""
    structure = orm.StructureData(ase=bulk('Al', 'fcc', a=4.05))
    results, node = run_reference(pw_code, structure)
    assert node.is_finished_ok, node.exit_message
    assert_outputs_linked(node)
    props = results['properties'].get_dict()
    assert props['is_metal'] is True
    assert props['electron_mass'] is None
    assert props['hole_mass'] is None
    assert props['electron_masses'] == []
    assert props['is_tcm_candidate'] is False
    assert props['band_gap'] == 0.0
    row = next(row for row in query_reference_results() if row['pk'] == node.pk)
    assert row == {
        'pk': node.pk,
        'formula': 'Al',
        'band_gap': 0.0,
        'electron_mass': None,
        'hole_mass': None,
        'is_tcm_candidate': False,
    }
    plot_reference(node, tmp_path / 'al.png')
    assert (tmp_path / 'al.png').stat().st_size > 1000
