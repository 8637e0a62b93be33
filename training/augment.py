"""Centre-preserving geometric augmentations of paper 000, Table 6, as pure TF ops.

The model estimates soil moisture at the centre of its window, so every
augmentation keeps the window centre fixed: a rotation (p = 0.8, uniform
+-180 deg), a horizontal and a vertical flip (p = 0.5 each), a shear along x and
one along y (p = 0.3 each, uniform +-9 deg); no colour transforms. They are
composed into one 2x2 matrix per example, drawn with stateless random ops from a
per-example seed, and applied with a single bilinear resampling
(``ImageProjectiveTransformV3``) about the image centre. The same matrix is
applied to every input grid of an example (high-res 10 m, low-res 160 m): the
matrix acts on offsets from the centre, so it is the same geometric map on the
ground at any pixel size as long as the grids share their centre.
:func:`transform_window` resamples straight into the centre window, so the
caller passes the full released image (512 px at 10 m, 32 px at 160 m) and gets
the 256 / 16 px model window with true pixels in its rotated corners; the fill
mode (reflect) only matters for images smaller than about 1.7x the window.
Runs inside ``tf.data`` (no Python state, static output shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

#: Fill mode for pixels sampled outside the input image (see module paragraph).
FILL_MODE = "REFLECT"


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and extents (degrees) of the Table 6 augmentations."""

    rotate_p: float = 0.8
    rotate_max_deg: float = 180.0
    flip_h_p: float = 0.5
    flip_v_p: float = 0.5
    shear_x_p: float = 0.3
    shear_x_max_deg: float = 9.0
    shear_y_p: float = 0.3
    shear_y_max_deg: float = 9.0


#: Table 6 of paper 000.
PAPER_AUGMENT = AugmentConfig()


def random_params(seed: tf.Tensor, config: AugmentConfig = PAPER_AUGMENT) -> dict[str, tf.Tensor]:
    """Draw the Table 6 augmentation parameters of one example (stateless).

    Parameters
    ----------
    seed : tf.Tensor
        int32/int64 [2] stateless seed (e.g. ``[run_seed, example_index]``).
    config : AugmentConfig
        probabilities and extents.

    Returns
    -------
    dict[str, tf.Tensor]
        float32 scalars: ``theta`` (rotation, rad; 0 when not drawn), ``flip_x``
        and ``flip_y`` (-1 or 1), ``shear_x`` and ``shear_y`` (tangent of the
        shear angle; 0 when not drawn).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
    # One (apply, magnitude) pair of U[0, 1) draws per augmentation.
    draws = [tf.random.stateless_uniform([2], seed=seeds[i], dtype=tf.float32) for i in range(5)]

    def applied(i: int, p: float) -> tf.Tensor:
        return draws[i][0] < p

    def symmetric(i: int, max_deg: float) -> tf.Tensor:
        return (2.0 * draws[i][1] - 1.0) * (max_deg * math.pi / 180.0)

    zero = tf.constant(0.0)
    return {
        "theta": tf.where(applied(0, config.rotate_p), symmetric(0, config.rotate_max_deg), zero),
        "flip_x": tf.where(applied(1, config.flip_h_p), -1.0, 1.0),
        "flip_y": tf.where(applied(2, config.flip_v_p), -1.0, 1.0),
        "shear_x": tf.where(applied(3, config.shear_x_p), tf.tan(symmetric(3, config.shear_x_max_deg)), zero),
        "shear_y": tf.where(applied(4, config.shear_y_p), tf.tan(symmetric(4, config.shear_y_max_deg)), zero),
    }


def compose(params: dict[str, tf.Tensor]) -> tf.Tensor:
    """The float32 [2, 2] matrix of :func:`random_params` on (x, y) centre offsets.

    The matrix maps an offset from the centre in the OUTPUT image (x to the
    right, y down, any pixel size) to the offset sampled in the input:
    ``M = F @ R(theta) @ S_x @ S_y`` with ``F = diag(flip_x, flip_y)``. Every
    distribution of Table 6 is symmetric, so the image-side transform ``M^-1``
    has the same law.
    """
    zero, one = tf.constant(0.0), tf.constant(1.0)
    cos, sin = tf.cos(params["theta"]), tf.sin(params["theta"])
    flip = tf.stack([tf.stack([params["flip_x"], zero]), tf.stack([zero, params["flip_y"]])])
    rot = tf.stack([tf.stack([cos, -sin]), tf.stack([sin, cos])])
    shear_x = tf.stack([tf.stack([one, params["shear_x"]]), tf.stack([zero, one])])
    shear_y = tf.stack([tf.stack([one, zero]), tf.stack([params["shear_y"], one])])
    return flip @ rot @ shear_x @ shear_y


def random_matrix(seed: tf.Tensor, config: AugmentConfig = PAPER_AUGMENT) -> tf.Tensor:
    """One augmentation drawn from ``seed`` as a float32 [2, 2] matrix (see :func:`compose`)."""
    return compose(random_params(seed, config))


def transform_window(image: tf.Tensor, matrix: tf.Tensor, window_px: int) -> tf.Tensor:
    """Resample the centre ``window_px`` square of ``image`` transformed by ``matrix``.

    Output pixel (x, y) of the window (pixel centres at integer coordinates)
    samples the input at ``c + M @ (o + (x, y) - c)`` with ``c = ((W-1)/2, (H-1)/2)``
    the image centre and ``o`` the window's top-left in the image, bilinear,
    :data:`FILL_MODE` outside. With ``M = I`` this is exactly the centre crop.

    Parameters
    ----------
    image : tf.Tensor
        float32 [H, W, C] with H - window_px and W - window_px even.
    matrix : tf.Tensor
        float32 [2, 2] from :func:`random_matrix`.
    window_px : int
        side of the output window in pixels.

    Returns
    -------
    tf.Tensor
        float32 [window_px, window_px, C].
    """
    height, width, channels = image.shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ox, oy = (width - window_px) // 2, (height - window_px) // 2
    m = tf.cast(matrix, tf.float32)
    # Offsets of the window origin from the centre, then the affine row form.
    dx, dy = ox - cx, oy - cy
    transform = tf.stack(
        [
            m[0, 0],
            m[0, 1],
            cx + m[0, 0] * dx + m[0, 1] * dy,
            m[1, 0],
            m[1, 1],
            cy + m[1, 0] * dx + m[1, 1] * dy,
            0.0,
            0.0,
        ]
    )
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=tf.constant([window_px, window_px], tf.int32),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode=FILL_MODE,
    )[0]
    return tf.ensure_shape(out, [window_px, window_px, channels])


def center_crop(image: tf.Tensor, window_px: int) -> tf.Tensor:
    """The centre ``window_px`` square of an [H, W, C] image (no resampling)."""
    height, width, _ = image.shape
    oy, ox = (height - window_px) // 2, (width - window_px) // 2
    return image[oy : oy + window_px, ox : ox + window_px, :]
