"""Build the training dataset from ISMN in-situ data and Earth Engine: paper 000 §2c as a Beam pipeline.

The dataset step of training, on real data (``training.simulate.tfrecords`` is the same step on the
simulated world). Stages, in order:

``ReadISMN`` (the soil-moisture series of every sensor of the ISMN archives, with the ``ismn``
package) -> ``FilterDepthAndFlags`` (0-5 cm and 5-5 cm sensors, readings whose quality flag is in the
kept set, §2c step 1) -> ``FilterDates`` (an optional time range) -> ``BuildTable5Requests`` (a
512 x 512 px window at 10 m on the point's UTM zone and the reading's time, as an
``smqgis.core.ee_inputs.Request``) -> ``LookupImages`` (the Table 5 join on Earth Engine, one
``getInfo`` per reading, through the plugin core's selection) -> ``OnePerS1Image`` (the reading
nearest the anchor image's time per sensor and anchor image, the Table 5 note) -> ``FetchAndEncode``
(computePixels of every source through ``smqgis.core.ee_fetch``, resampled onto the window, encoded
with each band's ``sources`` encoding into the released schema) -> ``SplitBySensor`` (60/20/20 from a
SHA-256 of the sensor id) -> ``WriteTrain`` / ``WriteVal`` / ``WriteTest`` (gzipped TFRecord shards).

Run ``python -m training.make_dataset --ismn PATH --out DIR``; arguments it does not know go to
Beam's ``PipelineOptions`` (``--runner DataflowRunner --project ... --region ...``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from smqgis.core import ee_fetch, sources
from smqgis.core import ee_inputs as ei
from smqgis.core.errors import EarthEngineError

log = logging.getLogger(__name__)

#: ISMN quality flags kept by the paper (000, §2c step 1); a reading's whole flag string must be one of them.
DEFAULT_FLAGS = ("G", "C02", "C03", "C02,C03")
#: Deepest end of a 0-x cm sensor kept, and the depth of the "5-5 cm" sensors (m; paper 000 §2c).
TOP_LAYER_M = 0.05
#: Tolerance when comparing ISMN depths (m): the files write them with 6 decimals.
DEPTH_TOLERANCE_M = 1e-6
#: Side of the window around a sensor (px at :data:`smqgis.core.ee_inputs.HIGH_RES_M`): the released 512.
WINDOW_PX = 512
#: Train / val / test fractions of the sensors (paper 000: 60/20/20 by sensor).
SPLITS = (("train", 0.6), ("val", 0.2), ("test", 0.2))
#: The anchors of the join: Sentinel-1 (Table 5) or SMAP (Table 20), with the anchor's bound (s).
ANCHORS = {"sentinel1": sources.SOURCES["sentinel1"].temporal_bound_s, "smap": sources.HOUR_S}
#: Sentinel-1 window of the SMAP-anchored join (Table 20: 7 days).
SMAP_ANCHORED_S1_DAYS = 7.0
#: Released label field per sensor depth: 0-5 cm sensors -> ``sm_0_5``, 5-5 cm sensors -> ``sm_5_5``.
LABEL_0_5, LABEL_5_5 = "sm_0_5", "sm_5_5"


@dataclass(frozen=True)
class Reading:
    """One in-situ soil moisture reading (m3/m3) of one sensor, at ``time_ms`` (ms since 1970, UTC)."""

    network: str
    station: str
    instrument: str
    depth_from_m: float
    depth_to_m: float
    lon: float
    lat: float
    time_ms: int
    sm: float
    flag: str

    @property
    def sensor_id(self) -> str:
        """The released schema's ``NETWORK__STATION__SENSORTYPE``."""
        return f"{self.network}__{self.station}__{self.instrument}"

    @property
    def label_key(self) -> str:
        """The released label field of the sensor's depth."""
        return LABEL_0_5 if abs(self.depth_from_m) <= DEPTH_TOLERANCE_M else LABEL_5_5


def parse_flags(text: str) -> tuple[str, ...]:
    """Kept flags from a comma-separated list where a flag set is quoted: ``G,C02,C03,"C02,C03"``."""
    fields = next(csv.reader([text], skipinitialspace=True))
    return tuple(f.strip() for f in fields if f.strip())


