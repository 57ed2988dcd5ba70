"""A single shot through a real batch scheduler: the one-node SLURM of ``install/slurm.sh`` and ``core.slurm``."""

from __future__ import annotations

import math
import subprocess

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sorep.install.slurm import ensure_local_slurm, ensure_slurm_code, ensure_slurm_computer


@pytest.fixture(scope='module')
def slurm_code(aiida_profile, pw_executable):
    """``pw@slurm-localhost`` on a running local SLURM (started by the project's script if needed)."""
    ensure_local_slurm(echo=lambda *_: None)
    computer, _ = ensure_slurm_computer(echo=lambda *_: None)
    code, _ = ensure_slurm_code(pw_executable, computer)
    return code


def test_local_slurm_is_idempotent(slurm_code):
    """A second run of the script finds SLURM up; the partition has the node idle or in use."""
    line = ensure_local_slurm(echo=lambda *_: None)
    assert line.startswith('==> SLURM is up: debug')
    states = subprocess.run(['sinfo', '-h', '-o', '%t'], capture_output=True, text=True, check=True).stdout.split()
    assert set(states) <= {'idle', 'mix', 'alloc'}
    computer, created = ensure_slurm_computer()
    assert not created and computer.scheduler_type == 'core.slurm' and computer.transport_type == 'core.local'


def test_singleshot_through_slurm(slurm_code, pseudo_family):
    """The single-shot work chain runs pw.x as a SLURM job and finishes OK with its outputs."""
    from ase.build import bulk

    from aiida_sorep.workflows.singleshot import SingleShotWorkChain

    structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.43))
    builder = SingleShotWorkChain.get_builder_from_protocol(
        slurm_code, structure, protocol='fast', overrides={'kpoints_distance': 0.6}
    )
    results, node = run_get_node(builder)

    assert node.is_finished_ok, node.exit_message
    (calculation,) = [child for child in node.called if isinstance(child, orm.CalcJobNode)]
    assert calculation.computer.scheduler_type == 'core.slurm'
    job_id = calculation.get_job_id()
    assert job_id is not None and job_id.isdigit()
    # The submission script was a SLURM batch script, and SLURM reported the job's final state to AiiDA.
    script = calculation.base.repository.get_object_content('_aiidasubmit.sh')
    assert '#SBATCH --job-name=' in script
    assert calculation.get_last_job_info().job_id == job_id
    assert math.isfinite(results['fermi']['fermi_energy'])
