"""The flow of a run, from the user's layers to a prepared run, shared by the kinds of model.

A run opens the model (as its own kind, ``kinds``), checks that every input it needs was
given, opens the user's rasters (``layers.py``), works out the target grid (extent default:
where all inputs overlap; CRS default: the UTM zone of the extent's centre; ``grid.py``)
and the reader of encoded tile inputs (``tile_inputs.py``). A kind's mapping function
(e.g. ``kinds.fusion.estimate_sm_320m``) then runs the engine over it and writes the map
with :func:`provenance_tags`. :func:`estimate_sm` maps with whatever kind the model is.
QGIS-free.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import sources
from .errors import InputError, ModelError

log = logging.getLogger(__name__)


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
        Value (physical units) used in place of a band, e.g. ``{"angle": 39.0}``.
    fallback_constants : dict of str to float
        Value (physical units) used only when the file has no such band.
    acquired_utc : str, optional
        ISO-8601 acquisition time; default: the file's ACQUISITION_TIME tag.
    product : str, optional
        Product id, e.g. "NASA/SMAP/SPL4SMGP/007" (the SMAP successor, m3/m3, harmonised to mm).
    units : str, optional
        A declared conversion of ``sources.UNIT_OPTIONS`` (e.g. "linear" for Sentinel-1 in linear power,
        "reflectance" for Sentinel-2 as 0-1); None: the file holds the sources table's units.
    dn_offset : float, optional
        Sentinel-2 DN offset to remove (1000 for baseline 04.00, 0 for none); None: detected.

    Raises
    ------
    InputError
        For a path that is not a path, or bands / constants that are not what they should be.
    """

    path: str
    bands: dict[str, int] | None = None
    constants: dict[str, float] = field(default_factory=dict)
    fallback_constants: dict[str, float] = field(default_factory=dict)
    acquired_utc: str | None = None
    product: str | None = None
    units: str | None = None
    dn_offset: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, (str, os.PathLike)) or not str(self.path).strip():
            raise InputError(f"LayerInput needs the path of a raster file, not {self.path!r}", parameter="inputs")
        self.path = str(self.path)
        if self.bands is not None and (not isinstance(self.bands, dict) or not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in self.bands.values())):
            raise InputError(f"bands must map band names to 1-based band numbers, e.g. {{'VV': 1}}, not "
                             f"{self.bands!r}", parameter="inputs")
        for what in ("constants", "fallback_constants"):
            values = getattr(self, what)
            if not isinstance(values, dict):
                raise InputError(f"{what} must map band names to numbers, not {values!r}", parameter="inputs")
            for band, value in values.items():
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(
                        float(value)):
                    raise InputError(f"the constant {value!r} given for band {band} is not a finite number; give a "
                                     "value in the band's physical units", parameter="inputs")
        if self.dn_offset is not None:
            try:
                self.dn_offset = float(self.dn_offset)
            except (TypeError, ValueError):
                raise InputError(f"dn_offset {self.dn_offset!r} is not a number (give 0 or 1000)",
                                 parameter="inputs") from None


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    output_path : str
        The written GeoTIFF.
    crs, transform, width, height :
        Its grid (``transform`` as the six affine coefficients, pixel centres = window centres).
    nodata : float
        Band 1's nodata value.
    stats : dict
        min, max, mean, std (m3/m3) and valid_fraction (0-1) of band 1.
    provider, mode, label : str
        onnxruntime provider used, inference mode, the model's label.
    seconds : dict
        Wall time per step (s).
    warnings : list of str
        What was assumed (shown as warnings).
    notes : list of str
        What was given but not used (shown as information).
    """

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
    notes: list[str] = field(default_factory=list)


def needed_bands(meta: dict[str, Any]) -> dict[str, list[str]]:
    """Band names the model needs from each source, by source key (in the order of ``sources.SOURCES``)."""
    need: dict[str, list[str]] = {}
    for spec in meta["inputs"]:
        for band in spec["bands"]:
            key, name = band["ref"].split("/", 1)
            if name not in need.setdefault(key, []):
                need[key].append(name)
    return {k: need[k] for k in sources.SOURCES if k in need}


@dataclass
class PreparedRun:
    """An opened model, opened inputs and the run's grid, ready for :func:`engine.run_tiles`."""

    model: Any
    layers: dict[str, Any]
    grid: Any
    reader: Any
    warnings: list[str]
    notes: list[str] = field(default_factory=list)
    #: Tags of the checks (time offsets, the Sentinel-2 offset removed, unit conversions).
    tags: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        """Stop the reader's threads and close the input rasters."""
        close = getattr(self.reader, "close", None)
        if close is not None:
            close()
        for layer in self.layers.values():
            layer.close()


