"""In-situ validation of soil-moisture maps: the maps against ground sensors (paper 000, sections 2c and 3c).

The last step of the flow, after the map is written: read in-situ soil moisture (an ISMN
archive or folder through the ``ismn`` package, or a plain CSV), keep the paper's labels
(depth tags 0-5 cm and 5-5 cm; quality flags G, C02, C03 and "C02,C03"), sample every map
at every sensor, pair each map with the reading nearest in time to its Sentinel-1 anchor
within a tolerance (the paper's 1 h by default), and score the pairs per sensor with
:mod:`smqgis.core.metrics` (the one metrics module training uses): N, ubRMSE, RMSE, R and
bias, averaged over the sensors with at least 13 pairs. The SMAP input a map was made from
(named in its provenance tags) is scored on the same pairs beside it, so the user sees
whether the map beats its coarse input. QGIS-free: ``smqgis:validate_insitu`` is a thin
layer over :func:`validate_maps`, and :mod:`smqgis.core.report` writes the HTML report.

Sampling rule: a sensor takes the value of the map pixel that contains it (half-open
pixels: a sensor on a pixel's left or top edge belongs to it; on the map's right or bottom
edge it is outside). No interpolation and no search for a neighbouring valid pixel: a
sensor outside a map, or on a nodata / non-finite pixel (smqgis maps write -9999 where a
model window touched nodata, e.g. near the edges of the inputs), gives no pair for that map
and is counted in the warnings.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics, sources
from .errors import InputError

log = logging.getLogger(__name__)

#: ISMN quality flags the paper keeps (section 2c, step 1); every other flag is dropped.
KEPT_FLAGS = ("G", "C02", "C03", "C02,C03")
#: Depth tags the paper uses (section 2a): (from, to) in cm, compared after rounding ISMN's depths (m) to whole
#: centimetres, as ISMN's CEOP depth tags do - so SCAN's 2-inch probes (0.0508 m) count as 5-5 cm (SCAN is in
#: the paper's Table 1).
KEPT_DEPTHS_CM = ((0, 5), (5, 5))
#: Default pairing tolerance (s): the Sentinel-1 bound of the paper's join (Table 5), 1 h around the anchor.
DEFAULT_TOLERANCE_S = float(sources.SOURCES["sentinel1"].temporal_bound_s)
#: Largest plausible volumetric soil moisture (m3/m3); a value above it means the data are not in m3/m3
#: (percent, or mm of water).
MAX_VOLUMETRIC = 1.0
#: GeoTIFF tags that give a map's time, in order of preference: the Sentinel-1 anchor written by
#: ``smqgis:estimate_sm_320m``, then a generic acquisition time (the sample scene's inputs carry it).
TIME_TAGS = ("INPUT_SENTINEL1_ACQUIRED_UTC", "ANCHOR_TIME_UTC", "ACQUISITION_TIME")
#: Water per metre of soil, in mm: converts SMAP's mm over its 0.05 m layer to m3/m3.
MM_PER_M = 1000.0
#: Parameter keys of ``smqgis:validate_insitu``; core errors name them so the user knows what to change.
PARAM_MAPS = "MAPS"
PARAM_INSITU = "INSITU"
PARAM_TOLERANCE = "TOLERANCE_H"
PARAM_STRATIFY_RASTER = "STRATIFY_RASTER"
PARAM_STRATIFY_FIELD = "STRATIFY_FIELD"

#: CSV column names accepted for each role (case-insensitive), the first being the documented one.
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "sensor_id": ("sensor_id", "station_id", "station", "sensor", "id"),
    "lon": ("lon", "longitude", "long"),
    "lat": ("lat", "latitude"),
    "time": ("time_utc", "time", "timestamp", "datetime", "date_time"),
    "value": ("sm_m3m3", "soil_moisture", "value", "sm"),
    "flag": ("flag", "quality_flag", "soil_moisture_flag"),
}
_ISO_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?\s*(Z|[+-]\d{2}:?\d{2})?"
)


class ValidationInputError(InputError):
    """A validation input cannot be used; ``parameter`` is the Processing parameter key that set it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


# --------------------------------------------------------------------------------------------
# in-situ data
# --------------------------------------------------------------------------------------------
@dataclass
class SensorSeries:
    """The kept readings of one in-situ sensor.

    Attributes
    ----------
    sensor_id : str
        ``NETWORK__STATION__SENSORTYPE`` for ISMN data (as in the authors' released data set), else the
        CSV's id.
    lon, lat : float
        WGS 84 degrees.
    times_s : np.ndarray
        Reading times, int64 seconds since 1970-01-01 UTC, sorted.
    values : np.ndarray
        Volumetric soil moisture, m3/m3, float64.
    attributes : dict
        Static descriptors usable for stratification (ISMN metadata such as ``lc_2010``, ``climate_KG``;
        extra CSV columns).
    """

    sensor_id: str
    lon: float
    lat: float
    times_s: np.ndarray
    values: np.ndarray
    network: str = ""
    station: str = ""
    depth_cm: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class InSituData:
    """Sensors read from an ISMN archive or a CSV, with what was dropped on the way."""

    sensors: list[SensorSeries]
    source: str
    kind: str  # "ismn" or "csv"
    n_read: int = 0  # readings read (kept depth)
    n_dropped_flag: int = 0  # readings dropped by their quality flag
    warnings: list[str] = field(default_factory=list)


