"""training/quantize.py: an int8 copy of a model that the plugin runs, marked int8, close to the float32 one.

The model is the seeded random test model of ``tests/data/make_test_model.py`` (3 x 3 context
encoder), calibrated on the bundled sample scene as the command line does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

from smqgis.core import schema
from smqgis.core.kinds.fusion import FusionModel, estimate_sm_arrays
from smqgis.core.model import read_metadata
from smqgis.demo import sample_dates, sample_inputs
from training import quantize

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def float_model(tmp_path_factory) -> str:
    spec = importlib.util.spec_from_file_location("make_test_model", ROOT / "tests" / "data" / "make_test_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.make_test_model(tmp_path_factory.mktemp("quantize") / "float.onnx", context=True, seed=1))


@pytest.fixture(scope="module")
def feeds(float_model):
    return quantize.calibration_feeds(float_model, seed=0)


@pytest.fixture(scope="module")
def int8_model(float_model, feeds) -> str:
    out = Path(float_model).with_name("int8.onnx")
    quantize.quantize_model(float_model, out, feeds=feeds, seed=0)
    return str(out)


def test_calibration_feeds_are_fast_mode_calls_on_the_sample_and_seeded(float_model, feeds):
    assert len(feeds) == len(sample_dates()) * quantize.CALIBRATION_TILES_PER_DATE  # every sample tile is whole
    first = feeds[0]
    n = quantize.CALIBRATION_TILE_PX
    assert {k: v.shape for k, v in first.items()} == {"high_res": (1, 32 * (n + 7), 32 * (n + 7), 10),
                                                     "low_res": (n * n, 16, 16, 4), "coarse": (n * n, 2)}
    assert all(v.dtype == np.float32 and 0.0 <= v.min() and v.max() <= 255.0 for v in first.values())
    assert first["high_res"].std() > 1.0  # real encoded data, not zeros
    again = quantize.calibration_feeds(float_model, seed=0, tiles_per_date=2)
    for a, b in zip(again, [feeds[0], feeds[1]]):
        for role in a:
            np.testing.assert_array_equal(a[role], b[role])
    other = quantize.calibration_feeds(float_model, seed=1, tiles_per_date=2)
    assert not np.array_equal(other[1]["high_res"], feeds[1]["high_res"])  # the seed draws the tiles


def test_only_the_high_res_branch_is_quantized(int8_model):
    graph = onnx.load(int8_model).graph
    inits = {i.name: i.data_type for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    branch = set(quantize.branch_nodes(graph, "high_res"))
    quantized, kept = [], []
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            weight = producers.get(node.input[1])
            if weight is not None and weight.op_type == "DequantizeLinear":
                assert inits[weight.input[0]] == onnx.TensorProto.INT8
                quantized.append(node)
            else:
                assert inits[node.input[1]] == onnx.TensorProto.FLOAT
                kept.append(node)
    assert len(quantized) == 6  # the test encoder's five convolutions and its pooling
    assert all(n.op_type == "Conv" and n.name in branch for n in quantized)
    assert {n.op_type for n in kept} >= {"Conv", "Gemm"}  # the low-res encoder and the heads stay float32
    assert not any(n.name in branch for n in kept)


def test_the_int8_model_says_so_and_keeps_the_rest_of_its_metadata(float_model, int8_model):
    before, after = read_metadata(float_model), read_metadata(int8_model)
    assert schema.precision_of(before) == "float32" and schema.precision_of(after) == "int8"
    assert after["title"] == before["title"] + " (int8)" and after["label"] == before["label"] + " (int8)"
    record = after["quantization"]
    assert record["format"] == "QDQ" and record["calibration"]["calls"] == 12 and record["calibration"]["seed"] == 0
    assert record["weights"] == "int8 (7-bit range)" and record["float32_model"] == "float.onnx"
    changed = ("precision", "quantization", "title", "label")
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}
    props = {p.key: p.value for p in onnx.load(int8_model).metadata_props}
    assert props["precision"] == "int8" and props["label"].endswith("(int8)")
    with pytest.raises(ValueError, match="already int8"):
        quantize.quantize_model(int8_model, Path(int8_model).with_name("twice.onnx"))


def test_the_plugin_maps_with_the_int8_model_close_to_float32(float_model, int8_model):
    model = FusionModel(int8_model, provider="cpu")
    assert model.precision == "int8" and model.label.endswith("(int8)")
    fp32, cov32, _ = estimate_sm_arrays(float_model, sample_inputs(), provider="cpu")
    int8, cov8, _ = estimate_sm_arrays(model, sample_inputs(), provider="cpu")
    np.testing.assert_array_equal(cov8, cov32)
    valid = fp32 != -9999.0
    assert valid.all() and np.array_equal(valid, int8 != -9999.0)
    diff = np.abs(int8[valid] - fp32[valid])
    assert 0.0 < diff.mean() < 0.002 and diff.max() < 0.01  # quantized (not identical), and close (map std 0.016)
    assert fp32[valid].std() > 0.01
