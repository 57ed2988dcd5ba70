"""A one-node SLURM on this machine and the AiiDA computer and code that submit to it.

``slurm.sh`` (next to this module) installs Debian's ``slurm-wlm`` and ``munge`` if needed, writes a one-node
``slurm.conf`` without cgroups or systemd, and starts munged, slurmctld and slurmd. The computer
``slurm-localhost`` then uses the ``core.slurm`` scheduler with the ``core.local`` transport: exactly what a
cluster login node sees, minus SSH. On a real cluster use ``core.ssh_async`` (see ``docs/campaign.md``).
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Callable
from typing import Any

__all__ = (
    'SLURM_COMPUTER_LABEL',
    'SlurmSetupError',
    'ensure_local_slurm',
    'ensure_slurm_code',
    'ensure_slurm_computer',
)

SLURM_COMPUTER_LABEL = 'slurm-localhost'
SCRIPT = pathlib.Path(__file__).with_name('slurm.sh')


class SlurmSetupError(RuntimeError):
    """Raised when the local SLURM cannot be installed or started, with the script's output."""


def ensure_local_slurm(echo: Callable[[str], object] = print, timeout: float = 600) -> str:
    """Run ``slurm.sh`` (idempotent): install, configure and start a one-node SLURM; return its last line.

    :raises SlurmSetupError: with the script's output if it fails (not root, a daemon that does not start, ...).
    """
    result = subprocess.run(['bash', str(SCRIPT)], capture_output=True, text=True, check=False, timeout=timeout)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise SlurmSetupError(f'`bash {SCRIPT}` failed (exit {result.returncode}):\n{output}')
    last = output.splitlines()[-1] if output else ''
    echo(last)
    return last


def ensure_slurm_computer(
    label: str = SLURM_COMPUTER_LABEL,
    *,
    workdir: str | None = None,
    echo: Callable[[str], object] = print,
) -> tuple[Any, bool]:
    """Return the computer ``label`` (core.slurm scheduler, core.local transport), creating it if needed.

    :param workdir: scratch folder of the jobs (default ``<AiiDA config folder>/scratch/<profile>-slurm``).
    """
    from .profile import ensure_local_computer

    def check(computer: Any) -> None:
        if computer.scheduler_type != 'core.slurm':
            raise SlurmSetupError(
                f'computer `{label}` exists with scheduler `{computer.scheduler_type}`, not core.slurm'
            )

    return ensure_local_computer(
        label,
        scheduler_type='core.slurm',
        description='This machine through its local one-node SLURM (install/slurm.sh)',
        workdir=workdir,
        scratch_suffix='-slurm',
        check=check,
        echo=echo,
    )


def ensure_slurm_code(executable: str, computer: Any, label: str = 'pw') -> tuple[Any, bool]:
    """Return the serial ``InstalledCode`` ``label@<computer>`` for ``executable``, creating it if needed."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from .profile import PW_PREPEND_TEXT

    try:
        return orm.load_code(f'{label}@{computer.label}'), False
    except NotExistent:
        code = orm.InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=executable,
            default_calc_job_plugin='quantumespresso.pw',
            with_mpi=False,
            prepend_text=PW_PREPEND_TEXT,
        ).store()
        return code, True
