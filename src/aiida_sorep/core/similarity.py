"""Similarity and uniqueness of structures from their SOREP feature vectors.

* cosine distance matrix :math:`d_{ij} = 1 - f_i\\cdot f_j / (|f_i||f_j|)`;
* DBSCAN with ``min_samples=1`` on the precomputed distances (equivalent to single-linkage clustering cut at
  ``eps``: every structure belongs to a cluster, two structures closer than ``eps`` share one);
* an eps scan (number of clusters vs eps) and the sorted k-nearest-neighbour distance curve with its elbow,
  to choose eps;
* pymatgen ``StructureMatcher`` grouping and the adjusted Rand index to compare both partitions.

This module does not import ``aiida``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = (
    'EpsScan',
    'adjusted_rand_index',
    'cosine_distance_matrix',
    'dbscan_labels',
    'eps_scan',
    'knee_point',
    'knn_distance_curve',
    'largest_gap',
    'merge_heights',
    'plot_distance_matrix',
    'plot_eps_scan',
    'plot_knn_curve',
    'structure_matcher_labels',
)


def cosine_distance_matrix(features: Any) -> np.ndarray:
    """Cosine distances between the rows of ``features`` (n_samples, n_features); returns (n_samples, n_samples).

    The diagonal is exactly 0 and the matrix exactly symmetric; values are clipped to [0, 2].
    """
    x = np.asarray(features, dtype=float)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f'features must be a 2D array (n_samples, n_features), got shape {x.shape}')
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0) or not np.all(np.isfinite(x)):
        bad = np.nonzero((norms == 0) | ~np.all(np.isfinite(x), axis=1))[0].tolist()
        raise ValueError(f'rows {bad} are zero or not finite: widen the energy window or check the spectra')
    unit = x / norms[:, None]
    distances = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    distances = 0.5 * (distances + distances.T)
    np.fill_diagonal(distances, 0.0)
    return distances


def _check_square(distances: Any) -> np.ndarray:
    d = np.asarray(distances, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f'expected a square distance matrix, got shape {d.shape}')
    return d


def dbscan_labels(distances: Any, eps: float) -> np.ndarray:
    """DBSCAN (``min_samples=1``, precomputed metric) cluster labels 0..n_clusters-1, shape (n_samples,)."""
    from sklearn.cluster import DBSCAN

    if not eps > 0:
        raise ValueError(f'eps must be positive, got {eps}')
    return DBSCAN(eps=eps, min_samples=1, metric='precomputed').fit(_check_square(distances)).labels_


@dataclass(frozen=True)
class EpsScan:
    """Number of DBSCAN clusters for each eps; ``eps`` and ``n_clusters`` have shape (n_eps,)."""

    eps: np.ndarray
    n_clusters: np.ndarray

    def range_for(self, n_clusters: int) -> tuple[float, float] | None:
        """Smallest and largest scanned eps giving ``n_clusters`` clusters, or None if never reached."""
        hits = self.eps[self.n_clusters == n_clusters]
        return (float(hits.min()), float(hits.max())) if hits.size else None


def eps_scan(distances: Any, eps_values: Sequence[float] | np.ndarray | None = None) -> EpsScan:
    """DBSCAN cluster count over ``eps_values`` (default: 200 log-spaced values between 1e-5 and 1).

    With ``min_samples=1`` DBSCAN clusters are the connected components of the graph ``d_ij <= eps``, i.e. the
    single-linkage dendrogram cut at ``eps``: the count is ``1 + #(merge heights > eps)``, computed for all eps
    at once instead of running DBSCAN per value (``dbscan_labels`` gives the same partition at any eps).
    """
    d = _check_square(distances)
    eps = np.geomspace(1e-5, 1.0, 200) if eps_values is None else np.asarray(eps_values, dtype=float)
    heights = merge_heights(d)
    counts = 1 + heights.size - np.searchsorted(heights, eps, side='right')
    return EpsScan(eps=eps, n_clusters=counts)


def merge_heights(distances: Any) -> np.ndarray:
    """Sorted single-linkage merge distances, shape (n_samples - 1,).

    DBSCAN with ``min_samples=1`` at ``eps`` gives ``1 + #(heights > eps)`` clusters, so a large ratio between
    consecutive heights is a wide, stable eps plateau (see :func:`largest_gap`).
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    d = _check_square(distances)
    if d.shape[0] < 2:
        return np.zeros(0)
    return np.sort(linkage(squareform(d, checks=False), method='single')[:, 2])


