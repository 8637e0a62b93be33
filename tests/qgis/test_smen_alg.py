"""``smqgis:estimate_sm_3km`` (SMEN 3 km) through processing.run and qgis_process, against the core called directly.

Runs on the bundled SMEN sample (``resources/sample_smen``, simulated, from
``python -m training.smen.make_resources``) with the bundled demo SMEN model. Values are
compared with ``smqgis.core.kinds.smen.estimate_sm_3km`` and with the sample's simulated
3 km truth; bad inputs must name their parameter and leave no file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from qgis.core import QgsApplication, QgsProcessingException

from sm_qgis_helpers import LogFeedback, run_qgis_process
from smqgis.core.kinds import smen

ALG = "smqgis:estimate_sm_3km"
pytestmark = pytest.mark.skipif(not smen.DEMO_MODEL.is_file(), reason="the demo SMEN model is not built")


@pytest.fixture(scope="module")
def core_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The core called directly on the sample (CPU), once."""
    out = tmp_path_factory.mktemp("smen_core") / "core.tif"
    s = smen.sample_inputs()
    result = smen.estimate_sm_3km(
        str(smen.DEMO_MODEL), s["current_36km"], s["history_36km"], s["history_3km"], str(out), provider="cpu"
    )
    return {"path": out, "result": result}


@pytest.fixture
def params(smqgis_provider: object, tmp_path: Path) -> dict[str, Any]:
    return smen.demo_processing_params(str(tmp_path / "out.tif"))


def assert_same_raster(got_path: Path, ref_path: Path) -> None:
    with rasterio.open(got_path) as got, rasterio.open(ref_path) as ref:
        assert got.crs == ref.crs and got.transform == ref.transform
        assert (got.width, got.height, got.count) == (ref.width, ref.height, ref.count)
        np.testing.assert_array_equal(got.read(2), ref.read(2))  # the history mask: exact
        # onnxruntime's threaded CPU kernels may differ by a float32 ulp between processes
        np.testing.assert_allclose(got.read(1), ref.read(1), rtol=0.0, atol=1e-6)


def test_algorithm_is_registered(smqgis_provider: object) -> None:
    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg is not None and alg.displayName() == "Soil moisture 3 km (SMEN)"
    names = [p.name() for p in alg.parameterDefinitions()]
    for name in (
        "MODEL",
        "CURRENT_36KM",
        "HISTORY_36KM",
        "HISTORY_3KM",
        "CURRENT_DATE",
        "HISTORY_DATES",
        "OUTPUT_CRS",
        "PROVIDER",
        "OUTPUT",
    ):
        assert name in names


def test_core_map_grid_values_and_tags(core_run: dict[str, Any]) -> None:
    """EASE-Grid 2.0 3 km, the sample's extent, better than the 36 km input against the simulated truth."""
    s = smen.sample_inputs()
    with rasterio.open(core_run["path"]) as ds, rasterio.open(s["history_3km"][0]) as h3:
        assert ds.crs.to_epsg() == 6933
        assert ds.transform == h3.transform and (ds.width, ds.height) == (h3.width, h3.height) == (108, 108)
        np.testing.assert_allclose(ds.transform.a, smen.EASE2_3KM_M)
        tags = ds.tags()
        assert "simulated" in tags["MODEL_LABEL"].lower()
        assert tags["CURRENT_DATE"] == s["current_date"]
        assert json.loads(tags["HISTORY_DATES"]) == s["history_dates"]
        assert tags["SMEN_K"] == "4" and tags["UNITS"] == "m3/m3"
        sm, hist = ds.read(1), ds.read(2)
    info = smen.summarize(str(core_run["path"]))
    assert info["ubrmse_vs_truth"] < info["ubrmse_36km_input_vs_truth"]
    assert info["ubrmse_vs_truth"] < 0.04
    # the mask says where any previous 3 km value existed
    any_3km = np.zeros(hist.shape, bool)
    for p in s["history_3km"]:
        with rasterio.open(p) as h:
            any_3km |= h.read(1) != h.nodata
    np.testing.assert_array_equal(hist == 1, any_3km)
    assert 0.0 <= sm.min() and sm.max() < 0.6 and (sm <= 0.0).sum() <= 3  # valid range; clipped pixels are rare


