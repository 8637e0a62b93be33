"""Tests of smqgis/core/validation.py on real ISMN station files and on CSVs with known answers.

Real ISMN files come from the ismn package's source distribution (fetched into build/ at test
time, never committed; see tests/data/ismn_testdata.py). The maps are built by the tests to
hold known values at the stations. The cross-check of the metrics against pytesmo runs in the
training environment (tests/training/test_validation_pytesmo.py), where pytesmo is installed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from smqgis.core import metrics, validation
from smqgis.core.validation import ValidationInputError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ismn_testdata", ROOT / "tests" / "data" / "ismn_testdata.py")
td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(td)


@pytest.fixture(scope="module")
def ismn_dir() -> Path:
    try:
        return td.ismn_test_data()
    except RuntimeError as exc:  # no network: the real-data tests cannot run here
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def case(ismn_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return td.multinetwork_case(ismn_dir, tmp_path_factory.mktemp("maps"))


# ----------------------------------------------------------------------------- ISMN reader
def test_ismn_reader_keeps_the_papers_depths_and_flags(ismn_dir: Path) -> None:
    archive = ismn_dir / td.MULTINETWORK_ZIP
    before = sorted(os.listdir(archive.parent))
    data = validation.read_ismn(str(archive))
    assert sorted(os.listdir(archive.parent)) == before  # ismn's metadata cache went elsewhere
    got = {s.sensor_id: s for s in data.sensors}
    # SOILSCAPE, SCAN Abrams and AdamsRanch#1 carry only U and D flags: nothing kept
    assert sorted(got) == ["MAQU__CST-01__ECH20-EC-TM", "MAQU__CST-02__ECH20-EC-TM",
                           "SCAN__AAMU-jtg__Hydraprobe-Analog-(2.5-Volt)"]
    for station, sid in (("CST-01", "MAQU__CST-01__ECH20-EC-TM"), ("CST-02", "MAQU__CST-02__ECH20-EC-TM"),
                         ("AAMU-jtg", "SCAN__AAMU-jtg__Hydraprobe-Analog-(2.5-Volt)")):
        raw = td.read_station(archive, station)
        times, values = td.kept(raw)
        assert set(np.unique(raw["flags"])) - set(td.KEPT_FLAGS)  # the file does hold dropped flags
        np.testing.assert_array_equal(got[sid].times_s, times)
        np.testing.assert_array_equal(got[sid].values, values)
        assert (got[sid].lon, got[sid].lat) == (raw["lon"], raw["lat"])
    assert "C02,C03" in set(td.read_station(archive, "CST-02")["flags"][np.isin(
        td.read_station(archive, "CST-02")["times"], got["MAQU__CST-02__ECH20-EC-TM"].times_s)])
    assert data.n_dropped_flag == data.n_read - sum(s.times_s.size for s in data.sensors)


def test_ismn_reader_drops_other_depths_and_keeps_0_5_cm(ismn_dir: Path) -> None:
    # COSMOS probes measure 0-19 cm and 0-21 cm: not the paper's 0-5 / 5-5 cm -> nothing left
    with pytest.raises(ValidationInputError) as err:
        validation.read_ismn(str(ismn_dir / "zip_archives" / "header" /
                                 "Data_seperate_files_header_20170810_20180809.zip"))
    assert err.value.parameter == "INSITU" and "0-5 cm" in str(err.value)
    rsmn = validation.read_ismn(str(ismn_dir / td.RSMN_ZIP))  # a 0-5 cm sensor
    raw = td.read_station(ismn_dir / td.RSMN_ZIP, "Adamclisi")
    assert raw["depth_from"] == 0.0 and raw["depth_to"] == 0.05
    assert [s.depth_cm for s in rsmn.sensors] == ["0-5 cm"]
    np.testing.assert_array_equal(rsmn.sensors[0].times_s, td.kept(raw)[0])


def test_ismn_folder_that_is_not_an_archive_names_the_parameter(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not ISMN")
    with pytest.raises(ValidationInputError) as err:
        validation.read_ismn(str(tmp_path))
    assert err.value.parameter == "INSITU"


# ----------------------------------------------------------------------------- real-data validation
def test_real_ismn_pairs_and_metrics(case: dict) -> None:
    result = validation.validate_maps(case["maps"], str(case["archive"]))
    p = result.pairs
    for sid, rows in case["expected"].items():
        sel = p.sensor_id == sid
        order = np.argsort(p.map_time_s[sel])
        anchors, t_insitu, obs, est = (np.array(c) for c in zip(*rows))
        np.testing.assert_array_equal(p.map_time_s[sel][order], anchors)
        np.testing.assert_array_equal(p.insitu_time_s[sel][order], t_insitu)  # the nearest kept reading
        np.testing.assert_array_equal(p.insitu[sel][order], obs)
        np.testing.assert_array_equal(p.estimate[sel][order], est)  # the value at the station's pixel
        assert np.all(np.abs(p.insitu_time_s[sel] - p.map_time_s[sel]) <= 3600)
        # the metrics module's numbers on exactly these pairs (pytesmo agreement: tests/training)
        row = next(r for r in result.sensors if r["sensor_id"] == sid)
        assert row["n"] == len(rows)
        assert row["ubrmse"] == metrics.ubrmse(est, obs) and row["r"] == metrics.pearson_r(est, obs)
        assert row["rmse"] == metrics.rmse(est, obs) and row["bias"] == metrics.bias(est, obs)
    # the gap map: no CST-01 pair (no kept reading within 1 h) although the station's pixel is valid
    gap = p.map_time_s == case["gap_anchor"]
    assert "MAQU__CST-01__ECH20-EC-TM" not in set(p.sensor_id[gap])
    # >= 13 points: only CST-01 (16) enters the average; CST-02 (3) and AAMU-jtg (5) are reported, marked
    marks = {r["sensor_id"]: (r["n"], r["in_average"]) for r in result.sensors}
    assert marks["MAQU__CST-01__ECH20-EC-TM"] == (16, True)
    assert marks["MAQU__CST-02__ECH20-EC-TM"][1] is False and marks["MAQU__CST-02__ECH20-EC-TM"][0] < 13
    assert marks["SCAN__AAMU-jtg__Hydraprobe-Analog-(2.5-Volt)"] == (5, False)
    cst01 = next(r for r in result.sensors if r["sensor_id"] == "MAQU__CST-01__ECH20-EC-TM")
    assert result.average["n_sensors"] == 1 and result.average["ubrmse"] == cst01["ubrmse"]
    assert result.smap_average is None  # the test maps name no SMAP input


# ----------------------------------------------------------------------------- CSV cases
LON, LAT = -97.9, 35.7
WEST, NORTH, SIZE = -98.0, 36.0, 24  # 1/64 deg pixels: the sensor is in column 6, row 19 (not on an edge)


def _pixel(lon: float, lat: float) -> tuple[int, int]:
    """(row, col) of the test maps' pixel holding a point (pixel edges are exact binary numbers)."""
    return int(np.floor((NORTH - lat) / td.MAP_RES_DEG)), int(np.floor((lon - WEST) / td.MAP_RES_DEG))


