"""review list/show/confirm/reject from the outside: output formats, filters, chips, errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_review import build_findings
from PIL import Image

from sitewatch.cli.main import cli
from sitewatch.verify import verify


@pytest.fixture
def fx(tmp_path):
    return build_findings(tmp_path / "f.gpkg")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", *args], capture_output=True, text=True)


def invoke(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_list_json_and_filters(fx):
    db = str(fx.path)
    rows = json.loads(invoke("review", "list", "--db", db, "--format", "json"))
    assert {r["detection_id"] for r in rows} == set(fx.detection_ids)
    need = {"detection_id", "site_id", "kind", "before_date", "after_date", "score", "status"}
    assert all(need <= set(r) for r in rows) and {r["status"] for r in rows} == {"pending"}
    assert [r["detection_id"] for r in json.loads(invoke("review", "list", "--db", db, "--site", "hotan-02",
                                                         "--format", "json"))] == ["det-b2"]
    assert [r["detection_id"] for r in json.loads(invoke("review", "list", "--db", db, "--kind", "wall_new",
                                                         "--format", "json"))] == ["det-w1"]
    fx.store.add_review("det-t1", "ana", "rejected")
    rej = json.loads(invoke("review", "list", "--db", db, "--status", "rejected", "--format", "json"))
    assert [(r["detection_id"], r["status"]) for r in rej] == [("det-t1", "rejected")]
    assert len(json.loads(invoke("review", "list", "--db", db, "--status", "pending", "--format", "json"))) == 3


def test_list_table(fx):
    out = invoke("review", "list", "--db", str(fx.path), "--site", "kashgar-01")
    assert "3 detections" in out and "det-b1" in out and "wall_new" in out and "det-b2" not in out
    assert "pending" in out


def test_show_writes_chips_that_differ(fx, tmp_path):
    out_dir = tmp_path / "chips"
    out = invoke("review", "show", "det-b1", "--db", str(fx.path), "--out", str(out_dir))
    assert "building_new" in out and "S2_kashgar-01_before" in out and "reviews: none" in out
    paths = {n: out_dir / f"det-b1_{n}.png" for n in ("before", "after", "context")}
    for n, p in paths.items():
        assert f"{n} chip: {p}" in out
    imgs = {n: np.asarray(Image.open(p).convert("RGB")).astype(int) for n, p in paths.items()}
    assert imgs["before"].shape == imgs["after"].shape  # same ground, same size: they can be swiped
    assert min(imgs["before"].shape[:2]) >= 200  # small chips enlarged to be seen
    # the new building is bright in the after chip only
    assert imgs["after"].mean() > imgs["before"].mean() + 20
    # the outline is drawn (pure-ish red pixels) on both
    for n in ("before", "after", "context"):
        red = (imgs[n][..., 0] > 200) & (imgs[n][..., 1] < 80) & (imgs[n][..., 2] < 80)
        assert red.sum() > 50, n


def test_confirm_reject_and_history(fx, tmp_path):
    db = str(fx.path)
    assert "det-b1: confirmed by ana" in invoke("review", "confirm", "det-b1", "--db", db, "--reviewer", "ana")
    invoke("review", "reject", "det-b1", "--db", db, "--reviewer", "bo", "--note", "a shadow")
    assert fx.store.detection("det-b1").status == "rejected"
    assert [(r.reviewer, r.decision, r.note) for r in fx.store.reviews("det-b1")] == [
        ("ana", "confirmed", ""), ("bo", "rejected", "a shadow")]
    out = invoke("review", "show", "det-b1", "--db", db, "--out", str(tmp_path))
    assert "bo: rejected (a shadow)" in out
    assert verify(fx.path).ok


def test_unknown_id_and_missing_file_are_one_line_exit_2(fx, tmp_path):
    for args in (["review", "show", "nope", "--db", str(fx.path)],
                 ["review", "confirm", "nope", "--db", str(fx.path), "--reviewer", "ana"]):
        r = run(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "'nope'" in r.stderr and "Traceback" not in r.stderr
    r = run("review", "list", "--db", str(tmp_path / "typo.gpkg"))
    assert r.returncode == 2 and "no such GeoPackage" in r.stderr and not (tmp_path / "typo.gpkg").exists()
    assert fx.store.reviews() == []


def test_chip_respects_downscaled_quicklook(fx):
    """The before quicklook is stored at half size: the chip must still show the same ground."""
    from sitewatch.chips import detection_chips

    c = detection_chips(fx.store, "det-b2")  # a removed building: bright before, gone after
    before = np.asarray(Image.open(io.BytesIO(c.before)).convert("RGB")).astype(int)
    after = np.asarray(Image.open(io.BytesIO(c.after)).convert("RGB")).astype(int)
    h, w = before.shape[:2]
    centre = (slice(h // 3, 2 * h // 3), slice(w // 3, 2 * w // 3))
    assert before[centre].mean() > after[centre].mean() + 40


def test_second_reviewer_disagreeing_is_a_dispute(fx):
    """Two reviewers' contradicting decisions: said at the second decision, listed as disputed."""
    db = str(fx.path)
    out = invoke("review", "confirm", "det-b1", "--db", db, "--reviewer", "ana")
    assert "disputed" not in out
    out = invoke("review", "confirm", "det-b1", "--db", db, "--reviewer", "ANA ")  # same person: no dispute
    assert "disputed" not in out
    r = run("review", "reject", "det-b1", "--db", db, "--reviewer", "bo", "--note", "a shed")
    assert r.returncode == 0 and "det-b1 is disputed" in r.stdout and "ana confirmed; bo rejected" in r.stdout.lower()
    invoke("review", "reject", "det-w1", "--db", db, "--reviewer", "ana")
    invoke("review", "reject", "det-w1", "--db", db, "--reviewer", "bo")  # agreeing: no dispute
    rows = json.loads(invoke("review", "list", "--db", db, "--status", "disputed", "--format", "json"))
    assert [(x["detection_id"], x["status"], x["disputed"]) for x in rows] == [("det-b1", "rejected", True)]
    assert "disputed" in invoke("review", "list", "--db", db, "--site", "kashgar-01")
    assert "det-b1 is disputed" in invoke("review", "show", "det-b1", "--db", db, "--out", str(fx.path.parent))
    # bo comes round: agreed again, no longer disputed
    invoke("review", "confirm", "det-b1", "--db", db, "--reviewer", "bo")
    assert json.loads(invoke("review", "list", "--db", db, "--status", "disputed", "--format", "json")) == []
    assert verify(fx.path).ok
