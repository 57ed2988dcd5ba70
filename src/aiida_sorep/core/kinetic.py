r"""Kinetic-energy SOREP: the smeared spectrum of a one-electron operator on Bloch sums of atomic Gaussians.

No DFT is involved. Every atom carries contracted Gaussian orbitals (by default the ANO-ML-OS basis of
:mod:`aiida_sorep.core.basis`); at every k-point of a Γ-centred grid PySCF builds the Bloch sums
:math:`\phi_{\mu k}(r) = \sum_R e^{ik\cdot R}\phi_\mu(r - \tau_\mu - R)`, the operator matrix
:math:`O_{\mu\nu}(k) = \langle\phi_{\mu k}|\hat O|\phi_{\nu k}\rangle` and the overlap
:math:`S_{\mu\nu}(k)`, and the generalized eigenproblem :math:`O(k)c = \varepsilon S(k) c` is solved. The
spectrum is smeared with Gaussians on an energy grid:

.. math:: g(E) = \frac{1}{\mathcal N}\,\frac{1}{N_k}\sum_{k}\sum_{n} \tilde\delta_\sigma(E - \varepsilon_{nk}),
   \qquad \tilde\delta_\sigma(x) = \frac{e^{-x^2/\sigma^2}}{\sigma\sqrt\pi},

with :math:`\mathcal N = V` (``'volume'``: states / eV / Å^3, the default and the only choice invariant under
a supercell), :math:`\mathcal N = N_\mathrm{orb}` (``'orbital'``: integrates to 1) or
:math:`\mathcal N = V N_\mathrm{orb}` (``'volume_orbital'``: the normalisation of Eq. 10 of Zadoks, Marrazzo &
Marzari, npj Comput. Mater. 10, 250 (2024); it scales as 1/(number of cells) under a supercell, cosine
distances do not see the difference).

Near-linear dependence of the Bloch sums (PySCF issues 1017 and 3093) is handled by canonical
orthogonalisation: at each k the overlap is scaled to unit diagonal, :math:`\tilde S = D^{-1/2} S D^{-1/2}`,
diagonalised, and the eigenvectors with eigenvalue below ``lindep_threshold`` (default 1e-7) are dropped; the
operator is diagonalised in the remaining orthonormal space :math:`X = D^{-1/2} U_\mathrm{kept} s^{-1/2}`.
Dropped states are excluded from the DOS and counted in :attr:`OperatorSpectrum.n_dropped`.

This module does not import ``aiida``; energies are eV, lengths Å, k-point spacings 1/Å (with the 2π).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = (
    'HARTREE_TO_EV',
    'KineticSorep',
    'KpointReduction',
    'Normalization',
    'Operator',
    'OperatorSpectrum',
    'StructureArrays',
    'compute_operator_spectrum',
    'gaussian_dos',
    'irreducible_kpoints',
    'kinetic_sorep',
    'kpoint_mesh',
    'kpoint_mesh_from_spacing',
    'structure_arrays',
)

HARTREE_TO_EV = 27.211386245988  # CODATA 2018
BOHR_TO_ANGSTROM = 0.529177210903
DEFAULT_LINDEP_THRESHOLD = 1e-7
DEFAULT_EXP_TO_DISCARD = 0.1  # Bohr^-2, as in the reference implementation of the paper (azadoks/sorep)
_GAUSSIAN_CUTOFF = 8.0  # widths beyond which a Gaussian is neglected on uniform grids
_DROPPED_SHIFT_HA = 1e8  # dropped directions are shifted out of the spectrum by this much (Ha)


class Operator(str, enum.Enum):
    """One-electron operator whose spectrum is featurized."""

    KINETIC = 'kinetic'
    """:math:`-\\frac12\\nabla^2` (``int1e_kin``), generalized eigenproblem with the overlap."""
    OVERLAP = 'overlap'
    """The overlap (Gram) matrix itself, ordinary eigenproblem: the spectrum of the identity in the non-orthogonal
    basis, dimensionless (reported in the 'eV' arrays unscaled)."""
    KINETIC_NUCLEAR = 'kinetic+nuclear'
    """:math:`-\\frac12\\nabla^2 - \\sum_A Z_A/|r - R_A|` (neutralising background, PySCF GDF); slow."""


class KpointReduction(str, enum.Enum):
    """Which k-points of the full Γ-centred mesh are diagonalised."""

    NONE = 'none'
    """All of them."""
    TIME_REVERSAL = 'time_reversal'
    """One of each (k, -k) pair, double weight."""
    SPGLIB = 'spglib'
    """The irreducible wedge under the space group found by spglib (with time reversal), weights by star size."""


class Normalization(str, enum.Enum):
    """Normalisation of the smeared spectrum."""

    VOLUME = 'volume'
    ORBITAL = 'orbital'
    VOLUME_ORBITAL = 'volume_orbital'


@dataclass(frozen=True)
class StructureArrays:
    """A periodic structure as plain arrays: ``lattice`` (3, 3) Å (rows are vectors), ``positions`` (n_atoms, 3)
    Cartesian Å, ``symbols`` (n_atoms,)."""

    lattice: np.ndarray
    positions: np.ndarray
    symbols: tuple[str, ...]

    @property
    def volume(self) -> float:
        """Cell volume in Å^3."""
        return float(abs(np.linalg.det(self.lattice)))


def structure_arrays(structure: Any) -> StructureArrays:
    """Convert a pymatgen ``Structure``, an ASE ``Atoms`` or a :class:`StructureArrays` to :class:`StructureArrays`."""
    if isinstance(structure, StructureArrays):
        return structure
    if hasattr(structure, 'lattice') and hasattr(structure, 'cart_coords'):  # pymatgen
        if not structure.is_ordered:
            raise ValueError('the pymatgen structure is disordered: order it first (one element per site)')
        return StructureArrays(
            lattice=np.array(structure.lattice.matrix, dtype=float),
            positions=np.array(structure.cart_coords, dtype=float),
            symbols=tuple(site.specie.symbol for site in structure),
        )
    if hasattr(structure, 'get_chemical_symbols') and hasattr(structure, 'cell'):  # ASE
        if not np.all(structure.pbc) or abs(np.linalg.det(structure.cell.array)) < 1e-8:
            raise ValueError('the ASE Atoms must be periodic in 3D with a full cell (add vacuum with atoms.center)')
        return StructureArrays(
            lattice=np.array(structure.cell.array, dtype=float),
            positions=np.array(structure.positions, dtype=float),
            symbols=tuple(structure.get_chemical_symbols()),
        )
    raise ValueError(f'expected a pymatgen Structure or an ASE Atoms, got {type(structure).__name__}')


def kpoint_mesh_from_spacing(lattice: np.ndarray, spacing: float) -> tuple[int, int, int]:
    """Γ-centred mesh with at most ``spacing`` (1/Å, 2π included) between k-points along each reciprocal vector.

    :param lattice: (3, 3) lattice vectors in Å, as rows.
    """
    if not spacing > 0:
        raise ValueError(f'k-point spacing must be positive (1/Å), got {spacing}')
    reciprocal = 2 * np.pi * np.linalg.inv(np.asarray(lattice, dtype=float)).T
    lengths = np.linalg.norm(reciprocal, axis=1)
    n1, n2, n3 = (max(1, math.ceil(length / spacing - 1e-8)) for length in lengths)
    return n1, n2, n3


def kpoint_mesh(mesh: Sequence[int], time_reversal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fractional Γ-centred k-points and weights (summing to 1).

    With ``time_reversal`` only one of each pair (k, -k) is kept with double weight: the spectrum of a real
    operator is the same at k and -k.

    :return: ``(kpoints_frac (n_k, 3), weights (n_k,))``.
    """
    n = np.asarray(mesh, dtype=int)
    if n.shape != (3,) or np.any(n < 1):
        raise ValueError(f'k-point mesh must be three positive integers, got {mesh}')
    index = np.stack(np.meshgrid(*(np.arange(m) for m in n), indexing='ij'), axis=-1).reshape(-1, 3)
    frac = index / n
    weights = np.ones(len(index))
    if time_reversal:
        flat = np.ravel_multi_index(index.T, n)
        flat_minus = np.ravel_multi_index(((-index) % n).T, n)
        keep = flat <= flat_minus
        weights = np.where(flat[keep] < flat_minus[keep], 2.0, 1.0)
        frac = frac[keep]
    return frac, weights / weights.sum()


