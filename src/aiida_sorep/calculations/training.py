"""``TrainingCalculation`` (``sorep.training``): train and evaluate the screening classifier as a CalcJob.

Heavy training (thousands of materials x repeated splits x a grid search of 500-tree forests) runs as a job on
a configurable computer instead of blocking a daemon worker: the CalcJob writes the stacked feature matrix and
labels (``training_inputs.npz``) and the training parameters (``training_parameters.json``), and runs
``python -m aiida_sorep.training_runner .`` with the ``code`` (a Python with aiida-sorep installed, set up by
``aiida-sorep setup`` as ``sorep-python@localhost``). The parser ``sorep.training`` stores the model, metrics,
importances, split indices and library versions.

Inputs:

* ``dataset``: ``ArrayData`` with arrays ``features`` ``(n_samples, n_points)``, ``labels`` ``(n_samples,)`` (0/1)
  and optionally ``energies`` ``(n_points,)`` in eV (made by :func:`aiida_sorep.workflows.training.training_set`);
* ``parameters``: ``Dict`` with the keywords of :func:`aiida_sorep.core.training.train_screening_model`
  (``random_state`` required; ``test_size``, ``n_splits``, ``param_grid``, ``cv_folds``, ``forest_settings``,
  ``cost_ratio``, ``fit_final``, ``n_jobs``).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.engine import CalcJob

from aiida_sorep.core import training as core

__all__ = ('TrainingCalculation', 'validate_training_parameters')

ERROR_FILE = core.OUTPUT_ERROR
"""Written by the runner when the input is invalid (the reason, one line)."""


def validate_training_parameters(value: orm.Dict, _: Any = None) -> str | None:
    """Return an error message if the training parameters are unknown or lack ``random_state``."""
    if value is None:
        return None
    params = value.get_dict()
    unknown = set(params) - set(core.RUN_PARAMETERS)
    if unknown:
        return f'unknown training parameters {sorted(unknown)}; allowed: {list(core.RUN_PARAMETERS)}'
    if 'random_state' not in params or not isinstance(params['random_state'], int):
        return 'the training parameters need an integer `random_state` (the seed of splits, folds and forests)'
    return None


def validate_dataset_node(value: orm.ArrayData, _: Any = None) -> str | None:
    """Return an error message if the dataset node lacks the ``features`` or ``labels`` array."""
    if value is None:
        return None
    names = set(value.get_arraynames())
    missing = {'features', 'labels'} - names
    if missing:
        return f'the dataset ArrayData lacks the arrays {sorted(missing)}'
    return None


class TrainingCalculation(CalcJob):
    """Run :func:`aiida_sorep.core.training.run_from_files` as a job (``python -m aiida_sorep.training_runner``)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'dataset',
            valid_type=orm.ArrayData,
            validator=validate_dataset_node,
            help='Arrays `features` (n_samples, n_points), `labels` (n_samples,) and optionally `energies` (eV).',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            validator=validate_training_parameters,
            help='Keywords of `train_screening_model`: random_state (required), test_size, n_splits, param_grid, ...',
        )
        spec.inputs['metadata']['options']['parser_name'].default = 'sorep.training'
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs['metadata']['options']['withmpi'].default = False

        spec.output('model', valid_type=orm.SinglefileData, required=False, help='The tuned model (skops, no pickle).')
        spec.output('metrics', valid_type=orm.Dict, help='Per-split metrics, mean ± std summary, best parameters.')
        spec.output(
            'importances',
            valid_type=orm.ArrayData,
            help='MDI importances on the energy grid: importances_mean, importances_std, importances_splits, energies.',
        )
        spec.output(
            'splits',
            valid_type=orm.ArrayData,
            help='train_indices, test_indices (n_splits, n), test_predictions, test_probabilities.',
        )
        spec.output('versions', valid_type=orm.Dict, help='Python and library versions, training settings.')

        spec.exit_code(301, 'ERROR_MISSING_RESULTS', message=f'The file `{core.OUTPUT_RESULTS}` was not produced.')
        spec.exit_code(302, 'ERROR_MISSING_ARRAYS', message=f'The file `{core.OUTPUT_ARRAYS}` was not produced.')
        spec.exit_code(
            303, 'ERROR_MISSING_MODEL', message=f'`fit_final` was set but `{core.OUTPUT_MODEL}` was not produced.'
        )
        spec.exit_code(311, 'ERROR_READING_RESULTS', message='The training outputs could not be read: {exception}')
        spec.exit_code(350, 'ERROR_UNEXPECTED_PARSER_EXCEPTION', message='The parser raised: {exception}')
        spec.exit_code(
            410,
            'ERROR_INVALID_TRAINING_DATA',
            message='The runner rejected the training data: {message}. Fix the labels/features and rerun.',
        )

    def prepare_for_submission(self, folder):
        """Write the inputs as npz + json and run the runner module in the working directory."""
        arrays = {name: self.inputs.dataset.get_array(name) for name in self.inputs.dataset.get_arraynames()}
        handle = io.BytesIO()
        np.savez(handle, **{k: v for k, v in arrays.items() if k in ('features', 'labels', 'energies')})
        with folder.open(core.INPUT_ARRAYS, 'wb') as stream:
            stream.write(handle.getvalue())
        with folder.open(core.INPUT_PARAMETERS, 'w') as stream:
            json.dump(self.inputs.parameters.get_dict(), stream, indent=2, sort_keys=True)

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ['-m', 'aiida_sorep.training_runner', '.']
        codeinfo.stdout_name = 'training.out'
        codeinfo.stderr_name = 'training.err'

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [
            core.OUTPUT_MODEL,
            core.OUTPUT_RESULTS,
            core.OUTPUT_ARRAYS,
            ERROR_FILE,
            'training.out',
            'training.err',
        ]
        return calcinfo
