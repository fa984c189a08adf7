"""Options shared by several commands."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import click

IMAGERY_OPTION = click.option(
    "--imagery", required=True,
    help="STAC API URL, static STAC catalog/collection (path or URL), or a folder of GeoTIFFs.")
COLLECTION_OPTION = click.option("--collection", default=None,
                                 help="STAC collection (APIs default to sentinel-2-l2a).")

DB_OPTION = click.option("--db", default="findings.gpkg", show_default=True, type=click.Path(dir_okay=False),
                         help="Findings GeoPackage (created when missing).")
#: For commands that read an existing GeoPackage: a missing one is an error, never created.
EXISTING_DB_OPTION = click.option("--db", default="findings.gpkg", show_default=True,
                                  type=click.Path(dir_okay=False), help="Findings GeoPackage (must exist).")


def check_dates(since: dt.date | None, until: dt.date | None) -> None:
    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}", param_hint="--since/--until")


class DateType(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date as YYYY-MM-DD", param, ctx)


DATE = DateType()
SINCE_OPTION = click.option("--since", type=DATE, default=None, help="Only scenes acquired on or after this date.")
UNTIL_OPTION = click.option("--until", type=DATE, default=None, help="Only scenes acquired on or before this date.")


def quiet_prefect(verbose: bool = False) -> None:
    """Prefect off the network and, unless asked, out of the way of the progress bar."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
        # a failing run is reported by sitewatch in one line; Prefect would add its tracebacks
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "CRITICAL")


def flow_or_library(name: str) -> Any:
    """The flow registered under ``sitewatch.flows`` (pipelines/), or None without Prefect.

    Without Prefect the library runs the same steps with the same results; the user is told once,
    on stderr, so a run that was expected to show up in Prefect's UI is not a silent surprise.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="sitewatch.flows"):
        if ep.name == name:
            try:
                return ep.load()
            except ImportError:
                break
    click.echo("Prefect is not installed: running the library directly (same results; "
               "`pip install 'sitewatch[flows]'`, or `make install`, adds the flows and schedules).", err=True)
    return None
