"""Encode physical values to the model's 0-255 scale, and back.

The fusion model consumes every input as float32 in [0, 255] (the encoding of the
authors' released data). How each band is encoded is read from the model's own
metadata (see ``schema``); this module implements the encoding kinds. NaN in, NaN
out: nodata stays visible to the caller, which masks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def encode(values: np.ndarray, encoding: dict[str, Any]) -> np.ndarray:
    """Encode physical ``values`` to float32 in [0, 255] with one band's encoding."""
    x = np.asarray(values, dtype=np.float64)
    kind = encoding["kind"]
    if kind == "linear":
        lo, hi = float(encoding["min"]), float(encoding["max"])
        out = np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0
    elif kind == "log_sigmoid":
        dn = np.maximum(x, 0.0) * float(encoding["dn_scale"])
        z = (np.log1p(dn) - float(encoding["log_mean"])) / float(encoding["log_std"])
        out = 255.0 / (1.0 + np.exp(-z))
    else:
        raise ValueError(f"unknown encoding kind {kind!r}")
    return out.astype(np.float32)


def decode(encoded: np.ndarray, encoding: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode` inside the encodable range (float64)."""
    e = np.asarray(encoded, dtype=np.float64) / 255.0
    kind = encoding["kind"]
    if kind == "linear":
        lo, hi = float(encoding["min"]), float(encoding["max"])
        return lo + e * (hi - lo)
    if kind == "log_sigmoid":
        e = np.clip(e, 1e-9, 1 - 1e-9)
        z = np.log(e / (1.0 - e))
        return np.expm1(z * float(encoding["log_std"]) + float(encoding["log_mean"])) / float(encoding["dn_scale"])
    raise ValueError(f"unknown encoding kind {kind!r}")