def _csv(path: Path, rows: list[tuple], header: str = "sensor_id,lon,lat,time_utc,sm_m3m3,flag") -> str:
    path.write_text(header + "\n" + "\n".join(",".join(str(c) for c in r) for r in rows) + "\n")
    return str(path)


def test_nearest_reading_within_the_tolerance_and_none_outside(tmp_path: Path) -> None:
    anchor = "2020-04-25T00:30:00Z"
    rows = [("S1", LON, LAT, "2020-04-24T23:20:00Z", 0.10, "G"),   # 70 min before: outside 1 h
            ("S1", LON, LAT, "2020-04-25T00:05:00Z", 0.20, "D01"),  # 25 min before but flagged: dropped
            ("S1", LON, LAT, "2020-04-25T01:10:00Z", 0.30, "C03"),  # 40 min after: the nearest kept
            ("S1", LON, LAT, "2020-04-25T01:20:00Z", 0.40, "G"),    # 50 min after
            ("S2", LON, LAT, "2020-04-25T01:31:00Z", 0.15, "G"),    # 61 min after: outside
            ("S2", LON, LAT, "2020-04-24T23:29:00Z", 0.16, "C02,C03")]  # 61 min before: outside
    insitu = _csv(tmp_path / "s.csv", rows)
    m = td.write_map(tmp_path / "m.tif", WEST, NORTH, SIZE, SIZE, anchor, [(LON, LAT, 0.33)])
    result = validation.validate_maps([str(m)], insitu)
    assert list(result.pairs.sensor_id) == ["S1"]
    assert result.pairs.insitu[0] == 0.30 and result.pairs.estimate[0] == np.float32(0.33)
    assert validation.iso_utc(result.pairs.insitu_time_s[0]) == "2020-04-25T01:10:00Z"
    assert any("no kept reading within 1 h" in w for w in result.warnings)
    wide = validation.validate_maps([str(m)], insitu, tolerance_s=2 * 3600)
    s2 = wide.pairs.insitu[wide.pairs.sensor_id == "S2"]
    assert list(s2) == [0.16]  # equidistant readings: the earlier wins
    assert list(wide.pairs.insitu[wide.pairs.sensor_id == "S1"]) == [0.30]


