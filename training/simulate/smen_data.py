"""Simulated SMAP 36 km radiometer / SMAP-Sentinel-1 3 km active-passive series for SMEN (paper 002).

The data side of the 3 km downscaling model: what the SMAP L3 radiometer product
(SPL3SMP, 36 km) and the SMAP/Sentinel-1 L2 active-passive product (SPL2SMAP_S, 3 km)
would have recorded over the simulated world of ``training.simulate.world``, on the
EASE-Grid 2.0 global grids (EPSG:6933). It feeds the SMEN tests, benchmark and demo.

How each series is made (all randomness hashed from the world seed, the grid cell and
the date, so every run gives the same numbers):

* **Where.** The world is laid directly on EASE-Grid 2.0 map coordinates (its value-noise
  fields are pure functions of metres) over ``cells_36km x cells_36km`` 36 km cells
  aligned to the global 36 km grid around Oklahoma City (default 9 x 9 cells = 108 x 108
  pixels of 3 km, 324 km a side). The 3 km grid nests 12 x 12 pixels in each 36 km cell,
  exactly as the real EASE-Grid 2.0 3 km and 36 km grids do.
* **3 km truth.** The world's 0-5 cm soil-moisture truth is evaluated on a grid of
  ``sub_px x sub_px`` samples per 3 km pixel (default 6, i.e. every ~500 m, instead of
  10 m: the 3 km mean of the world's 10-80 m detail averages out, and evaluating a
  324 km square at 500 m takes ~0.1 s a day) and block-averaged to 3 km.
* **36 km radiometer input** I(t): the block mean of the 3 km truth over each 36 km
  cell, with a radiometer error: ``I = 0.95 * truth_36km + 0.01 + b_cell + e``, where
  ``b_cell`` is a static per-cell bias uniform in +-0.015 m3/m3 (land cover / surface
  temperature errors that persist) and ``e`` a per-date, per-cell Gaussian retrieval
  noise of sd 0.02 m3/m3. SMAP's own requirement is a ubRMSE of 0.04 m3/m3 against the
  cell truth; this error gives ~0.02. The radiometer is taken to cover the region every
  day (the L3 daily composite at 35 deg N: AM and PM passes; the real one has 1-2 day
  gaps, which the plugin handles as any missing date).
* **3 km active-passive product** J(t) (the paper's high-resolution series and training
  target): ``J = truth_3km + (I - truth_36km) + n``: the product disaggregates the
  radiometer's brightness temperature with Sentinel-1 backscatter, so the 36 km
  radiometer error of that date carries over, plus a per-pixel retrieval noise ``n``
  of sd 0.02 m3/m3 (speckle, vegetation). It exists only where and when Sentinel-1
  saw the region: two relative orbits (ascending on days 0, 12, 24, ... descending on
  days 6, 18, ...), i.e. the **12-day repeat** of each orbit and a 6-day combined
  revisit, each orbit covering a 250 km wide swath tilted 12 deg from north whose
  centre line is 60 km west (ascending) or east (descending) of the region's centre,
  so each acquisition covers about three quarters of the region and leaves the rest
  missing (NaN). One acquisition in ten is dropped altogether (no SMAP overpass
  within the product's time window), as happens in SPL2SMAP_S.

Units: m3/m3 for every soil-moisture array, metres for coordinates, days since the
world's start for dates. Arrays are float32 and north-up (row 0 is the northern edge).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from .noise import hash_uniform, salt_of
from .world import StaticFields, World, WorldConfig

LOG = logging.getLogger(__name__)

#: EASE-Grid 2.0 global (EPSG:6933) 36 km cell size (m), from NSIDC's grid definition.
EASE2_36KM_M = 36032.220840584
#: 3 km pixels per 36 km cell side (EASE-Grid 2.0 3 km = 36 km / 12 = 3002.685 m).
EASE2_FACTOR_3KM = 12
EASE2_3KM_M = EASE2_36KM_M / EASE2_FACTOR_3KM
#: Upper-left corner of the global EASE-Grid 2.0 grids (m): 964 x 406 cells of 36 km.
EASE2_X_MIN_M = -17367530.44516138
EASE2_Y_MAX_M = 7314540.830638585
EASE2_CRS = "EPSG:6933"

#: Radiometer error model (m3/m3): gain, offset, static cell-bias half-range, per-date noise sd.
RADIOMETER_GAIN = 0.95
RADIOMETER_OFFSET = 0.01
RADIOMETER_CELL_BIAS = 0.015
RADIOMETER_NOISE_SD = 0.02
#: Active-passive product per-pixel retrieval noise sd (m3/m3).
ACTIVE_PASSIVE_NOISE_SD = 0.02
#: Sentinel-1 geometry of the simulated product: repeat of one orbit (d), offset of the other (d),
#: swath width (m), swath tilt from north (deg), swath centre offset from the region centre (m).
S1_REPEAT_DAYS = 12
S1_SECOND_ORBIT_DAY = 6
S1_SWATH_M = 250_000.0
S1_TILT_DEG = 12.0
S1_CENTRE_OFFSET_M = 60_000.0
#: Fraction of Sentinel-1 acquisitions without a product (no SMAP overpass in the window).
PRODUCT_DROP_FRACTION = 0.1
#: Valid range of the simulated products (m3/m3), as the real products clip.
SM_RANGE = (0.02, 0.6)


@dataclass(frozen=True)
class SmenRegion:
    """Where and when the simulated 36 km / 3 km series are.

    Attributes:
        seed: world seed (weather, soils, errors).
        lon, lat: a point in the region's central 36 km cell (deg, WGS 84).
        cells_36km: 36 km cells per side of the square region.
        sub_px: world samples per 3 km pixel side (6: every ~500 m).
        start_date: first day of the series (UTC).
        n_days: days simulated.
    """

    seed: int = 3
    lon: float = -97.5
    lat: float = 35.5
    cells_36km: int = 9
    sub_px: int = 6
    start_date: str = "2018-01-01"
    n_days: int = 1096

    @property
    def px_3km(self) -> int:
        """3 km pixels per side."""
        return self.cells_36km * EASE2_FACTOR_3KM

    @cached_property
    def origin_col_row_36km(self) -> tuple[int, int]:
        """Global EASE-Grid 2.0 36 km (column, row) of the region's upper-left cell."""
        from pyproj import Transformer

        x, y = Transformer.from_crs("EPSG:4326", EASE2_CRS, always_xy=True).transform(self.lon, self.lat)
        col = int(np.floor((x - EASE2_X_MIN_M) / EASE2_36KM_M)) - self.cells_36km // 2
        row = int(np.floor((EASE2_Y_MAX_M - y) / EASE2_36KM_M)) - self.cells_36km // 2
        return col, row

    @property
    def x0_m(self) -> float:
        """West edge (m, EPSG:6933)."""
        return EASE2_X_MIN_M + self.origin_col_row_36km[0] * EASE2_36KM_M

    @property
    def y_top_m(self) -> float:
        """North edge (m, EPSG:6933)."""
        return EASE2_Y_MAX_M - self.origin_col_row_36km[1] * EASE2_36KM_M

    @property
    def size_m(self) -> float:
        return self.cells_36km * EASE2_36KM_M

    def transform_3km(self) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform coefficients (a, b, c, d, e, f) of the 3 km grid (Affine order)."""
        return (EASE2_3KM_M, 0.0, self.x0_m, 0.0, -EASE2_3KM_M, self.y_top_m)

    def transform_36km(self) -> tuple[float, float, float, float, float, float]:
        """Affine coefficients of the 36 km grid."""
        return (EASE2_36KM_M, 0.0, self.x0_m, 0.0, -EASE2_36KM_M, self.y_top_m)

    def date_of(self, day: int) -> dt.date:
        return dt.date.fromisoformat(self.start_date) + dt.timedelta(days=int(day))

    def world_config(self) -> WorldConfig:
        """The simulated world laid on this region's EASE-Grid 2.0 coordinates."""
        return WorldConfig(
            seed=self.seed,
            crs=EASE2_CRS,
            x0_m=self.x0_m,
            y0_m=self.y_top_m - self.size_m,
            size_m=self.size_m,
            start_date=self.start_date,
            n_days=self.n_days,
        )


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of the last two axes (NaN-free input)."""
    *lead, ny, nx = a.shape
    return a.reshape(*lead, ny // factor, factor, nx // factor, factor).mean(axis=(-3, -1))


def upsample_nearest(a: np.ndarray, factor: int) -> np.ndarray:
    """Repeat each cell of the last two axes ``factor x factor`` times (36 km -> 3 km grid)."""
    return np.repeat(np.repeat(a, factor, axis=-2), factor, axis=-1)


def _gauss(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Standard normal values hashed from integer indices (Box-Muller on two hashes)."""
    u1 = hash_uniform(ix, iy, salt)
    u2 = hash_uniform(ix, iy, salt ^ 0x5DEECE66D)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


