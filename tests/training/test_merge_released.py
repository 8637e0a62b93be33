"""Merging the released partial dataset with ISMN files (training/merge_released.py), DirectRunner.

A tiny released-schema shard is written here: records without labels whose times lie 2 min
(matched) and 5 min (not matched) before real hourly readings of the ismn sdist's station files
(tests/data/ismn_testdata.py), one record of a station missing from the download, and one already
labelled. Expected labels come from an independent parse of the raw ``.stm`` files.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam")
tf = pytest.importorskip("tensorflow")

from apache_beam.metrics.metric import MetricsFilter  # noqa: E402

from training import data  # noqa: E402
from training import merge_released as mr  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ismn_testdata", ROOT / "tests" / "data" / "ismn_testdata.py")
td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(td)


def counter(result: object, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(c.committed if c.committed is not None else c.attempted for c in found)


def record_time(reading_s: int, before_s: int, window: tuple[int, int]) -> float | None:
    """The float32 timestamp (ms) ``before_s`` before a reading, if its true offset stays in ``window`` (s)."""
    ts = float(np.float32((reading_s - before_s) * 1000.0))  # the schema stores float32: ~2 min resolution
    offset_s = reading_s - ts / 1000.0
    return ts if window[0] <= offset_s <= window[1] else None


def pick(station: dict, before_s: int, window: tuple[int, int], skip: int = 0) -> tuple[float, float]:
    """(record time, reading value) for the first suitable reading after ``skip`` readings."""
    for t, v in zip(station["times"][skip:], station["values"][skip:]):
        ts = record_time(int(t), before_s, window)
        neighbours = np.abs(station["times"] * 1000.0 - ts) <= 180_000.0  # readings within +-3 min
        if ts is not None and neighbours.sum() == (1 if before_s < 180 else 0):
            return ts, float(v)
    raise AssertionError("no suitable reading")


def example(sensor_id: str, ts: float, lat: float, lon: float, **labels: float) -> dict:
    vv = np.full((data.RELEASED_IMAGE_PX, data.RELEASED_IMAGE_PX), 7, dtype=np.int64)
    return {"sentinel_1_VV": vv, "smap_sm": 100, "gldas_sm": 50, "center_lat": lat, "center_long": lon,
            "timestamp": ts, "sensor_id": sensor_id, **labels}


def test_merge_with_real_ismn_files(tmp_path: Path) -> None:
    try:
        data_dir = td.ismn_test_data()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    archive = tmp_path / "ismn.zip"  # ismn writes its metadata beside the archive: a private copy
    shutil.copy(data_dir / td.MULTINETWORK_ZIP, archive)
    cst01 = td.read_station(archive, "CST-01")  # header+values: 0.05-0.05 m, hourly
    aamu = td.read_station(archive, "AAMU-jtg")

    t_a, v_a = pick(cst01, 120, (60, 170))  # reading ~2 min after the record: matched
    t_b, _ = pick(cst01, 300, (200, 400), skip=100)  # ~5 min after: outside +-3 min, the previous ~55 min before
    t_c, v_c = pick(aamu, 120, (60, 170), skip=50)
    records = [
        # released ids spell MAQU stations with "_" (the raw headers do too); the key drops the difference
        ("matched", example("MAQU__CST_01__ECH20-EC-TM", t_a, cst01["lat"], cst01["lon"]), v_a),
        ("no_reading", example("MAQU__CST-01__ECH20-EC-TM", t_b, cst01["lat"], cst01["lon"]), None),
        ("matched", example("SCAN__AAMU-jtg__Hydraprobe-Analog-(2.5-Volt)", t_c, aamu["lat"], aamu["lon"]), v_c),
        ("no_station", example("FR_Aqui__fraye__ThetaProbe-ML2X", t_a, 44.0, -0.6), None),
        ("labelled", example("MAQU__CST-02__ECH20-EC-TM", t_b, 33.67, 102.13, sm_5_5=0.321), 0.321),
    ]
    released = tmp_path / "released"
    released.mkdir()
    assert data.write_examples(str(released / "data-00000-of-00001.tfrecord.gz"), [r[1] for r in records]) == 5

    out = tmp_path / "out"
    result = mr.run(["--released", str(released / "*.tfrecord.gz"), "--ismn", str(archive), "--out", str(out),
                     "--runner", "DirectRunner"])
    got = {name: counter(result, name) for name in ("records_read", "records_matched", "records_already_labelled",
                                                    "records_no_station", "records_no_reading",
                                                    "records_ambiguous", "records_written")}
    print("counters:", got)
    assert got == {"records_read": 5, "records_matched": 2, "records_already_labelled": 1, "records_no_station": 1,
                   "records_no_reading": 1, "records_ambiguous": 0, "records_written": 3}

    merged = {}
    for f in sorted(out.glob("*.tfrecord.gz")):
        for raw in tf.data.TFRecordDataset(str(f), compression_type="GZIP"):
            ex = tf.train.Example.FromString(raw.numpy())
            feats = ex.features.feature
            sid = feats["sensor_id"].bytes_list.value[0].decode()
            merged[sid] = feats
            assert list(feats["sentinel_1_VV"].int64_list.value[:3]) == [7, 7, 7]  # images pass unchanged
    assert set(merged) == {"MAQU__CST_01__ECH20-EC-TM", "SCAN__AAMU-jtg__Hydraprobe-Analog-(2.5-Volt)",
                           "MAQU__CST-02__ECH20-EC-TM"}
    assert merged["MAQU__CST_01__ECH20-EC-TM"]["sm_0_5"].float_list.value[0] == pytest.approx(v_a, abs=1e-6)
    assert merged["SCAN__AAMU-jtg__Hydraprobe-Analog-(2.5-Volt)"]["sm_0_5"].float_list.value[0] == pytest.approx(
        v_c, abs=1e-6)
    labelled = merged["MAQU__CST-02__ECH20-EC-TM"]
    assert "sm_0_5" not in labelled and labelled["sm_5_5"].float_list.value[0] == pytest.approx(0.321, abs=1e-6)
    # the merged shards read with the training reader (label sm_0_5, else sm_5_5)
    labels = sorted(float(y.numpy()[0]) for _, y in data.make_dataset(
        str(out / "*.tfrecord.gz"), "smap_gldas", 1, training=False, seed=0, drop_remainder=False))
    assert labels == pytest.approx(sorted([v_a, v_c, 0.321]), abs=1e-6)


def test_station_key_joins_spellings() -> None:
    assert mr.station_key("MAQU", "CST_01") == mr.station_key("MAQU", "CST-01") == "MAQU/cst01"
    assert mr.station_key("SCAN", "AdamsRanch#1") == "SCAN/adamsranch1"
