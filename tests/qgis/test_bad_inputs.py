"""Bad inputs give a QgsProcessingException that says what to do, and leave no output file.

Runs on the Sen1Floods11 chip with the made-up static inputs of ``sm_qgis_helpers``
(small and fast). Every case checks the message and that the output folder holds
nothing new (no output, no temporary ``.part`` file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import QgsProcessingException
from rasterio.transform import from_origin

from sm_qgis_helpers import ALG_ID, S1_PATH, spain_params, write_raster, write_spain_inputs

pytestmark = pytest.mark.skipif(not S1_PATH.is_file(), reason="the Sen1Floods11 chip is not available")


@pytest.fixture(scope="module")
def spain_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_spain_inputs(tmp_path_factory.mktemp("spain_inputs"))


@pytest.fixture
def params(smqgis_provider: object, spain_inputs: dict[str, Path], model_path: Path, tmp_path: Path) -> dict[str, Any]:
    """Valid parameters for the chip, output in tmp_path; each test spoils one."""
    return spain_params(spain_inputs, tmp_path / "out.tif", model_path)


def write_non_smqgis_onnx(path: Path) -> Path:
    """A valid ONNX graph (y = x) without smqgis metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the plugin supports
    onnx.save(model, str(path))
    return path


def run_expecting_error(params: dict[str, Any], out_dir: Path) -> str:
    """Run the algorithm, expect QgsProcessingException, check nothing was written; return the message."""
    import processing

    before = set(out_dir.iterdir()) if out_dir.is_dir() else set()
    with pytest.raises(QgsProcessingException) as info:
        processing.run(ALG_ID, params)
    after = set(out_dir.iterdir()) if out_dir.is_dir() else set()
    assert after == before, f"files left behind: {after - before}"
    return str(info.value)


def test_missing_required_input(params: dict[str, Any], tmp_path: Path) -> None:
    del params["SENTINEL2"]
    message = run_expecting_error(params, tmp_path)
    assert "not given: sentinel2 (B4, B3, B2, B8, B11, B12)" in message  # what it must contain
    assert "give a raster for each" in message
    assert message.endswith("(here: the raster is SENTINEL2, its band order S2_BANDS)")


def test_declared_bands_beyond_band_count(params: dict[str, Any], tmp_path: Path) -> None:
    params["S1_BANDS"] = "VV,VH,angle"  # the chip's S1 file has 2 bands
    message = run_expecting_error(params, tmp_path)
    assert "S1_BANDS places 'angle' at band 3, but the raster has 2 band(s)" in message


def test_wrong_band_count_not_recognised(params: dict[str, Any], tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    one_band = write_raster(
        inputs / "s2_one_band.tif", {"": np.full((64, 64), 1500.0)}, crs="EPSG:32630",
        transform=from_origin(660000, 4222000, 80, 80),
    )
    params["SENTINEL2"] = str(one_band)
    message = run_expecting_error(params, tmp_path)
    assert "sentinel2" in message and "1 band(s)" in message
    assert "declare the bands" in message  # what to do
    assert message.endswith("(here: the raster is SENTINEL2, its band order S2_BANDS)")


def test_extent_outside_inputs(params: dict[str, Any], tmp_path: Path) -> None:
    params["EXTENT"] = "500000,510000,4000000,4010000 [EPSG:32630]"  # ~100 km south-west of the chip
    message = run_expecting_error(params, tmp_path)
    # the extent as the user gave it (EPSG:32630, m), the overlap it missed, what to do, and which parameter
    assert "the extent (500000, 4000000, 510000, 4010000) (EPSG:32630) lies outside the area where all inputs " \
           "overlap" in message
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(S1_PATH) as s1:
        chip = transform_bounds(s1.crs, "EPSG:32630", *s1.bounds)
    overlap = [int(v) for v in message.split("overlap (")[1].split(")")[0].split(", ")]
    # the overlap is the chip (the other inputs reach beyond it), to the metre
    assert overlap == pytest.approx(chip, abs=1.0)
    assert "choose an extent inside it or leave it empty" in message
    assert message.endswith("(parameter EXTENT)")


def test_geographic_output_crs(params: dict[str, Any], tmp_path: Path) -> None:
    params["OUTPUT_CRS"] = "EPSG:4326"
    message = run_expecting_error(params, tmp_path)
    assert "EPSG:4326 is geographic" in message and "EPSG:32630" in message


def test_corrupt_onnx(params: dict[str, Any], tmp_path: Path) -> None:
    corrupt = tmp_path / "models" / "corrupt.onnx"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"\x08\x07garbage, not a protobuf" * 40)
    params["MODEL"] = str(corrupt)
    message = run_expecting_error(params, tmp_path)
    assert "not a valid ONNX model" in message and "choose a model" in message


def test_onnx_without_smqgis_metadata(params: dict[str, Any], tmp_path: Path) -> None:
    model = tmp_path / "models" / "identity.onnx"
    model.parent.mkdir()
    params["MODEL"] = str(write_non_smqgis_onnx(model))
    message = run_expecting_error(params, tmp_path)
    assert "carries no smqgis metadata" in message and "choose a model" in message


def test_unwritable_output_path(params: dict[str, Any], tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    params["OUTPUT"] = str(blocker / "out.tif")
    message = run_expecting_error(params, tmp_path)
    assert "does not exist or is not writable" in message and "choose an output file" in message
    assert blocker.read_text().startswith("a file")


def test_cuda_requested_without_cuda(params: dict[str, Any], tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    params["PROVIDER"] = 2
    message = run_expecting_error(params, tmp_path)
    assert "no CUDA execution provider" in message and "onnxruntime-gpu" in message
