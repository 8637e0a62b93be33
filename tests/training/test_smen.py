"""SMEN (paper 002): the time axis of f, the masked uRMSE loss, the simulated series, training and export parity."""

from __future__ import annotations

import keras
import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf

from smqgis.core.kinds import smen as smen_kind
from training.simulate.smen_data import (
    EASE2_FACTOR_3KM,
    SmenRegion,
    SmenSimulator,
    block_mean,
    swath_mask,
    upsample_nearest,
)
from training.smen.config import SmenConfig
from training.smen.data import make_examples
from training.smen.export import export_model, random_inputs
from training.smen.model import build_f, build_model, masked_ubrmse
from training.smen.train import SmenTrainer, ubrmse_np


def _set_f_weights(f_model: keras.Model) -> None:
    """Hand-set f: block 1 takes D[t+1] - D[t] on channel 0, blocks 2 and 3 sum two steps; BN = identity."""
    for i in range(3):
        conv = f_model.get_layer(f"f{i + 1}_conv")
        kernel, bias = (np.zeros(w.shape, np.float32) for w in conv.get_weights())
        kernel[:, 1, 1, 0, 0] = (-1.0, 1.0) if i == 0 else (1.0, 1.0)  # [time, row, col, in, out]
        conv.set_weights([kernel, bias])
        bn = f_model.get_layer(f"f{i + 1}_bn")
        gamma, beta, mean, var = (np.asarray(w) for w in bn.get_weights())
        bn.set_weights(
            [np.ones_like(gamma), np.zeros_like(beta), np.zeros_like(mean), np.full_like(var, 1.0 - bn.epsilon)]
        )


def test_f_reduces_the_time_axis_by_one_per_block_with_known_values() -> None:
    """k = 4 residual images -> 3 -> 2 -> 1 time steps; values follow the hand-set kernels exactly."""
    cfg = SmenConfig(k=4)
    inp = keras.Input((cfg.k, 5, 6, 1))
    f_model = keras.Model(inp, build_f(cfg, inp))
    _set_f_weights(f_model)
    steps = [f_model.get_layer(f"f{i + 1}_conv").output.shape[1] for i in range(3)]
    assert steps == [3, 2, 1]
    d = np.zeros((1, 4, 5, 6, 1), np.float32)
    d[0, :, 2, 3, 0] = (0.0, 1.0, 3.0, 2.0)  # differences (1, 2, -1) -> relu (1, 2, 0) -> sums (3, 2) -> 5
    d[0, :, 1, 1, 0] = (2.0, 1.0, 0.0, 0.0)  # falling residuals: relu kills every difference -> 0
    d[0, :, 3, 1, 0] = (0.0, 0.5, 1.0, 1.5)  # steady rise: r = (0.5, 0.5, 0.5) -> 0.5 + 2 * 0.5 + 0.5 = 2
    out = f_model(d, training=False).numpy()
    assert out.shape == (1, 1, 5, 6, cfg.filters)
    np.testing.assert_allclose(out[0, 0, 2, 3, 0], 5.0, rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 1, 1, 0], 0.0, atol=1e-7)
    np.testing.assert_allclose(out[0, 0, 3, 1, 0], 2.0, rtol=1e-6)
    assert np.count_nonzero(out) == 2  # only the centre taps are set: nothing leaks to neighbours or channels


def test_f_averages_the_remaining_steps_when_k_exceeds_4() -> None:
    cfg = SmenConfig(k=6)
    inp = keras.Input((cfg.k, 4, 4, 1))
    f_model = keras.Model(inp, build_f(cfg, inp))
    _set_f_weights(f_model)
    d = np.zeros((1, 6, 4, 4, 1), np.float32)
    d[0, :, 2, 2, 0] = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)  # r = 1 everywhere -> 3 windows each 4 -> mean 4
    out = f_model(d, training=False).numpy()
    assert out.shape == (1, 1, 4, 4, cfg.filters)
    np.testing.assert_allclose(out[0, 0, 2, 2, 0], 4.0, rtol=1e-6)
    with pytest.raises(ValueError, match="k >= 4"):
        SmenConfig(k=3)


def test_masked_ubrmse_value_and_masked_pixels_ignored() -> None:
    truth = np.array([[[0.1, 0.2], [0.3, 0.9]]], np.float32)
    estimate = np.array([[[0.2, 0.3], [0.6, 0.0]]], np.float32)
    mask = np.array([[[1, 1], [1, 0]]], np.float32)
    # de-meaned: estimate (-1/6, -1/15, 7/30), truth (-0.1, 0, 0.1); diff (-1/15, -1/15, 2/15)
    expected = np.sqrt((1 / 225 + 1 / 225 + 4 / 225) / 3)  # = 0.2 * sqrt(2) / 3
    got = float(masked_ubrmse(tf.constant(truth), tf.constant(estimate), tf.constant(mask))[0])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(got, 0.2 * np.sqrt(2) / 3, rtol=1e-5)
    changed_truth, changed_est = truth.copy(), estimate.copy()
    changed_truth[0, 1, 1], changed_est[0, 1, 1] = np.nan, 55.0  # the masked pixel: anything, NaN included
    again = float(masked_ubrmse(tf.constant(changed_truth), tf.constant(changed_est), tf.constant(mask))[0])
    assert again == pytest.approx(got, rel=1e-6)
    # unbiased: a constant offset of the estimate changes nothing; the unmasked error does count
    shifted = float(masked_ubrmse(tf.constant(truth), tf.constant(estimate + 0.3), tf.constant(mask))[0])
    assert shifted == pytest.approx(got, rel=1e-4)
    np.testing.assert_allclose(ubrmse_np(truth, estimate, mask), [expected], rtol=1e-5)


