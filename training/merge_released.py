"""Merge the authors' released partial dataset with the user's ISMN download: the labels, as a Beam pipeline.

The authors released their dataset without the ISMN labels (ISMN data may not be redistributed);
their ``combine_ismn_data.py`` puts them back from a user's ISMN download. This is the same merge
as a Beam pipeline, so it runs on Dataflow over the 500 shards. For each released record without
a label it takes the reading of the matching station's first sensor at 0.05 m (a sensor whose
ISMN name holds ``0.05``, as the authors' script picks it) whose time lies within
:data:`TOLERANCE_MS` (3 min) of the record's ``timestamp``, and writes it as ``sm_0_5``. Records
already labelled pass unchanged; records without a station, without a reading in the window, or
with more than one reading in it are counted and dropped.

Stages: ``ReadReleased`` -> ``KeyByStation`` | ``ReadISMN`` (sensors at 0.05 m, keyed by station)
-> ``JoinByStation`` (CoGroupByKey) -> ``MatchReadings`` -> ``WriteMerged``.
Run ``python -m training.merge_released --released GLOB --ismn PATH --out DIR``; other arguments go
to Beam's ``PipelineOptions``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from training.make_dataset import LABEL_0_5, LABEL_5_5, SensorRef, _interface, run_pipeline

log = logging.getLogger(__name__)

#: Largest time between a released record and its in-situ reading (ms): the authors' +-3 min; the released
#: ``timestamp`` is a float32, good to about 2 minutes.
TOLERANCE_MS = 3 * 60 * 1000
#: What an ISMN sensor name must hold to be the station's 5 cm sensor (the authors' rule).
DEPTH_TAG = "0.05"
NAMESPACE = "merge_released"


def station_key(network: str, station: str) -> str:
    """``NETWORK/station`` with the station name reduced to lower-case letters and digits.

    The released ids and ISMN's folders spell some stations differently (``CST_01`` / ``CST-01``);
    the authors matched every ``_``-part of the released name inside the ISMN name, with or without
    ``-``. Dropping every non-alphanumeric character makes the two spellings one key.
    """
    return f"{network.strip().upper()}/{re.sub(r'[^0-9a-z]', '', station.lower())}"


def record_key(record: bytes) -> tuple[str, bytes]:
    """(station key, record) of a released record (``sensor_id`` = ``NETWORK__STATION__SENSORTYPE``)."""
    import tensorflow as tf

    example = tf.train.Example.FromString(record)
    sensor_id = example.features.feature["sensor_id"].bytes_list.value[0].decode("utf-8")
    network, station = sensor_id.split("__")[:2]
    return station_key(network, station), record


def list_5cm_sensors(archive: str) -> Iterator[SensorRef]:
    """Per station of an ISMN archive, its first soil-moisture sensor at 0.05 m."""
    ds = _interface(archive)
    for network in ds.collection.iter_networks():
        for station in network.iter_stations():
            for name in station.sensors:
                if DEPTH_TAG in name and "soil_moisture" in name:
                    yield SensorRef(archive, network.name, station.name, name)
                    break


def read_series(ref: SensorRef) -> Iterator[tuple[str, tuple[np.ndarray, np.ndarray]]]:
    """(station key, (times in ms, values in m3/m3)) of one sensor, sorted by time."""
    ds = _interface(ref.archive)
    df = ds.collection[ref.network][ref.station][ref.sensor].read_data().sort_index()
    times = df.index.values.astype("datetime64[ms]").astype(np.int64)
    yield station_key(ref.network, ref.station), (times, df["soil_moisture"].to_numpy(np.float64))


class MatchReadings(beam.DoFn):
    """Fill ``sm_0_5`` of a station's released records from its reading within the tolerance."""

    def __init__(self, tolerance_ms: int = TOLERANCE_MS) -> None:
        self.tolerance_ms = tolerance_ms
        self.counters = {name: Metrics.counter(NAMESPACE, name) for name in (
            "records_read", "records_matched", "records_already_labelled", "records_no_station",
            "records_no_reading", "records_ambiguous", "records_written")}

    def process(self, joined: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[bytes]:
        import tensorflow as tf

        key, groups = joined
        series = list(groups["ismn"])
        if len(series) > 1:
            log.warning("%d sensors at 0.05 m for station %s; using the first", len(series), key)
        for record in groups["released"]:
            self.counters["records_read"].inc()
            example = tf.train.Example.FromString(record)
            features = example.features.feature
            if LABEL_0_5 in features or LABEL_5_5 in features:
                self.counters["records_already_labelled"].inc()
                self.counters["records_written"].inc()
                yield record
                continue
            if not series:
                self.counters["records_no_station"].inc()
                continue
            times, values = series[0]
            t = int(features["timestamp"].float_list.value[0])
            lo = np.searchsorted(times, t - self.tolerance_ms, side="left")
            hi = np.searchsorted(times, t + self.tolerance_ms, side="right")
            if hi - lo == 0:
                self.counters["records_no_reading"].inc()
                continue
            if hi - lo > 1:
                self.counters["records_ambiguous"].inc()
                continue
            features[LABEL_0_5].float_list.value.append(float(values[lo]))
            self.counters["records_matched"].inc()
            self.counters["records_written"].inc()
            yield example.SerializeToString()


def build(p: beam.Pipeline, args: argparse.Namespace) -> Any:
    """Add the stages to ``p``; returns the PCollection of merged records."""
    released = (
        p
        | "ReadReleased" >> beam.io.ReadFromTFRecord(args.released, compression_type=CompressionTypes.AUTO)
        | "KeyByStation" >> beam.Map(record_key)
    )
    ismn = (
        p
        | "ReadISMN" >> (beam.Create(list(args.ismn)) | "List5cmSensors" >> beam.FlatMap(list_5cm_sensors)
                         | "Spread" >> beam.Reshuffle() | "ReadSeries" >> beam.FlatMap(read_series))
    )
    merged = (
        {"released": released, "ismn": ismn}
        | "JoinByStation" >> beam.CoGroupByKey()
        | "MatchReadings" >> beam.ParDo(MatchReadings(int(round(args.tolerance_min * 60 * 1000))))
    )
    _ = merged | "WriteMerged" >> beam.io.WriteToTFRecord(
        os.path.join(args.out, "data"), file_name_suffix=".tfrecord.gz", compression_type=CompressionTypes.GZIP)
    return merged


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The pipeline's own arguments, and the rest (Beam's pipeline options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--released", required=True, help="glob of the released TFRecord shards (local or gs://)")
    parser.add_argument("--ismn", action="append", required=True,
                        help="ISMN download (zip or unpacked folder, CEOP or header+values); repeat for several")
    parser.add_argument("--out", required=True, help="output folder (or gs:// prefix) of the merged shards")
    parser.add_argument("--tolerance-min", type=float, default=TOLERANCE_MS / 60000.0,
                        help="largest time between a record and its reading (min; default 3, the authors')")
    return parser.parse_known_args(argv)


def run(argv: Sequence[str] | None = None) -> Any:
    """Run the pipeline; returns Beam's ``PipelineResult`` (finished)."""
    return run_pipeline(build, *parse_args(argv))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run()
