"""Processing algorithm ``smqgis:estimate_sm_published`` - a 320 m soil-moisture map with the published model.

The same layers and parameters as ``smqgis:estimate_sm_320m`` (whose parameter translation it
inherits), minus the inference mode: the authors' released graph crops a fixed 256 px centre
and pools globally, so it is evaluated once per 320 m output pixel on that pixel's own
512 px (5.12 km) window. The model defaults to the one ``smqgis:import_published_model``
registered last. Before inference starts the algorithm measures the model's time per output
pixel on this machine and reports the expected duration; with ESTIMATE_ONLY it stops there.
The engine is ``smqgis.core.kinds.published.estimate_sm_published`` (QGIS-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
)
from qgis.PyQt.QtCore import QCoreApplication

from .compat import FILE_BEHAVIOR_FILE, FLAG_ADVANCED
from .estimate_sm_320m import EstimateSm320mAlgorithm
from .ids import EXECUTION_PROVIDERS
from .import_published_model import registered_published_models
from .style import SoilMoistureLayerStyler

ESTIMATE_SM_PUBLISHED = "estimate_sm_published"


class EstimateSmPublishedAlgorithm(EstimateSm320mAlgorithm):
    """Soil moisture (m3/m3) at 320 m with the authors' published model, one window per output pixel."""

    ESTIMATE_ONLY = "ESTIMATE_ONLY"
    FULL_WINDOW = "FULL_WINDOW"
    SECONDS_PER_PIXEL = "SECONDS_PER_PIXEL"
    EXPECTED_SECONDS = "EXPECTED_SECONDS"

    def tr(self, text: str) -> str:
        """Translate ``text`` in the algorithm's context."""
        return QCoreApplication.translate("EstimateSmPublishedAlgorithm", text)

    def createInstance(self) -> EstimateSmPublishedAlgorithm:  # noqa: N802 - QGIS API
        return EstimateSmPublishedAlgorithm()

    def name(self) -> str:
        return ESTIMATE_SM_PUBLISHED

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Soil moisture 320 m with the published model (paper 000)")

    def tags(self) -> list[str]:
        return self.tr("soil moisture,published,ismn,sentinel-1,sentinel-2,smap,gldas,soilgrids,onnx,320 m").split(",")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        registered = registered_published_models()
        listing = ", ".join(p.name for p in registered) or self.tr("none yet - run Import the published model first")
        return self.tr(
            "<p>Estimates volumetric surface soil moisture (<b>m3/m3</b>, top ~5 cm) on a <b>320 m</b> grid with "
            "the model released by the authors of paper 000 (trained on ISMN sensors), imported with "
            "<i>Import the published model</i>.</p>"
            "<p><b>Model</b>: default the last registered published model (registered: {}).</p>"
            "<p>Inputs, band orders, SMAP product, extent and output CRS as in <i>Soil moisture 320 m from "
            "layers</i>. The model reads a 512 px (5.12 km) window at 10 m around each output pixel: Sentinel-1 "
            "VV, VH, angle, Sentinel-2 B4, B3, B2, B8, B11, B12, DEM, and SoilGrids sand, silt, clay, bdod "
            "resampled to 10 m, plus SMAP and GLDAS at the window centre. The released graph keeps only the "
            "centre 256 px (2.56 km); when the import measured that, only the centre is read and the rest is fed "
            "as zeros (identical outputs), so the default extent is 1.12 km inside the inputs' overlap. "
            "<b>Read the full 512 px windows</b> (advanced) reads everything (2.4 km inset).</p>"
            "<p><b>Time</b>: one model evaluation per output pixel (no fast mode: the published graph crops a "
            "fixed 256 px centre and pools globally). The time per pixel is measured on this machine before the "
            "run and the expected duration is reported; <b>Only estimate the time</b> stops there.</p>"
            "<p><b>Output</b>: float32 GeoTIFF, band 1 soil moisture (m3/m3, nodata -9999 where a window touches "
            "nodata), band 2 input coverage (0-1); provenance in the metadata.</p>"
        ).format(listing)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        """The 320 m algorithm's parameters with the published model as MODEL and no MODE."""
        super().initAlgorithm(config)
        params = [p.clone() for p in self.parameterDefinitions()]
        for p in params:
            self.removeParameter(p.name())
        registered = registered_published_models()
        for p in params:
            if p.name() == self.MODE:
                continue
            if p.name() == self.MODEL:
                p = QgsProcessingParameterFile(
                    self.MODEL, self.tr("Published model (.onnx from Import the published model)"),
                    behavior=FILE_BEHAVIOR_FILE, optional=True,
                    defaultValue=str(registered[0]) if registered else None,
                    fileFilter=self.tr("ONNX models (*.onnx)"),
                )
            self.addParameter(p)
            if p.name() == self.TILE_PX:
                full = QgsProcessingParameterBoolean(
                    self.FULL_WINDOW, self.tr("Read the full 512 px windows (default: only the 256 px centre the "
                                              "graph uses, when the import measured that)"), defaultValue=False)
                full.setFlags(full.flags() | FLAG_ADVANCED)
                self.addParameter(full)
                self.addParameter(QgsProcessingParameterBoolean(
                    self.ESTIMATE_ONLY, self.tr("Only estimate the time (measure, report, write nothing)"),
                    defaultValue=False))
        self.addOutput(QgsProcessingOutputNumber(self.SECONDS_PER_PIXEL, self.tr("Seconds per output pixel")))
        self.addOutput(QgsProcessingOutputNumber(self.EXPECTED_SECONDS, self.tr("Expected inference time (s)")))
        self.addOutput(QgsProcessingOutputString("ESTIMATE", self.tr("Time estimate")))

    def processAlgorithm(  # noqa: N802 - QGIS API
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        try:
            from ..core.errors import Cancelled, SmqgisError
            from ..core.kinds import published
            from ..core.pipeline import needed_bands
        except ImportError as exc:
            from ..deps import missing_message

            raise QgsProcessingException(f"{missing_message()} ({exc})") from None

        model_path = self.parameterAsFile(parameters, self.MODEL, context)
        if not model_path:
            registered = registered_published_models()
            if not registered:
                raise QgsProcessingException(
                    "MODEL is not set and no published model is registered: run 'Import the published model' "
                    "(smqgis:import_published_model) with the downloaded soil_moisture_model.zip first.")
            model_path = str(registered[0])
        if not Path(model_path).is_file():
            raise QgsProcessingException(f"MODEL {model_path} does not exist: choose the .onnx registered by "
                                         "'Import the published model'.")
        provider = EXECUTION_PROVIDERS[self.parameterAsEnum(parameters, self.PROVIDER, context)]
        tile_px = None
        if parameters.get(self.TILE_PX) not in (None, ""):
            tile_px = self.parameterAsInt(parameters, self.TILE_PX, context)
        estimate_only = self.parameterAsBool(parameters, self.ESTIMATE_ONLY, context)
        centre_only = False if self.parameterAsBool(parameters, self.FULL_WINDOW, context) else None
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        dst_crs = self._output_crs(parameters, context)
        extent, extent_crs = self._extent(parameters, context)
        try:
            model = published.open_model(model_path, provider=provider)
        except SmqgisError as exc:
            raise QgsProcessingException(
                f"MODEL cannot be used as the published model: {exc} (a model of another kind maps with "
                "'Soil moisture 320 m from layers').") from None
        meta = model.metadata
        feedback.pushInfo(f"Model: {meta['title']} - {meta['label']}")
        inputs = self._layer_inputs(parameters, context, feedback, needed_bands(meta))
        seen: dict[str, Any] = {}

        def on_estimate(estimate: Any) -> bool:
            seen["estimate"] = estimate
            feedback.pushInfo(f"Time estimate: {estimate.describe()}.")
            if estimate.seconds > 3600:
                feedback.pushWarning(f"This run will take about {published.format_duration(estimate.seconds)}; "
                                     "cancel now and choose a smaller extent if that is too long.")
            return not estimate_only

        def progress(percent: float, message: str) -> None:
            feedback.setProgress(percent)
            feedback.setProgressText(message)

        if feedback.isCanceled():
            raise QgsProcessingException("Cancelled before the run started; no output was written.")
        try:
            result = published.estimate_sm_published(
                model, inputs, out_path, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs, provider=provider,
                tile_px=tile_px, progress=progress, is_cancelled=feedback.isCanceled, on_estimate=on_estimate,
                centre_only=centre_only)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except SmqgisError as exc:
            raise QgsProcessingException(self.with_parameter(exc)) from None
        except OSError as exc:
            raise QgsProcessingException(f"Could not write or read a file ({exc}); check the output path and the "
                                         "input files.") from None
        estimate = seen["estimate"]
        outputs = {self.SECONDS_PER_PIXEL: estimate.seconds_per_pixel, self.EXPECTED_SECONDS: estimate.seconds,
                   "ESTIMATE": estimate.describe(), self.EXECUTION_PROVIDER: model.provider,
                   self.MODEL_LABEL: model.label}
        if estimate_only:
            feedback.pushInfo("ESTIMATE_ONLY: nothing was written.")
            return {**outputs, self.OUTPUT: None}
        for warning in result.warnings:
            feedback.pushWarning(warning)
        stats = result.stats
        feedback.pushInfo(
            f"Wrote {result.output_path}: {result.width} x {result.height} pixels of 320 m in {result.crs}; soil "
            f"moisture min {stats['min']:.3f}, max {stats['max']:.3f}, mean {stats['mean']:.3f} m3/m3; valid "
            f"fraction {stats['valid_fraction']:.3f}; {result.seconds['per_output_pixel']:.3g} s per output pixel")
        if context.willLoadLayerOnCompletion(out_path):
            details = context.layerToLoadOnCompletionDetails(out_path)
            details.name = f"Soil moisture 320 m - {result.label}"
            details.setPostProcessor(SoilMoistureLayerStyler.create(details.name))
        return {**outputs, self.OUTPUT: out_path}
