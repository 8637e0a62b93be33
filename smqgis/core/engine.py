"""Step four of the flow: tiled inference over the output grid, streaming tile by tile.

The output grid is cut into tiles of output pixels; for each tile a :class:`TileSource`
delivers the tile's encoded inputs (read one tile ahead on a worker thread: reading and
encoding overlap inference, and at most two tiles are in memory, so memory does not grow
with the area), a :class:`TileRunner` - how a kind of model runs one tile, e.g. the
fusion kind's fast or exact mode (``kinds/fusion.py``) - turns them into soil moisture,
and the block is handed to a :class:`Writer` at once. A tile with no valid input at all
(every window's coverage 0: nodata in the inputs the model needs) is written as nodata
without calling the runner. The engine knows these three only by their protocols.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .errors import Cancelled
from .grid import ModelGrid

log = logging.getLogger(__name__)

#: Value of an output pixel without an estimate (a window that touches nodata in a required input).
NODATA = -9999.0
#: Default peak-memory budget of a fast-mode run on the CPU (MiB): automatic tiles are as large as fits.
DEFAULT_MEMORY_BUDGET_MIB = 3072
#: Memory of a run besides the model and its activations (MiB): interpreter and libraries (~150),
#: the GDAL block cache (``layers.GDAL_CACHE_MIB``), the output statistics.
BASE_MIB = 450
#: Resident memory per byte of ONNX file (onnxruntime keeps the weights and their pre-packed copies).
WEIGHT_RSS_FACTOR = 2.3
#: Peak memory per high-res block pixel (bytes): the paper-size (Xception-65) encoder's activations in
#: onnxruntime's memory arena (``model.OnnxModel``; measured 430-533 B/px at 1248-2016 px blocks in the
#: block study, ``python -m smqgis.bench --blocks``), plus the tile being read (10 bands float32) and the
#: reader's per-file scratch (``tile_inputs.BufferPool``: up to 10 bands float32). Conservative for smaller
#: models.
BYTES_PER_BLOCK_PX = 620
#: Largest high-res block side (px) of an automatic fast-mode tile on the CPU, whatever the budget. With
#: the arena, the time per output pixel falls with the block up to ~2016 px (paper-size model: 4.7 ms at
#: 1248 px, 3.9 ms at 2016 px; demo model 0.26 -> 0.19 ms) and was no better at 2240 px; without it
#: (before 2026-12-04) blocks over ~1536 px ran slower per FLOP (page faults; docs/benchmark.md).
CPU_BLOCK_PX = 2048
#: Largest high-res block side (px) of an automatic fast-mode tile on a GPU (its memory is not budgeted here).
CUDA_BLOCK_PX = 4096

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class TileData(Protocol):
    """The inputs of one tile, as a :class:`TileSource` delivers them (e.g. ``tile_inputs.TileInputs``)."""

    row0: int
    col0: int
    coverage: np.ndarray  # (nrows, ncols): fraction of each window's pixels where every input is valid (0-1)
    seconds: float  # wall time spent reading and encoding (s)
    # optional: ``release()``, called once the tile is written, hands its buffers back to the reader


class TileSource(Protocol):
    """Reads the inputs of a tile of output pixels (e.g. ``tile_inputs.TileReader``)."""

    def read(self, row0: int, col0: int, nrows: int, ncols: int) -> TileData: ...


class TileRunner(Protocol):
    """Runs the model on one tile: soil moisture (m3/m3, NODATA where none) and the graph calls made."""

    def __call__(self, tile: TileData, is_cancelled: CancelFn | None) -> tuple[np.ndarray, int]: ...


class Writer(Protocol):
    """Where the engine puts each finished block (e.g. ``output.GeoTiffWriter``, ``output.ArrayWriter``)."""

    def write(self, row0: int, col0: int, soil_moisture: np.ndarray, coverage: np.ndarray) -> None: ...


@dataclass
class EngineStats:
    """Timings (s) and running statistics of the written soil moisture (m3/m3)."""

    seconds: dict[str, float] = field(default_factory=lambda: {"read_warp_encode": 0.0, "inference": 0.0,
                                                              "write": 0.0, "wait_for_input": 0.0, "wall": 0.0})
    tiles: int = 0
    #: Tiles with no valid input (every window's coverage 0): written as nodata, the model not run.
    tiles_without_input: int = 0
    model_calls: int = 0
    n_pixels: int = 0
    n_valid: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    vmin: float = math.inf
    vmax: float = -math.inf

    def add(self, sm: np.ndarray) -> None:
        """Account for one block (NODATA ignored)."""
        v = sm[sm != NODATA].astype(np.float64)
        self.n_pixels += sm.size
        self.n_valid += v.size
        if v.size:
            self.total += float(v.sum())
            self.total_sq += float((v * v).sum())
            self.vmin = min(self.vmin, float(v.min()))
            self.vmax = max(self.vmax, float(v.max()))

    def summary(self) -> dict[str, float]:
        """min, max, mean, std (m3/m3; NaN when nothing is valid) and valid_fraction (0-1)."""
        n = self.n_valid
        mean = self.total / n if n else math.nan
        std = math.sqrt(max(self.total_sq / n - mean * mean, 0.0)) if n else math.nan
        return {
            "min": self.vmin if n else math.nan,
            "max": self.vmax if n else math.nan,
            "mean": mean,
            "std": std,
            "valid_fraction": n / self.n_pixels if self.n_pixels else 0.0,
        }


def max_block_px(model_bytes: int, memory_budget_mib: float = DEFAULT_MEMORY_BUDGET_MIB) -> int:
    """Largest high-res block side (px) whose run fits ``memory_budget_mib`` on the CPU.

    Parameters
    ----------
    model_bytes : int
        Size of the ONNX file (bytes).
    memory_budget_mib : float
        Peak resident memory allowed for the run (MiB).
    """
    free_mib = memory_budget_mib - BASE_MIB - WEIGHT_RSS_FACTOR * model_bytes / 2**20
    return int(math.sqrt(max(free_mib, 0.0) * 2**20 / BYTES_PER_BLOCK_PX))


def auto_tile_px(grid: ModelGrid, provider: str, model_bytes: int = 0,
                 memory_budget_mib: float = DEFAULT_MEMORY_BUDGET_MIB) -> int:
    """Fast-mode tile side (output pixels): the fewest, most even tiles whose blocks fit the memory budget.

    A tile of ``n`` output pixels a side computes a ``32 (n + 7)`` px block, so the encoder's
    work per output pixel falls as ``((n + 7) / n)^2``: tiles are as large as the budget
    and ``CPU_BLOCK_PX`` (the measured sweet spot) allow, then evened out (125 px as 4 x 32
    rather than 3 x 41 + 2: a small tile costs more per pixel).

    Parameters
    ----------
    grid : ModelGrid
        The output grid.
    provider : str
        onnxruntime provider name; on CUDA the block is capped at ``CUDA_BLOCK_PX``.
    model_bytes : int
        Size of the ONNX file (bytes).
    memory_budget_mib : float
        Peak resident memory allowed for the run (MiB, CPU).

    Returns
    -------
    int
        Tile side in output pixels (at least 1).
    """
    hr = grid.roles.get("high_res")
    if hr is None:
        return 256
    if "CUDA" in provider:
        limit = CUDA_BLOCK_PX
    else:
        limit = min(CPU_BLOCK_PX, max_block_px(model_bytes, memory_budget_mib))
    largest = max(1, (limit - hr.window_px) // hr.step_px + 1)
    side = max(grid.width, grid.height)
    tile = math.ceil(side / math.ceil(side / largest))
    log.info("fast-mode tiles of %d output px (%d px high-res blocks; largest fitting %.0f MiB: %d px)", tile,
             hr.block_shape(tile, tile)[0], memory_budget_mib, limit)
    return tile


_LIBC_TRIM: Callable[[int], int] | None = None


def trim_heap() -> None:
    """Give the process heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    The reader's and numpy's temporaries of tens of MB are freed after every tile; glibc keeps
    such freed memory in its heaps (its mmap threshold rises to the largest block freed), so
    without this the resident memory of a run creeps up with its number of tiles (measured
    with onnxruntime's arena off: demo model 20 -> 40 km, peak RSS x1.43 without, x1.13 with;
    docs/benchmark.md). onnxruntime's arena, when on, is not returned by this (it is freed with
    its session at the end of the run).
    """
    global _LIBC_TRIM
    if _LIBC_TRIM is None:
        import ctypes
        import ctypes.util
        import sys

        trim = None
        if sys.platform.startswith("linux"):
            try:
                trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
                trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
            except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
                trim = None
        _LIBC_TRIM = trim or (lambda pad: 0)
    _LIBC_TRIM(0)


def plan_tiles(grid: ModelGrid, tile_px: int) -> list[tuple[int, int, int, int]]:
    """Tiles (row0, col0, nrows, ncols) covering the output grid, row-major."""
    return [
        (r, c, min(tile_px, grid.height - r), min(tile_px, grid.width - c))
        for r in range(0, grid.height, tile_px)
        for c in range(0, grid.width, tile_px)
    ]


def has_input(tile: TileData) -> bool:
    """True when some window of ``tile`` has valid input (coverage above 0): the tile is worth running."""
    return bool(np.any(tile.coverage > 0.0))


def run_tiles(
    run_tile: TileRunner,
    reader: TileSource,
    grid: ModelGrid,
    writer: Writer,
    *,
    tile_px: int = 32,
    label: str = "",
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    prefetch: bool = True,
    tiles: list[tuple[int, int, int, int]] | None = None,
) -> EngineStats:
    """Run the model over every tile of ``grid`` and hand each result block to ``writer``.

    A tile without valid input (:func:`has_input` false) is handed to ``writer`` as nodata
    without calling ``run_tile``.

    Parameters
    ----------
    run_tile : TileRunner
        How the model runs one tile (e.g. the fusion kind's fast or exact mode).
    reader : TileSource
        Supplies the inputs of a tile.
    grid : ModelGrid
        The output grid.
    writer : Writer
        Receives (row0, col0, soil moisture m3/m3, coverage 0-1) per tile.
    tile_px : int
        Tile side in output pixels.
    label : str
        How progress messages name the run (e.g. ``"fast mode"``).
    progress : callable, optional
        ``progress(percent 0-100, message)`` after each tile.
    is_cancelled : callable, optional
        Polled before each tile (and by ``run_tile``); True raises :class:`Cancelled`.
    prefetch : bool
        Read the next tile on a worker thread while the current one runs.
    tiles : list of (row0, col0, nrows, ncols), optional
        The tiles to run (default: all of ``plan_tiles``); the others stay nodata.

    Returns
    -------
    EngineStats
        Timings and running statistics.
    """
    stats = EngineStats()
    tiles = plan_tiles(grid, tile_px) if tiles is None else tiles
    t_wall = time.perf_counter()
    log.info("%s: %d x %d output px in %d tile(s) of up to %d px", label or "run", grid.width, grid.height,
             len(tiles), tile_px)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smqgis-read") if prefetch else None
    try:
        pending = executor.submit(reader.read, *tiles[0]) if executor else None
        for k, spec in enumerate(tiles):
            if is_cancelled is not None and is_cancelled():
                raise Cancelled("cancelled by the user; nothing was written")
            t0 = time.perf_counter()
            tile = pending.result() if pending is not None else reader.read(*spec)
            stats.seconds["wait_for_input"] += time.perf_counter() - t0
            if executor is not None and k + 1 < len(tiles):
                pending = executor.submit(reader.read, *tiles[k + 1])
            stats.seconds["read_warp_encode"] += tile.seconds
            t1 = time.perf_counter()
            if has_input(tile):
                sm, calls = run_tile(tile, is_cancelled)
            else:
                sm, calls = np.full(tile.coverage.shape, NODATA, dtype=np.float32), 0
                stats.tiles_without_input += 1
            t2 = time.perf_counter()
            writer.write(tile.row0, tile.col0, sm, tile.coverage)
            release = getattr(tile, "release", None)
            if release is not None:  # the tile's buffers serve the next tile (``tile_inputs.BufferPool``)
                release()
            trim_heap()
            stats.seconds["inference"] += t2 - t1
            stats.seconds["write"] += time.perf_counter() - t2
            stats.model_calls += calls
            stats.tiles += 1
            stats.add(sm)
            if progress is not None:
                progress(100.0 * (k + 1) / len(tiles), f"{label}: tile {k + 1} of {len(tiles)}" if label
                         else f"tile {k + 1} of {len(tiles)}")
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    stats.n_pixels = grid.width * grid.height  # skipped tiles are nodata pixels of the map too
    stats.seconds["wall"] = time.perf_counter() - t_wall
    log.info("done in %.2f s (%d tiles, %d without input): %s", stats.seconds["wall"], stats.tiles,
             stats.tiles_without_input, {k: round(v, 3) for k, v in stats.seconds.items()})
    return stats
