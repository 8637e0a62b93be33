"""The bundled sample scene: the six inputs of one area and date, as Earth Engine would deliver them.

The model's 320 m output covers 16 x 16 cells (5.12 km x 5.12 km); every output
cell is the estimate of a 2.56 km window centred on it, so the 10 m inputs
extend 1280 m beyond the output area on every side: 768 x 768 px (7.68 km).
Files (each on its source's native grid and CRS; band descriptions are the
``sources`` table's band names):

* ``sentinel1.tif`` - VV, VH (dB), angle (deg); EPSG:326xx, 10 m; int16 x 100.
* ``sentinel2.tif`` - B4, B3, B2, B8, B11, B12 DN; EPSG:326xx, 10 m (B11 / B12
  are 20 m pixels delivered at 10 m); uint16.
* ``dem.tif`` - elevation (m); EPSG:4326, 1 arc-second (~30 m); int16.
* ``soilgrids.tif`` - sand, silt, clay (g/kg), bdod (cg/cm3); Interrupted Goode
  Homolosine (ESRI:54052), 250 m; int16.
* ``smap.tif`` - ssm (mm over 0-5 cm); EPSG:4326, 0.1 deg; float32.
* ``gldas.tif`` - SoilMoi0_10cm_inst (kg/m2); EPSG:4326, 0.25 deg; float32.
* ``truth_sm_10m.tif`` - the simulated 0-5 cm truth (m3/m3) on the 10 m grid.
* ``truth_sm_320m.tif`` - its block mean on the model's 320 m output grid.
* ``manifest.json`` - file, bands, units, acquisition time and product per source.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.warp import Resampling, reproject

from smqgis.core import sources

from . import forward as fw
from .geotiff import BandSpec, write_stack
from .world import World, grid_axes

LOG = logging.getLogger(__name__)

PIXEL_M = 10.0
OUTPUT_CELL_M = 320.0
OUTPUT_CELLS = 16
HALO_M = 1280.0
SCENE_PX = int((OUTPUT_CELLS * OUTPUT_CELL_M + 2 * HALO_M) / PIXEL_M)  # 768
DEM_DEG = 1.0 / 3600.0
SOILGRIDS_CRS = "ESRI:54052"
SOILGRIDS_M = 250.0
#: Default centre of the sample scene (m, EPSG:32614) and earliest anchor day.
DEFAULT_CENTRE = (601_600.0, 3_950_400.0)
DEFAULT_MIN_DAY = 480


@dataclass(frozen=True)
class SceneChoice:
    """Where and when the sample scene is: the anchor Sentinel-1 image and the joined images."""

    centre_x_m: float
    centre_y_m: float
    s1: fw.Acquisition
    s2: fw.Acquisition
    smap: fw.Acquisition
    gldas: fw.Acquisition

    @property
    def x0_m(self) -> float:
        return self.centre_x_m - SCENE_PX * PIXEL_M / 2

    @property
    def y_top_m(self) -> float:
        return self.centre_y_m + SCENE_PX * PIXEL_M / 2


def iso(world: World, day: float) -> str:
    """ISO-8601 UTC time of a fractional simulation day, to the second."""
    return world.config.time_of(day).strftime("%Y-%m-%dT%H:%M:%SZ")


#: The sample's dates, by name: what each shows (see :func:`choose_scene`).
SCENE_KINDS = {
    "after_rain": "just after rain, with 3-day-old SMAP (the hard case: SMAP predates the storm)",
    "dry_fresh_smap": "a dry spell (< 2 mm of rain in a week) with SMAP from the same day",
    "ordinary": "an ordinary day: some rain in the previous week, SMAP 1-2 days old",
}


def _rain_mm(world: World, first_day: int, last_day: int) -> float:
    """Domain-mean rain summed over days ``first_day .. last_day`` (inclusive), mm."""
    return sum(world.regional_precip_mm(d) for d in range(max(first_day, 0), last_day + 1))


def choose_scene(world: World, centre: tuple[float, float] = DEFAULT_CENTRE, min_day: int = DEFAULT_MIN_DAY,
                 kind: str = "after_rain") -> SceneChoice:
    """First Sentinel-1 image after ``min_day`` of ``kind`` (``SCENE_KINDS``) with a cloud-free joined Sentinel-2.

    ``after_rain``: >= 8 mm of domain-mean rain in the 5 days up to the image. ``dry_fresh_smap``: < 2 mm
    in the 7 days up to the image and a SMAP retrieval less than 1 day old. ``ordinary``: 2-8 mm in the
    previous 7 days and SMAP 1-2.5 days old.
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {sorted(SCENE_KINDS)}")
    s1s, s2s = fw.s1_acquisitions(world), fw.s2_acquisitions(world)
    smaps, gldass = fw.smap_acquisitions(world), fw.gldas_acquisitions(world)
    clouds = fw.CloudField(world)
    xs, ys = grid_axes(centre[0] - 3840.0, centre[1] + 3840.0, 96, 96, 80.0)
    bound = {k: sources.SOURCES[k].temporal_bound_s / 86400.0 for k in ("sentinel2", "smap", "gldas")}
    max_cloud = sources.SOURCES["sentinel2"].ee_filters["max_cloud_percent"]
    for s1 in s1s:
        if s1.day < min_day:
            continue
        d = s1.whole_day
        smap = fw.latest_within(smaps, s1.day, bound["smap"])
        gldas = fw.latest_within(gldass, s1.day, bound["gldas"])
        if smap is None or gldas is None:
            continue
        smap_age = s1.day - smap.day
        if kind == "after_rain":
            ok = _rain_mm(world, d - 4, d) >= 8.0
        elif kind == "dry_fresh_smap":
            ok = _rain_mm(world, d - 6, d) < 2.0 and smap_age < 1.0
        else:
            ok = 2.0 <= _rain_mm(world, d - 6, d) < 8.0 and 1.0 <= smap_age <= 2.5
        if not ok:
            continue
        s2 = fw.latest_within(s2s, s1.day, bound["sentinel2"], max_cloud)
        if s2 is None or clouds.opacity(xs, ys, s2).max() > 0.0:
            continue
        return SceneChoice(centre[0], centre[1], s1, s2, smap, gldas)
    raise RuntimeError(f"no Sentinel-1 date of kind {kind!r} with a joined cloud-free Sentinel-2 image; change min_day")


