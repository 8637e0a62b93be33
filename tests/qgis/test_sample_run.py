"""processing.run on the bundled sample scene: grid, values, provenance, truth and the loaded layer.

The sample (resources/sample, simulated, seed 3) declares the output grid in its
manifest: EPSG:32614, 16 x 16 pixels of 320 m whose centres are the window centres,
and the truth aggregated to that grid (truth_sm_320m.tif). The algorithm's raster must
sit exactly on that grid and hold exactly what ``smqgis.core.pipeline`` writes for the
same inputs (the Processing layer only translates parameters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProject, QgsSingleBandPseudoColorRenderer

from sm_qgis_helpers import ALG_ID, DEMO_MODEL, SAMPLE_DIR, LogFeedback, sample_manifest, sample_params

#: Pearson r the demo model's map must reach against the sample's 320 m truth (see the test's docstring).
MIN_TRUTH_R = 0.35
#: ubRMSE bound (m3/m3) against the same truth: the SMAP mission's accuracy target.
MAX_TRUTH_UBRMSE = 0.04


def test_sample_output_grid(sample_run: dict[str, Any]) -> None:
    grid = sample_manifest()["output_grid"]
    with rasterio.open(sample_run["path"]) as out:
        assert out.crs.to_string() == grid["crs"] == "EPSG:32614"
        assert tuple(out.transform)[:6] == tuple(grid["transform"])
        assert (out.width, out.height) == (grid["width"], grid["height"]) == (16, 16)
        assert out.count == 2 and out.dtypes == ("float32", "float32")
        assert out.nodata == -9999.0
        assert out.descriptions == ("soil_moisture", "input_coverage")
        tags = out.tags()
        sm, coverage = out.read(1), out.read(2)
    assert tags["UNITS"] == "m3/m3" and tags["MODE"] == "fast" and tags["PROVIDER"] == "CPUExecutionProvider"
    assert tags["SMQGIS_VERSION"] == "0.1.0"
    assert tags["INPUT_SMAP_PRODUCT"] == "NASA_USDA/HSL/SMAP10KM_soil_moisture"
    # the sample's inputs reach exactly one half window beyond the grid: every window is complete
    assert np.all(coverage == 1.0)
    assert np.all((sm >= 0.0) & (sm <= 1.0))
    result = sample_run["result"]
    assert Path(result["OUTPUT"]) == sample_run["path"]
    assert result["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    feedback: LogFeedback = sample_run["feedback"]
    assert any(i.startswith("Execution provider: CPUExecutionProvider") for i in feedback.infos), feedback.infos


def test_sample_equals_engine_run(sample_run: dict[str, Any], model_path: Path, tmp_path: Path) -> None:
    from smqgis.core.kinds.fusion import estimate_sm_320m
    from smqgis.core.pipeline import LayerInput

    manifest = sample_manifest()
    inputs = {
        source: LayerInput(str(SAMPLE_DIR / entry["path"]), product=entry["product"] if source == "smap" else None)
        for source, entry in manifest["inputs"].items()
    }
    direct = estimate_sm_320m(str(model_path), inputs, str(tmp_path / "direct.tif"), mode="fast", provider="cpu")
    assert direct.crs == "EPSG:32614" and (direct.width, direct.height) == (16, 16)
    with rasterio.open(direct.output_path) as ref, rasterio.open(sample_run["path"]) as got:
        assert got.transform == ref.transform and got.crs == ref.crs
        np.testing.assert_array_equal(got.read(), ref.read())  # identical, bit for bit
        drop = {"CREATED_UTC"}
        got_tags = {k: v for k, v in got.tags().items() if k not in drop}
        ref_tags = {k: v for k, v in ref.tags().items() if k not in drop}
        assert got_tags == ref_tags


def test_sample_agrees_with_truth(sample_run: dict[str, Any], model_path: Path) -> None:
    """The demo model's map, made by the Processing algorithm, follows the sample's truth and beats SMAP.

    Thresholds: R >= 0.35 (the retrained demo model measures 0.407 on this date in fast mode, 0.396 in
    exact mode, see resources/models/demo_fusion_simulated.json; issue 8's target of 0.6 is not
    reached yet) and ubRMSE <= 0.04 m3/m3 (the
    SMAP mission's target) against truth_sm_320m, and a lower ubRMSE than SMAP alone (the coarse
    input, re-gridded). Metrics from ``smqgis.core.metrics``, the project's one metrics module.
    """
    from smqgis import demo
    from smqgis.core import metrics

    if model_path != DEMO_MODEL:
        pytest.skip("the demo model is not in resources/models/ yet; the random test model has no skill")
    with rasterio.open(sample_run["path"]) as out, rasterio.open(SAMPLE_DIR / "truth_sm_320m.tif") as truth:
        assert truth.transform == out.transform
        est = out.read(1, masked=True).astype("float64").filled(np.nan)
        obs = truth.read(1, masked=True).astype("float64").filled(np.nan)
    assert np.isfinite(est).sum() == 256
    smap, _ = demo.smap_on_grid(str(sample_run["path"]), str(SAMPLE_DIR / "smap.tif"))
    r, ubrmse = metrics.pearson_r(est, obs), metrics.ubrmse(est, obs)
    assert r >= MIN_TRUTH_R, f"r = {r:.3f}"
    assert ubrmse <= MAX_TRUTH_UBRMSE, f"ubRMSE = {ubrmse:.4f}"
    assert ubrmse < metrics.ubrmse(smap, obs), "the map must beat SMAP alone"


def test_loaded_layer_is_styled_and_named(smqgis_provider: object, model_path: Path, tmp_path: Path) -> None:
    import processing

    out_path = tmp_path / "sm_loaded.tif"
    result = processing.runAndLoadResults(ALG_ID, sample_params(sample_manifest(), out_path, model_path))
    layers = list(QgsProject.instance().mapLayers().values())
    assert len(layers) == 1
    layer = layers[0]
    assert Path(layer.source()) == out_path
    assert layer.name() == f"Soil moisture 320 m - {result['MODEL_LABEL']}"
    if model_path == DEMO_MODEL:
        assert "simulated" in layer.name()
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    assert (renderer.band(), renderer.classificationMin(), renderer.classificationMax()) == (1, 0.0, 0.5)
    assert renderer.legendSymbologyItems()[0][0].startswith("0.00 m3/m3")


def test_angle_constant_is_ignored_when_s1_has_an_angle_band(
    sample_run: dict[str, Any], model_path: Path, tmp_path: Path
) -> None:
    """The sample's S1 raster has an angle band: S1_ANGLE_DEG is ignored (logged) and changes nothing."""
    import processing

    params = {**sample_run["params"], "OUTPUT": str(tmp_path / "sm_angle.tif"), "S1_ANGLE_DEG": 30.0}
    feedback = LogFeedback()
    processing.run(ALG_ID, params, feedback=feedback)
    assert "sentinel1: the file has a band angle; the fallback constant 30 is not used" in feedback.infos
    assert not any("angle is the constant" in w for w in feedback.warnings)
    with rasterio.open(params["OUTPUT"]) as got, rasterio.open(sample_run["path"]) as ref:
        np.testing.assert_array_equal(got.read(), ref.read())
