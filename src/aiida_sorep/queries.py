"""Provenance queries: QueryBuilder recipes over single-shot work chains, as pandas DataFrames.

Every recipe starts from the graph the ``sorep.singleshot`` work chain leaves behind::

    StructureData --singleshot__structure--> SingleShotWorkChain --fermi-------------> Dict (eV)
                                                   |            --features__<kind>--> SorepFeaturesData
                                                   +--CALL--> SingleShotCalculation <--pseudos__<kind>-- UpfData
                                                                                    <--code------------- InstalledCode

A *group* argument may hold structures (e.g. the structure group of a campaign) or the work chains themselves
(e.g. a campaign group); both work. Only work chains that finished with exit status 0 count as results, and when a
structure has several (a campaign re-run after a retired failure), the most recent one is used.

Use them in ``verdi shell`` or a notebook::

    from aiida_sorep import queries
    frame = queries.features_dataframe('campaign/oxides', kind='concatenated', label_extra='is_tcm')
    X, y = frame.filter(like='feature_').to_numpy(), frame['is_tcm'].to_numpy()
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from aiida import orm

__all__ = (
    'FeatureProvenance',
    'PseudoRecord',
    'failed_runs',
    'failures_by_exit_code',
    'feature_provenance',
    'features_dataframe',
    'fermi_levels_and_gaps',
    'singleshot_query',
)

WORKCHAIN_LABEL = 'SingleShotWorkChain'
CALCULATION_LABEL = 'SingleShotCalculation'
FERMI_KEYS = ('fermi_energy', 'vbm', 'cbm', 'band_gap', 'direct_gap', 'is_metal', 'method')
"""Keys of the ``fermi`` output projected by :func:`fermi_levels_and_gaps` (energies in eV)."""


def _group(group: orm.Group | str) -> orm.Group:
    return group if isinstance(group, orm.Group) else orm.load_group(group)


def _group_holds_workflows(group: orm.Group) -> bool:
    query = orm.QueryBuilder().append(orm.Group, filters={'id': group.pk}, tag='group')
    query.append(orm.WorkflowNode, with_group='group')
    return query.count() > 0


def singleshot_query(
    group: orm.Group | str | None = None,
    *,
    only_ok: bool = True,
    structure_filters: dict[str, Any] | None = None,
) -> orm.QueryBuilder:
    """Return a QueryBuilder with tags ``structure`` and ``workchain`` (single-shot work chains and their structure).

    Nothing is projected: append to it, e.g. ``query.add_projection('workchain', 'id')``.

    :param group: restrict to a group of structures or of work chains (label or ``Group``).
    :param only_ok: only work chains that finished with exit status 0.
    :param structure_filters: QueryBuilder filters on the ``StructureData``.
    """
    workchain_filters: dict[str, Any] = {'attributes.process_label': WORKCHAIN_LABEL}
    if only_ok:
        workchain_filters.update({'attributes.process_state': 'finished', 'attributes.exit_status': 0})
    query = orm.QueryBuilder()
    if group is not None and _group_holds_workflows(_group(group)):
        query.append(orm.Group, filters={'id': _group(group).pk}, tag='group')
        query.append(orm.WorkflowNode, with_group='group', filters=workchain_filters, tag='workchain')
        query.append(
            orm.StructureData,
            with_outgoing='workchain',
            edge_filters={'label': 'singleshot__structure'},
            filters=structure_filters or {},
            tag='structure',
        )
        return query
    if group is not None:
        query.append(orm.Group, filters={'id': _group(group).pk}, tag='group')
        query.append(orm.StructureData, with_group='group', filters=structure_filters or {}, tag='structure')
    else:
        query.append(orm.StructureData, filters=structure_filters or {}, tag='structure')
    query.append(
        orm.WorkflowNode,
        with_incoming='structure',
        edge_filters={'label': 'singleshot__structure'},
        filters=workchain_filters,
        tag='workchain',
    )
    return query


def _latest_per_structure(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep, for each ``structure_pk``, the row of the most recent work chain (highest ``workchain_pk``)."""
    latest: dict[int, dict[str, Any]] = {}
    for row in rows:
        kept = latest.get(row['structure_pk'])
        if kept is None or row['workchain_pk'] > kept['workchain_pk']:
            latest[row['structure_pk']] = row
    return [latest[pk] for pk in sorted(latest)]


