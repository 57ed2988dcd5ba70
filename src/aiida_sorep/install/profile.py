"""AiiDA profile, computer and codes for aiida-sorep.

The default profile is the *embedded* one that ``verdi presto --no-broker`` makes: SQLite storage
(``core.sqlite_dos``) and no broker, so processes run in the current interpreter with
``aiida.engine.run``. It lives in the configuration folder given by ``AIIDA_PATH`` (the README's
command sets a project-local one). Profiles created by aiida-sorep are recorded in
``<config folder>/aiida-sorep.json``: an existing profile of the same name that is not recorded
there is a *clash* and is only used when the caller says so (``reuse=True``).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MARKER_FILENAME = 'aiida-sorep.json'
DEFAULT_PROFILE = 'sorep'
COMPUTER_LABEL = 'localhost'
PW_CODE_LABEL = 'pw'
PW_PREPEND_TEXT = 'export OMP_NUM_THREADS=1\nexport OPENBLAS_NUM_THREADS=1'
"""Serial BLAS and no OpenMP: the 2-core laptop default; clusters configure their own codes."""


class ProfileSetupError(RuntimeError):
    """Raised when the profile, computer or code cannot be set up, with the reason and the fix."""


@dataclass(frozen=True)
class SetupReport:
    """What the set-up found or created (each flag is True when it was created in this call)."""

    profile: str
    config_dir: str
    profile_created: bool
    computer_created: bool
    code_created: bool
    family_created: bool
    code_label: str


def config_dir() -> pathlib.Path:
    """Return the AiiDA configuration folder that ``aiida`` will use, without importing ``aiida``.

    Same rule as aiida-core: the first entry of the colon-separated ``AIIDA_PATH`` that holds an
    existing ``.aiida`` folder, else the last entry; ``~/.aiida`` when ``AIIDA_PATH`` is unset.
    (``aiida`` creates this folder when it is imported, so it must be checked before.)
    """
    entries = [entry for entry in os.environ.get('AIIDA_PATH', '').split(':') if entry]
    if not entries:
        return pathlib.Path('~/.aiida').expanduser()
    candidates = []
    for entry in entries:
        path = pathlib.Path(entry).expanduser()
        candidates.append(path if path.name == '.aiida' else path / '.aiida')
    return next((path for path in candidates if path.is_dir()), candidates[-1])


def check_writable(directory: pathlib.Path) -> None:
    """Create ``directory`` if needed and check that a file can be written in it.

    A real write is the only reliable test (``os.access`` says yes to root on read-only mounts).

    :raises ProfileSetupError: with the reason and the fix.
    """
    probe = directory / '.aiida-sorep-write-test'
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_text('ok')
        probe.unlink()
    except OSError as exc:
        raise ProfileSetupError(
            f'the AiiDA configuration folder `{directory}` is not writable ({exc.strerror or exc}).\n'
            'Point AIIDA_PATH to a folder you can write to, e.g. `export AIIDA_PATH=$PWD`, and run again.'
        ) from exc


def _read_marker(directory: pathlib.Path) -> dict[str, Any]:
    path = directory / MARKER_FILENAME
    if path.is_file():
        return json.loads(path.read_text())
    return {'profiles': []}


def _write_marker(directory: pathlib.Path, marker: dict[str, Any]) -> None:
    (directory / MARKER_FILENAME).write_text(json.dumps(marker, indent=2) + '\n')


def ensure_profile(
    name: str = DEFAULT_PROFILE,
    *,
    reuse: bool = False,
    email: str = 'aiida-sorep@localhost',
    echo: Callable[[str], object] = print,
) -> tuple[Any, bool]:
    """Load the profile ``name``, creating an embedded (SQLite, no broker) one if it does not exist.

    :param reuse: accept an existing profile that aiida-sorep did not create.
    :return: the loaded profile and whether it was created now.
    :raises ProfileSetupError: if the folder is not writable or an unrelated profile has the same name.
    """
    from aiida.manage.configuration import create_profile, get_config, load_profile

    directory = config_dir()
    check_writable(directory)
    config = get_config(create=True)

    marker = _read_marker(directory)
    created = False
    if name in config.profile_names:
        if name not in marker['profiles'] and not reuse:
            raise ProfileSetupError(
                f'a profile named `{name}` already exists in `{directory}` and was not created by aiida-sorep.\n'
                f'Choose another name (`--profile OTHER`), or reuse it explicitly (`--reuse-profile`): aiida-sorep '
                f'then adds computer `{COMPUTER_LABEL}`, code `{PW_CODE_LABEL}@{COMPUTER_LABEL}` and the '
                'pseudopotential family to it.'
            )
    else:
        echo(f'Creating AiiDA profile `{name}` (SQLite storage, no broker) in {directory}')
        profile = create_profile(
            config,
            name=name,
            email=email,
            storage_backend='core.sqlite_dos',
            storage_config={},
            broker_backend=None,
            broker_config=None,
        )
        config.set_option('runner.poll.interval', 1, scope=profile.name)
        if config.default_profile_name is None or config.default_profile_name not in config.profile_names:
            config.set_default_profile(profile.name, overwrite=True)
        config.store()
        marker['profiles'] = sorted({*marker['profiles'], name})
        _write_marker(directory, marker)
        created = True

    profile = load_profile(name, allow_switch=True)
    return profile, created


def ensure_local_computer(
    label: str,
    *,
    scheduler_type: str,
    description: str,
    workdir: str | None = None,
    scratch_suffix: str = '',
    check: Callable[[Any], None] | None = None,
    echo: Callable[[str], object] = print,
) -> tuple[Any, bool]:
    """Return the computer ``label`` on this machine (core.local transport), creating it if needed.

    A new computer gets ``scheduler_type``, one MPI process per machine, a 1 s job poll and no safe interval.
    An existing one is passed to ``check`` (which raises if it does not fit) and configured if it is not yet.

    :param workdir: scratch folder of the jobs (default ``<AiiDA config folder>/scratch/<profile><scratch_suffix>``).
    :returns: ``(computer, created)``.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.manage.configuration import get_config, get_profile

    try:
        computer = orm.load_computer(label)
    except NotExistent:
        scratch = pathlib.Path(get_config().dirpath) / 'scratch'
        workdir = workdir or str(scratch / f'{get_profile().name}{scratch_suffix}')
        echo(f'Setting up computer `{label}` (core.local, {scheduler_type}), work directory {workdir}')
        computer = orm.Computer(
            label=label,
            hostname='localhost',
            description=description,
            transport_type='core.local',
            scheduler_type=scheduler_type,
            workdir=workdir,
        ).store()
        computer.set_default_mpiprocs_per_machine(1)
        computer.configure(safe_interval=0)
        computer.set_minimum_job_poll_interval(1)
        return computer, True

    if check is not None:
        check(computer)
    if not computer.is_configured:
        computer.configure(safe_interval=0)
    return computer, False


