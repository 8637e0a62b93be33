"""Downloads from Earth Engine: chunk plan, size guard, retries, resumable cache, assembled GeoTIFFs.

The third step when inputs come from Earth Engine (``ee_inputs`` says what to request). A
source's grid is cut into chunks that each stay under computePixels' answer limits
(:data:`MAX_REQUEST_BYTES`, :data:`MAX_REQUEST_SIDE_PX`); a bounded thread pool requests them,
retrying quota (429) and server (5xx) failures and truncated answers with exponential backoff
and full jitter. Each chunk lands in an on-disk cache under the hash of its request; it counts
only once it parses as a GeoTIFF of the expected shape and type, and it is written to a
temporary name and renamed, so a run killed at any moment resumes by fetching only what is
missing. :func:`assemble` writes one GeoTIFF per source, with its tags, the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import sources
from .ee_inputs import EE_NODATA, PixelGrid, compute_pixels_params
from .errors import Cancelled, EarthEngineError

log = logging.getLogger(__name__)

#: Largest computePixels answer Earth Engine sends (bytes; "48 MiB", 50,331,648).
MAX_REQUEST_BYTES = 50_331_648
#: Largest side of a computePixels request (px).
MAX_REQUEST_SIDE_PX = 32_768
#: Room left under :data:`MAX_REQUEST_BYTES` for the GeoTIFF header and its tile index (bytes).
HEADER_ALLOWANCE_BYTES = 1 << 20
#: Chunk sides are multiples of this (px), the internal tile of the assembled GeoTIFFs.
CHUNK_ALIGN_PX = 256
#: Parallel requests by default; Earth Engine's interactive quota allows tens per user (assumed, not measured).
DEFAULT_WORKERS = 4
#: Tries of one request (the first and the retries).
DEFAULT_ATTEMPTS = 6
#: First backoff (s); the n-th retry waits uniform(0, min(cap, base * 2**n)) ("full jitter").
BACKOFF_BASE_S = 1.0
#: Longest backoff (s).
BACKOFF_CAP_S = 60.0
#: Estimated server time of one computePixels request (s); an assumption for the size guard, not a measurement.
ASSUMED_REQUEST_S = 3.0
#: Estimated transfer rate of one request (bytes/s); an assumption for the size guard, not a measurement.
ASSUMED_BYTES_PER_S = 8 * (1 << 20)
#: Default limit of the size guard (bytes downloaded in one run); above it the run is refused with advice.
DEFAULT_LIMIT_BYTES = 4 * (1 << 30)


class ChunkError(Exception):
    """An answer that is not the chunk asked for (truncated or unreadable bytes); retried like a 5xx."""


@dataclass(frozen=True)
class Chunk:
    """One computePixels request: a window of a source's grid."""

    key: str
    col0: int
    row0: int
    width: int
    height: int
    n_bands: int
    dtype: str

    @property
    def nbytes(self) -> int:
        """Pixel bytes of the answer (without the GeoTIFF header)."""
        return self.width * self.height * self.n_bands * np.dtype(self.dtype).itemsize


