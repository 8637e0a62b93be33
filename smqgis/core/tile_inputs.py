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

Memory and speed: a tile's blocks are read and encoded in place in float32 buffers that the
reader reuses from tile to tile (:class:`BufferPool`; the engine hands a tile's buffers back
with :meth:`TileInputs.release` once it is written), so a run allocates a few blocks at its
start and none per tile; and after a role's first input (which alone decides whether the tile
is empty) its other inputs are read on up to ``workers`` threads, one per file (GDAL and
numpy release the GIL; one file is never read by two threads at once).
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

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
#: Most threads a tile's inputs are read with (one per input file of a role; more files than this queue).
MAX_READ_WORKERS = 4
#: Free buffers a :class:`BufferPool` keeps per kind (a run has at most two tiles in flight).
POOL_KEEP = 3


class BufferPool:
    """Float32 buffers reused from tile to tile, so the reader allocates no block-sized arrays per tile.

    A buffer taken is a C-contiguous view of the front of a flat buffer at least as large
    (edge tiles are smaller than the first); given back, it serves the next tile. Buffers
    never given back are simply garbage-collected. Thread-safe.
    """

    def __init__(self, keep: int = POOL_KEEP) -> None:
        self.keep = keep
        self._free: dict[str, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        #: Flat buffers allocated so far (how many times the pool had none free that was large enough).
        self.allocated = 0

    def take(self, kind: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(array of ``shape``, the flat buffer it lies in: give that back with :meth:`give`)."""
        n = math.prod(shape)
        with self._lock:
            free = self._free.get(kind, [])
            fits = [i for i, b in enumerate(free) if b.size >= n]
            if fits:
                flat = free.pop(min(fits, key=lambda i: free[i].size))
                return flat[:n].reshape(shape), flat
            self.allocated += 1
        flat = np.empty(n, dtype=np.float32)
        return flat.reshape(shape), flat

    def give(self, kind: str, flat: np.ndarray) -> None:
        """Return a flat buffer of :meth:`take` for reuse (the largest ``keep`` per kind are kept)."""
        with self._lock:
            free = self._free.setdefault(kind, [])
            free.append(flat)
            if len(free) > self.keep:
                free.sort(key=lambda b: b.size)
                free.pop(0)


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
    _release: Callable[[], None] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Hand the arrays' buffers back to the reader for the next tile; ``arrays`` must not be used after."""
        if self._release is not None:
            release, self._release = self._release, None
            self.arrays = {}
            release()


def window_fraction(valid: np.ndarray, window_px: int, step_px: int, nrows: int, ncols: int) -> np.ndarray:
    """Fraction of valid pixels in each ``window_px`` window, windows ``step_px`` apart (float32)."""
    dtype = np.int32 if valid.size < 2**31 else np.int64  # counts up to the block's pixels
    s = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), dtype=dtype)
    np.cumsum(np.cumsum(valid, axis=0, dtype=dtype), axis=1, out=s[1:, 1:])
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
    workers : int, optional
        Threads a role's inputs after its first are read with (default: the physical cores, at most
        ``MAX_READ_WORKERS``); 1 reads everything on the calling thread.
    """

    def __init__(self, grid: ModelGrid, model_bands: dict[str, list[dict[str, Any]]],
                 layers: dict[str, SourceLayer], stop_at_empty: bool = True, workers: int | None = None) -> None:
        from .model import physical_cores

        self.grid = grid
        self.layers = layers
        self.stop_at_empty = stop_at_empty
        self.workers = max(1, int(workers if workers is not None else min(MAX_READ_WORKERS, physical_cores())))
        self.pool = BufferPool()
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
        # one read at a time: a file is never read by two threads at once, and the scratch buffers are shared
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def _read_source(self, role: str, key: str, cis: list[int], window: Window, out: np.ndarray) -> np.ndarray:
        """Read, encode into ``out[..., ci]`` the channels ``cis`` of input ``key``; its valid mask."""
        channels = self.plan[role]
        shape = out.shape[:2]
        layer = self.layers[key]
        valid = np.ones(shape, dtype=bool)
        read_cis = [ci for ci in cis if channels[ci][1] not in layer.constants]
        if read_cis:
            phys, flat = self.pool.take(f"scratch:{key}", (len(read_cis), *shape))
            try:
                layer.read_physical(role, [channels[ci][1] for ci in read_cis], self.grid.crs, *self._full[role],
                                    window, ROLE_RESAMPLING[role], out=phys)
                for k, ci in enumerate(read_cis):  # each channel with its own encoding
                    values = phys[k]
                    valid &= np.isfinite(values)
                    encoding.encode_into(values, channels[ci][2], values)
                    out[..., ci] = values
            finally:
                self.pool.give(f"scratch:{key}", flat)
        for ci in cis:
            band, enc = channels[ci][1], channels[ci][2]
            if band in layer.constants:
                out[..., ci] = encoding.encode(np.float32(layer.constants[band]), enc)
        return valid

    def _read_role(self, role: str, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(encoded block, its valid mask, the flat buffer of the block) of ``role`` over ``window``."""
        channels = self.plan[role]
        shape = (int(window.height), int(window.width))
        out, flat = self.pool.take(role, (*shape, len(channels)))
        by_source: dict[str, list[int]] = {}
        for ci, (key, _band, _enc) in enumerate(channels):
            by_source.setdefault(key, []).append(ci)
        keys = list(by_source)
        try:
            # the first input alone: found all nodata, the tile is empty and the others are not read
            valid = self._read_source(role, keys[0], by_source[keys[0]], window, out)
            rest = keys[1:] if (valid.any() or not self.stop_at_empty) else []
            if len(rest) > 1 and self.workers > 1:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="smqgis-input")
                futures = [self._executor.submit(self._read_source, role, key, by_source[key], window, out)
                           for key in rest]
                wait(futures)  # every read over before anything is raised: no file is left being read
                for f in futures:
                    valid &= f.result()
            else:
                for key in rest:
                    if self.stop_at_empty and not valid.any():
                        break
                    valid &= self._read_source(role, key, by_source[key], window, out)
        except BaseException:
            self.pool.give(role, flat)
            raise
        if not valid.any():
            out.fill(0.0)
        elif not valid.all():
            out[~valid] = 0.0
        return out, valid, flat

    def read(self, row0: int, col0: int, nrows: int, ncols: int) -> TileInputs:
        """Encoded inputs and window coverage of output pixels [row0:row0+nrows, col0:col0+ncols].

        The arrays lie in the reader's reusable buffers: call :meth:`TileInputs.release` when done
        with them (the engine does); a tile never released keeps its own arrays.
        """
        with self._lock:
            return self._read(row0, col0, nrows, ncols)

    def _read(self, row0: int, col0: int, nrows: int, ncols: int) -> TileInputs:
        t0 = time.perf_counter()
        arrays: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        flats: list[tuple[str, np.ndarray]] = []
        empty = False
        try:
            for role in sorted(self.plan, key=lambda r: ROLE_READ_ORDER.index(r) if r in ROLE_READ_ORDER else -1):
                if role == "coarse":
                    window = Window(col0, row0, ncols, nrows)
                else:
                    g = self.grid.roles[role]
                    rows, cols = g.block_shape(nrows, ncols)
                    window = Window(col0 * g.step_px, row0 * g.step_px, cols, rows)
                if empty:  # an input read before is all nodata: no window can have every input
                    shape = (int(window.height), int(window.width))
                    arrays[role], flat = self.pool.take(role, (*shape, len(self.plan[role])))
                    arrays[role].fill(0.0)
                    flats.append((role, flat))
                    masks[role] = np.zeros(shape, dtype=bool)
                    continue
                arrays[role], masks[role], flat = self._read_role(role, window)
                flats.append((role, flat))
                empty = self.stop_at_empty and not masks[role].any()
        except BaseException:
            for kind, flat in flats:
                self.pool.give(kind, flat)
            raise
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
                    valid &= masks[role].repeat(f, axis=0).repeat(f, axis=1) if f > 1 else masks[role]
            coverage = window_fraction(valid, fine.window_px, fine.step_px, nrows, ncols)
        if "coarse" in masks:
            coverage *= masks["coarse"]

        def release() -> None:
            for kind, flat in flats:
                self.pool.give(kind, flat)

        return TileInputs(row0, col0, nrows, ncols, arrays, coverage, time.perf_counter() - t0, release)

    def close(self) -> None:
        """Stop the reading threads (the layers are closed by their owner)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
