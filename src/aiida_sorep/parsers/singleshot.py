"""``SingleShotParser`` (``sorep.singleshot``): eigenvalues, rebuilt Fermi level, band edges and SOREP features.

Raw extraction reuses aiida-quantumespresso's ``PwParser`` helpers (``parse_xml``, ``parse_stdout``,
``build_output_kpoints``); the physics goes through :mod:`aiida_sorep.core`. ``parse()`` only orchestrates
and maps problems to exit codes; it never raises (350 for an unexpected exception).

Both pw.x flavours are accepted:

* stock pw.x stops after 0 iterations, prints "convergence NOT achieved after 0 iterations" and exits 2; that
  is the expected behaviour of a single shot, not a failure. Its XML Fermi level (0) is not used;
* the patched pw.x of ``qe/`` prints a ``single-shot`` marker, exits 0 and writes a valid Fermi level, which
  is reported next to the rebuilt one.
"""

from __future__ import annotations

import functools
import re
import traceback
from typing import Any

import numpy as np
from aiida import orm
from aiida.common import exceptions
from aiida.engine import ExitCode
from aiida_quantumespresso.calculations import _uppercase_dict
from aiida_quantumespresso.parsers.parse_xml import parse as _qe_parse_xml
from aiida_quantumespresso.parsers.pw import PwParser
from qe_tools import CONSTANTS

from aiida_sorep.common.types import PwxFlavour

__all__ = ('SingleShotParser', 'detect_flavour', 'fermi_settings_from_parameters')

REGEX_PATCHED_MARKER = re.compile(r'single[- _]shot', re.IGNORECASE)
"""A line of the patched pw.x's output that says the SCF loop was skipped deliberately."""
_HARMLESS_XML_LOGS = ('max_nstep', 'n_scf_steps', 'XML schema validation error')
"""Schema complaints of aiida-quantumespresso about ``electron_maxstep=0``: expected in a single shot."""


def cache_qe_xml_schemas() -> None:
    """Build each QE XML schema once per process instead of once per parse.

    aiida-quantumespresso 5.1's ``parse_xml`` constructs ``XMLSchema(schema_filepath)`` on every call, about
    0.6 s of CPU per single shot, more than pw.x itself spends on a small cell. The schema objects are only
    read, so a per-process cache keyed by the schema file is safe. Idempotent.
    """
    if not hasattr(_qe_parse_xml.XMLSchema, 'cache_info'):
        _qe_parse_xml.XMLSchema = functools.lru_cache(maxsize=16)(_qe_parse_xml.XMLSchema)


cache_qe_xml_schemas()


def detect_flavour(stdout: str) -> PwxFlavour:
    """Return which pw.x wrote ``stdout``: the patched one prints a ``single-shot`` marker."""
    return PwxFlavour.PATCHED if REGEX_PATCHED_MARKER.search(stdout) else PwxFlavour.STOCK


def fermi_settings_from_parameters(
    parameters: dict[str, Any], sorep_parameters: dict[str, Any] | None = None
) -> tuple[str, float]:
    """Return ``(smearing, width in eV)`` used to rebuild the Fermi level.

    ``sorep_parameters`` (``smearing``, ``width`` in eV) take precedence; otherwise the pw.x input is followed:
    ``occupations='smearing'`` gives its ``smearing`` and ``degauss`` (Ry, converted to eV); anything else (pw.x's
    default ``'fixed'``) gives zero-temperature occupations, i.e. mid-gap for insulators.
    """
    sorep_parameters = sorep_parameters or {}
    system = {key.lower(): value for key, value in parameters.get('SYSTEM', {}).items()}
    if system.get('occupations', 'fixed') == 'smearing':
        smearing, width = (
            str(system.get('smearing', 'gaussian')),
            float(system.get('degauss', 0.0)) * CONSTANTS.ry_to_ev,
        )
    else:
        smearing, width = 'fixed', 0.0
    if 'smearing' in sorep_parameters:
        smearing = str(sorep_parameters['smearing'])
        width = float(sorep_parameters.get('width', 0.0 if smearing == 'fixed' else width))
    elif 'width' in sorep_parameters:
        width = float(sorep_parameters['width'])
    return smearing, width


