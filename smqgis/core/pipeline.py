"""The main job of smqgis as one call: layers in, a 320 m soil-moisture GeoTIFF out.

The whole flow in one place: open the model and the user's rasters, work out the target
grid (extent default: where all inputs overlap; CRS default: the UTM zone of the extent's
centre), read / warp / encode tile by tile, run the model in fast or exact mode, and
stream the result into a GeoTIFF with provenance tags that appears only when the run
succeeds. QGIS-free: the Processing algorithm ``smqgis:estimate_sm_320m`` is a thin layer
over :func:`estimate_sm_320m` (see build/ENGINE_API.md).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

SOURCE_ORDER = ("sentinel1", "sentinel2", "dem", "soilgrids", "smap", "gldas")


@dataclass
class LayerInput:
    """One input raster of a run.

    Attributes
    ----------
    path : str
        Any GDAL raster (GeoTIFF, VRT, ...), any CRS and resolution.
    bands : dict of str to int, optional
        Band name as in ``sources.py`` (e.g. "VV", "B4", "elevation", "sand", "ssm") -> 1-based
        index; None recognises bands from the file's band descriptions.
    constants : dict of str to float
        Value (physical units) of a band the file lacks, e.g. ``{"angle": 39.0}``.
    acquired_utc : str, optional
        ISO-8601 acquisition time; default: the file's ACQUISITION_TIME tag.
    product : str, optional
        Product id, e.g. "NASA/SMAP/SPL4SMGP/007" (the SMAP successor, m3/m3, harmonised to mm).
    """

    path: str
    bands: dict[str, int] | None = None
    constants: dict[str, float] = field(default_factory=dict)
    acquired_utc: str | None = None
    product: str | None = None


@dataclass
class RunResult:
    """What a run produced (see build/ENGINE_API.md)."""

    output_path: str
    crs: str
    transform: tuple
    width: int
    height: int
    nodata: float
    stats: dict
    provider: str
    mode: str
    label: str
    seconds: dict
    warnings: list[str]


def needed_bands(meta: dict[str, Any]) -> dict[str, list[str]]:
    """Band names the model needs from each source, by source key (in SOURCE_ORDER)."""
    need: dict[str, list[str]] = {}
    for spec in meta["inputs"]:
        for band in spec["bands"]:
            key, name = band["ref"].split("/", 1)
            if name not in need.setdefault(key, []):
                need[key].append(name)
    return {k: need[k] for k in sorted(need, key=lambda k: SOURCE_ORDER.index(k) if k in SOURCE_ORDER else 99)}


@dataclass
class PreparedRun:
    """An opened model, opened inputs and the run's grid, ready for :func:`engine.run_tiles`."""

    model: Any
    layers: dict[str, Any]
    grid: Any
    reader: Any
    warnings: list[str]

    def close(self) -> None:
        """Close the input rasters."""
        for layer in self.layers.values():
            layer.close()