def features_dataframe(
    group: orm.Group | str,
    kind: str = 'concatenated',
    *,
    label_extra: str | None = None,
) -> pd.DataFrame:
    """Return the SOREP features of the structures of ``group`` (and their labels) as a DataFrame.

    One row per structure, sorted by structure PK, with columns ``structure_pk``, ``structure_uuid``, ``formula``,
    ``label`` (the structure's node label), ``workchain_pk``, ``features_pk``, then ``label_extra`` (the value of that
    extra of the structure, None where absent) if given, then ``feature_000``, ``feature_001``, ... The energy grid (eV,
    shape ``(n_points,)``) and the feature parameters are in ``frame.attrs['energies']`` and
    ``frame.attrs['parameters']``.

    :param kind: feature map: ``vbm``, ``fermi``, ``cbm`` or ``concatenated``.
    :param label_extra: name of a structure extra holding the label to learn (e.g. ``'is_tcm'``).
    :raises ValueError: if the feature vectors of the group have different lengths (mixed parameterizations).
    """
    query = singleshot_query(group)
    structure_projections = ['id', 'uuid', 'label'] + ([f'extras.{label_extra}'] if label_extra else [])
    query.add_projection('structure', structure_projections)
    query.add_projection('workchain', 'id')
    query.append(
        orm.Data,
        with_incoming='workchain',
        edge_filters={'label': f'features__{kind}'},
        project=['id'],
        tag='features',
    )
    rows = []
    for result in query.iterdict():  # by tag: projections come in path order, not in the order they were added
        structure = result['structure']
        row = {'structure_pk': structure['id'], 'structure_uuid': structure['uuid'], 'label': structure['label']}
        if label_extra:
            row[label_extra] = structure[f'extras.{label_extra}']
        row['workchain_pk'], row['features_pk'] = result['workchain']['id'], result['features']['id']
        rows.append(row)
    rows = _latest_per_structure(rows)

    matrix, energies, parameters = [], None, None
    for row in rows:
        node = orm.load_node(row['features_pk'])
        row['formula'] = orm.load_node(row['structure_pk']).get_formula()
        vector = node.features
        if matrix and vector.shape != matrix[0].shape:
            raise ValueError(
                f'features `{kind}` of structure {row["structure_pk"]} have {vector.size} points, others '
                f'{matrix[0].size}: the group mixes feature parameterizations; select one campaign.'
            )
        matrix.append(vector)
        if energies is None:
            energies, parameters = node.energies, node.parameters
    columns = ['structure_pk', 'structure_uuid', 'formula', 'label', 'workchain_pk', 'features_pk']
    columns += [label_extra] if label_extra else []
    meta = pd.DataFrame(rows, columns=columns)
    if label_extra:  # keep labels as stored (bool/str/None), not coerced to float with NaN
        meta[label_extra] = pd.Series([row[label_extra] for row in rows], dtype=object)
    width = len(matrix[0]) if matrix else 0
    digits = max(3, len(str(width)))
    features = pd.DataFrame(
        np.asarray(matrix).reshape(len(matrix), width), columns=[f'feature_{i:0{digits}d}' for i in range(width)]
    )
    frame = pd.concat([meta, features], axis=1)
    frame.attrs['energies'] = energies
    frame.attrs['parameters'] = parameters
    frame.attrs['kind'] = kind
    return frame


def _structure_has_element(kinds: list[dict[str, Any]], element: str) -> bool:
    return any(element in kind.get('symbols', ()) for kind in kinds or ())