def test_model_variants_inputs_and_output_shape() -> None:
    for variant, names in smen_kind.VARIANT_INPUTS.items():
        model = build_model(SmenConfig(variant=variant))
        assert sorted(t.name for t in model.inputs) == sorted(names)
        out = model(random_inputs(SmenConfig(variant=variant), seed=0, shape=(1, 9, 11)), training=False)
        assert tuple(out.shape) == (1, 9, 11, 1)


@pytest.fixture(scope="module")
def small_series():
    """A 2 x 2-cell (24 x 24 px, 72 km) region sampled every 1.5 km, 60 days: the benchmark's generator, fast."""
    sim = SmenSimulator(SmenRegion(cells_36km=2, sub_px=2, n_days=60))
    return sim, sim.series()


def test_simulated_series_is_consistent(small_series) -> None:
    sim, series = small_series
    assert series.truth_3km.shape[1:] == (24, 24) and series.radiometer_36km.shape[1:] == (2, 2)
    np.testing.assert_allclose(block_mean(series.truth_3km, EASE2_FACTOR_3KM), series.truth_36km, atol=1e-6)
    assert list(series.days[:4]) == [0, 6, 12, 18]  # two orbits, 6 days apart, each repeating every 12 days
    err = series.radiometer_36km - series.truth_36km
    assert 0.005 < float(np.std(err)) < 0.05  # a radiometer error of the documented size
    covered = np.isfinite(series.active_passive_3km)
    assert covered[series.has_product].all()  # a 72 km region fits in a 250 km swath
    dropped = [d for d in range(0, 1096, 6) if not swath_mask(SmenRegion(), d).any()]
    assert 0.03 < len(dropped) / len(range(0, 1096, 6)) < 0.2  # about one acquisition in ten has no product
    # on the benchmark's 324 km region each swath leaves part of the region missing, the two orbits cover it
    big = SmenRegion()
    asc, desc = swath_mask(big, 12), swath_mask(big, 18)
    assert 0.5 < asc.mean() < 0.9 and 0.5 < desc.mean() < 0.9 and (asc | desc).mean() > 0.98
    assert asc[54, 0] and not asc[54, -1] and desc[54, -1] and not desc[54, 0]  # west / east of the centre
    assert not swath_mask(big, 13).any()  # no Sentinel-1 pass between the orbits' days
    # where the product exists it is truth + the radiometer's 36 km error + pixel noise
    resid = series.active_passive_3km - series.truth_3km - upsample_nearest(err, EASE2_FACTOR_3KM)
    assert 0.01 < float(np.nanstd(resid)) < 0.03
    again = SmenSimulator(sim.region).day_products(int(series.days[1]))
    np.testing.assert_array_equal(np.float32(again[3]), series.active_passive_3km[1])  # deterministic


def test_examples_use_previous_products_oldest_first(small_series) -> None:
    _, series = small_series
    ex = make_examples(series, 4)
    valid = np.flatnonzero(series.has_product)
    first = valid[4]
    assert ex.days[0] == series.days[first]
    hist = valid[:4]
    high = ex.history_high_res[0] / 255.0
    ap = series.active_passive_3km[hist]
    np.testing.assert_allclose(high[np.isfinite(ap)], ap[np.isfinite(ap)], atol=1e-6)
    low = ex.history_low_res[0] / 255.0
    np.testing.assert_allclose(high[~np.isfinite(ap)], low[~np.isfinite(ap)], atol=1e-6)  # D = 0 where missing
    assert (ex.mask[0] == np.isfinite(series.active_passive_3km[first])).all()


def test_training_reduces_the_masked_loss(small_series) -> None:
    _, series = small_series
    ex = make_examples(series, 4)
    trainer = SmenTrainer(SmenConfig(learning_rate=3e-3, batch_size=2, patch_px=24, seed=0))
    losses = trainer.fit(ex, 40, verbose=False)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_export_parity_and_metadata(tmp_path) -> None:
    cfg = SmenConfig(k=4, seed=0)
    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    out = tmp_path / "smen.onnx"
    result = export_model(model, cfg, out, title="test SMEN", trained_on={"kind": "simulated", "description": "t"})
    assert result["parity_max_abs_diff"] <= 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["low_res", "history_low_res", "history_high_res"]
    meta = smen_kind.validate_metadata_props(dict(session.get_modelmeta().custom_metadata_map))
    assert meta["model_kind"] == "smen_3km" and meta["smen"]["k"] == 4
    assert meta["smen"]["grid"]["crs"] == "EPSG:6933"
    assert "simulated" in meta["label"].lower()
    feeds = random_inputs(cfg, seed=5, shape=(1, 20, 17))
    (got,) = session.run(["soil_moisture"], feeds)
    expected = model(feeds, training=False).numpy()  # unclipped: the caller anchors, then clips
    np.testing.assert_allclose(got, expected, atol=1e-4)
