"""Unit tests of smqgis/core/grid.py: UTM choice, snapping, role-grid alignment."""

from __future__ import annotations

import pytest

from smqgis.core import grid as g
from smqgis.core.errors import InputError

ROLES = {"high_res": g.RoleGrid(10.0, 256, 32), "low_res": g.RoleGrid(160.0, 16, 2)}


def test_utm_zone_of_centre():
    assert g.utm_crs_for(-97.5, 35.4) == "EPSG:32614"
    assert g.utm_crs_for(-3.7, 40.4) == "EPSG:32630"
    assert g.utm_crs_for(151.2, -33.9) == "EPSG:32756"


def test_geographic_crs_refused_with_advice():
    with pytest.raises(InputError, match="projected metric CRS.*UTM"):
        g.check_projected("EPSG:4326")
    assert g.check_projected("EPSG:32614") == "EPSG:32614"


def test_grid_inside_keeps_every_window_inside_and_snaps():
    area = (600000.0, 3900000.0, 609600.0, 3908960.0)
    grid = g.grid_inside(area, "EPSG:32614", 320.0, ROLES)
    assert (grid.x0, grid.y0, grid.width, grid.height) == (601280.0, 3907840.0, 22, 21)
    # window of the first and last pixel inside the area
    cx, cy = grid.window_centre(0, 0)
    assert cx - 1280 >= area[0] and cy + 1280 <= area[3]
    cx, cy = grid.window_centre(grid.height - 1, grid.width - 1)
    assert cx + 1280 <= area[2] and cy - 1280 >= area[1]


def test_role_blocks_follow_the_calling_convention():
    grid = g.ModelGrid("EPSG:32614", 601280.0, 3907840.0, 22, 21, 320.0, ROLES)
    assert ROLES["high_res"].block_shape(4, 5) == (32 * (4 + 7), 32 * (5 + 7))
    assert ROLES["low_res"].block_shape(4, 5) == (2 * 3 + 16, 2 * 4 + 16)
    # high-res block of pixel (2, 3): its top-left is the window's top-left, 10 m pixels
    t = grid.block_transform("high_res", 2, 3)
    assert (t.a, t.e) == (10.0, -10.0)
    assert (t.c, t.f) == (601280.0 + 3 * 320 + 160 - 1280, 3907840.0 - 2 * 320 - 160 + 1280)
    # window of pixel (2, 4) starts 32 high-res / 2 low-res pixels right of pixel (2, 3)'s
    assert grid.block_transform("high_res", 2, 4).c - t.c == 32 * 10.0
    assert grid.block_transform("low_res", 2, 4).c - grid.block_transform("low_res", 2, 3).c == 2 * 160.0
    # low-res and high-res blocks cover the same ground
    assert grid.block_transform("low_res", 2, 3).c == t.c
    # the output pixel's centre is its window's centre
    assert grid.transform @ (3.5, 2.5) == grid.window_centre(2, 3) == (t.c + 1280.0, t.f - 1280.0)


def test_grid_covering_snaps_outward():
    grid = g.grid_covering((601300.0, 3901000.0, 602000.0, 3901700.0), "EPSG:32614", 320.0, ROLES)
    assert (grid.x0, grid.y0) == (601280.0, 3901760.0)
    assert (grid.width, grid.height) == (3, 3)


def test_too_small_overlap_is_an_input_error():
    with pytest.raises(InputError, match="less than one model window"):
        g.grid_inside((0.0, 0.0, 2000.0, 2000.0), "EPSG:32614", 320.0, ROLES)