def fermi_levels_and_gaps(element: str, group: orm.Group | str | None = None) -> pd.DataFrame:
    """Return the single-shot Fermi levels, band edges and gaps (eV) of every structure that contains ``element``.

    One row per structure (latest successful work chain), sorted by structure PK: ``structure_pk``, ``formula``,
    ``workchain_pk``, then :data:`FERMI_KEYS`. On PostgreSQL the element is filtered in the database (JSONB
    containment on the ``kinds`` attribute); other back-ends filter the projected kinds in Python.

    :param group: restrict to a group of structures or work chains.
    """
    from aiida.manage import get_manager

    psql = get_manager().get_profile().storage_backend == 'core.psql_dos'
    filters = {'attributes.kinds': {'contains': [{'symbols': [element]}]}} if psql else None
    query = singleshot_query(group, structure_filters=filters)
    query.add_projection('structure', ['id', 'attributes.kinds'])
    query.add_projection('workchain', 'id')
    query.append(
        orm.Dict,
        with_incoming='workchain',
        edge_filters={'label': 'fermi'},
        project=[f'attributes.{key}' for key in FERMI_KEYS],
        tag='fermi',
    )
    rows = []
    for result in query.iterdict():
        if not _structure_has_element(result['structure']['attributes.kinds'], element):
            continue
        fermi = result['fermi']
        rows.append(
            {
                'structure_pk': result['structure']['id'],
                'workchain_pk': result['workchain']['id'],
                **{key: fermi[f'attributes.{key}'] for key in FERMI_KEYS},
            }
        )
    rows = _latest_per_structure(rows)
    for row in rows:
        row['formula'] = orm.load_node(row['structure_pk']).get_formula()
    return pd.DataFrame(rows, columns=['structure_pk', 'formula', 'workchain_pk', *FERMI_KEYS])


@dataclass(frozen=True)
class PseudoRecord:
    """A pseudopotential that entered a calculation.

    :ivar kind: kind name in the structure.
    :ivar element: chemical symbol.
    :ivar filename: UPF file name.
    :ivar md5: MD5 checksum of the file.
    :ivar pk: PK of the ``UpfData`` node.
    :ivar families: labels of the pseudopotential families that contain it.
    """

    kind: str
    element: str
    filename: str
    md5: str
    pk: int
    families: tuple[str, ...]


@dataclass(frozen=True)
class FeatureProvenance:
    """Where a feature vector comes from.

    :ivar features_pk: the ``SorepFeaturesData``.
    :ivar calculation_pk: the ``SingleShotCalculation`` (pw.x run) whose parser created it.
    :ivar workchain_pk: the work chain that called the calculation (None if run directly).
    :ivar structure_pk: the input structure.
    :ivar code: full label of the code (``label@computer``).
    :ivar executable: absolute path of pw.x on the computer.
    :ivar pw_version: version of pw.x that wrote the output (from its XML).
    :ivar parameters: the pw.x input namelists as given to the calculation (``nbnd`` and the single-shot keys are
        added by the plugin).
    :ivar kpoints_mesh: Monkhorst-Pack mesh (None for explicit lists).
    :ivar pseudos: the pseudopotentials, sorted by kind.
    """

    features_pk: int
    calculation_pk: int
    workchain_pk: int | None
    structure_pk: int
    code: str
    executable: str
    pw_version: str | None
    parameters: dict[str, Any]
    kpoints_mesh: list[int] | None
    pseudos: tuple[PseudoRecord, ...]


