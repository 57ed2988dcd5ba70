"""Tests of ``SingleShotCalculation`` (``sorep.singleshot``): the written pw.x input and the input validation."""

from __future__ import annotations

import io

import pytest
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from aiida.plugins import CalculationFactory
from ase.build import bulk

SingleShotCalculation = CalculationFactory('sorep.singleshot')


@pytest.fixture
def singleshot_inputs(pw_code, pseudo_family):
    """Return a factory of valid inputs for a Si (or any ASE bulk) single shot."""

    def factory(atoms=None, system: dict | None = None, **extra):
        structure = orm.StructureData(ase=atoms if atoms is not None else bulk('Si', 'diamond', a=5.431))
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh([2, 2, 2])
        parameters = {
            'CONTROL': {'calculation': 'scf'},
            'SYSTEM': {'ecutwfc': 20.0, 'ecutrho': 80.0, **(system or {})},
        }
        inputs = {
            'code': pw_code,
            'structure': structure,
            'kpoints': kpoints,
            'parameters': orm.Dict(parameters),
            'pseudos': pseudo_family.get_pseudos(structure=structure),
            'metadata': {'options': {'resources': {'num_machines': 1}, 'max_wallclock_seconds': 60}},
        }
        inputs.update(extra)
        return inputs

    return factory


def _validate(inputs) -> str | None:
    """Return the validation error message of the whole input namespace, or ``None``."""
    error = SingleShotCalculation.spec().inputs.validate(inputs)
    return None if error is None else error.message


def test_input_file(singleshot_inputs, tmp_path, file_regression):
    """The pw.x input has the single-shot keys and nbnd = natomwfc = 2 Si x 4; it is otherwise PwCalculation's."""
    process = instantiate_process(get_manager().get_runner(), SingleShotCalculation, **singleshot_inputs())
    calc_info = process.prepare_for_submission(Folder(str(tmp_path)))
    content = (tmp_path / 'aiida.in').read_text()
    assert '  nbnd = 8\n' in content
    assert "  startingwfc = 'atomic'\n" in content
    assert '  electron_maxstep = 0\n' in content
    assert calc_info.codes_info[0].cmdline_params == ['-in', 'aiida.in']
    file_regression.check(content, extension='.in')


def test_defaults():
    """Serial by default (mpirun refuses root here) and parsed by ``sorep.singleshot``."""
    options = SingleShotCalculation.spec().inputs['metadata']['options']
    assert options['withmpi'].default is False
    assert options['parser_name'].default == 'sorep.singleshot'


def test_valid_inputs(singleshot_inputs):
    """The reference inputs are valid."""
    assert _validate(singleshot_inputs()) is None


@pytest.mark.parametrize(
    ('system', 'control', 'electrons', 'expected'),
    [
        ({'nspin': 2}, {}, {}, '`SYSTEM.nspin` is 2'),
        ({'noncolin': True}, {}, {}, '`SYSTEM.noncolin` is set'),
        ({'lspinorb': True}, {}, {}, '`SYSTEM.lspinorb` is set'),
        ({'nbnd': 20}, {}, {}, '`SYSTEM.nbnd` is set'),
        ({'starting_magnetization': {'Si': 0.5}}, {}, {}, '`SYSTEM.starting_magnetization` is set'),
        ({}, {'calculation': 'bands'}, {}, '`CONTROL.calculation` is `bands`'),
        ({}, {}, {'electron_maxstep': 50}, '`ELECTRONS.electron_maxstep` is `50`'),
        ({}, {}, {'startingwfc': 'atomic+random'}, '`ELECTRONS.startingwfc` is `atomic+random`'),
    ],
)
def test_invalid_parameters(singleshot_inputs, system, control, electrons, expected):
    """Requests a single shot cannot honour are refused before submission, naming the key."""
    inputs = singleshot_inputs(system=system)
    parameters = inputs['parameters'].get_dict()
    parameters['CONTROL'].update(control)
    parameters.setdefault('ELECTRONS', {}).update(electrons)
    inputs['parameters'] = orm.Dict(parameters)
    message = _validate(inputs)
    assert message is not None
    assert expected in message


def test_pseudo_without_pswfc(singleshot_inputs, pseudo_dir):
    """A pseudo without PP_PSWFC is refused, naming the kind, element and file."""
    from aiida_pseudo.data.pseudo.upf import UpfData

    content = (pseudo_dir / 'Si.upf').read_text()
    start, end = content.index('<PP_PSWFC>'), content.index('</PP_PSWFC>') + len('</PP_PSWFC>')
    stripped = UpfData(io.BytesIO((content[:start] + content[end:]).encode()), filename='Si_nowfc.upf')
    message = _validate(singleshot_inputs(pseudos={'Si': stripped}))
    assert message is not None
    assert 'Si_nowfc.upf' in message
    assert 'kind `Si`' in message
    assert 'PP_PSWFC' in message


def test_pseudo_wrong_element(singleshot_inputs, pseudo_family):
    """A pseudo for another element is refused."""
    message = _validate(singleshot_inputs(pseudos={'Si': pseudo_family.get_pseudo('Ge')}))
    assert message is not None
    assert 'kind `Si` is for element `Ge`' in message


def test_too_few_atomic_wavefunctions(singleshot_inputs):
    """fcc Mg: 5 atomic orbitals for 10 electrons. Refused unless padding is explicitly allowed."""
    mg = bulk('Mg', 'fcc', a=4.52)
    message = _validate(singleshot_inputs(atoms=mg))
    assert message is not None
    assert 'allow_random_wavefunctions' in message
    assert 'floor(n_electrons/2)+1=6' in message
    assert _validate(singleshot_inputs(atoms=mg, allow_random_wavefunctions=orm.Bool(True))) is None


def test_padding_reported(singleshot_inputs, tmp_path):
    """When padding is allowed, nbnd = floor(n_electrons/2)+1 and the process reports it."""
    inputs = singleshot_inputs(atoms=bulk('Mg', 'fcc', a=4.52), allow_random_wavefunctions=orm.Bool(True))
    process = instantiate_process(get_manager().get_runner(), SingleShotCalculation, **inputs)
    process.prepare_for_submission(Folder(str(tmp_path)))
    assert '  nbnd = 6\n' in (tmp_path / 'aiida.in').read_text()
    logs = [log.message for log in orm.Log.collection.get_logs_for(process.node)]
    assert any('1 random wavefunctions' in message for message in logs)


def test_sorep_parameters_validation(singleshot_inputs):
    """Typos in ``sorep_parameters`` fail at validation, naming the key."""
    assert _validate(singleshot_inputs(sorep_parameters=orm.Dict({'smearing': 'cold', 'width': 0.1}))) is None
    message = _validate(singleshot_inputs(sorep_parameters=orm.Dict({'smearing': 'warm'})))
    assert 'unknown smearing' in message
    message = _validate(singleshot_inputs(sorep_parameters=orm.Dict({'features': {'fermi': {'n_points': 1}}})))
    assert 'sorep_parameters.features' in message
    message = _validate(singleshot_inputs(sorep_parameters=orm.Dict({'smaering': 'cold'})))
    assert 'unknown keys' in message