def largest_gap(values: Any, floor: float = 1e-9) -> tuple[int, float, float]:
    """Largest ratio between consecutive sorted ``values``, among those that start at or above ``floor``.

    Values below ``floor`` (identical structures, e.g. a cell and its supercell, give ~1e-16) are treated as
    zero and cannot start a gap, otherwise the step from numerical noise to the first real distance would win.

    :return: ``(index, low, high)`` with ``low = values[index]`` and ``high = values[index + 1]`` (sorted); when
        ``values`` are :func:`merge_heights`, any eps in ``[low, high)`` gives the same DBSCAN partition, with
        ``n_samples - 1 - index`` clusters, and ``sqrt(low * high)`` is the log-middle of that plateau.
    """
    v = np.sort(np.asarray(values, dtype=float))
    candidates = np.nonzero(v[:-1] >= floor)[0]
    if candidates.size == 0:
        raise ValueError(f'need at least two values, one of them >= floor={floor}, to find a gap')
    ratios = v[candidates + 1] / v[candidates]
    index = int(candidates[np.argmax(ratios)])
    return index, float(v[index]), float(v[index + 1])


def knn_distance_curve(distances: Any, k: int = 1) -> np.ndarray:
    """Distance of every sample to its ``k``-th nearest neighbour, sorted ascending, shape (n_samples,)."""
    d = _check_square(distances)
    if not 1 <= k < d.shape[0]:
        raise ValueError(f'k must be between 1 and n_samples - 1 = {d.shape[0] - 1}, got {k}')
    return np.sort(np.sort(d, axis=1)[:, k])


def knee_point(curve: Any) -> int:
    """Index of the elbow of an increasing curve: the point farthest below the chord joining its ends."""
    y = np.asarray(curve, dtype=float)
    if y.size < 3:
        raise ValueError('the curve needs at least 3 points to have an elbow')
    x = np.linspace(0.0, 1.0, y.size)
    span = y[-1] - y[0]
    yn = (y - y[0]) / span if span > 0 else np.zeros_like(y)
    return int(np.argmax(x - yn))


def structure_matcher_labels(structures: Sequence[Any], **matcher_kwargs: Any) -> np.ndarray:
    """Group labels from pymatgen's ``StructureMatcher`` (default tolerances unless given), shape (n_samples,)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(**matcher_kwargs)
    indexed = [structure.copy() for structure in structures]
    for index, structure in enumerate(indexed):
        structure.properties = {**(structure.properties or {}), '_sorep_index': index}
    labels = np.full(len(indexed), -1, dtype=int)
    for group_index, group in enumerate(matcher.group_structures(indexed)):
        for structure in group:
            labels[structure.properties['_sorep_index']] = group_index
    return labels


def adjusted_rand_index(labels_a: Any, labels_b: Any) -> float:
    """Adjusted Rand index between two partitions (1 = identical up to relabelling)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(labels_a), np.asarray(labels_b)))


def plot_distance_matrix(distances: Any, labels: Any, ax: Any = None, names: Sequence[str] | None = None) -> Any:
    """Heat map of the distance matrix with samples sorted by cluster label; returns the axes."""
    import matplotlib.pyplot as plt

    d = _check_square(distances)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind='stable')
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.2))
    image = ax.imshow(d[np.ix_(order, order)], cmap='viridis', interpolation='nearest')
    ax.figure.colorbar(image, ax=ax, label='cosine distance')
    boundaries = np.nonzero(np.diff(labels[order]))[0] + 0.5
    for b in boundaries:
        ax.axhline(b, color='w', lw=0.8)
        ax.axvline(b, color='w', lw=0.8)
    if names is not None:
        ax.set_yticks(range(len(order)), [names[i] for i in order], fontsize=6)
        ax.set_xticks([])
    ax.set_title('distance matrix, sorted by cluster')
    return ax


def plot_knn_curve(
    curve: Any, ax: Any = None, k: int = 1, heights: Any = None, band: tuple[float, float] | None = None
) -> Any:
    """Sorted k-NN distance curve with its elbow, optionally the sorted merge heights and an eps band."""
    import matplotlib.pyplot as plt

    y = np.asarray(curve, dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(range(y.size), y, '.-', label=f'distance to neighbour #{k}')
    knee = knee_point(y)
    ax.axhline(y[knee], color='C3', ls='--', lw=0.8, label=f'elbow (chord): {y[knee]:.2e}')
    if heights is not None:
        h = np.asarray(heights, dtype=float)
        ax.plot(range(h.size), h, 's-', ms=3, color='C1', label='single-linkage merge heights')
    if band is not None:
        ax.axhspan(*band, color='C2', alpha=0.2, label=f'eps band [{band[0]:.1e}, {band[1]:.1e}]')
    ax.set_yscale('symlog', linthresh=1e-7)
    ax.set_xlabel('sorted index')
    ax.set_ylabel('cosine distance')
    ax.legend(fontsize=7)
    return ax


def plot_eps_scan(scan: EpsScan, ax: Any = None, chosen_eps: float | None = None) -> Any:
    """Number of clusters vs eps (log axis); returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    ax.step(scan.eps, scan.n_clusters, where='post')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('DBSCAN eps (cosine distance)')
    ax.set_ylabel('number of clusters')
    if chosen_eps is not None:
        ax.axvline(chosen_eps, color='C3', ls='--', label=f'eps = {chosen_eps:.2e}')
        ax.legend()
    return ax
