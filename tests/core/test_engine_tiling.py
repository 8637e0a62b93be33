"""Fast-mode tiling: what a tile boundary changes, stated exactly.

A fast-mode tile of ``n`` output pixels runs the encoder over a ``32 (n + 7)`` px block that
holds every one of its windows whole. So, for ANY model:

* a tile's values are exactly those of an untiled run over the tile's own extent (the block
  is the same; nothing of the neighbours enters);

and for a model whose encoder cells see at most ``R`` px beyond their own 32 px cell, an
output pixel equals the untiled value wherever none of its 8 x 8 cells lies within
``ceil(R / 32)`` cells of the block edge: with the 3 x 3 test encoder (R = 31 px) every
pixel but the tile's outer ring. A model with a wide receptive field (Xception) changes
more of the tile, within the fast/exact tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from smqgis.core import engine
from smqgis.core.grid import ModelGrid, RoleGrid
from smqgis.core.kinds.fusion import estimate_sm_arrays

UTM = "EPSG:32614"


def _inner_mask(shape: tuple[int, int], tile: int, ring_cells: int) -> np.ndarray:
    """Pixels whose 8 x 8 window cells all lie ``ring_cells`` or more cells inside their tile's block."""
    def axis(n: int) -> np.ndarray:
        pos = np.arange(n) % tile
        size = np.minimum(tile, n - (np.arange(n) // tile) * tile)  # the short last tile
        return (pos >= ring_cells) & (pos <= size - 1 - ring_cells)

    return axis(shape[0])[:, None] & axis(shape[1])[None, :]


def test_a_tile_equals_an_untiled_run_over_its_own_extent(context_model, scene):
    tile = 6
    tiled, cov, grid = estimate_sm_arrays(context_model, scene, tile_px=tile)
    for row0, col0, nr, nc in engine.plan_tiles(grid, tile)[:: 5]:
        x0, y0 = grid.x0 + col0 * grid.out_res_m, grid.y0 - row0 * grid.out_res_m
        extent = (x0 + 1.0, y0 - nr * grid.out_res_m + 1.0, x0 + nc * grid.out_res_m - 1.0, y0 - 1.0)
        alone, alone_cov, g = estimate_sm_arrays(context_model, scene, extent=extent, extent_crs=grid.crs,
                                                 dst_crs=grid.crs, tile_px=64)
        assert (g.width, g.height, g.x0, g.y0) == (nc, nr, x0, y0)
        np.testing.assert_allclose(tiled[row0:row0 + nr, col0:col0 + nc], alone, atol=1e-6)
        np.testing.assert_array_equal(cov[row0:row0 + nr, col0:col0 + nc], alone_cov)


@pytest.mark.parametrize("tile", [5, 8])
def test_only_the_tile_ring_differs_for_a_31px_receptive_radius(context_model, scene, tile):
    whole, _, grid = estimate_sm_arrays(context_model, scene, tile_px=64)
    assert max(grid.width, grid.height) <= 64  # one tile: the untiled reference
    tiled, _, _ = estimate_sm_arrays(context_model, scene, tile_px=tile)
    inner = _inner_mask(whole.shape, tile, ring_cells=math.ceil(31 / 32))
    assert inner.sum() > 100
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=1e-5)
    ring = ~inner
    assert np.abs(tiled[ring] - whole[ring]).max() > 1e-4  # the ring's edge cells really see zero padding


def test_auto_tiles_fit_the_memory_budget_and_are_even():
    grid = ModelGrid(UTM, 0.0, 0.0, 125, 125, 320.0, {"high_res": RoleGrid(10.0, 256, 32)})
    paper_bytes = 178_000_000
    small = engine.auto_tile_px(grid, "CPUExecutionProvider", paper_bytes, memory_budget_mib=1200)
    big = engine.auto_tile_px(grid, "CPUExecutionProvider", paper_bytes, memory_budget_mib=3072)
    assert small < big
    for budget, tile in ((1200, small), (3072, big)):
        block = 32 * (tile + 7)
        assert block <= min(engine.max_block_px(paper_bytes, budget), engine.CPU_BLOCK_PX)
        per_side = math.ceil(125 / tile)
        sizes = {nr for _, _, nr, _ in engine.plan_tiles(grid, tile)}
        assert min(sizes) > tile - per_side  # even tiles: no sliver at the end
    # a GPU is not held to the CPU budget
    assert engine.auto_tile_px(grid, "CUDAExecutionProvider", paper_bytes, memory_budget_mib=1200) >= big
