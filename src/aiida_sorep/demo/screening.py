"""The screening demo: ``sorep.screening`` on the bundled small crystals, with a table and plots.

:func:`run_screening_demo` loads the profile, stores the bundled structures (``resources/structures/
screening_demo.json``, published lattice parameters and Wyckoff positions) in the Group ``sorep-demo/structures``
(reused on a second run, so earlier reference labels are found by provenance and not recomputed), runs the
screening work chain in this process with the real pw.x, prints a progress line per step and a result table, and
writes PNG plots.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import time
import warnings
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import numpy as np

__all__ = (
    'DEMO_GROUP_LABEL',
    'DEMO_TRAINING_PARAMETERS',
    'DemoResult',
    'demo_structures',
    'load_structure_records',
    'run_screening_demo',
)

DEMO_GROUP_LABEL = 'sorep-demo/structures'
"""Group of the demo structures (created on the first run, reused afterwards)."""

DEMO_TRAINING_PARAMETERS: dict[str, Any] = {
    'test_size': 0.25,
    'n_splits': 3,
    'param_grid': {'max_depth': [None, 3]},
    'forest_settings': {'n_estimators': 100},
}
"""Lighter than the paper (500 trees, 5 splits) so the demo stays within minutes on 2 cores."""


def load_structure_records() -> list[dict[str, Any]]:
    """The records of ``screening_demo.json`` (name, category, space group, cellpar, Wyckoff basis, source)."""
    text = resources.files('aiida_sorep.resources.structures').joinpath('screening_demo.json').read_text()
    return json.loads(text)['structures']


def demo_structures(only_demo: bool = True) -> dict[str, Any]:
    """``{name: ase.Atoms}`` (primitive cells) built from the space group and the Wyckoff positions."""
    from ase.spacegroup import crystal

    atoms = {}
    for record in load_structure_records():
        if only_demo and not record['in_demo']:
            continue
        symbols = [site[0] for site in record['basis']]
        basis = [site[1] for site in record['basis']]
        atoms[record['name']] = crystal(
            symbols, basis, spacegroup=record['spacegroup'], cellpar=record['cellpar'], primitive_cell=True
        )
    return atoms


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What the demo produced: the work chain, the table rows, the training metrics and the figures."""

    pk: int
    exit_status: int | None
    rows: tuple[dict[str, Any], ...]
    metrics: dict[str, Any]
    figures: tuple[pathlib.Path, ...]
    elapsed: float
    candidates_group: str | None


class _Progress(logging.Handler):
    """Prints the REPORT lines of the screening and its training with the elapsed time and material names.

    While it is attached, AiiDA's own console handlers are raised to WARNING so the lines are not printed twice.
    """

    def __init__(self, echo: Callable[[str], object], start: float, names: Mapping[str, str]) -> None:
        super().__init__(level=logging.INFO)
        self.echo = echo
        self.start = start
        self.names = dict(names)
        self._muted: list[tuple[logging.Handler, int]] = []

    def attach(self, logger: logging.Logger) -> None:
        """Add this handler and mute the other handlers of ``logger`` below WARNING."""
        for handler in logger.handlers:
            self._muted.append((handler, handler.level))
            handler.setLevel(max(handler.level, logging.WARNING))
        logger.addHandler(self)

    def detach(self, logger: logging.Logger) -> None:
        """Remove this handler and restore the levels of the others."""
        logger.removeHandler(self)
        for handler, level in self._muted:
            handler.setLevel(level)
        self._muted.clear()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if '|ScreeningWorkChain|' not in message and '|TrainingWorkChain|' not in message:
            return
        text = message.split(']: ', 1)[-1]
        for key, name in self.names.items():
            text = text.replace(key, name)
        self.echo(f'  [{time.perf_counter() - self.start:5.0f} s] {text}')


def _demo_group(echo: Callable[[str], object]):
    from aiida import orm

    group, created = orm.Group.collection.get_or_create(DEMO_GROUP_LABEL)
    existing = {node.base.extras.get('demo_name', None): node for node in group.nodes}
    for name, atoms in demo_structures().items():
        if name in existing:
            continue
        node = orm.StructureData(ase=atoms)
        node.label = name
        node.base.extras.set('demo_name', name)
        node.store()
        group.add_nodes(node)
    echo(f'{"Created" if created else "Reusing"} Group `{group.label}` with {len(group.nodes)} structures')
    return group


