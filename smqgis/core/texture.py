"""USDA soil-texture classes from sand, silt and clay fractions (vectorized numpy).

Used to stratify validation by soil texture (paper 000, Table 11; SoilGrids
sand/silt/clay at the window centre) by ``training/evaluate.py`` and by the
plugin. The twelve classes of the USDA texture triangle are decided with the
NRCS Soil Survey Manual rules (percent by mass of the fine earth, < 2 mm); the
three fractions are first rescaled to sum to 100 (SoilGrids g/kg rarely sum to
exactly 1000). Points on a class boundary go to the first class, in
:data:`USDA_TEXTURE_CLASSES` order, whose rule they meet. Pure numpy.
"""

from __future__ import annotations

import numpy as np

#: The USDA classes; a class index from :func:`usda_texture_class` points here.
USDA_TEXTURE_CLASSES = (
    "sand",
    "loamy sand",
    "sandy loam",
    "loam",
    "silt loam",
    "silt",
    "sandy clay loam",
    "clay loam",
    "silty clay loam",
    "sandy clay",
    "silty clay",
    "clay",
)
#: Index for points without a class (non-finite or non-positive fractions).
UNKNOWN = -1
UNKNOWN_NAME = "unknown"


def usda_texture_class(sand: np.ndarray, silt: np.ndarray, clay: np.ndarray) -> np.ndarray:
    """USDA texture class index per point (int16, :data:`UNKNOWN` where undefined).

    Parameters
    ----------
    sand, silt, clay : np.ndarray
        fractions in any common unit (percent, g/kg, 0-1),
        broadcastable to one shape; rescaled to percent of their sum.

    Returns
    -------
    np.ndarray
        int16 array of indices into :data:`USDA_TEXTURE_CLASSES`.
    """
    sa, si, cl = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (sand, silt, clay)))
    total = sa + si + cl
    valid = np.isfinite(total) & (total > 0) & (np.minimum(np.minimum(sa, si), cl) >= 0)
    scale = np.where(valid, 100.0 / np.where(valid, total, 1.0), np.nan)
    sa, si, cl = sa * scale, si * scale, cl * scale
    with np.errstate(invalid="ignore"):
        rules = [
            si + 1.5 * cl < 15,  # sand
            (si + 1.5 * cl >= 15) & (si + 2 * cl < 30),  # loamy sand
            ((cl >= 7) & (cl < 20) & (sa > 52) & (si + 2 * cl >= 30)) | ((cl < 7) & (si < 50) & (si + 2 * cl >= 30)),
            (cl >= 7) & (cl < 27) & (si >= 28) & (si < 50) & (sa <= 52),  # loam
            ((si >= 50) & (cl >= 12) & (cl < 27)) | ((si >= 50) & (si < 80) & (cl < 12)),  # silt loam
            (si >= 80) & (cl < 12),  # silt
            (cl >= 20) & (cl < 35) & (si < 28) & (sa > 45),  # sandy clay loam
            (cl >= 27) & (cl < 40) & (sa > 20) & (sa <= 45),  # clay loam
            (cl >= 27) & (cl < 40) & (sa <= 20),  # silty clay loam
            (cl >= 35) & (sa > 45),  # sandy clay
            (cl >= 40) & (si >= 40),  # silty clay
            (cl >= 40) & (sa <= 45) & (si < 40),  # clay
        ]
    out = np.full(sa.shape, UNKNOWN, dtype=np.int16)
    for index in range(len(rules) - 1, -1, -1):  # reverse: the first matching rule wins
        out = np.where(rules[index] & valid, np.int16(index), out)
    return out


def usda_texture_name(sand: np.ndarray, silt: np.ndarray, clay: np.ndarray) -> np.ndarray:
    """USDA texture class names per point (object array; ``"unknown"`` where undefined)."""
    names = np.array((*USDA_TEXTURE_CLASSES, UNKNOWN_NAME), dtype=object)
    return names[usda_texture_class(sand, silt, clay)]  # UNKNOWN = -1 picks the last entry
