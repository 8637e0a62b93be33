"""``python -m smqgis.demo``: the main job on the bundled sample scene, with its agreement to the truth.

What ``make demo`` runs after installing. It maps soil moisture at 320 m from the simulated
sample scene in resources/sample/ with the bundled demo model (trained on simulated data), on
each of the sample's dates (resources/sample/dates.json), writes one GeoTIFF per date, and
reports where they are, their summary (m3/m3), the model's label, and how each agrees with
the scene's known truth on the 320 m grid (Pearson R, ubRMSE, bias), next to SMAP alone (the
coarse input, re-gridded) and the share of the map's variance that lies between SMAP cells
(1 = the map is SMAP's pattern; the truth's own share is printed beside it).
With ``--via qgis_process`` (what ``make demo`` uses) the map is made by the plugin itself:
the Processing algorithm ``smqgis:estimate_sm_320m`` run headless by ``qgis_process``;
with ``--via core`` (the default) it calls ``smqgis.core.kinds.fusion`` directly, the same code
the algorithm runs. Either way the summary is read back from the written GeoTIFF, and a
quicklook PNG (a row per date: SMAP input | estimate | truth | scatter, in m3/m3, with the SMAP
cell edges drawn) is written beside the first map.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from .core import metrics, schema
from .core.errors import SmqgisError
from .core.kinds.fusion import estimate_sm_320m
from .core.pipeline import LayerInput
from .paths import DEMO_MODEL_PATH, PLUGIN_DIR, SAMPLE_DIR

log = logging.getLogger("smqgis.demo")

SAMPLE = SAMPLE_DIR
DEMO_MODEL = DEMO_MODEL_PATH
DEFAULT_OUTPUT = PLUGIN_DIR / "build" / "demo" / "soil_moisture_320m.tif"
#: The sample's simulated in-situ sensors (training/simulate/sample_sensors.py).
SAMPLE_SENSORS = "insitu_sensors_simulated.csv"
#: Pairs a sensor needs to enter the demo's averages: one per sample date (3). The paper's rule is 13
#: (``metrics.MIN_POINTS``), which three dates cannot reach; the demo says which it used.
DEMO_MIN_POINTS = 3


def sample_inputs(sample_dir: Path = SAMPLE) -> dict[str, LayerInput]:
    """The sample scene's inputs from its manifest.json (paths, acquisition times, products)."""
    manifest = json.loads((sample_dir / "manifest.json").read_text())
    return {
        key: LayerInput(str(sample_dir / spec["path"]), acquired_utc=spec.get("acquisition_time"),
                        product=spec.get("product"))
        for key, spec in manifest["inputs"].items()
    }


def sample_dates(sample_dir: Path = SAMPLE) -> list[dict[str, object]]:
    """The sample's dates (``dates.json``): date, kind, what it shows and its scene folder (Path).

    A sample folder without ``dates.json`` is one date: its own folder.
    """
    listing = sample_dir / "dates.json"
    if not listing.is_file():
        manifest = json.loads((sample_dir / "manifest.json").read_text())
        return [{"date": str(manifest.get("anchor_time", ""))[:10], "kind": "", "what": "", "folder": sample_dir}]
    return [
        {**d, "folder": (sample_dir / str(d["folder"])).resolve()} for d in json.loads(listing.read_text())["dates"]
    ]


def smap_on_grid(output_path: str, smap_path: str) -> tuple[np.ndarray, np.ndarray]:
    """SMAP (m3/m3) at each output pixel's centre, and the id of the SMAP cell that holds it.

    The SMAP value is that of the cell containing the pixel centre (SMAP alone, re-gridded by
    nearest neighbour); ``ssm`` in mm over 0.05 m becomes m3/m3 with the sources table's depth.
    """
    import rasterio
    from rasterio.warp import transform as warp_points

    from .core.sources import VOLUMETRIC_DEPTH_M

    with rasterio.open(output_path) as out:
        rows, cols = np.mgrid[0 : out.height, 0 : out.width]
        xs, ys = rasterio.transform.xy(out.transform, rows.ravel(), cols.ravel())
        crs, shape = out.crs, out.shape
    with rasterio.open(smap_path) as sm:
        px, py = warp_points(crs, sm.crs, xs, ys)
        r, c = rasterio.transform.rowcol(sm.transform, px, py)
        r, c = np.asarray(r), np.asarray(c)
        data = sm.read(1, masked=True).astype(np.float64).filled(np.nan) * sm.scales[0] + sm.offsets[0]
        inside = (r >= 0) & (r < sm.height) & (c >= 0) & (c < sm.width)
        values = np.full(r.shape, np.nan)
        values[inside] = data[r[inside], c[inside]]
        cell = r * sm.width + c
    mm_per_m3m3 = 1000.0 * VOLUMETRIC_DEPTH_M["smap"]
    return (values / mm_per_m3m3).reshape(shape), cell.reshape(shape)


