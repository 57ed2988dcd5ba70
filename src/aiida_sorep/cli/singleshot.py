"""``aiida-sorep singleshot``: run ``SingleShotWorkChain`` on a structure and print its results.

The command object is :data:`cmd_singleshot`; register it with ``cmd_root.add_command(cmd_singleshot)``.
"""

from __future__ import annotations

import click

from .utils import echo_failed

__all__ = ('cmd_singleshot',)


def _load_structure(value: str):
    """Return a ``StructureData``: a stored node (pk or UUID) or a new one read from a file by ASE."""
    import pathlib

    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    path = pathlib.Path(value)
    if path.is_file():
        from ase.io import read

        try:
            return orm.StructureData(ase=read(path))
        except Exception as exception:
            echo_failed(f'ASE could not read a structure from `{path}`: {exception}')
    try:
        node = orm.load_node(int(value) if value.isdigit() else value)
    except (NotExistent, MultipleObjectsError, ValueError):
        echo_failed(f'`{value}` is neither a structure file nor the pk/UUID of a stored node')
    if not isinstance(node, orm.StructureData):
        echo_failed(f'node `{value}` is a {type(node).__name__}, not a StructureData')
    return node


@click.command('singleshot')
@click.argument('structure')
@click.option('-p', '--profile', 'profile_name', default='sorep', show_default=True, help='AiiDA profile to use.')
@click.option('-X', '--code', 'code_label', default='pw@localhost', show_default=True, help='pw.x code (label).')
@click.option(
    '--protocol',
    type=click.Choice(['fast', 'balanced', 'stringent']),
    default='balanced',
    show_default=True,
    help='k-point spacing, cutoffs and smearing (balanced: 0.15 1/Å, as in the SOREP paper).',
)
@click.option('--kpoints-distance', type=float, default=None, help='Override the k-point spacing (1/Å).')
@click.option(
    '--allow-random-wavefunctions',
    is_flag=True,
    help='Accept padding the atomic subspace with random wavefunctions when it is too small (warning 720).',
)
def cmd_singleshot(
    structure: str,
    profile_name: str,
    code_label: str,
    protocol: str,
    kpoints_distance: float | None,
    allow_random_wavefunctions: bool,
) -> None:
    """Run a pw.x single shot on STRUCTURE (a file ASE can read, or a StructureData pk/UUID).

    Prints the Fermi level, band edges and gaps, and the pks of the output nodes.
    """
    from aiida import engine, load_profile, orm
    from aiida.common.exceptions import NotExistent

    from aiida_sorep.workflows.singleshot import SingleShotWorkChain

    try:
        load_profile(profile_name, allow_switch=True)
    except Exception as exception:
        echo_failed(f'cannot load profile `{profile_name}`: {exception}; run `aiida-sorep setup` first')
    try:
        code = orm.load_code(code_label)
    except NotExistent:
        echo_failed(f'no code `{code_label}`: run `aiida-sorep setup` or pass --code')

    node = _load_structure(structure)
    overrides: dict = {}
    if kpoints_distance is not None:
        overrides['kpoints_distance'] = kpoints_distance
    if allow_random_wavefunctions:
        overrides['singleshot'] = {'allow_random_wavefunctions': True}
    try:
        builder = SingleShotWorkChain.get_builder_from_protocol(code, node, protocol=protocol, overrides=overrides)
        results, workchain = engine.run_get_node(builder)
    except ValueError as exception:
        echo_failed(str(exception))

    if not workchain.is_finished_ok and 'fermi' not in results:
        echo_failed(f'SingleShotWorkChain<{workchain.pk}> failed: [{workchain.exit_status}] {workchain.exit_message}')
    fermi = results['fermi'].get_dict()
    click.echo(f'SingleShotWorkChain<{workchain.pk}> exit status {workchain.exit_status}  ({node.get_formula()})')
    click.echo(f'  pw.x flavour      {fermi["single_shot_flavour"]}')
    click.echo(f'  bands / k-points  {fermi["number_of_bands"]} / {len(results["output_band"].get_kpoints())}')
    click.echo(f'  Fermi level       {fermi["fermi_energy"]:.4f} eV  ({fermi["method"]}, {fermi["smearing"]})')
    if fermi['is_metal']:
        click.echo('  metal             yes')
    else:
        click.echo(f'  VBM / CBM         {fermi["vbm"]:.4f} / {fermi["cbm"]:.4f} eV')
        click.echo(f'  gap (direct)      {fermi["band_gap"]:.4f} eV ({fermi["direct_gap"]:.4f} eV)')
    features = ', '.join(f'{name}<{feature.pk}>' for name, feature in sorted(results['features'].items()))
    click.echo(f'  outputs           output_band<{results["output_band"].pk}> fermi<{results["fermi"].pk}>')
    click.echo(f'  features          {features}')
