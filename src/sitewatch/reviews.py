"""The review log: append-only, hash-chained, so any edit, deletion or reordering shows.

``hash = SHA-256(prev_hash + canonical JSON of the review's fields)``. The first review's
``prev_hash`` is :data:`GENESIS`. A detection's ``status`` is its latest decision.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Decisions a reviewer can record, and the statuses a detection can have.
DECISIONS = ("confirmed", "rejected")
STATUSES = ("pending", "confirmed", "rejected")

#: prev_hash of the first review in a file.
GENESIS = "0" * 64

#: The fields covered by the hash, in order.
HASHED_FIELDS = ("review_id", "detection_id", "reviewer", "decision", "note", "at", "prev_hash")


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
        hash: SHA-256 over ``prev_hash`` and the fields above.
    """

    review_id: str
    detection_id: str
    reviewer: str
    decision: str
    note: str
    at: str
    prev_hash: str
    hash: str


def review_hash(fields: Mapping[str, object]) -> str:
    """SHA-256 hex of prev_hash followed by the canonical JSON of the hashed fields."""
    payload = {k: ("" if fields.get(k) is None else str(fields[k])) for k in HASHED_FIELDS}
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((payload["prev_hash"] + body).encode("utf-8")).hexdigest()


def chain_problems(rows: Iterable[Review]) -> list[str]:
    """Every break in the chain, in file order; empty when the chain verifies."""
    problems: list[str] = []
    prev = GENESIS
    for i, r in enumerate(rows, start=1):
        where = f"reviews record {i} (review_id={r.review_id})"
        if r.prev_hash != prev:
            problems.append(f"{where}: prev_hash does not match the hash of the review before it "
                            "(a review was deleted, inserted or reordered)")
        if review_hash(r.__dict__) != r.hash:
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
