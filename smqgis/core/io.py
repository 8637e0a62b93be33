"""Reading the user's rasters onto the model's grids, and writing the result as it is made.

Steps two and three of the flow (inputs -> target grid -> encoded arrays) and the end of
step four (-> georeferenced raster). Each input is a GDAL raster in any CRS, resolution
and band order; :func:`open_layer` works out which band is which (declared, or recognised
from the band descriptions) and :class:`TileReader` warps a block of every input onto
the block of the target grid that a tile of output pixels needs (bilinear for the high-
and low-res windows, nearest for the coarse values at the window centres; an input already
on the target grid is read with a plain windowed read, no warp), applies the
GDAL scale/offset and the successor-product harmonisation of ``sources.py``, encodes
each band exactly as the model's metadata says, and reports which window pixels had
every input. :class:`GeoTiffWriter` streams blocks into a temporary GeoTIFF that is
renamed onto the target only when the run succeeds.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import encoding, sources
from .errors import InputError
from .grid import ModelGrid

log = logging.getLogger(__name__)

NODATA = -9999.0

#: Other names a band goes by in band descriptions (normalised: lower case, alphanumerics only).
BAND_ALIASES: dict[str, tuple[str, ...]] = {
    "VV": ("sigma0vv", "vvdb", "gammavv"),
    "VH": ("sigma0vh", "vhdb", "gammavh"),
    "angle": ("incidenceangle", "incidence", "localincidenceangle", "theta"),
    "elevation": ("dem", "height", "elev", "altitude", "hgt"),
    "sand": ("sand05cm", "sand05cmmean"),
    "silt": ("silt05cm", "silt05cmmean"),
    "clay": ("clay05cm", "clay05cmmean"),
    "bdod": ("bdod05cm", "bdod05cmmean", "bulkdensity", "bd"),
    "ssm": ("smapssm", "soilmoisture"),
    "SoilMoi0_10cm_inst": ("soilmoi010cm", "gldassm"),
}

#: Band order assumed for a file without band descriptions whose band count matches.
STANDARD_ORDERS: dict[str, tuple[str, ...]] = {
    "sentinel2": ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"),
}

#: Largest error (source pixels) of GDAL's approximate transformer: far below GDAL's default 1/8 px, so a
#: pixel's value does not depend on the block it is warped in (exact 0 is not accepted by WarpedVRT).
WARP_TOLERANCE_PX = 1e-4

#: GDAL block cache while a run reads (MiB): holds a tile's warped blocks for the next tile's halo, and
#: keeps the memory of a run independent of its area (GDAL's default is 5 % of the machine's RAM).
GDAL_CACHE_MIB = 256

#: Resampling per model input role (the paper bilinearly resamples every image input).
ROLE_RESAMPLING = {"high_res": Resampling.bilinear, "low_res": Resampling.bilinear, "coarse": Resampling.nearest}


def normalise_band_name(name: str) -> str:
    """Lower-case alphanumerics, Sentinel-2 zero padding dropped (``'B04'`` -> ``'b4'``)."""
    s = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return re.sub(r"^b0+(\d)", r"b\1", s)


def _names_of(band: sources.Band) -> set[str]:
    return {normalise_band_name(n) for n in (band.name, band.ee_name, *BAND_ALIASES.get(band.name, ()))}


@dataclass
class SourceLayer:
    """One opened input raster and what each of its bands is.

    Attributes
    ----------
    key : str
        Source key of ``sources.py`` (``"sentinel1"``, ...).
    path : str
        The raster file.
    band_index : dict of str to int
        Band name -> 1-based band index of the file.
    constants : dict of str to float
        Band name -> constant value (physical units) for bands the file lacks.
    native_scale : float
        Factor to the units the model was trained on (e.g. 50 for SMAP m3/m3 -> mm).
    product : str
        The product read (e.g. the SMAP successor's Earth Engine id).
    acquired_utc : str or None
        Acquisition time (ISO-8601).
    """

    key: str
    path: str
    dataset: Any
    band_index: dict[str, int]
    constants: dict[str, float]
    native_scale: float
    product: str
    acquired_utc: str | None
    warnings: list[str] = field(default_factory=list)
    _warped: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def source(self) -> sources.Source:
        return sources.SOURCES[self.key]

    def on_grid(self, crs: str, transform: Any) -> bool:
        """True when the file already lies on the grid of ``transform``: same CRS, pixel size and alignment.

        Such a file is read with plain windowed reads; any other is warped.
        """
        t, ds = self.dataset.transform, self.dataset
        if t.b != 0.0 or t.d != 0.0 or ds.crs != crs:
            return False
        if abs(t.a - transform.a) > 1e-9 * abs(t.a) or abs(t.e - transform.e) > 1e-9 * abs(t.e):
            return False
        col, row = (transform.c - t.c) / t.a, (transform.f - t.f) / t.e
        return abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6

    def read_physical(self, role: str, bands: list[str], crs: str, transform: Any, shape: tuple[int, int],
                      window: Window, resampling: Resampling) -> np.ndarray:
        """Read ``bands`` in ``window`` of the role grid (``transform``, ``shape`` in ``crs``), in physical units.

        A file already on the role grid (:meth:`on_grid`) is read with a plain windowed read of
        just the window. Any other is warped through one GDAL warped VRT of the whole role
        grid (made once per role; it holds no pixels, GDAL warps its fixed blocks on demand
        through the bounded block cache), so a pixel's value never depends on the tile it is
        read in. Memory is that of the window in both cases.

        Returns
        -------
        ndarray, shape (len(bands), rows, cols), float32
            Values in the units of ``sources.py`` (after GDAL scale/offset and harmonisation);
            NaN where the input has nodata or does not reach.
        """
        idx = [self.band_index[b] for b in bands]
        if self.on_grid(crs, transform):
            out = self._read_window(idx, transform, window)
        else:
            vrt = self.warped(role, crs, transform, shape, resampling)
            out = np.empty((len(idx), int(window.height), int(window.width)), dtype=np.float32)
            for k, i in enumerate(idx):
                # one band per read: GDAL then warps the VRT's fixed blocks (a multi-band read warps
                # the requested window directly, and its values would depend on the tile)
                vrt.read(i, window=window, out=out[k])
        for k, i in enumerate(idx):
            scale, offset = self.dataset.scales[i - 1], self.dataset.offsets[i - 1]
            if scale != 1.0 or offset != 0.0:
                out[k] = out[k] * scale + offset
        if self.native_scale != 1.0:
            out *= self.native_scale
        return out

    def _read_window(self, idx: list[int], transform: Any, window: Window) -> np.ndarray:
        """Windowed read of an on-grid file; NaN outside the file and at its nodata."""
        ds = self.dataset
        t = ds.transform
        row0 = int(round((transform.f - t.f) / t.e)) + int(window.row_off)
        col0 = int(round((transform.c - t.c) / t.a)) + int(window.col_off)
        shape = (int(window.height), int(window.width))
        out = np.full((len(idx), *shape), np.nan, dtype=np.float32)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + shape[0], ds.height), min(col0 + shape[1], ds.width)
        if r1 <= r0 or c1 <= c0:
            return out
        raw = ds.read(idx, window=Window(c0, r0, c1 - c0, r1 - r0))
        part = raw.astype(np.float32)
        if ds.nodata is not None and not np.isnan(ds.nodata):
            part[raw == ds.nodata] = np.nan
        out[:, r0 - row0:r1 - row0, c0 - col0:c1 - col0] = part
        return out

    def warped(self, role: str, crs: str, transform: Any, shape: tuple[int, int], resampling: Resampling) -> Any:
        """The file warped onto a whole role grid (a GDAL warped VRT, made once per role)."""
        from rasterio.vrt import WarpedVRT

        if role not in self._warped:
            ds = self.dataset
            src_nodata = ds.nodata
            if src_nodata is None and np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
                src_nodata = np.nan
            xscale, yscale = resampling_scales(ds, crs, abs(transform.a), abs(transform.e))
            self._warped[role] = WarpedVRT(ds, crs=crs, transform=transform, width=shape[1], height=shape[0],
                                           resampling=resampling, src_nodata=src_nodata, nodata=np.nan,
                                           dtype="float32", tolerance=WARP_TOLERANCE_PX,
                                           warp_extras={"XSCALE": repr(xscale), "YSCALE": repr(yscale)})
        return self._warped[role]

    def close(self) -> None:
        """Close the warped VRTs and the file."""
        for vrt in self._warped.values():
            vrt.close()
        self._warped.clear()
        self.dataset.close()


def resampling_scales(ds: Any, crs: str, dst_xres: float, dst_yres: float) -> tuple[float, float]:
    """Destination pixels per source pixel along x and y at the file's centre (GDAL XSCALE / YSCALE).

    GDAL otherwise recomputes them for every warp chunk, so a value would depend on the tile
    it is read in; fixed once per file they make the warp tile-invariant. Capped at 1:
    bilinear upsampling needs no wider kernel.
    """
    from rasterio.warp import transform as transform_points

    t = ds.transform
    cx, cy = ds.width / 2.0, ds.height / 2.0
    pts = [t @ (cx, cy), t @ (cx + 1, cy), t @ (cx, cy + 1)]
    xs, ys = transform_points(ds.crs, crs, [p[0] for p in pts], [p[1] for p in pts])
    step_x = float(np.hypot(xs[1] - xs[0], ys[1] - ys[0]))
    step_y = float(np.hypot(xs[2] - xs[0], ys[2] - ys[0]))
    return min(1.0, step_x / dst_xres), min(1.0, step_y / dst_yres)


def recognise_bands(source: sources.Source, descriptions: list[str | None], needed: list[str]) -> dict[str, int]:
    """Map each band of ``needed`` to a 1-based index from the file's band descriptions.

    Returns only the bands found; a caller decides whether the rest are an error.
    """
    found: dict[str, int] = {}
    successor_band = source.successor.get("ee_band") if len(source.bands) == 1 else None
    for name in needed:
        names = _names_of(source.band(name))
        if successor_band:  # e.g. SMAP's successor calls ssm "sm_surface"
            names.add(normalise_band_name(successor_band))
        for i, desc in enumerate(descriptions, start=1):
            if desc and normalise_band_name(desc) in names:
                found[name] = i
                break
    return found


def _band_help(key: str, needed: list[str]) -> str:
    example = ", ".join(f"'{b}': {i}" for i, b in enumerate(needed, start=1))
    return (
        f"declare the bands of the {key} input (e.g. bands={{{example}}}; in QGIS the band parameters), "
        "or set the file's band descriptions to the band names"
    )


def open_layer(key: str, path: str, needed: list[str], *, bands: dict[str, int] | None = None,
               constants: dict[str, float] | None = None, acquired_utc: str | None = None,
               product: str | None = None) -> SourceLayer:
    """Open an input raster and resolve which band is which.

    Parameters
    ----------
    key : str
        Source key of ``sources.py``.
    path : str
        Any GDAL raster.
    needed : list of str
        Band names of the source the model needs.
    bands : dict, optional
        Declared band name -> 1-based index; None recognises bands from descriptions.
    constants : dict, optional
        Band name -> constant (physical units) for bands the file lacks.
    acquired_utc, product : str, optional
        Provenance; ``product`` equal to the source's successor product (e.g.
        ``"NASA/SMAP/SPL4SMGP/007"``) converts its units to the trained-on ones.

    Raises
    ------
    InputError
        If the file cannot be opened or its bands cannot be matched to ``needed``.
    """
    source = sources.SOURCES[key]
    constants = dict(constants or {})
    try:
        ds = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise InputError(f"cannot open the {key} input {path!r} ({exc}); give a raster file GDAL can read") from None
    if ds.crs is None:
        ds.close()
        raise InputError(f"the {key} input {path} has no CRS; assign one (e.g. in QGIS: Assign projection)")
    warnings: list[str] = []
    to_find = [b for b in needed if b not in constants]
    descriptions = list(ds.descriptions)
    if bands:
        unknown = [b for b in bands if b not in [sb.name for sb in source.bands]]
        if unknown:
            ds.close()
            raise InputError(
                f"the {key} input has no band called {unknown}; its bands are {[b.name for b in source.bands]}"
            )
        bad = {b: i for b, i in bands.items() if not 1 <= int(i) <= ds.count}
        if bad:
            ds.close()
            raise InputError(
                f"{path} has {ds.count} band(s) but the {key} bands were declared at {bad}; "
                f"give 1-based indices between 1 and {ds.count}"
            )
        index = {b: int(i) for b, i in bands.items() if b in to_find}
    else:
        index = recognise_bands(source, descriptions, to_find)
        missing = [b for b in to_find if b not in index]
        order = STANDARD_ORDERS.get(key, tuple(b.name for b in source.bands))
        if missing and len(to_find) == 1 and ds.count == 1:
            index = {to_find[0]: 1}
            if descriptions[0]:
                warnings.append(f"{key}: took the single band {descriptions[0]!r} of {path} as {to_find[0]}")
        elif missing and not any(descriptions) and ds.count == len(order):
            index = {b: order.index(b) + 1 for b in to_find}
            warnings.append(f"{key}: {path} has no band descriptions; assumed the band order {list(order)}")
    missing = [b for b in to_find if b not in index]
    if missing:
        desc = [d or "(none)" for d in descriptions]
        hint = " (a missing angle band can be given as a constant, e.g. constants={'angle': 39.0})" if (
            "angle" in missing) else ""
        ds.close()
        raise InputError(
            f"the {key} input {path} has {ds.count} band(s) described {desc}, but the model needs {needed} "
            f"and {missing} could not be recognised; {_band_help(key, needed)}{hint}"
        )
    native_scale, used_product = 1.0, product or source.ee_collection
    successor = source.successor
    by_desc = successor and any(
        d and normalise_band_name(d) == normalise_band_name(successor["ee_band"]) for d in descriptions
    )
    if successor and by_desc and product == source.ee_collection:
        ds.close()
        raise InputError(
            f"the {key} input {path} has a band described {successor['ee_band']!r}, the successor product "
            f"{successor['ee_collection']} ({successor['units']}), but the product was set to {product}; "
            f"choose {successor['ee_collection']} as the SMAP product (or leave it unset)"
        )
    if successor and (product == successor["ee_collection"] or (product is None and by_desc)):
        native_scale = float(successor["to_native_scale"])
        used_product = successor["ee_collection"]
        log.info("%s: successor product %s (%s) scaled by %g to the trained-on units", key,
                 used_product, successor["units"], native_scale)
    acquired = acquired_utc or ds.tags().get("ACQUISITION_TIME")
    if source.valid_to and acquired and acquired[:10] > source.valid_to and used_product == source.ee_collection:
        warnings.append(
            f"{key}: acquired {acquired[:10]}, after {source.ee_collection} ended ({source.valid_to}); "
            f"use the successor {successor.get('ee_collection')} (product parameter)"
        )
    for name, value in constants.items():
        warnings.append(f"{key}: band {name} is the constant {value} (not in {os.path.basename(path)})")
    for w in warnings:
        log.warning(w)
    log.debug("%s: %s bands %s crs %s bounds %s", key, path, index, ds.crs, tuple(ds.bounds))
    return SourceLayer(key, str(path), ds, index, constants, native_scale, used_product, acquired, warnings)


@dataclass
class TileInputs:
    """The encoded inputs of one tile of output pixels.

    Attributes
    ----------
    row0, col0, nrows, ncols : int
        Position and size of the tile on the output grid (pixels).
    arrays : dict of str to ndarray
        ``high_res`` / ``low_res``: float32 (rows, cols, C) role blocks covering the tile's
        windows, 0-255, 0 where invalid; ``coarse``: float32 (nrows, ncols, K).
    coverage : ndarray, shape (nrows, ncols)
        Fraction of each window's pixels where every required input is valid (0-1).
    seconds : float
        Wall time spent reading, warping and encoding (s).
    """

    row0: int
    col0: int
    nrows: int
    ncols: int
    arrays: dict[str, np.ndarray]
    coverage: np.ndarray
    seconds: float


def window_fraction(valid: np.ndarray, window_px: int, step_px: int, nrows: int, ncols: int) -> np.ndarray:
    """Fraction of valid pixels in each ``window_px`` window, windows ``step_px`` apart (float32)."""
    s = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(valid, axis=0, dtype=np.int64), axis=1, out=s[1:, 1:])
    r = np.arange(nrows) * step_px
    c = np.arange(ncols) * step_px
    total = s[np.ix_(r + window_px, c + window_px)] - s[np.ix_(r, c + window_px)] \
        - s[np.ix_(r + window_px, c)] + s[np.ix_(r, c)]
    return (total / float(window_px * window_px)).astype(np.float32)


class TileReader:
    """Reads, warps and encodes the model inputs of tiles of the output grid.

    Parameters
    ----------
    grid : ModelGrid
        The run's grids.
    model_bands : dict of str to list of dict
        Band specs (``ref``, ``encoding``) per model input role, in channel order.
    layers : dict of str to SourceLayer
        Opened inputs by source key.
    """

    def __init__(self, grid: ModelGrid, model_bands: dict[str, list[dict[str, Any]]],
                 layers: dict[str, SourceLayer]) -> None:
        self.grid = grid
        self.layers = layers
        self.plan: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for role, bands in model_bands.items():
            if bands:
                self.plan[role] = [(*b["ref"].split("/", 1), b["encoding"]) for b in bands]
        # whole-area grid (transform, shape) of each role: tiles read windows of it
        self._full: dict[str, tuple[Any, tuple[int, int]]] = {
            role: (grid.block_transform(role, 0, 0), g.block_shape(grid.height, grid.width))
            for role, g in grid.roles.items()
        }
        self._full["coarse"] = (grid.transform, (grid.height, grid.width))
        fine = min(grid.roles.values(), key=lambda g: g.pixel_size_m) if grid.roles else None
        self._fine_role = next((r for r, g in grid.roles.items() if g is fine), None)

    def _read_role(self, role: str, window: Window) -> tuple[np.ndarray, np.ndarray]:
        channels = self.plan[role]
        shape = (int(window.height), int(window.width))
        out = np.empty((*shape, len(channels)), dtype=np.float32)
        valid = np.ones(shape, dtype=bool)
        by_source: dict[str, list[int]] = {}
        for ci, (key, _band, _enc) in enumerate(channels):
            by_source.setdefault(key, []).append(ci)
        for key, cis in by_source.items():
            layer = self.layers[key]
            to_read = [channels[ci][1] for ci in cis if channels[ci][1] not in layer.constants]
            phys = None
            if to_read:
                phys = layer.read_physical(role, to_read, self.grid.crs, *self._full[role], window,
                                           ROLE_RESAMPLING[role])
            for ci in cis:
                band, enc = channels[ci][1], channels[ci][2]
                if band in layer.constants:
                    values = np.full(shape, layer.constants[band], dtype=np.float32)
                else:
                    values = phys[to_read.index(band)]
                    valid &= np.isfinite(values)
                out[..., ci] = encoding.encode(values, enc)
        out[~valid] = 0.0
        return out, valid

    def read(self, row0: int, col0: int, nrows: int, ncols: int) -> TileInputs:
        """Encoded inputs and window coverage of output pixels [row0:row0+nrows, col0:col0+ncols]."""
        t0 = time.perf_counter()
        arrays: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        for role in self.plan:
            if role == "coarse":
                window = Window(col0, row0, ncols, nrows)
            else:
                g = self.grid.roles[role]
                rows, cols = g.block_shape(nrows, ncols)
                window = Window(col0 * g.step_px, row0 * g.step_px, cols, rows)
            arrays[role], masks[role] = self._read_role(role, window)
        coverage = np.ones((nrows, ncols), dtype=np.float32)
        if self._fine_role is not None:
            fine = self.grid.roles[self._fine_role]
            valid = np.ones(fine.block_shape(nrows, ncols), dtype=bool)
            for role, g in self.grid.roles.items():
                if role in masks:
                    f = int(round(g.pixel_size_m / fine.pixel_size_m))
                    valid &= masks[role].repeat(f, axis=0).repeat(f, axis=1)
            coverage = window_fraction(valid, fine.window_px, fine.step_px, nrows, ncols)
        if "coarse" in masks:
            coverage *= masks["coarse"]
        return TileInputs(row0, col0, nrows, ncols, arrays, coverage, time.perf_counter() - t0)


def gdal_env() -> Any:
    """The rasterio/GDAL environment a run reads in (bounded block cache)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MIB * 1024 * 1024)


