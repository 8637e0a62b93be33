"""The fusion kind (``fusion_320m``): paper 000's model, 320 m maps from three input roles.

Its inputs are read from the model's metadata (``schema.py``): ``high_res`` windows of
256 px at 10 m (Sentinel-1, Sentinel-2, DEM), ``low_res`` windows of 16 px at 160 m
(SoilGrids) and ``coarse`` values at each window centre (SMAP, GLDAS). A run is planned
on the grids of ``grid.py`` (output pixel = window centre, tiles with a half-window halo)
and each tile is run in one of two modes of the same graph:

- **exact** cuts the tile's high-res block into one 256 px window per output pixel and
  evaluates them in batches - the paper's method, each window seen alone with zero padding
  at its edges;
- **fast** (the default) feeds the whole block, ``32 * (n + 7)`` px a side for ``n`` output
  pixels, in one call, so the encoder runs once over shared context and the centre-weighted
  pooling slides over its feature map.

Results differ only where a window's edge sees real neighbours in fast mode and zero padding
in exact mode. A window whose coverage is below 1 (it touches nodata in a required input)
gives nodata in both modes. What is written: band 1 soil moisture (m3/m3, nodata -9999),
band 2 the input coverage (0-1), provenance tags.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from .. import schema, sources
from ..engine import NODATA, CancelFn, ProgressFn, run_tiles
from ..errors import Cancelled, InputError, ModelError
from ..grid import ModelGrid
from ..model import OnnxModel
from ..pipeline import LayerInput, PreparedRun, RunResult, prepare, provenance_tags

log = logging.getLogger(__name__)

KIND = "fusion_320m"
#: The two ways of calling the graph (see above): fast (the default) and exact.
MODES = schema.INFERENCE_MODES
#: Windows per graph call in exact mode.
DEFAULT_BATCH_SIZE = 8
#: Largest map a run makes by default (output pixels; see the sources table).
DEFAULT_MAX_OUTPUT_PX = sources.DEFAULT_MAX_OUTPUT_PX
#: Measured cost of a fast-mode output pixel on one CPU core (s): the demo model on the sample scene
#: takes ~0.5 s for 256 px; used only to say how long a large run would take.
SECONDS_PER_OUTPUT_PX = 0.002


def check_arguments(*, tile_px: Any, batch_size: Any, mode: Any, provider: Any, max_output_px: Any) -> None:
    """InputError (``parameter=`` the argument) for arguments of a run that cannot be honoured."""
    from ..model import PROVIDERS

    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose 'fast' (fully-convolutional) or 'exact' (window per pixel)",
                         parameter="mode")
    if provider not in PROVIDERS:
        raise InputError(f"unknown execution provider {provider!r}; choose one of {list(PROVIDERS)}",
                         parameter="provider")
    for name, value, low in (("tile_px", tile_px, 1), ("batch_size", batch_size, 1),
                             ("max_output_px", max_output_px, 1)):
        if value is None and name != "batch_size":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be a whole number >= {low}, not {value!r}", parameter=name)


def check_size(grid: ModelGrid, tile_px: int, layers: dict[str, Any], max_output_px: int) -> dict[str, float]:
    """Estimate a run (tiles, tiles with data, seconds, output MiB); InputError (``extent``) above the limit."""
    from ..engine import plan_tiles

    tiles = plan_tiles(grid, tile_px)
    pixels = grid.width * grid.height
    estimate = {"tiles": len(tiles), "output_px": pixels, "output_mib": pixels * 2 * 4 / 2**20,
                "seconds": pixels * SECONDS_PER_OUTPUT_PX}
    log.info("planned: %d x %d px in %d tiles, about %.0f s, %.1f MiB", grid.width, grid.height, len(tiles),
             estimate["seconds"], estimate["output_mib"])
    if pixels > max_output_px:
        raise InputError(
            f"the map would be {grid.width} x {grid.height} pixels ({pixels * (grid.out_res_m / 1000) ** 2:,.0f} km2) "
            f"in {len(tiles)} tiles, about {estimate['seconds'] / 60:.0f} min and {estimate['output_mib']:.0f} MiB, "
            f"above the limit of {max_output_px:,} pixels; choose a smaller extent (EXTENT), raise the limit "
            "(MAX_OUTPUT_PX / max_output_px) or split the area into a batch of runs with qgis_process; for an area "
            "beyond one machine, run `python -m smqgis.region_map` (tiles mapped in parallel, then a mosaic)",
            parameter="extent")
    return estimate


def tiles_with_data(grid: ModelGrid, tile_px: int, layers: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """The tiles whose model windows reach every input file (the others are skipped: nodata, no model call)."""
    from ..engine import plan_tiles
    from ..grid import bounds_in, intersect

    boxes = [bounds_in(lay.dataset.crs, tuple(lay.dataset.bounds), grid.crs) for lay in layers.values()]
    reach = grid.reach_m - grid.out_res_m / 2.0
    keep = []
    for r, c, nr, nc in plan_tiles(grid, tile_px):
        x0, y0 = grid.x0 + c * grid.out_res_m - reach, grid.y0 - (r + nr) * grid.out_res_m - reach
        x1, y1 = grid.x0 + (c + nc) * grid.out_res_m + reach, grid.y0 - r * grid.out_res_m + reach
        if all(intersect([(x0, y0, x1, y1), b]) is not None for b in boxes):
            keep.append((r, c, nr, nc))
    return keep


def validate_metadata(meta: dict[str, Any]) -> None:
    """The fusion kind's checks beyond the generic schema; raises ``schema.SchemaError``."""
    names = [spec["name"] for spec in meta["inputs"]]
    for name in names:
        if name not in schema.INPUT_NAMES:
            raise schema.SchemaError(f"unknown input {name!r}; expected one of {schema.INPUT_NAMES}")
    fc = meta.get("fully_convolutional")
    if fc is not None:
        if fc.get("input") not in names:
            raise schema.SchemaError("fully_convolutional.input must name an input")
        if int(fc["window_px"]) % int(fc["stride_px"]) != 0:
            raise schema.SchemaError("window_px must be a multiple of stride_px")


