"""Step one of the flow: opening the user's rasters and reading them, in physical units, on a target grid.

Each input is a GDAL raster in any CRS, resolution and band order. :func:`open_layer`
works out which band is which (declared, recognised from the band descriptions with the
names of ``sources.py``, or the product's standard order) and which product it is (the
successor-product harmonisation of ``sources.py``); :meth:`SourceLayer.read_physical`
reads a window of a target grid - a plain windowed read when the file already lies on
that grid, else through one GDAL warped VRT of the whole grid, so a pixel's value never
depends on the tile it is read in - and applies the GDAL scale/offset. Encoding the
values for a model is the next step (``tile_inputs.py``).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import sources
from .errors import InputError

log = logging.getLogger(__name__)

#: Largest error (source pixels) of GDAL's approximate transformer: far below GDAL's default 1/8 px, so a
#: pixel's value does not depend on the block it is warped in (exact 0 is not accepted by WarpedVRT).
WARP_TOLERANCE_PX = 1e-4

#: Pixel types whose every value is exact in float32: an on-grid file of these is read straight into float32.
EXACT_IN_FLOAT32 = frozenset({"uint8", "int8", "uint16", "int16", "float32"})

#: GDAL block cache while a run reads (MiB): holds a tile's warped blocks for the next tile's halo, and
#: keeps the memory of a run independent of its area (GDAL's default is 5 % of the machine's RAM).
GDAL_CACHE_MIB = 128


def gdal_env() -> Any:
    """The rasterio/GDAL environment a run reads in (bounded block cache)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MIB * 1024 * 1024)


def normalise_band_name(name: str) -> str:
    """Lower-case alphanumerics, Sentinel-2 zero padding dropped (``'B04'`` -> ``'b4'``)."""
    s = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return re.sub(r"^b0+(\d)", r"b\1", s)


def _names_of(band: sources.Band) -> set[str]:
    return {normalise_band_name(n) for n in (band.name, band.ee_name, *band.aliases)}


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
    warnings : list of str
        What was assumed about the file (shown to the user as warnings).
    notes : list of str
        What was given but not used (shown as information).
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
    notes: list[str] = field(default_factory=list)
    unit: sources.UnitOption | None = None
    dn_offset: float | None = None
    _warped: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_physical(self, band: str, values: np.ndarray) -> np.ndarray:
        """Apply the harmonisation, the declared unit conversion and the Sentinel-2 DN offset to ``band``'s values.

        ``values`` are the file's values after GDAL scale/offset (float32, NaN for nodata).
        """
        if self.native_scale != 1.0:
            values = values * np.float32(self.native_scale)
        if self.unit is not None and band in self.unit.bands:
            if self.unit.decibel:
                with np.errstate(divide="ignore", invalid="ignore"):
                    values = np.where(values > 0, 10.0 * np.log10(np.where(values > 0, values, 1.0)), np.nan)
                values = values.astype(np.float32)
            values = values * np.float32(self.unit.scale)
        if self.dn_offset:
            values = values - np.float32(self.dn_offset)
        return values

    @property
    def source(self) -> sources.Source:
        """The source's row of the sources table."""
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
                      window: Window, resampling: Resampling, out: np.ndarray | None = None) -> np.ndarray:
        """Read ``bands`` in ``window`` of the role grid (``transform``, ``shape`` in ``crs``), in physical units.

        A file already on the role grid (:meth:`on_grid`) is read with a plain windowed read of
        just the window. Any other is warped through one GDAL warped VRT of the whole role
        grid (made once per role; it holds no pixels, GDAL warps its fixed blocks on demand
        through the bounded block cache), so a pixel's value never depends on the tile it is
        read in. Memory is that of the window in both cases.

        ``out`` (float32, C-contiguous, shape (len(bands), rows, cols)) is filled and returned
        instead of a new array: the map reader passes buffers it reuses from tile to tile.

        Returns
        -------
        ndarray, shape (len(bands), rows, cols), float32
            Values in the units of ``sources.py`` (after GDAL scale/offset and harmonisation);
            NaN where the input has nodata or does not reach.
        """
        idx = [self.band_index[b] for b in bands]
        if out is None:
            out = np.empty((len(idx), int(window.height), int(window.width)), dtype=np.float32)
        if self.on_grid(crs, transform):
            self._read_window(idx, transform, window, out)
        else:
            vrt = self.warped(role, crs, transform, shape, resampling)
            for k, i in enumerate(idx):
                # one band per read: GDAL then warps the VRT's fixed blocks (a multi-band read warps
                # the requested window directly, and its values would depend on the tile)
                vrt.read(i, window=window, out=out[k])
        for k, i in enumerate(idx):
            scale, offset = self.dataset.scales[i - 1], self.dataset.offsets[i - 1]
            if scale != 1.0 or offset != 0.0:
                out[k] = out[k] * scale + offset
        if self.native_scale != 1.0 and self.unit is None and not self.dn_offset:
            out *= self.native_scale  # the pinned arithmetic of the plain case
        elif self.native_scale != 1.0 or self.unit is not None or self.dn_offset:
            for k, band in enumerate(bands):
                out[k] = self.to_physical(band, out[k])
        return out

    def _read_window(self, idx: list[int], transform: Any, window: Window, out: np.ndarray) -> np.ndarray:
        """Windowed read of an on-grid file into ``out`` (float32); NaN outside the file and at its nodata."""
        ds = self.dataset
        t = ds.transform
        row0 = int(round((transform.f - t.f) / t.e)) + int(window.row_off)
        col0 = int(round((transform.c - t.c) / t.a)) + int(window.col_off)
        shape = (int(window.height), int(window.width))
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + shape[0], ds.height), min(col0 + shape[1], ds.width)
        if r1 <= r0 or c1 <= c0:
            out.fill(np.nan)
            return out
        src = Window(c0, r0, c1 - c0, r1 - r0)
        nodata = ds.nodata
        if (r0, c0, r1, c1) == (row0, col0, row0 + shape[0], col0 + shape[1]) \
                and set(ds.dtypes) <= EXACT_IN_FLOAT32 and (nodata is None or np.float32(nodata) == nodata):
            # the whole window inside the file: GDAL converts to float32 straight into ``out`` (no temporaries;
            # these types' values, and so their nodata test, are exact in float32)
            ds.read(idx, window=src, out=out)
            if nodata is not None and not np.isnan(nodata):
                out[out == np.float32(nodata)] = np.nan
            return out
        raw = ds.read(idx, window=src)
        part = raw.astype(np.float32)
        if nodata is not None and not np.isnan(nodata):
            part[raw == nodata] = np.nan
        out.fill(np.nan)
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


