"""Tests of the pure training core (no AiiDA profile needed)."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_sorep.core import training as T  # noqa: N812

FAST = {'n_estimators': 15}
GRID = {'max_depth': [None, 4]}


def synthetic(n_pos: int = 12, n_neg: int = 36, n_points: int = 30, seed: int = 0):
    """Separable set: positives have a peak in points 8..12 that negatives lack; noise elsewhere."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    X = rng.normal(1.0, 0.3, (y.size, n_points))
    X[y == 1, 8:13] += 3.0
    return X, y, np.linspace(-3.0, 3.0, n_points)


@pytest.fixture(scope='module')
def trained():
    X, y, energies = synthetic()
    result = T.train_screening_model(
        X, y, energies, random_state=7, test_size=0.25, n_splits=2, param_grid=GRID, forest_settings=FAST
    )
    return X, y, energies, result


def test_separable_set_balanced_accuracy(trained):
    _, y, energies, result = trained
    assert result.summary['balanced_accuracy']['mean'] > 0.9
    assert len(result.splits) == 2
    for split in result.splits:
        m = split.metrics
        assert m.tp + m.fn == int(y[split.test_indices].sum())
        assert m.tn + m.fp == int((1 - y[split.test_indices]).sum())
        assert set(split.train_indices).isdisjoint(split.test_indices)
        assert split.train_indices.size + split.test_indices.size == y.size
    # The informative points carry most of the mean-decrease-in-impurity importance.
    assert result.importances_mean.shape == energies.shape
    assert result.importances_mean[8:13].sum() > 0.5
    assert np.isclose(result.importances_mean.sum(), 1.0)
    assert result.settings['random_state'] == 7
    assert result.versions['imbalanced-learn'] != 'not installed'


def test_same_seed_same_splits_and_metrics(trained):
    X, y, energies, first = trained
    again = T.train_screening_model(
        X, y, energies, random_state=7, test_size=0.25, n_splits=2, param_grid=GRID, forest_settings=FAST
    )
    np.testing.assert_array_equal(first.train_indices(), again.train_indices())
    np.testing.assert_array_equal(first.test_indices(), again.test_indices())
    assert first.metrics_dict() == again.metrics_dict()
    np.testing.assert_array_equal(first.importances_mean, again.importances_mean)
    other = T.stratified_splits(y, test_size=0.25, n_splits=2, random_state=8)
    assert not all(np.array_equal(a[1], b) for a, b in zip(other, first.test_indices(), strict=True))


def test_splits_are_stratified():
    y = np.r_[np.ones(10), np.zeros(30)].astype(int)
    for train, test in T.stratified_splits(y, test_size=0.2, n_splits=4, random_state=0):
        assert y[test].sum() == 2
        assert y[train].sum() == 8


def test_model_roundtrip_without_pickle(trained, tmp_path):
    X, _, _, result = trained
    path = T.save_model(result.model, tmp_path / 'model.skops')
    import zipfile

    with zipfile.ZipFile(path) as archive:  # skops stores a JSON schema + npy arrays, not a pickle
        assert 'schema.json' in archive.namelist()
    reloaded = T.load_model(path)
    np.testing.assert_array_equal(reloaded.predict_proba(X), result.model.predict_proba(X))
    first, second = T.predict(result.model, X), T.predict(reloaded, X)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.probabilities.tobytes() == second.probabilities.tobytes()
    with pytest.raises(ValueError, match='untrusted types'):
        T.load_model(path, trusted=['sklearn.tree._tree.Tree'])


def test_paper_defaults_construction():
    model = T.make_classifier(42)
    params = model.get_params()
    assert params['n_estimators'] == 500
    assert params['class_weight'] == 'balanced_subsample'
    assert params['sampling_strategy'] == 0.5
    assert params['replacement'] is True
    assert params['bootstrap'] is True
    assert params['ccp_alpha'] == 0.0
    assert params['random_state'] == 42
    assert params['n_jobs'] == 1


