"""Issue 10: a table of bad inputs a user can make, each refused cleanly.

Every row spoils one thing of the bundled sample scene (``resources/sample``, simulated) -
by copying a sample file into a scratch folder and changing it, or by a bad parameter -
and runs ``processing.run`` in-process. Each must raise a QgsProcessingException whose
message names the Processing parameter and says what was seen, leave no output and no
stray file (no temporary part, no .aux.xml) in the output or input folders, and leave
every input byte-identical. A few positive rows check that the declared conversions
(units, the Sentinel-2 offset, the time-bound override) make the sample's own map.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException

from sm_qgis_helpers import ALG_ID, SAMPLE_DIR, SOURCE_PARAMS, sample_manifest, sample_params


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample scene the rows read (never written)."""
    folder = tmp_path_factory.mktemp("sample_copy")
    for path in SAMPLE_DIR.glob("*.tif"):
        shutil.copy2(path, folder / path.name)
    return folder


def derive(src: Path, dst: Path, *, values: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
           descriptions: list[str] | None = None, tags: dict[str, str | None] | None = None,
           dtype: str = "float32", drop_crs: bool = False) -> str:
    """Write ``src`` as float32 physical values (scale/offset applied), changed by ``values`` / ``descriptions``."""
    with rasterio.open(src) as ds:
        names = list(ds.descriptions)
        arrays = {}
        for i, name in enumerate(names, start=1):
            raw = ds.read(i)
            phys = raw.astype("float64") * ds.scales[i - 1] + ds.offsets[i - 1]
            if ds.nodata is not None:
                phys[raw == ds.nodata] = np.nan
            arrays[name] = phys
        old_tags = ds.tags()
        profile = {"driver": "GTiff", "width": ds.width, "height": ds.height, "count": ds.count,
                   "crs": None if drop_crs else ds.crs, "transform": ds.transform}
    if values is not None:
        arrays = values(arrays)
    nodata = None if dtype.startswith(("int8", "uint8")) else -9999.0
    new_tags = {k: v for k, v in {**old_tags, **(tags or {})}.items() if v is not None}
    with rasterio.open(dst, "w", dtype=dtype, nodata=nodata, **profile) as out:
        for i, array in enumerate(arrays.values(), start=1):
            a = np.where(np.isfinite(array), array, -9999.0 if nodata is not None else 0)
            out.write(a.astype(dtype), i)
            out.set_band_description(i, (descriptions or list(arrays))[i - 1])
        out.update_tags(**new_tags)
    return str(dst)


