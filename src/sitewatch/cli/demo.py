"""``sitewatch demo``: the whole pipeline on bundled synthetic imagery, no network needed."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("demo")
@click.option("--out", "out", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo imagery, findings.gpkg and timelines.")
@click.option("--seed", default=2017, show_default=True, help="Seed of the demo generator (same seed, same pixels).")
@click.option("--no-prefect", is_flag=True, help="Run the library directly instead of the Prefect flow.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's flow and task logs.")
def command(out: str, seed: int, no_prefect: bool, verbose: bool) -> None:
    """Make the demo imagery and sites, run the monitoring flow, write timelines.

    The demo is a static STAC catalog of Cloud Optimized GeoTIFFs rendered from a seeded
    generator (identical on every machine), for three synthetic sites placed near real
    places in Xinjiang: a compound built up and later partly desecuritised (0.5 m), a
    site that does not change but has seasons, sun, misregistration and cloud (0.5 m), and
    a Sentinel-2-like 10 m series with an `scl` band. It takes exactly the code path real
    imagery takes. Open DIR/findings.gpkg in QGIS; open DIR/timelines/index.html in a browser.
    The findings are checked against what the generator planted (DIR/data/truth.json): the
    check is printed and written to DIR/truth-check.json, naming every planted change missed,
    misdated or found in pieces, and every false alarm.
    """
    from ..testbed.demo import make_demo
    from .monitor import run_monitor

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"Rendering demo imagery into {out_dir}/ (seed {seed}) ...", err=True)
    bundle = make_demo(out_dir / "data", seed=seed)
    db = out_dir / "findings.gpkg"
    summary = run_monitor(str(bundle.sites_path), str(bundle.catalog_path), str(db),
                          use_prefect=not no_prefect, verbose=verbose)
    from ..monitor import summary_lines

    click.echo(f"run {summary['run_id']} {summary['status']}: {summary_lines(summary)[0]}")
    from ..testbed.truthcheck import check_store, write

    checked = check_store(db, bundle.truth_path)  # the demo says where it does not match what it planted
    for line in checked.lines():
        click.echo(line)
    report = write(checked, out_dir / "truth-check.json")
    timelines = _timelines(db, out_dir / "timelines")
    click.echo(f"findings:  {db}   (open in QGIS: Layer > Add Layer > Add Vector Layer)")
    click.echo(f"sites:     {bundle.sites_path}")
    click.echo(f"imagery:   {bundle.catalog_path}")
    click.echo(f"truth:     {bundle.truth_path}   (checked: {report})")
    if timelines:
        click.echo(f"timelines: {timelines}")
    exe = _cli_name()
    click.echo(f"review:    {exe} review list --db {db}   |   {exe} review serve --db {db}")
    if summary["status"] != "completed":
        sys.exit(1)


def _cli_name() -> str:
    """How to call sitewatch again from this shell: plain ``sitewatch`` only when it is on the PATH
    (after ``make demo`` it is ``.venv/bin/sitewatch`` until the venv is activated)."""
    import os
    import shutil

    prog = Path(sys.argv[0])
    if prog.name != "sitewatch":
        return "sitewatch"
    found = shutil.which("sitewatch")
    if found and Path(found).resolve() == prog.resolve():
        return "sitewatch"
    rel = os.path.relpath(prog)
    return rel if not rel.startswith("..") else str(prog.resolve())


def _timelines(db: Path, out: Path) -> Path | None:
    try:
        from ..timeline import write_all
    except ImportError:
        return None
    return write_all(db, out, include_pending=True)
