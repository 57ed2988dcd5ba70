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
again. Likewise a worker killed between a process reaching its terminal state and sealing its node leaves the node
unsealed for ever (the controller would count it as active). :func:`repair_orphans` repairs both, once their caller
has terminated; :func:`run_campaign` calls it when the campaign is done.

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
    'INFRASTRUCTURE_FAILURES',
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
    retry_infrastructure: int = 1,
    echo: Callable[[str], object] = print,
) -> CampaignStatus:
    """Submit the missing work chains of campaign ``label`` (creating it from ``settings`` if new).

    Work chains that failed for a reason unrelated to their structure (:data:`INFRASTRUCTURE_FAILURES`) are retired
    and resubmitted, at most ``retry_infrastructure`` times per structure; other failures stay (see
    :func:`retire_failed`).

    With ``wait``, keep topping up to ``max_concurrent`` active work chains every ``interval`` seconds until
    every structure has a terminated work chain (or ``timeout`` seconds have passed). Needs a profile with a
    broker and a running daemon (``verdi daemon start``) for the work chains to progress.

    :return: the status after the last submission.
    """
    from aiida.engine.daemon.client import get_daemon_client

    load_or_create_campaign(label, settings)
    controller = SingleShotSubmissionController.from_campaign(label, max_concurrent)
    client = get_daemon_client()
    start = time.monotonic()
    while True:
        retried = _retire_infrastructure_failures(label, retry_infrastructure)
        if retried:
            echo(f'Resubmitting the structures of {len(retried)} work chain(s) with infrastructure failures: {retried}')
        submitted = controller.submit_new_batch(sort=True)
        status = campaign_status(label)
        echo(f'[{time.strftime("%H:%M:%S")}] +{len(submitted)} submitted | {status.line()}')
        if status.active and not client.is_daemon_running:
            echo(
                f'Warning: the daemon of profile `{client.profile.name}` is not running: nothing will progress until '
                f'`verdi -p {client.profile.name} daemon start`.'
            )
        if status.done:
            repaired = repair_orphans(label, grace=0)
            if repaired:
                echo(f'Repaired {len(repaired)} process node(s) left behind by dead workers: {repaired}')
            return status
        if not wait or (timeout is not None and time.monotonic() - start > timeout):
            return status
        time.sleep(interval)


INFRASTRUCTURE_FAILURES: frozenset[tuple[str, int | None]] = frozenset(
    {('finished', 11), ('finished', 301), ('finished', 302), ('excepted', None), ('killed', None)}
)
"""Failures that say nothing about the structure, as ``(process_state, exit_status)``: 11 (a required output was not
registered: AiiDA 2.9 can lose the ``remote_folder`` link of a CalcJob interrupted by a daemon stop or a killed
worker), 301/302 (the calculation excepted or was killed), and an excepted or killed work chain."""


def _move_to_retired(label: str, pks: list[int]) -> list[int]:
    """Move the work chains ``pks`` of campaign ``label`` to the group ``<label>/retired``; return the sorted PKs."""
    group = orm.Group.collection.get(label=label)
    retired, _ = orm.Group.collection.get_or_create(label=f'{label}/retired')
    nodes = [orm.load_node(pk) for pk in pks]
    for node in nodes:
        node.base.extras.set(RETIRED_EXTRA, True)
    retired.add_nodes(nodes)
    group.remove_nodes(nodes)
    return sorted(pks)


def retire_failed(label: str, only: frozenset[tuple[str, int | None]] | None = None) -> list[int]:
    """Move the failed work chains of campaign ``label`` to the group ``<label>/retired``.

    Their structures are then missing from the campaign, so the next :func:`run_campaign` resubmits them (use
    this after fixing the cause, e.g. a node failure or a misconfigured code).

    :param only: retire only failures of these ``(process_state, exit_status)``, e.g. :data:`INFRASTRUCTURE_FAILURES`.
    :return: the PKs of the retired work chains.
    """
    status = campaign_status(label)
    pks = [
        pk
        for failure in status.failures
        if only is None or (failure.state, failure.exit_status) in only
        for pk in failure.pks
    ]
    if not pks:
        return []
    return _move_to_retired(label, pks)


def _retire_infrastructure_failures(label: str, max_retries: int) -> list[int]:
    """Retire the infrastructure failures of structures retired fewer than ``max_retries`` times; return their PKs."""
    status = campaign_status(label)
    candidates = [
        pk
        for failure in status.failures
        if (failure.state, failure.exit_status) in INFRASTRUCTURE_FAILURES
        for pk in failure.pks
    ]
    if not candidates or max_retries <= 0:
        return []
    retired_counts: collections.Counter[str] = collections.Counter()
    try:
        for node in orm.load_group(f'{label}/retired').nodes:
            retired_counts[node.base.extras.get(STRUCTURE_EXTRA, None)] += 1
    except NotExistent:
        pass
    eligible = [
        pk for pk in candidates if retired_counts[orm.load_node(pk).base.extras.get(STRUCTURE_EXTRA)] < max_retries
    ]
    if not eligible:
        return []
    return _move_to_retired(label, eligible)


