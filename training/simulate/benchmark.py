"""The Table-9-style benchmark on simulated data: which inputs carry the soil-moisture signal.

Trains each fusion-model variant (``training.train``, small config, one process
per run) on the simulated training split for several seeds, evaluates every run
on the held-out test sensors with the paper's per-sensor metrics
(``smqgis.core.metrics``: ubRMSE, RMSE, R per sensor, averaged over sensors with
>= 13 points) and reports mean +- sd over seeds. "SMAP alone" is not trained: the
SMAP ``ssm`` of each point, converted from mm over 5 cm to m3/m3, is the estimate.
With ``--bn-batches N`` each run's batch-norm statistics are re-estimated on N
training batches before evaluation (:func:`load_calibrated`, "precise BN"); the
60-step table in docs/simulated_benchmark.md needed it (25) while the small config
had the paper's momentum 0.997. Since the small config uses 0.9 it is off by default.
The test split is parsed once (``training.data.make_dataset`` with the ``full``
variant) and kept in memory as uint8; each variant takes its own bands from it.

    python -m training.simulate.benchmark --data build/simulate/bench_data \
        --out build/simulate/bench --steps 60 --batch-size 8 --seeds 0 1 2 --linear-probe
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from smqgis.core import metrics, schema, sources
from smqgis.core.encoding import decode

LOG = logging.getLogger(__name__)

#: Rows of the table, in the paper's order (Table 9), with their variant (None: SMAP alone).
ROWS = (
    ("SMAP alone (no training)", None),
    ("SMAP + GLDAS NN", "smap_gldas"),
    ("S1 + DEM", "s1_dem"),
    ("S1 + DEM + S2", "s1_dem_s2"),
    ("S1 + DEM + S2 + SoilGrids", "s1_dem_s2_soilgrids"),
    ("Full (S1 + S2 + DEM + SoilGrids + SMAP + GLDAS)", "full"),
)
PROBE_ROW = "Diagnostic: linear probe on window means of all inputs (not a paper row)"
METRICS = ("ubrmse", "rmse", "r")
#: Training batches for the optional batch-norm re-estimation (``--bn-batches``; the 60-step table used 25).
BN_BATCHES = 25


def load_split(pattern: str) -> dict[str, np.ndarray]:
    """All points of a split: the ``full`` inputs (uint8 0-255), labels (m3/m3), sensor ids and times (ms)."""
    from training.data import make_dataset

    ds = make_dataset(pattern, "full", 16, training=False, seed=0, drop_remainder=False, with_meta=True)
    parts: dict[str, list[np.ndarray]] = {"high_res": [], "low_res": [], "coarse": [], "label": [], "sensor_id": [],
                                       "timestamp": []}
    for features, label in ds:
        for role in ("high_res", "low_res", "coarse"):
            parts[role].append(np.rint(features[role].numpy()).astype(np.uint8))
        parts["label"].append(label.numpy().astype(np.float64))
        parts["sensor_id"].append(features["sensor_id"].numpy().astype(str))
        parts["timestamp"].append(features["timestamp"].numpy().astype(np.float64).reshape(-1))
    return {k: np.concatenate(v) for k, v in parts.items()}


def variant_features(split: dict[str, np.ndarray], variant: str, rows: slice) -> dict[str, np.ndarray]:
    """The inputs of ``variant`` (float32 0-255), selected band by band from the ``full`` arrays."""
    full = schema.variant_inputs("full")
    out = {}
    for role, refs in schema.variant_inputs(variant).items():
        idx = [full[role].index(r) for r in refs]
        out[role] = split[role][rows][..., idx].astype(np.float32)
    return out


def smap_alone(split: dict[str, np.ndarray]) -> np.ndarray:
    """SMAP as the estimate: decoded ``ssm`` (mm over 0.05 m) in m3/m3."""
    band = sources.SOURCES["smap"].bands[0]
    mm = decode(split["coarse"][:, 0].astype(np.float64), band.encoding)
    return mm / 1000.0 / sources.VOLUMETRIC_DEPTH_M["smap"]


def load_calibrated(
    model_dir: Path, train_pattern: str, batches: int = BN_BATCHES, seed: int = 0
) -> tuple[Any, Any, str]:
    """A trained model with its batch-norm population statistics re-estimated on training batches.

    With the paper's batch-norm momentum (0.997, which the small config had until
    it moved to 0.9) a few hundred steps leave the moving averages mostly at their
    initial values (0.997^300 = 0.41), so inference-mode outputs are meaningless
    (often clipped to a constant). As in "precise BN" (Wu & Johnson 2021) the statistics are
    re-estimated as plain averages over ``batches`` training batches (forward
    passes in training mode, no weight update, no augmentation).

    Returns (model, config, variant).
    """
    import keras

    from training.data import make_dataset
    from training.export import load_trained

    model, cfg, variant, _ = load_trained(model_dir)
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    roles = list(schema.variant_inputs(variant))
    ds = make_dataset(train_pattern, variant, cfg.batch_size, training=True, seed=seed, augment=False)
    for k, (features, _) in enumerate(ds.take(batches)):
        for layer in norms:
            layer.momentum = k / (k + 1.0)  # running average over the batches seen so far
        model({r: features[r] for r in roles}, training=True)
    for layer in norms:
        layer.momentum = cfg.bn_momentum
    LOG.info("re-estimated %d batch-norm layers of %s on %d batches", len(norms), model_dir, batches)
    return model, cfg, variant


def predict_model(model: Any, split: dict[str, np.ndarray], variant: str, batch: int = 16) -> np.ndarray:
    """Estimates (m3/m3, clipped to [0, 1]) of a Keras model on every point of ``split``."""
    roles = list(schema.variant_inputs(variant))
    n = split["label"].size
    out = []
    for k in range(0, n, batch):
        features = variant_features(split, variant, slice(k, k + batch))
        out.append(np.asarray(model({r: features[r] for r in roles}, training=False), dtype=np.float64).reshape(-1))
    return np.clip(np.concatenate(out), 0.0, 1.0)


def score(pred: np.ndarray, split: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-sensor metrics averaged over sensors with >= 13 points."""
    return metrics.sensor_metrics(pred, split["label"], split["sensor_id"], metrics.MIN_POINTS)["average"]


