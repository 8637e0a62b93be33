"""Simulated training data in the authors' released TFRecord schema.

The dataset step of paper 000 (section 2c) on the simulated world: for every
in-situ reading that passes the ISMN quality filter, join each source with the
Table 5 temporal bounds anchored on Sentinel-1 (the temporally closest image in
the past within the bound; Sentinel-2 only from scenes with < 30 % cloud; the
point is dropped if any source has none), cut 512 x 512 patches at 10 m around
the sensor, encode every band with its ``sources`` encoding and write
``tf.train.Example`` records through ``training.data.write_examples``. Readings
are taken at the first full hour after the Sentinel-1 overpass (within its 1 h
bound), so each image is paired with one reading. Splits are 60/20/20 by sensor.

To stay cheap on a CPU each sensor is paired with a random subset of the
Sentinel-1 dates (``DatasetSpec.dates_per_sensor``) rather than all of them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smqgis.core import sources
from smqgis.core.encoding import encode

from . import forward as fw
from .insitu import FREE_NETWORK, GOOD_FLAGS, SPLITS, Sensor, place_free_points, place_sensors, reading
from .noise import salt_of
from .world import LANDCOVER, World, WorldConfig, grid_axes

LOG = logging.getLogger(__name__)

PATCH_PX = 512
PIXEL_M = 10.0


@dataclass(frozen=True)
class DatasetSpec:
    """Size of a simulated dataset.

    Attributes:
        n_sensors: sensors in the world (split 60/20/20).
        dates_per_sensor: Sentinel-1 dates tried per sensor, per split (readings
            with bad flags are then dropped, like the paper's filter).
        shards: TFRecord files per split.
        free_points: training points drawn anywhere in the world (away from the held-out
            sensors) and labelled with the truth at the point (``insitu.place_free_points``).
        free_dates_per_point: Sentinel-1 dates per free point (the patch's static fields are
            computed once per point, so a few dates per point are cheaper than more points).
    """

    n_sensors: int = 150
    dates_per_sensor: dict[str, int] = field(default_factory=lambda: {"train": 10, "val": 15, "test": 15})
    shards: int = 2
    free_points: int = 0
    free_dates_per_point: int = 3


@dataclass(frozen=True)
class Join:
    """The images joined to one Sentinel-1 anchor (Table 5 bounds)."""

    s1: fw.Acquisition
    s2: fw.Acquisition
    smap: fw.Acquisition
    gldas: fw.Acquisition


def joined_anchors(world: World) -> list[Join]:
    """Sentinel-1 images for which every other time-varying source has an image within its bound."""
    bound = {k: sources.SOURCES[k].temporal_bound_s / 86400.0 for k in ("sentinel2", "smap", "gldas")}
    max_cloud = sources.SOURCES["sentinel2"].ee_filters["max_cloud_percent"]
    s2s, smaps, gldass = fw.s2_acquisitions(world), fw.smap_acquisitions(world), fw.gldas_acquisitions(world)
    joins = []
    for s1 in fw.s1_acquisitions(world):
        s2 = fw.latest_within(s2s, s1.day, bound["sentinel2"], max_cloud)
        smap = fw.latest_within(smaps, s1.day, bound["smap"])
        gldas = fw.latest_within(gldass, s1.day, bound["gldas"])
        if s2 is not None and smap is not None and gldas is not None:
            joins.append(Join(s1, s2, smap, gldas))
    return joins


def reading_day(s1: fw.Acquisition) -> float:
    """Time of the in-situ reading paired with a Sentinel-1 image: the next full hour (days)."""
    return math.floor(s1.day * 24.0 + 1.0) / 24.0


class PatchRenderer:
    """Physical inputs on a 512 x 512 patch around a sensor, caching the sensor's static fields."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.clouds = fw.CloudField(world)
        self.coarse = fw.CoarseProducts(world)
        self._static_key: str | None = None

    def grid(self, sensor: Sensor) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre axes of the patch; the sensor is pixel (256, 256)."""
        x0 = sensor.x_m - 5.0 - PATCH_PX / 2 * PIXEL_M
        y_top = sensor.y_m + 5.0 + PATCH_PX / 2 * PIXEL_M
        return grid_axes(x0, y_top, PATCH_PX, PATCH_PX, PIXEL_M)

    def _static(self, sensor: Sensor) -> None:
        if self._static_key != sensor.sensor_id:
            self.xs, self.ys = self.grid(sensor)
            self.st = self.world.static(self.xs, self.ys)
            self.soil = fw.soilgrids_product(self.world, self.st, self.xs, self.ys)
            self._static_key = sensor.sensor_id

    def render(self, sensor: Sensor, join: Join) -> dict[str, Any]:
        """Physical values per band reference (``"sentinel1/VV"`` -> [512, 512] or scalar) and the truth."""
        self._static(sensor)
        w, xs, ys, st = self.world, self.xs, self.ys, self.st
        s1 = fw.s1_image(w, st, xs, ys, join.s1)
        s2 = fw.s2_image(w, self.clouds, st, xs, ys, join.s2)
        i, j = self.coarse.cell_of(sensor.lon, sensor.lat, fw.SMAP_CELL_DEG)
        gi, gj = self.coarse.cell_of(sensor.lon, sensor.lat, fw.GLDAS_CELL_DEG)
        values: dict[str, Any] = {f"sentinel1/{b}": s1[b] for b in ("VV", "VH", "angle")}
        values.update({f"sentinel2/{b}": s2[b] for b in fw.S2_BANDS})
        values["dem/elevation"] = st.elevation_m
        values.update({f"soilgrids/{b}": self.soil[b] for b in ("sand", "silt", "clay", "bdod")})
        values["smap/ssm"] = self.coarse.smap_ssm_mm(i, j, join.smap)
        values["gldas/SoilMoi0_10cm_inst"] = self.coarse.gldas_kgm2(gi, gj, join.gldas)
        c = PATCH_PX // 2  # the sensor's own pixel
        values["truth"] = float(w.soil_moisture(st.at(c, c), xs[c : c + 1], ys[c : c + 1], join.s1.whole_day)[0, 0])
        return values


def encode_example(values: dict[str, Any], sensor: Sensor, time_ms: float, label: float) -> dict[str, Any]:
    """The released-schema dict of one point (every band encoded with its ``sources`` encoding)."""
    example: dict[str, Any] = {}
    for src in sources.SOURCES.values():
        for band in src.bands:
            example[band.tfrecord_key] = encode(values[f"{src.key}/{band.name}"], band.encoding)
    example.update(
        center_lat=sensor.lat, center_long=sensor.lon, timestamp=time_ms, sensor_id=sensor.sensor_id, sm_0_5=label
    )
    return example


def sensor_points(world: World, sensor: Sensor, joins: list[Join], n_dates: int) -> list[Join]:
    """The Sentinel-1 anchors (with their joins) tried for one sensor, in time order."""
    rng = np.random.default_rng(salt_of(world.config.seed, "dates", sensor.sensor_id) & 0xFFFFFFFF)
    picks = np.sort(rng.choice(len(joins), size=min(n_dates, len(joins)), replace=False))
    return [joins[int(k)] for k in picks]


def _write_shard(args: tuple[dict[str, Any], list[dict[str, Any]], dict[str, int], str]) -> dict[str, Any]:
    """Worker: write the examples of some sensors to one TFRecord file; return counts and readings."""
    from training.data import write_examples  # TensorFlow only in the workers

    config, sensor_dicts, dates, path = args
    world = World(WorldConfig(**config))
    joins = joined_anchors(world)
    renderer = PatchRenderer(world)
    rows: list[dict[str, Any]] = []

    def examples() -> Iterator[dict[str, Any]]:
        for sd in sensor_dicts:
            sensor = Sensor(**sd)
            free = sensor.sensor_id.startswith(FREE_NETWORK + "__")
            for join in sensor_points(world, sensor, joins, dates["free" if free else sensor.split]):
                rday = reading_day(join.s1)
                values = renderer.render(sensor, join)
                value, flag = reading(world, sensor, values["truth"], join.s1.index)
                kept = flag in GOOD_FLAGS
                rows.append(
                    {
                        "sensor_id": sensor.sensor_id,
                        "time": world.config.time_of(rday).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "sm_0_5": round(value, 4),
                        "flag": flag,
                        "kept": int(kept),
                        "truth": round(values["truth"], 4),
                    }
                )
                if kept:
                    time_ms = (world.config.time_of(rday).timestamp()) * 1000.0
                    yield encode_example(values, sensor, time_ms, value)

    count = write_examples(path, examples())
    return {"path": path, "count": count, "readings": rows}


def write_dataset(
    out_dir: str | Path, world: World | None = None, spec: DatasetSpec | None = None, workers: int = 1
) -> dict[str, Any]:
    """Write train/val/test TFRecord shards, ``sensors.csv``, ``readings.csv`` and ``dataset.json``.

    Returns the summary written to ``dataset.json`` (files and point counts per split).
    """
    world = world or World()
    spec = spec or DatasetSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sensors = place_sensors(world, spec.n_sensors)
    held_out = [s for s in sensors if s.split != "train"]
    free = place_free_points(world, spec.free_points, held_out) if spec.free_points else []
    dates = {**spec.dates_per_sensor, "free": spec.free_dates_per_point}
    jobs = []
    for split in SPLITS:
        members = [asdict(s) for s in sensors if s.split == split]
        if split == "train":
            members += [asdict(s) for s in free]
        for k in range(spec.shards):
            path = str(out / f"{split}-{k:05d}-of-{spec.shards:05d}.tfrecord.gz")
            jobs.append((asdict(world.config), members[k :: spec.shards], dates, path))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_write_shard, jobs))
    else:
        results = [_write_shard(job) for job in jobs]
    with open(out / "sensors.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sensor_id", "split", "landcover", "lon", "lat", "x_m", "y_m"])
        for s in sensors:
            writer.writerow(
                [s.sensor_id, s.split, LANDCOVER[s.landcover], f"{s.lon:.6f}", f"{s.lat:.6f}", s.x_m, s.y_m]
            )
    readings = sorted((r for res in results for r in res["readings"]), key=lambda r: (r["sensor_id"], r["time"]))
    with open(out / "readings.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(readings[0]))
        writer.writeheader()
        writer.writerows(readings)
    summary = {
        "seed": world.config.seed,
        "spec": asdict(spec),
        "files": {
            split: sorted(Path(r["path"]).name for r in results if Path(r["path"]).name.startswith(split))
            for split in SPLITS
        },
        "points": {
            split: sum(r["count"] for r in results if Path(r["path"]).name.startswith(split)) for split in SPLITS
        },
        "sensors": {split: sum(s.split == split for s in sensors) for split in SPLITS},
        "free_points": len(free),
        "points_per_second": round(sum(r["count"] for r in results) / max(time.perf_counter() - start, 1e-9), 2),
        "readings_dropped_by_flag": sum(1 - r["kept"] for r in readings),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "dataset.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    LOG.info("dataset in %s: %s points, %s s", out, summary["points"], summary["seconds"])
    return summary


def main(argv: list[str] | None = None) -> None:
    """Command line: write a simulated dataset."""
    import argparse

    parser = argparse.ArgumentParser(description="Write simulated TFRecords in the released schema.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=WorldConfig().seed, help="world seed")
    parser.add_argument("--sensors", type=int, default=DatasetSpec().n_sensors)
    parser.add_argument("--train-dates", type=int, default=10, help="Sentinel-1 dates tried per training sensor")
    parser.add_argument("--val-dates", type=int, default=15)
    parser.add_argument("--test-dates", type=int, default=15)
    parser.add_argument("--shards", type=int, default=2, help="files per split")
    parser.add_argument("--free-points", type=int, default=0, help="truth-labelled training points anywhere")
    parser.add_argument("--free-dates", type=int, default=3, help="Sentinel-1 dates per free point")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = DatasetSpec(
        n_sensors=args.sensors,
        dates_per_sensor={"train": args.train_dates, "val": args.val_dates, "test": args.test_dates},
        shards=args.shards,
        free_points=args.free_points,
        free_dates_per_point=args.free_dates,
    )
    write_dataset(args.out, World(WorldConfig(seed=args.seed)), spec, workers=args.workers)


if __name__ == "__main__":
    main()
