"""Regenerate the bundled SMEN resources from fixed seeds: the 3 km sample inputs and the demo SMEN model.

    python -m training.smen.make_resources                # sample + demo model (~5 min on 2 CPU cores)
    python -m training.smen.make_resources --sample-only  # the sample only (~2-5 min: the world's soils)
    python -m training.smen.make_resources --model-only   # the demo model only

The sample (``resources/sample_smen/``) is one date of the simulated 36 km / 3 km series
of ``training.simulate.smen_data`` (world seed 3, 9 x 9 cells of 36 km over Oklahoma,
EASE-Grid 2.0): the SMAP-like 36 km radiometer raster of a held-out date that has no
3 km product (the situation SMEN is for), the k = 4 most recent (36 km, 3 km) pairs
before it, and the simulated 3 km truth of that date. Same seed, same bytes.

The demo model (``resources/models/demo_smen_simulated.onnx`` + ``.json``) is SMEN
(spatio-temporal, k = 4) trained on the simulated 2018-2019 product dates for
``DEMO_STEPS`` Adam steps (lr 1e-3, batch 8 crops of 48 px: the CPU budget, not the
paper's 1000 epochs at 1e-4) and exported with its held-out uRMSE. Its label says it
was trained on simulated data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from pathlib import Path

import numpy as np

from smqgis.core.kinds.smen import EASE2_3KM_M, EASE2_36KM_M, EASE2_CRS

from ..simulate.geotiff import BandSpec, write_stack
from ..simulate.smen_data import SmenRegion, SmenSimulator

LOG = logging.getLogger(__name__)

#: The sample's date: a held-out (2020) day between two Sentinel-1 days, so it has no 3 km product.
SAMPLE_DATE = "2020-05-21"
K = 4
DEMO_STEPS = 3000
DEMO_SEED = 0
NODATA = -9999.0


def _tif(path: Path, array: np.ndarray, pixel_m: float, region: SmenRegion, date: str, product: str) -> None:
    from affine import Affine

    transform = Affine(pixel_m, 0.0, region.x0_m, 0.0, -pixel_m, region.y_top_m)
    write_stack(
        path,
        [array.astype(np.float64)],
        [BandSpec("soil_moisture", "m3/m3")],
        crs=EASE2_CRS,
        transform=transform,
        dtype="float32",
        nodata=NODATA,
        acquisition_time=f"{date}T12:00:00Z",
        product=product,
        tags={
            "SIMULATED": "yes - smqgis simulator (training/simulate/smen_data.py), seed "
            f"{region.seed}; not a real observation"
        },
    )


def build_sample(sample_dir: Path, region: SmenRegion | None = None) -> dict:
    """Write the sample rasters and manifest; return the manifest."""
    region = region or SmenRegion()
    sim = SmenSimulator(region)
    day = (dt.date.fromisoformat(SAMPLE_DATE) - dt.date.fromisoformat(region.start_date)).days
    if sim.swath_mask(day).any():
        raise ValueError(f"{SAMPLE_DATE} has a 3 km product; the sample date must be one without")
    history = [d for d in range(day - 1, -1, -1) if sim.swath_mask(d).any()][:K][::-1]
    sample_dir.mkdir(parents=True, exist_ok=True)
    truth, _, radiometer, _ = sim.day_products(day)
    _tif(
        sample_dir / "current_36km.tif",
        radiometer,
        EASE2_36KM_M,
        region,
        SAMPLE_DATE,
        "simulated SMAP L3 radiometer 36 km (SPL3SMP-like)",
    )
    _tif(sample_dir / "truth_3km.tif", truth, EASE2_3KM_M, region, SAMPLE_DATE, "simulated 3 km truth")
    manifest = {
        "what": "SIMULATED SMAP 36 km / SMAP-Sentinel-1 3 km inputs for the SMEN 3 km map - not real observations",
        "generator": "python -m training.smen.make_resources --sample-only",
        "world_seed": region.seed,
        "crs": EASE2_CRS,
        "current_date": SAMPLE_DATE,
        "current_36km": "current_36km.tif",
        "truth_3km": "truth_3km.tif",
        "history_dates": [],
        "history_36km": [],
        "history_3km": [],
    }
    for i, d in enumerate(history, start=1):
        date = region.date_of(d).isoformat()
        _, _, rad, ap = sim.day_products(d)
        _tif(
            sample_dir / f"history_36km_{i}.tif",
            rad,
            EASE2_36KM_M,
            region,
            date,
            "simulated SMAP L3 radiometer 36 km (SPL3SMP-like)",
        )
        _tif(
            sample_dir / f"history_3km_{i}.tif",
            ap,
            EASE2_3KM_M,
            region,
            date,
            "simulated SMAP/Sentinel-1 active-passive 3 km (SPL2SMAP_S-like)",
        )
        manifest["history_dates"].append(date)
        manifest["history_36km"].append(f"history_36km_{i}.tif")
        manifest["history_3km"].append(f"history_3km_{i}.tif")
    (sample_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    LOG.info("sample for %s (history %s) in %s", SAMPLE_DATE, manifest["history_dates"], sample_dir)
    return manifest


def make_demo_model(work_dir: Path, model_out: Path) -> dict:
    """Train the demo SMEN on the simulated 2018-2019 product dates and export it with its sidecar JSON."""
    from ..simulate.smen_data import load_or_make_series
    from .config import SmenConfig
    from .export import export_model
    from .train import SmenTrainer, evaluate, split_examples

    region = SmenRegion()
    series = load_or_make_series(work_dir / f"series_seed{region.seed}.npz", region)
    train, test = split_examples(series, K, "2019-12-31")
    cfg = SmenConfig(k=K, learning_rate=1e-3, batch_size=8, patch_px=48, seed=DEMO_SEED)
    start = time.perf_counter()
    trainer = SmenTrainer(cfg, work_dir / "demo_run")
    trainer.fit(train, DEMO_STEPS, checkpoint_every=1000, verbose=False)
    seconds = time.perf_counter() - start
    metrics = {"held_out": evaluate(trainer.predict(test), test), "train": evaluate(trainer.predict(train), train)}
    description = (
        f"smqgis simulator (training/simulate/smen_data.py), world seed {region.seed}, 9 x 9 cells of 36 km over an "
        f"invented Oklahoma; {len(train)} training dates 2018-2019, {len(test)} held-out dates in 2020"
    )
    result = export_model(
        trainer.model,
        cfg,
        model_out,
        title="Demo SMEN 3 km (simulated)",
        description="SMEN (paper 002) trained on simulated SMAP 36 km / SMAP-Sentinel-1 3 km series; demo only.",
        trained_on={"kind": "simulated", "description": description},
        metrics=metrics,
        training={"steps": DEMO_STEPS, "seconds": round(seconds, 1)},
        seed=DEMO_SEED,
    )
    sidecar = {
        "model": model_out.name,
        "label": result["metadata"]["label"],
        "model_kind": "smen_3km",
        "k": K,
        "trained_on": result["metadata"]["trained_on"],
        "config": cfg.to_dict(),
        "steps": DEMO_STEPS,
        "train_seconds": round(seconds, 1),
        "metrics_ubrmse_m3m3": metrics,
        "parity_max_abs_diff_m3m3": result["parity_max_abs_diff"],
        "generator": "python -m training.smen.make_resources",
    }
    model_out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    LOG.info("demo SMEN: held-out %s, parity %.2g", metrics["held_out"], result["parity_max_abs_diff"])
    return sidecar


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample-dir", default="resources/sample_smen")
    parser.add_argument("--sample-only", action="store_true", help="write the sample only")
    parser.add_argument("--model-only", action="store_true", help="train and export the demo model only")
    parser.add_argument("--work-dir", default="build/smen")
    parser.add_argument("--model-out", default="resources/models/demo_smen_simulated.onnx")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.model_only:
        build_sample(Path(args.sample_dir))
    if not args.sample_only:
        make_demo_model(Path(args.work_dir), Path(args.model_out))


if __name__ == "__main__":
    main()
