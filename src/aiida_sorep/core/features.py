"""SOREP feature maps: the smeared density of states sampled on a fixed grid around a reference energy.

Following Zadoks, Marrazzo & Marzari, npj Comput. Mater. (2024), a material is represented by its DOS
``g(E)`` (see :mod:`aiida_sorep.core.dos`) sampled at ``n_points`` equally spaced energies (end points included)
in a window relative to a reference energy:

================  ==========================  ============  ==========
kind              reference                   window (eV)   n_points
================  ==========================  ============  ==========
``vbm``           valence-band maximum        [-2, +6]      513
``fermi``         Fermi level (mid-gap)       [-5, +5]      513
``cbm``           conduction-band minimum     [-6, +2]      513
``concatenated``  VBM, Fermi level and CBM    [-1, +1] each 3 x 171
================  ==========================  ============  ==========

All defaults use a Gaussian broadening of 0.05 eV and the per-volume normalization (states/eV/Å^3): the SOREP
paper's Eq. 10 divides by the cell volume so that a supercell and its unit cell have identical features, which is
what a representation of a *crystal* (not of a particular cell) must satisfy. For metals the VBM- and CBM-centred
maps (and the VBM/CBM blocks of the concatenated map) use the Fermi level as reference, as in the SOREP paper.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import WEIGHTS_SUM_RTOL, as_eigenvalues, as_weights, as_width, check_n_electrons
from .dos import DosNormalization, smeared_dos
from .edges import BandEdges, find_band_edges
from .fermi import DEFAULT_GAP_THRESHOLD, FermiResult, find_fermi_level
from .smearing import Smearing

__all__ = (
    'DEFAULT_FEATURE_PARAMETERS',
    'BatchFeatures',
    'FeatureKind',
    'FeatureParameters',
    'SorepFeatures',
    'compute_features',
    'featurize',
    'featurize_batch',
)

#: Version of the feature definition stored in :meth:`FeatureParameters.to_dict`.
FEATURES_VERSION = 1


class FeatureKind(str, enum.Enum):
    """Parameterization of a SOREP feature map (which reference energy the window is centred on)."""

    VBM = 'vbm'
    FERMI = 'fermi'
    CBM = 'cbm'
    CONCATENATED = 'concatenated'

    @property
    def references(self) -> tuple[str, ...]:
        """Reference energies of the blocks of the map, in order (``'vbm'``, ``'fermi'``, ``'cbm'``)."""
        if self is FeatureKind.CONCATENATED:
            return ('vbm', 'fermi', 'cbm')
        return (self.value,)


@dataclass(frozen=True)
class FeatureParameters:
    """Parameters of a SOREP feature map.

    :param kind: :class:`FeatureKind` (or its value).
    :param window: ``(lower, upper)`` energies in eV relative to the reference; for ``concatenated`` the window of
        each of the three blocks.
    :param n_points: total number of features (for ``concatenated`` a multiple of 3, each block has
        ``n_points // 3``).
    :param smearing: broadening function of the DOS (default Gaussian).
    :param width: broadening width in eV (default 0.05).
    :param normalization: :class:`~aiida_sorep.core.dos.DosNormalization` (default ``volume``).
    """

    kind: FeatureKind
    window: tuple[float, float]
    n_points: int
    smearing: Smearing = Smearing.GAUSSIAN
    width: float = 0.05
    normalization: DosNormalization = DosNormalization.VOLUME

    def __post_init__(self) -> None:
        try:
            kind = FeatureKind(self.kind)
        except ValueError:
            valid = ', '.join(member.value for member in FeatureKind)
            raise ValueError(f'unknown feature kind {self.kind!r}: valid kinds are {valid}') from None
        object.__setattr__(self, 'kind', kind)
        object.__setattr__(self, 'smearing', Smearing.from_name(self.smearing))
        object.__setattr__(self, 'normalization', DosNormalization.from_name(self.normalization))
        window = tuple(float(value) for value in self.window)
        if len(window) != 2 or not all(math.isfinite(v) for v in window) or window[0] >= window[1]:
            raise ValueError(f'window must be (lower, upper) in eV with lower < upper, got {self.window!r}')
        object.__setattr__(self, 'window', window)
        if isinstance(self.n_points, bool) or int(self.n_points) != self.n_points:
            raise ValueError(f'n_points must be an integer, got {self.n_points!r}')
        n_points = int(self.n_points)
        n_blocks = len(kind.references)
        if n_points < 2 * n_blocks or n_points % n_blocks:
            raise ValueError(
                f'n_points={n_points} must be a multiple of {n_blocks} with at least 2 points per block '
                f'for {kind.value}'
            )
        object.__setattr__(self, 'n_points', n_points)
        if self.smearing is Smearing.FIXED:
            raise ValueError("the feature DOS needs a finite-width smearing, e.g. smearing='gaussian'")
        width = as_width(self.width)
        if width == 0:
            raise ValueError('the feature DOS needs a positive width in eV, e.g. width=0.05')
        object.__setattr__(self, 'width', width)

    @property
    def points_per_block(self) -> int:
        """Number of grid points of each block."""
        return self.n_points // len(self.kind.references)

    def block_grid(self) -> np.ndarray:
        """Energies in eV relative to the reference of one block, shape ``(points_per_block,)``."""
        return np.linspace(self.window[0], self.window[1], self.points_per_block)

    def grid(self) -> np.ndarray:
        """Energies in eV relative to each block's reference, shape ``(n_points,)``."""
        return np.tile(self.block_grid(), len(self.kind.references))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (plain ``str``/``float``/``int``/``list``)."""
        return {
            'kind': self.kind.value,
            'window': [float(self.window[0]), float(self.window[1])],
            'n_points': int(self.n_points),
            'smearing': self.smearing.value,
            'width': float(self.width),
            'normalization': self.normalization.value,
            'references': list(self.kind.references),
            'version': FEATURES_VERSION,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureParameters:
        """Inverse of :meth:`to_dict` (``references`` and ``version`` are checked, not stored)."""
        version = data.get('version', FEATURES_VERSION)
        if version != FEATURES_VERSION:
            raise ValueError(f'feature parameters of version {version} are not supported (this is {FEATURES_VERSION})')
        known = {'kind', 'window', 'n_points', 'smearing', 'width', 'normalization', 'references', 'version'}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f'unknown feature parameters {sorted(unknown)}: valid keys are {sorted(known)}')
        parameters = cls(
            kind=data['kind'],
            window=tuple(data['window']),
            n_points=data['n_points'],
            smearing=data.get('smearing', Smearing.GAUSSIAN),
            width=data.get('width', 0.05),
            normalization=data.get('normalization', DosNormalization.VOLUME),
        )
        if 'references' in data and list(data['references']) != list(parameters.kind.references):
            raise ValueError(f'references {data["references"]} do not match kind {parameters.kind.value}')
        return parameters


#: The four parameterizations of the SOREP paper (Gaussian 0.05 eV, per-volume normalization).
DEFAULT_FEATURE_PARAMETERS: dict[FeatureKind, FeatureParameters] = {
    FeatureKind.VBM: FeatureParameters(FeatureKind.VBM, (-2.0, 6.0), 513),
    FeatureKind.FERMI: FeatureParameters(FeatureKind.FERMI, (-5.0, 5.0), 513),
    FeatureKind.CBM: FeatureParameters(FeatureKind.CBM, (-6.0, 2.0), 513),
    FeatureKind.CONCATENATED: FeatureParameters(FeatureKind.CONCATENATED, (-1.0, 1.0), 513),
}


@dataclass(frozen=True)
class SorepFeatures:
    """One SOREP feature map of one material.

    :param features: ``(n_points,)`` DOS on the grid (unit given by ``parameters.normalization``).
    :param energies: ``(n_points,)`` grid in eV relative to each block's reference energy.
    :param parameters: the parameterization.
    :param reference_energies: absolute reference energy (eV) of each block, e.g. ``(vbm,)`` or
        ``(vbm, fermi, cbm)``.
    """

    features: np.ndarray
    energies: np.ndarray
    parameters: FeatureParameters
    reference_energies: tuple[float, ...] = field(default=())


def _references(fermi_energy: float, vbm: float | None, cbm: float | None) -> dict[str, float]:
    e_f = float(fermi_energy)
    if not math.isfinite(e_f):
        raise ValueError(f'fermi_energy must be finite (eV), got {fermi_energy!r}')
    refs = {'fermi': e_f, 'vbm': e_f if vbm is None else float(vbm), 'cbm': e_f if cbm is None else float(cbm)}
    for name, value in refs.items():
        if not math.isfinite(value):
            raise ValueError(f'{name} must be finite (eV), got {value!r}')
    if refs['vbm'] > refs['cbm']:
        raise ValueError(f'vbm={refs["vbm"]:g} eV is above cbm={refs["cbm"]:g} eV')
    return refs


def compute_features(
    eigenvalues: ArrayLike,
    weights: ArrayLike,
    parameters: FeatureParameters,
    *,
    fermi_energy: float,
    vbm: float | None,
    cbm: float | None,
    volume: float | None = None,
    n_electrons: float | None = None,
) -> SorepFeatures:
    """Compute one SOREP feature map.

    :param eigenvalues: eV, ``(n_spins, n_kpoints, n_bands)`` or ``(n_kpoints, n_bands)``.
    :param weights: ``(n_kpoints,)``, QE's convention (sum 2 for one spin channel, 1 for two).
    :param parameters: the parameterization.
    :param fermi_energy: eV.
    :param vbm: eV; ``None`` (metals) means the Fermi level.
    :param cbm: eV; ``None`` (metals) means the Fermi level.
    :param volume: cell volume in Å^3 (needed for the ``volume`` normalization).
    :param n_electrons: electrons per cell (needed for the ``electron`` normalization).
    """
    if not isinstance(parameters, FeatureParameters):
        raise ValueError(f'parameters must be a FeatureParameters, got {type(parameters).__name__}')
    refs = _references(fermi_energy, vbm, cbm)
    block = parameters.block_grid()
    references = tuple(refs[name] for name in parameters.kind.references)
    absolute = np.concatenate([block + ref for ref in references])
    features = smeared_dos(
        eigenvalues,
        weights,
        absolute,
        parameters.smearing,
        parameters.width,
        parameters.normalization,
        volume=volume,
        n_electrons=n_electrons,
    )
    return SorepFeatures(features, parameters.grid(), parameters, references)


def _parameter_map(
    parameters: FeatureParameters | Iterable[FeatureParameters] | Mapping[Any, FeatureParameters] | None,
) -> dict[FeatureKind, FeatureParameters]:
    if parameters is None:
        return dict(DEFAULT_FEATURE_PARAMETERS)
    if isinstance(parameters, FeatureParameters):
        return {parameters.kind: parameters}
    values = list(parameters.values()) if isinstance(parameters, Mapping) else list(parameters)
    result: dict[FeatureKind, FeatureParameters] = {}
    for value in values:
        if not isinstance(value, FeatureParameters):
            raise ValueError(f'parameters must be FeatureParameters, got {type(value).__name__}')
        if value.kind in result:
            raise ValueError(f'two parameterizations of kind {value.kind.value}: pass at most one per kind')
        result[value.kind] = value
    if not result:
        raise ValueError('parameters is empty: pass None for the defaults')
    return result


def featurize(
    eigenvalues: ArrayLike,
    weights: ArrayLike,
    n_electrons: float,
    *,
    smearing: str | Smearing = 'gaussian',
    width: float = 0.0,
    volume: float | None = None,
    parameters: FeatureParameters | Iterable[FeatureParameters] | Mapping[Any, FeatureParameters] | None = None,
    midgap: bool = True,
) -> tuple[FermiResult, BandEdges, dict[FeatureKind, SorepFeatures]]:
    """Fermi level, band edges and SOREP feature maps of one material.

    :param eigenvalues: eV, ``(n_spins, n_kpoints, n_bands)`` or ``(n_kpoints, n_bands)``.
    :param weights: ``(n_kpoints,)``, QE's convention (sum 2 for one spin channel, 1 for two).
    :param n_electrons: valence electrons per cell.
    :param smearing: occupation smearing *of the calculation*, used for the Fermi level only (the broadening of the
        features is in ``parameters``).
    :param width: occupation smearing width in eV (0: zero temperature).
    :param volume: cell volume in Å^3 (needed by the default, per-volume normalization).
    :param parameters: feature parameterizations (default: the paper's four, :data:`DEFAULT_FEATURE_PARAMETERS`).
    :param midgap: put the Fermi level of gapped systems at mid-gap (default, as in the SOREP paper).
    """
    eig = as_eigenvalues(eigenvalues)
    w = as_weights(weights, eig.shape[1], eig.shape[0])
    fermi = find_fermi_level(eig, w, n_electrons, smearing, width, midgap=midgap)
    edges = find_band_edges(eig, fermi.fermi_energy, is_gapped=fermi.is_gapped)
    maps = {
        kind: compute_features(
            eig,
            w,
            params,
            fermi_energy=fermi.fermi_energy,
            vbm=edges.vbm,
            cbm=edges.cbm,
            volume=volume,
            n_electrons=n_electrons,
        )
        for kind, params in _parameter_map(parameters).items()
    }
    return fermi, edges, maps


@dataclass(frozen=True)
class BatchFeatures:
    """SOREP features of many materials (energies in eV).

    :param fermi_energy: ``(n_materials,)``.
    :param vbm_reference: ``(n_materials,)`` reference of the VBM-centred maps: the VBM, or the Fermi level for
        metals.
    :param cbm_reference: ``(n_materials,)`` the CBM, or the Fermi level for metals.
    :param band_gap: ``(n_materials,)``, 0 for metals.
    :param is_metal: ``(n_materials,)`` bool.
    :param features: for each kind, ``(n_materials, n_points)``.
    :param energies: for each kind, ``(n_points,)`` relative grid.
    :param parameters: for each kind, the parameterization.
    :param fermi_method: ``(n_materials,)`` str, the method of :class:`~aiida_sorep.core.fermi.FermiResult`.
    :param n_electrons_error: ``(n_materials,)``, ``N(E_F) - n_electrons`` as in
        :class:`~aiida_sorep.core.fermi.FermiResult`.
    """

    fermi_energy: np.ndarray
    vbm_reference: np.ndarray
    cbm_reference: np.ndarray
    band_gap: np.ndarray
    is_metal: np.ndarray
    features: dict[FeatureKind, np.ndarray]
    energies: dict[FeatureKind, np.ndarray]
    parameters: dict[FeatureKind, FeatureParameters]
    fermi_method: np.ndarray
    n_electrons_error: np.ndarray


def _batch_inputs(
    eigenvalues: ArrayLike, weights: ArrayLike, n_electrons: ArrayLike, volumes: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    eig = np.asarray(eigenvalues, dtype=float)
    if eig.ndim == 3:
        eig = eig[:, np.newaxis]
    if eig.ndim != 4 or eig.shape[1] not in (1, 2) or 0 in eig.shape:
        raise ValueError(
            'eigenvalues must have shape (n_materials, n_spins, n_kpoints, n_bands) or '
            f'(n_materials, n_kpoints, n_bands) with 1 or 2 spins and no empty axis, got {eig.shape}'
        )
    n_materials, n_spins, n_kpoints, n_bands = eig.shape
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = np.broadcast_to(w, (n_materials, w.shape[0]))
    if w.shape != (n_materials, n_kpoints):
        raise ValueError(f'weights must have shape ({n_materials}, {n_kpoints}) or ({n_kpoints},), got {w.shape}')
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError('weights must be finite and non-negative')
    sums = w.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 2.0 / n_spins) > WEIGHTS_SUM_RTOL * 2.0 / n_spins)
    if bad.size:
        raise ValueError(
            f'k-point weights of material {bad[0]} sum to {sums[bad[0]]:.10g} but QE convention needs '
            f'{2.0 / n_spins:g} for n_spins={n_spins} (2 for one spin channel, 1 per channel for two)'
        )
    n_el = np.array(np.broadcast_to(np.asarray(n_electrons, dtype=float), (n_materials,)))
    for index in np.flatnonzero(~np.isfinite(n_el) | (n_el <= 0) | (n_el >= 2.0 * n_bands - 1e-9)):
        try:
            check_n_electrons(float(n_el[index]), n_spins, n_bands)
        except ValueError as exception:
            raise ValueError(f'material {index}: {exception}') from None
    vols: np.ndarray | None = None
    if volumes is not None:
        vols = np.array(np.broadcast_to(np.asarray(volumes, dtype=float), (n_materials,)))
        if not np.all(np.isfinite(vols) & (vols > 0)):
            raise ValueError('volumes must be finite positive numbers (Å^3)')
    return eig, w, n_el, vols


def _factors(normalization: DosNormalization, n_electrons: np.ndarray, volumes: np.ndarray | None) -> np.ndarray:
    if normalization is DosNormalization.CELL:
        return np.ones_like(n_electrons)
    if normalization is DosNormalization.ELECTRON:
        return 1.0 / n_electrons
    if volumes is None:
        raise ValueError(
            "normalization='volume' needs the cell volumes in Å^3: pass volumes=..., or use normalization='cell'"
        )
    return 1.0 / volumes


def featurize_batch(
    eigenvalues: ArrayLike,
    weights: ArrayLike,
    n_electrons: ArrayLike,
    *,
    smearing: str | Smearing = 'gaussian',
    width: float = 0.0,
    volumes: ArrayLike | None = None,
    parameters: FeatureParameters | Iterable[FeatureParameters] | Mapping[Any, FeatureParameters] | None = None,
    midgap: bool = True,
    chunk_size: int = 256,
    tol: float = 1e-10,
    gap_threshold: float = DEFAULT_GAP_THRESHOLD,
) -> BatchFeatures:
    """Featurize many materials with the same array shapes, vectorised over materials.

    Gives the same results as :func:`featurize` on each material (Fermi level to the electron-count tolerance,
    features to ~1e-12 relative), much faster: the Fermi level is solved for a whole chunk of materials at once on
    the few bands that can be partially occupied, and Gaussian feature maps are built from histograms of Gaussian
    moments (see :mod:`aiida_sorep.core._batch`). Non-Gaussian feature broadenings, spin-polarised Fermi levels and
    materials the vectorised solver cannot settle fall back to the per-material functions.

    :param eigenvalues: eV, ``(n_materials, n_spins, n_kpoints, n_bands)`` or ``(n_materials, n_kpoints, n_bands)``.
    :param weights: ``(n_materials, n_kpoints)`` or ``(n_kpoints,)`` shared by all materials, QE's convention.
    :param n_electrons: ``(n_materials,)`` or a scalar.
    :param smearing: occupation smearing for the Fermi level.
    :param width: occupation smearing width in eV (0: zero temperature).
    :param volumes: ``(n_materials,)`` cell volumes in Å^3 (needed for the per-volume normalization).
    :param parameters: feature parameterizations (default: the paper's four).
    :param midgap: mid-gap Fermi level for gapped materials (default).
    :param chunk_size: materials processed at once (memory ~ ``chunk_size * n_kpoints * n_bands * 80`` bytes).
    :param tol: tolerance on the electron count.
    :param gap_threshold: smallest gap in eV.
    """
    from . import _batch

    eig, w, n_el, vols = _batch_inputs(eigenvalues, weights, n_electrons, volumes)
    kind = Smearing.from_name(smearing)
    sigma = as_width(width)
    param_map = _parameter_map(parameters)
    if int(chunk_size) < 1:
        raise ValueError(f'chunk_size must be a positive integer, got {chunk_size!r}')
    n_materials, n_spins, n_kpoints, n_bands = eig.shape
    factors = {k: _factors(p.normalization, n_el, vols) for k, p in param_map.items()}
    # Gaussian maps on grids fine enough for the moment expansion are vectorised; the others use compute_features
    fast = {
        k
        for k, p in param_map.items()
        if p.smearing is Smearing.GAUSSIAN
        and _batch.moments_applicable((p.window[1] - p.window[0]) / (p.points_per_block - 1), p.width)
    }

    fermi = np.empty(n_materials)
    methods = np.empty(n_materials, dtype=object)
    errors = np.empty(n_materials)
    vbm_ref = np.empty(n_materials)
    cbm_ref = np.empty(n_materials)
    metal = np.empty(n_materials, dtype=bool)
    features = {k: np.empty((n_materials, p.n_points)) for k, p in param_map.items()}

    for begin in range(0, n_materials, int(chunk_size)):
        chunk = slice(begin, min(begin + int(chunk_size), n_materials))
        e = eig[chunk]
        if not np.all(np.isfinite(e)):
            bad = begin + int(np.flatnonzero(~np.isfinite(e).reshape(e.shape[0], -1).all(axis=1))[0])
            raise ValueError(f'material {bad}: eigenvalues contain NaN or inf')
        if np.any(e[..., 1:] < e[..., :-1]):
            e = np.sort(e, axis=-1)
        wc = np.ascontiguousarray(w[chunk])
        nc = n_el[chunk]
        # Fermi levels
        if n_spins == 1:
            result = _batch.batch_fermi_levels(
                e[:, 0], wc, nc, kind, sigma, midgap=midgap, gap_threshold=gap_threshold, tol=tol
            )
            e_f, method_c, error_c = result.fermi_energy, result.method, result.n_electrons_error
            gapped_c = result.is_gapped.copy()
            redo = np.flatnonzero(result.needs_fallback)
        else:
            e_f = np.empty(e.shape[0])
            method_c = np.empty(e.shape[0], dtype=object)
            error_c = np.empty(e.shape[0])
            gapped_c = np.zeros(e.shape[0], dtype=bool)
            redo = np.arange(e.shape[0])
        for index in redo:
            try:
                single = find_fermi_level(
                    e[index], wc[index], nc[index], kind, sigma, midgap=midgap, tol=tol, gap_threshold=gap_threshold
                )
            except ValueError as exception:
                raise ValueError(f'material {begin + index}: {exception}') from exception
            e_f[index], method_c[index], error_c[index] = single.fermi_energy, single.method, single.n_electrons_error
            gapped_c[index] = single.is_gapped
        methods[chunk], errors[chunk] = method_c, error_c
        vbm_c, cbm_c, metal_c = _batch.band_edges_batch(e, e_f, gap_threshold, gapped_c)
        fermi[chunk], vbm_ref[chunk], cbm_ref[chunk], metal[chunk] = e_f, vbm_c, cbm_c, metal_c
        refs = {'vbm': vbm_c, 'fermi': e_f, 'cbm': cbm_c}

        # feature maps: spins folded into the k axis (the DOS is a sum over all states)
        flat_e = e.reshape(e.shape[0], n_spins * n_kpoints, n_bands)
        flat_w = np.tile(wc, (1, n_spins))
        gaussian = {k: p for k, p in param_map.items() if k in fast}
        if gaussian:
            lows, highs = [], []
            for p in gaussian.values():
                spacing = (p.window[1] - p.window[0]) / (p.points_per_block - 1)
                pad = (math.sqrt(_batch._KERNEL_EXPONENT) + 1) * p.width + spacing
                for name in p.kind.references:
                    lows.append(refs[name] + p.window[0] - pad)
                    highs.append(refs[name] + p.window[1] + pad)
            low = np.min(lows, axis=0)
            high = np.max(highs, axis=0)
            top = flat_e.max(axis=1)
            bot = flat_e.min(axis=1)
            first = (top < low[:, None]).sum(axis=1)
            stop = (bot <= high[:, None]).sum(axis=1)
            gathered, mask = _batch._gather_bands(flat_e, first, np.maximum(stop, first))
            state_w = np.where(mask, flat_w[:, :, None], 0.0).reshape(e.shape[0], -1)
            gathered = gathered.reshape(e.shape[0], -1)
            for k, p in gaussian.items():
                spacing = (p.window[1] - p.window[0]) / (p.points_per_block - 1)
                blocks = [
                    _batch.gaussian_dos_on_grids(
                        gathered, state_w, refs[name] + p.window[0], spacing, p.points_per_block, p.width
                    )
                    for name in p.kind.references
                ]
                features[k][chunk] = np.concatenate(blocks, axis=1) * factors[k][chunk, None]
        for k, p in param_map.items():
            if k in fast:
                continue
            for position in range(e.shape[0]):
                i = begin + position
                features[k][i] = compute_features(
                    e[position],
                    wc[position],
                    p,
                    fermi_energy=float(e_f[position]),
                    vbm=float(vbm_c[position]),
                    cbm=float(cbm_c[position]),
                    volume=None if vols is None else float(vols[i]),
                    n_electrons=float(nc[position]),
                ).features
    band_gap = np.where(metal, 0.0, cbm_ref - vbm_ref)
    return BatchFeatures(
        fermi_energy=fermi,
        vbm_reference=vbm_ref,
        cbm_reference=cbm_ref,
        band_gap=band_gap,
        is_metal=metal,
        features=features,
        energies={k: p.grid() for k, p in param_map.items()},
        parameters=param_map,
        fermi_method=methods,
        n_electrons_error=errors,
    )
