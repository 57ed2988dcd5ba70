"""Re-featurization without re-running pw.x: the ``sorep.featurize`` calcfunction and its small adapters.

``featurize`` takes any ``BandsData`` (a single shot's or an SCF's ``output_band``), the Fermi level and band
edges (a ``Dict`` such as the single shot's ``fermi`` output), feature parameters and the structure (for the
volume normalization) and returns new :class:`~aiida_sorep.data.features.SorepFeaturesData` nodes, so that
single-shot and SCF features can be compared on the same grid with full provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_sorep.core.features import (
    DEFAULT_FEATURE_PARAMETERS,
    FeatureKind,
    FeatureParameters,
    SorepFeatures,
    compute_features,
)
from aiida_sorep.data.features import SorepFeaturesData

__all__ = (
    'bands_to_arrays',
    'compute_feature_maps',
    'feature_nodes',
    'featurize',
    'parse_feature_parameters',
)


def parse_feature_parameters(
    overrides: Mapping[str, Mapping[str, Any] | None] | None, *, only_given: bool = False
) -> dict[FeatureKind, FeatureParameters]:
    """Return feature parameterizations: the paper's defaults with ``overrides`` merged per kind.

    :param overrides: ``{kind: {key: value}}`` with keys of :meth:`FeatureParameters.to_dict` (``window`` in eV,
        ``n_points``, ``smearing``, ``width`` in eV, ``normalization``); a kind mapped to ``None`` is dropped.
    :param only_given: return only the kinds named in ``overrides`` (for re-featurization).
    :raises ValueError: unknown kind or invalid parameters (the message names them).
    """
    overrides = dict(overrides or {})
    result = {} if only_given else dict(DEFAULT_FEATURE_PARAMETERS)
    for name, values in overrides.items():
        try:
            kind = FeatureKind(name)
        except ValueError:
            valid = ', '.join(member.value for member in FeatureKind)
            raise ValueError(f'unknown feature kind `{name}`: valid kinds are {valid}') from None
        if values is None:
            result.pop(kind, None)
            continue
        merged = {**DEFAULT_FEATURE_PARAMETERS[kind].to_dict(), **dict(values), 'kind': kind.value}
        merged.pop('references', None)
        result[kind] = FeatureParameters.from_dict(merged)
    if not result:
        raise ValueError('no feature parameterization left: give at least one kind')
    return result


def bands_to_arrays(bands: orm.BandsData) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(eigenvalues, weights)`` of a ``BandsData`` in the core's conventions.

    :return: eigenvalues in eV, shape ``(n_spins, n_kpoints, n_bands)``; weights ``(n_kpoints,)`` rescaled to QE's
        convention (sum 2 for one spin channel, 1 for two).
    :raises ValueError: the bands are not in eV or the k-points have no weights.
    """
    units = bands.base.attributes.get('units', 'eV')
    if units != 'eV':
        raise ValueError(f'the bands are in `{units}`, expected eV')
    eigenvalues = np.asarray(bands.get_bands(), dtype=float)
    if eigenvalues.ndim == 2:
        eigenvalues = eigenvalues[np.newaxis]
    try:
        weights = np.asarray(bands.get_kpoints(also_weights=True)[1], dtype=float)
    except AttributeError as exception:
        raise ValueError('the bands have no k-point weights: they are needed for the DOS') from exception
    weights = weights * (2.0 / eigenvalues.shape[0]) / weights.sum()
    return eigenvalues, weights


def compute_feature_maps(
    eigenvalues: np.ndarray,
    weights: np.ndarray,
    parameters: Mapping[FeatureKind, FeatureParameters],
    *,
    fermi_energy: float,
    vbm: float | None,
    cbm: float | None,
    volume: float | None,
    n_electrons: float | None = None,
) -> dict[FeatureKind, SorepFeatures]:
    """Compute every parameterization in ``parameters`` with the given reference energies (eV)."""
    return {
        kind: compute_features(
            eigenvalues,
            weights,
            params,
            fermi_energy=fermi_energy,
            vbm=vbm,
            cbm=cbm,
            volume=volume,
            n_electrons=n_electrons,
        )
        for kind, params in parameters.items()
    }


def feature_nodes(features: Mapping[FeatureKind, SorepFeatures]) -> dict[str, SorepFeaturesData]:
    """Wrap the feature maps in unstored ``SorepFeaturesData`` nodes keyed by kind (``'vbm'``, ``'fermi'``, ...)."""
    nodes = {}
    for kind, value in features.items():
        parameters = {**value.parameters.to_dict(), 'reference_energies': [float(e) for e in value.reference_energies]}
        nodes[FeatureKind(kind).value] = SorepFeaturesData(value.features, value.energies, parameters)
    return nodes


@calcfunction
def featurize(
    bands: orm.BandsData, fermi: orm.Dict, parameters: orm.Dict, structure: orm.StructureData
) -> dict[str, SorepFeaturesData]:
    """Compute new SOREP features from stored eigenvalues (single shot or SCF), without running pw.x.

    :param bands: eigenvalues in eV with k-point weights.
    :param fermi: ``fermi_energy`` and optionally ``vbm``, ``cbm`` (eV; absent or ``None`` for metals) and
        ``number_of_electrons``, e.g. the ``fermi`` output of ``sorep.singleshot``.
    :param parameters: ``{kind: {window, n_points, smearing, width, normalization}}``; only these kinds are computed,
        missing keys take the paper's defaults.
    :param structure: the crystal, for the per-volume normalization.
    :return: one ``SorepFeaturesData`` per kind, labelled by the kind.
    """
    eigenvalues, weights = bands_to_arrays(bands)
    edges = fermi.get_dict()
    maps = compute_feature_maps(
        eigenvalues,
        weights,
        parse_feature_parameters(parameters.get_dict(), only_given=True),
        fermi_energy=edges['fermi_energy'],
        vbm=edges.get('vbm'),
        cbm=edges.get('cbm'),
        volume=structure.get_cell_volume(),
        n_electrons=edges.get('number_of_electrons'),
    )
    return feature_nodes(maps)
