"""The region-scale map (``python -m smqgis.region_map``) on Beam's DirectRunner over the bundled sample.

The sample's output area is 16 x 16 pixels of 320 m (5.12 km); tiles of 2.56 km make 2 x 2 tiles of
8 px. The mosaic must equal one single-machine run of the core over the same area, seams included:
in fast mode a single run made with engine tiles of the tile size (a fast-mode tile's values are
those of an untiled run over its own extent, ``tests/core/test_engine_tiling.py``), in exact mode
any single run. Runs in the training environment (.venv-train), where Apache Beam is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam")
rasterio = pytest.importorskip("rasterio")

from apache_beam.metrics.metric import MetricsFilter  # noqa: E402

from smqgis import region_map  # noqa: E402
from smqgis.core.errors import InputError  # noqa: E402
from smqgis.core.kinds.fusion import estimate_sm_320m, estimate_sm_arrays  # noqa: E402
from smqgis.demo import sample_inputs  # noqa: E402
from smqgis.paths import DEMO_MODEL_PATH, PLUGIN_DIR, STYLE_PATH  # noqa: E402

UTM = "EPSG:32614"
#: The sample's output area (README of resources/sample): 16 x 16 px of 320 m.
SAMPLE_EXTENT = (599040.0, 3947840.0, 604160.0, 3952960.0)
TILE_KM = 2.56  # 8 px: 2 x 2 tiles
TILE_PX = 8
#: Largest |mosaic - single run| accepted (m3/m3): float32 rounding of the same graph calls.
TOL = 1e-5
#: Rows / columns either side of the tile seams (the seam is between pixels 7 and 8).
SEAM = [TILE_PX - 1, TILE_PX]
NAMES = ["tile_0000_0000.tif", "tile_0000_0001.tif", "tile_0001_0000.tif", "tile_0001_0001.tif"]


@pytest.fixture(autouse=True)
def _private_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SMQGIS_TMPDIR", str(tmp_path / "parts"))


def _run(out, extent=SAMPLE_EXTENT, mode="fast"):
    argv = ["--model", str(DEMO_MODEL_PATH), "--sample", "--extent", ",".join(map(str, extent)),
            "--extent-crs", UTM, "--out", str(out), "--tile-km", str(TILE_KM), "--mode", mode,
            "--runner", "DirectRunner"]
    result = region_map.run(argv)
    query = result.metrics().query(MetricsFilter().with_namespace(region_map.COUNTER_NAMESPACE))
    counters = {"tiles_written": 0, "tiles_skipped": 0, "tiles_without_input": 0}
    for c in query["counters"]:
        counters[c.key.metric.name] += c.committed
    return counters


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.transform, ds.crs, ds.tags()


def _seam_diff(a, b):
    return max(np.abs(a[SEAM, :] - b[SEAM, :]).max(), np.abs(a[:, SEAM] - b[:, SEAM]).max())


def test_mosaic_equals_a_single_run_and_a_rerun_writes_only_the_missing_tile(tmp_path):
    out = tmp_path / "region"
    assert _run(out) == {"tiles_written": 4, "tiles_skipped": 0, "tiles_without_input": 0}
    assert sorted(os.listdir(out)) == ["mosaic.qml", "mosaic.vrt", *NAMES]
    assert (out / "mosaic.qml").read_bytes() == STYLE_PATH.read_bytes()

    single = tmp_path / "single.tif"
    estimate_sm_320m(str(DEMO_MODEL_PATH), sample_inputs(), str(single), extent=SAMPLE_EXTENT, extent_crs=UTM,
                     tile_px=TILE_PX)
    ref, ref_transform, ref_crs, ref_tags = _read(single)
    mosaic, transform, crs, tags = _read(out / "mosaic.vrt")
    assert mosaic.shape == ref.shape == (2, 16, 16)
    assert transform == ref_transform and crs == ref_crs
    assert np.all(ref[0] > 0.0)  # every pixel has a value: the comparison covers the whole area
    assert np.abs(mosaic - ref).max() <= TOL
    assert _seam_diff(mosaic[0], ref[0]) <= TOL
    # the plugin's tags, the time of making and the region's own aside
    differ = {k for k in ref_tags if ref_tags[k] != tags.get(k)}
    assert differ <= {"CREATED_UTC", "INPUT_SENTINEL2_DN_OFFSET_SOURCE"}
    assert tags["REGION_TILES"] == "4 of 4" and tags["MODE"] == "fast" and tags["UNITS"] == "m3/m3"
    with rasterio.open(out / NAMES[1]) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.descriptions == ("soil_moisture", "input_coverage") and ds.nodata == -9999.0
        assert tuple(ds.transform)[:6] == (320.0, 0.0, SAMPLE_EXTENT[0] + TILE_PX * 320.0, 0.0, -320.0,
                                           SAMPLE_EXTENT[3])

    # a killed run: one tile missing, a half-written temporary one left behind
    mtimes = {n: os.stat(out / n).st_mtime_ns for n in NAMES}
    (out / NAMES[2]).unlink()
    leftover = out / f"{NAMES[2]}.0123abcd.part"
    leftover.write_bytes(b"II*\x00 half a tile")
    assert _run(out) == {"tiles_written": 1, "tiles_skipped": 3, "tiles_without_input": 0}
    assert not leftover.exists()
    assert sorted(os.listdir(out)) == ["mosaic.qml", "mosaic.vrt", *NAMES]
    for name in (n for n in NAMES if n != NAMES[2]):
        assert os.stat(out / name).st_mtime_ns == mtimes[name]
    again, *_ = _read(out / "mosaic.vrt")
    assert np.abs(again - ref).max() <= TOL

    # a rerun of another run into the same folder is refused before anything is made or removed
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    with pytest.raises(InputError, match=r"already holds tile_0000_0000\.tif from another run \(MODE 'fast' there, "
                                         r"'exact' now\)") as err:
        _run(out, mode="exact")
    assert err.value.parameter == "out"
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before


def test_exact_mode_mosaic_equals_any_single_run(tmp_path):
    out = tmp_path / "exact"
    assert _run(out, mode="exact")["tiles_written"] == 4
    ref, _, grid = estimate_sm_arrays(str(DEMO_MODEL_PATH), sample_inputs(), extent=SAMPLE_EXTENT, extent_crs=UTM,
                                      mode="exact")  # automatic tiles: one 16 px tile
    mosaic, transform, *_ = _read(out / "mosaic.vrt")
    assert tuple(transform)[:6] == tuple(grid.transform)[:6]
    assert np.abs(mosaic[0] - ref).max() <= TOL
    assert _seam_diff(mosaic[0], ref) <= TOL


def test_tiles_beyond_the_inputs_are_counted_and_left_out(tmp_path):
    # two tiles further east, where the 10 m inputs end: no window there has every input
    extent = (SAMPLE_EXTENT[0], SAMPLE_EXTENT[1], SAMPLE_EXTENT[2] + TILE_PX * 320.0, SAMPLE_EXTENT[3])
    out = tmp_path / "wider"
    assert _run(out, extent=extent) == {"tiles_written": 4, "tiles_skipped": 0, "tiles_without_input": 2}
    mosaic, transform, *_ = _read(out / "mosaic.vrt")
    assert mosaic.shape == (2, 16, 24)
    assert np.all(mosaic[0, :, 16:] == -9999.0)
    ref, _, _ = estimate_sm_arrays(str(DEMO_MODEL_PATH), sample_inputs(), extent=extent, extent_crs=UTM,
                                   tile_px=TILE_PX)
    np.testing.assert_allclose(mosaic[0], ref, atol=TOL)  # the single run has nodata there too


def test_the_core_imports_without_beam():
    code = ("import sys; import smqgis.core.kinds.fusion, smqgis.core.pipeline; "
            "assert 'apache_beam' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=PLUGIN_DIR, check=True, timeout=120)
