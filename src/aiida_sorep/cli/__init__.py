"""Command line interface ``aiida-sorep``, in the style of ``verdi`` and ``aiida-pseudo``.

Imports of heavy modules happen inside the commands so that ``aiida-sorep --help`` is instant.
"""

import click


@click.group('aiida-sorep', context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='aiida-sorep')
def cmd_root() -> None:
    """Spectral operator representations (SOREPs) of crystals with AiiDA."""
