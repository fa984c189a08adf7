"""The demo's closing hint names a ``sitewatch`` that works in the user's shell (issue 16: plain
``sitewatch review list`` failed in a fresh shell after ``make demo``)."""

from __future__ import annotations

import os
import stat
import sys

from sitewatch.cli.demo import _cli_name


def _script(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_hint_is_the_venv_path_until_sitewatch_is_on_the_path(tmp_path, monkeypatch):
    exe = _script(tmp_path / ".venv" / "bin" / "sitewatch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(exe), "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert _cli_name() == os.path.join(".venv", "bin", "sitewatch")
    monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin:/bin")  # after `source .venv/bin/activate`
    assert _cli_name() == "sitewatch"
    other = _script(tmp_path / "elsewhere" / "sitewatch")  # another sitewatch first on the PATH
    monkeypatch.setenv("PATH", f"{other.parent}:{exe.parent}")
    assert _cli_name() == os.path.join(".venv", "bin", "sitewatch")
