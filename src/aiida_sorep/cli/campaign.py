"""``aiida-sorep campaign``: submit, follow and retry a campaign of single shots through the daemon.

Register in the root group with ``cmd_root.add_command(cmd_campaign)``.
"""

from __future__ import annotations

import json
import pathlib

import click

from .utils import echo_failed

PROFILE_OPTION = click.option(
    '-p', '--profile', 'profile_name', default=None, help='AiiDA profile (default: the default profile).'
)


def _load_profile(profile_name: str | None):
    from aiida import load_profile

    profile = load_profile(profile_name, allow_switch=True)
    if profile.process_control_backend is None:
        echo_failed(
            f'profile `{profile.name}` has no broker: campaigns run through the daemon. Create a production profile '
            'with `aiida-sorep setup-production` and pass it with `-p`.'
        )
    return profile


def _read_mapping(value: str | None) -> dict:
    """Parse a JSON string or a path to a JSON/YAML file into a dict."""
    if not value:
        return {}
    path = pathlib.Path(value)
    if path.is_file():
        text = path.read_text()
        if path.suffix in ('.yaml', '.yml'):
            import yaml

            return dict(yaml.safe_load(text) or {})
        return dict(json.loads(text))
    return dict(json.loads(value))


def _campaign():
    """Import :mod:`aiida_sorep.campaign`, with the install command if aiida-submission-controller is missing."""
    try:
        from aiida_sorep import campaign
    except ModuleNotFoundError as exc:
        if exc.name != 'aiida_submission_controller':
            raise
        echo_failed(
            "the campaign driver needs aiida-submission-controller: pip install 'aiida-submission-controller~=0.3'"
        )
    return campaign


@click.group('campaign')
def cmd_campaign() -> None:
    """Run one single-shot work chain per structure of a group through the daemon."""


@cmd_campaign.command('submit')
@click.argument('campaign')
@click.option('-s', '--structures', 'structure_group', default=None, help='Group of StructureData (new campaign).')
@click.option('-X', '--code', default=None, help='pw.x code label, e.g. pw@localhost (new campaign).')
@click.option('--protocol', default=None, help='fast, balanced or stringent (new campaign; default balanced).')
@click.option('--workflow', default='sorep.singleshot', show_default=True, help='Work chain entry point.')
@click.option('--overrides', default=None, help='Protocol overrides: JSON string or JSON/YAML file (new campaign).')
@click.option('--options', default=None, help='metadata.options of pw.x: JSON string or JSON/YAML file.')
@click.option('--pseudo-family', default=None, help='Pseudopotential family label (default: the protocol one).')
@click.option('-n', '--max-concurrent', default=100, show_default=True, help='Maximum active work chains.')
@click.option('--wait/--no-wait', default=False, show_default=True, help='Keep topping up until all are done.')
@click.option('--interval', default=10.0, show_default=True, help='Seconds between top-ups with --wait.')
@PROFILE_OPTION
def cmd_submit(
    campaign: str,
    structure_group: str | None,
    code: str | None,
    protocol: str | None,
    workflow: str,
    overrides: str | None,
    options: str | None,
    pseudo_family: str | None,
    max_concurrent: int,
    wait: bool,
    interval: float,
    profile_name: str | None,
) -> None:
    """Submit the missing work chains of CAMPAIGN (a group label), creating it if needed.

    A new campaign needs --structures and --code; its settings are stored in the group and a rerun needs only
    the label: it submits only the structures that have no work chain yet (resumable, no duplicates).
    """
    _load_profile(profile_name)
    campaign_module = _campaign()
    CampaignError, CampaignSettings, run_campaign = (
        campaign_module.CampaignError,
        campaign_module.CampaignSettings,
        campaign_module.run_campaign,
    )

    settings = None
    if structure_group or code:
        if not (structure_group and code):
            echo_failed('a new campaign needs both --structures and --code.')
        settings = CampaignSettings(
            structure_group=structure_group,
            code=code,
            workflow=workflow,
            protocol=protocol,
            overrides=_read_mapping(overrides),
            options=_read_mapping(options),
            pseudo_family=pseudo_family,
        )
    try:
        status = run_campaign(
            campaign, settings, max_concurrent=max_concurrent, wait=wait, interval=interval, echo=click.echo
        )
    except CampaignError as exc:
        echo_failed(str(exc))
    if status.failures:
        click.echo('Failures (count, state, exit status, message, PKs):')
        click.echo(status.failure_table())


@cmd_campaign.command('status')
@click.argument('campaign')
@PROFILE_OPTION
def cmd_status(campaign: str, profile_name: str | None) -> None:
    """Show the progress of CAMPAIGN and its failures by exit code."""
    from aiida import load_profile

    load_profile(profile_name, allow_switch=True)
    CampaignError, campaign_status = _campaign().CampaignError, _campaign().campaign_status

    try:
        status = campaign_status(campaign)
    except CampaignError as exc:
        echo_failed(str(exc))
    click.echo(status.line())
    if status.failures:
        click.echo('Failures (count, state, exit status, message, PKs):')
        click.echo(status.failure_table())


@cmd_campaign.command('retry-failed')
@click.argument('campaign')
@PROFILE_OPTION
def cmd_retry_failed(campaign: str, profile_name: str | None) -> None:
    """Move the failed work chains of CAMPAIGN to CAMPAIGN/retired, so that the next submit reruns them."""
    from aiida import load_profile

    load_profile(profile_name, allow_switch=True)
    CampaignError, retire_failed = _campaign().CampaignError, _campaign().retire_failed

    try:
        pks = retire_failed(campaign)
    except CampaignError as exc:
        echo_failed(str(exc))
    click.echo(f'Retired {len(pks)} failed work chain(s) to `{campaign}/retired`; run `campaign submit {campaign}`.')


@cmd_campaign.command('repair')
@click.argument('campaign', required=False)
@click.option('-n', '--dry-run', is_flag=True, help='Only list the orphaned process functions.')
@PROFILE_OPTION
def cmd_repair(campaign: str | None, dry_run: bool, profile_name: str | None) -> None:
    """Mark as killed the process functions a dead daemon worker left `running` (of CAMPAIGN, or all).

    Only calcfunctions/workfunctions whose caller has terminated: they can never resume. CalcJobs and work chains
    are resumed by the daemon and are not touched.
    """
    from aiida import load_profile

    load_profile(profile_name, allow_switch=True)
    repair_orphans = _campaign().repair_orphans

    pks = repair_orphans(campaign, dry_run=dry_run)
    verb = 'Would mark' if dry_run else 'Marked'
    click.echo(f'{verb} {len(pks)} orphaned process function(s) as killed' + (f': {pks}' if pks else '.'))
