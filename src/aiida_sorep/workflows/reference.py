"""``sorep.reference``: SCF + seekpath band structure -> band gap, line effective masses and TCM label.

The work chain

1. standardises the input structure with seekpath (aiida-quantumespresso's ``seekpath_structure_analysis``
   calcfunction) and builds the high-symmetry path, unless explicit ``bands_kpoints`` are given;
2. checks that every line segment of the path has enough points for a second derivative (exit 203 otherwise,
   before any pw.x run);
3. runs aiida-quantumespresso's ``PwBandsWorkChain`` (SCF on a Monkhorst-Pack grid, then bands along the path)
   on the primitive cell;
4. runs the calcfunction :func:`compute_reference_properties`, which rebuilds the Fermi level from the SCF
   eigenvalues with :func:`aiida_sorep.core.fermi.find_fermi_level` (QE 6.7's own Fermi energy for cold smearing
   is not used), finds the band edges on the MP grid, computes the line effective masses along the path with the
   Fermi-Dirac weights centred on those MP-grid edges, and applies the TCM criteria.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.common.exceptions import NotExistent
from aiida.engine import ExitCode, ToContext, WorkChain, calcfunction, if_
from aiida.plugins import GroupFactory
from aiida_quantumespresso.calculations.functions.seekpath_structure_analysis import seekpath_structure_analysis
from aiida_quantumespresso.workflows.pw.bands import PwBandsWorkChain

from aiida_sorep.core.edges import find_band_edges
from aiida_sorep.core.effective_mass import (
    MIN_POINTS_PER_SEGMENT,
    LineSegment,
    line_effective_masses,
    segments_from_labels,
    segments_from_seekpath,
)
from aiida_sorep.core.fermi import find_fermi_level
from aiida_sorep.core.tcm import TcmThresholds, tcm_label
from aiida_sorep.workflows.protocols import SorepProtocolMixin

__all__ = ('ReferenceWorkChain', 'compute_reference_properties', 'query_reference_results', 'segments_of_path')

RY_TO_EV = 13.605693122994
"""eV per Rydberg (CODATA 2018), for QE's ``degauss``."""
DEFAULT_PSEUDO_FAMILY = 'PseudoDojo/0.4/PBE/SR/standard/upf'
CELL_TOLERANCE = 1e-5
"""Å; seekpath is said to have changed the cell if any lattice vector moved by more than this."""


def segments_of_path(kpoints: orm.KpointsData, seekpath_parameters: dict | None) -> list[LineSegment]:
    """Return the line segments of a band path.

    From seekpath's ``explicit_segments`` and ``path`` when available, else from the labels of ``kpoints`` (two
    labelled points at adjacent indices are a jump of the path, see
    :func:`~aiida_sorep.core.effective_mass.segments_from_labels`).
    """
    if seekpath_parameters and 'explicit_segments' in seekpath_parameters:
        return segments_from_seekpath(seekpath_parameters['explicit_segments'], seekpath_parameters['path'])
    return segments_from_labels(kpoints.labels or [], len(kpoints.get_kpoints()))


def _eigenvalues(bands: orm.BandsData) -> np.ndarray:
    """Eigenvalues in eV as ``(n_spins, n_kpoints, n_bands)``."""
    units = bands.base.attributes.get('units', 'eV')
    if units != 'eV':
        raise ValueError(f'expected band energies in eV, got `{units}`')
    array = np.asarray(bands.get_bands(), dtype=float)
    return array[np.newaxis] if array.ndim == 2 else array


