"""The HTML report of an in-situ validation: one self-contained file that opens offline.

Written after :func:`smqgis.core.validation.validate_maps`: the averages (map and its SMAP
input), the per-sensor table with the same formatted numbers as the CSV, a scatter of the
estimates against the in-situ readings, per-sensor time series (estimate, in-situ, SMAP) and
the stratified table. Plots are matplotlib PNGs embedded as base64 ``data:`` URIs, so the
report is one file with no external resource. QGIS-free; matplotlib's object API (no pyplot)
so it is safe off the main thread.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import logging
import os
from typing import Any

import numpy as np

from . import metrics
from .validation import CSV_FIELDS, ValidationResult, fmt, iso_utc

log = logging.getLogger(__name__)

#: Most sensors drawn as time series (the best-covered first); more would make the report unreadable.
MAX_SERIES_PLOTS = 12
#: Columns of the time-series grid.
SERIES_COLUMNS = 3
#: Figure resolution (dots per inch) of the embedded PNGs: sharp on screen, ~50-150 kB each.
PLOT_DPI = 100
#: Axis range of the scatter (m3/m3): the physical range of volumetric soil moisture in practice.
SCATTER_RANGE = (0.0, 0.6)
COLOURS = {"map": "#1f77b4", "insitu": "#222222", "smap": "#ff7f0e"}

_HEADERS = {
    "sensor_id": "sensor", "network": "network", "station": "station", "lon": "lon", "lat": "lat",
    "category": "category", "n": "N", "ubrmse": "ubRMSE", "rmse": "RMSE", "r": "R", "bias": "bias",
    "in_average": f"N &ge; {metrics.MIN_POINTS}", "smap_n": "SMAP N", "smap_ubrmse": "SMAP ubRMSE",
    "smap_rmse": "SMAP RMSE", "smap_r": "SMAP R", "smap_bias": "SMAP bias",
}

_CSS = """
body{font-family:sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}
th{background:#eef}td.t,th.t{text-align:left}
tr.out td{color:#888;font-style:italic}
.note{font-size:12px;color:#555}.warn{color:#a40}
img{max-width:100%;border:1px solid #ddd}
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def scatter_png(result: ValidationResult) -> str:
    """Base64 PNG: estimate (and SMAP) against in-situ, with the 1:1 line."""
    from matplotlib.figure import Figure

    p = result.pairs
    fig = Figure(figsize=(6.0, 5.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(SCATTER_RANGE, SCATTER_RANGE, color="#999", lw=1, label="1:1")
    smap_ok = np.isfinite(p.smap)
    if smap_ok.any():
        ax.scatter(p.insitu[smap_ok], p.smap[smap_ok], s=14, c=COLOURS["smap"], alpha=0.6, label="SMAP input",
                   marker="s")
    ax.scatter(p.insitu, p.estimate, s=14, c=COLOURS["map"], alpha=0.7, label="map estimate")
    ax.set_xlim(*SCATTER_RANGE)
    ax.set_ylim(*SCATTER_RANGE)
    ax.set_aspect("equal")
    ax.set_xlabel("in-situ soil moisture (m3/m3)")
    ax.set_ylabel("estimate (m3/m3)")
    avg = result.average
    ax.set_title(f"{len(p)} pairs at {len(result.sensors)} sensors; mean per-sensor R {fmt(avg['r']) or 'n/a'}",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    return _png(fig)


def series_png(result: ValidationResult) -> tuple[str, int]:
    """Base64 PNG of per-sensor time series (estimate, in-situ, SMAP) and the number of sensors drawn."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    p = result.pairs
    order = sorted(result.sensors, key=lambda r: (-r["n"], r["sensor_id"]))[:MAX_SERIES_PLOTS]
    n = len(order)
    rows = max(1, -(-n // SERIES_COLUMNS))
    fig = Figure(figsize=(4.0 * SERIES_COLUMNS, 2.6 * rows))
    for k, row in enumerate(order):
        ax = fig.add_subplot(rows, SERIES_COLUMNS, k + 1)
        sel = p.sensor_id == row["sensor_id"]
        idx = np.argsort(p.map_time_s[sel], kind="stable")
        when = [_dt.datetime.fromtimestamp(int(t), _dt.timezone.utc) for t in p.map_time_s[sel][idx]]
        ax.plot(when, p.insitu[sel][idx], "o-", color=COLOURS["insitu"], ms=3, lw=1, label="in-situ")
        ax.plot(when, p.estimate[sel][idx], "o-", color=COLOURS["map"], ms=3, lw=1, label="map")
        if np.isfinite(p.smap[sel]).any():
            ax.plot(when, p.smap[sel][idx], "s--", color=COLOURS["smap"], ms=3, lw=1, label="SMAP")
        ax.set_title(f"{row['sensor_id'][:40]}\nN {row['n']}, R {fmt(row['r']) or 'n/a'}", fontsize=8)
        ax.set_ylabel("m3/m3", fontsize=8)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig), n


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None, text_cols: int = 1) -> str:
    out = ["<table><tr>"]
    out += [f"<th class='{'t' if i < text_cols else ''}'>{h}</th>" for i, h in enumerate(header)]
    out.append("</tr>")
    for k, row in enumerate(rows):
        cls = f" class='{classes[k]}'" if classes and classes[k] else ""
        cells = "".join(f"<td class='{'t' if i < text_cols else ''}'>{html.escape(c)}</td>" for i, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(result: ValidationResult, title: str = "In-situ validation of soil-moisture maps") -> str:
    """The report as one HTML string (images embedded)."""
    avg_keys = ["what", "n_sensors", "n_points", "ubrmse", "rmse", "r", "bias"]
    avg_rows = [[row[k] for k in avg_keys] for row in result.average_rows()]
    table_rows = result.table_rows()
    fields = [f for f in CSV_FIELDS if (f != "category" or result.stratify_by)
              and (not f.startswith("smap_") or result.smap_average is not None)]
    sensor_rows = [[row[f] for f in fields] for row in table_rows]
    classes = ["" if row["in_average"] == "yes" else "out" for row in table_rows]
    series_b64, n_series = series_png(result)
    has_smap = result.smap_average is not None
    labels = result.model_labels or ["(no model label in the maps' tags)"]
    times = sorted({m.time_s for m in result.maps})
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='note'>Model: " + "; ".join(html.escape(x) for x in labels) + "<br>",
        f"Maps: {len(result.maps)} dated layer(s) from {len({m.path for m in result.maps})} raster(s), "
        f"{iso_utc(times[0])} to {iso_utc(times[-1])}<br>",
        f"In-situ: {html.escape(os.path.basename(result.insitu_source))} ({result.insitu_kind})"
        f"{' - SIMULATED sensors, not measurements' if result.insitu_simulated else ''}; kept depths 0-5 cm "
        "and 5-5 cm, quality flags G, C02, C03, C02,C03 (paper 000, section 2c)<br>",
        f"Pairing: the reading nearest to each map's time within {result.tolerance_s / 3600:g} h; each sensor at the "
        "map pixel that contains it.</p>",
        "<h2>Averages</h2>",
        f"<p class='note'>Means of the per-sensor metrics over the sensors with at least {result.min_points} pairs "
        "(paper 000, section 3c); ubRMSE, RMSE and bias in m3/m3, bias = mean(estimate - in-situ). "
        + ("The SMAP row scores the map's SMAP input at the same sensors and times.</p>" if has_smap else
           "The maps name no SMAP input in their tags, so SMAP is not scored.</p>"),
        _table(["", "sensors", "points", "ubRMSE", "RMSE", "R", "bias"], avg_rows),
        "<h2>Per-sensor metrics</h2>",
        f"<p class='note'>Grey rows: fewer than {result.min_points} pairs, reported but left out of the "
        "averages.</p>",
        _table([_HEADERS[f] for f in fields], sensor_rows, classes, text_cols=3),
    ]
    if result.strata:
        rows = []
        for cat, entry in result.strata.items():
            m, s = entry["map"], entry["smap"]
            star = "*" if m["few_sensors"] else ""
            smap_cells = [fmt(s[k]) if s else "" for k in ("ubrmse", "r")] if has_smap else []
            rows.append([cat + star, str(m["n_sensors"]), str(m["n_points"]),
                         *(fmt(m[k]) for k in metrics.METRIC_NAMES), *smap_cells])
        header = ["category", "sensors", "points", "ubRMSE", "RMSE", "R", "bias"]
        parts += [
            f"<h2>Stratified by {html.escape(result.stratify_by)}</h2>",
            f"<p class='note'>* fewer than {metrics.FEW_SENSORS} sensors in the stratum.</p>",
            _table(header + (["SMAP ubRMSE", "SMAP R"] if has_smap else []), rows),
        ]
    parts += [
        "<h2>Estimate against in-situ</h2>",
        f"<img alt='scatter' src='data:image/png;base64,{scatter_png(result)}'>",
        f"<h2>Time series ({n_series} of {len(result.sensors)} sensors, most pairs first)</h2>",
        f"<img alt='time series' src='data:image/png;base64,{series_b64}'>",
    ]
    if result.warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>"
                                                     for w in result.warnings) + "</ul>")
    if result.insitu_kind == "ismn":
        parts.append("<p class='note'>In-situ data: International Soil Moisture Network (ISMN), Dorigo et al. 2021, "
                     "doi:10.5194/hess-25-5749-2021; see each network's own terms.</p>")
    parts.append(f"<p class='note'>Written by smqgis on {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC."
                 "</p></body></html>")
    return "".join(parts)


def write_html_report(result: ValidationResult, path: str, title: str = "In-situ validation of soil-moisture maps"
                      ) -> str:
    """Write :func:`render_html` to ``path`` (through a temporary file, so no partial report) and return it."""
    text = render_html(result, title)
    tmp = f"{path}.part"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    log.info("wrote the validation report %s (%d kB)", path, len(text) // 1024)
    return path
