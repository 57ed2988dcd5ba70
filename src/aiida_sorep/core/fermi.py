"""Fermi level from eigenvalues, k-point weights and a smearing, the way DFTK.jl does it.

Conventions (QE's):

* ``eigenvalues`` in eV, shape ``(n_spins, n_kpoints, n_bands)`` (``(n_kpoints, n_bands)`` means one spin channel);
* ``weights`` shape ``(n_kpoints,)``, summing to 2 for ``n_spins == 1`` (spin degeneracy included) and to 1 for
  ``n_spins == 2`` (the same weights for both channels);
* a state ``(s, k, n)`` holds ``w_k f((E_F - e_skn) / sigma)`` electrons, ``f`` the occupation of
  :mod:`aiida_sorep.core.smearing` and ``sigma`` the smearing width in eV (QE's ``degauss`` converted from Ry).

The number of electrons at chemical potential ``E`` is ``N(E) = sum_skn w_k f((E - e_skn)/sigma)``.

Algorithms (see ``docs/smearing_fermi.md``):

1. *pre-check*: there must be more than ``n_electrons/2`` bands per spin channel;
2. *integer-occupation short-circuit*: sort the states and accumulate their weights; if the count reaches
   ``n_electrons`` exactly at a state followed by a gap larger than ``gap_threshold``, the system is gapped. With
   ``midgap=True`` (the default, as in the SOREP paper) the Fermi level is placed at mid-gap (method ``'midgap'``);
3. *zero temperature* (``width == 0`` or ``smearing='fixed'``): the Fermi level is the energy of the state at which
   the accumulated count reaches ``n_electrons`` (the top of the valence band for a gapped system if
   ``midgap=False``), method ``'zero-temperature'``;
4. *monotonic smearing* (Gaussian, Fermi-Dirac): bisection on ``N(E) - n_electrons`` (method ``'bisection'``);
5. *non-monotonic smearing* (Methfessel-Paxton, cold): the two-stage method of Dos Santos & Marzari,
   PRB 107, 195122 (2023): the Gaussian-smearing Fermi level with the same width is the guess; a bracket
   ``[a, b]`` with ``N(a) < n_electrons < N(b)`` is grown from it; then Halley/Newton steps on ``N(E) - n_electrons``
   (safeguarded: a step that leaves the bracket, or a non-positive density of states, is replaced by a bisection
   step), method ``'two-stage'``. The root found is the one connected to the Gaussian guess;
6. *post-check*: the electron count at the returned Fermi level is recomputed and reported as
   ``n_electrons_error``; if it is off by more than ``max(1e3 tol, 1e-6)`` a ``ValueError`` is raised.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_eigenvalues, as_weights, as_width, check_n_electrons
from .smearing import Smearing, delta, delta_derivative, occupation

__all__ = ('FermiResult', 'count_electrons', 'find_fermi_level')

#: Default smallest gap (eV) for a spectrum to be considered gapped by the integer-occupation short-circuit.
DEFAULT_GAP_THRESHOLD = 1e-3
#: Tolerance (electrons) on an exact integer filling in the short-circuit.
_INTEGER_FILLING_TOL = 1e-6
_MAX_ITERATIONS = 200


@dataclass(frozen=True)
class FermiResult:
    """Result of :func:`find_fermi_level`.

    :param fermi_energy: Fermi energy in eV.
    :param method: ``'midgap'``, ``'zero-temperature'``, ``'bisection'`` or ``'two-stage'``
        (``'two-stage-bisection'`` when the safeguarded Newton stage had to fall back to plain bisection).
    :param n_electrons_error: ``N(E_F) - n_electrons`` with the requested smearing (for zero temperature, the
        distance of ``n_electrons`` from the interval ``[N(E_F - 0), N(E_F + 0)]``, i.e. 0 when the states at ``E_F``
        can hold the remaining electrons). For ``'midgap'`` with a finite width it measures how far the smearing
        tails reach across the gap.
    :param is_gapped: whether the integer-occupation count is exact with a gap above ``gap_threshold``.
    """

    fermi_energy: float
    method: str
    n_electrons_error: float
    is_gapped: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (plain ``float``/``str``/``bool``)."""
        data = asdict(self)
        data['fermi_energy'] = float(self.fermi_energy)
        data['n_electrons_error'] = float(self.n_electrons_error)
        data['is_gapped'] = bool(self.is_gapped)
        return data


