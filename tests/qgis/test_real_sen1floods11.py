"""Real Sentinel-1/-2 rasters (Sen1Floods11, Spain chip 7370579) through the algorithm.

The chip (EPSG:4326, 512 x 512 px of ~10 m near Orihuela, Vega Baja del Segura; S1
2019-09-17, S2 2019-09-18, just after the September 2019 DANA floods) has a 2-band S1
file (VV, VH in dB - no incidence-angle band) and a 13-band S2 L1C file (B1..B12 with
B8A and B10). The sample scene's other inputs lie elsewhere, so the static and coarse
inputs covering this chip are made here, in tmp_path, from real-looking constants
(written by ``sm_qgis_helpers.write_spain_inputs``): a DEM with the valley floor at ~20 m and a
ridge to the north-west, SoilGrids-like loam (sand 300, silt 420, clay 280 g/kg, bdod
135 cg/cm3), SMAP ssm 15-19 mm (0.30-0.38 m3/m3 over 5 cm, wet after the floods) on a
0.09 deg grid and GLDAS 30-34 kg/m2 on its 0.25 deg grid. The output must be in UTM 30N
(EPSG:32630, the zone of the chip's centre, -0.76 deg), equal a direct engine run, and
carry the constant-angle warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsApplication, QgsRasterLayer
from rasterio.warp import transform_bounds

from sm_qgis_helpers import (
    ALG_ID,
    S1_ANGLE_DEG,
    S1_PATH,
    S2_PATH,
    LogFeedback,
    spain_params,
    write_spain_inputs,
)

S2_ALL_BANDS = "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12"

pytestmark = pytest.mark.skipif(not S1_PATH.is_file(), reason="the Sen1Floods11 chip is not available")


def test_real_s1_s2_give_utm30n_map(smqgis_provider: object, model_path: Path, tmp_path: Path) -> None:
    import processing

    from smqgis.core.kinds.fusion import estimate_sm_320m
    from smqgis.core.pipeline import LayerInput

    static = write_spain_inputs(tmp_path)
    feedback = LogFeedback()
    out_path = tmp_path / "sm_spain.tif"
    result = processing.run(ALG_ID, spain_params(static, out_path, model_path), feedback=feedback)
    assert Path(result["OUTPUT"]) == out_path and out_path.is_file()
    assert result["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    # the constant angle is used, with a warning that says so
    assert any("band angle is the constant 37.0" in w and "varies across the swath" in w
               for w in feedback.warnings), feedback.warnings

    layer = QgsRasterLayer(str(out_path), "sm")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32630"
    del layer
    with rasterio.open(out_path) as got, rasterio.open(S1_PATH) as s1:
        assert got.crs.to_epsg() == 32630
        assert (got.transform.a, got.transform.b, got.transform.d, got.transform.e) == (320.0, 0.0, 0.0, -320.0)
        # every window lies inside the chip: its ~4.0 km (E-W) x 5.1 km (N-S) minus one 2560 m window
        # leaves room for 4-5 x 7-8 pixels of 320 m
        assert 4 <= got.width <= 5 and 7 <= got.height <= 8, (got.width, got.height)
        west, south, east, north = transform_bounds(s1.crs, got.crs, *s1.bounds)
        assert west <= got.bounds.left and got.bounds.right <= east
        assert south <= got.bounds.bottom and got.bounds.top <= north
        assert got.nodata == -9999.0 and got.count == 2
        sm, coverage = got.read(1), got.read(2)
    # every input is valid everywhere on the chip: all pixels mapped, with full coverage
    assert np.all(coverage == 1.0)
    assert np.all((sm >= 0.0) & (sm <= 1.0))
    assert float(sm.std()) > 0.0  # the real S1/S2 texture reaches the map

    # the same inputs through the engine directly give the same bytes
    direct = tmp_path / "sm_spain_direct.tif"
    inputs = {
        "sentinel1": LayerInput(str(S1_PATH), constants={"angle": S1_ANGLE_DEG}),
        "sentinel2": LayerInput(str(S2_PATH)),
        **{key: LayerInput(str(path)) for key, path in static.items()},
    }
    inputs["smap"].product = "NASA_USDA/HSL/SMAP10KM_soil_moisture"
    estimate_sm_320m(str(model_path), inputs, str(direct), mode="fast", provider="cpu")
    with rasterio.open(direct) as ref:
        np.testing.assert_array_equal(ref.read(1), sm)
        np.testing.assert_array_equal(ref.read(2), coverage)

    # declaring the 13-band order instead of relying on the band descriptions changes nothing
    declared = tmp_path / "sm_spain_declared.tif"
    processing.run(ALG_ID, spain_params(static, declared, model_path, s2_bands=S2_ALL_BANDS))
    with rasterio.open(declared) as dec:
        np.testing.assert_array_equal(dec.read(1), sm)
    assert QgsApplication.processingRegistry().algorithmById(ALG_ID) is not None


def test_exact_mode_is_passed_through(smqgis_provider: object, model_path: Path, tmp_path: Path) -> None:
    """MODE=1 runs the engine's exact mode (tagged), on the same grid as fast mode, bit-equal to the engine."""
    import processing

    from smqgis.core.kinds.fusion import estimate_sm_320m
    from smqgis.core.pipeline import LayerInput

    static = write_spain_inputs(tmp_path)
    params = spain_params(static, tmp_path / "sm_exact.tif", model_path)
    params["MODE"] = 1
    processing.run(ALG_ID, params)
    inputs = {
        "sentinel1": LayerInput(str(S1_PATH), constants={"angle": S1_ANGLE_DEG}),
        "sentinel2": LayerInput(str(S2_PATH)),
        **{key: LayerInput(str(path)) for key, path in static.items()},
    }
    inputs["smap"].product = "NASA_USDA/HSL/SMAP10KM_soil_moisture"
    direct = estimate_sm_320m(str(model_path), inputs, str(tmp_path / "direct_exact.tif"), mode="exact", provider="cpu")
    with rasterio.open(params["OUTPUT"]) as got, rasterio.open(direct.output_path) as ref:
        assert got.tags()["MODE"] == "exact"
        assert (got.crs, got.transform, got.shape) == (ref.crs, ref.transform, ref.shape)
        np.testing.assert_array_equal(got.read(), ref.read())


