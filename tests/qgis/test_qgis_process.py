"""qgis_process (headless QGIS) finds the plugin and runs the algorithm like processing.run does.

Debian 12's ``/usr/bin/qgis_process`` wrapper is broken on QGIS 3.22, so the binary
``/usr/bin/qgis_process.bin`` is called directly, with QGIS_PLUGINPATH pointing at
build/plugins (where ``make plugin-link`` links the repository as ``smqgis``), the repo's
own profile and XDG folders, and the venv's bin first on PATH so QGIS's Python sees
onnxruntime and rasterio.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sm_qgis_helpers import ALG_ID, run_qgis_process


@pytest.fixture(scope="module")
def enabled_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enable the smqgis plugin in the repo's qgis_process profile; return a scratch cwd."""
    cwd = tmp_path_factory.mktemp("qgis_process")
    proc = run_qgis_process("plugins", "enable", "smqgis", cwd=cwd, timeout=120)
    # qgis_process 3.22 exits 1 with "Plugin is already enabled!" on a second enable
    assert proc.returncode == 0 or "already enabled" in proc.stderr, proc.stderr + proc.stdout
    return cwd


def test_plugin_is_discovered_and_enabled(enabled_plugin: Path) -> None:
    proc = run_qgis_process("plugins", cwd=enabled_plugin, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "* smqgis" in proc.stdout.splitlines() or any(
        line.strip() == "* smqgis" for line in proc.stdout.splitlines()
    ), proc.stdout


def test_algorithm_is_listed_with_help(enabled_plugin: Path) -> None:
    listing = run_qgis_process("list", cwd=enabled_plugin, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert f"{ALG_ID}\tSoil moisture 320 m from layers" in listing.stdout
    helped = run_qgis_process("help", ALG_ID, cwd=enabled_plugin, timeout=120)
    assert helped.returncode == 0, helped.stderr
    for name in ("MODEL:", "SENTINEL1:", "S1_ANGLE_DEG:", "SMAP_PRODUCT:", "EXTENT:", "OUTPUT_CRS:", "MODE:",
                 "PROVIDER:", "OUTPUT:"):
        assert name in helped.stdout, name


@pytest.mark.slow
def test_qgis_process_run_matches_processing_run(enabled_plugin: Path, sample_run: dict) -> None:
    """qgis_process run --json on the sample writes the same raster as processing.run in-process."""
    out_path = enabled_plugin / "sm_qgis_process.tif"
    params = {**sample_run["params"], "OUTPUT": str(out_path)}
    args = [f"--{name}={value}" for name, value in params.items()]
    proc = run_qgis_process("run", ALG_ID, "--json", *args, cwd=enabled_plugin)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert Path(report["results"]["OUTPUT"]) == out_path
    assert report["results"]["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    assert report["results"]["MODEL_LABEL"] == sample_run["result"]["MODEL_LABEL"]
    with rasterio.open(out_path) as got, rasterio.open(sample_run["path"]) as ref:
        assert got.crs == ref.crs
        assert got.transform == ref.transform
        assert (got.width, got.height, got.count) == (ref.width, ref.height, ref.count)
        assert got.nodata == ref.nodata
        got_sm, ref_sm = got.read(1), ref.read(1)
        np.testing.assert_array_equal(got.read(2), ref.read(2))  # input coverage: exact
        np.testing.assert_array_equal(got_sm == got.nodata, ref_sm == ref.nodata)  # same nodata pixels
        # onnxruntime's multithreaded CPU kernels are not bitwise reproducible across processes:
        # with the demo model ~6 % of pixels differ by 1 float32 ulp (6e-8 m3/m3); 1e-6 m3/m3 is
        # four orders of magnitude below the 0.01 m3/m3 precision of soil-moisture sensors
        np.testing.assert_allclose(got_sm, ref_sm, rtol=0.0, atol=1e-6)


@pytest.mark.slow
def test_the_demo_run_leaves_the_sample_as_shipped(enabled_plugin: Path, tmp_path: Path) -> None:
    """make demo's qgis_process run writes its map and nothing beside the sample's rasters (no .aux.xml)."""
    import hashlib
    import shutil

    from smqgis import demo

    sample = tmp_path / "sample"
    shutil.copytree(demo.SAMPLE_DIR, sample)
    before = {p.relative_to(sample): hashlib.sha256(p.read_bytes()).hexdigest() for p in sample.rglob("*")
              if p.is_file()}
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    results = demo.run_via_qgis_process(str(demo.DEMO_MODEL), sample, str(out), "fast", "cpu")
    assert Path(results["OUTPUT"]) == out
    after = {p.relative_to(sample): hashlib.sha256(p.read_bytes()).hexdigest() for p in sample.rglob("*")
             if p.is_file()}
    assert after == before  # no side-car file, no byte changed
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.tif"]
    with rasterio.open(out) as ds, rasterio.open(demo.SAMPLE_DIR / "truth_sm_320m.tif") as truth:
        sm = ds.read(1)
        valid = sm != ds.nodata
        assert valid.mean() > 0.9
        assert abs(float(sm[valid].mean()) - float(truth.read(1, masked=True).mean())) < 0.05  # m3/m3
