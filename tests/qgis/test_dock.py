"""The smqgis panel, offscreen (pytest-qgis): it drives the real algorithm in a QgsTask.

Run on the sample gives the same map as processing.run with the same choices, loaded and styled;
Cancel stops an exact-mode run and leaves no file and no layer; the model's metadata and the
simulated-data warning are shown; the Earth Engine choice waits for its algorithm; a click shows
the pixel's value. A screenshot of the panel is saved to build/test-artifacts/dock.png.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QCoreApplication, Qt

from smqgis.paths import PLUGIN_DIR

ARTIFACTS = PLUGIN_DIR / "build" / "test-artifacts"


def wait_for(dock: Any, timeout_s: float = 240.0) -> list[tuple[str, str]]:
    """Process events until the dock's task finishes; the (state, message) it emitted."""
    seen: list[tuple[str, str]] = []
    dock.finished.connect(lambda state, message: seen.append((state, message)))
    deadline = time.monotonic() + timeout_s
    while not seen and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    assert seen, "the run did not finish in time"
    return seen


@pytest.fixture
def dock(qgis_iface: Any, smqgis_provider: Any) -> Any:
    from smqgis.gui.dock import SmqgisDock

    widget = SmqgisDock(qgis_iface)
    yield widget
    QgsProject.instance().removeAllMapLayers()
    widget.deleteLater()


