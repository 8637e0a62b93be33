"""The smqgis panel: area, date, inputs and model in, a styled soil-moisture layer out.

The dock drives the Processing algorithms (``smqgis:estimate_sm_320m`` and the other map
algorithms of the model-kinds registry); it never re-implements them. A run is a
``QgsProcessingAlgRunnerTask`` in QGIS's task manager, so the interface never blocks: the progress
bar follows the algorithm's feedback, Cancel cancels the task (the algorithm then writes nothing),
and on success the GeoTIFF is loaded with the soil-moisture style. The model's metadata (kind,
variant, resolution, what it was trained on, its test metrics) are read without onnxruntime, and a
model trained on simulated data is flagged in red. A map tool shows the result's value under a
click. The panel is created only when the user opens it (never at plugin load).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapLayerProxyModel,
    QgsPointXY,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import QgsDockWidget, QgsExtentWidget, QgsFileWidget, QgsMapLayerComboBox, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import QCoreApplication, QDate, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import sources
from ..core.kinds import REGISTRY
from ..paths import DEMO_MODEL_PATH, SAMPLE_DIR, STYLE_PATH
from ..processing.ids import EXECUTION_PROVIDERS, MODES, PROVIDER_ID

LOGGER = logging.getLogger(__name__)

#: The Earth Engine map algorithm (issue 13); the source is offered once it is registered.
EE_ALGORITHM_ID = f"{PROVIDER_ID}:soil_moisture_map_ee"
#: The layer parameter of each input source in the map algorithms (keys of smqgis.core.sources).
LAYER_PARAMETERS = {
    "sentinel1": "SENTINEL1",
    "sentinel2": "SENTINEL2",
    "dem": "DEM",
    "soilgrids": "SOILGRIDS",
    "smap": "SMAP",
    "gldas": "GLDAS",
}
#: Input-source choices (combo box data).
SOURCE_SAMPLE, SOURCE_LAYERS, SOURCE_EE = "sample", "layers", "earth_engine"


def tr(text: str) -> str:
    """Translate ``text`` in the dock's context (``SmqgisDock``)."""
    return QCoreApplication.translate("SmqgisDock", text)


def sample_dates() -> dict[str, Path]:
    """ISO date -> folder of the bundled (simulated) sample scene on that date."""
    index = json.loads((SAMPLE_DIR / "dates.json").read_text(encoding="utf-8"))
    return {entry["date"]: (SAMPLE_DIR / entry["folder"]).resolve() for entry in index["dates"]}


def sample_inputs(date: str) -> dict[str, str]:
    """Algorithm layer parameters of the sample scene on ``date`` (ISO), from its manifest."""
    folder = sample_dates()[date]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {LAYER_PARAMETERS[src]: str(folder / entry["path"]) for src, entry in manifest["inputs"].items()}


def describe_model(meta: dict[str, Any]) -> tuple[str, bool]:
    """A short HTML description of a model's metadata, and whether it was trained on simulated data."""
    trained = meta.get("trained_on") or {}
    simulated = str(trained.get("kind", "")).lower() == "simulated"
    lines = [
        f"<b>{meta.get('title', '')}</b>",
        tr("Kind: {kind}, variant {variant}, {res:g} m").format(
            kind=meta.get("model_kind", "?"), variant=meta.get("variant", "?"),
            res=float(meta.get("nominal_resolution_m", 0.0))),
        tr("Trained on: {what}").format(what=trained.get("description", tr("not stated"))),
    ]
    test = (meta.get("metrics") or {}).get("test")
    if isinstance(test, dict) and "r" in test:
        lines.append(tr("Test ({split}): R {r:.3f}, ubRMSE {ubrmse:.3f} m3/m3, {n} sensors").format(
            split=test.get("split", "?"), r=float(test["r"]), ubrmse=float(test.get("ubrmse", float("nan"))),
            n=test.get("n_sensors", "?")))
    if simulated:
        lines.append('<span style="color:#c00000"><b>' + tr(
            "Trained on SIMULATED data: its maps show how the plugin works, they are not measurements of real "
            "soil moisture.") + "</b></span>")
    return "<br>".join(lines), simulated


