"""Small helpers shared by the CLI commands."""

from __future__ import annotations

from typing import NoReturn

import click


def echo_failed(message: str, exit_code: int = 1) -> NoReturn:
    """Print ``[FAILED] message`` to stderr and exit with ``exit_code`` (no traceback)."""
    click.secho('[FAILED] ', fg='red', bold=True, nl=False, err=True)
    click.echo(message, err=True)
    raise SystemExit(exit_code)
