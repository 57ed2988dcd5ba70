"""Training and evaluating a screening classifier on SOREP feature vectors (pure numpy / scikit-learn).

The model is imbalanced-learn's :class:`~imblearn.ensemble.BalancedRandomForestClassifier` with the settings of
Zadoks, Marrazzo & Marzari, npj Comput. Mater. (2024) (500 trees, ``class_weight='balanced_subsample'``,
``sampling_strategy=0.5``, ``replacement=True``, ``bootstrap=True``, ``ccp_alpha=0``), tuned by a k-fold (k=5)
:class:`~sklearn.model_selection.GridSearchCV` on the balanced accuracy, and evaluated on repeated, seeded,
stratified train/test splits.

Conventions:

* ``features``: shape ``(n_samples, n_points)``, one SOREP feature vector per material, all on the same energy
  grid ``energies`` (shape ``(n_points,)``, eV);
* ``labels``: shape ``(n_samples,)``, ``1`` (or ``True``) for a positive (e.g. a transparent-conductor candidate
  according to the reference calculation), ``0`` for a negative;
* every random choice takes an explicit ``random_state`` (an ``int``); the same seed gives the same splits,
  the same models and the same metrics.

Screening speed-up
------------------

The cost model (see ``docs/training.md``): screening a database of ``N`` materials by running the expensive
reference calculation (cost ``t_ref`` each) on all of them costs ``N t_ref``. With the model one runs the cheap
single-shot calculation (cost ``t_ss = r t_ref``) on all ``N``, the reference on the ``n_train`` training
materials and on the ``n_pp = TP + FP`` materials the model predicts positive among the other ``n_test``::

    speedup          = N t_ref / (N t_ss + (n_train + TP + FP) t_ref) = N / (r N + n_train + TP + FP)
    speedup_screened = n_test / (r n_test + TP + FP)        (the same, for the screened part only; the limit
                                                            for a database much larger than the training set)
    enrichment       = precision / prevalence = (TP / (TP + FP)) / ((TP + FN) / n_test)
                                                           (candidates found per reference calculation,
                                                            relative to picking materials at random)

with ``N = n_train + n_test`` and the counts measured on the held-out test set. ``r`` is
``cost_ratio`` (default ``0``: the single-shot cost neglected). These are the formulas implemented by
:func:`confusion_metrics`; see ``docs/training.md`` for how they relate to Eq. 17 of the paper.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import pathlib
import platform
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = (
    'DEFAULT_PARAM_GRID',
    'MODEL_TRUSTED_TYPES',
    'PAPER_FOREST_SETTINGS',
    'ConfusionMetrics',
    'Prediction',
    'SplitResult',
    'TrainingResult',
    'check_splits_trainable',
    'confusion_metrics',
    'effective_sampling_strategy',
    'library_versions',
    'load_model',
    'make_classifier',
    'predict',
    'run_from_files',
    'save_model',
    'stack_features',
    'stratified_splits',
    'summarize',
    'train_screening_model',
    'validate_dataset',
)

#: Settings of the balanced random forest in the paper (fixed, not tuned).
PAPER_FOREST_SETTINGS: dict[str, Any] = {
    'n_estimators': 500,
    'class_weight': 'balanced_subsample',
    'sampling_strategy': 0.5,
    'replacement': True,
    'bootstrap': True,
    'ccp_alpha': 0.0,
}

#: Default hyper-parameter grid explored by the k-fold grid search (8 combinations).
DEFAULT_PARAM_GRID: dict[str, list[Any]] = {
    'max_depth': [None, 10],
    'min_samples_leaf': [1, 3],
    'max_features': ['sqrt', 0.3],
}

#: Default number of folds of the grid search (the paper: k=5).
DEFAULT_CV_FOLDS = 5

#: The only non-builtin types a stored model may contain; :func:`load_model` refuses anything else.
MODEL_TRUSTED_TYPES: tuple[str, ...] = (
    'imblearn.ensemble._forest.BalancedRandomForestClassifier',
    'imblearn.pipeline.Pipeline',
    'imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler',
    'sklearn.tree._classes.DecisionTreeClassifier',
    'sklearn.tree._tree.Tree',
)

#: Metrics of one split, in the order of :class:`ConfusionMetrics`.
METRIC_NAMES: tuple[str, ...] = (
    'tn',
    'fp',
    'fn',
    'tp',
    'tpr',
    'tnr',
    'fpr',
    'fnr',
    'precision',
    'balanced_accuracy',
    'fraction_found',
    'speedup',
    'speedup_screened',
    'enrichment',
)


# ---------------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------------


def stack_features(
    features: Sequence[ArrayLike], energies: Sequence[ArrayLike] | None = None, *, atol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack per-material feature vectors into a matrix, checking that they share length and energy grid.

    :param features: ``n_samples`` arrays of shape ``(n_points,)``.
    :param energies: optional ``n_samples`` energy grids (eV) of shape ``(n_points,)``; they must all be equal.
    :param atol: absolute tolerance (eV) when comparing energy grids.
    :returns: ``(X, grid)`` with ``X`` of shape ``(n_samples, n_points)`` and ``grid`` of shape ``(n_points,)``
        (``None`` if no energies were given).
    :raises ValueError: if there are no features, if lengths differ or if the energy grids differ.
    """
    if len(features) == 0:
        raise ValueError('no feature vectors given: the training set is empty (check the Group / node list)')
    arrays = [np.asarray(f, dtype=float).ravel() for f in features]
    lengths = {a.size for a in arrays}
    if len(lengths) != 1:
        first = arrays[0].size
        bad = next(i for i, a in enumerate(arrays) if a.size != first)
        raise ValueError(
            f'feature vectors have different lengths {sorted(lengths)} (entry 0 has {first} points, entry {bad} has '
            f'{arrays[bad].size}): compute all features with the same parameterization and number of points'
        )
    X = np.vstack(arrays)
    grid = None
    if energies is not None:
        if len(energies) != len(arrays):
            raise ValueError(f'got {len(arrays)} feature vectors but {len(energies)} energy grids')
        grids = [np.asarray(e, dtype=float).ravel() for e in energies]
        grid = grids[0]
        for i, other in enumerate(grids):
            if other.shape != grid.shape or not np.allclose(other, grid, rtol=0.0, atol=atol):
                raise ValueError(
                    f'energy grid of entry {i} differs from that of entry 0: all feature vectors must be sampled on '
                    'the same energy grid (same window, number of points and reference energy kind)'
                )
    return X, grid


