"""``sitewatch qgis``: a QGIS project for one site."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError


@click.command("qgis")
@click.argument("site_id")
@click.option("--db", default="findings.gpkg", show_default=True, type=click.Path(dir_okay=False),
              help="Findings GeoPackage to read (must exist).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Project file to write (.qgz).")
def command(site_id: str, db: str, out: str) -> None:
    """Write a QGIS 3.22+ project for SITE_ID: the site, its detections styled by kind and
    review status, and each clear scene as a true-colour raster layer (newest shown).

    Scenes whose bands are separate files get a VRT each in OUT's folder (NAME_scenes/);
    remote COGs are read by QGIS through /vsicurl/. Paths are relative to the project, so
    keep the project, the GeoPackage and NAME_scenes/ together when moving them.
    """
    if not Path(db).is_file():
        raise InputError(f"{db}: no such findings GeoPackage")
    from ..qgis import write_project

    path, skipped = write_project(db, site_id, out)
    for s in skipped:
        click.echo(f"left out: {s}", err=True)
    click.echo(str(path))