class SingleShotParser(PwParser):
    """Parse a pw.x single shot (stock or patched) into bands, a ``fermi`` Dict and SOREP features."""

    def parse(self, **kwargs):
        """Parse the retrieved files; return an exit code, never raise."""
        try:
            return self._parse()
        except Exception as exception:
            self.logger.error(traceback.format_exc())
            return self.exit(self.exit_codes.ERROR_UNEXPECTED_PARSER_EXCEPTION.format(exception=exception))

    def _parse(self) -> ExitCode:
        self.exit_code_xml = None
        self.exit_code_stdout = None
        self.exit_code_parser = None

        settings = (
            _uppercase_dict(self.node.inputs.settings.get_dict(), 'settings') if 'settings' in self.node.inputs else {}
        )
        parser_options = settings.get('PARSER_OPTIONS', None)
        parameters = self.node.inputs.parameters.get_dict()
        stdout, crash_file = self._read_text_files()

        parsed_xml, logs_xml = self.parse_xml()
        parsed_stdout, logs_stdout = self.parse_stdout(parameters, parser_options, crash_file)
        self._filter_expected_logs(logs_stdout, logs_xml)
        self.emit_logs([logs_stdout, logs_xml], ignore=['Error while parsing ethr.'])

        exit_code = self._check_premature_exit(stdout, logs_stdout)
        if exit_code is not None:
            return exit_code

        flavour = detect_flavour(stdout)
        parsed_bands = parsed_xml.pop('bands', {})
        output_parameters, pwx_fermi_energy = self._output_parameters(parsed_xml, parsed_stdout, flavour)

        kpoints = self.build_output_kpoints(output_parameters, self.node.inputs.structure)
        if not parsed_bands or kpoints is None or self.exit_code_parser is not None:
            self.out('output_parameters', orm.Dict(output_parameters))
            return self.exit(self.exit_code_parser or self.exit_codes.ERROR_OUTPUT_XML_NO_EIGENVALUES)

        eigenvalues = np.asarray(parsed_bands['bands'], dtype=float)  # eV, (n_spins, n_k, n_bands)
        weights = np.asarray(kpoints.get_kpoints(also_weights=True)[1], dtype=float)
        bands = orm.BandsData()
        bands.set_kpointsdata(kpoints)
        bands.set_bands(eigenvalues[0] if eigenvalues.shape[0] == 1 else eigenvalues, units='eV')
        self.out('output_band', bands)
        self.out('output_parameters', orm.Dict(output_parameters))

        return self._parse_spectrum(eigenvalues, weights, output_parameters, flavour, pwx_fermi_energy, parameters)

    @staticmethod
    def _filter_expected_logs(logs_stdout, logs_xml) -> None:
        """Drop the messages that a single shot produces by design (in place)."""
        logs_xml['error'] = [m for m in logs_xml['error'] if not any(s in m for s in _HARMLESS_XML_LOGS)]
        if 'ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED' in logs_stdout['error']:
            # Stock pw.x: "convergence NOT achieved after 0 iterations" is how a single shot ends, not a failure.
            logs_stdout['error'] = [m for m in logs_stdout['error'] if m != 'ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED']
            logs_stdout['info'].append('stock pw.x stopped after 0 SCF iterations, as expected for a single shot')

    def _output_parameters(
        self, parsed_xml: dict[str, Any], parsed_stdout: dict[str, Any], flavour: PwxFlavour
    ) -> tuple[dict[str, Any], float | None]:
        """Return PwParser's output parameters and pw.x's Fermi level (``None`` unless the patched pw.x wrote one).

        The stock pw.x writes a Fermi energy of 0 in a 0-iteration run: it is dropped, not reported.
        """
        parsed_xml.pop('structure', None)
        parsed_xml.pop('trajectory', None)
        output_parameters = self.build_output_parameters(parsed_stdout, parsed_xml)
        self.backwards_compatibility_parameters(output_parameters, parsed_stdout)
        pwx_fermi_energy = output_parameters.pop('fermi_energy', None)
        if flavour is not PwxFlavour.PATCHED:
            pwx_fermi_energy = None
        if pwx_fermi_energy is not None:
            output_parameters['fermi_energy'] = pwx_fermi_energy
        output_parameters['single_shot_flavour'] = flavour.value
        return output_parameters, pwx_fermi_energy

    def _read_text_files(self) -> tuple[str, str | None]:
        """Return the stdout (empty if missing) and the CRASH file content (``None`` if absent)."""
        names = self.retrieved.base.repository.list_object_names()
        filename = self.node.get_option('output_filename')
        stdout = self.retrieved.base.repository.get_object_content(filename) if filename in names else ''
        crash = self.node.process_class._CRASH_FILE
        crash_file = self.retrieved.base.repository.get_object_content(crash) if crash in names else None
        return stdout, crash_file

    def _check_premature_exit(self, stdout: str, logs_stdout) -> ExitCode | None:
        """Map a run that really failed (scheduler, known pw.x error, crash, missing/broken files) to an exit code."""
        incomplete = 'JOB DONE' not in stdout
        if (incomplete or self.exit_code_xml is not None) and self.node.exit_status is not None:
            # The scheduler already diagnosed the problem (e.g. 110 out of memory, 120 out of walltime): keep it.
            return ExitCode(self.node.exit_status, self.node.exit_message)
        exit_code = self.validate_premature_exit(logs_stdout)
        if exit_code:
            return self.exit(exit_code)
        if self.exit_code_stdout is not None and self.exit_code_stdout.status != 312:
            return self.exit(self.exit_code_stdout)
        if incomplete:
            return self.exit(self.exit_codes.ERROR_OUTPUT_STDOUT_INCOMPLETE)
        if self.exit_code_xml is not None:
            return self.exit(self.exit_code_xml)
        return None

    def _sorep_parameters(self) -> dict[str, Any]:
        try:
            return self.node.inputs.sorep_parameters.get_dict()
        except (AttributeError, exceptions.NotExistent):
            return {}

    def _parse_spectrum(
        self,
        eigenvalues: np.ndarray,
        weights: np.ndarray,
        output_parameters: dict[str, Any],
        flavour: PwxFlavour,
        pwx_fermi_energy: float | None,
        parameters: dict[str, Any],
    ) -> ExitCode:
        """Rebuild the Fermi level and band edges, compute the features and attach them."""
        from aiida_sorep.calculations.featurize import compute_feature_maps, feature_nodes, parse_feature_parameters
        from aiida_sorep.calculations.singleshot import single_shot_bands
        from aiida_sorep.core.edges import find_band_edges
        from aiida_sorep.core.fermi import find_fermi_level

        sorep_parameters = self._sorep_parameters()
        smearing, width = fermi_settings_from_parameters(parameters, sorep_parameters)
        n_electrons = float(output_parameters['number_of_electrons'])
        try:
            fermi = find_fermi_level(eigenvalues, weights, n_electrons, smearing, width, midgap=True)
            edges = find_band_edges(eigenvalues, fermi.fermi_energy, is_gapped=fermi.is_gapped)
        except ValueError as exception:
            return self.exit(self.exit_codes.ERROR_FERMI_LEVEL.format(exception=exception))
        try:
            features = compute_feature_maps(
                eigenvalues,
                weights,
                parse_feature_parameters(sorep_parameters.get('features')),
                fermi_energy=fermi.fermi_energy,
                vbm=edges.vbm,
                cbm=edges.cbm,
                volume=float(self.node.inputs.structure.get_cell_volume()),
                n_electrons=n_electrons,
            )
        except ValueError as exception:
            return self.exit(self.exit_codes.ERROR_FEATURES.format(exception=exception))

        inputs = self.node.inputs
        allow = bool(inputs.allow_random_wavefunctions.value) if 'allow_random_wavefunctions' in inputs else False
        counts = single_shot_bands(self.node.inputs.structure, self.node.inputs.pseudos, parameters, allow)
        fermi_dict: dict[str, Any] = {
            **fermi.to_dict(),
            **edges.to_dict(),
            'smearing': smearing,
            'width': width,
            'energy_units': 'eV',
            'number_of_electrons': n_electrons,
            'number_of_bands': int(eigenvalues.shape[-1]),
            'number_of_atomic_wfc': counts.natomwfc,
            'number_of_random_wfc': counts.n_random,
            'single_shot_flavour': flavour.value,
        }
        if flavour is PwxFlavour.PATCHED and pwx_fermi_energy is not None:
            fermi_dict['pwx_fermi_energy'] = float(pwx_fermi_energy)
            fermi_dict['pwx_fermi_energy_difference'] = float(fermi.fermi_energy - pwx_fermi_energy)
        self.out('fermi', orm.Dict(fermi_dict))
        for name, node in feature_nodes(features).items():
            self.out(f'features.{name}', node)

        if counts.n_random:
            return self.exit(self.exit_codes.WARNING_RANDOM_WAVEFUNCTIONS.format(n_random=counts.n_random))
        return ExitCode(0)
