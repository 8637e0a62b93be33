"""Extent CRS defaults and the written file's permissions."""

from __future__ import annotations

import os
import stat

import rasterio
from rasterio.warp import transform_bounds

from smqgis.core.kinds.fusion import estimate_sm_320m

UTM = "EPSG:32614"
#: A 3.2 km box well inside the synthetic scene's Sentinel-1 footprint (UTM 14N, m).
BOX_UTM = (603200.0, 3902880.0, 606400.0, 3906080.0)


def test_extent_defaults_to_the_first_inputs_crs_even_when_it_is_geographic(context_model, scene, tmp_path):
    """With no extent CRS and no output CRS, the extent is read in the CRS of the model's first
    input (Sentinel-1, here delivered in lon/lat as Earth Engine exports often are) both to pick
    the UTM zone and to place the grid."""
    from dataclasses import replace

    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    s1_lonlat = tmp_path / "s1_lonlat.tif"
    with rasterio.open(scene["sentinel1"].path) as src, WarpedVRT(src, crs="EPSG:4326",
                                                                   resampling=Resampling.bilinear) as vrt:
        profile = {**src.profile, "crs": vrt.crs, "transform": vrt.transform, "width": vrt.width,
                   "height": vrt.height}
        with rasterio.open(s1_lonlat, "w", **profile) as dst:
            dst.write(vrt.read())
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
    inputs = {**scene, "sentinel1": replace(scene["sentinel1"], path=str(s1_lonlat))}
    extent_lonlat = transform_bounds(UTM, "EPSG:4326", *BOX_UTM)
    out = tmp_path / "sm.tif"
    res = estimate_sm_320m(context_model, inputs, str(out), extent=extent_lonlat)
    assert res.crs == UTM
    with rasterio.open(out) as ds:
        left, bottom, right, top = ds.bounds
    # the grid covers the box, snapped outward to 320 m pixels; the lon/lat box's UTM hull is a few
    # metres larger than BOX_UTM (whose edges sit on pixel edges), hence up to two pixels per side
    assert BOX_UTM[0] - 640 <= left <= BOX_UTM[0] and BOX_UTM[2] <= right <= BOX_UTM[2] + 640
    assert BOX_UTM[1] - 640 <= bottom <= BOX_UTM[1] and BOX_UTM[3] <= top <= BOX_UTM[3] + 640


def test_written_map_has_the_permissions_of_a_new_file(context_model, scene, tmp_path):
    out = tmp_path / "sm.tif"
    estimate_sm_320m(context_model, scene, str(out), extent=BOX_UTM, extent_crs=UTM)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask
