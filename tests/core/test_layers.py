"""Unit tests of the reading and encoding steps: band recognition (layers.py) and window coverage (tile_inputs.py)."""

from __future__ import annotations

import numpy as np
import pytest

from smqgis.core import sources
from smqgis.core.layers import normalise_band_name, recognise_bands
from smqgis.core.tile_inputs import window_fraction


@pytest.mark.parametrize("desc,band", [("B04", "B4"), ("b4", "B4"), ("B8", "B8"), ("B12", "B12"), ("B02", "B2")])
def test_sentinel2_names(desc, band):
    found = recognise_bands(sources.SOURCES["sentinel2"], ["B01", desc], [band])
    assert found == {band: 2}


def test_b1_is_not_b12():
    s2 = sources.SOURCES["sentinel2"]
    assert recognise_bands(s2, ["B1", "B12"], ["B12"]) == {"B12": 2}
    assert normalise_band_name("B8A") == "b8a"


def test_other_sources_by_description():
    assert recognise_bands(sources.SOURCES["sentinel1"], ["vh", "VV", "Incidence angle"], ["VV", "VH", "angle"]) == {
        "VV": 2, "VH": 1, "angle": 3}
    assert recognise_bands(sources.SOURCES["dem"], ["DEM"], ["elevation"]) == {"elevation": 1}
    assert recognise_bands(sources.SOURCES["soilgrids"], ["clay_0-5cm_mean", "sand"], ["sand", "clay"]) == {
        "sand": 2, "clay": 1}
    assert recognise_bands(sources.SOURCES["smap"], ["sm_surface"], ["ssm"]) == {"ssm": 1}
    assert recognise_bands(sources.SOURCES["gldas"], ["SoilMoi0_10cm_inst"], ["SoilMoi0_10cm_inst"]) == {
        "SoilMoi0_10cm_inst": 1}


def test_window_fraction_counts_valid_pixels():
    valid = np.ones((32 * 3 + 256, 32 * 2 + 256), dtype=bool)
    valid[0, 0] = False  # only in window (0, 0)
    valid[300, 300] = False  # in windows whose rows/cols cover 300
    frac = window_fraction(valid, 256, 32, 4, 3)
    expected = np.ones((4, 3))
    expected[0, 0] -= 1 / 256**2
    for i in range(4):
        for j in range(3):
            if 32 * i <= 300 < 32 * i + 256 and 32 * j <= 300 < 32 * j + 256:
                expected[i, j] -= 1 / 256**2
    np.testing.assert_allclose(frac, expected, atol=1e-7)
