"""Plausibility of a run's inputs and outputs: units, products, times, the output CRS and size.

Wrong inputs must never make a plausible map. Before a run, each input is read once,
decimated, over the run's extent (:func:`sample_layer`: what the run will actually read, not
the file's header) and tested against the sources table (``sources.py``: each band's physical
range, the usual mix-ups ``LOOKALIKES`` and the declared conversions ``UNIT_OPTIONS``). An input
with no valid data where the map is, in other units, of another source, or acquired too far
from the Sentinel-1 anchor (the Table 5 bounds) is refused with an ``InputError`` naming the
input (``role``) and saying what was seen and what to do. Conversions are never guessed: the
one unambiguous correction applied without being asked - the +1000 DN offset of Sentinel-2
processing baseline 04.00, announced by the product's metadata or its date - is recorded in
the output's tags. QGIS-free.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import re
from typing import Any

import numpy as np

from . import sources
from .errors import InputError

log = logging.getLogger(__name__)

#: Pixels a side of the decimated read of each input (enough for robust percentiles, fast on any file).
SAMPLE_PX = 128
#: Percentiles (%) that stand for "almost all values" in the tests (robust to a few outliers).
LOW_PCT, HIGH_PCT = 2.0, 98.0
#: The source every time is measured from (paper 000: inputs are joined to the Sentinel-1 image).
ANCHOR = "sentinel1"
#: Acquisition time patterns in file names: 20220301T103021 (Sentinel products), 2022-03-01T10:30:21.
_NAME_TIME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?!\d)")


# -- times ------------------------------------------------------------------------------------------------
def parse_time(text: Any, *, role: str, path: str = "") -> _dt.datetime:
    """An acquisition time (ISO-8601 text or a datetime) as an aware UTC datetime; InputError if it is not one."""
    if isinstance(text, _dt.datetime):
        return text if text.tzinfo else text.replace(tzinfo=_dt.timezone.utc)
    raw = str(text).strip()
    value = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        where = f" of {path}" if path else ""
        raise InputError(
            f"{role.upper()}: the acquisition time {raw!r}{where} is not an ISO-8601 date and time; give it as e.g. "
            "2020-04-25T00:30:00Z (the file's ACQUISITION_TIME tag or the acquired_utc argument)", role=role,
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def time_from_name(path: str) -> _dt.datetime | None:
    """The acquisition time in a product's file name (``..._20220301T103021_...``), or None."""
    m = _NAME_TIME.search(os.path.basename(str(path)))
    if not m:
        return None
    try:
        return _dt.datetime(*(int(g) for g in m.groups()), tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


def acquisition_time(layer: Any) -> tuple[_dt.datetime | None, str]:
    """The time of an input and where it came from: declared, the ACQUISITION_TIME tag, the file name."""
    if layer.acquired_utc:
        return parse_time(layer.acquired_utc, role=layer.key, path=layer.path), "declared or tagged"
    t = time_from_name(layer.path)
    return (t, "file name") if t else (None, "")


def check_times(layers: dict[str, Any], *, ignore_time_bounds: bool = False) -> tuple[dict[str, str], list[str]]:
    """Each input's offset from the Sentinel-1 anchor, against the Table 5 bounds of the sources table.

    Returns
    -------
    tags, warnings
        ``INPUT_<KEY>_TIME_OFFSET_S`` per dated input (s, input minus anchor) and what was assumed.

    Raises
    ------
    InputError
        An input outside its bound (unless ``ignore_time_bounds``), a time that is not a time, or a
        product used outside the dates it exists.
    """
    tags: dict[str, str] = {}
    warnings: list[str] = []
    times = {key: acquisition_time(layer) for key, layer in layers.items()}
    for key, (t, _how) in times.items():
        src = sources.SOURCES[key]
        if t is not None:
            tags[f"INPUT_{key.upper()}_ACQUIRED_UTC"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        if t is None or layers[key].product != src.ee_collection:
            continue
        day = t.date().isoformat()
        if src.valid_to and day > src.valid_to:
            successor = src.successor.get("ee_collection")
            raise InputError(
                f"{key.upper()}: {layers[key].path} is dated {day}, after {src.ee_collection} ended ({src.valid_to}); "
                f"choose the successor {successor} as the product if the file holds it, or check the date",
                role=key)
        if src.valid_from and day < src.valid_from:
            raise InputError(f"{key.upper()}: {layers[key].path} is dated {day}, before {src.ee_collection} began "
                             f"({src.valid_from}); check the acquisition time", role=key)
    anchor_key = ANCHOR if ANCHOR in layers else None
    anchor = times[anchor_key][0] if anchor_key else None
    if anchor is None:
        dated = [k for k, (t, _) in times.items() if t is not None]
        if dated:
            warnings.append(f"no acquisition time for {anchor_key or 'sentinel1'}: the times of {dated} were not "
                            "checked against it (Table 5 bounds)")
        return tags, warnings
    for key, (t, how) in times.items():
        bound = sources.SOURCES[key].temporal_bound_s
        if key == anchor_key or bound is None:
            continue
        if t is None:
            warnings.append(f"{key}: no acquisition time; its distance from the {anchor_key} image "
                            f"({anchor:%Y-%m-%dT%H:%MZ}) was not checked")
            continue
        offset = (t - anchor).total_seconds()
        tags[f"INPUT_{key.upper()}_TIME_OFFSET_S"] = f"{offset:.0f}"
        if abs(offset) > bound:
            message = (f"{key.upper()}: {layers[key].path} was acquired {t:%Y-%m-%dT%H:%MZ} ({how}), "
                       f"{_duration(abs(offset))} {'after' if offset > 0 else 'before'} the {anchor_key} image "
                       f"({anchor:%Y-%m-%dT%H:%MZ}); the model was trained with at most {_duration(bound)} "
                       "(paper 000, Table 5)")
            if not ignore_time_bounds:
                raise InputError(message + "; give an input acquired closer to it, or override the time bounds "
                                 "(IGNORE_TIME_BOUNDS / ignore_time_bounds=True) if you accept a worse map",
                                 role=key)
            warnings.append(message + "; the time bounds were overridden")
    tags["TIME_BOUNDS_OVERRIDDEN"] = "yes" if ignore_time_bounds else "no"
    return tags, warnings


def _duration(seconds: float) -> str:
    if seconds >= sources.DAY_S:
        return f"{seconds / sources.DAY_S:.1f} days"
    if seconds >= sources.HOUR_S:
        return f"{seconds / sources.HOUR_S:.1f} h"
    return f"{seconds / 60:.0f} min"


# -- identity and values ----------------------------------------------------------------------------------
def check_identity(layer: Any) -> None:
    """InputError when the file says it is another source (its PRODUCT tag or a band description)."""
    from .layers import _names_of, normalise_band_name

    key, ds = layer.key, layer.dataset
    tagged = ds.tags().get("PRODUCT", "")
    for other in sources.SOURCES.values():
        if other.key == key:
            continue
        if tagged and tagged == other.ee_collection:
            raise InputError(
                f"{key.upper()}: {layer.path} is tagged PRODUCT={tagged}, the {other.key} product, not "
                f"{sources.SOURCES[key].title}; were the {key} and {other.key} inputs swapped? Give the "
                f"{key} file as {key.upper()}", role=key)
        names = set().union(*(_names_of(b) for b in other.bands))
        for i in layer.band_index.values():
            desc = ds.descriptions[i - 1]
            own = set().union(*(_names_of(b) for b in sources.SOURCES[key].bands))
            if desc and normalise_band_name(desc) in names and normalise_band_name(desc) not in own:
                raise InputError(
                    f"{key.upper()}: band {i} of {layer.path} is described {desc!r}, a band of {other.key} "
                    f"({other.title}); were the inputs swapped? Give a {sources.SOURCES[key].title} file as "
                    f"{key.upper()}", role=key)


def sample_layer(layer: Any, bounds: tuple[float, float, float, float], crs: str) -> dict[str, np.ndarray]:
    """A decimated read (at most ``SAMPLE_PX`` a side) of each band of ``layer`` over ``bounds`` (in ``crs``).

    Values are physical (GDAL scale/offset, harmonisation and the declared conversions of
    ``SourceLayer.to_physical``); nodata and NaN are dropped. Reads through GDAL only
    (no statistics, no .aux.xml beside the file).
    """
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    ds = layer.dataset
    try:
        box = transform_bounds(crs, ds.crs, *bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - an extent the file's CRS cannot express: read the whole file
        box = tuple(ds.bounds)
    b = ds.bounds
    box = (max(box[0], b.left), max(box[1], b.bottom), min(box[2], b.right), min(box[3], b.top))
    out: dict[str, np.ndarray] = {name: np.empty(0, dtype=np.float32) for name in layer.band_index}
    if box[0] >= box[2] or box[1] >= box[3]:
        return out
    win = from_bounds(*box, transform=ds.transform).round_offsets().round_lengths()
    width, height = max(1, int(win.width)), max(1, int(win.height))
    shape = (max(1, min(height, SAMPLE_PX)), max(1, min(width, SAMPLE_PX)))
    for name, i in layer.band_index.items():
        raw = ds.read(i, window=win, out_shape=shape, boundless=False)
        values = raw.astype(np.float32)
        if ds.nodatavals[i - 1] is not None and not np.isnan(ds.nodatavals[i - 1]):
            values[raw == ds.nodatavals[i - 1]] = np.nan
        values = layer.to_physical(name, values * np.float32(ds.scales[i - 1]) + np.float32(ds.offsets[i - 1]))
        out[name] = values[np.isfinite(values)]
    return out


def check_values(layers: dict[str, Any], bounds: tuple[float, float, float, float], crs: str) -> list[str]:
    """Test what each input holds over ``bounds`` (``crs``); return warnings, raise InputError for a mix-up."""
    warnings: list[str] = []
    samples = {}
    for key, layer in layers.items():
        if key == "sentinel2":
            small = sorted({layer.dataset.dtypes[i - 1] for i in layer.band_index.values()} & {"int8", "uint8"})
            if small:
                raise InputError(
                    f"SENTINEL2: {layer.path} is stored as {small[0]} (at most 255), but L1C DN run 0-10000 and need "
                    "16 bits: the values were cut or rescaled; export the bands as uint16 DN (Earth Engine: "
                    "image.toUint16())", role=key)
        sample = sample_layer(layer, bounds, crs)
        samples[key] = sample
        name = os.path.basename(layer.path)
        src = sources.SOURCES[key]
        empty = [b for b, v in sample.items() if v.size == 0]
        if empty:
            raise InputError(
                f"{key.upper()}: {layer.path} has no valid data (all nodata or NaN) in band(s) {empty} where the map "
                f"is ({crs} {tuple(round(v) for v in bounds)}); give a file with data there, or choose an extent "
                "(EXTENT) where it has data", role=key)
        for look in sources.LOOKALIKES.get(key, ()):
            if layer.unit or (key == "smap" and layer.native_scale != 1.0):
                break  # declared units, or the successor product (already m3/m3 -> mm)
            bands = [b for b in look.bands if b in sample]
            if bands and all(look.low <= _pct(sample[b], LOW_PCT) and _pct(sample[b], HIGH_PCT) <= look.high
                             for b in bands):
                lo = min(_pct(sample[b], LOW_PCT) for b in bands)
                hi = max(_pct(sample[b], HIGH_PCT) for b in bands)
                units = src.band(bands[0]).units
                todo = (f"if so, declare it: {_units_param(key)} = {look.option} (units={look.option!r})"
                        if look.option else "")
                raise InputError(
                    f"{key.upper()}: values {lo:.3g}-{hi:.3g} in {name} (bands {bands}) look like {look.looks_like}; "
                    f"the model needs {units}; {todo}{' ' + look.advice if look.advice else ''}, or give the "
                    f"{src.title} file in {units}", role=key)
        for band, values in sample.items():
            b = src.band(band)
            lo, hi = _pct(values, LOW_PCT), _pct(values, HIGH_PCT)
            plo, phi = b.physical_range
            if key in ("sentinel1", "sentinel2") and band != "angle" and lo == hi:
                raise InputError(
                    f"{key.upper()}: band {band} of {name} holds the single value {lo:g} everywhere the map is; "
                    "that is a fill value, not a measurement: give the real image", role=key)
            if lo < plo or hi > phi:
                guess = _what_else(values)
                raise InputError(
                    f"{key.upper()}: band {band} of {name} holds {lo:.4g}-{hi:.4g}, outside the physical range of "
                    f"{key} {band} ({plo:g}-{phi:g} {b.units}){guess}; give the {src.title} file in {b.units}",
                    role=key)
    s1 = samples.get("sentinel1", {})
    if "VV" in s1 and "VH" in s1 and layers["sentinel1"].band_index.keys() >= {"VV", "VH"}:
        vv, vh = float(np.median(s1["VV"])), float(np.median(s1["VH"]))
        if vh > vv:
            raise InputError(
                f"SENTINEL1: VH (median {vh:.1f} dB) is above VV (median {vv:.1f} dB) in "
                f"{os.path.basename(layers['sentinel1'].path)}; cross-polarised backscatter is always below "
                "co-polarised over land: VV and VH look swapped. Declare the band order (S1_BANDS, e.g. 'VH,VV,angle' "
                "for a file whose first band is VH)", role="sentinel1")
    return warnings


def _units_param(key: str) -> str:
    return {"sentinel1": "S1_UNITS", "sentinel2": "S2_UNITS"}.get(key, f"{key.upper()}_UNITS")


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def _what_else(values: np.ndarray) -> str:
    """A guess of what values out of range are, for the message ('' if none)."""
    med = float(np.median(values))
    for src in sources.SOURCES.values():
        for b in src.bands:
            lo, hi = b.encoding.get("min"), b.encoding.get("max")
            if lo is not None and lo <= med <= hi and b.units == "m" and med > 100:
                return f" (median {med:.4g}: looks like elevation in m, a DEM)"
    return ""


def check_s2_offset(layer: Any, bounds: tuple[float, float, float, float], crs: str) -> tuple[dict[str, str],
                                                                                           list[str]]:
    """Detect the +1000 DN offset of Sentinel-2 baseline 04.00 and set ``layer.dn_offset``; return tags, warnings.

    Declared (``LayerInput.dn_offset``) wins; else the product's ``RADIO_ADD_OFFSET`` metadata, else the
    date (from 2022-01-25 on, unless the file is Earth Engine's HARMONIZED product, which removed it)
    confirmed by the values (almost no pixel below 1000 DN). Values that only look offset (none
    below 1000 DN in an older scene) are refused: the offset must then be declared.
    """
    tags: dict[str, str] = {}
    warnings: list[str] = []
    ds = layer.dataset
    meta = {**ds.tags(), **{k: v for i in range(1, ds.count + 1) for k, v in ds.tags(i).items()}}
    if layer.dn_offset is not None:
        how = "declared"
    else:
        radio = next((v for k, v in meta.items() if k.upper().endswith("RADIO_ADD_OFFSET")), None)
        layer.dn_offset = 0.0
        saved = layer.dn_offset
        sample = sample_layer(layer, bounds, crs)
        floor = min((_pct(v, 0.5) for v in sample.values() if v.size), default=0.0)
        t, _ = acquisition_time(layer)
        harmonized = meta.get("PRODUCT", "") == sources.SOURCES["sentinel2"].ee_collection
        if radio is not None:
            layer.dn_offset, how = -float(radio), "RADIO_ADD_OFFSET metadata"
        elif t is not None and t.date().isoformat() >= sources.S2_OFFSET_FROM and not harmonized:
            if floor >= sources.S2_OFFSET_FLOOR_DN:
                layer.dn_offset, how = sources.S2_OFFSET_DN, f"acquired {t:%Y-%m-%d} (baseline 04.00) and values"
            else:
                layer.dn_offset, how = saved, "none: values below 1000 DN (harmonised)"
                warnings.append(f"sentinel2: acquired {t:%Y-%m-%d} (baseline 04.00 adds +1000 DN) but values go down "
                                f"to {floor:.0f} DN: taken as harmonised (no offset); declare S2_DN_OFFSET if not")
        elif floor >= sources.S2_OFFSET_FLOOR_DN and not harmonized:
            raise InputError(
                f"SENTINEL2: no value of {os.path.basename(layer.path)} lies below {floor:.0f} DN, which looks like "
                f"the +1000 DN offset of processing baseline 04.00 (scenes from {sources.S2_OFFSET_FROM}), but the "
                "file has no RADIO_ADD_OFFSET metadata and no acquisition time after that date; declare it "
                "(S2_DN_OFFSET = 1000 / dn_offset=1000) or 0 if the scene really is that bright", role="sentinel2")
        else:
            how = "none"
    tags["INPUT_SENTINEL2_DN_OFFSET_REMOVED"] = f"{layer.dn_offset:g}"
    tags["INPUT_SENTINEL2_DN_OFFSET_SOURCE"] = how
    if layer.dn_offset:
        log.info("sentinel2: removing a %+g DN offset (%s)", layer.dn_offset, how)
    return tags, warnings


# -- output ------------------------------------------------------------------------------------------------
def scale_error(crs: str, bounds: tuple[float, float, float, float]) -> float:
    """Largest relative error |ground / grid - 1| of distances along x and y at the corners and centre of ``bounds``.

    Ground distances on the WGS 84 ellipsoid from the local radii of curvature (exact to ~1e-6 for a
    pixel-sized step).
    """
    from rasterio.warp import transform

    a, f = 6378137.0, 1 / 298.257223563  # WGS 84 semi-major axis (m) and flattening
    e2 = f * (2 - f)
    step = 320.0  # m: one output pixel
    xs = [bounds[0], bounds[2], bounds[0], bounds[2], (bounds[0] + bounds[2]) / 2]
    ys = [bounds[1], bounds[1], bounds[3], bounds[3], (bounds[1] + bounds[3]) / 2]
    worst = 0.0
    for x, y in zip(xs, ys):
        lon, lat = transform(crs, "EPSG:4326", [x, x + step, x], [y, y, y + step])
        for k in (1, 2):
            phi = math.radians((lat[0] + lat[k]) / 2)
            sin2 = math.sin(phi) ** 2
            m = a * (1 - e2) / (1 - e2 * sin2) ** 1.5
            n = a / math.sqrt(1 - e2 * sin2)
            dn = m * math.radians(lat[k] - lat[0])
            de = n * math.cos(phi) * math.radians(lon[k] - lon[0])
            ground = math.hypot(dn, de)
            if not math.isfinite(ground):
                return math.inf
            worst = max(worst, abs(ground / step - 1.0))
    return worst


def check_scale(crs: str, bounds: tuple[float, float, float, float], suggestion: str) -> None:
    """InputError (``parameter="dst_crs"``) when the CRS distorts the output pixels beyond ``MAX_SCALE_ERROR``."""
    err = scale_error(crs, bounds)
    if err > sources.MAX_SCALE_ERROR:
        pick = f" such as the area's UTM zone {suggestion}" if suggestion else " such as the area's UTM zone"
        raise InputError(
            f"the output CRS {crs} distorts distances by up to {100 * err:.1f} % over the extent, so a 320 m pixel "
            f"would be {320 * (1 - err):.0f}-{320 * (1 + err):.0f} m on the ground (at most "
            f"{100 * sources.MAX_SCALE_ERROR:g} % allowed); choose a CRS true to scale here{pick}, or leave "
            "OUTPUT_CRS empty", parameter="dst_crs")


def check_output_not_input(output_path: Any, inputs: dict[str, Any], model: Any = None) -> None:
    """InputError (``parameter="output_path"``) when the output would replace an input or the model."""
    out = os.path.realpath(str(output_path))
    for key, li in inputs.items():
        if li is not None and li.path and os.path.realpath(str(li.path)) == out:
            raise InputError(f"the output {output_path} is the {key} input; writing the map there would destroy it: "
                             "choose another output file name", parameter="output_path")
    if isinstance(model, (str, os.PathLike)) and os.path.realpath(str(model)) == out:
        raise InputError(f"the output {output_path} is the model file; choose another output file name",
                         parameter="output_path")