def check_writable(output_path: str) -> None:
    """Raise InputError unless a file can be created beside ``output_path``."""
    folder = os.path.dirname(os.path.abspath(output_path)) or "."
    if os.path.isdir(output_path):
        raise InputError(f"the output path {output_path} is a folder; give a file name ending in .tif")
    if not os.path.isdir(folder):
        raise InputError(f"the output folder {folder} does not exist; create it or choose another output path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".smqgis-probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise InputError(f"cannot write to {folder} ({exc.strerror}); choose an output path in a writable folder") \
            from None


class ArrayWriter:
    """Collects the output blocks in memory (for tests and callers that want arrays)."""

    def __init__(self, grid: ModelGrid) -> None:
        self.soil_moisture = np.full((grid.height, grid.width), NODATA, dtype=np.float32)
        self.coverage = np.zeros((grid.height, grid.width), dtype=np.float32)

    def write(self, row0: int, col0: int, soil_moisture: np.ndarray, coverage: np.ndarray) -> None:
        """Store one block (m3/m3 with NODATA, and coverage 0-1)."""
        r, c = soil_moisture.shape
        self.soil_moisture[row0:row0 + r, col0:col0 + c] = soil_moisture
        self.coverage[row0:row0 + r, col0:col0 + c] = coverage

    def commit(self, tags: dict[str, str]) -> None:
        """Nothing to finish in memory."""

    def abort(self) -> None:
        """Nothing to remove in memory."""


class GeoTiffWriter:
    """Streams output blocks into a temporary float32 GeoTIFF, renamed onto the target on commit.

    Band 1 ``soil_moisture`` (m3/m3, nodata -9999), band 2 ``input_coverage`` (0-1).
    """

    def __init__(self, grid: ModelGrid, output_path: str) -> None:
        self.output_path = os.path.abspath(output_path)
        folder, name = os.path.split(self.output_path)
        fd, self.tmp_path = tempfile.mkstemp(prefix=f".{name}.", suffix=".part.tif", dir=folder)
        os.close(fd)
        block = 256
        profile = {
            "driver": "GTiff", "width": grid.width, "height": grid.height, "count": 2, "dtype": "float32",
            "crs": grid.crs, "transform": grid.transform, "nodata": NODATA, "compress": "deflate",
            "predictor": 3,
        }
        if grid.width >= block and grid.height >= block:
            profile.update(tiled=True, blockxsize=block, blockysize=block)
        try:
            self.ds = rasterio.open(self.tmp_path, "w", **profile)
        except (RasterioError, OSError) as exc:
            os.remove(self.tmp_path)
            raise InputError(f"cannot create {self.output_path} ({exc}); choose another output path") from None
        self.ds.set_band_description(1, "soil_moisture")
        self.ds.set_band_description(2, "input_coverage")
        self.ds.set_band_unit(1, "m3/m3")
        self.ds.set_band_unit(2, "fraction")

    def write(self, row0: int, col0: int, soil_moisture: np.ndarray, coverage: np.ndarray) -> None:
        """Write one block (m3/m3 with NODATA, and coverage 0-1) at (row0, col0)."""
        win = Window(col0, row0, soil_moisture.shape[1], soil_moisture.shape[0])
        self.ds.write(soil_moisture.astype(np.float32), 1, window=win)
        self.ds.write(coverage.astype(np.float32), 2, window=win)

    def commit(self, tags: dict[str, str]) -> None:
        """Write the provenance tags, close, and move the file onto the target path."""
        self.ds.update_tags(**tags)
        self.ds.update_tags(1, units="m3/m3", quantity="volumetric soil moisture")
        self.ds.close()
        # mkstemp makes the file private (0600); a map gets the permissions of any new file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp_path, 0o666 & ~umask)
        os.replace(self.tmp_path, self.output_path)

    def abort(self) -> None:
        """Close and delete the temporary file (no partial output)."""
        try:
            self.ds.close()
        finally:
            if os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)
