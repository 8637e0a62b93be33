"""Train the fusion model (paper 000 section 3b, Table 7) under any tf.distribute strategy.

Between ``training/data.py`` (batches of 0-255 encoded inputs and m3/m3 labels) and
``training/export.py`` (ONNX). A custom, strategy-agnostic loop: ``strategy.run`` of one
step per replica inside a ``tf.function`` that runs ``steps_per_loop`` steps (one host
round trip per loop on a TPU); the same code runs under the default strategy,
``MirroredStrategy`` and ``TPUStrategy``. Optimisation follows Table 7: SGD with momentum
0.9, the learning rate decays polynomially (power 0.9) to 0 over the run, Huber loss
(delta 0.4 m3/m3) averaged over the global batch, synchronized batch norm (the model's
``BatchNormalization(synchronized=True)``), static batch shapes (``drop_remainder``).

Weight decay is decoupled (Loshchilov & Hutter 2019, which the paper cites): after each
step every convolution/dense kernel is shrunk by ``lr * weight_decay`` (Keras SGD's
``weight_decay``); biases and batch-norm parameters are not decayed. Scaled by the
learning rate like this it equals an L2 penalty ``weight_decay / 2 * ||w||^2`` on plain
SGD.

A model directory holds ``run.json`` (config, variant, flags), ``ckpt/`` (checkpoints
every ``checkpoint_every_steps``; a restarted run resumes from the latest one),
``logs/`` (TensorBoard: loss, learning rate, validation metrics) and ``metrics.json``
(final validation metrics from ``smqgis.core.metrics``).

Command line::

    python -m training.train --config small --variant full --train 'data/train-*.tfrecord.gz' \
        --val 'data/val-*.tfrecord.gz' --steps 200 --batch-size 8 --strategy default \
        --model-dir runs/small_full --seed 0

At scale: ``--strategy mirrored`` (every GPU of the machine) or ``--strategy tpu --tpu NAME``
(a TPU VM or pod slice; ``--steps-per-loop 100``), the global batch (64 in Table 7) split over
the replicas; ``--data-service HOST:PORT`` moves the input pipeline to a tf.data service
(``training/data_service.py``); ``python -m training.sweep`` runs the Table 7 learning-rate x
weight-decay grid and picks the best run on validation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from smqgis.core.schema import VARIANTS

from .config import ModelConfig, config_from_dict, get_config
from .model import build_model

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
CKPT_DIR = "ckpt"
#: Weight names that weight decay applies to (convolution, depthwise and dense kernels: Keras names all "kernel").
DECAYED_WEIGHTS = ("kernel",)


def scalar_summary(tag: str, value: float, step: int) -> None:
    """Write one TensorBoard scalar with the default writer (raw op: needs no tensorboard package)."""
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata.SerializeToString())


def make_strategy(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
    """The tf.distribute strategy named on the command line (default | mirrored | tpu)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose default, mirrored or tpu")


def huber(labels: tf.Tensor, predictions: tf.Tensor, delta: float) -> tf.Tensor:
    """Per-example Huber loss (m3/m3 scale): 0.5 e^2 for |e| <= delta, delta (|e| - delta/2) beyond."""
    abs_error = tf.abs(predictions - labels)
    quadratic = tf.minimum(abs_error, delta)
    return 0.5 * tf.square(quadratic) + delta * (abs_error - quadratic)


def make_optimizer(
    cfg: ModelConfig, model: keras.Model, *, steps: int, learning_rate: float, weight_decay: float
) -> keras.optimizers.Optimizer:
    """SGD, momentum 0.9, polynomial decay (power 0.9) to 0 over ``steps``, decoupled weight decay on kernels."""
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, decay_steps=steps, end_learning_rate=cfg.end_learning_rate, power=cfg.lr_decay_power
    )
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=cfg.momentum, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if v.name not in DECAYED_WEIGHTS]
    )
    optimizer.build(model.trainable_variables)
    return optimizer


