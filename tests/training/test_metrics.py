"""Tests of smqgis/core/metrics.py (against pytesmo) and smqgis/core/texture.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pytesmo import metrics as pm

from smqgis.core import metrics, texture


def _random_sensors(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Five sensors, one with 12 points (below the paper's 13), m3/m3-like values."""
    rng = np.random.default_rng(seed)
    sizes = {"A__1__x": 40, "B__2__x": 13, "C__3__x": 25, "D__4__x": 12, "E__5__x": 60}
    ids = np.concatenate([[k] * n for k, n in sizes.items()])
    obs = rng.uniform(0.05, 0.45, ids.size)
    pred = 0.7 * obs + 0.1 + rng.normal(0, 0.04, ids.size)
    order = rng.permutation(ids.size)  # sensors interleaved, as in a real stream
    return pred[order], obs[order], ids[order], sizes


def test_pairwise_metrics_equal_pytesmo():
    rng = np.random.default_rng(1)
    obs = rng.uniform(0.0, 0.5, 500)
    pred = obs + rng.normal(0.02, 0.05, 500)
    assert metrics.ubrmse(pred, obs) == pytest.approx(pm.ubrmsd(pred, obs), abs=1e-10)
    assert metrics.rmse(pred, obs) == pytest.approx(pm.rmsd(pred, obs), abs=1e-10)
    assert metrics.pearson_r(pred, obs) == pytest.approx(pm.pearson_r(pred, obs), abs=1e-10)
    # pytesmo: bias(x, y) = mean(x) - mean(y); ours is mean(pred - obs): wet estimate -> positive
    assert metrics.bias(pred, obs) == pytest.approx(pm.bias(pred, obs), abs=1e-10)
    assert metrics.bias(pred, obs) > 0.015


def test_sensor_metrics_match_pytesmo_and_exclude_small_sensors():
    pred, obs, ids, sizes = _random_sensors()
    result = metrics.sensor_metrics(pred, obs, ids)
    assert result["n_sensors_total"] == 5
    for key, n in sizes.items():
        sel = ids == key
        row = result["per_sensor"][key]
        assert row["n"] == n
        assert row["ubrmse"] == pytest.approx(pm.ubrmsd(pred[sel], obs[sel]), abs=1e-10)
        assert row["rmse"] == pytest.approx(pm.rmsd(pred[sel], obs[sel]), abs=1e-10)
        assert row["r"] == pytest.approx(pm.pearson_r(pred[sel], obs[sel]), abs=1e-10)
        assert row["bias"] == pytest.approx(pm.bias(pred[sel], obs[sel]), abs=1e-10)
    kept = [k for k, n in sizes.items() if n >= 13]
    avg = result["average"]
    assert avg["n_sensors"] == 4 and avg["n_points"] == 138
    for name, fn in (("ubrmse", pm.ubrmsd), ("rmse", pm.rmsd), ("r", pm.pearson_r), ("bias", pm.bias)):
        expected = np.mean([fn(pred[ids == k], obs[ids == k]) for k in kept])
        assert avg[name] == pytest.approx(expected, abs=1e-10)


def test_nan_pairs_are_dropped_before_counting():
    pred, obs, ids, _ = _random_sensors(2)
    pred, obs = pred.copy(), obs.copy()
    b_idx = np.flatnonzero(ids == "B__2__x")
    pred[b_idx[0]] = np.nan  # sensor B falls to 12 finite pairs: out of the average
    obs[np.flatnonzero(ids == "A__1__x")[:3]] = np.nan
    result = metrics.sensor_metrics(pred, obs, ids)
    assert result["per_sensor"]["B__2__x"]["n"] == 12
    assert result["per_sensor"]["A__1__x"]["n"] == 37
    assert result["average"]["n_sensors"] == 3
    a = (ids == "A__1__x") & np.isfinite(obs)
    assert result["per_sensor"]["A__1__x"]["ubrmse"] == pytest.approx(pm.ubrmsd(pred[a], obs[a]), abs=1e-10)


def test_min_points_and_bytes_ids():
    pred, obs, ids, _ = _random_sensors(3)
    result = metrics.sensor_metrics(pred, obs, np.char.encode(ids.astype(str)), min_points=30)
    assert sorted(result["per_sensor"]) == ["A__1__x", "B__2__x", "C__3__x", "D__4__x", "E__5__x"]
    assert result["average"]["n_sensors"] == 2 and result["min_points"] == 30


def test_constant_series_has_undefined_r_but_counts_elsewhere():
    obs = np.linspace(0.1, 0.3, 20)
    result = metrics.sensor_metrics(np.full(20, 0.2), obs, np.array(["s"] * 20))
    assert np.isnan(result["per_sensor"]["s"]["r"])
    assert result["average"]["n_sensors"] == 1 and result["average"]["n_sensors_r"] == 0
    assert result["average"]["ubrmse"] == pytest.approx(np.std(obs), abs=1e-12)


def test_stratified_metrics_group_by_category():
    pred, obs, ids, _ = _random_sensors(4)
    cats = np.where(np.isin(ids, ["A__1__x", "B__2__x"]), "cropland", "forest")
    strata = metrics.stratified_metrics(pred, obs, ids, cats)
    assert list(strata) == ["cropland", "forest"]
    sel = cats == "cropland"
    assert strata["cropland"] == {
        **metrics.sensor_metrics(pred[sel], obs[sel], ids[sel])["average"],
        "few_sensors": True,
    }
    assert strata["forest"]["n_sensors"] == 2  # C and E; D has 12 points
    with pytest.raises(ValueError, match="categories"):
        metrics.stratified_metrics(pred, obs, ids, cats[:-1])


def test_metrics_module_is_pure_numpy():
    code = (
        "import sys; import smqgis.core.metrics, smqgis.core.texture; "
        "bad = {'tensorflow', 'pandas', 'scipy', 'qgis'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "sand, silt, clay, name",
    [
        (40, 40, 20, "loam"),
        (92, 4, 4, "sand"),
        (82, 12, 6, "loamy sand"),
        (65, 25, 10, "sandy loam"),
        (20, 65, 15, "silt loam"),
        (5, 88, 7, "silt"),
        (60, 12, 28, "sandy clay loam"),
        (33, 34, 33, "clay loam"),
        (10, 58, 32, "silty clay loam"),
        (52, 6, 42, "sandy clay"),
        (6, 48, 46, "silty clay"),
        (20, 20, 60, "clay"),
    ],
)
def test_usda_texture_textbook_points(sand, silt, clay, name):
    assert texture.usda_texture_name(sand, silt, clay) == name
    # SoilGrids units (g/kg) and fractions give the same class
    assert texture.usda_texture_name(sand * 10, silt * 10, clay * 10) == name


def test_usda_texture_vectorized_and_unknown():
    got = texture.usda_texture_class(
        np.array([400.0, np.nan, 0.0]), np.array([400.0, 1.0, 0.0]), np.array([200.0, 1.0, 0.0])
    )
    assert got.tolist() == [texture.USDA_TEXTURE_CLASSES.index("loam"), texture.UNKNOWN, texture.UNKNOWN]
    # every point of the triangle gets exactly one class
    grid = np.arange(0, 101, 1.0)
    sand, clay = np.meshgrid(grid, grid)
    silt = 100 - sand - clay
    inside = silt >= 0
    classes = texture.usda_texture_class(sand[inside], silt[inside], clay[inside])
    assert np.all(classes >= 0) and set(classes.tolist()) == set(range(12))
