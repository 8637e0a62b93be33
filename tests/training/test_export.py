"""Tests of training/export.py: ONNX inputs/outputs, parity in both call modes, metadata round trip."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from smqgis.core import schema
from training import export
from training.config import SMALL
from training.model import build_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_model(SMALL, "full")
    path = tmp_path_factory.mktemp("export") / "full.onnx"
    result = export.export_model(
        model, SMALL, "full", path, title="test model", trained_on={"kind": "simulated", "description": "test"},
        metrics={"average": {"ubrmse": 0.05}},
    )
    return model, path, result


def test_inputs_outputs_and_dynamic_dims(exported):
    _, path, _ = exported
    graph = onnx.load(str(path)).graph
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }
    assert [i.name for i in graph.input] == ["high_res", "low_res", "coarse"]
    assert dims == {
        "high_res": ["N", "H", "W", 10],
        "low_res": ["P", 16, 16, 4],
        "coarse": ["P", 2],
        "soil_moisture": ["P", 1],
    }


@pytest.mark.parametrize(("call", "pixels"), [({"windows": 3, "tile_hw": None}, 3),
                                             ({"windows": None, "tile_hw": (320, 288)}, (10 - 7) * (9 - 7))])
def test_onnx_equals_keras_in_both_modes(exported, call, pixels):
    """The ONNX file, run by onnxruntime as the plugin runs it, gives the Keras model's estimates: N windows
    of 256 px (exact mode), and one 320 x 288 px tile (fast mode: 10 x 9 cells of 32 px, 3 x 2 windows of 8 cells)."""
    model, path, result = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = export.random_inputs(SMALL, "full", seed=11, **call)  # not the seed export checked itself with
    (got,) = session.run(None, feeds)
    want = np.clip(np.asarray(model(feeds, training=False)), 0.0, 1.0)
    assert got.shape == want.shape == (pixels, 1)
    assert float(np.std(want)) > 1e-4  # the inputs reach the output: equal values are not a constant
    np.testing.assert_allclose(got, want, rtol=0.0, atol=export.PARITY_TOLERANCE)
    assert set(result["parity_max_abs_diff"]) == {"windows", "tile"}  # export checked both modes itself too


def test_metadata_round_trip(exported):
    _, path, result = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    meta = schema.from_metadata_props(props)
    assert meta == result["metadata"]
    assert meta["variant"] == "full" and "simulated" in meta["label"].lower()
    assert meta["training"]["config"]["name"] == "small" and meta["metrics"]["average"]["ubrmse"] == 0.05
    assert meta["fully_convolutional"]["stride_px"] == 32 and meta["nominal_resolution_m"] == 320.0
    # the geometry the model was built with is written: window, stride, pooling width
    assert meta["fully_convolutional"]["window_px"] == SMALL.high_res_window_px == 256
    assert schema.input_spec(meta, "high_res")["window_px"] == SMALL.high_res_window_px
    assert schema.input_spec(meta, "low_res")["window_px"] == SMALL.low_res_window_px
    assert meta["pooling"]["sigma_cells"] == SMALL.pooling_sigma_cells


def test_output_is_clipped_to_the_valid_range(exported):
    model, path, _ = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = export.random_inputs(SMALL, "full", windows=None, tile_hw=(288, 288), seed=5)
    feeds["coarse"][:] = 255.0  # push the estimate up
    (out,) = session.run(None, feeds)
    raw = np.asarray(model(feeds, training=False))
    assert out.shape == (4, 1) and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, np.clip(raw, 0.0, 1.0), atol=1e-4)


def test_exported_file_is_world_readable(exported):
    # written through mkstemp (0600) and renamed; a bundled model must be readable by QGIS and packaging
    _, path, _ = exported
    assert path.stat().st_mode & 0o777 == 0o644


def test_parity_failure_writes_nothing(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(SMALL, "smap_gldas")
    out = tmp_path / "m.onnx"
    with pytest.raises(export.ParityError):
        export.export_model(model, SMALL, "smap_gldas", out, title="t", trained_on={"kind": "random"}, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_cli_random_init_coarse_only_variant(tmp_path):
    out = tmp_path / "nn.onnx"
    export.main(
        [
            "--random-init",
            "--config",
            "small",
            "--variant",
            "smap_gldas",
            "--out",
            str(out),
            "--title",
            "SMAP+GLDAS NN",
            "--trained-on",
            "random",
        ]
    )
    meta = schema.from_metadata_props({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert [i["name"] for i in meta["inputs"]] == ["coarse"] and meta["fully_convolutional"] is None
