"""A generated series checked against what it planted: the demo says where its findings are wrong.

The demo's ``truth.json`` lists every change its generator planted, dated by the clear scenes
around it. Findings are matched to it by site, kind and place (a detection within
:data:`NEAR_M` of a planted structure's footprint, and the one it overlaps most when several
are): each planted change is found with its
dates, found with other dates, found in several pieces, or missed; each detection that is
near nothing planted of its kind is a false alarm. A demo that showed only its successes
would teach users to trust the detector more than it deserves.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..grid import to_crs, utm_crs_for

#: How far (metres, on the ground) a detection may lie from a planted footprint and still be it:
#: a couple of 0.5 m pixels of misregistration and a fence's shadow band; under one 10 m pixel.
NEAR_M = 6.0


@dataclass(frozen=True)
class Planted:
    """One change the generator planted (a row of ``truth.json``)."""

    site_id: str
    kind: str
    structure: str
    before_date: dt.date
    after_date: dt.date
    geometry: BaseGeometry  # EPSG:4326


@dataclass(frozen=True)
class Found:
    """One detection, as much of it as the check needs."""

    detection_id: str
    site_id: str
    kind: str
    before_date: dt.date
    after_date: dt.date
    geometry: BaseGeometry  # EPSG:4326
    area_m2: float = 0.0
    score: float = 0.0


@dataclass
class TruthCheck:
    """Each planted change with the detections that match it, and the detections that match none."""

    matches: list[tuple[Planted, list[Found]]] = field(default_factory=list)
    false: list[Found] = field(default_factory=list)

    @property
    def right(self) -> list[Planted]:
        """Found once, with the planted dates."""
        return [p for p, ds in self.matches if len(ds) == 1 and _same_dates(p, ds[0])]

    @property
    def misdated(self) -> list[tuple[Planted, Found]]:
        return [(p, ds[0]) for p, ds in self.matches if len(ds) == 1 and not _same_dates(p, ds[0])]

    @property
    def pieces(self) -> list[tuple[Planted, list[Found]]]:
        """Found as several detections (one structure reported twice, or in parts with their own dates)."""
        return [(p, ds) for p, ds in self.matches if len(ds) > 1]

    @property
    def missed(self) -> list[Planted]:
        return [p for p, ds in self.matches if not ds]

    @property
    def ok(self) -> bool:
        return len(self.right) == len(self.matches) and not self.false

    def lines(self) -> list[str]:
        """A summary line, then one line per planted change not found right and per false alarm."""
        n = len(self.matches)
        head = (f"check against the planted truth: {len(self.right)} of {n} planted changes found with their dates, "
                f"{len(self.misdated)} with other dates, {len(self.pieces)} in pieces, {len(self.missed)} missed; "
                f"{len(self.false)} false alarm(s)")
        out = [head]
        out += [f"  missed: {_planted(p)}" for p in self.missed]
        out += [f"  other dates: {_planted(p)}; found {_dates(d)} ({d.detection_id})" for p, d in self.misdated]
        out += [f"  in {len(ds)} pieces: {_planted(p)}; found " + ", ".join(f"{_dates(d)} ({d.detection_id})" for d in ds)
                for p, ds in self.pieces]
        out += [f"  false alarm: {d.site_id} {d.kind} {_dates(d)}, {d.area_m2:,.0f} m², score {d.score:.3f} "
                f"({d.detection_id}): nothing of that kind was planted there" for d in self.false]
        return out

    def as_dict(self) -> dict[str, Any]:
        def p(x: Planted) -> dict[str, Any]:
            return {"site_id": x.site_id, "kind": x.kind, "structure": x.structure,
                    "before_date": x.before_date.isoformat(), "after_date": x.after_date.isoformat()}

        def f(x: Found) -> dict[str, Any]:
            return {"detection_id": x.detection_id, "site_id": x.site_id, "kind": x.kind,
                    "before_date": x.before_date.isoformat(), "after_date": x.after_date.isoformat(),
                    "area_m2": round(x.area_m2, 1), "score": x.score}

        verdict = {id(q): "right" for q in self.right}
        verdict.update({id(q): "other dates" for q, _ in self.misdated})
        verdict.update({id(q): "in pieces" for q, _ in self.pieces})
        verdict.update({id(q): "missed" for q in self.missed})
        return {"ok": self.ok, "summary": self.lines()[0],
                "planted": [{**p(q), "verdict": verdict[id(q)], "detections": [f(d) for d in ds]}
                            for q, ds in self.matches],
                "false_alarms": [f(d) for d in self.false]}


def _same_dates(p: Planted, d: Found) -> bool:
    return (p.before_date, p.after_date) == (d.before_date, d.after_date)


def _planted(p: Planted) -> str:
    was, now = ("present", "gone") if p.kind.endswith("_removed") else ("absent", "present")
    return f"{p.site_id} {p.kind} {p.structure} ({was} {p.before_date}, {now} {p.after_date})"


def _dates(d: Found) -> str:
    return f"{d.before_date}..{d.after_date}"


def read_truth(path: str | Path) -> list[Planted]:
    """The rows of a ``truth.json`` written by :func:`sitewatch.demo.write_series`."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Planted(r["site_id"], r["kind"], r.get("structure", ""), dt.date.fromisoformat(r["before_date"]),
                    dt.date.fromisoformat(r["after_date"]), shape(r["geometry"])) for r in rows]


