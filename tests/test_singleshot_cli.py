"""Tests of the ``singleshot`` click command (``aiida_sorep.cli.singleshot:cmd_singleshot``)."""

from __future__ import annotations

from ase.build import bulk
from click.testing import CliRunner

from aiida_sorep.cli.singleshot import cmd_singleshot


def test_singleshot_from_file(aiida_profile, pw_code, pseudo_family, tmp_path):
    """A structure file runs through the work chain with the real pw.x and the results are printed."""
    path = tmp_path / 'si.xyz'
    bulk('Si', 'diamond', a=5.431).write(path, format='extxyz')
    arguments = [str(path), '-p', aiida_profile.name, '-X', pw_code.full_label, '--protocol', 'fast']
    result = CliRunner().invoke(cmd_singleshot, [*arguments, '--kpoints-distance', '0.5'])
    assert result.exit_code == 0, result.output
    assert 'exit status 0  (Si2)' in result.output
    assert 'VBM / CBM' in result.output
    assert 'features          cbm<' in result.output


def test_singleshot_failures(aiida_profile, pw_code, pseudo_family):
    """Bad arguments end with ``[FAILED]`` and a non-zero exit code, not a traceback."""
    runner = CliRunner()
    result = runner.invoke(cmd_singleshot, ['no-such-file.cif', '-p', aiida_profile.name, '-X', pw_code.full_label])
    assert result.exit_code == 1
    assert '[FAILED]' in result.output
    assert 'neither a structure file' in result.output
    result = runner.invoke(cmd_singleshot, [str(pw_code.pk), '-p', aiida_profile.name, '-X', pw_code.full_label])
    assert result.exit_code == 1
    assert 'not a StructureData' in result.output
    result = runner.invoke(cmd_singleshot, ['1', '-p', aiida_profile.name, '-X', 'nope@nowhere'])
    assert 'no code `nope@nowhere`' in result.output