def _flatten(eigenvalues: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(energies, state_weights)``, both shape ``(n_spins * n_kpoints * n_bands,)``."""
    state_weights = np.broadcast_to(weights[np.newaxis, :, np.newaxis], eigenvalues.shape)
    return eigenvalues.reshape(-1), np.ascontiguousarray(state_weights).reshape(-1)


def _count(energies: np.ndarray, state_weights: np.ndarray, fermi_energy: float, kind: Smearing, width: float) -> float:
    if kind is Smearing.FIXED or width == 0.0:
        return float(state_weights @ np.heaviside(fermi_energy - energies, 0.5))
    return float(state_weights @ occupation((fermi_energy - energies) / width, kind))


def _dos_and_derivative(
    energies: np.ndarray, state_weights: np.ndarray, fermi_energy: float, kind: Smearing, width: float
) -> tuple[float, float]:
    """``dN/dE`` (1/eV) and ``d2N/dE2`` (1/eV^2) at ``fermi_energy``."""
    x = (fermi_energy - energies) / width
    return (
        float(state_weights @ delta(x, kind)) / width,
        float(state_weights @ delta_derivative(x, kind)) / width**2,
    )


def count_electrons(
    eigenvalues: ArrayLike,
    weights: ArrayLike,
    fermi_energy: float,
    smearing: str | Smearing = 'gaussian',
    width: float = 0.0,
) -> float:
    """Number of electrons ``N(E_F) = sum_skn w_k f((E_F - e_skn) / width)``.

    :param eigenvalues: eV, ``(n_spins, n_kpoints, n_bands)`` or ``(n_kpoints, n_bands)``.
    :param weights: ``(n_kpoints,)``, QE's convention (sum 2 for one spin channel, 1 for two).
    :param fermi_energy: eV.
    :param smearing: smearing name (see :class:`~aiida_sorep.core.smearing.Smearing`).
    :param width: smearing width in eV; 0 (or ``smearing='fixed'``) is zero temperature, where a state exactly at
        ``fermi_energy`` counts as half occupied.
    """
    eig = as_eigenvalues(eigenvalues)
    w = as_weights(weights, eig.shape[1], eig.shape[0])
    kind = Smearing.from_name(smearing)
    energies, state_weights = _flatten(eig, w)
    return _count(energies, state_weights, float(fermi_energy), kind, as_width(width))


@dataclass(frozen=True)
class _Filling:
    """Zero-temperature filling of the sorted states."""

    fermi_energy: float  # energy of the state at which the count reaches n_electrons
    below: float  # N(E_F - 0)
    at_or_below: float  # N(E_F + 0)
    vbm: float | None  # set when gapped
    cbm: float | None


def _integer_filling(
    eigenvalues: np.ndarray, state_weights: np.ndarray, n_electrons: float, gap_threshold: float
) -> _Filling:
    """Zero-temperature filling; gapped when the count is exact at a state followed by a gap above
    ``gap_threshold`` and every k-point of a spin channel has the same number of occupied bands (no band crosses
    the Fermi level: a discrete k-mesh of a metal can otherwise show a spurious "gap" between two k-points)."""
    energies = eigenvalues.reshape(-1)
    order = np.argsort(energies, kind='stable')
    sorted_energies = energies[order]
    cumulative = np.cumsum(state_weights[order])
    index = int(np.searchsorted(cumulative, n_electrons - _INTEGER_FILLING_TOL))
    index = min(index, sorted_energies.size - 1)
    e_f = float(sorted_energies[index])
    below = float(state_weights[energies < e_f].sum())
    at_or_below = float(state_weights[energies <= e_f].sum())
    exact = abs(cumulative[index] - n_electrons) <= _INTEGER_FILLING_TOL
    if exact and index + 1 < sorted_energies.size:
        # the highest occupied and lowest empty state are separated by a gap
        e_next = float(sorted_energies[index + 1])
        if e_next - e_f > gap_threshold:
            n_occupied = (eigenvalues <= e_f).sum(axis=2)  # (n_spins, n_kpoints)
            if np.all(n_occupied == n_occupied[:, :1]):
                return _Filling(e_f, below, at_or_below, e_f, e_next)
    return _Filling(e_f, below, at_or_below, None, None)


def _bisection(
    energies: np.ndarray,
    state_weights: np.ndarray,
    n_electrons: float,
    kind: Smearing,
    width: float,
    lower: float,
    upper: float,
    tol: float,
) -> float:
    """Bisection for ``N(E) = n_electrons`` in ``[lower, upper]`` with ``N(lower) < n_electrons < N(upper)``."""
    middle = 0.5 * (lower + upper)
    for _ in range(_MAX_ITERATIONS):
        middle = 0.5 * (lower + upper)
        residual = _count(energies, state_weights, middle, kind, width) - n_electrons
        if abs(residual) <= tol * 1e-2:
            break
        if residual < 0:
            lower = middle
        else:
            upper = middle
        if upper - lower <= 4 * np.finfo(float).eps * max(1.0, abs(middle)):
            break
    return middle


def _bracket(
    energies: np.ndarray, state_weights: np.ndarray, n_electrons: float, kind: Smearing, width: float, guess: float
) -> tuple[float, float, float, float]:
    """Grow a bracket ``[a, b]`` around ``guess`` with ``N(a) < n_electrons < N(b)``; return ``(a, b, r_a, r_b)``."""
    residual = _count(energies, state_weights, guess, kind, width) - n_electrons
    if residual == 0.0:
        return guess, guess, 0.0, 0.0
    step = 0.5 * width
    direction = 1.0 if residual < 0 else -1.0
    previous, previous_residual = guess, residual
    span = float(energies.max() - energies.min()) + 100 * width
    while step < 4 * span:
        trial = previous + direction * step
        trial_residual = _count(energies, state_weights, trial, kind, width) - n_electrons
        if trial_residual * previous_residual <= 0:
            if direction > 0:
                return previous, trial, previous_residual, trial_residual
            return trial, previous, trial_residual, previous_residual
        previous, previous_residual = trial, trial_residual
        step *= 2.0
    raise ValueError(
        f'could not bracket the Fermi level for n_electrons={n_electrons:g} with {kind.value} smearing of width '
        f'{width:g} eV: check n_electrons and the eigenvalues'
    )


def _two_stage(
    energies: np.ndarray,
    state_weights: np.ndarray,
    n_electrons: float,
    kind: Smearing,
    width: float,
    tol: float,
    gaussian_guess: float,
) -> tuple[float, str]:
    """Second stage of Dos Santos & Marzari: safeguarded Halley/Newton from the Gaussian guess."""
    lower, upper, r_lower, r_upper = _bracket(energies, state_weights, n_electrons, kind, width, gaussian_guess)
    if r_lower == 0.0:
        return lower, 'two-stage'
    if r_upper == 0.0:
        return upper, 'two-stage'
    # start from the guess (inside or on the boundary of the bracket)
    current = min(max(gaussian_guess, lower), upper)
    for _ in range(_MAX_ITERATIONS):
        residual = _count(energies, state_weights, current, kind, width) - n_electrons
        if abs(residual) <= tol * 1e-2:
            return current, 'two-stage'
        if residual < 0:
            lower = max(lower, current)
        else:
            upper = min(upper, current)
        first, second = _dos_and_derivative(energies, state_weights, current, kind, width)
        step = None
        if first > 0:
            denominator = 2 * first * first - residual * second
            halley = -2 * residual * first / denominator if denominator > 0 else None
            newton = -residual / first
            for candidate in (halley, newton):
                if candidate is not None and lower < current + candidate < upper:
                    step = candidate
                    break
        trial = current + step if step is not None else 0.5 * (lower + upper)
        if upper - lower <= 4 * np.finfo(float).eps * max(1.0, abs(current)):
            return trial, 'two-stage'
        current = trial
    # documented fallback: plain bisection in the (shrunken) bracket
    return _bisection(energies, state_weights, n_electrons, kind, width, lower, upper, tol), 'two-stage-bisection'


def find_fermi_level(
    eigenvalues: ArrayLike,
    weights: ArrayLike,
    n_electrons: float,
    smearing: str | Smearing = 'gaussian',
    width: float = 0.0,
    *,
    midgap: bool = True,
    tol: float = 1e-10,
    gap_threshold: float = DEFAULT_GAP_THRESHOLD,
) -> FermiResult:
    """Fermi level of a band structure.

    :param eigenvalues: eV, ``(n_spins, n_kpoints, n_bands)`` or ``(n_kpoints, n_bands)``.
    :param weights: ``(n_kpoints,)``; QE's convention: they sum to 2 for one spin channel (spin degeneracy
        included) and to 1 for two channels.
    :param n_electrons: number of valence electrons in the cell.
    :param smearing: smearing name or :class:`~aiida_sorep.core.smearing.Smearing` (QE names and aliases).
    :param width: smearing width in eV (QE's ``degauss`` times 13.605693... eV/Ry); 0 means zero temperature.
    :param midgap: for a gapped system (exact integer filling, gap above ``gap_threshold``), put the Fermi level at
        mid-gap (the SOREP paper's convention) instead of solving ``N(E_F) = n_electrons`` with the smearing.
    :param tol: tolerance on the electron count.
    :param gap_threshold: smallest gap in eV for the integer-occupation short-circuit.
    :raises ValueError: invalid inputs (NaN/inf, bad weights, too few bands, unknown smearing) or a failed post-check.
    """
    eig = as_eigenvalues(eigenvalues)
    n_spins, n_kpoints, n_bands = eig.shape
    w = as_weights(weights, n_kpoints, n_spins)
    n_el = check_n_electrons(n_electrons, n_spins, n_bands)
    kind = Smearing.from_name(smearing)
    sigma = as_width(width)
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f'tol must be a positive number of electrons, got {tol!r}')
    energies, state_weights = _flatten(eig, w)

    filling = _integer_filling(eig, state_weights, n_el, gap_threshold)
    is_gapped = filling.vbm is not None
    zero_temperature = kind is Smearing.FIXED or sigma == 0.0

    if midgap and filling.vbm is not None and filling.cbm is not None:
        e_f = 0.5 * (filling.vbm + filling.cbm)
        if zero_temperature:
            error = 0.0
        else:
            error = _count(energies, state_weights, e_f, kind, sigma) - n_el
        return FermiResult(e_f, 'midgap', error, True)

    if zero_temperature:
        error = min(max(n_el, filling.below), filling.at_or_below) - n_el
        if is_gapped:
            error = 0.0
        return FermiResult(filling.fermi_energy, 'zero-temperature', error, is_gapped)

    support = Smearing.GAUSSIAN.support if not kind.is_monotonic else kind.support
    lower = float(energies.min()) - 2 * support * sigma
    upper = float(energies.max()) + 2 * support * sigma
    if kind.is_monotonic:
        e_f = _bisection(energies, state_weights, n_el, kind, sigma, lower, upper, tol)
        method = 'bisection'
    else:
        guess = _bisection(energies, state_weights, n_el, Smearing.GAUSSIAN, sigma, lower, upper, tol)
        e_f, method = _two_stage(energies, state_weights, n_el, kind, sigma, tol, guess)

    error = _count(energies, state_weights, e_f, kind, sigma) - n_el
    if abs(error) > max(1e3 * tol, 1e-6):
        raise ValueError(
            f'the electron count at the Fermi level found by {method} is off by {error:.3e} electrons '
            f'({kind.value} smearing, width {sigma:g} eV): try a larger width or check the eigenvalues'
        )
    return FermiResult(e_f, method, error, is_gapped)