class FusionModel(OnnxModel):
    """A fusion model ready to run (see :class:`~smqgis.core.model.OnnxModel` for the parameters)."""

    def __init__(self, path: str, provider: str = "auto", threads: int | None = None) -> None:
        super().__init__(path, provider=provider, threads=threads, model_kind=KIND)

    def _check_graph(self) -> None:
        """ModelError unless the graph's inputs are the metadata's, with as many channels as bands."""
        super()._check_graph()
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        for spec in self.metadata["inputs"]:
            shape = shapes[spec["name"]]
            channels = shape[-1] if shape else None
            if isinstance(channels, int) and channels != len(spec["bands"]):
                raise ModelError(
                    f"{self.path}: input {spec['name']!r} takes {channels} channels but its metadata lists "
                    f"{len(spec['bands'])} bands",
                    parameter="model",
                )

    def run(
        self,
        high_res: np.ndarray | None = None,
        low_res: np.ndarray | None = None,
        coarse: np.ndarray | None = None,
    ) -> np.ndarray:
        """Evaluate the graph on encoded inputs (float32, 0-255).

        Parameters
        ----------
        high_res : ndarray, shape (N, H, W, C), optional
            N windows of 256 px (exact mode) or one large tile (fast mode), H and W multiples of 32.
        low_res : ndarray, shape (P, 16, 16, C_low), optional
            One 160 m window per output pixel, row-major.
        coarse : ndarray, shape (P, K), optional
            The coarse values at each output pixel's window centre.

        Returns
        -------
        ndarray, shape (P,)
            Soil moisture (m3/m3, float32), one value per output pixel in row-major order.
        """
        given = {"high_res": high_res, "low_res": low_res, "coarse": coarse}
        feeds = {}
        for role in self.roles:
            if given[role] is None:
                raise ValueError(f"the model needs the {role!r} input")
            feeds[role] = given[role]
        return self.evaluate(feeds).reshape(-1)