@calcfunction
def compute_reference_properties(
    scf_bands: orm.BandsData,
    scf_parameters: orm.Dict,
    band_structure: orm.BandsData,
    settings: orm.Dict,
    seekpath_parameters: orm.Dict | None = None,
):
    """Fermi level, band edges, line effective masses and TCM label (thin wrapper of ``aiida_sorep.core``).

    :param scf_bands: eigenvalues (eV) and k-point weights of the SCF on the MP grid.
    :param scf_parameters: ``output_parameters`` of the SCF (``number_of_electrons``).
    :param band_structure: eigenvalues along the band path (cartesian k-points, 1/Å).
    :param settings: ``smearing``, ``degauss`` (Ry), ``temperature`` (K), ``edge_window`` (eV), ``tcm_thresholds``.
    :param seekpath_parameters: seekpath's parameters (``explicit_segments``, ``path``), if seekpath made the path.
    :return: ``{'properties': Dict}``, or exit code 401 if the analysis raised ``ValueError``.
    """
    options = settings.get_dict()
    try:
        eigenvalues = _eigenvalues(scf_bands)
        weights = np.asarray(scf_bands.get_array('weights'), dtype=float)
        weights = weights / weights.sum() * (2.0 if eigenvalues.shape[0] == 1 else 1.0)  # QE convention
        n_electrons = float(scf_parameters['number_of_electrons'])
        width = float(options['degauss']) * RY_TO_EV
        fermi = find_fermi_level(eigenvalues, weights, n_electrons, options['smearing'], width, midgap=True)
        edges = find_band_edges(eigenvalues, fermi.fermi_energy, is_gapped=fermi.is_gapped)

        path_eigenvalues = _eigenvalues(band_structure)
        kpoints = band_structure.get_kpoints(cartesian=True)
        parameters = seekpath_parameters.get_dict() if seekpath_parameters is not None else None
        segments = segments_of_path(band_structure, parameters)
        masses = line_effective_masses(
            kpoints,
            path_eigenvalues,
            segments,
            edges.vbm,
            edges.cbm,
            temperature=float(options['temperature']),
            edge_window=float(options['edge_window']),
        )
        thresholds = TcmThresholds(**options['tcm_thresholds'])
        label = tcm_label(
            edges.band_gap,
            masses.electron_mass,
            masses.hole_mass,
            is_metal=edges.is_metal,
            thresholds=thresholds,
        )
    except (ValueError, KeyError) as exception:
        return ExitCode(401, f'the analysis of the eigenvalues failed: {exception}')

    def per_segment(carrier) -> list[dict]:
        return [
            {
                'label': s.label,
                'mass': s.mass,
                'inverse_mass': s.inverse_mass,
                'edge_distance': s.edge_distance,
                'qualifies': s.qualifies,
                'n_points': s.n_points,
            }
            for s in carrier.segments
        ]

    properties = {
        'fermi_energy': fermi.fermi_energy,
        'fermi_method': fermi.method,
        'fermi_n_electrons_error': fermi.n_electrons_error,
        'n_electrons': n_electrons,
        'smearing': options['smearing'],
        'smearing_width': width,
        **edges.to_dict(),
        'is_direct_gap': edges.is_direct,
        'electron_mass': masses.electron_mass,
        'hole_mass': masses.hole_mass,
        'electron_mass_segment': masses.electron.segment,
        'hole_mass_segment': masses.hole.segment,
        'electron_average_mass': masses.electron.average_mass,
        'hole_average_mass': masses.hole.average_mass,
        'electron_masses': per_segment(masses.electron),
        'hole_masses': per_segment(masses.hole),
        'segments': [[s.start, s.stop, s.start_label, s.stop_label] for s in segments],
        'mass_edges': {
            'source': 'scf_mp_grid',
            'vbm': edges.vbm,
            'cbm': edges.cbm,
            'path_vbm': masses.hole.path_edge_energy,
            'path_cbm': masses.electron.path_edge_energy,
        },
        'mass_temperature': masses.temperature,
        'mass_edge_window': masses.edge_window,
        'is_tcm_candidate': label.is_candidate,
        'tcm': {'n_type': label.n_type, 'p_type': label.p_type, 'reason': label.reason},
        'tcm_thresholds': thresholds.to_dict(),
        'units': {'energy': 'eV', 'mass': 'm_e', 'temperature': 'K'},
    }
    return {'properties': orm.Dict(properties)}


