"""Train SMEN (paper 002) on a 36 km / 3 km series: masked uRMSE, Adam, random 3 km crops.

Between ``training.smen.data`` (examples) and ``training.smen.export`` (ONNX). Each step
takes ``batch_size`` random examples, one random ``patch_px`` crop of each (paper: 100 x
100 px images), and minimises the masked unbiased RMSE against the 3 km product (only
pixels where it exists count) with Adam. ``epochs`` passes over the training examples
(paper: 1000) set the number of steps unless ``--steps`` is given.

A model directory holds ``run.json`` (config and flags), ``ckpt/`` (checkpoints every
``--checkpoint-every`` steps; a restarted run resumes from the latest), ``logs/``
(TensorBoard: loss, learning rate, validation uRMSE) and ``metrics.json`` (final
validation uRMSE against the 3 km product and, on simulated data, the 3 km truth).

Command line (simulated data; the series is cached in ``--cache``)::

    python -m training.smen.train --model-dir build/smen/run --k 4 --epochs 50 \
        --lr 1e-3 --train-until 2019-12-31 --seed 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..simulate.smen_data import SmenRegion, load_or_make_series
from .config import SmenConfig, config_from_dict
from .data import Examples, make_examples, random_crops
from .model import batch_loss, build_model

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
CKPT_DIR = "ckpt"
DEFAULT_CACHE = "build/smen/series_seed3.npz"
#: Images per prediction call in evaluation (memory: ~40 MB of activations per 108 px image at k = 4).
EVAL_BATCH = 8


def scalar_summary(tag: str, value: float, step: int) -> None:
    """One TensorBoard scalar with the default writer (the fusion trainer's raw-op writer)."""
    from ..train import scalar_summary as write

    write(tag, value, step)


def ubrmse_np(truth: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-image unbiased RMSE (m3/m3) over ``mask`` (default: all pixels): [N, H, W] -> [N]."""
    m = np.ones_like(truth, dtype=bool) if mask is None else mask.astype(bool)
    out = []
    for t, e, mm in zip(truth, estimate, m, strict=False):
        if not mm.any():
            out.append(np.nan)
            continue
        d = (e[mm] - e[mm].mean()) - (t[mm] - t[mm].mean())
        out.append(float(np.sqrt(np.mean(d * d))))
    return np.asarray(out)


class SmenTrainer:
    """Model, Adam optimizer, checkpoint manager and the compiled training step of one run."""

    def __init__(self, cfg: SmenConfig, model_dir: str | os.PathLike | None = None) -> None:
        self.cfg = cfg
        keras.utils.set_random_seed(cfg.seed)
        self.model = build_model(cfg)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self.model_dir = Path(model_dir) if model_dir else None
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.manager = (
            tf.train.CheckpointManager(self.checkpoint, str(self.model_dir / CKPT_DIR), max_to_keep=2)
            if self.model_dir
            else None
        )
        self.input_names = [t.name for t in self.model.inputs]
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._predict = tf.function(lambda feeds: self.model(feeds, training=False), reduce_retracing=True)

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> int:
        if self.manager and self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            log.info("resumed from %s at step %d", self.manager.latest_checkpoint, self.step)
        return self.step

    def save(self) -> None:
        if self.manager:
            log.info("checkpoint %s", self.manager.save(checkpoint_number=self.step))

    def _train_step(self, feeds: dict[str, tf.Tensor], target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            estimate = self.model(feeds, training=True)[..., 0]
            loss = batch_loss(target, estimate, mask)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=False))
        return loss

    def fit(self, train: Examples, steps: int, *, checkpoint_every: int = 500, verbose: bool = True) -> list[float]:
        """Train to ``steps`` optimizer steps; return the loss of every step (m3/m3)."""
        rng = np.random.default_rng(self.cfg.seed + 1000 * self.step)
        writer = tf.summary.create_file_writer(str(self.model_dir / "logs" / "train")) if self.model_dir else None
        progbar = keras.utils.Progbar(
            steps, stateful_metrics=["loss"], verbose=(1 if sys.stderr.isatty() else 2) if verbose else 0
        )
        losses: list[float] = []
        last_saved = self.step
        while self.step < steps:
            index = rng.choice(len(train), size=self.cfg.batch_size, replace=len(train) < self.cfg.batch_size)
            crops = random_crops(train, index, self.cfg.patch_px, rng)
            feeds = {name: tf.constant(crops[name]) for name in self.input_names}
            loss = float(self._step(feeds, tf.constant(crops["target"]), tf.constant(crops["mask"])))
            losses.append(loss)
            progbar.update(self.step, [("loss", loss)])
            if writer and (self.step % 10 == 0 or self.step == steps):
                with writer.as_default():
                    scalar_summary("loss/masked_ubrmse", loss, self.step)
                    scalar_summary("learning_rate", float(self.cfg.learning_rate), self.step)
            if self.step - last_saved >= checkpoint_every or self.step >= steps:
                self.save()
                last_saved = self.step
        return losses

    def predict(self, ex: Examples) -> np.ndarray:
        """Estimates (m3/m3) on the full images: [N, H, W]."""
        feeds_all = ex.inputs(self.cfg.variant)
        out = []
        for start in range(0, len(ex), EVAL_BATCH):
            feeds = {k: tf.constant(v[start : start + EVAL_BATCH]) for k, v in feeds_all.items()}
            out.append(np.asarray(self._predict(feeds))[..., 0])
        return np.concatenate(out)


def evaluate(estimate: np.ndarray, ex: Examples) -> dict[str, float]:
    """Mean per-image uRMSE (m3/m3) against the 3 km product (masked) and the 3 km truth (all pixels)."""
    return {
        "ubrmse_product": float(np.nanmean(ubrmse_np(ex.target, estimate, ex.mask))),
        "ubrmse_truth": float(np.nanmean(ubrmse_np(ex.truth, estimate))),
        "n_images": len(ex),
    }


def split_examples(series: Any, k: int, train_until: str) -> tuple[Examples, Examples]:
    """(train, held-out) examples: dates up to ``train_until`` and after it."""
    start = dt.date.fromisoformat(series.region.start_date)
    cut = (dt.date.fromisoformat(train_until) - start).days
    return make_examples(series, k, last_day=cut), make_examples(series, k, first_day=cut + 1)


def steps_for(cfg: SmenConfig, n_train: int) -> int:
    """Optimizer steps of ``cfg.epochs`` passes over ``n_train`` examples."""
    return max(1, int(np.ceil(cfg.epochs * n_train / cfg.batch_size)))


def write_run(model_dir: Path, cfg: SmenConfig, flags: dict[str, Any]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / RUN_FILE).write_text(json.dumps({"config": cfg.to_dict(), "flags": flags}, indent=2))


def read_run(model_dir: str | os.PathLike) -> tuple[SmenConfig, dict[str, Any]]:
    """(config, final metrics or {}) of a model directory."""
    model_dir = Path(model_dir)
    run = json.loads((model_dir / RUN_FILE).read_text())
    metrics_path = model_dir / METRICS_FILE
    return config_from_dict(run["config"]), (json.loads(metrics_path.read_text()) if metrics_path.exists() else {})


def restore_latest(model_dir: str | os.PathLike, model: keras.Model) -> str:
    """Load the weights of the latest checkpoint of ``model_dir`` into ``model``."""
    path = tf.train.latest_checkpoint(str(Path(model_dir) / CKPT_DIR))
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {Path(model_dir) / CKPT_DIR}")
    tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m training.smen.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--k", type=int, default=SmenConfig.k, help="previous (36 km, 3 km) pairs (>= 4)")
    parser.add_argument("--variant", default="spatiotemporal", choices=["spatiotemporal", "spatial", "temporal"])
    parser.add_argument("--epochs", type=int, default=SmenConfig.epochs, help="passes over the training examples")
    parser.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    parser.add_argument("--lr", type=float, default=SmenConfig.learning_rate, help="Adam learning rate (paper 1e-4)")
    parser.add_argument("--batch-size", type=int, default=SmenConfig.batch_size)
    parser.add_argument("--patch-px", type=int, default=SmenConfig.patch_px, help="training crop side, 3 km pixels")
    parser.add_argument("--n-train", type=int, help="use only the first N training examples (size curve)")
    parser.add_argument("--train-until", default="2019-12-31", help="last date of the training examples")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="simulated series cache (.npz)")
    parser.add_argument("--world-seed", type=int, default=SmenRegion.seed)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    cfg = SmenConfig(
        k=args.k,
        variant=args.variant,
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patch_px=args.patch_px,
        seed=args.seed,
    )
    series = load_or_make_series(args.cache, SmenRegion(seed=args.world_seed))
    train, held_out = split_examples(series, cfg.k, args.train_until)
    if args.n_train:
        train = train.subset(slice(0, args.n_train))
    steps = args.steps or steps_for(cfg, len(train))
    model_dir = Path(args.model_dir)
    write_run(model_dir, cfg, {**vars(args), "steps": steps, "n_train": len(train)})
    trainer = SmenTrainer(cfg, model_dir)
    trainer.restore()
    start = time.perf_counter()
    log.info("training %s on %d examples for %d steps", trainer.model.name, len(train), steps)
    trainer.fit(train, steps, checkpoint_every=args.checkpoint_every)
    log.info("trained in %.1f s", time.perf_counter() - start)
    result = {
        "train": evaluate(trainer.predict(train), train),
        "held_out": evaluate(trainer.predict(held_out), held_out),
    }
    (model_dir / METRICS_FILE).write_text(json.dumps(result, indent=2))
    writer = tf.summary.create_file_writer(str(model_dir / "logs" / "val"))
    with writer.as_default():
        for key, value in result["held_out"].items():
            scalar_summary(f"held_out/{key}", float(value), trainer.step)
    log.info("held-out uRMSE (m3/m3): %s", result["held_out"])
    return result


if __name__ == "__main__":
    main()