def window_features(split: dict[str, np.ndarray]) -> np.ndarray:
    """Per point: centre-weighted means of the ``full`` high-res and low-res bands and the coarse scalars (0-255)."""
    y, x = np.mgrid[:256, :256] - 127.5
    weights = np.exp(-(x**2 + y**2) / (2 * 64.0**2))  # sigma 640 m, like the model's pooling
    weights /= weights.sum()
    high = np.stack(
        [
            np.tensordot(split["high_res"][k].astype(np.float64), weights, axes=([0, 1], [0, 1]))
            for k in range(split["label"].size)
        ]
    )
    low = split["low_res"].astype(np.float64).mean(axis=(1, 2))
    return np.concatenate([high, low, split["coarse"].astype(np.float64)], axis=1)


def linear_probe(train: dict[str, np.ndarray], test: dict[str, np.ndarray], ridge: float = 1e-3) -> np.ndarray:
    """Test estimates (m3/m3) of a ridge regression on :func:`window_features`: how much signal the inputs carry."""
    a, b = window_features(train), window_features(test)
    mean, sd = a.mean(axis=0), a.std(axis=0) + 1e-9
    a, b = (a - mean) / sd, (b - mean) / sd
    a1 = np.hstack([a, np.ones((a.shape[0], 1))])
    coef = np.linalg.solve(a1.T @ a1 + ridge * a1.shape[0] * np.eye(a1.shape[1]), a1.T @ train["label"])
    return np.clip(np.hstack([b, np.ones((b.shape[0], 1))]) @ coef, 0.0, 1.0)


