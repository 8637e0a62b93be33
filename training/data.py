"""Read and write the authors' released TFRecord schema (paper 000, shared REFERENCE 2).

This is the first step of training: gzipped TFRecord files of
``tf.train.Example`` -> ``tf.data`` batches of model inputs and labels. One
example holds 512 x 512 int64 images at 10 m (0-255 encoded, Table 4 / Table 17)
named by each band's ``tfrecord_key`` (``smqgis.core.sources``), the coarse
scalars ``smap_sm`` / ``gldas_sm`` (int64, 0-255), ``center_lat``,
``center_long``, ``timestamp`` (float, ms since 1970; stored as float32 by the
schema, so good to about 2 minutes), ``sensor_id``
(``NETWORK__STATION__SENSORTYPE``) and the ISMN labels ``sm_0_5`` / ``sm_5_5``
(float, m3/m3, either may be missing or NaN). :func:`make_dataset` yields, for
the roles a variant has (``smqgis.core.schema.variant_inputs``, band order as
there): ``high_res`` float32 [B, 256, 256, C] (the centre 2.56 km at 10 m),
``low_res`` [B, 16, 16, C_low] (the same 2.56 km of SoilGrids block-averaged to
160 m) and ``coarse`` [B, K] (float 0-255), all in the 0-255 encoding, and the
label float32 [B] in m3/m3 (``sm_0_5``, else ``sm_5_5``; examples with neither
are dropped). Training augmentations (``training.augment``) resample the full
512 px / 32 px images straight into the window, so rotated corners hold real
pixels. :func:`write_examples` writes the same schema (used for simulated data
and test fixtures).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from smqgis.core import schema, sources
from training import augment as aug

log = logging.getLogger(__name__)

#: Side of every image in the released schema, pixels at 10 m.
RELEASED_IMAGE_PX = 512
#: Model window per image role (pixels of the role's own grid).
HIGH_RES_WINDOW_PX = int(schema.ROLE_GRID["high_res"]["window_px"])
LOW_RES_WINDOW_PX = int(schema.ROLE_GRID["low_res"]["window_px"])
#: 10 m pixels per low-res pixel (160 m / 10 m).
LOW_RES_BLOCK_PX = int(schema.ROLE_GRID["low_res"]["pixel_size_m"] / schema.ROLE_GRID["high_res"]["pixel_size_m"])

LABEL_KEYS = ("sm_0_5", "sm_5_5")
FLOAT_KEYS = ("center_lat", "center_long", "timestamp")
SENSOR_KEY = "sensor_id"
#: Scalar bands: those any variant feeds through the ``coarse`` role.
COARSE_KEYS = tuple(
    sorted({sources.band_ref(r)[1].tfrecord_key for v in schema.VARIANTS.values() for r in v["coarse"]})
)
#: Image bands: every other band of the sources table.
IMAGE_KEYS = tuple(
    b.tfrecord_key for s in sources.SOURCES.values() for b in s.bands if b.tfrecord_key not in COARSE_KEYS
)
#: Extra feature keys of ``with_meta=True``; ``sand_silt_clay_gkg`` only when the
#: files carry the SoilGrids sand, silt and clay bands.
META_KEYS = ("sensor_id", "timestamp", "center_lat", "center_long", "sand_silt_clay_gkg")
TEXTURE_REFS = ("soilgrids/sand", "soilgrids/silt", "soilgrids/clay")
#: Side of the centre block the texture meta-data averages over (320 m at 10 m).
TEXTURE_BLOCK_PX = 32


# --------------------------------------------------------------------------- writer


def _set_ints(feature: tf.train.Feature, values: np.ndarray) -> None:
    feature.int64_list.value.extend(values.ravel().tolist())


def _encoded_ints(key: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Round a 0-255 encoded value or image to int64, checking range and shape."""
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{key}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{key}: non-finite values; the released schema has no nodata")
    ints = np.rint(arr).astype(np.int64)
    if ints.min(initial=0) < 0 or ints.max(initial=0) > 255:
        raise ValueError(f"{key}: values outside the 0-255 encoding ({ints.min()}..{ints.max()})")
    return ints