def validate_dataset(
    features: ArrayLike, labels: ArrayLike, energies: ArrayLike | None = None, *, min_per_class: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check and convert a labelled data set.

    :param features: shape ``(n_samples, n_points)``.
    :param labels: shape ``(n_samples,)``, booleans or integers 0/1.
    :param energies: optional energy grid (eV), shape ``(n_points,)``.
    :param min_per_class: minimum number of samples of each class.
    :returns: ``(X, y, energies)`` as float, int and float arrays.
    :raises ValueError: empty set, wrong shapes, NaN/inf, labels other than 0/1, or a single class.
    """
    X = np.asarray(features, dtype=float)
    y_raw = np.asarray(labels)
    if X.size == 0 or y_raw.size == 0:
        raise ValueError('the training set is empty: give at least one feature vector per class')
    if X.ndim != 2:
        raise ValueError(f'features must have shape (n_samples, n_points), got {X.shape}')
    if y_raw.ndim != 1 or y_raw.shape[0] != X.shape[0]:
        raise ValueError(f'got {X.shape[0]} feature vectors but labels of shape {y_raw.shape}: give one label each')
    if not np.all(np.isfinite(X)):
        raise ValueError('features contain NaN or inf: recompute the feature vectors')
    values = set(np.unique(y_raw).tolist())
    if not values <= {0, 1}:  # True == 1 and False == 0
        raise ValueError(f'labels must be 0/1 or booleans, got the values {sorted(values, key=str)}')
    y = y_raw.astype(int)
    counts = np.bincount(y, minlength=2)
    if np.count_nonzero(counts) < 2:
        only = int(np.flatnonzero(counts)[0])
        raise ValueError(
            f'the training set has a single class (all {counts[only]} labels are {only}): a classifier needs '
            'positives and negatives; add labelled materials of the other class'
        )
    if counts.min() < min_per_class:
        raise ValueError(
            f'need at least {min_per_class} samples of each class, got {counts[0]} negatives and {counts[1]} '
            'positives: label more materials'
        )
    grid = None
    if energies is not None:
        grid = np.asarray(energies, dtype=float)
        if grid.shape != (X.shape[1],):
            raise ValueError(f'energy grid has shape {grid.shape} but the features have {X.shape[1]} points')
    return X, y, grid


# ---------------------------------------------------------------------------------------------------------------------
# Model, splits, metrics
# ---------------------------------------------------------------------------------------------------------------------


def make_classifier(random_state: int, *, n_jobs: int = 1, **overrides: Any) -> Any:
    """Return an unfitted ``BalancedRandomForestClassifier`` with :data:`PAPER_FOREST_SETTINGS`.

    :param random_state: seed of the forest.
    :param n_jobs: number of processes (keep 1 on a shared machine).
    :param overrides: settings that replace the paper's (e.g. ``n_estimators=50`` in tests).
    """
    from imblearn.ensemble import BalancedRandomForestClassifier

    settings = {**PAPER_FOREST_SETTINGS, **overrides}
    return BalancedRandomForestClassifier(random_state=random_state, n_jobs=n_jobs, **settings)


def stratified_splits(
    labels: ArrayLike, *, test_size: float, n_splits: int, random_state: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return ``n_splits`` seeded, stratified ``(train_indices, test_indices)`` pairs (sorted integer arrays).

    :param labels: shape ``(n_samples,)``.
    :param test_size: fraction of the samples in each test set, in ``(0, 1)``.
    :raises ValueError: for a test size outside ``(0, 1)``, ``n_splits < 1`` or a class too small to split.
    """
    from sklearn.model_selection import StratifiedShuffleSplit

    y = np.asarray(labels).astype(int)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f'test_size must be in (0, 1), got {test_size}')
    if n_splits < 1:
        raise ValueError(f'n_splits must be >= 1 to split, got {n_splits}')
    counts = np.bincount(y, minlength=2)
    n_test = math.ceil(test_size * y.size)
    if n_test < 2 or y.size - n_test < 2:
        raise ValueError(
            f'test_size={test_size} on {y.size} samples gives {n_test} test and {y.size - n_test} training samples: '
            'each needs at least 2 (one per class)'
        )
    if counts.min() < 2:
        raise ValueError(
            f'each class needs at least 2 samples to be split, got {counts.tolist()} (negatives, positives)'
        )
    splitter = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=random_state)
    return [(np.sort(train), np.sort(test)) for train, test in splitter.split(np.zeros(y.size), y)]