def agreement_with_truth(output_path: str, truth_path: str, smap_path: str | None = None) -> dict[str, float]:
    """R, ubRMSE and bias (m3/m3) of band 1 of ``output_path`` against the truth on the output grid.

    The truth is warped onto the output grid (average of its pixels) when its grid differs. With
    ``smap_path``, also SMAP alone's R, ubRMSE and bias against the same truth (``smap_*``) and the
    share of the map's and the truth's variance that lies between SMAP cells
    (``between_smap_cells`` / ``truth_between_smap_cells``, see
    :func:`smqgis.core.metrics.between_group_variance_share`).
    """
    import rasterio

    with rasterio.open(output_path) as out:
        pred = out.read(1, masked=True).filled(np.nan).astype(np.float64)
    truth = _truth_on_grid(output_path, truth_path)
    n = int(np.sum(np.isfinite(pred) & np.isfinite(truth)))
    result: dict[str, float] = {
        "r": metrics.pearson_r(pred, truth),
        "ubrmse": metrics.ubrmse(pred, truth),
        "bias": metrics.bias(pred, truth),
        "n_pixels": n,
    }
    if smap_path:
        smap, cell = smap_on_grid(output_path, smap_path)
        result.update(
            smap_r=metrics.pearson_r(smap, truth),
            smap_ubrmse=metrics.ubrmse(smap, truth),
            smap_bias=metrics.bias(smap, truth),
            between_smap_cells=metrics.between_group_variance_share(pred, cell),
            truth_between_smap_cells=metrics.between_group_variance_share(truth, cell),
        )
    return result


def raster_summary(path: str) -> dict[str, object]:
    """Size, CRS, pixel size, provenance tags and band-1 statistics (m3/m3) of a written map.

    The statistics are the engine's own (``EngineStats.summary``), recomputed from the file.
    """
    import rasterio

    from .core.engine import EngineStats

    with rasterio.open(path) as ds:
        coverage = ds.read(2) if ds.count > 1 else None
        tags = ds.tags()
        running = EngineStats()
        running.add(ds.read(1))  # the engine's NODATA is the map's nodata
        stats = running.summary()
        return {
            "path": path,
            "width": ds.width,
            "height": ds.height,
            "pixel_size_m": float(ds.transform.a),
            "crs": ds.crs.to_string() if ds.crs else "",
            "stats": stats,
            "tags": tags,
            "min_coverage": float(np.min(coverage)) if coverage is not None else float("nan"),
        }


def report(
    summary: dict,
    agreement: dict[str, float],
    *,
    label: str,
    how: str,
    seconds: float,
    warnings: list[str] | None = None,
) -> str:
    """The demo's printed summary."""
    s = summary["stats"]
    return "\n".join(
        [
            f"soil-moisture map written to: {summary['path']}",
            f"  model: {label}",
            f"  made by: {how}",
            f"  size: {summary['width']} x {summary['height']} px of {summary['pixel_size_m']:g} m, "
            f"CRS {summary['crs']}",
            f"  soil moisture (m3/m3): min {s['min']:.4f}  mean {s['mean']:.4f}  max {s['max']:.4f}  "
            f"std {s['std']:.4f}; valid fraction {s['valid_fraction']:.3f}",
            f"  agreement with the sample's known truth on the 320 m grid ({agreement['n_pixels']} px): "
            f"R {agreement['r']:.3f}, ubRMSE {agreement['ubrmse']:.4f} m3/m3, bias {agreement['bias']:+.4f} m3/m3",
            *(
                [
                    f"  SMAP alone (the coarse input, re-gridded): R {agreement['smap_r']:.3f}, "
                    f"ubRMSE {agreement['smap_ubrmse']:.4f} m3/m3, bias {agreement['smap_bias']:+.4f} m3/m3; "
                    f"share of the map's variance between SMAP cells {agreement['between_smap_cells']:.0%} "
                    f"(truth: {agreement['truth_between_smap_cells']:.0%})"
                ]
                if "smap_r" in agreement
                else []
            ),
            f"  wall time: {seconds:.2f} s",
        ]
        + [f"  warning: {w}" for w in (warnings or [])]
    )


