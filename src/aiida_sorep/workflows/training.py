"""``TrainingWorkChain`` (``sorep.training``): validate labelled feature nodes, then train the screening model.

Two paths with identical outputs:

* with a ``code`` (a Python with aiida-sorep, e.g. ``sorep-python@localhost``): the :class:`TrainingCalculation`
  CalcJob runs the training as a job, so a long training never blocks a daemon worker;
* without a ``code``: the light in-process path, the :func:`train_in_process` calcfunction, for small sets
  (at most ``max_in_process_samples`` materials).

Also here: the :func:`training_set` calcfunction (stacks feature nodes and label nodes into one dataset node, so
the model traces back to every feature and label) and the :func:`predict` calcfunction (``sorep.predict``).
"""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from aiida_sorep.calculations.training import TrainingCalculation, validate_training_parameters
from aiida_sorep.core import training as core
from aiida_sorep.parsers.training import training_outputs

__all__ = (
    'DEFAULT_LABEL_KEY',
    'TrainingWorkChain',
    'extract_label',
    'features_of',
    'predict',
    'soap',
    'train_in_process',
    'training_set',
)

DEFAULT_LABEL_KEY = 'is_tcm_candidate'
"""Key of the label in a reference ``properties`` Dict (``ReferenceWorkChain``)."""


