"""Line effective masses from eigenvalues along high-symmetry line segments.

The method follows the spirit of Hautier et al., Nat. Commun. 4, 2292 (2013) and Chem. Mater. 26,
5447 (2014): a carrier effective mass is the *thermal (Fermi-Dirac) average of the inverse band
curvature* of the states near the band edge, at 300 K. Hautier et al. average the full inverse-mass
tensor over the Brillouin zone (with BoltzTraP); here, as in the SOREP paper, the average is taken
along the one-dimensional high-symmetry lines of a band-structure path (e.g. from seekpath).

For a line segment ``s`` with arc-length coordinate ``kappa`` (1/Å) and states ``(sigma, n, k)``
(spin, band, k-point on the segment) of the carrier's manifold (conduction bands for electrons,
valence bands for holes)::

    1/m_s = sum_{sigma n k in s} w_{sigma n k} c_{sigma n k} / sum_{sigma n k in s} w_{sigma n k}
    c_{sigma n k} = (d^2 E_{sigma n} / d kappa^2) / (hbar^2 / m_e) = (d^2 E / d kappa^2) / (2 * 3.80998 eV Å^2)

with Fermi-Dirac weights about the band edge at temperature ``T``::

    electrons: w = 1 / (1 + exp((E - E_CBM) / k_B T))
    holes:     w = 1 / (1 + exp((E_VBM - E) / k_B T))     (mirrored distribution)

Masses are in units of the free-electron mass ``m_e``. Hole masses keep the sign of the valence-band
curvature, so they are **negative** (a hole mass of -0.5 is a light hole, -5 a heavy one).

The per-carrier *overall* mass is the most favourable (lightest) segment among those that reach the
band edge: ``m_e* = min_s m_s`` (positive) and ``m_h* = max_s m_s`` (negative, i.e. smallest
``|m_h|``), the extrema being taken over the *qualifying* segments, those whose carrier states come
within ``edge_window`` (eV) of the path's own band extremum. Equivalently, it is the segment with the
largest ``|1/m_s|`` with the carrier's sign. Restricting to qualifying segments stops a line far
from the edge (whose normalised average is dominated by its own lowest state) from winning. An
``average_mass`` weighted over all segments together (no per-segment normalisation) is also reported.

Second derivatives are the curvature of the parabola through three neighbouring points (centred in
the interior, one-sided at the segment ends), valid for non-uniform spacing and exact for parabolic
bands; a segment needs at least three distinct k-points. Bands are indexed by energy order, so band
crossings and degeneracies (e.g. the light/heavy holes at Gamma) enter as the curvature of the
energy-ordered bands, as in any band-index-based finite-difference scheme.

Nothing here imports ``aiida``.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = (
    'BOLTZMANN_EV_PER_K',
    'HBAR2_OVER_2ME',
    'Carrier',
    'CarrierMass',
    'EffectiveMassResult',
    'LineSegment',
    'SegmentMass',
    'fermi_dirac_log_weights',
    'line_effective_masses',
    'parabola_second_derivative',
    'segments_from_labels',
    'segments_from_seekpath',
)

HBAR2_OVER_2ME = 3.80998212
"""hbar^2 / (2 m_e) in eV Å^2 (CODATA 2018)."""
BOLTZMANN_EV_PER_K = 8.617333262e-5
"""Boltzmann constant in eV/K."""
DEFAULT_TEMPERATURE = 300.0
"""Default temperature of the Fermi-Dirac weights, K."""
DEFAULT_EDGE_WINDOW = 0.1
"""Default window (eV) within which a segment must reach the path's band extremum to qualify."""
MIN_POINTS_PER_SEGMENT = 3
"""A second derivative needs at least three points on a segment."""


class Carrier(str, enum.Enum):
    """Charge carrier whose effective mass is computed."""

    ELECTRON = 'electron'
    HOLE = 'hole'


