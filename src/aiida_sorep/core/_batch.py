"""Vectorised (over materials) Fermi levels, band edges and Gaussian feature maps for :func:`featurize_batch`.

Private helpers; the public entry point is :func:`aiida_sorep.core.features.featurize_batch`. Every function works on
a chunk of materials with the same array shapes, eigenvalues ``(n_materials, n_kpoints, n_bands)`` in eV sorted
along the band axis, and k-point weights ``(n_materials, n_kpoints)`` summing to 2 (one spin channel).

Two ideas make them fast:

* *active bands*: bands are sorted at every k-point, so ``top[b] = max_k e[k, b]`` and ``bot[b] = min_k e[k, b]``
  are non-decreasing in ``b``; the bands that can matter for an energy interval form a contiguous range, found
  without looking at the states, and only those are gathered (the bands below count as full, those above as empty:
  exact to 1e-17 per state beyond the support of the smearing);
* *Gaussian moments* for the DOS on a uniform grid of spacing ``h``: a state at ``t`` grid units (nearest grid
  index ``m``, offset ``u = t - m`` in ``[-1/2, 1/2]``) contributes ``exp(-alpha (k - u)^2)`` to grid point
  ``m + k`` (``alpha = (h / sigma)^2``); ``exp(-alpha (k - u)^2) = exp(-alpha k^2) exp(-alpha u^2)
  sum_p (2 alpha k)^p u^p / p!``. The moments ``M_p[m] = sum w exp(-alpha u^2) u^p`` are histograms (one
  ``bincount`` per ``p``), and the DOS is a convolution of them with a fixed kernel, done as one matrix product per
  block of output points. The series is truncated where its terms fall below 1e-15 of the peak, the kernel where
  ``exp(-alpha k^2) < 4e-18``: the result equals the direct sum to ~1e-13 relative.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .smearing import Smearing, occupation_and_delta

_INTEGER_FILLING_TOL = 1e-6
_MAX_ITERATIONS = 100
_KERNEL_EXPONENT = 40.0  # exp(-40) = 4e-18
_SERIES_TOL = 1e-15
_BLOCK = 64  # output points per matrix-product block
_MAX_TERMS = 24


@dataclass(frozen=True)
class BatchFermi:
    """Fermi levels of a chunk: ``fermi_energy``, ``n_electrons_error`` ``(n,)`` floats, ``is_gapped`` ``(n,)``,
    ``method`` ``(n,)`` str and ``needs_fallback`` ``(n,)`` (materials the vectorised path could not solve)."""

    fermi_energy: np.ndarray
    n_electrons_error: np.ndarray
    is_gapped: np.ndarray
    method: np.ndarray
    needs_fallback: np.ndarray


def _gather_bands(eig: np.ndarray, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gather bands ``start[c] <= b < stop[c]`` of each material; return ``(energies, mask)`` ``(n, n_k, A)``.

    Padding entries have energy ``+inf`` and mask ``False``.
    """
    n_materials, n_kpoints, n_bands = eig.shape
    width = int(max(1, (stop - start).max(initial=1)))
    index = start[:, None] + np.arange(width)[None, :]  # (n, A)
    mask = index < stop[:, None]
    index = np.minimum(index, n_bands - 1)
    gathered = np.take_along_axis(eig, np.broadcast_to(index[:, None, :], (n_materials, n_kpoints, width)), axis=2)
    mask3 = np.broadcast_to(mask[:, None, :], gathered.shape)
    return np.where(mask3, gathered, np.inf), mask3


