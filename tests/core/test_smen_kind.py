"""The smen_3km model kind in the core (no QGIS): registry, metadata checks, seamless tiles, anchoring."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import rasterio

from smqgis.core import kinds, schema
from smqgis.core.kinds import smen

pytestmark = pytest.mark.skipif(not smen.DEMO_MODEL.is_file(), reason="the demo SMEN model is not built")


@pytest.fixture(scope="module")
def model() -> smen.SmenModel:
    return smen.open_model(str(smen.DEMO_MODEL), provider="cpu")


@pytest.fixture(scope="module")
def inputs() -> smen.SmenInputs:
    s = smen.sample_inputs()
    return smen.load_inputs(s["current_36km"], s["history_36km"], s["history_3km"], k=4)


def test_registry_and_schema_agree(model: smen.SmenModel) -> None:
    assert tuple(kinds.REGISTRY) == schema.MODEL_KINDS
    kind = kinds.kind_of(model.metadata)
    assert kind.name == "smen_3km" and kind.algorithm_id == "estimate_sm_3km"
    assert kinds.implementation(kind) is smen
    assert "simulated" in model.label.lower() and model.k == 4


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("smen", "k"), 3, "k must be an integer >= 4"),
        (("smen", "grid", "pixel_size_m"), 3000.0, "grid.pixel_size_m"),
        (("inputs", 2, "time_steps"), 5, "has 5 steps, k is 4"),
        (("smen", "anchor"), "median", "unknown anchor"),
    ],
)
def test_validate_metadata_rejects(model: smen.SmenModel, path: tuple, value: object, message: str) -> None:
    meta = copy.deepcopy(model.metadata)
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(schema.SchemaError, match=message):
        smen.validate_metadata(meta)


def test_inputs_are_laid_on_the_3km_grid(inputs: smen.SmenInputs) -> None:
    """Each 36 km cell covers exactly its 12 x 12 pixels of 3 km; history dates come from the tags, oldest first."""
    with rasterio.open(smen.sample_inputs()["current_36km"]) as ds:
        coarse = ds.read(1)
    assert inputs.current.shape == (108, 108)
    np.testing.assert_array_equal(inputs.current[::12, ::12], coarse)
    np.testing.assert_array_equal(inputs.current[11::12, 11::12], coarse)
    assert [d.isoformat() for d in inputs.history_dates] == smen.sample_inputs()["history_dates"]
    assert inputs.transform.a == pytest.approx(smen.EASE2_3KM_M)


def test_tiles_are_seamless_and_the_map_is_anchored(model: smen.SmenModel, inputs: smen.SmenInputs) -> None:
    one, mask, offset = smen.estimate_arrays(model, inputs.current, inputs.history_low, inputs.history_high)
    tiled, mask2, offset2 = smen.estimate_arrays(
        model, inputs.current, inputs.history_low, inputs.history_high, tile_px=25
    )
    np.testing.assert_allclose(tiled, one, rtol=0, atol=1e-6)  # a halo of the receptive radius: same values
    np.testing.assert_array_equal(mask, mask2)
    assert offset == pytest.approx(offset2, abs=1e-6)
    # anchored: the map's mean is the current 36 km mean; only a couple of pixels (next to a 3 km value at
    # the product's 0.02 floor) are clipped at 0, which moves the mean by < 1e-5
    clipped = one <= 0.0
    assert clipped.sum() <= 3 and one.max() < 1.0
    assert float(one.mean()) == pytest.approx(float(inputs.current.mean()), abs=1e-4)
    # the texture is SMEN's, not the blocky input's: within a 36 km cell the map varies
    assert float(one[:12, :12].std()) > 0.005