def test_nearest_within_tie_and_bounds() -> None:
    t = np.array([0, 100, 200, 400], dtype=np.int64)
    assert validation.nearest_within(t, 150, 60) == 1  # tie 100 / 200: the earlier
    assert validation.nearest_within(t, 300, 99) is None
    assert validation.nearest_within(t, 300, 100) == 2  # the bound is inclusive
    assert validation.nearest_within(t, 1000, 600) == 3
    assert validation.nearest_within(np.array([], dtype=np.int64), 0, 10) is None


def test_nodata_and_edge_sensors_give_no_pair(tmp_path: Path) -> None:
    anchor = "2020-04-25T00:30:00Z"
    east_edge_lon = WEST + SIZE * td.MAP_RES_DEG  # the map's right edge: outside (half-open pixels)
    rows = [("ON_NODATA", LON, LAT, "2020-04-25T00:30:00Z", 0.2, "G"),
            ("ON_EDGE", east_edge_lon, LAT, "2020-04-25T00:30:00Z", 0.2, "G"),
            ("WEST_EDGE", WEST, LAT, "2020-04-25T00:30:00Z", 0.2, "G"),
            ("FAR", 10.0, 50.0, "2020-04-25T00:30:00Z", 0.2, "G")]
    m = td.write_map(tmp_path / "m.tif", WEST, NORTH, SIZE, SIZE, anchor, [(LON, LAT, td.NODATA), (WEST, LAT, 0.21)])
    result = validation.validate_maps([str(m)], _csv(tmp_path / "s.csv", rows))
    assert list(result.pairs.sensor_id) == ["WEST_EDGE"]  # on the left edge: inside its pixel
    assert result.pairs.estimate[0] == np.float32(0.21)
    assert any("2 of 4 sensors lie outside every map" in w for w in result.warnings)
    assert any("1 sensor-date(s) fall on nodata" in w for w in result.warnings)


def test_smap_input_from_provenance_is_scored_beside_the_map(tmp_path: Path) -> None:
    smap = tmp_path / "smap.tif"  # SMAP ssm in mm over 5 cm, 0.1 deg, holding 12.5 mm -> 0.25 m3/m3
    with rasterio.open(smap, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(-98.1, 35.9, 0.1, 0.1)) as ds:
        ds.write(np.full((1, 4, 4), 12.5, dtype=np.float32))
    rows, maps = [], []
    for k in range(14):
        t = f"2020-05-{k + 1:02d}T00:30:00Z"
        obs = 0.2 + 0.01 * k
        rows.append(("S", LON, LAT, t, round(obs, 4), "G"))
        maps.append(str(td.write_map(tmp_path / f"m{k}.tif", WEST, NORTH, SIZE, SIZE, t, [(LON, LAT, obs + 0.02)],
                                     smap_path=smap)))
    result = validation.validate_maps(maps, _csv(tmp_path / "s.csv", rows))
    np.testing.assert_allclose(result.pairs.smap, 0.25)
    row = result.sensors[0]
    obs = result.pairs.insitu
    assert row["smap_n"] == 14 and row["smap_bias"] == pytest.approx(np.mean(0.25 - obs), abs=1e-12)
    assert row["smap_rmse"] == pytest.approx(np.sqrt(np.mean((0.25 - obs) ** 2)), abs=1e-12)
    assert np.isnan(row["smap_r"])  # a constant SMAP series has no correlation
    assert row["bias"] == pytest.approx(0.02, abs=1e-6) and row["in_average"]
    assert result.smap_average["n_sensors"] == 1 and result.smap_average["rmse"] == row["smap_rmse"]


