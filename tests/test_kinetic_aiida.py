"""Tests of the AiiDA side of the kinetic SOREP: ``sorep.kinetic.features``, ``sorep.similarity``, ``sorep.kinetic``."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, DataFactory, WorkflowFactory

from aiida_sorep.core.structures import diamond, distorted_copy

COARSE = {'kspacing': 0.6, 'n_points': 256}


@pytest.fixture
def structures():
    si = diamond('Si', 5.431)
    return {
        'si': orm.StructureData(pymatgen=si).store(),
        'ge': orm.StructureData(pymatgen=diamond('Ge', 5.658)).store(),
        'si_shaken': orm.StructureData(pymatgen=distorted_copy(si, 0.01, np.random.default_rng(3))).store(),
    }


def test_entry_points():
    assert WorkflowFactory('sorep.kinetic').__name__ == 'KineticSorepWorkChain'
    assert CalculationFactory('sorep.kinetic.features').__name__ == 'kinetic_features'
    assert CalculationFactory('sorep.similarity').__name__ == 'cluster_features'


def test_kinetic_features_calcfunction(structures):
    kinetic_features = CalculationFactory('sorep.kinetic.features')
    result, node = run_get_node(kinetic_features, structure=structures['si'], parameters=orm.Dict(COARSE))
    assert node.is_finished_ok
    assert isinstance(result, DataFactory('sorep.features'))
    assert result.kind == 'kinetic'
    assert result.parameters['n_points'] == 256
    assert result.parameters['mesh'] == [4, 4, 4]  # |b| = 2π√3/5.431 = 2.00 1/Å
    assert result.energies[0] == 0.0
    assert result.energies[-1] == 180.0
    assert result.features.max() > 0


def test_workchain_group_chunks_and_clusters(structures):
    group = orm.Group(label='kinetic-test-structures').store()
    group.add_nodes([structures['si'], structures['ge']])
    builder = WorkflowFactory('sorep.kinetic').get_builder()
    builder.group = orm.Str(group.label)
    builder.structures = {'extra': structures['si_shaken']}
    builder.parameters = orm.Dict(COARSE)
    builder.chunk_size = orm.Int(2)
    builder.eps = orm.Float(1e-3)
    builder.output_group = orm.Str('kinetic-test-features')
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_status
    keys = {f'structure_{structures[name].pk}' for name in structures}
    assert set(results['features']) == keys
    calcfunctions = [child for child in node.called if child.process_label == 'kinetic_features']
    assert len(calcfunctions) == 3
    labels = results['clusters']['labels']
    si, ge, shaken = (labels[f'structure_{structures[name].pk}'] for name in ('si', 'ge', 'si_shaken'))
    assert si == shaken != ge
    assert results['clusters']['n_clusters'] == 2
    distances = results['distances'].get_array('distances')
    assert distances.shape == (3, 3)
    assert len(orm.load_group('kinetic-test-features').nodes) == 3


def test_workchain_reports_failed_structure(structures):
    from ase import Atoms

    berkelium = orm.StructureData(ase=Atoms('Bk', cell=np.eye(3) * 4.0, pbc=True)).store()  # not in ANO-ML-OS
    builder = WorkflowFactory('sorep.kinetic').get_builder()
    builder.structures = {'si': structures['si'], 'bk': berkelium}
    builder.parameters = orm.Dict(COARSE)
    results, node = run_get_node(builder)
    assert node.exit_status == 301
    assert list(results['features']) == [f'structure_{structures["si"].pk}']


def test_workchain_validation(structures):
    builder = WorkflowFactory('sorep.kinetic').get_builder()
    builder.structures = {'si': structures['si']}
    with pytest.raises(ValueError, match='potential'):  # fails when the builder is made, not in the run
        builder.parameters = orm.Dict({'operator': 'potential'})
    empty = WorkflowFactory('sorep.kinetic').get_builder()
    with pytest.raises(ValueError, match='group'):
        run_get_node(empty)
    missing = WorkflowFactory('sorep.kinetic').get_builder()
    missing.group = orm.Str('no-such-group')
    _, node = run_get_node(missing)
    assert node.exit_status == 201


def test_similarity_rejects_different_grids(structures):
    features = DataFactory('sorep.features')
    a = features(np.ones(4), np.linspace(0, 1, 4), {'kind': 'kinetic'})
    b = features(np.ones(5), np.linspace(0, 1, 5), {'kind': 'kinetic'})
    with pytest.raises(ValueError, match='different energy grids'):
        CalculationFactory('sorep.similarity')(eps=orm.Float(0.1), a=a, b=b)
