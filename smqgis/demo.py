"""``python -m smqgis.demo``: the main job on the bundled sample scene, with its agreement to the truth.

What ``make demo`` runs after installing. It maps soil moisture at 320 m from the simulated
sample scene in resources/sample/ with the bundled demo model (trained on simulated data),
writes the GeoTIFF, and reports where it is, its summary (m3/m3), the model's label, and
how it agrees with the scene's known truth on the 320 m grid (Pearson R, ubRMSE, bias).
With ``--via qgis_process`` (what ``make demo`` uses) the map is made by the plugin itself:
the Processing algorithm ``smqgis:estimate_sm_320m`` run headless by ``qgis_process``;
with ``--via core`` (the default) it calls ``smqgis.core.kinds.fusion`` directly, the same code
the algorithm runs. Either way the summary is read back from the written GeoTIFF, and a
quicklook PNG (estimate | truth | scatter, in m3/m3) is written beside it.
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


def sample_inputs(sample_dir: Path = SAMPLE) -> dict[str, LayerInput]:
    """The sample scene's inputs from its manifest.json (paths, acquisition times, products)."""
    manifest = json.loads((sample_dir / "manifest.json").read_text())
    return {
        key: LayerInput(str(sample_dir / spec["path"]), acquired_utc=spec.get("acquisition_time"),
                        product=spec.get("product"))
        for key, spec in manifest["inputs"].items()
    }


def agreement_with_truth(output_path: str, truth_path: str) -> dict[str, float]:
    """R, ubRMSE and bias (m3/m3) of band 1 of ``output_path`` against the truth on the output grid.

    The truth is warped onto the output grid (average of its pixels) when its grid differs.
    """
    import rasterio

    with rasterio.open(output_path) as out:
        pred = out.read(1, masked=True).filled(np.nan).astype(np.float64)
    truth = _truth_on_grid(output_path, truth_path)
    n = int(np.sum(np.isfinite(pred) & np.isfinite(truth)))
    return {"r": metrics.pearson_r(pred, truth), "ubrmse": metrics.ubrmse(pred, truth),
            "bias": metrics.bias(pred, truth), "n_pixels": n}


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