def _bands(source: str, scale: float = 1.0, extra: dict[str, dict[str, str]] | None = None) -> list[BandSpec]:
    return [
        BandSpec(b.name, b.units, scale=scale, tags=(extra or {}).get(b.name, {}))
        for b in sources.SOURCES[source].bands
    ]


def _lonlat_bounds(world: World, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    """Lon/lat bounding box of a map rectangle (edges sampled densely)."""
    tr = Transformer.from_crs(world.config.crs, "EPSG:4326", always_xy=True)
    t = np.linspace(0.0, 1.0, 33)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x0 + (x1 - x0) * t, np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y0 + (y1 - y0) * t])
    lon, lat = tr.transform(xs, ys)
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def _warp_from_map(
    world: World,
    field_fn: Any,
    dst_crs: str,
    dst_transform: Affine,
    dst_shape: tuple[int, int],
    src_pixel_m: float,
) -> list[np.ndarray]:
    """Evaluate fields on a map grid covering the destination, then average-resample to it."""
    rows, cols = dst_shape
    corners_x = [0, cols, 0, cols]
    corners_y = [0, 0, rows, rows]
    cx, cy = zip(*(dst_transform @ (c, r) for c, r in zip(corners_x, corners_y)))
    tr = Transformer.from_crs(dst_crs, world.config.crs, always_xy=True)
    t = np.linspace(0.0, 1.0, 17)
    ex = np.concatenate(
        [cx[0] + (cx[1] - cx[0]) * t, cx[2] + (cx[3] - cx[2]) * t, np.full_like(t, cx[0]), np.full_like(t, cx[1])]
    )
    ey = np.concatenate(
        [np.full_like(t, cy[0]), np.full_like(t, cy[2]), cy[0] + (cy[2] - cy[0]) * t, cy[1] + (cy[3] - cy[1]) * t]
    )
    mx, my = tr.transform(ex, ey)
    margin = 4 * src_pixel_m
    x0 = np.floor((mx.min() - margin) / src_pixel_m) * src_pixel_m
    y_top = np.ceil((my.max() + margin) / src_pixel_m) * src_pixel_m
    width = int(np.ceil((mx.max() + margin - x0) / src_pixel_m))
    height = int(np.ceil((y_top - (my.min() - margin)) / src_pixel_m))
    xs, ys = grid_axes(x0, y_top, width, height, src_pixel_m)
    src_transform = Affine(src_pixel_m, 0.0, x0, 0.0, -src_pixel_m, y_top)
    out = []
    for arr in field_fn(xs, ys):
        dst = np.full(dst_shape, np.nan, dtype=np.float64)
        reproject(
            np.asarray(arr, dtype=np.float64),
            dst,
            src_transform=src_transform,
            src_crs=world.config.crs,
            dst_transform=dst_transform,
            dst_crs=dst_crs,
            resampling=Resampling.average,
            src_nodata=np.nan,
            dst_nodata=np.nan,
        )
        out.append(dst)
    return out


