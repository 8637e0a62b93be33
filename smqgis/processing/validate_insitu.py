"""Processing algorithm ``smqgis:validate_insitu`` - check soil-moisture maps against in-situ sensors.

The thin QGIS side of :func:`smqgis.core.validation.validate_maps`: it reads the Processing
parameters (maps, in-situ data, time tolerance, optional stratification), runs the core,
and writes its three outputs: a point layer of the sensors with their metrics (styled by R,
with a legend, when QGIS loads it), the per-sensor CSV, and the self-contained HTML report
of :mod:`smqgis.core.report`. Core errors name the parameter to change and become
``QgsProcessingException``; nothing is written when the validation fails.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsMapLayer,
    QgsMarkerSymbol,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRuleBasedRenderer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication

from .compat import FILE_BEHAVIOR_FILE, NUMBER_DOUBLE
from .estimate_sm_320m import gdal_path
from .ids import PROVIDER_ID

LOGGER = logging.getLogger(__name__)

VALIDATE_INSITU = "validate_insitu"
ALGORITHM_ID = f"{PROVIDER_ID}:{VALIDATE_INSITU}"
#: Seconds per hour: the tolerance parameter is in hours, the core's in seconds.
HOUR_S = 3600.0

#: Classes of the sensor layer's style: (lower bound, upper bound, colour, legend label) of Pearson R.
R_CLASSES: tuple[tuple[float, float, str, str], ...] = (
    (-1.0, 0.0, "#d7191c", "R < 0"),
    (0.0, 0.3, "#fdae61", "0 <= R < 0.3"),
    (0.3, 0.5, "#ffffbf", "0.3 <= R < 0.5"),
    (0.5, 0.7, "#a6d96a", "0.5 <= R < 0.7"),
    (0.7, 1.0, "#1a9641", "R >= 0.7"),
)
R_UNDEFINED = ("#9e9e9e", "R undefined (fewer than 2 pairs or a constant series)")
#: Marker size (mm) of a sensor on the map.
MARKER_SIZE_MM = 3.0

if hasattr(Qgis, "ProcessingSourceType"):  # QGIS >= 3.36
    TYPE_RASTER = Qgis.ProcessingSourceType.Raster
    TYPE_POINT = Qgis.ProcessingSourceType.VectorPoint
else:
    TYPE_RASTER = QgsProcessing.SourceType.TypeRaster
    TYPE_POINT = QgsProcessing.SourceType.TypeVectorPoint
WKB_POINT = Qgis.WkbType.Point if hasattr(Qgis, "WkbType") else QgsWkbTypes.Type.Point  # Qgis.WkbType: QGIS >= 3.30
try:  # QGIS >= 3.38 / Qt 6: fields are typed with QMetaType
    from qgis.PyQt.QtCore import QMetaType

    _STRING, _DOUBLE, _INT = QMetaType.Type.QString, QMetaType.Type.Double, QMetaType.Type.Int
    QgsField("probe", _DOUBLE)
except (ImportError, AttributeError, TypeError):
    from qgis.PyQt.QtCore import QVariant

    _STRING, _DOUBLE, _INT = QVariant.String, QVariant.Double, QVariant.Int

#: Attribute type of each column of ``validation.CSV_FIELDS``.
FIELD_TYPES = {"sensor_id": _STRING, "network": _STRING, "station": _STRING, "category": _STRING,
               "in_average": _STRING, "n": _INT, "smap_n": _INT}


def sensor_renderer() -> QgsRuleBasedRenderer:
    """The sensor layer's renderer: one rule (legend entry) per class of R, plus R undefined."""
    root = QgsRuleBasedRenderer.Rule(None)
    for low, high, colour, label in R_CLASSES:
        if low <= -1.0:
            expression = f'"r" < {high}'
        elif high >= 1.0:
            expression = f'"r" >= {low}'
        else:
            expression = f'"r" >= {low} AND "r" < {high}'
        symbol = QgsMarkerSymbol.createSimple(
            {"name": "circle", "color": colour, "outline_color": "#333333", "size": str(MARKER_SIZE_MM)}
        )
        root.appendChild(QgsRuleBasedRenderer.Rule(symbol, 0, 0, expression, label))
    colour, label = R_UNDEFINED
    symbol = QgsMarkerSymbol.createSimple(
        {"name": "circle", "color": colour, "outline_color": "#333333", "size": str(MARKER_SIZE_MM)}
    )
    root.appendChild(QgsRuleBasedRenderer.Rule(symbol, 0, 0, '"r" IS NULL', label))
    return QgsRuleBasedRenderer(root)


class SensorLayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles the loaded sensor layer by R (rule-based, with a legend) and names it."""

    #: QGIS holds post-processors by raw pointer: keep the Python objects alive.
    _instances: list[SensorLayerStyler] = []

    def __init__(self, layer_name: str) -> None:
        super().__init__()
        self.layer_name = layer_name

    @classmethod
    def create(cls, layer_name: str) -> SensorLayerStyler:
        """A styler for ``layer_name``, kept referenced for the session."""
        styler = cls(layer_name)
        cls._instances.append(styler)
        return styler

    def postProcessLayer(  # noqa: N802 - QGIS API
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        """Apply the R classes and the name (called by QGIS on the main thread)."""
        layer.setRenderer(sensor_renderer())
        layer.setName(self.layer_name)
        layer.triggerRepaint()


def _attribute(value: Any) -> Any:
    """A metric for a QGIS attribute: NaN becomes NULL (None), numpy scalars plain Python."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ValidateInsituAlgorithm(QgsProcessingAlgorithm):
    """Per-sensor ubRMSE, RMSE, R and bias of soil-moisture maps against in-situ sensors."""

    MAPS = "MAPS"
    INSITU = "INSITU"
    TOLERANCE_H = "TOLERANCE_H"
    STRATIFY_RASTER = "STRATIFY_RASTER"
    STRATIFY_FIELD = "STRATIFY_FIELD"
    OUTPUT = "OUTPUT"
    OUTPUT_CSV = "OUTPUT_CSV"
    OUTPUT_HTML = "OUTPUT_HTML"
    N_SENSORS = "N_SENSORS"
    N_PAIRS = "N_PAIRS"
    UBRMSE = "UBRMSE"
    RMSE = "RMSE"
    R = "R"
    BIAS = "BIAS"

    def tr(self, text: str) -> str:
        """Translate ``text`` in the algorithm's context."""
        return QCoreApplication.translate("ValidateInsituAlgorithm", text)

    def createInstance(self) -> ValidateInsituAlgorithm:  # noqa: N802 - QGIS API
        return ValidateInsituAlgorithm()

    def name(self) -> str:
        return VALIDATE_INSITU

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Validate against in-situ sensors")

    def group(self) -> str:
        return self.tr("Soil moisture")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "soil_moisture"

    def tags(self) -> list[str]:
        return self.tr("soil moisture,validation,in-situ,ismn,ubrmse,rmse,correlation,smap").split(",")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "<p>Checks soil-moisture maps against in-situ sensors with the metrics of the fusion paper "
            "(Batchu et al. 2023, section 3c): per sensor N, <b>ubRMSE</b>, <b>RMSE</b>, Pearson <b>R</b> and "
            "<b>bias</b> (mean of estimate minus in-situ; m3/m3), averaged over the sensors with at least 13 "
            "pairs (the others are reported and marked). The SMAP input each map was made from (named in the "
            "map's provenance) is scored at the same sensors and times, so you see whether the map beats it.</p>"
            "<p><b>Maps</b>: soil-moisture rasters in m3/m3 made by smqgis (their Sentinel-1 time is in the "
            "file's tags; band 2, the input coverage, is not used), or time-series stacks with one band per "
            "date and the date in each band description (e.g. 2020-04-25T00:30:00Z).</p>"
            "<p><b>In-situ data</b>: an ISMN download (the .zip from ismn.earth, or the folder it unpacks to - "
            "type the folder's path), read with the Python package ismn; only 0-5 cm and 5-5 cm soil moisture "
            "with quality flags G, C02, C03 or C02,C03 is used. Or a CSV with the columns sensor_id, lon, lat "
            "(WGS 84), time_utc (ISO-8601, UTC) and sm_m3m3 (m3/m3, not percent), optionally flag (filtered "
            "the same way) and any columns to stratify by.</p>"
            "<p><b>Time tolerance</b> (hours, default 1: the paper's Sentinel-1 bound): each map is paired with "
            "each sensor's reading nearest to the map's time within it; readings further away are not used.</p>"
            "<p>Each sensor takes the value of the map pixel that contains it (no interpolation); sensors "
            "outside a map or on a nodata pixel give no pair for that map and are counted in the log.</p>"
            "<p><b>Stratify</b> (optional): a category raster (e.g. land cover; each sensor takes its pixel's "
            "class) or a field (a CSV column, or an ISMN metadata variable such as lc_2010 or climate_KG).</p>"
            "<p><b>Outputs</b>: the sensors as points with their metrics, styled by R; a CSV of the same table; "
            "and an HTML report (tables, scatter, per-sensor time series, stratified table) that is one file "
            "with the plots embedded, so it opens offline.</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        """Declare the parameters."""
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.MAPS, self.tr("Soil-moisture maps (m3/m3; smqgis maps or dated stacks)"), TYPE_RASTER))
        self.addParameter(QgsProcessingParameterFile(
            self.INSITU, self.tr("In-situ data (ISMN archive .zip or folder, or CSV)"), behavior=FILE_BEHAVIOR_FILE,
            fileFilter=self.tr("ISMN archive or CSV (*.zip *.csv);;All files (*)")))
        self.addParameter(QgsProcessingParameterNumber(
            self.TOLERANCE_H, self.tr("Time tolerance around each map's time (hours)"), type=NUMBER_DOUBLE,
            defaultValue=1.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.STRATIFY_RASTER, self.tr("Category raster to stratify by (optional)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.STRATIFY_FIELD, self.tr("Field to stratify by (optional; CSV column or ISMN metadata)"),
            defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, self.tr("Sensors with metrics"), TYPE_POINT))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_CSV, self.tr("Per-sensor metrics (CSV)"), self.tr("CSV files (*.csv)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, self.tr("Validation report (HTML)"), self.tr("HTML files (*.html)")))
        for key, label in ((self.N_SENSORS, "Sensors in the averages"), (self.N_PAIRS, "Pairs"),
                           (self.UBRMSE, "Mean ubRMSE (m3/m3)"), (self.RMSE, "Mean RMSE (m3/m3)"),
                           (self.R, "Mean R"), (self.BIAS, "Mean bias (m3/m3)")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(  # noqa: N802 - QGIS API
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Run the validation, then write the CSV, the report and the sensor layer."""
        try:
            from ..core.errors import Cancelled, SmqgisError
            from ..core.report import write_html_report
            from ..core.validation import CSV_FIELDS, validate_maps
        except ImportError as exc:
            raise QgsProcessingException(
                f"smqgis needs numpy (<2), rasterio and matplotlib in QGIS's Python ({exc}); install them."
            ) from None
        layers = self.parameterAsLayerList(parameters, self.MAPS, context)
        maps = [gdal_path(layer) for layer in layers]
        insitu = self.parameterAsFile(parameters, self.INSITU, context)
        if not insitu:
            raise QgsProcessingException(f"{self.INSITU}: choose an ISMN archive (.zip or folder) or a CSV.")
        tolerance_h = self.parameterAsDouble(parameters, self.TOLERANCE_H, context)
        stratify_layer = self.parameterAsRasterLayer(parameters, self.STRATIFY_RASTER, context)
        stratify_field = self.parameterAsString(parameters, self.STRATIFY_FIELD, context).strip() or None
        csv_path = self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context)
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)

        def progress(percent: float, message: str) -> None:
            feedback.setProgress(percent * 0.9)
            feedback.setProgressText(message)

        try:
            result = validate_maps(
                maps, insitu, tolerance_s=tolerance_h * HOUR_S,
                stratify_raster=gdal_path(stratify_layer) if stratify_layer is not None else None,
                stratify_field=stratify_field, progress=progress, is_cancelled=feedback.isCanceled,
            )
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; nothing was written.") from None
        except SmqgisError as exc:
            raise QgsProcessingException(str(exc)) from None
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(result.table_text())

        fields = QgsFields()
        for name in CSV_FIELDS:
            fields.append(QgsField(name, FIELD_TYPES.get(name, _DOUBLE)))
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, WKB_POINT,
                                             QgsCoordinateReferenceSystem("EPSG:4326"))
        if sink is None:
            raise QgsProcessingException(f"{self.OUTPUT}: the sensor layer could not be created.")
        for row in result.sensors:
            feature = QgsFeature(fields)
            feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(row["lon"], row["lat"])))
            feature.setAttributes([_attribute(row[name]) for name in CSV_FIELDS])
            sink.addFeature(feature)
        result.write_csv(csv_path)
        write_html_report(result, html_path)
        feedback.setProgress(100.0)
        feedback.pushInfo(f"Wrote {csv_path} and {html_path}")
        if context.willLoadLayerOnCompletion(dest_id):
            details = context.layerToLoadOnCompletionDetails(dest_id)
            details.name = self.tr("In-situ sensors by R")
            details.setPostProcessor(SensorLayerStyler.create(details.name))
        avg = result.average
        return {
            self.OUTPUT: dest_id, self.OUTPUT_CSV: csv_path, self.OUTPUT_HTML: html_path,
            self.N_SENSORS: avg["n_sensors"], self.N_PAIRS: len(result.pairs),
            self.UBRMSE: avg["ubrmse"], self.RMSE: avg["rmse"], self.R: avg["r"], self.BIAS: avg["bias"],
        }
