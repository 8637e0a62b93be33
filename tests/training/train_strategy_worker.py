"""Helper process for tests/training/test_strategies.py: a few training steps under one strategy.

Run as ``python tests/training/train_strategy_worker.py STRATEGY OUT.json [--steps N] [--lr LR]
[--jit] [--float64]``. The
CPU is split into 2 logical devices before any TF op (which is why each strategy gets
its own process), the small config is trained for a few steps on one fixed random
batch (seed 0) with dropout and drop-path switched off so that every strategy sees
the same computation, and the per-step losses and the final weights' checksum are
written as JSON. ``--float64`` runs the model in float64: at random init the float32
gradients of this deep network amplify summation-order differences (a few % after one
step at lr 0.05), while in float64 the strategies agree to ~1e-12, which is what the
test needs to see that the distributed step (sync BN, gradient all-reduce, loss scaling)
is the same computation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

BATCH = 4
SEED = 0


def fixed_batch(batch: int, seed: int, dtype: type = np.float32) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One batch of the full variant: per-example level (0-255) plus pixel noise, labels in m3/m3.

    Each example gets its own per-band level so that examples differ as real scenes do
    (pure iid noise makes every example's pooled features alike, and batch norm over
    near-identical examples is numerically ill-conditioned).
    """
    rng = np.random.default_rng(seed)

    def image(shape: tuple[int, ...]) -> np.ndarray:
        level = rng.uniform(40, 215, (shape[0], 1, 1, shape[-1]))
        return np.clip(level + rng.normal(0, 25, shape), 0, 255).astype(dtype)

    features = {
        "high_res": image((batch, 256, 256, 10)),
        "low_res": image((batch, 16, 16, 4)),
        "coarse": rng.uniform(0, 255, (batch, 2)).astype(dtype),
    }
    return features, rng.uniform(0.05, 0.45, (batch,)).astype(dtype)


def main(strategy_name: str, out_path: str, *, steps: int, lr: float, jit: bool, float64: bool) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras

    from training.config import get_config
    from training.train import Trainer

    dtype = np.float64 if float64 else np.float32
    if float64:
        keras.config.set_floatx("float64")
    keras.utils.set_random_seed(SEED)
    cfg = get_config("small").replace(
        seed=SEED, head1_keep=(1.0, 1.0, 1.0), head2_keep=(1.0, 1.0), drop_path_keep=1.0
    )
    if strategy_name == "mirrored":
        strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    else:
        strategy = tf.distribute.get_strategy()
    features, labels = fixed_batch(BATCH, SEED, dtype)
    dataset = tf.data.Dataset.from_tensors((features, labels)).repeat()
    trainer = Trainer(
        cfg, "full", strategy, steps=steps, global_batch_size=BATCH, learning_rate=lr, jit_compile=jit
    )
    losses = trainer.fit(dataset, steps_per_loop=1)
    checksum = float(sum(np.abs(v.numpy()).sum() for v in trainer.model.weights))
    result = {
        "strategy": strategy_name,
        "replicas": strategy.num_replicas_in_sync,
        "jit": jit,
        "float64": float64,
        "losses": losses,
        "weights_abs_sum": checksum,
    }
    with open(out_path, "w") as fh:
        json.dump(result, fh)
    logging.info("%s", result)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser()
    parser.add_argument("strategy", choices=["default", "mirrored"])
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--float64", action="store_true")
    args = parser.parse_args()
    main(args.strategy, args.out, steps=args.steps, lr=args.lr, jit=args.jit, float64=args.float64)
