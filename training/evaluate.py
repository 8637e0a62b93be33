"""Evaluate a fusion model on released-schema TFRecord files (paper 000, section 3c).

The check at the end of training/: run a model - an exported ONNX file (through
onnxruntime, the way the plugin runs it) or a ``training.train`` model directory
(Keras) - over a dataset read by ``training.data`` with its metadata, and report
the per-sensor ubRMSE, RMSE, Pearson R and bias (m3/m3 except R) averaged over
sensors with >= 13 points, as Table 9 does, optionally stratified like Tables
10-12: by USDA soil-texture class (from the SoilGrids sand / silt / clay at the
window centre) or by a per-sensor category from a CSV file (land cover, climate
zone, ...). Estimates are clipped to the model's valid range [0, 1] m3/m3, as
the exported graph does. Writes a JSON report and a markdown table.

    python -m training.evaluate --model model.onnx --data 'test-*.tfrecord.gz' \
        --out build/report.json [--stratify texture] [--stratify landcover --categories sensors.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smqgis.core import metrics, schema, texture

log = logging.getLogger(__name__)

Predictor = Callable[[Mapping[str, np.ndarray]], np.ndarray]
TEXTURE = "texture"
VALID_RANGE = (0.0, 1.0)


# --------------------------------------------------------------------------- models


def onnx_predictor(path: str) -> tuple[Predictor, dict[str, Any]]:
    """A predictor over an smqgis ONNX file in exact mode, and the file's metadata.

    The predictor takes ``high_res`` [N, 256, 256, C], ``low_res`` [N, 16, 16, C_low],
    ``coarse`` [N, K] (float32 0-255, only the model's inputs) and returns [N]
    estimates in m3/m3 (schema.py: with H = W = window the graph gives one row per window).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = schema.from_metadata_props(dict(session.get_modelmeta().custom_metadata_map))
    names = [i.name for i in session.get_inputs()]

    def predict(features: Mapping[str, np.ndarray]) -> np.ndarray:
        feeds = {n: np.ascontiguousarray(features[n], dtype=np.float32) for n in names}
        return np.asarray(session.run(None, feeds)[0], dtype=np.float64).reshape(-1)

    return predict, meta


def keras_predictor(model_dir: str) -> tuple[Predictor, dict[str, Any]]:
    """A predictor over a ``training.train`` model directory (latest checkpoint).

    Returns the predictor and ``{"variant", "title", "label"}`` for the report.
    """
    from training.export import load_trained

    model, cfg, variant, _ = load_trained(model_dir)
    roles = list(schema.variant_inputs(variant))

    def predict(features: Mapping[str, np.ndarray]) -> np.ndarray:
        out = model({r: features[r] for r in roles}, training=False)
        return np.asarray(out, dtype=np.float64).reshape(-1)

    title = f"{model_dir} ({cfg.name} config, Keras checkpoint)"
    return predict, {"variant": variant, "title": title, "label": title}


def load_predictor(model: str) -> tuple[Predictor, dict[str, Any]]:
    """:func:`onnx_predictor` for ``*.onnx``, else :func:`keras_predictor`."""
    return onnx_predictor(model) if model.endswith(".onnx") else keras_predictor(model)


# --------------------------------------------------------------------------- metrics


def evaluate_predictions(
    pred: np.ndarray,
    obs: np.ndarray,
    sensor_ids: np.ndarray,
    *,
    strata: Mapping[str, np.ndarray] | None = None,
    min_points: int = metrics.MIN_POINTS,
) -> dict[str, Any]:
    """The evaluation report of estimates against observations.

    Parameters
    ----------
    pred : np.ndarray
        estimates, m3/m3, shape [N].
    obs : np.ndarray
        in-situ observations, m3/m3, shape [N].
    sensor_ids : np.ndarray
        one sensor id per point, shape [N].
    strata : Mapping[str, np.ndarray] | None
        stratification name -> one category per point (e.g.
        ``{"texture": names}``).
    min_points : int
        fewest points of a sensor in the averages (13 in the paper).

    Returns
    -------
    dict[str, Any]
        ``{"overall": averages (ubrmse, rmse, r, bias, n_sensors, n_points,
        n_sensors_r), "per_sensor": {id: row}, "strata": {name: {category:
        averages + few_sensors}}, "min_points", "n_examples", "n_sensors_total"}``.
    """
    result = metrics.sensor_metrics(pred, obs, sensor_ids, min_points)
    return {
        "overall": result["average"],
        "per_sensor": result["per_sensor"],
        "strata": {
            name: metrics.stratified_metrics(pred, obs, sensor_ids, cats, min_points)
            for name, cats in (strata or {}).items()
        },
        "min_points": int(min_points),
        "n_examples": int(np.asarray(pred).size),
        "n_sensors_total": result["n_sensors_total"],
    }


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _row(name: str, avg: Mapping[str, Any]) -> str:
    cells = [
        _fmt(avg["ubrmse"]),
        _fmt(avg["rmse"]),
        _fmt(avg["r"]),
        _fmt(avg["bias"]),
        str(avg["n_sensors"]),
        str(avg["n_points"]),
    ]
    return f"| {name} | " + " | ".join(cells) + " |"


def report_markdown(report: Mapping[str, Any], title: str = "model") -> str:
    """Table 9 (and Tables 10-12 for the strata) of the paper as markdown."""
    header = "| | ubRMSE (m3/m3) | RMSE (m3/m3) | R | bias (m3/m3) | sensors | points |\n|---|---|---|---|---|---|---|"
    lines = [
        (
            f"Per-sensor metrics averaged over sensors with >= {report['min_points']} points "
            f"({report['n_examples']} points from {report['n_sensors_total']} sensors evaluated)."
        ),
        "",
        header,
        _row(title, report["overall"]),
    ]
    for name, rows in report["strata"].items():
        lines += [
            "",
            f"By {name} (* fewer than {metrics.FEW_SENSORS} sensors):",
            "",
            header.replace("| |", f"| {name} |", 1),
        ]
        ordered = sorted(rows.items(), key=lambda kv: (-kv[1]["n_sensors"], kv[0]))
        lines += [_row(cat + ("*" if row["few_sensors"] else ""), row) for cat, row in ordered]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- running


def predict_dataset(predict: Predictor, dataset: Any) -> dict[str, np.ndarray]:
    """Run ``predict`` over a ``with_meta`` dataset; per-point arrays.

    Returns ``pred`` and ``obs`` (m3/m3, float64), ``sensor_id`` (str), and
    ``timestamp``, ``center_lat``, ``center_long``, ``sand_silt_clay_gkg`` when
    the dataset has them. Estimates are clipped to [0, 1] m3/m3.
    """
    from training.data import META_KEYS

    chunks: dict[str, list[np.ndarray]] = {}
    for features, label in dataset:
        arrays = {k: v.numpy() for k, v in features.items()}
        inputs = {k: v for k, v in arrays.items() if k not in META_KEYS}
        chunks.setdefault("pred", []).append(np.clip(predict(inputs), *VALID_RANGE))
        chunks.setdefault("obs", []).append(label.numpy().astype(np.float64))
        for key in META_KEYS:
            if key in arrays:
                chunks.setdefault(key, []).append(arrays[key])
    if not chunks:
        raise ValueError("the dataset yielded no labelled examples")
    out = {k: np.concatenate(v) for k, v in chunks.items()}
    out["sensor_id"] = np.array([s.decode("utf-8") for s in out["sensor_id"]], dtype=object)
    return out


def sensor_categories(csv_path: str, column: str, sensor_ids: Sequence[str]) -> np.ndarray:
    """Per-point categories from a CSV with a ``sensor_id`` column and ``column``.

    Sensors missing from the file get ``"unknown"``.
    """
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "sensor_id" not in rows[0] or column not in rows[0]:
        raise ValueError(f"{csv_path} needs the columns 'sensor_id' and {column!r}")
    table = {r["sensor_id"]: r[column] for r in rows}
    missing = sorted(set(sensor_ids) - set(table))
    if missing:
        log.warning("%d sensors are not in %s; they count as 'unknown' (e.g. %s)", len(missing), csv_path, missing[0])
    return np.array([table.get(s, "unknown") for s in sensor_ids], dtype=object)


def evaluate(
    model: str,
    data: str | list[str],
    *,
    variant: str | None = None,
    stratify: Sequence[str] = (),
    categories_csv: str | None = None,
    batch_size: int = 8,
    min_points: int = metrics.MIN_POINTS,
) -> dict[str, Any]:
    """Evaluate ``model`` (ONNX file or model directory) on TFRecord ``data``.

    ``variant`` defaults to the model's own; given, it must match. ``stratify``
    names ``"texture"`` or columns of ``categories_csv``. Returns the report of
    :func:`evaluate_predictions` plus ``model``, ``variant``, ``label`` and ``data``.
    """
    from training.data import expand_files, make_dataset

    predict, meta = load_predictor(model)
    if variant is not None and variant != meta["variant"]:
        raise ValueError(f"{model} is a {meta['variant']!r} model, not {variant!r}")
    files = expand_files(data)
    dataset = make_dataset(
        files, meta["variant"], batch_size, training=False, seed=0, drop_remainder=False, with_meta=True
    )
    points = predict_dataset(predict, dataset)
    strata: dict[str, np.ndarray] = {}
    for name in stratify:
        if name == TEXTURE:
            if "sand_silt_clay_gkg" not in points:
                raise ValueError("--stratify texture needs the SoilGrids sand, silt and clay bands in the data")
            strata[name] = texture.usda_texture_name(*points["sand_silt_clay_gkg"].T)
        elif categories_csv is None:
            raise ValueError(f"--stratify {name} needs --categories CSV with a {name!r} column")
        else:
            strata[name] = sensor_categories(categories_csv, name, points["sensor_id"].tolist())
    report = evaluate_predictions(
        points["pred"], points["obs"], points["sensor_id"], strata=strata, min_points=min_points
    )
    report.update({"model": str(model), "variant": meta["variant"], "label": meta.get("label", ""), "data": files})
    return report


def _json_safe(value: Any) -> Any:
    """NaN / inf (undefined metrics) as JSON null, recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="exported .onnx file or training.train model directory")
    parser.add_argument("--data", required=True, nargs="+", help="TFRecord file(s) or glob(s)")
    parser.add_argument("--variant", choices=sorted(schema.VARIANTS), help="check the model is this variant")
    parser.add_argument("--out", required=True, help="JSON report; the markdown goes beside it (.md)")
    parser.add_argument("--stratify", action="append", default=[], help="texture, or a column of --categories")
    parser.add_argument("--categories", help="CSV with sensor_id and category columns (land cover, climate ...)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--min-points", type=int, default=metrics.MIN_POINTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    report = evaluate(
        args.model,
        args.data,
        variant=args.variant,
        stratify=args.stratify,
        categories_csv=args.categories,
        batch_size=args.batch_size,
        min_points=args.min_points,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False))
    markdown = report_markdown(report, title=report["label"] or Path(args.model).name)
    out.with_suffix(".md").write_text(markdown)
    log.info("wrote %s and %s\n%s", out, out.with_suffix(".md"), markdown)
    return report


if __name__ == "__main__":
    main()
