"""The README's main job: a real single-shot pw.x calculation on silicon, stored in the profile.

Until the screening WorkChain exists, the main job is one single shot on diamond silicon: pw.x
diagonalises the Kohn-Sham Hamiltonian of the superposition of atomic densities once, in the
subspace of the pseudo-atomic orbitals, and stops.
"""

from __future__ import annotations

import click
import numpy as np

SILICON_LATTICE_PARAMETER = 5.431
"""Room-temperature lattice parameter of diamond silicon, Å."""


def silicon_structure():
    """Return diamond silicon (2-atom primitive cell) as a ``StructureData``."""
    from aiida.orm import StructureData
    from ase.build import bulk

    return StructureData(ase=bulk('Si', 'diamond', a=SILICON_LATTICE_PARAMETER))


def run_silicon_singleshot(code, structure=None):
    """Run a stock-pw.x single shot through ``PwCalculation`` and return ``(results, node)``.

    Settings: ``startingwfc='atomic'``, ``startingpot='atomic'``, ``electron_maxstep=0``,
    ``nbnd`` = number of atomic wavefunctions (8 for two PseudoDojo Si atoms: 3s + 3p each),
    PseudoDojo's *normal* cutoffs, a 4x4x4 Monkhorst-Pack mesh.
    """
    from aiida.engine import run_get_node
    from aiida.orm import Dict, KpointsData, load_group
    from aiida.plugins import CalculationFactory

    from aiida_sorep.install.pseudos import FAMILY_LABEL

    structure = structure or silicon_structure()
    family = load_group(FAMILY_LABEL)
    ecutwfc, ecutrho = family.get_recommended_cutoffs(structure=structure, unit='Ry')
    kpoints = KpointsData()
    kpoints.set_kpoints_mesh([4, 4, 4])

    builder = CalculationFactory('quantumespresso.pw').get_builder()
    builder.code = code
    builder.structure = structure
    builder.pseudos = family.get_pseudos(structure=structure)
    builder.kpoints = kpoints
    builder.parameters = Dict(
        {
            'CONTROL': {'calculation': 'scf'},
            'SYSTEM': {'ecutwfc': ecutwfc, 'ecutrho': ecutrho, 'nbnd': 8},
            'ELECTRONS': {
                'startingwfc': 'atomic',
                'startingpot': 'atomic',
                'electron_maxstep': 0,
                'scf_must_converge': False,
            },
        }
    )
    builder.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    builder.metadata.options.withmpi = False
    builder.metadata.options.max_wallclock_seconds = 600
    builder.metadata.label = 'silicon single shot'
    return run_get_node(builder)


def run_demo(profile_name: str = 'sorep') -> None:
    """Load the profile, run the silicon single shot with the real pw.x and print the stored results."""
    from aiida import load_profile, orm

    load_profile(profile_name, allow_switch=True)
    code = orm.load_code('pw@localhost')

    click.echo(f'Running a single shot on diamond Si with {code.filepath_executable} ...')
    results, node = run_silicon_singleshot(code)

    click.echo(f'CalcJob pk={node.pk}  exit_status={node.exit_status}  ({node.exit_message or "ok"})')
    bands = results['output_band']
    eigenvalues = np.asarray(bands.get_bands())  # (n_kpoints, n_bands), eV
    kpoints = bands.get_kpoints()
    gamma = int(np.argmin(np.linalg.norm(kpoints, axis=1)))
    click.echo(f'BandsData pk={bands.pk}: {eigenvalues.shape[0]} k-points x {eigenvalues.shape[1]} bands (eV)')
    click.echo('Eigenvalues at Gamma (eV): ' + ' '.join(f'{value:8.3f}' for value in eigenvalues[gamma]))
    n_occupied = 4
    vbm = eigenvalues[:, :n_occupied].max()
    cbm = eigenvalues[:, n_occupied:].min()
    click.echo(f'VBM {vbm:.3f} eV, CBM {cbm:.3f} eV, single-shot gap {cbm - vbm:.3f} eV')
