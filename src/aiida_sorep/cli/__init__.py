"""Command line interface ``aiida-sorep``, in the style of ``verdi`` and ``aiida-pseudo``.

Heavy imports (``aiida``, numpy, the workflows) happen inside the commands so that
``aiida-sorep --help`` is instant.
"""

from __future__ import annotations

import click

from .utils import echo_failed


@click.group('aiida-sorep', context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='aiida-sorep')
def cmd_root() -> None:
    """Spectral operator representations (SOREPs) of crystals with AiiDA."""


@cmd_root.command('setup')
@click.option('-p', '--profile', 'profile_name', default='sorep', show_default=True, help='AiiDA profile to use.')
@click.option('--reuse-profile', is_flag=True, help='Accept an existing profile that aiida-sorep did not create.')
@click.option(
    '--install-system/--no-install-system',
    default=True,
    show_default=True,
    help="Install Debian's quantum-espresso and OpenBLAS with apt-get when pw.x is missing (needs root).",
)
def cmd_setup(profile_name: str, reuse_profile: bool, install_system: bool) -> None:
    """Install pw.x and the pseudopotentials, and set up the profile, computer and codes.

    Idempotent: run it again and it only checks. The profile is the embedded default (SQLite
    storage, no broker) in the AiiDA configuration folder given by AIIDA_PATH.
    """
    from aiida_sorep.install.environment import setup_environment
    from aiida_sorep.install.profile import ProfileSetupError
    from aiida_sorep.install.pseudos import FAMILY_LABEL, PseudoSetupError
    from aiida_sorep.install.system import SystemSetupError

    try:
        report = setup_environment(
            profile_name, reuse_profile=reuse_profile, install_system=install_system, echo=click.echo
        )
    except (SystemSetupError, PseudoSetupError, ProfileSetupError) as exc:
        echo_failed(str(exc))

    created = [
        what
        for what, flag in (
            (f'profile `{report.profile}`', report.profile_created),
            ('computer `localhost`', report.computer_created),
            (f'code `{report.code_label}`', report.code_created),
            (f'family `{FAMILY_LABEL}`', report.family_created),
        )
        if flag
    ]
    click.secho('[OK] ', fg='green', bold=True, nl=False)
    click.echo(f'profile `{report.profile}` in {report.config_dir} is ready; ', nl=False)
    click.echo(f'created: {", ".join(created)}' if created else 'everything was already in place.')


def _register_commands() -> None:
    """Attach the commands that live in their own modules (each imports its heavy dependencies lazily)."""
    from .campaign import cmd_campaign
    from .production import cmd_setup_production
    from .screening import cmd_demo, cmd_screening
    from .singleshot import cmd_singleshot

    for command in (cmd_singleshot, cmd_screening, cmd_setup_production, cmd_campaign):
        cmd_root.add_command(command)
    # The project's main job (README command 1) is the screening demo, also reachable as `screening demo`.
    cmd_root.add_command(cmd_demo, name='demo')


_register_commands()