def depth_kept(depth_from_m: float, depth_to_m: float) -> bool:
    """True for the paper's top-layer sensors: 0 to at most 0.05 m, or exactly 0.05 m (a "5-5 cm" tag)."""
    tol = DEPTH_TOLERANCE_M
    zero_to_5 = abs(depth_from_m) <= tol and depth_to_m <= TOP_LAYER_M + tol
    at_5 = abs(depth_from_m - TOP_LAYER_M) <= tol and abs(depth_to_m - TOP_LAYER_M) <= tol
    return zero_to_5 or at_5


def split_of(sensor_id: str) -> str:
    """The split of a sensor: a uniform number from SHA-256 of its id against the 60/20/20 fractions."""
    u = int.from_bytes(hashlib.sha256(sensor_id.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for name, fraction in SPLITS:
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1][0]


# --------------------------------------------------------------------------- reading ISMN


@dataclass(frozen=True)
class SensorRef:
    """Where a sensor's series is: the archive and the names the ``ismn`` package gives it."""

    archive: str
    network: str
    station: str
    sensor: str


_INTERFACES: dict[str, Any] = {}


def _interface(archive: str) -> Any:
    """One ``ISMN_Interface`` per archive and worker (building it reads the metadata, once)."""
    if archive not in _INTERFACES:
        from ismn.interface import ISMN_Interface

        _INTERFACES[archive] = ISMN_Interface(archive, parallel=False)
    return _INTERFACES[archive]


def list_sensors(archive: str) -> Iterator[SensorRef]:
    """Every soil-moisture sensor of an ISMN archive (a zip or an unpacked folder)."""
    ds = _interface(archive)
    for network, station, sensor in ds.collection.iter_sensors(variable="soil_moisture"):
        yield SensorRef(archive, network.name, station.name, sensor.name)


@dataclass
class SensorSeries:
    """A sensor's metadata and its whole series: times (ms), values (m3/m3), flags."""

    template: Reading
    times_ms: np.ndarray
    values: np.ndarray
    flags: np.ndarray


class ReadSensor(beam.DoFn):
    """Read one sensor's series; counts ``readings_read``."""

    def __init__(self) -> None:
        self.readings_read = Metrics.counter("make_dataset", "readings_read")

    def process(self, ref: SensorRef) -> Iterator[SensorSeries]:
        ds = _interface(ref.archive)
        station = ds.collection[ref.network][ref.station]
        sensor = station[ref.sensor]
        df = sensor.read_data()
        times = df.index.values.astype("datetime64[ms]").astype(np.int64)
        self.readings_read.inc(len(df))
        template = Reading(ref.network, ref.station, str(sensor.instrument), float(sensor.depth.start),
                           float(sensor.depth.end), float(station.lon), float(station.lat), 0, math.nan, "")
        yield SensorSeries(template, times, df["soil_moisture"].to_numpy(np.float64),
                           df["soil_moisture_flag"].astype(str).to_numpy())


class FilterDepthAndFlags(beam.DoFn):
    """The top-layer sensors' readings with a kept flag, one element each; counts ``readings_kept``."""

    def __init__(self, flags: Sequence[str]) -> None:
        self.flags = tuple(flags)
        self.readings_kept = Metrics.counter("make_dataset", "readings_kept")

    def process(self, series: SensorSeries) -> Iterator[Reading]:
        t = series.template
        if not depth_kept(t.depth_from_m, t.depth_to_m):
            return
        keep = np.isin(series.flags, self.flags) & np.isfinite(series.values)
        self.readings_kept.inc(int(keep.sum()))
        for ms, value, flag in zip(series.times_ms[keep], series.values[keep], series.flags[keep]):
            yield replace(t, time_ms=int(ms), sm=float(value), flag=str(flag))


# --------------------------------------------------------------------------- the Table 5 join


def _utc(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


def window_area(lon: float, lat: float, window_px: int = WINDOW_PX) -> ei.Area:
    """The window around a point on its UTM zone's 10 m grid; the point lies in pixel (window/2, window/2)."""
    from smqgis.core.grid import bounds_in, utm_crs_for

    res = ei.HIGH_RES_M
    crs = utm_crs_for(lon, lat)
    x, y = (float(v) for v in bounds_in("EPSG:4326", (lon, lat, lon, lat), crs)[:2])
    half = window_px // 2
    x0 = math.floor(x / res) * res - half * res
    y_top = math.floor(y / res) * res + res + half * res
    bounds = (x0, y_top - window_px * res, x0 + window_px * res, y_top)
    return ei.Area(crs, bounds, tuple(bounds_in(crs, bounds, "EPSG:4326")))  # type: ignore[arg-type]


def table5_request(reading: Reading, anchor: str = "sentinel1", window_px: int = WINDOW_PX) -> ei.Request:
    """The Earth Engine request of a reading: its window, its time, every source, the anchor's bound."""
    s1_days = ANCHORS["sentinel1"] / sources.DAY_S if anchor == "sentinel1" else SMAP_ANCHORED_S1_DAYS
    return ei.Request(window_area(reading.lon, reading.lat, window_px), _utc(reading.time_ms),
                      source_keys=list(sources.SOURCES), s1_window_days=s1_days)


def smap_anchored_expression(request: ei.Request) -> Any:
    """The Table 20 join (SMAP-anchored): every time-series source relative to the reading's time.

    SMAP within 1 h, Sentinel-1 within ``request.s1_window_days`` (7 d), the others within their Table 5
    bounds, each the closest image before the reading; collections and filters from the sources table.
    """
    import ee

    region = ee.Geometry.Rectangle(list(request.area.lonlat_bounds), "EPSG:4326", False)
    t_ms = ei.millis(request.when)
    bounds_s = {"sentinel1": request.s1_window_days * sources.DAY_S, "smap": ANCHORS["smap"]}
    chosen = {}
    for key in request.source_keys:
        src = sources.SOURCES[key]
        bound_s = bounds_s.get(key, src.temporal_bound_s)
        if bound_s is None:
            continue
        col = ei.filtered_collection(src, ei.product_for(src, request.when), region,
                                     ee.Date(t_ms - int(round(bound_s * 1000.0))), ee.Date(t_ms + ei.END_INCLUSIVE_MS))
        chosen[key] = ei._latest(col)  # the core's own "closest before" (shared with the S1-anchored join)
    return ee.Dictionary(chosen)


def lookup(request: ei.Request, anchor: str = "sentinel1") -> ei.Selection:
    """Run the join of ``anchor`` on Earth Engine (retried on 429 / 5xx) and parse its answer."""
    if anchor == "sentinel1":
        return ei.select_images(request, call=ee_fetch.with_retries)
    return ei.parse_selection(request, ee_fetch.with_retries(smap_anchored_expression(request).getInfo))


class _EarthEngineDoFn(beam.DoFn):
    """A DoFn that initialises earthengine-api once per worker."""

    def __init__(self, project: str | None, url: str | None) -> None:
        self.project, self.url = project, url

    def setup(self) -> None:
        from smqgis.core import earthengine

        earthengine.initialise(self.project, url=self.url)


class LookupImages(_EarthEngineDoFn):
    """(reading, request) -> (reading, request, selection); a reading without images is counted and dropped."""

    def __init__(self, project: str | None, url: str | None, anchor: str) -> None:
        super().__init__(project, url)
        self.anchor = anchor
        self.dropped_no_image = Metrics.counter("make_dataset", "dropped_no_image")
        self.failed_lookups = Metrics.counter("make_dataset", "failed_lookups")

    def process(self, item: tuple[Reading, ei.Request]) -> Iterator[tuple[Reading, ei.Request, ei.Selection]]:
        reading, request = item
        try:
            selection = lookup(request, self.anchor)
        except EarthEngineError as exc:
            if exc.reason == "no_image":
                self.dropped_no_image.inc()
            else:
                self.failed_lookups.inc()
                log.warning("lookup of %s at %s failed: %s", reading.sensor_id, request.when, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a failed lookup is counted, never fatal to the pipeline
            self.failed_lookups.inc()
            log.warning("lookup of %s at %s failed: %s", reading.sensor_id, request.when, exc)
            return
        yield reading, request, selection


def anchor_key(item: tuple[Reading, ei.Request, ei.Selection], anchor: str) -> tuple[str, str]:
    """(sensor id, anchor image id): one example per sensor and anchor image."""
    reading, _, selection = item
    return reading.sensor_id, str(selection.images[anchor]["id"])


def anchor_ms(selection: ei.Selection, anchor: str) -> float:
    """Time of the anchor image (ms)."""
    return ei.millis(ei.utc(selection.images[anchor]["time_utc"]))


class NearestPerAnchorImage(beam.DoFn):
    """Of the readings paired with one anchor image and sensor, keep the nearest in time (per label depth)."""

    def __init__(self, anchor: str) -> None:
        self.anchor = anchor
        self.not_nearest = Metrics.counter("make_dataset", "dropped_not_nearest")

    def process(self, keyed: tuple[Any, Iterable[tuple[Reading, ei.Request, ei.Selection]]]
                ) -> Iterator[tuple[Reading, ei.Request, ei.Selection, dict[str, float]]]:
        items = list(keyed[1])
        t_anchor = anchor_ms(items[0][2], self.anchor)
        # nearest first; ties go to the earlier reading
        items.sort(key=lambda it: (abs(it[0].time_ms - t_anchor), it[0].time_ms))
        labels: dict[str, float] = {}
        for reading, _, _ in items:
            labels.setdefault(reading.label_key, reading.sm)
        self.not_nearest.inc(len(items) - len(labels))
        reading, request, selection = items[0]
        yield reading, request, selection, labels


# --------------------------------------------------------------------------- download and encoding


def _grid_arrays(plan: ee_fetch.Plan, files: dict[ee_fetch.Chunk, str], key: str) -> np.ndarray:
    """The chunks of source ``key`` as one (bands, rows, cols) float64 array, NaN where masked."""
    grid = plan.grids[key]
    chunks = [c for c in plan.chunks if c.key == key]
    out = np.full((chunks[0].n_bands, grid.height, grid.width), np.nan)
    nodata = ei.EE_NODATA[sources.SOURCES[key].ee_dtype]
    for c in chunks:
        with open(files[c], "rb") as fh:
            arr = ee_fetch.read_chunk(fh.read(), c).astype(np.float64)
        out[:, c.row0:c.row0 + c.height, c.col0:c.col0 + c.width] = np.where(arr == nodata, np.nan, arr)
    return out


def _on_window(band: np.ndarray, grid: ei.PixelGrid, area: ei.Area, window_px: int) -> np.ndarray:
    """A band of ``grid`` on the 10 m window (nearest; Earth Engine already resampled the fine sources)."""
    from affine import Affine
    from rasterio.warp import Resampling, reproject

    res = ei.HIGH_RES_M
    dst = np.full((window_px, window_px), np.nan)
    reproject(band, dst, src_transform=grid.transform, src_crs=grid.crs,
              dst_transform=Affine(res, 0.0, area.bounds[0], 0.0, -res, area.bounds[3]), dst_crs=area.crs,
              resampling=Resampling.nearest, src_nodata=np.nan, dst_nodata=np.nan)
    return dst


def _at_point(band: np.ndarray, grid: ei.PixelGrid, lon: float, lat: float) -> float:
    """The value of the pixel of ``grid`` holding the point (NaN outside the grid)."""
    from smqgis.core.grid import bounds_in

    x, y = bounds_in("EPSG:4326", (lon, lat, lon, lat), grid.crs)[:2]
    col, row = math.floor((x - grid.x0) / grid.res_m), math.floor((grid.y0 - y) / grid.res_m)
    if 0 <= row < band.shape[0] and 0 <= col < band.shape[1]:
        return float(band[row, col])
    return math.nan


def encode_example(reading: Reading, request: ei.Request, selection: ei.Selection, labels: dict[str, float],
                   physical: dict[str, np.ndarray | float], window_px: int) -> tuple[dict[str, Any], int]:
    """The released-schema dict of one point, and the number of masked pixels (encoded 0: the schema has no
    nodata). ``physical`` holds each band (``"source/band"``) in the table's units on the window, or a scalar
    for the coarse bands."""
    from smqgis.core.encoding import encode
    from training.data import COARSE_KEYS

    example: dict[str, Any] = {}
    masked = 0
    for src in sources.SOURCES.values():
        for band in src.bands:
            values = np.asarray(physical[f"{src.key}/{band.name}"], dtype=np.float64)
            encoded = encode(values, band.encoding)
            if band.tfrecord_key in COARSE_KEYS:
                example[band.tfrecord_key] = float(encoded)
                continue
            bad = ~np.isfinite(encoded)
            masked += int(bad.sum())
            example[band.tfrecord_key] = np.where(bad, 0.0, encoded)
    example.update(center_lat=reading.lat, center_long=reading.lon, timestamp=float(reading.time_ms),
                   sensor_id=reading.sensor_id, **labels)
    return example, masked


class FetchAndEncode(_EarthEngineDoFn):
    """Download every source of a chosen join, put it on the window, encode: serialized released examples.

    Counts ``examples_written``, ``examples_with_masked_pixels``, ``dropped_coarse_nodata`` (no SMAP or GLDAS
    value at the point) and ``failed_fetches``.
    """

    def __init__(self, project: str | None, url: str | None, window_px: int, cache_dir: str | None = None) -> None:
        super().__init__(project, url)
        self.window_px, self.cache_dir = window_px, cache_dir
        self.examples_written = Metrics.counter("make_dataset", "examples_written")
        self.with_masked = Metrics.counter("make_dataset", "examples_with_masked_pixels")
        self.dropped_coarse = Metrics.counter("make_dataset", "dropped_coarse_nodata")
        self.failed = Metrics.counter("make_dataset", "failed_fetches")

    def setup(self) -> None:
        super().setup()
        self._tmp = None
        if not self.cache_dir:
            self._tmp = tempfile.TemporaryDirectory(prefix="smqgis-ee-cache-")
            self.cache_dir = self._tmp.name

    def teardown(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def physical(self, reading: Reading, request: ei.Request, selection: ei.Selection) -> dict[str, Any]:
        """Every band in the table's units: arrays on the window, scalars at the point for SMAP and GLDAS."""
        from training.data import COARSE_KEYS

        chosen = selection.images
        grids = {k: ei.source_grid(request.area, sources.SOURCES[k], request.when) for k in request.source_keys}
        plan = ee_fetch.make_plan(grids, {k: len(ei.band_ids(k, chosen[k])) for k in grids})
        files, _ = ee_fetch.fetch(plan, chosen, str(self.cache_dir))
        out: dict[str, Any] = {}
        for key, grid in grids.items():
            src = sources.SOURCES[key]
            arr = _grid_arrays(plan, files, key) * float(chosen[key]["to_native_scale"])
            for i, band in enumerate(src.bands):
                ref = f"{key}/{band.name}"
                if band.tfrecord_key in COARSE_KEYS:
                    out[ref] = _at_point(arr[i], grid, reading.lon, reading.lat)
                else:
                    out[ref] = _on_window(arr[i], grid, request.area, self.window_px)
        return out

    def process(self, item: tuple[Reading, ei.Request, ei.Selection, dict[str, float]]
                ) -> Iterator[tuple[str, bytes]]:
        from training.data import COARSE_KEYS, serialize_example

        reading, request, selection, labels = item
        try:
            physical = self.physical(reading, request, selection)
        except Exception as exc:  # noqa: BLE001 - a failed download is counted, never fatal to the pipeline
            self.failed.inc()
            log.warning("download for %s at %s failed: %s", reading.sensor_id, request.when, exc)
            return
        coarse = [ref for ref in physical if sources.band_ref(ref)[1].tfrecord_key in COARSE_KEYS]
        if not all(np.isfinite(physical[ref]) for ref in coarse):
            self.dropped_coarse.inc()
            return
        example, masked = encode_example(reading, request, selection, labels, physical, self.window_px)
        if masked:
            self.with_masked.inc()
        self.examples_written.inc()
        yield reading.sensor_id, serialize_example(example)


# --------------------------------------------------------------------------- the pipeline


def _count(split: str) -> Any:
    counter = Metrics.counter("make_dataset", f"examples_written_{split}")

    def inc(record: bytes) -> bytes:
        counter.inc()
        return record

    return inc


def build(p: beam.Pipeline, args: argparse.Namespace) -> dict[str, Any]:
    """Add the stages to ``p``; returns the per-split PCollections of serialized examples."""
    flags = parse_flags(args.flags)
    start_ms = ei.millis(ei.utc(args.start)) if args.start else None
    end_ms = ei.millis(ei.utc(args.end)) if args.end else None
    outside = Metrics.counter("make_dataset", "readings_outside_dates")

    def in_dates(r: Reading) -> bool:
        ok = (start_ms is None or r.time_ms >= start_ms) and (end_ms is None or r.time_ms < end_ms)
        if not ok:
            outside.inc()
        return ok

    anchor, window_px = args.anchor, args.window_px
    readings = (
        p
        | "ReadISMN" >> (beam.Create(list(args.ismn)) | "ListSensors" >> beam.FlatMap(list_sensors)
                         | "Spread" >> beam.Reshuffle() | "ReadSeries" >> beam.ParDo(ReadSensor()))
        | "FilterDepthAndFlags" >> beam.ParDo(FilterDepthAndFlags(flags))
        | "FilterDates" >> beam.Filter(in_dates)
    )
    examples = (
        readings
        | "BuildTable5Requests" >> beam.Map(lambda r: (r, table5_request(r, anchor, window_px)))
        | "LookupImages" >> beam.ParDo(LookupImages(args.project, args.ee_url, anchor))
        | "OnePerS1Image" >> (beam.Map(lambda it: (anchor_key(it, anchor), it)) | "Group" >> beam.GroupByKey()
                              | "Nearest" >> beam.ParDo(NearestPerAnchorImage(anchor)))
        | "FetchAndEncode" >> beam.ParDo(FetchAndEncode(args.project, args.ee_url, window_px, args.cache_dir))
    )
    names = [name for name, _ in SPLITS]
    parts = examples | "SplitBySensor" >> beam.Partition(lambda kv, n: names.index(split_of(kv[0])), len(names))
    out = {}
    for name, part in zip(names, parts):
        out[name] = (
            part
            | f"Records{name.title()}" >> beam.Map(lambda kv: kv[1])
            | f"Count{name.title()}" >> beam.Map(_count(name))
        )
        _ = out[name] | f"Write{name.title()}" >> beam.io.WriteToTFRecord(
            os.path.join(args.out, name), file_name_suffix=".tfrecord.gz", compression_type=CompressionTypes.GZIP)
    return out


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The pipeline's own arguments, and the rest (Beam's pipeline options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ismn", action="append", required=True,
                        help="ISMN archive (zip or unpacked folder); repeat for several")
    parser.add_argument("--out", required=True, help="output folder (or gs:// prefix) of the TFRecord shards")
    parser.add_argument("--flags", default=",".join(f'"{f}"' if "," in f else f for f in DEFAULT_FLAGS),
                        help="kept ISMN quality flags, comma-separated; quote a flag set: 'G,C02,C03,\"C02,C03\"'")
    parser.add_argument("--anchor", choices=sorted(ANCHORS), default="sentinel1",
                        help="anchor of the join: sentinel1 (Table 5, default) or smap (Table 20)")
    parser.add_argument("--ee-url", default=None, help="another Earth Engine endpoint (default: Google's)")
    parser.add_argument("--project", default=None, help="Cloud project registered for Earth Engine")
    parser.add_argument("--start", default=None, help="first reading time kept (ISO-8601, UTC)")
    parser.add_argument("--end", default=None, help="readings before this time are kept (ISO-8601, UTC)")
    parser.add_argument("--window-px", type=int, default=WINDOW_PX,
                        help="window side at 10 m (px); the released schema (and training.data) needs 512")
    parser.add_argument("--cache-dir", default=None, help="download cache on each worker (default: a temp dir)")
    args, beam_args = parser.parse_known_args(argv)
    if args.project:  # Beam's Google Cloud options read --project too (Dataflow's project)
        beam_args.append(f"--project={args.project}")
    return args, beam_args


def run_pipeline(build_fn: Any, args: argparse.Namespace, beam_args: list[str]) -> Any:
    """``build_fn(pipeline, args)`` run on the runner ``beam_args`` name; Beam's ``PipelineResult`` (finished)."""
    p = beam.Pipeline(options=PipelineOptions(beam_args))
    build_fn(p, args)
    result = p.run()
    result.wait_until_finish()
    return result


def run(argv: Sequence[str] | None = None) -> Any:
    """Run the pipeline; returns Beam's ``PipelineResult`` (finished)."""
    return run_pipeline(build, *parse_args(argv))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run()
