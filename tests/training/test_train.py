"""Tests of training/train.py: the loss goes down, checkpoints resume, the CLI runs end to end."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from smqgis.core import schema
from training import export, train
from training.config import SMALL


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load("train_strategy_worker")
tiny = _load("make_tiny_tfrecord")

NO_DROPOUT = {"head1_keep": (1.0, 1.0, 1.0), "head2_keep": (1.0, 1.0), "drop_path_keep": 1.0}


def _fixed_dataset(batch: int) -> tf.data.Dataset:
    features, labels = worker.fixed_batch(batch, seed=0)
    return tf.data.Dataset.from_tensors((features, labels)).repeat()


def test_huber_matches_keras():
    y, p = np.array([0.1, 0.2, 0.3], np.float32), np.array([0.1, 0.9, -0.5], np.float32)
    expected = keras.losses.Huber(delta=0.4, reduction=None)(y[:, None], p[:, None])
    np.testing.assert_allclose(train.huber(y, p, 0.4), expected, rtol=1e-6)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    keras.utils.set_random_seed(0)
    cfg = SMALL.replace(**NO_DROPOUT)
    trainer = train.Trainer(
        cfg, "full", tf.distribute.get_strategy(), steps=12, global_batch_size=8, learning_rate=0.05
    )
    losses = trainer.fit(_fixed_dataset(8))
    assert len(losses) == 12 and trainer.step == 12
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


def test_optimizer_decays_kernels_only_and_lr_reaches_zero():
    keras.utils.set_random_seed(0)
    trainer = train.Trainer(SMALL, "s1_dem", tf.distribute.get_strategy(), steps=10, global_batch_size=8)
    opt = trainer.optimizer
    decayed = {v.path for v in trainer.model.trainable_variables if opt._use_weight_decay(v)}
    assert {p.rsplit("/", 1)[1] for p in decayed} == {"kernel"}
    assert any("depthwise/" in p for p in decayed) and any("pointwise/" in p for p in decayed)
    assert opt.momentum == pytest.approx(0.9) and opt.weight_decay == pytest.approx(SMALL.weight_decay)
    schedule = opt._learning_rate
    assert float(schedule(0)) == pytest.approx(SMALL.learning_rate)
    assert float(schedule(5)) == pytest.approx(SMALL.learning_rate * 0.5**0.9, rel=1e-5)
    assert float(schedule(10)) == 0.0


def test_checkpoints_resume_from_the_latest(tmp_path):
    cfg = SMALL.replace(**NO_DROPOUT)
    keras.utils.set_random_seed(0)
    first = train.Trainer(cfg, "s1_dem", tf.distribute.get_strategy(), steps=3, global_batch_size=2, model_dir=tmp_path)
    first.fit(_fixed_dataset(2).map(lambda f, y: ({"high_res": f["high_res"][:, :, :, :4]}, y)), checkpoint_every=2)
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-3.index"]
    assert list((tmp_path / "logs" / "train").glob("events.out.tfevents.*"))
    weights = [v.numpy() for v in first.model.weights]

    keras.utils.set_random_seed(1)
    second = train.Trainer(
        cfg, "s1_dem", tf.distribute.get_strategy(), steps=4, global_batch_size=2, model_dir=tmp_path
    )
    assert second.restore() == 3
    for a, b in zip(weights, (v.numpy() for v in second.model.weights)):
        np.testing.assert_array_equal(a, b)


def test_cli_trains_validates_and_writes_a_model_dir(tmp_path):
    data = tmp_path / "tiny.tfrecord.gz"
    tiny.main([str(data)])
    model_dir = tmp_path / "run"
    result = train.main(
        [
            "--config",
            "small",
            "--variant",
            "full",
            "--train",
            str(data),
            "--val",
            str(data),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--model-dir",
            str(model_dir),
            "--seed",
            "3",
            "--checkpoint-every",
            "1",
        ]
    )
    assert result["n_sensors_total"] == 4 and sum(r["n"] for r in result["per_sensor"].values()) == 23
    cfg, variant, metrics = train.read_run(model_dir)
    assert variant == "full" and cfg.seed == 3 and cfg.batch_size == 4
    assert metrics["min_points"] == 13 and "per_sensor" not in metrics
    assert json.loads((model_dir / "run.json").read_text())["flags"]["strategy"] == "default"
    assert tf.train.latest_checkpoint(str(model_dir / "ckpt")).endswith("ckpt-2")

    onnx_path = tmp_path / "trained.onnx"
    export.main(
        [
            "--model-dir",
            str(model_dir),
            "--out",
            str(onnx_path),
            "--title",
            "tiny run",
            "--trained-on",
            "simulated",
            "--trained-on-description",
            "tiny fixture",
        ]
    )
    import onnx

    meta = schema.from_metadata_props({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props})
    assert meta["metrics"]["min_points"] == 13 and meta["training"]["config"]["seed"] == 3
