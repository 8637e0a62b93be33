"""Per-sensor validation metrics of soil-moisture estimates (paper 000, section 3c).

The last step of the flow: estimates against in-situ observations. The paper
computes ubRMSE, RMSE and Pearson R for each sensor and averages each over the
sensors with at least 13 points; we add the bias. Definitions follow
``pytesmo.metrics`` (the field's reference implementation; ``bias = mean(pred -
obs)``, positive when the estimate is too wet). Used by ``training/evaluate.py``
and by the plugin's validation, so it is pure numpy (1.24 and 2.x): no TF, no
pandas, no scipy. NaN is handled on purpose: a pair with a non-finite
estimate or observation is dropped before anything is counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Fewest points a sensor needs to enter the averages (paper 000, section 3c).
MIN_POINTS = 13
#: Sensors per stratum below which the paper marks a row with an asterisk (Tables 10-12).
FEW_SENSORS = 5
METRIC_NAMES = ("ubrmse", "rmse", "r", "bias")


def _pairs(pred: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(obs, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pred and obs differ in size: {x.size} vs {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def bias(pred: np.ndarray, obs: np.ndarray) -> float:
    """Mean of ``pred - obs`` (m3/m3) over finite pairs; NaN if none."""
    x, y = _pairs(pred, obs)
    return float(np.mean(x - y)) if x.size else float("nan")


def rmse(pred: np.ndarray, obs: np.ndarray) -> float:
    """Root-mean-square error (m3/m3) over finite pairs; NaN if none."""
    x, y = _pairs(pred, obs)
    return float(np.sqrt(np.mean((x - y) ** 2))) if x.size else float("nan")


def ubrmse(pred: np.ndarray, obs: np.ndarray) -> float:
    """Unbiased RMSE (m3/m3): the RMSE after removing each series' own mean."""
    x, y = _pairs(pred, obs)
    if not x.size:
        return float("nan")
    return float(np.sqrt(np.mean(((x - x.mean()) - (y - y.mean())) ** 2)))


def pearson_r(pred: np.ndarray, obs: np.ndarray) -> float:
    """Pearson correlation (unitless); NaN for fewer than 2 pairs or a constant series."""
    x, y = _pairs(pred, obs)
    # Test constancy on the values, not on x - mean(x): the mean of identical
    # values need not equal them in floating point.
    if x.size < 2 or np.ptp(x) == 0.0 or np.ptp(y) == 0.0:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.clip(np.sum(dx * dy) / denom, -1.0, 1.0))


