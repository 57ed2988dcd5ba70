"""Enumerations for categorical choices of aiida-sorep (standard library only).

The smearing names live with the numerics in :class:`aiida_sorep.core.smearing.Smearing`.

Using enums instead of free strings means that a typo fails when the builder is made, not an hour
into a run.
"""

from __future__ import annotations

import enum

__all__ = ('PwxFlavour', 'SingleShotProtocol')


class PwxFlavour(enum.Enum):
    """Which pw.x produced a single-shot output.

    * ``STOCK``: an unmodified pw.x; it stops after 0 SCF iterations, prints "convergence NOT achieved",
      exits with status 2 and writes no valid Fermi level.
    * ``PATCHED``: the pw.x built from ``qe/`` (see ``docs/patched_pwx.md``); it prints a ``single-shot``
      marker, computes the occupations and the Fermi level from the single-shot eigenvalues and exits 0.
    """

    STOCK = 'stock'
    PATCHED = 'patched'


class SingleShotProtocol(enum.Enum):
    """Named protocols of :class:`aiida_sorep.workflows.singleshot.SingleShotWorkChain`."""

    FAST = 'fast'
    BALANCED = 'balanced'
    STRINGENT = 'stringent'
