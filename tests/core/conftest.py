"""Fixtures of the smqgis/core tests: small test models and synthetic input scenes.

Scenes are seeded GeoTIFFs written by :func:`write_scene` into a temporary folder, each
source on its own CRS and resolution the way users have them (Sentinel-1 in UTM at 10 m,
Sentinel-2 as uint16 DN in lon/lat with shuffled, zero-padded band names, a DEM in Web
Mercator with GDAL scale/offset and no band description, SoilGrids, SMAP and GLDAS in
lon/lat). The "aligned" scene puts every source on the target UTM grids instead, so a
reference can be computed by slicing arrays.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds

from smqgis.core.pipeline import LayerInput

ROOT = Path(__file__).resolve().parents[2]
UTM = "EPSG:32614"
#: The scene's Sentinel-1 footprint in UTM 14N (m): 9.6 km x 8.96 km near Oklahoma City.
S1_BOUNDS = (600000.0, 3900000.0, 609600.0, 3908960.0)

_spec = importlib.util.spec_from_file_location("make_test_model", ROOT / "tests" / "data" / "make_test_model.py")
make_test_model_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_test_model_module)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def context_model(model_dir) -> str:
    """Test model whose encoder cells see their neighbours (3 x 3 padded convs)."""
    return str(make_test_model_module.make_test_model(model_dir / "context.onnx", context=True, seed=1))


@pytest.fixture(scope="session")
def local_model(model_dir) -> str:
    """Test model whose encoder cells are independent (2 x 2 convs): fast == exact."""
    return str(make_test_model_module.make_test_model(model_dir / "local.onnx", context=False, seed=2))


@pytest.fixture(scope="session")
def exported_model(model_dir) -> str:
    """A model exported by training/export.py (small config, random init), if one can be had."""
    built = ROOT / "build" / "models" / "smqgis_small_full_random.onnx"
    if built.is_file():
        return str(built)
    train_py = ROOT / ".venv-train" / "bin" / "python"
    if not train_py.exists():
        pytest.skip("no exported model and no training environment")
    out = model_dir / "exported_small.onnx"
    subprocess.run(
        [str(train_py), "-m", "training.export", "--random-init", "--config", "small", "--variant", "full",
         "--seed", "0", "--out", str(out), "--title", "test export", "--trained-on", "random"],
        cwd=ROOT, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300,
    )
    return str(out)


def _field(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, lo: float, hi: float, scale: float) -> np.ndarray:
    """A smooth random field between lo and hi over coordinates x, y (any units; ``scale`` in them)."""
    a, b, c = rng.uniform(0.5, 2.0, 3)
    phase = rng.uniform(0, 2 * np.pi, 2)
    f = np.sin(a * x / scale + phase[0]) * np.cos(b * y / scale + phase[1]) + 0.5 * np.sin(c * (x + y) / scale)
    f = (f + 1.5) / 3.0 + rng.normal(0, 0.03, f.shape)
    return lo + (hi - lo) * np.clip(f, 0, 1)


def _write(path: Path, crs: str, transform: Affine, bands: dict[str | None, np.ndarray], dtype: str,
           nodata: float | None = None, scale: float = 1.0, offset: float = 0.0, tags: dict | None = None) -> str:
    arrays = list(bands.values())
    h, w = arrays[0].shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=len(arrays), dtype=dtype, crs=crs,
                       transform=transform, nodata=nodata) as ds:
        for i, (name, arr) in enumerate(bands.items(), start=1):
            ds.write(arr.astype(dtype), i)
            if name:
                ds.set_band_description(i, name)
        if scale != 1.0 or offset != 0.0:
            ds.scales = [scale] * len(arrays)
            ds.offsets = [offset] * len(arrays)
        if tags:
            ds.update_tags(**tags)
    return str(path)


def _grid(bounds: tuple, res: float) -> tuple[Affine, int, int, np.ndarray, np.ndarray]:
    w = int(round((bounds[2] - bounds[0]) / res))
    h = int(round((bounds[3] - bounds[1]) / res))
    t = Affine(res, 0, bounds[0], 0, -res, bounds[3])
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return t, w, h, bounds[0] + cols * res, bounds[3] - rows * res


def write_scene(folder: Path, *, seed: int = 0, aligned: bool = False, s1_hole: tuple | None = None
                ) -> dict[str, LayerInput]:
    """Write one synthetic scene and return its inputs.

    Parameters
    ----------
    aligned : bool
        Every source in UTM 14N on the model grids (10 m, 160 m, 3200 m) instead of its own CRS.
    s1_hole : tuple, optional
        (row0, col0, size) of a square of nodata in Sentinel-1 pixels.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lonlat = transform_bounds(UTM, "EPSG:4326", *S1_BOUNDS)
    pad = 0.02
    big = (lonlat[0] - pad, lonlat[1] - pad, lonlat[2] + pad, lonlat[3] + pad)
    tags = {"ACQUISITION_TIME": "2020-06-01T12:00:00Z"}
    inputs: dict[str, LayerInput] = {}

    t, w, h, x, y = _grid(S1_BOUNDS, 10.0)
    s1 = {n: _field(x, y, rng, lo, hi, 900.0) for n, lo, hi in (("VV", -20, -5), ("VH", -25, -12), ("angle", 30, 45))}
    if s1_hole:
        r0, c0, n = s1_hole
        for arr in s1.values():
            arr[r0:r0 + n, c0:c0 + n] = -9999.0
    inputs["sentinel1"] = LayerInput(_write(folder / "s1.tif", UTM, t, s1, "float32", nodata=-9999.0, tags=tags))

    s2_names = [("B12", "B12"), ("B04", "B4"), ("B03", "B3"), ("B8", "B8"), ("B02", "B2"), ("B11", "B11")]
    if aligned:
        s2_bounds, s2_res, s2_crs = (S1_BOUNDS[0] - 500, S1_BOUNDS[1] - 500, S1_BOUNDS[2] + 500,
                                     S1_BOUNDS[3] + 500), 10.0, UTM
    else:
        s2_bounds, s2_res, s2_crs = big, 0.0001, "EPSG:4326"
    t, w, h, x, y = _grid(s2_bounds, s2_res)
    sc = 900.0 if aligned else 0.009
    s2 = {desc: np.round(_field(x, y, rng, 300, 4000, sc)) for desc, _ in s2_names}
    inputs["sentinel2"] = LayerInput(_write(folder / "s2.tif", s2_crs, t, s2, "uint16", nodata=0))

    if aligned:
        dem_bounds, dem_res, dem_crs = s2_bounds, 10.0, UTM
    else:
        dem_bounds, dem_res, dem_crs = transform_bounds("EPSG:4326", "EPSG:3857", *big), 30.0, "EPSG:3857"
    t, w, h, x, y = _grid(dem_bounds, dem_res)
    elev = _field(x, y, rng, 250, 450, 1500.0)
    inputs["dem"] = LayerInput(_write(folder / "dem.tif", dem_crs, t, {None: np.round((elev - 100.0) / 0.5)}, "int16",
                                      nodata=-32768, scale=0.5, offset=100.0))

    if aligned:
        soil_bounds, soil_res, soil_crs, sc = (S1_BOUNDS[0] - 3200, S1_BOUNDS[1] - 3200, S1_BOUNDS[2] + 3200,
                                               S1_BOUNDS[3] + 3200), 160.0, UTM, 2000.0
    else:
        soil_bounds, soil_res, soil_crs, sc = big, 0.0025, "EPSG:4326", 0.02
    t, w, h, x, y = _grid(soil_bounds, soil_res)
    soil = {f"{n}_0-5cm_mean": np.round(_field(x, y, rng, lo, hi, sc)) for n, lo, hi in
            (("sand", 100, 600), ("silt", 100, 500), ("clay", 50, 400), ("bdod", 110, 160))}
    inputs["soilgrids"] = LayerInput(_write(folder / "soilgrids.tif", soil_crs, t, soil, "int16", nodata=-32768))

    for key, name, lo, hi, res_ll, res_m in (("smap", "ssm", 5, 40, 0.09, 3200.0),
                                             ("gldas", "SoilMoi0_10cm_inst", 10, 45, 0.25, 6400.0)):
        if aligned:
            b = (599040.0 - 4 * res_m, 3897600.0 - 4 * res_m, 609280.0 + 4 * res_m, 3910400.0 + 4 * res_m)
            b = tuple(np.round(np.array(b) / res_m) * res_m)
            t, w, h, x, y = _grid(b, res_m)
            crs = UTM
        else:
            b = (big[0] - res_ll, big[1] - res_ll, big[0] - res_ll + 4 * res_ll, big[1] - res_ll + 4 * res_ll)
            t, w, h, x, y = _grid(b, res_ll)
            crs = "EPSG:4326"
        vals = rng.uniform(lo, hi, (h, w))
        inputs[key] = LayerInput(_write(folder / f"{key}.tif", crs, t, {name: vals}, "float32", nodata=-9999.0,
                                        tags=tags))
    return inputs


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> dict[str, LayerInput]:
    """Multi-CRS synthetic scene (seed 0)."""
    return write_scene(tmp_path_factory.mktemp("scene"), seed=0)


@pytest.fixture(scope="session")
def aligned_scene(tmp_path_factory) -> dict[str, LayerInput]:
    """Synthetic scene on the target UTM grids (seed 3)."""
    return write_scene(tmp_path_factory.mktemp("aligned"), seed=3, aligned=True)


@pytest.fixture(scope="session")
def scene_factory():
    """:func:`write_scene`, for tests that need a scene of their own."""
    return write_scene
