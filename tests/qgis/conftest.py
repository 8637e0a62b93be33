"""Fixtures for the QGIS-side tests (pytest-qgis: a real, offscreen QgsApplication).

The Processing provider is registered directly from ``smqgis.processing`` (the repo root
is on sys.path, so ``smqgis`` is the subpackage); the QGIS plugin-loading path is tested
separately through the root ``classFactory`` and through qgis_process. Layers are removed
from the project after every test, since QGIS segfaults at exit when layers outlive it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qgis.core import QgsApplication, QgsProject

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for sm_qgis_helpers

#: Python references to the providers the fixture registered (SIP must not collect them).
_PROVIDERS: list[Any] = []


@pytest.fixture
def smqgis_provider(qgis_processing: None) -> Any:
    """The registered smqgis provider (registered once; re-registered if a test removed it)."""
    from smqgis.processing.provider import SmqgisProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("smqgis")
    if provider is None:
        provider = SmqgisProvider()
        _PROVIDERS.append(provider)
        assert registry.addProvider(provider)
    return provider


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model the runs use: the bundled demo model, else the random test model (full variant).

    The test model comes from ``tests/data/make_test_model.py`` (seed 0), so the runs work
    before the demo model lands; its values are meaningless but deterministic.
    """
    from sm_qgis_helpers import DEMO_MODEL

    if DEMO_MODEL.is_file():
        return DEMO_MODEL
    script = Path(__file__).resolve().parents[1] / "data" / "make_test_model.py"
    spec = importlib.util.spec_from_file_location("make_test_model", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.make_test_model(tmp_path_factory.mktemp("models") / "test_full.onnx", variant="full", seed=0))


@pytest.fixture(autouse=True)
def _empty_project() -> Iterator[None]:
    """Start and end every test with an empty project (no layer may outlive QGIS)."""
    QgsProject.instance().removeAllMapLayers()
    yield
    QgsProject.instance().removeAllMapLayers()


@pytest.fixture(scope="session")
def sample_run(qgis_processing: None, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """processing.run of the algorithm on the sample scene (fast mode, CPU), once per session.

    Returns ``{"path": output GeoTIFF, "result": the results dict, "feedback": LogFeedback,
    "params": the parameters}``.
    """
    import processing

    from sm_qgis_helpers import ALG_ID, LogFeedback, sample_manifest, sample_params
    from smqgis.processing.provider import SmqgisProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById("smqgis") is None:
        provider = SmqgisProvider()
        _PROVIDERS.append(provider)
        registry.addProvider(provider)
    out_path = tmp_path_factory.mktemp("sample_run") / "sm_sample.tif"
    params = sample_params(sample_manifest(), out_path, model_path)
    feedback = LogFeedback()
    result = processing.run(ALG_ID, dict(params), feedback=feedback)
    return {"path": out_path, "result": result, "feedback": feedback, "params": params}