def check_splits_trainable(splits: Sequence[tuple[np.ndarray, np.ndarray]], labels: ArrayLike) -> None:
    """Check that every training part has at least 2 samples of each class (needed by the k-fold grid search).

    :raises ValueError: naming the split and the counts, with the fix.
    """
    y = np.asarray(labels).astype(int)
    for index, (train, _) in enumerate(splits):
        counts = np.bincount(y[train], minlength=2)
        if counts.min() < 2:
            raise ValueError(
                f'split {index}: the training part has {counts[0]} negatives and {counts[1]} positives; the grid '
                'search needs at least 2 of each: label more materials of the rare class or lower test_size'
            )


@dataclasses.dataclass(frozen=True)
class ConfusionMetrics:
    """Confusion-matrix counts, rates and screening figures on one test set (positive class = 1).

    ``fraction_found`` equals ``tpr`` (the fraction of the candidates in the test set that the model finds).
    Figures that are undefined (e.g. ``precision`` with no predicted positive) are ``None``, never NaN.
    See the module docstring for ``speedup``, ``speedup_screened`` and ``enrichment``.
    """

    tn: int
    fp: int
    fn: int
    tp: int
    tpr: float | None
    tnr: float | None
    fpr: float | None
    fnr: float | None
    precision: float | None
    balanced_accuracy: float
    fraction_found: float | None
    speedup: float | None
    speedup_screened: float | None
    enrichment: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary."""
        return dataclasses.asdict(self)


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 else None


def confusion_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, *, n_train: int, cost_ratio: float = 0.0
) -> ConfusionMetrics:
    """Confusion matrix, rates, balanced accuracy and screening speed-ups of predictions on a test set.

    :param y_true: shape ``(n_test,)``, reference labels (0/1).
    :param y_pred: shape ``(n_test,)``, predicted labels (0/1).
    :param n_train: number of training materials (their reference calculations count in the cost).
    :param cost_ratio: ``r = t_ss / t_ref``, cost of a single-shot calculation relative to a reference one.
    """
    t = np.asarray(y_true).astype(int)
    p = np.asarray(y_pred).astype(int)
    if t.shape != p.shape or t.ndim != 1 or t.size == 0:
        raise ValueError(f'y_true and y_pred must be non-empty 1D arrays of equal length, got {t.shape}, {p.shape}')
    if cost_ratio < 0:
        raise ValueError(f'cost_ratio must be >= 0, got {cost_ratio}')
    tp = int(np.sum((t == 1) & (p == 1)))
    tn = int(np.sum((t == 0) & (p == 0)))
    fp = int(np.sum((t == 0) & (p == 1)))
    fn = int(np.sum((t == 1) & (p == 0)))
    tpr = _ratio(tp, tp + fn)
    tnr = _ratio(tn, tn + fp)
    rates = [r for r in (tpr, tnr) if r is not None]
    balanced_accuracy = float(np.mean(rates))
    n_test = t.size
    n_total = n_train + n_test
    precision = _ratio(tp, tp + fp)
    prevalence = _ratio(tp + fn, n_test)
    return ConfusionMetrics(
        tn=tn,
        fp=fp,
        fn=fn,
        tp=tp,
        tpr=tpr,
        tnr=tnr,
        fpr=_ratio(fp, fp + tn),
        fnr=_ratio(fn, fn + tp),
        precision=precision,
        balanced_accuracy=balanced_accuracy,
        fraction_found=tpr,
        speedup=_ratio(n_total, cost_ratio * n_total + n_train + tp + fp),
        speedup_screened=_ratio(n_test, cost_ratio * n_test + tp + fp),
        enrichment=(precision / prevalence) if precision is not None and prevalence else None,
    )


def summarize(metrics: Sequence[ConfusionMetrics]) -> dict[str, dict[str, float | int | None]]:
    """Mean and (population) standard deviation over splits of every metric, ignoring undefined (``None``) values.

    :returns: ``{name: {'mean': ..., 'std': ..., 'n': number of splits where it is defined}}``.
    """
    summary: dict[str, dict[str, float | int | None]] = {}
    for name in METRIC_NAMES:
        values = [getattr(m, name) for m in metrics if getattr(m, name) is not None]
        if values:
            summary[name] = {'mean': float(np.mean(values)), 'std': float(np.std(values)), 'n': len(values)}
        else:
            summary[name] = {'mean': None, 'std': None, 'n': 0}
    return summary


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class SplitResult:
    """One train/test split: indices, tuned hyper-parameters, test metrics and MDI importances.

    ``importances`` has shape ``(n_points,)``; ``test_probabilities`` is the predicted probability of the
    positive class, shape ``(n_test,)``.
    """

    index: int
    train_indices: np.ndarray
    test_indices: np.ndarray
    best_params: dict[str, Any]
    cv_folds: int
    cv_score: float
    metrics: ConfusionMetrics
    importances: np.ndarray
    test_predictions: np.ndarray
    test_probabilities: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingResult:
    """All results of :func:`train_screening_model`.

    * ``splits``: one :class:`SplitResult` per repeated split;
    * ``summary``: mean ± std of every metric over the splits (see :func:`summarize`);
    * ``importances_mean``/``importances_std``: mean-decrease-in-impurity importances, shape ``(n_points,)``,
      averaged over the splits' tuned models;
    * ``energies``: the energy grid (eV) of the features, shape ``(n_points,)``, or ``None``;
    * ``model``: the tuned model refitted on all samples (``None`` if ``fit_final=False``);
    * ``final_best_params``: its hyper-parameters;
    * ``settings``: every input that determines the result (seed, sizes, grid, forest settings);
    * ``versions``: library versions.
    """

    splits: tuple[SplitResult, ...]
    summary: dict[str, dict[str, float | int | None]]
    importances_mean: np.ndarray
    importances_std: np.ndarray
    energies: np.ndarray | None
    model: Any
    final_best_params: dict[str, Any] | None
    settings: dict[str, Any]
    versions: dict[str, str]

    def train_indices(self) -> np.ndarray:
        """Training indices of all splits, shape ``(n_splits, n_train)`` (``(0, 0)`` without splits)."""
        return _rows([s.train_indices for s in self.splits], int)

    def test_indices(self) -> np.ndarray:
        """Test indices of all splits, shape ``(n_splits, n_test)`` (``(0, 0)`` without splits)."""
        return _rows([s.test_indices for s in self.splits], int)

    def metrics_dict(self) -> dict[str, Any]:
        """JSON-serialisable metrics: the summary, the per-split metrics and best parameters."""
        return {
            'summary': self.summary,
            'splits': [
                {
                    'index': s.index,
                    'best_params': s.best_params,
                    'cv_folds': s.cv_folds,
                    'cv_balanced_accuracy': s.cv_score,
                    **s.metrics.as_dict(),
                }
                for s in self.splits
            ],
            'final_best_params': self.final_best_params,
        }


def _rows(arrays: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    """Stack equal-length 1D arrays as rows; an empty list gives shape ``(0, 0)``."""
    return np.vstack(arrays).astype(dtype) if len(arrays) else np.zeros((0, 0), dtype=dtype)


def _grid_search(
    X: np.ndarray,
    y: np.ndarray,
    *,
    param_grid: Mapping[str, Sequence[Any]],
    cv_folds: int,
    random_state: int,
    n_jobs: int,
    forest_settings: Mapping[str, Any],
) -> tuple[Any, dict[str, Any], int, float]:
    """Tune the forest by stratified k-fold grid search on the balanced accuracy and refit on ``(X, y)``.

    ``k`` is reduced to the size of the smallest class when that is smaller than ``cv_folds`` (but at least 2).
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    smallest = int(np.bincount(y, minlength=2).min())
    folds = min(cv_folds, smallest)
    if folds < 2:
        raise ValueError(
            f'the training part has only {smallest} sample(s) of one class: a {cv_folds}-fold grid search needs at '
            'least 2 per class; use a smaller test_size or label more materials'
        )
    cv = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state).split(X, y))
    settings = dict(forest_settings)
    settings['sampling_strategy'] = effective_sampling_strategy(
        [y] + [y[train] for train, _ in cv],
        settings.get('sampling_strategy', PAPER_FOREST_SETTINGS['sampling_strategy']),
    )
    estimator = make_classifier(random_state, n_jobs=1, **settings)
    search = GridSearchCV(
        estimator,
        param_grid={k: list(v) for k, v in param_grid.items()},
        scoring='balanced_accuracy',
        cv=cv,
        n_jobs=n_jobs,
        refit=True,
        error_score='raise',
    )
    with warnings.catch_warnings():
        # The forest warns about future defaults even when they are set explicitly: keep logs readable.
        warnings.simplefilter('ignore', category=FutureWarning)
        search.fit(X, y)
    best_params = {k: _jsonable(v) for k, v in search.best_params_.items()}
    best_params['sampling_strategy'] = _jsonable(settings['sampling_strategy'])
    return search.best_estimator_, best_params, folds, float(search.best_score_)