def report(summary: dict, agreement: dict[str, float], *, label: str, how: str, seconds: float,
           warnings: list[str] | None = None) -> str:
    """The demo's printed summary."""
    s = summary["stats"]
    return "\n".join([
        f"soil-moisture map written to: {summary['path']}",
        f"  model: {label}",
        f"  made by: {how}",
        f"  size: {summary['width']} x {summary['height']} px of {summary['pixel_size_m']:g} m, "
        f"CRS {summary['crs']}",
        f"  soil moisture (m3/m3): min {s['min']:.4f}  mean {s['mean']:.4f}  max {s['max']:.4f}  "
        f"std {s['std']:.4f}; valid fraction {s['valid_fraction']:.3f}",
        f"  agreement with the sample's known truth on the 320 m grid ({agreement['n_pixels']} px): "
        f"R {agreement['r']:.3f}, ubRMSE {agreement['ubrmse']:.4f} m3/m3, bias {agreement['bias']:+.4f} m3/m3",
        f"  wall time: {seconds:.2f} s",
    ] + [f"  warning: {w}" for w in (warnings or [])])


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
    enable = subprocess.run([exe, "plugins", "enable", "smqgis"], capture_output=True, text=True,
                            check=False)
    if enable.returncode != 0 and "already enabled" not in (enable.stdout + enable.stderr):
        raise RuntimeError(f"qgis_process could not enable the smqgis plugin: {enable.stderr.strip()}")
    manifest = json.loads((sample / "manifest.json").read_text())
    params = {"MODEL": model, "MODE": MODES.index(mode), "PROVIDER": EXECUTION_PROVIDERS.index(provider),
              "OUTPUT": output}
    params.update({key.upper(): str(sample / spec["path"])
                   for key, spec in manifest["inputs"].items()})
    args = [f"--{name}={value}" for name, value in params.items()]
    proc = subprocess.run([exe, "run", ALGORITHM_ID, "--json", *args], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"qgis_process failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout[proc.stdout.index("{"):])["results"]


def quicklook(output_path: str, truth_path: str, png_path: str, label: str) -> str:
    """Estimate | truth | scatter, all in m3/m3, as a PNG beside the map; returns its path."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():  # Debian's mpl_toolkits beside pip's matplotlib: 3-D is not needed
        warnings.filterwarnings("ignore", message="Unable to import Axes3D")
        import matplotlib.pyplot as plt
    import rasterio

    with rasterio.open(output_path) as out:
        pred = out.read(1, masked=True).astype(np.float64).filled(np.nan)
        ext = (out.bounds.left, out.bounds.right, out.bounds.bottom, out.bounds.top)
    truth = _truth_on_grid(output_path, truth_path)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    for ax, data, title in ((axes[0], pred, "smqgis estimate (320 m)"), (axes[1], truth, "known truth (320 m mean)")):
        im = ax.imshow(data, extent=ext, cmap="YlGnBu", vmin=0.0, vmax=0.5)
        ax.set_title(title)
        ax.set_xlabel("easting (m)")
        ax.set_ylabel("northing (m)")
        fig.colorbar(im, ax=ax, label="soil moisture (m3/m3)")
    ok = np.isfinite(pred) & np.isfinite(truth)
    axes[2].scatter(truth[ok], pred[ok], s=10, alpha=0.7)
    lo = float(min(np.nanmin(truth[ok]), np.nanmin(pred[ok]))) if ok.any() else 0.0
    hi = float(max(np.nanmax(truth[ok]), np.nanmax(pred[ok]))) if ok.any() else 0.5
    axes[2].plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
    axes[2].set_xlabel("truth (m3/m3)")
    axes[2].set_ylabel("estimate (m3/m3)")
    axes[2].legend(loc="upper left")
    axes[2].set_title("estimate vs truth")
    fig.suptitle(label)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path


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
            reproject(rasterio.band(tr, 1), truth, dst_crs=grid[0], dst_transform=grid[1], dst_nodata=np.nan,
                      resampling=Resampling.average)
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
    parser.add_argument("--via", default="core", choices=("core", "qgis_process"),
                        help="core: call smqgis.core directly; qgis_process: run the plugin's Processing algorithm")
    parser.add_argument("--no-png", action="store_true", help="do not write the quicklook PNG")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not os.path.isfile(args.model):
        log.error("the demo model %s is missing; it is made by `python -m training.simulate.make_resources` "
                  "(see README) - or pass --model", args.model)
        return 2
    sample = Path(args.sample)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    warnings: list[str] = []
    try:
        if args.via == "qgis_process":
            results = run_via_qgis_process(os.path.abspath(args.model), sample.resolve(),
                                           os.path.abspath(args.output), args.mode, args.provider)
            label = str(results.get("MODEL_LABEL", ""))
            how = f"qgis_process run smqgis:estimate_sm_320m (mode {args.mode}, {results.get('EXECUTION_PROVIDER')})"
        else:
            res = estimate_sm_320m(args.model, sample_inputs(sample), args.output, mode=args.mode,
                                   provider=args.provider)
            label, how, warnings = res.label, f"smqgis.core (mode {res.mode}, {res.provider})", res.warnings
    except (SmqgisError, RuntimeError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    seconds = time.perf_counter() - t0
    summary = raster_summary(os.path.abspath(args.output))
    truth = str(sample / "truth_sm_320m.tif")
    agreement = agreement_with_truth(summary["path"], truth)
    sys.stdout.write(report(summary, agreement, label=label, how=how, seconds=seconds, warnings=warnings) + "\n")
    if not args.no_png:
        png = quicklook(summary["path"], truth, str(Path(summary["path"]).with_suffix(".png")), label)
        sys.stdout.write(f"  quicklook (estimate | truth | scatter): {png}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
