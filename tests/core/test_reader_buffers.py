"""The map reader's speed-ups keep its values: float32 in-place encoding, reused buffers, parallel reads.

* ``encoding.encode_into`` (float32, in place) equals the float64 reference ``encode`` to
  float32 rounding, and ``encode`` itself is unchanged (checked against the formulas written out);
* a run whose reader reuses its buffers from tile to tile (the engine releases each tile once
  written) writes exactly what a reader that never reuses anything gives, tile by tile, and
  allocates a fixed number of buffers however many tiles it reads;
* reading a role's inputs on several threads gives bitwise the same tiles as reading them on one.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from smqgis.core import encoding, engine
from smqgis.core.kinds.fusion import predict_tile
from smqgis.core.layers import gdal_env
from smqgis.core.output import ArrayWriter
from smqgis.core.pipeline import prepare
from smqgis.core.tile_inputs import BufferPool, TileReader

LINEAR = {"kind": "linear", "min": -25.0, "max": 0.0}
LOG_SIGMOID = {"kind": "log_sigmoid", "dn_scale": 0.01, "log_mean": 2.9, "log_std": 0.8}


def _physical_values() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-40.0, 10.0, 5000), rng.uniform(0.0, 12000.0, 5000),
                        [0.0, 1e-6, -1.0, 1e9, np.nan, np.inf, -np.inf]])
    return x


def test_encode_is_the_formula_and_encode_into_equals_it_to_float32_rounding():
    x = _physical_values()
    with np.errstate(invalid="ignore", over="ignore"):
        lin = (np.clip((x + 25.0) / 25.0, 0.0, 1.0) * 255.0).astype(np.float32)
        z = (np.log1p(np.maximum(x, 0.0) * 0.01) - 2.9) / 0.8
        sig = (255.0 / (1.0 + np.exp(-z))).astype(np.float32)
    for enc, formula in ((LINEAR, lin), (LOG_SIGMOID, sig)):
        ref = encoding.encode(x, enc)
        np.testing.assert_array_equal(ref, formula)  # the training data's encoding, bit for bit
        x32 = x.astype(np.float32)
        kept = x32.copy()
        fast = encoding.encode_into(x32, enc, np.empty_like(x32))
        np.testing.assert_array_equal(x32, kept)  # the input is not touched
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
        ok = np.isfinite(ref)
        assert np.abs(fast[ok] - ref[ok]).max() <= 1e-4  # float32 rounding on the 0-255 scale
        assert np.abs(fast[ok] - ref[ok]).max() > 0.0 or enc is LINEAR  # it really is computed in float32
        same = encoding.encode_into(x32, enc, x32)  # in place
        np.testing.assert_array_equal(same, fast)


def test_buffer_pool_reuses_and_bounds():
    pool = BufferPool(keep=2)
    a, fa = pool.take("high_res", (4, 5, 3))
    b, fb = pool.take("high_res", (4, 5, 3))
    assert pool.allocated == 2 and not np.shares_memory(a, b)
    pool.give("high_res", fa)
    c, fc = pool.take("high_res", (3, 5, 3))  # an edge tile: the front of the freed buffer
    assert fc is fa and c.flags.c_contiguous and c.shape == (3, 5, 3) and pool.allocated == 2
    d, _ = pool.take("high_res", (5, 5, 3))  # larger than any free one: a new buffer
    assert pool.allocated == 3 and d.shape == (5, 5, 3)
    for flat in (fa, fb, np.empty(1, np.float32)):
        pool.give("high_res", flat)
    assert sorted(f.size for f in pool._free["high_res"]) == [60, 60]  # the two largest kept


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_reused_buffers_and_parallel_reads_give_the_same_map(context_model, scene, mode):
    run = prepare(context_model, scene, provider="cpu")
    try:
        bands = {role: run.model.bands(role) for role in run.model.roles}
        tiles = engine.plan_tiles(run.grid, 4)
        assert len(tiles) >= 9
        # reference: a fresh sequential reader per tile, nothing reused
        reference = ArrayWriter(run.grid)
        with gdal_env():
            for spec in tiles:
                fresh = TileReader(run.grid, bands, run.layers, workers=1)
                tile = fresh.read(*spec)
                sm, _ = predict_tile(run.model, run.grid, tile, mode=mode)
                reference.write(tile.row0, tile.col0, sm, tile.coverage)
        for workers in (1, 3):
            reader = TileReader(run.grid, bands, run.layers, workers=workers)
            streamed = ArrayWriter(run.grid)
            with gdal_env():
                stats = engine.run_tiles(partial(predict_tile, run.model, run.grid, mode=mode), reader, run.grid,
                                         streamed, tile_px=4)
            reader.close()
            assert stats.tiles == len(tiles)
            np.testing.assert_array_equal(streamed.soil_moisture, reference.soil_moisture)
            np.testing.assert_array_equal(streamed.coverage, reference.coverage)
            # one set of block buffers per tile in flight (2) and one scratch per file, whatever the tile count
            n_roles, n_files = len(reader.plan), len(run.layers)
            assert reader.pool.allocated <= 2 * n_roles + n_files, reader.pool.allocated
        valid = reference.soil_moisture != engine.NODATA
        assert valid.mean() > 0.5
    finally:
        run.close()


def test_a_released_tile_gives_up_its_arrays(context_model, scene):
    run = prepare(context_model, scene, provider="cpu")
    try:
        with gdal_env():
            tile = run.reader.read(0, 0, 3, 3)
            hr = tile.arrays["high_res"]
            before = hr.copy()
            tile.release()
            assert tile.arrays == {}
            tile.release()  # twice is harmless
            other = run.reader.read(3, 3, 3, 3)  # reuses the released buffer
        assert np.shares_memory(other.arrays["high_res"], hr)
        assert not np.array_equal(other.arrays["high_res"], before)
    finally:
        run.close()


def test_each_channel_keeps_its_own_encoding_when_a_constant_band_comes_first(context_model, scene):
    """Sentinel-1 with VV as a constant (the first of its bands): VH and the angle keep their own encodings."""
    from rasterio.windows import Window

    from smqgis.core.tile_inputs import ROLE_RESAMPLING

    run = prepare(context_model, scene, provider="cpu")
    try:
        layer = run.layers["sentinel1"]
        bands = {role: run.model.bands(role) for role in run.model.roles}
        hr = [b["ref"] for b in bands["high_res"]]
        assert hr[:3] == ["sentinel1/VV", "sentinel1/VH", "sentinel1/angle"]
        encodings = [b["encoding"] for b in bands["high_res"][:3]]
        assert encodings[1] != encodings[2]  # VH (dB) and the angle (degrees) are encoded differently
        layer.constants = {**layer.constants, "VV": -11.0}
        reader = TileReader(run.grid, bands, run.layers, workers=1)
        g = run.grid.roles["high_res"]
        with gdal_env():
            tile = reader.read(0, 0, 3, 3)
            rows, cols = g.block_shape(3, 3)
            phys = layer.read_physical("high_res", ["VH", "angle"], run.grid.crs,
                                       *reader._full["high_res"], Window(0, 0, cols, rows), ROLE_RESAMPLING["high_res"])
        block = tile.arrays["high_res"]
        ok = np.isfinite(phys).all(axis=0)
        assert ok.mean() > 0.5
        np.testing.assert_array_equal(block[..., 0][ok], encoding.encode(np.float32(-11.0), encodings[0]))
        for ch in (1, 2):
            ref = encoding.encode(phys[ch - 1], encodings[ch])
            assert np.abs(block[..., ch][ok] - ref[ok]).max() <= 1e-4
    finally:
        run.close()
