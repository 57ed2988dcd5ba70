"""Daemon throughput: N single-shot work chains on 2-atom Si cells through the daemon; prints the figures.

Usage (on a production profile, see ``aiida-sorep setup-production``)::

    .venv/bin/python benchmarks/daemon_throughput.py -p sorep-prod -n 30 --workers 2

What it measures, for N work chains submitted at once (``--max-concurrent`` limits the active ones):

* ``wall``: from the first submission to the last work chain terminated (daemon already running);
* ``workflows/minute`` = 60 N / wall;
* ``pw.x``: pw.x's own wall time (its XML timer), mean per run;
* ``daemon CPU``: CPU seconds used by the daemon workers (psutil, user + system) per work chain: the AiiDA
  overhead proper (the engine, the ORM, the parser and the calcfunction; pw.x runs in its own process);
* ``overhead (core-s)``: 2-core budget per work chain minus pw.x, i.e. ``cores * wall / N - pw.x``: everything that
  is not pw.x, including PostgreSQL, RabbitMQ and idle time while polling;
* ``latency``: mean time from creation to termination of one work chain.

Options that change the daemon's behaviour are set for the duration of the run and restored afterwards:
``--runner-poll-interval`` (profile option ``runner.poll.interval``), ``--job-poll-interval``
(``Computer.set_minimum_job_poll_interval``), ``--safe-interval`` (transport ``safe_interval``).
The script stops the profile's daemon at the end if it started it.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-p', '--profile', default='sorep-prod', help='production profile (psql + rabbitmq)')
    parser.add_argument('-n', '--number', type=int, default=30, help='number of work chains')
    parser.add_argument('-w', '--workers', type=int, default=2, help='daemon workers')
    parser.add_argument('--max-concurrent', type=int, default=None, help='active work chains at most (default: N)')
    parser.add_argument('--code', default='pw@localhost')
    parser.add_argument('--kpoints-distance', type=float, default=0.6, help='1/Å; 0.6 gives ~10 k-points for Si')
    parser.add_argument('--runner-poll-interval', type=float, default=None, help='runner.poll.interval (s)')
    parser.add_argument('--job-poll-interval', type=float, default=None, help='minimum job poll interval (s)')
    parser.add_argument('--safe-interval', type=float, default=None, help='transport safe_interval (s)')
    parser.add_argument('--timeout', type=float, default=1800.0, help='give up after this many seconds')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    args = parse_args(argv)
    bindir = str(pathlib.Path(sys.executable).parent)
    os.environ['PATH'] = f'{bindir}{os.pathsep}{os.environ.get("PATH", "")}'

    import psutil
    from aiida import load_profile, orm
    from aiida.engine.daemon import client as daemon_module
    from aiida.manage import get_config
    from ase.build import bulk

    daemon_module.VERDI_BIN = daemon_module.VERDI_BIN or str(pathlib.Path(bindir) / 'verdi')
    profile = load_profile(args.profile, allow_switch=True)
    if profile.process_control_backend is None:
        print(f'[FAILED] profile `{profile.name}` has no broker: run `aiida-sorep setup-production` first')
        return 1

    from aiida_sorep.campaign import CampaignSettings, SingleShotSubmissionController, load_or_create_campaign

    config = get_config()
    client = daemon_module.get_daemon_client(profile.name)
    code = orm.load_code(args.code)
    computer = code.computer
    saved = {
        'runner.poll.interval': config.get_option('runner.poll.interval', scope=profile.name),
        'job_poll': computer.get_minimum_job_poll_interval(),
        'safe': computer.get_configuration().get('safe_interval'),
    }
    if client.is_daemon_running:
        client.stop_daemon(wait=True, timeout=120)
    if args.runner_poll_interval is not None:
        config.set_option('runner.poll.interval', args.runner_poll_interval, scope=profile.name)
        config.store()
    if args.job_poll_interval is not None:
        computer.set_minimum_job_poll_interval(args.job_poll_interval)
    if args.safe_interval is not None:
        computer.configure(safe_interval=args.safe_interval)

    stamp = time.strftime('%Y%m%d-%H%M%S')
    group = orm.Group(label=f'benchmark/{stamp}/structures').store()
    nodes = []
    for index in range(args.number):
        structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.30 + 0.005 * index))
        structure.label = f'Si {index}'
        nodes.append(structure.store())
    group.add_nodes(nodes)
    label = f'benchmark/{stamp}'
    settings = CampaignSettings(
        structure_group=group.label,
        code=args.code,
        protocol='fast',
        overrides={'kpoints_distance': args.kpoints_distance},
    )
    load_or_create_campaign(label, settings)
    controller = SingleShotSubmissionController.from_campaign(label, args.max_concurrent or args.number)

    client.start_daemon(number_workers=args.workers, timeout=120)
    while client.get_number_of_workers(timeout=120) != args.workers:
        time.sleep(0.5)
    workers = [psutil.Process(int(pid)) for pid in client.get_worker_info(timeout=120)['info']]
    cpu_before = sum(sum(worker.cpu_times()[:2]) for worker in workers)

    print(f'profile {profile.name}, {args.number} work chains, {args.workers} workers, {os.cpu_count()} cores')
    start = time.time()
    try:
        while True:
            controller.submit_new_batch()
            query = orm.QueryBuilder().append(orm.Group, filters={'label': label}, tag='g')
            query.append(orm.ProcessNode, with_group='g', project='attributes.process_state')
            states = [state for (state,) in query.iterall()]
            done = sum(state in ('finished', 'excepted', 'killed') for state in states)
            if done == args.number:
                break
            if time.time() - start > args.timeout:
                print(f'[FAILED] timeout: {done}/{args.number} terminated')
                return 1
            time.sleep(0.5)
        cpu_after = sum(sum(worker.cpu_times()[:2]) for worker in workers if worker.is_running())
    finally:
        client.stop_daemon(wait=True, timeout=120)
        config.set_option('runner.poll.interval', saved['runner.poll.interval'], scope=profile.name)
        config.store()
        computer.set_minimum_job_poll_interval(saved['job_poll'])
        computer.configure(safe_interval=saved['safe'])

    workchains = list(orm.load_group(label).nodes)
    first = min(node.ctime for node in workchains)
    last = max(node.mtime for node in workchains)
    wall = (last - first).total_seconds()
    ok = sum(node.is_finished_ok for node in workchains)
    pw_times = []
    for node in workchains:
        for child in node.called:
            if isinstance(child, orm.CalcJobNode) and 'output_parameters' in child.outputs:
                pw_times.append(float(child.outputs.output_parameters['wall_time_seconds']))
    latencies = [(node.mtime - node.ctime).total_seconds() for node in workchains]
    pw_mean = statistics.mean(pw_times) if pw_times else float('nan')
    cores = os.cpu_count() or 1
    load = os.getloadavg()
    print(f'finished ok             {ok}/{args.number}')
    print(f'wall                    {wall:8.1f} s')
    print(f'workflows/minute        {60 * args.number / wall:8.1f}')
    print(f'pw.x wall per run       {pw_mean:8.2f} s  (XML timer, {len(pw_times)} runs)')
    print(f'daemon CPU per workflow {(cpu_after - cpu_before) / args.number:8.2f} s  (workers, user+system)')
    print(
        f'overhead per workflow   {cores * wall / args.number - pw_mean:8.2f} core-s  ({cores} cores x wall / N - pw.x)'
    )
    daemon_cpu = (cpu_after - cpu_before) / args.number
    print(
        f'daemon CPU / pw.x       {daemon_cpu / pw_mean:8.1f}  (AiiDA CPU per workflow relative to the pw.x wall time)'
    )
    print(
        f'latency per workflow    {statistics.mean(latencies):8.1f} s mean, {statistics.median(latencies):.1f} s median'
    )
    print(f'load average            {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  (other processes share the cores)')
    return 0 if ok == args.number else 1


if __name__ == '__main__':
    sys.exit(main())
