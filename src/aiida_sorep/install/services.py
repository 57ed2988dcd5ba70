"""The production services: PostgreSQL (storage) and RabbitMQ (broker), and a profile that uses them.

A campaign of thousands of single shots runs through the AiiDA *daemon*, which needs a message broker
(RabbitMQ) and a storage that many worker processes can write concurrently (PostgreSQL). This module

* detects the two services on ``127.0.0.1`` (ports 5432 and 5672), starts them when they are installed
  but stopped, and installs them from Debian's packages (``postgresql``, ``rabbitmq-server``) when they are
  missing (root only; otherwise a clear message says what to run);
* creates a PostgreSQL role and database for a profile, the way ``verdi presto --use-postgres`` does
  (``aiida-<profile>``, random password), through ``psycopg`` over TCP, falling back, as root, to
  ``runuser -u postgres -- psql`` over the local socket (Debian's default *peer* authentication);
* creates the ``core.psql_dos`` + ``core.rabbitmq`` profile and hands it to
  :func:`aiida_sorep.install.environment.setup_environment`, which adds the computer, the codes and the
  pseudopotential family.

Everything is idempotent: a second call finds the services running and the profile in place.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = (
    'PostgresAdmin',
    'ProductionProfileReport',
    'ServiceSetupError',
    'ServiceStatus',
    'disable_rabbitmq_consumer_timeout',
    'drop_profile_database',
    'ensure_postgres',
    'ensure_production_profile',
    'ensure_rabbitmq',
    'port_open',
    'rabbitmq_consumer_timeout',
)

POSTGRES_HOST = '127.0.0.1'
POSTGRES_PORT = 5432
RABBITMQ_HOST = '127.0.0.1'
RABBITMQ_PORT = 5672
RABBITMQ_CONFIG: dict[str, Any] = {
    'broker_protocol': 'amqp',
    'broker_username': 'guest',
    'broker_password': 'guest',
    'broker_host': RABBITMQ_HOST,
    'broker_port': RABBITMQ_PORT,
    'broker_virtual_host': '',
}
"""Broker configuration of the profile: Debian's RabbitMQ accepts guest/guest from localhost."""

DAEMON_TIMEOUT = 20
"""Seconds the daemon client waits for circus (``daemon.timeout``, default 2 s) in the production profile."""
START_TIMEOUT = 120.0
"""Seconds to wait for a started service to accept connections (RabbitMQ's Erlang VM can take ~20 s)."""


class ServiceSetupError(RuntimeError):
    """Raised when a service is missing or down and cannot be installed or started, with the fix."""


@dataclass(frozen=True)
class ServiceStatus:
    """What :func:`ensure_postgres` / :func:`ensure_rabbitmq` found and did.

    :ivar name: ``'postgresql'`` or ``'rabbitmq'``.
    :ivar address: ``host:port`` that was checked.
    :ivar installed_now: the Debian package was installed in this call.
    :ivar started_now: the service was started in this call.
    """

    name: str
    address: str
    installed_now: bool
    started_now: bool


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.5)
    return False


def _is_root() -> bool:
    return os.geteuid() == 0


def _apt_install(packages: Sequence[str], echo: Callable[[str], object]) -> None:
    """Install Debian ``packages`` with ``apt-get`` (root only)."""
    command = f'apt-get install -y {" ".join(packages)}'
    if not _is_root():
        raise ServiceSetupError(
            f'{", ".join(packages)} is not installed and installing it needs root. Run as root:\n'
            f'    apt-get update && {command}\nthen run this command again.'
        )
    if shutil.which('apt-get') is None:
        raise ServiceSetupError(
            f'{", ".join(packages)} is not installed and this is not a Debian/Ubuntu system (no apt-get): install '
            'it with your package manager and start it, then run this command again.'
        )
    echo(f'Installing {", ".join(packages)} with apt-get')
    env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    for args in (['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', *packages]):
        result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceSetupError(f'`{" ".join(args)}` failed (exit {result.returncode}):\n{result.stderr.strip()}')


def _run(args: Sequence[str], what: str) -> None:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceSetupError(
            f'{what} failed: `{" ".join(args)}` exited with {result.returncode}:\n'
            f'{(result.stderr or result.stdout).strip()}'
        )


