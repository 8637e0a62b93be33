"""``python -m smqgis.demo``: the main job on the bundled sample scene, with its agreement to the truth.

What ``make demo`` runs after installing. It maps soil moisture at 320 m from the simulated
sample scene in resources/sample/ with the bundled demo model (trained on simulated data),
writes the GeoTIFF, and reports where it is, its summary (m3/m3), the model's label, and
how it agrees with the scene's known truth on the 320 m grid (Pearson R, ubRMSE, bias).
QGIS-free: it calls ``smqgis.core.pipeline`` directly, the same code the Processing
algorithm runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from .core import metrics
from .core.errors import SmqgisError
from .core.pipeline import LayerInput, RunResult, estimate_sm_320m

log = logging.getLogger("smqgis.demo")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample"
DEMO_MODEL = ROOT / "resources" / "models" / "demo_fusion_simulated.onnx"
DEFAULT_OUTPUT = ROOT / "build" / "demo" / "soil_moisture_320m.tif"


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
    from rasterio.warp import Resampling, reproject

    with rasterio.open(output_path) as out:
        pred = out.read(1, masked=True).filled(np.nan).astype(np.float64)
        grid = (out.crs, out.transform, out.shape)
    with rasterio.open(truth_path) as tr:
        if (tr.crs, tr.transform, tr.shape) == grid:
            truth = tr.read(1, masked=True).astype(np.float64).filled(np.nan)
            truth = truth * tr.scales[0] + tr.offsets[0]
        else:
            truth = np.full(grid[2], np.nan, dtype=np.float64)
            reproject(rasterio.band(tr, 1), truth, dst_crs=grid[0], dst_transform=grid[1], dst_nodata=np.nan,
                      resampling=Resampling.average)
            truth = truth * tr.scales[0] + tr.offsets[0]
    n = int(np.sum(np.isfinite(pred) & np.isfinite(truth)))
    return {"r": metrics.pearson_r(pred, truth), "ubrmse": metrics.ubrmse(pred, truth),
            "bias": metrics.bias(pred, truth), "n_pixels": n}


def report(res: RunResult, agreement: dict[str, float]) -> str:
    """The demo's printed summary."""
    s = res.stats
    return "\n".join([
        f"soil-moisture map written to: {res.output_path}",
        f"  model: {res.label}",
        f"  size: {res.width} x {res.height} px of {res.transform[0]:g} m, CRS {res.crs}, mode {res.mode}, "
        f"provider {res.provider}",
        f"  soil moisture (m3/m3): min {s['min']:.4f}  mean {s['mean']:.4f}  max {s['max']:.4f}  "
        f"std {s['std']:.4f}; valid fraction {s['valid_fraction']:.3f}",
        f"  agreement with the sample's known truth on the 320 m grid ({agreement['n_pixels']} px): "
        f"R {agreement['r']:.3f}, ubRMSE {agreement['ubrmse']:.4f} m3/m3, bias {agreement['bias']:+.4f} m3/m3",
        f"  time: {res.seconds['wall']:.2f} s (read/warp/encode {res.seconds['read_warp_encode']:.2f} s, "
        f"inference {res.seconds['inference']:.2f} s)",
    ] + [f"  warning: {w}" for w in res.warnings])


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Map soil moisture at 320 m on the bundled sample scene.")
    parser.add_argument("--model", default=str(DEMO_MODEL), help="smqgis .onnx model (default: the demo model)")
    parser.add_argument("--sample", default=str(SAMPLE), help="sample scene folder with manifest.json")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="output GeoTIFF")
    parser.add_argument("--mode", default="fast", choices=("fast", "exact"))
    parser.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not os.path.isfile(args.model):
        log.error("the demo model %s is missing; it is made by `python -m training.simulate.make_resources` "
                  "(see README) - or pass --model", args.model)
        return 2
    sample = Path(args.sample)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    try:
        res = estimate_sm_320m(args.model, sample_inputs(sample), args.output, mode=args.mode,
                               provider=args.provider)
    except SmqgisError as exc:
        log.error("%s", exc)
        return 1
    agreement = agreement_with_truth(res.output_path, str(sample / "truth_sm_320m.tif"))
    sys.stdout.write(report(res, agreement) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
