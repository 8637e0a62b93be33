"""Simulated in-situ sensors: ISMN-like stations, readings and quality flags.

Sensors sit at 10 m pixel centres, mostly outside forest (as ISMN stations do),
and read the 0-5 cm truth of their pixel with a per-sensor calibration (gain
and bias) and random noise. Every reading carries an ISMN quality flag: most
are ``G`` (good); ``C02`` / ``C03`` / ``C02,C03`` mark plausible but
out-of-range-checked values that the paper keeps; ``D01``-``D10`` mark dubious
readings (spikes, drops, plateaus) whose values are corrupted and that the
paper filters out. The 60/20/20 split is by sensor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyproj import Transformer

from .noise import salt_of
from .world import World

LOG = logging.getLogger(__name__)

#: Flags the paper keeps (section 2c, step 1).
GOOD_FLAGS = ("G", "C02", "C03", "C02,C03")
#: Flag and its probability per reading.
FLAG_PROBS = (("G", 0.85), ("C02", 0.03), ("C03", 0.03), ("C02,C03", 0.01), ("D01", 0.02), ("D02", 0.02),
              ("D03", 0.01), ("D06", 0.02), ("D10", 0.01))
NETWORKS = ("SIM-MESONET", "SIM-SCAN", "SIM-USCRN")
SENSOR_TYPES = {"SIM-MESONET": "CS655", "SIM-SCAN": "HydraProbe", "SIM-USCRN": "TDR"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sensor:
    """One simulated in-situ sensor (0-5 cm)."""

    sensor_id: str  # NETWORK__STATION__SENSORTYPE
    x_m: float  # pixel centre, map CRS
    y_m: float
    lon: float
    lat: float
    split: str
    landcover: int
    gain: float
    bias_m3m3: float
    noise_m3m3: float


def place_sensors(world: World, count: int, margin_m: float = 6_000.0) -> list[Sensor]:
    """``count`` sensors in the domain (at least ``margin_m`` from its edge), split 60/20/20 by sensor.

    Sensors lie on pixels whose corners are on the 20 m grid, so a 512 px patch
    centred on them is aligned with the 20 m Sentinel-2 bands.
    """
    c = world.config
    rng = np.random.default_rng(salt_of(c.seed, "sensors", count) & 0xFFFFFFFF)
    to_lonlat = Transformer.from_crs(c.crs, "EPSG:4326", always_xy=True)
    sensors: list[Sensor] = []
    while len(sensors) < count:
        x = 20.0 * np.floor((c.x0_m + margin_m + rng.random() * (c.size_m - 2 * margin_m)) / 20.0) + 5.0
        y = 20.0 * np.floor((c.y0_m + margin_m + rng.random() * (c.size_m - 2 * margin_m)) / 20.0) + 15.0
        lc = int(world.static(np.array([x]), np.array([y])).landcover[0, 0])
        if lc == 4 and rng.random() < 0.85:
            continue
        k = len(sensors)
        network = NETWORKS[k % len(NETWORKS)]
        lon, lat = to_lonlat.transform(x, y)
        sensors.append(
            Sensor(
                sensor_id=f"{network}__ST{k:04d}__{SENSOR_TYPES[network]}",
                x_m=float(x), y_m=float(y), lon=float(lon), lat=float(lat), split="", landcover=lc,
                gain=float(1.0 + 0.04 * rng.standard_normal()),
                bias_m3m3=float(0.015 * rng.standard_normal()),
                noise_m3m3=float(rng.uniform(0.005, 0.015)),
            )
        )
    order = rng.permutation(count)
    n_train, n_val = int(round(0.6 * count)), int(round(0.2 * count))
    split_of = {
        int(i): ("train" if r < n_train else "val" if r < n_train + n_val else "test") for r, i in enumerate(order)
    }
    return [Sensor(**{**s.__dict__, "split": split_of[k]}) for k, s in enumerate(sensors)]


#: Network name of the truth-labelled training points drawn anywhere in the world (not sensors).
FREE_NETWORK = "SIM-FREE"


def place_free_points(world: World, count: int, avoid: list[Sensor], min_distance_m: float = 3_000.0,
                      margin_m: float = 6_000.0) -> list[Sensor]:
    """``count`` training points anywhere in the domain, labelled later with the truth itself.

    The simulator knows the truth everywhere, so the training split need not stop at the
    ISMN-like sensors. Points keep ``min_distance_m`` from every sensor in ``avoid`` (the
    validation and test sensors), so no training patch (512 px = 5.12 km wide) is centred
    within 3 km of a held-out sensor and the split by sensor stays meaningful. They are
    "sensors" without calibration error or noise (gain 1, bias 0, noise 0) and always read
    flag ``G``; their ids use the network ``SIM-FREE``. Pixel placement is that of
    :func:`place_sensors` (corners on the 20 m grid).
    """
    c = world.config
    rng = np.random.default_rng(salt_of(c.seed, "free_points", count) & 0xFFFFFFFF)
    to_lonlat = Transformer.from_crs(c.crs, "EPSG:4326", always_xy=True)
    held = np.array([(s.x_m, s.y_m) for s in avoid], dtype=np.float64).reshape(-1, 2)
    points: list[Sensor] = []
    while len(points) < count:
        x = 20.0 * np.floor((c.x0_m + margin_m + rng.random() * (c.size_m - 2 * margin_m)) / 20.0) + 5.0
        y = 20.0 * np.floor((c.y0_m + margin_m + rng.random() * (c.size_m - 2 * margin_m)) / 20.0) + 15.0
        if held.size and np.min(np.hypot(held[:, 0] - x, held[:, 1] - y)) < min_distance_m:
            continue
        lc = int(world.static(np.array([x]), np.array([y])).landcover[0, 0])
        lon, lat = to_lonlat.transform(x, y)
        points.append(Sensor(sensor_id=f"{FREE_NETWORK}__P{len(points):05d}__TRUTH", x_m=float(x), y_m=float(y),
                             lon=float(lon), lat=float(lat), split="train", landcover=lc, gain=1.0, bias_m3m3=0.0,
                             noise_m3m3=0.0))
    return points


def reading(world: World, sensor: Sensor, truth_m3m3: float, reading_index: int) -> tuple[float, str]:
    """One reading (m3/m3) of ``sensor`` given its pixel's truth, and its ISMN quality flag.

    Free points (network ``SIM-FREE``, see :func:`place_free_points`) read the truth itself, flag ``G``.
    """
    if sensor.sensor_id.startswith(FREE_NETWORK + "__"):
        return float(truth_m3m3), "G"
    rng = np.random.default_rng(salt_of(world.config.seed, "reading", sensor.sensor_id, reading_index) & 0xFFFFFFFF)
    flags, probs = zip(*FLAG_PROBS)
    flag = str(rng.choice(flags, p=np.array(probs) / sum(probs)))
    value = sensor.gain * truth_m3m3 + sensor.bias_m3m3 + sensor.noise_m3m3 * rng.standard_normal()
    if flag.startswith("D"):
        value = {"D01": value + rng.uniform(0.1, 0.3), "D02": 0.3 * value, "D03": 0.6, "D06": value - 0.15}.get(
            flag, float(rng.uniform(0.0, 0.6))
        )
    return float(np.clip(value, 0.0, 0.6)), flag
