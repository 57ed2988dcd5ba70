"""Band edges: valence-band maximum, conduction-band minimum, fundamental and direct gaps.

States at or below the Fermi level are occupied, states above it empty. A spectrum is metallic when a band (of
either spin channel) crosses the Fermi level, i.e. ``min_k e_skn < E_F < max_k e_skn`` for some ``(s, n)``, when
the highest occupied and lowest empty states are closer than ``gap_threshold``, or when the caller says that the
electron count is not an integer filling below a gap (``is_gapped=False`` from the Fermi-level solver). For metals
the VBM and CBM are ``None`` (the SOREP feature maps then use the Fermi level as the reference of their VBM- and
CBM-centred maps, as the SOREP paper does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_eigenvalues

__all__ = ('BandEdges', 'find_band_edges')

DEFAULT_GAP_THRESHOLD = 1e-3


@dataclass(frozen=True)
class BandEdges:
    """Band edges of a spectrum (energies in eV, indices zero-based).

    :param vbm: valence-band maximum (highest occupied state), ``None`` for metals.
    :param cbm: conduction-band minimum (lowest empty state), ``None`` for metals.
    :param vbm_location: ``(spin, kpoint, band)`` of the VBM, ``None`` for metals.
    :param cbm_location: ``(spin, kpoint, band)`` of the CBM, ``None`` for metals.
    :param band_gap: fundamental gap ``cbm - vbm``, 0.0 for metals.
    :param direct_gap: smallest vertical gap ``min_{s,k} (cbm_sk - vbm_sk)`` within one spin channel, ``None`` for
        metals.
    :param direct_gap_kpoint: k-point index of the direct gap, ``None`` for metals.
    :param is_metal: whether the spectrum is metallic at this Fermi level.
    """

    vbm: float | None
    cbm: float | None
    vbm_location: tuple[int, int, int] | None
    cbm_location: tuple[int, int, int] | None
    band_gap: float
    direct_gap: float | None
    direct_gap_kpoint: int | None
    is_metal: bool

    @property
    def is_direct(self) -> bool:
        """Whether VBM and CBM are at the same k-point (``False`` for metals)."""
        return (
            self.vbm_location is not None
            and self.cbm_location is not None
            and self.vbm_location[1] == self.cbm_location[1]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (plain ``float``/``int``/``bool``/``None``, locations as lists)."""

        def _float(value: float | None) -> float | None:
            return None if value is None else float(value)

        def _location(value: tuple[int, int, int] | None) -> list[int] | None:
            return None if value is None else [int(i) for i in value]

        return {
            'vbm': _float(self.vbm),
            'cbm': _float(self.cbm),
            'vbm_location': _location(self.vbm_location),
            'cbm_location': _location(self.cbm_location),
            'band_gap': float(self.band_gap),
            'direct_gap': _float(self.direct_gap),
            'direct_gap_kpoint': None if self.direct_gap_kpoint is None else int(self.direct_gap_kpoint),
            'is_metal': bool(self.is_metal),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BandEdges:
        """Inverse of :meth:`to_dict`."""

        def _location(value: Any) -> tuple[int, int, int] | None:
            return None if value is None else (int(value[0]), int(value[1]), int(value[2]))

        return cls(
            vbm=data['vbm'],
            cbm=data['cbm'],
            vbm_location=_location(data['vbm_location']),
            cbm_location=_location(data['cbm_location']),
            band_gap=float(data['band_gap']),
            direct_gap=data['direct_gap'],
            direct_gap_kpoint=data['direct_gap_kpoint'],
            is_metal=bool(data['is_metal']),
        )


_METAL = BandEdges(None, None, None, None, 0.0, None, None, True)


def find_band_edges(
    eigenvalues: ArrayLike,
    fermi_energy: float,
    *,
    gap_threshold: float = DEFAULT_GAP_THRESHOLD,
    is_gapped: bool | None = None,
) -> BandEdges:
    """Band edges relative to a Fermi level.

    :param eigenvalues: eV, ``(n_spins, n_kpoints, n_bands)`` or ``(n_kpoints, n_bands)``.
    :param fermi_energy: eV (e.g. from :func:`~aiida_sorep.core.fermi.find_fermi_level`).
    :param gap_threshold: eV; a gap smaller than this is treated as metallic.
    :param is_gapped: ``FermiResult.is_gapped`` of the same spectrum, if known. ``False`` (the electron count does not
        fill an integer number of bands below a gap) makes the result metallic even when no band visibly crosses the
        Fermi level, e.g. a partially filled level of a Gamma-only calculation or a zero-temperature Fermi level on
        a band edge; pass it whenever the Fermi level comes from :func:`find_fermi_level`. ``None``: judge from the
        spectrum alone.
    :raises ValueError: invalid eigenvalues, or a Fermi level below all states or above all states.
    """
    eig = as_eigenvalues(eigenvalues)
    e_f = float(fermi_energy)
    if not math.isfinite(e_f):
        raise ValueError(f'fermi_energy must be finite (eV), got {fermi_energy!r}')
    if is_gapped is False:
        return _METAL
    occupied = eig <= e_f
    if not occupied.any():
        raise ValueError(f'the Fermi level {e_f:g} eV is below all eigenvalues (min {eig.min():g} eV)')
    if occupied.all():
        raise ValueError(
            f'the Fermi level {e_f:g} eV is above all eigenvalues (max {eig.max():g} eV): there is no empty state, '
            'increase nbnd'
        )
    band_min = eig.min(axis=1)
    band_max = eig.max(axis=1)
    if np.any((band_min < e_f) & (band_max > e_f)):
        return _METAL

    valence = np.where(occupied, eig, -np.inf)
    conduction = np.where(occupied, np.inf, eig)
    vbm_flat = int(np.argmax(valence))
    cbm_flat = int(np.argmin(conduction))
    vbm = float(valence.reshape(-1)[vbm_flat])
    cbm = float(conduction.reshape(-1)[cbm_flat])
    if cbm - vbm < gap_threshold:
        return _METAL
    vbm_location = tuple(int(i) for i in np.unravel_index(vbm_flat, eig.shape))
    cbm_location = tuple(int(i) for i in np.unravel_index(cbm_flat, eig.shape))

    # vertical gaps within one spin channel at each k-point
    vertical = conduction.min(axis=2) - valence.max(axis=2)  # (n_spins, n_kpoints), inf if a side is missing
    spin_k = int(np.argmin(vertical))
    direct = float(vertical.reshape(-1)[spin_k])
    direct_kpoint = int(np.unravel_index(spin_k, vertical.shape)[1])
    return BandEdges(
        vbm=vbm,
        cbm=cbm,
        vbm_location=vbm_location,  # type: ignore[arg-type]
        cbm_location=cbm_location,  # type: ignore[arg-type]
        band_gap=cbm - vbm,
        direct_gap=direct if math.isfinite(direct) else None,
        direct_gap_kpoint=direct_kpoint if math.isfinite(direct) else None,
        is_metal=False,
    )
