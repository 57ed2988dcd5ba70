"""One call that brings a machine from nothing to a ready aiida-sorep profile.

Order matters: the configuration folder is checked *before* ``aiida`` is imported, because
``aiida`` creates it at import time.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable

from .profile import DEFAULT_PROFILE, PW_CODE_LABEL, SetupReport, check_writable, config_dir

PATCHED_CODE_LABEL = 'pw-sorep'
PYTHON_CODE_LABEL = 'sorep-python'
"""Code for this Python (runs the ``sorep.training`` CalcJob)."""


def patched_pw_executable() -> pathlib.Path:
    """Where ``qe/build.sh`` installs the patched serial pw.x (``$AIIDA_SOREP_QE_PREFIX/bin/pw.x``)."""
    prefix = os.environ.get('AIIDA_SOREP_QE_PREFIX', str(pathlib.Path.home() / '.local' / 'aiida-sorep-qe'))
    return pathlib.Path(prefix).expanduser() / 'bin' / 'pw.x'


def setup_environment(
    profile_name: str = DEFAULT_PROFILE,
    *,
    reuse_profile: bool = False,
    install_system: bool = True,
    echo: Callable[[str], object] = print,
) -> SetupReport:
    """Install pw.x if needed, fetch the pseudopotentials, and set up profile, computer, codes and family.

    Idempotent: a second call finds everything in place and creates nothing.

    :raises SystemSetupError, PseudoSetupError, ProfileSetupError: with the reason and the fix.
    """
    from .pseudos import ensure_pseudo_files
    from .system import ensure_pw_executable

    check_writable(config_dir())
    executable = ensure_pw_executable(install=install_system, echo=echo)
    pseudo_folder = ensure_pseudo_files(echo=echo)

    from .profile import ensure_code, ensure_localhost, ensure_profile
    from .pseudos import FAMILY_LABEL, install_family

    profile, profile_created = ensure_profile(profile_name, reuse=reuse_profile, echo=echo)
    _, computer_created = ensure_localhost(echo=echo)
    _, code_created = ensure_code(executable, PW_CODE_LABEL, echo=echo)

    patched = patched_pw_executable()
    if patched.is_file():
        ensure_code(str(patched), PATCHED_CODE_LABEL, echo=echo)
    ensure_code(sys.executable, PYTHON_CODE_LABEL, 'sorep.training', echo=echo)

    from aiida.common.exceptions import NotExistent
    from aiida.orm import Group

    try:
        Group.collection.get(label=FAMILY_LABEL)
        family_created = False
    except NotExistent:
        family_created = True
    install_family(pseudo_folder, echo=echo)

    return SetupReport(
        profile=profile.name,
        config_dir=str(config_dir()),
        profile_created=profile_created,
        computer_created=computer_created,
        code_created=code_created,
        family_created=family_created,
        code_label=f'{PW_CODE_LABEL}@localhost',
    )
