"""Processing algorithm ``smqgis:estimate_sm_3km`` - soil moisture at 3 km with SMEN (paper 002).

The thin QGIS side of the 3 km map: it reads the Processing parameters (the current SMAP
36 km raster, the k previous 36 km and 3 km rasters, optional dates, output CRS,
execution provider), hands them to ``smqgis.core.kinds.smen.estimate_sm_3km``, turns the
core's errors into ``QgsProcessingException`` messages naming the parameter (an error
leaves no output file: the core writes to a temporary file and renames it), and loads
the result with the soil-moisture style and the model's label. numpy, onnxruntime and
rasterio are imported only when the algorithm runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from .compat import FILE_BEHAVIOR_FILE
from .estimate_sm_320m import crs_to_text, gdal_path
from .ids import EXECUTION_PROVIDERS
from .style import SoilMoistureLayerStyler

LOGGER = logging.getLogger(__name__)

ESTIMATE_SM_3KM = "estimate_sm_3km"
PLUGIN_DIR = Path(__file__).resolve().parents[2]
DEMO_SMEN_MODEL_PATH = PLUGIN_DIR / "resources" / "models" / "demo_smen_simulated.onnx"

#: Scoped enum spelling: valid on QGIS 3.22's PyQt5 and required by QGIS 4's PyQt6.
RASTER_TYPE = QgsProcessing.SourceType.TypeRaster


class EstimateSm3kmAlgorithm(QgsProcessingAlgorithm):
    """Soil moisture (m3/m3) at 3 km from SMAP 36 km and the recent SMAP/Sentinel-1 3 km history (SMEN)."""

    MODEL = "MODEL"
    CURRENT_36KM = "CURRENT_36KM"
    CURRENT_DATE = "CURRENT_DATE"
    HISTORY_36KM = "HISTORY_36KM"
    HISTORY_3KM = "HISTORY_3KM"
    HISTORY_DATES = "HISTORY_DATES"
    OUTPUT_CRS = "OUTPUT_CRS"
    PROVIDER = "PROVIDER"
    OUTPUT = "OUTPUT"
    EXECUTION_PROVIDER = "EXECUTION_PROVIDER"
    MODEL_LABEL = "MODEL_LABEL"

    #: The core's input roles (smqgis.core.kinds.smen.ROLES) -> the parameter that sets them.
    ROLE_PARAMETERS = {
        "model": MODEL,
        "current_36km": CURRENT_36KM,
        "history_36km": HISTORY_36KM,
        "history_3km": HISTORY_3KM,
        "current_date": CURRENT_DATE,
        "history_dates": HISTORY_DATES,
        "target_crs": OUTPUT_CRS,
        "output": OUTPUT,
    }

    def tr(self, text: str) -> str:
        """Translate ``text`` in the algorithm's context."""
        return QCoreApplication.translate("EstimateSm3kmAlgorithm", text)

    def createInstance(self) -> EstimateSm3kmAlgorithm:  # noqa: N802 - QGIS API
        return EstimateSm3kmAlgorithm()

    def name(self) -> str:
        return ESTIMATE_SM_3KM

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Soil moisture 3 km (SMEN)")

    def group(self) -> str:
        return self.tr("Soil moisture")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "soil_moisture"

    def tags(self) -> list[str]:
        return self.tr("soil moisture,smap,sentinel-1,spl2smap_s,spl3smp,downscaling,smen,onnx,3 km").split(",")

    def helpUrl(self) -> str:  # noqa: N802 - QGIS API
        return "https://github.com/smqgis/smqgis#readme"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "<p>Estimates volumetric surface soil moisture (<b>m3/m3</b>) on the <b>3 km</b> EASE-Grid 2.0 grid "
            "from the SMAP 36 km radiometer soil moisture of a date and the recent history of the SMAP/Sentinel-1 "
            "3 km active-passive product, with a SMEN model (paper 002): the network adds to the current 36 km "
            "image the 3 km texture it learns from the residuals (3 km minus 36 km) of the k previous dates.</p>"
            "<p><b>Model</b>: a SMEN .onnx file (model kind smen_3km); its metadata gives k. The default is the "
            "bundled DEMO model, trained on simulated data: its maps are not real-world measurements.</p>"
            "<p><b>Current SMAP 36 km</b>: SMAP L3 radiometer soil moisture (SPL3SMP, m3/m3) of the date to map, "
            "on the EASE-Grid 2.0 36 km grid (EPSG:6933), e.g. converted from the HDF5 file with "
            "smqgis.core.smap_hdf5. <b>History 36 km</b> and <b>History 3 km</b>: the k previous dates, oldest "
            "first, one 36 km radiometer raster and one 3 km SPL2SMAP_S raster (m3/m3, EASE-Grid 2.0 3 km) per "
            "date; all 3 km rasters share one extent, which is the map's, and the 36 km rasters must cover it.</p>"
            "<p><b>Dates</b> (optional): the current date and the history dates (YYYY-MM-DD, comma-separated, "
            "oldest first); empty: read from the rasters' ACQUISITION_TIME tags. History dates must increase "
            "and precede the current date.</p>"
            "<p><b>Output CRS</b>: empty for EASE-Grid 2.0 (EPSG:6933, no resampling), or a projected CRS in "
            "metres (bilinear resampling to ~3 km). <b>Execution provider</b>: auto (GPU when onnxruntime has "
            "CUDA), cpu or cuda.</p>"
            "<p><b>Output</b>: a float32 GeoTIFF. Band 1 is soil moisture in m3/m3 (nodata -9999 where the "
            "current 36 km raster has none); band 2 is 1 where at least one previous date had a 3 km value "
            "(the model had high-resolution history there), else 0. The model, inputs, dates, provider and "
            "plugin version are written to the file's metadata.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        """Declare the parameters."""
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("Model (SMEN ONNX; empty: the bundled demo model)"),
                behavior=FILE_BEHAVIOR_FILE,
                defaultValue=str(DEMO_SMEN_MODEL_PATH),
                optional=True,
                fileFilter=self.tr("ONNX models (*.onnx)"),
            )
        )
        self.addParameter(QgsProcessingParameterRasterLayer(self.CURRENT_36KM, self.tr("Current SMAP 36 km (m3/m3)")))
        self.addParameter(
            QgsProcessingParameterString(
                self.CURRENT_DATE, self.tr("Current date (YYYY-MM-DD; empty: from the raster)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.HISTORY_36KM, self.tr("History: SMAP 36 km rasters, oldest first"), layerType=RASTER_TYPE
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.HISTORY_3KM, self.tr("History: SMAP/Sentinel-1 3 km rasters, oldest first"), layerType=RASTER_TYPE
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.HISTORY_DATES,
                self.tr("History dates (YYYY-MM-DD, comma-separated, oldest first; empty: from the rasters)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterCrs(
                self.OUTPUT_CRS, self.tr("Output CRS (empty: EASE-Grid 2.0, EPSG:6933)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.PROVIDER,
                self.tr("Execution provider"),
                options=[self.tr("auto (GPU if available)"), self.tr("cpu"), self.tr("cuda")],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT, self.tr("Soil moisture 3 km (m3/m3)"), defaultValue=QgsProcessing.TEMPORARY_OUTPUT
            )
        )
        self.addOutput(QgsProcessingOutputString(self.EXECUTION_PROVIDER, self.tr("Execution provider used")))
        self.addOutput(QgsProcessingOutputString(self.MODEL_LABEL, self.tr("Model label")))

    def _layer_paths(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> list[str]:
        """GDAL paths of a multiple-layer parameter, in the given order; an unreadable one is an error."""
        layers = self.parameterAsLayerList(parameters, name, context)
        raw = parameters.get(name)
        given = len(raw) if isinstance(raw, (list, tuple)) else (1 if raw else 0)
        if len(layers) != given or any(not layer.isValid() for layer in layers):
            raise QgsProcessingException(
                f"{name}: {given - len(layers) or 'a'} raster(s) could not be opened; choose readable raster files."
            )
        return [gdal_path(layer) for layer in layers]

    def processAlgorithm(  # noqa: N802 - QGIS API
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Translate the parameters, run the core, and style the result for loading."""
        try:
            from ..core.errors import Cancelled, SmqgisError
            from ..core.kinds import smen
        except ImportError as exc:
            raise QgsProcessingException(
                f"smqgis needs the Python packages numpy (<2), onnxruntime and rasterio in QGIS's Python ({exc}); "
                "install them, e.g. `python3 -m pip install 'numpy<2' onnxruntime rasterio`."
            ) from None

        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(DEMO_SMEN_MODEL_PATH)
        provider = EXECUTION_PROVIDERS[self.parameterAsEnum(parameters, self.PROVIDER, context)]
        current = self.parameterAsRasterLayer(parameters, self.CURRENT_36KM, context)
        if current is None or not current.isValid():
            raise QgsProcessingException(
                f"{self.CURRENT_36KM} is not a readable raster: choose the SMAP 36 km raster of the date to map."
            )
        history_36km = self._layer_paths(parameters, self.HISTORY_36KM, context)
        history_3km = self._layer_paths(parameters, self.HISTORY_3KM, context)
        target_crs = None
        if parameters.get(self.OUTPUT_CRS) not in (None, ""):
            crs = self.parameterAsCrs(parameters, self.OUTPUT_CRS, context)
            if crs.isValid():
                if crs.isGeographic():
                    raise QgsProcessingException(
                        f"{self.OUTPUT_CRS} {crs.authid()} is geographic (degrees); the 3 km grid needs a projected "
                        "CRS in metres: leave it empty for EASE-Grid 2.0 or choose e.g. a UTM zone."
                    )
                target_crs = crs_to_text(crs)
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)

        def progress(percent: float, message: str) -> None:
            feedback.setProgress(percent)
            feedback.setProgressText(message)

        try:
            result = smen.estimate_sm_3km(
                model_path,
                gdal_path(current),
                history_36km,
                history_3km,
                out_path,
                current_date=self.parameterAsString(parameters, self.CURRENT_DATE, context) or None,
                history_dates=self.parameterAsString(parameters, self.HISTORY_DATES, context) or None,
                target_crs=target_crs,
                provider=provider,
                progress=progress,
                is_cancelled=feedback.isCanceled,
            )
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except smen.SmenInputError as exc:
            raise QgsProcessingException(f"{self.ROLE_PARAMETERS.get(exc.role, exc.role)}: {exc}") from None
        except SmqgisError as exc:
            raise QgsProcessingException(str(exc)) from None
        except OSError as exc:
            raise QgsProcessingException(f"Could not read or write a file ({exc}); check the paths.") from None

        feedback.pushInfo(f"Model: {result.label}; execution provider {result.provider}")
        feedback.pushInfo(
            f"Wrote {result.output_path}: {result.width} x {result.height} px of ~3 km in {result.crs}; soil moisture "
            f"min {result.stats['min']:.3f}, mean {result.stats['mean']:.3f}, max {result.stats['max']:.3f} m3/m3; "
            f"{100 * result.stats['history_fraction']:.0f} % with 3 km history; anchor offset "
            f"{result.anchor_offset:+.4f} m3/m3"
        )
        if context.willLoadLayerOnCompletion(out_path):
            details = context.layerToLoadOnCompletionDetails(out_path)
            details.name = f"Soil moisture 3 km (SMEN) - {result.label}"
            details.setPostProcessor(SoilMoistureLayerStyler.create(details.name))
        return {self.OUTPUT: out_path, self.EXECUTION_PROVIDER: result.provider, self.MODEL_LABEL: result.label}
