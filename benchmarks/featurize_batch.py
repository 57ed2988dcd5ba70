"""Benchmark of :func:`aiida_sorep.core.features.featurize_batch` on one core.

A synthetic batch shaped like 20,000 materials (one spin channel, 200 k-points, 60 bands, about half insulators with
gaps of 0.2-6 eV and half metals): Fermi level (cold smearing of 0.01 Ry by default, the two-stage solver), band
edges and the four SOREP maps of the paper (Gaussian 0.05 eV, per-volume). Prints materials/second and peak memory,
and checks a random sample against the per-material :func:`~aiida_sorep.core.features.featurize`.

Usage::

    python benchmarks/featurize_batch.py [--materials 20000] [--smearing cold] [--width 0.136] [--chunk-size 256]
"""

from __future__ import annotations

import os

# one core: no BLAS/OpenMP threads (must be set before numpy is imported)
for _variable in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_variable] = '1'

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from aiida_sorep.core.features import featurize, featurize_batch  # noqa: E402


def synthetic_batch(
    n_materials: int, n_kpoints: int = 200, n_bands: int = 60, seed: int = 0, chunk: int = 500
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random but band-structure-like spectra.

    Bands ``e_b(k) = c_b + w_b / 2 * f_b(k)`` with centres ``c_b`` spaced by exponential gaps (mean 0.75 eV),
    widths ``w_b`` in [0.5, 4] eV and ``f_b`` a sum of three plane waves in k; sorted at each k. Half of the materials
    are insulators (``n_v`` filled bands, the bands above shifted to open a gap of 0.2-6 eV), the other half metals
    (an odd number of electrons, or an even number with overlapping bands). A random absolute offset mimics the
    arbitrary zero of DFT eigenvalues.

    :returns: eigenvalues ``(n, n_kpoints, n_bands)`` eV, weights ``(n_kpoints,)`` (sum 2), n_electrons ``(n,)``,
        volumes ``(n,)`` Å^3.
    """
    rng = np.random.default_rng(seed)
    kpoints = rng.random((n_kpoints, 3))
    multiplicity = rng.integers(1, 49, n_kpoints).astype(float)
    weights = 2.0 * multiplicity / multiplicity.sum()
    eigenvalues = np.empty((n_materials, n_kpoints, n_bands))
    n_electrons = np.empty(n_materials)
    for begin in range(0, n_materials, chunk):
        m = min(chunk, n_materials - begin)
        centres = rng.uniform(-15, -5, (m, 1)) + np.cumsum(rng.exponential(0.75, (m, n_bands)), axis=1)
        widths = rng.uniform(0.5, 4.0, (m, n_bands))
        vectors = rng.integers(-2, 3, (m, n_bands, 3, 3)).astype(float)
        phases = rng.uniform(0, 2 * np.pi, (m, n_bands, 3))
        dispersion = np.zeros((m, n_bands, n_kpoints))
        for j in range(3):
            dispersion += np.cos(2 * np.pi * vectors[:, :, j, :] @ kpoints.T + phases[:, :, j, None])
        e = centres[:, :, None] + 0.5 * widths[:, :, None] * dispersion / 3.0
        e = np.sort(e.transpose(0, 2, 1), axis=2)  # (m, n_kpoints, n_bands)
        n_valence = rng.integers(4, 31, m)
        insulator = rng.random(m) < 0.5
        rows = np.arange(m)
        top = e.max(axis=1)[rows, n_valence - 1]
        bottom = e.min(axis=1)[rows, n_valence]
        shift = np.where(insulator, np.maximum(top - bottom, 0.0) + rng.uniform(0.2, 6.0, m), 0.0)
        e += np.where(np.arange(n_bands)[None, None, :] >= n_valence[:, None, None], shift[:, None, None], 0.0)
        odd = rng.random(m) < 0.5
        electrons = 2.0 * n_valence + np.where(~insulator & odd, 1.0, 0.0)
        eigenvalues[begin : begin + m] = e + rng.uniform(-5, 10, (m, 1, 1))
        n_electrons[begin : begin + m] = electrons
    volumes = rng.uniform(10.0, 400.0, n_materials)
    return eigenvalues, weights, n_electrons, volumes


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ``ru_maxrss`` is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--materials', type=int, default=20000)
    parser.add_argument('--kpoints', type=int, default=200)
    parser.add_argument('--bands', type=int, default=60)
    parser.add_argument('--smearing', default='cold', help='occupation smearing for the Fermi level')
    parser.add_argument('--width', type=float, default=0.136, help='occupation smearing width in eV')
    parser.add_argument('--chunk-size', type=int, default=256)
    parser.add_argument('--check', type=int, default=10, help='materials checked against featurize()')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    eigenvalues, weights, n_electrons, volumes = synthetic_batch(args.materials, args.kpoints, args.bands, args.seed)
    generation = time.perf_counter() - start
    memory_data = peak_memory_mb()
    print(f'python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, one thread')
    print(
        f'batch: {args.materials} materials x {args.kpoints} k-points x {args.bands} bands '
        f'({eigenvalues.nbytes / 2**20:.0f} MB of eigenvalues, generated in {generation:.1f} s)'
    )
    print(f'Fermi level: {args.smearing} smearing, width {args.width} eV; maps: the four SOREP defaults')

    start = time.perf_counter()
    cpu_start = time.process_time()
    result = featurize_batch(
        eigenvalues,
        weights,
        n_electrons,
        smearing=args.smearing,
        width=args.width,
        volumes=volumes,
        chunk_size=args.chunk_size,
    )
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    memory_peak = peak_memory_mb()
    print(f'metals: {int(result.is_metal.sum())}, insulators: {int((~result.is_metal).sum())}')
    print(
        f'featurize_batch: {elapsed:.1f} s wall, {cpu:.1f} s CPU (one thread): '
        f'{args.materials / elapsed:.0f} materials/s wall, {args.materials / cpu:.0f} materials/s CPU'
    )
    print(
        f'peak memory: {memory_peak:.0f} MB (eigenvalues and data generation alone: {memory_data:.0f} MB; '
        f'features: {sum(f.nbytes for f in result.features.values()) / 2**20:.0f} MB)'
    )

    rng = np.random.default_rng(args.seed + 1)
    sample = rng.choice(args.materials, size=min(args.check, args.materials), replace=False)
    fermi_difference = 0.0
    feature_difference = 0.0
    start = time.perf_counter()
    for index in sample:
        fermi, _, maps = featurize(
            eigenvalues[index],
            weights,
            n_electrons[index],
            smearing=args.smearing,
            width=args.width,
            volume=volumes[index],
        )
        fermi_difference = max(fermi_difference, abs(fermi.fermi_energy - result.fermi_energy[index]))
        for kind, value in maps.items():
            scale = max(np.abs(value.features).max(), 1e-300)
            feature_difference = max(
                feature_difference, float(np.abs(value.features - result.features[kind][index]).max() / scale)
            )
    single = (time.perf_counter() - start) / max(1, sample.size)
    print(
        f'check vs featurize() on {sample.size} materials: max |dE_F| = {fermi_difference:.1e} eV, '
        f'max relative feature difference = {feature_difference:.1e} (featurize: {single * 1e3:.0f} ms/material)'
    )


if __name__ == '__main__':
    main()
