"""``SingleShotWorkChain`` (``sorep.singleshot``): a ``SingleShotCalculation`` with protocols and restarts.

The work chain builds the k-point mesh from a spacing, runs :class:`~aiida_sorep.calculations.singleshot.
SingleShotCalculation` and restarts it only for failures that a restart can fix:

* out of walltime (pw.x's own ``max_seconds`` stop, exit 400; the scheduler's kill, exit 120; or a kill before the
  files were written, exit 340): rerun from scratch with twice the walltime (a single shot has no state to continue);
* node failure (exit 140): rerun unchanged.

It deliberately does not reuse ``PwBaseWorkChain``: that work chain's ``sanity_check_insufficient_bands`` would raise
``nbnd`` and mix random wavefunctions into the atomic-orbital subspace, which defeats the single shot.
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common import AttributeDict, exceptions
from aiida.common.lang import type_check
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from aiida.plugins import GroupFactory
from aiida_quantumespresso.calculations.functions.create_kpoints_from_distance import create_kpoints_from_distance

from aiida_sorep.calculations.singleshot import SingleShotCalculation
from aiida_sorep.workflows.protocols import SorepProtocolMixin, recursive_merge

__all__ = ('SingleShotWorkChain',)

DEFAULT_PSEUDO_FAMILY = 'PseudoDojo/0.4/PBE/SR/standard/upf'
WALLTIME_FACTOR = 2.0
"""Factor applied to ``max_wallclock_seconds`` (and ``CONTROL.max_seconds`` if set) after a walltime failure."""


class SingleShotWorkChain(SorepProtocolMixin, BaseRestartWorkChain):
    """Run a pw.x single shot with automated restarts; exposes the eigenvalues, Fermi level, edges and features."""

    _process_class = SingleShotCalculation
    _protocol_file = 'singleshot.yaml'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.expose_inputs(SingleShotCalculation, namespace='singleshot', exclude=('kpoints',))
        spec.input(
            'kpoints',
            valid_type=orm.KpointsData,
            required=False,
            help='An explicit k-point mesh or list. Either this or `kpoints_distance` is required.',
        )
        spec.input(
            'kpoints_distance',
            valid_type=orm.Float,
            required=False,
            help='Largest spacing in 1/Å between k-points of the mesh built for the structure (0.15 in the paper).',
        )
        spec.input(
            'kpoints_force_parity',
            valid_type=orm.Bool,
            required=False,
            help='Force an even number of k-points along each periodic direction when building the mesh.',
        )
        spec.outline(
            cls.setup,
            cls.validate_kpoints,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )
        spec.expose_outputs(SingleShotCalculation)
        # A calculation resumed after its daemon worker died can finish OK without the `remote_folder` link (it is
        # attached on submission): the science outputs are complete, so the work chain must not fail with exit 11.
        spec.outputs['remote_folder'].required = False
        spec.exit_code(
            202,
            'ERROR_INVALID_INPUT_KPOINTS',
            message='Neither the `kpoints` nor the `kpoints_distance` input was specified.',
        )
        spec.exit_code(
            720,
            'WARNING_RANDOM_WAVEFUNCTIONS',
            message='The single shot padded the atomic subspace with random wavefunctions, as explicitly allowed.',
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode | str,
        structure: orm.StructureData,
        protocol: str | None = None,
        overrides: dict[str, Any] | None = None,
        pseudo_family: str = DEFAULT_PSEUDO_FAMILY,
        options: dict[str, Any] | None = None,
        **_: Any,
    ):
        """Return a builder prepopulated with the inputs of a protocol.

        :param code: the ``pw.x`` code (``Code`` or label).
        :param structure: the crystal.
        :param protocol: ``fast``, ``balanced`` (default) or ``stringent`` (see :class:`SingleShotProtocol`).
        :param overrides: inputs deep-merged on top of the protocol, with the nesting of this work chain's inputs
            (plus ``pseudo_family`` and ``cutoff_stringency``).
        :param pseudo_family: label of an installed ``pseudo.family.cutoffs`` family whose pseudos ship the atomic
            wavefunctions; a ``pseudo_family`` key in ``overrides`` takes precedence.
        :param options: ``metadata.options`` of the ``SingleShotCalculation`` (e.g. ``resources``, ``withmpi``).
        :raises ValueError: unknown protocol, family not installed, an element missing from the family.
        """
        from aiida_sorep.common.types import SingleShotProtocol

        if isinstance(code, str):
            code = orm.load_code(code)
        type_check(code, orm.AbstractCode)
        type_check(structure, orm.StructureData)
        if protocol is not None:
            protocol = SingleShotProtocol(protocol).value

        inputs = cls.get_protocol_inputs(protocol, overrides)
        protocol_family = inputs.pop('pseudo_family', DEFAULT_PSEUDO_FAMILY)
        family_label = (overrides or {}).get('pseudo_family', pseudo_family or protocol_family)
        stringency = inputs.pop('cutoff_stringency', None)
        parameters = inputs['singleshot']['parameters']

        try:
            family = GroupFactory('pseudo.family').collection.get(label=family_label)
        except exceptions.NotExistent as exception:
            raise ValueError(
                f'pseudo family `{family_label}` is not installed: run `aiida-sorep setup` (or `aiida-pseudo install`).'
            ) from exception
        missing = sorted({kind.symbol for kind in structure.kinds} - set(family.elements))
        if missing:
            raise ValueError(
                f'pseudo family `{family_label}` has no pseudopotential for element(s) {", ".join(missing)}'
            )
        pseudos = family.get_pseudos(structure=structure)

        system = parameters.setdefault('SYSTEM', {})
        if not all(key in system for key in ('ecutwfc', 'ecutrho')):
            if not hasattr(family, 'get_recommended_cutoffs'):
                raise ValueError(
                    f'pseudo family `{family_label}` has no recommended cutoffs: set `ecutwfc` and `ecutrho`'
                )
            ecutwfc, ecutrho = family.get_recommended_cutoffs(structure=structure, stringency=stringency, unit='Ry')
            system.setdefault('ecutwfc', ecutwfc)
            system.setdefault('ecutrho', ecutrho)

        metadata = inputs['singleshot'].get('metadata', {})
        if options:
            metadata['options'] = recursive_merge(metadata.get('options', {}), options)
        metadata['options'] = cls.set_default_resources(metadata.get('options', {}), code.computer.scheduler_type)

        builder = cls.get_builder()
        builder.singleshot.code = code
        builder.singleshot.structure = structure
        builder.singleshot.pseudos = pseudos
        builder.singleshot.parameters = orm.Dict(parameters)
        builder.singleshot.metadata = metadata
        builder.singleshot.allow_random_wavefunctions = orm.Bool(inputs['singleshot'].get('allow_random_wavefunctions'))
        for key in ('settings', 'sorep_parameters', 'parallelization'):
            if inputs['singleshot'].get(key):
                builder.singleshot[key] = orm.Dict(inputs['singleshot'][key])
        if 'kpoints' in inputs:
            builder.kpoints = inputs['kpoints']
        else:
            builder.kpoints_distance = orm.Float(inputs['kpoints_distance'])
        builder.kpoints_force_parity = orm.Bool(inputs['kpoints_force_parity'])
        builder.max_iterations = orm.Int(inputs['max_iterations'])
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        return builder

    def setup(self):
        """Store the ``SingleShotCalculation`` inputs in ``self.ctx.inputs`` for the restart loop."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(SingleShotCalculation, 'singleshot'))

    def validate_kpoints(self):
        """Use the explicit ``kpoints`` or build a mesh from ``kpoints_distance`` (a calcfunction, for provenance)."""
        if 'kpoints' in self.inputs:
            self.ctx.inputs.kpoints = self.inputs.kpoints
            return None
        if 'kpoints_distance' not in self.inputs:
            return self.exit_codes.ERROR_INVALID_INPUT_KPOINTS
        self.ctx.inputs.kpoints = create_kpoints_from_distance(
            structure=self.inputs.singleshot.structure,
            distance=self.inputs.kpoints_distance,
            force_parity=self.inputs.get('kpoints_force_parity', orm.Bool(False)),
            metadata={'call_link_label': 'create_kpoints_from_distance'},
        )
        return None

    def report_error_handled(self, calculation, action: str) -> None:
        """Report which failure of ``calculation`` was handled and how."""
        self.report(
            f'{calculation.process_label}<{calculation.pk}> failed with exit status {calculation.exit_status} '
            f'({calculation.exit_message}); action taken: {action}'
        )

    @process_handler(
        priority=600,
        exit_codes=[
            SingleShotCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
            SingleShotCalculation.exit_codes.ERROR_OUT_OF_WALLTIME_INTERRUPTED,
            SingleShotCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        ],
    )
    def handle_out_of_walltime(self, calculation):
        """Rerun from scratch with ``WALLTIME_FACTOR`` times the walltime (and ``max_seconds``, if it was set)."""
        options = dict(self.ctx.inputs.metadata.get('options', {}))
        walltime = options.get('max_wallclock_seconds') or calculation.get_option('max_wallclock_seconds')
        if walltime:
            options['max_wallclock_seconds'] = int(walltime * WALLTIME_FACTOR)
        self.ctx.inputs.metadata['options'] = options
        parameters = self.ctx.inputs.parameters.get_dict()
        max_seconds = parameters.get('CONTROL', {}).get('max_seconds')
        if max_seconds:
            parameters['CONTROL']['max_seconds'] = int(max_seconds * WALLTIME_FACTOR)
            self.ctx.inputs.parameters = orm.Dict(parameters)
        self.report_error_handled(
            calculation, f'rerunning from scratch with max_wallclock_seconds={options.get("max_wallclock_seconds")}'
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=590, exit_codes=[SingleShotCalculation.exit_codes.ERROR_SCHEDULER_NODE_FAILURE])
    def handle_node_failure(self, calculation):
        """A node failure is transient: rerun the same calculation."""
        self.report_error_handled(calculation, 'rerunning unchanged')
        return ProcessHandlerReport(True)

    @process_handler(priority=100, exit_codes=[SingleShotCalculation.exit_codes.WARNING_RANDOM_WAVEFUNCTIONS])
    def handle_random_wavefunctions(self, calculation):
        """Finish with the outputs attached and the warning exit code: padding was an explicit user choice."""
        self.report(f'{calculation.process_label}<{calculation.pk}>: {calculation.exit_message}')
        self.ctx.is_finished = True
        self.results()
        return ProcessHandlerReport(True, self.exit_codes.WARNING_RANDOM_WAVEFUNCTIONS)