def train_run(data: Path, variant: str, seed: int, steps: int, batch_size: int, model_dir: Path,
              overrides: tuple[str, ...] = ()) -> float:
    """Train one variant with ``python -m training.train``; return its wall time (s).

    ``overrides``: ``FIELD=VALUE`` config overrides (``training.train --set``).
    """
    cmd = [
        sys.executable, "-m", "training.train", "--config", "small", "--variant", variant,
        "--train", str(data / "train-*.tfrecord.gz"), "--steps", str(steps), "--batch-size", str(batch_size),
        "--model-dir", str(model_dir), "--seed", str(seed),
    ] + [arg for item in overrides for arg in ("--set", item)]
    LOG.info("%s", " ".join(cmd))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - start


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds per row."""
    table = []
    for name, variant in (*ROWS, (PROBE_ROW, None)):
        mine = [r for r in runs if r["row"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {"row": name, "variant": variant, "seeds": [r["seed"] for r in mine]}
        for m in METRICS:
            vals = np.array([r["metrics"][m] for r in mine], dtype=np.float64)
            row[m] = {"mean": float(vals.mean()), "sd": float(vals.std(ddof=1)) if vals.size > 1 else 0.0}
        row["n_sensors"] = mine[0]["metrics"]["n_sensors"]
        row["n_points"] = mine[0]["metrics"]["n_points"]
        table.append(row)
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    """The Table-9-style markdown table (m3/m3 except R)."""
    lines = ["| inputs | ubRMSE (m3/m3) | RMSE (m3/m3) | R | seeds |", "|---|---|---|---|---|"]
    for row in table:
        cells = [f"{row[m]['mean']:.3f} +- {row[m]['sd']:.3f}" for m in METRICS]
        lines.append(f"| {row['row']} | {' | '.join(cells)} | {len(row['seeds'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of a simulated dataset (training.simulate.tfrecords)")
    parser.add_argument("--out", required=True, help="folder for runs and results")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--linear-probe", action="store_true", help="add the linear-probe diagnostic row")
    parser.add_argument(
        "--bn-batches",
        type=int,
        default=0,
        help="re-estimate batch-norm statistics on this many training batches before scoring (0: off)",
    )
    parser.add_argument("--variants", nargs="*", default=[v for _, v in ROWS if v], choices=sorted(schema.VARIANTS))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="config override for every run (training.train --set), e.g. pooling_sigma_cells=0.5")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    test = load_split(str(data / "test-*.tfrecord.gz"))
    LOG.info(
        "test split: %d points, %d sensors (%.0f s)",
        test["label"].size,
        len(set(test["sensor_id"])),
        time.perf_counter() - start,
    )
    runs = [{"row": ROWS[0][0], "seed": s, "metrics": score(smap_alone(test), test)} for s in args.seeds]
    from training.export import load_trained  # TensorFlow only once a network is scored

    for name, variant in ROWS[1:]:
        if variant not in args.variants:
            continue
        for seed in args.seeds:
            result_file = out / f"{variant}_seed{seed}.json"
            if result_file.exists():
                runs.append(json.loads(result_file.read_text()))
                continue
            model_dir = out / f"{variant}_seed{seed}"
            seconds = train_run(data, variant, seed, args.steps, args.batch_size, model_dir, overrides=tuple(args.set))
            model, _, _, _ = load_trained(model_dir)
            raw = score(predict_model(model, test, variant), test)
            result = {
                "row": name,
                "variant": variant,
                "seed": seed,
                "train_seconds": round(seconds, 1),
                "bn_batches": args.bn_batches,
                "metrics": raw,
            }
            if args.bn_batches:
                model, _, _ = load_calibrated(
                    model_dir, str(data / "train-*.tfrecord.gz"), batches=args.bn_batches, seed=seed
                )
                result["metrics"] = score(predict_model(model, test, variant), test)
                result["metrics_without_bn_reestimation"] = raw
            result_file.write_text(json.dumps(result, indent=2) + "\n")
            LOG.info("%s seed %d: %s", variant, seed, {m: round(result["metrics"][m], 4) for m in METRICS})
            runs.append(result)
    if args.linear_probe:
        train = load_split(str(data / "train-*.tfrecord.gz"))
        probe = score(linear_probe(train, test), test)
        runs += [{"row": PROBE_ROW, "seed": s, "metrics": probe} for s in args.seeds]
    table = summarise(runs)
    summary = {
        "table": table,
        "runs": runs,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "bn_batches": args.bn_batches,
        "overrides": args.set,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "dataset": json.loads((data / "dataset.json").read_text()),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    (out / "results.md").write_text(markdown(table))
    LOG.info("benchmark done in %.0f s\n%s", time.perf_counter() - start, markdown(table))


if __name__ == "__main__":
    main()