def ensure_localhost(echo: Callable[[str], object] = print) -> tuple[Any, bool]:
    """Return the ``localhost`` computer (core.local transport, core.direct scheduler), creating it if needed."""

    def check(computer: Any) -> None:
        if computer.transport_type != 'core.local':
            raise ProfileSetupError(
                f'computer `{COMPUTER_LABEL}` exists but uses transport `{computer.transport_type}`, not core.local.'
            )

    return ensure_local_computer(
        COMPUTER_LABEL,
        scheduler_type='core.direct',
        description='This machine, set up by aiida-sorep',
        check=check,
        echo=echo,
    )


def ensure_code(
    executable: str,
    label: str = PW_CODE_LABEL,
    plugin: str = 'quantumespresso.pw',
    *,
    echo: Callable[[str], object] = print,
) -> tuple[Any, bool]:
    """Return the serial ``InstalledCode`` ``label@localhost`` for ``executable``, creating it if needed.

    :raises ProfileSetupError: if a code with that label points to another executable that no longer exists.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    computer, _ = ensure_localhost(echo=echo)
    full_label = f'{label}@{computer.label}'
    try:
        code = orm.load_code(full_label)
    except NotExistent:
        echo(f'Setting up code `{full_label}` -> {executable}')
        code = orm.InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=executable,
            default_calc_job_plugin=plugin,
            with_mpi=False,
            prepend_text=PW_PREPEND_TEXT,
            description=f'Serial {pathlib.Path(executable).name} set up by aiida-sorep',
        ).store()
        return code, True

    if not pathlib.Path(str(code.filepath_executable)).exists():
        raise ProfileSetupError(
            f'code `{full_label}` points to `{code.filepath_executable}`, which does not exist any more. '
            f'Delete the code (`verdi code delete {full_label}`) and run the set-up again.'
        )
    return code, False