def run_screening_demo(
    profile: str | None = 'sorep',
    *,
    output_dir: str | pathlib.Path = 'sorep-demo',
    seed: int = 7,
    protocol: str = 'fast',
    feature_kind: str = 'concatenated',
    training_fraction: float = 0.375,
    max_concurrent: int = 2,
    verify_candidates: bool = False,
    training_parameters: Mapping[str, Any] | None = None,
    echo: Callable[[str], object] = print,
) -> DemoResult:
    """Run the screening demo in this process on the profile ``profile`` (``None``: the loaded one).

    :param output_dir: where the PNG plots go (created).
    :param seed: seed of the choice of the training materials and of the training.
    :param training_fraction: materials labelled at first; 0.375 of 16 gives 6 reference runs (3 rounds of 2),
        more only if a class has fewer than 3 members.
    :param max_concurrent: pw.x runs at a time (2 on a 2-core machine).
    :returns: :class:`DemoResult`; the table is printed with ``echo``.
    """
    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    from aiida_sorep.install.profile import PW_CODE_LABEL
    from aiida_sorep.workflows.screening import ScreeningWorkChain

    if profile is not None:
        load_profile(profile, allow_switch=True)
    start = time.perf_counter()
    code = orm.load_code(f'{PW_CODE_LABEL}@localhost')
    group = _demo_group(echo)
    names = {f'{node.get_formula()}_{node.pk}': node.label for node in group.nodes}
    parameters = dict(DEMO_TRAINING_PARAMETERS if training_parameters is None else training_parameters)
    builder = ScreeningWorkChain.get_builder_from_protocol(
        code,
        group,
        protocol=protocol,
        feature_kind=feature_kind,
        training_fraction=training_fraction,
        seed=seed,
        max_concurrent=max_concurrent,
        verify_candidates=verify_candidates,
        training_parameters=parameters,
    )
    builder.metadata.label = 'sorep screening demo'
    echo(
        f'Screening {len(names)} crystals for transparent-conductor candidates with pw.x ({protocol} protocol), '
        f'{feature_kind} SOREP features, seed {seed}, {max_concurrent} pw.x at a time'
    )
    progress = _Progress(echo, start, names)
    logger = logging.getLogger('aiida')
    progress.attach(logger)
    try:
        import spglib  # noqa: F401  (spglib adds its own warning filter on import: import it before ours)

        with warnings.catch_warnings():
            # seekpath's use of spglib's deprecated interfaces: noise in a demo's output.
            for message in ('dict interface is deprecated', 'Set OLD_ERROR_HANDLING'):
                warnings.filterwarnings('ignore', message=message, category=DeprecationWarning)
            results, node = run_get_node(builder)
    finally:
        progress.detach(logger)
    elapsed = time.perf_counter() - start

    if not node.is_finished_ok:
        echo(f'[FAILED] ScreeningWorkChain<{node.pk}> exit status {node.exit_status}: {node.exit_message}')
        return DemoResult(node.pk, node.exit_status, (), {}, (), elapsed, None)

    summary = results['summary'].get_dict()
    categories = {record['name']: record['category'] for record in load_structure_records()}
    rows = []
    for row in summary['rows']:
        name = names.get(row['key'], row['key'])
        rows.append({'name': name, 'category': categories.get(name, '?'), **row})
    metrics = results['training']['metrics'].get_dict()
    echo('')
    echo(format_table(rows))
    echo('')
    echo(format_metrics(metrics))
    figures = write_figures(results, rows, pathlib.Path(output_dir))
    group_label = node.base.extras.get('candidates_group', None)
    echo('')
    echo(f'ScreeningWorkChain<{node.pk}> finished in {elapsed:.0f} s; candidates in Group `{group_label}`')
    echo('Figures: ' + ', '.join(str(path) for path in figures))
    return DemoResult(node.pk, node.exit_status, tuple(rows), metrics, tuple(figures), elapsed, group_label)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width table: material, category, role, reference label, prediction, P(candidate), verification."""
    lines = [
        f'{"material":<9} {"class":<13} {"role":<9} {"reference":>9} {"predicted":>9} {"P(cand.)":>8} {"verified":>8}'
    ]
    lines.append('-' * len(lines[0]))

    def fmt(value: Any, spec: str = '') -> str:
        return '-' if value is None else format(value, spec)

    for row in sorted(rows, key=lambda r: (r['role'], r['name'])):
        lines.append(
            f'{row["name"]:<9} {row["category"]:<13} {row["role"]:<9} {fmt(row.get("label")):>9} '
            f'{fmt(row.get("predicted")):>9} {fmt(row.get("probability"), ".2f"):>8} '
            f'{fmt(row.get("verified_label")):>8}'
        )
    return '\n'.join(lines)


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """Mean ± std over the held-out splits of the main metrics."""
    summary = metrics.get('summary', {})
    lines = [f'Held-out evaluation on the labelled materials ({len(metrics.get("splits", []))} seeded splits):']
    for name in ('balanced_accuracy', 'tpr', 'tnr', 'precision', 'speedup', 'speedup_screened', 'enrichment'):
        entry = summary.get(name, {})
        if entry.get('mean') is None:
            lines.append(f'  {name:<18} undefined')
        else:
            lines.append(f'  {name:<18} {entry["mean"]:.2f} ± {entry["std"]:.2f}  ({entry["n"]} splits)')
    return '\n'.join(lines)


def write_figures(
    results: Mapping[str, Any], rows: list[dict[str, Any]], output_dir: pathlib.Path
) -> list[pathlib.Path]:
    """Features of each material, summed held-out confusion matrix, importances on the energy axis (PNG)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    by_key = {row['key']: row for row in rows}

    # 1. Features of each material, offset vertically, coloured by (reference or predicted) class.
    features = results['features']
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(features) + 1.5))
    link_to_key = {_safe(key): key for key in by_key}
    ordered = sorted(features, key=lambda link: by_key[link_to_key[link]]['name'])
    for offset, link in enumerate(ordered):
        node = features[link]
        row = by_key[link_to_key[link]]
        values = node.get_array('features')
        values = values / values.max() if values.max() > 0 else values
        label = row.get('label', row.get('predicted'))
        color = 'tab:red' if label == 1 else 'tab:blue'
        style = '-' if row['role'] == 'training' else '--'
        ax.plot(np.arange(values.size), values * 0.9 + offset, style, color=color, lw=1)
        ax.text(values.size + 1, offset + 0.2, row['name'], fontsize=7, va='center')
    first = features[ordered[0]]
    grid = first.get_array('energies') if 'energies' in first.get_arraynames() else np.arange(values.size, dtype=float)
    blocks = _blocks(grid, first.base.attributes.get('parameters', {}).get('references'))
    _mark_blocks(ax, blocks)
    ax.set_xlabel('feature index')
    ax.set_yticks([])
    ax.set_title(
        'SOREP features: red = candidate, blue = not; solid = reference label, dashed = predicted', fontsize=8, pad=14
    )
    fig.tight_layout()
    paths.append(output_dir / 'training_features.png')
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    # 2. Confusion matrix summed over the held-out splits.
    metrics = results['training']['metrics'].get_dict()
    matrix = np.zeros((2, 2), dtype=int)
    for split in metrics.get('splits', []):
        matrix += np.array([[split['tn'], split['fp']], [split['fn'], split['tp']]])
    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    ax.imshow(matrix, cmap='Blues')
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha='center', va='center', fontsize=12)
    ax.set_xticks([0, 1], ['not', 'candidate'])
    ax.set_yticks([0, 1], ['not', 'candidate'])
    ax.set_xlabel('predicted')
    ax.set_ylabel('reference')
    ax.set_title(f'held-out, {len(metrics.get("splits", []))} splits', fontsize=9)
    fig.tight_layout()
    paths.append(output_dir / 'training_confusion.png')
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    # 3. Importances on the energy axis.
    importances = results['training']['importances']
    mean = importances.get_array('importances_mean')
    std = importances.get_array('importances_std')
    names = importances.get_arraynames()
    x = importances.get_array('energies') if 'energies' in names else np.arange(mean.size)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    index = np.arange(mean.size)
    ax.fill_between(index, mean - std, mean + std, color='tab:orange', alpha=0.3, lw=0)
    ax.plot(index, mean, color='tab:orange')
    first = results['features'][sorted(results['features'])[0]]
    blocks = _blocks(x, first.base.attributes.get('parameters', {}).get('references'))
    ticks = sorted({i for start, stop, _ in blocks for i in (start + 2, (start + stop - 1) // 2)} | {x.size - 1})
    ax.set_xticks(ticks, [f'{x[i]:.1f}' for i in ticks], fontsize=7)
    _mark_blocks(ax, blocks)
    ax.set_xlabel('energy relative to the reference energy of each block (eV)')
    ax.set_ylabel('MDI importance')
    ax.set_title('Mean decrease in impurity (mean ± std over splits)', fontsize=9, pad=14)
    fig.tight_layout()
    paths.append(output_dir / 'training_importances.png')
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def _blocks(energies: np.ndarray, references: list[str] | None) -> list[tuple[int, int, str]]:
    """``(start, stop, name)`` of the blocks of a concatenated grid (where the energy jumps back)."""
    cuts = [0, *(np.flatnonzero(np.diff(energies) < 0) + 1).tolist(), energies.size]
    names = references if references and len(references) == len(cuts) - 1 else [''] * (len(cuts) - 1)
    return [(cuts[i], cuts[i + 1], names[i].upper()) for i in range(len(cuts) - 1)]


def _mark_blocks(ax: Any, blocks: list[tuple[int, int, str]]) -> None:
    for start, stop, name in blocks:
        if start > 0:
            ax.axvline(start - 0.5, color='0.6', lw=0.8, ls=':')
        if name:
            ax.text(
                (start + stop) / 2, 1.0, name, transform=ax.get_xaxis_transform(), ha='center', va='bottom', fontsize=8
            )


def _safe(key: str) -> str:
    from aiida_sorep.workflows.screening import _link_safe

    return _link_safe(key)
