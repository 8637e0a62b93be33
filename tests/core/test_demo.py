"""The demo command on the bundled sample scene (resources/sample), when it is there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

from smqgis import demo

pytestmark = pytest.mark.skipif(not (demo.SAMPLE / "manifest.json").is_file(), reason="no sample scene yet")


def test_sample_grid_is_the_manifest_output_grid(context_model, tmp_path, capsys):
    out = tmp_path / "demo.tif"
    assert demo.main(["--model", context_model, "--output", str(out)]) == 0
    grid = json.loads((demo.SAMPLE / "manifest.json").read_text())["output_grid"]
    with rasterio.open(out) as ds:
        assert ds.crs.to_string() == grid["crs"]
        assert list(ds.transform)[:6] == grid["transform"]
        assert (ds.width, ds.height) == (grid["width"], grid["height"])
    text = capsys.readouterr().out
    assert str(out) in text and "valid fraction 1.000" in text and "ubRMSE" in text


def test_agreement_of_the_truth_with_itself_is_perfect():
    truth = str(demo.SAMPLE / "truth_sm_320m.tif")
    agreement = demo.agreement_with_truth(truth, truth)
    assert agreement["r"] == pytest.approx(1.0) and agreement["ubrmse"] == pytest.approx(0.0, abs=1e-9)
    assert agreement["bias"] == pytest.approx(0.0, abs=1e-12)


def test_demo_model_is_labelled_simulated(tmp_path, capsys):
    if not demo.DEMO_MODEL.is_file():
        pytest.skip("the demo model is not there yet")
    assert demo.main(["--output", str(tmp_path / "demo.tif")]) == 0
    assert "simulated" in capsys.readouterr().out.lower()
    assert Path(tmp_path / "demo.tif").is_file()