def postgres_clusters() -> list[tuple[str, str]]:
    """Return the Debian PostgreSQL clusters as ``[(version, name), ...]`` (from ``/etc/postgresql``)."""
    root = pathlib.Path('/etc/postgresql')
    if not root.is_dir():
        return []
    return sorted(
        (version.name, cluster.name)
        for version in root.iterdir()
        if version.is_dir()
        for cluster in version.iterdir()
        if (cluster / 'postgresql.conf').is_file()
    )


def ensure_postgres(
    host: str = POSTGRES_HOST,
    port: int = POSTGRES_PORT,
    *,
    install: bool = True,
    echo: Callable[[str], object] = print,
) -> ServiceStatus:
    """Make sure PostgreSQL accepts connections on ``host:port``: start it, or install it first, if needed.

    Starting uses Debian's ``pg_ctlcluster --skip-systemctl-redirect VERSION NAME start`` (works without
    systemd, e.g. in containers). Installing uses ``apt-get install -y postgresql`` (root only).

    :raises ServiceSetupError: if it is not running and cannot be installed or started, with the command to run.
    """
    address = f'{host}:{port}'
    if port_open(host, port):
        return ServiceStatus('postgresql', address, False, False)

    installed_now = False
    if not postgres_clusters():
        if not install:
            raise ServiceSetupError(
                f'PostgreSQL is not installed (nothing listens on {address}). Run as root: '
                'apt-get install -y postgresql'
            )
        _apt_install(['postgresql'], echo)
        installed_now = True
        if not postgres_clusters():
            raise ServiceSetupError('postgresql was installed but no cluster exists: run `pg_createcluster 15 main`.')

    if not _is_root():
        raise ServiceSetupError(
            f'PostgreSQL is installed but not running on {address}. Start it as root: '
            + '; '.join(f'pg_ctlcluster --skip-systemctl-redirect {v} {n} start' for v, n in postgres_clusters())
        )
    for version, name in postgres_clusters():
        echo(f'Starting PostgreSQL cluster {version}/{name}')
        # Exit code 2 means "already running", which is fine (another cluster may own the port we check).
        result = subprocess.run(
            ['pg_ctlcluster', '--skip-systemctl-redirect', version, name, 'start'],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 2):
            raise ServiceSetupError(
                f'`pg_ctlcluster {version} {name} start` failed (exit {result.returncode}):\n{result.stderr.strip()}'
            )
    if not _wait_for_port(host, port, START_TIMEOUT):
        raise ServiceSetupError(
            f'PostgreSQL was started but does not accept connections on {address} after {START_TIMEOUT:.0f} s: '
            'check `pg_lsclusters` and the log in /var/log/postgresql/.'
        )
    return ServiceStatus('postgresql', address, installed_now, True)


def ensure_rabbitmq(
    host: str = RABBITMQ_HOST,
    port: int = RABBITMQ_PORT,
    *,
    install: bool = True,
    echo: Callable[[str], object] = print,
) -> ServiceStatus:
    """Make sure RabbitMQ accepts AMQP connections on ``host:port``: start it, or install it first, if needed.

    Starting uses ``rabbitmq-server -detached`` (no systemd needed). Installing uses
    ``apt-get install -y rabbitmq-server`` (root only).

    :raises ServiceSetupError: if it is not running and cannot be installed or started, with the command to run.
    """
    address = f'{host}:{port}'
    if port_open(host, port):
        return ServiceStatus('rabbitmq', address, False, False)

    installed_now = False
    if shutil.which('rabbitmq-server', path=f'{os.environ.get("PATH", "")}:/usr/sbin:/sbin') is None:
        if not install:
            raise ServiceSetupError(
                f'RabbitMQ is not installed (nothing listens on {address}). Run as root: '
                'apt-get install -y rabbitmq-server'
            )
        _apt_install(['rabbitmq-server'], echo)
        installed_now = True
        # Debian's package starts the service where systemd runs it; the port check below decides.
        if _wait_for_port(host, port, 5.0):
            return ServiceStatus('rabbitmq', address, installed_now, True)

    if not _is_root():
        raise ServiceSetupError(
            f'RabbitMQ is installed but not running on {address}. Start it as root: ' + ('rabbitmq-server -detached')
        )
    executable = shutil.which('rabbitmq-server', path=f'{os.environ.get("PATH", "")}:/usr/sbin:/sbin')
    echo('Starting RabbitMQ (rabbitmq-server -detached)')
    _run([str(executable), '-detached'], 'starting RabbitMQ')
    if not _wait_for_port(host, port, START_TIMEOUT):
        raise ServiceSetupError(
            f'RabbitMQ was started but does not accept connections on {address} after {START_TIMEOUT:.0f} s: '
            'check /var/log/rabbitmq/.'
        )
    return ServiceStatus('rabbitmq', address, installed_now, True)


