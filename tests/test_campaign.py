"""Campaigns through the daemon on a PostgreSQL + RabbitMQ profile: the driver, failures, and fault tolerance.

The session-wide ``aiida_profile`` of aiida-core's fixtures is SQLite without a broker; these tests create their own
production profile with :func:`aiida_sorep.install.services.ensure_production_profile` (a random name, a temporary
configuration folder, a PostgreSQL database dropped at the end) and run a real daemon with 2 workers and the real pw.x.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import signal
import sys
import time

import psutil
import pytest
from aiida import orm

from aiida_sorep.campaign import (
    INFRASTRUCTURE_FAILURES,
    RETIRED_EXTRA,
    STRUCTURE_EXTRA,
    CampaignSettings,
    SingleShotSubmissionController,
    campaign_status,
    load_or_create_campaign,
    repair_orphans,
    retire_failed,
    run_campaign,
)

N_STRUCTURES = 30
TIMEOUT = 420.0
"""Seconds the fault test waits for the campaign to finish before failing with its status (a bound, not a speed
assertion: it takes about 2-3 min on 2 shared cores)."""
DAEMON_TIMEOUT = 120
"""Seconds for circus to answer (start, stop, worker info): a graceful stop waits for the workers' current steps."""
COARSE = {'kpoints_distance': 0.6}
"""Overrides of the `fast` protocol for 2-atom cells: 4x4x4-ish mesh, pw.x takes ~0.2 s."""


@pytest.fixture(scope='module')
def daemon_profile(tmp_path_factory, aiida_config_factory, aiida_profile):
    """A fresh production profile (psql_dos + rabbitmq) in a temporary config folder, with a daemon client.

    Restores the session profile afterwards, stops the daemon and drops the PostgreSQL database.
    """
    from aiida.engine.daemon import client as daemon_module
    from aiida.engine.daemon.client import DaemonNotRunningException, get_daemon_client
    from aiida.manage import get_manager

    from aiida_sorep.install.services import drop_profile_database, ensure_production_profile

    manager = get_manager()
    previous = manager.get_profile()
    bindir = str(pathlib.Path(sys.executable).parent)
    name = f'sorep-test-{secrets.token_hex(4)}'
    with pytest.MonkeyPatch.context() as patch:
        # The daemon is started with `verdi` from this environment, and its workers must find it too.
        patch.setenv('PATH', f'{bindir}{os.pathsep}{os.environ.get("PATH", "")}')
        patch.setattr(daemon_module, 'VERDI_BIN', str(pathlib.Path(bindir) / 'verdi'))
        with aiida_config_factory(tmp_path_factory.mktemp('daemon-config')) as _:
            report = ensure_production_profile(name, install_system=False, echo=lambda *_: None)
            profile = manager.get_profile()
            storage_config = dict(profile.storage_config)
            client = get_daemon_client(name)
            try:
                yield report, client
            finally:
                try:
                    client.stop_daemon(wait=True, timeout=DAEMON_TIMEOUT)
                except DaemonNotRunningException:
                    pass
                manager.unload_profile()
                drop_profile_database(storage_config)
    manager.load_profile(previous, allow_switch=True)


def _silicon_group(label: str, lattice_parameters) -> orm.Group:
    from ase.build import bulk

    group = orm.Group(label=label).store()
    nodes = []
    for a in lattice_parameters:
        structure = orm.StructureData(ase=bulk('Si', 'diamond', a=float(a)))
        structure.label = f'Si a={a:.3f}'
        nodes.append(structure.store())
    group.add_nodes(nodes)
    return group


def _wait_until(predicate, timeout: float, what: str, status_of=None):
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            extra = f'; status: {status_of().line()}' if status_of else ''
            pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}{extra}')
        time.sleep(2.0)


def _start_daemon(client, workers: int = 2) -> None:
    client.start_daemon(number_workers=workers, timeout=DAEMON_TIMEOUT)
    _wait_until(
        lambda: client.is_daemon_running and client.get_number_of_workers(timeout=DAEMON_TIMEOUT) == workers,
        DAEMON_TIMEOUT,
        'the daemon',
    )