def test_processing_run_equals_core(params: dict[str, Any], core_run: dict[str, Any]) -> None:
    import processing

    feedback = LogFeedback()
    result = processing.run(ALG, params, feedback=feedback)
    assert result["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    assert "simulated" in result["MODEL_LABEL"].lower()
    assert_same_raster(Path(result["OUTPUT"]), core_run["path"])


def test_output_in_a_user_projected_crs(params: dict[str, Any], core_run: dict[str, Any], tmp_path: Path) -> None:
    import processing

    params["OUTPUT_CRS"] = "EPSG:32614"
    result = processing.run(ALG, params)
    with rasterio.open(result["OUTPUT"]) as ds, rasterio.open(core_run["path"]) as ref:
        assert ds.crs.to_epsg() == 32614
        assert abs(ds.transform.a - smen.EASE2_3KM_M) < 1.0
        sm = ds.read(1)
        ref_sm = ref.read(1)
        # the same field, resampled: the centre pixel agrees with the EASE-Grid map at the same place
        from rasterio.warp import transform as warp_points

        x, y = ds.xy(ds.height // 2, ds.width // 2)
        (ex,), (ey,) = warp_points("EPSG:32614", "EPSG:6933", [x], [y])
        r, c = ref.index(ex, ey)
        assert abs(float(sm[ds.height // 2, ds.width // 2]) - float(ref_sm[r, c])) < 0.02
        assert abs(float(sm[sm != ds.nodata].mean()) - float(ref_sm.mean())) < 0.005


def run_expecting_error(params: dict[str, Any], out_dir: Path) -> str:
    import processing

    before = set(out_dir.iterdir())
    with pytest.raises(QgsProcessingException) as info:
        processing.run(ALG, params)
    assert set(out_dir.iterdir()) == before, "a file was left behind"
    return str(info.value)


def _copy_shifted(src: str, dst: Path, dx_m: float) -> str:
    """A copy of a raster with its origin moved ``dx_m`` east."""
    from affine import Affine

    with rasterio.open(src) as ds:
        profile = ds.profile
        t = ds.transform
        profile["transform"] = Affine(t.a, t.b, t.c + dx_m, t.d, t.e, t.f)
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read())
            out.update_tags(**ds.tags())
    return str(dst)


def test_missing_pair(params: dict[str, Any], tmp_path: Path) -> None:
    params["HISTORY_3KM"] = params["HISTORY_3KM"][:3]
    message = run_expecting_error(params, tmp_path)
    assert message.startswith("HISTORY_3KM:") and "needs a pair" in message


def test_k_mismatch(params: dict[str, Any], tmp_path: Path) -> None:
    params["HISTORY_3KM"] = params["HISTORY_3KM"][1:]
    params["HISTORY_36KM"] = params["HISTORY_36KM"][1:]
    message = run_expecting_error(params, tmp_path)
    assert message.startswith("HISTORY_36KM:") and "k = 4" in message and "got 3" in message


def test_wrong_grid(params: dict[str, Any], tmp_path: Path) -> None:
    params["CURRENT_36KM"] = params["HISTORY_3KM"][0]  # a 3 km raster where the 36 km one belongs
    message = run_expecting_error(params, tmp_path)
    assert message.startswith("CURRENT_36KM:") and "wrong grid" in message and "36 km" in message


def test_misaligned_3km_raster(params: dict[str, Any], tmp_path: Path) -> None:
    inputs = tmp_path.parent / f"{tmp_path.name}_inputs"
    inputs.mkdir()
    params["HISTORY_3KM"][2] = _copy_shifted(params["HISTORY_3KM"][2], inputs / "shifted.tif", smen.EASE2_3KM_M)
    message = run_expecting_error(params, tmp_path)
    assert message.startswith("HISTORY_3KM:") and "history_3km[3]" in message and "not aligned" in message
    params["HISTORY_3KM"][2] = _copy_shifted(params["HISTORY_3KM"][1], inputs / "half.tif", 1000.0)
    message = run_expecting_error(params, tmp_path)
    assert message.startswith("HISTORY_3KM:") and "fraction of a pixel" in message


def test_dates_out_of_order(params: dict[str, Any], tmp_path: Path) -> None:
    dates = smen.sample_inputs()["history_dates"]
    params["HISTORY_DATES"] = ",".join([dates[1], dates[0], *dates[2:]])
    message = run_expecting_error(params, tmp_path)
    assert message.startswith("HISTORY_DATES:") and "out of order" in message
    params["HISTORY_DATES"] = ""
    params["CURRENT_DATE"] = dates[-1]  # the current date must follow every history date
    message = run_expecting_error(params, tmp_path)
    assert message.startswith("HISTORY_DATES:") and "before the current date" in message


@pytest.mark.slow
def test_qgis_process_equals_core(core_run: dict[str, Any], tmp_path: Path) -> None:
    cwd = tmp_path
    enabled = run_qgis_process("plugins", "enable", "smqgis", cwd=cwd, timeout=120)
    assert enabled.returncode == 0 or "already enabled" in enabled.stderr, enabled.stderr
    params = smen.demo_processing_params(str(tmp_path / "qp.tif"))
    args = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            args.append(f"--{name}={item}")
    proc = run_qgis_process("run", ALG, "--json", *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert report["results"]["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    assert_same_raster(Path(report["results"]["OUTPUT"]), core_run["path"])
