"""Shared constants and helpers of the QGIS-side tests (imported by conftest.py and the tests).

conftest.py puts this folder on sys.path, so tests import it as ``sm_qgis_helpers``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import QgsProcessingFeedback
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "resources" / "sample"
DEMO_MODEL = REPO / "resources" / "models" / "demo_fusion_simulated.onnx"
#: The project's shared/ folder sits beside the checkout (CI clones main next to it);
#: SMQGIS_SHARED overrides, /work/shared is the developers' machines' location.
SHARED_DIR = next(
    (p for p in (Path(os.environ.get("SMQGIS_SHARED", "/nonexistent")), REPO.parent / "shared", Path("/work/shared"))
     if (p / "data" / "real").is_dir()),
    REPO.parent / "shared",
)
REAL_DIR = SHARED_DIR / "data" / "real" / "sentinel1_2_sen1floods11"
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")  # Debian's qgis_process wrapper is broken on 3.22
ALG_ID = "smqgis:estimate_sm_320m"

#: Parameter name of each sample input source (keys as in smqgis.core.sources).
SOURCE_PARAMS = {
    "sentinel1": "SENTINEL1",
    "sentinel2": "SENTINEL2",
    "dem": "DEM",
    "soilgrids": "SOILGRIDS",
    "smap": "SMAP",
    "gldas": "GLDAS",
}


class LogFeedback(QgsProcessingFeedback):
    """A feedback that records info, warnings and errors, for assertions."""

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802 - QGIS API
        self.infos.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802 - QGIS API
        self.warnings.append(warning)
        super().pushWarning(warning)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803 - QGIS API
        self.errors.append(error)
        super().reportError(error, fatalError)


def sample_manifest() -> dict[str, Any]:
    """The sample scene's manifest (resources/sample/manifest.json)."""
    return json.loads((SAMPLE_DIR / "manifest.json").read_text())


def sample_params(manifest: dict[str, Any], out_path: Path, model: Path, mode: int = 0) -> dict[str, Any]:
    """Algorithm parameters for the sample scene: every input of its manifest, CPU, ``mode`` (0 fast)."""
    params: dict[str, Any] = {"MODEL": str(model), "MODE": mode, "PROVIDER": 1, "OUTPUT": str(out_path)}
    for source, entry in manifest["inputs"].items():
        params[SOURCE_PARAMS[source]] = str(SAMPLE_DIR / entry["path"])
    return params


