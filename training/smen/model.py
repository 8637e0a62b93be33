"""SMEN (paper 002, section 3) in Keras 3: J(t) = h(g(I(t)) + f(D(t))), and its masked uRMSE loss.

Flow: 0-255 encoded SMAP 36 km soil moisture on the 3 km grid (``low_res``, nearest
neighbour: each 36 km cell repeated 12 x 12 times) and the k previous (36 km, 3 km)
pairs (``history_low_res``, ``history_high_res``, oldest first) -> decode to m3/m3 ->
residual series D = J - I at t-k .. t-1 -> f; current I(t) -> g; h(g + f) -> 3 km
soil moisture (m3/m3).

* f = 3 x [Conv3D with ``filters`` kernels of 2 x 3 x 3 (time x rows x cols), ReLU,
  BatchNormalization]. The time axis is convolved without padding, so each block
  shortens it by one (k -> k-3); the rows and columns are zero-padded ("same"). For
  k = 4 (the default) one time step remains; for k > 4 the remaining k - 3 steps are
  averaged (not in the paper, which does not say how its k is reduced).
* g = one Conv3D with ``filters`` kernels of 1 x 3 x 3 on I(t) (a 1-step volume), linear.
* h = one Conv3D with 1 kernel of 1 x 3 x 3 on g + f, linear.

Where the 3 km product is missing at a previous time the caller passes the 36 km value
as the 3 km one, so D = 0 there (no texture information). All shapes but k are dynamic:
the network is fully convolutional, trained on 100 x 100 px crops and run on any grid.

The ablations of the paper's Table 2: ``spatial`` = h(g(I)) (no history inputs),
``temporal`` = h(f(D)) (no current input).
"""

from __future__ import annotations

import logging

import keras
import tensorflow as tf
from keras import layers, ops

from .config import SmenConfig

log = logging.getLogger(__name__)

#: Names of the graph's inputs and output (shared with smqgis.core.kinds.smen through the metadata).
CURRENT = "low_res"
HISTORY_LOW = "history_low_res"
HISTORY_HIGH = "history_high_res"
OUTPUT = "soil_moisture"
#: The inputs arrive linearly encoded: 0-255 <-> 0-1 m3/m3 (smqgis.core.sources ``linear(0, 1)``).
ENCODED_PER_M3M3 = 255.0


class TimeReduce(layers.Layer):
    """Average the time axis of [N, T, H, W, C] to [N, 1, H, W, C] (identity when T = 1)."""

    def call(self, x):
        return ops.mean(x, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, *input_shape[2:])


class Residuals(layers.Layer):
    """D = (J - I) / 255: [N, k, H, W] encoded pairs -> [N, k, H, W, 1] in m3/m3."""

    def call(self, high, low):
        return ops.expand_dims((high - low) / ENCODED_PER_M3M3, -1)


class AsVolume(layers.Layer):
    """[N, H, W, 1] encoded I(t) -> [N, 1, H, W, 1] in m3/m3."""

    def call(self, x):
        return ops.expand_dims(x / ENCODED_PER_M3M3, 1)


class ToImage(layers.Layer):
    """[N, 1, H, W, 1] -> [N, H, W, 1]."""

    def call(self, x):
        return x[:, 0]


def spatial_pad(name: str) -> layers.Layer:
    """Zero padding of one pixel on rows and columns, none in time (3 x 3 "same" with valid time)."""
    return layers.ZeroPadding3D(((0, 0), (1, 1), (1, 1)), name=name)


def build_f(cfg: SmenConfig, residuals: keras.KerasTensor) -> keras.KerasTensor:
    """f: three [Conv3D 2x3x3, ReLU, BatchNorm] blocks, the time axis shrinking by one per block."""
    x = residuals
    for i in range(3):
        x = spatial_pad(f"f{i + 1}_pad")(x)
        x = layers.Conv3D(cfg.filters, (2, 3, 3), padding="valid", name=f"f{i + 1}_conv")(x)
        x = layers.ReLU(name=f"f{i + 1}_relu")(x)
        x = layers.BatchNormalization(momentum=cfg.bn_momentum, name=f"f{i + 1}_bn")(x)
    return TimeReduce(name="f_time_reduce")(x)