def _row(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {"n": int(x.size), "ubrmse": ubrmse(x, y), "rmse": rmse(x, y), "r": pearson_r(x, y), "bias": bias(x, y)}


def sensor_metrics(
    pred: np.ndarray, obs: np.ndarray, sensor_ids: np.ndarray, min_points: int = MIN_POINTS
) -> dict[str, Any]:
    """Per-sensor metrics and their average over sensors with >= ``min_points`` pairs.

    Parameters
    ----------
    pred : np.ndarray
        estimates, m3/m3, shape [N].
    obs : np.ndarray
        observations, m3/m3, shape [N].
    sensor_ids : np.ndarray
        one id per point (str, bytes or int), shape [N].
    min_points : int
        fewest finite pairs a sensor needs to enter the average.

    Returns
    -------
    dict[str, Any]
        ``{"per_sensor": {id: {"n", "ubrmse", "rmse", "r", "bias"}}, "average":
        {"ubrmse", "rmse", "r", "bias" (m3/m3 except r), "n_sensors",
        "n_points", "n_sensors_r"}, "min_points": int, "n_sensors_total": int}``.
        ``n_points`` counts the pairs of the averaged sensors; a sensor whose R
        is undefined (a constant series) is left out of the R average only
        (``n_sensors_r``). Averages are NaN when no sensor qualifies.
    """
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(obs, dtype=np.float64).ravel()
    ids = np.asarray(sensor_ids).ravel()
    if not (x.size == y.size == ids.size):
        raise ValueError(f"pred, obs and sensor_ids differ in size: {x.size}, {y.size}, {ids.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, ids = x[ok], y[ok], ids[ok]
    keys = np.array([i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in ids], dtype=object)
    per_sensor: dict[str, dict[str, Any]] = {}
    for key in sorted(set(keys.tolist())):
        sel = keys == key
        per_sensor[key] = _row(x[sel], y[sel])
    kept = [row for row in per_sensor.values() if row["n"] >= min_points]
    average: dict[str, Any] = {}
    for name in METRIC_NAMES:
        values = np.array([row[name] for row in kept], dtype=np.float64)
        finite = values[np.isfinite(values)]
        average[name] = float(finite.mean()) if finite.size else float("nan")
    average["n_sensors"] = len(kept)
    average["n_points"] = int(sum(row["n"] for row in kept))
    average["n_sensors_r"] = int(sum(np.isfinite(row["r"]) for row in kept))
    return {
        "per_sensor": per_sensor,
        "average": average,
        "min_points": int(min_points),
        "n_sensors_total": len(per_sensor),
    }


def stratified_metrics(
    pred: np.ndarray,
    obs: np.ndarray,
    sensor_ids: np.ndarray,
    categories: np.ndarray,
    min_points: int = MIN_POINTS,
) -> dict[str, dict[str, Any]]:
    """:func:`sensor_metrics` averages within each category (land cover, texture, climate ...).

    Each point carries its own category, so a sensor that changes category
    (e.g. seasonal land cover) contributes to each with its points there.

    Parameters
    ----------
    pred : np.ndarray
        estimates, m3/m3, shape [N].
    obs : np.ndarray
        observations, m3/m3, shape [N].
    sensor_ids : np.ndarray
        one id per point, shape [N].
    categories : np.ndarray
        one category per point (any type; grouped by ``str``), shape [N].
    min_points : int
        as in :func:`sensor_metrics`.

    Returns
    -------
    dict[str, dict[str, Any]]
        ``{category: average row of sensor_metrics + "few_sensors"}``, where
        ``few_sensors`` is True for fewer than 5 qualifying sensors (the
        paper's asterisk), sorted by category name.
    """
    cats = np.asarray(categories).ravel()
    if cats.size != np.asarray(pred).size:
        raise ValueError(f"categories has {cats.size} entries for {np.asarray(pred).size} points")
    labels = np.array([c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in cats], dtype=object)
    x, y, ids = (np.asarray(a).ravel() for a in (pred, obs, sensor_ids))
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(set(labels.tolist())):
        sel = labels == label
        row = sensor_metrics(x[sel], y[sel], ids[sel], min_points)["average"]
        out[label] = {**row, "few_sensors": row["n_sensors"] < FEW_SENSORS}
    return out


def between_group_variance_share(values: np.ndarray, groups: np.ndarray) -> float:
    """Share (0-1) of the variance of ``values`` that lies between the means of ``groups``.

    With ``groups`` the coarse cell (e.g. the SMAP 0.1 deg cell) of each fine pixel, this is how
    much of a map's spatial variance is the coarse input's own pattern: a map that is the coarse
    product re-gridded has a share of 1, a map with all its detail inside the cells a share near 0.
    Non-finite values are ignored; NaN when fewer than 2 finite values or no variance.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    if g.size != x.size:
        raise ValueError(f"groups has {g.size} entries for {x.size} values")
    ok = np.isfinite(x)
    x, g = x[ok], g[ok]
    total = float(np.sum((x - x.mean()) ** 2)) if x.size > 1 else 0.0
    if total == 0.0:
        return float("nan")
    between = 0.0
    for key in np.unique(g):
        sel = g == key
        between += float(sel.sum()) * (float(x[sel].mean()) - float(x.mean())) ** 2
    return between / total
