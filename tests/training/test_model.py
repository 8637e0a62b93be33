"""Tests of training/model.py: the paper and small architectures, pooling, both call modes, variants."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from smqgis.core import schema
from smqgis.core.schema import VARIANTS, center_weighted_kernel, variant_inputs
from training.config import CONFIGS, PAPER, SMALL, get_config
from training.model import CenterWeightedPooling, build_model, make_divisible


def _middle_blocks(encoder: keras.Model) -> int:
    return sum(1 for layer in encoder.layers if layer.name.startswith("middle_block") and layer.name.endswith("_add"))


def _inputs(variant: str, n: int, h: int, w: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random 0-255 inputs: n windows/tiles of h x w, and P matching rows of low_res/coarse."""
    rng = np.random.default_rng(seed)
    roles = variant_inputs(variant)
    p = n * (h // 32 - 7) * (w // 32 - 7) if "high_res" in roles else n
    shapes = {"high_res": (n, h, w), "low_res": (p, 16, 16), "coarse": (p,)}
    return {r: rng.uniform(0, 255, (*shapes[r], len(refs))).astype(np.float32) for r, refs in roles.items()}


def test_paper_config_is_table_7():
    assert (PAPER.high_res_middle_blocks, PAPER.low_res_middle_blocks) == (16, 8)
    assert (PAPER.high_res_output_stride, PAPER.low_res_output_stride) == (32, 16)
    assert PAPER.head1_widths == (128, 64) and PAPER.head1_keep == (0.5, 0.5, 0.6)
    assert PAPER.head2_widths == (8,) and PAPER.head2_keep == (0.9, 0.9)
    assert (PAPER.batch_size, PAPER.momentum, PAPER.train_steps, PAPER.huber_delta) == (64, 0.9, 600_000, 0.4)
    assert (PAPER.learning_rate, PAPER.weight_decay) == (0.05, 5e-5)
    assert PAPER.drop_path_keep == 0.6 and PAPER.lr_decay_power == 0.9 and PAPER.sync_batch_norm
    assert PAPER.bn_momentum == 0.997  # DeepLab's batch-norm decay
    assert get_config("small") is SMALL


def test_small_config_uses_a_short_run_batch_norm_momentum():
    # 0.997 would leave a few-hundred-step CPU run's moving averages mostly at their init
    assert SMALL.bn_momentum == 0.9
    bns = [
        layer for layer in build_model(SMALL, "smap_gldas")._flatten_layers()
        if layer.__class__.__name__ == "BatchNormalization"
    ]
    assert bns and all(layer.momentum == 0.9 for layer in bns)


def test_paper_model_builds_with_16_and_8_middle_blocks():
    model = build_model(PAPER, "full")
    high, low = model.get_layer("high_res_encoder"), model.get_layer("low_res_encoder")
    assert _middle_blocks(high) == 16 and _middle_blocks(low) == 8
    # measured: 38,054,528 (high-res encoder), 6,463,200 (low-res), 44,920,234 (whole)
    assert 37.5e6 < high.count_params() < 38.5e6
    assert 6.0e6 < low.count_params() < 7.0e6
    assert 44.5e6 < model.count_params() < 45.5e6


def test_small_model_widths_are_multiples_of_8():
    model = build_model(SMALL, "full")
    assert _middle_blocks(model.get_layer("high_res_encoder")) == 2
    assert 0.9e6 < model.get_layer("high_res_encoder").count_params() < 1.1e6  # measured 1,010,032
    assert 2.0e6 < model.count_params() < 2.3e6  # measured 2,159,994
    for encoder in ("high_res_encoder", "low_res_encoder"):
        for layer in model.get_layer(encoder).layers:
            if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
                assert layer.filters % 8 == 0, layer.name
    assert make_divisible(728 * 0.25, 8) == 184 and make_divisible(32 * 0.25, 8) == 8


def test_center_weighted_pooling_is_a_weighted_mean_peaked_at_the_centre():
    pool = CenterWeightedPooling(8, 2.0)
    const = np.full((1, 8, 8, 3), 7.0, np.float32)
    np.testing.assert_allclose(np.asarray(pool(const)), 7.0, rtol=1e-6)
    kernel = np.array(center_weighted_kernel(8, 2.0))
    delta = np.zeros((1, 10, 9, 1), np.float32)
    delta[0, 4, 4, 0] = 1.0
    out = np.asarray(pool(delta))[0, :, :, 0]
    assert out.shape == (3, 2)
    # window at cell (i, j) sees the delta at kernel position (4 - i, 4 - j)
    for i in range(3):
        for j in range(2):
            assert out[i, j] == pytest.approx(kernel[4 - i, 4 - j], rel=1e-6)
    assert kernel[3:5, 3:5].min() == pytest.approx(kernel.max())


def test_windows_mode_equals_per_window_calls_and_tile_mode_is_row_major():
    model = build_model(SMALL, "full")
    x = _inputs("full", 3, 256, 256)
    batched = np.asarray(model(x, training=False))
    assert batched.shape == (3, 1)
    single = np.concatenate(
        [np.asarray(model({k: v[i : i + 1] for k, v in x.items()}, training=False)) for i in range(3)]
    )
    np.testing.assert_allclose(batched, single, atol=1e-5)

    tile = _inputs("full", 1, 320, 384, seed=1)
    out = np.asarray(model(tile, training=False))
    assert out.shape == (3 * 5, 1)
    # row k = i * 5 + j of low_res/coarse belongs to window (i, j): the output of a row
    # depends on that row's coarse value only
    bumped = dict(tile, coarse=tile["coarse"].copy())
    bumped["coarse"][7] = 255.0 - bumped["coarse"][7]
    changed = np.flatnonzero(np.abs(np.asarray(model(bumped, training=False)) - out)[:, 0] > 1e-7)
    assert changed.tolist() == [7]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_builds_and_runs(variant):
    model = build_model(SMALL, variant)
    assert sorted(t.name for t in model.inputs) == sorted(variant_inputs(variant))
    x = _inputs(variant, 2, 256, 256)
    out = np.asarray(model(x, training=True))
    assert out.shape == (2, 1) and np.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_geometry_is_the_schemas(name):
    """Every config builds models with the geometry the plugin reads from the schema (window, strides, sigma)."""
    cfg = CONFIGS[name]
    assert cfg.high_res_window_px == schema.HIGH_RES_WINDOW_PX == schema.ROLE_GRID["high_res"]["window_px"]
    assert cfg.low_res_window_px == schema.LOW_RES_WINDOW_PX == schema.ROLE_GRID["low_res"]["window_px"]
    assert cfg.high_res_output_stride == schema.HIGH_RES_OUTPUT_STRIDE
    assert cfg.low_res_output_stride == schema.LOW_RES_OUTPUT_STRIDE
    assert cfg.pooling_sigma_cells == schema.POOLING_SIGMA_CELLS
    # both windows cover the same ground (2.56 km), as the plugin's grids require
    assert cfg.high_res_window_px * schema.HIGH_RES_PIXEL_SIZE_M == cfg.low_res_window_px * schema.LOW_RES_PIXEL_SIZE_M
    # the high-res window holds a whole number of encoder cells, one per 320 m output pixel
    assert cfg.high_res_window_px % cfg.high_res_output_stride == 0
    assert schema.HIGH_RES_PIXEL_SIZE_M * cfg.high_res_output_stride == 320.0


def test_old_run_configs_with_removed_fields_still_load():
    from training.config import config_from_dict

    old = {**SMALL.to_dict(), "learning_rate_sweep": [0.1, 0.05], "weight_decay_sweep": [1e-4]}
    assert config_from_dict(old) == SMALL