def make_grid(layers: dict[str, Any], meta: dict[str, Any], extent: tuple | None, extent_crs: str | None,
              dst_crs: str | None, warnings: list[str]) -> Any:
    """The output grid of a run over the opened ``layers`` (see :func:`prepare`); appends to ``warnings``.

    Raises
    ------
    InputError
        For a malformed extent (``parameter="extent"``), a geographic or unknown output CRS
        (``parameter="dst_crs"``), inputs that do not overlap, or an extent outside their overlap.
    """
    from . import grid as g

    out_res, roles = g.role_grids(meta)
    first_crs = next(iter(layers.values())).dataset.crs
    # the extent's CRS is resolved once, before dst_crs gets its default (the UTM zone)
    extent_crs = extent_crs or dst_crs or first_crs
    if extent is not None:
        extent = check_extent(extent, extent_crs)
        if extent[0] >= extent[2] or extent[1] >= extent[3]:
            raise InputError(f"the extent {extent} is not (xmin, ymin, xmax, ymax) with xmin < xmax and ymin < ymax",
                             parameter="extent")
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
    else:
        crs = g.check_projected(dst_crs, suggestion=lambda: _utm_suggestion(layers, extent, extent_crs))
    boxes = {k: g.bounds_in(lay.dataset.crs, tuple(lay.dataset.bounds), crs) for k, lay in layers.items()}
    overlap = g.intersect(list(boxes.values()))
    if overlap is None:
        listing = "; ".join(f"{k}: {tuple(round(v) for v in b)}" for k, b in boxes.items())
        raise InputError(f"the inputs do not overlap in {crs} ({listing}); give inputs that cover the same area")
    if extent is None:
        grid = g.grid_inside(overlap, crs, out_res, roles)
    else:
        try:
            ext = g.bounds_in(extent_crs, extent, crs)
        except Exception as exc:  # noqa: BLE001 - PROJ/GDAL raise several kinds for an impossible transform
            raise InputError(f"the extent {extent} ({extent_crs}) cannot be expressed in {crs} ({exc}); check "
                             "the extent and its CRS", parameter="extent") from None
        if not all(math.isfinite(v) for v in ext):
            raise InputError(f"the extent {extent} ({extent_crs}) cannot be expressed in {crs}; check the extent "
                             "and its CRS", parameter="extent")
        if g.intersect([ext, overlap]) is None:
            raise InputError(
                f"the extent {tuple(round(v) for v in ext)} ({crs}) lies outside the area where all inputs overlap "
                f"{tuple(round(v) for v in overlap)}; choose an extent inside it or leave it empty for the default",
                parameter="extent",
            )
        grid = g.grid_covering(ext, crs, out_res, roles)
        inset = grid.reach_m - grid.out_res_m / 2.0  # windows reach this far beyond the output bounds
        b = grid.bounds
        reach = (b[0] - inset, b[1] - inset, b[2] + inset, b[3] + inset)
        if g.intersect([reach, overlap]) != reach:
            warnings.append("part of the extent lies outside the inputs' overlap; windows reaching there are nodata")
    from .checks import check_scale

    check_scale(crs, grid.bounds, _utm_suggestion(layers, extent, extent_crs))
    log.info("output grid %s: %d x %d px of %g m, top-left (%.1f, %.1f)", crs, grid.width, grid.height,
             grid.out_res_m, grid.x0, grid.y0)
    return grid


