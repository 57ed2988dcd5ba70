"""Smearing functions with Quantum ESPRESSO's conventions.

All functions take the dimensionless argument ``x = (mu - e) / sigma`` (QE's convention: ``mu`` the
chemical potential, ``e`` an eigenvalue, ``sigma`` the smearing width ``degauss``), so that the
occupation tends to 1 for ``x -> +inf`` (states well below ``mu``) and to 0 for ``x -> -inf``.

=====================  ==================================================================
smearing               occupation ``f(x)``
=====================  ==================================================================
``fixed``              step function ``theta(x)`` (``1/2`` at ``x = 0``)
``gaussian``           ``erfc(-x) / 2``
``fermi-dirac``        ``1 / (1 + exp(-x))``
``methfessel-paxton``  ``erfc(-x) / 2 + x exp(-x^2) / (2 sqrt(pi))`` (first order)
``cold``               ``erfc(-y) / 2 + exp(-y^2) / sqrt(2 pi)`` with ``y = x - 1/sqrt(2)``
=====================  ==================================================================

``delta(x) = df/dx`` (normalised: its integral over ``x`` is 1) and ``delta_derivative(x) = d delta / dx``.
They agree with QE's ``wgauss``/``w0gauss``/``w1gauss`` (``Modules/wgauss.f90``, ``w0gauss.f90``) for
``ngauss = 0, 1, -1, -99``. No overflow warning is raised for large ``|x|``.
"""

from __future__ import annotations

import enum
import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import erfc, expit

__all__ = ('Smearing', 'delta', 'delta_derivative', 'occupation', 'occupation_and_delta')

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_CLIP = 20.0


class Smearing(str, enum.Enum):
    """Occupation smearing, with QE's names and the usual aliases (see :meth:`from_name`)."""

    FIXED = 'fixed'
    GAUSSIAN = 'gaussian'
    FERMI_DIRAC = 'fermi-dirac'
    METHFESSEL_PAXTON = 'methfessel-paxton'
    COLD = 'cold'

    @classmethod
    def from_name(cls, name: str | Smearing) -> Smearing:
        """Return the smearing for a QE name or alias (case-insensitive).

        :param name: a :class:`Smearing` or one of ``fixed``, ``gaussian``/``gauss``, ``fermi-dirac``/``f-d``/``fd``,
            ``methfessel-paxton``/``m-p``/``mp``, ``cold``/``marzari-vanderbilt``/``m-v``/``mv``.
        :raises ValueError: for an unknown name (the message lists the valid ones).
        """
        if isinstance(name, Smearing):
            return name
        if not isinstance(name, str):
            raise ValueError(f'smearing must be a string or Smearing, got {type(name).__name__}: {name!r}')
        key = name.strip().lower()
        try:
            return _ALIASES[key]
        except KeyError:
            valid = ', '.join(sorted(_ALIASES))
            raise ValueError(f'unknown smearing {name!r}: valid names are {valid}') from None

    @property
    def is_monotonic(self) -> bool:
        """Whether the occupation is monotonic in ``x`` (then ``N(E)`` is monotonic and bisection is safe)."""
        return self in (Smearing.FIXED, Smearing.GAUSSIAN, Smearing.FERMI_DIRAC)

    @property
    def qe_name(self) -> str:
        """QE's ``smearing`` input keyword for this smearing (``'fixed'`` means ``occupations='fixed'``)."""
        return {
            Smearing.FIXED: 'fixed',
            Smearing.GAUSSIAN: 'gaussian',
            Smearing.FERMI_DIRAC: 'fermi-dirac',
            Smearing.METHFESSEL_PAXTON: 'methfessel-paxton',
            Smearing.COLD: 'cold',
        }[self]

    @property
    def support(self) -> float:
        """Half-width in ``x`` beyond which ``|1 - f|`` or ``|f|`` is below 1e-17 (0 for fixed occupations)."""
        return {
            Smearing.FIXED: 0.0,
            Smearing.GAUSSIAN: 6.5,
            Smearing.FERMI_DIRAC: 40.0,
            Smearing.METHFESSEL_PAXTON: 7.0,
            Smearing.COLD: 7.5,
        }[self]


_ALIASES: dict[str, Smearing] = {
    'fixed': Smearing.FIXED,
    'gaussian': Smearing.GAUSSIAN,
    'gauss': Smearing.GAUSSIAN,
    'fermi-dirac': Smearing.FERMI_DIRAC,
    'f-d': Smearing.FERMI_DIRAC,
    'fd': Smearing.FERMI_DIRAC,
    'methfessel-paxton': Smearing.METHFESSEL_PAXTON,
    'm-p': Smearing.METHFESSEL_PAXTON,
    'mp': Smearing.METHFESSEL_PAXTON,
    'cold': Smearing.COLD,
    'marzari-vanderbilt': Smearing.COLD,
    'm-v': Smearing.COLD,
    'mv': Smearing.COLD,
}


def _gauss(y: np.ndarray) -> np.ndarray:
    """``exp(-y^2)`` for ``|y| <= 21`` (callers clip): at most 1e-191 beyond ``|y| = 21``, never a warning."""
    return np.exp(-(y * y))


