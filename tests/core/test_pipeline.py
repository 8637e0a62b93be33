"""End-to-end tests of estimate_sm_320m: georeferencing, values, modes, tiling, streaming, nodata."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import rasterio

from smqgis.core import encoding
from smqgis.core.kinds.fusion import estimate_sm_320m, estimate_sm_arrays
from smqgis.core.model import load_model

#: fast vs exact with the context test model: its cells see 31 px around them, so the outer
#: ring of cells of a window sees real neighbours in fast mode and zero padding in exact mode.
FAST_EXACT_MEAN_TOL = 0.02  # m3/m3
FAST_EXACT_MAX_TOL = 0.08  # m3/m3


def test_output_georeferencing_tags_and_values(context_model, scene, tmp_path):
    out = tmp_path / "sm.tif"
    res = estimate_sm_320m(context_model, scene, str(out))
    # default CRS: UTM zone of the centre; default extent: the inputs' overlap (the Sentinel-1
    # footprint 600000-609600 E, 3900000-3908960 N) shrunk by 1120 m so every window is inside
    assert res.crs == "EPSG:32614"
    assert res.transform == (320.0, 0.0, 601280.0, 0.0, -320.0, 3907840.0)
    assert (res.width, res.height) == (22, 21)
    assert res.provider == "CPUExecutionProvider" and res.mode == "fast"
    with rasterio.open(out) as ds:
        assert ds.crs.to_string() == "EPSG:32614"
        assert tuple(ds.transform)[:6] == res.transform
        assert (ds.width, ds.height, ds.count) == (22, 21, 2)
        assert ds.nodata == -9999.0 and ds.dtypes == ("float32", "float32")
        assert ds.descriptions == ("soil_moisture", "input_coverage")
        assert ds.units[0] == "m3/m3"
        tags = ds.tags()
        sm = ds.read(1)
        cov = ds.read(2)
    assert tags["MODEL_VARIANT"] == "full" and tags["MODE"] == "fast" and tags["UNITS"] == "m3/m3"
    assert tags["MODEL_LABEL"] == res.label
    assert tags["INPUT_SMAP_PRODUCT"] == "NASA_USDA/HSL/SMAP10KM_soil_moisture"
    assert tags["INPUT_SENTINEL1_ACQUIRED_UTC"] == "2020-06-01T12:00:00Z"
    assert np.all(cov == 1.0) and res.stats["valid_fraction"] == 1.0
    assert np.all((sm > 0.0) & (sm < 0.5))
    assert res.stats["mean"] == pytest.approx(float(sm.astype(np.float64).mean()), abs=1e-6)
    assert res.stats["std"] > 0.01  # the map varies with its inputs
    assert not list(tmp_path.glob(".*part*"))


def _reference_pixel(model_path, inputs, grid, row, col):
    """Exact-mode value of one output pixel computed by hand: slice, scale, encode, call the graph."""
    meta = load_model(model_path).metadata
    cx, cy = grid.window_centre(row, col)
    feeds = {}
    for spec in meta["inputs"]:
        chans = []
        for band in spec["bands"]:
            key, name = band["ref"].split("/")
            with rasterio.open(inputs[key].path) as ds:
                descs = [(d or "").lower().replace("0", "") for d in ds.descriptions]
                want = name.lower().replace("0", "")
                idx = next((i for i, d in enumerate(descs) if d.split("_")[0] == want), 0)
                arr = ds.read(idx + 1).astype(np.float64) * ds.scales[idx] + ds.offsets[idx]
                inv = ~ds.transform
            if spec["name"] == "coarse":  # the source pixel holding the window centre
                c, r = inv @ (cx, cy)
                values = arr[int(r), int(c)]
            else:  # the window, sliced from the source on the very same grid
                half = spec["window_px"] * spec["pixel_size_m"] / 2
                c0, r0 = (int(round(v)) for v in inv @ (cx - half, cy + half))
                values = arr[r0:r0 + spec["window_px"], c0:c0 + spec["window_px"]]
            chans.append(encoding.encode(np.asarray(values), band["encoding"]))
        x = np.stack(chans, axis=-1).astype(np.float32)
        feeds[spec["name"]] = x[None]
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return float(session.run(None, feeds)[0].ravel()[0])


def test_exact_mode_equals_hand_computed_reference(context_model, aligned_scene):
    sm, cov, grid = estimate_sm_arrays(context_model, aligned_scene, mode="exact", tile_px=8)
    assert (grid.x0, grid.y0) == (601280.0, 3907840.0)
    for row, col in ((0, 0), (7, 13), (grid.height - 1, grid.width - 1)):
        ref = _reference_pixel(context_model, aligned_scene, grid, row, col)
        assert sm[row, col] == pytest.approx(ref, abs=1e-5)


def test_fast_equals_exact_for_a_cell_local_encoder(local_model, scene):
    fast, _, _ = estimate_sm_arrays(local_model, scene, mode="fast")
    exact, _, _ = estimate_sm_arrays(local_model, scene, mode="exact")
    assert fast.std() > 0.005
    np.testing.assert_allclose(fast, exact, atol=1e-5)


def test_fast_and_exact_agree_within_tolerance(context_model, scene):
    fast, _, _ = estimate_sm_arrays(context_model, scene, mode="fast")
    exact, _, _ = estimate_sm_arrays(context_model, scene, mode="exact")
    diff = np.abs(fast - exact)
    assert diff.mean() <= FAST_EXACT_MEAN_TOL and diff.max() <= FAST_EXACT_MAX_TOL
    # the difference is a window-edge effect, not noise: it is far smaller than the map's spread
    assert diff.mean() < 0.5 * fast.std()


def test_fast_mode_is_tile_invariant_for_a_cell_local_encoder(local_model, scene):
    whole, _, _ = estimate_sm_arrays(local_model, scene, tile_px=64)
    tiled, _, _ = estimate_sm_arrays(local_model, scene, tile_px=5)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_fast_mode_across_tile_boundaries_equals_untiled(context_model, scene):
    """Pixels not on a tile's outer ring see the same context tiled and untiled (31 px receptive radius
    < 32 px cell); the ring's windows see zero padding beyond the block edge, as in exact mode."""
    whole, _, _ = estimate_sm_arrays(context_model, scene, tile_px=64)
    tiled, _, _ = estimate_sm_arrays(context_model, scene, tile_px=7)
    exact, _, _ = estimate_sm_arrays(context_model, scene, mode="exact")
    pos_r = np.arange(whole.shape[0]) % 7
    pos_c = np.arange(whole.shape[1]) % 7
    last_r = np.arange(whole.shape[0]) >= (whole.shape[0] // 7) * 7  # the short last tile
    last_c = np.arange(whole.shape[1]) >= (whole.shape[1] // 7) * 7
    ring_r = (pos_r == 0) | (pos_r == 6) | (last_r & (np.arange(whole.shape[0]) == whole.shape[0] - 1))
    ring_c = (pos_c == 0) | (pos_c == 6) | (last_c & (np.arange(whole.shape[1]) == whole.shape[1] - 1))
    ring = ring_r[:, None] | ring_c[None, :]
    inner = ~ring
    assert inner.sum() > 100
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=1e-5)
    assert np.abs(tiled[ring] - whole[ring]).max() > 1e-4  # the ring really differs ...
    assert np.abs(tiled - exact).max() <= FAST_EXACT_MAX_TOL  # ... within the fast/exact tolerance


def test_streaming_writer_equals_in_memory(context_model, scene, tmp_path):
    out = tmp_path / "streamed.tif"
    estimate_sm_320m(context_model, scene, str(out), tile_px=6)
    mem, cov, _ = estimate_sm_arrays(context_model, scene, tile_px=6)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), mem)
        np.testing.assert_array_equal(ds.read(2), cov)


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_window_touching_nodata_gives_nodata(context_model, scene_factory, tmp_path_factory, mode):
    # a 20 x 20 px hole at Sentinel-1 rows/cols 400-419; pixel (r, c)'s window covers S1 rows
    # [32 r, 32 r + 256) and cols [16 + 32 c, 16 + 32 c + 256): it touches the hole for r in 5..13, c in 5..12
    inputs = scene_factory(tmp_path_factory.mktemp("hole"), seed=3, aligned=True, s1_hole=(400, 400, 20))
    sm, cov, grid = estimate_sm_arrays(context_model, inputs, mode=mode, tile_px=8)
    expected = np.zeros_like(sm, dtype=bool)
    expected[5:14, 5:13] = True
    np.testing.assert_array_equal(sm == -9999.0, expected)
    np.testing.assert_array_equal(cov < 1.0, expected)
    assert cov[5, 5] == pytest.approx(1 - 16 * 20 / 256**2)  # window rows 160-415, cols 176-431
    assert cov[9, 8] == pytest.approx(1 - 400 / 256**2)
    assert np.all((sm[~expected] > 0) & (sm[~expected] < 1))


