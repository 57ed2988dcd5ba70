"""``ScreeningWorkChain`` (``sorep.screening``): from structures to predicted candidates, end to end.

1. **Features** for every structure: the single-shot work chain (``sorep.singleshot``) and its SOREP feature node
   of ``feature_kind`` (``vbm``, ``fermi``, ``cbm``, ``concatenated``), or the SOAP baseline (``soap``);
2. **Labels** for a seeded random training subset: labels already in the profile are reused (a finished
   ``sorep.reference`` run on the same ``StructureData`` node, found by provenance); the reference work chain
   (``sorep.reference``) is run on the others. If the labelled set then lacks ``min_per_class`` materials of
   either class, more materials (in the same seeded random order) are labelled, batch by batch;
3. **Training** (``sorep.training``: CalcJob with ``training_code``, else in-process);
4. **Prediction** (``sorep.predict``) for every unlabelled material; predicted candidates go into a Group;
5. optional **verification** of the predicted candidates with the reference work chain.

Children run at most ``max_concurrent`` at a time. Materials whose single shot or reference fails are
left out (and reported), not fatal, as long as enough remain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_

from aiida_sorep.workflows.training import (
    DEFAULT_LABEL_KEY,
    TrainingWorkChain,
    extract_label,
    predict,
    predict_inputs,
    soap,
)

__all__ = (
    'FEATURE_KINDS',
    'ScreeningWorkChain',
    'find_reference_properties',
    'find_singleshot_features',
    'screening_summary',
)

FEATURE_KINDS = ('vbm', 'fermi', 'cbm', 'concatenated', 'soap')
"""Accepted ``feature_kind`` values (SOREP parameterizations of the single shot, or the SOAP baseline)."""


def find_reference_properties(structure: orm.StructureData) -> orm.Dict | None:
    """Return the ``properties`` of the latest successful ``sorep.reference`` run on this very node, if any."""
    builder = orm.QueryBuilder()
    builder.append(orm.StructureData, filters={'id': structure.pk}, tag='structure')
    builder.append(
        orm.WorkflowNode,
        with_incoming='structure',
        edge_filters={'label': 'structure'},
        filters={'process_type': 'aiida.workflows:sorep.reference', 'attributes.exit_status': 0},
        tag='reference',
        project=['id'],
    )
    builder.append(orm.Dict, with_incoming='reference', edge_filters={'label': 'properties'}, project=['*'])
    rows = sorted(builder.all(), key=lambda row: row[0])
    return rows[-1][1] if rows else None


def find_singleshot_features(structure: orm.StructureData, kind: str) -> orm.ArrayData | None:
    """Return the ``kind`` feature node of the latest successful ``sorep.singleshot`` CalcJob on this node, if any."""
    builder = orm.QueryBuilder()
    builder.append(orm.StructureData, filters={'id': structure.pk}, tag='structure')
    builder.append(
        orm.CalcJobNode,
        with_incoming='structure',
        filters={'process_type': 'aiida.calculations:sorep.singleshot', 'attributes.exit_status': 0},
        tag='calculation',
        project=['id'],
    )
    # orm.Data, not ArrayData: the plugin class SorepFeaturesData has its own node type, outside `data.core.array.`
    builder.append(orm.Data, with_incoming='calculation', edge_filters={'label': f'features__{kind}'}, project=['*'])
    rows = sorted(builder.all(), key=lambda row: row[0])
    return rows[-1][1] if rows else None


@calcfunction
def screening_summary(keys: orm.List, predictions: orm.Dict, label_key: orm.Str, **nodes: orm.Data) -> orm.Dict:
    """Table of the screening: one row per material (formula, role, reference label, prediction, probability).

    ``nodes``: ``s00000`` (structure), optionally ``l00000`` (training label) and ``v00000`` (verification label),
    indexed like ``keys``; ``predictions`` is the output of ``sorep.predict``; ``label_key`` the key of the label in a
    reference ``properties`` Dict.
    """
    label_key = label_key.value
    preds = predictions.get_dict()
    rows = []
    for i, key in enumerate(keys.get_list()):
        row: dict[str, Any] = {'key': key, 'formula': nodes[f's{i:05d}'].get_formula()}
        if f'l{i:05d}' in nodes:
            row.update(role='training', label=extract_label(nodes[f'l{i:05d}'], label_key))
        elif key in preds:
            row.update(role='screened', predicted=preds[key]['label'], probability=preds[key]['probability'])
            if f'v{i:05d}' in nodes:
                row['verified_label'] = extract_label(nodes[f'v{i:05d}'], label_key)
        else:
            row.update(role='failed')
        rows.append(row)
    screened = [r for r in rows if r['role'] == 'screened']
    verified = [r for r in screened if 'verified_label' in r]
    return orm.Dict(
        {
            'rows': rows,
            'n_materials': len(rows),
            'n_training': sum(r['role'] == 'training' for r in rows),
            'n_screened': len(screened),
            'n_candidates': sum(r['predicted'] == 1 for r in screened),
            'n_verified': len(verified),
            'n_verified_positive': sum(r['verified_label'] == 1 for r in verified),
        }
    )


class ScreeningWorkChain(WorkChain):
    """Single shot on all structures, reference on a seeded subset, train, predict the rest, group the candidates."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace('structures', valid_type=orm.StructureData, dynamic=True, help='Crystals, keyed.')
        spec.input('code', valid_type=orm.AbstractCode, help='The pw.x code (single shots and references).')
        spec.input('protocol', valid_type=orm.Str, default=lambda: orm.Str('fast'), help='Protocol of both children.')
        spec.input('singleshot_overrides', valid_type=orm.Dict, required=False, help='Single-shot protocol overrides.')
        spec.input('reference_overrides', valid_type=orm.Dict, required=False, help='Reference protocol overrides.')
        spec.input('feature_kind', valid_type=orm.Str, default=lambda: orm.Str('concatenated'))
        spec.input('label_key', valid_type=orm.Str, default=lambda: orm.Str(DEFAULT_LABEL_KEY))
        spec.input(
            'training_fraction',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.5),
            help='Fraction of the materials labelled with the reference work chain at first (seeded random choice).',
        )
        spec.input('min_per_class', valid_type=orm.Int, default=lambda: orm.Int(3), help='Labelled per class, min.')
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Seed of the choice and training.')
        spec.input('training_parameters', valid_type=orm.Dict, required=False, help='Of sorep.training.')
        spec.input('training_code', valid_type=orm.AbstractCode, required=False, help='Python code for the CalcJob.')
        spec.input('use_existing_labels', valid_type=orm.Bool, default=lambda: orm.Bool(True))
        spec.input('verify_candidates', valid_type=orm.Bool, default=lambda: orm.Bool(False))
        spec.input('max_concurrent', valid_type=orm.Int, default=lambda: orm.Int(2), help='Children at a time.')
        spec.input('candidates_group_label', valid_type=orm.Str, required=False, help='Default: from the pk.')
        spec.outline(
            cls.setup,
            while_(cls.features_pending)(cls.run_features, cls.inspect_features),
            cls.choose_training_set,
            while_(cls.labels_pending)(cls.run_references, cls.inspect_references),
            cls.train,
            cls.inspect_training,
            cls.predict,
            if_(cls.should_verify)(while_(cls.labels_pending)(cls.run_references, cls.inspect_references)),
            cls.results,
        )
        spec.expose_outputs(TrainingWorkChain, namespace='training')
        spec.output('predictions', valid_type=orm.Dict, required=False, help='{key: {label, probability}}.')
        spec.output('summary', valid_type=orm.Dict, help='One row per material and counts.')
        spec.output_namespace('features', valid_type=orm.ArrayData, dynamic=True, help='Feature node per material.')

        spec.exit_code(201, 'ERROR_INVALID_INPUTS', message='Invalid inputs: {message}')
        spec.exit_code(301, 'ERROR_ALL_FEATURES_FAILED', message='No material got features: every child failed.')
        spec.exit_code(302, 'ERROR_NOT_ENOUGH_LABELS', message='Not enough labelled materials: {message}')
        spec.exit_code(303, 'ERROR_TRAINING_FAILED', message='The training work chain failed: {message}')

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode | str,
        structures: orm.Group | Mapping[str, orm.StructureData],
        protocol: str = 'fast',
        **inputs: Any,
    ):
        """Builder for a Group (keys: ``<formula>-<pk>``) or a mapping of structures, with plain-Python inputs.

        ``inputs`` are the other inputs of the work chain as plain values (e.g. ``seed=1``, ``max_concurrent=2``,
        ``training_parameters={...}``), converted to nodes.
        """
        if isinstance(code, str):
            code = orm.load_code(code)
        if isinstance(structures, orm.Group):
            nodes = [node for node in structures.nodes if isinstance(node, orm.StructureData)]
            structures = {f'{node.get_formula()}_{node.pk}': node for node in nodes}
        builder = cls.get_builder()
        builder.code = code
        builder.structures = dict(structures)
        builder.protocol = orm.Str(protocol)
        converters = {str: orm.Str, bool: orm.Bool, int: orm.Int, float: orm.Float, dict: orm.Dict}
        for name, value in inputs.items():
            if isinstance(value, orm.Data):
                builder[name] = value
            else:
                builder[name] = converters[type(value)](value)
        return builder

    # -- setup and features ----------------------------------------------------------------------------------------

    def setup(self):
        """Validate the inputs and queue the feature calculations."""
        self.ctx.material_keys = sorted(self.inputs.structures)
        kind = self.inputs.feature_kind.value
        if not self.ctx.material_keys:
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message='no structures given (empty group?)')
        if kind not in FEATURE_KINDS:
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message=f'feature_kind {kind!r} not in {FEATURE_KINDS}')
        if not 0.0 < self.inputs.training_fraction.value <= 1.0:
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message='training_fraction must be in (0, 1]')
        if self.inputs.max_concurrent.value < 1:
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message='max_concurrent must be >= 1')
        self.ctx.features = {}
        self.ctx.labels = {}
        self.ctx.verified = {}
        self.ctx.failed = {}
        self.ctx.label_queue = []
        self.ctx.feature_queue = list(self.ctx.material_keys)
        self.ctx.running = {}
        return None

    def _launch(self, builder, key: str, kind: str, role: str):
        """Submit a child; ``kind`` (singleshot/reference) files it in ``ctx.running``, ``role`` names its link."""
        builder.metadata.call_link_label = f'{role}_{_link_safe(key)}'
        node = self.submit(builder)
        self.ctx.running[f'{kind}::{key}'] = node.pk
        self.report(f'launched {node.process_label}<{node.pk}> ({role}) for {key}')
        return node

    def features_pending(self):
        """Whether some structures still need features."""
        return bool(self.ctx.feature_queue)

    def run_features(self):
        """Single shots (or SOAP) for the next ``max_concurrent`` structures."""
        if self.inputs.feature_kind.value == 'soap':
            for key in self.ctx.feature_queue:
                self.ctx.features[key] = soap(self.inputs.structures[key])
            self.ctx.feature_queue = []
            return None
        from aiida_sorep.workflows.singleshot import SingleShotWorkChain

        batch = self.ctx.feature_queue[: self.inputs.max_concurrent.value]
        self.ctx.feature_queue = self.ctx.feature_queue[len(batch) :]
        overrides = self.inputs.singleshot_overrides.get_dict() if 'singleshot_overrides' in self.inputs else None
        children = {}
        for key in batch:
            try:
                builder = SingleShotWorkChain.get_builder_from_protocol(
                    self.inputs.code,
                    self.inputs.structures[key],
                    protocol=self.inputs.protocol.value,
                    overrides=overrides,
                )
                children[f'singleshot::{key}'] = self._launch(builder, key, 'singleshot', 'singleshot')
            except ValueError as exception:  # invalid inputs for this structure (e.g. too few atomic orbitals)
                self.ctx.failed[key] = f'single shot not launched: {exception}'
                self.report(f'{key}: {self.ctx.failed[key]}; left out')
        return ToContext(**_ctx_keys(children))

    def inspect_features(self):
        """Collect the feature node of each finished single shot; failed ones are left out."""
        kind = self.inputs.feature_kind.value
        for _, key, node in self._finished('singleshot'):
            if node.is_finished_ok and 'features' in node.outputs and kind in node.outputs.features:
                self.ctx.features[key] = node.outputs.features[kind]
            else:
                self.ctx.failed[key] = f'single shot <{node.pk}> failed ({node.exit_status})'
                self.report(f'{key}: {self.ctx.failed[key]}; left out')
        if not self.ctx.feature_queue and not self.ctx.features:
            return self.exit_codes.ERROR_ALL_FEATURES_FAILED
        return None

    def _finished(self, role: str):
        """Pop the finished children of ``role`` from ``ctx.running``: ``(ctx key, material key, node)``."""
        for name in [n for n in self.ctx.running if n.startswith(f'{role}::')]:
            key = name.split('::', 1)[1]
            node = self.ctx[_ctx_key(name)]
            del self.ctx.running[name]
            yield name, key, node

    # -- labels ------------------------------------------------------------------------------------------------------

    def choose_training_set(self):
        """Seeded random order of the materials with features; reuse existing labels; queue the first fraction."""
        candidates = [key for key in self.ctx.material_keys if key in self.ctx.features]
        rng = np.random.default_rng(self.inputs.seed.value)
        self.ctx.order = [candidates[i] for i in rng.permutation(len(candidates))]
        if self.inputs.use_existing_labels.value:
            for key in candidates:
                properties = find_reference_properties(self.inputs.structures[key])
                if properties is not None and self.inputs.label_key.value in properties.keys():
                    self.ctx.labels[key] = properties
                    self.report(f'{key}: reusing the label of an earlier reference run (properties <{properties.pk}>)')
        n_first = max(
            math.ceil(self.inputs.training_fraction.value * len(candidates)), 2 * self.inputs.min_per_class.value
        )
        self.ctx.label_queue = [key for key in self.ctx.order[:n_first] if key not in self.ctx.labels]
        self.ctx.label_role = 'reference'

    def labels_pending(self):
        """Whether references are queued; in the training phase, also whether a class is still too small."""
        if self.ctx.label_queue or any(name.startswith('reference::') for name in self.ctx.running):
            return True
        if self.ctx.label_role != 'reference':
            return False
        counts = self._class_counts()
        if min(counts) >= self.inputs.min_per_class.value:
            return False
        remaining = [key for key in self.ctx.order if key not in self.ctx.labels and key not in self.ctx.failed]
        if not remaining:
            return False
        batch = remaining[: self.inputs.max_concurrent.value]
        self.report(f'labelled set has {counts[0]} negatives and {counts[1]} positives: labelling {batch} as well')
        self.ctx.label_queue = batch
        return True

    def _class_counts(self) -> tuple[int, int]:
        labels = [extract_label(node, self.inputs.label_key.value) for node in self.ctx.labels.values()]
        return labels.count(0), labels.count(1)

    def run_references(self):
        """Reference work chains for the next ``max_concurrent`` queued materials."""
        from aiida_sorep.workflows.reference import ReferenceWorkChain

        batch = self.ctx.label_queue[: self.inputs.max_concurrent.value]
        self.ctx.label_queue = self.ctx.label_queue[len(batch) :]
        overrides = self.inputs.reference_overrides.get_dict() if 'reference_overrides' in self.inputs else None
        children = {}
        for key in batch:
            try:
                builder = ReferenceWorkChain.get_builder_from_protocol(
                    self.inputs.code,
                    self.inputs.structures[key],
                    protocol=self.inputs.protocol.value,
                    overrides=overrides,
                )
                children[f'reference::{key}'] = self._launch(builder, key, 'reference', self.ctx.label_role)
            except ValueError as exception:
                self.ctx.failed.setdefault(key, f'reference not launched: {exception}')
                self.report(f'{key}: reference not launched ({exception}); left out')
        return ToContext(**_ctx_keys(children))

    def inspect_references(self):
        """Store the ``properties`` of each finished reference (training labels or verification labels)."""
        target = self.ctx.labels if self.ctx.label_role == 'reference' else self.ctx.verified
        for _, key, node in self._finished('reference'):
            if node.is_finished_ok and 'properties' in node.outputs:
                target[key] = node.outputs.properties
            else:
                self.ctx.failed.setdefault(key, f'reference <{node.pk}> failed ({node.exit_status})')
                self.report(f'{key}: reference <{node.pk}> failed ({node.exit_status}); left out')

    # -- training and prediction ---------------------------------------------------------------------------------

    def train(self):
        """Train on the labelled materials (``sorep.training``)."""
        labelled = [key for key in self.ctx.material_keys if key in self.ctx.labels and key in self.ctx.features]
        label_key = self.inputs.label_key.value
        labels_of = np.array([extract_label(self.ctx.labels[key], label_key) for key in labelled], dtype=int)
        counts = self._class_counts()
        if min(counts) < self.inputs.min_per_class.value:
            return self.exit_codes.ERROR_NOT_ENOUGH_LABELS.format(
                message=f'{counts[0]} negatives and {counts[1]} positives after labelling every material that could '
                f'be labelled; need {self.inputs.min_per_class.value} of each'
            )
        parameters = self.inputs.training_parameters.get_dict() if 'training_parameters' in self.inputs else {}
        parameters.setdefault('random_state', self.inputs.seed.value)
        if 'n_splits' not in parameters and not _splittable(labels_of, parameters):
            self.report('too few labelled materials for held-out splits: training the final model only (n_splits=0)')
            parameters['n_splits'] = 0
        builder = TrainingWorkChain.get_builder()
        builder.features = {_link_safe(key): self.ctx.features[key] for key in labelled}
        builder.labels = {_link_safe(key): self.ctx.labels[key] for key in labelled}
        builder.label_key = self.inputs.label_key
        builder.parameters = orm.Dict(parameters)
        if 'training_code' in self.inputs:
            builder.code = self.inputs.training_code
        builder.metadata.call_link_label = 'training'
        node = self.submit(builder)
        self.report(f'launched TrainingWorkChain<{node.pk}> on {len(labelled)} labelled materials {counts}')
        return ToContext(training=node)

    def inspect_training(self):
        """Expose the training outputs."""
        node = self.ctx.training
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message=f'<{node.pk}> {node.exit_message}')
        self.out_many(self.exposed_outputs(node, TrainingWorkChain, namespace='training'))
        return None

    def predict(self):
        """Predict every unlabelled material with features; candidates into the output Group."""
        unlabelled = [key for key in self.ctx.material_keys if key in self.ctx.features and key not in self.ctx.labels]
        if not unlabelled:
            self.report('every material with features is labelled: nothing to predict')
            self.ctx.predictions = None
            return
        model = self.ctx.training.outputs.model
        predictions = predict(**predict_inputs(model, {key: self.ctx.features[key] for key in unlabelled}))
        self.ctx.predictions = predictions
        self.out('predictions', predictions)
        candidates = [key for key in unlabelled if predictions[key]['label'] == 1]
        label = self.inputs.get('candidates_group_label')
        label = label.value if label is not None else f'sorep/screening/{self.node.pk}/candidates'
        group, _ = orm.Group.collection.get_or_create(label)
        group.add_nodes([self.inputs.structures[key] for key in candidates])
        self.node.base.extras.set('candidates_group', group.label)
        self.report(f'{len(candidates)} predicted candidates out of {len(unlabelled)} into Group `{group.label}`')
        self.ctx.candidates = candidates

    def should_verify(self):
        """Whether to verify the predicted candidates with the reference work chain."""
        if not self.inputs.verify_candidates.value or not self.ctx.predictions:
            return False
        self.ctx.label_role = 'verification'
        self.ctx.label_queue = list(self.ctx.candidates)
        return bool(self.ctx.label_queue)

    def results(self):
        """Summary table and feature nodes."""
        inputs: dict[str, Any] = {
            'keys': orm.List(self.ctx.material_keys),
            'predictions': self.ctx.predictions if self.ctx.predictions is not None else orm.Dict({}),
            'label_key': self.inputs.label_key,
        }
        for i, key in enumerate(self.ctx.material_keys):
            inputs[f's{i:05d}'] = self.inputs.structures[key]
            if key in self.ctx.labels:
                inputs[f'l{i:05d}'] = self.ctx.labels[key]
            if key in self.ctx.verified:
                inputs[f'v{i:05d}'] = self.ctx.verified[key]
        summary = screening_summary(**inputs)
        self.out('summary', summary)
        self.out('features', {_link_safe(key): node for key, node in self.ctx.features.items()})
        self.report(
            f'{summary["n_training"]} training, {summary["n_screened"]} screened, {summary["n_candidates"]} '
            f'predicted candidates, {summary["n_verified_positive"]}/{summary["n_verified"]} verified'
        )


def _splittable(labels: np.ndarray, parameters: Mapping[str, Any]) -> bool:
    """Whether the default repeated stratified splits are possible on ``labels`` (each training part 2 per class)."""
    from aiida_sorep.core import training as core

    try:
        splits = core.stratified_splits(
            labels,
            test_size=parameters.get('test_size', 0.2),
            n_splits=parameters.get('n_splits', 5),
            random_state=parameters['random_state'],
        )
        core.check_splits_trainable(splits, labels)
    except ValueError:
        return False
    return True


def _link_safe(key: str) -> str:
    """A valid link label / namespace key for a material key."""
    safe = ''.join(c if c.isalnum() else '_' for c in key)
    return safe if safe[:1].isalpha() else f'm_{safe}'


def _ctx_key(name: str) -> str:
    return 'child_' + _link_safe(name)


def _ctx_keys(children: Mapping[str, Any]) -> dict[str, Any]:
    return {_ctx_key(name): node for name, node in children.items()}