def features_of(node: orm.ArrayData) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Return ``(features (n_points,), energies (n_points,) or None, kind)`` of a feature node.

    Accepts :class:`~aiida_sorep.data.SorepFeaturesData` and any ``ArrayData`` with a ``features`` array (e.g. the
    SOAP baseline, ``kind='soap'``, which has no energy grid).
    """
    names = node.get_arraynames()
    if 'features' not in names:
        raise ValueError(f'node {node.pk} has no `features` array (arrays: {names})')
    energies = node.get_array('energies') if 'energies' in names else None
    kind = node.base.attributes.get('kind', 'unknown')
    return node.get_array('features'), energies, str(kind)


def extract_label(node: orm.Data, label_key: str = DEFAULT_LABEL_KEY) -> int:
    """Return the 0/1 label of a ``Bool`` or of the ``label_key`` entry of a ``Dict``."""
    if isinstance(node, orm.Bool):
        return int(node.value)
    if isinstance(node, orm.Dict):
        if label_key not in node.keys():
            raise ValueError(f'Dict<{node.pk}> has no key `{label_key}` (keys: {sorted(node.keys())})')
        value = node[label_key]
        if value not in (0, 1):  # True == 1, False == 0
            raise ValueError(f'Dict<{node.pk}>[{label_key!r}] = {value!r} is not a boolean label')
        return int(value)
    raise ValueError(f'a label must be a Bool or a Dict, got {type(node).__name__}<{node.pk}>')


def _stack(
    features: Sequence[orm.ArrayData], labels: Sequence[orm.Data], label_key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """Stack nodes into ``(X, y, energies, kind)``; raises ValueError (empty, mismatched kinds/lengths/grids)."""
    if len(features) == 0:
        raise ValueError('no feature nodes given: the training set is empty')
    unpacked = [features_of(node) for node in features]
    kinds = sorted({kind for _, _, kind in unpacked})
    if len(kinds) != 1:
        raise ValueError(f'feature nodes of different kinds {kinds}: train on one parameterization at a time')
    grids = [energies for _, energies, _ in unpacked]
    has_grid = [g is not None for g in grids]
    X, grid = core.stack_features([f for f, _, _ in unpacked], grids if all(has_grid) else None)
    y = np.array([extract_label(node, label_key) for node in labels], dtype=int)
    return X, y, grid, kinds[0]


@calcfunction
def training_set(keys: orm.List, label_key: orm.Str, **nodes: orm.Data) -> orm.ArrayData:
    """Stack feature nodes ``f00000, f00001, ...`` and label nodes ``y00000, ...`` into one dataset node.

    Output arrays: ``features`` ``(n_samples, n_points)``, ``labels`` ``(n_samples,)``, ``energies`` (eV, if the
    features have a grid); attributes ``keys`` (the material keys, in order) and ``kind``.
    """
    n = len(keys.get_list())
    X, y, grid, kind = _stack(
        [nodes[f'f{i:05d}'] for i in range(n)], [nodes[f'y{i:05d}'] for i in range(n)], label_key.value
    )
    dataset = orm.ArrayData()
    dataset.set_array('features', X)
    dataset.set_array('labels', y)
    if grid is not None:
        dataset.set_array('energies', grid)
    dataset.base.attributes.set('keys', keys.get_list())
    dataset.base.attributes.set('kind', kind)
    return dataset


@calcfunction
def train_in_process(dataset: orm.ArrayData, parameters: orm.Dict) -> dict[str, orm.Data]:
    """Light path of ``sorep.training`` for small sets: the same runner, in this process, same outputs."""
    with tempfile.TemporaryDirectory() as directory:
        arrays = {name: dataset.get_array(name) for name in dataset.get_arraynames()}
        core.write_inputs(
            directory, arrays['features'], arrays['labels'], arrays.get('energies'), parameters.get_dict()
        )
        core.run_from_files(directory)
        folder = pathlib.Path(directory)
        names = {path.name for path in folder.iterdir()}
        return training_outputs(names, lambda name, mode: (folder / name).open(mode), expect_model=True)


@calcfunction
def predict(model: orm.SinglefileData, keys: orm.List, **features: orm.ArrayData) -> orm.Dict:
    """``sorep.predict``: apply a stored model to feature nodes ``f00000, f00001, ...``.

    Output ``predictions``: ``{key: {'label': 0/1, 'probability': P(positive)}}`` in the order of ``keys``.
    """
    fitted = core.load_model(model.get_content('rb'))
    key_list = keys.get_list()
    X, _ = core.stack_features([features_of(features[f'f{i:05d}'])[0] for i in range(len(key_list))])
    result = core.predict(fitted, X)
    return orm.Dict(
        {
            key: {'label': int(label), 'probability': float(prob)}
            for key, label, prob in zip(key_list, result.labels, result.probabilities, strict=True)
        }
    )


@calcfunction
def soap(structure: orm.StructureData) -> orm.ArrayData:
    """``sorep.soap``: the SOAP baseline (paper settings, species-agnostic, averaged) as a feature node.

    Output: ``ArrayData`` with the array ``features`` (550,) and the attributes ``kind='soap'``, ``parameters``.
    """
    from aiida_sorep.core.soap import PAPER_SOAP_SETTINGS, soap_features

    ase = structure.get_ase()
    node = orm.ArrayData()
    node.set_array('features', soap_features(ase.cell.array, ase.positions, ase.get_chemical_symbols()))
    node.base.attributes.set('kind', 'soap')
    node.base.attributes.set('parameters', {'kind': 'soap', **PAPER_SOAP_SETTINGS.as_dict()})
    return node


def predict_inputs(model: orm.SinglefileData, features: Mapping[str, orm.ArrayData]) -> dict[str, Any]:
    """Inputs of :func:`predict` for a ``{key: feature node}`` mapping."""
    keys = list(features)
    inputs: dict[str, Any] = {'model': model, 'keys': orm.List(keys)}
    inputs.update({f'f{i:05d}': features[key] for i, key in enumerate(keys)})
    return inputs


def training_set_inputs(
    features: Mapping[str, orm.ArrayData], labels: Mapping[str, orm.Data], label_key: str
) -> dict[str, Any]:
    """Inputs of :func:`training_set` for matching ``{key: node}`` mappings."""
    keys = list(features)
    inputs: dict[str, Any] = {'keys': orm.List(keys), 'label_key': orm.Str(label_key)}
    for i, key in enumerate(keys):
        inputs[f'f{i:05d}'] = features[key]
        inputs[f'y{i:05d}'] = labels[key]
    return inputs


class TrainingWorkChain(WorkChain):
    """Validate labelled feature nodes, stack them into a dataset and train (CalcJob or in-process)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            'features',
            valid_type=orm.ArrayData,
            dynamic=True,
            required=False,
            help='Feature nodes (SorepFeaturesData or SOAP ArrayData), keyed by material.',
        )
        spec.input_namespace(
            'labels',
            valid_type=(orm.Dict, orm.Bool),
            dynamic=True,
            required=False,
            help='Label nodes with the same keys: a Bool, or a Dict (e.g. reference `properties`) with `label_key`.',
        )
        spec.input('label_key', valid_type=orm.Str, default=lambda: orm.Str(DEFAULT_LABEL_KEY))
        spec.input('parameters', valid_type=orm.Dict, help='Training parameters (random_state required).')
        spec.input(
            'code',
            valid_type=orm.AbstractCode,
            required=False,
            help='Python code (e.g. sorep-python@localhost): run the training as a CalcJob. Without: in-process.',
        )
        spec.input(
            'max_in_process_samples',
            valid_type=orm.Int,
            default=lambda: orm.Int(300),
            help='Largest training set trained in-process when no code is given.',
        )
        spec.input('options', valid_type=dict, non_db=True, required=False, help='metadata.options of the CalcJob.')
        spec.outline(
            cls.validate,
            cls.build_dataset,
            if_(cls.use_calcjob)(cls.run_calcjob, cls.inspect_calcjob).else_(cls.run_in_process),
        )
        spec.output('dataset', valid_type=orm.ArrayData, help='Stacked features, labels and energy grid.')
        spec.expose_outputs(TrainingCalculation, include=('model', 'metrics', 'importances', 'splits', 'versions'))

        spec.exit_code(
            201, 'ERROR_EMPTY_TRAINING_SET', message='No feature nodes were given: the training set is empty.'
        )
        spec.exit_code(202, 'ERROR_INVALID_LABELS', message='Invalid or missing labels: {message}')
        spec.exit_code(203, 'ERROR_MISMATCHED_FEATURES', message='The feature nodes do not match: {message}')
        spec.exit_code(204, 'ERROR_SINGLE_CLASS', message='The training set has a single class: {message}')
        spec.exit_code(205, 'ERROR_TOO_FEW_SAMPLES', message='Too few labelled materials: {message}')
        spec.exit_code(206, 'ERROR_INVALID_PARAMETERS', message='Invalid training parameters: {message}')
        spec.exit_code(
            207,
            'ERROR_TOO_LARGE_FOR_IN_PROCESS',
            message='{n} materials exceed max_in_process_samples={limit}: give a `code` to run the CalcJob.',
        )
        spec.exit_code(301, 'ERROR_TRAINING_FAILED', message='The training CalcJob<{pk}> failed: {message}')

    def validate(self):
        """Check features, labels and parameters before anything is stored: 2xx exit codes."""
        features = dict(self.inputs.get('features', {}))
        labels = dict(self.inputs.get('labels', {}))
        if not features:
            return self.exit_codes.ERROR_EMPTY_TRAINING_SET
        if set(features) != set(labels):
            missing = sorted(set(features) ^ set(labels))
            return self.exit_codes.ERROR_INVALID_LABELS.format(
                message=f'features and labels must have the same keys; unmatched: {missing}'
            )
        message = validate_training_parameters(self.inputs.parameters)
        if message:
            return self.exit_codes.ERROR_INVALID_PARAMETERS.format(message=message)
        keys = sorted(features)
        try:
            y = np.array([extract_label(labels[key], self.inputs.label_key.value) for key in keys], dtype=int)
        except ValueError as exception:
            return self.exit_codes.ERROR_INVALID_LABELS.format(message=str(exception))
        try:
            X, _, _, _ = _stack(
                [features[key] for key in keys], [labels[key] for key in keys], self.inputs.label_key.value
            )
        except ValueError as exception:
            return self.exit_codes.ERROR_MISMATCHED_FEATURES.format(message=str(exception))
        try:
            core.validate_dataset(X, y)
        except ValueError as exception:
            if 'single class' in str(exception):
                return self.exit_codes.ERROR_SINGLE_CLASS.format(message=str(exception))
            return self.exit_codes.ERROR_TOO_FEW_SAMPLES.format(message=str(exception))
        params = self.inputs.parameters.get_dict()
        try:
            if params.get('n_splits', 5) == 0:
                splits = []
            else:
                splits = core.stratified_splits(
                    y,
                    test_size=params.get('test_size', 0.2),
                    n_splits=params.get('n_splits', 5),
                    random_state=params['random_state'],
                )
            core.check_splits_trainable(splits, y)
        except ValueError as exception:
            return self.exit_codes.ERROR_TOO_FEW_SAMPLES.format(message=str(exception))
        if 'code' not in self.inputs and y.size > self.inputs.max_in_process_samples.value:
            return self.exit_codes.ERROR_TOO_LARGE_FOR_IN_PROCESS.format(
                n=y.size, limit=self.inputs.max_in_process_samples.value
            )
        self.ctx.material_keys = keys
        self.report(f'{y.size} labelled materials ({int(y.sum())} positive), feature length {X.shape[1]}')
        return None

    def build_dataset(self):
        """Stack the nodes into one dataset node (calcfunction: provenance from each feature and label)."""
        features = {key: self.inputs.features[key] for key in self.ctx.material_keys}
        labels = {key: self.inputs.labels[key] for key in self.ctx.material_keys}
        self.ctx.dataset = training_set(**training_set_inputs(features, labels, self.inputs.label_key.value))
        self.out('dataset', self.ctx.dataset)

    def use_calcjob(self):
        """Whether a code was given."""
        return 'code' in self.inputs

    def run_calcjob(self):
        """Submit the training CalcJob."""
        inputs = {'dataset': self.ctx.dataset, 'parameters': self.inputs.parameters, 'code': self.inputs.code}
        if 'options' in self.inputs:
            inputs['metadata'] = {'options': dict(self.inputs.options)}
        node = self.submit(TrainingCalculation, **inputs)
        self.report(f'launched TrainingCalculation<{node.pk}>')
        return ToContext(calculation=node)

    def inspect_calcjob(self):
        """Expose the CalcJob's outputs, or fail with 301."""
        node = self.ctx.calculation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(pk=node.pk, message=node.exit_message)
        self.out_many(self.exposed_outputs(node, TrainingCalculation))
        return None

    def run_in_process(self):
        """Train in this process through the :func:`train_in_process` calcfunction."""
        outputs = train_in_process(self.ctx.dataset, self.inputs.parameters)
        for name, node in outputs.items():
            self.out(name, node)
