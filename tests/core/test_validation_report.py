"""Tests of smqgis/core/report.py: the HTML report holds the CSV's numbers, its images decode, and a real
browser (Debian's headless Chromium) renders it to a picture that is not blank."""

from __future__ import annotations

import base64
import csv
import html
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from smqgis.core import report, validation

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ismn_testdata", ROOT / "tests" / "data" / "ismn_testdata.py")
td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(td)
#: Where the browser screenshot is kept for people to look at (build/ is not committed).
SCREENSHOT_COPY = ROOT / "build" / "validation" / "report_screenshot.png"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A validation of real ISMN sensors (MAQU, SCAN) with a stratification, its CSV and its report."""
    try:
        data_dir = td.ismn_test_data()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("report")
    case = td.multinetwork_case(data_dir, out)
    result = validation.validate_maps(case["maps"], str(case["archive"]), stratify_field="network")
    csv_path = result.write_csv(str(out / "sensors.csv"))
    html_path = report.write_html_report(result, str(out / "report.html"))
    return {"result": result, "csv": Path(csv_path), "html": Path(html_path), "dir": out}


def test_html_holds_the_csv_numbers(validated: dict) -> None:
    text = validated["html"].read_text(encoding="utf-8")
    with open(validated["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", text)]
    for row in rows:
        i = cells.index(row["sensor_id"])
        for key in ("n", "ubrmse", "rmse", "r", "bias"):
            assert row[key] and row[key] in cells[i:i + len(validation.CSV_FIELDS)], (row["sensor_id"], key)
    # the averages table: the map's mean over sensors with >= 13 pairs
    avg = validated["result"].average
    assert f"{avg['ubrmse']:.4f}" in cells and f"{avg['r']:.4f}" in cells
    assert "Stratified by network" in text and "MAQU*" in cells  # one qualifying sensor: the paper's asterisk
    assert not re.search(r"(src|href)=['\"](?!data:)", text)  # self-contained: no external resource


def test_report_images_decode_and_are_not_blank(validated: dict) -> None:
    text = validated["html"].read_text(encoding="utf-8")
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 2  # scatter and time series
    for b64 in images:
        width, height, varied = td.png_is_not_blank(base64.b64decode(b64))
        assert width > 300 and height > 200
        assert varied > 0.02  # axes, points and lines, not one flat colour


def test_headless_chromium_renders_the_report(validated: dict) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (the Makefile's system step installs it)")
    shot = validated["dir"] / "report.png"
    profile = validated["dir"] / "chromium-profile"
    proc = subprocess.run(  # noqa: S603 - fixed arguments
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,2000",
         validated["html"].resolve().as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    width, height, varied = td.png_is_not_blank(shot.read_bytes())
    assert (width, height) == (1200, 2000)
    assert varied > 0.05  # text, tables and plots on a white page
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
