"""The ``precision`` field of the model metadata: absent means float32, int8 loads and is shown, others are refused."""

from __future__ import annotations

import json
import logging

import onnx
import pytest

from smqgis.core import schema
from smqgis.core.errors import ModelError
from smqgis.core.kinds.fusion import FusionModel
from smqgis.core.model import load_model, read_metadata


def _with_metadata(src: str, dst, **changes) -> str:
    """A copy of the model ``src`` whose smqgis JSON has ``changes`` applied (flat keys untouched)."""
    model = onnx.load(src)
    for prop in model.metadata_props:
        if prop.key == schema.METADATA_KEY:
            prop.value = json.dumps({**json.loads(prop.value), **changes})
    onnx.save(model, str(dst))
    return str(dst)


def test_models_without_the_field_are_float32(context_model):
    meta = read_metadata(context_model)
    assert "precision" not in meta  # written before the field existed (build_metadata does not add it)
    assert schema.precision_of(meta) == "float32"
    assert schema.to_metadata_props(meta)["precision"] == "float32"
    assert FusionModel(context_model, provider="cpu").precision == "float32"


def test_an_int8_model_loads_and_says_so(context_model, tmp_path, caplog):
    path = _with_metadata(context_model, tmp_path / "int8.onnx", precision="int8")
    assert schema.precision_of(read_metadata(path)) == "int8"
    with caplog.at_level(logging.INFO, logger="smqgis.core.model"):
        model = load_model(path, provider="cpu")
    assert model.precision == "int8"
    assert "int8" in caplog.text and "float32" not in caplog.text


@pytest.mark.parametrize("precision", ["float16", "int4", None])
def test_an_unknown_precision_is_refused_naming_it(context_model, tmp_path, precision):
    path = _with_metadata(context_model, tmp_path / "odd.onnx", precision=precision)
    with pytest.raises(ModelError, match=rf"unknown precision {precision!r}.*float32.*int8") as info:
        read_metadata(path)
    assert info.value.parameter == "model"
