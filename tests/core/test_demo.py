"""The demo command on the bundled sample scene (resources/sample), when it is there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_fast_and_exact_agree_on_the_sample_with_the_demo_model():
    """Fast (fully-convolutional) and exact (window per pixel) maps of the sample agree.

    Tolerance: mean |fast - exact| <= 0.006 m3/m3 and max <= 0.02 m3/m3. They are not identical
    by design: in exact mode the encoder sees zero padding at each 2.56 km window's border, in
    fast mode it sees the real neighbouring pixels there. The demo model retrained on correct
    labels leans on its image branch (the old one ignored it: 0.00021 mean, 0.00083 max), so the
    border context matters more: measured 0.0049 mean, 0.016 max (map sd 0.024). Issue 5's
    target of mean <= 0.005 is met only just; fast mode, which sees real context, is the default.
    """
    if not demo.DEMO_MODEL.is_file():
        pytest.skip("the demo model is not there yet")
    from smqgis.core.kinds.fusion import estimate_sm_arrays
    from smqgis.core.model import load_model

    model = load_model(str(demo.DEMO_MODEL), provider="cpu")
    inputs = demo.sample_inputs()
    fast, fast_cov, fast_grid = estimate_sm_arrays(model, inputs, mode="fast")
    exact, exact_cov, _ = estimate_sm_arrays(model, inputs, mode="exact")
    assert fast.shape == exact.shape == (16, 16)
    np.testing.assert_array_equal(fast_cov, exact_cov)
    assert np.all(fast_cov == 1.0)
    diff = np.abs(fast.astype(np.float64) - exact.astype(np.float64))
    assert diff.mean() <= 0.006, diff.mean()
    assert diff.max() <= 0.02, diff.max()
    # and they are not trivially equal: fast mode does see context exact mode pads with zeros
    assert diff.max() > 1e-6
    # the map varies across the scene far more than the two modes differ
    assert np.std(fast) > 3 * diff.mean()
