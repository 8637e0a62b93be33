"""Tests of the simulated world (training/simulate): determinism, physics, writers."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from smqgis.core import sources
from smqgis.core.encoding import decode
from training.simulate import forward as fw
from training.simulate.insitu import FREE_NETWORK, GOOD_FLAGS, place_free_points, place_sensors
from training.simulate.scene import DATES_DIR, SCENE_KINDS, build_sample_scene
from training.simulate.tfrecords import DatasetSpec, PatchRenderer, joined_anchors, write_dataset
from training.simulate.world import World, grid_axes

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "sample"


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    out = tmp_path_factory.mktemp("scene")
    build_sample_scene(out, world)
    return out


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.suffix in (".tif", ".json")
    }


@pytest.fixture(scope="module")
def dates_dir(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    from training.simulate.scene import build_sample_dates

    out = tmp_path_factory.mktemp("dates")
    build_sample_dates(out, world)
    return out


def test_same_seed_same_bytes(scene_dir: Path, tmp_path: Path) -> None:
    build_sample_scene(tmp_path, World())
    assert _hashes(tmp_path) == _hashes(scene_dir)


def test_committed_sample_is_what_the_generator_writes(dates_dir: Path) -> None:
    assert _hashes(SAMPLE) == _hashes(dates_dir), (
        "resources/sample is stale: run python -m training.simulate.make_resources --sample-only"
    )
    shipped = [p for p in SAMPLE.rglob("*") if p.suffix in (".tif", ".json", ".md")]
    assert sum(p.stat().st_size for p in shipped) <= 16 * 1024 * 1024


def test_sample_has_three_dates_of_the_kinds_it_claims(world: World) -> None:
    listing = json.loads((SAMPLE / "dates.json").read_text())["dates"]
    assert [d["kind"] for d in listing] == list(SCENE_KINDS)
    assert len({d["date"] for d in listing}) == 3
    by_kind = {d["kind"]: d for d in listing}
    assert by_kind["dry_fresh_smap"]["smap_age_hours"] < 24.0
    assert by_kind["after_rain"]["smap_age_hours"] > 48.0
    for d in listing[1:]:
        folder = SAMPLE / d["folder"]
        assert folder.parent.name == DATES_DIR
        manifest = json.loads((folder / "manifest.json").read_text())
        assert set(manifest["inputs"]) == set(sources.SOURCES)
        assert manifest["anchor_time"] == d["anchor_time"]
        # same footprint as the first date
        with rasterio.open(folder / "sentinel1.tif") as a, rasterio.open(SAMPLE / "sentinel1.tif") as b:
            assert a.transform == b.transform and a.shape == b.shape
    truths = [rasterio.open(SAMPLE / d["folder"] / "truth_sm_320m.tif").read(1) for d in listing]
    assert truths[0].mean() > truths[1].mean() + 0.03, "the after-rain date is wetter than the dry spell"


def test_label_is_the_truth_at_the_sensor_pixel(world: World) -> None:
    """The label of a patch is the world's truth at the sensor's own 10 m pixel (not the patch's corner)."""
    sensors = place_sensors(world, 12)
    joins = joined_anchors(world)
    rng = np.random.default_rng(7)
    renderer = PatchRenderer(world)
    for k in rng.choice(len(sensors), size=4, replace=False):
        sensor = sensors[int(k)]
        for j in rng.choice(len(joins), size=2, replace=False):
            join = joins[int(j)]
            label = renderer.render(sensor, join)["truth"]
            x, y = np.array([sensor.x_m]), np.array([sensor.y_m])
            expected = world.soil_moisture(world.static(x, y), x, y, join.s1.whole_day)[0, 0]
            assert label == pytest.approx(float(expected), abs=1e-12)
            # the patch's own 10 m truth at its centre pixel is the same value
            xs, ys = renderer.grid(sensor)
            assert (xs[256], ys[256]) == (sensor.x_m, sensor.y_m)


def test_point_fields_must_match_their_grid(world: World) -> None:
    """A patch-wide field indexed as if it were a point is refused, wherever the simulator does it."""
    xs, ys = grid_axes(600_000.0, 3_950_000.0, 8, 8, 10.0)
    st = world.static(xs, ys)
    with pytest.raises(ValueError, match="do not match the grid"):
        world.soil_moisture(st, xs[4:5], ys[4:5], 100)
    with pytest.raises(ValueError, match="do not match the grid"):
        world.gldas_proxy(st, xs[4:5], ys[4:5], 100)
    point = world.soil_moisture(st.at(4, 3), xs[3:4], ys[4:5], 100)[0, 0]
    assert point == pytest.approx(world.soil_moisture(st, xs, ys, 100)[4, 3], abs=1e-12)


def test_sample_320m_truth_is_the_cell_mean_of_the_10m_truth() -> None:
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    with rasterio.open(SAMPLE / "truth_sm_10m.tif") as ds:
        t10 = ds.read(1).astype(np.float64) * ds.scales[0]
        tr = ds.transform
    x0, _, _, y_top = manifest["output_grid"]["extent"][0], 0, 0, manifest["output_grid"]["extent"][3]
    col0, row0 = int(round((x0 - tr.c) / tr.a)), int(round((y_top - tr.f) / tr.e))
    inner = t10[row0 : row0 + 512, col0 : col0 + 512]
    means = inner.reshape(16, 32, 16, 32).mean(axis=(1, 3))
    with rasterio.open(SAMPLE / "truth_sm_320m.tif") as ds:
        t320 = ds.read(1).astype(np.float64)
    np.testing.assert_allclose(t320, means, atol=6e-5)  # the 10 m file is stored in steps of 1e-4
    assert t320.std() > 0.005, "the 320 m truth varies inside the scene"


def test_free_points_stay_away_from_held_out_sensors(world: World) -> None:
    sensors = place_sensors(world, 40)
    held = [s for s in sensors if s.split != "train"]
    points = place_free_points(world, 60, held, min_distance_m=3_000.0)
    assert len(points) == 60 and all(p.split == "train" and p.sensor_id.startswith(FREE_NETWORK) for p in points)
    d = np.array([[np.hypot(p.x_m - s.x_m, p.y_m - s.y_m) for s in held] for p in points])
    assert d.min() >= 3_000.0


def test_windows_agree_where_they_overlap(world: World) -> None:
    xs, ys = grid_axes(600_000.0, 3_950_000.0, 64, 64, 10.0)
    a = world.static(xs, ys)
    b = world.static(xs[20:], ys[10:])
    np.testing.assert_allclose(a.elevation_m[10:, 20:], b.elevation_m, atol=1e-9)
    np.testing.assert_allclose(
        world.soil_moisture(a, xs, ys, 100)[10:, 20:], world.soil_moisture(b, xs[20:], ys[10:], 100), atol=1e-9
    )


def test_texture_sums_to_one_and_soilgrids_units(world: World) -> None:
    xs, ys = grid_axes(560_000.0, 3_990_000.0, 50, 50, 200.0)
    st = world.static(xs, ys)
    np.testing.assert_allclose(st.sand + st.silt + st.clay, 1.0, atol=1e-12)
    prod = fw.soilgrids_product(world, st, xs, ys)
    np.testing.assert_allclose(prod["sand"] + prod["silt"] + prod["clay"], 1000.0, atol=1e-9)  # g/kg
    assert 100.0 < prod["bdod"].min() and prod["bdod"].max() < 180.0  # cg/cm3


@pytest.mark.parametrize("vwc", [0.0, 1.0, 3.0])
@pytest.mark.parametrize("angle", [30.0, 38.0, 46.0])
def test_backscatter_rises_with_moisture_at_fixed_vegetation(vwc: float, angle: float) -> None:
    theta = np.linspace(0.03, 0.5, 48)
    vv, vh = fw.bare_soil_backscatter(theta, np.full_like(theta, angle), np.full_like(theta, 1.5))
    for pol, soil in (("VV", vv), ("VH", vh)):
        total_db = 10 * np.log10(fw.water_cloud(soil, np.full_like(theta, vwc), np.full_like(theta, angle), pol))
        assert np.all(np.diff(total_db) > 0), pol
    # bare soil: several dB between dry and wet (C-band sensitivity ~ 0.1-0.3 dB per 0.01 m3/m3)
    assert 5.0 < 10 * np.log10(vv[-1] / vv[0]) < 15.0


def test_swir_falls_as_soil_wets() -> None:
    theta = np.linspace(0.03, 0.5, 48)
    for cover in (0.0, 0.3, 0.6):
        for band in ("B11", "B12"):
            refl = fw.surface_reflectance(theta, np.full_like(theta, cover), np.ones_like(theta), band)
            assert np.all(np.diff(refl) < 0), (band, cover)


def test_swir_and_vv_follow_moisture_in_a_scene(world: World) -> None:
    xs, ys = grid_axes(600_000.0, 3_950_000.0, 128, 128, 10.0)
    st = world.static(xs, ys)
    days = [d for d in range(0, 700, 37)]
    bare = np.where(np.isin(st.landcover, (1, 2)))
    theta, b12, vv = [], [], []
    s1 = fw.s1_acquisitions(world)
    for d in days:
        acq_s2 = fw.Acquisition("sentinel2", d + 0.7, 10_000 + d, cloud_percent=0.0)
        acq_s1 = fw.Acquisition("sentinel1", d + 0.02, s1[0].index, orbit=s1[0].orbit)
        cover, _ = world.vegetation(st, d)
        theta.append(world.soil_moisture(st, xs, ys, d, cover)[bare].mean())
        b12.append(fw.s2_image(world, fw.CloudField(world), st, xs, ys, acq_s2)["B12"][bare].mean())
        vv.append(fw.s1_image(world, st, xs, ys, acq_s1)["VV"][bare].mean())
    assert np.corrcoef(theta, b12)[0, 1] < -0.5
    assert np.corrcoef(theta, vv)[0, 1] > 0.5


def test_smap_is_the_cell_mean_of_truth_within_its_noise(world: World) -> None:
    coarse = fw.CoarseProducts(world)
    acqs = fw.smap_acquisitions(world)[100:130]
    lon, lat = coarse.to_lonlat.transform(600_000.0, 3_950_000.0)
    i, j = coarse.cell_of(lon, lat, fw.SMAP_CELL_DEG)
    # an independent block mean: the truth on a 100 m grid inside the cell
    st, xs, ys, inside = coarse._cell("smap", i, j)
    fine_x = np.arange(xs[0] - 125.0, xs[-1] + 125.0, 100.0) + 50.0
    fine_y = np.arange(ys[0] - 125.0, ys[-1] + 125.0, 100.0) + 50.0
    fst = world.static(fine_x, fine_y)
    flon, flat = coarse.to_lonlat.transform(*np.meshgrid(fine_x, fine_y))
    fin = (np.floor(flon / fw.SMAP_CELL_DEG + 1e-9) == i) & (np.floor(flat / fw.SMAP_CELL_DEG + 1e-9) == j)
    truth = np.array([world.soil_moisture(fst, fine_x, fine_y, a.whole_day)[fin].mean() for a in acqs])
    smap = np.array([coarse.smap_volumetric(i, j, a) for a in acqs])
    residual = smap - (0.9 * truth + 0.03)
    assert np.abs(residual).max() < 0.015 + 4 * 0.025  # cell bias + 4 sigma of retrieval noise
    assert residual.std() < 0.04
    assert np.corrcoef(smap, truth)[0, 1] > 0.8
    assert coarse.smap_ssm_mm(i, j, acqs[0]) == pytest.approx(50.0 * smap[0])  # mm over 5 cm


def test_join_respects_table5_bounds(world: World) -> None:
    joins = joined_anchors(world)
    assert len(joins) > 40
    for jn in joins:
        assert 0 <= jn.s1.day - jn.s2.day <= 14 and jn.s2.cloud_percent < 30
        assert 0 <= jn.s1.day - jn.smap.day <= 3
        assert 0 <= jn.s1.day - jn.gldas.day <= 0.25
    cloudy = [a for a in fw.s2_acquisitions(world) if a.cloud_percent >= 30]
    assert cloudy, "the cloud filter must matter"


def test_sensors_split_by_sensor(world: World) -> None:
    sensors = place_sensors(world, 50)
    counts = {s: sum(x.split == s for x in sensors) for s in ("train", "val", "test")}
    assert counts == {"train": 30, "val": 10, "test": 10}
    assert len({s.sensor_id for s in sensors}) == 50
    assert all(len(s.sensor_id.split("__")) == 3 for s in sensors)


def test_tfrecords_parse_with_the_training_reader(tmp_path: Path, world: World) -> None:
    tf = pytest.importorskip("tensorflow")
    from training.data import make_dataset

    summary = write_dataset(
        tmp_path,
        world,
        DatasetSpec(
            n_sensors=5,
            dates_per_sensor={"train": 2, "val": 1, "test": 1},
            shards=1,
            free_points=2,
            free_dates_per_point=2,
        ),
    )
    assert summary["points"]["train"] >= 4 and summary["free_points"] == 2
    ds = make_dataset(
        str(tmp_path / "train-*.tfrecord.gz"), "full", 1, training=False, seed=0, drop_remainder=False, with_meta=True
    )
    with open(tmp_path / "readings.csv", newline="") as f:
        readings = list(csv.DictReader(f))
    assert all((r["flag"] in GOOD_FLAGS) == (r["kept"] == "1") for r in readings)
    free = [r for r in readings if r["sensor_id"].startswith(FREE_NETWORK)]
    assert len(free) == 4 and all(r["sm_0_5"] == r["truth"] and r["flag"] == "G" for r in free)
    n = 0
    for features, label in ds:
        n += 1
        assert features["high_res"].shape == (1, 256, 256, 10)
        assert features["low_res"].shape == (1, 16, 16, 4)
        assert features["coarse"].shape == (1, 2)
        assert 0.0 < float(label[0]) < 0.6
        smap_mm = decode(features["coarse"].numpy()[0, 0], sources.SOURCES["smap"].bands[0].encoding)
        assert 2.0 < smap_mm < 30.0
        assert tf.reduce_max(features["high_res"]) <= 255.0
    assert n == summary["points"]["train"]


EXPECTED = {
    "sentinel1.tif": ("EPSG:32614", ("VV", "VH", "angle")),
    "sentinel2.tif": ("EPSG:32614", ("B4", "B3", "B2", "B8", "B11", "B12")),
    "dem.tif": ("EPSG:4326", ("elevation",)),
    "soilgrids.tif": ("ESRI:54052", ("sand", "silt", "clay", "bdod")),
    "smap.tif": ("EPSG:4326", ("ssm",)),
    "gldas.tif": ("EPSG:4326", ("SoilMoi0_10cm_inst",)),
    "truth_sm_10m.tif": ("EPSG:32614", ("soil_moisture",)),
    "truth_sm_320m.tif": ("EPSG:32614", ("soil_moisture",)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_geotiffs_open_with_crs_bands_and_tags(scene_dir: Path, name: str) -> None:
    crs, bands = EXPECTED[name]
    with rasterio.open(scene_dir / name) as ds:
        assert ds.crs.to_string() == crs
        assert ds.descriptions == bands
        assert ds.nodata is not None
        assert ds.profile["compress"].lower() == "deflate"
        assert ds.tags()["SIMULATED"] == "true"
        assert all(ds.tags(k + 1).get("UNITS") for k in range(ds.count))
        data = ds.read(1, masked=True).astype(float) * ds.scales[0] + ds.offsets[0]
    if name in ("dem.tif", "soilgrids.tif"):
        return
    with rasterio.open(scene_dir / name) as ds:
        assert ds.tags()["ACQUISITION_TIME"].endswith("Z")
    if name == "sentinel1.tif":
        assert -30.0 < data.mean() < 0.0  # VV in dB after the scale
    if name == "smap.tif":
        assert 1.0 < data.min() and data.max() < 30.0  # mm over 5 cm


def test_manifest_and_output_grid(scene_dir: Path) -> None:
    manifest = json.loads((scene_dir / "manifest.json").read_text())
    assert set(manifest["inputs"]) == set(sources.SOURCES)
    grid = manifest["output_grid"]
    xmin, ymin, xmax, ymax = grid["extent"]
    assert xmax - xmin == pytest.approx(5120.0) and ymax - ymin == pytest.approx(5120.0)
    with rasterio.open(scene_dir / "sentinel1.tif") as ds:
        left, bottom, right, top = ds.bounds
    halo = [xmin - left, ymin - bottom, right - xmax, top - ymax]
    assert halo == pytest.approx([1280.0] * 4)  # half a 2.56 km window on every side
    with rasterio.open(scene_dir / "truth_sm_320m.tif") as ds:
        assert (ds.width, ds.height) == (16, 16)
        assert list(ds.transform)[:6] == grid["transform"]


def test_demo_model_says_it_is_simulated() -> None:
    path = REPO / "resources" / "models" / "demo_fusion_simulated.onnx"
    if not path.exists():
        pytest.skip("demo model not built yet (python -m training.simulate.make_resources)")
    onnx = pytest.importorskip("onnx")
    from smqgis.core import schema

    proto = onnx.load(str(path), load_external_data=False)
    meta = schema.from_metadata_props({p.key: p.value for p in proto.metadata_props})
    assert meta["trained_on"]["kind"] == "simulated"
    assert meta["label"] == schema.SIMULATED_LABEL
    assert meta["variant"] == "full"
    assert {"ubrmse", "rmse", "r"} <= set(meta["metrics"]["test"])
    assert path.stat().st_size <= 10 * 1024 * 1024
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["label"] == schema.SIMULATED_LABEL and "sample_scene" in sidecar