def _as_array(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _clipped(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to ``[-_CLIP, _CLIP]``: polynomial prefactors of ``exp(-x^2)`` never overflow."""
    return np.clip(x, -_CLIP, _CLIP)


def occupation(x: ArrayLike, smearing: str | Smearing) -> np.ndarray:
    """Occupation ``f(x)`` of a state, ``x = (mu - e) / sigma``; tends to 1 for ``x -> +inf``.

    :param x: dimensionless argument, any shape.
    :param smearing: smearing name or :class:`Smearing`.
    :returns: array of the shape of ``x``; in ``[0, 1]`` for fixed, Gaussian and Fermi-Dirac, slightly outside it
        for Methfessel-Paxton and cold smearing (they are not monotonic).
    """
    kind = Smearing.from_name(smearing)
    x = _as_array(x)
    if kind is Smearing.FIXED:
        return np.heaviside(x, 0.5)
    if kind is Smearing.GAUSSIAN:
        return 0.5 * erfc(-x)
    if kind is Smearing.FERMI_DIRAC:
        return expit(x)
    if kind is Smearing.METHFESSEL_PAXTON:
        xc = _clipped(x)
        return 0.5 * erfc(-x) + xc * _gauss(xc) / (2.0 * _SQRT_PI)
    # cold
    y = x - 1.0 / _SQRT_2
    return 0.5 * erfc(-y) + _gauss(_clipped(y)) / _SQRT_2PI


def delta(x: ArrayLike, smearing: str | Smearing) -> np.ndarray:
    """Smeared delta function ``df/dx`` (its integral over ``x`` is 1).

    The density of states of a level ``e`` at energy ``E`` is ``delta((E - e) / sigma) / sigma`` (1/eV for
    ``sigma`` in eV).

    :raises ValueError: for fixed occupations (a Dirac delta has no finite-width representation).
    """
    kind = Smearing.from_name(smearing)
    x = _as_array(x)
    if kind is Smearing.FIXED:
        raise ValueError('fixed occupations have no smooth delta function: use a finite-width smearing (e.g. gaussian)')
    if kind is Smearing.FERMI_DIRAC:
        return expit(x) * expit(-x)
    xc = _clipped(x)
    if kind is Smearing.GAUSSIAN:
        return _gauss(xc) / _SQRT_PI
    if kind is Smearing.METHFESSEL_PAXTON:
        return _gauss(xc) / _SQRT_PI * (1.5 - xc * xc)
    y = _clipped(x - 1.0 / _SQRT_2)
    return _gauss(y) / _SQRT_PI * (1.0 - _SQRT_2 * y)


def delta_derivative(x: ArrayLike, smearing: str | Smearing) -> np.ndarray:
    """Derivative ``d delta / dx`` of the smeared delta function.

    :raises ValueError: for fixed occupations.
    """
    kind = Smearing.from_name(smearing)
    x = _as_array(x)
    if kind is Smearing.FIXED:
        raise ValueError('fixed occupations have no smooth delta function: use a finite-width smearing (e.g. gaussian)')
    if kind is Smearing.FERMI_DIRAC:
        f = expit(x)
        return f * (1.0 - f) * (1.0 - 2.0 * f)
    xc = _clipped(x)
    if kind is Smearing.GAUSSIAN:
        return -2.0 * xc * _gauss(xc) / _SQRT_PI
    if kind is Smearing.METHFESSEL_PAXTON:
        return _gauss(xc) / _SQRT_PI * (2.0 * xc**3 - 5.0 * xc)
    y = _clipped(x - 1.0 / _SQRT_2)
    return _gauss(y) / _SQRT_PI * (2.0 * _SQRT_2 * y * y - 2.0 * y - _SQRT_2)


def occupation_and_delta(x: ArrayLike, smearing: str | Smearing) -> tuple[np.ndarray, np.ndarray]:
    """``(occupation(x), delta(x))`` sharing the exponentials (faster than two calls; used by the Fermi solvers).

    :raises ValueError: for fixed occupations.
    """
    kind = Smearing.from_name(smearing)
    x = _as_array(x)
    if kind is Smearing.FIXED:
        raise ValueError('fixed occupations have no smooth delta function: use a finite-width smearing (e.g. gaussian)')
    if kind is Smearing.FERMI_DIRAC:
        f = expit(x)
        return f, f * (1.0 - f)
    if kind is Smearing.COLD:
        y = _clipped(x - 1.0 / _SQRT_2)
        g = _gauss(y)
        return 0.5 * erfc(-y) + g / _SQRT_2PI, g / _SQRT_PI * (1.0 - _SQRT_2 * y)
    xc = _clipped(x)
    g = _gauss(xc)
    if kind is Smearing.GAUSSIAN:
        return 0.5 * erfc(-xc), g / _SQRT_PI
    return 0.5 * erfc(-xc) + xc * g / (2.0 * _SQRT_PI), g / _SQRT_PI * (1.5 - xc * xc)