def _diagnose(status) -> str:
    """The reports of the failed work chains and the state of their calculations, for a failure message."""
    from aiida.cmdline.utils.common import get_workchain_report

    lines = []
    for failure in status.failures:
        for pk in failure.pks:
            node = orm.load_node(pk)
            lines.append(
                f'--- {node.process_label}<{pk}> {node.process_state} [{node.exit_status}] {node.exit_message}'
            )
            lines.append(get_workchain_report(node, 'REPORT'))
            for child in node.called_descendants:
                lines.append(
                    f'    {child.process_label}<{child.pk}> {child.process_state} [{child.exit_status}] '
                    f'{child.exit_message} {child.exception or ""}'
                )
    return '\n'.join(lines)


def _worker_pids(client) -> list[int]:
    """PIDs of the daemon workers (circus's `stats` answer can be an error while a worker is being respawned)."""
    answers = []

    def answered() -> bool:
        answers.append(client.get_worker_info(timeout=DAEMON_TIMEOUT))
        return 'info' in answers[-1]

    _wait_until(answered, DAEMON_TIMEOUT, 'the daemon worker statistics')
    return sorted(int(pid) for pid in answers[-1]['info'])


def test_production_profile(daemon_profile):
    """The production profile uses PostgreSQL and RabbitMQ and has the code and family; a second call is a no-op."""
    from aiida.manage import get_manager

    from aiida_sorep.install.pseudos import FAMILY_LABEL
    from aiida_sorep.install.services import ensure_production_profile

    report, _ = daemon_profile
    profile = get_manager().get_profile()
    assert profile.name == report.profile
    assert profile.storage_backend == 'core.psql_dos'
    assert profile.process_control_backend == 'core.rabbitmq'
    assert report.profile_created and report.setup.code_created and report.setup.family_created
    assert orm.load_code('pw@localhost').computer.scheduler_type == 'core.direct'
    assert len(orm.load_group(FAMILY_LABEL).nodes) == 72

    again = ensure_production_profile(report.profile, install_system=False, echo=lambda *_: None)
    assert not again.profile_created
    assert not (again.setup.computer_created or again.setup.code_created or again.setup.family_created)
    assert again.database == report.database
    assert all(not service.started_now and not service.installed_now for service in again.services)


