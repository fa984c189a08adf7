"""``sitewatch verify``: is the review log intact and does the file hold together?"""

from __future__ import annotations

import click

from ..errors import SitewatchError
from .options import EXISTING_DB_OPTION


@click.command("verify")
@EXISTING_DB_OPTION
@click.option("--rehash", is_flag=True,
              help="Also re-read each scene's source pixels and compare them with the stored SHA-256.")
@click.option("--head", "expect_head", metavar="HASH",
              help="Fail unless the chain still holds this review hash (as printed by an earlier verify): "
                   "catches removed newest reviews and rewritten chains.")
@click.option("--upgrade", is_flag=True,
              help="Upgrade a file written by an earlier sitewatch: checks its old chain, then re-chains every "
                   "review over the claim it judged, in one transaction (every row kept), then verifies.")
def command(db: str, rehash: bool, expect_head: str | None, upgrade: bool) -> None:
    """Check the review hash chain, what each review judged, every detection's status, and the GeoPackage.

    Exits non-zero naming the first broken record when a review was edited, deleted or
    reordered, when a reviewed detection changed (naming the detection and the field), or
    when a status is not the latest decision; prints OK with counts otherwise.
    """
    from ..verify import rehash as do_rehash
    from ..verify import upgrade as do_upgrade
    from ..verify import verify

    if upgrade:
        click.echo(do_upgrade(db))
    report = verify(db, expect_head)
    report.raise_for_problems()
    click.echo(report.summary())
    if not rehash:
        return
    do_rehash(db, report, progress=lambda what: click.echo(f"  re-reading {what}", err=True))
    for line in report.rehash_lines:
        click.echo(f"  {line}")
    c = report.rehash_counts
    if c:
        click.echo(f"rehash: {c['unchanged']} unchanged, {c['changed']} changed, {c['unreachable']} unreachable, "
                   f"{c['skipped']} skipped (no source or not observed)")
    if c.get("changed"):
        raise SitewatchError(f"{db}: {c['changed']} scene source(s) no longer match the pixels that were analysed")
