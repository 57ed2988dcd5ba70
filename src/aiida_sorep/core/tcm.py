"""Transparent-conducting-material (TCM) criteria on band gap and line effective masses.

A material is a TCM candidate when it is transparent (band gap above ``min_band_gap``) **and** at
least one carrier is light: an n-type candidate has ``0 < m_e* <= max_electron_mass``, a p-type
candidate has ``min_hole_mass <= m_h* < 0`` (hole masses are negative, see
:mod:`aiida_sorep.core.effective_mass`). Defaults: gap > 0.5 eV, m_e* <= 0.5 m_e, m_h* >= -1.0 m_e.
Metals, and materials whose masses are undefined (``None``), are never candidates.

Nothing here imports ``aiida``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ('TcmLabel', 'TcmThresholds', 'tcm_label')


@dataclass(frozen=True)
class TcmThresholds:
    """Thresholds of the TCM criteria.

    :param min_band_gap: eV; the gap must be strictly larger.
    :param max_electron_mass: m_e; n-type needs ``0 < m_e* <= max_electron_mass``.
    :param min_hole_mass: m_e, negative; p-type needs ``min_hole_mass <= m_h* < 0``.
    """

    min_band_gap: float = 0.5
    max_electron_mass: float = 0.5
    min_hole_mass: float = -1.0

    def __post_init__(self) -> None:
        """Validate the thresholds."""
        for name in ('min_band_gap', 'max_electron_mass', 'min_hole_mass'):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f'{name} must be finite, got {getattr(self, name)}')
        if self.max_electron_mass <= 0:
            raise ValueError(
                f'max_electron_mass must be > 0 (electron masses are positive), got {self.max_electron_mass}'
            )
        if self.min_hole_mass >= 0:
            raise ValueError(f'min_hole_mass must be < 0 (hole masses are negative), got {self.min_hole_mass}')
        if self.min_band_gap < 0:
            raise ValueError(f'min_band_gap must be >= 0 eV, got {self.min_band_gap}')

    def to_dict(self) -> dict[str, float]:
        """Return the thresholds as a dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class TcmLabel:
    """Outcome of the TCM criteria.

    :param is_candidate: transparent and (n-type or p-type).
    :param is_transparent: band gap above the threshold (and not a metal).
    :param n_type: light electrons.
    :param p_type: light holes.
    :param reason: one sentence explaining the label.
    :param thresholds: the thresholds used.
    """

    is_candidate: bool
    is_transparent: bool
    n_type: bool
    p_type: bool
    reason: str
    thresholds: TcmThresholds = field(default_factory=TcmThresholds)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dictionary."""
        data = asdict(self)
        data['thresholds'] = self.thresholds.to_dict()
        return data


def tcm_label(
    band_gap: float | None,
    electron_mass: float | None,
    hole_mass: float | None,
    *,
    is_metal: bool = False,
    thresholds: TcmThresholds | None = None,
) -> TcmLabel:
    """Apply the TCM criteria.

    :param band_gap: fundamental gap in eV (``None`` or 0 for a metal).
    :param electron_mass: overall electron line effective mass in m_e (positive), or ``None``.
    :param hole_mass: overall hole line effective mass in m_e (negative), or ``None``.
    :param is_metal: a metal is never a candidate.
    :param thresholds: the criteria; defaults to :class:`TcmThresholds` ``()``.
    :raises ValueError: for a non-finite gap or mass.
    """
    thresholds = thresholds or TcmThresholds()
    for name, value in (('band_gap', band_gap), ('electron_mass', electron_mass), ('hole_mass', hole_mass)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f'{name} must be finite or None, got {value}')

    if is_metal or band_gap is None:
        return TcmLabel(False, False, False, False, 'metal: no band gap', thresholds)

    transparent = band_gap > thresholds.min_band_gap
    n_type = electron_mass is not None and 0.0 < electron_mass <= thresholds.max_electron_mass
    p_type = hole_mass is not None and thresholds.min_hole_mass <= hole_mass < 0.0
    candidate = transparent and (n_type or p_type)

    if not transparent:
        reason = f'band gap {band_gap:.3f} eV <= {thresholds.min_band_gap} eV'
    elif candidate:
        kinds = ' and '.join(kind for kind, ok in (('n-type', n_type), ('p-type', p_type)) if ok)
        reason = f'band gap {band_gap:.3f} eV with light carriers ({kinds})'
    else:
        reason = (
            f'no light carrier: m_e*={electron_mass} (needs <= {thresholds.max_electron_mass}), '
            f'm_h*={hole_mass} (needs >= {thresholds.min_hole_mass})'
        )
    return TcmLabel(candidate, transparent, n_type, p_type, reason, thresholds)
