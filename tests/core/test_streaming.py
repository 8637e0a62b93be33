"""Streaming: per-tile reads, streamed writes, and memory that does not grow with the area."""

from __future__ import annotations

import tracemalloc
from functools import partial

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from smqgis.core import engine
from smqgis.core.kinds.fusion import estimate_sm_320m, estimate_sm_arrays, predict_tile
from smqgis.core.layers import gdal_env
from smqgis.core.pipeline import prepare
from smqgis.core.tile_inputs import ROLE_RESAMPLING


class _Discard:
    """A writer that keeps nothing (measures the engine's own memory)."""

    def write(self, row0: int, col0: int, soil_moisture: np.ndarray, coverage: np.ndarray) -> None:
        assert soil_moisture.dtype == np.float32 and coverage.shape == soil_moisture.shape


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_streamed_geotiff_equals_in_memory_arrays(context_model, scene, tmp_path, mode):
    out = tmp_path / f"streamed_{mode}.tif"
    res = estimate_sm_320m(context_model, scene, str(out), mode=mode, tile_px=7)
    mem, cov, grid = estimate_sm_arrays(context_model, scene, mode=mode, tile_px=7)
    assert (res.width, res.height) == (grid.width, grid.height)
    with rasterio.open(out) as ds:
        assert ds.transform == grid.transform
        np.testing.assert_array_equal(ds.read(1), mem)
        np.testing.assert_array_equal(ds.read(2), cov)
    assert (mem != -9999.0).mean() > 0.5


def test_on_grid_inputs_are_read_without_warping_and_equal_the_warp(context_model, aligned_scene):
    run = prepare(context_model, aligned_scene)
    try:
        layer = run.layers["sentinel1"]
        transform = run.grid.block_transform("high_res", 0, 0)
        assert layer.on_grid(run.grid.crs, transform)
        # a window of the role grid reaching past the file's right and bottom edges
        shape = (layer.dataset.height + 64, layer.dataset.width + 64)
        window = Window(96, 64, shape[1] - 96, shape[0] - 64)
        bands = ["VV", "VH"]
        resampling = ROLE_RESAMPLING["high_res"]
        with gdal_env():
            plain = layer.read_physical("high_res", bands, run.grid.crs, transform, shape, window, resampling)
            assert not layer._warped  # no warped VRT was made
            vrt = layer.warped("high_res", run.grid.crs, transform, shape, resampling)
            warped = np.stack([vrt.read(layer.band_index[b], window=window) for b in bands])
        assert np.isnan(plain[:, -10:, :]).all() and np.isfinite(plain[:, :100, :100]).all()
        np.testing.assert_array_equal(np.isnan(plain), np.isnan(warped))
        np.testing.assert_allclose(plain[np.isfinite(plain)], warped[np.isfinite(warped)], atol=1e-3)
        assert not layer.on_grid("EPSG:32615", transform)
    finally:
        run.close()


def _peak_traced_mib(model, scene, extent, tile_px: int) -> tuple[float, int]:
    run = prepare(model, scene, extent=extent, extent_crs="EPSG:32614", dst_crs="EPSG:32614")
    try:
        tracemalloc.start()
        with gdal_env():
            stats = engine.run_tiles(partial(predict_tile, run.model, run.grid, mode="fast"), run.reader, run.grid,
                                     _Discard(), tile_px=tile_px)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    finally:
        run.close()
    return peak, stats.tiles


def test_memory_does_not_grow_with_the_area(context_model, scene):
    """Python/numpy memory of a run (tracemalloc) is that of a tile or two, whatever the area."""
    x0, y0 = 601600.0, 3901600.0
    small, n_small = _peak_traced_mib(context_model, scene, (x0, y0, x0 + 3200.0, y0 + 3200.0), tile_px=5)
    large, n_large = _peak_traced_mib(context_model, scene, (x0, y0, x0 + 6400.0, y0 + 6400.0), tile_px=5)
    assert n_large >= 3 * n_small  # ~4x the area (the extents snap to whole 320 m pixels)
    assert large <= 1.1 * small + 1.0
