"""``TrainingParser`` (``sorep.training``): model, metrics, importances, split indices and versions as nodes.

:func:`training_outputs` turns the runner's files into unstored nodes; it is shared with the in-process path
(:func:`aiida_sorep.workflows.training.train_in_process`), so both paths give identical outputs.
"""

from __future__ import annotations

import io
import json
import traceback
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_sorep.core import training as core

__all__ = ('TrainingParser', 'training_outputs')

ERROR_FILE = core.OUTPUT_ERROR


class MissingOutputError(Exception):
    """A file the runner should have written is missing (maps to a 30x exit code)."""

    def __init__(self, exit_code_label: str) -> None:
        super().__init__(exit_code_label)
        self.exit_code_label = exit_code_label


def training_outputs(
    names: set[str], open_file: Callable[[str, str], IO[Any]], *, expect_model: bool = True
) -> dict[str, orm.Data]:
    """Build the output nodes from the runner's files.

    :param names: file names available.
    :param open_file: ``open_file(name, mode)`` returning a file handle (a folder's ``open``).
    :param expect_model: whether ``model.skops`` must be present (``fit_final``).
    :raises MissingOutputError: with the label of the exit code for a missing file.
    """
    if core.OUTPUT_RESULTS not in names:
        raise MissingOutputError('ERROR_MISSING_RESULTS')
    if core.OUTPUT_ARRAYS not in names:
        raise MissingOutputError('ERROR_MISSING_ARRAYS')
    if expect_model and core.OUTPUT_MODEL not in names:
        raise MissingOutputError('ERROR_MISSING_MODEL')

    with open_file(core.OUTPUT_RESULTS, 'r') as handle:
        results = json.load(handle)
    with open_file(core.OUTPUT_ARRAYS, 'rb') as handle:
        with np.load(io.BytesIO(handle.read())) as data:
            arrays = {name: data[name] for name in data.files}

    importances = orm.ArrayData()
    for name in ('importances_mean', 'importances_std', 'importances_splits', 'energies'):
        if name in arrays:
            importances.set_array(name, arrays[name])
    splits = orm.ArrayData()
    for name in ('train_indices', 'test_indices', 'test_predictions', 'test_probabilities'):
        splits.set_array(name, arrays[name])
    outputs: dict[str, orm.Data] = {
        'metrics': orm.Dict(results['metrics']),
        'importances': importances,
        'splits': splits,
        'versions': orm.Dict({'versions': results['versions'], 'settings': results['settings']}),
    }
    if core.OUTPUT_MODEL in names:
        with open_file(core.OUTPUT_MODEL, 'rb') as handle:
            outputs['model'] = orm.SinglefileData(io.BytesIO(handle.read()), filename=core.OUTPUT_MODEL)
    return outputs


class TrainingParser(Parser):
    """Parse the files of ``python -m aiida_sorep.training_runner``. Never raises."""

    def parse(self, **kwargs):
        try:
            retrieved = self.retrieved
            names = set(retrieved.base.repository.list_object_names())
            if ERROR_FILE in names:
                message = retrieved.base.repository.get_object_content(ERROR_FILE).strip()
                return self.exit_codes.ERROR_INVALID_TRAINING_DATA.format(message=message)
            expect_model = bool(self.node.inputs.parameters.get('fit_final', True))
            try:
                outputs = training_outputs(names, retrieved.base.repository.open, expect_model=expect_model)
            except MissingOutputError as exception:
                return getattr(self.exit_codes, exception.exit_code_label)
            except (ValueError, KeyError, OSError) as exception:
                return self.exit_codes.ERROR_READING_RESULTS.format(exception=exception)
            for name, node in outputs.items():
                self.out(name, node)
        except Exception:
            return self.exit_codes.ERROR_UNEXPECTED_PARSER_EXCEPTION.format(exception=traceback.format_exc())
        return None
