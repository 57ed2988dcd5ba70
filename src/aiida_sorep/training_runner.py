"""Command-line runner of the ``sorep.training`` CalcJob: ``python -m aiida_sorep.training_runner [DIRECTORY]``.

Reads ``training_inputs.npz`` and ``training_parameters.json`` from ``DIRECTORY`` (default: the working
directory), trains and evaluates the screening model with :func:`aiida_sorep.core.training.run_from_files`, and
writes ``model.skops``, ``training_results.json`` and ``training_arrays.npz`` next to them. Does not import
``aiida``: it runs with any Python that has numpy, scikit-learn, imbalanced-learn and skops.

Exit status: 0 on success, 2 for invalid inputs (the reason is printed to stderr and written to
``training_error.txt``), 1 for other errors.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str] | None = None) -> int:
    """Run the training in the given directory; return the exit status."""
    import pathlib

    from aiida_sorep.core.training import OUTPUT_ERROR, run_from_files

    args = sys.argv[1:] if argv is None else argv
    directory = args[0] if args else '.'
    start = time.perf_counter()
    try:
        result = run_from_files(directory)
    except ValueError as exception:
        print(f'sorep-training: invalid input: {exception}', file=sys.stderr)
        (pathlib.Path(directory) / OUTPUT_ERROR).write_text(f'{exception}\n')
        return 2
    balanced = result.summary['balanced_accuracy']
    elapsed = time.perf_counter() - start
    score = 'not evaluated' if balanced['mean'] is None else f'{balanced["mean"]:.3f} ± {balanced["std"]:.3f}'
    print(f'sorep-training: {len(result.splits)} splits, balanced accuracy {score}, {elapsed:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
