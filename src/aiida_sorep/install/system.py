"""System packages: Debian's Quantum ESPRESSO (pw.x 6.7) and the OpenBLAS it should link to.

Debian's ``pw.x`` links the reference BLAS through the alternatives system; with Debian's
``libopenblas0-serial`` installed, the alternative points to OpenBLAS and single shots run up to
2.6x faster. Installing needs root (``apt-get``); without root a clear message says what to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

APT_PACKAGES: tuple[str, ...] = ('quantum-espresso', 'libopenblas0-serial')
"""Debian packages that provide pw.x (with projwfc.x and dos.x) and a fast serial BLAS."""


class SystemSetupError(RuntimeError):
    """Raised when a system requirement is missing and cannot be installed."""


def is_root() -> bool:
    """Return whether the current process runs as root (needed for ``apt-get install``)."""
    return os.geteuid() == 0


def find_executable(name: str = 'pw.x', path: str | None = None) -> str | None:
    """Return the absolute path of ``name`` on ``path`` (default ``$PATH``), or ``None``."""
    return shutil.which(name, path=path)


def missing_debian_packages(packages: Sequence[str] = APT_PACKAGES) -> list[str]:
    """Return the Debian packages of ``packages`` that are not installed (empty if dpkg is absent)."""
    if shutil.which('dpkg-query') is None:
        return []
    missing = []
    for package in packages:
        result = subprocess.run(
            ['dpkg-query', '-W', '-f=${Status}', package], capture_output=True, text=True, check=False
        )
        if 'install ok installed' not in result.stdout:
            missing.append(package)
    return missing


def ensure_pw_executable(
    *,
    install: bool = True,
    root: bool | None = None,
    path: str | None = None,
    echo: Callable[[str], object] = print,
) -> str:
    """Return the path of ``pw.x``, installing Debian's ``quantum-espresso`` (and OpenBLAS) if needed.

    :param install: try ``apt-get install`` when something is missing.
    :param root: whether we may run ``apt-get`` (default: whether the process is root).
    :param path: search path for executables (default ``$PATH``).
    :raises SystemSetupError: if pw.x is missing and cannot be installed, with the command to run.
    """
    root = is_root() if root is None else root
    executable = find_executable('pw.x', path)
    missing = missing_debian_packages() if executable is not None else list(APT_PACKAGES)

    if missing and install and root and shutil.which('apt-get'):
        echo(f'Installing Debian packages: {" ".join(missing)} ...')
        env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
        for cmd in (['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', *missing]):
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if result.returncode != 0:
                raise SystemSetupError(f'`{" ".join(cmd)}` failed (exit {result.returncode}):\n{result.stderr.strip()}')
        executable = find_executable('pw.x', path)

    if executable is None:
        how = 'sudo apt-get install -y ' + ' '.join(APT_PACKAGES)
        reason = 'you are not root, so aiida-sorep cannot install it' if not root else 'automatic installation is off'
        raise SystemSetupError(
            f'pw.x (Quantum ESPRESSO) was not found on PATH and {reason}.\n'
            f'Install it with:\n    {how}\n'
            'or put an existing pw.x on PATH, then run the set-up again.'
        )
    if missing and 'libopenblas0-serial' in missing:
        echo('Warning: libopenblas0-serial is not installed: pw.x will use the slow reference BLAS.')
    return executable


def pw_version(executable: str) -> str | None:
    """Return the Quantum ESPRESSO version string of ``executable`` from its Debian package, if known."""
    if shutil.which('dpkg-query') is None:
        return None
    result = subprocess.run(
        ['dpkg-query', '-W', '-f=${Version}', 'quantum-espresso'], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None