def open_model(path: str, provider: str = "auto", threads: int | None = None) -> FusionModel:
    """Open a fusion model (ModelError for any other kind, a bad file or metadata)."""
    return FusionModel(path, provider=provider, threads=threads)


def _windows(block: np.ndarray, window_px: int, step_px: int, nrows: int, ncols: int) -> np.ndarray:
    """View (nrows, ncols, window, window, C) of the windows of a role block."""
    view = np.lib.stride_tricks.sliding_window_view(block, (window_px, window_px), axis=(0, 1))
    return np.moveaxis(view[::step_px, ::step_px][:nrows, :ncols], 2, -1)


def predict_tile(model: FusionModel, grid: ModelGrid, tile: Any, is_cancelled: CancelFn | None = None, *,
                 mode: str, batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, int]:
    """Soil moisture of one tile (m3/m3, NODATA where a window lacks an input) and the graph calls made.

    How the fusion kind runs a tile (an ``engine.TileRunner`` once ``model``, ``grid``, ``mode`` and
    ``batch_size`` are bound). ``tile`` is a ``tile_inputs.TileInputs``; ``mode`` is "fast" or "exact"
    (see the module docstring); ``is_cancelled`` is polled per exact-mode batch.
    """
    nr, nc = tile.nrows, tile.ncols
    valid = tile.coverage >= 1.0 - 1e-6
    sm = np.full((nr, nc), NODATA, dtype=np.float32)
    if not valid.any():
        return sm, 0
    # per-pixel rows (low_res windows, coarse values) are small: views, copied per call
    rows: dict[str, np.ndarray] = {}
    for role, block in tile.arrays.items():
        if role == "coarse":
            rows[role] = block.reshape(nr * nc, -1)
        elif role != "high_res":
            g = grid.roles[role]
            rows[role] = _windows(block, g.window_px, g.step_px, nr, nc).reshape(nr * nc, g.window_px, g.window_px,
                                                                                  -1)
    hr = tile.arrays.get("high_res")
    calls = 0
    if mode == "fast":
        out = model.run(high_res=None if hr is None else hr[None], **rows).reshape(nr, nc)
        calls = 1
    else:
        hr_windows = None if hr is None else _windows(hr, grid.roles["high_res"].window_px,
                                                      grid.roles["high_res"].step_px, nr, nc)
        out = np.full(nr * nc, np.nan, dtype=np.float32)
        todo = np.flatnonzero(valid.reshape(-1))
        for start in range(0, todo.size, batch_size):
            if is_cancelled is not None and is_cancelled():
                raise Cancelled("cancelled by the user; nothing was written")
            idx = todo[start:start + batch_size]
            feeds = {role: r[idx] for role, r in rows.items()}
            if hr_windows is not None:  # one 256 px window per output pixel, copied per batch only
                feeds["high_res"] = np.stack([hr_windows[k // nc, k % nc] for k in idx])
            out[idx] = model.run(**feeds)
            calls += 1
        out = out.reshape(nr, nc)
    keep = valid & np.isfinite(out)
    sm[keep] = out[keep]
    return sm, calls


def _tile_px(run: PreparedRun, tile_px: int | None, memory_budget_mib: float | None) -> int:
    """``tile_px``, or the automatic tile side of ``engine.auto_tile_px``."""
    from ..engine import DEFAULT_MEMORY_BUDGET_MIB, auto_tile_px

    if tile_px:
        return int(tile_px)
    return auto_tile_px(run.grid, run.model.provider, os.path.getsize(run.model.path),
                        memory_budget_mib or DEFAULT_MEMORY_BUDGET_MIB)


def _map(model: Any, inputs: dict[str, LayerInput], make_writer: Callable[[ModelGrid], Any], *,
         extent: tuple | None, extent_crs: str | None, dst_crs: str | None, mode: str, provider: str,
         tile_px: int | None, batch_size: int, progress: ProgressFn | None, is_cancelled: CancelFn | None,
         memory_budget_mib: float | None, ignore_time_bounds: bool = False,
         max_output_px: int | None = None) -> tuple[PreparedRun, Any, Any]:
    """Prepare, run every tile into ``make_writer(grid)`` and commit it: (run, writer, engine stats)."""
    from ..layers import gdal_env

    check_arguments(tile_px=tile_px, batch_size=batch_size, mode=mode, provider=provider,
                    max_output_px=max_output_px)
    # The whole run, its reads while preparing included, in the bounded GDAL cache (read outside it,
    # the cache grew to 1.8 GiB on a 100 km run instead of ~0.5 GiB).
    with gdal_env():
        return _map_in_env(model, inputs, make_writer, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs,
                           mode=mode, provider=provider, tile_px=tile_px, batch_size=batch_size, progress=progress,
                           is_cancelled=is_cancelled, memory_budget_mib=memory_budget_mib,
                           ignore_time_bounds=ignore_time_bounds, max_output_px=max_output_px)


def _map_in_env(model: Any, inputs: dict[str, LayerInput], make_writer: Callable[[ModelGrid], Any], *,
                extent: tuple | None, extent_crs: str | None, dst_crs: str | None, mode: str, provider: str,
                tile_px: int | None, batch_size: int, progress: ProgressFn | None, is_cancelled: CancelFn | None,
                memory_budget_mib: float | None, ignore_time_bounds: bool,
                max_output_px: int | None) -> tuple[PreparedRun, Any, Any]:
    run = prepare(model, inputs, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs, provider=provider,
                  model_kind=KIND, ignore_time_bounds=ignore_time_bounds)
    try:
        tile = _tile_px(run, tile_px, memory_budget_mib)
        estimate = check_size(run.grid, tile, run.layers, max_output_px or DEFAULT_MAX_OUTPUT_PX)
        keep = tiles_with_data(run.grid, tile, run.layers)
        if not keep:
            raise InputError("no tile of the map reaches every input; choose an extent (EXTENT) where all inputs "
                             "have data", parameter="extent")
        if len(keep) < estimate["tiles"]:
            run.warnings.append(f"{estimate['tiles'] - len(keep)} of {estimate['tiles']} tiles reach no data of some "
                                "input and were skipped (nodata)")
        writer = make_writer(run.grid)
        try:
            stats = run_tiles(partial(predict_tile, run.model, run.grid, mode=mode, batch_size=batch_size),
                              run.reader, run.grid, writer, tile_px=tile, label=f"{mode} mode",
                              progress=progress, is_cancelled=is_cancelled, tiles=keep)
            if stats.summary().get("valid_fraction", 0.0) == 0.0:
                raise InputError(_no_valid_output(run), parameter="extent")
            writer.commit(provenance_tags(run, MODE=mode, TILE_PX=str(tile)))
        except BaseException:
            writer.abort()
            raise
    finally:
        run.close()
    return run, writer, stats


def _no_valid_output(run: PreparedRun) -> str:
    """The message of a run whose every output pixel is nodata: where each input has no valid data."""
    holes = []
    for key, layer in run.layers.items():
        ds = layer.dataset
        holes.append(f"{key} {layer.path} covers {tuple(round(v, 3) for v in ds.bounds)} ({ds.crs})")
    return ("every pixel of the map would be nodata: no model window has valid data in all inputs (windows of "
            f"{2 * run.grid.reach_m:.0f} m need every input valid; {'; '.join(holes)}); choose an extent (EXTENT) "
            "where all inputs have data, or fill the inputs' holes")


def estimate_sm_320m(
    model: Any,
    inputs: dict[str, LayerInput],
    output_path: str,
    *,
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    dst_crs: str | None = None,
    mode: str = "fast",
    provider: str = "auto",
    tile_px: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    memory_budget_mib: float | None = None,
    ignore_time_bounds: bool = False,
    max_output_px: int | None = None,
) -> RunResult:
    """Map soil moisture at 320 m from the given layers into a GeoTIFF.

    Parameters
    ----------
    model : str or FusionModel
        An smqgis fusion model (.onnx), or one already opened.
    inputs : dict of str to LayerInput
        By source key: sentinel1, sentinel2, dem, soilgrids, smap, gldas (those the model needs).
    output_path : str
        Target GeoTIFF; written to a temporary file beside it and renamed on success.
    extent : tuple, optional
        (xmin, ymin, xmax, ymax) in ``extent_crs``; default: where all inputs overlap, shrunk so
        every window lies inside the inputs.
    extent_crs : str, optional
        CRS of ``extent``; default ``dst_crs``, or when that is also None the CRS of the model's first
        input (Sentinel-1 for the fusion model).
    dst_crs : str, optional
        Projected metric output CRS; default: the UTM zone of the extent's centre.
    mode : {"fast", "exact"}
        Fully-convolutional tiles (default) or one model evaluation per output pixel.
    provider : {"auto", "cpu", "cuda"}
        onnxruntime execution provider; the one used is logged and tagged.
    tile_px : int, optional
        Tile side in output pixels; default: the largest even tiles that fit ``memory_budget_mib``.
    batch_size : int
        Windows per graph call in exact mode.
    progress : callable, optional
        ``progress(percent 0-100, message)``.
    is_cancelled : callable, optional
        Polled per tile / batch; returning True stops the run, raises Cancelled, writes nothing.
    memory_budget_mib : float, optional
        Peak memory the automatic tile size aims for (MiB; default
        ``engine.DEFAULT_MEMORY_BUDGET_MIB``, 3 GiB). Memory does not grow with the area.
    ignore_time_bounds : bool
        Accept inputs acquired further from the Sentinel-1 image than the Table 5 bounds (warned and tagged).
    max_output_px : int, optional
        Largest map (output pixels) the run makes; default ``DEFAULT_MAX_OUTPUT_PX``. Larger ones are refused
        before any work, with the estimated tiles, time and size.

    Returns
    -------
    RunResult

    Raises
    ------
    InputError, ModelError, InferenceError, Cancelled
        ``role`` / ``parameter`` say which input or argument is at fault.
    """
    from ..checks import check_output_not_input
    from ..output import GeoTiffWriter, check_writable

    check_writable(output_path)
    if isinstance(inputs, dict):
        check_output_not_input(output_path, inputs, model)
    run, writer, stats = _map(model, inputs, partial(GeoTiffWriter, output_path=output_path), extent=extent,
                              extent_crs=extent_crs, dst_crs=dst_crs, mode=mode, provider=provider, tile_px=tile_px,
                              batch_size=batch_size, progress=progress, is_cancelled=is_cancelled,
                              memory_budget_mib=memory_budget_mib, ignore_time_bounds=ignore_time_bounds,
                              max_output_px=max_output_px)
    summary = stats.summary()
    log.info("wrote %s: %d x %d px, mean %.4f m3/m3, valid %.1f %%", writer.output_path, run.grid.width,
             run.grid.height, summary["mean"], 100 * summary["valid_fraction"])
    return RunResult(
        output_path=writer.output_path,
        crs=run.grid.crs,
        transform=tuple(run.grid.transform)[:6],
        width=run.grid.width,
        height=run.grid.height,
        nodata=NODATA,
        stats=summary,
        provider=run.model.provider,
        mode=mode,
        label=run.model.label,
        seconds=dict(stats.seconds),
        warnings=list(run.warnings),
        notes=list(run.notes),
    )


def estimate_sm_arrays(
    model: Any,
    inputs: dict[str, LayerInput],
    *,
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    dst_crs: str | None = None,
    mode: str = "fast",
    provider: str = "auto",
    tile_px: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_budget_mib: float | None = None,
) -> tuple[np.ndarray, np.ndarray, ModelGrid]:
    """As :func:`estimate_sm_320m`, in memory: (soil moisture m3/m3 with -9999, coverage 0-1, ModelGrid)."""
    from ..output import ArrayWriter

    run, writer, _ = _map(model, inputs, ArrayWriter, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs,
                          mode=mode, provider=provider, tile_px=tile_px, batch_size=batch_size, progress=None,
                          is_cancelled=None, memory_budget_mib=memory_budget_mib)
    return writer.soil_moisture, writer.coverage, run.grid
