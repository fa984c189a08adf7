"""``sitewatch sites``: import published candidate lists, check a sites file, add a site from a detection."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import EXISTING_DB_OPTION


@click.group("sites")
def command() -> None:
    """Build and check the list of candidate sites a run watches."""


@command.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", default="geodata/xinjiang_sites.gpkg", show_default=True, type=click.Path(dir_okay=False),
              help="GeoPackage to write (replaced atomically).")
@click.option("--radius-m", default=500.0, show_default=True, type=click.FloatRange(1.0, 25_000.0),
              help="Radius of the circle around a point with no mapped outline.")
@click.option("--match-m", default=400.0, show_default=True, type=click.FloatRange(0.0, 5_000.0),
              help="A point this close to an OSM outline takes that outline.")
def import_(sources: tuple[str, ...], out: str, radius_m: float, match_m: float) -> None:
    """Merge BuzzFeed-style tables, OSM outlines and clean sites files into one GeoPackage.

    \b
    Example (the shipped list):
      sitewatch sites import data/210720_all_locations_BFN.csv \\
        data/Xinjiang_camps_database_BuzzFeed.csv data/reedcamps.osm --out geodata/xinjiang_sites.gpkg
    """
    from ..siteimport import description_for, import_sites, write_sites

    rep = import_sites(sources, radius_m=radius_m, match_m=match_m, progress=lambda m: click.echo(m, err=True))
    for s in rep.skipped:
        click.echo(f"skipped {s}", err=True)
    click.echo(rep.summary_lines()[-1], err=True)
    write_sites(rep.sites, out, description=description_for(rep))
    click.echo(f"{out}: {len(rep.sites)} sites written ({len(rep.skipped)} records skipped)")


@command.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Read a sites file as a run would; exit 2 with the first problem, else print what it holds."""
    from collections import Counter

    from ..sites import read_sites

    sites = read_sites(file)
    kinds = Counter(str(s.properties.get("geometry_source", "")) for s in sites)
    how = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()) if k)
    from ..extent import extent_text, swap_warning

    warning = swap_warning([(s.site_id, s.geometry) for s in sites])
    verdict = "read, see the warning" if warning else "OK"
    click.echo(f"{file}: {len(sites)} sites {verdict}" + (f" ({how})" if how else "")
               + f"; {extent_text(s.geometry for s in sites)}")
    if warning:
        click.echo(warning, err=True)


@command.command("add")
@click.option("--from-detection", "detection_id", required=True, help="Detection id (e.g. from `sitewatch scan`).")
@EXISTING_DB_OPTION
@click.option("--sites", "sites_file", required=True, type=click.Path(dir_okay=False),
              help="GeoJSON or GeoPackage sites file to add to (created when missing).")
@click.option("--site-id", default=None, help="Id of the new site (default site-<detection id>).")
@click.option("--buffer-m", default=200.0, show_default=True, type=click.FloatRange(0.0, 5_000.0),
              help="Grow the detection's outline by this much on the ground.")
def add(detection_id: str, db: str, sites_file: str, site_id: str | None, buffer_m: float) -> None:
    """Watch a wide-area scan's detection as a candidate site from now on."""
    from ..siteimport import append_site, site_from_detection
    from ..store import Store

    if not Path(db).exists():
        click.echo(f"sitewatch: error: {db}: no such findings GeoPackage", err=True)
        sys.exit(2)
    det = Store(db, create=False).detection(detection_id)
    site = site_from_detection(det, buffer_m=buffer_m, site_id=site_id)
    append_site(sites_file, site)
    click.echo(f"{sites_file}: added {site.site_id} ({det.kind} {det.after_date}, {buffer_m:g} m around it)")
