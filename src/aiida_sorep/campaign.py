"""Campaign driver: one single-shot work chain per structure of a group, throttled, de-duplicated, resumable.

A *campaign* is an AiiDA group (e.g. ``campaign/mp-oxides``) that collects the work chains submitted for the
structures of a *structure group*. Its settings (structure group, code, protocol, overrides, options, workflow
entry point) are stored once, in the extras of the campaign group, so a campaign is resumed by its label alone.

Submission goes through `aiida-submission-controller <https://github.com/aiidateam/aiida-submission-controller>`_
(:class:`~aiida_submission_controller.BaseSubmissionController`): at most ``max_concurrent`` processes of the
campaign are active (unsealed) at any time, and every work chain carries the extra ``sorep_structure_uuid`` that
identifies its structure, so running the driver again submits only the structures that have no work chain yet.

Crash safety. The controller stores the extra and adds the work chain to the campaign group right *after*
``submit``; a driver killed between the two would leave a running work chain that the campaign does not know,
and the next run would submit the structure a second time. Every work chain is therefore also tagged *at
submission* through its description (``aiida-sorep campaign <label>``), which is stored with the node; before
each batch the driver adopts such untracked work chains (sets the extra, adds them to the group).

Orphans. A process *function* (e.g. the ``create_kpoints_from_distance`` calcfunction of the work chain) runs
inside a daemon worker and has no checkpoint: if the worker dies (SIGKILL, out of memory, node reboot) while it runs,
its node stays ``running`` forever, while the work chain, restored from its last checkpoint, simply runs the step
again. :func:`repair_orphans` marks such nodes as killed, once their caller has terminated.

Failed work chains stay in the campaign (they count as submitted) until :func:`retire_failed` moves them to the
group ``<label>/retired``; the next run then resubmits their structures.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida_submission_controller import BaseSubmissionController

__all__ = (
    'CampaignSettings',
    'CampaignStatus',
    'FailureSummary',
    'SingleShotSubmissionController',
    'campaign_status',
    'get_campaign_settings',
    'load_or_create_campaign',
    'repair_orphans',
    'retire_failed',
    'run_campaign',
)

SETTINGS_EXTRA = 'sorep_campaign_settings'
"""Extra of the campaign group holding :class:`CampaignSettings` as a dict."""
STRUCTURE_EXTRA = 'sorep_structure_uuid'
"""Extra of each campaign work chain: UUID of its input structure (the de-duplication key)."""
RETIRED_EXTRA = 'sorep_campaign_retired'
"""Extra set on a failed work chain moved out of its campaign by :func:`retire_failed`."""
DESCRIPTION_PREFIX = 'aiida-sorep campaign '
"""Description given to every work chain at submission, followed by the campaign label."""

ACTIVE_STATES = ('created', 'waiting', 'running')


class CampaignError(ValueError):
    """Raised for an inconsistent campaign request (unknown group, settings that differ from the stored ones)."""


@dataclass(frozen=True)
class CampaignSettings:
    """What a campaign runs, stored in the extras of its group.

    :ivar structure_group: label of the group of ``StructureData`` to run.
    :ivar code: label of the pw.x code (e.g. ``pw@localhost``).
    :ivar workflow: entry point of the work chain (``sorep.singleshot``); it must provide
        ``get_builder_from_protocol(code, structure, protocol=, overrides=, pseudo_family=, options=)``.
    :ivar protocol: protocol name (``fast``, ``balanced``, ``stringent``) or None for the default.
    :ivar overrides: deep-merged on top of the protocol inputs.
    :ivar options: ``metadata.options`` of the calculation (resources, walltime, queue, ...).
    :ivar pseudo_family: label of the pseudopotential family, or None for the protocol's.
    """

    structure_group: str
    code: str
    workflow: str = 'sorep.singleshot'
    protocol: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    pseudo_family: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (for the group extras)."""
        data = asdict(self)
        data['overrides'] = dict(self.overrides)
        data['options'] = dict(self.options)
        return data


def get_campaign_settings(label: str) -> CampaignSettings:
    """Return the settings stored on the campaign group ``label``.

    :raises CampaignError: if the group does not exist or is not a campaign.
    """
    try:
        group = orm.Group.collection.get(label=label)
    except NotExistent as exception:
        raise CampaignError(
            f'campaign `{label}` does not exist: create it with `aiida-sorep campaign submit`.'
        ) from exception
    data = group.base.extras.get(SETTINGS_EXTRA, None)
    if data is None:
        raise CampaignError(f'group `{label}` is not an aiida-sorep campaign (no `{SETTINGS_EXTRA}` extra).')
    return CampaignSettings(**data)


