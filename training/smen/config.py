"""Hyper-parameters of SMEN (paper 002) and of its training, in one frozen object.

``paper`` is section 3-4.1 of paper 002: k previous (36 km, 3 km) pairs, 32 kernels,
100 x 100 px images at 3 km, Adam with a learning rate of 1e-4 for 1000 epochs.
Values the paper does not state are marked "not in the paper" with our choice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Model variants: the paper's network and the two ablations of its Table 2.
VARIANTS = ("spatiotemporal", "spatial", "temporal")


@dataclass(frozen=True)
class SmenConfig:
    """SMEN architecture and training hyper-parameters.

    Attributes:
        k: previous time instances in the residual series D (t-k .. t-1); >= 4, since the
            three 2-long temporal convolutions of f reduce the time axis by 3 (any
            remaining steps are averaged).
        filters: kernels of every convolution of f and g (paper: 32).
        variant: ``spatiotemporal`` (paper), ``spatial`` (g only) or ``temporal`` (f only).
        bn_momentum: BatchNormalization moving-average momentum (not in the paper; 0.9 so
            that short CPU runs have meaningful inference statistics).
        learning_rate: Adam learning rate (paper: 1e-4).
        epochs: passes over the training examples (paper: 1000).
        batch_size: images per step (not in the paper).
        patch_px: side of the random training crops at 3 km (paper: 100 px images).
        seed: weight-init, crop and shuffle seed.
    """

    k: int = 4
    filters: int = 32
    variant: str = "spatiotemporal"
    bn_momentum: float = 0.9
    learning_rate: float = 1e-4
    epochs: int = 1000
    batch_size: int = 4
    patch_px: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 4:
            raise ValueError(f"k = {self.k}: SMEN's f needs k >= 4 previous time instances (three 2-long convolutions)")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")

    def replace(self, **changes: Any) -> SmenConfig:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)


#: Paper 002 as written.
PAPER = SmenConfig()


def config_from_dict(values: dict[str, Any]) -> SmenConfig:
    """Inverse of :meth:`SmenConfig.to_dict`."""
    return SmenConfig(**values)
