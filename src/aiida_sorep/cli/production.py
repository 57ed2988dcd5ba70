"""``aiida-sorep setup-production``: a PostgreSQL + RabbitMQ profile for campaigns run by the daemon.

Register in the root group with ``cmd_root.add_command(cmd_setup_production)``.
"""

from __future__ import annotations

import click

from .utils import echo_failed


@click.command('setup-production')
@click.option(
    '-p', '--profile', 'profile_name', default='sorep-prod', show_default=True, help='Name of the AiiDA profile.'
)
@click.option('--postgres-hostname', default='127.0.0.1', show_default=True, help='Host of the PostgreSQL server.')
@click.option('--postgres-port', default=5432, show_default=True, type=int, help='Port of the PostgreSQL server.')
@click.option(
    '--postgres-username',
    default='postgres',
    show_default=True,
    help='PostgreSQL superuser that creates the role and database of the profile.',
)
@click.option('--postgres-password', default=None, help='Password of that superuser (none for trust/peer auth).')
@click.option(
    '--install-services/--no-install-services',
    default=True,
    show_default=True,
    help="Install Debian's postgresql and rabbitmq-server with apt-get when missing (needs root).",
)
@click.option(
    '--install-system/--no-install-system',
    default=True,
    show_default=True,
    help="Install Debian's quantum-espresso when pw.x is missing (needs root).",
)
@click.option('--set-default', is_flag=True, help='Make it the default profile of the configuration folder.')
def cmd_setup_production(
    profile_name: str,
    postgres_hostname: str,
    postgres_port: int,
    postgres_username: str,
    postgres_password: str | None,
    install_services: bool,
    install_system: bool,
    set_default: bool,
) -> None:
    """Create a production profile: PostgreSQL storage, RabbitMQ broker, computer, pw.x code, pseudos.

    Starts PostgreSQL and RabbitMQ when they are installed but stopped, and installs them from Debian's
    packages when missing (root only). Idempotent: run it again and it only checks. Then start the daemon
    with `verdi -p PROFILE daemon start 2` and submit with `aiida-sorep campaign submit`.
    """
    from aiida_sorep.install.profile import ProfileSetupError
    from aiida_sorep.install.pseudos import PseudoSetupError
    from aiida_sorep.install.services import ServiceSetupError, ensure_production_profile
    from aiida_sorep.install.system import SystemSetupError

    try:
        report = ensure_production_profile(
            profile_name,
            postgres_host=postgres_hostname,
            postgres_port=postgres_port,
            postgres_user=postgres_username,
            postgres_password=postgres_password,
            install_services=install_services,
            install_system=install_system,
            set_default=set_default,
            echo=click.echo,
        )
    except (ServiceSetupError, SystemSetupError, PseudoSetupError, ProfileSetupError) as exc:
        echo_failed(str(exc))

    for service in report.services:
        action = 'installed and started' if service.installed_now else 'started' if service.started_now else 'running'
        click.echo(f'{service.name:<10} {service.address:<16} {action}')
    created = [
        what
        for what, flag in (
            (f'profile `{report.profile}` (database `{report.database}`)', report.profile_created),
            ('computer `localhost`', report.setup.computer_created),
            (f'code `{report.setup.code_label}`', report.setup.code_created),
            ('pseudopotential family', report.setup.family_created),
        )
        if flag
    ]
    click.secho('[OK] ', fg='green', bold=True, nl=False)
    click.echo(f'production profile `{report.profile}` in {report.config_dir} is ready; ', nl=False)
    click.echo(f'created: {", ".join(created)}' if created else 'everything was already in place.')
    click.echo(f'Next: verdi -p {report.profile} daemon start 2')
