"""Processing algorithm ``smqgis:estimate_sm_320m`` - soil moisture at 320 m from layers.

The thin QGIS side of the main job: it reads the Processing parameters (one raster
layer per input source, band orders, extent, output CRS, mode, execution provider),
checks them against what the chosen model's metadata asks for, and hands them to
``smqgis.core.pipeline.estimate_sm_320m`` as ``LayerInput`` objects. The engine's
progress and cancel callbacks are wired to the Processing feedback, its errors become
``QgsProcessingException`` messages that say what to do, and the written GeoTIFF is
loaded (when the caller asks for it) with the soil-moisture style and the model's label.
The engine (numpy, onnxruntime, rasterio) is imported only when the algorithm runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core import sources
from .compat import FILE_BEHAVIOR_FILE, FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER
from .ids import ESTIMATE_SM_320M, EXECUTION_PROVIDERS, MODES
from .style import SoilMoistureLayerStyler

LOGGER = logging.getLogger(__name__)

PLUGIN_DIR = Path(__file__).resolve().parents[2]
DEMO_MODEL_PATH = PLUGIN_DIR / "resources" / "models" / "demo_fusion_simulated.onnx"
GEOTIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class InputParameter:
    """The Processing parameters of one input source of ``sources.SOURCES``."""

    source: str  # key in sources.SOURCES
    layer_param: str  # raster-layer parameter name
    bands_param: str  # band-order parameter name
    label: str  # human name used in dialogs and messages


#: One row per input source; the order is the dialog's order.
INPUT_PARAMETERS: tuple[InputParameter, ...] = (
    InputParameter("sentinel1", "SENTINEL1", "S1_BANDS", "Sentinel-1 GRD (VV, VH [dB], incidence angle [deg])"),
    InputParameter("sentinel2", "SENTINEL2", "S2_BANDS", "Sentinel-2 L1C (B4, B3, B2, B8, B11, B12 as DN)"),
    InputParameter("dem", "DEM", "DEM_BANDS", "DEM (elevation [m])"),
    InputParameter(
        "soilgrids", "SOILGRIDS", "SOILGRIDS_BANDS", "SoilGrids 0-5 cm (sand, silt, clay [g/kg], bdod [cg/cm3])"
    ),
    InputParameter("smap", "SMAP", "SMAP_BANDS", "SMAP surface soil moisture (ssm)"),
    InputParameter("gldas", "GLDAS", "GLDAS_BANDS", "GLDAS Noah (SoilMoi0_10cm_inst [kg/m2])"),
)

#: SMAP_PRODUCT choices: (Earth Engine collection, units) - the engine harmonises units. The first,
#: "auto", lets the engine tell the product from the band description (sm_surface = the successor).
SMAP_PRODUCTS: tuple[tuple[str | None, str], ...] = (
    (None, "from the band description"),
    (sources.SOURCES["smap"].ee_collection, sources.SOURCES["smap"].bands[0].units),
    (sources.SOURCES["smap"].successor["ee_collection"], sources.SOURCES["smap"].successor["units"]),
)


def source_band_names(source: str) -> list[str]:
    """Band names of an input source, as in the sources table (e.g. ``["VV", "VH", "angle"]``)."""
    return [band.name for band in sources.SOURCES[source].bands]


def parse_band_order(text: str, source: str, band_count: int, param_name: str) -> dict[str, int] | None:
    """Parse a declared band order into ``{band name: 1-based index}`` for ``source``.

    ``text`` lists the raster's bands in order, comma-separated (``"VV,VH,angle"``);
    ``name=index`` entries give an index explicitly and ``-`` (or an empty entry) skips
    a band. Names the source does not use (e.g. Sentinel-2 ``B1``, ``B8A``, ``B10``)
    are allowed and ignored, so the full band list of a product can be pasted as is.
    Matching is case-insensitive. Returns None when ``text`` is blank (recognise the
    bands from the raster's band descriptions instead).

    Raises
    ------
    QgsProcessingException
        On a bad entry, a name given twice, or an index beyond ``band_count``.
    """
    if not text or not text.strip():
        return None
    known = {name.lower(): name for name in source_band_names(source)}
    mapping: dict[str, int] = {}
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if entry in ("", "-"):
            continue
        name, index = entry, position
        if "=" in entry:
            name, _, index_text = (part.strip() for part in entry.partition("="))
            try:
                index = int(index_text)
            except ValueError:
                raise QgsProcessingException(
                    f"{param_name}: {entry!r} is not 'name=band number'; write e.g. 'VV=1'."
                ) from None
        if index < 1 or index > band_count:
            raise QgsProcessingException(
                f"{param_name} places {name!r} at band {index}, but the raster has {band_count} band(s): "
                f"check that the right raster is selected and that {param_name} lists its bands in order."
            )
        canonical = known.get(name.lower())
        if canonical is None:
            continue  # a band this source does not use
        if canonical in mapping:
            raise QgsProcessingException(f"{param_name} names {canonical!r} twice; name each band once.")
        mapping[canonical] = index
    return mapping


def gdal_path(layer: QgsRasterLayer) -> str:
    """The file path GDAL opens for ``layer`` (its source without QGIS URI options)."""
    source = layer.source()
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), source)
    if parts.get("layerName") or parts.get("vsiPrefix"):
        return source  # a NetCDF/HDF subdataset or a /vsizip/ path: GDAL's own dataset name
    return str(parts.get("path") or source)


def open_model(model_path: str, provider: str) -> tuple[Any, dict[str, list[str]]]:
    """Open an smqgis model and list the bands it needs from each input source.

    Returns ``(FusionModel, {source key: [band names]})``; the model is handed to the
    engine as is, so the ONNX session is built once. Raises QgsProcessingException when
    the file is missing, is not an ONNX model, carries no valid smqgis metadata, or the
    execution provider is not available.
    """
    from ..core.errors import SmqgisError
    from ..core.model import load_model
    from ..core.pipeline import needed_bands

    if not Path(model_path).is_file():
        raise QgsProcessingException(
            f"The model file {model_path} does not exist: choose an smqgis .onnx model "
            f"(the demo model is {DEMO_MODEL_PATH})."
        )
    try:
        model = load_model(model_path, provider=provider)
    except SmqgisError as exc:
        raise QgsProcessingException(f"Cannot use the model: {exc}") from None
    return model, needed_bands(model.metadata)


class EstimateSm320mAlgorithm(QgsProcessingAlgorithm):
    """Soil moisture (m3/m3) at 320 m from Sentinel-1/-2, DEM, SoilGrids, SMAP and GLDAS layers."""

    MODEL = "MODEL"
    SENTINEL1 = "SENTINEL1"
    S1_BANDS = "S1_BANDS"
    S1_ANGLE_DEG = "S1_ANGLE_DEG"
    SENTINEL2 = "SENTINEL2"
    S2_BANDS = "S2_BANDS"
    DEM = "DEM"
    DEM_BANDS = "DEM_BANDS"
    SOILGRIDS = "SOILGRIDS"
    SOILGRIDS_BANDS = "SOILGRIDS_BANDS"
    SMAP = "SMAP"
    SMAP_BANDS = "SMAP_BANDS"
    SMAP_PRODUCT = "SMAP_PRODUCT"
    GLDAS = "GLDAS"
    GLDAS_BANDS = "GLDAS_BANDS"
    EXTENT = "EXTENT"
    OUTPUT_CRS = "OUTPUT_CRS"
    MODE = "MODE"
    PROVIDER = "PROVIDER"
    TILE_PX = "TILE_PX"
    OUTPUT = "OUTPUT"
    EXECUTION_PROVIDER = "EXECUTION_PROVIDER"
    MODEL_LABEL = "MODEL_LABEL"

    # -- identity -------------------------------------------------------------------
    def tr(self, text: str) -> str:
        """Translate ``text`` in the algorithm's context."""
        return QCoreApplication.translate("EstimateSm320mAlgorithm", text)

    def createInstance(self) -> EstimateSm320mAlgorithm:  # noqa: N802 - QGIS API
        return EstimateSm320mAlgorithm()

    def name(self) -> str:
        return ESTIMATE_SM_320M

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Soil moisture 320 m from layers")

    def group(self) -> str:
        return self.tr("Soil moisture")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "soil_moisture"

    def tags(self) -> list[str]:
        return self.tr("soil moisture,sentinel-1,sentinel-2,smap,gldas,soilgrids,onnx,fusion,320 m").split(",")

    def helpUrl(self) -> str:  # noqa: N802 - QGIS API
        return "https://github.com/smqgis/smqgis#readme"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "<p>Estimates volumetric surface soil moisture (<b>m3/m3</b>, top ~5 cm) on a <b>320 m</b> grid "
            "with an smqgis ONNX fusion model. Every input is warped onto the model's grids (10 m, 160 m "
            "and coarse values at each window centre), so layers may come in any CRS, resolution and band "
            "order.</p>"
            "<p><b>Model</b>: an smqgis .onnx file; its metadata says which inputs it needs. The default is "
            "the bundled DEMO model, trained on simulated data: its maps are not real-world measurements.</p>"
            "<p><b>Sentinel-1</b>: GRD backscatter VV and VH in dB and the incidence angle in degrees. "
            "<b>Sentinel-2</b>: L1C bands B4, B3, B2, B8, B11, B12 as digital numbers (reflectance x 10000). "
            "<b>DEM</b>: elevation in m. <b>SoilGrids</b>: 0-5 cm sand, silt, clay (g/kg) and bulk density "
            "bdod (cg/cm3). <b>SMAP</b>: surface soil moisture (see SMAP product). <b>GLDAS</b>: Noah "
            "SoilMoi0_10cm_inst in kg/m2. Inputs the model does not use are ignored; a missing input the "
            "model needs is an error.</p>"
            "<p><b>Band order</b> (one per input, optional): the raster's bands in order, comma-separated, "
            "e.g. <i>VV,VH,angle</i> or, for a 13-band Sentinel-2 file, "
            "<i>B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12</i> (bands the model does not use are ignored; "
            "<i>name=number</i> sets a band explicitly, <i>-</i> skips one). Empty: the bands are recognised "
            "from their descriptions.</p>"
            "<p><b>Sentinel-1 incidence angle</b>: a constant angle (deg) used when the Sentinel-1 raster "
            "has no angle band; a warning is logged because the true angle varies across the swath "
            "(about 30-46 deg in IW mode).</p>"
            "<p><b>SMAP product</b>: auto (default: a band described sm_surface is the successor, anything "
            "else the 10 km product), NASA_USDA/HSL/SMAP10KM_soil_moisture (ssm in mm, what the model was "
            "trained on, until 2022-08-02) or its successor NASA/SMAP/SPL4SMGP/007 (sm_surface in m3/m3, "
            "converted to mm over 5 cm). The output's tags say which product was used.</p>"
            "<p><b>Extent</b>: the area to map; default: where all inputs overlap. <b>Output CRS</b>: a "
            "projected CRS in metres; default: the UTM zone of the extent's centre.</p>"
            "<p><b>Inference mode</b>: <i>fast</i> runs the high-resolution encoder once over large tiles "
            "(default); <i>exact</i> evaluates the model on each pixel's own window (the paper's method, "
            "slower, the reference). <b>Execution provider</b>: auto (GPU when onnxruntime has CUDA), cpu or "
            "cuda; the one used is logged. <b>Tile size</b> (advanced): output pixels per side of a tile; "
            "smaller tiles use less memory (default: automatic).</p>"
            "<p><b>Output</b>: a float32 GeoTIFF at 320 m. Band 1 is soil moisture in m3/m3 (nodata -9999 "
            "wherever a window touches nodata in a required input); band 2 is the input coverage, the "
            "fraction (0-1) of the window's pixels where every required input is valid. Provenance (model, "
            "inputs, acquisition times, mode, plugin version) is written to the file's metadata.</p>"
        )

    # -- parameters -----------------------------------------------------------------
    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        """Declare the parameters (all inputs optional: the model decides which are needed)."""
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("Model (smqgis ONNX; empty: the bundled demo model)"),
                behavior=FILE_BEHAVIOR_FILE,
                defaultValue=str(DEMO_MODEL_PATH),
                # optional so that callers may omit it (QGIS 3.22 does not apply a file default in checks)
                optional=True,
                fileFilter=self.tr("ONNX models (*.onnx)"),
            )
        )
        for spec in INPUT_PARAMETERS:
            self.addParameter(
                QgsProcessingParameterRasterLayer(spec.layer_param, self.tr(spec.label), optional=True)
            )
            band_order = QgsProcessingParameterString(
                spec.bands_param,
                self.tr("{} band order (empty: from band descriptions)").format(spec.source),
                defaultValue="",
                optional=True,
            )
            band_order.setFlags(band_order.flags() | FLAG_ADVANCED)
            self.addParameter(band_order)
            if spec.source == "sentinel1":
                self.addParameter(
                    QgsProcessingParameterNumber(
                        self.S1_ANGLE_DEG,
                        self.tr("Sentinel-1 incidence angle (deg) when the raster has no angle band"),
                        type=NUMBER_DOUBLE,
                        optional=True,
                        minValue=0.0,
                        maxValue=90.0,
                    )
                )
            if spec.source == "smap":
                self.addParameter(
                    QgsProcessingParameterEnum(
                        self.SMAP_PRODUCT,
                        self.tr("SMAP product"),
                        options=[f"{collection or 'auto'} ({units})" for collection, units in SMAP_PRODUCTS],
                        defaultValue=0,
                    )
                )
        self.addParameter(
            QgsProcessingParameterExtent(
                self.EXTENT, self.tr("Extent (default: where all inputs overlap)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterCrs(
                self.OUTPUT_CRS, self.tr("Output CRS (default: UTM zone of the extent's centre)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.MODE,
                self.tr("Inference mode"),
                options=[
                    self.tr("fast (fully convolutional tiles)"),
                    self.tr("exact (one window per pixel, reference)"),
                ],
                defaultValue=0,
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
        tile_px = QgsProcessingParameterNumber(
            self.TILE_PX,
            self.tr("Tile size in output pixels (empty: automatic, from the provider's memory budget)"),
            type=NUMBER_INTEGER,
            optional=True,
            minValue=1,
        )
        tile_px.setFlags(tile_px.flags() | FLAG_ADVANCED)
        self.addParameter(tile_px)
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT, self.tr("Soil moisture 320 m (m3/m3)"), defaultValue=QgsProcessing.TEMPORARY_OUTPUT
            )
        )
        self.addOutput(QgsProcessingOutputString(self.EXECUTION_PROVIDER, self.tr("Execution provider used")))
        self.addOutput(QgsProcessingOutputString(self.MODEL_LABEL, self.tr("Model label")))

    # -- run ------------------------------------------------------------------------
    def processAlgorithm(  # noqa: N802 - QGIS API
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Translate the parameters, run the engine, and style the result for loading."""
        try:
            from ..core.errors import Cancelled, SmqgisError
            from ..core.pipeline import estimate_sm_320m
        except ImportError as exc:
            raise QgsProcessingException(
                f"smqgis needs the Python packages numpy (<2), onnxruntime and rasterio in QGIS's Python "
                f"({exc}); install them, e.g. `python3 -m pip install 'numpy<2' onnxruntime rasterio`."
            ) from None

        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(DEMO_MODEL_PATH)
        provider = EXECUTION_PROVIDERS[self.parameterAsEnum(parameters, self.PROVIDER, context)]
        mode = MODES[self.parameterAsEnum(parameters, self.MODE, context)]
        tile_px = None
        if parameters.get(self.TILE_PX) not in (None, ""):
            tile_px = self.parameterAsInt(parameters, self.TILE_PX, context)
        out_path = self._output_path(parameters, context)
        dst_crs = self._output_crs(parameters, context)
        extent, extent_crs = self._extent(parameters, context)
        model, needs = open_model(model_path, provider)
        meta = model.metadata
        feedback.pushInfo(f"Model: {meta['title']} (variant {meta['variant']}) - {meta['label']}")
        inputs = self._layer_inputs(parameters, context, feedback, needs)

        last_message = [""]

        def progress(percent: float, message: str) -> None:
            feedback.setProgress(percent)
            if message and message != last_message[0]:
                last_message[0] = message
                feedback.setProgressText(message)

        if feedback.isCanceled():
            raise QgsProcessingException("Cancelled before the run started; no output was written.")
        try:
            result = estimate_sm_320m(
                model,
                inputs,
                out_path,
                extent=extent,
                extent_crs=extent_crs,
                dst_crs=dst_crs,
                mode=mode,
                provider=provider,
                tile_px=tile_px,
                progress=progress,
                is_cancelled=feedback.isCanceled,
            )
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except SmqgisError as exc:
            raise QgsProcessingException(with_parameter_hint(str(exc))) from None
        except OSError as exc:
            raise QgsProcessingException(
                f"Could not write or read a file ({exc}); check the output path and the input files."
            ) from None
        except MemoryError:
            raise QgsProcessingException(
                f"Out of memory with the {provider} execution provider; no output was written. "
                "Try a smaller tile (TILE_PX) or a smaller extent."
            ) from None

        feedback.pushInfo(f"Execution provider: {result.provider} (mode {result.mode})")
        for warning in result.warnings:
            feedback.pushWarning(warning)
        stats = {key: float(stats_value) for key, stats_value in result.stats.items()}
        seconds = ", ".join(f"{step} {value:.2f}" for step, value in result.seconds.items())
        feedback.pushInfo(
            f"Wrote {result.output_path}: {result.width} x {result.height} pixels of 320 m in {result.crs}; "
            f"soil moisture min {stats.get('min', float('nan')):.3f}, max {stats.get('max', float('nan')):.3f}, "
            f"mean {stats.get('mean', float('nan')):.3f} m3/m3; valid fraction "
            f"{stats.get('valid_fraction', float('nan')):.3f}; seconds: {seconds}"
        )
        if context.willLoadLayerOnCompletion(out_path):
            details = context.layerToLoadOnCompletionDetails(out_path)
            details.name = f"Soil moisture 320 m - {result.label}"
            details.setPostProcessor(SoilMoistureLayerStyler.create(details.name))
        return {self.OUTPUT: out_path, self.EXECUTION_PROVIDER: result.provider, self.MODEL_LABEL: result.label}

    # -- parameter translation ------------------------------------------------------
    def _layer_inputs(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        needs: dict[str, list[str]],
    ) -> dict[str, Any]:
        """``LayerInput`` per source the model needs; a missing one is an error, an extra one is ignored."""
        from ..core.pipeline import LayerInput

        inputs: dict[str, Any] = {}
        for spec in INPUT_PARAMETERS:
            layer = self.parameterAsRasterLayer(parameters, spec.layer_param, context)
            given = parameters.get(spec.layer_param) not in (None, "")
            if spec.source not in needs:
                if given:
                    feedback.pushWarning(f"{spec.layer_param} is ignored: the model does not use {spec.source}.")
                continue
            if layer is None or not layer.isValid():
                what = "could not be opened as a raster" if given else "is not set"
                raise QgsProcessingException(
                    f"{spec.layer_param} {what}, but the model needs a {spec.label} raster with the bands "
                    f"{', '.join(needs[spec.source])}: choose a GDAL raster file or layer for {spec.layer_param}."
                )
            bands_text = self.parameterAsString(parameters, spec.bands_param, context)
            bands = parse_band_order(bands_text, spec.source, layer.bandCount(), spec.bands_param)
            if bands is not None:
                missing = [name for name in needs[spec.source] if name not in bands]
                angle = self._angle_constant(parameters, context)
                if spec.source == "sentinel1" and missing == ["angle"] and angle is not None:
                    missing = []
                if missing:
                    raise QgsProcessingException(
                        f"{spec.bands_param} does not place {', '.join(missing)}, which the model needs from "
                        f"{spec.layer_param}: list the raster's bands in order, e.g. "
                        f"{','.join(needs[spec.source])}."
                    )
            layer_input = LayerInput(path=gdal_path(layer), bands=bands)
            if spec.source == "sentinel1" and "angle" in needs[spec.source]:
                self._apply_angle_constant(layer_input, parameters, context, feedback)
            if spec.source == "smap" and parameters.get(self.SMAP_PRODUCT) not in (None, ""):
                # "auto" (None) or omitted: the engine recognises the successor by its band description
                layer_input.product = SMAP_PRODUCTS[self.parameterAsEnum(parameters, self.SMAP_PRODUCT, context)][0]
            inputs[spec.source] = layer_input
            LOGGER.debug("input %s: %s bands=%s", spec.source, layer_input.path, bands)
        return inputs

    def _angle_constant(self, parameters: dict[str, Any], context: QgsProcessingContext) -> float | None:
        """S1_ANGLE_DEG, or None when not set."""
        if parameters.get(self.S1_ANGLE_DEG) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, self.S1_ANGLE_DEG, context)

    def _apply_angle_constant(
        self,
        layer_input: Any,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> None:
        """Use S1_ANGLE_DEG when the Sentinel-1 raster has no angle band (with a warning)."""
        angle = self._angle_constant(parameters, context)
        if angle is None:
            return
        if layer_input.bands is not None:
            has_angle_band = "angle" in layer_input.bands
        else:  # recognised from band descriptions exactly as the engine would
            import rasterio

            from ..core.io import recognise_bands

            try:
                with rasterio.open(layer_input.path) as dataset:
                    descriptions = list(dataset.descriptions)
            except (rasterio.errors.RasterioError, OSError):
                descriptions = []  # the engine reports an unreadable raster with its own message
            has_angle_band = "angle" in recognise_bands(sources.SOURCES["sentinel1"], descriptions, ["angle"])
        if has_angle_band:
            feedback.pushInfo(f"{self.S1_ANGLE_DEG} is ignored: the Sentinel-1 raster has an angle band.")
            return
        layer_input.constants = {**layer_input.constants, "angle": angle}
        feedback.pushWarning(
            f"The Sentinel-1 raster has no incidence-angle band: using a constant {angle:g} deg everywhere. "
            "The true angle varies across the swath (about 30-46 deg in IW mode), which biases the estimate "
            "away from the swath's centre; give a raster with an angle band where you can."
        )

    def _extent(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[tuple[float, float, float, float] | None, str | None]:
        """The EXTENT as (xmin, ymin, xmax, ymax) and its CRS, or (None, None) for 'where inputs overlap'."""
        if parameters.get(self.EXTENT) in (None, ""):
            return None, None
        rect = self.parameterAsExtent(parameters, self.EXTENT, context)
        if rect.isNull() or rect.isEmpty():
            return None, None
        crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        crs_text = crs_to_text(crs) if crs.isValid() else None
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs_text

    def _output_crs(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """OUTPUT_CRS as text for the engine (None: UTM of the extent's centre); geographic is an error."""
        if parameters.get(self.OUTPUT_CRS) in (None, ""):
            return None
        crs = self.parameterAsCrs(parameters, self.OUTPUT_CRS, context)
        if not crs.isValid():
            return None
        if crs.isGeographic():
            raise QgsProcessingException(
                f"The output CRS {crs.authid() or crs.description()} is geographic (degrees); the 320 m grid "
                "needs a projected CRS in metres: leave OUTPUT_CRS empty for the UTM zone of the extent's "
                "centre, or choose a UTM zone (e.g. EPSG:32630)."
            )
        return crs_to_text(crs)

    def _output_path(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        """The output GeoTIFF path; its folder must exist and be writable."""
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        path = Path(out_path)
        if path.suffix.lower() not in GEOTIFF_SUFFIXES:
            raise QgsProcessingException(f"The output {out_path} must be a GeoTIFF: give it a .tif extension.")
        folder = path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise QgsProcessingException(
                f"Cannot write the output {out_path}: the folder {folder} does not exist or is not writable; "
                "choose an output file in a folder you can write to."
            )
        return out_path


def with_parameter_hint(message: str) -> str:
    """An engine message about an input, with the Processing parameters that set it appended."""
    for spec in INPUT_PARAMETERS:
        if f"the {spec.source} input" in message:
            return f"{message} (here: the raster is {spec.layer_param}, its band order {spec.bands_param})"
    return message


def crs_to_text(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS as the engine takes it: an EPSG id (``EPSG:32630``), else WKT (custom ``USER:`` CRSs)."""
    authid = crs.authid()
    return authid if authid.upper().startswith("EPSG:") else crs.toWkt()
