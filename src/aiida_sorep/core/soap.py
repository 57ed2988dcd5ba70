"""SOAP baseline features (DScribe) with the settings of the SOREP paper: species-agnostic and averaged.

Zadoks, Marrazzo & Marzari (npj Comput. Mater. 2024) compare the SOREP classifiers against one trained on
Smooth Overlap of Atomic Positions descriptors: ``r_cut = 6 Å``, ``n_max = 10``, ``l_max = 9``, ``sigma = 0.3 Å``,
every atom treated as the same species (the descriptor then sees the geometry only), averaged over the atoms
of the cell (``average='inner'``). The result has ``n_max (n_max + 1) / 2 (l_max + 1) = 550`` components and
does not depend on the choice of the unit cell (a supercell gives the same vector).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ('PAPER_SOAP_SETTINGS', 'SoapSettings', 'soap_features')


@dataclasses.dataclass(frozen=True)
class SoapSettings:
    """SOAP hyper-parameters (lengths in Å)."""

    r_cut: float = 6.0
    n_max: int = 10
    l_max: int = 9
    sigma: float = 0.3
    rbf: str = 'gto'
    average: str = 'inner'
    species_agnostic: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary."""
        return dataclasses.asdict(self)


PAPER_SOAP_SETTINGS = SoapSettings()
"""The settings of the paper."""


def soap_features(
    cell: ArrayLike, positions: ArrayLike, symbols: list[str], settings: SoapSettings = PAPER_SOAP_SETTINGS
) -> np.ndarray:
    """Averaged SOAP vector of a periodic crystal.

    :param cell: lattice vectors as rows, shape ``(3, 3)``, Å.
    :param positions: Cartesian positions, shape ``(n_atoms, 3)``, Å.
    :param symbols: chemical symbols, length ``n_atoms`` (ignored if ``settings.species_agnostic``).
    :returns: shape ``(n_features,)`` (550 for the paper's settings).
    :raises ValueError: for an empty structure, mismatched lengths or a degenerate cell.
    """
    from ase import Atoms
    from dscribe.descriptors import SOAP

    cell = np.asarray(cell, dtype=float)
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[0] == 0 or positions.shape[1] != 3:
        raise ValueError(f'positions must have shape (n_atoms, 3) with n_atoms >= 1, got {positions.shape}')
    if len(symbols) != positions.shape[0]:
        raise ValueError(f'got {len(symbols)} symbols for {positions.shape[0]} positions')
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError(f'cell must be a non-degenerate (3, 3) matrix of lattice vectors in Å, got {cell.tolist()}')
    # Species-agnostic: every atom becomes the same (placeholder) element.
    species = ['H'] * len(symbols) if settings.species_agnostic else list(symbols)
    atoms = Atoms(symbols=species, positions=positions, cell=cell, pbc=True)
    descriptor = SOAP(
        species=sorted(set(species)),
        r_cut=settings.r_cut,
        n_max=settings.n_max,
        l_max=settings.l_max,
        sigma=settings.sigma,
        rbf=settings.rbf,
        average=settings.average,
        periodic=True,
        sparse=False,
    )
    return np.asarray(descriptor.create(atoms, n_jobs=1), dtype=float).ravel()
