"""A soil-moisture map and a two-date series from Earth Engine, end to end against the local fake.

The fake Earth Engine (``tests/data/ee_fake_server.py``, 127.0.0.1) answers from the bundled
sample (simulated data), so a map made from what it serves must agree with the map made from
the sample's files directly: the Earth Engine path only moves the coarse inputs onto UTM grids.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

ee = pytest.importorskip("ee")

from smqgis.core import earthengine, ee_maps  # noqa: E402
from smqgis.core.pipeline import estimate_sm  # noqa: E402
from smqgis.demo import sample_inputs  # noqa: E402
from smqgis.paths import DEMO_MODEL_PATH  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ee_fake_server_maps", ROOT / "tests" / "data" / "ee_fake_server.py")
fake_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_module)

SAMPLE_EXTENT = (599040.0, 3947840.0, 604160.0, 3952960.0)


@pytest.fixture(scope="module")
def fake():
    server = fake_module.FakeEarthEngine()
    url = server.start()
    saved = ee.deprecation._FetchDataCatalogStac
    ee.deprecation._FetchDataCatalogStac = lambda: {}
    earthengine.initialise("smqgis-fake", url=url)
    yield server
    ee.deprecation._FetchDataCatalogStac = saved
    ee.Reset()
    server.stop()


def test_map_from_earth_engine_agrees_with_the_map_from_the_files(fake, tmp_path: Path) -> None:
    out = tmp_path / "sm_ee.tif"
    result = ee_maps.soil_moisture_map(str(DEMO_MODEL_PATH), SAMPLE_EXTENT, "EPSG:32614", ["2020-04-25T06:00:00Z"],
                                       str(out), str(tmp_path / "work"))
    ref = tmp_path / "sm_files.tif"
    estimate_sm(str(DEMO_MODEL_PATH), sample_inputs(), str(ref), extent=SAMPLE_EXTENT, extent_crs="EPSG:32614")
    with rasterio.open(out) as got, rasterio.open(ref) as want:
        assert got.crs == want.crs and got.transform == want.transform and got.shape == want.shape == (16, 16)
        a, b = got.read(1), want.read(1)
        valid = (a != got.nodata) & (b != want.nodata)
        assert valid.mean() > 0.95
        # same 10 m inputs; SoilGrids, SMAP, GLDAS pass through UTM grids (nearest): small differences only
        assert np.abs(a[valid] - b[valid]).mean() < 0.01
        assert np.corrcoef(a[valid], b[valid])[0, 1] > 0.95
        selection = json.loads(got.tags()["EE_SELECTION"])
        assert got.descriptions[:2] == ("soil_moisture", "input_coverage")
    assert selection[0]["anchor_utc"] == "2020-04-25T00:30:00Z"
    s1_id = "COPERNICUS/S1_GRD/smqgis_sample_20200425"  # pragma: allowlist secret (an asset id)
    assert selection[0]["images"]["sentinel1"]["id"] == s1_id
    assert result["dates"][0]["images"]["smap"]["offset_s"] == 60.5 * 3600


@pytest.mark.slow
def test_two_dates_make_one_series(fake, tmp_path: Path) -> None:
    out = tmp_path / "series.tif"
    dates = ["2020-04-25T06:00:00Z", "2020-10-10T06:00:00Z"]
    ee_maps.soil_moisture_map(str(DEMO_MODEL_PATH), SAMPLE_EXTENT, "EPSG:32614", dates, str(out),
                              str(tmp_path / "work"))
    single = tmp_path / "second.tif"
    ee_maps.soil_moisture_map(str(DEMO_MODEL_PATH), SAMPLE_EXTENT, "EPSG:32614", dates[1:], str(single),
                              str(tmp_path / "work"))
    with rasterio.open(out) as s, rasterio.open(single) as one:
        names = ["soil_moisture", "input_coverage", "age_hours sentinel2", "age_hours smap", "age_hours gldas"]
        assert s.count == 10
        assert s.descriptions == tuple(f"{n} {a}" for a in ("2020-04-25T00:30:00Z", "2020-10-10T00:30:00Z")
                                       for n in names)
        assert one.descriptions == tuple(names)
        np.testing.assert_allclose(s.read(6), one.read(1), atol=1e-6)
        assert not np.allclose(s.read(1), s.read(6))  # after rain vs a dry spell
        valid = s.read(1) != s.nodata
        np.testing.assert_allclose(s.read(4)[valid], 60.5)  # the sample's SMAP ages (dates.json)
        np.testing.assert_allclose(s.read(9)[s.read(6) != s.nodata], 12.5)


def test_masked_sentinel2_pixels_are_nodata_not_dark_pixels(fake, tmp_path: Path) -> None:
    """Clouds (QA60-masked pixels) in the download reach the model as missing input, never as DN 0."""
    date = ["2020-04-25T06:00:00Z"]
    clean = tmp_path / "clean.tif"
    ee_maps.soil_moisture_map(str(DEMO_MODEL_PATH), SAMPLE_EXTENT, "EPSG:32614", date, str(clean),
                              str(tmp_path / "work_clean"))
    west = SAMPLE_EXTENT[0] + 1500.0  # a 1.5 km cloud along the west edge
    fake.masked_west_of["sentinel2"] = west
    try:
        cloudy = tmp_path / "cloudy.tif"
        ee_maps.soil_moisture_map(str(DEMO_MODEL_PATH), SAMPLE_EXTENT, "EPSG:32614", date, str(cloudy),
                                  str(tmp_path / "work_cloudy"))
    finally:
        fake.masked_west_of.clear()
    (s2_path,) = (tmp_path / "work_cloudy").rglob("sentinel2.tif")
    with rasterio.open(s2_path) as s2:
        assert s2.nodata == 0
        xs = s2.transform.c + s2.transform.a * (np.arange(s2.width) + 0.5)
        valid = s2.read_masks(1) > 0
        assert not valid[:, xs < west].any()  # the cloud is nodata ...
        assert valid[:, xs > west].mean() > 0.99  # ... and nothing else
    with rasterio.open(clean) as a, rasterio.open(cloudy) as b:
        cov_clean, cov_cloudy = a.read(2), b.read(2)
        sm_clean, sm_cloudy = a.read(1), b.read(1)
    drop = cov_clean - cov_cloudy
    # windows that reach the cloud lose about the cloud's share of their pixels (had the masked pixels been
    # read as DN 0, the coverage would not have changed); the east, out of the windows' reach, is untouched
    assert (drop >= -1e-6).all()
    assert drop[:, 0].mean() > 0.2
    assert drop[:, -1].max() == 0.0
    np.testing.assert_allclose(sm_cloudy[:, -1], sm_clean[:, -1], atol=1e-6)
    assert (sm_cloudy[:, 0] != sm_clean[:, 0]).any()
