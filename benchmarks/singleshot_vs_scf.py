"""Benchmark: single-shot pw.x (stock and patched; bare and through the WorkChain) against a converged SCF.

For each structure, at the same cutoffs, k-point mesh, smearing and number of bands (``nbnd = natomwfc``):

1. ``SingleShotWorkChain`` with the stock pw.x (AiiDA ``run``: k-point calcfunction, CalcJob, parsing, Fermi
   level and the four feature maps included): wall time ``wc_stock``;
2. the same pw.x input run bare (``subprocess``): ``ss_stock``;
3. if a patched pw.x is available, the same with it: ``ss_patched`` and ``wc_patched``;
4. an SCF to convergence run bare with the stock pw.x (same input, ``electron_maxstep=200``,
   ``conv_thr=1e-9 Ry x atoms``, ``mixing_beta=0.4``): ``scf``.

It prints the speedups ``scf / ss`` and ``scf / wc`` and the cosine and Euclidean distances between the
single-shot and the SCF Fermi-centred features (the SCF features are computed from the SCF eigenvalues by the
same core code, with the same smearing for the Fermi level).

Usage (needs an AiiDA profile; it creates the codes and the pseudopotential family if missing)::

    python benchmarks/singleshot_vs_scf.py [--profile NAME] [--protocol fast] [--only Si GaAs]
        [--pw-stock /usr/bin/pw.x] [--pw-patched ~/.local/aiida-sorep-qe/bin/pw.x] [--json out.json]

Timings are wall times on whatever machine runs it; run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

FAMILY = 'PseudoDojo/0.4/PBE/SR/standard/upf'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1'}


def structures() -> dict[str, Any]:
    """The benchmark structures (ASE ``Atoms``), from 2 to 16 atoms."""
    from ase import Atoms
    from ase.build import bulk
    from ase.spacegroup import crystal

    batio3 = Atoms(
        'BaTiO3',
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=[4.0, 4.0, 4.0],
        pbc=True,
    )
    sno2 = crystal(
        ['Sn', 'O'], basis=[(0, 0, 0), (0.3056, 0.3056, 0)], spacegroup=136, cellpar=[4.737, 4.737, 3.186, 90, 90, 90]
    )
    al2o3 = crystal(
        ['Al', 'O'],
        basis=[(0, 0, 0.3523), (0.3064, 0, 0.25)],
        spacegroup=167,
        cellpar=[4.759, 4.759, 12.991, 90, 90, 120],
        primitive_cell=True,
    )
    return {
        'Si': bulk('Si', 'diamond', a=5.431),
        'GaAs': bulk('GaAs', 'zincblende', a=5.653),
        'ZnO': bulk('ZnO', 'wurtzite', a=3.25, c=5.207),
        'BaTiO3': batio3,
        'SnO2': sno2,
        'Al2O3': al2o3,
        'Si16': bulk('Si', 'diamond', a=5.431, cubic=True) * (2, 1, 1),
    }


def ensure_code(label: str, executable: str):
    """Return the ``InstalledCode`` ``label@localhost`` for ``executable``, creating it (and localhost) if needed."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_code(f'{label}@localhost')
    except NotExistent:
        pass
    try:
        computer = orm.load_computer('localhost')
    except NotExistent:
        computer = orm.Computer(
            label='localhost', hostname='localhost', transport_type='core.local', scheduler_type='core.direct'
        ).store()
        computer.set_workdir(tempfile.mkdtemp(prefix='aiida-sorep-bench-'))
        computer.configure()
    return orm.InstalledCode(
        label=label,
        computer=computer,
        filepath_executable=executable,
        default_calc_job_plugin='quantumespresso.pw',
        with_mpi=False,
        prepend_text='export OMP_NUM_THREADS=1\nexport OPENBLAS_NUM_THREADS=1',
    ).store()


