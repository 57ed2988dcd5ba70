"""Fermi level: electron count for every smearing x spin, insulators, free electrons, non-monotonic cold smearing,
input validation and agreement with real pw.x runs."""

from __future__ import annotations

import itertools
import json
import math
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_sorep.core.fermi import FermiResult, count_electrons, find_fermi_level
from aiida_sorep.core.smearing import Smearing, occupation

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / 'fixtures' / 'core'

SMEARINGS = ['gaussian', 'fermi-dirac', 'methfessel-paxton', 'cold']
HBAR2_OVER_2M = 3.80998212  # eV Å^2


def _weights(rng: np.random.Generator, n_kpoints: int, n_spins: int) -> np.ndarray:
    raw = rng.uniform(0.2, 1.0, n_kpoints)
    return raw / raw.sum() * (2.0 / n_spins)


@st.composite
def spectra(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_spins = draw(st.sampled_from([1, 2]))
    n_kpoints = draw(st.integers(1, 12))
    n_bands = draw(st.integers(2, 12))
    spread = draw(st.floats(0.5, 20.0))
    eigenvalues = np.sort(rng.uniform(-spread, spread, (n_spins, n_kpoints, n_bands)), axis=-1)
    weights = _weights(rng, n_kpoints, n_spins)
    # between 0.1 electrons and (all bands - 0.1)
    n_electrons = draw(st.floats(0.1, 2.0 * n_bands - 0.1))
    smearing = draw(st.sampled_from(SMEARINGS))
    width = draw(st.floats(0.005, 1.0))
    return eigenvalues, weights, n_electrons, smearing, width


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(spectra())
def test_electron_count_recovered_for_every_smearing_and_spin(case):
    eigenvalues, weights, n_electrons, smearing, width = case
    result = find_fermi_level(eigenvalues, weights, n_electrons, smearing, width, midgap=False)
    count = count_electrons(eigenvalues, weights, result.fermi_energy, smearing, width)
    assert abs(count - n_electrons) <= 1e-8
    assert abs(result.n_electrons_error) <= 1e-8
    assert result.n_electrons_error == pytest.approx(count - n_electrons, abs=1e-12)
    expected_method = 'bisection' if Smearing.from_name(smearing).is_monotonic else 'two-stage'
    assert result.method == expected_method


@pytest.mark.parametrize(('smearing', 'n_spins'), list(itertools.product(SMEARINGS, [1, 2])))
def test_electron_count_grid_of_cases(smearing, n_spins):
    """Deterministic companion of the property test: a dense metal, every smearing x spin."""
    rng = np.random.default_rng(7)
    eigenvalues = np.sort(rng.normal(0.0, 3.0, (n_spins, 40, 10)), axis=-1)
    weights = _weights(rng, 40, n_spins)
    for n_electrons in (1.0, 7.3, 11.0, 19.9):
        result = find_fermi_level(eigenvalues, weights, n_electrons, smearing, 0.1, midgap=False)
        assert count_electrons(eigenvalues, weights, result.fermi_energy, smearing, 0.1) == pytest.approx(
            n_electrons, abs=1e-8
        )


def _insulator(n_spins: int = 1, gap: float = 1.5) -> tuple[np.ndarray, np.ndarray, float, float]:
    rng = np.random.default_rng(3)
    valence = rng.uniform(-8.0, -gap / 2, (n_spins, 20, 4))
    conduction = rng.uniform(gap / 2, 8.0, (n_spins, 20, 4))
    eigenvalues = np.sort(np.concatenate([valence, conduction], axis=-1), axis=-1)
    return eigenvalues, _weights(rng, 20, n_spins), float(valence.max()), float(conduction.min())


@pytest.mark.parametrize('smearing', SMEARINGS)
@pytest.mark.parametrize('midgap', [True, False])
@pytest.mark.parametrize('n_spins', [1, 2])
def test_insulator_fermi_level_strictly_inside_gap(smearing, midgap, n_spins):
    eigenvalues, weights, vbm, cbm = _insulator(n_spins)
    result = find_fermi_level(eigenvalues, weights, 8.0, smearing, 0.05, midgap=midgap)  # 4 bands per channel
    assert result.is_gapped
    assert vbm < result.fermi_energy < cbm
    if midgap:
        assert result.method == 'midgap'
        assert result.fermi_energy == pytest.approx(0.5 * (vbm + cbm), abs=1e-14)
    else:
        assert result.method == ('bisection' if Smearing.from_name(smearing).is_monotonic else 'two-stage')
        assert abs(result.n_electrons_error) < 1e-8


@pytest.mark.parametrize('n_spins', [1, 2])
def test_zero_temperature_insulator_midgap(n_spins):
    eigenvalues, weights, vbm, cbm = _insulator(n_spins)
    result = find_fermi_level(eigenvalues, weights, 8.0, 'fixed')
    assert result == FermiResult(0.5 * (vbm + cbm), 'midgap', 0.0, True)


def test_zero_temperature_insulator_without_midgap_is_the_vbm():
    eigenvalues, weights, vbm, _ = _insulator()
    result = find_fermi_level(eigenvalues, weights, 8.0, 'gaussian', 0.0, midgap=False)
    assert result == FermiResult(vbm, 'zero-temperature', 0.0, True)


def test_zero_temperature_metal():
    eigenvalues = np.array([[[-1.0, 1.0], [-0.5, 2.0], [0.5, 3.0], [1.5, 4.0]]])
    weights = np.full(4, 0.5)
    # 1 electron: the count reaches 1 exactly at the state at -0.5 eV, but band 0 is occupied at two k-points and
    # empty at the others (it crosses E_F), so this is not a gap: E_F is the state at -0.5 eV.
    result = find_fermi_level(eigenvalues, weights, 1.0, 'fixed')
    assert not result.is_gapped
    assert result.method == 'zero-temperature'
    assert result.fermi_energy == -0.5
    assert result.n_electrons_error == 0.0
    # 1.25 electrons: half of the state at 0.5 eV
    result = find_fermi_level(eigenvalues, weights, 1.25, 'gaussian', 0.0)
    assert result.fermi_energy == 0.5
    assert result.n_electrons_error == 0.0


def test_spurious_gap_between_k_points_of_a_metal_is_not_a_gap():
    """A band that is occupied at some k-points and empty at others crosses the Fermi level: no mid-gap rule."""
    eigenvalues = np.array([[[-2.0, 5.0], [-1.0, 6.0], [1.0, 7.0], [2.0, 8.0]]])
    weights = np.full(4, 0.5)
    result = find_fermi_level(eigenvalues, weights, 1.0, 'gaussian', 0.01)
    assert not result.is_gapped
    assert result.method == 'bisection'
    assert -1.0 < result.fermi_energy < 1.0


@pytest.mark.parametrize('smearing', SMEARINGS)
def test_spin_polarised_copy_gives_the_same_fermi_level(smearing):
    rng = np.random.default_rng(11)
    eigenvalues = np.sort(rng.normal(0.0, 2.0, (1, 30, 8)), axis=-1)
    weights = _weights(rng, 30, 1)
    single = find_fermi_level(eigenvalues, weights, 6.4, smearing, 0.1)
    double = find_fermi_level(np.concatenate([eigenvalues, eigenvalues]), weights / 2, 6.4, smearing, 0.1)
    assert double.fermi_energy == pytest.approx(single.fermi_energy, abs=1e-10)


def _free_electron_bands(alat: float, n_k: int, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Plane-wave bands e_n(k) = hbar^2 |k + G|^2 / 2m of a simple cubic cell, on an unshifted n_k^3 k-mesh."""
    b = 2 * math.pi / alat
    frac = np.arange(n_k) / n_k - 0.5
    k = np.stack(np.meshgrid(frac, frac, frac, indexing='ij'), axis=-1).reshape(-1, 3) * b
    g_range = np.arange(-2, 3)
    g = np.stack(np.meshgrid(g_range, g_range, g_range, indexing='ij'), axis=-1).reshape(-1, 3) * b
    energies = HBAR2_OVER_2M * np.sum((k[:, None, :] + g[None, :, :]) ** 2, axis=-1)
    eigenvalues = np.sort(energies, axis=1)[:, :n_bands]
    weights = np.full(k.shape[0], 2.0 / k.shape[0])
    return eigenvalues, weights


@pytest.mark.parametrize('smearing', SMEARINGS)
def test_free_electron_gas_fermi_energy(smearing):
    alat, n_electrons = 5.0, 8.0
    eigenvalues, weights = _free_electron_bands(alat, 24, 16)
    density = n_electrons / alat**3
    analytic = HBAR2_OVER_2M * (3 * math.pi**2 * density) ** (2 / 3)  # 5.84 eV
    result = find_fermi_level(eigenvalues, weights, n_electrons, smearing, 0.1)
    assert not result.is_gapped
    assert result.fermi_energy == pytest.approx(analytic, rel=2e-3)


def _non_monotonic_cold_case() -> tuple[np.ndarray, np.ndarray, float, float]:
    """Flat bands at -3, 0 and 3.3 eV (2 electrons each), 4.05 electrons, cold smearing of 0.1 eV.

    Cold smearing overshoots (f reaches 1.083 at x = sqrt(2)), so N(E) - 4.05 has three roots: on the rising edge of
    the band at 0 eV (0.099 eV), on its falling overshoot (0.221 eV) and on the rising edge of the band at 3.3 eV
    (3.195 eV). Only the last one is physical (the Gaussian-smearing solution, 3.161 eV, is next to it, and the DOS
    is positive there); bisection on the whole spectrum starts at its middle, 0.15 eV, inside the overshoot, and
    converges to the spurious root on the rising edge.
    """
    eigenvalues = np.array([[[-3.0, 0.0, 3.3]] * 4])
    weights = np.full(4, 0.5)
    return eigenvalues, weights, 4.05, 0.1


def _plain_bisection(eigenvalues, weights, n_electrons, smearing, width) -> float:
    lower, upper = eigenvalues.min() - 10 * width, eigenvalues.max() + 10 * width
    for _ in range(200):
        middle = 0.5 * (lower + upper)
        count = count_electrons(eigenvalues, weights, middle, smearing, width)
        lower, upper = (middle, upper) if count < n_electrons else (lower, middle)
    return 0.5 * (lower + upper)


def test_non_monotonic_cold_smearing_is_solved():
    eigenvalues, weights, n_electrons, width = _non_monotonic_cold_case()
    e_grid = np.linspace(-4, 4.5, 8501)
    n_of_e = np.array([count_electrons(eigenvalues, weights, e, 'cold', width) for e in e_grid])
    roots = np.flatnonzero(np.diff(np.sign(n_of_e - n_electrons)))
    assert roots.size == 3, 'the test case must have three roots'

    naive = _plain_bisection(eigenvalues, weights, n_electrons, 'cold', width)
    assert naive < 1.0, 'plain bisection must land on a spurious root for this test to mean anything'

    result = find_fermi_level(eigenvalues, weights, n_electrons, 'cold', width)
    gaussian = find_fermi_level(eigenvalues, weights, n_electrons, 'gaussian', width)
    assert result.method == 'two-stage'
    assert abs(result.n_electrons_error) < 1e-10
    assert 3.0 < result.fermi_energy < 3.3
    assert abs(result.fermi_energy - gaussian.fermi_energy) < width
    # positive density of states at the solution
    x = (result.fermi_energy - eigenvalues) / width
    slope = (occupation(x + 1e-6, 'cold') - occupation(x - 1e-6, 'cold')).sum()
    assert slope > 0


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'n_electrons': 40.0}, r'at least 21\) to place the Fermi level .*got 20: increase nbnd'),
        ({'n_electrons': 44.0}, r'needs more than n_electrons/2=22 bands per spin .*got 20: increase nbnd'),
        ({'n_electrons': -1.0}, 'n_electrons must be a finite positive number'),
        ({'n_electrons': float('nan')}, 'n_electrons must be a finite positive number'),
        ({'weights': np.full(10, 0.1)}, r'weights sum to 1 but QE convention needs 2 .*multiply them by 2'),
        ({'weights': np.full(9, 2 / 9)}, r'weights must have shape \(n_kpoints,\)=\(10,\)'),
        ({'weights': np.r_[np.full(9, 2 / 9) + 0.3, -0.3 * 9]}, 'weights must be non-negative'),
        ({'smearing': 'lorentz'}, 'unknown smearing'),
        ({'width': -0.1}, 'width must be a finite non-negative energy'),
        ({'eigenvalues': np.full((1, 10, 20), np.nan)}, 'eigenvalues contain NaN or inf'),
        ({'eigenvalues': np.zeros((3, 10, 20))}, '1 or 2 spin channels'),
        ({'eigenvalues': np.zeros(20)}, r'must have shape \(n_spins, n_kpoints, n_bands\)'),
    ],
)
def test_invalid_inputs_raise_actionable_errors(kwargs, match):
    rng = np.random.default_rng(0)
    arguments = {
        'eigenvalues': np.sort(rng.normal(size=(1, 10, 20)), axis=-1),
        'weights': np.full(10, 0.2),
        'n_electrons': 10.0,
        'smearing': 'gaussian',
        'width': 0.1,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        find_fermi_level(**arguments)


def test_result_to_dict_is_json_serialisable():
    eigenvalues, weights, _, _ = _insulator()
    result = find_fermi_level(eigenvalues, weights, np.float64(8.0), 'cold', 0.1)
    data = json.loads(json.dumps(result.to_dict()))
    assert data == {
        'fermi_energy': result.fermi_energy,
        'method': 'midgap',
        'n_electrons_error': result.n_electrons_error,
        'is_gapped': True,
    }


def _pw_cases() -> list[dict]:
    return json.loads((FIXTURES / 'pw_fermi_fixtures.json').read_text())['cases']


@pytest.mark.parametrize('case', _pw_cases(), ids=lambda case: case['label'])
def test_fermi_level_agrees_with_pw_x(case):
    """Eigenvalues of real pw.x 6.7 SCF runs (see generate_pw_fermi_fixtures.py): E_F within 1 meV of pw.x's."""
    eigenvalues = np.asarray(case['eigenvalues'])
    weights = np.asarray(case['weights'])
    assert Smearing.from_name(case['qe_smearing']) is Smearing.from_name(case['smearing'])
    result = find_fermi_level(eigenvalues, weights, case['n_electrons'], case['qe_smearing'], case['degauss_ev'])
    assert not result.is_gapped
    assert abs(result.fermi_energy - case['fermi_energy']) < 1e-3
    assert abs(result.n_electrons_error) < 1e-8


def test_magnetic_insulator_with_different_fillings_per_spin_is_gapped():
    """Spin up: 2 occupied bands, spin down: 1 (3 electrons, weights sum 1 per channel): a common gap."""
    up = [[-3.0, -0.4, 2.0], [-2.8, -0.6, 2.2]]
    down = [[-2.0, 0.8, 1.5], [-1.9, 0.9, 1.6]]
    result = find_fermi_level(np.array([up, down]), np.array([0.5, 0.5]), 3.0, 'cold', 0.02)
    assert result.is_gapped
    assert result.method == 'midgap'
    assert result.fermi_energy == pytest.approx(0.5 * (-0.4 + 0.8))
    assert abs(result.n_electrons_error) < 1e-10


@settings(max_examples=100, deadline=None, derandomize=True)
@given(spectra())
def test_zero_temperature_fermi_level_brackets_the_electron_count(case):
    eigenvalues, weights, n_electrons, _, _ = case
    result = find_fermi_level(eigenvalues, weights, n_electrons, 'fixed', midgap=False)
    below = weights[None, :, None] * (eigenvalues < result.fermi_energy)
    at_or_below = weights[None, :, None] * (eigenvalues <= result.fermi_energy)
    assert below.sum() - 1e-6 <= n_electrons <= at_or_below.sum() + 1e-6
    assert result.method == 'zero-temperature'
