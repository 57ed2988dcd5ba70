"""Make the figures of ``docs/kinetic.md`` and print the acceptance figures quoted there.

Usage (about a minute on one core)::

    OMP_NUM_THREADS=1 python docs/scripts/kinetic_figures.py [--output docs/images]

* ``kinetic_batio3.png``: 4 BaTiO3 polymorphs x (reference + 4 copies with random distortions < 0.01 Å + a
  2x1x1 supercell) = 24 structures: distance matrix sorted by DBSCAN cluster, sorted 1-NN distance curve and
  number of clusters vs eps, with the StructureMatcher comparison (adjusted Rand index).
* ``kinetic_nanotubes.png``: kinetic DOS of the (8,0) and (5,5) carbon nanotubes.
* ``kinetic_si_ge.png``: kinetic DOS of Si, Ge, K2Sn2O3 and rutile SnO2 and their cosine distances.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
from ase.build import nanotube

from aiida_sorep.core import similarity
from aiida_sorep.core.kinetic import kinetic_sorep, kpoint_mesh_from_spacing
from aiida_sorep.core.structures import BATIO3_PHASES, batio3, diamond, distorted_copy, k2sn2o3, rutile_sno2

MATCHER = {'ltol': 0.005, 'stol': 0.05, 'angle_tol': 0.1, 'scale': False}


def batio3_figure(output: pathlib.Path) -> None:
    rng = np.random.default_rng(2024)
    structures, names = [], []
    for phase in BATIO3_PHASES:
        reference = batio3(phase)
        structures += [reference, *(distorted_copy(reference, 0.01, rng) for _ in range(4)), reference * (2, 1, 1)]
        names += [phase[:4], *(f'{phase[:4]}~{i}' for i in range(4)), f'{phase[:4]} 2x1x1']
    features = np.array([kinetic_sorep(s).features for s in structures])  # defaults: 0.2 1/Å, 0-180 eV, 0.8 eV
    d = similarity.cosine_distance_matrix(features)
    scan = similarity.eps_scan(d, np.geomspace(1e-7, 1.0, 400))
    heights = similarity.merge_heights(d)
    gap_index, gap_low, gap_high = similarity.largest_gap(heights)
    low, high = scan.range_for(4)
    eps = float(np.sqrt(low * high))  # log-middle of the 4-cluster plateau
    labels = similarity.dbscan_labels(d, eps)
    matcher = similarity.structure_matcher_labels(structures, **MATCHER)
    ari = similarity.adjusted_rand_index(labels, matcher)
    truth = np.repeat(np.arange(4), 6)
    curve = similarity.knn_distance_curve(d)
    same = truth[:, None] == truth[None, :]
    print(f'BaTiO3: {len(structures)} structures, within-polymorph max distance {d[same].max():.3e}')
    print(f'BaTiO3: between-polymorph min distance {d[~same].min():.3e}')
    n_gap = len(heights) - gap_index
    print(f'BaTiO3: largest merge-height ratio gap [{gap_low:.3e}, {gap_high:.3e}] -> {n_gap} clusters')
    print(f'BaTiO3: 4 clusters for eps in {scan.range_for(4)}; chosen eps {eps:.3e}')
    print(f'BaTiO3: DBSCAN clusters {len(set(labels))}, ARI vs truth {similarity.adjusted_rand_index(labels, truth)}')
    print(f'BaTiO3: StructureMatcher{MATCHER}: {len(set(matcher))} groups, ARI {ari}')
    print(f'BaTiO3: 1-NN curve max {curve.max():.3e}, chord elbow {curve[similarity.knee_point(curve)]:.3e}')
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    similarity.plot_distance_matrix(d, labels, ax=axes[0], names=names)
    similarity.plot_knn_curve(curve, ax=axes[1], heights=heights, band=(low, high))
    similarity.plot_eps_scan(scan, ax=axes[2], chosen_eps=eps)
    axes[2].axvspan(low, high, color='C2', alpha=0.2, label='4 clusters')
    axes[2].legend()
    axes[1].set_title('sorted 1-NN distances and merge heights')
    axes[2].set_title(f'DBSCAN eps scan; ARI vs StructureMatcher {ari:.2f}')
    fig.tight_layout()
    fig.savefig(output / 'kinetic_batio3.png', dpi=80)
    plt.close(fig)


def nanotube_figure(output: pathlib.Path) -> None:
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={'height_ratios': [3, 1]})
    results = {}
    for chirality, label in (((8, 0), '(8,0) semiconducting'), ((5, 5), '(5,5) metallic')):
        tube = nanotube(*chirality, length=1, vacuum=4.0)
        tube.pbc = True
        mesh = (1, 1, kpoint_mesh_from_spacing(tube.cell.array, 0.1)[2])  # no dispersion across the vacuum
        result = kinetic_sorep(tube, mesh=mesh, e_max=60.0, n_points=1200, width=0.3)
        results[chirality] = result
        axes[0].plot(result.energies, result.features, label=f'{label}, {len(tube)} atoms, mesh {result.spectrum.mesh}')
    d = similarity.cosine_distance_matrix([results[(8, 0)].features, results[(5, 5)].features])[0, 1]
    print(f'nanotubes: cosine distance (8,0)-(5,5) = {d:.3f}')
    axes[0].set_ylabel('kinetic DOS (states / eV / Å$^3$)')
    axes[0].legend()
    axes[0].set_title(f'kinetic SOREP of carbon nanotubes (ANO-ML-OS, σ = 0.3 eV); cosine distance {d:.3f}')
    axes[1].plot(results[(8, 0)].energies, results[(8, 0)].features - results[(5, 5)].features, color='k', lw=0.8)
    axes[1].set_ylabel('(8,0) − (5,5)')
    axes[1].set_xlabel('kinetic energy (eV)')
    fig.tight_layout()
    fig.savefig(output / 'kinetic_nanotubes.png', dpi=80)
    plt.close(fig)


def si_ge_figure(output: pathlib.Path) -> None:
    cases = {'Si': diamond('Si', 5.431), 'Ge': diamond('Ge', 5.658), 'K2Sn2O3': k2sn2o3(), 'SnO2': rutile_sno2()}
    results = {name: kinetic_sorep(structure) for name, structure in cases.items()}
    d = similarity.cosine_distance_matrix([r.features for r in results.values()])
    names = list(results)
    for i, first in enumerate(names):
        print('  '.join(f'{first}-{second} {d[i, j]:.3f}' for j, second in enumerate(names) if j > i))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, result in results.items():
        ax.plot(result.energies, result.features, label=name)
    ax.set_xlabel('kinetic energy (eV)')
    ax.set_ylabel('states / eV / Å$^3$')
    ax.set_title(f'cosine distances: Si–Ge {d[0, 1]:.3f}, Si–K2Sn2O3 {d[0, 2]:.3f}, Ge–K2Sn2O3 {d[1, 2]:.3f}')
    ax.legend()
    fig.tight_layout()
    fig.savefig(output / 'kinetic_si_ge.png', dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', type=pathlib.Path, default=pathlib.Path(__file__).resolve().parents[1] / 'images')
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    si_ge_figure(args.output)
    nanotube_figure(args.output)
    batio3_figure(args.output)


if __name__ == '__main__':
    main()