@dataclass(frozen=True)
class LineSegment:
    """A straight line segment of a band-structure path.

    :param start: index of the first k-point of the segment in the path.
    :param stop: index of the last k-point of the segment (inclusive).
    :param start_label: label of the first point (e.g. ``'GAMMA'``).
    :param stop_label: label of the last point.
    """

    start: int
    stop: int
    start_label: str = ''
    stop_label: str = ''

    @property
    def label(self) -> str:
        """Return ``'START-STOP'``, e.g. ``'GAMMA-X'``."""
        return f'{self.start_label}-{self.stop_label}'

    @property
    def n_points(self) -> int:
        """Number of k-points on the segment, both ends included."""
        return self.stop - self.start + 1


@dataclass(frozen=True)
class SegmentMass:
    """Effective mass of one carrier along one segment.

    :param label: segment label ``'START-STOP'``.
    :param start: first k-point index (inclusive).
    :param stop: last k-point index (inclusive).
    :param n_points: number of k-points on the segment.
    :param inverse_mass: Fermi-Dirac weighted average of the inverse mass, 1/m_e.
    :param mass: ``1 / inverse_mass`` in m_e, or ``None`` if the curvature is exactly zero.
    :param edge_distance: eV between the carrier's extremum on this segment and the path's extremum (>= 0).
    :param qualifies: whether ``edge_distance <= edge_window``, i.e. the segment can give the overall mass.
    """

    label: str
    start: int
    stop: int
    n_points: int
    inverse_mass: float
    mass: float | None
    edge_distance: float
    qualifies: bool


@dataclass(frozen=True)
class CarrierMass:
    """Line effective mass of one carrier.

    :param carrier: electron or hole.
    :param mass: overall (most favourable qualifying segment) mass in m_e; ``None`` for metals.
    :param segment: label of the segment that gives ``mass``.
    :param average_mass: mass from the weighted average over all segments together, m_e.
    :param edge_energy: energy (eV) about which the Fermi-Dirac weights are centred (CBM or VBM).
    :param path_edge_energy: extremum (eV) of the carrier's bands on the path.
    :param segments: per-segment masses, in path order.
    """

    carrier: Carrier
    mass: float | None
    segment: str | None
    average_mass: float | None
    edge_energy: float | None
    path_edge_energy: float | None
    segments: tuple[SegmentMass, ...]

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dictionary."""
        data = asdict(self)
        data['carrier'] = self.carrier.value
        data['segments'] = [asdict(segment) for segment in self.segments]
        return data


@dataclass(frozen=True)
class EffectiveMassResult:
    """Electron and hole line effective masses (m_e).

    :param electron: electron masses (positive).
    :param hole: hole masses (negative).
    :param is_metal: ``True`` if no gap was given; then all masses are ``None``.
    :param temperature: temperature of the Fermi-Dirac weights, K.
    :param edge_window: eV, see :func:`line_effective_masses`.
    """

    electron: CarrierMass
    hole: CarrierMass
    is_metal: bool
    temperature: float
    edge_window: float

    @property
    def electron_mass(self) -> float | None:
        """Overall electron mass in m_e (``None`` for metals)."""
        return self.electron.mass

    @property
    def hole_mass(self) -> float | None:
        """Overall hole mass in m_e, negative (``None`` for metals)."""
        return self.hole.mass

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dictionary."""
        return {
            'electron': self.electron.to_dict(),
            'hole': self.hole.to_dict(),
            'is_metal': self.is_metal,
            'temperature': self.temperature,
            'edge_window': self.edge_window,
        }


def segments_from_seekpath(
    explicit_segments: Sequence[Sequence[int]], path: Sequence[Sequence[str]]
) -> list[LineSegment]:
    """Build segments from seekpath's ``explicit_segments`` and ``path``.

    :param explicit_segments: ``[(start, stop_exclusive), ...]`` as returned by ``seekpath.get_explicit_k_path``.
    :param path: ``[(start_label, stop_label), ...]``, same length.
    :return: the segments with inclusive ``stop``.
    """
    if len(explicit_segments) != len(path):
        raise ValueError(f'seekpath gave {len(explicit_segments)} explicit segments but {len(path)} path entries.')
    return [
        LineSegment(int(start), int(stop) - 1, str(labels[0]), str(labels[1]))
        for (start, stop), labels in zip(explicit_segments, path, strict=True)
    ]


