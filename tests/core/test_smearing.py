"""Smearing functions: names, limits, normalisation, analytic derivatives, QE's formulas, no overflow warnings."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import quad

from aiida_sorep.core.smearing import Smearing, delta, delta_derivative, occupation, occupation_and_delta

SMOOTH = [Smearing.GAUSSIAN, Smearing.FERMI_DIRAC, Smearing.METHFESSEL_PAXTON, Smearing.COLD]
ALL = [Smearing.FIXED, *SMOOTH]


@pytest.mark.parametrize(
    ('name', 'expected'),
    [
        ('gaussian', Smearing.GAUSSIAN),
        ('gauss', Smearing.GAUSSIAN),
        ('Gaussian', Smearing.GAUSSIAN),
        ('mv', Smearing.COLD),
        ('m-v', Smearing.COLD),
        ('marzari-vanderbilt', Smearing.COLD),
        ('cold', Smearing.COLD),
        ('mp', Smearing.METHFESSEL_PAXTON),
        ('m-p', Smearing.METHFESSEL_PAXTON),
        ('methfessel-paxton', Smearing.METHFESSEL_PAXTON),
        ('fd', Smearing.FERMI_DIRAC),
        ('f-d', Smearing.FERMI_DIRAC),
        ('fermi-dirac', Smearing.FERMI_DIRAC),
        ('fixed', Smearing.FIXED),
        (Smearing.COLD, Smearing.COLD),
    ],
)
def test_from_name_aliases(name, expected):
    assert Smearing.from_name(name) is expected


def test_from_name_unknown_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown smearing 'lorentzian'.*cold.*gauss.*m-p"):
        Smearing.from_name('lorentzian')


@pytest.mark.parametrize('kind', ALL)
def test_limits(kind):
    x = np.array([-np.inf, -1e300, -60.0, 60.0, 1e300, np.inf])
    np.testing.assert_allclose(occupation(x, kind), [0, 0, 0, 1, 1, 1], atol=1e-20)


@pytest.mark.parametrize('kind', ALL)
def test_no_warnings_for_large_arguments(kind):
    x = np.array([-1e308, -1e200, -1e20, -30.0, 0.0, 30.0, 1e20, 1e200, 1e308, -np.inf, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        values = [occupation(x, kind)]
        if kind is not Smearing.FIXED:
            values += [delta(x, kind), delta_derivative(x, kind)]
    for value in values:
        assert np.all(np.isfinite(value))


@pytest.mark.parametrize('kind', SMOOTH)
def test_delta_is_normalised(kind):
    integral, _ = quad(lambda x: float(delta(x, kind)), -60, 60, points=[0.0], limit=200)
    assert integral == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize('kind', SMOOTH)
def test_delta_derivative_integrates_to_zero(kind):
    integral, _ = quad(lambda x: float(delta_derivative(x, kind)), -60, 60, points=[0.0], limit=200)
    assert integral == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize('kind', SMOOTH)
def test_analytic_derivatives_match_finite_differences(kind):
    x = np.linspace(-6, 6, 241)
    h = 1e-5
    fd_delta = (occupation(x + h, kind) - occupation(x - h, kind)) / (2 * h)
    fd_derivative = (delta(x + h, kind) - delta(x - h, kind)) / (2 * h)
    np.testing.assert_allclose(delta(x, kind), fd_delta, atol=1e-9)
    np.testing.assert_allclose(delta_derivative(x, kind), fd_derivative, atol=1e-9)


def test_fixed_is_a_step():
    np.testing.assert_array_equal(occupation([-1e-12, 0.0, 1e-12], 'fixed'), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match='finite-width smearing'):
        delta(0.0, 'fixed')
    with pytest.raises(ValueError, match='finite-width smearing'):
        delta_derivative(0.0, 'fixed')


@pytest.mark.parametrize('kind', [Smearing.GAUSSIAN, Smearing.FERMI_DIRAC, Smearing.METHFESSEL_PAXTON])
def test_symmetric_smearings(kind):
    x = np.linspace(-8, 8, 161)
    np.testing.assert_allclose(occupation(x, kind) + occupation(-x, kind), 1.0, atol=1e-15)


def test_monotonicity_flags():
    x = np.linspace(-8, 8, 4001)
    for kind in SMOOTH:
        occ = occupation(x, kind)
        monotonic = bool(np.all(np.diff(occ) >= 0))
        assert monotonic is kind.is_monotonic
    # the overshoot of the non-monotonic smearings: cold ~ 1.0833 at x = sqrt(2), MP ~ 1.0354 at x = sqrt(3/2)
    assert occupation(math.sqrt(2), 'cold') == pytest.approx(1.0833, abs=1e-4)
    assert occupation(math.sqrt(1.5), 'mp') == pytest.approx(1.0354, abs=1e-4)


def test_delta_matches_quantum_espresso_w0gauss():
    """QE's ``w0gauss`` (Modules/w0gauss.f90), written out literally, for ngauss = 0, 1, -1, -99."""
    x = np.linspace(-5, 5, 101)
    sqrtpm1 = 1 / math.sqrt(math.pi)
    gaussian = sqrtpm1 * np.exp(-x * x)
    mp = gaussian + (-1 / (4 * math.sqrt(math.pi))) * (4 * x * x - 2) * np.exp(-x * x)  # a = -1/(4 sqrt(pi)), H_2
    arg = (x - 1 / math.sqrt(2)) ** 2
    cold = sqrtpm1 * np.exp(-arg) * (2.0 - math.sqrt(2.0) * x)
    fermi_dirac = 1.0 / (2.0 + np.exp(-x) + np.exp(x))
    np.testing.assert_allclose(delta(x, 'gaussian'), gaussian, atol=1e-15)
    np.testing.assert_allclose(delta(x, 'mp'), mp, atol=1e-15)
    np.testing.assert_allclose(delta(x, 'cold'), cold, atol=1e-15)
    np.testing.assert_allclose(delta(x, 'fd'), fermi_dirac, atol=1e-15)


def test_occupation_matches_quantum_espresso_wgauss_for_cold():
    """QE's ``wgauss`` for ngauss = -1: 0.5 erf(xp) + exp(-xp^2)/sqrt(2 pi) + 0.5, xp = x - 1/sqrt(2)."""
    x = np.linspace(-5, 5, 101)
    xp = x - 1 / math.sqrt(2)
    expected = 0.5 * np.array([math.erf(v) for v in xp]) + np.exp(-xp * xp) / math.sqrt(2 * math.pi) + 0.5
    np.testing.assert_allclose(occupation(x, 'cold'), expected, atol=1e-15)


def test_scalar_input_gives_scalar_shape():
    assert np.shape(occupation(0.3, 'gaussian')) == ()
    assert np.shape(delta(0.3, 'cold')) == ()


@pytest.mark.parametrize('kind', SMOOTH)
def test_occupation_and_delta_is_consistent(kind):
    x = np.linspace(-30, 30, 601)
    occ, dlt = occupation_and_delta(x, kind)
    np.testing.assert_allclose(occ, occupation(x, kind), atol=1e-15)
    np.testing.assert_allclose(dlt, delta(x, kind), atol=1e-15)
