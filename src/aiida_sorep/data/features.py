"""``SorepFeaturesData``: a SOREP feature vector with its energy grid and the parameters that made it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from aiida.orm import ArrayData

__all__ = ('SorepFeaturesData',)


class SorepFeaturesData(ArrayData):
    """A fixed-length SOREP feature vector, queryable by its parameters.

    Arrays:

    * ``features``: shape ``(n_points,)``, the smeared spectral density sampled on the grid
      (units given by ``parameters['normalization']``, e.g. states / eV / Å^3);
    * ``energies``: shape ``(n_points,)``, the energy grid in eV, relative to the reference energy of
      the parameterization (VBM, Fermi level, CBM; for a concatenated map, relative to each block's own
      reference).

    Attributes:

    * ``parameters``: JSON-serialisable description of the parameterization (``kind``, window,
      number of points, smearing, width in eV, normalization, ...), enough to recompute the features
      from stored eigenvalues;
    * ``kind``: short name of the parameterization (e.g. ``'vbm'``, ``'fermi'``, ``'cbm'``,
      ``'concatenated'``, ``'kinetic'``), duplicated from ``parameters`` for easy querying;
    * ``n_points``: length of the feature vector.
    """

    def __init__(self, features: Any, energies: Any, parameters: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        features = np.asarray(features, dtype=float)
        energies = np.asarray(energies, dtype=float)
        if features.ndim != 1 or energies.shape != features.shape:
            raise ValueError(
                f'features and energies must be 1D arrays of the same length, got {features.shape} and {energies.shape}'
            )
        if not np.all(np.isfinite(features)):
            raise ValueError('features contain NaN or inf')
        if 'kind' not in parameters:
            raise ValueError('parameters must contain the key `kind`')
        self.set_array('features', features)
        self.set_array('energies', energies)
        self.base.attributes.set('parameters', dict(parameters))
        self.base.attributes.set('kind', str(parameters['kind']))
        self.base.attributes.set('n_points', int(features.size))

    @property
    def features(self) -> np.ndarray:
        """Feature vector, shape ``(n_points,)``."""
        return self.get_array('features')

    @property
    def energies(self) -> np.ndarray:
        """Energy grid in eV, shape ``(n_points,)``."""
        return self.get_array('energies')

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameters of the feature map."""
        return dict(self.base.attributes.get('parameters'))

    @property
    def kind(self) -> str:
        """Short name of the parameterization."""
        return self.base.attributes.get('kind')
