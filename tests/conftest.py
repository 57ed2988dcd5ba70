"""Shared fixtures: aiida-core's pytest fixtures, the real pw.x code and the PseudoDojo family.

Nothing here skips when something is missing: the project's own setup (``bash bootstrap.sh``)
installs pw.x and the pseudopotentials, and a test that cannot find them fails with a message
that says how to install them.
"""

from __future__ import annotations

import pathlib
import shutil

import pytest

pytest_plugins = ['aiida.tools.pytest_fixtures']

TESTS_DIR = pathlib.Path(__file__).resolve().parent
FIXTURES_DIR = TESTS_DIR / 'fixtures'


@pytest.fixture(scope='session')
def pw_executable() -> str:
    """Absolute path of the real ``pw.x`` (Debian's ``quantum-espresso`` package)."""
    path = shutil.which('pw.x')
    if path is None:
        pytest.fail("pw.x is not on PATH: run `bash bootstrap.sh test` (it installs Debian's quantum-espresso).")
    return path


@pytest.fixture
def pw_code(aiida_code_installed, pw_executable):
    """An ``InstalledCode`` for the real serial ``pw.x`` on the ``localhost`` computer of the test profile."""
    return aiida_code_installed(
        label='pw',
        default_calc_job_plugin='quantumespresso.pw',
        filepath_executable=pw_executable,
        with_mpi=False,
        prepend_text='export OMP_NUM_THREADS=1\nexport OPENBLAS_NUM_THREADS=1',
    )


@pytest.fixture(scope='session')
def pseudo_dir() -> pathlib.Path:
    """Folder with the 72 PseudoDojo UPF files (cached by the set-up; never downloaded by a test)."""
    from aiida_sorep.install.pseudos import pseudo_dir as _pseudo_dir
    from aiida_sorep.install.pseudos import pseudo_files_present

    directory = _pseudo_dir()
    if not pseudo_files_present(directory):
        pytest.fail(
            f'PseudoDojo UPF files missing in {directory}: run `aiida-sorep setup` or `bash bootstrap.sh test`.'
        )
    return directory


@pytest.fixture(scope='session')
def pseudo_family(aiida_profile, pseudo_dir):
    """The ``PseudoDojo/0.4/PBE/SR/standard/upf`` family with recommended cutoffs, in the test profile."""
    from aiida_sorep.install.pseudos import install_family

    return install_family(pseudo_dir, echo=lambda *_: None)


@pytest.fixture
def patched_pw_code(aiida_code_installed):
    """An ``InstalledCode`` for the patched serial ``pw.x`` built by ``bash qe/build.sh`` (part of the test set-up)."""
    from aiida_sorep.install.environment import patched_pw_executable

    executable = patched_pw_executable()
    if not executable.is_file():
        pytest.fail(f'patched pw.x not found at {executable}: run `bash qe/build.sh` (`bash bootstrap.sh test` does).')
    return aiida_code_installed(
        label='pw-sorep',
        default_calc_job_plugin='quantumespresso.pw',
        filepath_executable=str(executable),
        with_mpi=False,
        prepend_text='export OMP_NUM_THREADS=1\nexport OPENBLAS_NUM_THREADS=1',
    )