def validate_inputs(inputs, _):
    """Validate the top-level inputs."""
    if 'bands_kpoints' in inputs and 'bands_kpoints_distance' in inputs:
        return 'specify either `bands_kpoints` or `bands_kpoints_distance`, not both.'
    if 'tcm_thresholds' not in inputs:
        return None
    try:
        TcmThresholds(**inputs['tcm_thresholds'].get_dict())
    except (TypeError, ValueError) as exception:
        return f'invalid `tcm_thresholds`: {exception}'
    return None


def _positive(node, _):
    if node.value <= 0:
        return f'must be > 0, got {node.value}'
    return None


class ReferenceWorkChain(SorepProtocolMixin, WorkChain):
    """Reference labels of a crystal: Fermi level, band edges and gap on the MP grid, line effective masses, TCM."""

    _protocol_file = 'reference.yaml'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.expose_inputs(
            PwBandsWorkChain,
            namespace='pw_bands',
            exclude=('structure', 'bands_kpoints', 'bands_kpoints_distance', 'clean_workdir'),
            namespace_options={'help': 'Inputs of the `PwBandsWorkChain` (SCF + bands) run on the primitive cell.'},
        )
        spec.input('structure', valid_type=orm.StructureData, help='The input crystal structure.')
        spec.input(
            'bands_kpoints_distance',
            valid_type=orm.Float,
            required=False,
            validator=_positive,
            help='Distance (1/Å) between points of the seekpath band path. Mutually exclusive with `bands_kpoints`.',
        )
        spec.input(
            'bands_kpoints',
            valid_type=orm.KpointsData,
            required=False,
            help='Explicit band path with labels, for the cell of `structure` (no seekpath standardisation).',
        )
        spec.input(
            'temperature',
            valid_type=orm.Float,
            default=lambda: orm.Float(300.0),
            validator=_positive,
            help='Temperature (K) of the Fermi-Dirac weights of the effective masses.',
        )
        spec.input(
            'edge_window',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.1),
            help='eV; segments whose carriers come within this window of the band extremum on the path qualify for '
            'the overall mass.',
        )
        spec.input(
            'tcm_thresholds',
            valid_type=orm.Dict,
            default=lambda: orm.Dict(TcmThresholds().to_dict()),
            help='TCM criteria: `min_band_gap` (eV), `max_electron_mass` and `min_hole_mass` (m_e).',
        )
        spec.input(
            'clean_workdir',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='If `True`, clean the remote folders of all calculations at the end.',
        )
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            if_(cls.should_run_seekpath)(cls.run_seekpath),
            cls.validate_band_path,
            cls.run_bands,
            cls.inspect_bands,
            cls.analyse,
            cls.results,
        )

        spec.output('properties', valid_type=orm.Dict, help='Fermi level, edges, gap, masses, TCM label (eV, m_e).')
        spec.output('band_structure', valid_type=orm.BandsData, help='Eigenvalues along the band path.')
        spec.output('scf_bands', valid_type=orm.BandsData, help='Eigenvalues and weights on the SCF MP grid.')
        spec.output('primitive_structure', valid_type=orm.StructureData, help='The structure the bands were run on.')
        spec.output(
            'seekpath_parameters', valid_type=orm.Dict, required=False, help='seekpath output (path, segments, ...).'
        )
        spec.output(
            'cell_info',
            valid_type=orm.Dict,
            help='`seekpath_changed_cell` and the number of sites before and after standardisation.',
        )

        spec.exit_code(
            203,
            'ERROR_BAND_PATH_TOO_SPARSE',
            message='The band path has segments with fewer than 3 points ({segments}): lower `bands_kpoints_distance` '
            'or give a denser `bands_kpoints`.',
        )
        spec.exit_code(204, 'ERROR_INVALID_BAND_PATH', message='The band path has no usable line segments: {message}')
        spec.exit_code(
            301,
            'ERROR_SUB_PROCESS_FAILED_BANDS',
            message='The PwBandsWorkChain failed with exit status {exit_status}.',
        )
        spec.exit_code(
            302,
            'ERROR_SUB_PROCESS_MISSING_SCF',
            message='The PwBandsWorkChain finished but its SCF `output_band` could not be found.',
        )
        spec.exit_code(401, 'ERROR_ANALYSIS_FAILED', message='The analysis of the eigenvalues failed: {message}')

    @classmethod
    def get_builder_from_protocol(
        cls,
        code,
        structure,
        protocol=None,
        overrides=None,
        pseudo_family=DEFAULT_PSEUDO_FAMILY,
        options=None,
        **kwargs,
    ):
        """Return a builder prepopulated with inputs of a protocol (``fast``, ``balanced``, ``stringent``).

        :param code: a ``quantumespresso.pw`` code (or its label).
        :param structure: the ``StructureData``.
        :param protocol: protocol name; default ``balanced``.
        :param overrides: deep-merged over the protocol; ``pw_bands`` holds ``PwBandsWorkChain`` overrides.
        :param pseudo_family: label of an installed ``pseudo.family.cutoffs`` family; its recommended cutoffs at the
            protocol's ``cutoff_stringency`` are set as ``ecutwfc``/``ecutrho`` (Ry) unless overridden.
        :param options: ``metadata.options`` for both pw.x runs, e.g. ``{'withmpi': True, 'resources': ...}``.
        :param kwargs: passed to ``PwBandsWorkChain.get_builder_from_protocol`` (e.g. ``spin_type``).
        """
        from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

        if isinstance(code, str):
            code = orm.load_code(code)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        stringency = inputs.pop('cutoff_stringency')
        family_cls = GroupFactory('pseudo.family.cutoffs')
        try:
            family = family_cls.collection.get(label=pseudo_family)
        except NotExistent as exception:
            raise ValueError(
                f'pseudo family `{pseudo_family}` of type `pseudo.family.cutoffs` is not installed: run '
                '`aiida-sorep setup` (or `aiida_sorep.install.pseudos.install_family`).'
            ) from exception
        ecutwfc, ecutrho = family.get_recommended_cutoffs(structure=structure, stringency=stringency, unit='Ry')

        common = {
            'pseudo_family': pseudo_family,
            'pw': {'parameters': {'SYSTEM': {'ecutwfc': ecutwfc, 'ecutrho': ecutrho}}},
        }
        pw_bands_overrides = inputs.get('pw_bands', {})
        for namespace in ('scf', 'bands'):
            pw_bands_overrides[namespace] = recursive_merge(common, pw_bands_overrides.get(namespace, {}))

        sub = PwBandsWorkChain.get_builder_from_protocol(
            code, structure, protocol=protocol, overrides=pw_bands_overrides, options=options, **kwargs
        )
        for key in ('structure', 'bands_kpoints', 'bands_kpoints_distance', 'clean_workdir'):
            sub.pop(key, None)

        builder = cls.get_builder()
        builder.structure = structure
        builder.pw_bands = sub
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        builder.temperature = orm.Float(inputs['temperature'])
        builder.edge_window = orm.Float(inputs['edge_window'])
        builder.tcm_thresholds = orm.Dict(inputs['tcm_thresholds'])
        if 'bands_kpoints' in inputs:
            builder.bands_kpoints = inputs['bands_kpoints']
        else:
            builder.bands_kpoints_distance = orm.Float(inputs['bands_kpoints_distance'])
        return builder

    def setup(self):
        """Start from the input structure and path."""
        self.ctx.structure = self.inputs.structure
        self.ctx.bands_kpoints = self.inputs.get('bands_kpoints')
        self.ctx.seekpath_parameters = None

    def should_run_seekpath(self):
        """Run seekpath unless an explicit path is given."""
        return 'bands_kpoints' not in self.inputs

    def run_seekpath(self):
        """Standardise the cell and build the high-symmetry path with seekpath."""
        kwargs = {'metadata': {'call_link_label': 'seekpath'}}
        if 'bands_kpoints_distance' in self.inputs:
            kwargs['reference_distance'] = self.inputs.bands_kpoints_distance
        result = seekpath_structure_analysis(self.inputs.structure, **kwargs)
        self.ctx.structure = result['primitive_structure']
        self.ctx.bands_kpoints = result['explicit_kpoints']
        self.ctx.seekpath_parameters = result['parameters']
        self.out('seekpath_parameters', result['parameters'])

    def validate_band_path(self):
        """Check that every segment has at least three points (before running pw.x)."""
        parameters = self.ctx.seekpath_parameters.get_dict() if self.ctx.seekpath_parameters is not None else None
        try:
            segments = segments_of_path(self.ctx.bands_kpoints, parameters)
        except ValueError as exception:
            return self.exit_codes.ERROR_INVALID_BAND_PATH.format(message=str(exception))
        sparse = [f'{s.label}: {s.n_points}' for s in segments if s.n_points < MIN_POINTS_PER_SEGMENT]
        if sparse:
            return self.exit_codes.ERROR_BAND_PATH_TOO_SPARSE.format(segments=', '.join(sparse))
        self.report(f'band path: {len(segments)} segments, {len(self.ctx.bands_kpoints.get_kpoints())} k-points')
        return None

    def run_bands(self):
        """Run the ``PwBandsWorkChain`` on the (primitive) structure with the explicit path."""
        inputs = AttributeDict(self.exposed_inputs(PwBandsWorkChain, namespace='pw_bands'))
        inputs.structure = self.ctx.structure
        inputs.bands_kpoints = self.ctx.bands_kpoints
        inputs.clean_workdir = orm.Bool(False)  # cleaned by this work chain, after the analysis
        inputs.metadata.call_link_label = 'pw_bands'
        running = self.submit(PwBandsWorkChain, **inputs)
        self.report(f'launching PwBandsWorkChain<{running.pk}>')
        return ToContext(workchain_bands=running)

    def inspect_bands(self):
        """Check the ``PwBandsWorkChain`` and find the SCF eigenvalues on the MP grid."""
        workchain = self.ctx.workchain_bands
        if not workchain.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_BANDS.format(exit_status=workchain.exit_status)
        scf = [
            link.node
            for link in workchain.base.links.get_outgoing(link_label_filter='scf').all()
            if isinstance(link.node, orm.WorkflowNode)
        ]
        if len(scf) != 1 or 'output_band' not in scf[0].outputs:
            return self.exit_codes.ERROR_SUB_PROCESS_MISSING_SCF
        self.ctx.scf = scf[0]
        return None

    def analyse(self):
        """Rebuild the Fermi level and edges, compute the masses and the TCM label (calcfunction)."""
        scf = self.ctx.scf
        system = scf.inputs.pw.parameters.get_dict().get('SYSTEM', {})
        occupations = system.get('occupations', 'fixed')
        settings = {
            'smearing': system.get('smearing', 'gaussian') if occupations == 'smearing' else 'fixed',
            'degauss': float(system.get('degauss', 0.0)) if occupations == 'smearing' else 0.0,
            'temperature': self.inputs.temperature.value,
            'edge_window': self.inputs.edge_window.value,
            'tcm_thresholds': self.inputs.tcm_thresholds.get_dict(),
        }
        kwargs = {
            'scf_bands': scf.outputs.output_band,
            'scf_parameters': scf.outputs.output_parameters,
            'band_structure': self.ctx.workchain_bands.outputs.band_structure,
            'settings': orm.Dict(settings),
            'metadata': {'call_link_label': 'analysis'},
        }
        if self.ctx.seekpath_parameters is not None:
            kwargs['seekpath_parameters'] = self.ctx.seekpath_parameters
        results, node = compute_reference_properties.run_get_node(**kwargs)
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(message=node.exit_message)
        self.ctx.properties = results['properties']
        properties = results['properties'].get_dict()
        if properties['is_metal']:
            self.report('metal: effective masses are undefined and the TCM label is False')
        else:
            self.report(
                f'gap {properties["band_gap"]:.3f} eV, m_e* = {properties["electron_mass"]:.3f}, '
                f'm_h* = {properties["hole_mass"]:.3f}, TCM candidate: {properties["is_tcm_candidate"]}'
            )
        return None

    def results(self):
        """Attach the outputs."""
        info = compare_cells(self.inputs.structure, self.ctx.structure, metadata={'call_link_label': 'cell_info'})
        self.out('cell_info', info)
        self.out('properties', self.ctx.properties)
        self.out('band_structure', self.ctx.workchain_bands.outputs.band_structure)
        self.out('scf_bands', self.ctx.scf.outputs.output_band)
        self.out('primitive_structure', self.ctx.structure)

    def on_terminated(self):
        """Clean the remote folders of the calculations if ``clean_workdir`` is set."""
        super().on_terminated()
        if not self.inputs.clean_workdir.value:
            return
        cleaned = []
        for descendant in self.node.called_descendants:
            if isinstance(descendant, orm.CalcJobNode):
                try:
                    descendant.outputs.remote_folder._clean()
                    cleaned.append(descendant.pk)
                except (OSError, KeyError):
                    pass
        if cleaned:
            self.report(f'cleaned remote folders of calculations: {" ".join(map(str, cleaned))}')


