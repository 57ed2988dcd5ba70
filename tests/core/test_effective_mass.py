"""Tests of the line effective masses (pure numpy, no profile)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from aiida_sorep.core.effective_mass import (
    BOLTZMANN_EV_PER_K,
    HBAR2_OVER_2ME,
    Carrier,
    LineSegment,
    fermi_dirac_log_weights,
    line_effective_masses,
    parabola_second_derivative,
    segments_from_labels,
    segments_from_seekpath,
)


def parabolic_path(mass_e: float, mass_h: float, *, gap: float = 1.0, n: int = 21, k_max: float = 0.3, spacing=None):
    """Two segments G-X (along x) and G-Y (along y) through a parabolic VB (at 0) and CB (at ``gap``).

    Returns ``(kpoints (2n, 3), eigenvalues (1, 2n, 2), segments)``.
    """
    t = np.linspace(0.0, 1.0, n) if spacing is None else spacing
    s = k_max * t
    k1 = np.stack([s[::-1], 0 * s, 0 * s], axis=1)  # X -> G
    k2 = np.stack([0 * s, s, 0 * s], axis=1)  # G -> Y
    k = np.concatenate([k1, k2[1:]])
    k2norm = np.sum(k**2, axis=1)
    vb = HBAR2_OVER_2ME * k2norm / mass_h  # mass_h < 0: downward parabola
    cb = gap + HBAR2_OVER_2ME * k2norm / mass_e
    eigenvalues = np.stack([vb, cb], axis=1)[np.newaxis]
    segments = [LineSegment(0, n - 1, 'X', 'GAMMA'), LineSegment(n - 1, 2 * n - 2, 'GAMMA', 'Y')]
    return k, eigenvalues, segments


def test_parabolic_band_recovered():
    """An exactly parabolic band gives its mass to 1e-3 (here to round-off), holes negative."""
    k, e, segments = parabolic_path(0.27, -0.8)
    result = line_effective_masses(k, e, segments, vbm=0.0, cbm=1.0)
    assert result.electron_mass == pytest.approx(0.27, rel=1e-3)
    assert result.hole_mass == pytest.approx(-0.8, rel=1e-3)
    assert result.hole_mass < 0
    assert result.electron.average_mass == pytest.approx(0.27, rel=1e-3)
    for segment in result.electron.segments + result.hole.segments:
        assert segment.qualifies
    assert [segment.label for segment in result.electron.segments] == ['X-GAMMA', 'GAMMA-Y']
    assert not result.is_metal


def test_parabolic_band_uneven_spacing():
    """Non-uniform k spacing is handled (the three-point parabola is exact for quadratics)."""
    rng = np.random.default_rng(0)
    t = np.sort(np.concatenate([[0.0, 1.0], rng.uniform(0.01, 0.99, 15)]))
    k, e, segments = parabolic_path(0.4, -1.7, n=len(t), spacing=t)
    result = line_effective_masses(k, e, segments, vbm=0.0, cbm=1.0)
    assert result.electron_mass == pytest.approx(0.4, rel=1e-3)
    assert result.hole_mass == pytest.approx(-1.7, rel=1e-3)


def test_two_spins_same_as_one():
    """Duplicating a non-magnetic spectrum into two spin channels does not change the masses."""
    k, e, segments = parabolic_path(0.3, -0.6)
    one = line_effective_masses(k, e, segments, vbm=0.0, cbm=1.0)
    two = line_effective_masses(k, np.concatenate([e, e]), segments, vbm=0.0, cbm=1.0)
    assert two.electron_mass == pytest.approx(one.electron_mass)
    assert two.hole_mass == pytest.approx(one.hole_mass)


def test_anisotropic_overall_is_lightest_qualifying_segment():
    """With different masses along x and y the overall mass is the lightest; holes: max (least negative)."""
    n = 31
    s = np.linspace(0.0, 0.3, n)
    k = np.concatenate([np.stack([s[::-1], 0 * s, 0 * s], axis=1), np.stack([0 * s, s, 0 * s], axis=1)[1:]])
    kx2, ky2 = k[:, 0] ** 2, k[:, 1] ** 2
    cb = 1.0 + HBAR2_OVER_2ME * (kx2 / 0.2 + ky2 / 0.9)
    vb = -HBAR2_OVER_2ME * (kx2 / 3.0 + ky2 / 0.7)
    segments = [LineSegment(0, n - 1, 'X', 'GAMMA'), LineSegment(n - 1, 2 * n - 2, 'GAMMA', 'Y')]
    result = line_effective_masses(k, np.stack([vb, cb], axis=1), segments, vbm=0.0, cbm=1.0)
    assert result.electron_mass == pytest.approx(0.2, rel=1e-3)
    assert result.electron.segment == 'X-GAMMA'
    assert result.hole_mass == pytest.approx(-0.7, rel=1e-3)
    assert result.hole.segment == 'GAMMA-Y'
    # The all-segment average lies between the two directions.
    assert 0.2 < result.electron.average_mass < 0.9


def test_far_segment_does_not_qualify():
    """A light band on a segment far above the CBM does not become the overall mass."""
    n = 21
    s = np.linspace(0.0, 0.3, n)
    k = np.concatenate([np.stack([s, 0 * s, 0 * s], axis=1), np.stack([0.3 + 0 * s, s, 0 * s], axis=1)[1:]])
    cb = np.concatenate(
        [1.0 + HBAR2_OVER_2ME * s**2 / 1.0, 1.0 + HBAR2_OVER_2ME * 0.09 + 0.5 + HBAR2_OVER_2ME * s[1:] ** 2 / 0.1]
    )
    # second segment: far (>= 0.5 eV above the CBM) and light (0.1); make it continuous at the junction
    cb[n - 1] = cb[n] - HBAR2_OVER_2ME * s[1] ** 2 / 0.1
    vb = -HBAR2_OVER_2ME * np.sum(k**2, axis=1) / 1.0
    segments = [LineSegment(0, n - 1, 'GAMMA', 'X'), LineSegment(n - 1, 2 * n - 2, 'X', 'S')]
    result = line_effective_masses(k, np.stack([vb, cb], axis=1), segments, vbm=0.0, cbm=1.0)
    far = result.electron.segments[1]
    assert not far.qualifies
    assert far.edge_distance > 0.5
    assert result.electron.segment == 'GAMMA-X'
    assert result.electron_mass == pytest.approx(1.0, rel=1e-2)


def kane_energy(k: np.ndarray, m0: float, alpha: float) -> np.ndarray:
    """Kane dispersion E(1 + alpha E) = hbar^2 k^2 / (2 m0), E in eV from the band bottom."""
    x = HBAR2_OVER_2ME * k**2 / m0
    return (np.sqrt(1.0 + 4.0 * alpha * x) - 1.0) / (2.0 * alpha)


def test_kane_band_heavier_mass():
    """A Kane band gives the Fermi-Dirac average of its local inverse mass, heavier than the band-edge mass.

    For E(1 + alpha E) = hbar^2 k^2 / 2 m0 the local inverse mass is
    1/m(k) = (1/hbar^2) d2E/dk2 = (1/m0) (1 + 2 alpha E)^-3, so along a line with uniform k sampling
    <1/m> = int dk f(E) (1 + 2 alpha E)^-3 / int dk f(E) / m0, with f(E) = 1/(1 + exp(E/kT)).
    """
    m0, alpha, k_max, temperature = 0.2, 2.0, 0.25, 300.0
    kt = BOLTZMANN_EV_PER_K * temperature

    def weight(kk):
        return 1.0 / (1.0 + np.exp(kane_energy(kk, m0, alpha) / kt))

    numerator = integrate.quad(lambda kk: weight(kk) * (1 + 2 * alpha * kane_energy(kk, m0, alpha)) ** -3, 0, k_max)
    denominator = integrate.quad(weight, 0, k_max)
    expected = m0 * denominator[0] / numerator[0]

    n = 801
    s = np.linspace(0.0, k_max, n)
    k = np.stack([s, 0 * s, 0 * s], axis=1)
    cb = 2.0 + kane_energy(s, m0, alpha)
    vb = -HBAR2_OVER_2ME * s**2 / 1.0
    result = line_effective_masses(k, np.stack([vb, cb], axis=1), [LineSegment(0, n - 1, 'GAMMA', 'X')], 0.0, 2.0)
    assert expected > 1.05 * m0  # non-parabolicity makes the thermal mass heavier
    assert result.electron_mass == pytest.approx(expected, rel=1e-3)
    # The trapezoid-like discrete average over uniform points converges to the integral; also heavier than m0.
    assert result.electron_mass > m0


def test_metal_gives_none():
    """Metals: all masses None (not NaN), no segments."""
    k, e, segments = parabolic_path(0.3, -0.6)
    for vbm, cbm in ((None, None), (1.0, 0.5), (0.2, 0.2)):
        result = line_effective_masses(k, e, segments, vbm=vbm, cbm=cbm)
        assert result.is_metal
        assert result.electron_mass is None
        assert result.hole_mass is None
        assert result.electron.average_mass is None
        assert result.to_dict()['electron']['mass'] is None


def test_too_few_points_rejected():
    """A segment with fewer than three points raises an actionable error."""
    k, e, _ = parabolic_path(0.3, -0.6, n=5)
    with pytest.raises(ValueError, match='at least 3 are needed'):
        line_effective_masses(k, e, [LineSegment(0, 1, 'X', 'GAMMA')], vbm=0.0, cbm=1.0)


def test_repeated_kpoints_rejected():
    k, e, segments = parabolic_path(0.3, -0.6, n=5)
    k[1] = k[2]
    with pytest.raises(ValueError, match='repeated k-points'):
        line_effective_masses(k, e, segments, vbm=0.0, cbm=1.0)


def test_band_crossing_midgap_rejected():
    k, e, segments = parabolic_path(0.3, -0.6)
    with pytest.raises(ValueError, match='crosses mid-gap'):
        line_effective_masses(k, e, segments, vbm=-0.5, cbm=-0.3)


def test_nan_rejected():
    k, e, segments = parabolic_path(0.3, -0.6)
    e[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match='finite'):
        line_effective_masses(k, e, segments, vbm=0.0, cbm=1.0)


def test_second_derivative_exact_for_quadratic_and_shape():
    x = np.array([0.0, 0.1, 0.35, 0.4, 0.9])
    y = np.stack([3 * x**2 - x + 2, -0.5 * x**2])
    d2 = parabola_second_derivative(x, y)
    assert d2.shape == (2, 5)
    np.testing.assert_allclose(d2[0], 6.0, rtol=1e-10)
    np.testing.assert_allclose(d2[1], -1.0, rtol=1e-10)


def test_second_derivative_converges_for_cosine():
    """Second order in the interior for a smooth non-quadratic function."""
    errors = []
    for n in (21, 41):
        x = np.linspace(0, 1, n)
        errors.append(np.max(np.abs(parabola_second_derivative(x, np.cos(x))[1:-1] + np.cos(x[1:-1]))))
    assert errors[1] < errors[0] / 3.5


def test_fermi_dirac_weights_mirror_and_no_overflow():
    energies = np.array([-1e4, -0.1, 0.0, 0.1, 1e4])
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        we = np.exp(fermi_dirac_log_weights(energies, 0.0, Carrier.ELECTRON))
        wh = np.exp(fermi_dirac_log_weights(-energies, 0.0, Carrier.HOLE))
    np.testing.assert_allclose(we, wh)
    assert we[2] == pytest.approx(0.5)
    assert we[0] == pytest.approx(1.0)
    assert we[-1] == 0.0


def test_segments_from_seekpath_and_labels():
    segs = segments_from_seekpath([(0, 11), (10, 14), (14, 26)], [('GAMMA', 'X'), ('X', 'U'), ('K', 'GAMMA')])
    assert [(s.start, s.stop, s.label) for s in segs] == [(0, 10, 'GAMMA-X'), (10, 13, 'X-U'), (14, 25, 'K-GAMMA')]
    labels = [(0, 'GAMMA'), (10, 'X'), (13, 'U'), (14, 'K'), (25, 'GAMMA')]
    from_labels = segments_from_labels(labels, 26)
    assert [(s.start, s.stop, s.label) for s in from_labels] == [(s.start, s.stop, s.label) for s in segs]
    with pytest.raises(ValueError, match='at least two labelled points'):
        segments_from_labels([(0, 'GAMMA')], 5)


@settings(max_examples=40, deadline=None)
@given(
    mass_e=st.floats(0.05, 5.0),
    mass_h=st.floats(-5.0, -0.05),
    shift=st.floats(-20.0, 20.0),
    seed=st.integers(0, 2**16),
)
def test_parabolic_property(mass_e, mass_h, shift, seed):
    """Any parabolic pair of bands, any uneven spacing, any energy shift: masses recovered, holes negative."""
    rng = np.random.default_rng(seed)
    t = np.sort(np.concatenate([[0.0, 1.0], rng.uniform(0.02, 0.98, 9)]))
    if np.min(np.diff(t)) < 1e-3:
        t = np.linspace(0.0, 1.0, 11)
    k, e, segments = parabolic_path(mass_e, mass_h, n=len(t), spacing=t)
    result = line_effective_masses(k, e + shift, segments, vbm=shift, cbm=1.0 + shift)
    assert result.electron_mass == pytest.approx(mass_e, rel=1e-6)
    assert result.hole_mass == pytest.approx(mass_h, rel=1e-6)
    assert result.electron.edge_energy == shift + 1.0
