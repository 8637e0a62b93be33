"""SMEN training examples from a simulated (or real) 36 km / 3 km series.

Between ``training.simulate.smen_data`` (the series on the product days) and
``training.smen.train``. One example per date t with a 3 km product and at least k
earlier product dates: the current 36 km image I(t) on the 3 km grid, the k previous
(36 km, 3 km) pairs (oldest first; where the 3 km product is missing the 36 km value
stands in, so D = J - I = 0), the 3 km product J(t) as target with its mask M(t), and the
3 km truth (simulation only, for evaluation). Inputs are 0-255 encoded (0-1 m3/m3),
targets and truth in m3/m3.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from smqgis.core.kinds.smen import EASE2_FACTOR_3KM, ENCODED_PER_M3M3

from ..simulate.smen_data import SmenSeries, upsample_nearest

log = logging.getLogger(__name__)


@dataclass
class Examples:
    """Stacked examples (first axis = example), see the module docstring.

    Attributes:
        low_res: [N, H, W, 1] encoded current 36 km image on the 3 km grid.
        history_low_res, history_high_res: [N, k, H, W] encoded previous pairs.
        target: [N, H, W] 3 km product J(t), m3/m3 (0 where masked).
        mask: [N, H, W] float32, 1 where J(t) exists.
        truth: [N, H, W] 3 km truth, m3/m3.
        coarse: [N, h, w] the 36 km image I(t), m3/m3 (for the bicubic baseline).
        days: [N] the dates t (days since the series start).
    """

    low_res: np.ndarray
    history_low_res: np.ndarray
    history_high_res: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    truth: np.ndarray
    coarse: np.ndarray
    days: np.ndarray

    def __len__(self) -> int:
        return len(self.days)

    def subset(self, index: np.ndarray | slice) -> Examples:
        """The examples at ``index``."""
        return Examples(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})

    def inputs(self, variant: str = "spatiotemporal") -> dict[str, np.ndarray]:
        """The model inputs of ``variant`` (keys = graph input names)."""
        from .model import CURRENT, HISTORY_HIGH, HISTORY_LOW

        out = {}
        if variant != "temporal":
            out[CURRENT] = self.low_res
        if variant != "spatial":
            out[HISTORY_LOW] = self.history_low_res
            out[HISTORY_HIGH] = self.history_high_res
        return out


def history_pairs(coarse_up: np.ndarray, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) history in m3/m3 with the 36 km value standing in where the 3 km one is missing."""
    return coarse_up, np.where(np.isfinite(fine), fine, coarse_up)


def make_examples(series: SmenSeries, k: int, *, first_day: int = 0, last_day: int | None = None) -> Examples:
    """Examples whose date t lies in [first_day, last_day] (history may reach before ``first_day``)."""
    last_day = series.days.max() if last_day is None else last_day
    valid = np.flatnonzero(series.has_product)
    coarse_up = upsample_nearest(series.radiometer_36km, EASE2_FACTOR_3KM)
    rows: dict[str, list[np.ndarray]] = {k_: [] for k_ in Examples.__dataclass_fields__}
    for pos in range(k, len(valid)):
        i = valid[pos]
        day = int(series.days[i])
        if not first_day <= day <= last_day:
            continue
        hist = valid[pos - k : pos]
        low, high = history_pairs(coarse_up[hist], series.active_passive_3km[hist])
        target = series.active_passive_3km[i]
        rows["low_res"].append(coarse_up[i][..., None] * ENCODED_PER_M3M3)
        rows["history_low_res"].append(low * ENCODED_PER_M3M3)
        rows["history_high_res"].append(high * ENCODED_PER_M3M3)
        rows["mask"].append(np.isfinite(target).astype(np.float32))
        rows["target"].append(np.nan_to_num(target, nan=0.0))
        rows["truth"].append(series.truth_3km[i])
        rows["coarse"].append(series.radiometer_36km[i])
        rows["days"].append(np.int32(day))
    if not rows["days"]:
        raise ValueError(f"no example with k = {k} between days {first_day} and {last_day}")
    return Examples(**{key: np.stack(v).astype(np.int32 if key == "days" else np.float32) for key, v in rows.items()})


def random_crops(ex: Examples, index: np.ndarray, patch_px: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One random ``patch_px`` crop of each example in ``index`` (inputs, target, mask)."""
    _, h, w = ex.target.shape
    size = min(patch_px, h, w)
    out: dict[str, list[np.ndarray]] = {
        "low_res": [],
        "history_low_res": [],
        "history_high_res": [],
        "target": [],
        "mask": [],
    }
    for i in index:
        r, c = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out["low_res"].append(ex.low_res[i, r : r + size, c : c + size])
        out["history_low_res"].append(ex.history_low_res[i, :, r : r + size, c : c + size])
        out["history_high_res"].append(ex.history_high_res[i, :, r : r + size, c : c + size])
        out["target"].append(ex.target[i, r : r + size, c : c + size])
        out["mask"].append(ex.mask[i, r : r + size, c : c + size])
    return {key: np.stack(v) for key, v in out.items()}