def serialize_example(example: Mapping[str, Any]) -> bytes:
    """Serialize one example of the released schema to ``tf.train.Example`` bytes.

    Parameters
    ----------
    example : Mapping[str, Any]
        image keys (``IMAGE_KEYS``) -> [512, 512] arrays in the 0-255
        encoding (rounded to int64); ``smap_sm`` / ``gldas_sm`` -> 0-255
        scalars; ``center_lat`` / ``center_long`` (deg), ``timestamp`` (ms
        since 1970), ``sm_0_5`` / ``sm_5_5`` (m3/m3; NaN allowed, None
        omits the field) -> float; ``sensor_id`` -> str. Other keys are
        written by their value type (integer arrays / ints as int64,
        floats as float, str / bytes as bytes).

    Returns
    -------
    bytes
        The serialized proto.
    """
    # Fill the proto in place: building Feature objects first and passing them
    # to Example() copies every 512 x 512 list again.
    proto = tf.train.Example()
    for key, value in example.items():
        if value is None:
            continue
        feature = proto.features.feature[key]
        if key in IMAGE_KEYS:
            _set_ints(feature, _encoded_ints(key, value, (RELEASED_IMAGE_PX, RELEASED_IMAGE_PX)))
        elif key in COARSE_KEYS:
            _set_ints(feature, _encoded_ints(key, value, ()))
        elif key in FLOAT_KEYS or key in LABEL_KEYS:
            feature.float_list.value.append(float(value))
        elif isinstance(value, (str, bytes)):
            feature.bytes_list.value.append(value.encode("utf-8") if isinstance(value, str) else value)
        else:
            arr = np.asarray(value)
            if np.issubdtype(arr.dtype, np.integer):
                _set_ints(feature, arr.astype(np.int64))
            elif np.issubdtype(arr.dtype, np.floating):
                feature.float_list.value.extend(arr.ravel().tolist())
            else:
                raise ValueError(f"{key}: cannot serialize a value of type {type(value).__name__}")
    return proto.SerializeToString()


def write_examples(path: str, examples: Iterable[Mapping[str, Any]], compress: bool = True) -> int:
    """Write examples (see :func:`serialize_example`) to one TFRecord file.

    Parameters
    ----------
    path : str
        output file (conventionally ``*.tfrecord.gz`` when compressed).
    examples : Iterable[Mapping[str, Any]]
        dicts in the released schema.
    compress : bool
        gzip the records, as the released shards are.

    Returns
    -------
    int
        The number of examples written.
    """
    count = 0
    with tf.io.TFRecordWriter(path, options="GZIP" if compress else None) as writer:
        for example in examples:
            writer.write(serialize_example(example))
            count += 1
    log.info("wrote %d examples to %s", count, path)
    return count


# --------------------------------------------------------------------------- reader


