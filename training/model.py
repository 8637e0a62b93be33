"""The fusion model of paper 000 (section 3a, Table 7) in Keras 3, one graph for training and maps.

Flow: 0-255 encoded inputs -> (high-res) DeepLab-style modified Xception-65 encoder,
output stride 32 -> centre-weighted pooling as a VALID convolution -> one embedding per
256 px window; (low-res) Xception-41 with a fractional depth multiplier, output stride
16 -> its embedding; concat -> fusion head 1 -> concat with the coarse SMAP/GLDAS values
-> fusion head 2 -> volumetric soil moisture (m3/m3).

One graph serves both ways the plugin calls it (``smqgis.core.schema`` docstring):
``high_res`` [N, H, W, C] with H, W multiples of the stride and >= 256 gives
``P = N * (H/32 - 7) * (W/32 - 7)`` window embeddings in row-major order, and
``low_res`` [P, 16, 16, C_low] / ``coarse`` [P, K] carry one row per output pixel;
the output is [P, 1]. With H = W = 256 this is the paper's per-window model with
batch N, which is also how it trains (``{"high_res", "low_res", "coarse"}`` dict of
[B, ...] tensors, label [B]). Shapes are static whenever the inputs are (TPU), and
every stride-2 convolution pads explicitly (DeepLab's ``fixed_padding``) so that the
encoder is translation-consistent on tiles of any size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras
from keras import layers, ops

from smqgis.core.schema import center_weighted_kernel, variant_inputs

from .config import ModelConfig

log = logging.getLogger(__name__)

#: Xception entry-flow blocks (depths of the 3 separable convs, stride) - DeepLab xception_65/41.
_ENTRY_BLOCKS = (((128, 128, 128), 2), ((256, 256, 256), 2), ((728, 728, 728), 2))
_MIDDLE_DEPTHS = (728, 728, 728)
_EXIT_BLOCK1 = ((728, 1024, 1024), 2)
_EXIT_BLOCK2 = (1536, 1536, 2048)
_ROOT_DEPTHS = (32, 64)


def make_divisible(channels: float, divisor: int) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` (never below it, never -10 %)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


class CenterWeightedPooling(layers.Layer):
    """Centre-weighted pooling of encoder features over every ``size x size`` window.

    A VALID depthwise convolution with the fixed kernel of
    :func:`smqgis.core.schema.center_weighted_kernel` (Gaussian, sigma in encoder cells,
    weights sum to 1): [N, h, w, F] -> [N, h - size + 1, w - size + 1, F]. On a single
    window (h = w = size) it is the paper's centre-weighted global pooling. The kernel
    is a constant made in ``call`` so that it is folded into the exported graph.
    """

    def __init__(self, size_cells: int, sigma_cells: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size_cells = int(size_cells)
        self.sigma_cells = float(sigma_cells)

    def call(self, features):
        if self.size_cells == 1:
            return features
        channels = features.shape[-1]
        weights = ops.convert_to_tensor(center_weighted_kernel(self.size_cells, self.sigma_cells), dtype=features.dtype)
        kernel = ops.tile(weights[:, :, None, None], (1, 1, channels, 1))
        return ops.depthwise_conv(features, kernel, strides=1, padding="valid")

    def get_config(self) -> dict:
        return {**super().get_config(), "size_cells": self.size_cells, "sigma_cells": self.sigma_cells}


class FlattenCells(layers.Layer):
    """[N, Ho, Wo, F] -> [N * Ho * Wo, F], one row per output pixel in row-major order."""

    def call(self, x):
        return ops.reshape(x, (-1, x.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])


class DropPath(layers.Layer):
    """Stochastic depth (Huang et al. 2016): drop a whole residual branch per example.

    In training the branch is multiplied by ``Bernoulli(keep) / keep`` per example; in
    inference it is the identity.
    """

    def __init__(self, keep_prob: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keep_prob = float(keep_prob)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.keep_prob >= 1.0:
            return x
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = ops.floor(self.keep_prob + keras.random.uniform(shape, seed=self.seed_generator, dtype=x.dtype))
        return x * mask / self.keep_prob

    def get_config(self) -> dict:
        return {**super().get_config(), "keep_prob": self.keep_prob, "seed": self.seed}


class _EncoderBuilder:
    """Builds one DeepLab modified Xception encoder as a functional Keras model."""

    def __init__(self, cfg: ModelConfig, name: str, multiplier: float, output_stride: int, residual_units: int) -> None:
        self.cfg = cfg
        self.name = name
        self.multiplier = multiplier
        self.output_stride = output_stride
        self.current_stride = 1
        self.rate = 1
        self.residual_units = residual_units
        self.unit_index = 0
        self.seed = cfg.seed * 1000 + (0 if name.startswith("high") else 500)

    def width(self, channels: int) -> int:
        return make_divisible(channels * self.multiplier, self.cfg.channel_divisor)

    def bn(self, x, name: str):
        return layers.BatchNormalization(
            momentum=self.cfg.bn_momentum,
            epsilon=self.cfg.bn_epsilon,
            synchronized=self.cfg.sync_batch_norm,
            name=f"{name}_bn",
        )(x)

    def next_stride_rate(self, stride: int) -> tuple[int, int]:
        """Stride and dilation of the next strided layer, atrous once output_stride is reached."""
        if self.current_stride >= self.output_stride:
            rate = self.rate
            self.rate *= stride
            return 1, rate
        self.current_stride *= stride
        return stride, self.rate

    @staticmethod
    def pad(x, kernel: int, rate: int, stride: int, name: str):
        """Explicit symmetric padding for strided convs (DeepLab fixed_padding)."""
        if stride == 1:
            return x, "same"
        total = (kernel - 1) * rate
        beg = total // 2
        return layers.ZeroPadding2D(((beg, total - beg), (beg, total - beg)), name=f"{name}_pad")(x), "valid"

    def conv(self, x, filters: int, kernel: int, stride: int, name: str):
        x, padding = self.pad(x, kernel, 1, stride, name)
        x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name)(x)
        return self.bn(x, name)

    def separable(self, x, filters: int, stride: int, rate: int, name: str, activation_inside: bool):
        x, padding = self.pad(x, 3, rate, stride, f"{name}_depthwise")
        x = layers.DepthwiseConv2D(
            3, strides=stride, padding=padding, dilation_rate=rate, use_bias=False, name=f"{name}_depthwise"
        )(x)
        x = self.bn(x, f"{name}_depthwise")
        if activation_inside:
            x = layers.ReLU(name=f"{name}_depthwise_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pointwise")(x)
        x = self.bn(x, f"{name}_pointwise")
        if activation_inside:
            x = layers.ReLU(name=f"{name}_pointwise_relu")(x)
        return x

    def xception_unit(
        self, x, depths: Sequence[int], stride: int, skip: str, name: str, activation_inside: bool = False
    ):
        """Three separable convs (the last one strided) plus a conv/identity/no shortcut."""
        unit_stride, rate = self.next_stride_rate(stride)
        residual = x
        for i, depth in enumerate(depths):
            if not activation_inside:
                residual = layers.ReLU(name=f"{name}_sep{i + 1}_relu")(residual)
            residual = self.separable(
                residual,
                self.width(depth),
                unit_stride if i == len(depths) - 1 else 1,
                rate,
                f"{name}_sep{i + 1}",
                activation_inside,
            )
        if skip == "none":
            return residual
        self.unit_index += 1
        keep = 1.0 - (1.0 - self.cfg.drop_path_keep) * self.unit_index / self.residual_units
        residual = DropPath(keep, seed=self.seed + self.unit_index, name=f"{name}_drop_path")(residual)
        if skip == "conv":
            shortcut = self.conv(x, self.width(depths[-1]), 1, unit_stride, f"{name}_shortcut")
        else:
            shortcut = x
        return layers.Add(name=f"{name}_add")([shortcut, residual])

    def build(self, in_channels: int, middle_blocks: int) -> keras.Model:
        inp = keras.Input(shape=(None, None, in_channels), name=f"{self.name}_input")
        stride, _ = self.next_stride_rate(2)
        x = self.conv(inp, self.width(_ROOT_DEPTHS[0]), 3, stride, "entry_conv1")
        x = layers.ReLU(name="entry_conv1_relu")(x)
        x = self.conv(x, self.width(_ROOT_DEPTHS[1]), 3, 1, "entry_conv2")
        x = layers.ReLU(name="entry_conv2_relu")(x)
        for i, (depths, s) in enumerate(_ENTRY_BLOCKS):
            x = self.xception_unit(x, depths, s, "conv", f"entry_block{i + 1}")
        for i in range(middle_blocks):
            x = self.xception_unit(x, _MIDDLE_DEPTHS, 1, "sum", f"middle_block{i + 1}")
        x = self.xception_unit(x, _EXIT_BLOCK1[0], _EXIT_BLOCK1[1], "conv", "exit_block1")
        x = self.xception_unit(x, _EXIT_BLOCK2, 1, "none", "exit_block2", activation_inside=True)
        if self.current_stride != self.output_stride:
            raise ValueError(
                f"{self.name}: output stride {self.output_stride} is not reachable (got {self.current_stride})"
            )
        return keras.Model(inp, x, name=self.name)


def build_encoder(cfg: ModelConfig, *, role: str, in_channels: int) -> keras.Model:
    """The high-res (Xception-65-like) or low-res (Xception-41-like) encoder: [N,H,W,C] -> [N,H/s,W/s,F]."""
    if role == "high_res":
        blocks, mult, stride = cfg.high_res_middle_blocks, cfg.width_multiplier, cfg.high_res_output_stride
    else:
        blocks, mult, stride = cfg.low_res_middle_blocks, cfg.low_res_depth_multiplier, cfg.low_res_output_stride
    builder = _EncoderBuilder(cfg, f"{role}_encoder", mult, stride, residual_units=len(_ENTRY_BLOCKS) + blocks + 1)
    return builder.build(in_channels, blocks)


def fusion_head(x, widths: Sequence[int], keeps: Sequence[float], cfg: ModelConfig, name: str):
    """[Dropout, Dense, BatchNorm, Swish] per width, then [Dropout, Dense(1)] (paper 000 Fig. 10)."""
    if len(keeps) != len(widths) + 1:
        raise ValueError(f"{name}: need one keep probability per block plus one, got {keeps} for {widths}")
    for i, (width, keep) in enumerate(zip(widths, keeps)):
        if keep < 1.0:
            x = layers.Dropout(1.0 - keep, seed=cfg.seed * 1000 + 900 + i, name=f"{name}_dropout{i + 1}")(x)
        x = layers.Dense(width, name=f"{name}_dense{i + 1}")(x)
        x = layers.BatchNormalization(
            momentum=cfg.bn_momentum, epsilon=cfg.bn_epsilon, synchronized=cfg.sync_batch_norm, name=f"{name}_bn{i + 1}"
        )(x)
        x = layers.Activation("swish", name=f"{name}_swish{i + 1}")(x)
    if keeps[-1] < 1.0:
        x = layers.Dropout(1.0 - keeps[-1], seed=cfg.seed * 1000 + 950, name=f"{name}_dropout_out")(x)
    return layers.Dense(1, name=f"{name}_out")(x)


def build_model(cfg: ModelConfig, variant: str) -> keras.Model:
    """The fusion model of ``variant`` (a key of ``smqgis.core.schema.VARIANTS``).

    Inputs (only the variant's roles, 0-255 encoded float32): ``high_res``
    [N, H, W, C_high], ``low_res`` [P, 16, 16, C_low], ``coarse`` [P, K]. Output [P, 1],
    volumetric soil moisture in m3/m3, not clipped (the exported graph clips).
    """
    roles = variant_inputs(variant)
    inputs: dict[str, keras.KerasTensor] = {}
    embeddings = []
    if "high_res" in roles:
        inputs["high_res"] = keras.Input(shape=(None, None, len(roles["high_res"])), name="high_res")
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="high_res_scale")(inputs["high_res"])
        x = build_encoder(cfg, role="high_res", in_channels=len(roles["high_res"]))(x)
        size = cfg.high_res_window_px // cfg.high_res_output_stride
        x = CenterWeightedPooling(size, cfg.pooling_sigma_cells, name="high_res_pool")(x)
        embeddings.append(FlattenCells(name="high_res_embedding")(x))
    if "low_res" in roles:
        inputs["low_res"] = keras.Input(
            shape=(cfg.low_res_window_px, cfg.low_res_window_px, len(roles["low_res"])), name="low_res"
        )
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="low_res_scale")(inputs["low_res"])
        x = build_encoder(cfg, role="low_res", in_channels=len(roles["low_res"]))(x)
        size = cfg.low_res_window_px // cfg.low_res_output_stride
        x = CenterWeightedPooling(size, cfg.pooling_sigma_cells, name="low_res_pool")(x)
        embeddings.append(FlattenCells(name="low_res_embedding")(x))
    coarse = None
    if "coarse" in roles:
        inputs["coarse"] = keras.Input(shape=(len(roles["coarse"]),), name="coarse")
        coarse = layers.Rescaling(1 / 255.0, name="coarse_scale")(inputs["coarse"])

    if not embeddings:  # SMAP+GLDAS NN baseline: head-1 widths on the coarse values only
        out = fusion_head(coarse, cfg.head1_widths, cfg.baseline_keep, cfg, "baseline_head")
    else:
        x = embeddings[0] if len(embeddings) == 1 else layers.Concatenate(name="embeddings")(embeddings)
        out = fusion_head(x, cfg.head1_widths, cfg.head1_keep, cfg, "fusion_head1")
        if coarse is not None:
            x = layers.Concatenate(name="head1_and_coarse")([out, coarse])
            out = fusion_head(x, cfg.head2_widths, cfg.head2_keep, cfg, "fusion_head2")
    out = layers.Identity(name="soil_moisture")(out)
    model = keras.Model(inputs, out, name=f"fusion_{variant}_{cfg.name}")
    log.debug("built %s: %d parameters", model.name, model.count_params())
    return model