def _local(g: BaseGeometry, crs: str) -> BaseGeometry:
    return to_crs(g, "EPSG:4326", crs)


def check(planted: Sequence[Planted], found: Iterable[Found], near_m: float = NEAR_M) -> TruthCheck:
    """Match detections to planted changes by site, kind and place (see the module's docstring).

    A detection belongs to the planted change of its site and kind it overlaps most (the
    footprint grown by ``near_m``) and to every other one it covers at least half of (a block
    detected as one object covers each of its halls); so a fence that touches another where they
    cross is not taken for a piece of it. A planted change no detection belongs to is missed.
    """
    dets = list(found)
    owners: dict[str, set[int]] = {}
    for d in dets:
        c = d.geometry.centroid
        crs = utm_crs_for(c.x, c.y)
        dg = _local(d.geometry, crs)
        best: tuple[float, float, int] | None = None
        mine: set[int] = set()
        for i, p in enumerate(planted):
            if p.site_id != d.site_id or p.kind != d.kind:
                continue
            pg = _local(p.geometry, crs)
            if dg.distance(pg) > near_m:
                continue
            grown = pg.buffer(near_m)
            shared = dg.intersection(grown).area
            if grown.area and shared >= 0.5 * grown.area:
                mine.add(i)
            key = (shared, -dg.centroid.distance(pg.centroid), -i)
            if best is None or key > best:
                best = key
        if best is not None:
            owners[d.detection_id] = mine | {-best[2]}
    out = TruthCheck()
    for i, p in enumerate(planted):
        ds = sorted((d for d in dets if i in owners.get(d.detection_id, ())),
                    key=lambda d: (d.after_date, d.before_date, d.detection_id))
        out.matches.append((p, ds))
    out.false = [d for d in dets if d.detection_id not in owners]
    return out


def check_store(db: str | Path, truth_path: str | Path) -> TruthCheck:
    """The findings GeoPackage's detections (every status) against a ``truth.json``."""
    from ..store import Store

    dets = [Found(d.detection_id, d.site_id, d.kind, d.before_date, d.after_date, d.geometry, float(d.area_m2 or 0.0),
                  float(d.score or 0.0)) for d in Store(db, create=False).detections()]
    return check(read_truth(truth_path), dets)


def write(result: TruthCheck, path: str | Path) -> Path:
    p = Path(path)
    p.write_text(json.dumps(result.as_dict(), indent=1), encoding="utf-8")
    return p


__all__ = ["Planted", "Found", "TruthCheck", "check", "check_store", "read_truth", "write", "NEAR_M"]
