"""Provenance queries on real single-shot work chains (real pw.x on 1- and 2-atom cells, the embedded profile)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sorep import queries
from aiida_sorep.install.pseudos import FAMILY_LABEL

COARSE = {'kpoints_distance': 0.6}


@pytest.fixture(scope='module')
def runs(aiida_profile, pw_executable, pseudo_family):
    """Si (insulator), AlP (insulator), Al (metal) and a Si run that fails twice (invalid ecutrho), in one group."""
    from ase.build import bulk

    from aiida_sorep.install.profile import ensure_code
    from aiida_sorep.workflows.singleshot import SingleShotWorkChain

    code, _ = ensure_code(pw_executable, 'pw-queries', echo=lambda *_: None)
    cells = {
        'Si': (bulk('Si', 'diamond', a=5.43), False, COARSE),
        'AlP': (bulk('AlP', 'zincblende', a=5.47), True, COARSE),
        'Al': (bulk('Al', 'fcc', a=4.05), None, COARSE),
        'Si-broken': (
            bulk('Si', 'diamond', a=5.50),
            False,
            {**COARSE, 'singleshot': {'parameters': {'SYSTEM': {'ecutwfc': 20.0, 'ecutrho': 10.0}}}},
        ),
    }
    group = orm.Group(label='queries/structures').store()
    workchains_group = orm.Group(label='queries/workchains').store()
    result = {}
    for name, (atoms, is_tcm, overrides) in cells.items():
        structure = orm.StructureData(ase=atoms)
        structure.label = name
        structure.store()
        if is_tcm is not None:
            structure.base.extras.set('is_tcm', is_tcm)
        group.add_nodes(structure)
        builder = SingleShotWorkChain.get_builder_from_protocol(code, structure, protocol='fast', overrides=overrides)
        _, node = run_get_node(builder)
        workchains_group.add_nodes(node)
        result[name] = (structure, node)
    assert all(result[name][1].is_finished_ok for name in ('Si', 'AlP', 'Al'))
    assert result['Si-broken'][1].is_failed
    return group, workchains_group, result, code


@pytest.mark.parametrize('group_index', [0, 1], ids=['structure group', 'work chain group'])
def test_features_dataframe(runs, group_index):
    """One row per successful structure with its label extra; the matrix is the stored feature vectors."""
    groups, result = runs[:2], runs[2]
    frame = queries.features_dataframe(groups[group_index], kind='concatenated', label_extra='is_tcm')

    expected = ['Si', 'AlP', 'Al']  # creation order = structure PK order; the failed run has no features
    assert list(frame['label']) == expected
    assert list(frame['formula']) == ['Si2', 'AlP', 'Al']
    assert list(frame['structure_pk']) == [result[name][0].pk for name in expected]
    assert list(frame['workchain_pk']) == [result[name][1].pk for name in expected]
    assert frame['is_tcm'].tolist() == [False, True, None]
    feature_columns = [column for column in frame.columns if column.startswith('feature_')]
    stored = np.array([result[name][1].outputs.features.concatenated.features for name in expected])
    assert stored.shape == (3, len(feature_columns))
    np.testing.assert_array_equal(frame[feature_columns].to_numpy(), stored)
    np.testing.assert_array_equal(frame.attrs['energies'], result['Si'][1].outputs.features.concatenated.energies)
    assert frame.attrs['parameters']['kind'] == 'concatenated'


def test_fermi_levels_and_gaps(runs):
    """Structures containing Al: AlP (gapped) and Al (metal); Si is not among them. Values are the stored ones."""
    _, _, result, _ = runs
    frame = queries.fermi_levels_and_gaps('Al', group='queries/structures')
    assert list(frame['formula']) == ['AlP', 'Al']
    for row in frame.itertuples():
        fermi = orm.load_node(row.workchain_pk).outputs.fermi.get_dict()
        assert row.fermi_energy == fermi['fermi_energy']
        assert row.band_gap == fermi['band_gap']
    alp, al = frame.iloc[0], frame.iloc[1]
    assert not alp['is_metal'] and alp['band_gap'] > 0 and alp['vbm'] < alp['fermi_energy'] < alp['cbm']
    assert al['is_metal']

    silicon = queries.fermi_levels_and_gaps('Si', group='queries/structures')
    assert list(silicon['structure_pk']) == [result['Si'][0].pk]  # the failed Si run is not a result
    assert silicon['band_gap'].iloc[0] > 0
    assert queries.fermi_levels_and_gaps('P', group='queries/workchains')['formula'].tolist() == ['AlP']
    assert queries.fermi_levels_and_gaps('Xe', group='queries/structures').empty


def test_feature_provenance(runs, pw_executable, pseudo_family):
    """From a structure, a work chain or the features node back to the pw.x run, its code and pseudopotentials."""
    _, _, result, code = runs
    structure, workchain = result['AlP']
    (calculation,) = [child for child in workchain.called if isinstance(child, orm.CalcJobNode)]

    provenance = queries.feature_provenance(structure)
    assert provenance == queries.feature_provenance(workchain.pk)
    assert provenance == queries.feature_provenance(workchain.outputs.features.concatenated)
    assert provenance.calculation_pk == calculation.pk
    assert provenance.workchain_pk == workchain.pk
    assert provenance.structure_pk == structure.pk
    assert provenance.code == code.full_label
    assert provenance.executable == pw_executable
    assert provenance.pw_version == calculation.outputs.output_parameters['creator_version']
    assert provenance.kpoints_mesh == calculation.inputs.kpoints.get_kpoints_mesh()[0]
    assert provenance.parameters['SYSTEM']['ecutwfc'] == calculation.inputs.parameters['SYSTEM']['ecutwfc']
    assert [(p.kind, p.element) for p in provenance.pseudos] == [('Al', 'Al'), ('P', 'P')]
    for record in provenance.pseudos:
        family_pseudo = pseudo_family.get_pseudo(record.element)
        assert (record.pk, record.md5, record.filename) == (family_pseudo.pk, family_pseudo.md5, family_pseudo.filename)
        assert FAMILY_LABEL in record.families

    with pytest.raises(ValueError, match='no successful single-shot'):
        queries.feature_provenance(result['Si-broken'][0])


def test_failed_runs(runs):
    """The failed work chain, by exit code; at the calculation level, its failed pw.x run(s)."""
    _, workchains_group, result, _ = runs
    structure, workchain = result['Si-broken']

    frame = queries.failed_runs(workchains_group)
    assert frame['pk'].tolist() == [workchain.pk]
    assert frame['exit_status'].tolist() == [workchain.exit_status]
    assert frame['structure_pk'].tolist() == [structure.pk]
    assert workchain.pk in queries.failed_runs()['pk'].tolist()  # the whole profile

    summary = queries.failures_by_exit_code(workchains_group)
    assert summary[['process_state', 'exit_status', 'count']].values.tolist() == [
        ['finished', workchain.exit_status, 1]
    ]
    assert summary['pks'].iloc[0] == [workchain.pk]

    calculations = [child for child in workchain.called if isinstance(child, orm.CalcJobNode)]
    assert calculations and all(calc.is_failed for calc in calculations)
    calculations_group = orm.Group(label='queries/broken-calculations').store()
    calculations_group.add_nodes(calculations)
    by_calc = queries.failures_by_exit_code(calculations_group, process_label='SingleShotCalculation')
    assert by_calc['count'].tolist() == [len(calculations)]
    assert by_calc['exit_status'].iloc[0] == calculations[0].exit_status
    assert sorted(by_calc['pks'].iloc[0]) == sorted(calc.pk for calc in calculations)
