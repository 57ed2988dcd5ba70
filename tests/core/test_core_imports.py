"""The numerical core never imports ``aiida`` (a physicist can use it without a profile)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import aiida_sorep.core as core
names = sorted(module.name for module in pkgutil.iter_modules(core.__path__))
for name in names:
    importlib.import_module(f'aiida_sorep.core.{name}')
leaked = sorted(name for name in sys.modules if name == 'aiida' or name.startswith('aiida.'))
print(','.join(names))
print(','.join(leaked))
"""


def test_importing_the_core_does_not_import_aiida():
    completed = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True, check=True)
    modules, leaked = completed.stdout.splitlines()
    for name in ('smearing', 'fermi', 'edges', 'dos', 'features', '_batch', '_validation'):
        assert name in modules.split(',')
    assert leaked == '', f'aiida_sorep.core imports aiida: {leaked}'
