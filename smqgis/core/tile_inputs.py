"""Step three of the flow: the encoded model inputs of one tile of output pixels.

A :class:`TileReader` reads, for a tile of the output grid, the block of every model
input role that the tile's windows need (``SourceLayer.read_physical``: bilinear for the
high- and low-res windows, nearest for the coarse values at the window centres), encodes
each band exactly as the model's metadata says (``encoding.py``) and works out which window
pixels had every input (the window coverage). The engine only sees the result, a
:class:`TileInputs`. Roles are read from the cheapest (``coarse``: one value per output
pixel) to the dearest (``high_res``: 10 m blocks), and a tile stops being read at the first
input found all nodata: nothing of it could be valid, so the engine writes it as nodata
without running the model (``engine.has_input``), and the 10 m reads are saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import encoding
from .grid import ModelGrid
from .layers import SourceLayer

#: Resampling per model input role (the paper bilinearly resamples every image input).
ROLE_RESAMPLING = {"high_res": Resampling.bilinear, "low_res": Resampling.bilinear, "coarse": Resampling.nearest}
#: Order in which a tile's roles are read: cheapest first (pixels per output pixel: 1, 4, ~100), so a tile
#: without data is found out before its 10 m blocks are read.
ROLE_READ_ORDER = ("coarse", "low_res", "high_res")


@dataclass
class TileInputs:
    """The encoded inputs of one tile of output pixels.

    Attributes
    ----------
    row0, col0, nrows, ncols : int
        Position and size of the tile on the output grid (pixels).
    arrays : dict of str to ndarray
        ``high_res`` / ``low_res``: float32 (rows, cols, C) role blocks covering the tile's
        windows, 0-255, 0 where invalid; ``coarse``: float32 (nrows, ncols, K). All zeros when
        the coverage is 0 everywhere (the tile was not read past its first input found all nodata).
    coverage : ndarray, shape (nrows, ncols)
        Fraction of each window's pixels where every required input is valid (0-1).
    seconds : float
        Wall time spent reading, warping and encoding (s).
    """

    row0: int
    col0: int
    nrows: int
    ncols: int
    arrays: dict[str, np.ndarray]
    coverage: np.ndarray
    seconds: float


def window_fraction(valid: np.ndarray, window_px: int, step_px: int, nrows: int, ncols: int) -> np.ndarray:
    """Fraction of valid pixels in each ``window_px`` window, windows ``step_px`` apart (float32)."""
    s = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(valid, axis=0, dtype=np.int64), axis=1, out=s[1:, 1:])
    r = np.arange(nrows) * step_px
    c = np.arange(ncols) * step_px
    total = s[np.ix_(r + window_px, c + window_px)] - s[np.ix_(r, c + window_px)] \
        - s[np.ix_(r + window_px, c)] + s[np.ix_(r, c)]
    return (total / float(window_px * window_px)).astype(np.float32)


class TileReader:
    """Reads, warps and encodes the model inputs of tiles of the output grid.

    Parameters
    ----------
    grid : ModelGrid
        The run's grids.
    model_bands : dict of str to list of dict
        Band specs (``ref``, ``encoding``) per model input role, in channel order.
    layers : dict of str to SourceLayer
        Opened inputs by source key.
    stop_at_empty : bool
        Stop reading a tile at the first input found all nodata in it (its coverage is then 0
        everywhere whatever the others hold); False reads every input of every tile.
    """

    def __init__(self, grid: ModelGrid, model_bands: dict[str, list[dict[str, Any]]],
                 layers: dict[str, SourceLayer], stop_at_empty: bool = True) -> None:
        self.grid = grid
        self.layers = layers
        self.stop_at_empty = stop_at_empty
        self.plan: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for role, bands in model_bands.items():
            if bands:
                self.plan[role] = [(*b["ref"].split("/", 1), b["encoding"]) for b in bands]
        # whole-area grid (transform, shape) of each role: tiles read windows of it
        self._full: dict[str, tuple[Any, tuple[int, int]]] = {
            role: (grid.block_transform(role, 0, 0), g.block_shape(grid.height, grid.width))
            for role, g in grid.roles.items()
        }
        self._full["coarse"] = (grid.transform, (grid.height, grid.width))
        fine = min(grid.roles.values(), key=lambda g: g.pixel_size_m) if grid.roles else None
        self._fine_role = next((r for r, g in grid.roles.items() if g is fine), None)

    def _read_role(self, role: str, window: Window) -> tuple[np.ndarray, np.ndarray]:
        channels = self.plan[role]
        shape = (int(window.height), int(window.width))
        out = np.empty((*shape, len(channels)), dtype=np.float32)
        valid = np.ones(shape, dtype=bool)
        by_source: dict[str, list[int]] = {}
        for ci, (key, _band, _enc) in enumerate(channels):
            by_source.setdefault(key, []).append(ci)
        for key, cis in by_source.items():
            if self.stop_at_empty and not valid.any():  # an input read is all nodata: the rest cannot help
                break
            layer = self.layers[key]
            to_read = [channels[ci][1] for ci in cis if channels[ci][1] not in layer.constants]
            phys = None
            if to_read:
                phys = layer.read_physical(role, to_read, self.grid.crs, *self._full[role], window,
                                           ROLE_RESAMPLING[role])
            for ci in cis:
                band, enc = channels[ci][1], channels[ci][2]
                if band in layer.constants:
                    values = np.full(shape, layer.constants[band], dtype=np.float32)
                else:
                    values = phys[to_read.index(band)]
                    valid &= np.isfinite(values)
                out[..., ci] = encoding.encode(values, enc)
        if not valid.any():
            out.fill(0.0)
        else:
            out[~valid] = 0.0
        return out, valid

    def read(self, row0: int, col0: int, nrows: int, ncols: int) -> TileInputs:
        """Encoded inputs and window coverage of output pixels [row0:row0+nrows, col0:col0+ncols]."""
        t0 = time.perf_counter()
        arrays: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        empty = False
        for role in sorted(self.plan, key=lambda r: ROLE_READ_ORDER.index(r) if r in ROLE_READ_ORDER else -1):
            if role == "coarse":
                window = Window(col0, row0, ncols, nrows)
            else:
                g = self.grid.roles[role]
                rows, cols = g.block_shape(nrows, ncols)
                window = Window(col0 * g.step_px, row0 * g.step_px, cols, rows)
            if empty:  # an input read before is all nodata: no window can have every input
                shape = (int(window.height), int(window.width))
                arrays[role] = np.zeros((*shape, len(self.plan[role])), dtype=np.float32)
                masks[role] = np.zeros(shape, dtype=bool)
                continue
            arrays[role], masks[role] = self._read_role(role, window)
            empty = self.stop_at_empty and not masks[role].any()
        arrays = {role: arrays[role] for role in self.plan}  # the model's order
        coverage = np.ones((nrows, ncols), dtype=np.float32)
        if empty:
            coverage[:] = 0.0
        elif self._fine_role is not None:
            fine = self.grid.roles[self._fine_role]
            valid = np.ones(fine.block_shape(nrows, ncols), dtype=bool)
            for role, g in self.grid.roles.items():
                if role in masks:
                    f = int(round(g.pixel_size_m / fine.pixel_size_m))
                    valid &= masks[role].repeat(f, axis=0).repeat(f, axis=1)
            coverage = window_fraction(valid, fine.window_px, fine.step_px, nrows, ncols)
        if "coarse" in masks:
            coverage *= masks["coarse"]
        return TileInputs(row0, col0, nrows, ncols, arrays, coverage, time.perf_counter() - t0)
