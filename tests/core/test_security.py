"""Security scans the plugin site runs on upload: bandit finds nothing of medium severity or above in
smqgis/, and detect-secrets finds nothing in the git-tracked files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (requirements/qgis.txt)")
    return str(path)


@pytest.mark.slow
def test_bandit_finds_nothing_medium_or_high() -> None:
    proc = subprocess.run([tool("bandit"), "-q", "-r", "smqgis", "-ll", "-f", "json"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(proc.stdout)
    assert report["results"] == [], [(r["filename"], r["line_number"], r["test_id"]) for r in report["results"]]
    assert report["metrics"]["_totals"]["loc"] > 1000  # it really scanned the package


@pytest.mark.slow
def test_detect_secrets_finds_nothing() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("detect-secrets scans the git-tracked files")
    proc = subprocess.run([tool("detect-secrets"), "scan"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=True)
    assert json.loads(proc.stdout)["results"] == {}