def _set(**kw: Any) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Replace bands by a function of the original (``band=lambda a: ...``)."""
    def f(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: kw[name](a) if name in kw else a for name, a in arrays.items()}
    return f


def _all(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    return lambda arrays: {name: fn(a) for name, a in arrays.items()}


S = "sentinel1.tif", "sentinel2.tif", "dem.tif", "soilgrids.tif", "smap.tif", "gldas.tif"


def _file(name: str, **kw: Any) -> Callable[[Path, Path], str]:
    return lambda src, case: derive(src / name, case / f"bad_{name}", **kw)


def _text(name: str, content: bytes) -> Callable[[Path, Path], str]:
    def f(src: Path, case: Path) -> str:
        path = case / name
        path.write_bytes(content)
        return str(path)
    return f


def _folder(src: Path, case: Path) -> str:
    (case / "a_folder.onnx").mkdir()
    return str(case / "a_folder.onnx")


T2024 = {"ACQUISITION_TIME": "2024-04-25T00:00:00Z"}
#: (id, parameter changed, new value or a maker(src folder, case folder) -> value, extra params,
#:  the parameter the message must name, what it must say)
CASES: list[tuple[str, str, Any, dict[str, Any], str, str]] = [
    ("s2_reflectance", "SENTINEL2", _file("sentinel2.tif", values=_all(lambda a: a / 10000.0)), {}, "SENTINEL2",
     "look like TOA reflectance 0-1"),
    ("s2_percent_reflectance_int8", "SENTINEL2", _file("sentinel2.tif", values=_all(lambda a: a / 100.0),
                                                        dtype="uint8"), {}, "SENTINEL2", "stored as uint8"),
    ("s2_int8", "SENTINEL2", _file("sentinel2.tif", values=_all(lambda a: np.clip(a, -128, 127)), dtype="int8"), {},
     "SENTINEL2", "stored as int8"),
    ("s2_offset_2020_no_metadata", "SENTINEL2", _file("sentinel2.tif", values=_all(lambda a: a + 1000.0),
                                                       tags={"PRODUCT": None}), {},
     "SENTINEL2", "S2_DN_OFFSET"),
    ("s2_all_nodata", "SENTINEL2", _file("sentinel2.tif", values=_all(lambda a: a * np.nan)), {}, "SENTINEL2",
     "no valid data"),
    ("s2_constant_fill", "SENTINEL2", _file("sentinel2.tif", values=_all(lambda a: a * 0 + 5000)), {}, "SENTINEL2",
     "single value"),
    ("s2_30_days_from_s1", "SENTINEL2", _file("sentinel2.tif", tags={"ACQUISITION_TIME": "2020-05-25T00:00:00Z"}),
     {}, "SENTINEL2", "Table 5"),
    ("s2_time_not_a_time", "SENTINEL2", _file("sentinel2.tif", tags={"ACQUISITION_TIME": "yesterday"}), {},
     "SENTINEL2", "not an ISO-8601"),
    ("s2_duplicate_band_order", "S2_BANDS", "B4,B4,B2,B8,B11,B12", {}, "S2_BANDS", "twice"),
    ("s2_missing_file", "SENTINEL2", lambda src, case: str(case / "no_such_s2.tif"), {}, "SENTINEL2", "not found"),
    ("s2_not_a_raster", "SENTINEL2", _text("text.tif", b"this is not a GeoTIFF\n" * 20), {}, "SENTINEL2",
     "cannot read it as a raster"),
    ("s1_linear_power", "SENTINEL1", _file("sentinel1.tif", values=_set(VV=lambda a: 10 ** (a / 10),
                                                                        VH=lambda a: 10 ** (a / 10))), {},
     "SENTINEL1", "linear power"),
    ("s1_all_zeros", "SENTINEL1", _file("sentinel1.tif", values=_set(VV=lambda a: a * 0, VH=lambda a: a * 0)), {},
     "SENTINEL1", "SENTINEL1"),
    ("s1_vv_vh_swapped_descriptions", "SENTINEL1", _file("sentinel1.tif", descriptions=["VH", "VV", "angle"]), {},
     "SENTINEL1", "look swapped"),
    ("s1_vv_vh_swapped_order", "S1_BANDS", "VH,VV,angle", {}, "SENTINEL1", "look swapped"),
    ("s1_all_nodata", "SENTINEL1", _file("sentinel1.tif", values=_all(lambda a: a * np.nan)), {}, "SENTINEL1",
     "no valid data"),
    ("s1_no_crs", "SENTINEL1", _file("sentinel1.tif", drop_crs=True), {}, "SENTINEL1", "no CRS"),
    ("s1_empty_file", "SENTINEL1", _text("empty.tif", b""), {}, "SENTINEL1", "empty file"),
    ("s1_angle_out_of_range", "SENTINEL1", _file("sentinel1.tif", values=_set(angle=lambda a: a + 100)), {},
     "SENTINEL1", "physical range"),
    ("s1_given_as_s2", "SENTINEL2", lambda src, case: str(src / "sentinel1.tif"), {}, "SENTINEL2",
     "could not be recognised"),
    ("soilgrids_percent", "SOILGRIDS", _file("soilgrids.tif", values=_set(sand=lambda a: a / 10, silt=lambda a: a / 10,
                                                                           clay=lambda a: a / 10)), {}, "SOILGRIDS",
     "percent"),
    ("soilgrids_all_nodata", "SOILGRIDS", _file("soilgrids.tif", values=_all(lambda a: a * np.nan)), {}, "SOILGRIDS",
     "no valid data"),
    ("smap_m3m3_as_ssm", "SMAP", _file("smap.tif", values=_all(lambda a: a / 50.0)), {}, "SMAP", "m3/m3"),
    ("smap_all_nan", "SMAP", _file("smap.tif", values=_all(lambda a: a * np.nan)), {}, "SMAP", "no valid data"),
    ("dem_as_smap", "SMAP", lambda src, case: str(src / "dem.tif"), {}, "SMAP", "the dem product"),
    ("dem_values_as_ssm", "SMAP", _file("smap.tif", values=_all(lambda a: a * 0 + 320.0)), {}, "SMAP",
     "outside the physical range"),
    ("smap_gldas_swapped", "SMAP", lambda src, case: str(src / "gldas.tif"), {"GLDAS": "smap"}, "SMAP",
     "swapped"),
    ("smap_5_days_from_s1", "SMAP", _file("smap.tif", tags={"ACQUISITION_TIME": "2020-04-30T00:00:00Z"}), {}, "SMAP",
     "Table 5"),
    ("smap_after_product_end", "SMAP", _file("smap.tif", tags={"ACQUISITION_TIME": "2023-04-25T00:00:00Z"}), {},
     "SMAP", "after NASA_USDA/HSL/SMAP10KM_soil_moisture ended"),
    ("gldas_four_years_away", "GLDAS", _file("gldas.tif", tags=T2024), {}, "GLDAS", "1461.0 days after"),
    ("gldas_m3m3", "GLDAS", _file("gldas.tif", values=_all(lambda a: a / 100.0)), {}, "GLDAS", "m3/m3"),
    ("dem_all_nodata", "DEM", _file("dem.tif", values=_all(lambda a: a * np.nan)), {}, "DEM", "no valid data"),
    ("output_crs_web_mercator", "OUTPUT_CRS", "EPSG:3857", {}, "OUTPUT_CRS", "EPSG:32614"),
    ("output_crs_far_utm", "OUTPUT_CRS", "EPSG:32620", {}, "OUTPUT_CRS", "distorts distances"),
    ("output_crs_geographic", "OUTPUT_CRS", "EPSG:4326", {}, "OUTPUT_CRS", "geographic"),
    ("output_crs_unknown", "OUTPUT_CRS", "EPSG:999999", {}, "OUTPUT_CRS", "not a CRS"),
    ("output_is_s1_input", "OUTPUT", lambda src, case: str(src / "sentinel1.tif"), {}, "OUTPUT", "is the sentinel1"),
    ("output_not_tif", "OUTPUT", lambda src, case: str(case / "out" / "map.png"), {}, "OUTPUT", "GeoTIFF"),
    ("extent_point", "EXTENT", "600000,600000,3950000,3950000 [EPSG:32614]", {}, "EXTENT", "no area"),
    ("extent_abc", "EXTENT", "abc", {}, "EXTENT", "not an extent"),
    ("extent_lat_lon_swapped", "EXTENT", "35.6,35.8,-98.0,-97.8 [EPSG:4326]", {}, "EXTENT", "swapped"),
    ("extent_outside_inputs", "EXTENT", "500000,510000,3800000,3810000 [EPSG:32614]", {}, "EXTENT", "outside"),
    ("extent_800_km", "EXTENT", "200000,1000000,3550000,4350000 [EPSG:32614]", {}, "EXTENT", "MAX_OUTPUT_PX"),
    ("max_output_px_small", "MAX_OUTPUT_PX", 10, {}, "MAX_OUTPUT_PX", "above the limit of 10"),
    ("max_output_px_zero", "MAX_OUTPUT_PX", 0, {}, "MAX_OUTPUT_PX", "whole number"),
    ("tile_px_zero", "TILE_PX", 0, {}, "TILE_PX", "whole number >= 1"),
    ("tile_px_negative", "TILE_PX", -3, {}, "TILE_PX", "whole number >= 1"),
    ("mode_7", "MODE", 7, {}, "MODE", "not one of the choices"),
    ("provider_9", "PROVIDER", 9, {}, "PROVIDER", "not one of the choices"),
    ("s1_units_bogus", "S1_UNITS", 5, {}, "S1_UNITS", "not one of the choices"),
    ("angle_constant_120", "S1_ANGLE_DEG", 120, {}, "S1_ANGLE_DEG", "physical range"),
    ("model_folder", "MODEL", _folder, {}, "MODEL", "is a folder"),
    ("model_missing", "MODEL", lambda src, case: str(case / "none.onnx"), {}, "MODEL", "not found"),
    ("model_not_onnx", "MODEL", _text("garbage.onnx", b"\x08\x07garbage" * 40), {}, "MODEL", "not a valid ONNX"),
]


def _hashes(*folders: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case_id, name, value, extra, param, says", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(smqgis_provider: object, model_path: Path, pristine: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, case_id: str, name: str, value: Any,
                                      extra: dict[str, Any], param: str, says: str) -> None:
    import processing

    parts = tmp_path / "parts"
    monkeypatch.setenv("SMQGIS_TMPDIR", str(parts))
    case = tmp_path / "case"
    case.mkdir()
    (case / "out").mkdir()
    params = sample_params(sample_manifest(), case / "out" / "map.tif", model_path)
    for key, entry in sample_manifest()["inputs"].items():
        params[SOURCE_PARAMS[key]] = str(pristine / entry["path"])
    params.update({k: str(pristine / f"{v}.tif") for k, v in extra.items()})
    params[name] = value(pristine, case) if callable(value) else value
    before = _hashes(pristine, case)
    with pytest.raises(QgsProcessingException) as info:
        processing.run(ALG_ID, params)
    message = str(info.value)
    assert param in message, message
    assert says in message, message
    assert "Incorrect parameter value" not in message
    assert _hashes(pristine, case) == before, "an input or the case folder changed"
    assert not (case / "out" / "map.tif").exists()
    assert not parts.exists() or not list(parts.iterdir()), "a temporary part file was left"
    assert not [p for p in pristine.iterdir() if p.suffix not in (".tif",)], "a stray file beside the inputs"


def _core_inputs(folder: Path, **override: Any) -> dict[str, Any]:
    from smqgis.core.pipeline import LayerInput

    man = sample_manifest()["inputs"]
    return {k: override.get(k) or LayerInput(str(folder / v["path"])) for k, v in man.items()}


API_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("tile_px_negative", {"tile_px": -3}, "tile_px"),
    ("batch_size_zero", {"batch_size": 0}, "batch_size"),
    ("extent_nan", {"extent": (599040.0, float("nan"), 604160.0, 3952960.0)}, "extent"),
    ("extent_three_numbers", {"extent": (1.0, 2.0, 3.0)}, "extent"),
    ("output_path_none", {"output_path": None}, "output_path"),
    ("mode_turbo", {"mode": "turbo"}, "mode"),
    ("max_output_px_float", {"max_output_px": 2.5}, "max_output_px"),
    ("inputs_not_a_dict", {"inputs": ["s1.tif"]}, "inputs"),
]


@pytest.mark.parametrize("case_id, kwargs, parameter", API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_validates_arguments(model_path: Path, pristine: Path, tmp_path: Path, case_id: str,
                                        kwargs: dict[str, Any], parameter: str) -> None:
    from smqgis.core.errors import InputError
    from smqgis.core.kinds.fusion import estimate_sm_320m

    args = {"inputs": _core_inputs(pristine), "output_path": str(tmp_path / "map.tif"), **kwargs}
    inputs, output = args.pop("inputs"), args.pop("output_path")
    with pytest.raises(InputError) as info:
        estimate_sm_320m(str(model_path), inputs, output, provider="cpu", **args)
    assert info.value.parameter == parameter
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", [lambda: __import__("smqgis.core.pipeline", fromlist=["LayerInput"]).LayerInput(None),
                                  lambda: __import__("smqgis.core.pipeline", fromlist=["LayerInput"]).LayerInput(
                                      "s1.tif", constants={"angle": "steep"}),
                                  lambda: __import__("smqgis.core.pipeline", fromlist=["LayerInput"]).LayerInput(
                                      "s1.tif", bands={"VV": "one"})],
                         ids=["path_none", "constant_not_a_number", "band_not_a_number"])
def test_layer_input_validates(make: Callable[[], Any]) -> None:
    from smqgis.core.errors import InputError

    with pytest.raises(InputError) as info:
        make()
    assert info.value.parameter == "inputs"


def _sample_map(model_path: Path, inputs: dict[str, Any], out: Path, **kw: Any) -> tuple[np.ndarray, dict]:
    from smqgis.core.kinds.fusion import estimate_sm_320m

    result = estimate_sm_320m(str(model_path), inputs, str(out), provider="cpu", **kw)
    with rasterio.open(result.output_path) as ds:
        return ds.read(1), ds.tags()


def test_declared_conversions_and_s2_offset_make_the_sample_map(model_path: Path, pristine: Path,
                                                                tmp_path: Path) -> None:
    """Reflectance declared as such, and a 2022 scene with the +1000 offset, give the sample's own map."""
    from smqgis.core.pipeline import LayerInput

    ref, ref_tags = _sample_map(model_path, _core_inputs(pristine), tmp_path / "ref.tif")
    assert ref_tags["INPUT_SENTINEL2_DN_OFFSET_REMOVED"] == "0"
    assert ref_tags["INPUT_GLDAS_TIME_OFFSET_S"] == "-1800"  # 00:00 vs the 00:30 anchor
    assert ref_tags["INPUT_SMAP_TIME_OFFSET_S"] == str(-(2 * 86400 + 12 * 3600 + 1800))
    refl = derive(pristine / "sentinel2.tif", tmp_path / "s2_refl.tif", values=_all(lambda a: a / 10000.0))
    got, tags = _sample_map(model_path, _core_inputs(pristine, sentinel2=LayerInput(refl, units="reflectance")),
                            tmp_path / "refl.tif")
    np.testing.assert_allclose(got, ref, atol=2e-3)
    assert "INPUT_SENTINEL2_UNITS_CONVERTED" in tags
    # a baseline-04.00 scene: +1000 DN, dated 2022 (every input moved by the same two years)
    shifted = {k: LayerInput(str(pristine / v["path"]), acquired_utc=(v["acquisition_time"] or "").replace(
        "2020", "2022") or None) for k, v in sample_manifest()["inputs"].items()}
    s2 = derive(pristine / "sentinel2.tif", tmp_path / "s2_off.tif", values=_all(lambda a: a + 1000.0),
                tags={"PRODUCT": "COPERNICUS/S2"})
    shifted["sentinel2"] = LayerInput(s2, acquired_utc=sample_manifest()["inputs"]["sentinel2"][
        "acquisition_time"].replace("2020", "2022"))
    got, tags = _sample_map(model_path, shifted, tmp_path / "offset.tif")
    assert tags["INPUT_SENTINEL2_DN_OFFSET_REMOVED"] == "1000"
    assert "baseline 04.00" in tags["INPUT_SENTINEL2_DN_OFFSET_SOURCE"]
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_time_bound_override_is_tagged(model_path: Path, pristine: Path, tmp_path: Path) -> None:
    from smqgis.core.errors import InputError
    from smqgis.core.pipeline import LayerInput

    gldas = LayerInput(str(pristine / "gldas.tif"), acquired_utc="2020-04-26T00:00:00Z")  # 23.5 h after S1
    with pytest.raises(InputError) as info:
        _sample_map(model_path, _core_inputs(pristine, gldas=gldas), tmp_path / "a.tif")
    assert info.value.role == "gldas" and "23.5 h after" in str(info.value)
    _, tags = _sample_map(model_path, _core_inputs(pristine, gldas=gldas), tmp_path / "b.tif", ignore_time_bounds=True)
    assert tags["TIME_BOUNDS_OVERRIDDEN"] == "yes"
    assert tags["INPUT_GLDAS_TIME_OFFSET_S"] == str(23 * 3600 + 1800)


