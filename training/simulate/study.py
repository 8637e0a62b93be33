"""Choose the demo model's pooling sigma and head-1 dropout on validation data (issue 8).

Paper 000 gives no sigma for its centre-weighted pooling (its Fig. 9 only shows weights that
peak at the centre) and keeps 0.5 / 0.5 / 0.6 of head 1 (the image branch) in dropout, which may
teach head 2 to lean on SMAP and GLDAS instead. This study trains the full variant (small
config) once per candidate on the demo dataset and scores each on data the demo model is never
judged on:

* the validation sensors (pooled over their points: R, ubRMSE, and the *spatial* R of the
  anomalies from each date's mean across sensors - what per-sensor time-series metrics miss);
* validation scenes: 5.12 km scenes like the bundled sample but elsewhere in the world
  (``VALIDATION_CENTRES``, >= 20 km from the sample), one per sample date kind, mapped in exact
  mode and compared with their 320 m truth (R, ubRMSE and the share of the map's variance that
  lies between SMAP cells).

    python -m training.simulate.study --data build/simulate/data --out build/simulate/study \\
        --steps 400 --candidate sigma2_paper_dropout: \\
        --candidate sigma0.5_paper_dropout:pooling_sigma_cells=0.5 \\
        --candidate sigma0.5_keep0.9:pooling_sigma_cells=0.5,head1_keep=0.9/0.9/0.9

Writes ``study.json`` and ``study.md`` (a markdown table) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from smqgis.core import metrics

from .benchmark import load_split, predict_model, train_run
from .scene import SCENE_KINDS, build_sample_scene, choose_scene
from .world import World, WorldConfig

LOG = logging.getLogger(__name__)

#: Centres (m, EPSG:32614) of the validation scenes: far (>= 20 km) from the bundled sample's centre.
VALIDATION_CENTRES = ((575_040.0, 3_925_120.0), (625_600.0, 3_975_040.0), (580_160.0, 3_975_680.0))


def validation_scenes(world: World, out: Path) -> list[Path]:
    """One validation scene per sample date kind, each at its own centre (written once, then reused)."""
    folders = []
    for (kind, centre) in zip(SCENE_KINDS, VALIDATION_CENTRES):
        folder = out / f"val_scene_{kind}"
        if not (folder / "manifest.json").is_file():
            choice = None
            for min_day in (480, 250, 30):  # the latest date of the kind with a cloud-free Sentinel-2 there
                try:
                    choice = choose_scene(world, centre=centre, kind=kind, min_day=min_day)
                    break
                except RuntimeError:
                    continue
            if choice is None:
                raise RuntimeError(f"no validation date of kind {kind!r} at {centre}")
            build_sample_scene(folder, world, choice, kind=kind, with_truth_10m=False)
        folders.append(folder)
    return folders


def spatial_r(pred: np.ndarray, obs: np.ndarray, dates: np.ndarray) -> float:
    """Pearson R of the anomalies from each date's mean (spatial skill across sensors on one date)."""
    dp, do = pred.astype(np.float64).copy(), obs.astype(np.float64).copy()
    for d in np.unique(dates):
        sel = dates == d
        dp[sel] -= dp[sel].mean()
        do[sel] -= do[sel].mean()
    return metrics.pearson_r(dp, do)


def score_candidate(model_dir: Path, val: dict[str, np.ndarray], scenes: list[Path], onnx_path: Path) -> dict[str, Any]:
    """Validation metrics of one trained run (see the module docstring)."""
    from training.export import export_model, load_trained

    from .demo import evaluate_on_sample

    model, cfg, variant, _ = load_trained(model_dir)
    pred = predict_model(model, val, variant)
    obs = val["label"]
    result: dict[str, Any] = {
        "val_points": int(obs.size),
        "val_r": metrics.pearson_r(pred, obs),
        "val_ubrmse": metrics.ubrmse(pred, obs),
        "val_spatial_r": spatial_r(pred, obs, val["timestamp"]),
    }
    export_model(model, cfg, variant, onnx_path, title="study candidate (simulated)",
                 trained_on={"kind": "simulated", "description": "study candidate"}, seed=0)
    rows = []
    for folder in scenes:
        res = evaluate_on_sample(onnx_path, folder, between_cells=True)
        rows.append({"scene": folder.name, **{k: res[k] for k in ("r", "ubrmse", "bias", "between_smap_cells")},
                     "smap_ubrmse": res["smap_alone"]["ubrmse"]})
    result["scenes"] = rows
    result["scene_r_mean"] = float(np.mean([r["r"] for r in rows]))
    result["scene_between_cells_mean"] = float(np.mean([r["between_smap_cells"] for r in rows]))
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    """The study's table (m3/m3 except R and shares)."""
    lines = ["| candidate | overrides | val R | val ubRMSE | val spatial R | val-scene R (mean) | "
             "val-scene share between SMAP cells (mean) | train s |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {' '.join(r['overrides']) or '(small config)'} | {r['val_r']:.3f} | "
                     f"{r['val_ubrmse']:.4f} | {r['val_spatial_r']:.3f} | {r['scene_r_mean']:.3f} | "
                     f"{r['scene_between_cells_mean']:.0%} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset folder (train-*/val-* shards)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidate", action="append", required=True,
                        help="NAME:FIELD=VALUE,FIELD=VALUE (tuple values separated by /)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = World(WorldConfig())
    scenes = validation_scenes(world, out)
    val = load_split(str(Path(args.data) / "val-*.tfrecord.gz"))
    results = []
    for cand in args.candidate:
        name, _, spec = cand.partition(":")
        overrides = tuple(item.replace("/", ",") for item in spec.split(",") if item)
        model_dir = out / name
        start = time.perf_counter()
        train_run(Path(args.data), "full", args.seed, args.steps, args.batch_size, model_dir, overrides=overrides)
        seconds = time.perf_counter() - start
        res = {"name": name, "overrides": list(overrides), "train_seconds": seconds,
               **score_candidate(model_dir, val, scenes, out / f"{name}.onnx")}
        LOG.info("candidate %s: %s", name, {k: v for k, v in res.items() if k != "scenes"})
        results.append(res)
        (out / "study.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
        (out / "study.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
