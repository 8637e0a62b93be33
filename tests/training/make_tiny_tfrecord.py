"""Write a tiny, seeded TFRecord file in the authors' released schema (test fixture).

24 examples from 4 sensors (6 each), every band of the released schema as a
512 x 512 int64 image at 10 m in the 0-255 encoding, the coarse SMAP / GLDAS
scalars and the metadata fields. The label (m3/m3) drives Sentinel-1 VV, SMAP
and GLDAS (plus noise), so a model can learn something. Label edge cases, by
example index: 5 has only ``sm_5_5``, 11 has ``sm_0_5 = NaN`` and a finite
``sm_5_5``, 17 has no label at all (the reader drops it): 23 usable examples.

    python -m tests.training.make_tiny_tfrecord [PATH] [--seed N]   # from the repository root;
                                                                  # default build/test-data/tiny.tfrecord.gz
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from smqgis.core import sources
from smqgis.core.encoding import encode

SEED = 20240607
N_EXAMPLES = 24
N_SENSORS = 4
IMAGE_PX = 512
ONLY_SM_5_5 = 5
NAN_SM_0_5 = 11
NO_LABEL = 17
DEFAULT_PATH = "build/test-data/tiny.tfrecord.gz"
#: 2019-01-01T00:00:00Z in ms since 1970.
T0_MS = 1_546_300_800_000.0
DAY_MS = 86_400_000.0

log = logging.getLogger(__name__)


def _field(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A 512 x 512 field in [lo, hi]: 16 px blocks of noise plus a fine, fixed texture."""
    coarse = rng.uniform(0.0, 1.0, (IMAGE_PX // 16, IMAGE_PX // 16))
    rows, cols = np.indices((IMAGE_PX, IMAGE_PX))
    fine = ((rows * 7 + cols * 13) % 5) / 4.0
    return lo + (hi - lo) * (0.8 * np.kron(coarse, np.ones((16, 16))) + 0.2 * fine)


def make_examples(seed: int = SEED) -> list[dict[str, Any]]:
    """The fixture's examples as dicts of the released schema (images as int64 arrays)."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(N_EXAMPLES):
        sensor = i % N_SENSORS
        sm = float(rng.uniform(0.05, 0.45))  # m3/m3
        physical = {
            # VV rises with soil moisture (about 20 dB per m3/m3), +-1 dB texture.
            "sentinel1/VV": -18.0 + 20.0 * sm + _field(rng, -1.0, 1.0),
            "sentinel1/VH": _field(rng, -25.0, -15.0),
            "sentinel1/angle": _field(rng, 30.0, 45.0),
            "dem/elevation": _field(rng, 100.0, 400.0) + 200.0 * sensor,
            "soilgrids/sand": _field(rng, 300.0, 500.0),
            "soilgrids/silt": _field(rng, 200.0, 400.0),
            "soilgrids/clay": _field(rng, 100.0, 250.0),
            "soilgrids/bdod": _field(rng, 120.0, 160.0),
        }
        for band in ("B4", "B3", "B2", "B8", "B11", "B12"):
            physical[f"sentinel2/{band}"] = _field(rng, 500.0, 3000.0)
        example: dict[str, Any] = {}
        for ref, values in physical.items():
            _, band = sources.band_ref(ref)
            example[band.tfrecord_key] = np.rint(encode(values, band.encoding)).astype(np.int64)
        # SMAP ssm in mm over 0.05 m, GLDAS in kg/m2 over 0.10 m, both noisy.
        smap_mm = (sm + rng.normal(0.0, 0.03)) * 1000.0 * 0.05
        gldas_kgm2 = (sm + rng.normal(0.0, 0.03)) * 1000.0 * 0.10
        example["smap_sm"] = int(np.rint(encode(np.array(smap_mm), sources.SOURCES["smap"].bands[0].encoding)))
        example["gldas_sm"] = int(np.rint(encode(np.array(gldas_kgm2), sources.SOURCES["gldas"].bands[0].encoding)))
        example["center_lat"] = 35.0 + sensor
        example["center_long"] = -97.0 - 0.5 * sensor
        example["timestamp"] = T0_MS + i * DAY_MS
        example["sensor_id"] = f"TINYNET__S{sensor:02d}__ThetaProbe-ML2X_0.050000_0.050000"
        example["sm_0_5"] = sm
        if i == ONLY_SM_5_5:
            example["sm_0_5"], example["sm_5_5"] = None, sm
        elif i == NAN_SM_0_5:
            example["sm_0_5"], example["sm_5_5"] = math.nan, sm
        elif i == NO_LABEL:
            example["sm_0_5"] = None
        examples.append(example)
    return examples


def main(argv: list[str] | None = None) -> None:
    from training.data import write_examples  # TF only when writing

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    Path(args.path).parent.mkdir(parents=True, exist_ok=True)
    write_examples(args.path, make_examples(args.seed))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