@calcfunction
def compare_cells(original: orm.StructureData, primitive: orm.StructureData) -> orm.Dict:
    """Record whether seekpath changed the cell (same node twice when no seekpath was run)."""
    changed = len(original.sites) != len(primitive.sites) or not np.allclose(
        original.cell, primitive.cell, atol=CELL_TOLERANCE
    )
    return orm.Dict(
        {
            'seekpath_changed_cell': bool(changed),
            'n_sites_input': len(original.sites),
            'n_sites_primitive': len(primitive.sites),
            'input_cell': original.cell,
            'primitive_cell': primitive.cell,
        }
    )


def query_reference_results() -> list[dict]:
    """Return one row per successful ``sorep.reference`` run in the loaded profile.

    Each row: ``pk``, ``formula`` (of the input structure), ``band_gap`` (eV), ``electron_mass`` and ``hole_mass``
    (m_e, ``None`` for metals) and ``is_tcm_candidate``, sorted by ``pk``.
    """
    builder = orm.QueryBuilder()
    builder.append(
        orm.WorkflowNode,
        filters={'process_type': 'aiida.workflows:sorep.reference', 'attributes.exit_status': 0},
        project=['id'],
        tag='reference',
    )
    builder.append(orm.StructureData, with_outgoing='reference', edge_filters={'label': 'structure'}, project=['*'])
    keys = ('band_gap', 'electron_mass', 'hole_mass', 'is_tcm_candidate')
    builder.append(
        orm.Dict,
        with_incoming='reference',
        edge_filters={'label': 'properties'},
        project=[f'attributes.{key}' for key in keys],
    )
    rows = []
    for pk, structure, gap, electron_mass, hole_mass, label in builder.all():
        rows.append(
            {
                'pk': pk,
                'formula': structure.get_formula(),
                'band_gap': gap,
                'electron_mass': electron_mass,
                'hole_mass': hole_mass,
                'is_tcm_candidate': bool(label),  # SQLite's JSON gives 0/1
            }
        )
    return sorted(rows, key=lambda row: row['pk'])
