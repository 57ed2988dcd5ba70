"""End-to-end test of ``sorep.screening`` with the real pw.x on five tiny crystals (fast protocol).

The label is ``is_metal`` of the reference work chain (robust for tiny cells, unlike the TCM label): Al, Cu and Pb
are metals, Si and AlP are insulators. The seed is chosen so that the first four materials of the seeded order
hold two of each class (the work chain would otherwise label more materials, which is slower but also correct).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

TRAINING = {'n_splits': 0, 'forest_settings': {'n_estimators': 10}, 'param_grid': {'max_depth': [None]}}
METALS = {'Al', 'Cu', 'Pb'}


def structures() -> dict[str, orm.StructureData]:
    crystals = {
        'Al': bulk('Al', 'fcc', a=4.05),
        'Cu': bulk('Cu', 'fcc', a=3.615),
        'Pb': bulk('Pb', 'fcc', a=4.95),
        'Si': bulk('Si', 'diamond', a=5.431),
        'AlP': bulk('AlP', 'zincblende', a=5.46),
    }
    return {key: orm.StructureData(ase=atoms).store() for key, atoms in crystals.items()}


def seed_with_balanced_start(keys: list[str]) -> int:
    """The first seed whose first four materials (in the work chain's seeded order) are two metals + two others."""
    keys = sorted(keys)
    for seed in range(100):
        first = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))[:4]]
        if sum(key.split('_')[0] in METALS for key in first) == 2:
            return seed
    raise AssertionError('no seed found')


def test_screening_end_to_end(pw_code, pseudo_family):
    from aiida_sorep.workflows.reference import ReferenceWorkChain
    from aiida_sorep.workflows.screening import ScreeningWorkChain
    from aiida_sorep.workflows.singleshot import SingleShotWorkChain

    nodes = structures()
    group = orm.Group(label='test-screening-structures').store()
    group.add_nodes(list(nodes.values()))
    seed = seed_with_balanced_start([f'{n.get_formula()}_{n.pk}' for n in nodes.values()])
    builder = ScreeningWorkChain.get_builder_from_protocol(
        pw_code,
        group,
        protocol='fast',
        feature_kind='vbm',
        label_key='is_metal',
        training_fraction=0.8,
        min_per_class=2,
        seed=seed,
        max_concurrent=1,
        training_parameters=TRAINING,
        candidates_group_label='test-screening-candidates',
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    called = [child.process_class for child in node.called]
    assert called.count(SingleShotWorkChain) == 5
    assert called.count(ReferenceWorkChain) == 4
    summary = results['summary'].get_dict()
    assert (summary['n_training'], summary['n_screened']) == (4, 1)
    for row in summary['rows']:
        element_key = row['formula'].rstrip('0123456789')
        if row['role'] == 'training':  # the reference labels are physical: metals are metals
            assert row['label'] == int(element_key in METALS), row
        else:
            assert row['predicted'] in (0, 1) and 0.0 <= row['probability'] <= 1.0
    assert set(results['features']) and all(f.kind == 'vbm' for f in results['features'].values())
    assert 'model' in results['training'] and 'metrics' in results['training']
    candidates = orm.load_group('test-screening-candidates')
    assert node.base.extras.get('candidates_group') == candidates.label
    screened = next(row for row in summary['rows'] if row['role'] == 'screened')
    assert len(candidates.nodes) == screened['predicted']

    # A second screening of the same structures (SOAP features, no pw.x) reuses the four labels by provenance.
    builder = ScreeningWorkChain.get_builder_from_protocol(
        pw_code,
        group,
        feature_kind='soap',
        label_key='is_metal',
        training_fraction=0.8,
        min_per_class=2,
        seed=seed,
        training_parameters=TRAINING,
    )
    results, second = run_get_node(builder)
    assert second.is_finished_ok, second.exit_message
    assert not [c for c in second.called if c.process_class in (ReferenceWorkChain, SingleShotWorkChain)]
    assert results['summary']['n_training'] == 4
    assert all(f.base.attributes.get('kind') == 'soap' for f in results['features'].values())


def test_screening_empty_inputs(pw_code):
    from aiida_sorep.workflows.screening import ScreeningWorkChain

    _, node = run_get_node(ScreeningWorkChain, code=pw_code, structures={})
    assert node.exit_status == ScreeningWorkChain.exit_codes.ERROR_INVALID_INPUTS.status == 201
