"""The SMAP HDF5 readers (smqgis.core.smap_hdf5) on small files written here with the real products' layout.

h5py lives in the training environment only, so the files are written (and the QGIS-free
reader, which uses GDAL's HDF5 driver through rasterio, is tested) here.
"""

from __future__ import annotations

import datetime as dt

import h5py
import numpy as np
import pytest
import rasterio

from smqgis.core import smap_hdf5
from smqgis.core.errors import InputError
from smqgis.core.kinds.smen import EASE2_3KM_M, EASE2_36KM_M, EASE2_X_MIN_M, EASE2_Y_MAX_M, read_grid_raster

#: Global EASE-Grid 2.0 36 km grid (rows, cols), as in SPL3SMP.
GLOBAL_36KM = (406, 964)


@pytest.fixture
def spl3smp(tmp_path):
    """A SPL3SMP-like file: global 36 km AM/PM soil moisture, fill -9999, a few known cells."""
    rng = np.random.default_rng(12)
    am = np.full(GLOBAL_36KM, -9999.0, np.float32)
    am[100:110, 200:215] = rng.uniform(0.05, 0.45, (10, 15)).astype(np.float32)
    pm = np.where(am > 0, am + 0.01, am).astype(np.float32)
    path = tmp_path / "SMAP_L3_SM_P_20180605_R18290_001.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("Soil_Moisture_Retrieval_Data_AM/soil_moisture", data=am, compression="gzip")
        f.create_dataset("Soil_Moisture_Retrieval_Data_PM/soil_moisture_pm", data=pm, compression="gzip")
        f["Soil_Moisture_Retrieval_Data_AM/soil_moisture"].attrs["_FillValue"] = np.float32(-9999.0)
    return path, am, pm


@pytest.fixture
def spl2smap_s(tmp_path):
    """A SPL2SMAP_S-like file: a 30 x 40 sub-grid of the global 3 km grid at row 1200, column 2400."""
    rng = np.random.default_rng(13)
    sm = rng.uniform(0.05, 0.45, (30, 40)).astype(np.float32)
    sm[:, :7] = -9999.0  # outside the Sentinel-1 swath
    rows, cols = np.indices(sm.shape)
    row_index = (rows + 1200).astype(np.uint16)
    col_index = (cols + 2400).astype(np.uint16)
    row_index[:, :7] = col_index[:, :7] = 65534  # the index datasets' fill where there is no data
    path = tmp_path / "SMAP_L2_SM_SP_1AIWDV_20180603T001230_20180602T120000_097W35N_R16020_001.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("Soil_Moisture_Retrieval_Data_3km")
        g.create_dataset("soil_moisture_3km", data=sm)
        g.create_dataset("EASE_row_index_3km", data=row_index)
        g.create_dataset("EASE_column_index_3km", data=col_index)
        g.create_dataset("latitude_3km", data=np.zeros_like(sm))
    return path, sm


def test_spl3smp_to_geotiff_values_grid_and_date(spl3smp, tmp_path) -> None:
    path, am, pm = spl3smp
    grid = smap_hdf5.read_smap_hdf5(path, "SPL3SMP")
    assert grid.date == dt.date(2018, 6, 5) and (grid.col0, grid.row0) == (0, 0)
    np.testing.assert_array_equal(np.isnan(grid.values), am < 0)
    # crop to the cells 200..214 x 100..109 (EPSG:6933 bounds of their centres)
    x0 = EASE2_X_MIN_M + 200.5 * EASE2_36KM_M
    y0 = EASE2_Y_MAX_M - 109.5 * EASE2_36KM_M
    bounds = (x0, y0, x0 + 14 * EASE2_36KM_M, y0 + 9 * EASE2_36KM_M)
    out = smap_hdf5.to_geotiff(path, tmp_path / "am.tif", "SPL3SMP", bounds=bounds)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 6933 and (ds.width, ds.height) == (15, 10)
        assert ds.tags()["ACQUISITION_TIME"] == "2018-06-05"
        np.testing.assert_allclose(ds.transform.c, EASE2_X_MIN_M + 200 * EASE2_36KM_M)
        np.testing.assert_allclose(ds.read(1), am[100:110, 200:215])
    pm_out = smap_hdf5.to_geotiff(path, tmp_path / "pm.tif", "SPL3SMP", overpass="PM", bounds=bounds)
    read = read_grid_raster(pm_out, "current_36km", EASE2_36KM_M)  # the SMEN reader accepts it as is
    assert (read.col0, read.row0, read.date) == (200, 100, dt.date(2018, 6, 5))
    np.testing.assert_allclose(read.values, pm[100:110, 200:215], rtol=1e-6)


def test_spl2smap_s_subgrid_is_placed_from_its_index_datasets(spl2smap_s, tmp_path) -> None:
    path, sm = spl2smap_s
    out = smap_hdf5.to_geotiff(path, tmp_path / "ap.tif", "SPL2SMAP_S")
    read = read_grid_raster(out, "history_3km", EASE2_3KM_M)
    assert (read.col0, read.row0) == (2400, 1200)
    assert read.date == dt.date(2018, 6, 3)
    assert np.isnan(read.values[:, :7]).all()
    np.testing.assert_allclose(read.values[:, 7:], sm[:, 7:], rtol=1e-6)


def test_wrong_product_is_a_clear_error_and_writes_nothing(spl3smp, tmp_path) -> None:
    path, _, _ = spl3smp
    with pytest.raises(InputError, match="soil_moisture_3km"):
        smap_hdf5.to_geotiff(path, tmp_path / "x.tif", "SPL2SMAP_S")
    assert list(tmp_path.glob("*.tif")) == []
