"""``aiida-sorep screening``: screen a Group, show metrics, export features + labels, plot, run the demo.

The command object is :data:`cmd_screening` (a click group); register it with
``cmd_root.add_command(cmd_screening)``.
"""

from __future__ import annotations

import pathlib

import click

from .utils import echo_failed

__all__ = ('cmd_screening',)

PROFILE_OPTION = click.option(
    '-p', '--profile', 'profile_name', default='sorep', show_default=True, help='AiiDA profile to use.'
)


def _load_profile(profile_name: str) -> None:
    from aiida import load_profile

    try:
        load_profile(profile_name, allow_switch=True)
    except Exception as exception:
        echo_failed(f'cannot load profile `{profile_name}`: {exception}. Run `aiida-sorep setup` first.')


def _load_group(label: str):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_group(label)
    except NotExistent:
        echo_failed(f'no Group with label or pk `{label}`; list them with `verdi group list -a`')


def _metrics_of(value: str):
    """The ``metrics`` Dict of a screening/training work chain or training CalcJob (pk or UUID)."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(int(value) if value.isdigit() else value)
    except (NotExistent, MultipleObjectsError, ValueError):
        echo_failed(f'no node with pk/UUID `{value}`')
    outputs = node.outputs
    if 'training' in outputs and 'metrics' in outputs.training:
        return node, outputs.training.metrics
    if 'metrics' in outputs:
        return node, outputs.metrics
    echo_failed(f'{node.__class__.__name__}<{node.pk}> has no training metrics (not a finished screening/training)')


@click.group('screening')
def cmd_screening() -> None:
    """Train on SOREP features and screen structures for candidates (sorep.screening, sorep.training)."""


@cmd_screening.command('run')
@click.argument('group_label')
@PROFILE_OPTION
@click.option('-X', '--code', 'code_label', default='pw@localhost', show_default=True, help='pw.x code.')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'stringent']), default='fast', show_default=True)
@click.option(
    '--feature-kind',
    type=click.Choice(['vbm', 'fermi', 'cbm', 'concatenated', 'soap']),
    default='concatenated',
    show_default=True,
)
@click.option('--label-key', default='is_tcm_candidate', show_default=True, help='Boolean key of the reference.')
@click.option('--training-fraction', type=float, default=0.5, show_default=True)
@click.option('--seed', type=int, default=0, show_default=True)
@click.option('--max-concurrent', type=int, default=2, show_default=True, help='pw.x runs at a time.')
@click.option('--verify', is_flag=True, help='Verify the predicted candidates with the reference work chain.')
@click.option('--training-code', default=None, help='Python code (e.g. sorep-python@localhost): train as a CalcJob.')
def cmd_run(
    group_label: str,
    profile_name: str,
    code_label: str,
    protocol: str,
    feature_kind: str,
    label_key: str,
    training_fraction: float,
    seed: int,
    max_concurrent: int,
    verify: bool,
    training_code: str | None,
) -> None:
    """Screen the StructureData of GROUP_LABEL in this process and print the result table."""
    _load_profile(profile_name)
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.engine import run_get_node

    from aiida_sorep.demo.screening import format_metrics, format_table
    from aiida_sorep.workflows.screening import ScreeningWorkChain

    group = _load_group(group_label)
    try:
        code = orm.load_code(code_label)
        extra = {'training_code': orm.load_code(training_code)} if training_code else {}
    except NotExistent as exception:
        echo_failed(f'{exception}; run `aiida-sorep setup`')
    try:
        builder = ScreeningWorkChain.get_builder_from_protocol(
            code,
            group,
            protocol=protocol,
            feature_kind=feature_kind,
            label_key=label_key,
            training_fraction=training_fraction,
            seed=seed,
            max_concurrent=max_concurrent,
            verify_candidates=verify,
            **extra,
        )
    except ValueError as exception:
        echo_failed(str(exception))
    click.echo(f'Screening {len(builder.structures)} structures of Group `{group.label}` ...')
    results, node = run_get_node(builder)
    if not node.is_finished_ok:
        echo_failed(f'ScreeningWorkChain<{node.pk}> failed ({node.exit_status}): {node.exit_message}')
    rows = [{'name': row['formula'], 'category': '', **row} for row in results['summary']['rows']]
    click.echo(format_table(rows))
    click.echo(format_metrics(results['training']['metrics'].get_dict()))
    click.echo(f'ScreeningWorkChain<{node.pk}>; candidates in Group `{node.base.extras.get("candidates_group", "-")}`')


@cmd_screening.command('metrics')
@click.argument('node')
@PROFILE_OPTION
@click.option('--splits', is_flag=True, help='Also print the metrics of every split.')
def cmd_metrics(node: str, profile_name: str, splits: bool) -> None:
    """Show the training metrics (mean ± std over splits) of a screening/training NODE (pk or UUID)."""
    _load_profile(profile_name)
    from aiida_sorep.demo.screening import format_metrics

    process, metrics = _metrics_of(node)
    data = metrics.get_dict()
    click.echo(f'{process.process_label}<{process.pk}>, metrics Dict<{metrics.pk}>')
    click.echo(format_metrics(data))
    if data.get('final_best_params') is not None:
        click.echo(f'Final model hyper-parameters: {data["final_best_params"]}')
    if splits:
        for split in data.get('splits', []):
            click.echo(
                f'  split {split["index"]}: TN={split["tn"]} FP={split["fp"]} FN={split["fn"]} TP={split["tp"]} '
                f'balanced accuracy={split["balanced_accuracy"]:.3f} best={split["best_params"]}'
            )


@cmd_screening.command('export')
@click.argument('group_label')
@click.argument('output', type=click.Path(dir_okay=False, path_type=pathlib.Path))
@PROFILE_OPTION
@click.option('--kind', default='concatenated', show_default=True, help='Feature parameterization.')
@click.option('--label-key', default='is_tcm_candidate', show_default=True)
def cmd_export(group_label: str, output: pathlib.Path, profile_name: str, kind: str, label_key: str) -> None:
    """Export the features and labels of the structures of GROUP_LABEL to OUTPUT (.csv or .npz).

    Features come from the latest successful single shot of each structure, labels from the latest successful
    reference run (by provenance); a missing label is empty (CSV) or -1 (npz). CSV columns: key, pk, formula,
    label, then one column per grid point named by its energy in eV.
    """
    _load_profile(profile_name)
    import csv

    import numpy as np
    from aiida import orm

    from aiida_sorep.workflows.screening import find_reference_properties, find_singleshot_features
    from aiida_sorep.workflows.training import features_of

    if output.suffix not in ('.csv', '.npz'):
        echo_failed(f'unsupported format `{output.suffix}`: use .csv or .npz')
    group = _load_group(group_label)
    rows, vectors, grids = [], [], []
    for node in sorted(group.nodes, key=lambda n: n.pk):
        if not isinstance(node, orm.StructureData):
            continue
        feature_node = find_singleshot_features(node, kind)
        if feature_node is None:
            click.echo(f'  {node.get_formula()}<{node.pk}>: no `{kind}` single-shot features, skipped')
            continue
        vector, energies, _ = features_of(feature_node)
        properties = find_reference_properties(node)
        label = properties.get(label_key) if properties is not None else None
        rows.append({'key': node.label or node.get_formula(), 'pk': node.pk, 'formula': node.get_formula()})
        rows[-1]['label'] = '' if label is None else int(label)
        vectors.append(vector)
        grids.append(energies if energies is not None else np.arange(vector.size, dtype=float))
    if not rows:
        echo_failed(f'no structure of Group `{group.label}` has `{kind}` features')
    from aiida_sorep.core.training import stack_features

    try:
        matrix, grid = stack_features(vectors, grids)
    except ValueError as exception:
        echo_failed(str(exception))
    if output.suffix == '.csv':
        with output.open('w', newline='') as handle:
            writer = csv.writer(handle)
            writer.writerow(['key', 'pk', 'formula', 'label', *(f'{e:.4f}' for e in grid)])
            for row, vector in zip(rows, matrix, strict=True):
                writer.writerow([row['key'], row['pk'], row['formula'], row['label'], *(f'{v:.8g}' for v in vector)])
    else:
        labels = np.array([-1 if row['label'] == '' else row['label'] for row in rows], dtype=int)
        np.savez(
            output,
            features=matrix,
            energies=grid,
            labels=labels,
            pks=np.array([row['pk'] for row in rows]),
            keys=np.array([row['key'] for row in rows]),
            formulas=np.array([row['formula'] for row in rows]),
        )
    n_labelled = sum(row['label'] != '' for row in rows)
    click.echo(f'Wrote {len(rows)} materials ({n_labelled} labelled) x {matrix.shape[1]} points to {output}')


@cmd_screening.command('plot')
@click.argument('node')
@PROFILE_OPTION
@click.option('-o', '--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default='.')
def cmd_plot(node: str, profile_name: str, output_dir: pathlib.Path) -> None:
    """Plot features, confusion matrix and importances of a finished screening NODE (pk or UUID) as PNG."""
    _load_profile(profile_name)
    from aiida_sorep.demo.screening import write_figures

    process, _ = _metrics_of(node)
    if process.process_label != 'ScreeningWorkChain':
        echo_failed(f'{process.process_label}<{process.pk}> is not a ScreeningWorkChain')
    outputs = process.outputs
    results = {'features': outputs.features, 'training': outputs.training}
    rows = [{'name': r['formula'], 'category': '', **r} for r in outputs.summary['rows']]
    for path in write_figures(results, rows, output_dir):
        click.echo(f'Wrote {path}')


@cmd_screening.command('demo')
@PROFILE_OPTION
@click.option('-o', '--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default='sorep-demo')
@click.option('--seed', type=int, default=7, show_default=True)
@click.option('--max-concurrent', type=int, default=2, show_default=True)
@click.option('--verify', is_flag=True, help='Verify the predicted candidates with the reference work chain.')
def cmd_demo(profile_name: str, output_dir: pathlib.Path, seed: int, max_concurrent: int, verify: bool) -> None:
    """Screen the bundled demo crystals (about 15 minutes on 2 cores) and write plots to OUTPUT_DIR."""
    from aiida_sorep.demo.screening import run_screening_demo

    _load_profile(profile_name)
    result = run_screening_demo(
        None, output_dir=output_dir, seed=seed, max_concurrent=max_concurrent, verify_candidates=verify, echo=click.echo
    )
    if result.exit_status != 0:
        raise SystemExit(1)
