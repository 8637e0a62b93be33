"""The behaviour pin: a fixed model, fixed inputs and the maps smqgis made of them, in both modes.

``tests/qgis/test_behaviour_pin.py`` runs the Processing algorithm through ``qgis_process`` on
the inputs of :func:`write_pin_inputs` with the model of :func:`make_pin_model` and compares the
map to ``tests/data/pin/reference_{fast,exact}.npy`` to 1e-5 m3/m3: a refactoring that changes a
value fails it.

What is pinned (all seeded, nothing here is real data):

- the model: ``tests/data/make_test_model.py``, variant ``full``, 3 x 3 "context" kernels (so
  fast and exact mode differ near window edges), seed 4, random weights (outputs spread over 0.15-0.45 m3/m3);
- the inputs (:func:`write_pin_inputs`, seed 11), each source in its own CRS, resolution,
  dtype and band order the way users have them: Sentinel-1 in UTM 14N at 10 m with a square of
  nodata; Sentinel-2 as uint16 DN in lon/lat with shuffled, zero-padded band names; a DEM in Web
  Mercator with GDAL scale/offset and no band description; SoilGrids in lon/lat (int16); SMAP as
  the successor product (band ``sm_surface`` in m3/m3, harmonised x 50 to mm) and GLDAS in lon/lat;
- the run: CPU, tiles of 5 output pixels (several tiles, the last ones partial).

The references were recorded with the code of commit 4c82b60 (before the model-kinds refactoring,
issue 9). Re-run this script only for an intended change of the maps, and say so in the commit::

    PATH=$PWD/.venv/bin:$PATH .venv/bin/python tests/data/make_pin_reference.py
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger("make_pin_reference")
REPO = Path(__file__).resolve().parents[2]
PIN_DIR = Path(__file__).resolve().parent / "pin"
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")  # Debian's qgis_process wrapper is broken on 3.22
ALGORITHM_ID = "smqgis:estimate_sm_320m"
#: The pinned model's seed and the inputs' seed.
MODEL_SEED = 4
INPUT_SEED = 11
#: Tile side of the pinned runs (output pixels): several tiles over the 20 x 19 px map, some partial.
TILE_PX = 5
#: The Sentinel-1 footprint in UTM 14N (m), 8.96 km x 8.32 km near Oklahoma City; the map is where a whole
#: 2.56 km model window fits inside it: 20 x 19 pixels of 320 m.
UTM = "EPSG:32614"
S1_BOUNDS = (600000.0, 3900000.0, 608960.0, 3908320.0)
#: Enum index of each mode in the algorithm's MODE parameter (schema.INFERENCE_MODES order).
MODE_INDEX = {"fast": 0, "exact": 1}


def make_pin_model(path: Path) -> Path:
    """Write the pinned test model (``make_test_model.py``, full variant, context kernels, seed 4)."""
    spec = importlib.util.spec_from_file_location("make_test_model", Path(__file__).resolve().parent
                                                  / "make_test_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.make_test_model(path, variant="full", context=True, seed=MODEL_SEED))


def _field(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, lo: float, hi: float, scale: float) -> np.ndarray:
    """A smooth seeded field between ``lo`` and ``hi`` over coordinates x, y (``scale`` in their units)."""
    a, b, c = rng.uniform(0.5, 2.0, 3)
    phase = rng.uniform(0, 2 * np.pi, 2)
    f = np.sin(a * x / scale + phase[0]) * np.cos(b * y / scale + phase[1]) + 0.5 * np.sin(c * (x + y) / scale)
    f = (f + 1.5) / 3.0 + rng.normal(0, 0.03, f.shape)
    return lo + (hi - lo) * np.clip(f, 0, 1)


def _grid(bounds: tuple[float, ...], res: float) -> tuple[object, np.ndarray, np.ndarray]:
    """Transform and pixel-centre coordinates of a north-up grid of ``res`` over ``bounds``."""
    from affine import Affine

    w = int(round((bounds[2] - bounds[0]) / res))
    h = int(round((bounds[3] - bounds[1]) / res))
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return Affine(res, 0, bounds[0], 0, -res, bounds[3]), bounds[0] + cols * res, bounds[3] - rows * res


def _write(path: Path, crs: str, transform: object, bands: dict[str | None, np.ndarray], dtype: str,
           nodata: float | None, *, scale: float = 1.0, offset: float = 0.0, tags: dict | None = None) -> str:
    import rasterio

    arrays = list(bands.values())
    height, width = arrays[0].shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=len(arrays), dtype=dtype,
                       crs=crs, transform=transform, nodata=nodata) as ds:
        for i, (name, array) in enumerate(bands.items(), start=1):
            ds.write(array.astype(dtype), i)
            if name:
                ds.set_band_description(i, name)
        if scale != 1.0 or offset != 0.0:
            ds.scales, ds.offsets = [scale] * len(arrays), [offset] * len(arrays)
        if tags:
            ds.update_tags(**tags)
    return str(path)


def write_pin_inputs(folder: Path) -> dict[str, str]:
    """Write the pinned input rasters into ``folder``; return their paths by source key."""
    from rasterio.warp import transform_bounds

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(INPUT_SEED)
    lonlat = transform_bounds(UTM, "EPSG:4326", *S1_BOUNDS)
    pad = 0.02  # deg: the other sources reach beyond Sentinel-1
    big = (lonlat[0] - pad, lonlat[1] - pad, lonlat[2] + pad, lonlat[3] + pad)
    tags = {"ACQUISITION_TIME": "2020-06-01T12:00:00Z"}
    paths: dict[str, str] = {}

    t, x, y = _grid(S1_BOUNDS, 10.0)
    s1 = {n: _field(x, y, rng, lo, hi, 700.0) for n, lo, hi in (("VV", -20, -5), ("VH", -25, -12), ("angle", 30, 45))}
    for array in s1.values():
        array[690:720, 120:150] = -9999.0  # a nodata hole: windows over it are nodata
    paths["sentinel1"] = _write(folder / "s1.tif", UTM, t, s1, "float32", -9999.0, tags=tags)

    t, x, y = _grid(big, 0.0001)
    s2 = {desc: np.round(_field(x, y, rng, 300, 4000, 0.007)) for desc in ("B12", "B04", "B03", "B8", "B02", "B11")}
    paths["sentinel2"] = _write(folder / "s2.tif", "EPSG:4326", t, s2, "uint16", 0)

    t, x, y = _grid(transform_bounds("EPSG:4326", "EPSG:3857", *big), 30.0)
    elevation = _field(x, y, rng, 250, 450, 1500.0)
    paths["dem"] = _write(folder / "dem.tif", "EPSG:3857", t, {None: np.round((elevation - 100.0) / 0.5)}, "int16",
                          -32768, scale=0.5, offset=100.0)

    t, x, y = _grid(big, 0.0025)
    soil = {f"{n}_0-5cm_mean": np.round(_field(x, y, rng, lo, hi, 0.02))
            for n, lo, hi in (("sand", 100, 600), ("silt", 100, 500), ("clay", 50, 400), ("bdod", 110, 160))}
    paths["soilgrids"] = _write(folder / "soilgrids.tif", "EPSG:4326", t, soil, "int16", -32768)

    for key, band, lo, hi, res in (("smap", "sm_surface", 0.1, 0.8, 0.09), ("gldas", "SoilMoi0_10cm_inst", 10, 45,
                                                                              0.25)):
        bounds = (big[0] - res, big[1] - res, big[0] + 3 * res, big[1] + 3 * res)
        t, x, y = _grid(bounds, res)
        paths[key] = _write(folder / f"{key}.tif", "EPSG:4326", t, {band: rng.uniform(lo, hi, x.shape)}, "float32",
                            -9999.0, tags=tags)
    return paths


def qgis_process_env() -> dict[str, str]:
    """Environment of a headless qgis_process run with the repository as the plugin ``smqgis``."""
    build = REPO / "build"
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "QGIS_CUSTOM_CONFIG_PATH": str(build / "qgis-profile"),
        "XDG_RUNTIME_DIR": str(build / "xdg-runtime"),
        "XDG_CACHE_HOME": str(build / "xdg-cache"),
        "QGIS_PLUGINPATH": str(build / "plugins"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def pin_params(model: Path, inputs: dict[str, str], mode: str, out_path: Path) -> dict[str, object]:
    """The algorithm's parameters of a pinned run."""
    keys = {"sentinel1": "SENTINEL1", "sentinel2": "SENTINEL2", "dem": "DEM", "soilgrids": "SOILGRIDS",
            "smap": "SMAP", "gldas": "GLDAS"}
    return {"MODEL": str(model), **{keys[k]: p for k, p in inputs.items()}, "MODE": MODE_INDEX[mode],
            "PROVIDER": 1, "TILE_PX": TILE_PX, "OUTPUT": str(out_path)}