def segments_from_labels(labels: Sequence[Sequence], n_kpoints: int) -> list[LineSegment]:
    """Build segments from the labelled points of a path, as stored on an AiiDA ``KpointsData``/``BandsData``.

    Consecutive labelled points ``(i, A)``, ``(j, B)`` with ``j >= i + 2`` define the segment ``A-B``
    with points ``i..j``. Two labelled points at adjacent indices (``j == i + 1``) are a jump of the
    path (seekpath's ``U|K``), not a segment.

    :param labels: ``[(index, label), ...]`` sorted by index.
    :param n_kpoints: number of k-points of the path.
    """
    points = sorted((int(index), str(label)) for index, label in labels)
    if len(points) < 2:
        raise ValueError('the band path needs at least two labelled points to define a line segment.')
    if points[0][0] < 0 or points[-1][0] >= n_kpoints:
        raise ValueError(
            f'labelled point indices must lie in [0, {n_kpoints - 1}], got {points[0][0]}..{points[-1][0]}'
        )
    segments = [LineSegment(i, j, a, b) for (i, a), (j, b) in itertools.pairwise(points) if j - i >= 2]
    if not segments:
        raise ValueError('no line segment with at least one interior point: the band path is too sparse.')
    return segments


def parabola_second_derivative(coordinate: ArrayLike, values: ArrayLike) -> NDArray[np.float64]:
    """Second derivative on a non-uniform 1-D grid, from the parabola through three neighbouring points.

    Interior points use the centred triple ``(i-1, i, i+1)``; the ends use ``(0, 1, 2)`` and
    ``(n-3, n-2, n-1)``. Exact for any quadratic.

    :param coordinate: strictly increasing positions, shape ``(n,)`` with ``n >= 3``.
    :param values: values, shape ``(..., n)``.
    :return: second derivatives, shape ``(..., n)``.
    """
    x = np.asarray(coordinate, dtype=float)
    y = np.asarray(values, dtype=float)
    n = x.shape[0]
    if x.ndim != 1 or y.shape[-1] != n:
        raise ValueError(f'coordinate must be 1-D and match the last axis of values: got {x.shape} and {y.shape}')
    if n < MIN_POINTS_PER_SEGMENT:
        raise ValueError(f'a second derivative needs at least {MIN_POINTS_PER_SEGMENT} points, got {n}')
    steps = np.diff(x)
    if np.any(steps <= 0):
        raise ValueError('k-points along a segment must be distinct and ordered (found a zero or negative step).')
    centre = np.clip(np.arange(n), 1, n - 2)
    x0, x1, x2 = x[centre - 1], x[centre], x[centre + 1]
    y0, y1, y2 = y[..., centre - 1], y[..., centre], y[..., centre + 1]
    return 2.0 * (y0 / ((x0 - x1) * (x0 - x2)) + y1 / ((x1 - x0) * (x1 - x2)) + y2 / ((x2 - x0) * (x2 - x1)))


def fermi_dirac_log_weights(
    energies: ArrayLike, edge_energy: float, carrier: Carrier, temperature: float = DEFAULT_TEMPERATURE
) -> NDArray[np.float64]:
    """Natural log of the Fermi-Dirac carrier weights about a band edge (no overflow for any energy).

    :param energies: eV, any shape.
    :param edge_energy: CBM (electrons) or VBM (holes), eV.
    :param carrier: electron (``f((E - CBM)/kT)``) or hole (mirrored, ``f((VBM - E)/kT)``).
    :param temperature: K, > 0.
    :return: ``log w``, same shape as ``energies``.
    """
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0 K, got {temperature}')
    kt = BOLTZMANN_EV_PER_K * temperature
    sign = 1.0 if Carrier(carrier) is Carrier.ELECTRON else -1.0
    x = sign * (np.asarray(energies, dtype=float) - edge_energy) / kt
    return -np.logaddexp(0.0, x)


