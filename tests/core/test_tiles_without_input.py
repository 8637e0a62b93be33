"""Tiles without valid input: written as nodata, read only up to their first empty input, never run.

The scene is the multi-CRS test scene with Sentinel-1 nodata over the western 60 % of its
columns: the tiles whose every window lies there have no valid input. The reference reads
every input of every tile (``stop_at_empty=False``) and calls the model's tile runner on
every tile, outside the engine - what the engine did before it skipped such tiles.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import rasterio

from smqgis.core import engine
from smqgis.core.kinds.fusion import predict_tile
from smqgis.core.layers import SourceLayer, gdal_env
from smqgis.core.output import ArrayWriter
from smqgis.core.pipeline import prepare
from smqgis.core.tile_inputs import TileReader

TILE_PX = 4


@pytest.fixture(scope="module")
def half_nodata_scene(scene_factory, tmp_path_factory):
    """The test scene (seed 5) with Sentinel-1 nodata over its western 60 % (every band)."""
    inputs = scene_factory(tmp_path_factory.mktemp("half_nodata"), seed=5)
    with rasterio.open(inputs["sentinel1"].path, "r+") as ds:
        for band in range(1, ds.count + 1):
            values = ds.read(band)
            values[:, : ds.width * 6 // 10] = ds.nodata
            ds.write(values, band)
    return inputs


@pytest.fixture()
def source_reads(monkeypatch):
    """Counts ``SourceLayer.read_physical`` calls by source key."""
    counts: Counter = Counter()
    original = SourceLayer.read_physical

    def counting(self, *args, **kwargs):
        counts[self.key] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SourceLayer, "read_physical", counting)
    return counts


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_tiles_without_input_are_nodata_and_not_run(context_model, half_nodata_scene, source_reads, mode):
    run = prepare(context_model, half_nodata_scene, provider="cpu")
    try:
        tiles = engine.plan_tiles(run.grid, TILE_PX)
        runner_calls = []

        def runner(tile, is_cancelled):
            runner_calls.append((tile.row0, tile.col0))
            return predict_tile(run.model, run.grid, tile, is_cancelled, mode=mode)

        skipping = ArrayWriter(run.grid)
        with gdal_env():
            stats = engine.run_tiles(runner, run.reader, run.grid, skipping, tile_px=TILE_PX)
        reads_skipping = dict(source_reads)
        source_reads.clear()

        full_reader = TileReader(run.grid, {role: run.model.bands(role) for role in run.model.roles}, run.layers,
                                 stop_at_empty=False)
        reference = ArrayWriter(run.grid)
        reference_graph_calls = 0
        with gdal_env():
            for spec in tiles:
                tile = full_reader.read(*spec)
                sm, calls = predict_tile(run.model, run.grid, tile, mode=mode)
                reference.write(tile.row0, tile.col0, sm, tile.coverage)
                reference_graph_calls += calls
        reads_full = dict(source_reads)
    finally:
        run.close()

    empty = [t for t in tiles if not reference.coverage[t[0]:t[0] + t[2], t[1]:t[1] + t[3]].any()]
    assert len(empty) >= len(tiles) // 4  # a real share of the map has no input
    assert stats.tiles == len(tiles) and stats.tiles_without_input == len(empty)
    # the runner was called once per tile with input, never on the empty ones
    assert len(runner_calls) == len(tiles) - len(empty) < len(tiles)
    assert not set(runner_calls) & {(r, c) for r, c, _, _ in empty}
    assert stats.model_calls == reference_graph_calls
    # empty tiles: nodata, coverage 0; everything else bitwise as before
    for r, c, nr, nc in empty:
        assert (skipping.soil_moisture[r:r + nr, c:c + nc] == engine.NODATA).all()
    np.testing.assert_array_equal(skipping.soil_moisture, reference.soil_moisture)
    np.testing.assert_array_equal(skipping.coverage, reference.coverage)
    valid = skipping.soil_moisture != engine.NODATA
    assert 0.1 < valid.mean() < 0.6
    assert np.all((skipping.soil_moisture[valid] >= 0.0) & (skipping.soil_moisture[valid] <= 1.0))
    # the empty tiles were read up to Sentinel-1 (the first 10 m input) only: no Sentinel-2 or DEM reads for them
    assert reads_full["sentinel2"] == reads_full["dem"] == len(tiles)
    assert reads_skipping["sentinel2"] == reads_skipping["dem"] == len(tiles) - len(empty)
    assert reads_skipping["sentinel1"] == reads_full["sentinel1"] == len(tiles)