def _utc_seconds(text: str, what: str, parameter: str) -> int:
    """ISO-8601 text -> int seconds since the epoch (UTC); naive times are UTC."""
    try:
        when = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationInputError(
            parameter, f"{what} {text!r} is not an ISO-8601 time; write e.g. 2020-04-25T00:30:00Z (UTC)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return int(round(when.timestamp()))


def iso_utc(seconds: float) -> str:
    """Seconds since the epoch -> ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.fromtimestamp(int(seconds), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_units(values: np.ndarray, where: str, parameter: str) -> None:
    finite = values[np.isfinite(values)]
    if finite.size and float(finite.max()) > MAX_VOLUMETRIC:
        top = float(finite.max())
        hint = "percent (vol. %): divide by 100" if top <= 100.0 else "mm of water or another unit: convert"
        raise ValidationInputError(
            parameter,
            f"{where} holds soil moisture up to {top:g}, which cannot be m3/m3 (at most {MAX_VOLUMETRIC:g}); "
            f"the values look like {hint} to volumetric m3/m3 and try again",
        )


def _column(header: list[str], role: str, path: str, required: bool = True) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in CSV_COLUMNS[role]:
        if name in lowered:
            return lowered.index(name)
    if required:
        raise ValidationInputError(
            PARAM_INSITU,
            f"the CSV {path} has no {role} column (found {', '.join(header) or 'no header'}); name the columns "
            f"{', '.join(CSV_COLUMNS[k][0] for k in ('sensor_id', 'lon', 'lat', 'time', 'value'))} "
            f"(optional: {CSV_COLUMNS['flag'][0]})",
        )
    return None


def read_insitu_csv(path: str, kept_flags: Sequence[str] = KEPT_FLAGS) -> InSituData:
    """Read in-situ soil moisture from a plain CSV.

    Columns (header row, case-insensitive; aliases in ``CSV_COLUMNS``): ``sensor_id``, ``lon`` and
    ``lat`` (WGS 84 degrees), ``time_utc`` (ISO-8601; naive times are UTC), ``sm_m3m3`` (volumetric,
    m3/m3) and, optionally, ``flag`` (ISMN quality flag: rows whose flag is not in ``kept_flags`` are
    dropped; an empty flag counts as kept). Any other column is kept per sensor as an attribute for
    stratification (its first value per sensor).

    Raises
    ------
    ValidationInputError
        (parameter INSITU) for a missing file or column, an empty file, a bad time or number, or values
        that are not m3/m3 (e.g. percent).
    """
    if not os.path.isfile(path):
        raise ValidationInputError(PARAM_INSITU, f"the in-situ file {path} does not exist; choose a CSV or an "
                                   "ISMN archive")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise ValidationInputError(
            PARAM_INSITU, f"the CSV {path} holds no readings (it is empty or has only a header); give a CSV with "
            "one reading per row"
        )
    header, body = rows[0], rows[1:]
    cols = {role: _column(header, role, path, role != "flag") for role in CSV_COLUMNS}
    extra = [i for i in range(len(header)) if i not in cols.values()]
    kept = {f.strip() for f in kept_flags}
    by_sensor: dict[str, dict[str, Any]] = {}
    n_dropped = 0
    for line_no, row in enumerate(body, start=2):
        if len(row) < len(header):
            raise ValidationInputError(PARAM_INSITU, f"line {line_no} of {path} has {len(row)} fields, the header "
                                       f"{len(header)}; fix the line")
        if cols["flag"] is not None and row[cols["flag"]].strip() and row[cols["flag"]].strip() not in kept:
            n_dropped += 1
            continue
        try:
            lon, lat, value = (float(row[cols[k]]) for k in ("lon", "lat", "value"))
        except ValueError:
            raise ValidationInputError(
                PARAM_INSITU, f"line {line_no} of {path}: lon, lat and the soil moisture must be numbers"
            ) from None
        sid = row[cols["sensor_id"]].strip()
        entry = by_sensor.setdefault(sid, {"lon": lon, "lat": lat, "t": [], "v": [],
                                           "attrs": {header[i].strip(): row[i].strip() for i in extra}})
        entry["t"].append(_utc_seconds(row[cols["time"]], f"line {line_no}: the time", PARAM_INSITU))
        entry["v"].append(value)
    sensors = []
    for sid, entry in sorted(by_sensor.items()):
        times = np.asarray(entry["t"], dtype=np.int64)
        order = np.argsort(times, kind="stable")
        values = np.asarray(entry["v"], dtype=np.float64)[order]
        _check_units(values, f"the CSV {path} (sensor {sid})", PARAM_INSITU)
        attrs = entry["attrs"]
        sensors.append(SensorSeries(sid, entry["lon"], entry["lat"], times[order], values, attrs.get("network", ""),
                                    attrs.get("station", ""), attributes=attrs))
    data = InSituData(sensors, path, "csv", n_read=len(body), n_dropped_flag=n_dropped)
    if not sensors:
        raise ValidationInputError(
            PARAM_INSITU, f"no reading of {path} has a kept quality flag ({', '.join(kept_flags)}); nothing to validate"
        )
    log.info("read %d sensors, %d readings from %s (%d dropped by flag)", len(sensors), len(body) - n_dropped, path,
             n_dropped)
    return data


def _depth_kept(start_m: float, end_m: float) -> bool:
    tag = (int(round(start_m * 100.0)), int(round(end_m * 100.0)))
    return tag in KEPT_DEPTHS_CM


@contextlib.contextmanager
def _quiet_ismn() -> Any:
    """Keep the ismn package's chatter (per-station metadata warnings, progress) out of the user's log."""
    loggers = [logging.getLogger(name) for name in ("ismn", "ismn_meta_collector")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (level, propagate) in zip(loggers, saved):
            lg.setLevel(level)
            lg.propagate = propagate


def _ismn_series(network: str, station: Any, sensor: Any, kept: set[str]) -> tuple[SensorSeries | None, int, int]:
    """One ismn sensor's kept readings (None if none), with the counts of readings read and dropped by flag."""
    frame = sensor.read_data()
    flags = frame["soil_moisture_flag"].astype(str).str.strip().to_numpy()
    ok = np.isin(flags, list(kept))
    if not ok.any():
        return None, len(frame), len(frame)
    times = frame.index[ok].values.astype("datetime64[s]").astype(np.int64)  # ISMN times are UTC
    values = frame["soil_moisture"].to_numpy(dtype=np.float64)[ok]
    order = np.argsort(times, kind="stable")
    attrs = {var.name: str(var.val) for var in reversed(list(sensor.metadata))
             if var.name not in ("longitude", "latitude", "timerange_from", "timerange_to")}
    depth = f"{sensor.depth.start * 100:g}-{sensor.depth.end * 100:g} cm"
    series = SensorSeries(f"{network}__{station.name}__{sensor.instrument}", float(station.lon), float(station.lat),
                          times[order], values[order], network, station.name, depth, attrs)
    return series, len(frame), int((~ok).sum())


def read_ismn(path: str, kept_flags: Sequence[str] = KEPT_FLAGS,
              keep_location: Callable[[float, float], bool] | None = None) -> InSituData:
    """Read the 0-5 cm soil moisture of an ISMN download (zip archive or unpacked folder) with ``ismn``.

    Keeps sensors whose variable is ``soil_moisture`` and whose depth tag is 0-5 cm or 5-5 cm, and
    readings whose quality flag is in ``kept_flags``. ISMN times are UTC. The ``ismn`` package writes
    a metadata cache; it goes to a temporary folder, so the user's archive is left unchanged.

    Parameters
    ----------
    path : str
        An ISMN archive (.zip) or the folder it unpacks to (network/station/*.stm).
    kept_flags : sequence of str
        Quality flags kept (default: the paper's G, C02, C03, "C02,C03").
    keep_location : callable, optional
        ``keep_location(lon, lat)`` -> bool; sensors where it is False are not read (saves time on a
        large archive when only a small area is mapped).

    Raises
    ------
    ValidationInputError
        (parameter INSITU) when ``ismn`` is missing, the path is no ISMN archive, or nothing is kept.
    """
    try:
        from ismn.interface import ISMN_Interface
    except ImportError as exc:
        raise ValidationInputError(
            PARAM_INSITU, f"reading an ISMN archive needs the Python package ismn ({exc}); install it "
            "(`python3 -m pip install ismn==1.5.4`) or give a CSV instead"
        ) from None
    if not os.path.exists(path):
        raise ValidationInputError(PARAM_INSITU, f"the ISMN archive {path} does not exist")
    meta_dir = tempfile.mkdtemp(prefix="smqgis-ismn-meta-")
    chatter = io.StringIO()
    kept = {f.strip() for f in kept_flags}
    sensors: list[SensorSeries] = []
    n_read = n_dropped = 0
    seen: dict[str, int] = {}
    with _quiet_ismn():
        try:
            try:
                with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                    ds = ISMN_Interface(path, meta_path=meta_dir)
            except Exception as exc:  # noqa: BLE001 - ismn raises many kinds on a foreign folder
                raise ValidationInputError(
                    PARAM_INSITU, f"{path} could not be read as an ISMN archive ({type(exc).__name__}: {exc}); give "
                    "the .zip downloaded from ismn.earth, the folder it unpacks to, or a CSV"
                ) from None
            for network in ds.networks.values():
                for station in network.stations.values():
                    if keep_location is not None and not keep_location(float(station.lon), float(station.lat)):
                        continue
                    for sensor in station.sensors.values():
                        if sensor.variable != "soil_moisture" or not _depth_kept(sensor.depth.start, sensor.depth.end):
                            continue
                        with contextlib.redirect_stdout(chatter):
                            series, n_all, n_flagged = _ismn_series(network.name, station, sensor, kept)
                        n_read += n_all
                        n_dropped += n_flagged
                        if series is None:
                            continue
                        seen[series.sensor_id] = seen.get(series.sensor_id, 0) + 1
                        if seen[series.sensor_id] > 1:  # a second probe of the same type at 0-5 cm
                            series.sensor_id = f"{series.sensor_id}__{seen[series.sensor_id]}"
                        sensors.append(series)
            with contextlib.suppress(Exception):
                ds.close_files()
        finally:
            shutil.rmtree(meta_dir, ignore_errors=True)
    log.debug("ismn: %s", chatter.getvalue().strip())
    data = InSituData(sensors, path, "ismn", n_read=n_read, n_dropped_flag=n_dropped)
    for s in sensors:
        _check_units(s.values, f"the ISMN sensor {s.sensor_id}", PARAM_INSITU)
    if not sensors:
        raise ValidationInputError(
            PARAM_INSITU, f"{path} holds no 0-5 cm or 5-5 cm soil-moisture readings with a kept quality flag "
            f"({', '.join(kept_flags)}) in the mapped area; nothing to validate"
        )
    log.info("read %d ISMN sensors from %s: %d readings at 0-5 cm, %d dropped by flag", len(sensors), path, n_read,
             n_dropped)
    return data


def read_insitu(path: str, keep_location: Callable[[float, float], bool] | None = None) -> InSituData:
    """A CSV (``*.csv``) with :func:`read_insitu_csv`, anything else (zip, folder) with :func:`read_ismn`."""
    if str(path).lower().endswith((".csv", ".txt")):
        return read_insitu_csv(path)
    return read_ismn(path, keep_location=keep_location)


# --------------------------------------------------------------------------------------------
# maps
# --------------------------------------------------------------------------------------------
@dataclass
class SmapInput:
    """The SMAP layer a map was made from (from its provenance tags), to score it beside the map."""

    path: str
    band: int | None  # 1-based, None: a constant
    constant: float | None
    to_m3m3: float  # multiply the physical value by this to get m3/m3
    product: str


@dataclass
class MapLayer:
    """One dated soil-moisture map: a raster band and its time."""

    path: str
    band: int  # 1-based
    time_s: int  # anchor time, seconds since the epoch (UTC)
    label: str  # e.g. the file name and date
    model_label: str = ""
    smap: SmapInput | None = None


def _parse_time_text(text: str) -> tuple[int, bool] | None:
    """Find an ISO-8601 date/time in ``text``: (seconds UTC, has time of day), or None."""
    match = _ISO_RE.search(text or "")
    if not match:
        return None
    date, clock, zone = match.groups()
    stamp = date + ("T" + clock if clock else "T00:00:00") + (zone or "")
    try:
        return _utc_seconds(stamp, "time", PARAM_MAPS), clock is not None
    except ValidationInputError:
        return None


def _smap_input(tags: dict[str, str], map_path: str, warnings: list[str]) -> SmapInput | None:
    path = tags.get("INPUT_SMAP_PATH")
    if not path:
        return None
    if not os.path.exists(path):
        near = os.path.join(os.path.dirname(map_path), os.path.basename(path))
        if not os.path.exists(near):
            warnings.append(f"the SMAP input {path} named in {os.path.basename(map_path)}'s tags is not found; "
                            "SMAP is not scored for this map")
            return None
        path = near
    product = tags.get("INPUT_SMAP_PRODUCT") or sources.SOURCES["smap"].ee_collection
    successor = sources.SOURCES["smap"].successor
    if product == successor["ee_collection"]:
        to_m3m3 = 1.0  # sm_surface is volumetric already
    else:  # ssm in mm of water over the top 0.05 m
        to_m3m3 = 1.0 / (MM_PER_M * sources.VOLUMETRIC_DEPTH_M["smap"])
    bands = json.loads(tags.get("INPUT_SMAP_BANDS") or "{}")
    entry = next(iter(bands.values()), 1) if bands else 1
    if isinstance(entry, str) and entry.startswith("constant"):
        return SmapInput(path, None, float(entry.split()[1]), to_m3m3, product)
    return SmapInput(path, int(entry), None, to_m3m3, product)


def open_maps(paths: Iterable[str], warnings: list[str] | None = None) -> list[MapLayer]:
    """The dated map layers of the given rasters.

    A raster is read as (in this order): a time-series stack when band descriptions carry dates
    (``2020-04-25T00:30:00Z``; each dated band is one map); an smqgis map (band 1, time from the
    ``INPUT_SENTINEL1_ACQUIRED_UTC`` tag, SMAP from the ``INPUT_SMAP_*`` tags; band 2, the input
    coverage, is not a map); or a single-band raster with an ``ANCHOR_TIME_UTC`` or
    ``ACQUISITION_TIME`` tag. Band-level tags override dataset tags (a stack may carry its
    provenance per band).

    Raises
    ------
    ValidationInputError
        (parameter MAPS) for no raster, a file that cannot be opened, a raster without a time, or a
        map whose UNITS tag is not m3/m3.
    """
    import rasterio

    warnings = warnings if warnings is not None else []
    paths = [str(p) for p in paths]
    if not paths:
        raise ValidationInputError(PARAM_MAPS, "no soil-moisture raster given; choose one or more smqgis maps")
    layers: list[MapLayer] = []
    for path in paths:
        try:
            ds = rasterio.open(path)
        except (rasterio.errors.RasterioError, OSError) as exc:
            raise ValidationInputError(PARAM_MAPS, f"cannot open {path} as a raster ({exc})") from None
        with ds:
            tags = ds.tags()
            name = os.path.basename(path)
            units = tags.get("UNITS", "m3/m3").strip()
            if units.lower() not in ("m3/m3", "m3 m-3", "m^3/m^3", "cm3/cm3"):
                raise ValidationInputError(
                    PARAM_MAPS, f"{name} is tagged UNITS={units}, not m3/m3; give soil-moisture maps in m3/m3"
                )
            dated = []
            for b, desc in enumerate(ds.descriptions, start=1):
                parsed = _parse_time_text(desc or "")
                if parsed is not None:
                    dated.append((b, parsed))
            if dated:
                for b, (seconds, has_clock) in dated:
                    if not has_clock:
                        warnings.append(f"{name} band {b} ({ds.descriptions[b - 1]}) gives a date without a time of "
                                        "day: read as 00:00 UTC; widen TOLERANCE_H (e.g. 24 h) for daily maps")
                    btags = {**tags, **ds.tags(b)}
                    layers.append(MapLayer(path, b, seconds, f"{name} band {b} {iso_utc(seconds)}",
                                           btags.get("MODEL_LABEL", ""), _smap_input(btags, path, warnings)))
                continue
            time_text = next((tags[k] for k in TIME_TAGS if tags.get(k) and tags[k] != "unknown"), None)
            if time_text is None:
                raise ValidationInputError(
                    PARAM_MAPS,
                    f"{name} carries no time: no {' / '.join(TIME_TAGS)} tag and no dates in its band "
                    "descriptions. Use a map written by smqgis:estimate_sm_320m (it tags the Sentinel-1 time), "
                    "or a stack whose band descriptions are the dates (e.g. 2020-04-25T00:30:00Z)",
                )
            seconds = _utc_seconds(time_text, f"the time tag of {name}", PARAM_MAPS)
            layers.append(MapLayer(path, 1, seconds, f"{name} {iso_utc(seconds)}", tags.get("MODEL_LABEL", ""),
                                   _smap_input(tags, path, warnings)))
    log.info("%d dated map layers from %d rasters", len(layers), len(paths))
    return layers


def sample_at(path: str, band: int, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``band`` at the pixels that contain the points (WGS 84 degrees).

    Returns ``(values, status)``: physical values (GDAL scale/offset applied; float64, NaN where
    not valid) and per point 0 = valid, 1 = outside the raster, 2 = nodata or non-finite.
    """
    import rasterio
    from rasterio.warp import transform as warp_transform
    from rasterio.windows import Window

    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    values = np.full(lon.size, np.nan)
    status = np.ones(lon.size, dtype=np.int8)
    if not lon.size:
        return values, status
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise ValidationInputError(PARAM_MAPS, f"{os.path.basename(path)} has no CRS; georeference it first")
        xs, ys = warp_transform("EPSG:4326", ds.crs, lon.tolist(), lat.tolist())
        inv = ~ds.transform  # map coordinates -> fractional (col, row); floor = the pixel containing the point
        xs, ys = np.asarray(xs), np.asarray(ys)
        cols = np.floor(inv.a * xs + inv.b * ys + inv.c).astype(np.int64)
        rows = np.floor(inv.d * xs + inv.e * ys + inv.f).astype(np.int64)
        inside = (cols >= 0) & (cols < ds.width) & (rows >= 0) & (rows < ds.height)
        nodata = ds.nodatavals[band - 1]
        scale = ds.scales[band - 1] if ds.scales else 1.0
        offset = ds.offsets[band - 1] if ds.offsets else 0.0
        for i in np.flatnonzero(inside):
            raw = float(ds.read(band, window=Window(int(cols[i]), int(rows[i]), 1, 1))[0, 0])
            if not math.isfinite(raw) or (nodata is not None and raw == nodata):
                status[i] = 2
                continue
            values[i] = raw * scale + offset
            status[i] = 0
    return values, status


# --------------------------------------------------------------------------------------------
# pairing and scoring
# --------------------------------------------------------------------------------------------
def nearest_within(times_s: np.ndarray, anchor_s: int, tolerance_s: float) -> int | None:
    """Index of the reading nearest to ``anchor_s`` with ``|t - anchor| <= tolerance_s``, else None.

    ``times_s`` is sorted; on a tie the earlier reading wins.
    """
    if not times_s.size:
        return None
    k = int(np.searchsorted(times_s, anchor_s))
    best = None
    for j in (k - 1, k):
        if 0 <= j < times_s.size:
            dt = abs(int(times_s[j]) - int(anchor_s))
            if dt <= tolerance_s and (best is None or dt < best[0]):
                best = (dt, j)
    return None if best is None else best[1]


@dataclass
class Pairs:
    """Matched (map, in-situ) pairs, one row per sensor and map date (arrays of equal length)."""

    sensor_id: np.ndarray
    map_label: np.ndarray
    map_time_s: np.ndarray
    insitu_time_s: np.ndarray
    estimate: np.ndarray  # m3/m3
    insitu: np.ndarray  # m3/m3
    smap: np.ndarray  # m3/m3, NaN where the map names no SMAP input
    category: np.ndarray  # str, "" without stratification

    def __len__(self) -> int:
        return int(self.sensor_id.size)


@dataclass
class ValidationResult:
    """What :func:`validate_maps` found: pairs, per-sensor metrics and their averages."""

    pairs: Pairs
    sensors: list[dict[str, Any]]  # one row per sensor: ids, location, category, metrics of map and SMAP
    average: dict[str, Any]  # map: metrics.sensor_metrics(...)["average"]
    smap_average: dict[str, Any] | None  # the same for SMAP, None when no map names its SMAP input
    strata: dict[str, dict[str, Any]]  # category -> {"map": row, "smap": row or None}
    min_points: int
    tolerance_s: float
    maps: list[MapLayer]
    insitu_source: str
    insitu_kind: str
    stratify_by: str
    warnings: list[str]
    model_labels: list[str]
    insitu_simulated: bool = False  # every sensor is marked simulated (a "simulated" column that is true)

    # --- output -----------------------------------------------------------------------
    def table_rows(self) -> list[dict[str, str]]:
        """The per-sensor table as formatted strings (the CSV's and the report's numbers)."""
        return [{key: fmt(row[key]) for key in CSV_FIELDS} for row in self.sensors]

    def average_rows(self) -> list[dict[str, str]]:
        """The averages (map and SMAP) as formatted strings."""
        out = [_average_row("map", self.average)]
        if self.smap_average is not None:
            out.append(_average_row("SMAP input", self.smap_average))
        return out

    def write_csv(self, path: str) -> str:
        """Write the per-sensor table (columns ``CSV_FIELDS``; metrics with 4 decimals) and return the path."""
        tmp = f"{path}.part"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS))
            writer.writeheader()
            writer.writerows(self.table_rows())
        os.replace(tmp, path)
        return path

    def table_text(self) -> str:
        """A plain-text table of the averages and the per-sensor metrics, for a terminal."""
        what = "SIMULATED sensors" if self.insitu_simulated else "sensors"
        head = (f"In-situ validation: {len(self.sensors)} {what}, {len(self.pairs)} pairs, tolerance "
                f"{self.tolerance_s / 3600:g} h; averages over sensors with >= {self.min_points} pairs")
        lines = [head, f"{'':<12}{'sensors':>8}{'points':>8}{'ubRMSE':>9}{'RMSE':>9}{'R':>8}{'bias':>9}"]
        for row in self.average_rows():
            lines.append(f"{row['what']:<12}{row['n_sensors']:>8}{row['n_points']:>8}{row['ubrmse']:>9}"
                         f"{row['rmse']:>9}{row['r']:>8}{row['bias']:>9}")
        if self.average["n_sensors"] == 0:
            lines.append(f"(no sensor has {self.min_points} pairs yet: the averages need maps of more dates; the "
                         "per-sensor rows below are reported for all sensors)")
        lines.append("")
        lines.append(f"{'sensor':<44}{'N':>5}{'ubRMSE':>9}{'RMSE':>9}{'R':>8}{'bias':>9}{'avg':>5}"
                     f"{'SMAP ubRMSE':>12}{'SMAP R':>8}")
        for row in self.table_rows():
            lines.append(f"{row['sensor_id'][:43]:<44}{row['n']:>5}{row['ubrmse']:>9}{row['rmse']:>9}{row['r']:>8}"
                         f"{row['bias']:>9}{row['in_average']:>5}{row['smap_ubrmse']:>12}{row['smap_r']:>8}")
        return "\n".join(lines)


#: Columns of the per-sensor CSV (and attributes of the sensor layer), in order.
CSV_FIELDS = ("sensor_id", "network", "station", "lon", "lat", "category", "n", "ubrmse", "rmse", "r", "bias",
              "in_average", "smap_n", "smap_ubrmse", "smap_rmse", "smap_r", "smap_bias")


def fmt(value: Any) -> str:
    """One cell: floats with 4 decimals (6 for coordinates is not needed: 4 decimals of a degree is ~10 m),
    NaN as empty, booleans as yes/no."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "" if not math.isfinite(float(value)) else f"{float(value):.4f}"
    return str(value)


def _average_row(what: str, avg: dict[str, Any]) -> dict[str, str]:
    return {"what": what, "n_sensors": str(avg["n_sensors"]), "n_points": str(avg["n_points"]),
            **{k: fmt(avg[k]) for k in metrics.METRIC_NAMES}}


def _stratify_categories(series: list[SensorSeries], stratify_raster: str | None, stratify_field: str | None,
                         warnings: list[str]) -> tuple[list[str], str]:
    if stratify_raster and stratify_field:
        raise ValidationInputError(PARAM_STRATIFY_FIELD, "give a category raster or a field to stratify by, not both")
    if stratify_raster:
        if not os.path.exists(stratify_raster):
            raise ValidationInputError(PARAM_STRATIFY_RASTER, f"the category raster {stratify_raster} does not exist")
        values, status = sample_at(stratify_raster, 1, np.array([s.lon for s in series]),
                                   np.array([s.lat for s in series]))
        cats = [f"{v:g}" if st == 0 else "no category" for v, st in zip(values, status)]
        missing = sum(st != 0 for st in status)
        if missing:
            warnings.append(f"{missing} sensor(s) lie outside the category raster or on its nodata: "
                            "stratum 'no category'")
        return cats, os.path.basename(stratify_raster)
    if stratify_field:
        known = sorted({k for s in series for k in s.attributes})
        if not any(stratify_field in s.attributes for s in series):
            raise ValidationInputError(
                PARAM_STRATIFY_FIELD, f"no sensor has the field {stratify_field!r}; choose one of "
                f"{', '.join(known) or '(none: the in-situ data carry no extra fields)'}"
            )
        return [s.attributes.get(stratify_field, "no category") or "no category" for s in series], stratify_field
    return ["" for _ in series], ""


def pair_maps(
    layers: Sequence[MapLayer],
    series: Sequence[SensorSeries],
    categories: Sequence[str],
    tolerance_s: float,
    warnings: list[str],
    source_name: str = "the in-situ data",
    progress: Callable[[float, str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> Pairs:
    """Sample every map at every sensor and pair it with the nearest kept reading within ``tolerance_s``.

    One pair per sensor and map time (a second map of the same time covering the sensor is skipped
    with a warning). Counts of sensors outside every map, sensor-dates on nodata and sensor-dates
    without a reading are appended to ``warnings``.

    Raises
    ------
    ValidationInputError
        (MAPS) when no sensor lies inside any map.
    """
    from .errors import Cancelled

    lon = np.array([s.lon for s in series])
    lat = np.array([s.lat for s in series])
    rows: dict[str, list] = {k: [] for k in ("sid", "label", "mt", "it", "est", "obs", "smap", "cat")}
    ever_inside = np.zeros(len(series), dtype=bool)
    n_nodata = n_no_reading = 0
    seen: set[tuple[str, int]] = set()
    n_duplicate = 0
    for k, layer in enumerate(layers):
        if is_cancelled and is_cancelled():
            raise Cancelled("validation cancelled")
        if progress:
            progress(5.0 + 90.0 * k / max(len(layers), 1), f"sampling {layer.label}")
        values, status = sample_at(layer.path, layer.band, lon, lat)
        ever_inside |= status != 1
        n_nodata += int((status == 2).sum())
        smap_values = np.full(len(series), np.nan)
        if layer.smap is not None:
            if layer.smap.band is None:
                smap_values[:] = layer.smap.constant * layer.smap.to_m3m3
            else:
                raw, _ = sample_at(layer.smap.path, layer.smap.band, lon, lat)
                smap_values = raw * layer.smap.to_m3m3
        for i in np.flatnonzero(status == 0):
            s = series[i]
            j = nearest_within(s.times_s, layer.time_s, tolerance_s)
            if j is None:
                n_no_reading += 1
                continue
            key = (s.sensor_id, layer.time_s)
            if key in seen:
                n_duplicate += 1
                continue
            seen.add(key)
            rows["sid"].append(s.sensor_id)
            rows["label"].append(layer.label)
            rows["mt"].append(layer.time_s)
            rows["it"].append(int(s.times_s[j]))
            rows["est"].append(float(values[i]))
            rows["obs"].append(float(s.values[j]))
            rows["smap"].append(float(smap_values[i]))
            rows["cat"].append(categories[i])

    if not ever_inside.any():
        raise ValidationInputError(
            PARAM_MAPS, f"none of the {len(series)} sensors of {source_name} lies inside any map "
            f"(sensors span lon {lon.min():.3f}..{lon.max():.3f}, lat {lat.min():.3f}..{lat.max():.3f}); choose maps "
            "that cover the sensors, or in-situ data for the mapped area"
        )
    outside = int((~ever_inside).sum())
    if outside:
        warnings.append(f"{outside} of {len(series)} sensors lie outside every map and are not validated")
    if n_nodata:
        warnings.append(f"{n_nodata} sensor-date(s) fall on nodata pixels of a map (no pair)")
    if n_no_reading:
        warnings.append(f"{n_no_reading} sensor-date(s) have no kept reading within {tolerance_s / 3600:g} h of the "
                        "map's time (no pair)")
    if n_duplicate:
        warnings.append(f"{n_duplicate} sensor-date(s) are covered by more than one map of the same time: the first "
                        "map's value is used")
    pairs = Pairs(
        sensor_id=np.array(rows["sid"], dtype=object), map_label=np.array(rows["label"], dtype=object),
        map_time_s=np.array(rows["mt"], dtype=np.int64), insitu_time_s=np.array(rows["it"], dtype=np.int64),
        estimate=np.array(rows["est"], dtype=np.float64), insitu=np.array(rows["obs"], dtype=np.float64),
        smap=np.array(rows["smap"], dtype=np.float64), category=np.array(rows["cat"], dtype=object),
    )
    return pairs


def validate_maps(
    maps: Iterable[str] | Sequence[MapLayer],
    insitu: str | InSituData,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    stratify_raster: str | None = None,
    stratify_field: str | None = None,
    min_points: int = metrics.MIN_POINTS,
    progress: Callable[[float, str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> ValidationResult:
    """Validate soil-moisture maps against in-situ sensors (paper 000's per-sensor metrics).

    Parameters
    ----------
    maps : iterable of str or MapLayer
        Raster paths (see :func:`open_maps`) or dated layers already opened.
    insitu : str or InSituData
        An ISMN archive / folder or a CSV (see :func:`read_insitu`), or data already read.
    tolerance_s : float
        Largest time between a map's anchor time and the reading paired with it (s); default 1 h.
    stratify_raster : str, optional
        A category raster (band 1, e.g. land cover); each sensor takes the category of its pixel.
    stratify_field : str, optional
        A per-sensor field: an extra CSV column or an ISMN metadata variable (``lc_2010``, ``climate_KG``).
    min_points : int
        Fewest pairs a sensor needs to enter the averages (the paper's 13).
    progress, is_cancelled : callable, optional
        ``progress(percent, message)``; ``is_cancelled()`` polled per map (raises ``Cancelled``).

    Returns
    -------
    ValidationResult

    Raises
    ------
    ValidationInputError
        Naming the parameter: MAPS, INSITU, TOLERANCE_H, STRATIFY_RASTER or STRATIFY_FIELD.
    """
    if not (tolerance_s > 0 and math.isfinite(tolerance_s)):
        raise ValidationInputError(PARAM_TOLERANCE, f"the time tolerance must be a positive number of hours, got "
                                   f"{tolerance_s / 3600:g} h")
    warnings: list[str] = []
    maps = list(maps)
    layers = maps if maps and isinstance(maps[0], MapLayer) else open_maps(maps, warnings)
    if progress:
        progress(2.0, "reading the in-situ data")
    if isinstance(insitu, InSituData):
        data = insitu
    else:
        boxes = [_bounds_lonlat(p) for p in sorted({m.path for m in layers})]

        def keep_location(lon: float, lat: float) -> bool:
            return any(b[0] <= lon <= b[2] and b[1] <= lat <= b[3] for b in boxes)

        data = read_insitu(str(insitu), keep_location=keep_location)
    warnings.extend(data.warnings)
    series = data.sensors
    categories, stratify_by = _stratify_categories(series, stratify_raster, stratify_field, warnings)

    pairs = pair_maps(layers, series, categories, tolerance_s, warnings, os.path.basename(data.source), progress,
                      is_cancelled)
    top = float(np.max(pairs.estimate)) if len(pairs) else 0.0
    if top > MAX_VOLUMETRIC:
        raise ValidationInputError(
            PARAM_MAPS, f"the maps hold values up to {top:g} at the sensors, which cannot be m3/m3; give "
            "soil-moisture maps in m3/m3 (a map in percent: divide it by 100)"
        )
    if not len(pairs):
        raise ValidationInputError(
            PARAM_TOLERANCE, f"no sensor has a kept reading within {tolerance_s / 3600:g} h of any map's time on a "
            "valid pixel; check the maps' dates against the in-situ period, or widen TOLERANCE_H"
        )
    result = _score(pairs, series, categories, min_points, any(m.smap is not None for m in layers))
    sensors_out, average, smap_average, strata = result
    if progress:
        progress(100.0, "done")
    log.info("validated %d pairs at %d sensors: ubRMSE %.4f, RMSE %.4f, R %.3f over %d sensors", len(pairs),
             len(sensors_out), average["ubrmse"], average["rmse"], average["r"], average["n_sensors"])
    return ValidationResult(
        pairs=pairs, sensors=sensors_out, average=average, smap_average=smap_average, strata=strata,
        min_points=min_points, tolerance_s=float(tolerance_s), maps=layers, insitu_source=data.source,
        insitu_kind=data.kind, stratify_by=stratify_by, warnings=warnings,
        model_labels=sorted({m.model_label for m in layers if m.model_label}),
        insitu_simulated=bool(series) and all(x.attributes.get("simulated", "").lower() == "true" for x in series),
    )


def _bounds_lonlat(path: str) -> tuple[float, float, float, float]:
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise ValidationInputError(PARAM_MAPS, f"{os.path.basename(path)} has no CRS; georeference it first")
        return transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)


def _score(pairs: Pairs, series: list[SensorSeries], categories: list[str], min_points: int, has_smap: bool
           ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """Per-sensor metrics of the map and of SMAP (on the pairs where SMAP is defined), averages, strata."""
    m = metrics.sensor_metrics(pairs.estimate, pairs.insitu, pairs.sensor_id, min_points)
    smap_ok = np.isfinite(pairs.smap)
    s = metrics.sensor_metrics(pairs.smap, pairs.insitu, pairs.sensor_id, min_points) if has_smap else None
    by_id = {x.sensor_id: (x, c) for x, c in zip(series, categories)}
    rows = []
    for sid, row in m["per_sensor"].items():
        x, cat = by_id[sid]
        srow = (s["per_sensor"].get(sid) if s else None) or {"n": 0, **{k: float("nan") for k in metrics.METRIC_NAMES}}
        rows.append({
            "sensor_id": sid, "network": x.network, "station": x.station, "lon": x.lon, "lat": x.lat,
            "category": cat, **{k: row[k] for k in ("n", *metrics.METRIC_NAMES)},
            "in_average": row["n"] >= min_points,
            **{f"smap_{k}": srow[k] for k in ("n", *metrics.METRIC_NAMES)},
        })
    strata: dict[str, dict[str, Any]] = {}
    if any(categories):
        map_strata = metrics.stratified_metrics(pairs.estimate, pairs.insitu, pairs.sensor_id, pairs.category,
                                                min_points)
        smap_strata = (metrics.stratified_metrics(pairs.smap[smap_ok], pairs.insitu[smap_ok],
                                                  pairs.sensor_id[smap_ok], pairs.category[smap_ok], min_points)
                       if has_smap and smap_ok.any() else {})
        strata = {c: {"map": map_strata[c], "smap": smap_strata.get(c)} for c in map_strata}
    return rows, m["average"], (s["average"] if s else None), strata