def _check_constants(source: sources.Source, constants: dict[str, float]) -> None:
    """Raise InputError for a constant of an unknown band or outside the band's physical range."""
    for name, value in constants.items():
        try:
            band = source.band(name)
        except KeyError as exc:
            raise InputError(f"a constant was given for {exc.args[0]}", role=source.key) from None
        lo, hi = band.physical_range
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"the constant {value!r} given for the {source.key} band {name} is not a number; give "
                             f"a value in {band.units} between {lo:g} and {hi:g}", role=source.key) from None
        if not lo <= number <= hi:
            raise InputError(
                f"the constant {value:g} {band.units} given for the {source.key} band {name} lies outside its "
                f"physical range {lo:g}..{hi:g} {band.units}; give a value inside it",
                role=source.key,
            )


def open_layer(key: str, path: str, needed: list[str], *, bands: dict[str, int] | None = None,
               constants: dict[str, float] | None = None, fallback_constants: dict[str, float] | None = None,
               acquired_utc: str | None = None, product: str | None = None, units: str | None = None,
               dn_offset: float | None = None) -> SourceLayer:
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
        Band name -> constant (physical units) used in place of the file's band.
    fallback_constants : dict, optional
        Band name -> constant (physical units) used only when the file has no such band.
    acquired_utc, product : str, optional
        Provenance; ``product`` equal to the source's successor product (e.g.
        ``"NASA/SMAP/SPL4SMGP/007"``) converts its units to the trained-on ones.
    units : str, optional
        A declared unit conversion of ``sources.UNIT_OPTIONS`` (e.g. ``"linear"`` for Sentinel-1 in
        linear power); None: the file holds the table's units.
    dn_offset : float, optional
        Sentinel-2 DN offset to remove (1000 for baseline 04.00); None: detected (``checks.check_s2_offset``).

    Returns
    -------
    SourceLayer
        The open file; its ``warnings`` say what was assumed, its ``notes`` what was ignored.

    Raises
    ------
    InputError
        If the file cannot be opened or its bands cannot be matched to ``needed``; its ``role`` is ``key``.
    """
    source = sources.SOURCES[key]
    options = {o.name: o for o in sources.UNIT_OPTIONS.get(key, ())}
    if units is not None and units not in options:
        raise InputError(f"{key.upper()}: unknown units {units!r}; choose one of {list(options) or 'none'} or leave "
                         f"it empty for the table's units", role=key)
    if path is None or not str(path).strip():
        raise InputError(f"{key.upper()}: no file was given; give the path of a raster", role=key)
    if not os.path.exists(str(path)) and "://" not in str(path) and not str(path).startswith(("/vsi", "NETCDF:",
                                                                                                   "HDF5:", "HDF4")):
        raise InputError(f"{key.upper()}: {path} not found; give the path of an existing raster file", role=key)
    if os.path.isfile(str(path)) and os.path.getsize(str(path)) == 0:
        raise InputError(f"{key.upper()}: {path} is an empty file (0 bytes); give a complete raster file", role=key)
    constants = dict(constants or {})
    fallback_constants = {b: v for b, v in (fallback_constants or {}).items() if b in needed and b not in constants}
    _check_constants(source, {**constants, **fallback_constants})
    try:
        ds = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise InputError(f"cannot open the {key} input {path!r} ({exc}); give a raster file GDAL can read",
                         role=key) from None
    try:
        layer = _resolve_bands(source, ds, str(path), needed, bands, constants, fallback_constants, acquired_utc,
                               product)
    except BaseException:
        ds.close()
        raise
    layer.unit = options.get(units) if units else None
    layer.dn_offset = None if dn_offset is None else float(dn_offset)
    for w in layer.warnings:
        log.warning(w)
    log.debug("%s: %s bands %s crs %s bounds %s", key, path, layer.band_index, ds.crs, tuple(ds.bounds))
    return layer


def _resolve_bands(source: sources.Source, ds: Any, path: str, needed: list[str], bands: dict[str, int] | None,
                   constants: dict[str, float], fallback_constants: dict[str, float], acquired_utc: str | None,
                   product: str | None) -> SourceLayer:
    """The :class:`SourceLayer` of the open file ``ds`` (see :func:`open_layer`); InputError if it cannot be one."""
    key = source.key
    if ds.crs is None:
        raise InputError(f"the {key} input {path} has no CRS; assign one (e.g. in QGIS: Assign projection)", role=key)
    warnings: list[str] = []
    notes: list[str] = []
    to_find = [b for b in needed if b not in constants]
    descriptions = list(ds.descriptions)
    if bands:
        unknown = [b for b in bands if b not in source.band_names]
        if unknown:
            raise InputError(f"the {key} input has no band called {unknown}; its bands are {source.band_names}",
                             role=key)
        bad = {b: i for b, i in bands.items() if not 1 <= int(i) <= ds.count}
        if bad:
            raise InputError(
                f"{path} has {ds.count} band(s) but the {key} bands were declared at {bad}; "
                f"give 1-based indices between 1 and {ds.count}",
                role=key,
            )
        index = {b: int(i) for b, i in bands.items() if b in to_find}
    else:
        index = recognise_bands(source, descriptions, to_find)
        missing = [b for b in to_find if b not in index and b not in fallback_constants]
        order = source.file_band_order
        if missing and len(to_find) == 1 and ds.count == 1:
            index = {to_find[0]: 1}
            if descriptions[0]:
                warnings.append(f"{key}: took the single band {descriptions[0]!r} of {path} as {to_find[0]}")
        elif missing and not any(descriptions) and ds.count == len(order):
            index = {b: order.index(b) + 1 for b in to_find}
            warnings.append(f"{key}: {path} has no band descriptions; assumed the band order {list(order)}")
    for name, value in fallback_constants.items():
        if name in index:
            notes.append(f"{key}: the file has a band {name}; the fallback constant {value:g} is not used")
        else:
            constants[name] = value
    missing = [b for b in to_find if b not in index and b not in constants]
    if missing:
        desc = [d or "(none)" for d in descriptions]
        may_be_constant = [b for b in missing if source.band(b).constant_note]
        hint = ""
        if may_be_constant:
            example = ", ".join(f"'{b}': {sum(source.band(b).physical_range) / 2:g}" for b in may_be_constant)
            hint = (f" (a missing {' or '.join(may_be_constant)} band can be given as a constant, "
                    f"e.g. constants={{{example}}})")
        raise InputError(
            f"the {key} input {path} has {ds.count} band(s) described {desc}, but the model needs {needed} "
            f"and {missing} could not be recognised; {_band_help(key, needed)}{hint}",
            role=key,
        )
    native_scale, used_product = 1.0, product or source.ee_collection
    successor = source.successor
    by_desc = successor and any(
        d and normalise_band_name(d) == normalise_band_name(successor["ee_band"]) for d in descriptions
    )
    if successor and by_desc and product == source.ee_collection:
        raise InputError(
            f"the {key} input {path} has a band described {successor['ee_band']!r}, the successor product "
            f"{successor['ee_collection']} ({successor['units']}), but the product was set to {product}; "
            f"choose {successor['ee_collection']} as the {key} product (or leave it unset)",
            role=key,
        )
    if successor and (product == successor["ee_collection"] or (product is None and by_desc)):
        native_scale = float(successor["to_native_scale"])
        used_product = successor["ee_collection"]
        log.info(
            "%s: successor product %s (%s) scaled by %g to the trained-on units",
            key,
            used_product,
            successor["units"],
            native_scale,
        )
    acquired = acquired_utc or ds.tags().get("ACQUISITION_TIME")  # checked by checks.check_times
    for name, value in constants.items():
        note = source.band(name).constant_note
        warnings.append(
            f"{key}: band {name} is the constant {value} (not in {os.path.basename(path)})"
            + (f"; {note}" if note else "")
        )
    return SourceLayer(key, path, ds, index, constants, native_scale, used_product, acquired, warnings, notes)
