"""The Earth Engine expressions smqgis sends, built and serialized by earthengine-api itself, offline.

``ee.apitestcase.ApiTestCase`` initialises the pinned library with its real algorithm list and
no network or credentials; each test serializes our expression for the Cloud API and reads the
function calls in it: collection, bounds, date window, filters, band selection, mask, pixel
type, the request grid (UTM, scale), and the SMAP product switch after 2022-08-02.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

ee = pytest.importorskip("ee")
from ee import apitestcase  # noqa: E402

from smqgis.core import ee_inputs as ei  # noqa: E402
from smqgis.core import sources  # noqa: E402
from smqgis.core.errors import EarthEngineError  # noqa: E402

# the bundled sample's output area (EPSG:32614, Oklahoma-like)
SAMPLE_EXTENT = (599040.0, 3947840.0, 604160.0, 3952960.0)


def resolved(expr: Any) -> Any:
    """The Cloud API serialization of ``expr`` with every valueReference replaced by its value."""
    enc = ee.serializer.encode(expr, for_cloud_api=True)
    values = enc["values"]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return walk(values[node["valueReference"]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(values[enc["result"]])


def calls(node: Any, name: str) -> list[dict[str, Any]]:
    """The arguments of every distinct call of the function ``name`` in a resolved serialization."""
    unique: dict[str, dict[str, Any]] = {}
    for args in _calls(node, name):
        unique.setdefault(json.dumps(args, sort_keys=True), args)
    return list(unique.values())


def _calls(node: Any, name: str) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        inv = node.get("functionInvocationValue")
        if inv and inv["functionName"] == name:
            found.append(inv["arguments"])
        for v in node.values():
            found += _calls(v, name)
    elif isinstance(node, list):
        for v in node:
            found += _calls(v, name)
    return found


def const(node: dict[str, Any]) -> Any:
    """A constant's value, or a Date(...)'s millis."""
    if "constantValue" in node:
        return node["constantValue"]
    inv = node["functionInvocationValue"]
    assert inv["functionName"] == "Date"
    return const(inv["arguments"]["value"])


def collection_branch(tree: Any, key: str) -> Any:
    """The sub-expression of the selection dictionary for source ``key``."""
    return tree["dictionaryValue"]["values"][key]


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class EarthEngineExpressionTest(apitestcase.ApiTestCase):
    """Serialized expressions per source (real algorithm signatures, no network)."""

    def setUp(self) -> None:
        # ApiTestCase replaces ee.data._install_cloud_api_resource and does not put it back; later tests that
        # initialise against the local fake endpoint need the real one
        self._install = ee.data._install_cloud_api_resource
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        ee.data._install_cloud_api_resource = self._install

    def request(self, when: str = "2020-04-25T12:00:00Z", **kw: Any) -> ei.Request:
        area = ei.Area.from_extent(SAMPLE_EXTENT, "EPSG:32614")
        return ei.Request(area, when, **kw)

    def test_sentinel1_anchor_window_iw_polarisations_bounds(self) -> None:
        req = self.request(s1_window_days=6)
        s1 = collection_branch(resolved(ei.selection_expression(req)), "sentinel1")
        loads = calls(s1, "ImageCollection.load")
        assert [const(a["id"]) for a in loads] == ["COPERNICUS/S1_GRD"]
        (rng,) = calls(s1, "DateRange")
        t = ms("2020-04-25T12:00:00Z")
        assert const(rng["start"]) == t - 6 * 86400 * 1000
        assert const(rng["end"]) == t + 1  # the requested time itself is in (ranges are [start, end))
        eqs = {const(a["leftField"]): const(a["rightValue"]) for a in calls(s1, "Filter.equals")}
        assert eqs == {"instrumentMode": "IW"}
        pols = sorted(const(a["rightValue"]) for a in calls(s1, "Filter.listContains"))
        assert pols == ["VH", "VV"]
        (rect,) = calls(s1, "GeometryConstructors.Rectangle")
        w, s, e, n = const(rect["coordinates"])
        assert -97.91 < w < e < -97.84 and 35.66 < s < n < 35.72  # the sample area, in degrees
        # the closest BEFORE: sorted by time, descending, one image
        limits = calls(s1, "Collection.limit")
        assert any(const(a.get("ascending", {"constantValue": True})) is False
                   and const(a["key"]) == "system:time_start" for a in limits)
        assert any(const(a["limit"]) == 1 for a in limits if "limit" in a)

    def test_other_sources_use_their_table5_bound_before_the_anchor(self) -> None:
        tree = resolved(ei.selection_expression(self.request()))
        expected = {"sentinel2": 14 * 86400, "smap": 3 * 86400, "gldas": 6 * 3600}
        assert set(tree["dictionaryValue"]["values"]) == {"sentinel1", *expected}  # static sources are not joined
        for key, bound_s in expected.items():
            branch = collection_branch(tree, key)
            # its own collection, and Sentinel-1's for the anchor time
            loads = {const(a["id"]) for a in calls(branch, "ImageCollection.load")}
            assert loads == {sources.SOURCES[key].ee_collection, "COPERNICUS/S1_GRD"}
            rng = calls(branch, "DateRange")[0]  # the outermost: this source's window
            # start = anchor - bound, end = anchor + 1 ms, the anchor being the S1 image's time (server-side)
            starts = calls(rng["start"], "Number.subtract")
            ends = calls(rng["end"], "Number.add")
            assert const(starts[0]["right"]) == bound_s * 1000
            assert const(ends[0]["right"]) == 1
            anchor = starts[0]["left"]
            assert calls(anchor, "ImageCollection.load")[0]["id"]["constantValue"] == "COPERNICUS/S1_GRD"

    def test_sentinel2_cloud_filter_and_qa60_mask(self) -> None:
        branch = collection_branch(resolved(ei.selection_expression(self.request())), "sentinel2")
        (lt,) = calls(branch, "Filter.lessThan")
        assert const(lt["leftField"]) == "CLOUDY_PIXEL_PERCENTAGE" and const(lt["rightValue"]) == 30.0
        img = resolved(ei.source_image("sentinel2", {"id": "COPERNICUS/S2_HARMONIZED/20200417T173901_T14SPF"}))
        assert calls(img, "Image.toUint16")
        selects = [const(a["bandSelectors"]) for a in calls(img, "Image.select")]
        assert ["B4", "B3", "B2", "B8", "B11", "B12"] in selects and ["QA60"] in selects
        (band_and,) = calls(img, "Image.bitwiseAnd")
        assert const(calls(band_and["image2"], "Image.constant")[0]["value"]) == (1 << 10) | (1 << 11)
        assert calls(img, "Image.updateMask") and calls(img, "Image.unmask")

    def test_static_and_per_band_sources(self) -> None:
        dem = resolved(ei.source_image("dem", {"id": "NASA/NASADEM_HGT/001"}))
        assert [const(a["id"]) for a in calls(dem, "Image.load")] == ["NASA/NASADEM_HGT/001"]
        assert [const(a["bandSelectors"]) for a in calls(dem, "Image.select")] == [["elevation"]]
        assert calls(dem, "Image.toInt16")
        soil = resolved(ei.source_image("soilgrids", {"id": "projects/soilgrids-isric/{band}_mean"}))
        ids = sorted(const(a["id"]) for a in calls(soil, "Image.load"))
        assert ids == [f"projects/soilgrids-isric/{b}_mean" for b in ("bdod", "clay", "sand", "silt")]
        sel = sorted(const(a["bandSelectors"])[0] for a in calls(soil, "Image.select"))
        assert sel == ["bdod_0-5cm_mean", "clay_0-5cm_mean", "sand_0-5cm_mean", "silt_0-5cm_mean"]
        (ren,) = calls(soil, "Image.rename")
        assert const(ren["names"]) == ["sand", "silt", "clay", "bdod"]

    def test_smap_product_switch_after_2022_08_02(self) -> None:
        smap = sources.SOURCES["smap"]
        before = ei.product_for(smap, datetime(2022, 8, 2, 23, 59, tzinfo=timezone.utc))
        after = ei.product_for(smap, datetime(2022, 8, 3, 0, 0, tzinfo=timezone.utc))
        assert before["ee_collection"] == "NASA_USDA/HSL/SMAP10KM_soil_moisture" and not before["successor"]
        assert after["ee_collection"] == "NASA/SMAP/SPL4SMGP/007" and after["successor"]
        assert after["to_native_scale"] == 50.0  # m3/m3 over 0.05 m -> mm
        for when, coll, band in (("2022-08-02T23:00:00Z", "NASA_USDA/HSL/SMAP10KM_soil_moisture", "ssm"),
                                 ("2022-08-03T00:30:00Z", "NASA/SMAP/SPL4SMGP/007", "sm_surface")):
            req = self.request(when)
            branch = collection_branch(resolved(ei.selection_expression(req)), "smap")
            assert {const(a["id"]) for a in calls(branch, "ImageCollection.load")} == {coll, "COPERNICUS/S1_GRD"}
            chosen = {"id": f"{coll}/x", "successor": coll != smap.ee_collection}
            img = resolved(ei.source_image("smap", chosen))
            assert [const(a["bandSelectors"]) for a in calls(img, "Image.select")] == [[band]]
            assert ei.band_ids("smap", chosen) == [band]

    def test_gldas_and_sentinel1_images(self) -> None:
        g = resolved(ei.source_image("gldas", {"id": "NASA/GLDAS/V021/NOAH/G025/T3H/A20200425_0000"}))
        assert [const(a["bandSelectors"]) for a in calls(g, "Image.select")] == [["SoilMoi0_10cm_inst"]]
        assert calls(g, "Image.toFloat")
        s1 = resolved(ei.source_image("sentinel1", {"id": "COPERNICUS/S1_GRD/S1A_IW_GRDH_1SDV_X"}))
        assert [const(a["bandSelectors"]) for a in calls(s1, "Image.select")] == [["VV", "VH", "angle"]]

    def test_request_grid_is_the_utm_zone_at_10_m_and_native_for_coarse(self) -> None:
        req = self.request()
        assert req.area.crs == "EPSG:32614"
        # (crs, pixel size in its units): fine on UTM at 10 m, SoilGrids on UTM at 100 m, SMAP and GLDAS native
        expected = {"sentinel1": ("EPSG:32614", 10.0), "sentinel2": ("EPSG:32614", 10.0),
                    "dem": ("EPSG:32614", 10.0), "soilgrids": ("EPSG:32614", 100.0),
                    "smap": ("EPSG:4326", 0.1), "gldas": ("EPSG:4326", 0.25)}
        for key, (crs, res) in expected.items():
            grid = ei.source_grid(req.area, sources.SOURCES[key], req.when)
            params = ei.compute_pixels_params(key, {"id": "x/y", "successor": False}, grid)
            g = params["grid"]
            assert g["crsCode"] == crs
            assert g["affineTransform"]["scaleX"] == res and g["affineTransform"]["scaleY"] == -res
            x0, y0 = g["affineTransform"]["translateX"], g["affineTransform"]["translateY"]
            assert abs(x0 / res - round(x0 / res)) < 1e-6 and abs(y0 / res - round(y0 / res)) < 1e-6  # on the grid
            box = SAMPLE_EXTENT if crs == "EPSG:32614" else req.area.lonlat_bounds
            assert x0 <= box[0] and y0 >= box[3]  # covers the area
            assert x0 + g["dimensions"]["width"] * res >= box[2] and y0 - g["dimensions"]["height"] * res <= box[1]
            assert params["fileFormat"] == "GEO_TIFF" and params["bandIds"] == sources.SOURCES[key].band_names
        s1 = ei.source_grid(req.area, sources.SOURCES["sentinel1"], req.when)
        assert (s1.width, s1.height) == (512, 512)  # 5.12 km at 10 m
        after = ei.source_grid(req.area, sources.SOURCES["smap"], datetime(2023, 1, 1, tzinfo=timezone.utc))
        assert after.crs == "EPSG:6933" and after.res_m == 9008.055210146  # the successor's EASE-Grid 2.0 9 km

    def test_selection_parsing_and_no_image_errors(self) -> None:
        req = self.request("2020-04-25T12:00:00Z")
        anchor = ms("2020-04-25T00:30:00Z")
        info = {
            "sentinel1": {"ids": ["COPERNICUS/S1_GRD/A"], "times": [anchor]},
            "sentinel2": {"ids": ["COPERNICUS/S2_HARMONIZED/B"], "times": [anchor - 8 * 86400 * 1000]},
            "smap": {"ids": ["NASA_USDA/HSL/SMAP10KM_soil_moisture/C"], "times": [anchor - 3600 * 1000]},
            "gldas": {"ids": ["NASA/GLDAS/V021/NOAH/G025/T3H/D"], "times": [anchor - 1800 * 1000]},
        }
        sel = ei.parse_selection(req, info)
        assert sel.anchor_utc == "2020-04-25T00:30:00Z"
        assert sel.images["sentinel2"]["offset_s"] == 8 * 86400
        assert sel.images["gldas"]["offset_s"] == 1800
        assert sel.images["dem"] == {"id": "NASA/NASADEM_HGT/001", "time_utc": None, "offset_s": None,
                                     "product": "NASA/NASADEM_HGT/001", "successor": False, "to_native_scale": 1.0}
        with pytest.raises(EarthEngineError) as err:
            ei.parse_selection(req, {**info, "sentinel1": {"ids": [], "times": []}})
        assert err.value.reason == "no_image" and err.value.role == "sentinel1" and "widen" in str(err.value)
        with pytest.raises(EarthEngineError) as err:
            ei.parse_selection(req, {**info, "gldas": {"ids": [], "times": []}})
        assert err.value.reason == "no_image" and err.value.role == "gldas" and "6 h" in str(err.value)

    def test_requested_time_parsing(self) -> None:
        assert ei.utc("2020-04-25T12:00:00Z") == datetime(2020, 4, 25, 12, tzinfo=timezone.utc)
        assert ei.utc(datetime(2020, 4, 25, 13, tzinfo=timezone(timedelta(hours=1)))).hour == 12
        with pytest.raises(Exception, match="ISO-8601"):
            ei.utc("25/04/2020")
