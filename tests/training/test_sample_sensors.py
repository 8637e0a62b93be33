"""The sample's simulated sensors CSV is rebuilt byte-identically by its seeded script, one set of hourly
readings per sample date, each reading the sample's truth at the sensor's 10 m pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from training.simulate import sample_sensors as ss

ROOT = Path(__file__).resolve().parents[2]


def test_committed_csv_is_rebuilt_byte_identically(tmp_path: Path) -> None:
    out = ss.make_sensors_csv(ss.SAMPLE_DIR, tmp_path / "sensors.csv")
    assert out.read_bytes() == (ss.SAMPLE_DIR / ss.OUTPUT_NAME).read_bytes()


def test_one_set_of_readings_per_sample_date_each_reading_its_pixels_truth() -> None:
    rows = [line.split(",") for line in (ss.SAMPLE_DIR / ss.OUTPUT_NAME).read_text().splitlines()[1:]]
    anchors = ss.sample_anchor_times(ss.SAMPLE_DIR)
    assert len(anchors) == 3
    assert len(rows) == ss.N_SENSORS * len(anchors) * 2 * ss.HOURS_AROUND
    assert len({r[3] for r in rows}) == len(anchors) * 2 * ss.HOURS_AROUND
    # good readings follow the 10 m truth file of the first date at each sensor (gain ~1, bias and noise ~0.02)
    first = anchors[0].strftime("%Y-%m-%d")
    with rasterio.open(ss.SAMPLE_DIR / "truth_sm_10m.tif") as ds:
        band = ds.read(1).astype(np.float64) * ds.scales[0]
        pairs = []
        for r in rows:
            if r[5] == "G" and r[3].startswith(first[:8]) and abs(int(r[3][8:10]) - int(first[8:10])) <= 1:
                from pyproj import Transformer

                x, y = Transformer.from_crs("EPSG:4326", ds.crs, always_xy=True).transform(float(r[1]), float(r[2]))
                row, col = ds.index(x, y)
                pairs.append((band[row, col], float(r[4])))
    truth, reading = np.array(pairs).T
    assert len(pairs) > 40
    assert np.corrcoef(truth, reading)[0, 1] > 0.8
    assert abs(np.mean(reading - truth)) < 0.02