def test_time_series_stack_and_stratification(tmp_path: Path) -> None:
    dates = [f"2020-06-{d:02d}T12:00:00Z" for d in range(1, 6)]
    stack = tmp_path / "stack.tif"
    a, b = (LON, LAT), (LON + 0.02, LAT)
    data = np.full((len(dates), SIZE, SIZE), 0.3, dtype=np.float32)
    assert _pixel(*a) != _pixel(*b)
    for k in range(len(dates)):
        data[(k, *_pixel(*a))] = 0.1 + 0.05 * k
        data[(k, *_pixel(*b))] = 0.4 - 0.05 * k
    with rasterio.open(stack, "w", driver="GTiff", width=SIZE, height=SIZE, count=len(dates), dtype="float32",
                       crs="EPSG:4326", transform=from_origin(WEST, NORTH, td.MAP_RES_DEG, td.MAP_RES_DEG)) as ds:
        ds.write(data)
        for k, d in enumerate(dates, start=1):
            ds.set_band_description(k, d)
    rows = [(s, *xy, d, 0.2, "G", cls) for d in dates for s, xy, cls in (("A", a, "crop"), ("B", b, "grass"))]
    insitu = _csv(tmp_path / "s.csv", rows, "sensor_id,lon,lat,time_utc,sm_m3m3,flag,landcover")
    result = validation.validate_maps([str(stack)], insitu, stratify_field="landcover", min_points=3)
    assert len(result.maps) == 5 and [m.band for m in result.maps] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(result.pairs.estimate[result.pairs.sensor_id == "A"], 0.1 + 0.05 * np.arange(5),
                               atol=1e-7)
    assert set(result.strata) == {"crop", "grass"}
    assert result.strata["crop"]["map"]["n_sensors"] == 1 and result.strata["crop"]["map"]["few_sensors"]
    # stratify by a category raster: A on class 7, B on class 9
    cats = tmp_path / "lc.tif"
    classes = np.full((1, SIZE, SIZE), 7, dtype=np.uint8)
    classes[(0, *_pixel(*b))] = 9
    with rasterio.open(cats, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=from_origin(WEST, NORTH, td.MAP_RES_DEG, td.MAP_RES_DEG)) as ds:
        ds.write(classes)
    by_raster = validation.validate_maps([str(stack)], insitu, stratify_raster=str(cats), min_points=3)
    assert {r["sensor_id"]: r["category"] for r in by_raster.sensors} == {"A": "7", "B": "9"}
    assert by_raster.strata["9"]["map"]["bias"] == pytest.approx(np.mean(0.4 - 0.05 * np.arange(5) - 0.2))


# ----------------------------------------------------------------------------- bad inputs
def test_raster_without_time_tags_names_maps(tmp_path: Path) -> None:
    m = td.write_map(tmp_path / "m.tif", WEST, NORTH, SIZE, SIZE, None, [(LON, LAT, 0.2)])
    insitu = _csv(tmp_path / "s.csv", [("S", LON, LAT, "2020-04-25T00:30:00Z", 0.2, "G")])
    with pytest.raises(ValidationInputError) as err:
        validation.validate_maps([str(m)], insitu)
    assert err.value.parameter == "MAPS" and "carries no time" in str(err.value) and "m.tif" in str(err.value)


def test_sensors_outside_every_raster_names_maps(tmp_path: Path) -> None:
    m = td.write_map(tmp_path / "m.tif", WEST, NORTH, SIZE, SIZE, "2020-04-25T00:30:00Z", [(LON, LAT, 0.2)])
    insitu = _csv(tmp_path / "s.csv", [("S", 10.0, 50.0, "2020-04-25T00:30:00Z", 0.2, "G")])
    with pytest.raises(ValidationInputError) as err:
        validation.validate_maps([str(m)], insitu)
    assert err.value.parameter == "MAPS" and "none of the 1 sensors of s.csv lies inside any map" in str(err.value)


