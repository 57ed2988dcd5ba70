"""Smeared density of states on an energy grid.

``g(E) = sum_skn w_k delta((E - e_skn) / sigma) / sigma``, with the k-point weights of QE's convention (sum 2 for
one spin channel, 1 for two), so that ``g`` integrates to the number of states (both spin channels included):
``2 n_bands`` states per cell. ``delta`` is the smeared delta of :mod:`aiida_sorep.core.smearing` (the same function
as QE's ``w0gauss``, so Methfessel-Paxton and cold DOS can be negative).

Normalizations (:class:`DosNormalization`):

* ``cell``: states / eV / cell;
* ``volume``: states / eV / Å^3, ``g / V`` with ``V`` the cell volume in Å^3. A supercell and its unit cell give the
  same DOS (the SOREP paper's Eq. 10), which is why the feature maps use it by default;
* ``electron``: states / eV / electron, ``g / n_electrons``.
"""

from __future__ import annotations

import enum

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_eigenvalues, as_positive, as_weights, as_width
from .smearing import Smearing, delta

__all__ = ('DosNormalization', 'normalization_factor', 'smeared_dos')

#: Maximum number of (grid point x state) elements evaluated at once, to bound memory (about 64 MB per array).
_CHUNK_ELEMENTS = 4_000_000


class DosNormalization(str, enum.Enum):
    """Normalization of a density of states."""

    CELL = 'cell'
    VOLUME = 'volume'
    ELECTRON = 'electron'

    @classmethod
    def from_name(cls, name: str | DosNormalization) -> DosNormalization:
        """Return the normalization for its name; ``ValueError`` listing the valid names otherwise."""
        if isinstance(name, DosNormalization):
            return name
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            valid = ', '.join(member.value for member in cls)
            raise ValueError(f'unknown DOS normalization {name!r}: valid names are {valid}') from None

    @property
    def unit(self) -> str:
        """Unit of a DOS with this normalization."""
        return {'cell': 'states/eV/cell', 'volume': 'states/eV/Å^3', 'electron': 'states/eV/electron'}[self.value]


def normalization_factor(
    normalization: str | DosNormalization, *, volume: float | None = None, n_electrons: float | None = None
) -> float:
    """Factor that multiplies a per-cell DOS for the given normalization (``1``, ``1/volume`` or ``1/n_electrons``).

    :param volume: cell volume in Å^3 (required for ``volume``).
    :param n_electrons: electrons per cell (required for ``electron``).
    """
    norm = DosNormalization.from_name(normalization)
    if norm is DosNormalization.CELL:
        return 1.0
    if norm is DosNormalization.VOLUME:
        if volume is None:
            raise ValueError(
                "normalization='volume' needs the cell volume in Å^3: pass volume=..., or use normalization='cell'"
            )
        return 1.0 / as_positive(volume, name='volume', unit='Å^3')
    if n_electrons is None:
        raise ValueError(
            "normalization='electron' needs the number of electrons: pass n_electrons=..., or use normalization='cell'"
        )
    return 1.0 / as_positive(n_electrons, name='n_electrons', unit='electrons per cell')


def _dos_states(
    energies_states: np.ndarray, state_weights: np.ndarray, grid: np.ndarray, kind: Smearing, width: float
) -> np.ndarray:
    """Per-cell DOS of the given states on ``grid`` (1D arrays), chunked over states; states outside the support of
    the smearing around the grid are skipped."""
    support = kind.support * width
    keep = (energies_states >= grid.min() - support) & (energies_states <= grid.max() + support)
    keep &= state_weights != 0
    e = energies_states[keep]
    w = state_weights[keep]
    out = np.zeros(grid.shape, dtype=float)
    if e.size == 0:
        return out
    chunk = max(1, _CHUNK_ELEMENTS // max(1, grid.size))
    for start in range(0, e.size, chunk):
        stop = start + chunk
        x = (grid[:, np.newaxis] - e[np.newaxis, start:stop]) / width
        out += delta(x, kind) @ w[start:stop]
    return out / width


def smeared_dos(
    eigenvalues: ArrayLike,
    weights: ArrayLike,
    energies: ArrayLike,
    smearing: str | Smearing = 'gaussian',
    width: float = 0.05,
    normalization: str | DosNormalization = 'cell',
    *,
    volume: float | None = None,
    n_electrons: float | None = None,
    per_spin: bool = False,
) -> np.ndarray:
    """Smeared density of states on an energy grid.

    :param eigenvalues: eV, ``(n_spins, n_kpoints, n_bands)`` or ``(n_kpoints, n_bands)``.
    :param weights: ``(n_kpoints,)``, QE's convention (sum 2 for one spin channel, 1 for two).
    :param energies: grid in eV, any 1D array ``(n_grid,)``.
    :param smearing: broadening function (any smearing except ``fixed``).
    :param width: broadening width in eV (> 0).
    :param normalization: ``cell`` (states/eV/cell), ``volume`` (states/eV/Å^3) or ``electron``
        (states/eV/electron).
    :param volume: cell volume in Å^3 (for ``volume``).
    :param n_electrons: electrons per cell (for ``electron``).
    :param per_spin: return the DOS of each spin channel, shape ``(2, n_grid)`` (for one spin channel, each row is
        half the total, so spin-polarised and non-spin-polarised inputs of a non-magnetic system agree).
    :returns: ``(n_grid,)`` total DOS, or ``(2, n_grid)`` with ``per_spin=True``.
    """
    eig = as_eigenvalues(eigenvalues)
    n_spins, n_kpoints, _ = eig.shape
    w = as_weights(weights, n_kpoints, n_spins)
    grid = np.asarray(energies, dtype=float)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f'energies must be a non-empty 1D grid in eV, got shape {grid.shape}')
    if not np.all(np.isfinite(grid)):
        raise ValueError('energies contain NaN or inf')
    kind = Smearing.from_name(smearing)
    if kind is Smearing.FIXED:
        raise ValueError("a DOS needs a finite-width smearing: use e.g. smearing='gaussian'")
    sigma = as_width(width)
    if sigma == 0:
        raise ValueError('a DOS needs a positive smearing width in eV, e.g. width=0.05')
    factor = normalization_factor(normalization, volume=volume, n_electrons=n_electrons)

    state_weights = np.broadcast_to(w[np.newaxis, :, np.newaxis], eig.shape)
    per_channel = np.stack(
        [_dos_states(eig[s].reshape(-1), state_weights[s].reshape(-1), grid, kind, sigma) for s in range(n_spins)]
    )
    per_channel *= factor
    if not per_spin:
        return per_channel.sum(axis=0)
    if n_spins == 1:
        return np.concatenate([per_channel, per_channel]) / 2.0
    return per_channel
