"""The production services: detection of PostgreSQL and RabbitMQ, and the database of a profile.

The whole production profile (creation, idempotency, daemon) is exercised in ``test_campaign.py``.
"""

from __future__ import annotations

import pathlib
import secrets
import socket

import pytest

from aiida_sorep.install import services


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def test_services_are_detected_running():
    """On a machine with the services up, `ensure_*` only checks: nothing is installed or started."""
    assert services.port_open(services.POSTGRES_HOST, services.POSTGRES_PORT)
    assert not services.port_open('127.0.0.1', _free_port())
    for status in (services.ensure_postgres(install=False), services.ensure_rabbitmq(install=False)):
        assert (status.installed_now, status.started_now) == (False, False)
    assert services.ensure_rabbitmq().address == '127.0.0.1:5672'
    assert all(
        (pathlib.Path('/etc/postgresql') / v / n / 'postgresql.conf').is_file() for v, n in services.postgres_clusters()
    )
    assert services.postgres_clusters()


def test_rabbitmq_consumer_timeout_disabled():
    """The set-up disables RabbitMQ's 30-min consumer timeout (long AiiDA processes hold their task for hours)."""
    assert services.disable_rabbitmq_consumer_timeout(echo=lambda *_: None)
    assert services.rabbitmq_consumer_timeout() == 'undefined'


def test_profile_database_create_and_drop(tmp_path):
    """A role and database per profile, with a suffix when a leftover takes the name; both are dropped cleanly."""
    admin = services.PostgresAdmin()
    name = f'sorep-unit-{secrets.token_hex(4)}'
    configs = []
    try:
        for _ in range(2):
            configs.append(services.create_profile_database(name, admin, repository_dir=tmp_path / 'repository'))
        first, second = configs
        assert first['database_name'] == f'aiida-{name}'
        assert second['database_name'] == f'aiida-{name}-1'
        assert first['database_password'] != second['database_password']
        assert first['repository_uri'].startswith('file:///')

        import psycopg

        with psycopg.connect(
            host=first['database_hostname'],
            port=first['database_port'],
            user=first['database_username'],
            password=first['database_password'],
            dbname=first['database_name'],
        ) as connection:
            assert connection.execute('SELECT current_user').fetchone()[0] == first['database_username']
    finally:
        for config in configs:
            services.drop_profile_database(config, admin)
    for config in configs:
        assert not admin.database_exists(config['database_name'])
        assert not admin.role_exists(config['database_username'])


def test_setup_errors_are_actionable(monkeypatch):
    """Without root, a missing service gives the apt-get command to run instead of a traceback."""
    monkeypatch.setattr(services, '_is_root', lambda: False)
    with pytest.raises(services.ServiceSetupError, match=r'apt-get update && apt-get install -y rabbitmq-server'):
        services._apt_install(['rabbitmq-server'], echo=lambda *_: None)
    monkeypatch.setattr(services, 'postgres_clusters', lambda: [('15', 'main')])
    port = _free_port()
    with pytest.raises(services.ServiceSetupError, match=r'pg_ctlcluster --skip-systemctl-redirect 15 main start'):
        services.ensure_postgres('127.0.0.1', port)