def _cell_grid(
    bounds: tuple[float, float, float, float], cell_deg: float, margin_cells: int
) -> tuple[int, int, int, int]:
    """Column/row index ranges (i0, i1, j0, j1, inclusive) of lon/lat cells covering ``bounds``."""
    i0 = int(np.floor(bounds[0] / cell_deg)) - margin_cells
    i1 = int(np.floor(bounds[2] / cell_deg)) + margin_cells
    j0 = int(np.floor(bounds[1] / cell_deg)) - margin_cells
    j1 = int(np.floor(bounds[3] / cell_deg)) + margin_cells
    return i0, i1, j0, j1


def build_sample_scene(
    out_dir: str | Path,
    world: World | None = None,
    choice: SceneChoice | None = None,
    kind: str = "after_rain",
    with_truth_10m: bool = True,
) -> dict[str, Any]:
    """Write one date of the sample scene into ``out_dir`` and return its manifest (also manifest.json).

    ``kind`` names the date (``SCENE_KINDS``) when ``choice`` is not given; ``with_truth_10m``
    writes the 10 m truth too (0.8 MB; the extra dates ship only the 320 m truth).
    """
    world = world or World()
    choice = choice or choose_scene(world, kind=kind)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    crs = world.config.crs
    x0, y_top = choice.x0_m, choice.y_top_m
    xs, ys = grid_axes(x0, y_top, SCENE_PX, SCENE_PX, PIXEL_M)
    utm10 = Affine(PIXEL_M, 0.0, x0, 0.0, -PIXEL_M, y_top)
    st = world.static(xs, ys)
    files: dict[str, dict[str, Any]] = {}

    def record(
        key: str, path: Path, acq_time: str | None, product: str, crs_: str, res: str, bands: list[BandSpec]
    ) -> None:
        files[key] = {
            "path": path.name,
            "product": product,
            "crs": crs_,
            "resolution": res,
            "bands": [b.name for b in bands],
            "units": {b.name: b.units for b in bands},
            "acquisition_time": acq_time,
        }

    # Sentinel-1: dB and degrees stored as int16 x 100
    s1 = fw.s1_image(world, st, xs, ys, choice.s1)
    bands = _bands("sentinel1", scale=0.01)
    t_s1 = iso(world, choice.s1.day)
    path = write_stack(
        out / "sentinel1.tif",
        [s1[b.name] for b in bands],
        bands,
        crs=crs,
        transform=utm10,
        dtype="int16",
        nodata=-32768,
        acquisition_time=t_s1,
        product=sources.SOURCES["sentinel1"].ee_collection,
        tags={"ORBIT_PASS": choice.s1.orbit.orbit_pass, "INSTRUMENT_MODE": "IW", "LOOKS": str(fw.S1_LOOKS)},
    )
    record("sentinel1", path, t_s1, sources.SOURCES["sentinel1"].ee_collection, crs, "10 m", bands)

    # Sentinel-2: L1C DN, B11 / B12 are 20 m pixels on the 10 m grid
    s2 = fw.s2_image(world, fw.CloudField(world), st, xs, ys, choice.s2)
    bands = _bands("sentinel2", extra={b: {"NATIVE_RESOLUTION_M": "20"} for b in fw.S2_20M_BANDS})
    t_s2 = iso(world, choice.s2.day)
    path = write_stack(
        out / "sentinel2.tif",
        [s2[b.name] for b in bands],
        bands,
        crs=crs,
        transform=utm10,
        dtype="uint16",
        nodata=0,
        acquisition_time=t_s2,
        product=sources.SOURCES["sentinel2"].ee_collection,
        tags={"CLOUDY_PIXEL_PERCENTAGE": f"{choice.s2.cloud_percent:.2f}"},
    )
    record("sentinel2", path, t_s2, sources.SOURCES["sentinel2"].ee_collection, crs, "10 m (B11, B12: 20 m)", bands)

    lon0, lat0, lon1, lat1 = _lonlat_bounds(world, x0, y_top - SCENE_PX * PIXEL_M, x0 + SCENE_PX * PIXEL_M, y_top)

    # DEM: 1 arc-second on EPSG:4326, averaged from the 10 m world
    c0 = int(np.floor(lon0 / DEM_DEG)) - 2
    r0 = int(np.ceil(lat1 / DEM_DEG)) + 2
    dem_shape = (r0 - int(np.floor(lat0 / DEM_DEG)) + 2, int(np.ceil(lon1 / DEM_DEG)) + 2 - c0)
    dem_tr = Affine(DEM_DEG, 0.0, c0 * DEM_DEG, 0.0, -DEM_DEG, r0 * DEM_DEG)
    (dem,) = _warp_from_map(
        world, lambda gx, gy: [world.static(gx, gy).elevation_m], "EPSG:4326", dem_tr, dem_shape, PIXEL_M
    )
    bands = _bands("dem")
    path = write_stack(
        out / "dem.tif",
        [dem],
        bands,
        crs="EPSG:4326",
        transform=dem_tr,
        dtype="int16",
        nodata=-32768,
        acquisition_time=None,
        product=sources.SOURCES["dem"].ee_collection,
    )
    record("dem", path, None, sources.SOURCES["dem"].ee_collection, "EPSG:4326", "1 arc-second", bands)

    # SoilGrids: 250 m on the Homolosine grid, averaged from a 50 m evaluation
    to_igh = Transformer.from_crs("EPSG:4326", SOILGRIDS_CRS, always_xy=True)
    hx, hy = to_igh.transform([lon0, lon1, lon0, lon1], [lat0, lat0, lat1, lat1])
    hx0 = (np.floor(min(hx) / SOILGRIDS_M) - 1) * SOILGRIDS_M
    hy1 = (np.ceil(max(hy) / SOILGRIDS_M) + 1) * SOILGRIDS_M
    sg_shape = (
        int(round((hy1 - (np.floor(min(hy) / SOILGRIDS_M) - 1) * SOILGRIDS_M) / SOILGRIDS_M)),
        int(round(((np.ceil(max(hx) / SOILGRIDS_M) + 1) * SOILGRIDS_M - hx0) / SOILGRIDS_M)),
    )
    sg_tr = Affine(SOILGRIDS_M, 0.0, hx0, 0.0, -SOILGRIDS_M, hy1)

    def soil_fields(gx: np.ndarray, gy: np.ndarray) -> list[np.ndarray]:
        prod = fw.soilgrids_product(world, world.static(gx, gy), gx, gy)
        return [prod[b.name] for b in sources.SOURCES["soilgrids"].bands]

    soil = _warp_from_map(world, soil_fields, SOILGRIDS_CRS, sg_tr, sg_shape, 50.0)
    bands = _bands("soilgrids", extra={b.name: {"EE_BAND": b.ee_name} for b in sources.SOURCES["soilgrids"].bands})
    sg_product = "projects/soilgrids-isric/{sand,silt,clay,bdod}_mean (0-5cm_mean)"
    path = write_stack(
        out / "soilgrids.tif",
        soil,
        bands,
        crs=SOILGRIDS_CRS,
        transform=sg_tr,
        dtype="int16",
        nodata=-32768,
        acquisition_time=None,
        product=sg_product,
    )
    record("soilgrids", path, None, sg_product, SOILGRIDS_CRS, "250 m", bands)

    # SMAP and GLDAS: cell values on their lon/lat grids, one cell of margin
    coarse = fw.CoarseProducts(world)
    for key, cell_deg, acq, value_fn in (
        ("smap", fw.SMAP_CELL_DEG, choice.smap, coarse.smap_ssm_mm),
        ("gldas", fw.GLDAS_CELL_DEG, choice.gldas, coarse.gldas_kgm2),
    ):
        i0, i1, j0, j1 = _cell_grid((lon0, lat0, lon1, lat1), cell_deg, 1)
        grid = np.array([[value_fn(i, j, acq) for i in range(i0, i1 + 1)] for j in range(j1, j0 - 1, -1)])
        tr = Affine(cell_deg, 0.0, i0 * cell_deg, 0.0, -cell_deg, (j1 + 1) * cell_deg)
        bands = _bands(key)
        t_acq = iso(world, acq.day)
        product = sources.SOURCES[key].ee_collection
        path = write_stack(
            out / f"{key}.tif",
            [grid],
            bands,
            crs="EPSG:4326",
            transform=tr,
            dtype="float32",
            nodata=-9999.0,
            acquisition_time=t_acq,
            product=product,
        )
        record(key, path, t_acq, product, "EPSG:4326", f"{cell_deg} deg", bands)

    # truth: the 10 m field and its 320 m block mean on the output grid
    truth = world.soil_moisture(st, xs, ys, choice.s1.whole_day)
    if with_truth_10m:
        tb = [BandSpec("soil_moisture", "m3/m3", scale=1e-4)]
        write_stack(
            out / "truth_sm_10m.tif",
            [truth],
            tb,
            crs=crs,
            transform=utm10,
            dtype="uint16",
            nodata=65535,
            acquisition_time=t_s1,
            product="simulated truth, 0-5 cm",
        )
    halo = int(HALO_M / PIXEL_M)
    cell = int(OUTPUT_CELL_M / PIXEL_M)
    inner = truth[halo : SCENE_PX - halo, halo : SCENE_PX - halo]
    truth320 = inner.reshape(OUTPUT_CELLS, cell, OUTPUT_CELLS, cell).mean(axis=(1, 3))
    out_tr = Affine(OUTPUT_CELL_M, 0.0, x0 + HALO_M, 0.0, -OUTPUT_CELL_M, y_top - HALO_M)
    write_stack(
        out / "truth_sm_320m.tif",
        [truth320],
        [BandSpec("soil_moisture", "m3/m3")],
        crs=crs,
        transform=out_tr,
        dtype="float32",
        nodata=-9999.0,
        acquisition_time=t_s1,
        product="simulated truth, 0-5 cm, 320 m block mean",
    )

    manifest = {
        "what": "simulated sample scene - synthetic data from smqgis' simulator, not real observations",
        "seed": world.config.seed,
        "generator": "python -m training.simulate.make_resources",
        "crs": crs,
        "anchor_time": t_s1,
        "output_grid": {
            "crs": crs,
            "transform": list(out_tr)[:6],
            "width": OUTPUT_CELLS,
            "height": OUTPUT_CELLS,
            "extent": [
                x0 + HALO_M,
                y_top - HALO_M - OUTPUT_CELLS * OUTPUT_CELL_M,
                x0 + HALO_M + OUTPUT_CELLS * OUTPUT_CELL_M,
                y_top - HALO_M,
            ],
            "pixel_size_m": OUTPUT_CELL_M,
        },
        "inputs": files,
        "truth": {
            **(
                {"truth_sm_10m": {"path": "truth_sm_10m.tif", "units": "m3/m3", "grid": "the Sentinel-1 10 m grid"}}
                if with_truth_10m
                else {}
            ),
            "truth_sm_320m": {"path": "truth_sm_320m.tif", "units": "m3/m3", "grid": "output_grid"},
        },
        "scene": {
            "kind": kind,
            "what": SCENE_KINDS.get(kind, ""),
            "smap_age_hours": round(24.0 * (choice.s1.day - choice.smap.day), 1),
            "rain_5_days_mm": round(_rain_mm(world, choice.s1.whole_day - 4, choice.s1.whole_day), 1),
            "s2_cloudy_pixel_percentage": choice.s2.cloud_percent,
            "truth_mean_m3m3": round(float(truth.mean()), 4),
            "truth_320m_std_m3m3": round(float(truth320.std()), 4),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    LOG.info("sample scene %s at %s: %s", out, t_s1, sorted(p.name for p in out.glob("*")))
    return manifest


#: Folder (inside the sample folder) of the extra dates, one complete scene per date.
DATES_DIR = "dates"


def build_sample_dates(out_dir: str | Path, world: World | None = None) -> dict[str, Any]:
    """The sample on three dates of one footprint (``SCENE_KINDS``).

    The first date (``after_rain``) is written into ``out_dir`` itself, as before; every other
    date is a complete scene (all six inputs and the 320 m truth; no 10 m truth, to keep the
    resources small) in ``out_dir/dates/<YYYY-MM-DD>/``. ``out_dir/dates.json`` lists them all.
    """
    world = world or World()
    out = Path(out_dir)
    listing = []
    for k, kind in enumerate(SCENE_KINDS):
        folder = out if k == 0 else None
        choice = choose_scene(world, kind=kind)
        date = world.config.time_of(choice.s1.day).strftime("%Y-%m-%d")
        folder = folder or out / DATES_DIR / date
        manifest = build_sample_scene(folder, world, choice, kind=kind, with_truth_10m=(k == 0))
        listing.append(
            {
                "date": date,
                "kind": kind,
                "what": SCENE_KINDS[kind],
                "folder": "." if k == 0 else f"{DATES_DIR}/{date}",
                "anchor_time": manifest["anchor_time"],
                "smap_age_hours": manifest["scene"]["smap_age_hours"],
            }
        )
    summary = {
        "what": "simulated sample scene on three dates (synthetic data, not real observations)",
        "seed": world.config.seed,
        "dates": listing,
    }
    (out / "dates.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
