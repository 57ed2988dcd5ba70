"""``SingleShotCalculation`` (``sorep.singleshot``): one pw.x diagonalization in the pseudo-atomic subspace.

A *single shot* is pw.x run with ``startingpot='atomic'`` (the superposition of atomic charge
densities), ``startingwfc='atomic'``, ``electron_maxstep=0`` and ``nbnd`` equal to the number of
pseudo-atomic wavefunctions (``natomwfc``). pw.x then diagonalizes H[rho_atomic] in the subspace of
the atomic orbitals once, at every k-point, and stops: those eigenvalues are the single-shot band
structure. The stock pw.x writes them to ``data-file-schema.xml`` and exits with status 2 ("convergence
NOT achieved after 0 iterations"); the patched pw.x of ``qe/`` exits 0 with a valid Fermi level.

The CalcJob is a thin subclass of aiida-quantumespresso's ``PwCalculation``: it reuses its input file
generation and only fixes the single-shot keys, computes ``nbnd`` and validates the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiida import orm
from aiida_quantumespresso.calculations.pw import PwCalculation

from aiida_sorep.core.smearing import Smearing
from aiida_sorep.core.upf import count_atomic_wavefunctions

__all__ = ('SINGLE_SHOT_ELECTRONS', 'SingleShotBands', 'SingleShotCalculation', 'single_shot_bands')

SINGLE_SHOT_ELECTRONS: Mapping[str, Any] = {
    'electron_maxstep': 0,
    'scf_must_converge': False,
    'startingwfc': 'atomic',
    'startingpot': 'atomic',
}
"""The ``ELECTRONS`` keys that make pw.x stop after the first diagonalization. Set by the plugin."""

_FORBIDDEN_SYSTEM_KEYS: Mapping[str, str] = {
    'noncolin': 'non-collinear calculations are not supported by the single shot (collinear, nspin=1 only)',
    'lspinorb': 'spin-orbit coupling is not supported by the single shot (collinear, nspin=1 only)',
    'starting_magnetization': 'magnetic calculations are not supported by the single shot (nspin=1 only)',
    'tot_magnetization': 'magnetic calculations are not supported by the single shot (nspin=1 only)',
    'nbnd': 'the plugin sets nbnd to the number of pseudo-atomic wavefunctions; do not set it',
}

_natomwfc_cache: dict[str, int] = {}


@dataclass(frozen=True)
class SingleShotBands:
    """Band count of a single shot.

    :ivar natomwfc: number of pseudo-atomic wavefunctions in the cell (sum of 2l+1 over PP_CHI and sites).
    :ivar n_electrons: number of valence electrons in the cell (sum of Z valence minus ``tot_charge``).
    :ivar n_required: smallest number of bands that holds all electrons with one band not fully occupied,
        ``floor(n_electrons / 2) + 1``.
    :ivar nbnd: number of bands given to pw.x: ``natomwfc``, or ``n_required`` when padding is allowed and needed.
    :ivar n_random: number of bands pw.x fills with random wavefunctions (``nbnd - natomwfc`` if positive).
    """

    natomwfc: int
    n_electrons: float
    n_required: int
    nbnd: int
    n_random: int


def natomwfc_of_pseudo(pseudo: orm.Data) -> int:
    """Return the number of pseudo-atomic orbitals per atom of a ``UpfData`` (cached by md5)."""
    key = pseudo.base.attributes.get('md5', None) or pseudo.uuid
    if key not in _natomwfc_cache:
        _natomwfc_cache[key] = count_atomic_wavefunctions(pseudo.get_content())
    return _natomwfc_cache[key]


def _z_valence(pseudo: orm.Data) -> float:
    value = getattr(pseudo, 'z_valence', None)
    if value is None:  # legacy ``core.upf`` nodes
        from aiida_pseudo.data.pseudo.upf import parse_z_valence

        value = parse_z_valence(pseudo.get_content())
    return float(value)


def single_shot_bands(
    structure: orm.StructureData,
    pseudos: Mapping[str, orm.Data],
    parameters: Mapping[str, Any],
    allow_random_wavefunctions: bool = False,
) -> SingleShotBands:
    """Count the atomic wavefunctions and electrons of ``structure`` and choose ``nbnd``.

    :param structure: the crystal.
    :param pseudos: ``{kind_name: UpfData}``.
    :param parameters: the pw.x input parameters (for ``SYSTEM.tot_charge``).
    :param allow_random_wavefunctions: allow ``nbnd > natomwfc`` when the atomic subspace is too small.
    :raises ValueError: naming the kind if a pseudo has no ``PP_PSWFC``, or if the atomic subspace cannot hold
        the electrons and padding is not allowed.
    """
    counts: dict[str, int] = {}
    for kind in structure.kinds:
        pseudo = pseudos[kind.name]
        count = natomwfc_of_pseudo(pseudo)
        if count == 0:
            raise ValueError(
                f'the pseudopotential `{pseudo.filename}` of kind `{kind.name}` (element {kind.symbol}) has no '
                'pseudo-atomic wavefunctions (PP_PSWFC/PP_CHI): the single shot diagonalizes in that subspace. Use '
                'a family that ships them, e.g. PseudoDojo/0.4/PBE/SR/standard/upf.'
            )
        counts[kind.name] = count

    natomwfc = sum(counts[site.kind_name] for site in structure.sites)
    tot_charge = float(parameters.get('SYSTEM', {}).get('tot_charge', 0.0))
    n_electrons = sum(_z_valence(pseudos[site.kind_name]) for site in structure.sites) - tot_charge
    n_required = math.floor(n_electrons / 2) + 1

    if natomwfc >= n_required:
        return SingleShotBands(natomwfc, n_electrons, n_required, natomwfc, 0)
    if not allow_random_wavefunctions:
        raise ValueError(
            f'the pseudo-atomic subspace has {natomwfc} orbitals but {n_electrons:g} electrons need at least '
            f'floor(n_electrons/2)+1={n_required} bands: pw.x would pad with {n_required - natomwfc} random '
            'wavefunctions. Set `allow_random_wavefunctions` to True to accept this explicitly, or use pseudos with '
            'more atomic wavefunctions (e.g. semicore states).'
        )
    return SingleShotBands(natomwfc, n_electrons, n_required, n_required, n_required - natomwfc)


def validate_single_shot_parameters(parameters: Mapping[str, Any]) -> str | None:
    """Return an error message naming the offending key if ``parameters`` are incompatible with a single shot."""
    control = {key.lower(): value for key, value in parameters.get('CONTROL', {}).items()}
    system = {key.lower(): value for key, value in parameters.get('SYSTEM', {}).items()}
    electrons = {key.lower(): value for key, value in parameters.get('ELECTRONS', {}).items()}

    calculation = control.get('calculation', 'scf')
    if calculation != 'scf':
        return f"`CONTROL.calculation` is `{calculation}`: the single shot is an 'scf' run stopped after 0 iterations"
    nspin = system.get('nspin', 1)
    if nspin != 1:
        return f'`SYSTEM.nspin` is {nspin}: the single shot supports nspin=1 only (no spin polarization)'
    for key, message in _FORBIDDEN_SYSTEM_KEYS.items():
        if key in system and system[key] not in (False, None):
            return f'`SYSTEM.{key}` is set: {message}'
    for key, value in SINGLE_SHOT_ELECTRONS.items():
        if key in electrons and electrons[key] != value:
            return f'`ELECTRONS.{key}` is `{electrons[key]}`: the single shot requires `{value}` (set by the plugin)'
    return None


def validate_sorep_parameters(value: orm.Dict | None, _: Any) -> str | None:
    """Validate the ``sorep_parameters`` input: ``smearing``, ``width`` (eV) and ``features``."""
    if value is None:
        return None
    parameters = value.get_dict()
    unknown = set(parameters) - {'smearing', 'width', 'features'}
    if unknown:
        return f'`sorep_parameters` has unknown keys {sorted(unknown)}; allowed: smearing, width, features'
    if 'smearing' in parameters:
        try:
            Smearing.from_name(parameters['smearing'])
        except ValueError as exception:
            return f'`sorep_parameters.smearing`: {exception}'
    width = parameters.get('width', 0.0)
    if not isinstance(width, (int, float)) or width < 0:
        return f'`sorep_parameters.width` must be a non-negative number in eV, got `{width}`'
    if 'features' in parameters:
        from aiida_sorep.calculations.featurize import parse_feature_parameters

        try:
            parse_feature_parameters(parameters['features'])
        except (ValueError, TypeError, KeyError) as exception:
            return f'`sorep_parameters.features` is invalid: {exception}'
    return None


class SingleShotCalculation(PwCalculation):
    """pw.x single shot: eigenvalues of H[superposition of atomic densities] in the pseudo-atomic-orbital subspace.

    On top of ``PwCalculation`` it sets ``ELECTRONS`` to :data:`SINGLE_SHOT_ELECTRONS` and ``SYSTEM.nbnd`` to the
    number of pseudo-atomic wavefunctions, and refuses inputs a single shot cannot honour (spin, non-collinear,
    ``calculation != 'scf'``, pseudos without ``PP_PSWFC``, an atomic subspace too small for the electrons).
    """

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.inputs['metadata']['options']['parser_name'].default = 'sorep.singleshot'
        spec.inputs['metadata']['options']['withmpi'].default = False
        spec.input(
            'allow_random_wavefunctions',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='If the pseudo-atomic orbitals are fewer than floor(n_electrons/2)+1, pad the basis with random '
            'wavefunctions (reported, and the parser returns the warning exit code 720). Off by default: the '
            'single shot is meant to live in the atomic subspace.',
        )
        spec.input(
            'sorep_parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_sorep_parameters,
            help='How the parser rebuilds the Fermi level and the features: `smearing` (fixed, gaussian, fermi-dirac, '
            'cold, methfessel-paxton), `width` (eV), `features` ({kind: parameters} overriding the defaults). If '
            'absent, the smearing of the input `SYSTEM` namelist is used (fixed occupations: mid-gap).',
        )
        spec.inputs.validator = cls.validate_inputs

        spec.output_namespace(
            'features',
            valid_type=orm.Data,
            dynamic=True,
            help='SOREP feature vectors (`SorepFeaturesData`), one per default parameterization: vbm, fermi, cbm, '
            'concatenated.',
        )
        spec.output(
            'fermi',
            valid_type=orm.Dict,
            required=False,
            help='Rebuilt Fermi level (eV), band edges with k and band indices, gaps (eV), metal flag, electron-count '
            "residual, method; plus pw.x's own Fermi level when the patched binary provided one.",
        )
        spec.default_output_node = 'fermi'

        spec.exit_code(
            315,
            'ERROR_OUTPUT_XML_NO_EIGENVALUES',
            message='The XML output file holds no Kohn-Sham eigenvalues: the run stopped before the diagonalization.',
        )
        spec.exit_code(
            420,
            'ERROR_FERMI_LEVEL',
            message='The Fermi level could not be rebuilt from the single-shot eigenvalues: {exception}',
        )
        spec.exit_code(
            421,
            'ERROR_FEATURES',
            message='The SOREP features could not be computed from the single-shot eigenvalues: {exception}',
        )
        spec.exit_code(
            720,
            'WARNING_RANDOM_WAVEFUNCTIONS',
            message='pw.x padded the pseudo-atomic subspace with {n_random} random wavefunctions (allowed by '
            '`allow_random_wavefunctions`): the highest bands are not single-shot atomic-orbital bands.',
        )

    @classmethod
    def validate_inputs(cls, value, port_namespace):
        """Validate the whole namespace; every message names the kind, element or key that is wrong."""
        result = super().validate_inputs(value, port_namespace)
        if result is not None:
            return result
        if any(key not in port_namespace for key in ('pseudos', 'structure', 'parameters')):
            return None
        if 'parameters' not in value:
            return 'required value was not provided for the `parameters` input.'

        parameters = value['parameters'].get_dict()
        message = validate_single_shot_parameters(parameters)
        if message is not None:
            return message

        structure = value['structure']
        pseudos = value['pseudos']
        for kind in structure.kinds:
            element = getattr(pseudos[kind.name], 'element', None)
            if element is not None and element != kind.symbol:
                return f'the pseudopotential of kind `{kind.name}` is for element `{element}`, not `{kind.symbol}`'
        allow = bool(value['allow_random_wavefunctions'].value) if 'allow_random_wavefunctions' in value else False
        try:
            single_shot_bands(structure, pseudos, parameters, allow)
        except ValueError as exception:
            return str(exception)
        return None

    def prepare_for_submission(self, folder):
        """Write the pw.x input with the single-shot keys; report when random wavefunctions are allowed and used."""
        allow = bool(self.inputs.allow_random_wavefunctions.value)
        bands = single_shot_bands(self.inputs.structure, self.inputs.pseudos, self.inputs.parameters.get_dict(), allow)
        if bands.n_random:
            self.report(
                f'padding the {bands.natomwfc} pseudo-atomic orbitals with {bands.n_random} random wavefunctions '
                f'(nbnd={bands.nbnd}) as explicitly allowed by `allow_random_wavefunctions`'
            )
        self._single_shot_nbnd = bands.nbnd
        return super().prepare_for_submission(folder)

    def _generate_pwcp_inputdata(self, parameters, settings, pseudos, structure, kpoints=None, use_fractional=False):
        """Add the single-shot keys and ``nbnd`` to the parameters, then let ``PwCalculation`` write the file."""
        single_shot = parameters.get_dict()
        single_shot.setdefault('CONTROL', {})['calculation'] = 'scf'
        single_shot.setdefault('ELECTRONS', {}).update(SINGLE_SHOT_ELECTRONS)
        single_shot.setdefault('SYSTEM', {})['nbnd'] = self._single_shot_nbnd
        return super()._generate_pwcp_inputdata(
            orm.Dict(single_shot), settings, pseudos, structure, kpoints, use_fractional
        )
