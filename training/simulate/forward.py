"""Forward models: what each input source would have seen of the simulated world.

Acquisition schedules (Sentinel-1 two orbits 6 days apart, each repeating every
12 days; Sentinel-2 every 5 days with a scene cloud percentage; SMAP every 2-3
days; GLDAS every 3 hours) and the observation operators on a grid of the world:

* Sentinel-1 VV / VH (dB): Dubois et al. (1995) bare-soil VV over the Topp et al.
  (1980) dielectric constant, an Oh-like cross-polarised ratio, the water cloud
  model of Attema & Ulaby (1978) with the vegetation water content, and
  multiplicative speckle of 4 looks; ellipsoid incidence 30-46 deg across the swath.
* Sentinel-2 L1C-like DN (TOA reflectance x 10000) for B4, B3, B2, B8, B11, B12:
  a linear soil / green-vegetation mixture, soil darkening exponentially with
  moisture (strongest in the SWIR, after Lobell & Asner 2002), a simple
  atmosphere (path reflectance and transmittance) and clouds; B11 / B12 at 20 m.
* SMAP ssm (mm in the top 5 cm): the truth averaged over a 0.1 deg cell, with a
  gain, a bias, a per-cell bias and retrieval noise.
* GLDAS SoilMoi0_10cm_inst (kg/m2 in the top 10 cm): a slow land-model proxy
  averaged over a 0.25 deg cell, with its own bias.

All randomness is hashed from the world seed and the acquisition, so a pixel
looks the same in every window that contains it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pyproj import Transformer

from .noise import fbm, hash_uniform, pixel_uniform, salt_of
from .world import StaticFields, World

LOG = logging.getLogger(__name__)

S1_WAVELENGTH_CM = 5.55
S1_LOOKS = 4
#: Water cloud model parameters (A linear, B per kg/m2) per polarisation.
WCM = {"VV": (0.035, 0.20), "VH": (0.008, 0.25)}
S2_BANDS = ("B4", "B3", "B2", "B8", "B11", "B12")
#: Dry-soil reflectance, green-vegetation reflectance, wet-soil darkening (per m3/m3),
#: atmospheric path reflectance and transmittance, cloud reflectance, per band.
S2_OPTICS = {
    "B2": (0.09, 0.035, 1.5, 0.070, 0.82, 0.55),
    "B3": (0.12, 0.075, 1.6, 0.045, 0.86, 0.55),
    "B4": (0.16, 0.040, 1.7, 0.030, 0.89, 0.55),
    "B8": (0.22, 0.450, 1.9, 0.015, 0.93, 0.58),
    "B11": (0.32, 0.220, 2.7, 0.004, 0.95, 0.45),
    "B12": (0.27, 0.100, 3.1, 0.002, 0.96, 0.35),
}
S2_20M_BANDS = ("B11", "B12")
SMAP_CELL_DEG = 0.1
GLDAS_CELL_DEG = 0.25


@dataclass(frozen=True)
class S1Orbit:
    """A Sentinel-1 relative orbit over the domain."""

    name: str
    first_day: int
    repeat_days: int
    hour_utc: float
    near_range_x_m: float  # easting of the swath's near-range edge
    look: int  # +1: looks east (incidence grows with easting), -1: looks west
    orbit_pass: str

    def incidence_deg(self, xs_m: np.ndarray) -> np.ndarray:
        """Ellipsoid incidence angle (deg) across a 250 km swath, 30 deg near to 46 deg far."""
        frac = self.look * (np.asarray(xs_m) - self.near_range_x_m) / 250_000.0
        return 30.0 + 16.0 * np.clip(frac, 0.0, 1.0)


S1_ORBITS = (
    S1Orbit("A", 0, 12, 0.5, 480_000.0, +1, "ASCENDING"),
    S1Orbit("B", 6, 12, 12.33, 720_000.0, -1, "DESCENDING"),
)


@dataclass(frozen=True)
class Acquisition:
    """One image of a source: when (fractional simulation day) and its scene properties."""

    source: str  # key of smqgis.core.sources.SOURCES
    day: float  # fractional days since the world's start (UTC)
    index: int  # running number within the source
    orbit: S1Orbit | None = None
    cloud_percent: float = 0.0

    @property
    def whole_day(self) -> int:
        return int(np.floor(self.day))

    def time(self, world: World) -> dt.datetime:
        return world.config.time_of(self.day)


def s1_acquisitions(world: World) -> list[Acquisition]:
    """Sentinel-1 images over the domain, in time order (6-day combined revisit)."""
    acqs = []
    for orbit in S1_ORBITS:
        for d in range(orbit.first_day, world.config.n_days, orbit.repeat_days):
            acqs.append((d + orbit.hour_utc / 24.0, orbit))
    acqs.sort(key=lambda a: a[0])
    return [Acquisition("sentinel1", day, i, orbit) for i, (day, orbit) in enumerate(acqs)]


def s2_acquisitions(world: World) -> list[Acquisition]:
    """Sentinel-2 images every 5 days at 17:30 UTC; cloudier on and around rainy days."""
    rng = np.random.default_rng(salt_of(world.config.seed, "s2_clouds") & 0xFFFFFFFF)
    out = []
    for i, d in enumerate(range(2, world.config.n_days, 5)):
        rain = max(world.regional_precip_mm(max(d - 1, 0)), world.regional_precip_mm(d))
        cloud = rng.beta(2.0, 1.0) if rain > 2.0 else rng.beta(0.5, 1.6)
        out.append(Acquisition("sentinel2", d + 17.5 / 24.0, i, cloud_percent=round(100.0 * float(cloud), 2)))
    return out


def smap_acquisitions(world: World) -> list[Acquisition]:
    """SMAP retrievals at 12:00 UTC, alternately 2 and 3 days apart."""
    days, d, step = [], 0, 2
    while d < world.config.n_days:
        days.append(d)
        d += step
        step = 5 - step
    return [Acquisition("smap", d + 0.5, i) for i, d in enumerate(days)]


def gldas_acquisitions(world: World) -> list[Acquisition]:
    """GLDAS 3-hourly instantaneous fields."""
    return [Acquisition("gldas", k / 8.0, k) for k in range(8 * world.config.n_days)]


def latest_within(
    acqs: list[Acquisition], day: float, bound_days: float, max_cloud: float | None = None
) -> Acquisition | None:
    """The temporally closest acquisition at or before ``day`` within ``bound_days`` (Table 5 join)."""
    best = None
    for a in acqs:
        if a.day > day + 1e-9:
            break
        if day - a.day <= bound_days + 1e-9 and (max_cloud is None or a.cloud_percent < max_cloud):
            best = a
    return best


# ---------------------------------------------------------------- Sentinel-1
def topp_permittivity(theta: np.ndarray) -> np.ndarray:
    """Real relative permittivity of soil from volumetric moisture (Topp et al. 1980)."""
    return 3.03 + 9.3 * theta + 146.0 * theta**2 - 76.7 * theta**3


def bare_soil_backscatter(
    theta: np.ndarray, incidence_deg: np.ndarray, roughness_cm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bare-soil sigma0 VV and VH (linear) from moisture (m3/m3), incidence (deg), rms height (cm)."""
    inc = np.radians(incidence_deg)
    eps = topp_permittivity(theta)
    ks = 2.0 * np.pi / S1_WAVELENGTH_CM * roughness_cm
    vv = (
        10.0**-2.35
        * np.cos(inc) ** 3
        / np.sin(inc)
        * 10.0 ** (0.046 * eps * np.tan(inc))
        * (ks * np.sin(inc)) ** 1.1
        * S1_WAVELENGTH_CM**0.7
    )
    sqrt_eps = np.sqrt(eps)
    gamma0 = ((1.0 - sqrt_eps) / (1.0 + sqrt_eps)) ** 2
    q = 0.23 * np.sqrt(gamma0) * (1.0 - np.exp(-ks))
    return vv, q * vv