def _split_manifolds(eigenvalues: NDArray[np.float64], vbm: float, cbm: float) -> tuple[NDArray, NDArray]:
    """Return boolean masks ``(n_spins, n_bands)`` of valence and conduction bands (split at mid-gap)."""
    midgap = 0.5 * (vbm + cbm)
    band_max = eigenvalues.max(axis=1)
    band_min = eigenvalues.min(axis=1)
    valence = band_max <= midgap
    conduction = band_min > midgap
    straddling = ~(valence | conduction)
    if np.any(straddling):
        spin, band = (int(v) for v in np.argwhere(straddling)[0])
        raise ValueError(
            f'band {band} (spin {spin}) spans {band_min[spin, band]:.4f}..{band_max[spin, band]:.4f} eV on the path '
            f'and crosses mid-gap {midgap:.4f} eV between the given VBM {vbm:.4f} and CBM {cbm:.4f} eV: the path '
            'eigenvalues are inconsistent with the band edges (a metal along the path, or edges from another '
            'calculation). Check the edges or treat the system as a metal.'
        )
    if not valence.any() or not conduction.any():
        raise ValueError('the path eigenvalues need at least one valence and one conduction band: increase nbnd.')
    return valence, conduction


def _carrier_mass(
    carrier: Carrier,
    arc: NDArray[np.float64],
    eigenvalues: NDArray[np.float64],
    mask: NDArray[np.bool_],
    segments: Sequence[LineSegment],
    *,
    edge_energy: float,
    temperature: float,
    edge_window: float,
) -> CarrierMass:
    """Compute the masses of one carrier; ``eigenvalues`` is ``(n_spins, n_k, n_bands)``."""
    # States of the carrier's manifold, flattened to (n_k, n_states) over spins and bands.
    states = np.moveaxis(eigenvalues, 1, 0)[:, mask]
    if carrier is Carrier.ELECTRON:
        path_edge = float(states.min())
    else:
        path_edge = float(states.max())

    log_weights, curvatures, per_segment = [], [], []
    for segment in segments:
        energies = states[segment.start : segment.stop + 1].T  # (n_states, n_points)
        curvature = parabola_second_derivative(arc[segment.start : segment.stop + 1], energies) / (2.0 * HBAR2_OVER_2ME)
        log_w = fermi_dirac_log_weights(energies, edge_energy, carrier, temperature)
        weights = np.exp(log_w - log_w.max())
        inverse_mass = float(np.sum(weights * curvature) / np.sum(weights))
        if carrier is Carrier.ELECTRON:
            distance = float(energies.min()) - path_edge
        else:
            distance = path_edge - float(energies.max())
        per_segment.append(
            SegmentMass(
                label=segment.label,
                start=segment.start,
                stop=segment.stop,
                n_points=segment.n_points,
                inverse_mass=inverse_mass,
                mass=None if inverse_mass == 0.0 else 1.0 / inverse_mass,
                edge_distance=max(distance, 0.0),
                qualifies=distance <= edge_window,
            )
        )
        log_weights.append(log_w.ravel())
        curvatures.append(curvature.ravel())

    all_log_w = np.concatenate(log_weights)
    all_weights = np.exp(all_log_w - all_log_w.max())
    average_inverse = float(np.sum(all_weights * np.concatenate(curvatures)) / np.sum(all_weights))

    qualifying = [segment for segment in per_segment if segment.qualifies]
    pick = max if carrier is Carrier.ELECTRON else min
    best = pick(qualifying, key=lambda segment: segment.inverse_mass)
    return CarrierMass(
        carrier=carrier,
        mass=best.mass,
        segment=best.label,
        average_mass=None if average_inverse == 0.0 else 1.0 / average_inverse,
        edge_energy=float(edge_energy),
        path_edge_energy=path_edge,
        segments=tuple(per_segment),
    )


def _metal_result(temperature: float, edge_window: float) -> EffectiveMassResult:
    def empty(carrier: Carrier) -> CarrierMass:
        return CarrierMass(carrier, None, None, None, None, None, ())

    return EffectiveMassResult(empty(Carrier.ELECTRON), empty(Carrier.HOLE), True, temperature, edge_window)