def expand_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Sorted, de-duplicated files matching a glob or a list of globs / paths."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns for f in (tf.io.gfile.glob(p) if any(c in p for c in "*?[") else [p])})
    missing = [f for f in files if not tf.io.gfile.exists(f)]
    if not files or missing:
        raise FileNotFoundError(
            f"no TFRecord files for {file_pattern!r}" + (f" (missing: {missing})" if missing else "")
        )
    return files


def _compression(path: str) -> str:
    """``"GZIP"`` if the file starts with the gzip magic bytes, else ``""``."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return "GZIP" if f.read(2) == b"\x1f\x8b" else ""


def first_example_keys(path: str) -> dict[str, str]:
    """Field names of the first example of ``path`` and their kinds (int64_list, ...)."""
    record = next(iter(tf.data.TFRecordDataset(path, compression_type=_compression(path)).take(1)), None)
    if record is None:
        raise ValueError(f"{path} holds no records")
    example = tf.train.Example.FromString(record.numpy())
    return {k: f.WhichOneof("kind") for k, f in example.features.feature.items()}


def _role_keys(variant: str) -> dict[str, list[str]]:
    return {
        role: [sources.band_ref(r)[1].tfrecord_key for r in refs]
        for role, refs in schema.variant_inputs(variant).items()
    }


def _parse_spec(role_keys: Mapping[str, Sequence[str]], with_meta: bool, texture: bool) -> dict[str, Any]:
    image = tf.io.FixedLenFeature([RELEASED_IMAGE_PX, RELEASED_IMAGE_PX], tf.int64)
    spec: dict[str, Any] = {k: tf.io.VarLenFeature(tf.float32) for k in LABEL_KEYS}
    for role, keys in role_keys.items():
        for key in keys:
            spec[key] = tf.io.FixedLenFeature([], tf.int64) if role == "coarse" else image
    if with_meta:
        spec[SENSOR_KEY] = tf.io.FixedLenFeature([], tf.string)
        spec.update({k: tf.io.FixedLenFeature([], tf.float32) for k in FLOAT_KEYS})
        if texture:
            spec.update({sources.band_ref(r)[1].tfrecord_key: image for r in TEXTURE_REFS})
    return spec


def _first_or_nan(sparse: tf.SparseTensor) -> tf.Tensor:
    return tf.concat([sparse.values, [math.nan]], axis=0)[0]


def _label(parsed: Mapping[str, Any]) -> tf.Tensor:
    """``sm_0_5`` if finite, else ``sm_5_5`` (m3/m3; NaN when neither is)."""
    primary, fallback = (_first_or_nan(parsed[k]) for k in LABEL_KEYS)
    return tf.where(tf.math.is_finite(primary), primary, fallback)


def _stack(parsed: Mapping[str, Any], keys: Sequence[str]) -> tf.Tensor:
    return tf.stack([tf.cast(parsed[k], tf.float32) for k in keys], axis=-1)


def block_mean(image: tf.Tensor, block_px: int) -> tf.Tensor:
    """Average an [H, W, C] image over non-overlapping ``block_px`` squares."""
    height, width, channels = image.shape
    blocks = tf.reshape(image, [height // block_px, block_px, width // block_px, block_px, channels])
    return tf.reduce_mean(blocks, axis=[1, 3])


def _texture_gkg(parsed: Mapping[str, Any]) -> tf.Tensor:
    """Sand, silt, clay (g/kg) averaged over the centre 320 m, decoded from 0-255."""
    values = []
    for ref in TEXTURE_REFS:
        band = sources.band_ref(ref)[1]
        centre = aug.center_crop(tf.cast(parsed[band.tfrecord_key], tf.float32)[..., None], TEXTURE_BLOCK_PX)
        lo, hi = float(band.encoding["min"]), float(band.encoding["max"])
        values.append(lo + tf.reduce_mean(centre) / 255.0 * (hi - lo))
    return tf.stack(values)


def _features(
    parsed: Mapping[str, Any],
    seed: tf.Tensor | None,
    role_keys: Mapping[str, Sequence[str]],
    config: aug.AugmentConfig,
    with_meta: bool,
    texture: bool,
) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """Model inputs of one parsed example (optionally augmented) and its label."""
    matrix = aug.random_matrix(seed, config) if seed is not None else None
    features: dict[str, tf.Tensor] = {}
    for role, keys in role_keys.items():
        if role == "coarse":
            features[role] = _stack(parsed, keys)
            continue
        image = _stack(parsed, keys)
        window = HIGH_RES_WINDOW_PX
        if role == "low_res":
            image, window = block_mean(image, LOW_RES_BLOCK_PX), LOW_RES_WINDOW_PX
        features[role] = (
            aug.center_crop(image, window) if matrix is None else aug.transform_window(image, matrix, window)
        )
    if with_meta:
        features[SENSOR_KEY] = parsed[SENSOR_KEY]
        features.update({k: parsed[k] for k in FLOAT_KEYS})
        if texture:
            features["sand_silt_clay_gkg"] = _texture_gkg(parsed)
    return features, _label(parsed)


def make_dataset(
    file_pattern: str | list[str],
    variant: str,
    batch_size: int,
    *,
    training: bool,
    seed: int,
    drop_remainder: bool = True,
    augment: bool | None = None,
    with_meta: bool = False,
    shuffle_buffer: int = 256,
    augment_config: aug.AugmentConfig = aug.PAPER_AUGMENT,
) -> tf.data.Dataset:
    """Batches of (features, label) from released-schema TFRecord files.

    Parameters
    ----------
    file_pattern : str | list[str]
        a glob, a path, or a list of them (gzip detected per file).
    variant : str
        a name of ``smqgis.core.schema.VARIANTS``; picks the roles and
        the band order.
    batch_size : int
        examples per batch.
    training : bool
        shuffle (files and records, ``shuffle_buffer`` serialized
        records of about 5 MB each for all 14 released bands) and repeat
        forever; otherwise one pass in file order.
    seed : int
        seeds the shuffles and the per-example augmentation
        (stateless seed ``[seed, index]``), so two runs yield the same stream.
    drop_remainder : bool
        static batch shapes (TPU); pass False to evaluate all.
    augment : bool | None
        apply the Table 6 augmentations; default: ``training``.
    with_meta : bool
        add ``sensor_id`` (string), ``timestamp`` (ms),
        ``center_lat`` / ``center_long`` (deg) and, if the files carry
        SoilGrids sand/silt/clay, ``sand_silt_clay_gkg`` [B, 3] (g/kg over the
        centre 320 m) to the features.
    shuffle_buffer : int
        records in the shuffle buffer.
    augment_config : aug.AugmentConfig
        probabilities and extents of the augmentations.

    Returns
    -------
    tf.data.Dataset
        Dataset of ``(features, label)``: features as described in the module
        paragraph (float32, 0-255), label float32 [B] in m3/m3.
    """
    files = expand_files(file_pattern)
    role_keys = _role_keys(variant)
    available = first_example_keys(files[0])
    needed = [k for keys in role_keys.values() for k in keys]
    if with_meta:
        needed += [SENSOR_KEY, *FLOAT_KEYS]
    missing = [k for k in needed if k not in available]
    if missing:
        raise ValueError(f"{files[0]} lacks the fields {missing} that variant {variant!r} needs")
    texture_keys = [sources.band_ref(r)[1].tfrecord_key for r in TEXTURE_REFS]
    texture = with_meta and all(k in available for k in texture_keys)
    augment = training if augment is None else augment
    spec = _parse_spec(role_keys, with_meta, texture)
    compression = {_compression(f) for f in files}
    if len(compression) > 1:
        raise ValueError(f"mixed gzip and plain TFRecord files in {file_pattern!r}")
    compression_type = compression.pop()
    log.info(
        "dataset: %d files, variant %s, batch %d, training=%s, augment=%s, texture meta=%s",
        len(files),
        variant,
        batch_size,
        training,
        augment,
        texture,
    )

    if training:
        records = (
            tf.data.Dataset.from_tensor_slices(files)
            .shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
            .interleave(
                lambda f: tf.data.TFRecordDataset(f, compression_type=compression_type),
                cycle_length=min(len(files), 8),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
            .repeat()
        )
    else:
        records = tf.data.TFRecordDataset(files, compression_type=compression_type)

    parsed = records.map(
        lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).filter(lambda p: tf.math.is_finite(_label(p)))

    def to_features(index: tf.Tensor, p: Mapping[str, Any]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        example_seed = tf.stack([tf.constant(seed, tf.int64), index]) if augment else None
        return _features(p, example_seed, role_keys, augment_config, with_meta, texture)

    options = tf.data.Options()
    options.deterministic = True
    return (
        parsed.enumerate()
        .map(to_features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=drop_remainder)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