def check_extent(extent: Any, extent_crs: Any) -> tuple[float, float, float, float]:
    """``extent`` as four finite floats; InputError (``parameter="extent"``) for anything else.

    In a geographic ``extent_crs`` longitudes must lie in -180..180 and latitudes in -90..90 (a lat/lon
    swap is named as such).
    """
    try:
        values = tuple(float(v) for v in extent)
    except (TypeError, ValueError):
        raise InputError(f"the extent {extent!r} is not four numbers (xmin, ymin, xmax, ymax)",
                         parameter="extent") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"the extent {extent!r} is not four finite numbers (xmin, ymin, xmax, ymax)",
                         parameter="extent")
    if values[0] == values[2] or values[1] == values[3]:
        raise InputError(f"the extent {values} has no area (a point or a line); give (xmin, ymin, xmax, ymax) of an "
                         "area, or leave it empty for where the inputs overlap", parameter="extent")
    if extent_crs is not None:
        from rasterio.crs import CRS
        from rasterio.errors import CRSError

        try:
            crs = CRS.from_user_input(extent_crs)
        except CRSError:
            raise InputError(f"the extent's CRS {extent_crs!r} is not a CRS GDAL understands; give e.g. EPSG:4326",
                             parameter="extent") from None
        if crs.is_geographic:
            lon_ok = all(-180.0 <= v <= 180.0 for v in values[0::2])
            lat_ok = all(-90.0 <= v <= 90.0 for v in values[1::2])
            if not lat_ok:
                swapped = all(-90.0 <= v <= 90.0 for v in values[0::2]) and all(-180 <= v <= 180 for v in values[1::2])
                hint = (" - latitude and longitude look swapped: give lon_min, lat_min, lon_max, lat_max" if swapped
                        else "")
                raise InputError(f"the extent {values} in {extent_crs} has latitudes outside -90..90{hint}",
                                 parameter="extent")
            if not lon_ok:
                raise InputError(f"the extent {values} in {extent_crs} has longitudes outside -180..180",
                                 parameter="extent")
    return values  # type: ignore[return-value]


