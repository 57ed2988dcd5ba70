"""Seconds per structure of the kinetic SOREP (PySCF integrals + eigenproblems + smearing) on one core.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/kinetic_speed.py [--repeat 5] [--kspacing 0.2]

Prints, per structure: number of atoms and orbitals, k-point mesh, number of k-points actually
diagonalised (the irreducible wedge found by spglib, time reversal included; about half the mesh without
symmetry), and the median wall time over ``--repeat`` runs after one warm-up run (the warm-up pays the
PySCF import). The target of issue 7 is <= 2 s for 5-atom cubic BaTiO3 at 0.2 1/Å.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

if os.environ.get('OMP_NUM_THREADS') != '1':
    print('warning: set OMP_NUM_THREADS=1 (and OPENBLAS_NUM_THREADS=1) for a one-core figure')

from aiida_sorep.core.kinetic import kinetic_sorep
from aiida_sorep.core.structures import batio3, distorted_copy


def time_structure(structure, repeat: int, **kwargs) -> tuple[float, object]:
    """Median seconds of ``kinetic_sorep(structure, **kwargs)`` over ``repeat`` runs (after a warm-up)."""
    result = kinetic_sorep(structure, **kwargs)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = kinetic_sorep(structure, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--kspacing', type=float, default=0.2, help='1/Å, 2π included')
    args = parser.parse_args()
    cubic = batio3('cubic')
    frame = distorted_copy(cubic * (3, 2, 1), 0.05, np.random.default_rng(0))  # an 'MD frame': no symmetry
    cases = [
        ('BaTiO3 cubic (5 atoms)', cubic, {}),
        ('BaTiO3 cubic 3x2x1 (30 atoms)', cubic * (3, 2, 1), {}),
        ('BaTiO3 3x2x1 shaken by <0.05 Å (30 atoms, P1)', frame, {}),
        ('BaTiO3 cubic (5 atoms), full basis', cubic, {'exp_to_discard': None}),
        ('BaTiO3 cubic 3x2x1 (30 atoms), full basis', cubic * (3, 2, 1), {'exp_to_discard': None}),
    ]
    threads = os.environ.get('OMP_NUM_THREADS')
    print(f'kspacing {args.kspacing} 1/Å, median of {args.repeat} runs, OMP_NUM_THREADS={threads}')
    header = f'{"structure":48s} {"atoms":>5s} {"orbitals":>8s} {"mesh":>10s} {"k diag.":>7s} {"s/structure":>12s}'
    print(header)
    print('-' * len(header))
    for label, structure, extra in cases:
        seconds, result = time_structure(structure, args.repeat, kspacing=args.kspacing, **extra)
        spectrum = result.spectrum
        mesh = 'x'.join(map(str, spectrum.mesh))
        print(
            f'{label:48s} {len(structure):5d} {spectrum.n_orbitals:8d} {mesh:>10s} {len(spectrum.kpoints):7d} '
            f'{seconds:12.3f}'
        )


if __name__ == '__main__':
    main()
