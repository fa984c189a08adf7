"""Every broken sites file in tests/badinput/sites/ gets exit 2 and one clear stderr line from the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "badinput" / "sites"
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_corpus_is_complete():
    files = {p.name for p in CORPUS.iterdir() if p.name not in ("expected.json", "make_sites.py")}
    assert len(files) >= 18
    assert files == {k for k in EXPECTED if (CORPUS / k).exists()}
    assert [k for k in EXPECTED if not (CORPUS / k).exists()] == ["does-not-exist.gpkg"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sites_check_refuses(name, tmp_path):
    before = sorted(CORPUS.iterdir())
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "sites", "check", str(CORPUS / name)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert lines[0].startswith("sitewatch: error: ") and str(CORPUS / name) in lines[0]
    assert EXPECTED[name] in lines[0]
    assert sorted(CORPUS.iterdir()) == before and not list(tmp_path.iterdir())  # nothing written
