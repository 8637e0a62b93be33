"""The model-kinds registry: the schema knows exactly the registered kinds, each kind module keeps the contract,
the flow picks the kind from the metadata, and the metadata is read without onnxruntime exactly as onnx reads it."""

from __future__ import annotations

import inspect

import numpy as np
import onnx
import pytest

from smqgis.core import kinds, schema
from smqgis.core.errors import ModelError
from smqgis.core.kinds import fusion
from smqgis.core.model import load_model, read_metadata


def test_schema_kinds_are_the_registry():
    assert schema.MODEL_KINDS == tuple(kinds.REGISTRY)


@pytest.mark.parametrize("name", sorted(kinds.REGISTRY))
def test_every_kind_module_keeps_the_contract(name):
    kind = kinds.REGISTRY[name]
    assert kind.name == name and kind.title and kind.nominal_resolution_m > 0
    module = kinds.implementation(kind)
    assert kinds.implementation(name) is module
    for function in ("validate_metadata", "open_model", kind.algorithm_id):
        assert callable(getattr(module, function, None)), f"{kind.module} lacks {function}"
    assert list(inspect.signature(module.open_model).parameters)[:3] == ["path", "provider", "threads"]


def test_unknown_kind_is_refused_naming_it():
    with pytest.raises(ModelError, match=r"'smen_9km'.*fusion_320m") as info:
        kinds.kind_of({"model_kind": "smen_9km"})
    assert info.value.parameter == "model"
    meta = schema.build_metadata(variant="full", title="t", trained_on={"kind": "random"})
    with pytest.raises(schema.SchemaError, match="unknown model_kind 'smen_9km'"):
        schema.validate({**meta, "model_kind": "smen_9km"})


def test_kind_checks_run_through_the_schema():
    """schema.validate makes the generic checks and then the kind's own (an input the fusion kind has not)."""
    meta = schema.build_metadata(variant="full", title="t", trained_on={"kind": "random"})
    spec = {**meta["inputs"][0], "name": "time_series"}
    with pytest.raises(schema.SchemaError, match="unknown input 'time_series'"):
        schema.validate({**meta, "inputs": [spec, *meta["inputs"][1:]]})
    with pytest.raises(schema.SchemaError, match="unknown input 'time_series'"):
        fusion.validate_metadata({**meta, "inputs": [spec]})


def test_metadata_is_read_as_onnx_reads_it(context_model):
    """The metadata props found by skipping the graph by its length are onnx's own, for a model with weights."""
    props = {p.key: p.value for p in onnx.load(context_model).metadata_props}
    assert read_metadata(context_model) == schema.from_metadata_props(props)
    assert len(props) >= 6  # every flat key too, not only the JSON document


def test_load_model_opens_the_models_own_kind(context_model):
    model = load_model(context_model, provider="cpu")
    assert isinstance(model, fusion.FusionModel)
    assert model.metadata["model_kind"] == "fusion_320m" and model.provider == "CPUExecutionProvider"


def test_estimate_sm_maps_with_the_models_kind(context_model, scene, tmp_path):
    """pipeline.estimate_sm picks the fusion kind from the metadata and writes what the kind's function writes."""
    import rasterio

    from smqgis.core.pipeline import estimate_sm

    extent = (601600.0, 3901600.0, 604800.0, 3904800.0)
    via_kind = estimate_sm(context_model, scene, str(tmp_path / "a.tif"), extent=extent, extent_crs="EPSG:32614",
                           tile_px=6, provider="cpu")
    direct = fusion.estimate_sm_320m(context_model, scene, str(tmp_path / "b.tif"), extent=extent,
                                     extent_crs="EPSG:32614", tile_px=6, provider="cpu")
    with rasterio.open(via_kind.output_path) as a, rasterio.open(direct.output_path) as b:
        assert a.tags()["MODEL_KIND"] == "fusion_320m"
        assert a.tags()["INPUT_SENTINEL1_ATTRIBUTION"] == "Contains modified Copernicus Sentinel data"
        sm = a.read(1)
        np.testing.assert_array_equal(sm, b.read(1))
    assert (sm != -9999.0).all() and sm.shape == (11, 10)  # its N and S edges fall mid-pixel: 11 rows