QGIS_PROCESS_CASES = [("tile_px_zero", "TILE_PX", 0, "TILE_PX", "whole number >= 1"),
                      ("mode_7", "MODE", 7, "MODE", "not one of the choices"),
                      ("extent_abc", "EXTENT", "abc", "EXTENT", "not an extent"),
                      ("s2_reflectance", "SENTINEL2", _file("sentinel2.tif", values=_all(lambda a: a / 10000.0)),
                       "SENTINEL2", "look like TOA reflectance 0-1")]


@pytest.mark.parametrize("case_id, name, value, param, says", QGIS_PROCESS_CASES,
                         ids=[c[0] for c in QGIS_PROCESS_CASES])
def test_qgis_process_refuses_with_the_parameter(model_path: Path, pristine: Path, tmp_path: Path, case_id: str,
                                                 name: str, value: Any, param: str, says: str) -> None:
    """The same refusals through qgis_process.bin: exit code 1, the message, nothing written."""
    from sm_qgis_helpers import run_qgis_process

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    params = sample_params(sample_manifest(), out_dir / "map.tif", model_path)
    for key, entry in sample_manifest()["inputs"].items():
        params[SOURCE_PARAMS[key]] = str(pristine / entry["path"])
    params[name] = value(pristine, tmp_path) if callable(value) else value
    before = {p: h for p, h in _hashes(pristine).items() if p.suffix == ".tif"}
    run_qgis_process("plugins", "enable", "smqgis", cwd=tmp_path, timeout=120)
    proc = run_qgis_process("run", ALG_ID, *[f"--{k}={v}" for k, v in params.items()], cwd=tmp_path, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-2000:]
    assert param in text and says in text, text[-2000:]
    assert list(out_dir.iterdir()) == []
    # the inputs' bytes: qgis_process 3.22 itself loads the rasters as QGIS layers before the algorithm runs, and
    # GDAL saves their statistics in .aux.xml files beside them (in-process runs write none: see the table above)
    assert {p: h for p, h in _hashes(pristine).items() if p.suffix == ".tif"} == before