def run_bare(executable: str, input_text: str, pseudo_dir: pathlib.Path) -> tuple[float, str, pathlib.Path]:
    """Run ``executable -in aiida.in`` serially in a scratch folder; return (wall seconds, stdout, folder)."""
    scratch = pathlib.Path(tempfile.mkdtemp(prefix='sorep-bench-'))
    (scratch / 'aiida.in').write_text(input_text)
    (scratch / 'pseudo').symlink_to(pseudo_dir)
    (scratch / 'out').mkdir()
    start = time.perf_counter()
    result = subprocess.run(
        [executable, '-in', 'aiida.in'], cwd=scratch, env=ENV, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if 'JOB DONE' not in result.stdout:
        raise RuntimeError(f'{executable} did not finish (exit {result.returncode}) in {scratch}')
    return elapsed, result.stdout, scratch


def scf_input(single_shot_input: str, n_atoms: int) -> str:
    """Turn the single-shot input written by ``SingleShotCalculation`` into a converged-SCF input."""
    text = re.sub(r'\n\s*electron_maxstep = 0\n', '\n  electron_maxstep = 200\n', single_shot_input)
    text = re.sub(r'\n\s*scf_must_converge = \.false\.\n', '\n', text)
    text = re.sub(r'\n\s*startingpot = \'atomic\'\n', '\n', text)
    return text.replace('&ELECTRONS\n', f'&ELECTRONS\n  conv_thr = {1e-9 * n_atoms:.1e}\n  mixing_beta = 0.4\n', 1)


def scf_fermi_features(scratch: pathlib.Path, smearing: str, width: float, volume: float, parameters) -> np.ndarray:
    """Fermi-centred features of the converged SCF, from its XML, with the single shot's Fermi-level smearing."""
    from aiida_quantumespresso.parsers.parse_xml.parse import parse_xml

    from aiida_sorep.core.features import FeatureKind, featurize

    with (scratch / 'out' / 'aiida.save' / 'data-file-schema.xml').open() as handle:
        parsed, _ = parse_xml(handle)
    eigenvalues = np.asarray(parsed['bands']['bands'], dtype=float)
    weights = np.asarray(parsed['k_points_weights'], dtype=float)
    _, _, maps = featurize(
        eigenvalues,
        weights,
        parsed['number_of_electrons'],
        smearing=smearing,
        width=width,
        volume=volume,
        parameters=[parameters],
    )
    return maps[FeatureKind.FERMI].features


def run_workchain(code, structure, protocol: str) -> tuple[float, Any, Any]:
    """Run ``SingleShotWorkChain``; return (wall seconds, results, the CalcJob node)."""
    from aiida import engine, orm

    from aiida_sorep.workflows.singleshot import SingleShotWorkChain

    builder = SingleShotWorkChain.get_builder_from_protocol(code, structure, protocol=protocol)
    start = time.perf_counter()
    results, node = engine.run_get_node(builder)
    elapsed = time.perf_counter() - start
    if not node.is_finished_ok:
        raise RuntimeError(f'SingleShotWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    calcjob = next(child for child in node.called if isinstance(child, orm.CalcJobNode))
    return elapsed, results, calcjob


def benchmark_one(name: str, atoms, codes: dict, protocol: str, pseudo_dir: pathlib.Path) -> dict[str, Any]:
    """Benchmark one structure; return a row of timings (s) and distances."""
    from aiida import orm

    from aiida_sorep.core.features import FeatureParameters

    structure = orm.StructureData(ase=atoms)
    row: dict[str, Any] = {'name': name, 'atoms': len(atoms)}
    row['wc_stock'], results, calcjob = run_workchain(codes['stock'], structure, protocol)
    fermi = results['fermi'].get_dict()
    row['nbnd'] = fermi['number_of_bands']
    row['kpoints'] = len(results['output_band'].get_kpoints())
    input_text = calcjob.base.repository.get_object_content('aiida.in')
    feature_node = results['features']['fermi']
    ss_features = feature_node.features

    row['ss_stock'], _, scratch = run_bare(codes['stock'].filepath_executable, input_text, pseudo_dir)
    shutil.rmtree(scratch)
    if 'patched' in codes:
        row['ss_patched'], stdout, scratch = run_bare(codes['patched'].filepath_executable, input_text, pseudo_dir)
        shutil.rmtree(scratch)
        row['wc_patched'], results_patched, _ = run_workchain(codes['patched'], structure, protocol)
        row['fermi_patched_minus_rebuilt'] = results_patched['fermi'].get('pwx_fermi_energy_difference')

    row['scf'], stdout, scratch = run_bare(
        codes['stock'].filepath_executable, scf_input(input_text, len(atoms)), pseudo_dir
    )
    match = re.search(r'convergence has been achieved in\s+(\d+) iterations', stdout)
    row['scf_iterations'] = int(match.group(1)) if match else None
    known = ('kind', 'window', 'n_points', 'smearing', 'width', 'normalization')
    parameters = FeatureParameters.from_dict({key: feature_node.parameters[key] for key in known})
    scf_features = scf_fermi_features(
        scratch, fermi['smearing'], fermi['width'], structure.get_cell_volume(), parameters
    )
    shutil.rmtree(scratch)

    row['_curves'] = (feature_node.energies, ss_features, scf_features)
    norm = np.linalg.norm(ss_features) * np.linalg.norm(scf_features)
    row['cosine_distance'] = float(1 - ss_features @ scf_features / norm)
    row['euclidean_distance'] = float(np.linalg.norm(ss_features - scf_features))
    row['euclidean_relative'] = float(row['euclidean_distance'] / np.linalg.norm(scf_features))
    for key in ('ss_stock', 'wc_stock', 'ss_patched', 'wc_patched'):
        if key in row:
            row[f'speedup_{key}'] = row['scf'] / row[key]
    return row


def plot_curves(rows: list[dict[str, Any]], path: str) -> None:
    """Plot the single-shot and SCF Fermi-centred features of every structure into a small PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    n_columns = min(4, len(rows))
    n_rows = -(-len(rows) // n_columns)
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(3.2 * n_columns, 2.4 * n_rows), squeeze=False)
    for axis, row in zip(axes.flat, rows, strict=False):
        energies, single_shot, scf = row['_curves']
        axis.plot(energies, scf, color='0.3', lw=1.0, label='SCF')
        axis.plot(energies, single_shot, color='tab:red', lw=1.0, label='single shot')
        axis.set_title(f'{row["name"]}  (cos dist {row["cosine_distance"]:.2f})', fontsize=9)
        axis.set_xlabel('E - E_F (eV)', fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(rows) :]:
        axis.axis('off')
    axes.flat[0].set_ylabel('DOS (states/eV/Å³)', fontsize=8)
    axes.flat[0].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    print(f'plot written to {path}')


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print the results as a Markdown table plus the medians."""
    patched = any('ss_patched' in row for row in rows)
    header = ['structure', 'atoms', 'k', 'nbnd', 'SCF (s)', 'iter', 'stock bare (s)', 'stock WC (s)']
    if patched:
        header += ['patched bare (s)', 'patched WC (s)']
    header += ['x bare', 'x WC', 'cos dist', 'eucl dist', 'eucl rel']
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        best_bare = row.get('speedup_ss_patched', row['speedup_ss_stock'])
        best_wc = row.get('speedup_wc_patched', row['speedup_wc_stock'])
        cells = [row['name'], row['atoms'], row['kpoints'], row['nbnd'], f'{row["scf"]:.1f}', row['scf_iterations']]
        cells += [f'{row["ss_stock"]:.2f}', f'{row["wc_stock"]:.2f}']
        if patched:
            cells += [f'{row.get("ss_patched", float("nan")):.2f}', f'{row.get("wc_patched", float("nan")):.2f}']
        cells += [f'{best_bare:.1f}', f'{best_wc:.1f}']
        cells += [
            f'{row["cosine_distance"]:.4f}',
            f'{row["euclidean_distance"]:.4f}',
            f'{row["euclidean_relative"]:.3f}',
        ]
        print('| ' + ' | '.join(str(cell) for cell in cells) + ' |')
    for key in ('speedup_ss_stock', 'speedup_wc_stock', 'speedup_ss_patched', 'speedup_wc_patched'):
        values = [row[key] for row in rows if key in row]
        if values:
            print(f'median {key}: {statistics.median(values):.1f}x')


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', default=None, help='AiiDA profile (default: the default profile)')
    parser.add_argument('--protocol', default='fast', choices=['fast', 'balanced', 'stringent'])
    parser.add_argument('--only', nargs='*', default=None, help='subset of structures')
    parser.add_argument('--pw-stock', default=shutil.which('pw.x') or '/usr/bin/pw.x')
    parser.add_argument(
        '--pw-patched', default=os.path.expanduser('~/.local/aiida-sorep-qe/bin/pw.x'), help='skipped if missing'
    )
    parser.add_argument('--json', default=None, help='also write the rows to this JSON file')
    parser.add_argument('--plot', default=None, help='also plot the Fermi-centred features into this PNG')
    args = parser.parse_args()

    import aiida

    from aiida_sorep.install.pseudos import install_family, pseudo_dir

    aiida.load_profile(args.profile)
    install_family(echo=lambda *_: None)
    codes = {'stock': ensure_code('sorep-bench-pw-stock', args.pw_stock)}
    if os.access(args.pw_patched, os.X_OK):
        codes['patched'] = ensure_code('sorep-bench-pw-patched', args.pw_patched)
    else:
        print(f'no patched pw.x at {args.pw_patched}: stock only', flush=True)

    rows = []
    for name, atoms in structures().items():
        if args.only and name not in args.only:
            continue
        print(f'[{time.strftime("%H:%M:%S")}] {name} ({len(atoms)} atoms)...', flush=True)
        row = benchmark_one(name, atoms, codes, args.protocol, pseudo_dir())
        summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if not k.startswith('_')}
        print(f'    {json.dumps(summary)}', flush=True)
        rows.append(row)
        if args.json:
            table = [{key: value for key, value in row.items() if not key.startswith('_')} for row in rows]
            pathlib.Path(args.json).write_text(json.dumps(table, indent=2) + '\n')
    print()
    print(f'protocol {args.protocol}; times are wall seconds; speedups use the patched binary when available')
    print_table(rows)
    if args.plot:
        plot_curves(rows, args.plot)


if __name__ == '__main__':
    sys.exit(main())
