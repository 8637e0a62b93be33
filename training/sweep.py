"""The Table 7 sweep: one training run per learning rate x weight decay, the best picked on validation.

Paper 000 (Table 7) swept the initial learning rate over (0.1, 0.05, 0.03) and the decoupled
weight decay over (1e-4, 5e-5, 3e-5) and kept the run with the best validation score. This
launcher writes one run folder per combination (``OUT/lr<lr>_wd<wd>``, each an ordinary
``training.train`` model directory), skips runs that already have their validation metrics
(a killed sweep resumes where it stopped), and writes ``OUT/sweep.json`` and ``OUT/sweep.csv``
with every run's sensor-averaged validation metrics and the one picked.

Here the runs go one after another in this process. On a cluster each combination is its own
job on the cluster's scheduler (a TPU VM each, or a Vertex AI / Kubernetes job): ``--print-commands``
prints the nine ``python -m training.train`` command lines, and a later ``--collect`` call picks
the best from the finished run folders without training.

Command line::

    python -m training.sweep --out runs/sweep [--lr 0.1,0.05,0.03] [--weight-decay 1e-4,5e-5,3e-5] \
        [--select ubrmse] -- --config paper --variant full --train 'data/train-*' --val 'data/val-*' \
        --strategy tpu --tpu my-pod
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import math
import shlex
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Table 7's grid.
PAPER_LEARNING_RATES = (0.1, 0.05, 0.03)
PAPER_WEIGHT_DECAYS = (1e-4, 5e-5, 3e-5)
#: How each selectable metric ranks runs (sensor averages of smqgis.core.metrics): True = higher is better.
SELECT = {"ubrmse": False, "rmse": False, "r": True}
METRICS_FILE = "metrics.json"
#: Flags the sweep sets itself on every run.
OWN_FLAGS = ("--model-dir", "--lr", "--weight-decay")


def run_name(lr: float, wd: float) -> str:
    """Folder name of one combination, e.g. ``lr0.05_wd5e-05``."""
    return f"lr{lr:g}_wd{wd:g}"


def parse_floats(text: str, flag: str) -> list[float]:
    """Comma-separated positive numbers (ValueError naming ``flag`` otherwise)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{flag}: expected comma-separated numbers >= 0, got {text!r}")
    return values


def plan(out: Path, lrs: list[float], wds: list[float], train_args: list[str]) -> list[dict[str, Any]]:
    """One entry per combination: its learning rate, weight decay, folder and ``training.train`` arguments."""
    clash = [a for a in train_args if a.split("=", 1)[0] in OWN_FLAGS]
    if clash:
        raise ValueError(f"the sweep sets {', '.join(OWN_FLAGS)} itself; remove {clash} from the training arguments")
    runs = []
    for lr, wd in itertools.product(lrs, wds):
        model_dir = out / run_name(lr, wd)
        args = [*train_args, "--model-dir", str(model_dir), "--lr", repr(lr), "--weight-decay", repr(wd)]
        runs.append({"lr": lr, "weight_decay": wd, "model_dir": str(model_dir), "args": args})
    return runs


def read_average(model_dir: str | Path) -> dict[str, Any] | None:
    """The sensor-averaged validation metrics of a finished run, or None if it has none yet."""
    path = Path(model_dir) / METRICS_FILE
    if not path.exists():
        return None
    return dict(json.loads(path.read_text()).get("average", {}))


def pick_best(rows: list[dict[str, Any]], select: str) -> dict[str, Any]:
    """The row whose validation ``select`` metric is best (finite values only)."""
    higher = SELECT[select]
    scored = [r for r in rows if r.get("metrics") and isinstance(r["metrics"].get(select), (int, float))
              and math.isfinite(r["metrics"][select])]
    if not scored:
        raise RuntimeError(f"no run has a finite validation {select}: did the runs get --val data with sensors "
                           "of >= 13 points?")
    return (max if higher else min)(scored, key=lambda r: r["metrics"][select])


def write_summary(out: Path, rows: list[dict[str, Any]], best: dict[str, Any], select: str) -> None:
    """``sweep.json`` (every run and the pick) and ``sweep.csv`` (a row per run)."""
    public = [{k: v for k, v in r.items() if k != "args"} for r in rows]
    summary = {"select": select, "higher_is_better": SELECT[select], "runs": public,
               "best": {k: v for k, v in best.items() if k != "args"}}
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=float))
    names = ["lr", "weight_decay", "model_dir", "ubrmse", "rmse", "r", "bias", "n_sensors", "best"]
    with open(out / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for r in rows:
            m = r.get("metrics") or {}
            writer.writerow({"lr": r["lr"], "weight_decay": r["weight_decay"], "model_dir": r["model_dir"],
                             **{k: m.get(k, "") for k in names[3:8]}, "best": r is best})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m training.sweep", description=__doc__.split("\n\n")[0],
                                     epilog="Arguments after -- go to every `python -m training.train` run.")
    parser.add_argument("--out", required=True, help="folder of the sweep (one run folder per combination)")
    parser.add_argument("--lr", default=",".join(map(str, PAPER_LEARNING_RATES)), help="learning rates (Table 7)")
    parser.add_argument("--weight-decay", default=",".join(map(str, PAPER_WEIGHT_DECAYS)),
                        help="decoupled weight decays (Table 7)")
    parser.add_argument("--select", default="ubrmse", choices=sorted(SELECT),
                        help="validation metric that picks the best run (sensor average)")
    parser.add_argument("--print-commands", action="store_true",
                        help="print one training command per combination (for a cluster's scheduler) and stop")
    parser.add_argument("--collect", action="store_true", help="only pick the best of the finished runs")
    raw = sys.argv[1:] if argv is None else list(argv)
    train_args = raw[raw.index("--") + 1:] if "--" in raw else []
    args = parser.parse_args(raw[:raw.index("--")] if "--" in raw else raw)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    runs = plan(out, parse_floats(args.lr, "--lr"), parse_floats(args.weight_decay, "--weight-decay"), train_args)
    if args.print_commands:
        for run in runs:
            print(shlex.join(["python", "-m", "training.train", *run["args"]]))
        return {"runs": runs}
    if not args.collect and not any(a.split("=", 1)[0] == "--val" for a in train_args):
        parser.error("the sweep picks on validation metrics: pass --val GLOB after --")
    out.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs, 1):
        run["metrics"] = read_average(run["model_dir"])
        if run["metrics"] is not None:
            log.info("[%d/%d] %s: done before, skipped", i, len(runs), run_name(run["lr"], run["weight_decay"]))
            continue
        if args.collect:
            log.warning("[%d/%d] %s: not finished", i, len(runs), run["model_dir"])
            continue
        log.info("[%d/%d] training %s", i, len(runs), run_name(run["lr"], run["weight_decay"]))
        from . import train

        run["metrics"] = dict(train.main(run["args"]).get("average", {}))
    best = pick_best(runs, args.select)
    write_summary(out, runs, best, args.select)
    log.info("best on validation %s: %s (%s)", args.select, best["model_dir"], best["metrics"])
    return {"runs": runs, "best": best}


if __name__ == "__main__":
    main()
