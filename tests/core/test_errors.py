"""Bad inputs: each raises the right smqgis error with advice, and leaves no file behind."""

from __future__ import annotations

import os
import stat
from dataclasses import replace

import onnx
import pytest
import rasterio
from onnx import TensorProto, helper

from smqgis.core.errors import InputError, ModelError
from smqgis.core.kinds.fusion import estimate_sm_320m


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    yield folder
    assert list(folder.iterdir()) == [], "a failed run left files behind"


def _copy_bands(src_path, dst_path, keep, descriptions):
    with rasterio.open(src_path) as src:
        profile = {**src.profile, "count": len(keep)}
        data = src.read(keep)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            if d:
                dst.set_band_description(i, d)
    return str(dst_path)


def test_missing_input_names_it(context_model, scene, out_dir):
    inputs = {k: v for k, v in scene.items() if k != "gldas"}
    with pytest.raises(InputError, match=r"gldas \(SoilMoi0_10cm_inst\)"):
        estimate_sm_320m(context_model, inputs, str(out_dir / "sm.tif"))


def test_wrong_band_count_says_what_to_declare(context_model, scene, out_dir, tmp_path):
    two = _copy_bands(scene["sentinel1"].path, tmp_path / "s1_two.tif", [1, 2], [None, None])
    inputs = {**scene, "sentinel1": replace(scene["sentinel1"], path=two)}
    with pytest.raises(InputError, match=r"2 band\(s\).*\['VV', 'VH', 'angle'\].*bands=\{'VV': 1.*constants="):
        estimate_sm_320m(context_model, inputs, str(out_dir / "sm.tif"))
    inputs["sentinel1"] = replace(scene["sentinel1"], path=two, bands={"VV": 1, "VH": 2, "angle": 3})
    with pytest.raises(InputError, match=r"has 2 band\(s\) but the sentinel1 bands were declared at \{'angle': 3\}"):
        estimate_sm_320m(context_model, inputs, str(out_dir / "sm.tif"))


def test_missing_angle_as_constant_runs_with_a_warning(context_model, scene, tmp_path):
    two = _copy_bands(scene["sentinel1"].path, tmp_path / "s1_vv_vh.tif", [1, 2], ["VV", "VH"])
    inputs = {**scene, "sentinel1": replace(scene["sentinel1"], path=two, constants={"angle": 39.0})}
    res = estimate_sm_320m(context_model, inputs, str(tmp_path / "sm.tif"))
    assert any("angle is the constant 39.0" in w for w in res.warnings)
    assert res.stats["valid_fraction"] == 1.0


def test_unrecognised_band_descriptions(context_model, scene, out_dir, tmp_path):
    odd = _copy_bands(scene["soilgrids"].path, tmp_path / "soil.tif", [1, 2, 3, 4], ["a", "b", "c", "d"])
    inputs = {**scene, "soilgrids": replace(scene["soilgrids"], path=odd)}
    with pytest.raises(InputError, match=r"described \['a', 'b', 'c', 'd'\].*\['sand', 'silt', 'clay', 'bdod'\]"):
        estimate_sm_320m(context_model, inputs, str(out_dir / "sm.tif"))
    # declaring them works
    inputs["soilgrids"] = replace(inputs["soilgrids"], bands={"sand": 1, "silt": 2, "clay": 3, "bdod": 4})
    res = estimate_sm_320m(context_model, inputs, str(tmp_path / "ok.tif"))
    assert res.stats["valid_fraction"] == 1.0


def test_extent_outside_inputs(context_model, scene, out_dir):
    with pytest.raises(InputError, match="outside the area where all inputs overlap"):
        estimate_sm_320m(context_model, scene, str(out_dir / "sm.tif"), extent=(700000, 3900000, 710000, 3910000),
                         extent_crs="EPSG:32614")


def test_geographic_output_crs(context_model, scene, out_dir):
    with pytest.raises(InputError, match="projected metric CRS.*UTM"):
        estimate_sm_320m(context_model, scene, str(out_dir / "sm.tif"), dst_crs="EPSG:4326")


def test_unwritable_output_path(context_model, scene, out_dir):
    with pytest.raises(InputError, match="does not exist"):
        estimate_sm_320m(context_model, scene, str(out_dir / "missing" / "sm.tif"))
    with pytest.raises(InputError, match="is a folder"):
        estimate_sm_320m(context_model, scene, str(out_dir))
    if os.geteuid() != 0:  # root writes anywhere
        locked = out_dir / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(InputError, match="cannot write"):
                estimate_sm_320m(context_model, scene, str(locked / "sm.tif"))
        finally:
            locked.chmod(stat.S_IRWXU)
            locked.rmdir()


def test_corrupt_and_foreign_onnx(scene, out_dir, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        estimate_sm_320m(str(corrupt), scene, str(out_dir / "sm.tif"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    foreign = tmp_path / "foreign.onnx"
    plain = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    plain.ir_version = 8
    onnx.save(plain, str(foreign))
    with pytest.raises(ModelError, match="no smqgis metadata"):
        estimate_sm_320m(str(foreign), scene, str(out_dir / "sm.tif"))
    with pytest.raises(ModelError, match="not found"):
        estimate_sm_320m(str(tmp_path / "nope.onnx"), scene, str(out_dir / "sm.tif"))


def test_unavailable_cuda_provider(context_model, scene, out_dir):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    with pytest.raises(InputError, match="onnxruntime-gpu"):
        estimate_sm_320m(context_model, scene, str(out_dir / "sm.tif"), provider="cuda")


def test_inputs_that_do_not_overlap(context_model, scene, out_dir, tmp_path):
    with rasterio.open(scene["dem"].path) as src:
        profile, data = src.profile, src.read()
    profile["transform"] = profile["transform"] @ rasterio.Affine.translation(0, 50000)  # 50 000 rows south
    moved = tmp_path / "dem_elsewhere.tif"
    with rasterio.open(moved, "w", **profile) as dst:
        dst.write(data)
    inputs = {**scene, "dem": replace(scene["dem"], path=str(moved))}
    with pytest.raises(InputError, match="do not overlap") as info:
        estimate_sm_320m(context_model, inputs, str(out_dir / "sm.tif"))
    # the message gives each input's lon/lat box, so the user sees which one lies elsewhere
    message = str(info.value)
    lats = {key: float(message.split(f"{key}: lon ")[1].split("lat ")[1].split("..")[0]) for key in scene}
    others = [lat for key, lat in lats.items() if key != "dem"]
    assert max(others) - min(others) < 0.5  # the untouched inputs reach to within 0.3 deg of 35.2 N
    assert lats["dem"] < min(others) - 10.0  # 50 000 rows of 30 m: ~1500 km (13 deg) further south


def test_successor_band_with_the_old_product_is_refused(context_model, scene, out_dir, tmp_path):
    """An SPL4SMGP raster (band sm_surface, m3/m3) declared as the 10 km product (mm) would be fed
    to the model 50x too small: it is refused with the product to choose."""
    from dataclasses import replace as dc_replace

    path = _copy_bands(scene["smap"].path, tmp_path / "spl4.tif", [1], ["sm_surface"])
    inputs = {**scene, "smap": dc_replace(scene["smap"], path=path, product="NASA_USDA/HSL/SMAP10KM_soil_moisture")}
    with pytest.raises(InputError, match="NASA/SMAP/SPL4SMGP/007"):
        estimate_sm_320m(context_model, inputs, str(out_dir / "sm.tif"))