def line_effective_masses(
    kpoints: ArrayLike,
    eigenvalues: ArrayLike,
    segments: Sequence[LineSegment],
    vbm: float | None,
    cbm: float | None,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    edge_window: float = DEFAULT_EDGE_WINDOW,
) -> EffectiveMassResult:
    """Electron and hole line effective masses along the segments of a band-structure path.

    :param kpoints: Cartesian k-points of the path in 1/Å (2π included), shape ``(n_k, 3)``.
    :param eigenvalues: eV, shape ``(n_spins, n_k, n_bands)`` or ``(n_k, n_bands)``.
    :param segments: line segments of the path (see :func:`segments_from_seekpath`, :func:`segments_from_labels`);
        each needs at least 3 distinct points.
    :param vbm: valence-band maximum (eV) about which the hole weights are centred, e.g. from the MP grid;
        ``None`` for a metal.
    :param cbm: conduction-band minimum (eV) for the electron weights; ``None`` for a metal.
    :param temperature: K of the Fermi-Dirac weights (default 300).
    :param edge_window: eV; segments whose carrier states come within this of the path's band extremum qualify
        for the overall mass.
    :return: the masses in m_e; for a metal (``vbm``/``cbm`` is ``None`` or ``cbm <= vbm``) all masses are ``None``.
    :raises ValueError: with the fix, for inconsistent shapes, non-finite values, segments with fewer than 3
        points or repeated k-points, or bands that cross mid-gap along the path.
    """
    if not edge_window >= 0:
        raise ValueError(f'edge_window must be >= 0 eV, got {edge_window}')
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0 K, got {temperature}')
    if vbm is None or cbm is None or cbm <= vbm:
        return _metal_result(float(temperature), float(edge_window))
    if not (math.isfinite(vbm) and math.isfinite(cbm)):
        raise ValueError(f'band edges must be finite, got vbm={vbm}, cbm={cbm}')

    k = np.asarray(kpoints, dtype=float)
    e = np.asarray(eigenvalues, dtype=float)
    if e.ndim == 2:
        e = e[np.newaxis]
    if k.ndim != 2 or k.shape[1] != 3 or e.ndim != 3 or e.shape[1] != k.shape[0]:
        raise ValueError(
            f'kpoints must be (n_k, 3) and eigenvalues (n_spins, n_k, n_bands) with the same n_k: got {k.shape} and '
            f'{np.shape(eigenvalues)}'
        )
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(e))):
        raise ValueError('kpoints and eigenvalues must be finite (found NaN or inf).')
    if not segments:
        raise ValueError('no line segments given.')
    for segment in segments:
        if segment.start < 0 or segment.stop >= k.shape[0]:
            raise ValueError(f'segment {segment.label} indices {segment.start}..{segment.stop} outside 0..{len(k) - 1}')
        if segment.n_points < MIN_POINTS_PER_SEGMENT:
            raise ValueError(
                f'segment {segment.label} has {segment.n_points} k-points, at least {MIN_POINTS_PER_SEGMENT} are '
                'needed for a second derivative: use a denser line (smaller k-point distance along the path).'
            )

    # Arc length along the path; each segment uses its own differences, so jumps between segments are harmless.
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(k, axis=0), axis=1))])
    for segment in segments:
        if np.any(np.diff(arc[segment.start : segment.stop + 1]) <= 1e-10):
            raise ValueError(f'segment {segment.label} contains repeated k-points: remove the duplicates.')

    valence, conduction = _split_manifolds(e, vbm, cbm)
    common = {'temperature': float(temperature), 'edge_window': float(edge_window)}
    electron = _carrier_mass(Carrier.ELECTRON, arc, e, conduction, segments, edge_energy=cbm, **common)
    hole = _carrier_mass(Carrier.HOLE, arc, e, valence, segments, edge_energy=vbm, **common)
    return EffectiveMassResult(electron, hole, False, float(temperature), float(edge_window))