def effective_sampling_strategy(label_sets: Sequence[np.ndarray], requested: Any) -> Any:
    """Sampling strategy of the under-sampler that every training set in ``label_sets`` can satisfy.

    A float strategy ``s`` asks for ``n_minority / n_majority = s`` after under-sampling the majority class; when a
    training set is already more balanced than that (ratio ``> s``, common for the small, hand-picked sets of a demo
    but not for a database screening where positives are a few percent), imbalanced-learn refuses. The strategy is
    then raised to the largest ratio found (the majority class is kept whole in the most balanced set), so the
    paper's ``s=0.5`` is used unchanged whenever it is feasible. Non-float strategies are returned as they are.
    """
    if not isinstance(requested, float | int) or isinstance(requested, bool):
        return requested
    ratios = []
    for labels in label_sets:
        counts = np.bincount(np.asarray(labels).astype(int), minlength=2)
        ratios.append(counts.min() / counts.max())
    worst = float(max(ratios))
    return float(requested) if worst <= requested else worst


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def train_screening_model(
    features: ArrayLike,
    labels: ArrayLike,
    energies: ArrayLike | None = None,
    *,
    random_state: int,
    test_size: float = 0.2,
    n_splits: int = 5,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    cv_folds: int = DEFAULT_CV_FOLDS,
    forest_settings: Mapping[str, Any] | None = None,
    cost_ratio: float = 0.0,
    fit_final: bool = True,
    n_jobs: int = 1,
) -> TrainingResult:
    """Tune, train and evaluate a balanced random forest on repeated seeded stratified splits.

    For each of ``n_splits`` stratified splits (test fraction ``test_size``) a ``cv_folds``-fold grid search over
    ``param_grid`` tunes the forest on the training part; the tuned model is evaluated on the test part
    (:func:`confusion_metrics`) and its mean-decrease-in-impurity importances recorded. With ``fit_final`` a last
    grid search on all samples gives the model to screen new materials with.

    :param features: shape ``(n_samples, n_points)``.
    :param labels: shape ``(n_samples,)``, 0/1 or booleans.
    :param energies: energy grid (eV) of the features, shape ``(n_points,)``.
    :param random_state: seed of the splits, the folds and the forests.
    :param n_splits: number of repeated splits; ``0`` trains the final model only (no held-out evaluation, for
        labelled sets too small to split; the metrics are then empty).
    :param param_grid: hyper-parameter grid (default :data:`DEFAULT_PARAM_GRID`).
    :param forest_settings: overrides of :data:`PAPER_FOREST_SETTINGS` (e.g. fewer trees for a quick test).
    :param cost_ratio: single-shot over reference cost ratio for the speed-up (see the module docstring).
    :param n_jobs: processes used by the grid search.
    :raises ValueError: for an invalid data set (see :func:`validate_dataset`) or invalid split settings.
    """
    X, y, grid = validate_dataset(features, labels, energies)
    param_grid = dict(DEFAULT_PARAM_GRID if param_grid is None else param_grid)
    forest_settings = dict(forest_settings or {})
    unknown = set(forest_settings) - set(make_classifier(0).get_params())
    if unknown:
        raise ValueError(f'unknown forest settings {sorted(unknown)}')
    if int(random_state) != random_state:
        raise ValueError(f'random_state must be an integer, got {random_state!r}')
    random_state = int(random_state)

    if n_splits == 0:
        # Train only (no held-out evaluation): for labelled sets too small to split, e.g. 2 + 2 materials.
        if not fit_final:
            raise ValueError('n_splits=0 (no evaluation) needs fit_final=True, or there is nothing to do')
        splits = []
    else:
        splits = stratified_splits(y, test_size=test_size, n_splits=n_splits, random_state=random_state)
        check_splits_trainable(splits, y)
    results = []
    for index, (train, test) in enumerate(splits):
        model, best_params, folds, score = _grid_search(
            X[train],
            y[train],
            param_grid=param_grid,
            cv_folds=cv_folds,
            random_state=random_state + index,
            n_jobs=n_jobs,
            forest_settings=forest_settings,
        )
        probabilities = _positive_probability(model, X[test])
        predictions = model.predict(X[test]).astype(int)
        results.append(
            SplitResult(
                index=index,
                train_indices=train,
                test_indices=test,
                best_params=best_params,
                cv_folds=folds,
                cv_score=score,
                metrics=confusion_metrics(y[test], predictions, n_train=train.size, cost_ratio=cost_ratio),
                importances=np.asarray(model.feature_importances_, dtype=float),
                test_predictions=predictions,
                test_probabilities=probabilities,
            )
        )

    final_model = None
    final_params = None
    if fit_final:
        final_model, final_params, _, _ = _grid_search(
            X,
            y,
            param_grid=param_grid,
            cv_folds=cv_folds,
            random_state=random_state,
            n_jobs=n_jobs,
            forest_settings=forest_settings,
        )

    if results:
        importances = np.vstack([r.importances for r in results])
    elif final_model is not None:
        importances = np.array(final_model.feature_importances_, dtype=np.float64)[np.newaxis]
    else:  # unreachable: n_splits=0 requires fit_final
        raise ValueError('nothing was trained: use n_splits >= 1 or fit_final=True')
    settings = {
        'random_state': random_state,
        'test_size': float(test_size),
        'n_splits': int(n_splits),
        'cv_folds': int(cv_folds),
        'param_grid': {k: [_jsonable(v) for v in values] for k, values in param_grid.items()},
        'forest_settings': {**PAPER_FOREST_SETTINGS, **forest_settings},
        'cost_ratio': float(cost_ratio),
        'n_samples': int(y.size),
        'n_positives': int(y.sum()),
        'n_points': int(X.shape[1]),
    }
    return TrainingResult(
        splits=tuple(results),
        summary=summarize([r.metrics for r in results]),
        importances_mean=importances.mean(axis=0),
        importances_std=importances.std(axis=0),
        energies=grid,
        model=final_model,
        final_best_params=final_params,
        settings=settings,
        versions=library_versions(),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------------------------------


def _positive_probability(model: Any, X: np.ndarray) -> np.ndarray:
    proba = model.predict_proba(X)
    classes = list(model.classes_)
    if 1 not in classes:
        return np.zeros(X.shape[0])
    return np.asarray(proba[:, classes.index(1)], dtype=float)


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    """Predicted labels (shape ``(n_samples,)``, 0/1) and probability of the positive class (same shape)."""

    labels: np.ndarray
    probabilities: np.ndarray


def predict(model: Any, features: ArrayLike) -> Prediction:
    """Apply a fitted classifier to feature vectors of shape ``(n_samples, n_points)``.

    :raises ValueError: for empty features or a number of points different from the model's.
    """
    X = np.asarray(features, dtype=float)
    if X.ndim == 1:
        X = X[np.newaxis]
    if X.size == 0 or X.ndim != 2:
        raise ValueError(f'features must have shape (n_samples, n_points) with n_samples >= 1, got {X.shape}')
    expected = getattr(model, 'n_features_in_', X.shape[1])
    if X.shape[1] != expected:
        raise ValueError(
            f'the model was trained on {expected}-point feature vectors, got {X.shape[1]} points: use the same '
            'feature parameterization as for training'
        )
    if not np.all(np.isfinite(X)):
        raise ValueError('features contain NaN or inf')
    return Prediction(labels=model.predict(X).astype(int), probabilities=_positive_probability(model, X))


# ---------------------------------------------------------------------------------------------------------------------
# Serialisation (skops, no pickle) and provenance
# ---------------------------------------------------------------------------------------------------------------------


def save_model(model: Any, path: str | pathlib.Path) -> pathlib.Path:
    """Write a fitted model with skops (no pickle) and check that it contains only :data:`MODEL_TRUSTED_TYPES`.

    :raises ValueError: if the model contains a type outside the trusted list (it could not be reloaded safely).
    """
    import skops.io as sio

    path = pathlib.Path(path)
    sio.dump(model, path)
    untrusted = set(sio.get_untrusted_types(file=path)) - set(MODEL_TRUSTED_TYPES)
    if untrusted:
        path.unlink()
        raise ValueError(f'the model contains types outside MODEL_TRUSTED_TYPES: {sorted(untrusted)}')
    return path


def load_model(source: str | pathlib.Path | bytes, trusted: Sequence[str] = MODEL_TRUSTED_TYPES) -> Any:
    """Load a model written by :func:`save_model` (a path or the file's bytes), trusting only the listed types.

    No pickle is involved: skops rebuilds the objects from a JSON schema and numpy arrays.

    :raises ValueError: if the file holds other types than ``trusted`` (skops refuses to load them).
    """
    import skops.io as sio

    if isinstance(source, bytes):
        untrusted = set(sio.get_untrusted_types(data=source)) - set(trusted)
        where = 'the model bytes'
    else:
        source = pathlib.Path(source)
        untrusted = set(sio.get_untrusted_types(file=source)) - set(trusted)
        where = str(source)
    if untrusted:
        raise ValueError(f'refusing to load {where}: it contains untrusted types {sorted(untrusted)}')
    if isinstance(source, bytes):
        return sio.loads(source, trusted=list(trusted))
    return sio.load(source, trusted=list(trusted))


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that determine a trained model."""
    versions = {'python': platform.python_version()}
    for name in ('numpy', 'scipy', 'scikit-learn', 'imbalanced-learn', 'skops', 'aiida-sorep'):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    return versions


# ---------------------------------------------------------------------------------------------------------------------
# File interface (used by the ``sorep.training`` CalcJob through ``python -m aiida_sorep.training_runner``)
# ---------------------------------------------------------------------------------------------------------------------

#: File names of the file interface.
INPUT_ARRAYS = 'training_inputs.npz'
INPUT_PARAMETERS = 'training_parameters.json'
OUTPUT_MODEL = 'model.skops'
OUTPUT_RESULTS = 'training_results.json'
OUTPUT_ARRAYS = 'training_arrays.npz'
OUTPUT_ERROR = 'training_error.txt'

#: Keys of the parameters file accepted by :func:`run_from_files` (all passed to :func:`train_screening_model`).
RUN_PARAMETERS = (
    'random_state',
    'test_size',
    'n_splits',
    'param_grid',
    'cv_folds',
    'forest_settings',
    'cost_ratio',
    'fit_final',
    'n_jobs',
)


def write_inputs(
    directory: str | pathlib.Path,
    features: ArrayLike,
    labels: ArrayLike,
    energies: ArrayLike | None,
    parameters: Mapping[str, Any],
) -> None:
    """Write the input files of :func:`run_from_files` into ``directory``."""
    directory = pathlib.Path(directory)
    unknown = set(parameters) - set(RUN_PARAMETERS)
    if unknown:
        raise ValueError(f'unknown training parameters {sorted(unknown)}; allowed: {list(RUN_PARAMETERS)}')
    arrays = {'features': np.asarray(features, dtype=float), 'labels': np.asarray(labels).astype(int)}
    if energies is not None:
        arrays['energies'] = np.asarray(energies, dtype=float)
    np.savez(directory / INPUT_ARRAYS, **arrays)  # type: ignore[arg-type]
    (directory / INPUT_PARAMETERS).write_text(json.dumps(dict(parameters), indent=2, sort_keys=True))


def write_outputs(directory: str | pathlib.Path, result: TrainingResult) -> None:
    """Write a :class:`TrainingResult` as ``model.skops``, ``training_results.json`` and ``training_arrays.npz``."""
    directory = pathlib.Path(directory)
    if result.model is not None:
        save_model(result.model, directory / OUTPUT_MODEL)
    payload = {'metrics': result.metrics_dict(), 'settings': result.settings, 'versions': result.versions}
    (directory / OUTPUT_RESULTS).write_text(json.dumps(payload, indent=2, sort_keys=True))
    arrays = {
        'importances_mean': result.importances_mean,
        'importances_std': result.importances_std,
        'importances_splits': _rows([s.importances for s in result.splits], float),
        'train_indices': result.train_indices(),
        'test_indices': result.test_indices(),
        'test_predictions': _rows([s.test_predictions for s in result.splits], int),
        'test_probabilities': _rows([s.test_probabilities for s in result.splits], float),
    }
    if result.energies is not None:
        arrays['energies'] = result.energies
    np.savez(directory / OUTPUT_ARRAYS, **arrays)  # type: ignore[arg-type]


def run_from_files(directory: str | pathlib.Path) -> TrainingResult:
    """Read the input files from ``directory``, train, and write the output files next to them."""
    directory = pathlib.Path(directory)
    with np.load(directory / INPUT_ARRAYS) as data:
        features = data['features']
        labels = data['labels']
        energies = data['energies'] if 'energies' in data.files else None
    parameters = json.loads((directory / INPUT_PARAMETERS).read_text())
    unknown = set(parameters) - set(RUN_PARAMETERS)
    if unknown:
        raise ValueError(f'unknown training parameters {sorted(unknown)}; allowed: {list(RUN_PARAMETERS)}')
    result = train_screening_model(features, labels, energies, **parameters)
    write_outputs(directory, result)
    return result