class Trainer:
    """Model, optimizer, checkpoint and the distributed step functions of one run.

    Build it with the strategy's scope active around nothing: the constructor enters
    ``strategy.scope()`` itself so that variables are created per replica.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        variant: str,
        strategy: tf.distribute.Strategy,
        *,
        steps: int,
        global_batch_size: int,
        learning_rate: float | None = None,
        weight_decay: float | None = None,
        model_dir: str | os.PathLike | None = None,
        jit_compile: bool = False,
    ) -> None:
        self.cfg, self.variant, self.strategy = cfg, variant, strategy
        self.steps, self.global_batch_size = steps, global_batch_size
        self.learning_rate = cfg.learning_rate if learning_rate is None else learning_rate
        self.weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
        self.model_dir = Path(model_dir) if model_dir else None
        if global_batch_size % strategy.num_replicas_in_sync:
            raise ValueError(f"batch {global_batch_size} does not split over {strategy.num_replicas_in_sync} replicas")
        with strategy.scope():
            self.model = build_model(cfg, variant)
            self.optimizer = make_optimizer(
                cfg, self.model, steps=steps, learning_rate=self.learning_rate, weight_decay=self.weight_decay
            )
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.input_names = [t.name for t in self.model.inputs]
        self.manager = (
            tf.train.CheckpointManager(self.checkpoint, str(self.model_dir / CKPT_DIR), max_to_keep=3)
            if self.model_dir
            else None
        )
        self._step_fn = tf.function(self._replica_step, jit_compile=True) if jit_compile else self._replica_step
        self._train_loop = tf.function(self._distributed_loop)
        self._predict = tf.function(self._distributed_predict)

    @property
    def step(self) -> int:
        """Optimizer steps done so far (restored with the checkpoint)."""
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> int:
        """Resume from the latest checkpoint of the model directory, if any; return the step."""
        if self.manager and self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            log.info("resumed from %s at step %d", self.manager.latest_checkpoint, self.step)
        return self.step

    def save(self) -> str | None:
        """Write a checkpoint numbered by the current step."""
        if not self.manager:
            return None
        path = self.manager.save(checkpoint_number=self.step)
        log.info("checkpoint %s", path)
        return path

    def _model_inputs(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {k: features[k] for k in self.input_names}

    def _replica_step(self, features: dict[str, tf.Tensor], labels: tf.Tensor) -> tf.Tensor:
        """One SGD step on this replica's share of the batch; returns its share of the mean loss."""
        with tf.GradientTape() as tape:
            predictions = self.model(self._model_inputs(features), training=True)[:, 0]
            loss = tf.reduce_sum(huber(labels, predictions, self.cfg.huber_delta)) / self.global_batch_size
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))  # all-reduces over replicas
        return loss

    def _distributed_loop(self, iterator: Iterator, num_steps: tf.Tensor) -> tf.Tensor:
        """``num_steps`` distributed steps in one graph; returns the mean global-batch loss."""
        total = tf.constant(0.0)
        for _ in tf.range(num_steps):
            per_replica = self.strategy.run(self._step_fn, args=next(iterator))
            total += tf.cast(self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None), tf.float32)
        return total / tf.cast(num_steps, tf.float32)

    def _distributed_predict(self, features: dict[str, tf.Tensor]) -> Any:
        return self.strategy.run(lambda f: self.model(self._model_inputs(f), training=False)[:, 0], args=(features,))

    def fit(
        self,
        dataset: tf.data.Dataset,
        *,
        steps_per_loop: int = 1,
        checkpoint_every: int | None = None,
        on_loop: Callable[[int, float], None] | None = None,
    ) -> list[float]:
        """Train from the current step to ``self.steps``; return the mean loss of every loop.

        ``dataset`` yields global batches ``(features, label)`` forever (``drop_remainder``).
        """
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        checkpoint_every = checkpoint_every or self.cfg.checkpoint_every_steps
        writer = tf.summary.create_file_writer(str(self.model_dir / "logs" / "train")) if self.model_dir else None
        progbar = keras.utils.Progbar(
            self.steps, stateful_metrics=["loss", "lr"], verbose=1 if sys.stderr.isatty() else 2
        )
        losses: list[float] = []
        last_saved = self.step
        while self.step < self.steps:
            n = min(steps_per_loop, self.steps - self.step)
            loss = float(self._train_loop(iterator, tf.constant(n)))
            step, lr = self.step, float(self.optimizer.learning_rate)
            losses.append(loss)
            progbar.update(step, [("loss", loss), ("lr", lr)])
            log.debug("step %d loss %.5f lr %.4g", step, loss, lr)
            if writer:
                with writer.as_default():
                    scalar_summary("loss/huber", loss, step)
                    scalar_summary("learning_rate", lr, step)
            if on_loop:
                on_loop(step, loss)
            if step - last_saved >= checkpoint_every or step >= self.steps:
                self.save()
                last_saved = step
        return losses

    def predict(self, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Estimates (m3/m3), labels and the non-model features (e.g. ``sensor_id``) over one pass."""
        preds, labels, extra = [], [], {}
        for features, label in dataset:
            out = self._predict(features)
            preds.append(np.concatenate([np.asarray(t) for t in self.strategy.experimental_local_results(out)]))
            labels.append(label.numpy())
            for key, value in features.items():
                if key not in self.input_names:
                    extra.setdefault(key, []).append(value.numpy())
        return (
            np.concatenate(preds),
            np.concatenate(labels),
            {k: np.concatenate(v) for k, v in extra.items()},
        )


def validation_metrics(predictions: np.ndarray, labels: np.ndarray, sensor_ids: np.ndarray) -> dict[str, Any]:
    """Per-sensor ubRMSE / RMSE / Pearson R / bias averaged over sensors with >= 13 points (paper 000 §3c).

    The ``smqgis.core.metrics.sensor_metrics`` result (``per_sensor``, ``average``, ...).
    """
    from smqgis.core import metrics

    return metrics.sensor_metrics(predictions, labels, sensor_ids)


def metrics_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The sensor-averaged part of a metrics result, NaN as None (strict JSON for the ONNX metadata)."""
    summary = {k: v for k, v in result.items() if k != "per_sensor"}
    summary["average"] = {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in result.get("average", {}).items()
    }
    return summary


def write_run(model_dir: Path, cfg: ModelConfig, variant: str, flags: dict[str, Any]) -> None:
    """Record what a model directory was trained with (read back by export)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / RUN_FILE).write_text(
        json.dumps({"config": cfg.to_dict(), "variant": variant, "flags": flags}, indent=2)
    )


def read_run(model_dir: str | os.PathLike) -> tuple[ModelConfig, str, dict[str, Any]]:
    """(config, variant, sensor-averaged final validation metrics or {}) of a model directory."""
    model_dir = Path(model_dir)
    run = json.loads((model_dir / RUN_FILE).read_text())
    metrics_path = model_dir / METRICS_FILE
    metrics = metrics_summary(json.loads(metrics_path.read_text())) if metrics_path.exists() else {}
    return config_from_dict(run["config"]), run["variant"], metrics


def restore_latest(model_dir: str | os.PathLike, model: keras.Model) -> str:
    """Load the model weights of the latest checkpoint of ``model_dir`` (optimizer state skipped)."""
    path = tf.train.latest_checkpoint(str(Path(model_dir) / CKPT_DIR))
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {Path(model_dir) / CKPT_DIR}")
    tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
    log.info("restored %s", path)
    return path


def override(cfg: ModelConfig, assignments: list[str]) -> ModelConfig:
    """``cfg`` with ``FIELD=VALUE`` overrides applied (numbers, or comma-separated tuples of numbers).

    The overridden config is what the run records (``write_run``) and what export writes into
    the model's metadata, so an override never goes unrecorded.
    """
    changes: dict[str, Any] = {}
    fields = cfg.to_dict()
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        current = fields[key]
        if isinstance(current, list):
            changes[key] = tuple(type(current[0])(v) if current else float(v) for v in raw.split(","))
        elif isinstance(current, bool):
            changes[key] = raw.lower() in ("1", "true", "yes")
        else:
            changes[key] = type(current)(raw)
    return cfg.replace(**changes)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="small", help="named config: small | paper")
    parser.add_argument("--variant", default="full", choices=sorted(VARIANTS))
    parser.add_argument("--train", required=True, help="glob of training TFRecord files")
    parser.add_argument("--val", help="glob of validation TFRecord files (final metrics)")
    parser.add_argument("--steps", type=int, help="total optimizer steps (default: the config's)")
    parser.add_argument("--batch-size", type=int, help="global batch size (default: the config's)")
    parser.add_argument("--strategy", default="default", choices=["default", "mirrored", "tpu"])
    parser.add_argument("--tpu", help="TPU name or address for --strategy tpu")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, help="initial learning rate (default: the config's)")
    parser.add_argument("--weight-decay", type=float, help="decoupled weight decay (default: the config's)")
    parser.add_argument("--steps-per-loop", type=int, default=1, help="steps per host round trip (TPU: e.g. 100)")
    parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: the config's)")
    parser.add_argument("--jit-compile", action="store_true", help="XLA-compile the per-replica step")
    parser.add_argument("--data-service", metavar="HOST:PORT",
                        help="read training batches from a tf.data service dispatcher (training/data_service.py)")
    parser.add_argument("--data-service-sharding", default="dynamic", choices=["dynamic", "off"],
                        help="dynamic: the dispatcher splits the files among workers; off: every worker reads all")
    parser.add_argument("--data-service-job", help="job name shared by the trainers of one run (a TPU pod's hosts)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set pooling_sigma_cells=0.5 --set head1_keep=0.9,0.9,0.9")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from .data import make_dataset

    cfg = override(get_config(args.config), args.set).replace(seed=args.seed)
    if args.batch_size:
        cfg = cfg.replace(batch_size=args.batch_size)
    steps = args.steps or cfg.train_steps
    keras.utils.set_random_seed(args.seed)
    strategy = make_strategy(args.strategy, args.tpu)
    model_dir = Path(args.model_dir)
    write_run(model_dir, cfg, args.variant, vars(args))
    trainer = Trainer(
        cfg,
        args.variant,
        strategy,
        steps=steps,
        global_batch_size=cfg.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        model_dir=model_dir,
        jit_compile=args.jit_compile,
    )
    trainer.restore()
    train_ds = make_dataset(args.train, args.variant, cfg.batch_size, training=True, seed=args.seed)
    if args.data_service:
        from .data_service import distribute

        train_ds = distribute(train_ds, args.data_service, sharding=args.data_service_sharding,
                              job_name=args.data_service_job)
    start = time.perf_counter()
    losses = trainer.fit(train_ds, steps_per_loop=args.steps_per_loop, checkpoint_every=args.checkpoint_every)
    log.info(
        "trained to step %d in %.1f s (last loss %s)", trainer.step, time.perf_counter() - start, losses[-1:] or "-"
    )
    result: dict[str, Any] = {}
    if args.val:
        val_ds = make_dataset(
            args.val, args.variant, cfg.batch_size, training=False, seed=args.seed, drop_remainder=False, with_meta=True
        )
        predictions, labels, extra = trainer.predict(val_ds)
        result = validation_metrics(predictions, labels, extra["sensor_id"])
        (model_dir / METRICS_FILE).write_text(json.dumps(result, indent=2, default=float))
        writer = tf.summary.create_file_writer(str(model_dir / "logs" / "val"))
        with writer.as_default():
            for key, value in result["average"].items():
                scalar_summary(f"val/{key}", float(value), trainer.step)
        log.info("validation (sensor average): %s", result["average"])
    return result


if __name__ == "__main__":
    main()
