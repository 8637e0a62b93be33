"""The maps smqgis makes stay what they were: the behaviour pin of tests/data/make_pin_reference.py.

A fixed random model and fixed seeded inputs (every source in its own CRS, a nodata hole, the
SMAP successor product) are mapped through ``qgis_process`` - the plugin as users run it - in
both modes, and each map must equal the reference recorded before the model-kinds refactoring
(commit 4c82b60) to 1e-5 m3/m3, with the same grid, the same nodata pixels and the same input
coverage. Fast and exact mode differ by up to 0.12 m3/m3 on this model, so a mode mix-up fails too.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
#: Largest difference from the reference a map may have (m3/m3): far below a sensor's 0.01 m3/m3,
#: far above onnxruntime's run-to-run float32 noise (1 ulp, 6e-8).
TOLERANCE = 1e-5

_spec = importlib.util.spec_from_file_location("make_pin_reference", DATA / "make_pin_reference.py")
pin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pin)


@pytest.fixture(scope="module")
def pin_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The pinned model and inputs, written into a scratch folder."""
    from sm_qgis_helpers import QGIS_PROCESS

    if not QGIS_PROCESS.exists():
        pytest.skip("qgis_process.bin is not installed")
    folder = tmp_path_factory.mktemp("pin")
    return {"folder": folder, "model": pin.make_pin_model(folder / "pin_model.onnx"),
            "inputs": pin.write_pin_inputs(folder / "inputs")}


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_map_equals_the_pinned_reference(pin_case: dict[str, object], mode: str) -> None:
    folder = pin_case["folder"]
    run = pin.run_pinned(pin_case["model"], pin_case["inputs"], mode, folder / f"{mode}.tif", folder)
    reference = np.load(DATA / "pin" / f"reference_{mode}.npy")
    grid = json.loads((DATA / "pin" / "grid.json").read_text())
    assert run["crs"] == grid["crs"]
    assert run["transform"] == pytest.approx(grid["transform"], abs=1e-6)
    assert run["bands"].shape == reference.shape == tuple(grid["shape"])
    assert run["tags"]["MODE"] == mode
    assert run["tags"]["INPUT_SMAP_PRODUCT"] == "NASA/SMAP/SPL4SMGP/007"
    got_sm, ref_sm = run["bands"][0], reference[0]
    np.testing.assert_array_equal(got_sm == -9999.0, ref_sm == -9999.0)  # the same nodata pixels
    assert 0.05 < np.mean(ref_sm == -9999.0) < 0.2  # the hole in Sentinel-1 is pinned too
    np.testing.assert_allclose(got_sm, ref_sm, rtol=0.0, atol=TOLERANCE)
    np.testing.assert_allclose(run["bands"][1], reference[1], rtol=0.0, atol=TOLERANCE)  # input coverage
