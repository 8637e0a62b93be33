"""The sample's simulated sensors CSV is rebuilt byte-identically by its seeded script, one set of hourly
readings per sample date, each reading the sample's truth at the sensor's 10 m pixel."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio

from training.simulate import sample_sensors as ss

ROOT = Path(__file__).resolve().parents[2]


def test_committed_csv_is_rebuilt_byte_identically(tmp_path: Path) -> None:
    out = ss.make_sensors_csv(ss.SAMPLE_DIR, tmp_path / "sensors.csv")
    assert out.read_bytes() == (ss.SAMPLE_DIR / ss.OUTPUT_NAME).read_bytes()


def test_one_set_of_readings_per_sample_date(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    sample.mkdir()
    shutil.copy(ss.SAMPLE_DIR / "truth_sm_320m.tif", sample)
    shutil.copy(ss.SAMPLE_DIR / "truth_sm_10m.tif", sample)
    later = sample / "later" / "truth_sm_10m.tif"  # a second date, drier by 0.05 m3/m3
    later.parent.mkdir()
    with rasterio.open(ss.SAMPLE_DIR / "truth_sm_10m.tif") as src:
        profile, data = src.profile, src.read(1)
        scale = src.scales[0]
    with rasterio.open(later, "w", **profile) as dst:
        dst.write(data - int(round(0.05 / scale)), 1)
        dst.scales = (scale,)
        dst.update_tags(ACQUISITION_TIME="2020-05-07T00:30:00Z")
    out = ss.make_sensors_csv(sample, tmp_path / "s.csv", count=5)
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert len(rows) == 5 * 2 * 2 * ss.HOURS_AROUND
    times = sorted({r[3] for r in rows})
    assert times == ["2020-04-24T23:00:00Z", "2020-04-25T00:00:00Z", "2020-04-25T01:00:00Z", "2020-04-25T02:00:00Z",
                     "2020-05-06T23:00:00Z", "2020-05-07T00:00:00Z", "2020-05-07T01:00:00Z", "2020-05-07T02:00:00Z"]
    good = [r for r in rows if r[5] == "G"]
    first = np.mean([float(r[4]) for r in good if r[3] < "2020-05"])
    second = np.mean([float(r[4]) for r in good if r[3] > "2020-05"])
    assert 0.03 < first - second < 0.07  # the sensors read the drier truth of the second date