@pytest.mark.parametrize("text", ["", "sensor_id,lon,lat,time_utc,sm_m3m3\n"])
def test_empty_csv_names_insitu(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(text)
    with pytest.raises(ValidationInputError) as err:
        validation.read_insitu_csv(str(path))
    assert err.value.parameter == "INSITU" and "holds no readings" in str(err.value)


def test_csv_in_percent_names_insitu_and_says_divide_by_100(tmp_path: Path) -> None:
    rows = [("S", LON, LAT, f"2020-04-{d:02d}T00:00:00Z", 20.0 + d, "G") for d in range(1, 5)]
    with pytest.raises(ValidationInputError) as err:
        validation.read_insitu_csv(_csv(tmp_path / "pct.csv", rows))
    assert err.value.parameter == "INSITU" and "percent" in str(err.value) and "divide by 100" in str(err.value)


def test_csv_missing_column_and_bad_time(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("station,lon,lat,sm_m3m3\nS,1,2,0.2\n")
    with pytest.raises(ValidationInputError, match="no time column"):
        validation.read_insitu_csv(str(path))
    with pytest.raises(ValidationInputError, match="not an ISO-8601 time"):
        validation.read_insitu_csv(_csv(tmp_path / "t.csv", [("S", LON, LAT, "25/04/2020", 0.2, "G")]))


def test_map_not_in_m3m3_unknown_field_and_bad_tolerance(tmp_path: Path) -> None:
    insitu = _csv(tmp_path / "s.csv", [("S", LON, LAT, "2020-04-25T00:30:00Z", 0.2, "G")])
    pct = td.write_map(tmp_path / "p.tif", WEST, NORTH, SIZE, SIZE, "2020-04-25T00:30:00Z", [(LON, LAT, 20.0)],
                       extra_tags={"UNITS": "%"})
    with pytest.raises(ValidationInputError) as err:
        validation.validate_maps([str(pct)], insitu)
    assert err.value.parameter == "MAPS" and "UNITS=%" in str(err.value)
    untagged = td.write_map(tmp_path / "u.tif", WEST, NORTH, SIZE, SIZE, "2020-04-25T00:30:00Z", [(LON, LAT, 20.0)])
    with pytest.raises(ValidationInputError) as err:
        validation.validate_maps([str(untagged)], insitu)  # tagged m3/m3 but 20 at the sensor: percent
    assert err.value.parameter == "MAPS" and "divide it by 100" in str(err.value)
    good = td.write_map(tmp_path / "g.tif", WEST, NORTH, SIZE, SIZE, "2020-04-25T00:30:00Z", [(LON, LAT, 0.2)])
    with pytest.raises(ValidationInputError) as err:
        validation.validate_maps([str(good)], insitu, stratify_field="soil_type")
    assert err.value.parameter == "STRATIFY_FIELD"
    with pytest.raises(ValidationInputError) as err:
        validation.validate_maps([str(good)], insitu, tolerance_s=0.0)
    assert err.value.parameter == "TOLERANCE_H"


def test_sample_sensors_validate_the_sample_truth(tmp_path: Path) -> None:
    """The committed simulated sensors of the sample scene read its truth: scored against the truth map
    they agree within the simulated calibration and noise."""
    sample = ROOT / "resources" / "sample"
    sensors = sample / "insitu_sensors_simulated.csv"
    result = validation.validate_maps([str(sample / "truth_sm_320m.tif")], str(sensors))
    data = validation.read_insitu_csv(str(sensors))
    assert len(result.sensors) == len(data.sensors) == 24
    # gain ~ N(1, 0.04), bias ~ N(0, 0.015), noise <= 0.015 and the 10 m vs 320 m difference
    assert np.max(np.abs(result.pairs.estimate - result.pairs.insitu)) < 0.12
    assert abs(float(np.mean(result.pairs.estimate - result.pairs.insitu))) < 0.03
    text = result.table_text()
    assert "SIM-MESONET__ST0000__CS655" in text and "tolerance 1 h" in text
    assert "SIMULATED sensors" in text and result.insitu_simulated
    assert {r["network"] for r in result.sensors} == {"SIM-MESONET", "SIM-SCAN", "SIM-USCRN"}


def test_unpacked_ceop_folder_and_a_dropped_flag_next_to_the_anchor(ismn_dir: Path, tmp_path: Path) -> None:
    """Real FR_Aqui readings (CEOP format, unpacked folder): where the reading nearest to a map's time is
    flagged D, the pair takes the nearest kept reading instead, still within 1 h."""
    folder = ismn_dir / td.CEOP_FOLDER
    stm = next((folder / "FR_Aqui" / "fraye").glob("*_sm_*.stm"))
    raw = td.parse_ceop(stm.read_text())
    data = validation.read_ismn(str(folder))
    assert [s.sensor_id for s in data.sensors] == ["FR_Aqui__fraye__ThetaProbe-ML2X"]  # COSMOS: 0-19/21 cm
    np.testing.assert_array_equal(data.sensors[0].times_s, td.kept(raw)[0])
    # a D-flagged hourly reading followed by a G one an hour later
    bad = np.flatnonzero(~np.isin(raw["flags"][:-1], td.KEPT_FLAGS) & np.isin(raw["flags"][1:], td.KEPT_FLAGS)
                         & (np.diff(raw["times"]) == 3600))
    k = int(bad[len(bad) // 2])
    anchor = int(raw["times"][k]) + 600  # 10 min after the dropped reading, 50 min before the kept one
    m = td.write_map(tmp_path / "fraye.tif", -0.75, 44.5, 8, 8, td.iso(anchor), [(raw["lon"], raw["lat"], 0.2)])
    result = validation.validate_maps([str(m)], data)
    assert result.pairs.insitu_time_s.tolist() == [int(raw["times"][k + 1])]
    assert result.pairs.insitu.tolist() == [raw["values"][k + 1]]
