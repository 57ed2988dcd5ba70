"""``sorep.kinetic``: kinetic SOREPs of many structures (a Group or a namespace) in checkpointed chunks.

Each structure goes through the ``sorep.kinetic.features`` calcfunction (a thin wrapper of
:func:`aiida_sorep.core.kinetic.kinetic_sorep`, 0.1-2 s per structure). The WorkChain runs ``chunk_size`` of
them per step, so a daemon worker is never held for more than one chunk and a restarted daemon resumes after
the last finished chunk. Optionally it ends with the ``sorep.similarity`` calcfunction (cosine distances,
DBSCAN labels) over all the features it made.
"""

from __future__ import annotations

from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import WorkChain, while_

from aiida_sorep.calculations.kinetic import cluster_features, kinetic_features, parse_kinetic_parameters
from aiida_sorep.data.features import SorepFeaturesData

__all__ = ('KineticSorepWorkChain',)


def _validate_parameters(value: orm.Dict | None, _: object) -> str | None:
    if value is None:
        return None
    try:
        parse_kinetic_parameters(value.get_dict())
    except ValueError as exception:
        return str(exception)
    return None


def _validate_inputs(inputs: dict, _: object) -> str | None:
    if 'group' not in inputs and not inputs.get('structures'):
        return 'give either `group` (label of a Group of StructureData) or at least one entry in `structures`'
    return None


class KineticSorepWorkChain(WorkChain):
    """Kinetic SOREP features for every structure of a Group and/or the ``structures`` namespace."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('group', valid_type=orm.Str, required=False, help='Label of a Group of StructureData.')
        spec.input_namespace('structures', valid_type=orm.StructureData, dynamic=True, required=False)
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=_validate_parameters,
            help='Overrides of DEFAULT_KINETIC_PARAMETERS (kspacing in 1/Å, energies and width in eV, ...).',
        )
        spec.input('chunk_size', valid_type=orm.Int, default=lambda: orm.Int(20), help='Structures per step.')
        spec.input('eps', valid_type=orm.Float, required=False, help='If given, cluster the features (DBSCAN eps).')
        spec.input(
            'output_group',
            valid_type=orm.Str,
            required=False,
            help='Label of a Group (created if missing) to which every feature node is added.',
        )
        spec.inputs.validator = _validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.has_pending)(cls.run_chunk),
            cls.cluster,
            cls.finalize,
        )
        spec.output_namespace('features', valid_type=SorepFeaturesData, dynamic=True)
        spec.output('clusters', valid_type=orm.Dict, required=False)
        spec.output('distances', valid_type=orm.ArrayData, required=False)
        spec.exit_code(201, 'ERROR_GROUP_NOT_FOUND', message='no Group with label `{label}`')
        spec.exit_code(202, 'ERROR_NO_STRUCTURES', message='the Group and the namespace hold no StructureData')
        spec.exit_code(301, 'ERROR_SOME_STRUCTURES_FAILED', message='{n_failed} structure(s) failed: {failed}')

    def setup(self):
        """Collect the structures (pk keyed by a link label) and the parameters."""
        pending = {f'structure_{node.pk}': node.pk for node in self.inputs.get('structures', {}).values()}
        if 'group' in self.inputs:
            try:
                group = orm.load_group(label=self.inputs.group.value)
            except NotExistent:
                return self.exit_codes.ERROR_GROUP_NOT_FOUND.format(label=self.inputs.group.value)
            for node in group.nodes:
                if isinstance(node, orm.StructureData):
                    pending[f'structure_{node.pk}'] = node.pk
        if not pending:
            return self.exit_codes.ERROR_NO_STRUCTURES
        self.ctx.pending = sorted(pending.items())
        self.ctx.done = {}
        self.ctx.failed = []
        parameters = self.inputs.get('parameters')
        self.ctx.parameters = orm.Dict(parse_kinetic_parameters(parameters.get_dict() if parameters else None))
        self.report(f'{len(self.ctx.pending)} structures, chunks of {self.inputs.chunk_size.value}')
        return None

    def has_pending(self):
        """Whether structures are left."""
        return bool(self.ctx.pending)

    def run_chunk(self):
        """Featurize the next chunk; the step boundary is the checkpoint."""
        chunk = self.ctx.pending[: self.inputs.chunk_size.value]
        self.ctx.pending = self.ctx.pending[len(chunk) :]
        for key, pk in chunk:
            try:
                features = kinetic_features(orm.load_node(pk), self.ctx.parameters)
            except Exception as exception:
                self.report(f'{key} (pk {pk}) failed: {exception}')
                self.ctx.failed.append(key)
                continue
            self.out(f'features.{key}', features)
            self.ctx.done[key] = features.pk
        self.report(f'{len(self.ctx.done)} done, {len(self.ctx.pending)} pending, {len(self.ctx.failed)} failed')

    def cluster(self):
        """Cosine distances and DBSCAN labels over all features, if ``eps`` was given."""
        if 'eps' not in self.inputs or len(self.ctx.done) < 1:
            return
        nodes = {key: orm.load_node(pk) for key, pk in self.ctx.done.items()}
        result = cluster_features(eps=self.inputs.eps, **nodes)
        self.out('clusters', result['clusters'])
        self.out('distances', result['distances'])

    def finalize(self):
        """Add the features to ``output_group`` and report failures."""
        if 'output_group' in self.inputs:
            group, _ = orm.Group.collection.get_or_create(label=self.inputs.output_group.value)
            group.add_nodes([orm.load_node(pk) for pk in self.ctx.done.values()])
        if self.ctx.failed:
            return self.exit_codes.ERROR_SOME_STRUCTURES_FAILED.format(
                n_failed=len(self.ctx.failed), failed=', '.join(self.ctx.failed)
            )
        return None
