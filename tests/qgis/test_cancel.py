"""Cancelling during inference: a QgsProcessingException, no output file, no layer in the project."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProject

from sm_qgis_helpers import ALG_ID, S1_PATH, spain_params, write_spain_inputs

pytestmark = pytest.mark.skipif(not S1_PATH.is_file(), reason="the Sen1Floods11 chip is not available")


class CancelAtFirstProgress(QgsProcessingFeedback):
    """Cancels the run at the engine's first progress report."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[float] = []

    def setProgress(self, progress: float) -> None:  # noqa: N802 - QGIS API
        self.reports.append(progress)
        super().setProgress(progress)
        self.cancel()


def test_cancel_leaves_no_file_and_no_layer(smqgis_provider: object, model_path: Path, tmp_path: Path) -> None:
    import processing

    inputs = write_spain_inputs(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    params = spain_params(inputs, out_dir / "sm.tif", model_path)
    params["TILE_PX"] = 2  # the chip's 5 x 8 px map in 12 tiles: progress comes after the first tile
    feedback = CancelAtFirstProgress()
    with pytest.raises(QgsProcessingException, match="Cancelled by the user; no output was written"):
        processing.runAndLoadResults(ALG_ID, params, feedback=feedback)
    assert feedback.reports == [pytest.approx(100.0 / 12)]  # cancelled after the first of 12 tiles
    assert feedback.isCanceled()
    assert list(out_dir.iterdir()) == []
    assert QgsProject.instance().mapLayers() == {}