def irreducible_kpoints(
    arrays: StructureArrays, mesh: Sequence[int], symprec: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """Irreducible k-points of a Γ-centred ``mesh`` under the space group of ``arrays`` (spglib, time reversal).

    Scalar one-electron operators (kinetic energy, overlap, nuclear attraction) have the same spectrum at
    symmetry-equivalent k-points. ``symprec`` is spglib's distance tolerance in Å.

    :return: ``(kpoints_frac (n_irr, 3), weights (n_irr,))``, weights summing to 1.
    """
    import warnings

    import spglib
    from ase.data import atomic_numbers

    mesh_array = np.asarray(mesh, dtype=int)
    positions = arrays.positions @ np.linalg.inv(arrays.lattice)
    numbers = [atomic_numbers[symbol] for symbol in arrays.symbols]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # spglib's OLD_ERROR_HANDLING notice
        result = spglib.get_ir_reciprocal_mesh(
            mesh_array,
            (arrays.lattice.tolist(), positions.tolist(), numbers),
            is_shift=[0, 0, 0],
            is_time_reversal=True,
            symprec=symprec,
        )
    if result is None:  # spglib could not find the symmetry: fall back to time reversal only
        return kpoint_mesh(mesh_array, time_reversal=True)
    mapping, grid = result
    representatives, counts = np.unique(mapping, return_counts=True)
    return grid[representatives] / mesh_array, counts / counts.sum()


@dataclass(frozen=True)
class OperatorSpectrum:
    """Spectrum of a one-electron operator on a k-point grid.

    :ivar eigenvalues: (n_k, n_orbitals) in eV (dimensionless for ``overlap``), ascending per k; entries with
        ``valid == False`` are directions removed by canonical orthogonalisation (value is meaningless).
    :ivar valid: (n_k, n_orbitals) bool.
    :ivar kpoints: (n_k, 3) fractional coordinates; ``weights`` (n_k,) sum to 1.
    """

    eigenvalues: np.ndarray
    valid: np.ndarray
    kpoints: np.ndarray
    weights: np.ndarray
    mesh: tuple[int, int, int]
    n_orbitals: int
    volume: float
    operator: str
    lindep_threshold: float
    basis: str

    @property
    def n_dropped(self) -> int:
        """Number of (k, orbital) directions dropped for near-linear dependence."""
        return int(np.count_nonzero(~self.valid))


@dataclass(frozen=True)
class KineticSorep:
    """A smeared operator spectrum on an energy grid.

    :ivar energies: (n_points,) eV. :ivar features: (n_points,) in the units of ``normalization``.
    :ivar cutoff_energy: energy (eV) above which states were dropped by the cumulative-DOS cutoff, or None.
    :ivar parameters: JSON-serialisable record of every setting (for ``SorepFeaturesData``).
    """

    energies: np.ndarray
    features: np.ndarray
    spectrum: OperatorSpectrum
    cutoff_energy: float | None
    parameters: Mapping[str, Any] = field(default_factory=dict)


def _build_cell(arrays: StructureArrays, basis: Any, exp_to_discard: float | None, precision: float) -> Any:
    from ase.data import atomic_numbers
    from pyscf.pbc import gto as pbcgto

    from .basis import load_ano_ml_os

    if isinstance(basis, str) and basis.lower() == 'ano-ml-os':
        basis = load_ano_ml_os(arrays.symbols)
    cell = pbcgto.Cell()
    cell.a = arrays.lattice
    cell.atom = [(symbol, tuple(position)) for symbol, position in zip(arrays.symbols, arrays.positions, strict=True)]
    cell.unit = 'Angstrom'
    cell.basis = basis
    cell.exp_to_discard = exp_to_discard
    cell.precision = precision
    cell.verbose = 0
    # the operators do not depend on the electron count, but PySCF checks its parity against the spin
    cell.spin = sum(atomic_numbers[symbol] for symbol in arrays.symbols) % 2
    cell.build(dump_input=False, parse_arg=False)
    return cell


def _canonical_eigvalsh(operator: np.ndarray, overlap: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Batched generalized eigenvalues with canonical orthogonalisation.

    :param operator: (n_k, n, n) Hermitian. :param overlap: (n_k, n, n) Hermitian positive semi-definite.
    :return: ``(eigenvalues (n_k, n), valid (n_k, n))``, eigenvalues ascending, invalid ones last.
    """
    diag = np.real(np.einsum('kii->ki', overlap))
    if np.any(diag <= 0):
        raise ValueError('overlap matrix has a non-positive diagonal: the basis contains a null function')
    scale = 1.0 / np.sqrt(diag)
    scaled = overlap * scale[:, :, None] * scale[:, None, :]
    s, u = np.linalg.eigh(scaled)
    kept = s > threshold
    x = u * np.where(kept, 1.0 / np.sqrt(np.where(kept, s, 1.0)), 0.0)[:, None, :]
    x = x * scale[:, :, None]
    projected = np.conj(np.swapaxes(x, 1, 2)) @ operator @ x
    n_kept = kept.sum(axis=1)
    projected = projected + np.einsum('ki,ij->kij', np.where(kept, 0.0, _DROPPED_SHIFT_HA), np.eye(x.shape[-1]))
    eigenvalues = np.linalg.eigvalsh(projected)
    valid = np.arange(x.shape[-1])[None, :] < n_kept[:, None]
    return eigenvalues, valid


def compute_operator_spectrum(
    structure: Any,
    *,
    kspacing: float | None = 0.2,
    mesh: Sequence[int] | None = None,
    operator: Operator | str = Operator.KINETIC,
    basis: Any = 'ano-ml-os',
    exp_to_discard: float | None = DEFAULT_EXP_TO_DISCARD,
    lindep_threshold: float = DEFAULT_LINDEP_THRESHOLD,
    kpoint_reduction: KpointReduction | str = KpointReduction.SPGLIB,
    symprec: float = 1e-5,
    precision: float = 1e-8,
) -> OperatorSpectrum:
    """Spectrum of ``operator`` on the Bloch sums of ``basis`` for a periodic ``structure``.

    :param structure: pymatgen ``Structure``, ASE ``Atoms`` (3D periodic) or :class:`StructureArrays`.
    :param kspacing: maximum k-point spacing in 1/Å (2π included); ignored if ``mesh`` is given.
    :param mesh: explicit Γ-centred mesh, e.g. ``(4, 4, 4)``.
    :param basis: ``'ano-ml-os'`` (shipped) or anything PySCF's ``Cell.basis`` accepts (e.g. ``'sto-3g'``).
    :param exp_to_discard: primitives with exponent below this (Bohr^-2) are removed by PySCF before the
        contraction is renormalised; None keeps the full basis (slower lattice sums, more linear dependence).
    :param lindep_threshold: eigenvalues of the unit-diagonal overlap below this are dropped (canonical
        orthogonalisation).
    :param kpoint_reduction: ``'spglib'`` (irreducible wedge, default), ``'time_reversal'`` or ``'none'``.
    :param symprec: spglib's tolerance (Å) for ``'spglib'``.
    :param precision: PySCF's ``Cell.precision`` (sets the lattice-sum cutoffs).
    """
    operator = Operator(operator)
    arrays = structure_arrays(structure)
    if mesh is None:
        if kspacing is None:
            raise ValueError('give either a k-point spacing (1/Å) or an explicit mesh')
        mesh = kpoint_mesh_from_spacing(arrays.lattice, kspacing)
    mesh = tuple(int(m) for m in mesh)
    if not 0 < lindep_threshold < 1:
        raise ValueError(f'lindep_threshold must be in (0, 1), got {lindep_threshold}')
    reduction = KpointReduction(kpoint_reduction)
    if reduction is KpointReduction.SPGLIB:
        frac, weights = irreducible_kpoints(arrays, mesh, symprec=symprec)
    else:
        frac, weights = kpoint_mesh(mesh, time_reversal=reduction is KpointReduction.TIME_REVERSAL)
    cell = _build_cell(arrays, basis, exp_to_discard, precision)
    kpts = cell.get_abs_kpts(frac)  # 1/Bohr
    overlap = np.asarray(cell.pbc_intor('int1e_ovlp', hermi=1, kpts=kpts)).reshape(len(kpts), cell.nao, cell.nao)
    if operator is Operator.OVERLAP:
        eigenvalues = np.linalg.eigvalsh(overlap)
        valid = np.ones(eigenvalues.shape, dtype=bool)
    else:
        matrix = np.asarray(cell.pbc_intor('int1e_kin', hermi=1, kpts=kpts)).reshape(overlap.shape)
        if operator is Operator.KINETIC_NUCLEAR:
            from pyscf.pbc import df

            matrix = matrix + np.asarray(df.GDF(cell, kpts).get_nuc(kpts)).reshape(overlap.shape)
        eigenvalues, valid = _canonical_eigvalsh(matrix, overlap, lindep_threshold)
        eigenvalues = eigenvalues * HARTREE_TO_EV
    return OperatorSpectrum(
        eigenvalues=eigenvalues,
        valid=valid,
        kpoints=frac,
        weights=weights,
        mesh=mesh,  # type: ignore[arg-type]
        n_orbitals=int(cell.nao),
        volume=arrays.volume,
        operator=operator.value,
        lindep_threshold=float(lindep_threshold),
        basis=basis if isinstance(basis, str) else 'custom',
    )


def gaussian_dos(
    eigenvalues: np.ndarray, weights: np.ndarray, energies: np.ndarray, width: float, chunk: int = 4096
) -> np.ndarray:
    r""":math:`\sum_i w_i e^{-(E-\varepsilon_i)^2/\sigma^2}/(\sigma\sqrt\pi)` on ``energies``.

    On a uniform grid each state only touches the grid points within ``_GAUSSIAN_CUTOFF`` (8) widths of it
    (the neglected tail is below exp(-64) of the peak); otherwise the dense sum is done in chunks of ``chunk``
    states.

    :param eigenvalues: (n,) eV. :param weights: (n,). :param energies: (n_points,) eV. :param width: σ in eV.
    :return: (n_points,) states / eV (times the weights' unit).
    """
    if not width > 0:
        raise ValueError(f'smearing width must be positive (eV), got {width}')
    eigenvalues = np.ravel(eigenvalues)
    weights = np.ravel(weights)
    energies = np.asarray(energies, dtype=float)
    n_points = energies.size
    step = (energies[-1] - energies[0]) / (n_points - 1)
    out = np.zeros(n_points)
    if np.allclose(np.diff(energies), step, rtol=1e-9, atol=0.0):
        reach = int(np.ceil(_GAUSSIAN_CUTOFF * width / step)) + 1
        first = np.floor((eigenvalues - energies[0]) / step).astype(np.int64) - reach + 1
        for start in range(0, eigenvalues.size, chunk):
            part = slice(start, start + chunk)
            index = first[part, None] + np.arange(2 * reach)[None, :]
            inside = (index >= 0) & (index < n_points)
            x = (energies[np.clip(index, 0, n_points - 1)] - eigenvalues[part, None]) / width
            values = np.where(inside, np.exp(-(x**2)), 0.0) * weights[part, None]
            out += np.bincount(np.clip(index, 0, n_points - 1).ravel(), values.ravel(), minlength=n_points)
    else:
        for start in range(0, eigenvalues.size, chunk):
            x = (energies[:, None] - eigenvalues[None, start : start + chunk]) / width
            out += np.exp(-(x**2)) @ weights[start : start + chunk]
    return out / (width * np.sqrt(np.pi))


def _cumulative_cutoff(values: np.ndarray, weights: np.ndarray, fraction: float) -> float:
    """Smallest energy below which ``fraction`` of the (weighted) states lie."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, fraction * cumulative[-1] * (1 - 1e-12)))
    return float(values[order][min(index, len(order) - 1)])


def kinetic_sorep(
    structure: Any,
    *,
    energies: np.ndarray | None = None,
    e_min: float = 0.0,
    e_max: float = 180.0,
    n_points: int = 1024,
    width: float = 0.8,
    normalization: Normalization | str = Normalization.VOLUME,
    cumulative_cutoff: float | None = None,
    kspacing: float | None = 0.2,
    mesh: Sequence[int] | None = None,
    operator: Operator | str = Operator.KINETIC,
    basis: Any = 'ano-ml-os',
    exp_to_discard: float | None = DEFAULT_EXP_TO_DISCARD,
    lindep_threshold: float = DEFAULT_LINDEP_THRESHOLD,
    kpoint_reduction: KpointReduction | str = KpointReduction.SPGLIB,
    symprec: float = 1e-5,
) -> KineticSorep:
    """Kinetic SOREP of ``structure``: the Gaussian-smeared operator spectrum on an energy grid.

    :param energies: explicit grid (eV); otherwise ``linspace(e_min, e_max, n_points)``.
    :param width: Gaussian width σ in eV.
    :param cumulative_cutoff: if given (0 < f <= 1), states above the energy below which a fraction ``f`` of
        all states lie are dropped: the high end of a kinetic spectrum comes from the tight, core-like parts
        of the orbitals.
    Other parameters: see :func:`compute_operator_spectrum`.
    """
    normalization = Normalization(normalization)
    grid = np.linspace(e_min, e_max, n_points) if energies is None else np.asarray(energies, dtype=float)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError('the energy grid must be 1D, strictly increasing, with at least 2 points')
    if cumulative_cutoff is not None and not 0 < cumulative_cutoff <= 1:
        raise ValueError(f'cumulative_cutoff must be in (0, 1], got {cumulative_cutoff}')
    spectrum = compute_operator_spectrum(
        structure,
        kspacing=kspacing,
        mesh=mesh,
        operator=operator,
        basis=basis,
        exp_to_discard=exp_to_discard,
        lindep_threshold=lindep_threshold,
        kpoint_reduction=kpoint_reduction,
        symprec=symprec,
    )
    state_weights = np.broadcast_to(spectrum.weights[:, None], spectrum.eigenvalues.shape)
    values = spectrum.eigenvalues[spectrum.valid]
    state_weights = state_weights[spectrum.valid]
    cutoff = None
    if cumulative_cutoff is not None:
        cutoff = _cumulative_cutoff(values, state_weights, cumulative_cutoff)
        keep = values <= cutoff
        values, state_weights = values[keep], state_weights[keep]
    norm = {
        Normalization.VOLUME: spectrum.volume,
        Normalization.ORBITAL: spectrum.n_orbitals,
        Normalization.VOLUME_ORBITAL: spectrum.volume * spectrum.n_orbitals,
    }[normalization]
    features = gaussian_dos(values, state_weights, grid, width) / norm
    parameters = {
        'kind': 'kinetic',
        'operator': spectrum.operator,
        'basis': spectrum.basis,
        'exp_to_discard': exp_to_discard,
        'lindep_threshold': spectrum.lindep_threshold,
        'kspacing': None if mesh is not None else kspacing,
        'mesh': list(spectrum.mesh),
        'kpoint_reduction': KpointReduction(kpoint_reduction).value,
        'symprec': float(symprec),
        'n_kpoints': len(spectrum.kpoints),
        'smearing': 'gaussian',
        'width': float(width),
        'e_min': float(grid[0]),
        'e_max': float(grid[-1]),
        'n_points': int(grid.size),
        'normalization': normalization.value,
        'cumulative_cutoff': cumulative_cutoff,
        'cutoff_energy': cutoff,
        'n_orbitals': spectrum.n_orbitals,
        'n_dropped': spectrum.n_dropped,
        'volume': spectrum.volume,
    }
    return KineticSorep(
        energies=grid, features=features, spectrum=spectrum, cutoff_energy=cutoff, parameters=parameters
    )