def water_cloud(soil: np.ndarray, vwc: np.ndarray, incidence_deg: np.ndarray, pol: str) -> np.ndarray:
    """Total sigma0 (linear): vegetation volume term plus the attenuated soil term."""
    a, b = WCM[pol]
    cos = np.cos(np.radians(incidence_deg))
    tau2 = np.exp(-2.0 * b * vwc / cos)
    return a * vwc * cos * (1.0 - tau2) + tau2 * soil


def speckle(xs: np.ndarray, ys: np.ndarray, salt: int, looks: int = S1_LOOKS) -> np.ndarray:
    """Multiplicative speckle (mean 1, gamma with ``looks`` looks), fixed per map pixel."""
    acc = np.zeros((len(ys), len(xs)))
    for k in range(looks):
        acc -= np.log1p(-pixel_uniform(xs, ys, 10.0, salt + 104729 * (k + 1)))
    return acc / looks


def s1_image(world: World, st: StaticFields, xs: np.ndarray, ys: np.ndarray, acq: Acquisition) -> dict[str, np.ndarray]:
    """Sentinel-1 bands on the grid: ``VV``, ``VH`` (dB) and ``angle`` (deg)."""
    day = acq.whole_day
    cover, vwc = world.vegetation(st, day)
    theta = world.soil_moisture(st, xs, ys, day, cover)
    angle = np.broadcast_to(acq.orbit.incidence_deg(xs)[None, :], theta.shape)
    soil_vv, soil_vh = bare_soil_backscatter(theta, angle, st.roughness_cm)
    out = {"angle": np.array(angle)}
    for pol, soil in (("VV", soil_vv), ("VH", soil_vh)):
        sigma = water_cloud(soil, vwc, angle, pol) * speckle(
            xs, ys, salt_of(world.config.seed, "speckle", pol, acq.index)
        )
        out[pol] = 10.0 * np.log10(np.maximum(sigma, 1e-6))
    return out


