"""Seamless, seeded random fields on the simulated world's map grid.

Every field of the simulated world is a pure function of map position (UTM
metres) and a salt, so any window of it - a 512 x 512 training patch, the sample
scene, a 200 m grid over a SMAP cell - is computed on its own and agrees with
every other window where they overlap. The building block is value noise: a
counter-based hash gives a uniform value at each node of a lattice with a given
spacing, and a smoothstep tensor-product interpolation fills the space between
nodes. On an axis-aligned grid the interpolation is two small matrix products,
so a 512 x 512 grid costs milliseconds per octave.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0xBF58476D1CE4E5B9)
_M4 = np.uint64(0x94D049BB133111EB)


def salt_of(seed: int, *names: object) -> int:
    """A 63-bit salt from the world seed and a field name (stable across runs and platforms)."""
    text = "/".join(str(n) for n in (seed, *names)).encode()
    return (zlib.crc32(text) << 31) ^ zlib.adler32(text) ^ (int(seed) & 0x7FFFFFFF)


def hash_uniform(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Uniform values in [0, 1) from integer lattice indices (broadcast), splitmix64 style."""
    with np.errstate(over="ignore"):
        h = np.asarray(ix, dtype=np.int64).view(np.uint64) * _M1
        h = h ^ (np.asarray(iy, dtype=np.int64).view(np.uint64) * _M2)
        h = h ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        h = h ^ (h >> np.uint64(30))
        h = h * _M3
        h = h ^ (h >> np.uint64(27))
        h = h * _M4
        h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def axis_weights(coords_m: np.ndarray, spacing_m: float, smooth: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation weights from lattice nodes to 1-D coordinates.

    Parameters
    ----------
    coords_m : np.ndarray
        coordinates along one axis (m).
    spacing_m : float
        lattice spacing (m); node k sits at ``k * spacing_m``.
    smooth : bool
        smoothstep weights (value noise) instead of linear ones.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(nodes, W)``: the integer node indices used and the ``(len(coords), len(nodes))``
        weight matrix (two non-zeros per row, summing to 1).
    """
    g = np.asarray(coords_m, dtype=np.float64) / float(spacing_m)
    i0 = np.floor(g).astype(np.int64)
    t = g - i0
    f = t * t * (3.0 - 2.0 * t) if smooth else t
    nodes = np.arange(i0.min(), i0.max() + 2, dtype=np.int64)
    w = np.zeros((g.size, nodes.size))
    rows = np.arange(g.size)
    w[rows, i0 - nodes[0]] = 1.0 - f
    w[rows, i0 - nodes[0] + 1] += f
    return nodes, w


def value_noise(xs_m: np.ndarray, ys_m: np.ndarray, spacing_m: float, salt: int) -> np.ndarray:
    """Value noise in [-1, 1] on the grid ``ys_m x xs_m`` (rows follow ``ys_m``)."""
    nx, wx = axis_weights(xs_m, spacing_m)
    ny, wy = axis_weights(ys_m, spacing_m)
    lattice = 2.0 * hash_uniform(nx[None, :], ny[:, None], salt) - 1.0
    return wy @ lattice @ wx.T


def fbm(
    xs_m: np.ndarray,
    ys_m: np.ndarray,
    spacings_m: Sequence[float],
    gains: Sequence[float],
    salt: int,
) -> np.ndarray:
    """Sum of value-noise octaves, normalised so its standard deviation is about 0.5."""
    out = np.zeros((len(ys_m), len(xs_m)))
    for k, (spacing, gain) in enumerate(zip(spacings_m, gains)):
        out += gain * value_noise(xs_m, ys_m, spacing, salt + 7919 * (k + 1))
    # value noise with smoothstep has std ~ 0.37 per octave; keep the sum comparable
    return out / (0.74 * float(np.sqrt(np.sum(np.square(gains)))))


def pixel_uniform(xs_m: np.ndarray, ys_m: np.ndarray, pixel_m: float, salt: int) -> np.ndarray:
    """Independent uniform [0, 1) value per map pixel of size ``pixel_m`` (grid ``ys x xs``)."""
    ix = np.floor(np.asarray(xs_m) / pixel_m).astype(np.int64)
    iy = np.floor(np.asarray(ys_m) / pixel_m).astype(np.int64)
    return hash_uniform(ix[None, :], iy[:, None], salt)


def bilinear_from_grid(
    values: np.ndarray,
    origin_x_m: float,
    origin_y_m: float,
    spacing_m: float,
    xs_m: np.ndarray,
    ys_m: np.ndarray,
) -> np.ndarray:
    """Bilinear interpolation of node values ``values[j, i]`` at ``(origin + (i, j) * spacing)``.

    ``values`` may carry leading dimensions (e.g. ``[T, ny, nx]``); coordinates outside
    the node grid are clamped to its edge.
    """
    ny_nodes, nx_nodes = values.shape[-2:]
    gx = np.clip((np.asarray(xs_m) - origin_x_m) / spacing_m, 0.0, nx_nodes - 1.000001)
    gy = np.clip((np.asarray(ys_m) - origin_y_m) / spacing_m, 0.0, ny_nodes - 1.000001)
    _, wx = axis_weights(gx, 1.0, smooth=False)
    _, wy = axis_weights(gy, 1.0, smooth=False)
    x0 = int(np.floor(gx.min()))
    y0 = int(np.floor(gy.min()))
    sub = values[..., y0 : y0 + wy.shape[1], x0 : x0 + wx.shape[1]]
    wy = wy[:, : sub.shape[-2]]
    wx = wx[:, : sub.shape[-1]]
    return wy @ sub @ wx.T
