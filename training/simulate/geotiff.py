"""GeoTIFF stacks as Earth Engine would deliver them (one file per source, native grid and CRS).

Each file carries its band names (the ``sources`` table's names, as band
descriptions), per-band ``UNITS`` tags, a dataset ``ACQUISITION_TIME`` tag
(ISO-8601, UTC), ``PRODUCT`` and ``SIMULATED`` tags, nodata, optional GDAL
scale/offset (physical = stored * scale + offset) and DEFLATE compression with
a predictor. Writing is byte-for-byte deterministic for the same arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

LOG = logging.getLogger(__name__)


@dataclass
class BandSpec:
    """One band to write: its name, physical units and storage scaling."""

    name: str
    units: str
    scale: float = 1.0
    offset: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)


def write_stack(
    path: str | Path,
    arrays: Sequence[np.ndarray],
    bands: Sequence[BandSpec],
    *,
    crs: str,
    transform: Affine,
    dtype: str,
    nodata: float,
    acquisition_time: str | None,
    product: str,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Write physical ``arrays`` (NaN = nodata) as a compressed GeoTIFF.

    Parameters
    ----------
    path : str | Path
        output file.
    arrays : Sequence[np.ndarray]
        one ``[rows, cols]`` array per band, in physical units (NaN for nodata).
    bands : Sequence[BandSpec]
        name, units and storage ``scale`` / ``offset`` per band; stored
        integers are ``round((value - offset) / scale)``.
    crs : str
        CRS string (e.g. ``"EPSG:32614"``, ``"EPSG:4326"``, ``"ESRI:54052"``).
    transform : Affine
        affine geotransform of the grid (pixel corners).
    dtype : str
        storage dtype (``"int16"``, ``"uint16"``, ``"float32"``).
    nodata : float
        stored nodata value (checked against the dtype's range).
    acquisition_time : str | None
        ISO-8601 UTC time, or None for static sources.
    product : str
        the Earth Engine collection the file stands in for.
    tags : Mapping[str, str] | None
        extra dataset tags.

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    # GDAL's side-car statistics of an earlier file would describe the old pixels
    path.with_name(path.name + ".aux.xml").unlink(missing_ok=True)
    np_dtype = np.dtype(dtype)
    if np.issubdtype(np_dtype, np.integer):
        info = np.iinfo(np_dtype)
        if not info.min <= nodata <= info.max:
            raise ValueError(f"nodata {nodata} does not fit {dtype}")
    rows, cols = arrays[0].shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": len(arrays),
        "dtype": dtype,
        "crs": CRS.from_string(crs),
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 2 if np.issubdtype(np_dtype, np.integer) else 3,
        "zlevel": 9,
        "tiled": cols >= 256 and rows >= 256,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        for k, (arr, spec) in enumerate(zip(arrays, bands), start=1):
            values = np.asarray(arr, dtype=np.float64)
            stored = (values - spec.offset) / spec.scale
            if np.issubdtype(np_dtype, np.integer):
                info = np.iinfo(np_dtype)
                stored = np.clip(np.rint(stored), info.min + 1, info.max - 1)
            stored = np.where(np.isfinite(values), stored, nodata).astype(np_dtype)
            dst.write(stored, k)
            dst.set_band_description(k, spec.name)
            dst.update_tags(k, UNITS=spec.units, **spec.tags)
        dst.scales = tuple(b.scale for b in bands)
        dst.offsets = tuple(b.offset for b in bands)
        dataset_tags = {"PRODUCT": product, "SIMULATED": "true"}
        if acquisition_time:
            dataset_tags["ACQUISITION_TIME"] = acquisition_time
        dataset_tags.update(tags or {})
        dst.update_tags(**dataset_tags)
    LOG.debug("wrote %s: %s %dx%d %s %s", path.name, crs, cols, rows, dtype, transform)
    return path