ORPHAN_STATUS = 'orphaned: its daemon worker died while it ran; the caller <{caller}> reran the step without it'
TERMINAL_STATES = ('finished', 'excepted', 'killed')


def _campaign_process_pks(label: str) -> set[int]:
    """PKs of the work chains of campaign ``label`` (and of its retired ones) and of every process they called."""
    top = orm.QueryBuilder()
    top.append(orm.Group, filters={'label': {'in': [label, f'{label}/retired']}}, tag='group')
    top.append(orm.WorkflowNode, with_group='group', project='id')
    pks = {pk for (pk,) in top.iterall()}
    frontier = set(pks)
    while frontier:
        called = orm.QueryBuilder()
        called.append(orm.WorkflowNode, filters={'id': {'in': sorted(frontier)}}, tag='caller')
        called.append(orm.ProcessNode, with_incoming='caller', project='id')
        frontier = {pk for (pk,) in called.iterall()} - pks
        pks |= frontier
    return pks


def repair_orphans(label: str | None = None, *, dry_run: bool = False, grace: float = 60.0) -> list[int]:
    """Repair the two kinds of process nodes that a daemon worker killed at the wrong moment leaves behind.

    1. A process *function* (calcfunction, workfunction) still ``created``/``running`` whose caller has terminated:
       it has no checkpoint and will never progress (the restored caller reran the step). It is marked ``killed``
       with the process status :data:`ORPHAN_STATUS` and sealed.
    2. A process that reached a terminal state (``finished``, ``excepted``, ``killed``) but was never sealed,
       because the worker died between the two (the daemon never continues a terminated process): it is sealed,
       as ``Process.on_terminated`` would have done, once its caller has terminated or, for a top-level process,
       once it has not changed for ``grace`` seconds. The submission controller counts unsealed processes as
       active, so such a node would otherwise hold a slot of the campaign for ever.

    Active CalcJobs and work chains are resumed by the daemon from their checkpoints and are never touched.

    :param label: restrict to campaign ``label`` (its work chains and everything they called); default: the profile.
    :param dry_run: only return what would be repaired.
    :param grace: seconds a top-level terminated-but-unsealed process must be left unchanged before it is sealed.
    :return: the sorted PKs of the repaired (or, with ``dry_run``, repairable) nodes.
    """
    import datetime

    from aiida.common import timezone
    from aiida.common.exceptions import ModificationNotAllowed
    from aiida.engine import ProcessState

    scope = _campaign_process_pks(label) if label is not None else None
    unsealed = {'or': [{'attributes.sealed': False}, {'attributes': {'!has_key': 'sealed'}}]}
    cutoff = timezone.now() - datetime.timedelta(seconds=grace)
    repaired: list[int] = []
    sealed_now: set[int] = set()
    # Repeat until nothing changes: sealing a terminated caller in one pass makes its children repairable in the next.
    for _ in range(10):
        query = orm.QueryBuilder()
        query.append(orm.ProcessNode, filters=unsealed, tag='process', project='*')
        query.append(orm.WorkflowNode, with_outgoing='process', project=['id', 'attributes.sealed'], outerjoin=True)
        found = False
        for node, caller, caller_sealed in query.iterall():
            if (scope is not None and node.pk not in scope) or node.pk in repaired:
                continue
            caller_done = bool(caller_sealed) or caller in sealed_now
            state = node.process_state.value if node.process_state else 'created'
            function = node.node_type.startswith(
                ('process.calculation.calcfunction.', 'process.workflow.workfunction.')
            )
            if state in ACTIVE_STATES and function and caller_done:
                repaired.append(node.pk)
                if not dry_run:
                    node.set_process_state(ProcessState.KILLED)
                    node.set_process_status(ORPHAN_STATUS.format(caller=caller))
                    node.seal()
            elif state in TERMINAL_STATES and (caller_done or (caller is None and node.mtime < cutoff)):
                repaired.append(node.pk)
                if not dry_run:
                    try:
                        node.delete_checkpoint()
                        node.seal()
                    except ModificationNotAllowed:  # sealed meanwhile by a live worker: nothing left to repair
                        pass
            else:
                continue
            sealed_now.add(node.pk)
            found = True
        if not found:
            break
    return sorted(repaired)
