"""``sitewatch review``: the review queue in the terminal, and ``serve`` for the browser."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..reviews import DECISIONS, STATUSES, dispute_line, disputes
from ..structures import CHANGE_KINDS
from ..reviewweb import detection_row
from .options import EXISTING_DB_OPTION


def _store(db: str) -> Any:
    """The findings file, which must exist: reviewing an empty new file would be a typo."""
    from ..store import Store

    if not Path(db).is_file():
        raise InputError(f"{db}: no such GeoPackage")
    return Store(db, create=False)


@click.group("review")
def command() -> None:
    """Confirm or reject machine detections before they count as findings."""


@command.command("list")
@EXISTING_DB_OPTION
@click.option("--status", type=click.Choice((*STATUSES, "disputed")),
              help="Only detections with this status; disputed: reviewers disagree (any status).")
@click.option("--site", "site_id", help="Only detections at this site.")
@click.option("--kind", type=click.Choice(CHANGE_KINDS), help="Only detections of this kind.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_(db: str, status: str | None, site_id: str | None, kind: str | None, fmt: str) -> None:
    """The detections, by site and date; best first once `review learn` has learnt a ranking."""
    from ..reviewweb import queue_rows

    store = _store(db)
    disputed = disputes(store.reviews())
    dets = [d for d in store.detections(site_id=site_id, status=status if status in STATUSES else None, kind=kind)
            if status != "disputed" or d.detection_id in disputed]
    rows = queue_rows(store, dets, row=lambda d: detection_row(d, disputed=d.detection_id in disputed))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} detection{'s' if len(rows) != 1 else ''}", title_justify="left")
    for col, just in (("detection_id", "left"), ("site_id", "left"), ("kind", "left"), ("before", "left"),
                      ("after", "left"), ("area m²", "right"), ("length m", "right"), ("score", "right"),
                      ("rank", "right"),
                      ("status", "left")):
        # ids are what people copy into `review show`: fold them, never cut them short
        table.add_column(col, justify=just, overflow="fold", min_width=len(col))  # type: ignore[arg-type]
    colour = {"pending": "yellow", "confirmed": "green", "rejected": "red"}
    for r in rows:
        table.add_row(r["detection_id"], r["site_id"], r["kind"], r["before_date"], r["after_date"],
                      "" if r["area_m2"] is None else f"{r['area_m2']:.0f}",
                      "" if r["length_m"] is None else f"{r['length_m']:.0f}", f"{r['score']:.2f}",
                      "" if r["rank_score"] is None else f"{r['rank_score']:.2f}",
                      f"[{colour[r['status']]}]{r['status']}[/]" + (" [bold red]disputed[/]" if r["disputed"] else ""))
    console = Console()
    if not console.is_terminal:  # piped or captured: no terminal width to respect
        console = Console(width=200)
    console.print(table)


@command.command("show")
@click.argument("detection_id")
@EXISTING_DB_OPTION
@click.option("--out", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder for the before, after and context chips (PNG).")
def show(detection_id: str, db: str, out: str) -> None:
    """One detection: its facts, its scenes, its reviews, and image chips written to PNG files."""
    from ..chips import detection_chips

    store = _store(db)
    d = store.detection(detection_id)
    history = store.reviews(d.detection_id)
    dispute = disputes(history).get(d.detection_id)
    click.echo(f"detection {d.detection_id}")
    for k, v in detection_row(d, disputed=dispute is not None).items():
        if k != "detection_id" and v is not None:
            click.echo(f"  {k:16} {v}")
    for k, v in sorted(d.evidence.items()):
        click.echo(f"  {'evidence.' + k:16} {v}")
    for role, scene_id in (("before", d.before_scene_id), ("after", d.after_scene_id)):
        try:
            s = store.scene(d.site_id, scene_id)
        except LookupError:
            click.echo(f"{role} scene {scene_id}: not in scenes")
            continue
        click.echo(f"{role} scene {s.scene_id}: acquired {s.acquired.isoformat()}, source {s.source}, "
                   f"gsd {s.gsd_m} m, cloud {s.cloud_fraction}, sha256 {s.sha256}"
                   + (f", href {s.href}" if s.href else ""))
    click.echo(f"reviews: {len(history) or 'none'}")
    for r in history:
        click.echo(f"  {r.at} {r.reviewer}: {r.decision}" + (f" ({r.note})" if r.note else ""))
    if dispute:
        click.echo(dispute_line(d.detection_id, dispute))
    chips = detection_chips(store, d.detection_id)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", d.detection_id)
    for name, png in (("before", chips.before), ("after", chips.after), ("context", chips.context)):
        if png is None:
            click.echo(f"{name} chip: no quicklook stored for that scene")
            continue
        path = folder / f"{stem}_{name}.png"
        path.write_bytes(png)
        click.echo(f"{name} chip: {path}")


def _decide(decision: str) -> click.Command:
    @click.command({"confirmed": "confirm", "rejected": "reject"}[decision])
    @click.argument("detection_id")
    @EXISTING_DB_OPTION
    @click.option("--reviewer", required=True, envvar="SITEWATCH_REVIEWER",
                  help="Who decides (or $SITEWATCH_REVIEWER); recorded in the hash-chained log.")
    @click.option("--note", default="", help="Why, for whoever reads the finding later.")
    def decide(detection_id: str, db: str, reviewer: str, note: str) -> None:
        if not reviewer.strip():
            raise click.BadParameter("a reviewer's name is needed: it is recorded with the decision",
                                     param_hint="--reviewer")
        store = _store(db)
        r = store.add_review(detection_id, reviewer, decision, note)
        click.echo(f"{detection_id}: {decision} by {r.reviewer} (review {r.review_id}, hash {r.hash[:12]})")
        dispute = disputes(store.reviews(detection_id)).get(detection_id)
        if dispute:  # the second opinion contradicts the first: a finding no one should cite yet
            click.echo(dispute_line(detection_id, dispute))

    decide.help = f"Record that a detection is {decision} (appends to the review log)."
    return decide


for _decision in DECISIONS:
    command.add_command(_decide(_decision))


@command.command("learn")
@EXISTING_DB_OPTION
def learn(db: str) -> None:
    """Learn the queue's order from the confirmed and rejected detections in the file.

    Fits a logistic regression on what is stored with each reviewed detection (score, kind,
    size, evidence, quicklook chip statistics), stores it in the GeoPackage with the review
    ids it learnt from and its cross-validated AUC, and from then on `review list` and the
    review page put the pending queue in that order (`rank_score`), best first. Detections
    and reviews are not changed. Refused while either decision has fewer than 5 reviews.
    """
    from ..rerank import learn as fit

    r = fit(_store(db))
    click.echo(f"{db}: {r.summary()}")
    click.echo(f"review ids: {', '.join(r.review_ids)}")


@command.command("serve")
@EXISTING_DB_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (local only).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", help="Access token for the page and API (default: a new random one).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def serve(db: str, host: str, port: int, token: str | None, no_browser: bool) -> None:
    """Review in the browser: chips side by side, swipe or blink, keyboard shortcuts."""
    from ..reviewweb import ReviewServer

    server = ReviewServer(_store(db), host=host, port=port, token=token)
    click.echo(f"sitewatch review: {server.url}")
    click.echo(f"token: {server.token}  (needed on every request; Ctrl-C stops)")
    if not no_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