class PixelValueTool(QgsMapToolEmitPoint):
    """Map tool: a click reports the soil moisture (band 1) of a raster layer at that point."""

    valueAt = pyqtSignal(float, float, object)  # noqa: N815 - Qt signal naming

    def __init__(self, canvas: Any, layer_getter: Any) -> None:
        super().__init__(canvas)
        self._layer_getter = layer_getter
        self.canvasClicked.connect(self._clicked)

    def value_at(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> float | None:
        """Band-1 value of the current result layer at ``point`` (in ``crs``); None outside or at nodata."""
        layer = self._layer_getter()
        if layer is None:
            return None
        from qgis.core import QgsCoordinateTransform

        if crs.isValid() and crs != layer.crs():
            point = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()).transform(point)
        value, ok = layer.dataProvider().sample(point, 1)
        return float(value) if ok else None

    def _clicked(self, point: QgsPointXY, _button: Any) -> None:
        crs = self.canvas().mapSettings().destinationCrs()
        self.valueAt.emit(point.x(), point.y(), self.value_at(point, crs))


class SmqgisDock(QgsDockWidget):
    """The smqgis panel (see the module docstring)."""

    #: Emitted after every run: (state "done" | "failed" | "cancelled", message).
    finished = pyqtSignal(str, str)

    def __init__(self, iface: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(tr("Soil moisture (smqgis)"), parent)
        self.setObjectName("SmqgisDock")
        self.iface = iface
        self.canvas = iface.mapCanvas() if iface is not None else None
        self.task: QgsProcessingAlgRunnerTask | None = None
        self._run_refs: tuple[Any, ...] = ()
        self.result_layer: QgsRasterLayer | None = None
        self.output_path: Path | None = None
        self._build()
        self.refresh_models()
        self.refresh_sources()

    # -- widgets ---------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget(self)
        box = QVBoxLayout(body)

        where = QGroupBox(tr("Where and when"), body)
        form = QFormLayout(where)
        self.extent = QgsExtentWidget(where)
        if self.canvas is not None:
            self.extent.setMapCanvas(self.canvas)
        self.extent.setNullValueAllowed(True, tr("Full extent of the inputs"))
        self.extent.clear()
        self.extent.setToolTip(tr("Map area: the canvas extent, a layer's extent or a rectangle drawn on the map"))
        form.addRow(tr("Area"), self.extent)
        self.date = QDateEdit(where)
        self.date.setCalendarPopup(True)
        self.date.setDisplayFormat("yyyy-MM-dd")
        form.addRow(tr("Date"), self.date)
        self.source = QComboBox(where)
        self.source.addItem(tr("The bundled sample (simulated)"), SOURCE_SAMPLE)
        self.source.addItem(tr("My layers"), SOURCE_LAYERS)
        self.source.addItem(tr("Earth Engine"), SOURCE_EE)
        self.source.currentIndexChanged.connect(self._source_changed)
        form.addRow(tr("Inputs"), self.source)
        box.addWidget(where)

        self.layers_box = QGroupBox(tr("My layers"), body)
        layers_form = QFormLayout(self.layers_box)
        self.layer_combos: dict[str, QgsMapLayerComboBox] = {}
        for key, param in LAYER_PARAMETERS.items():
            combo = QgsMapLayerComboBox(self.layers_box)
            combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
            combo.setAllowEmptyLayer(True)
            combo.setLayer(None)
            self.layer_combos[param] = combo
            layers_form.addRow(sources.SOURCES[key].label, combo)
        box.addWidget(self.layers_box)

        model_box = QGroupBox(tr("Model"), body)
        model_form = QFormLayout(model_box)
        self.model = QComboBox(model_box)
        self.model.currentIndexChanged.connect(self._model_changed)
        model_form.addRow(tr("Model"), self.model)
        self.model_file = QgsFileWidget(model_box)
        self.model_file.setFilter(tr("smqgis ONNX models (*.onnx)"))
        self.model_file.fileChanged.connect(self._model_file_chosen)
        model_form.addRow(tr("Other model file"), self.model_file)
        self.model_info = QLabel(model_box)
        self.model_info.setWordWrap(True)
        self.model_info.setTextFormat(Qt.TextFormat.RichText)
        model_form.addRow(self.model_info)
        self.mode = QComboBox(model_box)
        for mode in MODES:
            self.mode.addItem({"fast": tr("fast (fully convolutional)"), "exact": tr("exact (window per pixel)")}
                              .get(mode, mode), mode)
        model_form.addRow(tr("Mode"), self.mode)
        self.device = QComboBox(model_box)
        for device in EXECUTION_PROVIDERS:
            self.device.addItem({"auto": tr("automatic (GPU if available)"), "cpu": tr("CPU")}.get(device, device),
                                device)
        model_form.addRow(tr("Device"), self.device)
        box.addWidget(model_box)

        self.output = QgsFileWidget(body)
        self.output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output.setFilter(tr("GeoTIFF (*.tif)"))
        self.output.setToolTip(tr("Where to write the map; empty: a temporary file"))
        out_row = QFormLayout()
        out_row.addRow(tr("Output"), self.output)
        box.addLayout(out_row)

        buttons = QHBoxLayout()
        self.run_button = QPushButton(tr("Run"), body)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton(tr("Cancel"), body)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.pick_button = QPushButton(tr("Value at a click"), body)
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip(tr("Click the map to see the soil moisture of the result there"))
        self.pick_button.toggled.connect(self._toggle_pick_tool)
        self.pick_button.setEnabled(False)
        for button in (self.run_button, self.cancel_button, self.pick_button):
            buttons.addWidget(button)
        box.addLayout(buttons)
        self.progress = QProgressBar(body)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        box.addWidget(self.progress)
        self.status = QLabel(tr("Ready."), body)
        self.status.setWordWrap(True)
        box.addWidget(self.status)
        self.device_used = QLabel("", body)
        box.addWidget(self.device_used)
        self.pixel_value = QLabel("", body)
        box.addWidget(self.pixel_value)
        box.addStretch(1)
        self.setWidget(body)
        self.pick_tool = PixelValueTool(self.canvas, lambda: self.result_layer) if self.canvas is not None else None
        if self.pick_tool is not None:
            self.pick_tool.valueAt.connect(self.show_value)

    # -- choices -----------------------------------------------------------------
    def refresh_sources(self) -> None:
        """Offer Earth Engine only when its algorithm is registered; select the sample's first date."""
        registry = QgsApplication.processingRegistry()
        item = self.source.model().item(2)
        has_ee = registry.algorithmById(EE_ALGORITHM_ID) is not None
        item.setEnabled(has_ee)
        item.setToolTip("" if has_ee else tr("coming with the Earth Engine algorithms"))
        first = next(iter(sample_dates()))
        self.date.setDate(QDate.fromString(first, "yyyy-MM-dd"))
        self._source_changed()

    def refresh_models(self) -> None:
        """The bundled demo model and the imported published models."""
        self.model.blockSignals(True)
        self.model.clear()
        if DEMO_MODEL_PATH.is_file():
            self.model.addItem(tr("Bundled demo model (simulated data)"), str(DEMO_MODEL_PATH))
        try:
            from ..processing.import_published_model import registered_published_models

            for path in registered_published_models():
                self.model.addItem(tr("Published model: {name}").format(name=path.name), str(path))
        except (ImportError, OSError) as exc:  # the published-model registry is optional
            LOGGER.debug("no published models listed: %s", exc)
        self.model.blockSignals(False)
        self._model_changed()

    def _model_file_chosen(self, path: str) -> None:
        if path:
            self.model.addItem(Path(path).name, path)
            self.model.setCurrentIndex(self.model.count() - 1)

    def model_path(self) -> str:
        """The chosen model file."""
        return str(self.model.currentData() or "")

    def _model_changed(self) -> None:
        from ..core.errors import SmqgisError
        from ..core.model import read_metadata

        path = self.model_path()
        self.model_meta: dict[str, Any] | None = None
        if not path:
            self.model_info.setText(tr("No model chosen."))
            return
        try:
            self.model_meta = read_metadata(path)
        except (SmqgisError, ImportError) as exc:
            self.model_info.setText('<span style="color:#c00000">' + str(exc) + "</span>")
            return
        text, _simulated = describe_model(self.model_meta)
        self.model_info.setText(text)

    def _source_changed(self) -> None:
        self.layers_box.setVisible(self.source.currentData() == SOURCE_LAYERS)

    # -- running -----------------------------------------------------------------
    def algorithm_id(self) -> str:
        """The map algorithm of the chosen model's kind (the registry's)."""
        kind = (self.model_meta or {}).get("model_kind", "fusion_320m")
        spec = REGISTRY.get(kind)
        return f"{PROVIDER_ID}:{spec.algorithm_id if spec is not None else REGISTRY['fusion_320m'].algorithm_id}"

    def parameters(self) -> dict[str, Any]:
        """The algorithm parameters the panel's choices make (raises ValueError naming what to fix)."""
        params: dict[str, Any] = {"MODEL": self.model_path()}
        if not params["MODEL"]:
            raise ValueError(tr("Choose a model."))
        source = self.source.currentData()
        date = self.date.date().toString("yyyy-MM-dd")
        if source == SOURCE_SAMPLE:
            dates = sample_dates()
            if date not in dates:
                raise ValueError(tr("The sample has the dates {dates}; choose one of them.").format(
                    dates=", ".join(dates)))
            params.update(sample_inputs(date))
        elif source == SOURCE_LAYERS:
            chosen = {p: c.currentLayer() for p, c in self.layer_combos.items() if c.currentLayer() is not None}
            if not chosen:
                raise ValueError(tr("Choose at least one input layer, or use the bundled sample."))
            params.update(chosen)
        else:
            raise ValueError(tr("Earth Engine inputs are coming with the Earth Engine algorithms."))
        if not self.extent.isValid() or self.extent.outputExtent().isNull():
            params["EXTENT"] = None
        else:
            rect: QgsRectangle = self.extent.outputExtent()
            crs = self.extent.outputCrs()
            corners = f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()}"
            params["EXTENT"] = f"{corners} [{crs.authid()}]"
        params["MODE"] = self.mode.currentIndex()
        params["PROVIDER"] = self.device.currentIndex()
        out = self.output.filePath()
        if not out:
            folder = Path(tempfile.mkdtemp(prefix="smqgis-"))
            out = str(folder / f"soil_moisture_{date}.tif")
        params["OUTPUT"] = out
        return params

    def run(self) -> None:
        """Start the algorithm as a background task (never blocks the interface)."""
        if self.task is not None:
            return
        from ..deps import REQUIRED_FOR_MAPS, missing_packages

        missing = missing_packages(REQUIRED_FOR_MAPS)
        if missing:
            self.offer_install(missing)
            return
        try:
            params = self.parameters()
        except ValueError as exc:
            self._set_status(str(exc), error=True)
            return
        alg_id = self.algorithm_id()
        alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
        if alg is None:
            self._set_status(tr("The algorithm {id} is not registered.").format(id=alg_id), error=True)
            return
        known = {p.name() for p in alg.parameterDefinitions()}
        params = {k: v for k, v in params.items() if k in known and v is not None}
        self.output_path = Path(params["OUTPUT"])
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        feedback = QgsProcessingFeedback()
        feedback.progressChanged.connect(self._progress)  # a slot of the dock: queued to the GUI thread
        task = QgsProcessingAlgRunnerTask(alg, params, context, feedback)
        task.executed.connect(self._executed)
        self._run_refs = (alg, context, feedback)
        self.task = task
        self.progress.setValue(0)
        self.device_used.setText("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._set_status(tr("Running {id}...").format(id=alg_id))
        QgsApplication.taskManager().addTask(task)

    def _progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))

    def cancel(self) -> None:
        """Cancel the running task (the algorithm stops at its next check and writes nothing)."""
        if self.task is not None:
            self._run_refs[2].cancel()
            self.task.cancel()
            self._set_status(tr("Cancelling..."))

    def _executed(self, ok: bool, results: dict[str, Any]) -> None:
        feedback = self._run_refs[2]
        cancelled = feedback.isCanceled() and not ok  # a run that finished before the cancel keeps its map
        self.task = None
        self._run_refs = ()
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if cancelled or not ok:
            state = "cancelled" if cancelled else "failed"
            message = tr("Cancelled; no map was written.") if cancelled else tr(
                "The run failed; see the Processing log (View > Panels > Log Messages).")
            self.progress.setValue(0)
            self._set_status(message, error=not cancelled)
            self.finished.emit(state, message)
            return
        self.progress.setValue(100)
        path = str(results.get("OUTPUT", self.output_path))
        device = str(results.get("EXECUTION_PROVIDER", "?"))
        label = str(results.get("MODEL_LABEL", ""))
        self.device_used.setText(tr("Device used: {device}").format(device=device))
        layer = QgsRasterLayer(path, tr("Soil moisture {date} - {label}").format(
            date=self.date.date().toString("yyyy-MM-dd"), label=label))
        if not layer.isValid():
            message = tr("The map {path} could not be loaded.").format(path=path)
            self._set_status(message, error=True)
            self.finished.emit("failed", message)
            return
        _msg, styled = layer.loadNamedStyle(str(STYLE_PATH))
        if not styled:
            LOGGER.warning("could not style %s with %s", path, STYLE_PATH)
        QgsProject.instance().addMapLayer(layer)
        self.result_layer = layer
        layer.willBeDeleted.connect(self._result_removed)
        self.pick_button.setEnabled(self.pick_tool is not None)
        message = tr("Done: {path}").format(path=path)
        self._set_status(message)
        self.finished.emit("done", message)

    def _result_removed(self) -> None:
        self.result_layer = None
        self.pick_button.setChecked(False)
        self.pick_button.setEnabled(False)

    # -- dependencies, map tool, status -------------------------------------------
    def offer_install(self, missing: list[str]) -> None:
        """Offer the dependency installer (a dialog the user may decline)."""
        from .deps_dialog import DependencyDialog

        self._set_status(tr("Missing Python packages: {names}").format(names=", ".join(missing)), error=True)
        DependencyDialog(missing, parent=self).exec()

    def _toggle_pick_tool(self, on: bool) -> None:
        if self.canvas is None or self.pick_tool is None:
            return
        if on:
            self.canvas.setMapTool(self.pick_tool)
        elif self.canvas.mapTool() is self.pick_tool:
            self.canvas.unsetMapTool(self.pick_tool)

    def show_value(self, x: float, y: float, value: float | None) -> None:
        """Show the soil moisture at map point (x, y)."""
        if value is None:
            self.pixel_value.setText(tr("No soil moisture at ({x:.1f}, {y:.1f})").format(x=x, y=y))
        else:
            self.pixel_value.setText(tr("Soil moisture at ({x:.1f}, {y:.1f}): {v:.3f} m3/m3").format(x=x, y=y, v=value))

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #c00000" if error else "")
        (LOGGER.warning if error else LOGGER.info)("%s", text)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Leave the map tool when the panel closes."""
        self.pick_button.setChecked(False)
        super().closeEvent(event)