def test_campaign_survives_killed_worker_and_daemon_restart(daemon_profile):
    """30 single shots, one worker killed with SIGKILL mid-run, the daemon restarted: each finishes once, OK."""
    _, client = daemon_profile
    structures = _silicon_group('fault/structures', [5.25 + 0.01 * index for index in range(N_STRUCTURES)])
    settings = CampaignSettings(
        structure_group=structures.label, code='pw@localhost', protocol='fast', overrides=COARSE
    )
    label = 'fault/campaign'
    load_or_create_campaign(label, settings)
    controller = SingleShotSubmissionController.from_campaign(label, max_concurrent=12)

    def status():
        return campaign_status(label)

    _start_daemon(client)

    def top_up_until(condition, what):
        def predicate():
            controller.submit_new_batch(sort=True)
            return condition(status())

        _wait_until(predicate, TIMEOUT, what, status)

    # 1. Once work is under way (some done, some active), kill one worker with SIGKILL: no clean-up at all.
    top_up_until(lambda s: s.finished_ok >= 3 and s.active >= 6, 'the first 3 work chains')
    victim = _worker_pids(client)[0]
    os.kill(victim, signal.SIGKILL)
    _wait_until(lambda: not psutil.pid_exists(victim) or psutil.Process(victim).status() == 'zombie', 30, 'SIGKILL')
    killed_during = status()
    assert killed_during.active > 0

    # 2. Later, stop the daemon while work chains are active, submit more while it is down, and start it again.
    top_up_until(lambda s: s.finished_ok >= 12 and s.active > 0, '12 finished work chains')
    client.stop_daemon(wait=True, timeout=DAEMON_TIMEOUT)
    _wait_until(lambda: not client.is_daemon_running, DAEMON_TIMEOUT, 'the daemon to stop')
    controller.submit_new_batch(sort=True)
    stopped = status()
    assert stopped.active > 0
    _start_daemon(client)
    assert victim not in _worker_pids(client)

    # 3. Drive the campaign to the end with the driver itself. It resubmits, once per structure, work chains that
    # failed for infrastructure reasons (AiiDA 2.9 sometimes finishes an interrupted CalcJob without its
    # `remote_folder` link, and the work chain then fails with exit 11): they are reported and checked below.
    lines = []
    final = run_campaign(label, max_concurrent=12, wait=True, interval=2, timeout=TIMEOUT, echo=lines.append)
    retired = (
        []
        if not orm.Group.collection.count(filters={'label': f'{label}/retired'})
        else [node for node in orm.load_group(f'{label}/retired').nodes]
    )
    print(f'retried after infrastructure failures: {[(n.pk, n.exit_status, n.exit_message) for n in retired]}')

    assert (final.total, final.submitted, final.finished_ok, final.failed) == (N_STRUCTURES,) * 3 + (0,), (
        f'{final.line()}\n{final.failure_table()}\n{_diagnose(final)}\n' + '\n'.join(lines)
    )
    assert all((node.process_state.value, node.exit_status) in INFRASTRUCTURE_FAILURES for node in retired)
    # Exactly one work chain per structure in the campaign, and no other one in the database than the retried ones.
    members = list(orm.load_group(label).nodes)
    assert sorted(node.base.extras.get(STRUCTURE_EXTRA) for node in members) == sorted(
        node.uuid for node in structures.nodes
    )
    query = orm.QueryBuilder().append(orm.WorkflowNode, filters={'attributes.process_label': 'SingleShotWorkChain'})
    assert query.count() == N_STRUCTURES + len(retired)
    for node in members:
        assert node.is_finished_ok, node.exit_message
        assert node.inputs.singleshot.structure.uuid == node.base.extras.get(STRUCTURE_EXTRA)
        assert node.outputs.fermi['fermi_energy'] == pytest.approx(node.outputs.fermi['fermi_energy'])
        assert len(node.outputs.features) > 0
    # No orphaned process. A worker killed at the wrong moment leaves (a) a process function `created`/`running` (no
    # checkpoint: the restored work chain reran the step) or (b) a terminated process whose node was never sealed (the
    # daemon does not continue terminated processes). `run_campaign` repaired both when the campaign was done (it
    # marks (a) killed with an `orphaned` status and seals (b)): nothing may be active or unsealed in the profile.
    print('\n'.join(line for line in lines if 'Repaired' in line or 'Resubmitting' in line))
    active_filter = {'attributes.process_state': {'in': ['created', 'waiting', 'running']}}
    unsealed_filter = {'or': [{'attributes.sealed': False}, {'attributes': {'!has_key': 'sealed'}}]}
    leftover = orm.QueryBuilder().append(
        orm.ProcessNode, filters=active_filter, project=['id', 'attributes.process_label', 'attributes.process_state']
    )
    assert leftover.count() == 0, f'active process nodes left behind: {leftover.all()}'
    unsealed = [node for (node,) in orm.QueryBuilder().append(orm.ProcessNode, filters=unsealed_filter).iterall()]
    assert not unsealed, [
        (n.pk, n.process_label, n.process_state, n.caller and (n.caller.pk, n.caller.is_sealed)) for n in unsealed
    ]
    orphaned = orm.QueryBuilder().append(
        orm.ProcessNode, filters={'attributes.process_status': {'like': 'orphaned%'}}, project='*'
    )

    member_pks = {member.pk for member in members} | {node.pk for node in retired}
    for (node,) in orphaned.iterall():
        assert node.is_killed and node.is_sealed
        assert node.node_type.startswith('process.calculation.calcfunction.')
        assert node.caller.is_terminated and node.caller.pk in member_pks
    print(f'killed worker {victim}; orphaned process functions repaired: {orphaned.count()}')
    assert repair_orphans(label, grace=0) == []
    # Resumable: nothing is left to submit.
    assert controller.submit_new_batch() == {}
    assert client.get_number_of_workers(timeout=DAEMON_TIMEOUT) == 2