def test_confusion_metrics_and_speedup():
    y_true = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    m = T.confusion_metrics(y_true, y_pred, n_train=10, cost_ratio=0.0)
    assert (m.tp, m.fn, m.fp, m.tn) == (2, 1, 1, 6)
    assert m.tpr == pytest.approx(2 / 3)
    assert m.tnr == pytest.approx(6 / 7)
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 6 / 7) / 2)
    assert m.speedup == pytest.approx(20 / (10 + 3))
    assert m.speedup_screened == pytest.approx(10 / 3)
    assert m.enrichment == pytest.approx((2 / 3) / (3 / 10))
    with_cost = T.confusion_metrics(y_true, y_pred, n_train=10, cost_ratio=0.1)
    assert with_cost.speedup == pytest.approx(20 / (2 + 10 + 3))
    none = T.confusion_metrics(y_true, np.zeros(10, int), n_train=10)
    assert none.precision is None and none.enrichment is None and none.speedup_screened is None


@pytest.mark.parametrize(
    ('features', 'labels', 'match'),
    [
        (np.zeros((0, 5)), np.zeros(0), 'empty'),
        (np.ones((6, 5)), np.ones(6), 'single class'),
        (np.ones((6, 5)), np.zeros(6), 'single class'),
        (np.ones((6, 5)), np.array([0, 1, 0, 1, 0]), 'one label each'),
        (np.ones((6, 5)), np.array([0, 2, 0, 1, 0, 1]), '0/1'),
        (np.full((6, 5), np.nan), np.array([0, 1, 0, 1, 0, 1]), 'NaN'),
    ],
)
def test_invalid_datasets(features, labels, match):
    with pytest.raises(ValueError, match=match):
        T.train_screening_model(features, labels, random_state=0)


def test_mismatched_feature_lengths_and_grids():
    with pytest.raises(ValueError, match='different lengths'):
        T.stack_features([np.ones(5), np.ones(6)])
    with pytest.raises(ValueError, match='energy grid'):
        T.stack_features([np.ones(3), np.ones(3)], [np.arange(3.0), np.arange(3.0) + 0.5])
    with pytest.raises(ValueError, match='empty'):
        T.stack_features([])
    X, grid = T.stack_features([np.ones(3), np.zeros(3)], [np.arange(3.0), np.arange(3.0)])
    assert X.shape == (2, 3)
    np.testing.assert_array_equal(grid, np.arange(3.0))


def test_predict_checks_length(trained):
    _, _, _, result = trained
    with pytest.raises(ValueError, match='30-point'):
        T.predict(result.model, np.ones((2, 31)))


def test_file_interface(tmp_path):
    X, y, energies = synthetic(n_pos=8, n_neg=16, n_points=10)
    T.write_inputs(
        tmp_path, X, y, energies, {'random_state': 1, 'n_splits': 1, 'forest_settings': FAST, 'param_grid': GRID}
    )
    result = T.run_from_files(tmp_path)
    assert (tmp_path / T.OUTPUT_MODEL).is_file()
    with np.load(tmp_path / T.OUTPUT_ARRAYS) as arrays:
        np.testing.assert_array_equal(arrays['test_indices'], result.test_indices())
        np.testing.assert_array_equal(arrays['energies'], energies)
    with pytest.raises(ValueError, match='unknown training parameters'):
        T.write_inputs(tmp_path, X, y, energies, {'seed': 1})


def test_effective_sampling_strategy():
    rare = np.r_[np.ones(2), np.zeros(20)]
    balanced = np.r_[np.ones(8), np.zeros(10)]
    assert T.effective_sampling_strategy([rare], 0.5) == 0.5
    assert T.effective_sampling_strategy([rare, balanced], 0.5) == pytest.approx(0.8)
    assert T.effective_sampling_strategy([balanced], 'auto') == 'auto'


def test_train_only_without_splits():
    X, y, energies = synthetic(n_pos=2, n_neg=3, n_points=10)
    result = T.train_screening_model(X, y, energies, random_state=0, n_splits=0, forest_settings=FAST, param_grid=GRID)
    assert result.splits == ()
    assert result.summary['balanced_accuracy'] == {'mean': None, 'std': None, 'n': 0}
    assert result.model is not None
    np.testing.assert_array_equal(result.importances_mean, result.model.feature_importances_)
    assert result.train_indices().shape == (0, 0)
    with pytest.raises(ValueError, match='fit_final'):
        T.train_screening_model(X, y, random_state=0, n_splits=0, fit_final=False)


def test_training_part_too_small():
    y = np.r_[np.ones(2), np.zeros(10)].astype(int)
    X = np.random.default_rng(0).normal(size=(12, 4))
    with pytest.raises(ValueError, match='at least 2 of each'):
        T.train_screening_model(X, y, random_state=0, n_splits=2, forest_settings=FAST)