def test_run_on_the_sample_gives_the_styled_map(dock: Any, sample_run: dict[str, Any], tmp_path: Path,
                                                 qgis_iface: Any) -> None:
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.mode.setCurrentIndex(dock.mode.findData("fast"))
    assert dock.source.currentData() == "sample" and dock.date.date().toString("yyyy-MM-dd") == "2020-04-25"
    assert dock.model_path() == str(sample_run["params"]["MODEL"])
    out = tmp_path / "dock_sm.tif"
    dock.output.setFilePath(str(out))
    dock.run_button.click()
    assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    assert wait_for(dock)[0][0] == "done", dock.status.text()
    assert dock.progress.value() == 100
    # the same map as processing.run with the same parameters (the dock drives the algorithm)
    with rasterio.open(out) as got, rasterio.open(sample_run["path"]) as want:
        ours, theirs = got.read(1, masked=True), want.read(1, masked=True)
        assert got.transform == want.transform and got.crs == want.crs
        np.testing.assert_array_equal(ours.filled(np.nan), theirs.filled(np.nan))
    layers = list(QgsProject.instance().mapLayers().values())
    assert len(layers) == 1
    layer = layers[0]
    assert layer.source() == str(out)
    assert layer.renderer().type() == "singlebandpseudocolor"  # the soil-moisture style
    assert "simulated" in layer.name().lower() or "demo" in layer.name().lower()
    assert dock.device_used.text().startswith("Device used: ")
    assert "cpu" in dock.device_used.text().lower()
    # a click on the map: the pixel's value, as in the file
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    row, col = np.argwhere(~ours.mask)[len(np.argwhere(~ours.mask)) // 2]
    with rasterio.open(out) as src:
        x, y = src.xy(int(row), int(col))
    dock.pick_button.setChecked(True)
    assert canvas.mapTool() is dock.pick_tool
    dock.pick_tool.canvasClicked.emit(QgsPointXY(x, y), Qt.MouseButton.LeftButton)
    assert dock.pixel_value.text().endswith(f"{float(ours[row, col]):.3f} m3/m3")
    far = dock.pick_tool.value_at(QgsPointXY(x + 1e7, y), layer.crs())
    assert far is None
    dock.pick_button.setChecked(False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dock.resize(460, 980)
    assert dock.grab().save(str(ARTIFACTS / "dock.png"))


def test_cancel_stops_the_run_and_leaves_nothing(dock: Any, tmp_path: Path) -> None:
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.mode.setCurrentIndex(dock.mode.findData("exact"))  # window per pixel: slow, many progress steps
    out = tmp_path / "out" / "cancelled.tif"
    out.parent.mkdir()
    dock.output.setFilePath(str(out))
    from qgis.core import QgsTask

    dock.run_button.click()
    task = dock.task
    deadline = time.monotonic() + 60
    while task.status() != QgsTask.TaskStatus.Running and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    assert task.status() == QgsTask.TaskStatus.Running
    running = time.monotonic()
    while time.monotonic() - running < 0.3:  # mid-run: the exact-mode sample run takes 10-50 s here
        QCoreApplication.processEvents()
        time.sleep(0.02)
    dock.cancel_button.click()
    cancelled_at = time.monotonic()
    state, message = wait_for(dock)[0]
    assert state == "cancelled", (state, message, dock.status.text())
    assert message == "Cancelled; no map was written."
    assert time.monotonic() - cancelled_at < 10  # stopped at the next batch, not at the end of the run
    assert list(out.parent.iterdir()) == []
    assert QgsProject.instance().mapLayers() == {}
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert QgsApplication.taskManager().countActiveTasks() == 0


def test_model_metadata_and_simulated_warning(dock: Any) -> None:
    from smqgis.core.model import read_metadata

    meta = read_metadata(dock.model_path())
    text = dock.model_info.text()
    assert meta["trained_on"]["kind"] == "simulated"
    assert "SIMULATED" in text
    assert f"{meta['metrics']['test']['r']:.3f}" in text
    assert "fusion_320m" in text and f"{meta['nominal_resolution_m']:g} m" in text


def test_earth_engine_waits_for_its_algorithm(dock: Any) -> None:
    item = dock.source.model().item(dock.source.findData("earth_engine"))
    registered = QgsApplication.processingRegistry().algorithmById("smqgis:soil_moisture_map_ee") is not None
    assert item.isEnabled() == registered
    if not registered:
        assert item.toolTip() == "coming with the Earth Engine algorithms"


def test_bad_choices_are_named_before_running(dock: Any) -> None:
    dock.date.setDate(dock.date.date().addDays(1))
    dock.run_button.click()
    assert dock.task is None
    assert "The sample has the dates 2020-04-25, 2020-10-10, 2020-12-27" in dock.status.text()
    dock.source.setCurrentIndex(dock.source.findData("layers"))
    dock.run_button.click()
    assert dock.task is None and "Choose at least one input layer" in dock.status.text()


def test_canvas_extent_becomes_the_extent_parameter(dock: Any, qgis_iface: Any) -> None:
    from qgis.core import QgsCoordinateReferenceSystem

    crs = QgsCoordinateReferenceSystem("EPSG:32614")
    dock.extent.setOutputExtentFromUser(QgsRectangle(600000, 3900000, 610000, 3910000), crs)
    params = dock.parameters()
    assert params["EXTENT"] == "600000.0,610000.0,3900000.0,3910000.0 [EPSG:32614]"
    assert params["SENTINEL1"].endswith("resources/sample/sentinel1.tif")


def test_plugin_adds_actions_and_no_panel_at_load(qgis_iface: Any) -> None:
    from smqgis.plugin import SmqgisPlugin

    registry = QgsApplication.processingRegistry()
    if registry.providerById("smqgis") is not None:
        registry.removeProvider(registry.providerById("smqgis"))  # the fixture re-registers it when needed
    plugin = SmqgisPlugin(qgis_iface)
    plugin.initGui()
    try:
        assert [a.objectName() for a in plugin.actions] == ["smqgisShowPanel", "smqgisInstallDependencies"]
        assert plugin.dock is None  # no GUI at load
        assert registry.providerById("smqgis") is plugin.provider is not None
        dock = plugin.show_dock()
        assert plugin.show_dock() is dock
        assert dock.model_path().endswith("demo_fusion_simulated.onnx")
    finally:
        plugin.unload()
    assert plugin.dock is None and plugin.actions == []
    assert registry.providerById("smqgis") is None
