"""Inputs and maps from Earth Engine in one call: join, plan, download, assemble, map.

Joins the other Earth Engine modules into the two things users run: :func:`fetch_inputs`
(one GeoTIFF per input plus a JSON manifest of the chosen images) and
:func:`soil_moisture_map` (fetch, then map with the model's own mapping function; several
dates make one multi-band GeoTIFF, a soil-moisture band and a coverage band per date, the date
in each band's description). The Processing algorithms ``fetch_inputs_ee`` and
``soil_moisture_map_ee`` are thin layers over these.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from . import sources
from .ee_fetch import (
    DEFAULT_LIMIT_BYTES,
    DEFAULT_WORKERS,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SIDE_PX,
    assemble,
    fetch,
    make_plan,
    with_retries,
)
from .ee_inputs import Area, Request, band_ids, select_images, source_grid
from .errors import Cancelled, InputError

log = logging.getLogger(__name__)

#: Sources whose age (hours before the Sentinel-1 anchor) gets a band in the map (issue 11).
AGE_SOURCES = ("sentinel2", "smap", "gldas")
#: Name of the manifest written beside the fetched inputs.
MANIFEST_NAME = "manifest_ee.json"


def _atomic_json(path: str, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".json", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def plan_request(request: Request, images: dict[str, dict[str, Any]], *, max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_request_side_px: int = MAX_REQUEST_SIDE_PX) -> Any:
    """The download plan of ``request`` for the chosen ``images`` (see ``ee_fetch.make_plan``)."""
    grids = {k: source_grid(request.area, sources.SOURCES[k], request.when) for k in request.source_keys}
    counts = {k: len(band_ids(k, images.get(k, {}))) for k in request.source_keys}
    return make_plan(grids, counts, max_bytes=max_request_bytes, max_side_px=max_request_side_px)


def fetch_inputs(request: Request, output_dir: str, *, cache_dir: str | None = None, workers: int = DEFAULT_WORKERS,
                 limit_bytes: int = DEFAULT_LIMIT_BYTES, max_request_bytes: int = MAX_REQUEST_BYTES,
                 progress: Callable[[float, str], None] | None = None,
                 is_cancelled: Callable[[], bool] = lambda: False,
                 retry_options: dict[str, Any] | None = None,
                 compute_pixels: Callable[[dict[str, Any]], bytes] | None = None) -> dict[str, Any]:
    """Join, plan, download and assemble the inputs of ``request`` into ``output_dir``; return the manifest.

    Parameters
    ----------
    request : Request
        Area, time, sources, Sentinel-1 window.
    output_dir : str
        Folder (created) for ``<source>.tif`` and :data:`MANIFEST_NAME`.
    cache_dir : str, optional
        Chunk cache (default ``output_dir/.ee-cache``); a rerun resumes from it.
    workers : int
        Parallel requests.
    limit_bytes : int
        Size guard: the run is refused above it (bytes).
    max_request_bytes : int
        Largest answer of one request (bytes; Earth Engine's limit by default).
    progress : callable, optional
        ``progress(percent 0-100, message)``.
    is_cancelled : callable
        Polled between requests.

    Raises
    ------
    EarthEngineError
        No image, too large, quota, server (``reason`` says which).
    Cancelled
        When ``is_cancelled()`` turned true; the cache keeps the finished chunks.
    """
    os.makedirs(output_dir, exist_ok=True)
    cache_dir = cache_dir or os.path.join(output_dir, ".ee-cache")
    say = progress or (lambda p, m: None)
    say(0.0, "choosing images (Table 5 join)")
    retry = retry_options or {}
    selection = select_images(request, call=lambda fn: with_retries(fn, is_cancelled=is_cancelled, **retry))
    plan = plan_request(request, selection.images, max_request_bytes=max_request_bytes)
    summary = plan.summary(workers)
    log.info("Earth Engine plan: %s", summary)
    plan.check(limit_bytes, workers)
    say(2.0, f"{plan.n_requests} requests, {summary['mib']} MiB, about {summary['estimated_min']} min")
    files, stats = fetch(plan, selection.images, cache_dir, workers=workers,
                         progress=lambda p: say(2.0 + 0.93 * p, "downloading"), is_cancelled=is_cancelled,
                         retry_options=retry, **({"compute_pixels": compute_pixels} if compute_pixels else {}))
    outputs = {}
    for key in request.source_keys:
        img = selection.images[key]
        src = sources.SOURCES[key]
        tags = {
            "SMQGIS_SOURCE": key,
            "PRODUCT": img["product"],
            "EE_IMAGE_ID": img["id"],
            "ACQUISITION_TIME": img["time_utc"] or "static",
            "OFFSET_FROM_ANCHOR_S": "" if img["offset_s"] is None else f"{img['offset_s']:.0f}",
            "S1_ANCHOR_UTC": selection.anchor_utc,
            "ATTRIBUTION": src.attribution,
        }
        if img["successor"]:
            tags["HARMONISATION"] = (f"{src.successor['ee_band']} in {src.successor['units']}; the mapping step "
                                     f"multiplies by {img['to_native_scale']:g} to the trained-on {src.bands[0].units}")
        if not img["time_utc"]:
            tags.pop("ACQUISITION_TIME")
        outputs[key] = assemble(plan, files, key, os.path.join(output_dir, f"{key}.tif"), tags,
                                band_ids(key, img))
    if is_cancelled():
        raise Cancelled("cancelled after the download; the inputs are in the cache")
    manifest = {
        "what": "inputs of smqgis fetched from Earth Engine (paper 000, Table 5 join anchored on Sentinel-1)",
        "requested_utc": request.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "s1_window_days": request.s1_window_days,
        "crs": request.area.crs,
        "bounds_m": list(request.area.bounds),
        **selection.to_json(),
        "files": {k: os.path.basename(v) for k, v in outputs.items()},
        "plan": summary,
        "download": {"requests": stats.requests, "retries": stats.retries, "cached_chunks": stats.cached,
                     "fetched_chunks": stats.fetched},
        "attribution": sorted({sources.SOURCES[k].attribution for k in request.source_keys}),
    }
    _atomic_json(os.path.join(output_dir, MANIFEST_NAME), manifest)
    say(100.0, "inputs written")
    return manifest


def layer_inputs(output_dir: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """``pipeline.LayerInput`` per source of a fetched folder (with its time and product)."""
    from .pipeline import LayerInput

    return {
        k: LayerInput(os.path.join(output_dir, f), acquired_utc=manifest["images"][k]["time_utc"],
                      product=manifest["images"][k]["product"])
        for k, f in manifest["files"].items()
    }


def _model_sources_and_reach(model: Any) -> tuple[Any, list[str], float]:
    from .grid import role_grids
    from .pipeline import needed_bands, open_model

    model = open_model(model)
    meta = model.metadata
    keys = list(needed_bands(meta))
    _, roles = role_grids(meta)
    reach = max((g.half_window_m for g in roles.values()), default=0.0)
    return model, keys, reach


def soil_moisture_map(model: Any, extent: tuple[float, float, float, float], extent_crs: str, dates: list[str],
                      output_path: str, work_dir: str, *, s1_window_days: float = 6.0,
                      progress: Callable[[float, str], None] | None = None,
                      is_cancelled: Callable[[], bool] = lambda: False, **fetch_options: Any) -> dict[str, Any]:
    """Fetch the inputs for each date and map soil moisture; one date -> the map, several -> one stack.

    Parameters
    ----------
    model : str or opened model
        The model (its inputs decide which sources are fetched).
    extent, extent_crs :
        The map's area; inputs are fetched with the model's window reach around it.
    dates : list of str
        Requested times (ISO-8601, UTC).
    output_path : str
        Target GeoTIFF; per date the bands ``soil_moisture`` (m3/m3), ``input_coverage`` (0-1) and
        ``age_hours <source>`` (h before the Sentinel-1 anchor, for :data:`AGE_SOURCES`); with several dates
        each description ends with the date's anchor time.
    work_dir : str
        Folder for the fetched inputs (``<date>/``) and their cache.

    Returns
    -------
    dict
        ``{"output_path", "dates": [{"requested_utc", "anchor_utc", "inputs_dir", "warnings"}...]}``
    """
    import numpy as np
    import rasterio

    from .output import check_writable
    from .pipeline import estimate_sm

    if not dates:
        raise InputError("give at least one date", parameter="dates")
    check_writable(output_path)
    model, keys, reach = _model_sources_and_reach(model)
    area = Area.from_extent(extent, extent_crs, margin_m=reach)
    say = progress or (lambda p, m: None)
    per_date = []
    maps = []
    n = len(dates)
    for i, when in enumerate(dates):
        base = 100.0 * i / n
        req = Request(area, when, source_keys=keys, s1_window_days=s1_window_days)
        folder = os.path.join(work_dir, req.when.strftime("%Y%m%dT%H%M%SZ"))
        manifest = fetch_inputs(req, folder, cache_dir=os.path.join(work_dir, ".ee-cache"),
                                progress=lambda p, m, b=base: say(b + 0.7 * p / n, m), is_cancelled=is_cancelled,
                                **fetch_options)
        one = os.path.join(folder, "soil_moisture.tif")
        result = estimate_sm(model, layer_inputs(folder, manifest), one, extent=extent, extent_crs=extent_crs,
                             dst_crs=area.crs, is_cancelled=is_cancelled,
                             progress=lambda p, m, b=base: say(b + (70.0 + 0.3 * p) / n, m))
        maps.append((manifest["anchor_utc"], one))
        per_date.append({"requested_utc": manifest["requested_utc"], "anchor_utc": manifest["anchor_utc"],
                         "inputs_dir": folder, "warnings": result.warnings,
                         "images": manifest["images"]})
    selection_tag = json.dumps([
        {"requested_utc": d["requested_utc"], "anchor_utc": d["anchor_utc"],
         "images": {s: {"id": v["id"], "offset_s": v["offset_s"]} for s, v in d["images"].items()}}
        for d in per_date])
    with rasterio.open(maps[0][1]) as first:
        profile = first.profile
        tags = first.tags()
        nodata = first.nodata
    ages = [k for k in AGE_SOURCES if k in per_date[0]["images"]]
    per = 2 + len(ages)
    profile.update(count=per * n)
    out_dir = os.path.dirname(os.path.abspath(output_path))
    fd, tmp = tempfile.mkstemp(prefix=".smqgis-ee-", suffix=".tif", dir=out_dir)
    os.close(fd)
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            for j, ((anchor, path), d) in enumerate(zip(maps, per_date)):
                with rasterio.open(path) as src:
                    data = src.read()
                valid = data[0] != nodata
                suffix = f" {anchor}" if n > 1 else ""
                bands = [("soil_moisture", data[0], "m3/m3"), ("input_coverage", data[1], "fraction")]
                for k in ages:
                    # hours between the image and the Sentinel-1 anchor, where the map has a value
                    hours = d["images"][k]["offset_s"] / 3600.0
                    bands.append((f"age_hours {k}", np.where(valid, hours, nodata), "h"))
                for b, (name, arr, unit) in enumerate(bands, start=per * j + 1):
                    dst.write(arr.astype(np.float32), b)
                    dst.set_band_description(b, name + suffix)
                    dst.set_band_unit(b, unit)
            tags.update(EE_SELECTION=selection_tag)
            if n > 1:
                tags.update(SERIES_DATES=json.dumps([a for a, _ in maps]))
            dst.update_tags(**tags)
        os.replace(tmp, output_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    say(100.0, "map written")
    return {"output_path": output_path, "dates": per_date}
