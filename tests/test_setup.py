"""The environment set-up, run for real: ``aiida-sorep setup`` in a fresh configuration folder.

Each test drives the installed console scripts in a subprocess with its own ``AIIDA_PATH``, as a
user would, so the profile of the test session is not touched.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from aiida_sorep.install.pseudos import FAMILY_LABEL
from aiida_sorep.install.system import SystemSetupError, ensure_pw_executable

BIN = pathlib.Path(sys.executable).parent


def run_cli(args: list[str], aiida_path: pathlib.Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a console script of the virtual environment with ``AIIDA_PATH=aiida_path``."""
    env = {**os.environ, 'AIIDA_PATH': str(aiida_path)}
    result = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        pytest.fail(f'{" ".join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}')
    return result


@pytest.fixture(scope='module')
def configured(tmp_path_factory, pseudo_dir) -> tuple[pathlib.Path, subprocess.CompletedProcess]:
    """A configuration folder after one ``aiida-sorep setup``, and that run's output."""
    aiida_path = tmp_path_factory.mktemp('aiida_path')
    return aiida_path, run_cli(['aiida-sorep', 'setup'], aiida_path)


def test_setup_creates_everything(configured):
    _, first = configured
    assert 'created: profile `sorep`, computer `localhost`, code `pw@localhost`' in first.stdout
    assert FAMILY_LABEL in first.stdout


def test_setup_is_idempotent(configured):
    aiida_path, _ = configured
    second = run_cli(['aiida-sorep', 'setup'], aiida_path)
    assert 'everything was already in place' in second.stdout
    assert 'Creating' not in second.stdout
    assert 'Installed' not in second.stdout


def test_code_and_family_visible_to_verdi_and_aiida_pseudo(configured):
    aiida_path, _ = configured
    codes = run_cli(['verdi', '-p', 'sorep', 'code', 'list'], aiida_path)
    assert 'pw@localhost' in codes.stdout
    families = run_cli(['aiida-pseudo', '-p', 'sorep', 'list'], aiida_path)
    assert FAMILY_LABEL in families.stdout
    assert 'pseudo.family.cutoffs' in families.stdout


def test_family_cutoffs_are_pseudodojo_hints(configured):
    aiida_path, _ = configured
    script = (
        'from aiida import load_profile, orm; load_profile("sorep"); '
        f'f = orm.load_group("{FAMILY_LABEL}"); '
        'print(f.get_default_stringency(), f.get_recommended_cutoffs(elements=("Si", "O"), unit="Ry"))'
    )
    result = run_cli(['python', '-c', script], aiida_path)
    # PseudoDojo normal hints: Si 18 Ha, O 42 Ha -> the maximum, 84 Ry, with a dual of 4 for the density.
    assert result.stdout.split()[0] == 'normal'
    assert '(84.0, 336.0)' in result.stdout


def test_profile_name_clash_is_refused(tmp_path):
    run_cli(['verdi', 'presto', '--no-broker', '--profile-name', 'mine'], tmp_path)
    result = run_cli(['aiida-sorep', 'setup', '--profile', 'mine'], tmp_path, check=False)
    assert result.returncode == 1
    assert '[FAILED] a profile named `mine` already exists' in result.stderr
    assert '--reuse-profile' in result.stderr
    assert 'Traceback' not in result.stderr


def test_unwritable_configuration_folder(tmp_path):
    not_a_folder = tmp_path / 'file'
    not_a_folder.write_text('')
    result = run_cli(['aiida-sorep', 'setup'], not_a_folder, check=False)
    assert result.returncode == 1
    assert 'is not writable' in result.stderr
    assert 'Point AIIDA_PATH' in result.stderr
    assert 'Traceback' not in result.stderr


def test_pw_missing_and_not_root(tmp_path):
    with pytest.raises(SystemSetupError, match='not root') as excinfo:
        ensure_pw_executable(root=False, path=str(tmp_path))
    assert 'apt-get install -y quantum-espresso' in str(excinfo.value)


def test_pw_found_on_path(pw_executable):
    assert ensure_pw_executable(install=False, path=str(pathlib.Path(pw_executable).parent)) == pw_executable


def test_examples_run(configured):
    """Every script in ``examples/`` runs against the configured profile (so none can rot)."""
    aiida_path, _ = configured
    examples = sorted((pathlib.Path(__file__).parent.parent / 'examples').glob('*.py'))
    assert examples, 'no example scripts found'
    expected = {
        'silicon_singleshot.py': 'Eigenvalues at Gamma (eV): ',
        'kinetic_similarity.py': 'Cosine distances between kinetic SOREPs',
    }
    assert {example.name for example in examples} == set(expected), 'add the new example to this test'
    for example in examples:
        result = run_cli(['python', str(example)], aiida_path)
        assert expected[example.name] in result.stdout, example.name
