"""Keep a site list under watch: serve the monitor flow on a cron schedule (and, optionally, the
wide-area scan and the timeline pages on their own schedules).

    prefect server start                       # in one terminal (UI at http://127.0.0.1:4200)
    PREFECT_API_URL=http://127.0.0.1:4200/api \\
      .venv/bin/python -m pipelines.serve --sites geodata/xinjiang_sites.gpkg \\
        --imagery https://earth-search.aws.element84.com/v1 --cron "0 4 * * *"

Runs happen in this process at each tick (and on demand from the UI or with
``prefect deployment run 'sitewatch-monitor/<name>'``). For a worker pool instead of a
long-running process, see ``prefect.yaml`` and ``prefect deploy``.
"""

from __future__ import annotations

import argparse
import datetime as dt

from prefect import serve

from pipelines.monitor import monitor_flow
from pipelines.scan import scan_flow
from pipelines.timeline import timeline_flow

EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"


def deployments(args: argparse.Namespace) -> list:
    params = {"sites": args.sites, "imagery": args.imagery, "db": args.db, "collection": args.collection}
    if getattr(args, "change_model", None):
        params.update(change_model=args.change_model, model_only=bool(getattr(args, "model_only", False)))
    if getattr(args, "learn", False):  # re-learn the review queue's order after each run
        params["learn_ranking"] = True
    if args.since:
        params["since"] = dt.date.fromisoformat(args.since)
    out = [monitor_flow.to_deployment(name=args.name, cron=args.cron, parameters=params,
                                      description="Scheduled sitewatch monitoring of a site list",
                                      tags=["sitewatch", "monitor"])]
    if args.scan_region:  # a wide-area scan on its own (slower) schedule, over the last ``scan_days``
        out.append(scan_flow.to_deployment(
            name=f"{args.name}-scan", cron=args.scan_cron,
            parameters={"region": args.scan_region, "imagery": args.imagery, "db": args.db,
                        "collection": args.collection,
                        "since": dt.date.today() - dt.timedelta(days=args.scan_days)},
            description="Scheduled wide-area scan for new compounds", tags=["sitewatch", "scan"]))
    if args.timelines:  # publication pages rebuilt after the monitoring run, as reviews come in
        out.append(timeline_flow.to_deployment(
            name=f"{args.name}-timelines", cron=args.timelines_cron,
            parameters={"db": args.db, "out": args.timelines},
            description="Rebuild every site's timeline and the index page", tags=["sitewatch", "timeline"]))
    return out


def main(argv: list[str] | None = None) -> None:
    serve(*deployments(parser().parse_args(argv)))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sites", default="geodata/xinjiang_sites.gpkg")
    p.add_argument("--imagery", default=EARTH_SEARCH)
    p.add_argument("--collection", default="sentinel-2-l2a")
    p.add_argument("--db", default="findings.gpkg")
    p.add_argument("--since", default="2017-01-01", help="ignore scenes before this date (YYYY-MM-DD)")
    p.add_argument("--cron", default="0 4 * * *", help="schedule, cron syntax, UTC (default daily 04:00)")
    p.add_argument("--name", default="xinjiang-sentinel-2")
    p.add_argument("--change-model", default=None, metavar="PATH.onnx",
                   help="a trained change model (ONNX, contract in the README) beside the default detector")
    p.add_argument("--model-only", action="store_true", help="with --change-model: the model instead of the detector")
    p.add_argument("--learn", action="store_true",
                   help="re-learn the review queue's ranking from the reviews after each scheduled run")
    p.add_argument("--scan-region", default=None,
                   help="also serve a wide-area scan of this region (lon/lat box, polygon file or 'xinjiang')")
    p.add_argument("--scan-cron", default="0 6 * * 0", help="scan schedule (default weekly, Sunday 06:00 UTC)")
    p.add_argument("--scan-days", type=int, default=400, help="scan scenes from this many days back")
    p.add_argument("--timelines", default=None, metavar="DIR",
                   help="also serve a flow that rebuilds every site's timeline into DIR")
    p.add_argument("--timelines-cron", default="0 7 * * *", help="timeline schedule (default daily 07:00 UTC)")
    return p


if __name__ == "__main__":
    main()