def test_smap_successor_product_is_passed_through(smqgis_provider: object, model_path: Path, tmp_path: Path) -> None:
    """SMAP_PRODUCT=2 declares the SPL4SMGP successor (m3/m3): the engine converts it to the trained-on mm over
    5 cm, so the same soil moisture as SPL4SMGP (ssm / 50 m3/m3) gives the map of the 10 km product (ssm mm)."""
    import processing

    static = write_spain_inputs(tmp_path)
    reference = spain_params(static, tmp_path / "sm_10km.tif", model_path)
    reference["SMAP_PRODUCT"] = 1
    processing.run(ALG_ID, reference)
    with rasterio.open(static["smap"]) as src:
        ssm_mm, profile, tags = src.read(1), src.profile, src.tags()
    assert 15.0 < ssm_mm.min() and ssm_mm.max() < 19.0  # mm of water in the top 5 cm
    successor = tmp_path / "smap_spl4smgp.tif"
    with rasterio.open(successor, "w", **profile) as dst:
        dst.write(ssm_mm / 50.0, 1)  # m3/m3 over 5 cm: 50 mm of water is 1 m3/m3
        dst.set_band_description(1, "sm_surface")
        dst.update_tags(**tags)
    params = {**spain_params(static, tmp_path / "sm_spl4.tif", model_path), "SMAP": str(successor)}
    params["SMAP_PRODUCT"] = 2
    processing.run(ALG_ID, params)
    with rasterio.open(params["OUTPUT"]) as out, rasterio.open(reference["OUTPUT"]) as ref:
        assert out.tags()["INPUT_SMAP_PRODUCT"] == "NASA/SMAP/SPL4SMGP/007"
        assert ref.tags()["INPUT_SMAP_PRODUCT"] == "NASA_USDA/HSL/SMAP10KM_soil_moisture"
        # float32 m3/m3 x 50 differs from the mm by ~1e-6 mm: far below what moves a map
        np.testing.assert_allclose(out.read(), ref.read(), rtol=0.0, atol=1e-5)