def load_or_create_campaign(label: str, settings: CampaignSettings | None = None) -> tuple[orm.Group, CampaignSettings]:
    """Return the campaign group ``label`` and its settings, creating it with ``settings`` if it does not exist.

    :param settings: required to create the campaign; for an existing campaign it must equal the stored settings
        (or be None), because mixing settings in one campaign would make its results incomparable.
    :raises CampaignError: unknown structure group or code, missing settings, or settings that differ.
    """
    try:
        group = orm.Group.collection.get(label=label)
    except NotExistent:
        if settings is None:
            raise CampaignError(
                f'campaign `{label}` does not exist: give the structure group and the code to create it.'
            ) from None
        _check_settings(settings)
        group = orm.Group(label=label, description=f'aiida-sorep campaign on `{settings.structure_group}`').store()
        group.base.extras.set(SETTINGS_EXTRA, settings.to_dict())
        return group, settings

    stored = get_campaign_settings(label)
    if settings is not None and settings.to_dict() != stored.to_dict():
        differences = {
            key: (stored.to_dict()[key], value)
            for key, value in settings.to_dict().items()
            if stored.to_dict()[key] != value
        }
        raise CampaignError(
            f'campaign `{label}` exists with other settings (stored, given): {differences}. Resume it without '
            'settings, or start a new campaign with another label.'
        )
    return group, stored


def _check_settings(settings: CampaignSettings) -> None:
    from aiida.plugins import WorkflowFactory

    try:
        orm.Group.collection.get(label=settings.structure_group)
    except NotExistent as exception:
        raise CampaignError(f'structure group `{settings.structure_group}` does not exist.') from exception
    try:
        orm.load_code(settings.code)
    except NotExistent as exception:
        raise CampaignError(f'code `{settings.code}` does not exist (see `verdi code list`).') from exception
    WorkflowFactory(settings.workflow)


class SingleShotSubmissionController(BaseSubmissionController):
    """Submission controller that runs ``settings.workflow`` once per structure of ``settings.structure_group``.

    ``group_label`` is the campaign group; ``unique_extra_keys`` is ``('sorep_structure_uuid',)``.
    """

    settings: dict
    """:class:`CampaignSettings` as a dict."""
    unique_extra_keys: tuple = (STRUCTURE_EXTRA,)

    @classmethod
    def from_campaign(cls, label: str, max_concurrent: int) -> SingleShotSubmissionController:
        """Return the controller of the existing campaign ``label``."""
        settings = get_campaign_settings(label)
        return cls(group_label=label, max_concurrent=max_concurrent, settings=settings.to_dict())

    @property
    def campaign_settings(self) -> CampaignSettings:
        """The settings as a :class:`CampaignSettings`."""
        return CampaignSettings(**self.settings)

    def get_all_extras_to_submit(self) -> set[tuple[str]]:
        """Return ``{(structure_uuid,), ...}`` for every ``StructureData`` of the structure group."""
        query = orm.QueryBuilder()
        query.append(orm.Group, filters={'label': self.campaign_settings.structure_group}, tag='group')
        query.append(orm.StructureData, with_group='group', project='uuid')
        return {(uuid,) for (uuid,) in query.iterall()}

    def get_inputs_and_processclass_from_extras(self, extras_values: tuple[str]):
        """Return the builder of the work chain for the structure with UUID ``extras_values[0]``."""
        from aiida.plugins import WorkflowFactory

        settings = self.campaign_settings
        structure = orm.load_node(extras_values[0])
        workflow = WorkflowFactory(settings.workflow)
        builder = workflow.get_builder_from_protocol(
            orm.load_code(settings.code),
            structure,
            protocol=settings.protocol,
            overrides=dict(settings.overrides) or None,
            pseudo_family=settings.pseudo_family,
            options=dict(settings.options) or None,
        )
        builder.metadata.description = DESCRIPTION_PREFIX + self.group_label
        builder.metadata.label = structure.label or structure.get_formula()
        return builder

    def adopt_untracked(self) -> int:
        """Add to the campaign the work chains submitted for it but not recorded (driver killed mid-submission).

        :return: the number of work chains adopted.
        """
        query = orm.QueryBuilder()
        query.append(orm.Group, filters={'label': self.campaign_settings.structure_group}, tag='group')
        query.append(orm.StructureData, with_group='group', project='uuid', tag='structure')
        query.append(
            orm.WorkflowNode,
            with_incoming='structure',
            filters={
                'description': DESCRIPTION_PREFIX + self.group_label,
                'extras': {'!has_key': RETIRED_EXTRA},
            },
            project='*',
        )
        candidates = query.all()
        if not candidates:
            return 0
        group = self.group
        members = {pk for (pk,) in self.get_query(process_projections=['id']).iterall()}
        tracked = set(self.get_all_submitted_pks_no_adopt())
        adopted = []
        for uuid, node in candidates:
            if node.pk in members or (uuid,) in tracked:
                continue
            node.base.extras.set(STRUCTURE_EXTRA, uuid)
            tracked.add((uuid,))
            adopted.append(node)
        if adopted:
            group.add_nodes(adopted)
        return len(adopted)

    def get_all_submitted_pks_no_adopt(self) -> dict[tuple, int]:
        """:meth:`get_all_submitted_pks` of the base class, without adopting untracked work chains first."""
        return super().get_all_submitted_pks()

    def get_all_submitted_pks(self) -> dict[tuple, int]:
        """Adopt untracked work chains, then return ``{(structure_uuid,): pk}`` of the campaign's work chains."""
        self.adopt_untracked()
        return super().get_all_submitted_pks()


