"""Calcfunctions that wrap the kinetic-SOREP and similarity cores: ``sorep.kinetic.features`` and ``sorep.similarity``.

They only move data between nodes and :mod:`aiida_sorep.core.kinetic` / :mod:`aiida_sorep.core.similarity`.
One structure takes 0.1-2 s (see ``docs/kinetic.md``), so a calcfunction per structure keeps the provenance
(``StructureData`` -> calcfunction -> ``SorepFeaturesData``) without holding a daemon worker for long; the
``sorep.kinetic`` WorkChain runs them in checkpointed chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_sorep.core.kinetic import KpointReduction, Normalization, Operator, kinetic_sorep
from aiida_sorep.core.similarity import cosine_distance_matrix, dbscan_labels
from aiida_sorep.data.features import SorepFeaturesData

__all__ = ('DEFAULT_KINETIC_PARAMETERS', 'cluster_features', 'kinetic_features', 'parse_kinetic_parameters')

DEFAULT_KINETIC_PARAMETERS: dict[str, Any] = {
    'operator': Operator.KINETIC.value,
    'basis': 'ano-ml-os',
    'kspacing': 0.2,
    'mesh': None,
    'e_min': 0.0,
    'e_max': 180.0,
    'n_points': 1024,
    'width': 0.8,
    'normalization': Normalization.VOLUME.value,
    'cumulative_cutoff': None,
    'exp_to_discard': 0.1,
    'lindep_threshold': 1e-7,
    'kpoint_reduction': KpointReduction.SPGLIB.value,
    'symprec': 1e-5,
}


def parse_kinetic_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``parameters``, validated; keys are the keyword arguments of ``kinetic_sorep``.

    :raises ValueError: unknown key or invalid categorical value (the message lists the valid ones).
    """
    merged = {**DEFAULT_KINETIC_PARAMETERS, **dict(parameters or {})}
    unknown = sorted(set(merged) - set(DEFAULT_KINETIC_PARAMETERS))
    if unknown:
        raise ValueError(f'unknown kinetic parameters {unknown}: valid keys are {sorted(DEFAULT_KINETIC_PARAMETERS)}')
    merged['operator'] = Operator(merged['operator']).value
    merged['normalization'] = Normalization(merged['normalization']).value
    merged['kpoint_reduction'] = KpointReduction(merged['kpoint_reduction']).value
    if not isinstance(merged['basis'], str):
        raise ValueError('basis must be a name (e.g. "ano-ml-os" or a PySCF basis name such as "sto-3g")')
    if merged['mesh'] is None and merged['kspacing'] is None:
        raise ValueError('give either kspacing (1/Å) or mesh')
    return merged


@calcfunction
def kinetic_features(structure: orm.StructureData, parameters: orm.Dict) -> SorepFeaturesData:
    """Kinetic SOREP of ``structure`` (see :func:`aiida_sorep.core.kinetic.kinetic_sorep`)."""
    kwargs = parse_kinetic_parameters(parameters.get_dict())
    result = kinetic_sorep(structure.get_ase(), **kwargs)
    return SorepFeaturesData(result.features, result.energies, result.parameters)


@calcfunction
def cluster_features(eps: orm.Float, **features: SorepFeaturesData) -> dict[str, orm.Data]:
    """Cosine distances and DBSCAN (``min_samples=1``) labels of ``features``, keyed as the inputs.

    Returns ``distances`` (``ArrayData`` with array ``distances`` (n, n) and attribute ``keys``, the input keys in
    matrix order) and ``clusters`` (``Dict``: ``labels`` {key: label}, ``n_clusters``, ``eps``).
    """
    keys = sorted(features)
    grids = [features[key].energies for key in keys]
    if any(grid.shape != grids[0].shape or not np.allclose(grid, grids[0]) for grid in grids):
        raise ValueError('the feature nodes are on different energy grids: recompute them with the same parameters')
    distances = cosine_distance_matrix(np.stack([features[key].features for key in keys]))
    labels = dbscan_labels(distances, eps.value)
    matrix = orm.ArrayData()
    matrix.set_array('distances', distances)
    matrix.base.attributes.set('keys', keys)
    clusters = {'labels': dict(zip(keys, map(int, labels), strict=True)), 'n_clusters': int(labels.max()) + 1}
    return {'distances': matrix, 'clusters': orm.Dict({**clusters, 'eps': eps.value})}
