"""The published-model path end to end: TF-1 zip -> smqgis:import_published_model -> smqgis:estimate_sm_published.

A TF-1 stand-in of the authors' release (``tests/data/make_published_fixture.py``, seeded;
the release's tensor names, shapes and centre crop) is zipped, imported through the Processing
algorithm (which converts it in the training environment, ``.venv-train``, in a subprocess)
and registered in a temporary models folder; the map algorithm then maps the bundled sample
scene (copied to a temporary folder) with it. The map's values must equal what the TF-1
session itself (again in the training environment) gives on the same encoded windows, and
those windows must hold the sample's own values encoded as the metadata says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from qgis.core import QgsApplication, QgsProcessingException

from sm_qgis_helpers import DEMO_MODEL, REPO, SAMPLE_DIR, SOURCE_PARAMS, LogFeedback, sample_manifest

pytestmark = pytest.mark.slow  # TF start-ups in subprocesses: ~30 s on a quiet machine

TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
IMPORT_ID = "smqgis:import_published_model"
MAP_ID = "smqgis:estimate_sm_published"
_PROVIDERS: list[Any] = []


def _train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([str(TRAIN_PYTHON), *args], cwd=REPO, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def published(qgis_processing: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stand-in zipped, imported and registered through the Processing algorithm, then mapped."""
    import processing

    from smqgis.processing.provider import SmqgisProvider

    if not TRAIN_PYTHON.is_file():
        pytest.fail(f"{TRAIN_PYTHON} is missing: the published-model tests need the training environment "
                    "(`make venv-train`)")
    registry = QgsApplication.processingRegistry()
    if registry.providerById("smqgis") is None:
        provider = SmqgisProvider()
        _PROVIDERS.append(provider)
        registry.addProvider(provider)
    root = tmp_path_factory.mktemp("published")
    folder = root / "soil_moisture_model"
    _train("-m", "tests.data.make_published_fixture", "build", str(folder), "--zip", "--crop-op", "strided_slice")
    old = os.environ.get("SMQGIS_MODELS_DIR")
    os.environ["SMQGIS_MODELS_DIR"] = str(root / "models")
    try:
        feedback = LogFeedback()
        imported = processing.run(IMPORT_ID, {"INPUT": str(root / "soil_moisture_model.zip"),
                                              "TRAIN_PYTHON": str(TRAIN_PYTHON), "NAME": "stand_in",
                                              "TRAINED_ON": 1}, feedback=feedback)
        sample = root / "sample"
        shutil.copytree(SAMPLE_DIR, sample)
        params: dict[str, Any] = {"PROVIDER": 1, "OUTPUT": str(root / "sm_published.tif")}  # MODEL: the registered one
        for source, entry in sample_manifest()["inputs"].items():
            params[SOURCE_PARAMS[source]] = str(sample / entry["path"])
        map_feedback = LogFeedback()
        mapped = processing.run(MAP_ID, dict(params), feedback=map_feedback)
        yield {"root": root, "folder": folder, "imported": imported, "import_feedback": feedback, "mapped": mapped,
               "map_feedback": map_feedback, "params": params, "sample": sample}
    finally:
        if old is None:
            os.environ.pop("SMQGIS_MODELS_DIR", None)
        else:
            os.environ["SMQGIS_MODELS_DIR"] = old


def test_import_registers_verified_model(published: dict[str, Any]) -> None:
    result = published["imported"]
    target = Path(result["OUTPUT"])
    assert target == published["root"] / "models" / "stand_in.onnx" and target.is_file()
    assert (target.parent / "published_models.json").is_file()
    parity = json.loads(result["PARITY_MAX_ABS_DIFF"])
    assert max(parity.values()) <= 1e-4
    assert result["SECONDS_PER_PIXEL"] > 0
    infos = "\n".join(published["import_feedback"].infos)
    assert "Time per 320 m output pixel on this machine" in infos and "Fast mode:" in infos
    assert "TEST stand-in" in infos  # labelled as what it is


