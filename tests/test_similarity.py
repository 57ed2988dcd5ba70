"""Tests of :mod:`aiida_sorep.core.similarity` and the BaTiO3 polymorph acceptance test (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_sorep.core import similarity
from aiida_sorep.core.kinetic import kinetic_sorep
from aiida_sorep.core.structures import BATIO3_PHASES, batio3, distorted_copy

# StructureMatcher tolerances tight enough to tell the BaTiO3 phases apart (pymatgen's defaults put all four
# in one group) and loose enough for 0.01 Å distortions and a supercell.
MATCHER = {'ltol': 0.005, 'stol': 0.05, 'angle_tol': 0.1, 'scale': False}


def test_cosine_distance_matrix_properties():
    rng = np.random.default_rng(0)
    x = rng.random((6, 20))
    d = similarity.cosine_distance_matrix(np.vstack([x, 3.0 * x[:1]]))
    assert d.shape == (7, 7)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert d[0, 6] == pytest.approx(0.0, abs=1e-14)  # scale invariance
    assert np.all(d >= 0)
    orthogonal = similarity.cosine_distance_matrix([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    np.testing.assert_allclose(orthogonal[0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match='zero or not finite'):
        similarity.cosine_distance_matrix([[1.0, 0.0], [0.0, 0.0]])


def test_dbscan_eps_scan_and_knn_on_synthetic_clusters():
    # three tight groups of points on a line: within-group gaps 1e-4, between-group gaps >= 0.1
    positions = np.array([0.0, 1e-4, 2e-4, 0.1, 0.1 + 1e-4, 0.5])
    d = np.abs(positions[:, None] - positions[None, :])
    labels = similarity.dbscan_labels(d, eps=1e-3)
    assert len(set(labels)) == 3
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4] != labels[5]
    scan = similarity.eps_scan(d, np.geomspace(1e-6, 1.0, 61))
    assert np.all(np.diff(scan.n_clusters) <= 0)  # more eps, fewer clusters
    assert scan.n_clusters[0] == 6
    assert scan.n_clusters[-1] == 1
    low, high = scan.range_for(3)
    assert 1e-4 <= low <= high < 0.1
    assert scan.range_for(5) is None  # equal gaps: 6 clusters jump straight to 3
    for eps, count in zip(scan.eps[::6], scan.n_clusters[::6], strict=True):  # the fast scan is DBSCAN
        assert len(set(similarity.dbscan_labels(d, eps))) == count
    np.testing.assert_allclose(similarity.merge_heights(d), [1e-4, 1e-4, 1e-4, 0.1 - 2e-4, 0.5 - (0.1 + 1e-4)])
    index, gap_low, gap_high = similarity.largest_gap(similarity.merge_heights(d))
    assert (index, gap_low) == (2, pytest.approx(1e-4))
    assert gap_high == pytest.approx(0.1 - 2e-4)
    curve = similarity.knn_distance_curve(d, k=1)
    np.testing.assert_allclose(curve, [1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 0.5 - (0.1 + 1e-4)])
    assert similarity.knee_point(np.array([0.0, 0.01, 0.02, 0.03, 1.0])) == 3
    with pytest.raises(ValueError, match='eps'):
        similarity.dbscan_labels(d, eps=0.0)
    with pytest.raises(ValueError, match='k must be'):
        similarity.knn_distance_curve(d, k=6)


def test_adjusted_rand_index():
    assert similarity.adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0
    assert similarity.adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) < 0.5


@pytest.fixture(scope='module')
def batio3_set():
    """The 4 published polymorphs, 2 copies of each with random distortions < 0.01 Å, and a 2x1x1 supercell."""
    rng = np.random.default_rng(2024)
    structures, truth = [], []
    for index, phase in enumerate(BATIO3_PHASES):
        reference = batio3(phase)
        members = [reference, distorted_copy(reference, 0.01, rng), distorted_copy(reference, 0.01, rng)]
        members.append(reference * (2, 1, 1))
        structures += members
        truth += [index] * len(members)
    features = np.array([kinetic_sorep(s, kspacing=0.5).features for s in structures])
    return structures, np.array(truth), similarity.cosine_distance_matrix(features)


def test_distortions_are_below_one_hundredth_of_an_angstrom(batio3_set):
    structures, _, _ = batio3_set
    for reference_index in range(0, len(structures), 4):
        reference = structures[reference_index]
        for copy in structures[reference_index + 1 : reference_index + 3]:
            moves = np.linalg.norm(copy.cart_coords - reference.cart_coords, axis=1)
            assert 0 < moves.max() < 0.01


def test_batio3_dbscan_recovers_polymorphs_and_matches_structure_matcher(batio3_set):
    structures, truth, d = batio3_set
    same = truth[:, None] == truth[None, :]
    within, between = d[same].max(), d[~same].min()
    assert within < between / 5  # a clear gap between "same polymorph" and "different polymorph"
    eps = float(np.sqrt(within * between))  # log-middle of the gap
    labels = similarity.dbscan_labels(d, eps)
    assert len(set(labels)) == 4
    assert similarity.adjusted_rand_index(labels, truth) == 1.0
    matcher_labels = similarity.structure_matcher_labels(structures, **MATCHER)
    assert similarity.adjusted_rand_index(labels, matcher_labels) == 1.0
    scan = similarity.eps_scan(d)
    low, high = scan.range_for(4)
    assert low <= eps <= high
    assert high / low > 5  # a wide plateau
    # every structure has its nearest neighbour inside its own polymorph group
    curve = similarity.knn_distance_curve(d, k=1)
    assert curve.max() < between


def test_plots_render(batio3_set, tmp_path):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    _, truth, d = batio3_set
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    similarity.plot_distance_matrix(d, truth, ax=axes[0])
    similarity.plot_knn_curve(similarity.knn_distance_curve(d), ax=axes[1])
    similarity.plot_eps_scan(similarity.eps_scan(d), ax=axes[2], chosen_eps=1e-3)
    fig.savefig(tmp_path / 'plots.png')
    plt.close(fig)
    assert (tmp_path / 'plots.png').stat().st_size > 10_000
