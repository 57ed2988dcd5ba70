"""Tests of the ``sorep.training`` CalcJob (real run with this Python), WorkChain and ``sorep.predict``."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sorep.core import training as core
from aiida_sorep.data import SorepFeaturesData

PARAMETERS = {
    'random_state': 11,
    'test_size': 0.25,
    'n_splits': 2,
    'param_grid': {'max_depth': [None, 4]},
    'forest_settings': {'n_estimators': 12},
}


def synthetic(n_pos: int = 8, n_neg: int = 16, n_points: int = 20, seed: int = 0):
    """Separable set: positives carry a peak on points 5..8."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    X = rng.normal(1.0, 0.3, (y.size, n_points))
    X[y == 1, 5:9] += 3.0
    return X, y, np.linspace(-2.0, 2.0, n_points)


def feature_nodes(X, energies, kind='vbm'):
    return {
        f'm{i}': SorepFeaturesData(features=row, energies=energies, parameters={'kind': kind}).store()
        for i, row in enumerate(X)
    }


def label_nodes(y):
    return {f'm{i}': orm.Dict({'is_tcm_candidate': bool(v), 'band_gap': 1.0}).store() for i, v in enumerate(y)}


@pytest.fixture
def python_code(aiida_code_installed):
    """``sorep-python``: this interpreter, running ``python -m aiida_sorep.training_runner``."""
    return aiida_code_installed(
        label='sorep-python',
        default_calc_job_plugin='sorep.training',
        filepath_executable=sys.executable,
        with_mpi=False,
        prepend_text='export OMP_NUM_THREADS=1',
    )


def dataset_node(X, y, energies):
    node = orm.ArrayData()
    node.set_array('features', X)
    node.set_array('labels', y)
    node.set_array('energies', energies)
    return node.store()


def test_calcjob_runs_for_real_and_model_is_bit_for_bit(python_code):
    from aiida_sorep.calculations.training import TrainingCalculation

    X, y, energies = synthetic()
    results, node = run_get_node(
        TrainingCalculation, dataset=dataset_node(X, y, energies), parameters=orm.Dict(PARAMETERS), code=python_code
    )
    assert node.is_finished_ok, node.exit_message
    assert results['metrics']['summary']['balanced_accuracy']['mean'] > 0.9
    assert results['splits'].get_array('test_indices').shape == (2, 6)
    np.testing.assert_array_equal(results['importances'].get_array('energies'), energies)
    assert results['versions']['versions']['scikit-learn']
    assert results['model'].filename == 'model.skops'

    # The same seed in this process gives the same splits, metrics and a model predicting bit-for-bit the same.
    local = core.train_screening_model(X, y, energies, **{k: v for k, v in PARAMETERS.items()})
    np.testing.assert_array_equal(results['splits'].get_array('test_indices'), local.test_indices())
    assert results['metrics']['summary'] == local.summary
    stored = core.load_model(results['model'].get_content('rb'))
    assert stored.predict_proba(X).tobytes() == local.model.predict_proba(X).tobytes()


def test_calcjob_invalid_data_exit_code(python_code):
    from aiida_sorep.calculations.training import TrainingCalculation

    X, _, energies = synthetic(n_pos=4, n_neg=4)
    _, node = run_get_node(
        TrainingCalculation,
        dataset=dataset_node(X, np.zeros(8, dtype=int), energies),
        parameters=orm.Dict(PARAMETERS),
        code=python_code,
    )
    assert node.exit_status == TrainingCalculation.exit_codes.ERROR_INVALID_TRAINING_DATA.status == 410
    assert 'single class' in node.exit_message


def test_workchain_in_process_and_predict():
    from aiida_sorep.workflows.training import TrainingWorkChain, predict, predict_inputs

    X, y, energies = synthetic()
    features = feature_nodes(X, energies)
    results, node = run_get_node(
        TrainingWorkChain, features=features, labels=label_nodes(y), parameters=orm.Dict(PARAMETERS)
    )
    assert node.is_finished_ok, node.exit_message
    assert results['metrics']['summary']['balanced_accuracy']['mean'] > 0.9
    dataset = results['dataset']
    assert dataset.base.attributes.get('kind') == 'vbm'
    # provenance: the dataset was created from every feature node
    creator = dataset.creator
    assert {n.uuid for n in creator.base.links.get_incoming().all_nodes()} >= {n.uuid for n in features.values()}

    new, _, _ = synthetic(n_pos=3, n_neg=3, seed=5)
    new_nodes = feature_nodes(new, energies)
    predictions = predict(**predict_inputs(results['model'], new_nodes)).get_dict()
    assert [predictions[f'm{i}']['label'] for i in range(6)] == [1, 1, 1, 0, 0, 0]
    assert all(0.0 <= p['probability'] <= 1.0 for p in predictions.values())


@pytest.mark.parametrize(
    ('case', 'status'),
    [('empty', 201), ('missing_label', 202), ('mismatched_lengths', 203), ('single_class', 204), ('kinds', 203)],
)
def test_workchain_invalid_inputs(case, status):
    from aiida_sorep.workflows.training import TrainingWorkChain

    X, y, energies = synthetic(n_pos=4, n_neg=4, n_points=6)
    features = feature_nodes(X, energies)
    labels = label_nodes(y)
    if case == 'empty':
        features, labels = {}, {}
    elif case == 'missing_label':
        labels.pop('m0')
    elif case == 'mismatched_lengths':
        features['m0'] = SorepFeaturesData(features=np.ones(7), energies=np.arange(7.0), parameters={'kind': 'vbm'})
    elif case == 'single_class':
        labels = label_nodes(np.zeros(8, dtype=int))
    elif case == 'kinds':
        features['m0'] = SorepFeaturesData(features=X[0], energies=energies, parameters={'kind': 'cbm'})
    _, node = run_get_node(TrainingWorkChain, features=features, labels=labels, parameters=orm.Dict(PARAMETERS))
    assert node.exit_status == status, node.exit_message


def test_workchain_with_code_runs_the_calcjob(python_code):
    from aiida_sorep.calculations.training import TrainingCalculation
    from aiida_sorep.workflows.training import TrainingWorkChain

    X, y, energies = synthetic(n_pos=6, n_neg=10, n_points=8)
    parameters = {**PARAMETERS, 'n_splits': 1, 'param_grid': {'max_depth': [None]}}
    results, node = run_get_node(
        TrainingWorkChain,
        features=feature_nodes(X, energies),
        labels=label_nodes(y),
        parameters=orm.Dict(parameters),
        code=python_code,
    )
    assert node.is_finished_ok, node.exit_message
    children = [c for c in node.called if c.process_class is TrainingCalculation]
    assert len(children) == 1
    assert results['model'].creator.pk == children[0].pk