def run_pinned(model: Path, inputs: dict[str, str], mode: str, out_path: Path, cwd: Path) -> dict[str, object]:
    """Run the algorithm through qgis_process; return ``{"bands": (2, H, W) float32, "crs", "transform"}``."""
    import rasterio

    args = [f"--{name}={value}" for name, value in pin_params(model, inputs, mode, out_path).items()]
    subprocess.run([str(QGIS_PROCESS), "plugins", "enable", "smqgis"], cwd=cwd, env=qgis_process_env(),
                   capture_output=True, text=True, timeout=120, check=False)
    proc = subprocess.run([str(QGIS_PROCESS), "run", ALGORITHM_ID, "--json", *args], cwd=cwd,
                          env=qgis_process_env(), capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"qgis_process failed ({proc.returncode}): {proc.stderr[-3000:]}{proc.stdout[-3000:]}")
    with rasterio.open(out_path) as ds:
        return {"bands": ds.read().astype(np.float32), "crs": ds.crs.to_string(), "transform": list(ds.transform)[:6],
                "tags": ds.tags()}


def main() -> None:
    """Record the reference maps of both modes into tests/data/pin/."""
    PIN_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = make_pin_model(tmp_path / "pin_model.onnx")
        inputs = write_pin_inputs(tmp_path / "inputs")
        grid = {}
        for mode in MODE_INDEX:
            run = run_pinned(model, inputs, mode, tmp_path / f"pin_{mode}.tif", tmp_path)
            np.save(PIN_DIR / f"reference_{mode}.npy", run["bands"])
            grid = {"crs": run["crs"], "transform": run["transform"], "shape": list(run["bands"].shape)}
            sm = run["bands"][0]
            log.info("%s: %s, valid fraction %.3f, mean %.5f m3/m3", mode, sm.shape, np.mean(sm != -9999.0),
                     sm[sm != -9999.0].mean())
        (PIN_DIR / "grid.json").write_text(json.dumps(grid, indent=1) + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
