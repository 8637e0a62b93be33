"""Read the SMAP HDF5 files users download (SPL3SMP 36 km, SPL2SMAP_S 3 km) onto EASE-Grid 2.0 GeoTIFFs.

The first step of the 3 km flow for real data: NSIDC's HDF5 granules carry their soil
moisture as plain 2-D datasets without a georeference GDAL understands, so this module
reads them with GDAL's HDF5 driver (through rasterio; no h5py needed in QGIS) and places
them on the EASE-Grid 2.0 global grids (EPSG:6933) the SMEN kind reads:

* **SPL3SMP** (SMAP L3 radiometer global daily 36 km): the global 406 x 964 grid; datasets
  ``Soil_Moisture_Retrieval_Data_AM/soil_moisture`` (descending, 6 am) and
  ``Soil_Moisture_Retrieval_Data_PM/soil_moisture_pm`` (ascending, 6 pm); fill -9999.
* **SPL2SMAP_S** (SMAP/Sentinel-1 L2 active-passive, 3 km): a sub-grid of the global
  4872 x 11568 grid per Sentinel-1 scene; dataset
  ``Soil_Moisture_Retrieval_Data_3km/soil_moisture_3km`` with its global position in
  ``EASE_row_index_3km`` / ``EASE_column_index_3km``; fill -9999.

The date comes from the file name (``SMAP_L3_SM_P_20180101_R18290_001.h5``,
``SMAP_L2_SM_SP_1AIWDV_20180101T001234_..._001.h5``) unless given. Earth Engine does not
carry either product (its catalog has SPL3SMP_E at 9 km, SPL4SMGP at 9 km and the
NASA-USDA 10 km product; see docs/smen.md), so these files are the way in.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .kinds.smen import EASE2_3KM_M, EASE2_36KM_M, EASE2_CRS, EASE2_X_MIN_M, EASE2_Y_MAX_M, NODATA

log = logging.getLogger(__name__)

#: SMAP's fill value for soil moisture and the EASE index datasets' upper bound (global 3 km grid rows/cols).
SMAP_FILL = -9999.0
_DATE = re.compile(r"_(\d{8})(?:T\d{6})?_")


@dataclass(frozen=True)
class ProductSpec:
    """Where one SMAP product keeps its soil moisture and georeference."""

    key: str
    title: str
    pixel_size_m: float
    datasets: dict[str, str]  # pass name -> HDF5 dataset path
    row_index: str = ""  # dataset of global EASE rows (sub-grid products)
    col_index: str = ""


PRODUCTS = {
    "SPL3SMP": ProductSpec(
        "SPL3SMP",
        "SMAP L3 radiometer global daily 36 km",
        EASE2_36KM_M,
        {
            "AM": "Soil_Moisture_Retrieval_Data_AM/soil_moisture",
            "PM": "Soil_Moisture_Retrieval_Data_PM/soil_moisture_pm",
        },
    ),
    "SPL2SMAP_S": ProductSpec(
        "SPL2SMAP_S",
        "SMAP/Sentinel-1 L2 active-passive 3 km",
        EASE2_3KM_M,
        {"3km": "Soil_Moisture_Retrieval_Data_3km/soil_moisture_3km"},
        row_index="Soil_Moisture_Retrieval_Data_3km/EASE_row_index_3km",
        col_index="Soil_Moisture_Retrieval_Data_3km/EASE_column_index_3km",
    ),
}


@dataclass
class SmapGrid:
    """Soil moisture (m3/m3, NaN = fill) placed on the EASE-Grid 2.0 grid: global (col0, row0) of [0, 0]."""

    values: np.ndarray
    col0: int
    row0: int
    pixel_size_m: float
    date: dt.date | None
    product: str


def date_from_name(path: str | os.PathLike) -> dt.date | None:
    """The (first) date in a SMAP file name, or None."""
    match = _DATE.search(Path(path).name)
    return dt.datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _read_dataset(path: str, dataset: str) -> np.ndarray:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # SMAP datasets carry no GDAL georeference
            with rasterio.open(f'HDF5:"{path}"://{dataset}') as ds:
                return ds.read(1)
    except (RasterioError, OSError) as exc:
        raise InputError(
            f"{path}: cannot read the HDF5 dataset {dataset} ({exc}); is this the right SMAP product?"
        ) from None


def read_smap_hdf5(path: str | os.PathLike, product: str, *, overpass: str | None = None) -> SmapGrid:
    """Read the soil moisture of a SMAP HDF5 file (``product`` a key of :data:`PRODUCTS`).

    ``overpass`` picks the SPL3SMP pass (``AM``, default, or ``PM``).
    """
    if product not in PRODUCTS:
        raise InputError(f"unknown SMAP product {product!r}; choose one of {sorted(PRODUCTS)}")
    spec = PRODUCTS[product]
    name = overpass or next(iter(spec.datasets))
    if name not in spec.datasets:
        raise InputError(f"{product} has no pass {name!r}; choose one of {sorted(spec.datasets)}")
    path = str(path)
    values = _read_dataset(path, spec.datasets[name]).astype(np.float64)
    values[(values == SMAP_FILL) | (values < 0.0) | (values > 1.0)] = np.nan
    col0 = row0 = 0
    if spec.row_index:
        rows = _read_dataset(path, spec.row_index).astype(np.int64)
        cols = _read_dataset(path, spec.col_index).astype(np.int64)
        n_rows = round(2 * EASE2_Y_MAX_M / spec.pixel_size_m)
        n_cols = round(-2 * EASE2_X_MIN_M / spec.pixel_size_m)
        ii, jj = np.indices(values.shape)
        ok_r, ok_c = (rows >= 0) & (rows < n_rows), (cols >= 0) & (cols < n_cols)
        if not ok_r.any() or not ok_c.any():
            raise InputError(f"{path}: the EASE row/column index datasets hold no valid index")
        offsets_r, offsets_c = np.unique(rows[ok_r] - ii[ok_r]), np.unique(cols[ok_c] - jj[ok_c])
        if len(offsets_r) != 1 or len(offsets_c) != 1:
            raise InputError(f"{path}: the 3 km data are not one rectangular sub-grid of EASE-Grid 2.0")
        row0, col0 = int(offsets_r[0]), int(offsets_c[0])
    return SmapGrid(values, col0, row0, spec.pixel_size_m, date_from_name(path), product)


def to_geotiff(
    path: str | os.PathLike,
    output_path: str | os.PathLike,
    product: str,
    *,
    overpass: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    date: str | dt.date | None = None,
) -> str:
    """Write a SMAP HDF5 file's soil moisture as an EASE-Grid 2.0 GeoTIFF (float32, nodata -9999).

    ``bounds`` (xmin, ymin, xmax, ymax in EPSG:6933 m) crops to the pixels that touch it. The file
    carries ``ACQUISITION_TIME`` (the date), ``PRODUCT`` and a ``soil_moisture`` band in m3/m3;
    written to a temporary name and renamed, so a failure leaves nothing.
    """
    import rasterio
    from affine import Affine

    grid = read_smap_hdf5(path, product, overpass=overpass)
    values, col0, row0, px = grid.values, grid.col0, grid.row0, grid.pixel_size_m
    if bounds is not None:
        xmin, ymin, xmax, ymax = bounds
        c_a = max(col0, int(np.floor((xmin - EASE2_X_MIN_M) / px)))
        c_b = min(col0 + values.shape[1], int(np.ceil((xmax - EASE2_X_MIN_M) / px)))
        r_a = max(row0, int(np.floor((EASE2_Y_MAX_M - ymax) / px)))
        r_b = min(row0 + values.shape[0], int(np.ceil((EASE2_Y_MAX_M - ymin) / px)))
        if c_a >= c_b or r_a >= r_b:
            raise InputError(f"{path}: the bounds {bounds} do not overlap the file's grid")
        values = values[r_a - row0 : r_b - row0, c_a - col0 : c_b - col0]
        col0, row0 = c_a, r_a
    when = date if date is not None else grid.date
    if isinstance(when, str):
        when = dt.date.fromisoformat(when[:10])
    transform = Affine(px, 0.0, EASE2_X_MIN_M + col0 * px, 0.0, -px, EASE2_Y_MAX_M - row0 * px)
    out = os.path.abspath(output_path)
    fd, tmp = tempfile.mkstemp(prefix=".smap.", suffix=".part.tif", dir=os.path.dirname(out))
    os.close(fd)
    try:
        with rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            width=values.shape[1],
            height=values.shape[0],
            count=1,
            dtype="float32",
            crs=EASE2_CRS,
            transform=transform,
            nodata=NODATA,
            compress="deflate",
        ) as ds:
            ds.write(np.where(np.isfinite(values), values, NODATA).astype(np.float32), 1)
            ds.set_band_description(1, "soil_moisture")
            ds.set_band_unit(1, "m3/m3")
            tags = {"PRODUCT": f"{product} ({PRODUCTS[product].title})", "SOURCE_FILE": os.path.basename(str(path))}
            if when:
                tags["ACQUISITION_TIME"] = when.isoformat()
            ds.update_tags(**tags)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    log.info("wrote %s: %s %d x %d px from %s", out, product, values.shape[1], values.shape[0], path)
    return out