# ---------------------------------------------------------------- Sentinel-2
class CloudField:
    """Cloud opacity of Sentinel-2 scenes: smooth noise thresholded to the scene's cloud percentage."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._thresholds: dict[int, float] = {}

    def _density(self, xs: np.ndarray, ys: np.ndarray, acq: Acquisition) -> np.ndarray:
        salt = salt_of(self.world.config.seed, "cloud", acq.index)
        return fbm(xs, ys, (8_000.0, 3_000.0, 1_000.0, 300.0), (1.0, 0.6, 0.35, 0.2), salt)

    def threshold(self, acq: Acquisition) -> float:
        """Density above which a pixel is cloudy, so the domain's cloudy fraction is the scene's."""
        if acq.index not in self._thresholds:
            c = self.world.config
            xs = c.x0_m + np.linspace(0.0, c.size_m, 96)
            ys = c.y0_m + np.linspace(0.0, c.size_m, 96)
            q = 1.0 - acq.cloud_percent / 100.0
            self._thresholds[acq.index] = float(np.quantile(self._density(xs, ys, acq), q)) if q < 1 else np.inf
        return self._thresholds[acq.index]

    def opacity(self, xs: np.ndarray, ys: np.ndarray, acq: Acquisition) -> np.ndarray:
        """Cloud opacity 0-1 on the grid (soft edges over a density step of 0.15)."""
        thr = self.threshold(acq)
        if not np.isfinite(thr):
            return np.zeros((len(ys), len(xs)))
        return np.clip((self._density(xs, ys, acq) - thr) / 0.15, 0.0, 1.0)


def surface_reflectance(theta: np.ndarray, cover: np.ndarray, brightness: np.ndarray, band: str) -> np.ndarray:
    """Surface reflectance (0-1): soil darkened by moisture, mixed linearly with green cover."""
    soil_dry, veg, darkening, _, _, _ = S2_OPTICS[band]
    soil = soil_dry * brightness * np.exp(-darkening * theta)
    return cover * veg + (1.0 - cover) * soil


def block_20m(a: np.ndarray) -> np.ndarray:
    """Average 2 x 2 blocks of a 10 m grid and repeat them back (a 20 m band resampled to 10 m)."""
    ny, nx = a.shape
    m = a.reshape(ny // 2, 2, nx // 2, 2).mean(axis=(1, 3))
    return np.repeat(np.repeat(m, 2, axis=0), 2, axis=1)


def s2_image(
    world: World, clouds: CloudField, st: StaticFields, xs: np.ndarray, ys: np.ndarray, acq: Acquisition
) -> dict[str, np.ndarray]:
    """Sentinel-2 L1C-like DN (TOA reflectance x 10000) on the grid.

    The grid must be aligned to the world's 20 m grid (origin a multiple of 20 m,
    even size) so B11 / B12 are true 20 m pixels.
    """
    day = acq.whole_day
    cover, _ = world.vegetation(st, day)
    theta = world.soil_moisture(st, xs, ys, day, cover)
    opacity = clouds.opacity(xs, ys, acq)
    out = {}
    for band in S2_BANDS:
        _, _, _, path, trans, cloud = S2_OPTICS[band]
        toa = path + trans * surface_reflectance(theta, cover, st.soil_brightness, band)
        toa = (1.0 - opacity) * toa + opacity * cloud
        if band in S2_20M_BANDS:
            toa = block_20m(toa)
        out[band] = np.rint(10_000.0 * toa)
    return out


# ---------------------------------------------------------------- SMAP and GLDAS
class CoarseProducts:
    """SMAP and GLDAS cell values on their EPSG:4326 grids (cell statics are cached)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._cells: dict[tuple[str, int, int], tuple[StaticFields, np.ndarray, np.ndarray, np.ndarray]] = {}

    @cached_property
    def to_lonlat(self) -> Transformer:
        return Transformer.from_crs(self.world.config.crs, "EPSG:4326", always_xy=True)

    @cached_property
    def to_map(self) -> Transformer:
        return Transformer.from_crs("EPSG:4326", self.world.config.crs, always_xy=True)

    def cell_of(self, lon: float, lat: float, cell_deg: float) -> tuple[int, int]:
        """Column and row index of the cell containing (lon, lat): floor(lon / deg), floor(lat / deg)."""
        return int(np.floor(lon / cell_deg + 1e-9)), int(np.floor(lat / cell_deg + 1e-9))

    def _cell(self, product: str, i: int, j: int) -> tuple[StaticFields, np.ndarray, np.ndarray, np.ndarray]:
        key = (product, i, j)
        if key not in self._cells:
            deg, step = (SMAP_CELL_DEG, 250.0) if product == "smap" else (GLDAS_CELL_DEG, 1000.0)
            lons = np.array([i, i + 1, i, i + 1]) * deg
            lats = np.array([j, j, j + 1, j + 1]) * deg
            x, y = self.to_map.transform(lons, lats)
            xs = np.arange(np.floor(min(x) / step) * step, max(x), step) + step / 2
            ys = np.arange(np.floor(min(y) / step) * step, max(y), step) + step / 2
            st = self.world.static(xs, ys)
            lon, lat = self.to_lonlat.transform(*np.meshgrid(xs, ys))
            inside = (np.floor(lon / deg + 1e-9) == i) & (np.floor(lat / deg + 1e-9) == j)
            self._cells[key] = (st, xs, ys, inside)
        return self._cells[key]

    def truth_cell_mean(self, i: int, j: int, day: int) -> float:
        """Mean 0-5 cm truth (m3/m3) over SMAP cell (i, j) on a 250 m grid."""
        st, xs, ys, inside = self._cell("smap", i, j)
        return float(self.world.soil_moisture(st, xs, ys, day)[inside].mean())

    def smap_volumetric(self, i: int, j: int, acq: Acquisition) -> float:
        """SMAP retrieval (m3/m3) of cell (i, j): 0.9 x truth mean + 0.03 + cell bias + noise."""
        seed = self.world.config.seed
        cell_bias = 0.015 * (2.0 * hash_uniform(np.int64(i), np.int64(j), salt_of(seed, "smap_bias")) - 1.0)
        u1 = hash_uniform(np.int64(i), np.int64(j), salt_of(seed, "smap_noise", acq.index, 1))
        u2 = hash_uniform(np.int64(i), np.int64(j), salt_of(seed, "smap_noise", acq.index, 2))
        noise = 0.025 * np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
        value = 0.9 * self.truth_cell_mean(i, j, acq.whole_day) + 0.03 + cell_bias + noise
        return float(np.clip(value, 0.02, 0.6))

    def smap_ssm_mm(self, i: int, j: int, acq: Acquisition) -> float:
        """SMAP ``ssm`` in mm of water in the top 5 cm."""
        return 50.0 * self.smap_volumetric(i, j, acq)

    def gldas_volumetric(self, i: int, j: int, acq: Acquisition) -> float:
        """GLDAS 0-10 cm soil moisture (m3/m3) of cell (i, j) at a 3-hourly time."""
        st, xs, ys, inside = self._cell("gldas", i, j)
        d0 = acq.whole_day
        d1 = min(d0 + 1, self.world.config.n_days - 1)
        f = acq.day - d0
        v0 = self.world.gldas_proxy(st, xs, ys, d0)[inside].mean()
        v1 = self.world.gldas_proxy(st, xs, ys, d1)[inside].mean()
        seed = self.world.config.seed
        bias = 0.02 * (2.0 * hash_uniform(np.int64(i), np.int64(j), salt_of(seed, "gldas_bias")) - 1.0)
        noise = 0.01 * (2.0 * hash_uniform(np.int64(i), np.int64(j), salt_of(seed, "gldas_noise", acq.index)) - 1.0)
        return float(np.clip((1 - f) * v0 + f * v1 + 0.02 + bias + noise, 0.02, 0.6))

    def gldas_kgm2(self, i: int, j: int, acq: Acquisition) -> float:
        """GLDAS ``SoilMoi0_10cm_inst`` in kg/m2 (mm) over the top 10 cm."""
        return 100.0 * self.gldas_volumetric(i, j, acq)


# ---------------------------------------------------------------- SoilGrids and DEM
def soilgrids_product(world: World, st: StaticFields, xs: np.ndarray, ys: np.ndarray) -> dict[str, np.ndarray]:
    """SoilGrids-like 0-5 cm texture (g/kg) and bulk density (cg/cm3): truth plus a smooth product error.

    The error is a 6 km / 2 km log-ratio perturbation of each fraction (about
    +-12 %), renormalised so sand + silt + clay = 1000 g/kg, and +-3 cg/cm3 of
    bulk density.
    """
    seed = world.config.seed
    parts = {}
    for name in ("sand", "silt", "clay"):
        err = np.exp(0.12 * fbm(xs, ys, (6_000.0, 2_000.0), (1.0, 0.5), salt_of(seed, "soilgrids_error", name)))
        parts[name] = getattr(st, name) * err
    total = sum(parts.values())
    out = {name: 1000.0 * v / total for name, v in parts.items()}
    out["bdod"] = st.bdod_cgcm3 + 3.0 * fbm(
        xs, ys, (6_000.0, 2_000.0), (1.0, 0.5), salt_of(seed, "soilgrids_error", "bdod")
    )
    return out
