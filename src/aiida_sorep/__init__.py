"""AiiDA plugin for spectral operator representations (SOREPs) of crystals.

The numerical core lives in :mod:`aiida_sorep.core` and never imports ``aiida``; the AiiDA
processes (CalcJobs, parsers, calcfunctions, WorkChains) are thin shells over it.
"""

__version__ = '0.1.0'