def _features_of(node: orm.Node, kind: str) -> orm.Data:
    """Return the ``SorepFeaturesData`` of ``kind`` for a features node, a work chain, a calculation or a structure."""
    if isinstance(node, orm.StructureData):
        query = singleshot_query(structure_filters={'id': node.pk})
        query.add_projection('workchain', 'id')
        pks = [pk for (pk,) in query.iterall()]
        if not pks:
            raise ValueError(f'structure {node.pk} has no successful single-shot work chain')
        node = orm.load_node(max(pks))
    if isinstance(node, orm.ProcessNode):
        try:
            return node.outputs.features[kind]
        except (AttributeError, KeyError) as exception:
            raise ValueError(f'{node.process_label}<{node.pk}> has no `features.{kind}` output') from exception
    if node.node_type.startswith('data.sorep.features'):
        return node
    raise ValueError(f'cannot trace features from a {type(node).__name__}: give features, a work chain or a structure')


def feature_provenance(node: orm.Node | int | str, kind: str = 'concatenated') -> FeatureProvenance:
    """Trace a candidate back to the pw.x calculation, code and pseudopotentials that produced its features.

    :param node: a ``SorepFeaturesData``, a single-shot work chain or calculation, or a structure (its latest
        successful single shot), as node, PK or UUID.
    :param kind: which feature map to trace when ``node`` is not a features node itself.
    """
    if not isinstance(node, orm.Node):
        node = orm.load_node(node)
    features = _features_of(node, kind)

    # features <-CREATE- calculation; calculation <-CALL- work chain; calculation <-INPUT- structure, code, pseudos.
    query = orm.QueryBuilder()
    query.append(orm.Data, filters={'id': features.pk}, tag='features')
    query.append(orm.CalcJobNode, with_outgoing='features', project=['id', 'attributes.process_label'], tag='calc')
    query.append(orm.StructureData, with_outgoing='calc', edge_filters={'label': 'structure'}, project='id')
    query.append(orm.Data, with_outgoing='calc', edge_filters={'label': 'code'}, project='*')
    query.append(orm.Dict, with_outgoing='calc', edge_filters={'label': 'parameters'}, project='attributes')
    ((calculation_pk, process_label, structure_pk, code, parameters),) = query.all()
    if process_label != CALCULATION_LABEL:
        raise ValueError(f'features {features.pk} were created by {process_label}<{calculation_pk}>, not a single shot')

    query = orm.QueryBuilder()
    query.append(orm.CalcJobNode, filters={'id': calculation_pk}, tag='calc')
    query.append(
        orm.Data,
        with_outgoing='calc',
        edge_filters={'label': {'like': 'pseudos__%'}},
        edge_project='label',
        project=['id', 'attributes.element', 'attributes.filename', 'attributes.md5'],
        tag='pseudo',
    )
    families: dict[int, list[str]] = collections.defaultdict(list)
    family_query = orm.QueryBuilder()
    family_query.append(orm.CalcJobNode, filters={'id': calculation_pk}, tag='calc')
    family_query.append(
        orm.Data, with_outgoing='calc', edge_filters={'label': {'like': 'pseudos__%'}}, project='id', tag='pseudo'
    )
    family_query.append(
        orm.Group, with_node='pseudo', filters={'type_string': {'like': 'pseudo.family%'}}, project='label'
    )
    for pseudo_pk, family in family_query.iterall():
        families[pseudo_pk].append(family)
    pseudos = tuple(
        sorted(
            (
                PseudoRecord(
                    kind=result['calc--pseudo']['label'].removeprefix('pseudos__'),
                    element=result['pseudo']['attributes.element'],
                    filename=result['pseudo']['attributes.filename'],
                    md5=result['pseudo']['attributes.md5'],
                    pk=result['pseudo']['id'],
                    families=tuple(sorted(families[result['pseudo']['id']])),
                )
                for result in query.iterdict()
            ),
            key=lambda record: record.kind,
        )
    )

    calculation = orm.load_node(calculation_pk)
    caller = calculation.caller
    try:
        mesh, _ = calculation.inputs.kpoints.get_kpoints_mesh()
        kpoints_mesh = [int(n) for n in mesh]
    except AttributeError:
        kpoints_mesh = None
    output_parameters = (
        calculation.outputs.output_parameters.get_dict() if 'output_parameters' in calculation.outputs else {}
    )
    return FeatureProvenance(
        features_pk=features.pk,
        calculation_pk=calculation_pk,
        workchain_pk=None if caller is None else caller.pk,
        structure_pk=structure_pk,
        code=code.full_label,
        executable=str(code.get_executable()),
        pw_version=output_parameters.get('creator_version'),
        parameters=parameters,
        kpoints_mesh=kpoints_mesh,
        pseudos=pseudos,
    )