def qgis_process_env() -> dict[str, str]:
    """Environment for qgis_process: the repo's headless profile, the plugin path, the venv first on PATH."""
    env = dict(os.environ)
    build = REPO / "build"
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_CUSTOM_CONFIG_PATH=str(build / "qgis-profile"),
        XDG_RUNTIME_DIR=str(build / "xdg-runtime"),
        XDG_CACHE_HOME=str(build / "xdg-cache"),
        QGIS_PLUGINPATH=str(build / "plugins"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def run_qgis_process(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``qgis_process.bin ARGS`` headless (the plugin link must exist: ``make plugin-link``)."""
    if not QGIS_PROCESS.exists() or shutil.which(str(QGIS_PROCESS)) is None:
        pytest.skip("qgis_process.bin is not installed")
    if not (REPO / "build" / "plugins" / "smqgis").exists():
        pytest.fail("build/plugins/smqgis is missing: run `make plugin-link` first")
    return subprocess.run(
        [str(QGIS_PROCESS), *args],
        cwd=cwd,
        env=qgis_process_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def demo_model() -> Path:
    """The bundled demo model (skips the test while it is not in resources/ yet)."""
    if not DEMO_MODEL.is_file():
        pytest.skip("the demo model is not in resources/models/ yet")
    return DEMO_MODEL


def write_raster(
    path: Path,
    bands: dict[str, Any],
    *,
    crs: str,
    transform: Any,
    nodata: float | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write float32 arrays (band description -> 2-D array) as a GeoTIFF with band descriptions."""
    import rasterio

    arrays = [np.asarray(a, dtype="float32") for a in bands.values()]
    height, width = arrays[0].shape
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=len(arrays), dtype="float32",
        crs=crs, transform=transform, nodata=nodata,
    ) as dst:
        for i, (name, array) in enumerate(zip(bands, arrays), start=1):
            dst.write(array, i)
            dst.set_band_description(i, name)
        if tags:
            dst.update_tags(**tags)
    return path


# --- the Sen1Floods11 Spain chip with made-up static and coarse inputs -------------------
S1_PATH = REAL_DIR / "Spain_7370579_S1Hand.tif"
S2_PATH = REAL_DIR / "Spain_7370579_S2Hand.tif"
S1_ANGLE_DEG = 37.0  # mid-swath IW incidence angle (the chip's S1 file has no angle band)


def write_spain_inputs(folder: Path) -> dict[str, Path]:
    """DEM, SoilGrids, SMAP and GLDAS GeoTIFFs (EPSG:4326) covering the chip with a margin."""
    def grid(west: float, north: float, res: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray, object]:
        lon = west + (np.arange(width) + 0.5) * res
        lat = north - (np.arange(height) + 0.5) * res
        lon2, lat2 = np.meshgrid(lon, lat)
        return lon2, lat2, from_origin(west, north, res, res)

    lon, lat, transform = grid(-1.0, 38.3, 1 / 1200, 600, 480)  # ~90 m, SRTM-3-like
    ridge = 380.0 * np.exp(-((lon + 0.90) ** 2 + (lat - 38.12) ** 2) / 0.004)
    elevation = 20.0 + 100.0 * (lat - 38.0) + ridge
    paths = {
        "dem": write_raster(folder / "dem_spain.tif", {"elevation": elevation}, crs="EPSG:4326",
                            transform=transform, nodata=-32768.0)
    }
    lon, lat, transform = grid(-1.0, 38.3, 1 / 400, 200, 160)  # ~250 m like SoilGrids
    clay = 280.0 + 40.0 * np.tanh((38.1 - lat) * 20.0)  # heavier soils in the valley
    sand = 300.0 - 0.5 * (clay - 280.0)
    silt = 1000.0 - sand - clay
    paths["soilgrids"] = write_raster(
        folder / "soilgrids_spain.tif",
        {"sand": sand, "silt": silt, "clay": clay, "bdod": np.full_like(clay, 135.0)},
        crs="EPSG:4326", transform=transform, nodata=-32768.0,
    )
    lon, lat, transform = grid(-1.17, 38.48, 0.09, 8, 8)  # ~9-10 km
    paths["smap"] = write_raster(
        folder / "smap_spain.tif", {"ssm": 17.0 + 2.0 * np.sin(lon * 7.0) * np.cos(lat * 5.0)},
        crs="EPSG:4326", transform=transform, nodata=-9999.0,
        tags={"ACQUISITION_TIME": "2019-09-17T06:00:00Z"},
    )
    lon, lat, transform = grid(-1.25, 38.5, 0.25, 4, 4)
    paths["gldas"] = write_raster(
        folder / "gldas_spain.tif", {"SoilMoi0_10cm_inst": 32.0 + 2.0 * np.cos(lon * 3.0 + lat)},
        crs="EPSG:4326", transform=transform, nodata=-9999.0,
        tags={"ACQUISITION_TIME": "2019-09-17T06:00:00Z"},
    )
    return paths


def spain_params(static: dict[str, Path], out_path: Path, model: Path, s2_bands: str = "") -> dict[str, object]:
    """Algorithm parameters for the Sen1Floods11 chip with the inputs of :func:`write_spain_inputs`."""
    return {
        "MODEL": str(model),
        "SENTINEL1": str(S1_PATH),
        "S1_ANGLE_DEG": S1_ANGLE_DEG,
        "SENTINEL2": str(S2_PATH),
        "S2_BANDS": s2_bands,
        "DEM": str(static["dem"]),
        "SOILGRIDS": str(static["soilgrids"]),
        "SMAP": str(static["smap"]),
        "GLDAS": str(static["gldas"]),
        "MODE": 0,
        "PROVIDER": 1,
        "OUTPUT": str(out_path),
    }