def build_model(cfg: SmenConfig) -> keras.Model:
    """The SMEN network of ``cfg.variant`` (see the module docstring).

    Inputs (float32, 0-255 encoded soil moisture, 0-1 m3/m3): ``low_res`` [N, H, W, 1]
    (not in the ``temporal`` variant), ``history_low_res`` and ``history_high_res``
    [N, k, H, W], oldest first (not in the ``spatial`` variant). Output ``soil_moisture``
    [N, H, W, 1] in m3/m3, not clipped (the exported graph clips).
    """
    inputs: dict[str, keras.KerasTensor] = {}
    streams = []
    if cfg.variant in ("spatiotemporal", "spatial"):
        inputs[CURRENT] = keras.Input(shape=(None, None, 1), name=CURRENT)
        current = AsVolume(name="current_volume")(inputs[CURRENT])
        streams.append(layers.Conv3D(cfg.filters, (1, 3, 3), padding="same", name="g_conv")(current))
    if cfg.variant in ("spatiotemporal", "temporal"):
        inputs[HISTORY_LOW] = keras.Input(shape=(cfg.k, None, None), name=HISTORY_LOW)
        inputs[HISTORY_HIGH] = keras.Input(shape=(cfg.k, None, None), name=HISTORY_HIGH)
        residuals = Residuals(name="residuals")(inputs[HISTORY_HIGH], inputs[HISTORY_LOW])
        streams.append(build_f(cfg, residuals))
    x = streams[0] if len(streams) == 1 else layers.Add(name="g_plus_f")(streams)
    x = layers.Conv3D(1, (1, 3, 3), padding="same", name="h_conv")(x)
    out = ToImage(name=OUTPUT)(x)
    model = keras.Model(inputs, out, name=f"smen_{cfg.variant}_k{cfg.k}")
    log.debug("built %s: %d parameters", model.name, model.count_params())
    return model


def masked_ubrmse(truth: tf.Tensor, estimate: tf.Tensor, mask: tf.Tensor, eps: float = 1e-12) -> tf.Tensor:
    """Masked unbiased RMSE per image (paper 002, eq. 2), m3/m3: [N, H, W] -> [N].

    ``sqrt(E_M[((J^ - E_M[J^]) - (J - E_M[J]))^2])`` with every expectation taken over
    the pixels where ``mask`` is 1 only, so masked pixels (no 3 km measurement) neither
    add error nor shift the means. Truth values under the mask's zeros may be anything
    (NaN included). An image without a valid pixel gets 0. ``eps`` keeps the gradient
    of the square root finite at a perfect fit.
    """
    mask = tf.cast(mask, estimate.dtype)
    truth = tf.where(mask > 0, truth, tf.zeros_like(truth))
    count = tf.reduce_sum(mask, axis=(1, 2))
    safe = tf.maximum(count, 1.0)
    mean_t = tf.reduce_sum(mask * truth, axis=(1, 2)) / safe
    mean_e = tf.reduce_sum(mask * estimate, axis=(1, 2)) / safe
    diff = (estimate - mean_e[:, None, None]) - (truth - mean_t[:, None, None])
    mse = tf.reduce_sum(mask * tf.square(diff), axis=(1, 2)) / safe
    return tf.where(count > 0, tf.sqrt(mse + eps), tf.zeros_like(mse))


def batch_loss(truth: tf.Tensor, estimate: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of :func:`masked_ubrmse` over the images of a batch that have valid pixels."""
    per_image = masked_ubrmse(truth, estimate, mask)
    has = tf.cast(tf.reduce_sum(tf.cast(mask, tf.float32), axis=(1, 2)) > 0, per_image.dtype)
    return tf.reduce_sum(per_image * has) / tf.maximum(tf.reduce_sum(has), 1.0)