@dataclass(frozen=True)
class FailureSummary:
    """Failed work chains of one kind.

    :ivar state: ``finished`` (non-zero exit status), ``excepted`` or ``killed``.
    :ivar exit_status: exit status, None for excepted or killed processes.
    :ivar message: exit message (or exception summary) of the first one.
    :ivar pks: PKs of the work chains, sorted.
    """

    state: str
    exit_status: int | None
    message: str
    pks: tuple[int, ...]


@dataclass(frozen=True)
class CampaignStatus:
    """Progress of a campaign.

    :ivar total: number of structures in the structure group.
    :ivar submitted: number of structures with a work chain in the campaign.
    :ivar created, waiting, running: active work chains by process state.
    :ivar finished_ok: work chains finished with exit status 0.
    :ivar failed: work chains finished with a non-zero exit status, excepted or killed.
    :ivar failures: failed work chains grouped by state and exit status, largest group first.
    """

    total: int
    submitted: int
    created: int
    waiting: int
    running: int
    finished_ok: int
    failed: int
    failures: tuple[FailureSummary, ...]

    @property
    def active(self) -> int:
        """Work chains not terminated yet."""
        return self.created + self.waiting + self.running

    @property
    def to_submit(self) -> int:
        """Structures without a work chain yet."""
        return self.total - self.submitted

    @property
    def done(self) -> bool:
        """Every structure has a terminated work chain."""
        return self.to_submit == 0 and self.active == 0

    def line(self) -> str:
        """One-line progress summary."""
        return (
            f'structures {self.total} | submitted {self.submitted} | to submit {self.to_submit} | '
            f'active {self.active} (running {self.running}, waiting {self.waiting}, created {self.created}) | '
            f'finished ok {self.finished_ok} | failed {self.failed}'
        )

    def failure_table(self) -> str:
        """Failures by state and exit code, one line each (empty string if none)."""
        lines = []
        for failure in self.failures:
            code = '-' if failure.exit_status is None else str(failure.exit_status)
            pks = ' '.join(str(pk) for pk in failure.pks[:10]) + (' ...' if len(failure.pks) > 10 else '')
            lines.append(f'{len(failure.pks):6d}  {failure.state:<9} {code:>4}  {failure.message[:80]}  [pk {pks}]')
        return '\n'.join(lines)


def campaign_status(label: str) -> CampaignStatus:
    """Return the progress of campaign ``label`` (two queries, fine for 10^5 work chains)."""
    settings = get_campaign_settings(label)
    query = orm.QueryBuilder()
    query.append(orm.Group, filters={'label': settings.structure_group}, tag='group')
    query.append(orm.StructureData, with_group='group', project='id')
    total = query.count()

    query = orm.QueryBuilder()
    query.append(orm.Group, filters={'label': label}, tag='group')
    query.append(
        orm.ProcessNode,
        with_group='group',
        project=[
            'id',
            'attributes.process_state',
            'attributes.exit_status',
            'attributes.exit_message',
            f'extras.{STRUCTURE_EXTRA}',
        ],
    )
    counts: collections.Counter[str] = collections.Counter()
    failures: dict[tuple[str, int | None], list[tuple[int, str]]] = collections.defaultdict(list)
    structures = set()
    for pk, raw_state, exit_status, message, structure in query.iterall():
        structures.add(structure)
        state = raw_state or 'created'
        if state in ACTIVE_STATES:
            counts[state] += 1
        elif state == 'finished' and exit_status == 0:
            counts['ok'] += 1
        else:
            failures[(state, exit_status if state == 'finished' else None)].append((pk, message or ''))

    summaries = []
    for (state, exit_status), items in failures.items():
        items.sort()
        message = items[0][1]
        if state == 'excepted' and not message:
            message = 'excepted: see `verdi process report`'
        summaries.append(FailureSummary(state, exit_status, message, tuple(pk for pk, _ in items)))
    summaries.sort(key=lambda summary: (-len(summary.pks), summary.state, summary.exit_status or 0))
    return CampaignStatus(
        total=total,
        submitted=len(structures - {None}),
        created=counts['created'],
        waiting=counts['waiting'],
        running=counts['running'],
        finished_ok=counts['ok'],
        failed=sum(len(summary.pks) for summary in summaries),
        failures=tuple(summaries),
    )


