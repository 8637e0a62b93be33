"""Tests of training/evaluate.py: report values on arrays and end to end on ONNX models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from smqgis.core import metrics, schema, texture
from tests.training import make_tiny_tfrecord as tiny
from training import evaluate


def _smap_only_onnx(path: Path) -> None:
    """A 'full'-variant ONNX graph whose estimate is SMAP alone: coarse[:, 0] / 255 m3/m3.

    (0-255 spans 0-50 mm of water over 0.05 m, i.e. 0-1 m3/m3.) It follows the
    exact-mode calling convention of schema.py and carries valid smqgis metadata.
    """
    roles = schema.variant_inputs("full")
    inputs = [
        helper.make_tensor_value_info("high_res", TensorProto.FLOAT, ["N", 256, 256, len(roles["high_res"])]),
        helper.make_tensor_value_info("low_res", TensorProto.FLOAT, ["N", 16, 16, len(roles["low_res"])]),
        helper.make_tensor_value_info("coarse", TensorProto.FLOAT, ["N", len(roles["coarse"])]),
    ]
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [1.0 / 255.0, 0.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["coarse", "w"], [schema.OUTPUT_NAME])],
        "smap_only",
        inputs,
        [helper.make_tensor_value_info(schema.OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = schema.build_metadata(
        variant="full", title="SMAP-only test graph", trained_on={"kind": "random", "description": "test"}
    )
    helper.set_model_props(model, schema.to_metadata_props(meta))
    onnx.save(model, path)


def _labelled(examples: list[dict]) -> list[dict]:
    return [e for i, e in enumerate(examples) if i != tiny.NO_LABEL]


def test_evaluate_predictions_on_arrays():
    rng = np.random.default_rng(5)
    ids = np.repeat(["N__a__s", "N__b__s", "N__c__s"], [20, 15, 10])
    obs = rng.uniform(0.05, 0.4, ids.size)
    pred = obs + rng.normal(0.01, 0.03, ids.size)
    classes = np.where(ids == "N__a__s", "loam", "sand")
    report = evaluate.evaluate_predictions(pred, obs, ids, strata={"texture": classes})
    expected = metrics.sensor_metrics(pred, obs, ids)
    assert report["overall"] == expected["average"]
    assert report["overall"]["n_sensors"] == 2 and report["overall"]["n_points"] == 35
    assert report["per_sensor"] == expected["per_sensor"]
    assert report["strata"]["texture"]["loam"]["n_sensors"] == 1
    assert report["strata"]["texture"]["loam"]["ubrmse"] == pytest.approx(expected["per_sensor"]["N__a__s"]["ubrmse"])
    md = evaluate.report_markdown(report, title="m")
    assert f"| m | {report['overall']['ubrmse']:.3f} | {report['overall']['rmse']:.3f} |" in md
    assert "| loam* |" in md and "| sand* |" in md  # 1 sensor each: the paper's asterisk


def test_cli_on_onnx_matches_numpy(tmp_path, tiny_file, examples):
    model = tmp_path / "smap_only.onnx"
    _smap_only_onnx(model)
    out = tmp_path / "report.json"
    report = evaluate.main(
        ["--model", str(model), "--data", tiny_file, "--out", str(out), "--stratify", "texture", "--min-points", "5"]
    )
    labelled = _labelled(examples)
    pred = np.array([e["smap_sm"] / 255.0 for e in labelled])
    obs = np.array(
        [
            np.float32(e["sm_0_5"] if e.get("sm_0_5") is not None and np.isfinite(e["sm_0_5"]) else e["sm_5_5"])
            for e in labelled
        ]
    )
    ids = np.array([e["sensor_id"] for e in labelled])
    expected = metrics.sensor_metrics(pred, obs, ids, min_points=5)["average"]
    for name in ("ubrmse", "rmse", "r", "bias"):
        assert report["overall"][name] == pytest.approx(expected[name], abs=1e-6)
    assert report["overall"]["n_points"] == 23 and report["overall"]["n_sensors"] == 4
    # SMAP carries the label (plus noise) in the fixture
    assert report["overall"]["r"] > 0.5
    # every fixture example is sand 300-500, silt 200-400, clay 100-250 g/kg
    sand, silt, clay = (
        np.array([e[f"soil_grids_{k}"][240:272, 240:272].mean() for e in labelled])
        for k in ("sand_sand_0-5cm_mean", "silt_silt_0-5cm_mean", "clay_clay_0-5cm_mean")
    )
    assert set(report["strata"]["texture"]) == set(texture.usda_texture_name(sand, silt, clay).tolist())
    saved = json.loads(out.read_text())
    assert saved["overall"]["n_points"] == 23 and saved["label"] == "SMAP-only test graph"
    assert "| SMAP-only test graph |" in out.with_suffix(".md").read_text()


def test_categories_csv_and_variant_check(tmp_path, tiny_file, examples):
    model = tmp_path / "smap_only.onnx"
    _smap_only_onnx(model)
    csv_path = tmp_path / "sensors.csv"
    rows = ["sensor_id,landcover"] + [f"{examples[i]['sensor_id']},{'crop' if i < 2 else 'forest'}" for i in range(3)]
    csv_path.write_text("\n".join(rows) + "\n")
    report = evaluate.evaluate(
        str(model), tiny_file, stratify=["landcover"], categories_csv=str(csv_path), min_points=5
    )
    strata = report["strata"]["landcover"]
    assert {k: v["n_points"] for k, v in strata.items()} == {
        "crop": 11,
        "forest": 6,
        "unknown": 6,
    }  # example 17 (sensor 1) has no label
    with pytest.raises(ValueError, match="not 's1_dem'"):
        evaluate.evaluate(str(model), tiny_file, variant="s1_dem")


@pytest.mark.slow
def test_exported_fusion_model_end_to_end(tmp_path, tiny_file):
    """The model engineer's exporter (small config, random init) through the same CLI."""
    export = pytest.importorskip("training.export")
    from training.config import get_config
    from training.model import build_model

    cfg = get_config("small")
    path = tmp_path / "small_full.onnx"
    export.export_model(
        build_model(cfg, "full"),
        cfg,
        "full",
        path,
        title="random small",
        trained_on={"kind": "random", "description": "t"},
    )
    report = evaluate.main(
        ["--model", str(path), "--data", tiny_file, "--out", str(tmp_path / "r.json"), "--min-points", "5"]
    )
    assert report["overall"]["n_points"] == 23 and report["variant"] == "full"
    assert all(np.isfinite(report["overall"][k]) for k in ("ubrmse", "rmse", "bias"))
