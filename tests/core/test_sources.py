"""The sources table is where facts about a source live: band names, aliases, standard orders, ranges."""

from __future__ import annotations

import pytest

from smqgis.core import sources
from smqgis.core.errors import InputError
from smqgis.core.layers import open_layer
from smqgis.core.pipeline import needed_bands
from smqgis.core.schema import build_metadata


def test_inputs_are_listed_in_the_tables_order():
    meta = build_metadata(variant="full", title="t", trained_on={"kind": "random"})
    assert list(needed_bands(meta)) == list(sources.SOURCES)
    assert needed_bands(meta)["sentinel2"] == ["B4", "B3", "B2", "B8", "B11", "B12"]


def test_every_band_has_units_a_physical_range_and_distinct_names():
    seen: dict[str, str] = {}
    for source in sources.SOURCES.values():
        assert source.label and source.help and source.attribution
        for band in source.bands:
            lo, hi = band.physical_range
            assert band.units and lo < hi
            if band.encoding["kind"] == "linear":  # the encodable range starts at a physically possible value
                assert lo <= band.encoding["min"] < hi
            for alias in band.aliases:  # an alias names one band of a source only
                assert seen.setdefault(f"{source.key}/{alias}", band.name) == band.name


def test_a_constant_outside_the_physical_range_is_refused(scene):
    with pytest.raises(InputError, match=r"constant 120 deg .* 0..90 deg") as info:
        open_layer("sentinel1", scene["sentinel1"].path, ["VV", "VH", "angle"], constants={"angle": 120.0})
    assert info.value.role == "sentinel1"


def test_fallback_constant_only_where_the_band_is_missing(scene):
    layer = open_layer("sentinel1", scene["sentinel1"].path, ["VV", "VH", "angle"],
                       fallback_constants={"angle": 39.0})
    try:
        assert layer.constants == {} and layer.band_index["angle"] == 3
        assert layer.notes == ["sentinel1: the file has a band angle; the fallback constant 39 is not used"]
    finally:
        layer.close()