@dataclass
class SmenSeries:
    """The simulated series on the product days of a region (see the module docstring).

    Attributes:
        region: where and when.
        days: product days (days since ``region.start_date``), increasing, shape [D].
        truth_3km: 3 km truth, [D, H, W] m3/m3.
        truth_36km: 36 km truth (block mean of ``truth_3km``), [D, h, w] m3/m3.
        radiometer_36km: the 36 km radiometer product I, [D, h, w] m3/m3.
        active_passive_3km: the 3 km product J, [D, H, W] m3/m3, NaN outside the swath;
            all NaN on a dropped acquisition.
    """

    region: SmenRegion
    days: np.ndarray
    truth_3km: np.ndarray
    truth_36km: np.ndarray
    radiometer_36km: np.ndarray
    active_passive_3km: np.ndarray

    @property
    def has_product(self) -> np.ndarray:
        """[D] bool: the active-passive product exists on that day (not dropped)."""
        return np.isfinite(self.active_passive_3km).any(axis=(1, 2))

    def save(self, path: str | Path) -> None:
        """Write the series to a compressed .npz (with the region's parameters)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            region=np.array(repr(_region_dict(self.region))),
            days=self.days,
            truth_3km=self.truth_3km,
            truth_36km=self.truth_36km,
            radiometer_36km=self.radiometer_36km,
            active_passive_3km=self.active_passive_3km,
        )

    @classmethod
    def load(cls, path: str | Path, region: SmenRegion) -> SmenSeries:
        """Read a series written by :meth:`save` for ``region`` (checked)."""
        with np.load(path) as z:
            if str(z["region"]) != repr(_region_dict(region)):
                raise ValueError(f"{path} was made for another region: {z['region']}")
            return cls(
                region, z["days"], z["truth_3km"], z["truth_36km"], z["radiometer_36km"], z["active_passive_3km"]
            )


def _region_dict(region: SmenRegion) -> dict:
    return {k: getattr(region, k) for k in ("seed", "lon", "lat", "cells_36km", "sub_px", "start_date", "n_days")}


#: Side (world samples) of the tiles in which the static fields are evaluated: the world's finest value
#: noise (20 m lattice) over a whole 324 km row would need a 16200 x 16200 lattice (2 GB, minutes);
#: over 72 samples (36 km) it needs 1800 x 1800 (26 MB, milliseconds).
STATIC_TILE = 72


def static_in_tiles(world: World, xs: np.ndarray, ys: np.ndarray) -> StaticFields:
    """``world.static(xs, ys)`` computed tile by tile (same values: the fields are pure functions of position)."""
    rows = []
    for i in range(0, len(ys), STATIC_TILE):
        tiles = [world.static(xs[j : j + STATIC_TILE], ys[i : i + STATIC_TILE]) for j in range(0, len(xs), STATIC_TILE)]
        rows.append({f.name: np.concatenate([getattr(t, f.name) for t in tiles], axis=1) for f in fields(StaticFields)})
    return StaticFields(**{name: np.concatenate([r[name] for r in rows], axis=0) for name in rows[0]})


def swath_mask(region: SmenRegion, day: int) -> np.ndarray:
    """[H, W] bool: 3 km pixels of ``region`` inside the Sentinel-1 swath on ``day`` (empty off the orbits' days).

    Orbit A (days 0, 12, ...) has its swath centre line 60 km west of the region's centre, orbit B
    (days 6, 18, ...) 60 km east; both tilted 12 deg from north, 250 km wide; one acquisition in
    ten (hashed from the seed and the day) is dropped.
    """
    r = region
    phase = int(day) % S1_REPEAT_DAYS
    empty = np.zeros((r.px_3km, r.px_3km), dtype=bool)
    if phase not in (0, S1_SECOND_ORBIT_DAY):
        return empty
    if hash_uniform(np.int64(day), np.int64(0), salt_of(r.seed, "smen", "dropped")) < PRODUCT_DROP_FRACTION:
        return empty
    sign = -1.0 if phase == 0 else 1.0  # ascending west of centre, descending east
    cx = r.x0_m + r.size_m / 2 + sign * S1_CENTRE_OFFSET_M
    cy = r.y_top_m - r.size_m / 2
    xs = r.x0_m + EASE2_3KM_M * (np.arange(r.px_3km) + 0.5)
    ys = r.y_top_m - EASE2_3KM_M * (np.arange(r.px_3km) + 0.5)
    tilt = np.tan(np.radians(S1_TILT_DEG)) * sign
    across = (xs[None, :] - cx) - tilt * (ys[:, None] - cy)
    return np.abs(across) <= S1_SWATH_M / 2


class SmenSimulator:
    """Evaluates the 3 km truth and both products of a region on any day."""

    def __init__(self, region: SmenRegion | None = None) -> None:
        self.region = region or SmenRegion()
        r = self.region
        self.world = World(r.world_config())
        n = r.px_3km * r.sub_px
        step = EASE2_3KM_M / r.sub_px
        self.xs = r.x0_m + step * (np.arange(n) + 0.5)
        self.ys = r.y_top_m - step * (np.arange(n) + 0.5)
        self.static = static_in_tiles(self.world, self.xs, self.ys)
        col0, row0 = r.origin_col_row_36km
        self.cols_36km = col0 + np.arange(r.cells_36km)
        self.rows_36km = row0 + np.arange(r.cells_36km)
        self.cols_3km = col0 * EASE2_FACTOR_3KM + np.arange(r.px_3km)
        self.rows_3km = row0 * EASE2_FACTOR_3KM + np.arange(r.px_3km)
        LOG.debug("SMEN region %d x %d px at 3 km, world sampled at %.0f m", r.px_3km, r.px_3km, step)

    def _salt(self, *names: object) -> int:
        return salt_of(self.region.seed, "smen", *names)

    def truth(self, day: int) -> np.ndarray:
        """3 km truth (m3/m3) on ``day``: block mean of the world truth, [H, W] float64."""
        fine = self.world.soil_moisture(self.static, self.xs, self.ys, int(day))
        return block_mean(fine, self.region.sub_px)

    def radiometer(self, truth_36km: np.ndarray, day: int) -> np.ndarray:
        """The 36 km radiometer product from the cell truth (module docstring)."""
        ix, iy = self.cols_36km[None, :], self.rows_36km[:, None]
        bias = RADIOMETER_CELL_BIAS * (2.0 * hash_uniform(ix, iy, self._salt("cell_bias")) - 1.0)
        noise = RADIOMETER_NOISE_SD * _gauss(ix, iy, self._salt("radiometer_noise", int(day)))
        return np.clip(RADIOMETER_GAIN * truth_36km + RADIOMETER_OFFSET + bias + noise, *SM_RANGE)

    def swath_mask(self, day: int) -> np.ndarray:
        """[H, W] bool: 3 km pixels inside the Sentinel-1 swath on ``day`` (see :func:`swath_mask`)."""
        return swath_mask(self.region, day)

    def active_passive(
        self, truth_3km: np.ndarray, truth_36km: np.ndarray, radiometer: np.ndarray, day: int
    ) -> np.ndarray:
        """The 3 km active-passive product (NaN outside the swath) from the truths and the radiometer."""
        mask = self.swath_mask(day)
        ix, iy = self.cols_3km[None, :], self.rows_3km[:, None]
        noise = ACTIVE_PASSIVE_NOISE_SD * _gauss(ix, iy, self._salt("ap_noise", int(day)))
        error_36km = upsample_nearest(radiometer - truth_36km, EASE2_FACTOR_3KM)
        value = np.clip(truth_3km + error_36km + noise, *SM_RANGE)
        return np.where(mask, value, np.nan)

    def day_products(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(truth 3 km, truth 36 km, radiometer 36 km, active-passive 3 km) on ``day``."""
        t3 = self.truth(day)
        t36 = block_mean(t3, EASE2_FACTOR_3KM)
        rad = self.radiometer(t36, day)
        return t3, t36, rad, self.active_passive(t3, t36, rad, day)

    def product_days(self) -> np.ndarray:
        """Days on which a Sentinel-1 orbit passes (products may still be dropped)."""
        return np.array([d for d in range(self.region.n_days) if d % S1_REPEAT_DAYS in (0, S1_SECOND_ORBIT_DAY)])

    def series(self, days: np.ndarray | None = None) -> SmenSeries:
        """All products on ``days`` (default: every Sentinel-1 day of the region)."""
        days = self.product_days() if days is None else np.asarray(days)
        out = [self.day_products(int(d)) for d in days]
        t3, t36, rad, ap = (np.stack([o[i] for o in out]).astype(np.float32) for i in range(4))
        return SmenSeries(self.region, days.astype(np.int32), t3, t36, rad, ap)


def load_or_make_series(cache: str | Path, region: SmenRegion | None = None) -> SmenSeries:
    """The region's product-day series, cached in ``cache`` (.npz) after the first call."""
    region = region or SmenRegion()
    cache = Path(cache)
    if cache.exists():
        try:
            return SmenSeries.load(cache, region)
        except (ValueError, KeyError, OSError) as exc:
            LOG.warning("ignoring cache %s (%s)", cache, exc)
    series = SmenSimulator(region).series()
    series.save(cache)
    LOG.info("simulated %d product days of %s into %s", len(series.days), region, cache)
    return series