def validate_against_sensors(maps: list[str], sensors_csv: Path, no_report: bool = False) -> str:
    """Validate the demo maps against the sample's simulated sensors; the printed table (and report path)."""
    from .core.report import write_html_report
    from .core.validation import validate_maps

    result = validate_maps(maps, str(sensors_csv), min_points=DEMO_MIN_POINTS)
    out = Path(maps[0]).parent
    text = [
        f"validation against the sample's SIMULATED sensors ({sensors_csv.name}); sensors with >= "
        f"{DEMO_MIN_POINTS} pairs (one per date) enter the averages - the paper asks for 13, which a "
        "3-date sample cannot give:",
        result.table_text(),
        f"  per-sensor CSV: {result.write_csv(str(out / 'validation.csv'))}",
    ]
    if not no_report:
        text.append(f"  report: {write_html_report(result, str(out / 'validation.html'))}")
    return "\n".join(text)


def smen_demo(output: str, via: str) -> str:
    """The 3 km map of the SMEN sample (resources/sample_smen) with the demo SMEN model, and its summary.

    With ``via="qgis_process"`` the map is made by ``smqgis:estimate_sm_3km`` run by qgis_process
    (list parameters repeated once per item), else by ``smqgis.core.kinds.smen`` directly.
    """
    from .core.kinds import smen

    if via != "qgis_process":
        return smen.demo_summary(output)
    params = smen.demo_processing_params(output)
    args = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            args.append(f"--{key}={item}")
    proc = subprocess.run([qgis_process_executable(), "run", "smqgis:estimate_sm_3km", "--json", *args],  # noqa: S603
                          capture_output=True, text=True, check=False, env=sample_env())
    if proc.returncode != 0:
        raise RuntimeError(f"qgis_process failed on the 3 km map ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return "made by: qgis_process run smqgis:estimate_sm_3km\n" + smen.demo_summary(output, run=False)


def sample_env() -> dict[str, str]:
    """The environment of the demo's qgis_process runs: GDAL writes no ``.aux.xml`` beside the bundled sample.

    (QGIS computes statistics of the layers it opens and GDAL keeps them in side-car files by
    default; the sample folder may be read-only in an installed plugin, and must stay as shipped.)
    """
    return {**os.environ, "GDAL_PAM_ENABLED": "NO"}


def qgis_process_executable() -> str:
    """The qgis_process binary (Debian 12's wrapper is broken on 3.22: prefer qgis_process.bin)."""
    for name in ("qgis_process.bin", "qgis_process"):
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if found:
            return found
    raise FileNotFoundError("qgis_process is not installed: install QGIS (see README) or use --via core")


def run_via_qgis_process(model: str, sample: Path, output: str, mode: str, provider: str) -> dict:
    """Run ``smqgis:estimate_sm_320m`` with qgis_process on the sample; return its JSON results.

    Needs the plugin on QGIS_PLUGINPATH as a folder named ``smqgis`` (``make plugin-link``).
    """
    from .processing.ids import ALGORITHM_ID, EXECUTION_PROVIDERS, MODES

    exe = qgis_process_executable()
    enable = subprocess.run([exe, "plugins", "enable", "smqgis"], capture_output=True, text=True, check=False,
                            env=sample_env())
    if enable.returncode != 0 and "already enabled" not in (enable.stdout + enable.stderr):
        raise RuntimeError(f"qgis_process could not enable the smqgis plugin: {enable.stderr.strip()}")
    manifest = json.loads((sample / "manifest.json").read_text())
    params = {
        "MODEL": model,
        "MODE": MODES.index(mode),
        "PROVIDER": EXECUTION_PROVIDERS.index(provider),
        "OUTPUT": output,
    }
    params.update({key.upper(): str(sample / spec["path"]) for key, spec in manifest["inputs"].items()})
    args = [f"--{name}={value}" for name, value in params.items()]
    proc = subprocess.run([exe, "run", ALGORITHM_ID, "--json", *args], capture_output=True, text=True, check=False,
                          env=sample_env())
    if proc.returncode != 0:
        raise RuntimeError(f"qgis_process failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout[proc.stdout.index("{") :])["results"]


def quicklook(rows: list[dict[str, str]], png_path: str, label: str) -> str:
    """One row per date - SMAP input | estimate | truth | scatter, all in m3/m3 - as a PNG; returns its path.

    ``rows``: dicts with ``title``, ``output`` (the map), ``truth`` and ``smap`` (raster paths). The
    SMAP cell edges are drawn over the maps, so detail inside a SMAP cell is easy to see.
    """
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():  # Debian's mpl_toolkits beside pip's matplotlib: 3-D is not needed
        warnings.filterwarnings("ignore", message="Unable to import Axes3D")
        import matplotlib.pyplot as plt
    import rasterio

    fig, axes = plt.subplots(len(rows), 4, figsize=(17, 4.0 * len(rows)), constrained_layout=True, squeeze=False)
    for ax_row, row in zip(axes, rows):
        with rasterio.open(row["output"]) as out:
            pred = out.read(1, masked=True).astype(np.float64).filled(np.nan)
            ext = tuple(v / 1000.0 for v in (out.bounds.left, out.bounds.right, out.bounds.bottom, out.bounds.top))
            px_km = out.transform.a / 1000.0
        truth = _truth_on_grid(row["output"], row["truth"])
        smap, cell = smap_on_grid(row["output"], row["smap"])
        edges = _cell_edges(cell, ext[0], ext[3], px_km)
        panels = (
            (smap, "SMAP input, re-gridded"),
            (pred, "smqgis estimate, 320 m"),
            (truth, "known truth, 320 m mean"),
        )
        for ax, data, title in zip(ax_row, *zip(*panels)):
            im = ax.imshow(data, extent=ext, cmap="YlGnBu", vmin=0.0, vmax=0.5)
            # SMAP cell edges: where the cell id changes between neighbouring pixels
            for (x0, y0), (x1, y1) in edges:
                ax.plot([x0, x1], [y0, y1], color="red", lw=1.2)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("easting (km)")
            ax.set_ylabel(f"{row['title']}\nnorthing (km)" if ax is ax_row[0] else "northing (km)")
            fig.colorbar(im, ax=ax, label="soil moisture (m3/m3)")
        ax = ax_row[3]
        ok = np.isfinite(pred) & np.isfinite(truth)
        ax.scatter(truth[ok], pred[ok], s=10, alpha=0.7, label="estimate")
        ax.scatter(truth[ok], smap[ok], s=8, alpha=0.5, marker="x", color="grey", label="SMAP alone")
        lo = float(min(np.nanmin(truth[ok]), np.nanmin(pred[ok]), np.nanmin(smap[ok]))) if ok.any() else 0.0
        hi = float(max(np.nanmax(truth[ok]), np.nanmax(pred[ok]), np.nanmax(smap[ok]))) if ok.any() else 0.5
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        ax.set_xlabel("truth (m3/m3)")
        ax.set_ylabel("estimate (m3/m3)")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title("estimate vs truth", fontsize=10)
    fig.suptitle(f"{label}  (red lines: SMAP 0.1 deg cell edges)")
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
    return png_path


def _cell_edges(cell: np.ndarray, left: float, top: float, px: float) -> list[tuple[tuple[float, float], ...]]:
    """Segments (map units) along the pixel edges where the coarse cell id changes."""
    segs = []
    rows, cols = cell.shape
    for i in range(rows):
        for j in range(cols):
            if j + 1 < cols and cell[i, j] != cell[i, j + 1]:
                x = left + (j + 1) * px
                segs.append(((x, top - i * px), (x, top - (i + 1) * px)))
            if i + 1 < rows and cell[i, j] != cell[i + 1, j]:
                y = top - (i + 1) * px
                segs.append(((left + j * px, y), (left + (j + 1) * px, y)))
    return segs


def _truth_on_grid(output_path: str, truth_path: str) -> np.ndarray:
    """The truth raster on the output's grid (m3/m3, NaN outside)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(output_path) as out:
        grid = (out.crs, out.transform, out.shape)
    with rasterio.open(truth_path) as tr:
        if (tr.crs, tr.transform, tr.shape) == grid:
            truth = tr.read(1, masked=True).astype(np.float64).filled(np.nan)
        else:
            truth = np.full(grid[2], np.nan, dtype=np.float64)
            reproject(
                rasterio.band(tr, 1),
                truth,
                dst_crs=grid[0],
                dst_transform=grid[1],
                dst_nodata=np.nan,
                resampling=Resampling.average,
            )
        return truth * tr.scales[0] + tr.offsets[0]


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit status."""
    import time

    parser = argparse.ArgumentParser(description="Map soil moisture at 320 m on the bundled sample scene.")
    parser.add_argument("--model", default=str(DEMO_MODEL), help="smqgis .onnx model (default: the demo model)")
    parser.add_argument("--sample", default=str(SAMPLE), help="sample scene folder with manifest.json")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="output GeoTIFF")
    parser.add_argument("--mode", default="fast", choices=schema.INFERENCE_MODES)
    parser.add_argument("--provider", default="auto", choices=schema.EXECUTION_PROVIDERS)
    parser.add_argument(
        "--via",
        default="core",
        choices=("core", "qgis_process"),
        help="core: call smqgis.core directly; qgis_process: run the plugin's Processing algorithm",
    )
    parser.add_argument("--no-png", action="store_true", help="do not write the quicklook PNG")
    parser.add_argument("--no-smen", action="store_true", help="do not make the 3 km SMEN map")
    parser.add_argument(
        "--no-validation", action="store_true", help="do not validate the maps against the sample's simulated sensors"
    )
    parser.add_argument(
        "--first-date-only",
        action="store_true",
        help="map the sample's first date only (default: every date in dates.json)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not os.path.isfile(args.model):
        log.error(
            "the demo model %s is missing; it is made by `python -m training.simulate.make_resources` "
            "(see README) - or pass --model",
            args.model,
        )
        return 2
    sample = Path(args.sample)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    dates = sample_dates(sample)
    if args.first_date_only:
        dates = dates[:1]
    rows = []
    for k, entry in enumerate(dates):
        folder = Path(str(entry["folder"]))
        out = Path(args.output)
        output = str(out if k == 0 else out.with_name(f"{out.stem}_{entry['date']}{out.suffix}"))
        t0 = time.perf_counter()
        warnings: list[str] = []
        try:
            if args.via == "qgis_process":
                results = run_via_qgis_process(
                    os.path.abspath(args.model), folder.resolve(), os.path.abspath(output), args.mode, args.provider
                )
                label = str(results.get("MODEL_LABEL", ""))
                how = (
                    f"qgis_process run smqgis:estimate_sm_320m (mode {args.mode}, {results.get('EXECUTION_PROVIDER')})"
                )
            else:
                res = estimate_sm_320m(
                    args.model, sample_inputs(folder), output, mode=args.mode, provider=args.provider
                )
                label, how, warnings = res.label, f"smqgis.core (mode {res.mode}, {res.provider})", res.warnings
        except (SmqgisError, RuntimeError, FileNotFoundError) as exc:
            log.error("%s", exc)
            return 1
        seconds = time.perf_counter() - t0
        summary = raster_summary(os.path.abspath(output))
        truth, smap = str(folder / "truth_sm_320m.tif"), str(folder / "smap.tif")
        agreement = agreement_with_truth(summary["path"], truth, smap)
        title = f"{entry['date']} ({entry['kind']})" if entry["kind"] else str(entry["date"])
        sys.stdout.write(f"\n== sample date {title}: {entry['what']}\n" if entry["what"] else f"\n== {title}\n")
        sys.stdout.write(report(summary, agreement, label=label, how=how, seconds=seconds, warnings=warnings) + "\n")
        rows.append({"title": title, "output": summary["path"], "truth": truth, "smap": smap})
    if not args.no_png:
        png = quicklook(rows, str(Path(rows[0]["output"]).with_suffix(".png")), label)
        sys.stdout.write(f"\nquicklook (a row per date: SMAP | estimate | truth | scatter): {png}\n")
    if not args.no_smen:
        sys.stdout.write("\n" + smen_demo(str(Path(rows[0]["output"]).with_name("soil_moisture_3km.tif")), args.via)
                         + "\n")
    sensors = sample / SAMPLE_SENSORS
    if sensors.is_file() and not args.no_validation:
        sys.stdout.write("\n" + validate_against_sensors([r["output"] for r in rows], sensors, args.no_png) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