def failed_runs(group: orm.Group | str | None = None, process_label: str = WORKCHAIN_LABEL) -> pd.DataFrame:
    """Return the failed processes (non-zero exit status, excepted or killed) as a DataFrame, sorted by PK.

    Columns: ``pk``, ``process_label``, ``process_state``, ``exit_status`` (None unless finished), ``exit_message``,
    ``structure_pk`` (the ``singleshot__structure`` or ``structure`` input, None if absent), ``ctime``.

    :param group: restrict to a group of processes (e.g. a campaign); default: the whole profile.
    :param process_label: ``SingleShotWorkChain`` (default), ``SingleShotCalculation``, or another process class name.
    """
    failed = {
        'or': [
            {'attributes.process_state': 'finished', 'attributes.exit_status': {'!==': 0}},
            {'attributes.process_state': {'in': ['excepted', 'killed']}},
        ]
    }
    filters = {'and': [{'attributes.process_label': process_label}, failed]}
    query = orm.QueryBuilder()
    if group is not None:
        query.append(orm.Group, filters={'id': _group(group).pk}, tag='group')
        query.append(orm.ProcessNode, with_group='group', filters=filters, tag='process')
    else:
        query.append(orm.ProcessNode, filters=filters, tag='process')
    query.add_projection(
        'process',
        [
            'id',
            'attributes.process_label',
            'attributes.process_state',
            'attributes.exit_status',
            'attributes.exit_message',
            'ctime',
        ],
    )
    query.append(
        orm.StructureData,
        with_outgoing='process',
        edge_filters={'label': {'in': ['singleshot__structure', 'structure']}},
        project='id',
        outerjoin=True,
    )
    columns = ['pk', 'process_label', 'process_state', 'exit_status', 'exit_message', 'ctime', 'structure_pk']
    frame = pd.DataFrame(query.all(), columns=columns)
    frame.loc[frame['process_state'] != 'finished', 'exit_status'] = None
    frame = frame.drop_duplicates('pk').sort_values('pk').reset_index(drop=True)
    return frame[['pk', 'process_label', 'process_state', 'exit_status', 'exit_message', 'structure_pk', 'ctime']]


def failures_by_exit_code(group: orm.Group | str | None = None, process_label: str = WORKCHAIN_LABEL) -> pd.DataFrame:
    """Count the failed processes by state and exit status: columns ``process_state``, ``exit_status``, ``count``,
    ``exit_message`` (of the first one) and ``pks`` (list), largest count first."""
    frame = failed_runs(group, process_label)
    if frame.empty:
        return pd.DataFrame(columns=['process_state', 'exit_status', 'count', 'exit_message', 'pks'])
    keys = (
        frame[['process_state', 'exit_status']]
        .astype(object)
        .where(frame[['process_state', 'exit_status']].notna(), -1)
    )
    summary = (
        frame.assign(_state=keys['process_state'], _status=keys['exit_status'])
        .groupby(['_state', '_status'], sort=False)
        .agg(count=('pk', 'size'), exit_message=('exit_message', 'first'), pks=('pk', list))
        .reset_index()
        .rename(columns={'_state': 'process_state', '_status': 'exit_status'})
    )
    summary['exit_status'] = summary['exit_status'].map(lambda value: None if value == -1 else int(value))
    return summary.sort_values(['count', 'process_state'], ascending=[False, True]).reset_index(drop=True)
