"""Model spectra shared by the core tests (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import numpy as np


def chain_bands(n_cells: int, n_kpoints: int, onsite: float = 1.0, hopping: float = -1.5) -> np.ndarray:
    """Eigenvalues (eV), shape (1, n_k, 2 n_cells), of a diatomic tight-binding chain in a supercell of n_cells cells.

    Diagonalises the ``2 n_cells`` x ``2 n_cells`` Bloch Hamiltonian on an unshifted mesh of the supercell's BZ.
    """
    n_sites = 2 * n_cells
    eigenvalues = []
    for j in range(n_kpoints):
        phase = np.exp(2j * np.pi * j / n_kpoints)
        hamiltonian = np.diag([onsite if s % 2 == 0 else -onsite for s in range(n_sites)]).astype(complex)
        for s in range(n_sites - 1):
            hamiltonian[s, s + 1] = hamiltonian[s + 1, s] = hopping
        hamiltonian[n_sites - 1, 0] += hopping * phase
        hamiltonian[0, n_sites - 1] += hopping * np.conj(phase)
        eigenvalues.append(np.linalg.eigvalsh(hamiltonian))
    return np.array(eigenvalues)[np.newaxis]