def _windows(tile: Any, pick: list[tuple[int, int]], window_px: int) -> dict[str, np.ndarray]:
    """The encoded windows of output pixels ``pick`` (row, col of the tile) as the reader delivered them."""
    step = 32  # 10 m pixels per 320 m output pixel
    return {
        "high_res": np.stack([tile.arrays["high_res"][step * r:step * r + window_px, step * c:step * c + window_px]
                              for r, c in pick]),
        "low_res": np.stack([tile.arrays["low_res"][step * r:step * r + window_px, step * c:step * c + window_px]
                             for r, c in pick]),
        "coarse": np.stack([tile.arrays["coarse"][r, c] for r, c in pick]),
    }


def test_map_equals_tf1_session_on_same_windows(published: dict[str, Any]) -> None:
    """Map values == TF-1 session outputs on those pixels' encoded windows (<= 1e-4 m3/m3).

    By default only the 256 px centre the graph uses is read (the importer measured that the
    graph ignores the rest) and fed inside a zero 512 px window; for interior pixels the full
    512 px windows of the sample must give the TF-1 session the same value.
    """
    from smqgis.core import encoding
    from smqgis.core.kinds.published import _centred_window, centre_reading_view, open_model
    from smqgis.core.pipeline import LayerInput, prepare

    out = Path(published["mapped"]["OUTPUT"])
    grid = sample_manifest()["output_grid"]
    with rasterio.open(out) as ds:
        sm, coverage, tags, transform = ds.read(1), ds.read(2), ds.tags(), ds.transform
    # centre-only reading: the sample's own 16 x 16 output grid (its inputs reach 1.28 km beyond it)
    assert sm.shape == (16, 16) and tuple(transform)[:6] == tuple(grid["transform"]) and np.all(coverage == 1.0)
    assert tags["MODEL_KIND"] == "published_tf1_fusion" and tags["MODE"] == "exact"
    assert tags["WINDOW_READ_PX"].startswith("256 (centre")
    assert float(tags["SECONDS_PER_OUTPUT_PIXEL_ESTIMATED"]) > 0
    assert np.ptp(sm) > 1e-3, "the map must vary, or equality would prove little"

    model = open_model(published["imported"]["OUTPUT"], provider="cpu")
    sample = published["sample"]
    inputs = {s: LayerInput(str(sample / e["path"])) for s, e in sample_manifest()["inputs"].items()}
    centre, full = {}, {}
    for views, view in ((centre, centre_reading_view(model)), (full, model)):
        run = prepare(view, inputs)
        try:
            views["tile"] = run.reader.read(0, 0, run.grid.height, run.grid.width)
            views["grid"] = run.grid
        finally:
            run.close()
    assert (full["grid"].width, full["grid"].height) == (8, 8)
    offset = round((full["grid"].x0 - centre["grid"].x0) / 320.0)  # the full-window grid is inset by 4 px
    assert offset == 4 and round((centre["grid"].y0 - full["grid"].y0) / 320.0) == 4
    pick_centre = [(0, 0), (0, 15), (15, 3), (9, 12)]
    pick_full = [(1, 6), (7, 0)]  # full-grid pixels; on the map at (r + 4, c + 4)
    fed = _windows(centre["tile"], pick_centre, 256)
    whole = _windows(full["tile"], pick_full, 512)

    # the windows hold the sample's own values, encoded as the metadata says (read here with plain rasterio)
    vv_enc = model.metadata["inputs"][0]["bands"][0]["encoding"]
    smap_enc = model.metadata["inputs"][2]["bands"][0]["encoding"]
    g = centre["grid"]
    with rasterio.open(sample / "sentinel1.tif") as s1, rasterio.open(sample / "smap.tif") as smap:
        for k, (r, c) in enumerate(pick_centre):
            col, row = ~s1.transform @ (g.x0 + c * 320.0 + 160.0 - 1280.0, g.y0 - r * 320.0 - 160.0 + 1280.0)
            vv_db = s1.read(1, window=rasterio.windows.Window(round(col), round(row), 256, 256)) * s1.scales[0]
            assert np.abs(fed["high_res"][k, ..., 0] - encoding.encode(vv_db, vv_enc)).max() < 1e-3
            cx, cy = g.window_centre(r, c)
            lon, lat = rasterio.warp.transform(g.crs, smap.crs, [cx], [cy])
            ssm_mm = next(smap.sample([(lon[0], lat[0])]))[0]
            assert fed["coarse"][k, 0] == pytest.approx(float(encoding.encode(np.array([ssm_mm]), smap_enc)[0]),
                                                        abs=1e-3)

    npz, ref = published["root"] / "windows.npz", published["root"] / "tf1.npy"
    np.savez(npz, high_res=np.concatenate([_centred_window(fed["high_res"]), whole["high_res"]]),
             low_res=np.concatenate([_centred_window(fed["low_res"]), whole["low_res"]]),
             coarse=np.concatenate([fed["coarse"], whole["coarse"]]))
    _train("-m", "tests.data.make_published_fixture", "reference", str(published["folder"]), str(npz), str(ref))
    npz.unlink()
    expected = np.load(ref)
    got = np.array([sm[r, c] for r, c in pick_centre] + [sm[r + offset, c + offset] for r, c in pick_full])
    assert np.max(np.abs(got - expected)) <= 1e-4, (got, expected)


