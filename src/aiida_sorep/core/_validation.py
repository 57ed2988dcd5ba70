"""Input validation shared by the spectral core (private).

Every check raises ``ValueError`` with a message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

#: Relative tolerance on the sum of the k-point weights.
WEIGHTS_SUM_RTOL = 1e-6


def as_eigenvalues(eigenvalues: ArrayLike, *, name: str = 'eigenvalues') -> np.ndarray:
    """Return eigenvalues as a float array of shape ``(n_spins, n_kpoints, n_bands)``.

    Accepts ``(n_kpoints, n_bands)`` for one spin channel. Rejects NaN/inf, empty arrays and ``n_spins > 2``.
    """
    array = np.asarray(eigenvalues, dtype=float)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(
            f'{name} must have shape (n_spins, n_kpoints, n_bands) or (n_kpoints, n_bands), got shape {array.shape}'
        )
    if array.shape[0] not in (1, 2):
        raise ValueError(
            f'{name} must have 1 or 2 spin channels along axis 0, got {array.shape[0]} (shape {array.shape})'
        )
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f'{name} is empty (shape {array.shape}): need at least one k-point and one band')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{name} contain NaN or inf: check the parsed band structure (energies in eV)')
    return array


def as_weights(weights: ArrayLike, n_kpoints: int, n_spins: int) -> np.ndarray:
    """Return k-point weights of shape ``(n_kpoints,)`` after checking QE's normalisation.

    QE's convention: the weights sum to 2 for a non-spin-polarised calculation (``n_spins == 1``: the factor 2 is
    the spin degeneracy) and to 1 for a spin-polarised one (``n_spins == 2``, the same weights for both channels).
    A state ``(s, k, n)`` with occupation ``f`` (between 0 and 1) then holds ``w_k * f`` electrons.
    """
    array = np.asarray(weights, dtype=float)
    if array.ndim != 1 or array.shape[0] != n_kpoints:
        raise ValueError(f'weights must have shape (n_kpoints,)=({n_kpoints},), got {array.shape}')
    if not np.all(np.isfinite(array)):
        raise ValueError('weights contain NaN or inf')
    if np.any(array < 0):
        raise ValueError('weights must be non-negative')
    expected = 2.0 / n_spins
    total = float(array.sum())
    if not math.isclose(total, expected, rel_tol=WEIGHTS_SUM_RTOL):
        hint = f'multiply them by {expected / total:.6g}' if total > 0 else 'they are all zero'
        raise ValueError(
            f'k-point weights sum to {total:.10g} but QE convention needs {expected:g} for n_spins={n_spins} '
            f'(2 for one spin channel, 1 per channel for two): {hint}'
        )
    return array


def as_width(width: float, *, name: str = 'width') -> float:
    """Return a smearing width in eV (``>= 0``, finite)."""
    value = float(width)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f'{name} must be a finite non-negative energy in eV, got {width!r}')
    return value


def as_positive(value: float | None, *, name: str, unit: str) -> float:
    """Return a strictly positive finite float or raise."""
    if value is None:
        raise ValueError(f'{name} is required ({unit})')
    result = float(value)
    if not math.isfinite(result) or result <= 0:
        raise ValueError(f'{name} must be a finite positive number ({unit}), got {value!r}')
    return result


def check_n_electrons(n_electrons: float, n_spins: int, n_bands: int) -> float:
    """Check that there are enough bands to hold ``n_electrons`` with at least one state above the Fermi level."""
    value = float(n_electrons)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f'n_electrons must be a finite positive number, got {n_electrons!r}')
    capacity = 2.0 * n_bands  # electrons that fit in all bands (both spin channels)
    if value >= capacity - 1e-9:
        needed = math.floor(value / 2.0 + 1e-9) + 1
        raise ValueError(
            f'needs more than n_electrons/2={value / 2:g} bands per spin (at least {needed}) to place the Fermi level '
            f'with empty states above it, got {n_bands}: increase nbnd'
        )
    return value
