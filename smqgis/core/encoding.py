"""Encode physical values to the model's 0-255 scale, and back.

The fusion model consumes every input as float32 in [0, 255] (the encoding of the
authors' released data). How each band is encoded is read from the model's own
metadata (see ``schema``); this module implements the encoding kinds. NaN in, NaN
out: nodata stays visible to the caller, which masks it.

:func:`encode` computes in float64 (the training data's reference); the map reader uses
:func:`encode_into`, the same operations in place on a float32 buffer (no temporaries:
about 5x faster on a 10 m block; it differs from :func:`encode` by float32 rounding, at most
1e-4 on the 0-255 scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _encode_in_place(x: np.ndarray, encoding: dict[str, Any]) -> None:
    """Encode ``x`` (float array) in place with one band's encoding; computes in ``x``'s dtype."""
    kind = encoding["kind"]
    if kind == "linear":
        lo, hi = float(encoding["min"]), float(encoding["max"])
        np.subtract(x, lo, out=x)
        np.divide(x, hi - lo, out=x)
        np.clip(x, 0.0, 1.0, out=x)
        np.multiply(x, 255.0, out=x)
    elif kind == "log_sigmoid":  # 255 / (1 + exp(-(log1p(max(x, 0) * dn_scale) - log_mean) / log_std))
        np.maximum(x, 0.0, out=x)
        np.multiply(x, float(encoding["dn_scale"]), out=x)
        if x.dtype == np.float64:
            np.log1p(x, out=x)
        else:  # float32: numpy's log is vectorised, its log1p is not (6x slower); 1 + x costs < 1e-7 relative
            np.add(x, 1.0, out=x)
            np.log(x, out=x)
        np.subtract(x, float(encoding["log_mean"]), out=x)
        np.divide(x, float(encoding["log_std"]), out=x)
        np.negative(x, out=x)
        np.exp(x, out=x)
        np.add(x, 1.0, out=x)
        np.divide(255.0, x, out=x)
    else:
        raise ValueError(f"unknown encoding kind {kind!r}")


def encode(values: np.ndarray, encoding: dict[str, Any]) -> np.ndarray:
    """Encode physical ``values`` to float32 in [0, 255] with one band's encoding (computed in float64)."""
    x = np.array(values, dtype=np.float64)  # a copy: the input is never modified
    _encode_in_place(x, encoding)
    return x.astype(np.float32)


def encode_into(values: np.ndarray, encoding: dict[str, Any], out: np.ndarray) -> np.ndarray:
    """Encode ``values`` into the float32 array ``out`` (same shape; may be ``values`` itself), in float32.

    The map reader's path: no temporaries of the block's size are made.
    """
    if out is not values:
        np.copyto(out, values, casting="same_kind")
    _encode_in_place(out, encoding)
    return out


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
