"""Tests of training/import_published.py on TF-1 stand-ins of the authors' published model.

Each stand-in (``tests/data/make_published_fixture.py``, seeded) has the release's tensor names,
shapes and dtypes, crops the centre 256 px like the real graph, and is saved with tag "serve"
with or without a signature_def; the importer must convert each with parity, record the input
contract, and find that no fully-convolutional fast mode exists.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402

from smqgis.core import schema, sources  # noqa: E402
from smqgis.core.kinds import published as kind  # noqa: E402
from tests.data import make_published_fixture as fixture  # noqa: E402
from training import import_published as imp  # noqa: E402

#: (signature_def?, crop op, give the importer a zip?, feeds' height and width known?) of each stand-in.
CASES = {
    "signature_zip": (True, "resize_with_crop_or_pad", True, True),
    "no_signature_folder": (False, "strided_slice", False, True),
    "no_signature_any_size": (False, "resize_with_crop_or_pad", False, False),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def imported(request, tmp_path_factory):
    signature, crop_op, as_zip, known_hw = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    folder = fixture.build(root / "soil_moisture_model", signature=signature, seed=0, crop_op=crop_op,
                           known_hw=known_hw)
    source = fixture.zip_folder(folder, root / "soil_moisture_model.zip") if as_zip else folder
    out = root / "published.onnx"
    result = imp.import_published(source, out, trained_on="random", seed=0)
    return {"case": request.param, "folder": folder, "out": out, "result": result, "signature": signature,
            "crop_op": crop_op, "known_hw": known_hw}


def _session_outputs(folder: Path, windows: dict[str, np.ndarray]) -> np.ndarray:
    return fixture.reference(folder, windows["high_res"], windows["low_res"], windows["coarse"] * 255.0)


def test_parity_on_fresh_windows(imported):
    """onnxruntime reproduces the TF-1 session on windows neither the importer nor its check saw."""
    result = imported["result"]
    assert max(result["parity"].values()) <= imp.PARITY_TOLERANCE
    windows = imp.random_windows(4, seed=99)
    windows["high_res"][1] = np.floor(windows["high_res"][1])  # integer-valued like the released dataset
    expected = _session_outputs(imported["folder"], windows)
    assert np.all((expected > 0.05) & (expected < 0.95)), "stand-in outputs must not sit on the clip"
    assert np.ptp(expected) > 1e-3, "stand-in outputs must differ between windows"
    session = ort.InferenceSession(str(imported["out"]), providers=["CPUExecutionProvider"])
    got = np.array([
        session.run(None, {"ImageTensor:0": windows["high_res"][i:i + 1],
                           "LowResImageTensor:0": windows["low_res"][i:i + 1],
                           "AuxTensor:0": windows["coarse"][i:i + 1]})[0].reshape(-1)[0]
        for i in range(4)
    ])
    assert np.max(np.abs(got - expected)) <= 1e-4


def test_tensor_names_shapes_and_batch(imported):
    """The ONNX graph keeps the released names and window shapes; the batch is dynamic only where the graph allows."""
    graph = onnx.load(str(imported["out"])).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    # TF-1's crop_or_pad pins the batch only when it can read a static shape
    dynamic = imported["crop_op"] == "strided_slice" or not imported["known_hw"]
    n = "N" if dynamic else 1
    hw = [512, 512] if imported["known_hw"] else [d for d in dims["ImageTensor:0"][1:3] if isinstance(d, str)]
    assert len(hw) == 2, dims  # unknown height and width stay symbolic
    assert dims["ImageTensor:0"] == [n, *hw, 10] and dims["AuxTensor:0"] == [n, 2]
    assert dims["LowResImageTensor:0"][0] == n and dims["LowResImageTensor:0"][-1] == 4
    assert [o.name for o in graph.output] == ["clip_by_value:0"]
    pub = imported["result"]["metadata"]["published"]
    assert pub["batch_dynamic"] is dynamic
    assert pub["signature_def"] == ("serving_default" if imported["signature"] else None)
    if dynamic:  # a batch of 3 in one call equals three single calls of the TF-1 session
        windows = imp.random_windows(3, seed=7)
        session = ort.InferenceSession(str(imported["out"]), providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"ImageTensor:0": windows["high_res"], "LowResImageTensor:0": windows["low_res"],
                                    "AuxTensor:0": windows["coarse"]})
        assert np.max(np.abs(out.reshape(-1) - _session_outputs(imported["folder"], windows))) <= 1e-4


def test_metadata_input_contract(imported):
    """Kind, band order, released encodings, window, aux scaling and trained-on are recorded exactly."""
    props = {p.key: p.value for p in onnx.load(str(imported["out"])).metadata_props}
    meta = schema.from_metadata_props(props)
    kind.validate_metadata(meta)
    assert meta["model_kind"] == "published_tf1_fusion" and meta["nominal_resolution_m"] == 320.0
    hr, lr, aux = meta["inputs"]
    assert (hr["tensor"], lr["tensor"], aux["tensor"]) == ("ImageTensor:0", "LowResImageTensor:0", "AuxTensor:0")
    assert [b["ref"].split("/")[1] for b in hr["bands"]] == ["VV", "VH", "angle", "B4", "B3", "B2", "B8", "B11", "B12",
                                                              "elevation"]
    assert [b["ref"].split("/")[1] for b in lr["bands"]] == ["sand", "silt", "clay", "bdod"]
    assert [b["ref"] for b in aux["bands"]] == ["smap/ssm", "gldas/SoilMoi0_10cm_inst"]
    for spec in meta["inputs"]:
        for band in spec["bands"]:
            assert band["encoding"] == sources.band_ref(band["ref"])[1].encoding
    assert hr["bands"][-1]["encoding"] == {"kind": "linear", "min": 0.0, "max": 3000.0}  # run_inference.py's DEM
    assert (hr["window_px"], hr["pixel_size_m"], lr["window_px"], lr["pixel_size_m"]) == (512, 10.0, 512, 10.0)
    assert aux["value_scale"] == pytest.approx(1 / 255)
    assert meta["trained_on"]["kind"] == "random" and "TEST" in meta["label"]
    assert meta["fully_convolutional"] is None


def test_fast_mode_finding(imported):
    """The graph reads only the centre 256 px and pools globally: no fully-convolutional fast mode."""
    graph = imported["result"]["metadata"]["published"]["graph"]
    assert graph["reads_only_centre_px"] == 256 and graph["outer_ring_effect_m3m3"] == 0.0
    assert graph["fully_convolutional_possible"] is False
    assert len(graph["spatial_reductions"]) == 2  # one centre-weighted pooling per branch
    assert graph["ops"]["MatMul"] == 2


def test_parity_failure_writes_nothing(tmp_path):
    """An impossible tolerance forces the failure path: ParityError and no file (nor temp file) left."""
    folder = fixture.build(tmp_path / "m", signature=False, seed=1)
    out = tmp_path / "out" / "published.onnx"
    with pytest.raises(imp.ParityError, match="nothing was written"):
        imp.import_published(folder, out, tolerance=-1.0, trained_on="random")
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_bad_paths_say_what_to_give(tmp_path):
    with pytest.raises(imp.PublishedModelError, match="does not exist"):
        imp.locate_saved_model(tmp_path / "missing.zip", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(imp.PublishedModelError, match="no saved_model.pb"):
        imp.locate_saved_model(tmp_path / "empty", tmp_path)
    text = tmp_path / "model.txt"
    text.write_text("not a zip")
    with pytest.raises(imp.PublishedModelError, match="neither a zip nor a folder"):
        imp.locate_saved_model(text, tmp_path)


def test_cli_writes_model_and_json(tmp_path):
    folder = fixture.build(tmp_path / "m", signature=True, seed=2)
    out, js = tmp_path / "p.onnx", tmp_path / "p.json"
    argv = [str(folder / "saved_model.pb"), "--out", str(out), "--trained-on", "random", "--json", str(js)]
    assert imp.main(argv) == 0
    report = json.loads(js.read_text())
    assert report["metadata"]["published"]["signature_def"] == "serving_default"
    assert max(report["parity"].values()) <= 1e-4 and out.is_file()


def test_validate_metadata_refuses_a_changed_contract(imported):
    """The kind's checks catch a reordered band list, a wrong window, a wrong aux scale and a mislabelled stand-in."""
    import copy

    meta = imported["result"]["metadata"]
    bad = copy.deepcopy(meta)
    bands = bad["inputs"][0]["bands"]
    bands[0], bands[1] = bands[1], bands[0]
    with pytest.raises(schema.SchemaError, match="in this order"):
        kind.validate_metadata(bad)
    bad = copy.deepcopy(meta)
    bad["inputs"][1]["window_px"] = 16
    with pytest.raises(schema.SchemaError, match="512 px"):
        kind.validate_metadata(bad)
    bad = copy.deepcopy(meta)
    bad["inputs"][2]["value_scale"] = 1.0
    with pytest.raises(schema.SchemaError, match="1/255"):
        kind.validate_metadata(bad)
    bad = copy.deepcopy(meta)
    bad["label"] = "Published fusion model"
    with pytest.raises(schema.SchemaError, match="TEST"):
        kind.validate_metadata(bad)
