"""The dataset pipeline (training/make_dataset.py) on real ISMN station files and a fake Earth Engine.

The ISMN files come from the ismn sdist (tests/data/ismn_testdata.py); every expected count is
computed from an independent parse of the raw ``.stm`` files. Earth Engine is the local fake
(tests/data/ee_fake_server.py) with two scripted Sentinel-1 scenes at the times of real MAQU
readings, relocated onto the sample scene so every download holds pixels. DirectRunner only.
"""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ee = pytest.importorskip("ee")
beam = pytest.importorskip("apache_beam")
tf = pytest.importorskip("tensorflow")

from apache_beam.metrics.metric import MetricsFilter  # noqa: E402

from training import data  # noqa: E402
from training import make_dataset as md  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


td = _load("ismn_testdata")
fake_module = _load("ee_fake_server")
HOUR_MS = 3_600_000
#: The Sentinel-1 bound of Table 5 (ms): a reading pairs with the latest scene in [t - 1 h, t].
S1_BOUND_MS = HOUR_MS


def counter(result: object, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(c.committed if c.committed is not None else c.attempted for c in found)


def raw_sensors(archives: list[Path]) -> list[dict]:
    """Every soil-moisture file of the archives, parsed independently of the ismn package, with ms times."""
    out = []
    for archive in archives:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if "_sm_" in name and name.endswith(".stm"):
                    st = td.parse_stm(zf.read(name).decode("utf-8"))
                    st["times_ms"] = st["times"] * 1000
                    parts = Path(name).name.split("_")  # NET_NET_STATION_sm_FROM_TO_INSTRUMENT_START_END.stm
                    instrument = "_".join(parts[parts.index("sm") + 3:-2])
                    st["station"] = Path(name).parts[-2]  # the folder name, as ismn names it (headers may differ)
                    st["sensor_id"] = f"{st['network']}__{st['station']}__{instrument}"
                    out.append(st)
    return out


def top_layer(st: dict) -> bool:
    # the paper's depth tags "0-5 cm" and "5-5 cm", written out from the raw headers
    return (st["depth_from"] == 0.0 and st["depth_to"] <= 0.05) or st["depth_from"] == st["depth_to"] == 0.05


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    try:
        data_dir = td.ismn_test_data()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("ismn")  # ismn writes its metadata beside the archive: a private copy
    out = []
    for rel in (td.MULTINETWORK_ZIP, td.RSMN_ZIP):
        dst = folder / Path(rel).name
        shutil.copy(data_dir / rel, dst)
        out.append(dst)
    return out


@pytest.fixture(scope="module")
def fake():
    server = fake_module.FakeEarthEngine()
    server.relocate = True
    server.start()
    saved = ee.deprecation._FetchDataCatalogStac
    ee.deprecation._FetchDataCatalogStac = lambda: {}  # the deprecated-assets list lives on the internet
    yield server
    ee.deprecation._FetchDataCatalogStac = saved
    ee.Reset()
    server.stop()


def scenario(sensors: list[dict]) -> dict:
    """Two scenes at real MAQU kept readings: scene A at a CST-01 reading t0 with a kept reading at t0 + 1 h too
    (two readings pair with it), scene B 30 min before a CST-02 kept reading t1, 3-48 h later; the date window
    around them."""
    def kept_times(station: str) -> np.ndarray:
        st = next(s for s in sensors if s["station"] == station)
        return np.sort(st["times_ms"][np.isin(st["flags"], td.KEPT_FLAGS)])

    kept1, kept2 = kept_times("CST-01"), kept_times("CST-02")
    set1 = set(kept1.tolist())
    t0, t1 = next((int(t), int(later[0])) for t in kept1 if t + HOUR_MS in set1
                  for later in [kept2[(kept2 >= t + 3 * HOUR_MS) & (kept2 <= t + 48 * HOUR_MS)]] if later.size)
    scenes = [(t0, "20200425"), (t1 - HOUR_MS // 2, "20201010")]
    return {"scenes": scenes, "start": t0 - 2 * HOUR_MS, "end": t1 + 2 * HOUR_MS}


def expected_counts(sensors: list[dict], scen: dict, flags: tuple[str, ...]) -> dict:
    read = sum(len(s["times"]) for s in sensors)
    kept = []  # (sensor_id, time_ms, value)
    for s in sensors:
        if not top_layer(s):
            continue
        ok = np.isin(s["flags"], flags) & np.isfinite(s["values"])
        kept += [(s["sensor_id"], int(t), float(v)) for t, v in zip(s["times_ms"][ok], s["values"][ok])]
    window = [k for k in kept if scen["start"] <= k[1] < scen["end"]]
    pairs: dict[tuple[str, int], list] = {}
    no_image = 0
    for sid, t, v in window:
        scenes = [ts for ts, _ in scen["scenes"] if t - S1_BOUND_MS <= ts <= t]
        if not scenes:
            no_image += 1
            continue
        pairs.setdefault((sid, max(scenes)), []).append((t, v))
    nearest = {key: min(rows, key=lambda r: (abs(r[0] - key[1]), r[0])) for key, rows in pairs.items()}
    return {"readings_read": read, "readings_kept": len(kept), "readings_outside_dates": len(kept) - len(window),
            "dropped_no_image": no_image, "failed_lookups": 0,
            "dropped_not_nearest": sum(len(r) for r in pairs.values()) - len(pairs),
            "examples_written": len(pairs), "nearest": nearest}


def iso(ms: int) -> str:
    return td.iso(ms // 1000)


def test_split_is_deterministic_and_60_20_20() -> None:
    ids = [f"NET{i % 37}__station-{i}__sensor-{i % 5}" for i in range(10_000)]
    splits = Counter(md.split_of(i) for i in ids)
    for name, fraction in md.SPLITS:
        assert abs(splits[name] / len(ids) - fraction) <= 0.02, splits
    assert [md.split_of(i) for i in ids[:50]] == [md.split_of(i) for i in ids[:50]]
    assert md.split_of("MAQU__CST-01__ECH20-EC-TM") == md.split_of("MAQU__CST-01__ECH20-EC-TM")


def test_flags_and_depths() -> None:
    assert md.parse_flags('G,C02,C03,"C02,C03"') == ("G", "C02", "C03", "C02,C03")
    assert md.parse_flags("G") == ("G",)
    assert md.depth_kept(0.0, 0.05) and md.depth_kept(0.05, 0.05) and md.depth_kept(0.0, 0.02)
    assert not md.depth_kept(0.0, 0.1) and not md.depth_kept(0.05, 0.1) and not md.depth_kept(0.1, 0.1)


def test_window_is_512_at_10m_centred_on_the_point() -> None:
    area = md.window_area(102.1333, 33.8833)
    assert area.crs == "EPSG:32648"
    b = area.bounds
    assert (b[2] - b[0], b[3] - b[1]) == (5120.0, 5120.0) and b[0] % 10 == 0 and b[3] % 10 == 0
    from smqgis.core.grid import bounds_in

    x, y = bounds_in("EPSG:4326", (102.1333, 33.8833, 102.1333, 33.8833), area.crs)[:2]
    assert int((x - b[0]) // 10) == 256 and int((b[3] - y) // 10) == 256


def test_pipeline_on_real_ismn_files(fake, archives: list[Path], tmp_path: Path) -> None:
    sensors = raw_sensors(archives)
    scen = scenario(sensors)
    fake.scenes = list(scen["scenes"])
    want = expected_counts(sensors, scen, td.KEPT_FLAGS)
    assert 0 < want["examples_written"] and want["dropped_not_nearest"] >= 1  # the scenario tests both
    out = tmp_path / "out"
    result = md.run(["--ismn", str(archives[0]), "--ismn", str(archives[1]), "--out", str(out),
                     "--ee-url", fake.url, "--project", "smqgis-fake", "--start", iso(scen["start"]),
                     "--end", iso(scen["end"]), "--runner", "DirectRunner"])
    got = {k: counter(result, k) for k in want if k != "nearest"}
    print("counters:", got)
    assert got == {k: v for k, v in want.items() if k != "nearest"}
    assert counter(result, "dropped_coarse_nodata") == 0 and counter(result, "failed_fetches") == 0
    split_counts = {s: counter(result, f"examples_written_{s}") for s, _ in md.SPLITS}
    assert sum(split_counts.values()) == want["examples_written"]

    # every record parses with the training reader; one per (sensor, scene), with the nearest reading's label
    shards = sorted(str(p) for p in out.glob("*.tfrecord.gz"))
    assert {Path(f).name.split("-")[0] for f in shards} == {s for s, _ in md.SPLITS}
    # a split without examples gets one empty shard
    files = [f for f in shards if sum(1 for _ in tf.data.TFRecordDataset(f, compression_type="GZIP"))]
    assert len(files) == sum(1 for n in split_counts.values() if n)
    assert data.first_example_keys(files[0])["sentinel_1_VV"] == "int64_list"
    seen: dict[str, set[str]] = {}
    rows = []
    for f in files:
        split = Path(f).name.split("-")[0]
        ds = data.make_dataset(f, "full", 1, training=False, seed=0, drop_remainder=False, with_meta=True)
        for feats, label in ds:
            sid = feats["sensor_id"].numpy()[0].decode()
            seen.setdefault(sid, set()).add(split)
            rows.append((sid, int(round(float(feats["timestamp"].numpy()[0]))), float(label.numpy()[0])))
            high = feats["high_res"].numpy()
            assert high.shape == (1, 256, 256, 10) and high.std() > 0  # relocated sample pixels, not nodata
            assert 0 <= feats["coarse"].numpy().min() and feats["coarse"].numpy().max() <= 255
    assert len(rows) == want["examples_written"]
    assert all(len(splits) == 1 and md.split_of(sid) in splits for sid, splits in seen.items())
    expected_rows = sorted((sid, t, v) for (sid, _), (t, v) in want["nearest"].items())
    got_rows = sorted(rows)
    assert [r[0] for r in got_rows] == [r[0] for r in expected_rows]
    for (_, t_got, v_got), (_, t_want, v_want) in zip(got_rows, expected_rows):
        assert abs(t_got - t_want) <= 2 * 60_000  # timestamps are float32 in the schema: ~2 min
        assert v_got == pytest.approx(v_want, abs=1e-6)


def test_pipeline_flag_set_g_only(fake, archives: list[Path], tmp_path: Path) -> None:
    """Only "G" kept: the count equals the raw files' G readings of top-layer sensors; no lookups (no dates)."""
    sensors = raw_sensors(archives)
    want = sum(int(np.sum(s["flags"] == "G")) for s in sensors if top_layer(s))
    assert want == 172  # RSMN Adamclisi 0-5 cm
    result = md.run(["--ismn", str(archives[0]), "--ismn", str(archives[1]), "--out", str(tmp_path / "g"),
                     "--flags", "G", "--ee-url", fake.url, "--project", "smqgis-fake",
                     "--start", "2000-01-01T00:00:00Z", "--end", "2000-01-02T00:00:00Z"])
    assert counter(result, "readings_kept") == want
    assert counter(result, "readings_outside_dates") == want
    assert counter(result, "examples_written") == 0


def test_failed_lookups_are_counted_not_fatal(fake, archives: list[Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sensors = raw_sensors(archives)
    scen = scenario(sensors)
    fake.scenes = list(scen["scenes"])
    want = expected_counts(sensors, scen, td.KEPT_FLAGS)
    in_window = want["readings_kept"] - want["readings_outside_dates"]

    def broken(request, anchor="sentinel1"):
        raise RuntimeError("connection reset")

    monkeypatch.setattr(md, "lookup", broken)  # DirectRunner runs the DoFns in this process
    result = md.run(["--ismn", str(archives[0]), "--out", str(tmp_path / "f"), "--ee-url", fake.url,
                     "--project", "smqgis-fake", "--start", iso(scen["start"]), "--end", iso(scen["end"])])
    assert counter(result, "failed_lookups") == in_window > 0
    assert counter(result, "dropped_no_image") == 0 and counter(result, "examples_written") == 0


def test_smap_anchored_join_keeps_one_reading_per_smap_image(fake, archives: list[Path], tmp_path: Path) -> None:
    """Table 20: Sentinel-1 within 7 days of the reading; one example per sensor and SMAP image."""
    sensors = raw_sensors(archives)
    scen = scenario(sensors)
    fake.scenes = list(scen["scenes"])
    want = expected_counts(sensors, scen, td.KEPT_FLAGS)
    window_days = md.SMAP_ANCHORED_S1_DAYS * 86_400_000
    pairs = set()
    for s in sensors:
        ok = np.isin(s["flags"], td.KEPT_FLAGS) & (s["times_ms"] >= scen["start"]) & (s["times_ms"] < scen["end"])
        for t in s["times_ms"][ok & top_layer(s)]:
            chosen = [ts for ts, _ in scen["scenes"] if t - window_days <= ts <= t]
            if chosen:  # the fake serves each scene's SMAP with the scene (same id for every reading)
                pairs.add((s["sensor_id"], max(chosen)))
    result = md.run(["--ismn", str(archives[0]), "--out", str(tmp_path / "s"), "--ee-url", fake.url,
                     "--project", "smqgis-fake", "--start", iso(scen["start"]), "--end", iso(scen["end"]),
                     "--anchor", "smap"])
    in_window = want["readings_kept"] - want["readings_outside_dates"]
    assert counter(result, "examples_written") == len(pairs) > 0
    assert counter(result, "dropped_not_nearest") + counter(result, "dropped_no_image") == in_window - len(pairs)
