"""Tests of the Processing algorithm smqgis:validate_insitu in a real QGIS (pytest-qgis).

Real ISMN station files (from the ismn sdist, fetched into build/ at test time) against maps the
test builds with known values at the stations; and the sample scene's smqgis map against the
sample's simulated sensors, with the SMAP input found through the map's provenance tags.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import (
    QgsExpression,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsProcessingException,
    QgsProject,
    QgsRuleBasedRenderer,
    QgsVectorLayer,
)

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ismn_testdata", ROOT / "tests" / "data" / "ismn_testdata.py")
td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(td)
ALG = "smqgis:validate_insitu"
SAMPLE_SENSORS = ROOT / "resources" / "sample" / "insitu_sensors_simulated.csv"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    try:
        data_dir = td.ismn_test_data()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    return td.multinetwork_case(data_dir, tmp_path_factory.mktemp("maps"))


def _params(maps: list, insitu: Any, out: Path, **extra: Any) -> dict:
    return {"MAPS": [str(m) for m in maps], "INSITU": str(insitu), "TOLERANCE_H": 1.0,
            "OUTPUT": str(out / "sensors.gpkg"), "OUTPUT_CSV": str(out / "sensors.csv"),
            "OUTPUT_HTML": str(out / "report.html"), **extra}


def test_validate_real_ismn_writes_layer_csv_and_report(smqgis_provider: object, case: dict, tmp_path: Path) -> None:
    import processing

    from sm_qgis_helpers import LogFeedback

    feedback = LogFeedback()
    result = processing.run(ALG, _params(case["maps"], case["archive"], tmp_path), feedback=feedback)
    with open(result["OUTPUT_CSV"], newline="") as fh:
        rows = {r["sensor_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(case["expected"])
    layer = QgsVectorLayer(result["OUTPUT"], "sensors", "ogr")
    assert layer.isValid() and layer.featureCount() == 3 and layer.crs().authid() == "EPSG:4326"
    for feature in layer.getFeatures():
        row = rows[feature["sensor_id"]]
        expected = case["expected"][feature["sensor_id"]]
        est = np.array([e[3] for e in expected])
        obs = np.array([e[2] for e in expected])
        assert feature["n"] == len(expected) == int(row["n"])
        assert feature["r"] == pytest.approx(float(np.corrcoef(est, obs)[0, 1]), abs=1e-9)
        assert f"{feature['ubrmse']:.4f}" == row["ubrmse"] and f"{feature['bias']:.4f}" == row["bias"]
        point = feature.geometry().asPoint()
        assert (point.x(), point.y()) == pytest.approx((float(row["lon"]), float(row["lat"])), abs=1e-4)
    cst01 = rows["MAQU__CST-01__ECH20-EC-TM"]
    assert result["N_SENSORS"] == 1 and result["N_PAIRS"] == sum(len(v) for v in case["expected"].values())
    assert f"{result['UBRMSE']:.4f}" == cst01["ubrmse"] and f"{result['R']:.4f}" == cst01["r"]
    report = Path(result["OUTPUT_HTML"]).read_text(encoding="utf-8")
    assert cst01["ubrmse"] in report and "data:image/png;base64," in report
    assert any("MAQU__CST-01__ECH20-EC-TM" in info for info in feedback.infos)  # the table in the log


def test_sensor_layer_is_styled_by_r_with_a_legend(smqgis_provider: object, case: dict, tmp_path: Path) -> None:
    import processing

    from smqgis.processing.validate_insitu import R_CLASSES, R_UNDEFINED

    result = processing.runAndLoadResults(ALG, _params(case["maps"], case["archive"], tmp_path))
    loaded = [lay for lay in QgsProject.instance().mapLayers().values()
              if lay.source().split("|")[0] == result["OUTPUT"]]
    assert len(loaded) == 1 and loaded[0].name() == "In-situ sensors by R"
    layer = loaded[0]
    renderer = layer.renderer()
    assert isinstance(renderer, QgsRuleBasedRenderer)
    labels = [item.label() for item in renderer.legendSymbolItems()]
    assert labels == [c[3] for c in R_CLASSES] + [R_UNDEFINED[1]]
    rules = renderer.rootRule().children()
    context = QgsExpressionContext()
    context.appendScopes(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    for feature in layer.getFeatures():
        context.setFeature(feature)
        matching = [rule.label() for rule in rules if QgsExpression(rule.filterExpression()).evaluate(context)]
        r = feature["r"]
        want = next(c[3] for c in R_CLASSES if (c[0] <= r < c[1]) or (c[1] >= 1.0 and r >= c[0]))
        assert matching == [want]


def test_sample_map_against_the_sample_sensors_scores_smap_from_the_tags(
    smqgis_provider: object, sample_run: dict, tmp_path: Path
) -> None:
    """The chain inside QGIS: the sample's smqgis map, validated against the simulated sensors; SMAP comes
    from the map's INPUT_SMAP_* tags and equals the sample's smap.tif (mm) / 50 at each sensor."""
    import processing
    import rasterio

    from smqgis.core.validation import read_insitu_csv, validate_maps

    result = processing.run(ALG, _params([sample_run["path"]], SAMPLE_SENSORS, tmp_path))
    with open(result["OUTPUT_CSV"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    sensors = read_insitu_csv(str(SAMPLE_SENSORS)).sensors
    assert len(rows) == len(sensors) == 24 and all(r["smap_n"] == r["n"] for r in rows)
    core = validate_maps([str(sample_run["path"])], str(SAMPLE_SENSORS))
    with rasterio.open(ROOT / "resources" / "sample" / "smap.tif") as ds:
        by_id = {s.sensor_id: s for s in sensors}
        coords = [(by_id[sid].lon, by_id[sid].lat) for sid in core.pairs.sensor_id]
        ssm_mm = np.array([v[0] for v in ds.sample(coords)], dtype=np.float64)
    np.testing.assert_allclose(core.pairs.smap, ssm_mm / 50.0, rtol=1e-6)


def test_bad_inputs_name_the_parameter_and_write_nothing(smqgis_provider: object, tmp_path: Path) -> None:
    import processing

    untimed = td.write_map(tmp_path / "untimed.tif", -98.0, 36.0, 24, 24, None, [(-97.9, 35.7, 0.2)])
    insitu = tmp_path / "s.csv"
    insitu.write_text("sensor_id,lon,lat,time_utc,sm_m3m3\nS,-97.9,35.7,2020-04-25T00:30:00Z,0.2\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match=r"MAPS: untimed.tif carries no time"):
        processing.run(ALG, _params([untimed], insitu, out))
    timed = td.write_map(tmp_path / "timed.tif", -98.0, 36.0, 24, 24, "2020-04-25T00:30:00Z", [(-97.9, 35.7, 0.2)])
    percent = tmp_path / "pct.csv"
    percent.write_text("sensor_id,lon,lat,time_utc,sm_m3m3\nS,-97.9,35.7,2020-04-25T00:30:00Z,23.5\n")
    with pytest.raises(QgsProcessingException, match=r"INSITU: .*percent"):
        processing.run(ALG, _params([timed], percent, out))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(QgsProcessingException, match=r"INSITU: .*holds no readings"):
        processing.run(ALG, _params([timed], empty, out))
    far = tmp_path / "far.csv"
    far.write_text("sensor_id,lon,lat,time_utc,sm_m3m3\nS,10.0,50.0,2020-04-25T00:30:00Z,0.2\n")
    with pytest.raises(QgsProcessingException, match=r"MAPS: none of the 1 sensors"):
        processing.run(ALG, _params([timed], far, out))
    assert sorted(p.name for p in out.iterdir()) == []  # no CSV, report or layer from a failed run


def test_qgis_process_runs_the_validation(tmp_path: Path) -> None:
    """Headless qgis_process (what `make demo` drives) finds and runs smqgis:validate_insitu."""
    import json

    from sm_qgis_helpers import run_qgis_process

    enable = run_qgis_process("plugins", "enable", "smqgis", cwd=tmp_path, timeout=120)
    assert enable.returncode == 0 or "already enabled" in enable.stderr, enable.stderr + enable.stdout
    truth = ROOT / "resources" / "sample" / "truth_sm_320m.tif"  # tagged ACQUISITION_TIME, in m3/m3
    params = _params([truth], SAMPLE_SENSORS, tmp_path)
    args = [f"--{k}={v[0] if isinstance(v, list) else v}" for k, v in params.items()]
    proc = run_qgis_process("run", ALG, "--json", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    results = json.loads(proc.stdout[proc.stdout.index("{"):])["results"]
    assert results["N_PAIRS"] == 24 and Path(results["OUTPUT_HTML"]).is_file()
    with open(results["OUTPUT_CSV"], newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 24


def test_unpacked_ismn_folder_is_accepted_as_insitu(smqgis_provider: object, tmp_path: Path) -> None:
    import processing

    try:
        folder = td.ismn_test_data() / td.CEOP_FOLDER
    except RuntimeError as exc:
        pytest.skip(str(exc))
    raw = td.parse_ceop(next((folder / "FR_Aqui" / "fraye").glob("*_sm_*.stm")).read_text())
    times, values = td.kept(raw)
    maps = []
    for k in range(3):
        j = 1000 * (k + 1)  # three kept readings far apart; anchors 5 min after them
        maps.append(td.write_map(tmp_path / f"f{k}.tif", -0.75, 44.5, 8, 8, td.iso(int(times[j]) + 300),
                                 [(raw["lon"], raw["lat"], float(np.float32(values[j] + 0.01 * k)))]))
    result = processing.run(ALG, _params(maps, folder, tmp_path))
    with open(result["OUTPUT_CSV"], newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    bias = np.mean([np.float32(values[1000 * (k + 1)] + 0.01 * k) - values[1000 * (k + 1)] for k in range(3)])
    assert row["sensor_id"] == "FR_Aqui__fraye__ThetaProbe-ML2X" and row["n"] == "3"
    assert row["bias"] == f"{bias:.4f}" and row["in_average"] == "no"