def test_progress_reaches_100_and_cancel_leaves_nothing(context_model, scene, tmp_path):
    from smqgis.core.errors import Cancelled

    seen = []
    estimate_sm_320m(context_model, scene, str(tmp_path / "a.tif"), tile_px=8,
                     progress=lambda pct, msg: seen.append(pct))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(100.0) and len(seen) == 9
    for mode in ("fast", "exact"):
        out = tmp_path / mode / "cancelled.tif"
        out.parent.mkdir()
        def cancel_on_second(calls: list[int] = []) -> bool:  # noqa: B006 - a fresh list per loop turn
            calls.append(1)
            return len(calls) >= 2

        with pytest.raises(Cancelled):
            estimate_sm_320m(context_model, scene, str(out), mode=mode, tile_px=8, is_cancelled=cancel_on_second)
        assert list(out.parent.iterdir()) == []


def test_smap_successor_in_m3m3_is_harmonised(context_model, scene, tmp_path):
    with rasterio.open(scene["smap"].path) as src:
        profile, values = src.profile, src.read(1)
    successor = tmp_path / "smap_spl4smgp.tif"
    with rasterio.open(successor, "w", **profile) as dst:
        dst.write(np.where(values == -9999.0, values, values / 50.0), 1)  # mm over 5 cm -> m3/m3
        dst.set_band_description(1, "sm_surface")
    base, _, _ = estimate_sm_arrays(context_model, scene)
    inputs = dict(scene)
    inputs["smap"] = type(scene["smap"])(str(successor))
    got, _, _ = estimate_sm_arrays(context_model, inputs)
    np.testing.assert_allclose(got, base, atol=1e-5)
    out = tmp_path / "succ.tif"
    estimate_sm_320m(context_model, inputs, str(out))
    with rasterio.open(out) as ds:
        assert ds.tags()["INPUT_SMAP_PRODUCT"] == "NASA/SMAP/SPL4SMGP/007"


def test_exported_training_model_runs_in_both_modes(exported_model, scene):
    """The model of training/export.py (small Xception, random init) through the engine."""
    extent = (603000.0, 3902000.0, 605000.0, 3904000.0)
    fast, cov, grid = estimate_sm_arrays(exported_model, scene, extent=extent, mode="fast")
    exact, _, _ = estimate_sm_arrays(exported_model, scene, extent=extent, mode="exact")
    assert (grid.width, grid.height) == (7, 7)
    assert np.all(cov == 1.0)
    assert np.all((fast >= 0) & (fast <= 1)) and np.all((exact >= 0) & (exact <= 1))
    # random weights without training: report the gap, bound it loosely (output is clipped to [0, 1])
    assert np.abs(fast - exact).mean() < 0.25
