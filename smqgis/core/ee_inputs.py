"""Earth Engine requests for the model's inputs: the Table 5 join and one expression per source.

The second step when inputs come from Earth Engine (after ``earthengine.initialise``, before
``ee_fetch`` downloads). Everything about a source - collection, bands, filters, temporal bound,
successor product, pixel type - is read from ``sources.SOURCES``.

The join is paper 000 §2c at inference time. Sentinel-1 is the anchor: the IW scene with VV
and VH closest before the requested time, within a window the user sets (6 days by default).
Every other time-series source takes its image closest before the anchor, within its Table 5
bound; DEM and SoilGrids are static. The selection is one server-side expression; the chosen
ids and times come back in one ``getInfo`` call (:func:`select_images`), and
:func:`source_image` then builds each source's image from its chosen id. Downloads go onto
the UTM zone of the area: 10 m for the high-res sources, the product's own pixel size for the
coarse ones (:func:`source_grid`); Earth Engine reprojects to the grid of the request.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from . import sources
from .errors import EarthEngineError, InputError

log = logging.getLogger(__name__)

#: Default window before the requested time in which the Sentinel-1 anchor is looked for (days).
DEFAULT_S1_WINDOW_DAYS = 6.0
#: Pixel size of the high-res inputs on the model's grid (m); sources at least this fine are fetched at it.
HIGH_RES_M = 10.0
#: Sources whose native pixel is at most this (m) are fetched at :data:`HIGH_RES_M` (S1, S2, and the 30 m DEM).
HIGH_RES_NATIVE_MAX_M = 30.0
#: Largest pixel (m) SoilGrids (no native grid in the table: Homolosine) is fetched at on the UTM grid: under the
#: 320 m output pixel, so Earth Engine's nearest resampling moves its cell boundaries by at most 50 m.
COARSE_FETCH_MAX_M = 100.0
#: One millisecond: Earth Engine date ranges are [start, end), so "at or before t" ends at t + 1 ms.
END_INCLUSIVE_MS = 1


def utc(when: datetime | str) -> datetime:
    """``when`` as an aware UTC datetime (a naive datetime or ISO string without zone is taken as UTC)."""
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"date and time {when!r} is not ISO-8601; give e.g. 2021-06-01T12:00:00Z",
                             parameter="datetime") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def millis(when: datetime) -> int:
    """Milliseconds since 1970-01-01 UTC (Earth Engine's ``system:time_start``)."""
    return int(round(utc(when).timestamp() * 1000.0))


def product_for(source: sources.Source, when: datetime) -> dict[str, Any]:
    """The product that serves ``source`` at ``when``: the table's own, or its successor after ``valid_to``.

    Returns a dict with ``ee_collection``, ``ee_band`` (per smqgis band), ``to_native_scale`` (factor to the
    trained-on units), ``native_resolution_m`` and ``successor`` (bool). ``valid_to`` is the last day (UTC)
    of the product: the successor serves from the next day's 00:00 UTC.
    """
    own = {
        "ee_collection": source.ee_collection,
        "ee_band": {b.name: b.ee_name for b in source.bands},
        "to_native_scale": 1.0,
        "native_resolution_m": source.native_resolution_m,
        "native_grid": source.ee_native_grid,
        "successor": False,
    }
    if not source.valid_to or not source.successor:
        return own
    last_day = datetime.fromisoformat(source.valid_to).replace(tzinfo=timezone.utc)
    if utc(when) < last_day + timedelta(days=1):
        return own
    succ = source.successor
    return {
        "ee_collection": succ["ee_collection"],
        "ee_band": {b.name: succ["ee_band"] for b in source.bands},
        "to_native_scale": float(succ.get("to_native_scale", 1.0)),
        "native_resolution_m": float(succ.get("native_resolution_m", source.native_resolution_m)),
        "native_grid": succ.get("ee_native_grid", {}),
        "successor": True,
    }


@dataclass(frozen=True)
class Area:
    """The area of a request, in its UTM zone.

    Attributes
    ----------
    crs : str
        ``"EPSG:326zz"`` or ``"EPSG:327zz"``.
    bounds : tuple of float
        (xmin, ymin, xmax, ymax) in m of ``crs``.
    lonlat_bounds : tuple of float
        The same box in degrees (west, south, east, north), for ``filterBounds``.
    """

    crs: str
    bounds: tuple[float, float, float, float]
    lonlat_bounds: tuple[float, float, float, float]

    @classmethod
    def from_extent(cls, extent: tuple[float, float, float, float], extent_crs: str, *,
                    margin_m: float = 0.0, dst_crs: str | None = None) -> Area:
        """The area of ``extent`` (in ``extent_crs``) in the UTM zone of its centre, grown by ``margin_m``."""
        from .grid import bounds_in, utm_crs_for

        if not (extent[0] < extent[2] and extent[1] < extent[3]):
            raise InputError(f"the extent {extent} is empty; draw or give an area with xmin < xmax and ymin < ymax",
                             parameter="extent")
        ll = bounds_in(extent_crs, extent, "EPSG:4326")
        crs = dst_crs or utm_crs_for((ll[0] + ll[2]) / 2.0, (ll[1] + ll[3]) / 2.0)
        b = bounds_in(extent_crs, extent, crs)
        b = (b[0] - margin_m, b[1] - margin_m, b[2] + margin_m, b[3] + margin_m)
        return cls(crs, b, tuple(bounds_in(crs, b, "EPSG:4326")))  # type: ignore[arg-type]


@dataclass(frozen=True)
class PixelGrid:
    """A north-up pixel grid of a download: ``crs``, top-left corner (m), pixel size (m), size (px)."""

    crs: str
    x0: float
    y0: float
    res_m: float
    width: int
    height: int

    def ee_grid(self, col0: int = 0, row0: int = 0, width: int | None = None, height: int | None = None
                ) -> dict[str, Any]:
        """The ``grid`` of a computePixels request for a window of this grid (PixelGrid JSON of the REST API)."""
        return {
            "dimensions": {"width": int(width or self.width), "height": int(height or self.height)},
            "affineTransform": {
                "scaleX": self.res_m, "shearX": 0.0, "translateX": self.x0 + col0 * self.res_m,
                "shearY": 0.0, "scaleY": -self.res_m, "translateY": self.y0 - row0 * self.res_m,
            },
            "crsCode": self.crs,
        }

    @property
    def transform(self) -> Any:
        """The grid's affine transform."""
        from affine import Affine

        return Affine(self.res_m, 0.0, self.x0, 0.0, -self.res_m, self.y0)


def source_grid(area: Area, source: sources.Source, when: datetime | None = None) -> PixelGrid:
    """The grid ``source`` is downloaded on.

    SMAP and GLDAS come on their product's own grid (``ee_native_grid`` of the table: 0.1 deg, 0.25 deg, or
    EASE-Grid 2.0 9 km for the SMAP successor) covering the area plus one cell, so the mapping step resamples
    them exactly as it would the product's own files; other sources on the area's UTM zone, 10 m for the fine
    ones and the product's pixel size up to :data:`COARSE_FETCH_MAX_M` for SoilGrids.
    """
    from .grid import bounds_in

    product = product_for(source, when) if when is not None else product_for(source, datetime(2000, 1, 1))
    native = product["native_grid"]
    eps = 1e-6  # px: bounds already on the grid stay there
    if native:
        crs, res = native["crs"], float(native["step"])
        b = bounds_in(area.crs, area.bounds, crs)
        margin = 1  # cell: the area's edge may sit on a cell boundary
    else:
        crs, b, margin = area.crs, area.bounds, 0
        nat = product["native_resolution_m"]
        res = HIGH_RES_M if nat <= HIGH_RES_NATIVE_MAX_M else min(float(nat), COARSE_FETCH_MAX_M)
    x0 = (math.floor(b[0] / res + eps) - margin) * res
    x1 = (math.ceil(b[2] / res - eps) + margin) * res
    y1 = (math.floor(b[1] / res + eps) - margin) * res
    y0 = (math.ceil(b[3] / res - eps) + margin) * res
    return PixelGrid(crs, x0, y0, res, int(round((x1 - x0) / res)), int(round((y0 - y1) / res)))


@dataclass
class Request:
    """What to fetch: an area, a time, the sources, and the Sentinel-1 window.

    Attributes
    ----------
    area : Area
        Where.
    when : datetime
        The requested time (UTC); the Sentinel-1 anchor is the scene closest before it.
    source_keys : list of str
        Sources to fetch (keys of ``sources.SOURCES``), Sentinel-1 always among them.
    s1_window_days : float
        How far before ``when`` the anchor may be (days).
    """

    area: Area
    when: datetime
    source_keys: list[str] = field(default_factory=lambda: list(sources.SOURCES))
    s1_window_days: float = DEFAULT_S1_WINDOW_DAYS

    def __post_init__(self) -> None:
        self.when = utc(self.when)
        unknown = [k for k in self.source_keys if k not in sources.SOURCES]
        if unknown:
            raise InputError(f"unknown sources {unknown}; known: {list(sources.SOURCES)}", parameter="sources")
        if "sentinel1" not in self.source_keys:
            self.source_keys = ["sentinel1", *self.source_keys]
        if not self.s1_window_days > 0:
            raise InputError(f"the Sentinel-1 window must be positive (days), not {self.s1_window_days}",
                             parameter="s1_window_days")


def _region(area: Area) -> Any:
    import ee

    return ee.Geometry.Rectangle(list(area.lonlat_bounds), "EPSG:4326", False)


def filtered_collection(source: sources.Source, product: dict[str, Any], region: Any, start: Any, end: Any) -> Any:
    """The source's collection over ``region`` in [start, end) with the table's filters (ee.ImageCollection)."""
    import ee

    col = ee.ImageCollection(product["ee_collection"]).filterBounds(region).filterDate(start, end)
    f = source.ee_filters
    if "instrumentMode" in f:
        col = col.filter(ee.Filter.eq("instrumentMode", f["instrumentMode"]))
    for pol in f.get("transmitterReceiverPolarisation", []):
        col = col.filter(ee.Filter.listContains("transmitterReceiverPolarisation", pol))
    if "max_cloud_percent" in f:
        col = col.filter(ee.Filter.lt(f["cloud_property"], f["max_cloud_percent"]))
    return col


def _latest(col: Any) -> Any:
    """{ids, times} of the image of ``col`` with the latest start (empty lists when ``col`` is empty)."""
    import ee

    last = col.sort("system:time_start", False).limit(1)
    return ee.Dictionary({"ids": last.aggregate_array("system:id"), "times": last.aggregate_array("system:time_start")})


def selection_expression(request: Request) -> Any:
    """The server-side join (ee.Dictionary): per time-series source the id and time of its chosen image."""
    import ee

    region = _region(request.area)
    t_ms = millis(request.when)
    s1 = sources.SOURCES["sentinel1"]
    window_ms = int(round(request.s1_window_days * sources.DAY_S * 1000.0))
    s1_col = filtered_collection(s1, product_for(s1, request.when), region, ee.Date(t_ms - window_ms),
                                 ee.Date(t_ms + END_INCLUSIVE_MS))
    chosen = {"sentinel1": _latest(s1_col)}
    # the anchor's time; the requested time when there is no scene (then sentinel1 is reported missing)
    anchor = ee.Number(ee.List(chosen["sentinel1"].get("times")).add(t_ms).get(0))
    for key in request.source_keys:
        src = sources.SOURCES[key]
        if key == "sentinel1" or src.temporal_bound_s is None:
            continue
        bound_ms = int(round(src.temporal_bound_s * 1000.0))
        col = filtered_collection(src, product_for(src, request.when), region,
                                  ee.Date(anchor.subtract(bound_ms)), ee.Date(anchor.add(END_INCLUSIVE_MS)))
        chosen[key] = _latest(col)
    return ee.Dictionary(chosen)


@dataclass
class Selection:
    """The images the join chose: per source key its Earth Engine id, time and age.

    Attributes
    ----------
    images : dict
        Per source key: ``{"id", "time_utc", "offset_s" (anchor time minus image time, s), "product",
        "successor", "to_native_scale"}``; static sources have ``time_utc`` None.
    anchor_utc : str
        Time of the Sentinel-1 anchor (ISO-8601).
    """

    images: dict[str, dict[str, Any]]
    anchor_utc: str

    def to_json(self) -> dict[str, Any]:
        """The manifest entry of the selection."""
        return {"anchor_utc": self.anchor_utc, "images": self.images}


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_selection(request: Request, info: dict[str, Any]) -> Selection:
    """Turn the ``getInfo`` answer of :func:`selection_expression` into a :class:`Selection`.

    Raises
    ------
    EarthEngineError
        ``reason="no_image"`` naming the first source without an image in its bound.
    """
    s1 = info.get("sentinel1", {})
    if not s1.get("ids"):
        raise EarthEngineError(
            f"no Sentinel-1 IW scene with VV and VH over the area in the {request.s1_window_days:g} days before "
            f"{request.when:%Y-%m-%dT%H:%MZ}; widen the Sentinel-1 window or pick another date",
            reason="no_image", role="sentinel1", parameter="s1_window_days")
    anchor_ms = float(s1["times"][0])
    images: dict[str, dict[str, Any]] = {}
    for key in request.source_keys:
        src = sources.SOURCES[key]
        product = product_for(src, request.when)
        entry: dict[str, Any] = {"product": product["ee_collection"], "successor": product["successor"],
                                 "to_native_scale": product["to_native_scale"]}
        if src.temporal_bound_s is None:
            entry.update(id=product["ee_collection"], time_utc=None, offset_s=None)
        else:
            got = info.get(key, {})
            if not got.get("ids"):
                raise EarthEngineError(
                    f"no {src.title} image over the area within {src.temporal_bound_s / 3600.0:g} h before the "
                    f"Sentinel-1 anchor {_iso(anchor_ms)} (paper 000, Table 5); pick another date",
                    reason="no_image", role=key)
            t = float(got["times"][0])
            entry.update(id=got["ids"][0], time_utc=_iso(t), offset_s=(anchor_ms - t) / 1000.0)
        images[key] = entry
    return Selection(images, _iso(anchor_ms))


def select_images(request: Request, call: Any = None) -> Selection:
    """Run the join on Earth Engine (one ``getInfo`` call, with the retries of ``call``) and parse it."""
    from .earthengine import translate

    expr = selection_expression(request)
    try:
        info = call(expr.getInfo) if call is not None else expr.getInfo()
    except EarthEngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - earthengine-api errors become advice
        raise translate(exc) from None
    log.debug("Earth Engine selection: %s", info)
    return parse_selection(request, info)


def band_ids(key: str, chosen: dict[str, Any]) -> list[str]:
    """Band names of the download of ``key``: smqgis names, or the successor product's own band name.

    A successor's values stay in its own units (e.g. SPL4SMGP ``sm_surface`` in m3/m3), described by its
    band name, so that the mapping step (``layers.open_layer`` with the successor as product) harmonises
    them with the table's ``to_native_scale`` and records the product - one place for that conversion.
    """
    src = sources.SOURCES[key]
    return [src.successor["ee_band"]] if chosen.get("successor") else src.band_names


#: Value of masked pixels in a download, per pixel type (``Source.ee_dtype``): the assembled file's nodata.
#: uint16 0 is Sentinel-2 L1C's own "no data" DN; the others lie far outside every source's valid range.
EE_NODATA = {"float32": -9999.0, "uint16": 0, "int16": -32768}


def source_image(key: str, chosen: dict[str, Any]) -> Any:
    """The ee.Image of source ``key`` from its chosen image: bands renamed (:func:`band_ids`), masked, typed.

    Masked pixels (Sentinel-2 pixels flagged by QA60 - opaque clouds, cirrus -, swath edges, holes)
    get the download's nodata value (:data:`EE_NODATA` of the source's type), which the assembled
    GeoTIFF declares, so that they are nodata to the model rather than values.
    """
    import ee

    src = sources.SOURCES[key]
    names = band_ids(key, chosen)
    if src.ee_asset == "image_per_band":
        img = ee.Image.cat([ee.Image(src.ee_collection.format(band=b.name)).select(b.ee_name) for b in src.bands])
    else:
        base = ee.Image(chosen["id"])
        img = base.select(names if chosen.get("successor") else [b.ee_name for b in src.bands])
        f = src.ee_filters
        if "mask_band" in f:
            qa = base.select(f["mask_band"])
            clear = qa.bitwiseAnd(sum(1 << int(bit) for bit in f["mask_bits"])).eq(0)
            img = img.updateMask(clear)
    img = img.rename(names).unmask(EE_NODATA[src.ee_dtype])
    return getattr(img, {"float32": "toFloat", "uint16": "toUint16", "int16": "toInt16"}[src.ee_dtype])()


def compute_pixels_params(key: str, chosen: dict[str, Any], grid: PixelGrid, col0: int = 0, row0: int = 0,
                          width: int | None = None, height: int | None = None) -> dict[str, Any]:
    """The ``ee.data.computePixels`` parameters of one window of ``grid`` for source ``key`` (GeoTIFF)."""
    return {
        "expression": source_image(key, chosen),
        "fileFormat": "GEO_TIFF",
        "grid": grid.ee_grid(col0, row0, width, height),
        "bandIds": band_ids(key, chosen),
    }
