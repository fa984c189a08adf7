"""The review log: append-only, hash-chained, so any edit, deletion or reordering shows.

``hash = SHA-256(prev_hash + canonical JSON of the review's fields)``, and the fields include
``claim``: the canonical JSON of what the reviewer judged (the detection's kind, dates, scene
ids with their pixel hashes, outline, measures and detector, see :func:`claim_of`). So a
reviewed detection edited afterwards (a date moved with plain SQL, an outline redrawn in QGIS)
no longer matches its reviews, and ``verify`` can name the field. The first review's
``prev_hash`` is :data:`GENESIS`. A detection's ``status`` is its latest decision.

Files written before claims were hashed (chain version 1) are checked with
:func:`review_hash_v1` and re-chained by ``sitewatch verify --upgrade``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import shapely
from shapely.geometry.base import BaseGeometry

#: Decisions a reviewer can record, and the statuses a detection can have.
DECISIONS = ("confirmed", "rejected")
STATUSES = ("pending", "confirmed", "rejected")

#: prev_hash of the first review in a file.
GENESIS = "0" * 64

#: The fields covered by the hash (chain version 2).
HASHED_FIELDS = ("review_id", "detection_id", "reviewer", "decision", "note", "at", "prev_hash", "claim")
#: Chain version 1 (sitewatch 0.1 before claims): the review's own fields only.
HASHED_FIELDS_V1 = HASHED_FIELDS[:-1]

#: What a review judged, as stored in its ``claim``, and how ``verify`` names each field.
CLAIM_FIELDS = {
    "site_id": "site_id", "kind": "kind", "before_date": "before_date", "after_date": "after_date",
    "before_scene_id": "before_scene_id", "before_scene_sha256": "sha256 of the before scene's pixels",
    "after_scene_id": "after_scene_id", "after_scene_sha256": "sha256 of the after scene's pixels",
    "outline_sha256": "outline (geometry)", "area_m2": "area_m2", "length_m": "length_m", "detector": "detector",
}


@dataclass(frozen=True)
class Review:
    """One reviewer's decision on one detection (a row of the ``reviews`` layer).

    Attributes:
        review_id: unique id (UUID4 hex).
        detection_id: the detection decided on.
        reviewer: who decided, as they named themselves.
        decision: ``confirmed`` or ``rejected``.
        note: free text, may be empty.
        at: UTC time of the decision, ISO 8601 with ``Z``.
        prev_hash: ``hash`` of the review before it in the file, or :data:`GENESIS`.
        hash: SHA-256 over ``prev_hash`` and the other fields.
        claim: canonical JSON of the detection as judged (:func:`claim_of`); empty in a
            version 1 chain.
    """

    review_id: str
    detection_id: str
    reviewer: str
    decision: str
    note: str
    at: str
    prev_hash: str
    hash: str
    claim: str = ""


def outline_sha256(geom: BaseGeometry | None) -> str:
    """SHA-256 of the outline as ISO little-endian 2D WKB: the same for any GeoPackage blob
    header (GDAL, QGIS, sitewatch), different for any moved vertex."""
    if geom is None:
        return ""
    return hashlib.sha256(shapely.to_wkb(geom, byte_order=1, flavor="iso", output_dimension=2)).hexdigest()


def claim_of(det: Mapping[str, object], geom: BaseGeometry | None, scene_sha256: Mapping[str, str | None]) -> dict[str, object]:
    """What a reviewer judges, from a detection row (``det``: column name to stored value),
    its outline and the pixel hashes of its scenes (scene_id to sha256)."""
    def num(v: object) -> float | None:
        return None if v is None else float(v)  # type: ignore[arg-type]

    return {
        "site_id": det["site_id"], "kind": det["kind"], "before_date": str(det["before_date"]),
        "after_date": str(det["after_date"]), "before_scene_id": det["before_scene_id"],
        "before_scene_sha256": scene_sha256.get(str(det["before_scene_id"])) or "",
        "after_scene_id": det["after_scene_id"],
        "after_scene_sha256": scene_sha256.get(str(det["after_scene_id"])) or "",
        "outline_sha256": outline_sha256(geom), "area_m2": num(det.get("area_m2")),
        "length_m": num(det.get("length_m")), "detector": det.get("detector") or "",
    }


def claim_json(claim: Mapping[str, object]) -> str:
    """The canonical text of a claim, as stored in ``reviews.claim`` and hashed."""
    return json.dumps(dict(claim), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def claim_changes(judged: Mapping[str, object], now: Mapping[str, object]) -> list[str]:
    """Each claim field that differs, as ``field: judged X, now Y``."""
    out = []
    for key, name in CLAIM_FIELDS.items():
        a, b = judged.get(key), now.get(key)
        if a != b:
            short = lambda v: f"{v[:16]}..." if isinstance(v, str) and len(v) == 64 else repr(v)  # noqa: E731
            out.append(f"{name} was {short(a)} when reviewed, now {short(b)}")
    return out


def _hash(fields: Mapping[str, object], names: tuple[str, ...]) -> str:
    payload = {k: ("" if fields.get(k) is None else str(fields[k])) for k in names}
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((payload["prev_hash"] + body).encode("utf-8")).hexdigest()


def review_hash(fields: Mapping[str, object]) -> str:
    """SHA-256 hex of prev_hash followed by the canonical JSON of the hashed fields (with the claim)."""
    return _hash(fields, HASHED_FIELDS)


def review_hash_v1(fields: Mapping[str, object]) -> str:
    """The chain version 1 hash (no claim): only to check a file before upgrading it."""
    return _hash(fields, HASHED_FIELDS_V1)


def chain_problems(rows: Iterable[Review], hasher: Callable[[Mapping[str, object]], str] = review_hash) -> list[str]:
    """Every break in the chain, in file order; empty when the chain verifies."""
    problems: list[str] = []
    prev = GENESIS
    for i, r in enumerate(rows, start=1):
        where = f"reviews record {i} (review_id={r.review_id})"
        if r.prev_hash != prev:
            problems.append(f"{where}: prev_hash does not match the hash of the review before it "
                            "(a review was deleted, inserted or reordered)")
        if hasher(r.__dict__) != r.hash:
            problems.append(f"{where}: hash does not match its fields (the review was edited)")
        if r.decision not in DECISIONS:
            problems.append(f"{where}: unknown decision {r.decision!r}")
        prev = r.hash
    return problems


def latest_decisions(rows: Iterable[Review]) -> dict[str, str]:
    """detection_id to its latest decision (file order: the latest review wins)."""
    out: dict[str, str] = {}
    for r in rows:
        out[r.detection_id] = r.decision
    return out


def disputes(rows: Iterable[Review]) -> dict[str, dict[str, str]]:
    """Detections whose reviewers disagree: detection_id to each reviewer's latest decision.

    A reviewer changing their own mind is a correction; two reviewers whose latest decisions
    differ is a dispute, and stays one (whatever the latest review says) until they agree.
    """
    by_det: dict[str, dict[str, str]] = {}
    names: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r.detection_id, r.reviewer.strip().casefold())
        names[key] = r.reviewer.strip()
        by_det.setdefault(r.detection_id, {})[key[1]] = r.decision
    return {det: {names[(det, k)]: v for k, v in who.items()}
            for det, who in by_det.items() if len(set(who.values())) > 1}


def dispute_line(detection_id: str, decisions: Mapping[str, str]) -> str:
    """One line naming who decided what on a disputed detection."""
    who = "; ".join(f"{name} {decision}" for name, decision in sorted(decisions.items()))
    return f"{detection_id} is disputed: reviewers disagree ({who}); the latest decision sets its status"
