"""Simulated in-situ sensors for the bundled sample scene: ``resources/sample/insitu_sensors_simulated.csv``.

SYNTHETIC DATA, not ISMN measurements. ISMN data may not be redistributed, so the sample
ships ISMN-like sensors from the project's simulator instead: sensors placed inside the
sample's 320 m output area (mostly outside forest, as ISMN stations are), each reading the
simulated 0-5 cm truth of its own 10 m pixel (computed by the world itself, on the day of every
sample date in ``dates.json``) with the per-sensor calibration, noise and ISMN quality flags of
:mod:`training.simulate.insitu`. Readings are hourly at whole hours, ``HOURS_AROUND`` on each
side of every sample date's Sentinel-1 anchor time (the truth is daily, so all readings of
one date see the same truth, with independent noise and flags). The CSV is the plain
in-situ format of ``smqgis.core.validation.read_insitu_csv``.

Run (either environment; pure numpy + pyproj + rasterio, a few seconds):
``python -m training.simulate.sample_sensors`` (rerun after the sample gains dates).
Seeded: the same sample gives the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer

from .insitu import NETWORKS, SENSOR_TYPES, Sensor, reading
from .noise import salt_of
from .world import World, WorldConfig

LOG = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "resources" / "sample"
OUTPUT_NAME = "insitu_sensors_simulated.csv"
#: Sensors in the 5.12 km sample area (ISMN dense networks reach a few per 10 km2).
N_SENSORS = 24
#: Hourly readings on each side of every sample date's anchor (the pairing tolerance is 1 h).
HOURS_AROUND = 2
#: Sensors stay this far inside the 320 m output area (m): one output pixel, so no sensor sits on its edge.
INSET_M = 320.0
#: Probability of skipping a candidate sensor site in forest (land cover 4), as in insitu.place_sensors.
FOREST_SKIP = 0.85
FOREST = 4
#: Readings of one date get indices date_index * READINGS_PER_DATE + k (independent noise and flags).
READINGS_PER_DATE = 100


def output_bounds(sample_dir: Path) -> tuple[float, float, float, float]:
    """The sample's 320 m output area (EPSG of the truth), from truth_sm_320m.tif."""
    with rasterio.open(sample_dir / "truth_sm_320m.tif") as ds:
        return tuple(ds.bounds)


def place(world: World, bounds: tuple[float, float, float, float], count: int) -> list[Sensor]:
    """``count`` sensors at 10 m pixel centres inside ``bounds`` (inset by INSET_M), seeded by the world."""
    c = world.config
    rng = np.random.default_rng(salt_of(c.seed, "sample-sensors", count) & 0xFFFFFFFF)
    to_lonlat = Transformer.from_crs(c.crs, "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = bounds[0] + INSET_M, bounds[1] + INSET_M, bounds[2] - INSET_M, bounds[3] - INSET_M
    sensors: list[Sensor] = []
    while len(sensors) < count:
        x = 10.0 * np.floor((x0 + rng.random() * (x1 - x0)) / 10.0) + 5.0
        y = 10.0 * np.floor((y0 + rng.random() * (y1 - y0)) / 10.0) + 5.0
        lc = int(world.static(np.array([x]), np.array([y])).landcover[0, 0])
        if lc == FOREST and rng.random() < FOREST_SKIP:
            continue
        k = len(sensors)
        network = NETWORKS[k % len(NETWORKS)]
        lon, lat = to_lonlat.transform(x, y)
        sensors.append(Sensor(
            sensor_id=f"{network}__ST{k:04d}__{SENSOR_TYPES[network]}", x_m=float(x), y_m=float(y), lon=float(lon),
            lat=float(lat), split="test", landcover=lc, gain=float(1.0 + 0.04 * rng.standard_normal()),
            bias_m3m3=float(0.015 * rng.standard_normal()), noise_m3m3=float(rng.uniform(0.005, 0.015)),
        ))
    return sensors


def sample_anchor_times(sample_dir: Path) -> list[dt.datetime]:
    """The Sentinel-1 anchor time of every sample date (``dates.json``, else the one ``manifest.json``), sorted."""
    import json

    listing = sample_dir / "dates.json"
    if listing.is_file():
        times = [d["anchor_time"] for d in json.loads(listing.read_text())["dates"]]
    else:
        times = [json.loads((sample_dir / "manifest.json").read_text())["anchor_time"]]
    return sorted(dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)


def make_sensors_csv(sample_dir: Path = SAMPLE_DIR, out_path: Path | None = None, count: int = N_SENSORS) -> Path:
    """Write the sample's simulated sensors CSV and return its path."""
    out_path = out_path or sample_dir / OUTPUT_NAME
    world = World(WorldConfig())
    sensors = place(world, output_bounds(sample_dir), count)
    rows = []
    for d, when in enumerate(sample_anchor_times(sample_dir)):
        day = world.config.day_of(when)
        hour = when.replace(minute=0, second=0, microsecond=0)
        for s in sensors:
            x, y = np.array([s.x_m]), np.array([s.y_m])
            truth = float(world.soil_moisture(world.static(x, y), x, y, day)[0, 0])
            for k, h in enumerate(range(-HOURS_AROUND + 1, HOURS_AROUND + 1)):
                t = hour + dt.timedelta(hours=h)
                value, flag = reading(world, s, truth, d * READINGS_PER_DATE + k)
                rows.append([s.sensor_id, f"{s.lon:.6f}", f"{s.lat:.6f}", t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             f"{value:.4f}", flag, s.sensor_id.split("__")[0], str(s.landcover), "true"])
    rows.sort(key=lambda r: (r[0], r[3]))
    with open(out_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["sensor_id", "lon", "lat", "time_utc", "sm_m3m3", "flag", "network", "landcover",
                         "simulated"])
        writer.writerows(rows)
    LOG.info("wrote %s: %d sensors, %d readings", out_path, len(sensors), len(rows))
    return out_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample-dir", type=Path, default=SAMPLE_DIR)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_sensors_csv(args.sample_dir, args.out)


if __name__ == "__main__":
    main()
