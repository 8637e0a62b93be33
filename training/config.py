"""Every hyper-parameter of the fusion model and its training, in one frozen object.

The ``paper`` config is Table 7 of paper 000 (Batchu et al. 2023) plus the DeepLab
Xception layouts it names; the ``small`` config keeps the same architecture with
fewer middle-flow blocks and narrower layers so that it trains on a 2-core CPU.
``training/model.py`` builds from a :class:`ModelConfig`, ``training/train.py``
trains with it and ``training/export.py`` records it in the ONNX metadata.
Values the paper does not state are marked "not in the paper" with our choice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from smqgis.core import schema


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and training hyper-parameters (Table 7 of paper 000).

    Channel widths are the Xception widths times ``width_multiplier`` (high-res) or
    ``low_res_depth_multiplier`` (low-res), rounded to a multiple of
    ``channel_divisor`` (onnxruntime's blocked convolution layout wants multiples of 8).
    """

    name: str
    # --- encoders (paper 000 section 3a1; DeepLab's modified Xception) ---
    high_res_middle_blocks: int = 16  # Xception-65
    low_res_middle_blocks: int = 8  # Xception-41
    width_multiplier: float = 1.0
    low_res_depth_multiplier: float = 0.5  # "fractional"; the value is not in the paper
    channel_divisor: int = 8
    # the model's geometry is the schema's (the plugin reads it from the metadata); a test checks every config
    high_res_output_stride: int = schema.HIGH_RES_OUTPUT_STRIDE  # 256 px at 10 m -> 8 x 8 cells of 320 m
    low_res_output_stride: int = schema.LOW_RES_OUTPUT_STRIDE  # 16 px at 160 m -> 1 x 1 cell
    high_res_window_px: int = schema.HIGH_RES_WINDOW_PX
    low_res_window_px: int = schema.LOW_RES_WINDOW_PX
    pooling_sigma_cells: float = schema.POOLING_SIGMA_CELLS  # centre-weighted pooling; not in the paper
    drop_path_keep: float = 0.6  # keep probability of the deepest residual unit
    # --- fusion heads (section 3a2, Table 7) ---
    head1_widths: tuple[int, ...] = (128, 64)  # then Dense(1)
    head1_keep: tuple[float, ...] = (0.5, 0.5, 0.6)  # one per Dropout, the last before Dense(1)
    head2_widths: tuple[int, ...] = (8,)
    head2_keep: tuple[float, ...] = (0.9, 0.9)
    # SMAP+GLDAS NN baseline: head-1 widths on the coarse vector; keeps not in the paper
    baseline_keep: tuple[float, ...] = (1.0, 0.9, 0.9)
    bn_momentum: float = 0.997  # DeepLab's batch-norm decay
    bn_epsilon: float = 1e-3
    sync_batch_norm: bool = True
    # --- training (section 3b, Table 7) ---
    batch_size: int = 64
    momentum: float = 0.9
    learning_rate: float = 0.05
    lr_decay_power: float = 0.9  # polynomial decay to end_learning_rate over train_steps
    end_learning_rate: float = 0.0
    train_steps: int = 600_000
    weight_decay: float = 5e-5  # decoupled (Loshchilov & Hutter), scaled by the learning rate
    huber_delta: float = 0.4  # m3/m3
    checkpoint_every_steps: int = 5000
    seed: int = 0

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (the config itself is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists), for metadata and logs."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


#: Table 7 of paper 000 exactly (Xception-65 / Xception-41, batch 64, 600k steps).
PAPER = ModelConfig(name="paper")

#: A CPU-sized model with the same structure: 2 middle blocks per encoder, quarter widths,
#: batch-norm momentum 0.9 (short runs).
SMALL = ModelConfig(
    name="small",
    high_res_middle_blocks=2,
    low_res_middle_blocks=2,
    width_multiplier=0.25,
    low_res_depth_multiplier=0.25,
    # Not the paper's 0.997: a CPU run of a few hundred to a few thousand steps would leave the
    # moving averages mostly at their initial values (0.997^300 = 0.41 weight on the init), so
    # inference-mode outputs would be meaningless. 0.9 averages over the last ~10 batches.
    bn_momentum=0.9,
    batch_size=8,
    train_steps=200,
    checkpoint_every_steps=50,
)

CONFIGS: dict[str, ModelConfig] = {c.name: c for c in (PAPER, SMALL)}


def get_config(name: str) -> ModelConfig:
    """The named config (``paper`` or ``small``)."""
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[name]


def config_from_dict(values: dict[str, Any]) -> ModelConfig:
    """Inverse of :meth:`ModelConfig.to_dict` (lists become tuples again).

    Keys that are no longer fields (e.g. the hyper-parameter sweeps of older runs) are ignored.
    """
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in fields})
