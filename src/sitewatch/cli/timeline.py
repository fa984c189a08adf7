"""``sitewatch timeline``: a site's timeline for publication, from the findings GeoPackage."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError


@click.command("timeline")
@click.argument("site_id", required=False)
@click.option("--db", default="findings.gpkg", show_default=True, type=click.Path(dir_okay=False),
              help="Findings GeoPackage to read (must exist).")
@click.option("--out", "out", default="timelines", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write into; each site gets OUT/SITE_ID/.")
@click.option("--include-pending", is_flag=True,
              help="Also show detections not reviewed yet, marked unverified (rejected ones never show).")
@click.option("--all", "all_sites", is_flag=True, help="Every site in the GeoPackage, and an index page.")
def command(site_id: str | None, db: str, out: str, include_pending: bool, all_sites: bool) -> None:
    """Write SITE_ID's timeline: page, chart, time-lapse, findings and provenance tables.

    OUT/SITE_ID/index.html is one self-contained page (no network) showing each clear scene,
    each confirmed change as a before/after pair with who reviewed it, the metrics and the
    estimated security level over time, the provenance of every scene and a suggested
    citation. Beside it: metrics.png, timelapse.gif, findings.csv, findings.geojson and
    provenance.csv. Prints the paths written.
    """
    if bool(site_id) == all_sites:
        raise click.UsageError("give a SITE_ID or --all (not both)")
    if not Path(db).is_file():
        raise InputError(f"{db}: no such findings GeoPackage")
    from ..store import Store
    from ..timeline import write_all, write_site

    store = Store(db, create=False)
    if all_sites:
        index = write_all(store, out, include_pending)
        folders = sorted(p for p in index.parent.iterdir() if p.is_dir())
        for folder in folders:
            for f in sorted(folder.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    click.echo(str(f))
        click.echo(str(index))
        return
    page = write_site(store, site_id or "", out, include_pending)
    for f in sorted(page.parent.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f != page:
            click.echo(str(f))
    click.echo(str(page))