def _count_and_dos(
    energies: np.ndarray, weights: np.ndarray, n_full: np.ndarray, fermi: np.ndarray, kind: Smearing, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """``N(E) - n_full`` contributions and ``dN/dE`` of gathered states ``(n, n_states)`` at ``fermi`` ``(n,)``."""
    x = (fermi[:, None] - energies) / sigma
    occ, dlt = occupation_and_delta(x, kind)
    count = n_full + np.einsum('ij,ij->i', weights, occ)
    dos = np.einsum('ij,ij->i', weights, dlt) / sigma
    return count, dos


def _safeguarded_newton(
    energies: np.ndarray,
    weights: np.ndarray,
    n_full: np.ndarray,
    target: np.ndarray,
    kind: Smearing,
    sigma: float,
    lower: np.ndarray,
    upper: np.ndarray,
    start: np.ndarray,
    tol: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Newton steps on ``N(E) = target`` kept inside brackets ``[lower, upper]`` (bisection otherwise).

    The brackets must satisfy ``N(lower) < target < N(upper)``. Returns ``(fermi, converged)``.
    """
    fermi = start.copy()
    lower = lower.copy()
    upper = upper.copy()
    converged = np.zeros(fermi.shape, dtype=bool)
    todo = np.arange(fermi.size)
    for _ in range(_MAX_ITERATIONS):
        if todo.size == 0:
            break
        count, dos = _count_and_dos(energies[todo], weights[todo], n_full[todo], fermi[todo], kind, sigma)
        residual = count - target[todo]
        done = np.abs(residual) <= 1e-2 * tol
        below = residual < 0
        lower[todo] = np.where(below, np.maximum(lower[todo], fermi[todo]), lower[todo])
        upper[todo] = np.where(below, upper[todo], np.minimum(upper[todo], fermi[todo]))
        with np.errstate(divide='ignore', invalid='ignore'):
            trial = fermi[todo] - residual / dos
        inside = (dos > 0) & (trial > lower[todo]) & (trial < upper[todo])
        trial = np.where(inside, trial, 0.5 * (lower[todo] + upper[todo]))
        tiny = (upper[todo] - lower[todo]) <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(fermi[todo]))
        done |= tiny
        converged[todo[done]] = True
        fermi[todo[~done]] = trial[~done]
        todo = todo[~done]
    return fermi, converged


def _gathered(
    eig: np.ndarray, weights: np.ndarray, top: np.ndarray, bot: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """States of the bands that reach into ``[low, high]`` ``(n,)``: ``(energies, weights, n_full)`` with
    ``energies``/``weights`` ``(n, n_states)`` and ``n_full`` the electrons of the bands entirely below ``low``."""
    start = (top < low[:, None]).sum(axis=1)
    stop = np.maximum((bot <= high[:, None]).sum(axis=1), start)
    energies, mask = _gather_bands(eig, start, stop)
    w = np.where(mask, weights[:, :, None], 0.0).reshape(eig.shape[0], -1)
    return energies.reshape(eig.shape[0], -1), w, 2.0 * start


def batch_fermi_levels(
    eig: np.ndarray,
    weights: np.ndarray,
    n_electrons: np.ndarray,
    smearing: Smearing,
    sigma: float,
    *,
    midgap: bool,
    gap_threshold: float,
    tol: float,
) -> BatchFermi:
    """Fermi levels of a chunk of one-spin-channel materials (same algorithms as :func:`find_fermi_level`).

    1. integer filling with a gap: mid-gap (or the VBM at zero temperature without ``midgap``);
    2. zero-temperature Fermi level ``E0`` from the sorted states of the bands between ``min_k e[ceil(n)-1]`` and
       ``max_k e[floor(n)]`` (``n = N/2``), the only ones that can be partially occupied;
    3. finite width: only the bands within ``margin + reach`` of ``E0`` are kept (``margin = max(8 sigma, 0.5 eV)``,
       ``reach`` the support of the smearing); the count is exact as long as the Fermi level stays within
       ``margin`` of ``E0``. Safeguarded Newton (monotonic smearings) or Gaussian guess + bracket + safeguarded
       Newton (cold, Methfessel-Paxton), all restricted to ``[E0 - margin, E0 + margin]``. Materials whose
       bracket or post-check fails are flagged ``needs_fallback`` (the caller uses :func:`find_fermi_level`).

    :param eig: eV, ``(n, n_kpoints, n_bands)``, sorted along bands.
    :param weights: ``(n, n_kpoints)``, each row summing to 2.
    :param n_electrons: ``(n,)``, each below ``2 n_bands``.
    """
    n_materials, _, n_bands = eig.shape
    top = eig.max(axis=1)  # (n, n_bands)
    bot = eig.min(axis=1)
    half = n_electrons / 2.0
    rounded = np.rint(half).astype(int)
    integer = (np.abs(half - rounded) * 2 <= _INTEGER_FILLING_TOL) & (rounded >= 1) & (rounded < n_bands)
    safe = np.clip(rounded, 1, n_bands - 1)
    rows = np.arange(n_materials)
    vbm = top[rows, safe - 1]
    cbm = bot[rows, safe]
    gapped = integer & (cbm - vbm > gap_threshold)

    fermi = np.zeros(n_materials)
    error = np.zeros(n_materials)
    method = np.empty(n_materials, dtype=object)
    fallback = np.zeros(n_materials, dtype=bool)
    zero_temperature = smearing is Smearing.FIXED or sigma == 0.0

    done = np.zeros(n_materials, dtype=bool)
    if midgap:
        fermi[gapped] = 0.5 * (vbm[gapped] + cbm[gapped])
        method[gapped] = 'midgap'
        done |= gapped
    elif zero_temperature:
        fermi[gapped] = vbm[gapped]
        method[gapped] = 'zero-temperature'
        done |= gapped

    todo = np.flatnonzero(~done)
    if todo.size:
        # zero-temperature Fermi level from the bands that can be partially occupied
        j_lo = np.clip(np.ceil(half[todo] - 1e-12).astype(int) - 1, 0, n_bands - 1)
        j_hi = np.clip(np.floor(half[todo] + 1e-12).astype(int), 0, n_bands - 1)
        low = bot[todo, j_lo]
        high = top[todo, j_hi]
        energies, w, n_full = _gathered(eig[todo], weights[todo], top[todo], bot[todo], low, high)
        order = np.argsort(energies, axis=1)
        sorted_energies = np.take_along_axis(energies, order, axis=1)
        cumulative = n_full[:, None] + np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)
        index = np.argmax(cumulative >= (n_electrons[todo] - _INTEGER_FILLING_TOL)[:, None], axis=1)
        e_zero = sorted_energies[np.arange(todo.size), index]
        if zero_temperature:
            fermi[todo] = e_zero
            method[todo] = 'zero-temperature'
        else:
            margin = max(8.0 * sigma, 0.5)
            reach = smearing.support * sigma
            lower = e_zero - margin
            upper = e_zero + margin
            energies, w, n_full = _gathered(
                eig[todo], weights[todo], top[todo], bot[todo], lower - reach, upper + reach
            )
            target = n_electrons[todo]
            if smearing.is_monotonic:
                kind_first = smearing
            else:
                kind_first = Smearing.GAUSSIAN
            count_lower, _ = _count_and_dos(energies, w, n_full, lower, kind_first, sigma)
            count_upper, _ = _count_and_dos(energies, w, n_full, upper, kind_first, sigma)
            ok = (count_lower < target) & (count_upper > target)
            result, converged = _safeguarded_newton(
                energies, w, n_full, target, kind_first, sigma, lower, upper, np.clip(e_zero, lower, upper), tol
            )
            ok &= converged
            if smearing.is_monotonic:
                method[todo] = 'bisection'
            else:
                a, b, bracketed = _grow_brackets(energies, w, n_full, target, smearing, sigma, result, lower, upper)
                result, converged = _safeguarded_newton(
                    energies, w, n_full, target, smearing, sigma, a, b, np.clip(result, a, b), tol
                )
                ok &= converged & bracketed
                method[todo] = 'two-stage'
            count, _ = _count_and_dos(energies, w, n_full, result, smearing, sigma)
            residual = count - target
            ok &= np.abs(residual) <= max(1e3 * tol, 1e-6)
            fermi[todo] = result
            error[todo] = residual
            fallback[todo] = ~ok

    # electron-count error of the mid-gap levels with a finite width (the smearing tails across the gap)
    finished = np.flatnonzero(done)
    if finished.size and not zero_temperature:
        reach = smearing.support * sigma
        e_f = fermi[finished]
        energies, w, n_full = _gathered(
            eig[finished], weights[finished], top[finished], bot[finished], e_f - reach, e_f + reach
        )
        count, _ = _count_and_dos(energies, w, n_full, e_f, smearing, sigma)
        error[finished] = count - n_electrons[finished]
    return BatchFermi(fermi, error, gapped, method, fallback)


def _grow_brackets(
    energies: np.ndarray,
    weights: np.ndarray,
    n_full: np.ndarray,
    target: np.ndarray,
    kind: Smearing,
    sigma: float,
    guess: np.ndarray,
    lower_limit: np.ndarray,
    upper_limit: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grow ``[a, b]`` around ``guess`` until ``N(a) <= target <= N(b)`` (steps sigma/2, doubling), within limits."""
    count, _ = _count_and_dos(energies, weights, n_full, guess, kind, sigma)
    residual = count - target
    direction = np.where(residual < 0, 1.0, -1.0)
    previous = guess.copy()
    a = guess.copy()
    b = guess.copy()
    found = residual == 0
    step = np.full(guess.shape, 0.5 * sigma)
    todo = np.flatnonzero(~found)
    for _ in range(64):
        if todo.size == 0:
            break
        trial = np.clip(previous[todo] + direction[todo] * step[todo], lower_limit[todo], upper_limit[todo])
        count, _ = _count_and_dos(energies[todo], weights[todo], n_full[todo], trial, kind, sigma)
        trial_residual = count - target[todo]
        crossed = trial_residual * residual[todo] <= 0
        up = direction[todo] > 0
        idx = todo[crossed]
        a[idx] = np.where(up[crossed], previous[idx], trial[crossed])
        b[idx] = np.where(up[crossed], trial[crossed], previous[idx])
        found[idx] = True
        stuck = ~crossed & ((trial <= lower_limit[todo]) | (trial >= upper_limit[todo]))
        previous[todo] = trial
        residual[todo] = trial_residual
        step[todo] *= 2.0
        todo = todo[~crossed & ~stuck]
    return a, b, found


def band_edges_batch(
    eig: np.ndarray, fermi: np.ndarray, gap_threshold: float, is_gapped: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vbm, cbm, is_metal)`` ``(n,)`` of a chunk ``(n, n_spins, n_kpoints, n_bands)`` (criteria of
    :func:`~aiida_sorep.core.edges.find_band_edges` with ``is_gapped``); for metals ``vbm = cbm = fermi`` (the maps'
    references)."""
    top = eig.max(axis=2).reshape(eig.shape[0], -1)  # (n, n_spins * n_bands)
    bot = eig.min(axis=2).reshape(eig.shape[0], -1)
    e_f = fermi[:, None]
    crossing = np.any((bot < e_f) & (top > e_f), axis=1)
    vbm = np.where(top <= e_f, top, -np.inf).max(axis=1)
    cbm = np.where(top <= e_f, np.inf, bot).min(axis=1)
    metal = crossing | ~(cbm - vbm >= gap_threshold) | ~is_gapped
    return np.where(metal, fermi, vbm), np.where(metal, fermi, cbm), metal


@functools.lru_cache(maxsize=64)
def _series(alpha: float) -> tuple[int, int] | None:
    """Kernel half-width ``K`` (grid points) and number of Taylor terms for ``alpha = (h / sigma)^2``; ``None`` when
    the grid is too coarse for the width (more than ``_MAX_TERMS`` terms: then evaluate the DOS directly)."""
    half_width = math.ceil(math.sqrt(_KERNEL_EXPONENT / alpha))
    k = np.arange(half_width + 1, dtype=float)
    envelope = np.exp(-alpha * k * k)
    for n_terms in range(1, _MAX_TERMS + 1):
        if (envelope * (alpha * k) ** n_terms).max() / math.factorial(n_terms) < _SERIES_TOL:
            return half_width, n_terms
    return None


def moments_applicable(spacing: float, sigma: float) -> bool:
    """Whether :func:`gaussian_dos_on_grids` can be used for this grid spacing and Gaussian width (both eV): the
    spacing must not exceed about 0.8 sigma (the paper's grids have 0.3 sigma)."""
    return _series((spacing / sigma) ** 2) is not None


@functools.lru_cache(maxsize=32)
def _block_kernel(alpha: float, half_width: int, n_terms: int) -> np.ndarray:
    """Matrix ``((BLOCK + 2K) * n_terms, BLOCK)``: moments of a block's inputs (input-major, term-minor) -> the
    block's outputs."""
    n_inputs = _BLOCK + 2 * half_width
    k = (np.arange(_BLOCK)[None, :] + half_width) - np.arange(n_inputs)[:, None]  # (n_inputs, BLOCK)
    envelope = np.where(np.abs(k) <= half_width, np.exp(-alpha * k * k), 0.0)
    factorials = np.array([math.factorial(p) for p in range(n_terms)], dtype=float)
    powers = np.arange(n_terms)[None, :, None]
    kernel = envelope[:, None, :] * (2 * alpha * k[:, None, :]) ** powers / factorials[None, :, None]
    kernel = np.ascontiguousarray(kernel.reshape(n_inputs * n_terms, _BLOCK))
    kernel.setflags(write=False)
    return kernel


def gaussian_dos_on_grids(
    energies: np.ndarray,
    weights: np.ndarray,
    origins: np.ndarray,
    spacing: float,
    n_points: int,
    sigma: float,
) -> np.ndarray:
    """Gaussian-broadened DOS (states/eV/cell) of each material on its own uniform grid.

    :param energies: eV, ``(n, n_states)`` (``inf`` for padding).
    :param weights: ``(n, n_states)`` state weights (0 for padding).
    :param origins: ``(n,)`` first grid energy of each material, eV.
    :param spacing: grid spacing in eV.
    :param n_points: grid points.
    :param sigma: Gaussian width in eV (``delta(x) = exp(-x^2)/sqrt(pi)``, ``x = (E - e)/sigma``).
    :returns: ``(n, n_points)``.
    """
    n_materials = energies.shape[0]
    alpha = (spacing / sigma) ** 2
    series = _series(alpha)
    if series is None:
        raise ValueError(f'grid spacing {spacing:g} eV is too coarse for the Gaussian moments of width {sigma:g} eV')
    half_width, n_terms = series
    n_blocks = -(-n_points // _BLOCK)
    n_ext = n_blocks * _BLOCK + 2 * half_width  # input positions -K .. n_blocks*BLOCK + K - 1
    t = (energies - origins[:, None]) / spacing
    keep = (t > -half_width - 0.5) & (t < n_points - 1 + half_width + 0.5) & (weights != 0)
    rows = np.broadcast_to(np.arange(n_materials)[:, None], t.shape)[keep]
    t = t[keep]
    m = np.rint(t)
    u = t - m
    flat = rows * n_ext + (m.astype(np.int64) + half_width)
    base = weights[keep] * np.exp(-alpha * u * u)
    moments = np.empty((n_materials, n_ext, n_terms))
    power = base
    for p in range(n_terms):
        moments[:, :, p] = np.bincount(flat, weights=power, minlength=n_materials * n_ext).reshape(n_materials, n_ext)
        if p + 1 < n_terms:
            power = power * u
    kernel = _block_kernel(alpha, half_width, n_terms)
    n_inputs = _BLOCK + 2 * half_width
    dos = np.empty((n_materials, n_blocks * _BLOCK))
    for block in range(n_blocks):
        # a view (n, n_inputs * n_terms): each row is contiguous, rows n_ext * n_terms apart -> one GEMM, no copy
        inputs = moments[:, block * _BLOCK : block * _BLOCK + n_inputs, :].reshape(n_materials, n_inputs * n_terms)
        dos[:, block * _BLOCK : (block + 1) * _BLOCK] = inputs @ kernel
    dos = dos[:, :n_points]
    return dos / (sigma * math.sqrt(math.pi))
