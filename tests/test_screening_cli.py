"""Tests of ``aiida-sorep screening`` commands (metrics, export, failures) on the test profile."""

from __future__ import annotations

import csv

import numpy as np
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk
from click.testing import CliRunner

from aiida_sorep.cli.screening import cmd_screening

PARAMETERS = {'random_state': 3, 'n_splits': 2, 'test_size': 0.3, 'forest_settings': {'n_estimators': 8}}


def test_metrics_of_a_training(aiida_profile):
    from aiida_sorep.data import SorepFeaturesData
    from aiida_sorep.workflows.training import TrainingWorkChain

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(6), np.zeros(8)].astype(int)
    X = rng.normal(size=(14, 6)) + 3.0 * y[:, None]
    features = {
        f'm{i}': SorepFeaturesData(features=row, energies=np.arange(6.0), parameters={'kind': 'vbm'})
        for i, row in enumerate(X)
    }
    labels = {f'm{i}': orm.Bool(bool(v)) for i, v in enumerate(y)}
    _, node = run_get_node(TrainingWorkChain, features=features, labels=labels, parameters=orm.Dict(PARAMETERS))
    assert node.is_finished_ok, node.exit_message
    result = CliRunner().invoke(cmd_screening, ['metrics', str(node.pk), '-p', aiida_profile.name, '--splits'])
    assert result.exit_code == 0, result.output
    assert 'balanced_accuracy' in result.output and 'split 1: TN=' in result.output


def test_failures_are_reported_without_traceback(aiida_profile):
    runner = CliRunner()
    result = runner.invoke(cmd_screening, ['metrics', '999999', '-p', aiida_profile.name])
    assert result.exit_code == 1 and '[FAILED]' in result.output and 'Traceback' not in result.output
    result = runner.invoke(cmd_screening, ['export', 'no-such-group', 'out.csv', '-p', aiida_profile.name])
    assert result.exit_code == 1 and 'no Group' in result.output


def test_export_csv_and_npz(aiida_profile, pw_code, pseudo_family, tmp_path):
    from aiida_sorep.workflows.singleshot import SingleShotWorkChain

    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431)).store()
    structure.label = 'Si'
    builder = SingleShotWorkChain.get_builder_from_protocol(pw_code, structure, protocol='fast')
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    group = orm.Group(label='export-test').store()
    group.add_nodes([structure])
    runner = CliRunner()
    result = runner.invoke(cmd_screening, ['export', 'export-test', str(tmp_path / 'f.csv'), '-p', aiida_profile.name])
    assert result.exit_code == 0, result.output
    with (tmp_path / 'f.csv').open() as handle:
        header, row = list(csv.reader(handle))
    expected = node.outputs.features.concatenated
    assert header[:4] == ['key', 'pk', 'formula', 'label'] and row[:4] == ['Si', str(structure.pk), 'Si2', '']
    np.testing.assert_allclose(np.array(row[4:], dtype=float), expected.features, rtol=1e-7)
    result = runner.invoke(
        cmd_screening, ['export', 'export-test', str(tmp_path / 'f.npz'), '-p', aiida_profile.name, '--kind', 'vbm']
    )
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / 'f.npz') as data:
        np.testing.assert_array_equal(data['features'][0], node.outputs.features.vbm.features)
        assert data['labels'].tolist() == [-1]
