"""Tests of training/data.py: the released-schema reader and writer, by value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from smqgis.core import schema, sources
from tests.training import make_tiny_tfrecord as tiny
from training import data


@pytest.fixture(scope="module")
def full_eval(tiny_file) -> list[tuple[dict, np.ndarray]]:
    ds = data.make_dataset(tiny_file, "full", 8, training=False, seed=0, drop_remainder=False, with_meta=True)
    return [({k: v.numpy() for k, v in f.items()}, label.numpy()) for f, label in ds]


def _keys(variant: str, role: str) -> list[str]:
    return [sources.band_ref(r)[1].tfrecord_key for r in schema.variant_inputs(variant)[role]]


def _concat(batches: list[tuple[dict, np.ndarray]], key: str) -> np.ndarray:
    return np.concatenate([f[key] for f, _ in batches])


def test_shapes_dtypes_and_count(full_eval):
    features, label = full_eval[0]
    assert features["high_res"].shape == (8, 256, 256, 10) and features["high_res"].dtype == np.float32
    assert features["low_res"].shape == (8, 16, 16, 4) and features["low_res"].dtype == np.float32
    assert features["coarse"].shape == (8, 2) and features["coarse"].dtype == np.float32
    assert label.dtype == np.float32
    # 24 written, example 17 has no label: 23, in file order (eval mode).
    assert sum(len(lb) for _, lb in full_eval) == tiny.N_EXAMPLES - 1


def test_band_order_and_centre_crop_values(full_eval, examples):
    features, _ = full_eval[0]
    ex0 = examples[0]
    hr_keys = _keys("full", "high_res")
    assert hr_keys[:4] == ["sentinel_1_VV", "sentinel_1_VH", "sentinel_1_angle", "sentinel_2_B4"]
    for c, key in enumerate(hr_keys):
        # the whole window is the centre 256 x 256 of the 512 x 512 image, exactly
        np.testing.assert_array_equal(features["high_res"][0, ..., c], ex0[key][128:384, 128:384].astype(np.float32))
    assert features["high_res"][0, 128, 128, 0] == ex0["sentinel_1_VV"][256, 256]
    np.testing.assert_array_equal(features["coarse"][0], [ex0["smap_sm"], ex0["gldas_sm"]])


def test_low_res_is_block_mean_of_centre(full_eval, examples):
    features, _ = full_eval[0]
    for c, key in enumerate(_keys("full", "low_res")):
        centre = examples[0][key][128:384, 128:384].astype(np.float64)
        expected = centre.reshape(16, 16, 16, 16).mean(axis=(1, 3))
        np.testing.assert_allclose(features["low_res"][0, ..., c], expected, rtol=1e-6)
    assert _keys("full", "low_res")[3] == "soil_grids_bd_bdod_0-5cm_mean"


def test_label_fallback_and_missing_label_drop(full_eval, examples):
    # Recover the example index from the timestamp (one day apart).
    index = np.rint((_concat(full_eval, "timestamp").astype(np.float64) - tiny.T0_MS) / tiny.DAY_MS).astype(int)
    labels = np.concatenate([lb for _, lb in full_eval])
    assert tiny.NO_LABEL not in index
    by_index = dict(zip(index.tolist(), labels.tolist(), strict=True))
    for i in (tiny.ONLY_SM_5_5, tiny.NAN_SM_0_5):
        assert by_index[i] == pytest.approx(np.float32(examples[i]["sm_5_5"]), abs=0)
    assert by_index[0] == pytest.approx(np.float32(examples[0]["sm_0_5"]), abs=0)
    sensors = _concat(full_eval, "sensor_id")
    assert sensors[0].decode() == examples[0]["sensor_id"]


def test_texture_meta_is_decoded_centre_mean(full_eval, examples):
    got = full_eval[0][0]["sand_silt_clay_gkg"][0]
    keys = [sources.band_ref(r)[1].tfrecord_key for r in data.TEXTURE_REFS]
    expected = [examples[0][k][240:272, 240:272].mean() / 255.0 * 800.0 for k in keys]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_writer_reader_round_trip_exact(tiny_file, examples):
    records = list(tf.data.TFRecordDataset(tiny_file, compression_type="GZIP").as_numpy_iterator())
    assert len(records) == tiny.N_EXAMPLES
    for i in (0, tiny.ONLY_SM_5_5, tiny.NAN_SM_0_5, tiny.NO_LABEL):
        fields = tf.train.Example.FromString(records[i]).features.feature
        for key, value in examples[i].items():
            if value is None:
                assert key not in fields
            elif key in data.IMAGE_KEYS:
                np.testing.assert_array_equal(np.array(fields[key].int64_list.value).reshape(512, 512), value)
            elif key in data.COARSE_KEYS:
                assert list(fields[key].int64_list.value) == [value]
            elif key == "sensor_id":
                assert fields[key].bytes_list.value[0].decode() == value
            else:
                got = fields[key].float_list.value[0]
                assert (math.isnan(got) and math.isnan(value)) or got == np.float32(value)


def test_serialize_rejects_values_outside_the_encoding():
    with pytest.raises(ValueError, match="0-255"):
        data.serialize_example({"sentinel_1_VV": np.full((512, 512), 300)})
    with pytest.raises(ValueError, match="shape"):
        data.serialize_example({"sentinel_1_VV": np.zeros((256, 256))})
    with pytest.raises(ValueError, match="non-finite"):
        data.serialize_example({"smap_sm": math.nan})


def test_training_stream_is_deterministic_and_static(tiny_file):
    def first_batches(seed: int) -> list[np.ndarray]:
        ds = data.make_dataset(tiny_file, "s1_dem_s2_soilgrids", 4, training=True, seed=seed)
        assert ds.element_spec[0]["high_res"].shape == (4, 256, 256, 10)
        assert ds.element_spec[0]["low_res"].shape == (4, 16, 16, 4)
        assert ds.element_spec[1].shape == (4,)
        return [np.concatenate([f["high_res"].numpy().ravel()[:4096], lb.numpy()]) for f, lb in ds.take(2)]

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_training_repeats_past_one_epoch(tiny_file):
    ds = data.make_dataset(tiny_file, "smap_gldas", 16, training=True, seed=1)
    labels = np.concatenate([lb.numpy() for _, lb in ds.take(3)])  # 48 > 23 examples
    assert labels.shape == (48,) and np.all(np.isfinite(labels))


def test_missing_fields_are_named(tmp_path, examples):
    path = str(tmp_path / "coarse_only.tfrecord")
    keep = ("smap_sm", "gldas_sm", "sensor_id", "timestamp", "center_lat", "center_long", "sm_0_5")
    data.write_examples(path, [{k: e[k] for k in keep} for e in examples[:4]], compress=False)
    with pytest.raises(ValueError, match="sentinel_1_VV"):
        data.make_dataset(path, "s1_dem", 2, training=False, seed=0)
    ds = data.make_dataset(path, "smap_gldas", 2, training=False, seed=0, with_meta=True)
    features, label = next(iter(ds))
    assert "sand_silt_clay_gkg" not in features
    np.testing.assert_array_equal(features["coarse"][1], [examples[1]["smap_sm"], examples[1]["gldas_sm"]])
    assert label[1] == np.float32(examples[1]["sm_0_5"])