def run_campaign(
    label: str,
    settings: CampaignSettings | None = None,
    *,
    max_concurrent: int = 100,
    wait: bool = False,
    interval: float = 10.0,
    timeout: float | None = None,
    echo: Callable[[str], object] = print,
) -> CampaignStatus:
    """Submit the missing work chains of campaign ``label`` (creating it from ``settings`` if new).

    With ``wait``, keep topping up to ``max_concurrent`` active work chains every ``interval`` seconds until
    every structure has a terminated work chain (or ``timeout`` seconds have passed). Needs a profile with a
    broker and a running daemon (``verdi daemon start``) for the work chains to progress.

    :return: the status after the last submission.
    """
    load_or_create_campaign(label, settings)
    controller = SingleShotSubmissionController.from_campaign(label, max_concurrent)
    start = time.monotonic()
    while True:
        submitted = controller.submit_new_batch(sort=True)
        status = campaign_status(label)
        echo(f'[{time.strftime("%H:%M:%S")}] +{len(submitted)} submitted | {status.line()}')
        if status.done:
            repaired = repair_orphans(label)
            if repaired:
                echo(f'Marked {len(repaired)} orphaned process function(s) as killed: {repaired}')
            return status
        if not wait or (timeout is not None and time.monotonic() - start > timeout):
            return status
        time.sleep(interval)


def retire_failed(label: str) -> list[int]:
    """Move the failed work chains of campaign ``label`` to the group ``<label>/retired``.

    Their structures are then missing from the campaign, so the next :func:`run_campaign` resubmits them (use
    this after fixing the cause, e.g. a larger walltime in the options of a new campaign, or a node failure).

    :return: the PKs of the retired work chains.
    """
    status = campaign_status(label)
    pks = [pk for failure in status.failures for pk in failure.pks]
    if not pks:
        return []
    group = orm.Group.collection.get(label=label)
    retired, _ = orm.Group.collection.get_or_create(label=f'{label}/retired')
    nodes = [orm.load_node(pk) for pk in pks]
    for node in nodes:
        node.base.extras.set(RETIRED_EXTRA, True)
    retired.add_nodes(nodes)
    group.remove_nodes(nodes)
    return sorted(pks)


ORPHAN_STATUS = 'orphaned: its daemon worker died while it ran; the caller <{caller}> reran the step without it'


def repair_orphans(label: str | None = None, *, dry_run: bool = False) -> list[int]:
    """Mark as killed the process functions left ``running`` by a dead worker, whose caller has terminated.

    Only process functions (calcfunctions, workfunctions) qualify: they cannot be resumed, so a node of one that is
    active while its caller is sealed will never progress. CalcJobs and WorkChains are resumed from their checkpoint
    by the daemon and are never touched.

    :param label: restrict to the descendants of the work chains of campaign ``label`` (default: the whole profile).
    :param dry_run: only return what would be repaired.
    :return: the PKs of the repaired (or, with ``dry_run``, repairable) nodes.
    """
    from aiida.engine import ProcessState

    query = orm.QueryBuilder()
    if label is not None:
        query.append(orm.Group, filters={'label': label}, tag='group')
        query.append(orm.WorkflowNode, with_group='group', tag='top')
        query.append(orm.WorkflowNode, with_ancestors='top', filters={'attributes.sealed': True}, tag='caller')
        query.add_projection('caller', 'id')
        second = orm.QueryBuilder()
        second.append(orm.Group, filters={'label': label}, tag='group')
        second.append(orm.WorkflowNode, with_group='group', filters={'attributes.sealed': True}, project='id')
        sealed_callers = {pk for (pk,) in query.iterall()} | {pk for (pk,) in second.iterall()}
    query = orm.QueryBuilder()
    query.append(
        orm.ProcessNode,
        filters={
            'attributes.process_state': {'in': list(ACTIVE_STATES)},
            'or': [
                {'node_type': {'like': 'process.calculation.calcfunction.%'}},
                {'node_type': {'like': 'process.workflow.workfunction.%'}},
            ],
        },
        tag='orphan',
        project='*',
    )
    query.append(orm.WorkflowNode, with_outgoing='orphan', filters={'attributes.sealed': True}, project='id')
    repaired = []
    for node, caller in query.iterall():
        if label is not None and caller not in sealed_callers:
            continue
        repaired.append(node.pk)
        if not dry_run:
            node.set_process_state(ProcessState.KILLED)
            node.set_process_status(ORPHAN_STATUS.format(caller=caller))
            node.seal()
    return sorted(repaired)