def test_full_windows_give_the_same_map(published: dict[str, Any], tmp_path: Path) -> None:
    """FULL_WINDOW reads all 512 px: an 8 x 8 map (2.56 km inset) equal to the centre-read map's interior."""
    import processing

    params = {**published["params"], "FULL_WINDOW": True, "OUTPUT": str(tmp_path / "full.tif")}
    processing.run(MAP_ID, params)
    with rasterio.open(tmp_path / "full.tif") as ds, rasterio.open(published["mapped"]["OUTPUT"]) as centre:
        full_sm, tags = ds.read(1), ds.tags()
        centre_sm = centre.read(1)
    assert full_sm.shape == (8, 8) and tags["WINDOW_READ_PX"] == "512"
    assert np.max(np.abs(full_sm - centre_sm[4:12, 4:12])) <= 1e-6


def test_time_per_pixel_is_shown_before_the_run(published: dict[str, Any]) -> None:
    mapped, infos = published["mapped"], published["map_feedback"].infos
    estimate = next(i for i in infos if i.startswith("Time estimate:"))
    wrote = next(k for k, i in enumerate(infos) if i.startswith("Wrote "))
    assert infos.index(estimate) < wrote
    assert "256 output pixels" in estimate and "s per pixel (measured now on CPUExecutionProvider)" in estimate
    assert mapped["SECONDS_PER_PIXEL"] > 0
    assert mapped["EXPECTED_SECONDS"] == pytest.approx(256 * mapped["SECONDS_PER_PIXEL"])


def test_estimate_only_writes_nothing(published: dict[str, Any], tmp_path: Path) -> None:
    import processing

    params = {**published["params"], "ESTIMATE_ONLY": True, "OUTPUT": str(tmp_path / "never.tif"),
              "MODEL": published["imported"]["OUTPUT"]}
    result = processing.run(MAP_ID, params)
    assert result["SECONDS_PER_PIXEL"] > 0 and "output pixels" in result["ESTIMATE"]
    assert not any(tmp_path.iterdir())


def test_onnx_import_needs_no_tensorflow(published: dict[str, Any]) -> None:
    """The lighter path: an already converted .onnx is verified and registered without the training environment."""
    import processing

    result = processing.run(IMPORT_ID, {"INPUT": published["imported"]["OUTPUT"], "TRAIN_PYTHON": "/nonexistent",
                                        "NAME": "again"})
    assert Path(result["OUTPUT"]).name == "again.onnx"
    assert Path(result["OUTPUT"]).read_bytes() == Path(published["imported"]["OUTPUT"]).read_bytes()


def test_bad_inputs_name_the_parameter(published: dict[str, Any], tmp_path: Path) -> None:
    import zipfile

    import processing

    junk = tmp_path / "not_a_model.zip"
    with zipfile.ZipFile(junk, "w") as zf:
        zf.writestr("readme.txt", "no model here")
    with pytest.raises(QgsProcessingException, match="no saved_model.pb"):
        processing.run(IMPORT_ID, {"INPUT": str(junk), "TRAIN_PYTHON": str(TRAIN_PYTHON), "NAME": "junk"})
    assert not (published["root"] / "models" / "junk.onnx").exists()
    if DEMO_MODEL.is_file():  # a fusion_320m model is refused with a pointer to the right algorithm
        params = {**published["params"], "MODEL": str(DEMO_MODEL), "OUTPUT": str(tmp_path / "x.tif")}
        with pytest.raises(QgsProcessingException, match="MODEL cannot be used as the published model"):
            processing.run(MAP_ID, params)
        assert not (tmp_path / "x.tif").exists()