RABBITMQ_ADVANCED_CONFIG = pathlib.Path('/etc/rabbitmq/advanced.config')
CONSUMER_TIMEOUT_SETTING = '[{rabbit, [{consumer_timeout, undefined}]}].'
"""RabbitMQ >= 3.8.15 closes a channel whose task is unacknowledged for 30 min (``consumer_timeout``); an AiiDA
process holds its task for its whole life, so a long workflow would be lost. AiiDA's docs ask to disable it."""


def rabbitmq_consumer_timeout() -> str | None:
    """Return RabbitMQ's current ``consumer_timeout`` (``'undefined'`` when disabled), or None if unknown."""
    rabbitmqctl = shutil.which('rabbitmqctl', path=f'{os.environ.get("PATH", "")}:/usr/sbin:/sbin')
    if rabbitmqctl is None:
        return None
    result = subprocess.run(
        [rabbitmqctl, 'eval', 'application:get_env(rabbit, consumer_timeout).'],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    value = result.stdout.strip()
    return 'undefined' if value == 'undefined' else value.removeprefix('{ok,').removesuffix('}')


def disable_rabbitmq_consumer_timeout(echo: Callable[[str], object] = print) -> bool:
    """Disable RabbitMQ's ``consumer_timeout`` now (``rabbitmqctl eval``) and after restarts (``advanced.config``).

    Root only; the running broker is not restarted. An existing ``advanced.config`` is left alone (a message says
    what to add).

    :return: whether the timeout is disabled after the call.
    """
    if rabbitmq_consumer_timeout() == 'undefined':
        return True
    if not _is_root():
        echo(
            'RabbitMQ closes tasks held for more than 30 min (consumer_timeout); as root, add '
            f'`{CONSUMER_TIMEOUT_SETTING}` to {RABBITMQ_ADVANCED_CONFIG} and restart RabbitMQ.'
        )
        return False
    rabbitmqctl = shutil.which('rabbitmqctl', path=f'{os.environ.get("PATH", "")}:/usr/sbin:/sbin')
    echo('Disabling RabbitMQ consumer_timeout (long-running AiiDA processes hold their task for hours)')
    subprocess.run(
        [str(rabbitmqctl), 'eval', 'application:set_env(rabbit, consumer_timeout, undefined).'],
        capture_output=True,
        check=False,
    )
    if not RABBITMQ_ADVANCED_CONFIG.exists() and RABBITMQ_ADVANCED_CONFIG.parent.is_dir():
        RABBITMQ_ADVANCED_CONFIG.write_text(CONSUMER_TIMEOUT_SETTING + '\n')
    elif 'consumer_timeout' not in RABBITMQ_ADVANCED_CONFIG.read_text():
        echo(f'Add `{{consumer_timeout, undefined}}` to the rabbit section of {RABBITMQ_ADVANCED_CONFIG}.')
    return rabbitmq_consumer_timeout() == 'undefined'


class PostgresAdmin:
    """Run administrative SQL as the PostgreSQL superuser.

    First over TCP with ``psycopg`` as ``user`` (works with *trust* or a password); if that is refused and we
    are root, through ``runuser -u postgres -- psql`` on the local socket (Debian's default *peer* auth).
    """

    def __init__(
        self, host: str = POSTGRES_HOST, port: int = POSTGRES_PORT, user: str = 'postgres', password: str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.mode = self._detect_mode()

    def _connect(self):
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname='template1',
            autocommit=True,
            connect_timeout=10,
        )

    def _detect_mode(self) -> str:
        import psycopg

        try:
            with self._connect():
                return 'psycopg'
        except psycopg.OperationalError as exception:
            if _is_root() and shutil.which('runuser') and shutil.which('psql'):
                return 'runuser'
            raise ServiceSetupError(
                f'cannot connect to PostgreSQL on {self.host}:{self.port} as `{self.user}`: {exception}\n'
                'Give the superuser password (`--postgres-password`), or run as root so that the set-up can use '
                '`runuser -u postgres -- psql`.'
            ) from exception

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one SQL statement (autocommit) and return its rows (empty for statements without result)."""
        if self.mode == 'psycopg':
            with self._connect() as connection, connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall()) if cursor.description else []
        result = subprocess.run(
            ['runuser', '-u', 'postgres', '--', 'psql', '-p', str(self.port), '-d', 'template1', '-tAc', sql],
            capture_output=True,
            text=True,
            check=False,
            cwd='/',
        )
        if result.returncode != 0:
            raise ServiceSetupError(f'psql failed on `{sql}`: {result.stderr.strip()}')
        return [tuple(line.split('|')) for line in result.stdout.splitlines() if line]

    def role_exists(self, name: str) -> bool:
        """Return whether the role ``name`` exists."""
        return bool(self.execute(f'SELECT 1 FROM pg_roles WHERE rolname = {_literal(name)}'))

    def database_exists(self, name: str) -> bool:
        """Return whether the database ``name`` exists."""
        return bool(self.execute(f'SELECT 1 FROM pg_database WHERE datname = {_literal(name)}'))

    def create_role_and_database(self, name: str, password: str) -> None:
        """Create the login role ``name`` with ``password`` and the UTF8 database ``name`` it owns."""
        self.execute(f'CREATE ROLE {_identifier(name)} LOGIN PASSWORD {_literal(password)}')
        self.execute(f'GRANT {_identifier(name)} TO CURRENT_USER')
        self.execute(
            f"CREATE DATABASE {_identifier(name)} OWNER {_identifier(name)} ENCODING 'UTF8' TEMPLATE template0"
        )

    def drop_role_and_database(self, database: str, role: str | None = None) -> None:
        """Drop ``database`` (terminating its connections) and the role ``role`` if given; missing ones are fine."""
        if self.database_exists(database):
            self.execute(
                'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                f'WHERE datname = {_literal(database)} AND pid <> pg_backend_pid()'
            )
            self.execute(f'DROP DATABASE IF EXISTS {_identifier(database)}')
        if role is not None:
            self.execute(f'DROP ROLE IF EXISTS {_identifier(role)}')


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def create_profile_database(
    profile_name: str,
    admin: PostgresAdmin,
    *,
    repository_dir: pathlib.Path,
) -> dict[str, Any]:
    """Create a role and database for ``profile_name`` and return the ``core.psql_dos`` storage configuration.

    The names are ``aiida-<profile>`` (as ``verdi presto``), with ``-1``, ``-2``, ... appended if taken by a
    leftover of an earlier profile of the same name. The password is random (stored in the AiiDA config).
    """
    base = f'aiida-{profile_name}'
    name, index = base, 0
    while admin.role_exists(name) or admin.database_exists(name):
        index += 1
        name = f'{base}-{index}'
    password = secrets.token_hex(15)
    admin.create_role_and_database(name, password)
    return {
        'database_engine': 'postgresql_psycopg',
        'database_hostname': admin.host,
        'database_port': admin.port,
        'database_name': name,
        'database_username': name,
        'database_password': password,
        'repository_uri': repository_dir.resolve().as_uri(),
    }


def drop_profile_database(storage_config: dict[str, Any], admin: PostgresAdmin | None = None) -> None:
    """Drop the database and role of a ``core.psql_dos`` storage configuration (for tests and clean-up)."""
    admin = admin or PostgresAdmin(storage_config['database_hostname'], int(storage_config['database_port']))
    admin.drop_role_and_database(storage_config['database_name'], storage_config['database_username'])


@dataclass(frozen=True)
class ProductionProfileReport:
    """What :func:`ensure_production_profile` found and did.

    :ivar profile: profile name.
    :ivar config_dir: AiiDA configuration folder holding the profile.
    :ivar database: PostgreSQL database of the profile.
    :ivar profile_created: the profile was created in this call.
    :ivar services: status of PostgreSQL and RabbitMQ.
    :ivar setup: report of :func:`~aiida_sorep.install.environment.setup_environment` (computer, code, family).
    """

    profile: str
    config_dir: str
    database: str
    profile_created: bool
    services: tuple[ServiceStatus, ...]
    setup: Any


def ensure_production_profile(
    profile_name: str = 'sorep-prod',
    *,
    postgres_host: str = POSTGRES_HOST,
    postgres_port: int = POSTGRES_PORT,
    postgres_user: str = 'postgres',
    postgres_password: str | None = None,
    install_services: bool = True,
    install_system: bool = True,
    set_default: bool = False,
    email: str = 'aiida-sorep@localhost',
    echo: Callable[[str], object] = print,
) -> ProductionProfileReport:
    """Create (or check) a PostgreSQL + RabbitMQ profile and set up computer, codes and pseudos on it.

    1. PostgreSQL and RabbitMQ are started, or installed and started, when absent (:func:`ensure_postgres`,
       :func:`ensure_rabbitmq`);
    2. if the profile does not exist: a role and database ``aiida-<profile>`` are created and the profile
       ``core.psql_dos`` + ``core.rabbitmq`` is added to the configuration folder (``AIIDA_PATH``), with
       ``runner.poll.interval`` = 1 s (this machine; raise it on a cluster) and recorded as made by aiida-sorep;
    3. :func:`~aiida_sorep.install.environment.setup_environment` adds computer ``localhost``, code ``pw@localhost``
       and the pseudopotential family (idempotent).

    :raises ServiceSetupError: a service cannot be installed or started, or a profile of that name exists with
        other storage than ``core.psql_dos``.
    """
    from .profile import _read_marker, _write_marker, check_writable, config_dir

    directory = config_dir()
    check_writable(directory)
    services = (
        ensure_postgres(postgres_host, postgres_port, install=install_services, echo=echo),
        ensure_rabbitmq(install=install_services, echo=echo),
    )
    timeout_disabled = disable_rabbitmq_consumer_timeout(echo=echo)

    from aiida.manage.configuration import create_profile, get_config

    config = get_config(create=True)
    created = False
    if profile_name in config.profile_names:
        profile = config.get_profile(profile_name)
        if profile.storage_backend != 'core.psql_dos' or profile.process_control_backend != 'core.rabbitmq':
            raise ServiceSetupError(
                f'profile `{profile_name}` exists with storage `{profile.storage_backend}` and broker '
                f'`{profile.process_control_backend}`, not core.psql_dos + core.rabbitmq: choose another name.'
            )
    else:
        admin = PostgresAdmin(postgres_host, postgres_port, postgres_user, postgres_password)
        storage_config = create_profile_database(
            profile_name, admin, repository_dir=pathlib.Path(config.dirpath) / 'repository' / profile_name
        )
        echo(
            f'Creating AiiDA profile `{profile_name}` (PostgreSQL database `{storage_config["database_name"]}` on '
            f'{postgres_host}:{postgres_port}, RabbitMQ on {RABBITMQ_HOST}:{RABBITMQ_PORT}) in {directory}'
        )
        try:
            profile = create_profile(
                config,
                name=profile_name,
                email=email,
                storage_backend='core.psql_dos',
                storage_config=storage_config,
                broker_backend='core.rabbitmq',
                broker_config=dict(RABBITMQ_CONFIG),
            )
        except Exception:
            drop_profile_database(storage_config, admin)
            raise
        config.set_option('runner.poll.interval', 1, scope=profile.name)
        # Circus answers slowly on a loaded machine: with the default 2 s, `verdi daemon restart` can time out
        # after stopping the daemon and never start it again.
        config.set_option('daemon.timeout', DAEMON_TIMEOUT, scope=profile.name)
        if timeout_disabled:
            # AiiDA warns about RabbitMQ >= 3.8.15 only because of consumer_timeout, which is now disabled.
            config.set_option('warnings.rabbitmq_version', False, scope=profile.name)
        if set_default or config.default_profile_name not in config.profile_names:
            config.set_default_profile(profile.name, overwrite=True)
        config.store()
        marker = _read_marker(directory)
        marker['profiles'] = sorted({*marker['profiles'], profile_name})
        _write_marker(directory, marker)
        created = True

    from .environment import setup_environment

    setup = setup_environment(profile_name, reuse_profile=True, install_system=install_system, echo=echo)
    return ProductionProfileReport(
        profile=profile_name,
        config_dir=str(directory),
        database=str(profile.storage_config.get('database_name')),
        profile_created=created,
        services=services,
        setup=setup,
    )