def _utm_suggestion(layers: dict[str, Any], extent: tuple | None, extent_crs: str | None) -> str:
    """The UTM zone of the centre of ``extent`` (else of the inputs' overlap), e.g. ``"EPSG:32630"``; '' if none."""
    from . import grid as g

    if extent is not None:
        box = g.bounds_in(extent_crs, extent, "EPSG:4326")
    else:
        box = g.intersect([g.bounds_in(lay.dataset.crs, tuple(lay.dataset.bounds), "EPSG:4326")
                           for lay in layers.values()])
    return g.utm_crs_for((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0) if box else ""


def open_model(model: Any, provider: str = "auto", model_kind: str | None = None) -> Any:
    """``model`` itself when it is an opened model, else the model at that path, opened as its kind.

    Raises
    ------
    ModelError
        For a bad model file, or a model that is not of ``model_kind`` (when given).
    """
    from . import kinds
    from .model import OnnxModel, load_model

    if isinstance(model, OnnxModel):
        if model_kind is not None and model.metadata["model_kind"] != model_kind:
            raise ModelError(f"{model.path} is a {model.metadata['model_kind']} model; this needs a {model_kind} "
                             "model", parameter="model")
        return model
    if model_kind is None:
        return load_model(str(model), provider=provider)
    return kinds.implementation(model_kind).open_model(str(model), provider=provider)


def prepare(model: Any, inputs: dict[str, LayerInput], *, extent: tuple | None = None, extent_crs: str | None = None,
            dst_crs: str | None = None, provider: str = "auto", model_kind: str | None = None,
            ignore_time_bounds: bool = False) -> PreparedRun:
    """Open the model (a path or an opened model) and the inputs, and fix the grid.

    Parameters
    ----------
    model : str or OnnxModel
        The model, opened as its own kind (or as ``model_kind``, which it must be).
    inputs : dict of str to LayerInput
        By source key (``sources.SOURCES``): those the model needs; others are ignored with a note.
    extent, extent_crs, dst_crs :
        See ``kinds.fusion.estimate_sm_320m``.
    provider : {"auto", "cpu", "cuda"}
        onnxruntime execution provider, when ``model`` is a path.
    model_kind : str, optional
        The kind the caller maps with.
    ignore_time_bounds : bool
        Accept inputs acquired further from the Sentinel-1 image than the Table 5 bounds (warned, tagged).

    Raises
    ------
    ModelError, InputError
        For a bad model, a missing or unusable input (``role`` says which), or an impossible grid.
    """
    from . import checks
    from .layers import open_layer
    from .tile_inputs import TileReader

    if not isinstance(inputs, dict) or not all(v is None or isinstance(v, LayerInput) for v in inputs.values()):
        raise InputError("inputs must be a dict of source key -> LayerInput, e.g. {'sentinel1': "
                         "LayerInput('s1.tif'), ...}", parameter="inputs")
    unknown = [k for k in inputs if k not in sources.SOURCES]
    if unknown:
        raise InputError(f"unknown input(s) {unknown}; the inputs are {list(sources.SOURCES)}", parameter="inputs")
    model = open_model(model, provider, model_kind)
    need = needed_bands(model.metadata)
    missing = [k for k in need if k not in inputs or inputs[k] is None]
    if missing:
        listing = ", ".join(f"{k} ({', '.join(need[k])})" for k in missing)
        raise InputError(
            f"the model ({model.metadata['variant']} variant) needs these inputs that were not given: {listing}; "
            f"give a raster for each (it needs {list(need)})",
            role=missing[0],
        )
    notes = [f"input {k} is not used by the {model.metadata['variant']} model" for k in inputs if k not in need]
    warnings: list[str] = []
    layers: dict[str, Any] = {}
    try:
        for key, bands in need.items():
            li = inputs[key]
            layers[key] = open_layer(key, li.path, bands, bands=li.bands, constants=li.constants,
                                     fallback_constants=li.fallback_constants, acquired_utc=li.acquired_utc,
                                     product=li.product, units=li.units, dn_offset=li.dn_offset)
            warnings.extend(layers[key].warnings)
            notes.extend(layers[key].notes)
        for layer in layers.values():
            checks.check_identity(layer)
        tags, time_warnings = checks.check_times(layers, ignore_time_bounds=ignore_time_bounds)
        warnings.extend(time_warnings)
        grid = make_grid(layers, model.metadata, extent, extent_crs, dst_crs, warnings)
        b = grid.bounds
        reach = grid.reach_m - grid.out_res_m / 2.0  # model windows reach this far beyond the map
        area = (b[0] - reach, b[1] - reach, b[2] + reach, b[3] + reach)
        if "sentinel2" in layers:
            s2_tags, s2_warnings = checks.check_s2_offset(layers["sentinel2"], area, grid.crs)
            tags.update(s2_tags)
            warnings.extend(s2_warnings)
        warnings.extend(checks.check_values(layers, area, grid.crs))
        for key, layer in layers.items():
            if layer.unit is not None:
                tags[f"INPUT_{key.upper()}_UNITS_CONVERTED"] = f"{layer.unit.units} -> {layer.source.bands[0].units}"
    except BaseException:
        for layer in layers.values():
            layer.close()
        raise
    reader = TileReader(grid, {role: model.bands(role) for role in model.roles}, layers)
    return PreparedRun(model, layers, grid, reader, warnings, notes, tags)


def smqgis_version() -> str:
    """The plugin version from metadata.txt of the plugin folder (the repository root)."""
    from ..paths import METADATA_TXT

    try:
        with open(METADATA_TXT, encoding="utf-8") as fh:
            for line in fh:
                if line.strip().startswith("version="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def provenance_tags(run: PreparedRun, **run_tags: str) -> dict[str, str]:
    """GeoTIFF metadata tags: model, inputs (paths, times, products, bands, attribution), provider, version, units.

    ``run_tags`` are the kind's own (e.g. ``MODE="fast", TILE_PX="40"``).
    """
    meta = run.model.metadata
    tags = {
        "SMQGIS_VERSION": smqgis_version(),
        "MODEL_FILE": os.path.basename(run.model.path),
        "MODEL_TITLE": meta["title"],
        "MODEL_LABEL": meta["label"],
        "MODEL_VARIANT": meta["variant"],
        "MODEL_TRAINED_ON": json.dumps(meta["trained_on"], sort_keys=True),
        "MODEL_KIND": meta["model_kind"],
        **run_tags,
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
        tags[f"{p}_ATTRIBUTION"] = layer.source.attribution
        constants = {b: f"constant {v}" for b, v in layer.constants.items()}
        tags[f"{p}_BANDS"] = json.dumps({**layer.band_index, **constants})
    tags.update(run.tags)
    return tags


def estimate_sm(
    model: Any, inputs: dict[str, LayerInput], output_path: str, *, provider: str = "auto", **options: Any
) -> RunResult:
    """Map soil moisture with whatever kind ``model`` is: its kind's mapping function (``algorithm_id``).

    Parameters
    ----------
    model : str or OnnxModel
        The model.
    inputs : dict of str to LayerInput
        By source key.
    output_path : str
        Target GeoTIFF.
    provider : {"auto", "cpu", "cuda"}
        onnxruntime execution provider.
    **options
        The kind's own options (see its mapping function, e.g. ``kinds.fusion.estimate_sm_320m``).
    """
    from . import kinds

    model = open_model(model, provider)
    kind = kinds.kind_of(model.metadata)
    return getattr(kinds.implementation(kind), kind.algorithm_id)(
        model, inputs, output_path, provider=provider, **options
    )
