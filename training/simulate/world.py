"""The simulated world: terrain, soils, land cover, vegetation, weather and soil-moisture truth.

One seeded, coherent world on a UTM grid (default EPSG:32614, central Oklahoma,
100 km x 100 km, 2019-2020). Static fields (terrain, soil texture, land cover)
are pure functions of map position built from value noise (see ``noise``), so
any window is computed on its own. The weather is a daily precipitation field
from storm cells of 10-35 km radius on a 5 km grid, with a seasonal potential
evapotranspiration; an antecedent precipitation index (API) at three drying
rates is integrated on that grid. The soil-moisture truth of the top 5 cm at
any 10 m pixel and day is then::

    theta = [theta_min + (theta_max - theta_min) * s_eff] * (1 + fine-scale noise)
    s_eff = clip(1 - exp(-API_r / 25 mm) + 0.12 * wetness, 0, 1)

where ``API_r`` blends the three API curves by a retention index that rises with
clay and topographic wetness and falls with sand and vegetation cover (clay
soils drain and dry slower, vegetation transpires), ``theta_min`` rises with
clay (water held at wilting point) and ``theta_max`` is the porosity from bulk
density. Units: m (coordinates, elevation), fractions 0-1 (texture, cover),
cg/cm3 (bulk density, as SoilGrids), kg/m2 (vegetation water content), mm
(precipitation), m3/m3 (soil moisture). Time step: one day; the state of day
``d`` includes that day's rain.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .noise import bilinear_from_grid, fbm, hash_uniform, salt_of, value_noise

LOG = logging.getLogger(__name__)

#: Land-cover classes of the simulated world.
LANDCOVER = {1: "winter wheat", 2: "summer crop", 3: "grassland", 4: "forest"}

#: Phenology per class: (cover base, cover max, peak day of year, width d,
#: leaf water per unit cover kg/m2, woody water kg/m2).
PHENOLOGY = {
    1: (0.12, 0.85, 110.0, 45.0, 3.5, 0.0),
    2: (0.05, 0.90, 205.0, 35.0, 5.0, 0.0),
    3: (0.30, 0.75, 160.0, 60.0, 1.5, 0.0),
    4: (0.45, 0.92, 190.0, 75.0, 2.5, 4.0),
}

#: Daily retention of the three API curves (fast / medium / slow drying) at mean PET.
API_RETENTION = (0.72, 0.86, 0.94)
#: Water depth that saturates the surface layer's wetness, mm.
API_DEPTH_MM = 25.0
#: Size of a farm parcel, m (a quarter-quarter section).
PARCEL_M = 400.0


@dataclass(frozen=True)
class WorldConfig:
    """Where and when the world is, and its seed.

    Attributes:
        seed: world seed; the same seed gives the same world, byte for byte.
        crs: map CRS of the world grid (a metric UTM zone).
        x0_m, y0_m: lower-left corner of the domain (m, in ``crs``).
        size_m: side of the square domain (m).
        start_date: first simulated day (UTC).
        n_days: number of simulated days.
        weather_spacing_m: node spacing of the weather grid (m).
        weather_margin_m: weather grid margin outside the domain (m).
    """

    seed: int = 3
    crs: str = "EPSG:32614"
    x0_m: float = 550_000.0
    y0_m: float = 3_900_000.0
    size_m: float = 100_000.0
    start_date: str = "2019-01-01"
    n_days: int = 731
    weather_spacing_m: float = 5_000.0
    weather_margin_m: float = 30_000.0

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.start_date).replace(tzinfo=dt.timezone.utc)

    def day_of(self, t: dt.datetime) -> int:
        """Simulation day index of a UTC time."""
        return int((t - self.start).total_seconds() // 86400)

    def time_of(self, day: float) -> dt.datetime:
        """UTC time at fractional simulation day ``day``."""
        return self.start + dt.timedelta(days=float(day))


@dataclass
class StaticFields:
    """Static fields on a grid (arrays ``[ny, nx]``); see the module docstring for units."""

    elevation_m: np.ndarray
    wetness: np.ndarray  # topographic wetness proxy, -1 (ridge) .. 1 (valley)
    sand: np.ndarray  # fraction 0-1
    silt: np.ndarray
    clay: np.ndarray
    bdod_cgcm3: np.ndarray
    landcover: np.ndarray  # int8, keys of LANDCOVER
    phase_days: np.ndarray  # per-parcel phenology shift, d
    cover_gain: np.ndarray  # per-parcel multiplier of the maximum cover
    roughness_cm: np.ndarray  # rms height of the soil surface, cm
    soil_brightness: np.ndarray  # multiplier of dry-soil reflectance
    fine_sm: np.ndarray  # multiplicative 10 m soil-moisture heterogeneity

    def at(self, row: int, col: int) -> StaticFields:
        """The fields of one pixel as ``[1, 1]`` arrays (a point of the grid, not the whole grid).

        Use it with the point's own coordinates, e.g.
        ``world.soil_moisture(st.at(i, j), xs[j : j + 1], ys[i : i + 1], day)``: passing the whole
        grid's fields with one point's coordinates broadcasts the grid's static fields against that
        point's weather, which is how the simulator once labelled every patch with its corner pixel.
        """
        return StaticFields(**{k: v[row : row + 1, col : col + 1] for k, v in self.__dict__.items()})

    @property
    def theta_min(self) -> np.ndarray:
        """Residual (wilting-point-like) soil moisture, m3/m3: clay holds more water."""
        return 0.03 + 0.30 * self.clay + 0.05 * self.silt

    @property
    def theta_max(self) -> np.ndarray:
        """Wettest surface state, m3/m3: porosity from bulk density less entrapped air."""
        porosity = 1.0 - (self.bdod_cgcm3 / 100.0) / 2.65
        return porosity - 0.04


class World:
    """A seeded world; every method is deterministic in (config, arguments)."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self._build_weather()

    # ----------------------------------------------------------------- weather
    def _build_weather(self) -> None:
        """Daily precipitation (mm), PET (mm/d) and the three API curves on the weather grid."""
        c = self.config
        rng = np.random.default_rng(salt_of(c.seed, "weather") & 0xFFFFFFFF)
        sp = c.weather_spacing_m
        self.weather_origin = (c.x0_m - c.weather_margin_m, c.y0_m - c.weather_margin_m)
        n = int(round((c.size_m + 2 * c.weather_margin_m) / sp)) + 1
        gx = self.weather_origin[0] + sp * np.arange(n)
        gy = self.weather_origin[1] + sp * np.arange(n)
        doy = np.array([(c.start + dt.timedelta(days=d)).timetuple().tm_yday for d in range(c.n_days)])
        # Oklahoma: wettest in May-June, second peak in autumn; storms per day over the region
        rate = 0.35 + 0.7 * np.exp(-0.5 * ((doy - 150) / 35.0) ** 2) + 0.3 * np.exp(-0.5 * ((doy - 280) / 25.0) ** 2)
        precip = np.zeros((c.n_days, n, n), dtype=np.float64)
        span = c.size_m + 2 * c.weather_margin_m
        for d in range(c.n_days):
            for _ in range(rng.poisson(rate[d])):
                cx = self.weather_origin[0] + span * rng.random()
                cy = self.weather_origin[1] + span * rng.random()
                radius = rng.uniform(10_000.0, 35_000.0)
                depth = rng.gamma(0.9, 40.0)
                r2 = (gx[None, :] - cx) ** 2 + (gy[:, None] - cy) ** 2
                precip[d] += depth * np.exp(-0.5 * r2 / radius**2)
        pet = 1.5 + 4.5 * np.exp(-0.5 * ((doy - 195) / 55.0) ** 2)
        api = np.zeros((len(API_RETENTION), c.n_days, n, n))
        state = np.full((len(API_RETENTION), n, n), 10.0)
        for d in range(c.n_days):
            for k, keep in enumerate(API_RETENTION):
                state[k] = state[k] * keep ** (pet[d] / pet.mean()) + precip[d]
            api[:, d] = state
        self.precip_mm = precip
        self.pet_mm = pet
        self.api_mm = api
        LOG.debug("weather grid %d x %d nodes at %.0f m, %d days, mean rain %.2f mm/d", n, n, sp, c.n_days,
                  precip.mean())

    def regional_precip_mm(self, day: int) -> float:
        """Domain-mean precipitation of a day (mm)."""
        return float(self.precip_mm[day].mean())

    # ------------------------------------------------------------------ static
    def _salt(self, name: str) -> int:
        return salt_of(self.config.seed, name)

    def _smooth_elevation(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(regional, smooth) elevation in m: octaves >= 8 km, and >= 500 m."""
        regional = 380.0 + 90.0 * fbm(
            xs, ys, (24_000.0, 12_000.0, 8_000.0), (1.0, 0.5, 0.3), self._salt("elev_regional")
        )
        hills = 25.0 * fbm(xs, ys, (2_000.0, 1_000.0, 500.0), (1.0, 0.5, 0.25), self._salt("elev_hills"))
        return regional, regional + hills

    @cached_property
    def _wetness_scales(self) -> tuple[float, float]:
        """Std of the smooth-elevation Laplacian and of local relief over the domain."""
        c = self.config
        xs = c.x0_m + np.linspace(0, c.size_m, 64)
        ys = c.y0_m + np.linspace(0, c.size_m, 64)
        lap, relief = self._curvature_relief(xs, ys)
        return float(lap.std()), float(relief.std())

    def _curvature_relief(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = 200.0
        regional, centre = self._smooth_elevation(xs, ys)
        lap = -4.0 * centre
        for dx, dy in ((h, 0.0), (-h, 0.0), (0.0, h), (0.0, -h)):
            lap += self._smooth_elevation(xs + dx, ys + dy)[1]
        return lap / h**2, centre - regional

    def static(self, xs: np.ndarray, ys: np.ndarray) -> StaticFields:
        """Static fields on the grid of pixel centres ``ys x xs`` (map metres)."""
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        _, smooth = self._smooth_elevation(xs, ys)
        detail = 4.0 * fbm(xs, ys, (250.0, 120.0), (1.0, 0.5), self._salt("elev_detail"))
        elevation = smooth + detail
        lap, relief = self._curvature_relief(xs, ys)
        lap_sd, relief_sd = self._wetness_scales
        wetness = np.tanh(-0.8 * lap / lap_sd - 0.5 * relief / relief_sd)

        z_sand = fbm(xs, ys, (12_000.0, 4_000.0, 1_200.0, 500.0), (1.0, 0.6, 0.35, 0.2), self._salt("sand"))
        z_silt = fbm(xs, ys, (12_000.0, 4_000.0, 1_200.0, 500.0), (1.0, 0.6, 0.35, 0.2), self._salt("silt"))
        z_clay = fbm(xs, ys, (12_000.0, 4_000.0, 1_200.0, 500.0), (1.0, 0.6, 0.35, 0.2), self._salt("clay"))
        a_sand = 0.35 * np.exp(0.9 * z_sand)
        a_silt = 0.43 * np.exp(0.6 * z_silt)
        a_clay = 0.22 * np.exp(0.8 * z_clay + 0.3 * wetness)  # alluvial clays in valleys
        total = a_sand + a_silt + a_clay
        sand, silt, clay = a_sand / total, a_silt / total, a_clay / total
        bdod = (
            138.0
            + 30.0 * (sand - 0.35)
            - 25.0 * (clay - 0.22)
            + 4.0 * fbm(xs, ys, (3_000.0, 800.0), (1.0, 0.5), self._salt("bdod"))
        )

        # land cover: riparian forest in wet valleys, parcels of crops and grass elsewhere
        forest_score = 0.8 * wetness + 0.7 * fbm(xs, ys, (3_000.0, 900.0), (1.0, 0.6), self._salt("forest"))
        crop_share = 0.55 + 0.35 * fbm(xs, ys, (20_000.0, 7_000.0), (1.0, 0.5), self._salt("crop_share"))
        px = np.floor(xs / PARCEL_M).astype(np.int64)
        py = np.floor(ys / PARCEL_M).astype(np.int64)
        u1 = hash_uniform(px[None, :], py[:, None], self._salt("parcel_use"))
        u2 = hash_uniform(px[None, :], py[:, None], self._salt("parcel_crop"))
        u3 = hash_uniform(px[None, :], py[:, None], self._salt("parcel_phase"))
        u4 = hash_uniform(px[None, :], py[:, None], self._salt("parcel_rough"))
        landcover = np.where(u1 < crop_share, np.where(u2 < 0.65, 1, 2), 3).astype(np.int8)
        landcover[forest_score > 0.75] = 4
        phase = 30.0 * (u3 - 0.5)
        cover_gain = 0.8 + 0.25 * u2 + 0.05 * value_noise(xs, ys, 150.0, self._salt("cover_gain"))
        tilled = np.isin(landcover, (1, 2))
        roughness = np.where(tilled, 0.6 + 2.0 * u4, np.where(landcover == 4, 1.8, 1.1 + 0.4 * u4))
        brightness = 1.0 + 0.8 * (sand - 0.35) + 0.06 * fbm(xs, ys, (400.0, 100.0), (1.0, 0.5), self._salt("bright"))
        fine = (
            1.0
            + 0.05 * value_noise(xs, ys, 80.0, self._salt("fine80"))
            + 0.04 * value_noise(xs, ys, 20.0, self._salt("fine20"))
        )
        return StaticFields(
            elevation_m=elevation,
            wetness=wetness,
            sand=sand,
            silt=silt,
            clay=clay,
            bdod_cgcm3=bdod,
            landcover=landcover,
            phase_days=phase,
            cover_gain=cover_gain,
            roughness_cm=roughness,
            soil_brightness=brightness,
            fine_sm=fine,
        )

    # ----------------------------------------------------------------- dynamic
    def day_of_year(self, day: int) -> int:
        return (self.config.start + dt.timedelta(days=int(day))).timetuple().tm_yday

    def vegetation(self, st: StaticFields, day: int) -> tuple[np.ndarray, np.ndarray]:
        """Green cover fraction (0-1) and vegetation water content (kg/m2) on day ``day``."""
        doy = self.day_of_year(day)
        cover = np.zeros(st.landcover.shape)
        vwc = np.zeros(st.landcover.shape)
        for cls, (base, peak_cover, peak_doy, width, leaf, wood) in PHENOLOGY.items():
            m = st.landcover == cls
            if not m.any():
                continue
            lag = (doy - peak_doy - st.phase_days[m] + 182.5) % 365.0 - 182.5
            c = base + (peak_cover - base) * np.exp(-0.5 * (lag / width) ** 2)
            c = np.clip(c * st.cover_gain[m], 0.0, 0.97)
            cover[m] = c
            vwc[m] = leaf * c + wood
        return cover, vwc

    def api_at(self, xs: np.ndarray, ys: np.ndarray, day: int) -> np.ndarray:
        """The three API curves (mm) interpolated to the grid: ``[3, ny, nx]``."""
        ox, oy = self.weather_origin
        return bilinear_from_grid(self.api_mm[:, day], ox, oy, self.config.weather_spacing_m, xs, ys)

    def soil_moisture(
        self, st: StaticFields, xs: np.ndarray, ys: np.ndarray, day: int, cover: np.ndarray | None = None
    ) -> np.ndarray:
        """Truth of the 0-5 cm volumetric soil moisture (m3/m3) on the grid, day ``day``.

        ``st`` must be the static fields of exactly the grid ``ys x xs`` (checked).
        """
        if st.landcover.shape != (len(ys), len(xs)):
            raise ValueError(f"static fields of shape {st.landcover.shape} do not match the grid {(len(ys), len(xs))}")
        if cover is None:
            cover, _ = self.vegetation(st, day)
        api = self.api_at(xs, ys, day)
        retention = np.clip(
            0.45 + 1.6 * (st.clay - 0.22) - 0.6 * (st.sand - 0.35) + 0.2 * st.wetness - 0.15 * (cover - 0.5),
            0.0,
            1.0,
        )
        lo = retention < 0.5
        t = np.where(lo, 2.0 * retention, 2.0 * retention - 1.0)
        api_r = np.where(lo, (1 - t) * api[0] + t * api[1], (1 - t) * api[1] + t * api[2])
        wet = np.clip(1.0 - np.exp(-api_r / API_DEPTH_MM) + 0.12 * st.wetness, 0.0, 1.0)
        theta = (st.theta_min + (st.theta_max - st.theta_min) * wet) * st.fine_sm
        return np.clip(theta, 0.02, 0.55)

    def gldas_proxy(self, st: StaticFields, xs: np.ndarray, ys: np.ndarray, day: int) -> np.ndarray:
        """A land-model-like 0-10 cm soil moisture (m3/m3): slow drying, no fine-scale detail."""
        if st.landcover.shape != (len(ys), len(xs)):
            raise ValueError(f"static fields of shape {st.landcover.shape} do not match the grid {(len(ys), len(xs))}")
        api = self.api_at(xs, ys, day)
        wet = 1.0 - np.exp(-(0.3 * api[1] + 0.7 * api[2]) / (1.6 * API_DEPTH_MM))
        return st.theta_min + (st.theta_max - st.theta_min) * (0.10 + 0.70 * wet)


def grid_axes(x0_m: float, y_top_m: float, width: int, height: int, pixel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of a north-up grid: ``xs`` (west to east), ``ys`` (north to south)."""
    xs = x0_m + pixel_m * (np.arange(width) + 0.5)
    ys = y_top_m - pixel_m * (np.arange(height) + 0.5)
    return xs, ys
