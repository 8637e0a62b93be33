"""Tests of training/augment.py: Table 6 augmentations, centre-preserving and seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from training import augment as aug

NONE = aug.AugmentConfig(rotate_p=0.0, flip_h_p=0.0, flip_v_p=0.0, shear_x_p=0.0, shear_y_p=0.0)


def _seed(i: int) -> tf.Tensor:
    return tf.constant([42, i], tf.int64)


def _image(px: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (px, px, channels)).astype(np.float32)


def test_same_seed_same_matrix_other_seed_other_matrix():
    a = aug.random_matrix(_seed(3)).numpy()
    np.testing.assert_array_equal(a, aug.random_matrix(_seed(3)).numpy())
    assert not np.array_equal(a, aug.random_matrix(_seed(4)).numpy())


def test_probability_zero_is_identity():
    m = aug.random_matrix(_seed(5), NONE).numpy()
    np.testing.assert_array_equal(m, np.eye(2, dtype=np.float32))
    image = _image(512)
    out = aug.transform_window(tf.constant(image), m, 256).numpy()
    np.testing.assert_array_equal(out, image[128:384, 128:384])


def test_flips_are_exact_mirrors():
    image = _image(32)
    flip_h = aug.AugmentConfig(rotate_p=0.0, flip_h_p=1.0, flip_v_p=0.0, shear_x_p=0.0, shear_y_p=0.0)
    m = aug.random_matrix(_seed(0), flip_h)
    np.testing.assert_array_equal(aug.transform_window(tf.constant(image), m, 16).numpy(), image[8:24, 8:24][:, ::-1])
    flip_v = aug.AugmentConfig(rotate_p=0.0, flip_h_p=0.0, flip_v_p=1.0, shear_x_p=0.0, shear_y_p=0.0)
    m = aug.random_matrix(_seed(0), flip_v)
    np.testing.assert_array_equal(aug.transform_window(tf.constant(image), m, 16).numpy(), image[8:24, 8:24][::-1])


@pytest.mark.parametrize("px, window", [(512, 256), (32, 16)])
def test_centre_is_preserved(px, window):
    image = _image(px)
    c = px // 2
    image[c - 3 : c + 3, c - 3 : c + 3, :] = [17.0, 99.0, 201.0]  # 6 x 6 constant block at the centre
    w = window // 2
    for i in range(12):
        out = aug.transform_window(tf.constant(image), aug.random_matrix(_seed(i)), window).numpy()
        np.testing.assert_allclose(
            out[w - 1 : w + 1, w - 1 : w + 1], np.broadcast_to([17.0, 99.0, 201.0], (2, 2, 3)), rtol=1e-5
        )


def test_same_geometry_on_both_grids():
    """A planar ramp in metres, sampled at 10 m and at 160 m, stays one plane."""

    def ramp(px: int, pixel_m: float) -> np.ndarray:
        offsets_m = (np.arange(px) - (px - 1) / 2.0) * pixel_m
        y, x = np.meshgrid(offsets_m, offsets_m, indexing="ij")
        return (100.0 + 0.01 * x - 0.02 * y)[..., None].astype(np.float32)

    high, low = ramp(512, 10.0), ramp(32, 160.0)
    for i in range(6):
        m = aug.random_matrix(_seed(100 + i))
        high_out = aug.transform_window(tf.constant(high), m, 256).numpy()
        low_out = aug.transform_window(tf.constant(low), m, 16).numpy()
        block = high_out[..., 0].reshape(16, 16, 16, 16).mean(axis=(1, 3))
        np.testing.assert_allclose(block, low_out[..., 0], atol=2e-3)


def test_parameter_frequencies_and_extents_follow_table_6():
    draw = tf.function(
        lambda s: tf.map_fn(
            lambda k: aug.random_params(k),
            s,
            fn_output_signature={k: tf.float32 for k in ("theta", "flip_x", "flip_y", "shear_x", "shear_y")},
        )
    )
    seeds = tf.stack([tf.fill([4000], tf.constant(9, tf.int64)), tf.range(4000, dtype=tf.int64)], axis=1)
    p = {k: v.numpy() for k, v in draw(seeds).items()}
    assert np.mean(p["theta"] != 0) == pytest.approx(0.8, abs=0.03)
    assert np.max(np.abs(p["theta"])) <= math.pi and np.max(np.abs(p["theta"])) > 0.99 * math.pi
    assert np.mean(p["flip_x"] < 0) == pytest.approx(0.5, abs=0.03)
    assert np.mean(p["flip_y"] < 0) == pytest.approx(0.5, abs=0.03)
    for key in ("shear_x", "shear_y"):
        assert np.mean(p[key] != 0) == pytest.approx(0.3, abs=0.03)
        assert np.degrees(np.max(np.abs(np.arctan(p[key])))) == pytest.approx(9.0, abs=0.05)
