"""Training past one machine: the tf.data service feeds training steps, and the Table 7 sweep launcher.

A real tf.data service (TensorFlow's own dispatcher and worker servers on 127.0.0.1) is started
in the test; the sweep runs real (two-step) training runs on the tiny released-schema fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.training import make_tiny_tfrecord as tiny
from training import data, data_service, sweep, train


@pytest.fixture(scope="module")
def service():
    dispatcher = data_service.start_dispatcher(port=0)
    worker = data_service.start_worker(dispatcher.target, port=0)
    yield dispatcher.target
    worker.stop()
    dispatcher.stop()


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "tiny.tfrecord.gz"
    tiny.main([str(path)])
    return str(path)


def _labels(ds: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([label.numpy() for _features, label in ds])


@pytest.mark.parametrize("sharding", ["off", "dynamic"])
def test_the_service_delivers_the_same_examples_as_the_local_pipeline(service, tiny_path, sharding):
    local = data.make_dataset(tiny_path, "full", 4, training=False, seed=0, drop_remainder=False)
    served = data_service.distribute(local, service, sharding=sharding)
    want, got = _labels(local), _labels(served)
    assert want.size == 23  # the fixture's finite labels
    np.testing.assert_array_equal(np.sort(got), np.sort(want))  # every example once, none invented


def test_a_training_run_reads_its_batches_from_the_service(service, tiny_path, tmp_path):
    model_dir = tmp_path / "run"
    train.main(["--config", "small", "--variant", "full", "--train", tiny_path, "--steps", "2", "--batch-size", "4",
                "--model-dir", str(model_dir), "--seed", "1", "--checkpoint-every", "1", "--data-service", service])
    assert tf.train.latest_checkpoint(str(model_dir / "ckpt")).endswith("ckpt-2")
    flags = json.loads((model_dir / "run.json").read_text())["flags"]
    assert flags["data_service"] == service and flags["data_service_sharding"] == "dynamic"
    with pytest.raises(ValueError, match="unknown sharding"):
        data_service.distribute(tf.data.Dataset.range(3), service, sharding="round-robin")


def test_the_sweep_trains_each_combination_once_and_picks_the_best_on_validation(tiny_path, tmp_path, monkeypatch):
    # validation: the fixture's examples as one sensor (the averages count sensors with >= 13 points only)
    val = tmp_path / "val.tfrecord.gz"
    data.write_examples(str(val), [{**e, data.SENSOR_KEY: "TINYNET__ONE__probe_0.050000_0.050000"}
                                   for e in tiny.make_examples()])
    out = tmp_path / "sweep"
    common = ["--config", "small", "--variant", "full", "--train", tiny_path, "--val", str(val), "--steps", "2",
              "--batch-size", "4", "--seed", "0"]
    result = sweep.main(["--out", str(out), "--lr", "0.1,0.001", "--weight-decay", "1e-4", "--", *common])
    runs = result["runs"]
    assert [r["model_dir"] for r in runs] == [str(out / "lr0.1_wd0.0001"), str(out / "lr0.001_wd0.0001")]
    scores = [r["metrics"]["ubrmse"] for r in runs]
    assert all(np.isfinite(scores)) and scores[0] != scores[1]
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["best"]["model_dir"] == runs[int(np.argmin(scores))]["model_dir"]
    for run in runs:  # each run folder is an ordinary training run with the sweep's hyper-parameters
        _cfg, _variant, metrics = train.read_run(run["model_dir"])
        flags = json.loads((Path(run["model_dir"]) / "run.json").read_text())["flags"]
        assert flags["lr"] == run["lr"] and flags["weight_decay"] == 1e-4
        assert metrics["average"]["ubrmse"] == pytest.approx(run["metrics"]["ubrmse"])
    csv_rows = (out / "sweep.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 3 and sum(row.endswith(",True") for row in csv_rows) == 1

    def must_not_train(_argv):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train, "main", must_not_train)
    again = sweep.main(["--out", str(out), "--lr", "0.1,0.001", "--weight-decay", "1e-4", "--", *common])
    assert again["best"]["model_dir"] == summary["best"]["model_dir"]


def test_the_sweep_prints_the_paper_grid_for_a_cluster(capsys, tmp_path):
    sweep.main(["--out", str(tmp_path / "s"), "--print-commands", "--", "--train", "t*", "--val", "v*"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 9
    assert all(line.startswith("python -m training.train --train 't*' --val 'v*'") for line in lines)
    assert {(line.split("--lr ")[1].split()[0], line.split("--weight-decay ")[1]) for line in lines} == {
        (str(lr), str(wd)) for lr in sweep.PAPER_LEARNING_RATES for wd in sweep.PAPER_WEIGHT_DECAYS}
    with pytest.raises(ValueError, match="sets --model-dir"):
        sweep.main(["--out", str(tmp_path / "s"), "--print-commands", "--", "--model-dir", "x"])
    with pytest.raises(ValueError, match="--lr: expected"):
        sweep.main(["--out", str(tmp_path / "s"), "--lr", "fast", "--print-commands"])