def _make_grid(layers: dict[str, Any], meta: dict[str, Any], extent: tuple | None, extent_crs: str | None,
               dst_crs: str | None, warnings: list[str]) -> Any:
    from . import grid as g

    out_res, roles = g.role_grids(meta)
    first_crs = next(iter(layers.values())).dataset.crs
    # the extent's CRS is resolved once, before dst_crs gets its default (the UTM zone)
    extent_crs = extent_crs or dst_crs or first_crs
    if extent is not None:
        extent = tuple(float(v) for v in extent)
        if len(extent) != 4 or extent[0] >= extent[2] or extent[1] >= extent[3]:
            raise InputError(f"the extent {extent} is not (xmin, ymin, xmax, ymax) with xmin < xmax and ymin < ymax")
    if dst_crs is None:
        if extent is not None:
            box = g.bounds_in(extent_crs, extent, "EPSG:4326")
        else:
            boxes = [g.bounds_in(lay.dataset.crs, tuple(lay.dataset.bounds), "EPSG:4326") for lay in layers.values()]
            box = g.intersect(boxes)
            if box is None:
                listing = "; ".join(f"{k}: lon {b[0]:.3f}..{b[2]:.3f}, lat {b[1]:.3f}..{b[3]:.3f}"
                                    for k, b in zip(layers, boxes))
                raise InputError(f"the inputs do not overlap ({listing}); give inputs that cover the same area")
        dst_crs = g.utm_crs_for((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        log.info("output CRS: %s (UTM zone of the extent's centre)", dst_crs)
    crs = g.check_projected(dst_crs)
    boxes = {k: g.bounds_in(lay.dataset.crs, tuple(lay.dataset.bounds), crs) for k, lay in layers.items()}
    overlap = g.intersect(list(boxes.values()))
    if overlap is None:
        listing = "; ".join(f"{k}: {tuple(round(v) for v in b)}" for k, b in boxes.items())
        raise InputError(f"the inputs do not overlap in {crs} ({listing}); give inputs that cover the same area")
    if extent is None:
        grid = g.grid_inside(overlap, crs, out_res, roles)
    else:
        ext = g.bounds_in(extent_crs, extent, crs)
        if g.intersect([ext, overlap]) is None:
            raise InputError(
                f"the extent {tuple(round(v) for v in ext)} ({crs}) lies outside the area where all inputs overlap "
                f"{tuple(round(v) for v in overlap)}; choose an extent inside it or leave it empty for the default"
            )
        grid = g.grid_covering(ext, crs, out_res, roles)
        inset = grid.reach_m - grid.out_res_m / 2.0  # windows reach this far beyond the output bounds
        b = grid.bounds
        reach = (b[0] - inset, b[1] - inset, b[2] + inset, b[3] + inset)
        if g.intersect([reach, overlap]) != reach:
            warnings.append("part of the extent lies outside the inputs' overlap; windows reaching there are nodata")
    log.info("output grid %s: %d x %d px of %g m, top-left (%.1f, %.1f)", crs, grid.width, grid.height,
             grid.out_res_m, grid.x0, grid.y0)
    return grid


def prepare(model: Any, inputs: dict[str, LayerInput], *, extent: tuple | None = None, extent_crs: str | None = None,
            dst_crs: str | None = None, provider: str = "auto") -> PreparedRun:
    """Open the model (a path or a loaded ``FusionModel``) and the inputs, and fix the grid.

    Raises
    ------
    ModelError, InputError
        For a bad model, a missing or unusable input, or an impossible grid.
    """
    from .io import TileReader, open_layer
    from .model import FusionModel, load_model

    if not isinstance(model, FusionModel):
        model = load_model(str(model), provider=provider)
    need = needed_bands(model.metadata)
    missing = [k for k in need if k not in inputs or inputs[k] is None]
    if missing:
        listing = ", ".join(f"{k} ({', '.join(need[k])})" for k in missing)
        raise InputError(
            f"the model ({model.metadata['variant']} variant) needs these inputs that were not given: {listing}; "
            f"it needs {list(need)}"
        )
    warnings = [f"input {k} is not used by the {model.metadata['variant']} model" for k in inputs if k not in need]
    layers: dict[str, Any] = {}
    try:
        for key, bands in need.items():
            li = inputs[key]
            layers[key] = open_layer(key, li.path, bands, bands=li.bands, constants=li.constants,
                                     acquired_utc=li.acquired_utc, product=li.product)
            warnings.extend(layers[key].warnings)
        grid = _make_grid(layers, model.metadata, extent, extent_crs, dst_crs, warnings)
    except BaseException:
        for layer in layers.values():
            layer.close()
        raise
    reader = TileReader(grid, {role: model.bands(role) for role in model.roles}, layers)
    return PreparedRun(model, layers, grid, reader, warnings)


def smqgis_version() -> str:
    """The plugin version from metadata.txt of the plugin folder (the repository root)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "metadata.txt")
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip().startswith("version="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def provenance_tags(run: PreparedRun, mode: str, tile_px: int) -> dict[str, str]:
    """GeoTIFF metadata tags: model, inputs (paths, times, products, bands), mode, provider, version, units."""
    meta = run.model.metadata
    tags = {
        "SMQGIS_VERSION": smqgis_version(),
        "MODEL_FILE": os.path.basename(run.model.path),
        "MODEL_TITLE": meta["title"],
        "MODEL_LABEL": meta["label"],
        "MODEL_VARIANT": meta["variant"],
        "MODEL_TRAINED_ON": json.dumps(meta["trained_on"], sort_keys=True),
        "MODE": mode,
        "TILE_PX": str(tile_px),
        "PROVIDER": run.model.provider,
        "UNITS": "m3/m3",
        "PIXEL_CENTRES": "model window centres",
        "CREATED_UTC": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for key, layer in run.layers.items():
        p = f"INPUT_{key.upper()}"
        tags[f"{p}_PATH"] = layer.path
        tags[f"{p}_PRODUCT"] = layer.product
        tags[f"{p}_ACQUIRED_UTC"] = layer.acquired_utc or "unknown"
        tags[f"{p}_BANDS"] = json.dumps({**layer.band_index, **{b: f"constant {v}" for b, v in layer.constants.items()}})
    return tags


def _tile_px(run: PreparedRun, tile_px: int | None, memory_budget_mib: float | None) -> int:
    from .engine import DEFAULT_MEMORY_BUDGET_MIB, auto_tile_px

    if tile_px:
        return int(tile_px)
    return auto_tile_px(run.grid, run.model.provider, os.path.getsize(run.model.path),
                        memory_budget_mib or DEFAULT_MEMORY_BUDGET_MIB)


def estimate_sm_320m(
    model_path: Any,
    inputs: dict[str, LayerInput],
    output_path: str,
    *,
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    dst_crs: str | None = None,
    mode: str = "fast",
    provider: str = "auto",
    tile_px: int | None = None,
    batch_size: int = 8,
    progress: Callable[[float, str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    memory_budget_mib: float | None = None,
) -> RunResult:
    """Map soil moisture at 320 m from the given layers into a GeoTIFF.

    Parameters
    ----------
    model_path : str or FusionModel
        An smqgis fusion model (.onnx), or one already loaded.
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

    Returns
    -------
    RunResult

    Raises
    ------
    InputError, ModelError, Cancelled
    """
    from .engine import MODES, run_tiles
    from .io import NODATA, GeoTiffWriter, check_writable, gdal_env

    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose 'fast' (fully-convolutional) or 'exact' (window per pixel)")
    check_writable(output_path)
    run = prepare(model_path, inputs, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs, provider=provider)
    try:
        tile = _tile_px(run, tile_px, memory_budget_mib)
        writer = GeoTiffWriter(run.grid, output_path)
        try:
            with gdal_env():
                stats = run_tiles(run.model, run.reader, run.grid, writer, mode=mode, tile_px=tile,
                                  batch_size=batch_size, progress=progress, is_cancelled=is_cancelled)
            writer.commit(provenance_tags(run, mode, tile))
        except BaseException:
            writer.abort()
            raise
    finally:
        run.close()
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
    )


def estimate_sm_arrays(
    model_path: Any,
    inputs: dict[str, LayerInput],
    *,
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    dst_crs: str | None = None,
    mode: str = "fast",
    provider: str = "auto",
    tile_px: int | None = None,
    batch_size: int = 8,
    memory_budget_mib: float | None = None,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """As :func:`estimate_sm_320m`, in memory: (soil moisture m3/m3 with -9999, coverage 0-1, ModelGrid)."""
    from .engine import run_tiles
    from .io import ArrayWriter, gdal_env

    run = prepare(model_path, inputs, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs, provider=provider)
    try:
        writer = ArrayWriter(run.grid)
        with gdal_env():
            run_tiles(run.model, run.reader, run.grid, writer, mode=mode, tile_px=_tile_px(run, tile_px, memory_budget_mib),
                      batch_size=batch_size)
    finally:
        run.close()
    return writer.soil_moisture, writer.coverage, run.grid
