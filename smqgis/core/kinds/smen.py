"""Model kind ``smen_3km``: SMEN (paper 002) 3 km soil-moisture maps from SMAP 36 km and its 3 km history.

The 3 km branch of the flow, QGIS-free: the current SMAP 36 km radiometer raster and
the k previous (36 km radiometer, 3 km SMAP/Sentinel-1 active-passive) pairs, all on
the EASE-Grid 2.0 global grids (EPSG:6933) -> checked (k, dates, grids, alignment) ->
the 36 km values laid on the 3 km grid (each cell repeated 12 x 12) and encoded ->
tiled ONNX inference (halo = the network's receptive radius, so tiles are seamless) ->
a 2-band GeoTIFF written atomically: soil moisture (m3/m3) and a mask of where the
model had 3 km history, in EASE-Grid 2.0 or a projected CRS of the user's, with
provenance tags.

Metadata (schema version 1, ``model_kind`` ``"smen_3km"``) - the kind's own fields live
under ``"smen"``::

    "inputs": [{"name": "low_res", "layout": "NHWC", ...},          # I(t): [N, H, W, 1]
               {"name": "history_low_res", "layout": "NTHW", ...},  # I(t-k..t-1): [N, k, H, W]
               {"name": "history_high_res", "layout": "NTHW", ...}] # J(t-k..t-1): [N, k, H, W]
    "smen": {"k": 4, "variant": "spatiotemporal", "halo_px": 4, "anchor": "input_mean",
             "grid": {"crs": "EPSG:6933", "pixel_size_m": 3002.685..., "coarse_pixel_size_m": 36032.22...,
                      "factor": 12, "x_min_m": ..., "y_max_m": ...},
             "missing_high_res": "36 km value (D = 0)"}

Inputs are 0-255 encoded soil moisture (``linear`` 0-1 m3/m3). The network's loss (an
unbiased RMSE) is blind to a constant offset, so the graph's output is left unclipped and
the map is anchored: with ``anchor`` ``input_mean`` the output is shifted so its mean over
the valid pixels equals that of the current 36 km input (the regional level comes from
SMAP, the texture from SMEN), then clipped to the output's ``valid_range``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import schema
from ..errors import Cancelled, InferenceError, InputError, ModelError

log = logging.getLogger(__name__)

KIND = "smen_3km"
#: EASE-Grid 2.0 global (EPSG:6933): 36 km cell size (m) and upper-left corner (m), NSIDC's definition.
EASE2_CRS = "EPSG:6933"
EASE2_36KM_M = 36032.220840584
EASE2_FACTOR_3KM = 12
EASE2_3KM_M = EASE2_36KM_M / EASE2_FACTOR_3KM
EASE2_X_MIN_M = -17367530.44516138
EASE2_Y_MAX_M = 7314540.830638585
#: 0-255 encoded units per m3/m3 (inputs are linearly encoded, 0-1 m3/m3 -> 0-255).
ENCODED_PER_M3M3 = 255.0
#: Receptive radius of SMEN in 3 km pixels: three 3x3 convolutions in f (3) plus h (1).
HALO_PX = 4
#: Graph input names, in graph order, per variant.
CURRENT, HISTORY_LOW, HISTORY_HIGH = "low_res", "history_low_res", "history_high_res"
VARIANT_INPUTS = {
    "spatiotemporal": (CURRENT, HISTORY_LOW, HISTORY_HIGH),
    "spatial": (CURRENT,),
    "temporal": (HISTORY_LOW, HISTORY_HIGH),
}
#: The products SMEN reads, by band reference (this kind's own table; the fusion sources are elsewhere).
BANDS = {
    "smap_l3/soil_moisture": {
        "title": "SMAP L3 radiometer soil moisture, 36 km (SPL3SMP)",
        "units": "m3/m3",
        "pixel_size_m": EASE2_36KM_M,
        "attribution": "SMAP L3 Radiometer Global Daily 36 km EASE-Grid Soil Moisture (NASA / NSIDC DAAC)",
    },
    "smap_s1/soil_moisture_3km": {
        "title": "SMAP/Sentinel-1 L2 active-passive soil moisture, 3 km (SPL2SMAP_S)",
        "units": "m3/m3",
        "pixel_size_m": EASE2_3KM_M,
        "attribution": "SMAP/Sentinel-1 L2 Radiometer/Radar 30-Second Scene 3 km EASE-Grid Soil Moisture "
        "(NASA / NSIDC DAAC); contains modified Copernicus Sentinel data",
    },
}
_INPUT_BANDS = {
    CURRENT: "smap_l3/soil_moisture",
    HISTORY_LOW: "smap_l3/soil_moisture",
    HISTORY_HIGH: "smap_s1/soil_moisture_3km",
}
#: Output nodata and the written bands.
NODATA = -9999.0
BAND_NAMES = ("soil_moisture", "high_res_history")
#: Default tile of the mapping, 3 km pixels per side (a 512 px tile with k = 4 needs ~0.5 GiB of activations).
TILE_PX = 512


def ease2_grid() -> dict[str, Any]:
    """The EASE-Grid 2.0 description stored in the metadata (3 km grid nested 12 x 12 in the 36 km one)."""
    return {
        "crs": EASE2_CRS,
        "pixel_size_m": EASE2_3KM_M,
        "coarse_pixel_size_m": EASE2_36KM_M,
        "factor": EASE2_FACTOR_3KM,
        "x_min_m": EASE2_X_MIN_M,
        "y_max_m": EASE2_Y_MAX_M,
    }


def build_metadata(
    *,
    variant: str,
    k: int,
    title: str,
    trained_on: dict[str, str],
    window_px: int = 100,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    description: str = "",
    created_utc: str = "",
    producer: str = "smqgis training/smen/export.py",
) -> dict[str, Any]:
    """The metadata of a SMEN model (validated: generic schema, then :func:`validate_metadata`)."""
    encoding = {"kind": "linear", "min": 0.0, "max": 1.0}
    inputs = []
    for name in VARIANT_INPUTS[variant]:
        ref = _INPUT_BANDS[name]
        inputs.append(
            {
                "name": name,
                "layout": "NHWC" if name == CURRENT else "NTHW",
                "window_px": int(window_px),
                "pixel_size_m": EASE2_3KM_M,
                "output_stride": 1,
                "time_steps": 1 if name == CURRENT else int(k),
                "bands": [{"ref": ref, "units": BANDS[ref]["units"], "encoding": dict(encoding)}],
            }
        )
    label = schema.SIMULATED_LABEL if (trained_on or {}).get("kind") == "simulated" else title
    meta = {
        "schema": schema.SCHEMA_NAME,
        "schema_version": schema.SCHEMA_VERSION,
        "model_kind": KIND,
        "variant": variant,
        "title": title,
        "description": description,
        "trained_on": dict(trained_on),
        "label": label,
        "inputs": inputs,
        "output": {
            "name": schema.OUTPUT_NAME,
            "units": "m3/m3",
            "valid_range": [0.0, 1.0],
            "quantity": "volumetric soil moisture, top ~5 cm, 3 km (SPL2SMAP_S-equivalent)",
        },
        "nominal_resolution_m": EASE2_3KM_M,
        "fully_convolutional": None,
        "smen": {
            "k": int(k),
            "variant": variant,
            "halo_px": HALO_PX,
            "anchor": "input_mean",
            "history_order": "oldest first",
            "missing_high_res": "36 km value (D = 0)",
            "grid": ease2_grid(),
        },
        "metrics": dict(metrics or {}),
        "training": dict(training or {}),
        "created_utc": created_utc,
        "producer": producer,
    }
    schema.validate(meta)
    validate_metadata(meta)
    return meta


def validate_metadata(meta: dict[str, Any]) -> None:
    """SMEN-specific checks beyond the generic schema; raises ``schema.SchemaError``."""

    def require(cond: bool, msg: str) -> None:
        if not cond:
            raise schema.SchemaError(f"smen_3km model: {msg}")

    require(meta.get("model_kind") == KIND, f"model_kind is {meta.get('model_kind')!r}")
    smen = meta.get("smen")
    require(isinstance(smen, dict), "the metadata lacks its 'smen' section")
    variant = smen.get("variant", meta.get("variant"))
    require(variant in VARIANT_INPUTS, f"unknown variant {variant!r}; expected one of {sorted(VARIANT_INPUTS)}")
    k = smen.get("k")
    require(isinstance(k, int) and k >= 4, f"k must be an integer >= 4, got {k!r}")
    require(smen.get("anchor") in ("input_mean", "none"), f"unknown anchor {smen.get('anchor')!r}")
    require(isinstance(smen.get("halo_px"), int) and smen["halo_px"] >= 0, "halo_px must be a non-negative integer")
    grid = smen.get("grid", {})
    for key, value in ease2_grid().items():
        got = grid.get(key)
        ok = (
            got == value
            if isinstance(value, str)
            else isinstance(got, (int, float)) and math.isclose(got, value, rel_tol=1e-9)
        )
        require(ok, f"grid.{key} is {got!r}, expected {value!r} (EASE-Grid 2.0)")
    names = [spec.get("name") for spec in meta.get("inputs", [])]
    require(tuple(names) == VARIANT_INPUTS[variant], f"inputs {names} do not match variant {variant!r}")
    for spec in meta["inputs"]:
        ref = _INPUT_BANDS[spec["name"]]
        refs = [band.get("ref") for band in spec["bands"]]
        require(refs == [ref], f"input {spec['name']!r} must carry the single band {ref!r}, not {refs}")
        enc = spec["bands"][0].get("encoding", {})
        require(enc.get("kind") == "linear", f"input {spec['name']!r}: SMEN inputs are linearly encoded")
        require(
            math.isclose(float(spec.get("pixel_size_m", 0)), EASE2_3KM_M, rel_tol=1e-9),
            f"input {spec['name']!r} is not on the 3 km grid",
        )
        if spec["name"] != CURRENT:
            require(spec.get("time_steps") == k, f"input {spec['name']!r} has {spec.get('time_steps')} steps, k is {k}")


def parse_date(text: str | dt.date | dt.datetime, what: str) -> dt.date:
    """A date from ISO text (``2020-05-01`` or ``2020-05-01T06:00:00Z``); ValueError naming ``what``."""
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    raw = str(text).strip()
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        raise ValueError(f"{what}: {raw!r} is not a date; write it as YYYY-MM-DD") from None


# ----------------------------------------------------------------------------------------------- errors
#: Roles of the inputs of a 3 km run; an SmenInputError names one, the Processing side maps it to a parameter.
ROLES = (
    "model",
    "current_36km",
    "history_36km",
    "history_3km",
    "current_date",
    "history_dates",
    "target_crs",
    "output",
)


class SmenInputError(InputError):
    """A user input of a 3 km run cannot be used; ``role`` says which (one of :data:`ROLES`)."""

    def __init__(self, message: str, role: str) -> None:
        super().__init__(message)
        self.role = role


# ------------------------------------------------------------------------------------------------ model
def validate_metadata_props(props: dict[str, str]) -> dict[str, Any]:
    """The validated SMEN metadata of ONNX ``metadata_props`` (generic schema, then this kind's checks)."""
    meta = schema.from_metadata_props(props)
    validate_metadata(meta)
    return meta


class SmenModel:
    """A SMEN ONNX model ready to run (see the module docstring for its inputs).

    Parameters
    ----------
    path : str
        The ONNX file.
    provider : {"auto", "cpu", "cuda"}
        onnxruntime execution provider (``auto``: CUDA when available, else the CPU).
    threads : int, optional
        Intra-op threads (default: the physical cores).
    """

    def __init__(self, path: str, provider: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        from ..model import _provider_list, session_options

        self.path = str(path)
        if not os.path.isfile(self.path):
            raise ModelError(f"model file not found: {self.path}; choose a SMEN .onnx model (e.g. {DEMO_MODEL})")
        wanted = _provider_list(provider)
        try:
            self.session = ort.InferenceSession(self.path, sess_options=session_options(threads), providers=wanted)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
            raise ModelError(
                f"{self.path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]}); choose a model "
                "exported by `python -m training.smen.export` or the bundled demo SMEN model"
            ) from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        try:
            meta = schema.from_metadata_props(props)
        except schema.SchemaError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        if meta["model_kind"] != KIND:
            raise ModelError(
                f"{self.path} is a {meta['model_kind']!r} model; the 3 km map needs a {KIND!r} (SMEN) model"
            )
        try:
            validate_metadata(meta)
        except schema.SchemaError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        self.metadata: dict[str, Any] = meta
        graph_inputs = [i.name for i in self.session.get_inputs()]
        if graph_inputs != [spec["name"] for spec in meta["inputs"]]:
            raise ModelError(f"{self.path}: graph inputs {graph_inputs} differ from the metadata's {meta['inputs']}")
        self.output_name = self.session.get_outputs()[0].name
        self.providers: list[str] = list(self.session.get_providers())

    @property
    def label(self) -> str:
        """Label shown to users (says "simulated" for a model trained on simulated data)."""
        return str(self.metadata["label"])

    @property
    def provider(self) -> str:
        """The execution provider that runs the graph."""
        return self.providers[0]

    @property
    def k(self) -> int:
        """Previous (36 km, 3 km) pairs the model takes."""
        return int(self.metadata["smen"]["k"])

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.metadata["inputs"]]

    def encoding(self, name: str) -> dict[str, Any]:
        """The encoding of graph input ``name``."""
        return dict(schema.input_spec(self.metadata, name)["bands"][0]["encoding"])

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Evaluate the graph on encoded inputs; returns soil moisture [N, H, W] (m3/m3, float32)."""
        feeds = {name: np.ascontiguousarray(feeds[name], dtype=np.float32) for name in self.input_names}
        try:
            (out,) = self.session.run([self.output_name], feeds)
        except Exception as exc:  # onnxruntime's pybind errors derive from Exception
            shapes = {name: tuple(a.shape) for name, a in feeds.items()}
            raise InferenceError(
                f"onnxruntime failed on {self.provider} with inputs {shapes} ({type(exc).__name__}: {exc}); "
                "try a smaller tile or the CPU provider"
            ) from exc
        return np.asarray(out, dtype=np.float32)[..., 0]


def open_model(path: str, provider: str = "auto", threads: int | None = None) -> SmenModel:
    """Open a SMEN model (see :class:`SmenModel`)."""
    return SmenModel(path, provider=provider, threads=threads)


# ----------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class GridRaster:
    """One input raster on an EASE-Grid 2.0 grid: its cells, global (column, row) offset and date."""

    path: str
    values: np.ndarray  # float64, NaN = missing, m3/m3
    col0: int  # global EASE-Grid 2.0 column of the raster's first column
    row0: int
    date: dt.date | None

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]


#: GeoTIFF tags that may carry an input's date (the first one present wins).
DATE_TAGS = ("ACQUISITION_TIME", "ACQUISITION_DATE", "DATE")


def read_grid_raster(path: str, role: str, pixel_size_m: float, position: int | None = None) -> GridRaster:
    """Read band 1 of an EASE-Grid 2.0 raster of ``pixel_size_m``; SmenInputError(role) if it is not one."""
    import rasterio
    from rasterio.errors import RasterioError

    what = f"{role}[{position + 1}] ({path})" if position is not None else f"{role} ({path})"
    grid_name = "36 km" if pixel_size_m > 10_000 else "3 km"
    try:
        with rasterio.open(path) as ds:
            crs, tr, nodata = ds.crs, ds.transform, ds.nodata
            values = ds.read(1).astype(np.float64)
            tags = ds.tags()
    except (RasterioError, OSError) as exc:
        raise SmenInputError(
            f"{what} cannot be read as a raster ({exc}); choose a GeoTIFF or GDAL raster", role
        ) from None
    if crs is None or crs.to_epsg() != 6933:
        raise SmenInputError(
            f"{what} is in {crs.to_string() if crs else 'no CRS'}, not EASE-Grid 2.0 (EPSG:6933): give the SMAP "
            f"{grid_name} product on its own grid (e.g. converted with smqgis.core.smap_hdf5)",
            role,
        )
    if not (
        math.isclose(tr.a, pixel_size_m, rel_tol=1e-6)
        and math.isclose(-tr.e, pixel_size_m, rel_tol=1e-6)
        and tr.b == 0
        and tr.d == 0
    ):
        raise SmenInputError(
            f"{what} has {tr.a:.2f} x {-tr.e:.2f} m pixels; this input must be on the EASE-Grid 2.0 {grid_name} grid "
            f"({pixel_size_m:.3f} m pixels, north up): wrong grid",
            role,
        )
    col = (tr.c - EASE2_X_MIN_M) / pixel_size_m
    row = (EASE2_Y_MAX_M - tr.f) / pixel_size_m
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        raise SmenInputError(
            f"{what} is shifted by a fraction of a pixel from the EASE-Grid 2.0 {grid_name} grid (origin "
            f"{tr.c:.1f}, {tr.f:.1f} m): give the product on its own grid, not resampled",
            role,
        )
    if nodata is not None:
        values[values == nodata] = np.nan
    values[(values < 0.0) | (values > 1.0)] = np.nan  # SMAP fill values (-9999) and anything not in m3/m3
    date = None
    for tag in DATE_TAGS:
        if tags.get(tag):
            try:
                date = parse_date(tags[tag], tag)
                break
            except ValueError:
                continue
    return GridRaster(str(path), values, int(round(col)), int(round(row)), date)


@dataclass
class SmenInputs:
    """The inputs of a run on the 3 km grid (m3/m3, NaN = missing), oldest history first."""

    current: np.ndarray  # [H, W] current 36 km values on the 3 km grid
    history_low: np.ndarray  # [k, H, W]
    history_high: np.ndarray  # [k, H, W]
    col0: int  # global 3 km column / row of the grid's first pixel
    row0: int
    current_date: dt.date
    history_dates: list[dt.date]
    paths: dict[str, Any]

    @property
    def transform(self) -> Any:
        from affine import Affine

        return Affine(
            EASE2_3KM_M,
            0.0,
            EASE2_X_MIN_M + self.col0 * EASE2_3KM_M,
            0.0,
            -EASE2_3KM_M,
            EASE2_Y_MAX_M - self.row0 * EASE2_3KM_M,
        )


def _resolve_dates(
    current: GridRaster, history: list[GridRaster], current_date: Any, history_dates: Any
) -> tuple[dt.date, list[dt.date]]:
    try:
        cur = parse_date(current_date, "current date") if current_date not in (None, "") else current.date
    except ValueError as exc:
        raise SmenInputError(str(exc), "current_date") from None
    if cur is None:
        raise SmenInputError(
            f"the date of the current 36 km raster is unknown ({current.path} has no ACQUISITION_TIME tag): "
            "give the current date (YYYY-MM-DD)",
            "current_date",
        )
    if history_dates not in (None, "", []):
        items = history_dates.split(",") if isinstance(history_dates, str) else list(history_dates)
        try:
            hist = [parse_date(item, "history dates") for item in items if str(item).strip()]
        except ValueError as exc:
            raise SmenInputError(str(exc), "history_dates") from None
        if len(hist) != len(history):
            raise SmenInputError(
                f"{len(hist)} history dates for {len(history)} history pairs: give one date per pair, oldest first",
                "history_dates",
            )
    else:
        missing = [h.path for h in history if h.date is None]
        if missing:
            raise SmenInputError(
                f"the dates of the history rasters are unknown ({missing[0]} has no ACQUISITION_TIME tag): give the "
                "history dates, oldest first (YYYY-MM-DD, comma-separated)",
                "history_dates",
            )
        hist = [h.date for h in history]  # type: ignore[misc]
    if any(b <= a for a, b in zip(hist, hist[1:])) or hist[-1] >= cur:
        listed = ", ".join(d.isoformat() for d in hist)
        raise SmenInputError(
            f"the history dates ({listed}) are out of order for the current date {cur.isoformat()}: the pairs must be "
            "given oldest first, on distinct dates, all before the current date",
            "history_dates",
        )
    return cur, hist


def load_inputs(
    current_36km: str,
    history_36km: list[str],
    history_3km: list[str],
    *,
    k: int,
    current_date: Any = None,
    history_dates: Any = None,
) -> SmenInputs:
    """Read and check a run's rasters and lay the 36 km values on the 3 km grid (see the module docstring).

    Raises SmenInputError (naming the role) on a missing or misaligned pair, a wrong grid, dates out of
    order, or a history length other than the model's ``k``.
    """
    history_36km, history_3km = list(history_36km or []), list(history_3km or [])
    if not current_36km:
        raise SmenInputError(
            "no current 36 km SMAP raster: choose the SMAP L3 raster of the date to map", "current_36km"
        )
    if len(history_36km) != len(history_3km):
        role = "history_3km" if len(history_3km) < len(history_36km) else "history_36km"
        raise SmenInputError(
            f"{len(history_36km)} history 36 km rasters but {len(history_3km)} history 3 km rasters: every previous "
            "date needs a pair (the 36 km radiometer raster and the 3 km active-passive raster of the same date)",
            role,
        )
    if len(history_36km) != k:
        raise SmenInputError(
            f"the model takes k = {k} previous (36 km, 3 km) pairs, got {len(history_36km)}: give the {k} most recent "
            "pairs before the current date, oldest first",
            "history_36km",
        )
    cur = read_grid_raster(current_36km, "current_36km", EASE2_36KM_M)
    low = [read_grid_raster(p, "history_36km", EASE2_36KM_M, i) for i, p in enumerate(history_36km)]
    high = [read_grid_raster(p, "history_3km", EASE2_3KM_M, i) for i, p in enumerate(history_3km)]
    for i, r in enumerate(low):
        if (r.col0, r.row0, r.shape) != (cur.col0, cur.row0, cur.shape):
            raise SmenInputError(
                f"history_36km[{i + 1}] ({r.path}) covers other 36 km cells than the current raster ({cur.path}): "
                "give every 36 km raster on the same extent",
                "history_36km",
            )
    for i, r in enumerate(high[1:], start=1):
        if (r.col0, r.row0, r.shape) != (high[0].col0, high[0].row0, high[0].shape):
            raise SmenInputError(
                f"history_3km[{i + 1}] ({r.path}) is not aligned with history_3km[1] ({high[0].path}): give every "
                "3 km raster on the same extent",
                "history_3km",
            )
    f = EASE2_FACTOR_3KM
    h, w = high[0].shape
    c0, r0 = high[0].col0, high[0].row0
    if (
        c0 < cur.col0 * f
        or r0 < cur.row0 * f
        or c0 + w > (cur.col0 + cur.shape[1]) * f
        or r0 + h > (cur.row0 + cur.shape[0]) * f
    ):
        raise SmenInputError(
            f"the 3 km rasters ({high[0].path}) reach beyond the 36 km rasters ({cur.path}): give 36 km rasters "
            "that cover the whole 3 km extent",
            "history_3km",
        )
    cur_date, hist_dates = _resolve_dates(cur, low, current_date, history_dates)
    rows = (r0 + np.arange(h)) // f - cur.row0
    cols = (c0 + np.arange(w)) // f - cur.col0

    def on_3km(a: np.ndarray) -> np.ndarray:
        return a[rows][:, cols]

    return SmenInputs(
        current=on_3km(cur.values),
        history_low=np.stack([on_3km(r.values) for r in low]),
        history_high=np.stack([r.values for r in high]),
        col0=c0,
        row0=r0,
        current_date=cur_date,
        history_dates=hist_dates,
        paths={"current_36km": cur.path, "history_36km": [r.path for r in low], "history_3km": [r.path for r in high]},
    )


# ------------------------------------------------------------------------------------------- inference
def estimate_arrays(
    model: SmenModel,
    current: np.ndarray,
    history_low: np.ndarray,
    history_high: np.ndarray,
    *,
    tile_px: int = TILE_PX,
    progress: Callable[[float, str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """SMEN on arrays of the 3 km grid (m3/m3, NaN = missing).

    Returns (soil moisture [H, W] m3/m3 with NaN where the current 36 km input is missing,
    history mask [H, W] bool: at least one previous 3 km value, anchor offset m3/m3). Tiles of
    ``tile_px`` with a halo of the model's receptive radius give the same values as one pass.
    """
    valid = np.isfinite(current)
    if not valid.any():
        raise SmenInputError("the current 36 km raster has no valid soil moisture over the 3 km extent", "current_36km")
    cur = np.where(valid, current, np.nanmean(current))
    low = np.where(np.isfinite(history_low), history_low, cur[None])
    pair = np.isfinite(history_low) & np.isfinite(history_high)
    high = np.where(pair, history_high, low)  # D = J - I = 0 where there is no 3 km value
    arrays = {CURRENT: cur[None, :, :, None], HISTORY_LOW: low[None], HISTORY_HIGH: high[None]}
    from ..encoding import encode

    feeds_all = {name: encode(arrays[name], model.encoding(name)) for name in model.input_names}
    h, w = cur.shape
    halo = int(model.metadata["smen"]["halo_px"])
    out = np.empty((h, w), dtype=np.float32)
    tiles = [(r, c) for r in range(0, h, tile_px) for c in range(0, w, tile_px)]
    for i, (r, c) in enumerate(tiles):
        if is_cancelled and is_cancelled():
            raise Cancelled("cancelled")
        ra, rb, ca, cb = max(0, r - halo), min(h, r + tile_px + halo), max(0, c - halo), min(w, c + tile_px + halo)
        feeds = {
            name: a[:, ra:rb, ca:cb, :] if name == CURRENT else a[:, :, ra:rb, ca:cb] for name, a in feeds_all.items()
        }
        est = model.run(feeds)[0]
        nr, nc = min(tile_px, h - r), min(tile_px, w - c)
        out[r : r + nr, c : c + nc] = est[r - ra : r - ra + nr, c - ca : c - ca + nc]
        if progress:
            progress(100.0 * (i + 1) / len(tiles), f"SMEN tile {i + 1}/{len(tiles)}")
    offset = 0.0
    if model.metadata["smen"].get("anchor") == "input_mean":
        offset = float(np.mean(current[valid]) - np.mean(out[valid]))
    # the graph's output is unclipped (its level is free under the uRMSE loss): anchor first, then clip
    out = np.clip(out + offset, *model.metadata["output"]["valid_range"]).astype(np.float32)
    return np.where(valid, out, np.nan).astype(np.float32), pair.any(axis=0), offset


# ---------------------------------------------------------------------------------------------- writing
PLUGIN_DIR = Path(__file__).resolve().parents[3]
DEMO_MODEL = PLUGIN_DIR / "resources" / "models" / "demo_smen_simulated.onnx"
SAMPLE_DIR = PLUGIN_DIR / "resources" / "sample_smen"
GEOTIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class SmenRunResult:
    """What a 3 km run wrote and how."""

    output_path: str
    width: int
    height: int
    crs: str
    transform: tuple[float, ...]
    label: str
    provider: str
    anchor_offset: float
    stats: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def plugin_version() -> str:
    """The plugin version from metadata.txt (the plugin folder is the repository root)."""
    try:
        for line in (PLUGIN_DIR / "metadata.txt").read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("version="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _check_output(output_path: str) -> None:
    path = Path(output_path)
    if path.suffix.lower() not in GEOTIFF_SUFFIXES:
        raise SmenInputError(f"the output {output_path} must be a GeoTIFF: give it a .tif extension", "output")
    folder = path.resolve().parent
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
        raise SmenInputError(
            f"cannot write {output_path}: {folder} is not a writable folder; choose an output file in a folder you can "
            "write to",
            "output",
        )


def _target_crs(target_crs: str | None) -> str:
    if target_crs in (None, ""):
        return EASE2_CRS
    from ..grid import check_projected

    try:
        return check_projected(target_crs)
    except InputError as exc:
        raise SmenInputError(str(exc).replace("320 m", "3 km"), "target_crs") from None


def provenance_tags(model: SmenModel, inputs: SmenInputs, offset: float, crs: str) -> dict[str, str]:
    """GeoTIFF tags: model, inputs with their dates, anchoring, grid, provider, version, units, attribution."""
    meta = model.metadata
    return {
        "SMQGIS_VERSION": plugin_version(),
        "MODEL_KIND": KIND,
        "MODEL_FILE": os.path.basename(model.path),
        "MODEL_TITLE": meta["title"],
        "MODEL_LABEL": meta["label"],
        "MODEL_VARIANT": meta["variant"],
        "MODEL_TRAINED_ON": json.dumps(meta["trained_on"], sort_keys=True),
        "SMEN_K": str(model.k),
        "PROVIDER": model.provider,
        "UNITS": "m3/m3",
        "CURRENT_DATE": inputs.current_date.isoformat(),
        "HISTORY_DATES": json.dumps([d.isoformat() for d in inputs.history_dates]),
        "INPUT_CURRENT_36KM_PATH": inputs.paths["current_36km"],
        "INPUT_HISTORY_36KM_PATHS": json.dumps(inputs.paths["history_36km"]),
        "INPUT_HISTORY_3KM_PATHS": json.dumps(inputs.paths["history_3km"]),
        "ANCHOR": f"{meta['smen']['anchor']} (offset {offset:+.4f} m3/m3)",
        "GRID": "EASE-Grid 2.0 3 km (EPSG:6933)"
        if crs == EASE2_CRS
        else f"EASE-Grid 2.0 3 km resampled (bilinear) to {crs}",
        "BAND_2": "high_res_history: 1 where at least one of the k previous dates had a 3 km value, else 0",
        "ATTRIBUTION": "; ".join(b["attribution"] for b in BANDS.values()),
        "CREATED_UTC": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _write_geotiff(
    output_path: str, sm: np.ndarray, mask: np.ndarray, crs: str, transform: Any, tags: dict[str, str]
) -> None:
    """Write the 2-band GeoTIFF to a temporary file beside the target and rename it on success."""
    import rasterio

    folder, name = os.path.split(os.path.abspath(output_path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part.tif", dir=folder)
    os.close(fd)
    try:
        profile = {
            "driver": "GTiff",
            "width": sm.shape[1],
            "height": sm.shape[0],
            "count": 2,
            "dtype": "float32",
            "crs": crs,
            "transform": transform,
            "nodata": NODATA,
            "compress": "deflate",
            "predictor": 3,
        }
        with rasterio.open(tmp, "w", **profile) as ds:
            ds.write(np.where(np.isfinite(sm), sm, NODATA).astype(np.float32), 1)
            ds.write(np.where(np.isfinite(sm), mask, NODATA).astype(np.float32), 2)
            for i, band in enumerate(BAND_NAMES, start=1):
                ds.set_band_description(i, band)
            ds.set_band_unit(1, "m3/m3")
            ds.update_tags(**tags)
            ds.update_tags(1, units="m3/m3", quantity="volumetric soil moisture")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a map gets the permissions of any new file
        os.replace(tmp, output_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _reproject(
    sm: np.ndarray, mask: np.ndarray, src_transform: Any, dst_crs: str
) -> tuple[np.ndarray, np.ndarray, Any]:
    """The EASE-Grid 2.0 arrays on a ~3 km grid of ``dst_crs`` (bilinear soil moisture, nearest mask)."""
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    h, w = sm.shape
    west, south, east, north = array_bounds(h, w, src_transform)
    dst_transform, dw, dh = calculate_default_transform(
        EASE2_CRS, dst_crs, w, h, west, south, east, north, resolution=EASE2_3KM_M
    )
    out_sm = np.full((dh, dw), np.nan, np.float32)
    out_mask = np.full((dh, dw), np.nan, np.float32)
    reproject(
        sm.astype(np.float32),
        out_sm,
        src_transform=src_transform,
        src_crs=EASE2_CRS,
        src_nodata=np.nan,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    reproject(
        np.where(np.isfinite(sm), mask, np.nan).astype(np.float32),
        out_mask,
        src_transform=src_transform,
        src_crs=EASE2_CRS,
        src_nodata=np.nan,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        dst_nodata=np.nan,
        resampling=Resampling.nearest,
    )
    return out_sm, np.nan_to_num(out_mask, nan=0.0), dst_transform


def estimate_sm_3km(
    model: SmenModel | str,
    current_36km: str,
    history_36km: list[str],
    history_3km: list[str],
    output_path: str,
    *,
    current_date: Any = None,
    history_dates: Any = None,
    target_crs: str | None = None,
    provider: str = "auto",
    threads: int | None = None,
    tile_px: int = TILE_PX,
    progress: Callable[[float, str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> SmenRunResult:
    """Map soil moisture at 3 km with a SMEN model and write it as a GeoTIFF (the kind's main function).

    Parameters
    ----------
    model : SmenModel or str
        An opened SMEN model or the path of one.
    current_36km : str
        SMAP L3 radiometer soil moisture (m3/m3) of the date to map, on the EASE-Grid 2.0 36 km grid.
    history_36km, history_3km : list of str
        The k previous pairs, oldest first: 36 km radiometer and 3 km active-passive (SPL2SMAP_S) rasters
        (m3/m3) of the same dates; the 3 km rasters share one EASE-Grid 2.0 3 km extent, which is the map's.
    output_path : str
        The GeoTIFF to write (written to a temporary file and renamed: nothing is left on failure).
    current_date, history_dates : str or date, optional
        ISO dates; default: the rasters' ACQUISITION_TIME tags. History dates must increase and precede
        the current date.
    target_crs : str, optional
        A projected CRS in metres for the output; default EASE-Grid 2.0 (EPSG:6933, no resampling).
    provider, threads, tile_px :
        onnxruntime provider (``auto``, ``cpu``, ``cuda``), intra-op threads, tile side (3 km px).
    progress, is_cancelled : callable, optional
        ``progress(percent, message)`` and a cancel poll.

    Returns
    -------
    SmenRunResult
        Band 1 of the file is soil moisture (m3/m3, nodata -9999), band 2 the high-res history mask (0/1).

    Raises
    ------
    SmenInputError
        A bad input, naming its role; ModelError, InferenceError, Cancelled.
    """
    t0 = time.perf_counter()
    _check_output(output_path)
    crs = _target_crs(target_crs)
    if not isinstance(model, SmenModel):
        if not model or not os.path.isfile(str(model)):
            raise SmenInputError(
                f"the model file {model} does not exist: choose a SMEN .onnx model (demo: {DEMO_MODEL})", "model"
            )
        try:
            model = open_model(str(model), provider=provider, threads=threads)
        except (ModelError, InputError) as exc:
            raise SmenInputError(str(exc), "model") from None
    inputs = load_inputs(
        current_36km, history_36km, history_3km, k=model.k, current_date=current_date, history_dates=history_dates
    )
    t1 = time.perf_counter()
    sm, mask, offset = estimate_arrays(
        model,
        inputs.current,
        inputs.history_low,
        inputs.history_high,
        tile_px=tile_px,
        progress=progress,
        is_cancelled=is_cancelled,
    )
    t2 = time.perf_counter()
    transform = inputs.transform
    if crs != EASE2_CRS:
        sm, mask, transform = _reproject(sm, mask.astype(np.float32), transform, crs)
    tags = provenance_tags(model, inputs, offset, crs)
    _write_geotiff(output_path, sm, mask, crs, transform, tags)
    valid = np.isfinite(sm)
    stats = {
        "min": float(np.nanmin(sm)) if valid.any() else float("nan"),
        "max": float(np.nanmax(sm)) if valid.any() else float("nan"),
        "mean": float(np.nanmean(sm)) if valid.any() else float("nan"),
        "valid_fraction": float(valid.mean()),
        "history_fraction": float((mask[valid] > 0).mean()) if valid.any() else 0.0,
    }
    log.info("wrote %s: %d x %d px in %s, mean %.3f m3/m3", output_path, sm.shape[1], sm.shape[0], crs, stats["mean"])
    return SmenRunResult(
        output_path=str(output_path),
        width=sm.shape[1],
        height=sm.shape[0],
        crs=crs,
        transform=tuple(transform)[:6],
        label=model.label,
        provider=model.provider,
        anchor_offset=offset,
        stats=stats,
        seconds={"read": t1 - t0, "inference": t2 - t1, "write": time.perf_counter() - t2},
    )


# ------------------------------------------------------------------------------------------------- demo
def sample_inputs(sample_dir: str | os.PathLike = SAMPLE_DIR) -> dict[str, Any]:
    """The bundled sample's inputs (``resources/sample_smen/manifest.json``) as keyword arguments of a run."""
    sample_dir = Path(sample_dir)
    manifest = json.loads((sample_dir / "manifest.json").read_text())
    return {
        "current_36km": str(sample_dir / manifest["current_36km"]),
        "history_36km": [str(sample_dir / p) for p in manifest["history_36km"]],
        "history_3km": [str(sample_dir / p) for p in manifest["history_3km"]],
        "truth_3km": str(sample_dir / manifest["truth_3km"]),
        "current_date": manifest["current_date"],
        "history_dates": manifest["history_dates"],
    }


def demo_processing_params(
    output_path: str, sample_dir: str | os.PathLike = SAMPLE_DIR, model: str | os.PathLike = DEMO_MODEL
) -> dict[str, Any]:
    """Parameters of ``smqgis:estimate_sm_3km`` for the bundled sample (processing.run; qgis_process repeats lists)."""
    s = sample_inputs(sample_dir)
    return {
        "MODEL": str(model),
        "CURRENT_36KM": s["current_36km"],
        "HISTORY_36KM": s["history_36km"],
        "HISTORY_3KM": s["history_3km"],
        "PROVIDER": 1,
        "OUTPUT": str(output_path),
    }


def ubrmse(truth: np.ndarray, estimate: np.ndarray) -> float:
    """Unbiased RMSE (m3/m3) over the pixels where both are finite."""
    ok = np.isfinite(truth) & np.isfinite(estimate)
    d = (estimate[ok] - estimate[ok].mean()) - (truth[ok] - truth[ok].mean())
    return float(np.sqrt(np.mean(d * d)))


def summarize(path: str, sample_dir: str | os.PathLike | None = SAMPLE_DIR) -> dict[str, Any]:
    """Statistics of a written 3 km map; with the sample's truth, its uRMSE and the 36 km input's."""
    import rasterio

    with rasterio.open(path) as ds:
        sm = ds.read(1).astype(np.float64)
        hist = ds.read(2)
        sm[sm == ds.nodata] = np.nan
        out = {
            "path": str(path),
            "width": ds.width,
            "height": ds.height,
            "crs": ds.crs.to_string(),
            "pixel_m": ds.transform.a,
            "label": ds.tags().get("MODEL_LABEL", ""),
            "date": ds.tags().get("CURRENT_DATE", ""),
            "min": float(np.nanmin(sm)),
            "max": float(np.nanmax(sm)),
            "mean": float(np.nanmean(sm)),
            "history_fraction": float(np.mean(hist[np.isfinite(sm)] > 0)),
        }
        same_grid = ds.crs.to_epsg() == 6933
    if sample_dir is not None and same_grid:
        s = sample_inputs(sample_dir)
        truth = read_grid_raster(s["truth_3km"], "truth_3km", EASE2_3KM_M).values
        inputs = load_inputs(
            s["current_36km"],
            s["history_36km"],
            s["history_3km"],
            k=len(s["history_36km"]),
            current_date=s["current_date"],
            history_dates=s["history_dates"],
        )
        if truth.shape == sm.shape:
            out["ubrmse_vs_truth"] = ubrmse(truth, sm)
            out["ubrmse_36km_input_vs_truth"] = ubrmse(truth, inputs.current)
    return out


def demo_summary(output_path: str, *, run: bool = True, provider: str = "cpu") -> str:
    """Map the bundled sample with the demo SMEN model (unless ``run`` is False) and describe the map.

    What ``make demo`` prints for the 3 km map: size, grid, date, soil-moisture range, the
    fraction with 3 km history, and the uRMSE against the sample's simulated 3 km truth next
    to that of the 36 km input itself.
    """
    if run:
        s = sample_inputs()
        estimate_sm_3km(
            str(DEMO_MODEL),
            s["current_36km"],
            s["history_36km"],
            s["history_3km"],
            output_path,
            current_date=s["current_date"],
            history_dates=s["history_dates"],
            provider=provider,
        )
    info = summarize(output_path)
    lines = [
        f"3 km map (SMEN) {info['path']}: {info['width']} x {info['height']} px of {info['pixel_m']:.0f} m in "
        f"{info['crs']}, date {info['date']}",
        f"  model: {info['label']}",
        f"  soil moisture min {info['min']:.3f}, mean {info['mean']:.3f}, max {info['max']:.3f} m3/m3; "
        f"{100 * info['history_fraction']:.0f} % of pixels had 3 km history",
    ]
    if "ubrmse_vs_truth" in info:
        lines.append(
            f"  uRMSE vs the simulated 3 km truth: {info['ubrmse_vs_truth']:.4f} m3/m3 (the 36 km input itself: "
            f"{info['ubrmse_36km_input_vs_truth']:.4f})"
        )
    return "\n".join(lines)