def test_campaign_adopts_untracked_and_retries_failed(daemon_profile):
    """A work chain submitted but not recorded (driver killed) is adopted, not duplicated; failures are summarised
    by exit code and `retire_failed` makes the next run resubmit them."""
    from aiida.engine import submit

    _, client = daemon_profile
    if not client.is_daemon_running:
        _start_daemon(client)
    structures = _silicon_group('retry/structures', [5.40, 5.45])
    # ecutrho < ecutwfc: pw.x stops with `invalid ecutrho`, twice, and the work chain gives up.
    broken = {**COARSE, 'singleshot': {'parameters': {'SYSTEM': {'ecutwfc': 20.0, 'ecutrho': 10.0}}}}
    settings = CampaignSettings(
        structure_group=structures.label, code='pw@localhost', protocol='fast', overrides=broken
    )
    label = 'retry/campaign'
    load_or_create_campaign(label, settings)
    controller = SingleShotSubmissionController.from_campaign(label, max_concurrent=5)

    # The driver "dies" right after `submit`: the work chain is neither in the group nor has the extra.
    first = sorted(controller.get_all_extras_to_submit())[0]
    orphan = submit(controller.get_inputs_and_processclass_from_extras(first))
    submitted = controller.submit_new_batch()
    assert list(submitted) == [key for key in controller.get_all_extras_to_submit() if key != first]
    assert orphan.pk in {node.pk for node in orm.load_group(label).nodes}
    assert orphan.base.extras.get(STRUCTURE_EXTRA) == first[0]

    _wait_until(lambda: campaign_status(label).done, TIMEOUT, 'the broken campaign', lambda: campaign_status(label))
    status = campaign_status(label)
    assert (status.submitted, status.finished_ok, status.failed) == (2, 0, 2)
    assert len(status.failures) == 1
    failure = status.failures[0]
    assert failure.state == 'finished'
    assert failure.exit_status == orm.load_node(orphan.pk).exit_status != 0
    assert sorted(failure.pks) == sorted(node.pk for node in orm.load_group(label).nodes)
    assert str(failure.exit_status) in status.failure_table()

    retired = retire_failed(label)
    assert sorted(retired) == sorted(failure.pks)
    assert campaign_status(label).submitted == 0
    assert all(orm.load_node(pk).base.extras.get(RETIRED_EXTRA) for pk in retired)
    # Retired work chains are not adopted again: the next batch resubmits both structures.
    resubmitted = controller.submit_new_batch()
    assert len(resubmitted) == 2
    assert not {node.pk for node in resubmitted.values()} & set(retired)
    _wait_until(
        lambda: campaign_status(label).done, TIMEOUT, 'the resubmitted campaign', lambda: campaign_status(label)
    )


def test_cli_on_production_profile(daemon_profile):
    """`setup-production` is idempotent; `campaign submit/status/repair` work and fail cleanly on a bad request."""
    from click.testing import CliRunner

    from aiida_sorep.cli.campaign import cmd_campaign
    from aiida_sorep.cli.production import cmd_setup_production

    report, _ = daemon_profile
    runner = CliRunner()
    result = runner.invoke(cmd_setup_production, ['-p', report.profile, '--no-install-system'])
    assert result.exit_code == 0, result.output
    assert 'everything was already in place' in result.output
    assert 'postgresql 127.0.0.1:5432   running' in result.output

    orm.Group(label='cli/empty').store()
    profile = ['-p', report.profile]
    result = runner.invoke(cmd_campaign, ['submit', 'cli/campaign', '-s', 'cli/empty', '-X', 'pw@localhost', *profile])
    assert result.exit_code == 0, result.output
    assert 'structures 0 | submitted 0 | to submit 0' in result.output
    result = runner.invoke(cmd_campaign, ['status', 'cli/campaign', *profile])
    assert result.exit_code == 0 and 'finished ok 0 | failed 0' in result.output
    result = runner.invoke(cmd_campaign, ['submit', 'cli/campaign', '-s', 'cli/empty', '-X', 'nope@nowhere', *profile])
    assert result.exit_code == 1
    assert '[FAILED] campaign `cli/campaign` exists with other settings' in result.output
    result = runner.invoke(cmd_campaign, ['status', 'cli/missing', *profile])
    assert result.exit_code == 1 and 'does not exist' in result.output
    result = runner.invoke(cmd_campaign, ['repair', 'cli/campaign', '--dry-run', *profile])
    assert result.exit_code == 0 and 'Would mark 0' in result.output