def chunk_side_px(n_bands: int, dtype: str, max_bytes: int = MAX_REQUEST_BYTES,
                  max_side_px: int = MAX_REQUEST_SIDE_PX) -> int:
    """Side (px) of the largest square aligned chunk of ``n_bands`` bands of ``dtype`` under the limits."""
    per_px = n_bands * np.dtype(dtype).itemsize
    side = int(math.isqrt((max_bytes - HEADER_ALLOWANCE_BYTES) // per_px))
    side = min(side, max_side_px)
    return max(CHUNK_ALIGN_PX, side // CHUNK_ALIGN_PX * CHUNK_ALIGN_PX) if side >= CHUNK_ALIGN_PX else side


def plan_chunks(key: str, grid: PixelGrid, n_bands: int, dtype: str, **limits: int) -> list[Chunk]:
    """The chunks of ``grid`` for source ``key``, row by row; each under the request limits."""
    side = chunk_side_px(n_bands, dtype, **limits)
    return [
        Chunk(key, c, r, min(side, grid.width - c), min(side, grid.height - r), n_bands, dtype)
        for r in range(0, grid.height, side)
        for c in range(0, grid.width, side)
    ]


@dataclass
class Plan:
    """Every request of a run, with the size guard's estimate."""

    grids: dict[str, PixelGrid]
    chunks: list[Chunk]

    @property
    def n_requests(self) -> int:
        """Number of computePixels requests."""
        return len(self.chunks)

    @property
    def nbytes(self) -> int:
        """Pixel bytes of all answers."""
        return sum(c.nbytes for c in self.chunks)

    def estimated_s(self, workers: int = DEFAULT_WORKERS) -> float:
        """Estimated wall time (s) with ``workers`` parallel requests (:data:`ASSUMED_REQUEST_S`, ``_BYTES_PER_S``)."""
        per = [ASSUMED_REQUEST_S + c.nbytes / ASSUMED_BYTES_PER_S for c in self.chunks]
        return sum(per) / max(1, min(workers, len(per) or 1))

    def summary(self, workers: int = DEFAULT_WORKERS) -> dict[str, Any]:
        """Requests, MiB and estimated minutes, per source and in total."""
        by = {k: [c for c in self.chunks if c.key == k] for k in self.grids}
        return {
            "requests": self.n_requests,
            "mib": round(self.nbytes / (1 << 20), 1),
            "estimated_min": round(self.estimated_s(workers) / 60.0, 1),
            "workers": workers,
            "sources": {k: {"grid_px": [g.width, g.height], "res_m": g.res_m, "chunks": len(by[k]),
                            "mib": round(sum(c.nbytes for c in by[k]) / (1 << 20), 1)}
                        for k, g in self.grids.items()},
        }

    def check(self, limit_bytes: int = DEFAULT_LIMIT_BYTES, workers: int = DEFAULT_WORKERS) -> None:
        """The size guard: raise EarthEngineError (``too_large``) above ``limit_bytes``, with the estimate."""
        if self.nbytes > limit_bytes:
            raise EarthEngineError(
                f"this run would download {self.nbytes / (1 << 30):.2f} GiB in {self.n_requests} requests (about "
                f"{self.estimated_s(workers) / 60.0:.0f} min with {workers} parallel requests), above the limit of "
                f"{limit_bytes / (1 << 30):.2f} GiB; choose a smaller area, raise the limit, or run qgis_process in "
                "batch over tiles", reason="too_large", parameter="extent")


def make_plan(grids: dict[str, PixelGrid], band_counts: dict[str, int], **limits: int) -> Plan:
    """The plan of downloading ``grids`` (per source key) with ``band_counts`` bands each."""
    chunks = [c for k, g in grids.items()
              for c in plan_chunks(k, g, band_counts[k], sources.SOURCES[k].ee_dtype, **limits)]
    return Plan(grids, chunks)


def with_retries(fn: Callable[[], Any], *, attempts: int = DEFAULT_ATTEMPTS, base_s: float = BACKOFF_BASE_S,
                 cap_s: float = BACKOFF_CAP_S, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, is_cancelled: Callable[[], bool] = lambda: False,
                 on_retry: Callable[[int, BaseException], None] | None = None) -> Any:
    """Call ``fn``; on 429, 5xx, a dropped connection or a :class:`ChunkError`, wait and try again.

    The n-th retry waits ``uniform(0, min(cap_s, base_s * 2**n))`` s (exponential backoff, full jitter).

    Raises
    ------
    EarthEngineError
        The translated last error when the tries are spent or the error is not retryable.
    Cancelled
        When ``is_cancelled()`` turns true between tries.
    """
    from .earthengine import is_retryable, translate

    rng = rng or random.Random()
    for attempt in range(attempts):
        if is_cancelled():
            raise Cancelled("cancelled; the chunks already downloaded stay in the cache")
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            retry = isinstance(exc, ChunkError) or is_retryable(exc)
            if not retry or attempt == attempts - 1:
                if isinstance(exc, ChunkError):
                    raise EarthEngineError(f"Earth Engine sent unreadable data {attempts} times ({exc}); try again "
                                           "later (a rerun resumes from the cache)", reason="server") from None
                raise translate(exc) from None
            delay = rng.uniform(0.0, min(cap_s, base_s * 2.0**attempt))
            log.info("Earth Engine request failed (%s); retry %d in %.1f s", str(exc).splitlines()[0][:200],
                     attempt + 1, delay)
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def request_key(params: dict[str, Any]) -> str:
    """SHA-256 of a computePixels request (serialized expression, grid, bands, format): the cache key."""
    import ee

    text = json.dumps({"expression": ee.serializer.encode(params["expression"], for_cloud_api=True),
                       **{k: v for k, v in params.items() if k != "expression"}}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_chunk(data: bytes, chunk: Chunk) -> np.ndarray:
    """The pixels of a GeoTIFF answer, (bands, rows, cols); ChunkError unless it has the chunk's shape and type."""
    from rasterio.errors import RasterioError
    from rasterio.io import MemoryFile

    try:
        with MemoryFile(data) as mem, mem.open() as ds:
            if (ds.count, ds.height, ds.width) != (chunk.n_bands, chunk.height, chunk.width):
                raise ChunkError(f"got {ds.count}x{ds.height}x{ds.width} px, asked "
                                 f"{chunk.n_bands}x{chunk.height}x{chunk.width}")
            arr = ds.read()
    except RasterioError as exc:
        raise ChunkError(f"not a readable GeoTIFF ({len(data)} bytes: {exc})") from None
    if arr.dtype != np.dtype(chunk.dtype):
        raise ChunkError(f"got {arr.dtype} pixels, asked {chunk.dtype}")
    return arr


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)  # no fsync: a rename survives a killed process, and a chunk is verified when read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@dataclass
class FetchStats:
    """What a download did: requests sent, retries, chunks found in the cache."""

    requests: int = 0
    retries: int = 0
    cached: int = 0
    fetched: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to the counters (thread-safe)."""
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


def default_compute_pixels(params: dict[str, Any]) -> bytes:
    """``ee.data.computePixels`` (raw GeoTIFF bytes)."""
    import ee

    return ee.data.computePixels(params)


def fetch(plan: Plan, chosen: dict[str, dict[str, Any]], cache_dir: str, *, workers: int = DEFAULT_WORKERS,
          compute_pixels: Callable[[dict[str, Any]], bytes] = default_compute_pixels,
          progress: Callable[[float], None] | None = None, is_cancelled: Callable[[], bool] = lambda: False,
          retry_options: dict[str, Any] | None = None) -> tuple[dict[Chunk, str], FetchStats]:
    """Download every chunk of ``plan`` that is not verified in ``cache_dir``; return chunk -> cached file.

    Parameters
    ----------
    plan : Plan
        What to download.
    chosen : dict
        Per source key, its entry of ``Selection.images``.
    cache_dir : str
        Folder of the cache (created); a chunk's file is ``<sha256 of its request>.tif``.
    workers : int
        Parallel requests.
    compute_pixels : callable
        Sends one request, returns the answer's bytes.
    progress : callable, optional
        Called with the percentage of chunks done (0-100).
    is_cancelled : callable
        Polled between requests; when true, running requests finish, nothing new starts, Cancelled is raised.
    retry_options : dict, optional
        Keyword arguments of :func:`with_retries` (e.g. ``sleep``, ``rng``, ``attempts``).
    """
    os.makedirs(cache_dir, exist_ok=True)
    stats = FetchStats()
    files: dict[Chunk, str] = {}
    todo: list[tuple[Chunk, dict[str, Any], str]] = []
    for ch in plan.chunks:
        params = compute_pixels_params(ch.key, chosen[ch.key], plan.grids[ch.key], ch.col0, ch.row0,
                                       ch.width, ch.height)
        path = os.path.join(cache_dir, request_key(params) + ".tif")
        files[ch] = path
        if os.path.exists(path):
            try:
                with open(path, "rb") as fh:
                    read_chunk(fh.read(), ch)
                stats.add(cached=1)
                continue
            except ChunkError:
                log.warning("cached chunk %s is damaged; fetching it again", path)
        todo.append((ch, params, path))
    total = len(plan.chunks)
    log.info("Earth Engine download: %d chunks, %d in the cache, %d to fetch", total, stats.cached, len(todo))

    def one(ch: Chunk, params: dict[str, Any], path: str) -> None:
        def attempt() -> bytes:
            stats.add(requests=1)
            data = compute_pixels(params)
            read_chunk(data, ch)
            return data

        data = with_retries(attempt, is_cancelled=is_cancelled,
                            on_retry=lambda n, e: stats.add(retries=1), **(retry_options or {}))
        _atomic_write(path, data)
        stats.add(fetched=1)

    if progress is not None:
        progress(100.0 * stats.cached / max(1, total))
    pending = list(todo)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="smqgis-ee") as pool:
        running: set[Any] = set()
        try:
            while pending or running:
                while pending and len(running) < max(1, workers) and not is_cancelled():
                    running.add(pool.submit(one, *pending.pop(0)))
                if is_cancelled() and not running:
                    raise Cancelled("cancelled; the chunks already downloaded stay in the cache and a rerun "
                                    "fetches only the rest")
                done, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    fut.result()
                    if progress is not None:
                        progress(100.0 * (stats.cached + stats.fetched) / max(1, total))
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
    return files, stats


def assemble(plan: Plan, files: dict[Chunk, str], key: str, output_path: str, tags: dict[str, str],
             band_names: list[str]) -> str:
    """Write source ``key``'s chunks into one GeoTIFF at ``output_path`` (temporary file, then rename)."""
    import rasterio
    from rasterio.windows import Window

    grid = plan.grids[key]
    chunks = [c for c in plan.chunks if c.key == key]
    dtype = chunks[0].dtype
    profile = {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": chunks[0].n_bands,
        "dtype": dtype, "crs": grid.crs, "transform": grid.transform, "compress": "deflate",
        "tiled": True, "blockxsize": CHUNK_ALIGN_PX, "blockysize": CHUNK_ALIGN_PX,
        "nodata": EE_NODATA[sources.SOURCES[key].ee_dtype],  # what source_image gave masked pixels
    }
    folder = os.path.dirname(os.path.abspath(output_path))
    fd, tmp = tempfile.mkstemp(prefix=".smqgis-ee-", suffix=".tif", dir=folder)
    os.close(fd)
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            for c in chunks:
                with open(files[c], "rb") as fh:
                    dst.write(read_chunk(fh.read(), c), window=Window(c.col0, c.row0, c.width, c.height))
            for i, name in enumerate(band_names, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(**tags)
        os.replace(tmp, output_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return output_path
