"""Helper process for tests/training/test_strategies.py: a few training steps under one strategy.

Run as ``python tests/training/train_strategy_worker.py STRATEGY OUT.json [--jit]``. The
CPU is split into 2 logical devices before any TF op (which is why each strategy gets
its own process), the small config is trained for a few steps on one fixed random
batch (seed 0) with dropout and drop-path switched off so that every strategy sees
the same computation, and the per-step losses and the final weights' checksum are
written as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STEPS = 3
BATCH = 4
SEED = 0


def main(strategy_name: str, out_path: str, jit: bool) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras

    from training.config import get_config
    from training.train import Trainer

    keras.utils.set_random_seed(SEED)
    cfg = get_config("small").replace(
        seed=SEED, head1_keep=(1.0, 1.0, 1.0), head2_keep=(1.0, 1.0), drop_path_keep=1.0
    )
    if strategy_name == "mirrored":
        strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    else:
        strategy = tf.distribute.get_strategy()
    rng = np.random.default_rng(SEED)
    features = {
        "high_res": rng.uniform(0, 255, (BATCH, 256, 256, 10)).astype(np.float32),
        "low_res": rng.uniform(0, 255, (BATCH, 16, 16, 4)).astype(np.float32),
        "coarse": rng.uniform(0, 255, (BATCH, 2)).astype(np.float32),
    }
    labels = rng.uniform(0.05, 0.45, (BATCH,)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensors((features, labels)).repeat()
    trainer = Trainer(
        cfg, "full", strategy, steps=STEPS, global_batch_size=BATCH, learning_rate=0.05, jit_compile=jit
    )
    losses = trainer.fit(dataset, steps_per_loop=1)
    checksum = float(sum(np.abs(v.numpy()).sum() for v in trainer.model.weights))
    result = {
        "strategy": strategy_name,
        "replicas": strategy.num_replicas_in_sync,
        "jit": jit,
        "losses": losses,
        "weights_abs_sum": checksum,
    }
    with open(out_path, "w") as fh:
        json.dump(result, fh)
    logging.info("%s", result)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(sys.argv[1], sys.argv[2], "--jit" in sys.argv[3:])
