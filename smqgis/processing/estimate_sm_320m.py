"""Processing algorithm ``smqgis:estimate_sm_320m`` - soil moisture at 320 m from layers (the fusion kind).

The thin QGIS side of the main job: it declares one raster layer (and band order) per input
source of the sources table, reads the Processing parameters, and hands them to
``smqgis.core.kinds.fusion.estimate_sm_320m`` as ``LayerInput`` objects. Every check of the
inputs is the core's; a core error names the input (``role``) or argument (``parameter``) at
fault, which this module maps onto its own parameter names. The engine's progress and cancel
callbacks are wired to the Processing feedback, and the written GeoTIFF is loaded (when the
caller asks for it) with the soil-moisture style and the model's label. Labels and help
come from the model-kind registry, the schema and the sources table. The engine (numpy,
onnxruntime, rasterio) is imported only when the algorithm runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
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
from ..core.kinds import REGISTRY
from ..paths import DEMO_MODEL_PATH
from .compat import FILE_BEHAVIOR_FILE, FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER
from .ids import ESTIMATE_SM_320M, EXECUTION_PROVIDERS, MODES
from .style import SoilMoistureLayerStyler

LOGGER = logging.getLogger(__name__)

#: The kind of model this algorithm maps with.
KIND = REGISTRY["fusion_320m"]


@dataclass(frozen=True)
class InputParameter:
    """The Processing parameters of one input source of ``sources.SOURCES``.

    Attributes
    ----------
    source : str
        Key in ``sources.SOURCES`` (its label and help come from there).
    layer_param, bands_param : str
        Names of the raster-layer and band-order parameters.
    constant_param : str
        Name of the parameter giving a fallback constant for the source's band that may be one
        (the band with a ``constant_note``); empty: none.
    product_param : str
        Name of the product choice, for a source with a successor product; empty: none.
    """

    source: str
    layer_param: str
    bands_param: str
    constant_param: str = ""
    product_param: str = ""
    units_param: str = ""

    @property
    def label(self) -> str:
        """How the dialog names the input (the sources table's label)."""
        return sources.SOURCES[self.source].label


#: One row per input source; the order is the sources table's, the dialog's order.
INPUT_PARAMETERS: tuple[InputParameter, ...] = (
    InputParameter("sentinel1", "SENTINEL1", "S1_BANDS", constant_param="S1_ANGLE_DEG", units_param="S1_UNITS"),
    InputParameter("sentinel2", "SENTINEL2", "S2_BANDS", units_param="S2_UNITS"),
    InputParameter("dem", "DEM", "DEM_BANDS"),
    InputParameter("soilgrids", "SOILGRIDS", "SOILGRIDS_BANDS", units_param="SOILGRIDS_UNITS"),
    InputParameter("smap", "SMAP", "SMAP_BANDS", product_param="SMAP_PRODUCT", units_param="SMAP_UNITS"),
    InputParameter("gldas", "GLDAS", "GLDAS_BANDS", units_param="GLDAS_UNITS"),
)
#: Choices of the Sentinel-2 DN offset parameter: (dn_offset for the core, label); None = detect.
S2_OFFSET_CHOICES: tuple[tuple[float | None, str], ...] = (
    (None, "auto (from RADIO_ADD_OFFSET metadata, the date and the values)"),
    (0.0, "none (DN as the model saw them)"),
    (sources.S2_OFFSET_DN, f"remove {sources.S2_OFFSET_DN:g} DN (baseline 04.00, from {sources.S2_OFFSET_FROM})"),
)


def unit_choices(source: str) -> tuple[tuple[str | None, str], ...]:
    """Unit choices of an input: (``LayerInput.units`` or None for the table's units, label)."""
    src = sources.SOURCES[source]
    return ((None, f"as in the sources table ({src.bands[0].units})"),
            *((o.name, f"{o.name}: {o.units} (converted)") for o in sources.UNIT_OPTIONS.get(source, ())))

#: Dialog label of each inference mode and execution provider (keyed by the schema's names, so the enum
#: order is the schema's order whatever the order here).
MODE_LABELS = {"fast": "fast (fully convolutional tiles)", "exact": "exact (one window per pixel, reference)"}
PROVIDER_LABELS = {"auto": "auto (GPU if available)", "cpu": "cpu", "cuda": "cuda"}


def constant_band(source: str) -> sources.Band:
    """The band of ``source`` that may be given as a constant (the one with a ``constant_note``)."""
    return next(b for b in sources.SOURCES[source].bands if b.constant_note)


def product_choices(source: str) -> tuple[tuple[str | None, str], ...]:
    """Product choices of a source with a successor: (Earth Engine collection or None for auto, units).

    The first, "auto", lets the engine tell the product from the band description (the successor's
    band name); the engine harmonises the units.
    """
    src = sources.SOURCES[source]
    return ((None, "from the band description"), (src.ee_collection, src.bands[0].units),
            (src.successor["ee_collection"], src.successor["units"]))


def help_html() -> str:
    """The algorithm's help: what it makes, every parameter, the output's units."""
    inputs = " ".join(sources.SOURCES[spec.source].help for spec in INPUT_PARAMETERS)
    constants, products = [], []
    for spec in INPUT_PARAMETERS:
        src = sources.SOURCES[spec.source]
        if spec.constant_param:
            band = constant_band(spec.source)
            constants.append(
                f"<p><b>Constant {src.key} {band.name}</b> ({spec.constant_param}): a constant {band.name} "
                f"({band.units}) used when the {spec.layer_param} raster has no {band.name} band; a warning is "
                f"logged because {band.constant_note.split(';')[0]}.</p>"
            )
        if spec.product_param:
            succ, band = src.successor, src.bands[0]
            products.append(
                f"<p><b>{spec.source.upper()} product</b> ({spec.product_param}): auto (default: a band described "
                f"{succ['ee_band']} is the successor, anything else {src.ee_collection}), {src.ee_collection} "
                f"({band.name} in {band.units}, what the model was trained on, until {src.valid_to}) or its "
                f"successor {succ['ee_collection']} ({succ['ee_band']} in {succ['units']}, converted to "
                f"{band.units}). The output's tags say which product was used.</p>"
            )
    return (
        f"<p>Estimates volumetric surface soil moisture (<b>m3/m3</b>, top ~5 cm) on a "
        f"<b>{KIND.nominal_resolution_m:g} m</b> grid with an smqgis ONNX model of the kind {KIND.title}. Every "
        "input is warped onto the model's grids (10 m, 160 m and coarse values at each window centre), so layers "
        "may come in any CRS, resolution and band order.</p>"
        "<p><b>Model</b>: an smqgis .onnx file; its metadata says which inputs it needs. The default is "
        "the bundled DEMO model, trained on simulated data: its maps are not real-world measurements.</p>"
        f"<p>{inputs} Inputs the model does not use are ignored; a missing input the model needs is an error.</p>"
        "<p><b>Band order</b> (one per input, optional): the raster's bands in order, comma-separated, "
        "e.g. <i>VV,VH,angle</i> or, for a 13-band Sentinel-2 file, "
        f"<i>{','.join(sources.SOURCES['sentinel2'].file_band_order)}</i> (bands the model does not use are "
        "ignored; <i>name=number</i> sets a band explicitly, <i>-</i> skips one). Empty: the bands are recognised "
        "from their descriptions.</p>"
        + "".join(constants) + "".join(products) +
        "<p><b>Extent</b>: the area to map; default: where all inputs overlap. <b>Output CRS</b>: a "
        "projected CRS in metres; default: the UTM zone of the extent's centre.</p>"
        "<p><b>Inference mode</b>: <i>fast</i> runs the high-resolution encoder once over large tiles "
        "(default); <i>exact</i> evaluates the model on each pixel's own window (the paper's method, "
        "slower, the reference). <b>Execution provider</b>: auto (GPU when onnxruntime has CUDA), cpu or "
        "cuda; the one used is logged. <b>Tile size</b> (advanced): output pixels per side of a tile; "
        "smaller tiles use less memory (default: automatic).</p>"
        f"<p><b>Output</b>: a float32 GeoTIFF at {KIND.nominal_resolution_m:g} m. Band 1 is soil moisture in "
        "m3/m3 (nodata -9999 wherever a window touches nodata in a required input); band 2 is the input coverage, "
        "the fraction (0-1) of the window's pixels where every required input is valid. Provenance (model, "
        "inputs, acquisition times, attribution, mode, plugin version) is written to the file's metadata.</p>"
    )


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
    known = {name.lower(): name for name in sources.SOURCES[source].band_names}
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
    S2_DN_OFFSET = "S2_DN_OFFSET"
    IGNORE_TIME_BOUNDS = "IGNORE_TIME_BOUNDS"
    MAX_OUTPUT_PX = "MAX_OUTPUT_PX"
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
        return self.tr(f"Soil moisture {KIND.nominal_resolution_m:g} m from layers")

    def group(self) -> str:
        return self.tr("Soil moisture")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "soil_moisture"

    def tags(self) -> list[str]:
        return self.tr("soil moisture,sentinel-1,sentinel-2,smap,gldas,soilgrids,onnx,fusion,320 m").split(",")

    def helpUrl(self) -> str:  # noqa: N802 - QGIS API
        return "https://github.com/smqgis/smqgis#readme"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(help_html())

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
            if spec.constant_param:
                band = constant_band(spec.source)
                self.addParameter(
                    QgsProcessingParameterNumber(
                        spec.constant_param,
                        self.tr("Constant {} {} ({}) when the {} raster has no {} band").format(
                            spec.source, band.name, band.units, spec.layer_param, band.name),
                        type=NUMBER_DOUBLE,
                        optional=True,
                        minValue=band.physical_range[0],
                        maxValue=band.physical_range[1],
                    )
                )
            if spec.product_param:
                self.addParameter(
                    QgsProcessingParameterEnum(
                        spec.product_param,
                        self.tr("{} product").format(spec.source.upper()),
                        options=[f"{collection or 'auto'} ({units})" for collection, units in
                                 product_choices(spec.source)],
                        defaultValue=0,
                    )
                )
            if spec.units_param:
                units = QgsProcessingParameterEnum(
                    spec.units_param, self.tr("{} units (a declared conversion)").format(spec.layer_param),
                    options=[label for _, label in unit_choices(spec.source)], defaultValue=0, optional=True)
                units.setFlags(units.flags() | FLAG_ADVANCED)
                self.addParameter(units)
            if spec.source == "sentinel2":
                offset = QgsProcessingParameterEnum(
                    self.S2_DN_OFFSET, self.tr("Sentinel-2 DN offset (processing baseline 04.00)"),
                    options=[label for _, label in S2_OFFSET_CHOICES], defaultValue=0, optional=True)
                offset.setFlags(offset.flags() | FLAG_ADVANCED)
                self.addParameter(offset)
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
                options=[self.tr(MODE_LABELS[mode]) for mode in MODES],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.PROVIDER,
                self.tr("Execution provider"),
                options=[self.tr(PROVIDER_LABELS[provider]) for provider in EXECUTION_PROVIDERS],
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
        ignore_time = QgsProcessingParameterBoolean(
            self.IGNORE_TIME_BOUNDS,
            self.tr("Accept inputs acquired further from Sentinel-1 than the model's time bounds"),
            defaultValue=False, optional=True)
        ignore_time.setFlags(ignore_time.flags() | FLAG_ADVANCED)
        self.addParameter(ignore_time)
        max_px = QgsProcessingParameterNumber(
            self.MAX_OUTPUT_PX, self.tr("Largest map (output pixels) before the run is refused"),
            type=NUMBER_INTEGER, optional=True, defaultValue=sources.DEFAULT_MAX_OUTPUT_PX, minValue=1)
        max_px.setFlags(max_px.flags() | FLAG_ADVANCED)
        self.addParameter(max_px)
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT,
                self.tr("Soil moisture {:g} m (m3/m3)").format(KIND.nominal_resolution_m),
                defaultValue=QgsProcessing.TEMPORARY_OUTPUT,
            )
        )
        self.addOutput(QgsProcessingOutputString(self.EXECUTION_PROVIDER, self.tr("Execution provider used")))
        self.addOutput(QgsProcessingOutputString(self.MODEL_LABEL, self.tr("Model label")))

    # -- run ------------------------------------------------------------------------
    def processAlgorithm(  # noqa: N802 - QGIS API
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Translate the parameters, run the engine, and style the result for loading."""
        from ..deps import REQUIRED_FOR_MAPS, missing_message, missing_packages

        missing = missing_packages(REQUIRED_FOR_MAPS)
        if missing:
            raise QgsProcessingException(missing_message(missing))
        try:
            from ..core.errors import Cancelled, SmqgisError
            from ..core.kinds.fusion import estimate_sm_320m
            from ..core.pipeline import needed_bands, open_model
        except ImportError as exc:
            from ..deps import missing_message

            raise QgsProcessingException(f"{missing_message()} ({exc})") from None

        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(DEMO_MODEL_PATH)
        provider = EXECUTION_PROVIDERS[self.parameterAsEnum(parameters, self.PROVIDER, context)]
        mode = MODES[self.parameterAsEnum(parameters, self.MODE, context)]
        tile_px = None
        if parameters.get(self.TILE_PX) not in (None, ""):
            tile_px = self.parameterAsInt(parameters, self.TILE_PX, context)
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        extent, extent_crs = self._extent(parameters, context)
        last_message = [""]

        def progress(percent: float, message: str) -> None:
            feedback.setProgress(percent)
            if message and message != last_message[0]:
                last_message[0] = message
                feedback.setProgressText(message)

        try:
            model = open_model(model_path, provider, model_kind=KIND.name)
            meta = model.metadata
            feedback.pushInfo(f"Model: {meta['title']} (variant {meta['variant']}) - {meta['label']}")
            inputs = self._layer_inputs(parameters, context, feedback, needed_bands(meta))
            if feedback.isCanceled():
                raise QgsProcessingException("Cancelled before the run started; no output was written.")
            max_px = None
            if parameters.get(self.MAX_OUTPUT_PX) not in (None, ""):
                max_px = self.parameterAsInt(parameters, self.MAX_OUTPUT_PX, context)
            result = estimate_sm_320m(
                model,
                inputs,
                out_path,
                extent=extent,
                extent_crs=extent_crs,
                dst_crs=self._output_crs(parameters, context),
                mode=mode,
                provider=provider,
                tile_px=tile_px,
                progress=progress,
                is_cancelled=feedback.isCanceled,
                ignore_time_bounds=self.parameterAsBool(parameters, self.IGNORE_TIME_BOUNDS, context),
                max_output_px=max_px,
            )
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except SmqgisError as exc:
            raise QgsProcessingException(self.with_parameter(exc)) from None
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
        for note in result.notes:
            feedback.pushInfo(note)
        for warning in result.warnings:
            feedback.pushWarning(warning)
        stats = {key: float(stats_value) for key, stats_value in result.stats.items()}
        seconds = ", ".join(f"{step} {value:.2f}" for step, value in result.seconds.items())
        feedback.pushInfo(
            f"Wrote {result.output_path}: {result.width} x {result.height} pixels of "
            f"{KIND.nominal_resolution_m:g} m in {result.crs}; "
            f"soil moisture min {stats.get('min', float('nan')):.3f}, max {stats.get('max', float('nan')):.3f}, "
            f"mean {stats.get('mean', float('nan')):.3f} m3/m3; valid fraction "
            f"{stats.get('valid_fraction', float('nan')):.3f}; seconds: {seconds}"
        )
        if context.willLoadLayerOnCompletion(out_path):
            details = context.layerToLoadOnCompletionDetails(out_path)
            details.name = f"Soil moisture {KIND.nominal_resolution_m:g} m - {result.label}"
            details.setPostProcessor(SoilMoistureLayerStyler.create(details.name))
        return {self.OUTPUT: out_path, self.EXECUTION_PROVIDER: result.provider, self.MODEL_LABEL: result.label}

    # -- parameter translation ------------------------------------------------------
    #: The Processing parameter of each core argument an error may name (``SmqgisError.parameter``).
    CORE_PARAMETERS = {"model": "MODEL", "extent": "EXTENT", "dst_crs": "OUTPUT_CRS", "output_path": "OUTPUT",
                       "mode": "MODE", "provider": "PROVIDER", "tile_px": "TILE_PX", "max_output_px": "MAX_OUTPUT_PX"}

    def with_parameter(self, error: Any) -> str:
        """A core error's message with the Processing parameters that set the input or argument it names."""
        message = str(error)
        spec = next((s for s in INPUT_PARAMETERS if s.source == error.role), None)
        if spec is not None:
            return f"{message} (here: the raster is {spec.layer_param}, its band order {spec.bands_param})"
        if error.parameter in self.CORE_PARAMETERS:
            return f"{message} (parameter {self.CORE_PARAMETERS[error.parameter]})"
        return message

    def _layer_inputs(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        needs: dict[str, list[str]],
    ) -> dict[str, Any]:
        """``LayerInput`` per source given and used by the model (the core says which are missing)."""
        from ..core.pipeline import LayerInput

        inputs: dict[str, Any] = {}
        for spec in INPUT_PARAMETERS:
            if parameters.get(spec.layer_param) in (None, ""):
                continue
            if spec.source not in needs:
                feedback.pushWarning(f"{spec.layer_param} is ignored: the model does not use {spec.source}.")
                continue
            value = parameters.get(spec.layer_param)
            # a file given by name is read by GDAL only: a QGIS layer would compute statistics and leave an
            # .aux.xml beside the user's file
            count = None
            if isinstance(value, str) and not QgsProject_has_layer(context, value):
                path, count = value, gdal_band_count(value)
            if count is None or count < 0:
                layer = self.parameterAsRasterLayer(parameters, spec.layer_param, context)
                if layer is None or not layer.isValid():
                    raise QgsProcessingException(
                        f"{spec.layer_param} could not be opened as a raster, but the model needs a {spec.label} "
                        f"raster with the bands {', '.join(needs[spec.source])}: choose a GDAL raster file or layer "
                        f"for {spec.layer_param}."
                    )
                path, count = gdal_path(layer), layer.bandCount()
            bands_text = self.parameterAsString(parameters, spec.bands_param, context)
            layer_input = LayerInput(path=path, bands=parse_band_order(bands_text, spec.source, count,
                                                                       spec.bands_param))
            if spec.constant_param and parameters.get(spec.constant_param) not in (None, ""):
                value = self.parameterAsDouble(parameters, spec.constant_param, context)
                layer_input.fallback_constants = {constant_band(spec.source).name: value}
            if spec.units_param and parameters.get(spec.units_param) not in (None, ""):
                layer_input.units = unit_choices(spec.source)[
                    self.parameterAsEnum(parameters, spec.units_param, context)][0]
            if spec.source == "sentinel2" and parameters.get(self.S2_DN_OFFSET) not in (None, ""):
                layer_input.dn_offset = S2_OFFSET_CHOICES[
                    self.parameterAsEnum(parameters, self.S2_DN_OFFSET, context)][0]
            if spec.product_param and parameters.get(spec.product_param) not in (None, ""):
                # "auto" (None) or omitted: the engine recognises the successor by its band description
                choice = self.parameterAsEnum(parameters, spec.product_param, context)
                layer_input.product = product_choices(spec.source)[choice][0]
            inputs[spec.source] = layer_input
            LOGGER.debug("input %s: %s bands=%s", spec.source, layer_input.path, layer_input.bands)
        return inputs

    def _extent(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[tuple[float, float, float, float] | None, str | None]:
        """The EXTENT as (xmin, ymin, xmax, ymax) and its CRS, or (None, None) for 'where inputs overlap'."""
        if parameters.get(self.EXTENT) in (None, ""):
            return None, None
        rect = self.parameterAsExtent(parameters, self.EXTENT, context)
        problem = extent_problem(parameters.get(self.EXTENT), rect)
        if problem:
            raise QgsProcessingException(problem)
        crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        crs_text = crs_to_text(crs) if crs.isValid() else None
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs_text

    def _output_crs(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """OUTPUT_CRS as text for the engine (None: UTM of the extent's centre; the core checks it)."""
        if parameters.get(self.OUTPUT_CRS) in (None, ""):
            return None
        crs = self.parameterAsCrs(parameters, self.OUTPUT_CRS, context)
        if not crs.isValid():
            raise QgsProcessingException(crs_problem(parameters.get(self.OUTPUT_CRS)))
        return crs_to_text(crs)

    # -- checks before the run ------------------------------------------------------
    def checkParameterValues(  # noqa: N802 - QGIS API
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Say what is wrong with a parameter (QGIS's own check only says "Incorrect parameter value")."""
        problem = self.parameter_problem(parameters, context)
        if problem:
            return False, problem
        # QGIS's own check loads each raster as a layer, whose statistics GDAL then saves in an .aux.xml beside
        # the user's file; the rasters were checked above with GDAL alone
        files = {spec.layer_param for spec in INPUT_PARAMETERS
                 if isinstance(parameters.get(spec.layer_param), str)
                 and not QgsProject_has_layer(context, parameters[spec.layer_param])}
        return super().checkParameterValues({k: v for k, v in parameters.items() if k not in files}, context)

    def parameter_problem(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        """What is wrong with the parameters as given, naming the parameter ('' when nothing is)."""
        import os

        model = parameters.get(self.MODEL)
        if model not in (None, ""):
            path = str(model)
            if os.path.isdir(path):
                return f"MODEL: {path} is a folder; choose an smqgis model file (.onnx) in it"
            if not os.path.exists(path):
                return f"MODEL: {path} not found; choose an existing smqgis model file (.onnx) or leave it empty"
        for spec in INPUT_PARAMETERS:
            value = parameters.get(spec.layer_param)
            if isinstance(value, str) and value and not QgsProject_has_layer(context, value):
                path = value.split("|")[0]
                is_gdal_name = path.startswith(("/vsi", "NETCDF:", "HDF5:", "HDF4_", "GPKG:")) or "://" in path
                if not is_gdal_name and not os.path.exists(path):
                    return f"{spec.layer_param}: {path} not found; choose an existing raster file"
                if os.path.isdir(path):
                    return f"{spec.layer_param}: {path} is a folder; choose a raster file in it"
                if os.path.isfile(path) and os.path.getsize(path) == 0:
                    return f"{spec.layer_param}: {path} is an empty file (0 bytes); choose a complete raster file"
                if gdal_band_count(path) is None:
                    return (f"{spec.layer_param}: {path} exists but GDAL cannot read it as a raster (a corrupt "
                            "file, or a NetCDF/HDF file whose subdataset must be named, e.g. "
                            "NETCDF:\"file.nc4\":variable)")
        for name in [self.MODE, self.PROVIDER, self.S2_DN_OFFSET, *(s.product_param for s in INPUT_PARAMETERS),
                     *(s.units_param for s in INPUT_PARAMETERS)]:
            value = parameters.get(name)
            if not name or value in (None, ""):
                continue
            options = self.parameterDefinition(name).options()
            if not _is_choice(value, options):
                listing = "; ".join(f"{i} = {label}" for i, label in enumerate(options))
                return f"{name}: {value!r} is not one of the choices ({listing}); give the number of one"
        for name, low in ((self.TILE_PX, 1), (self.MAX_OUTPUT_PX, 1)):
            value = parameters.get(name)
            if value in (None, ""):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if not number == number or number != int(number) or number < low:
                what = "output pixels per tile side, or empty for automatic" if name == self.TILE_PX else (
                    "output pixels")
                return f"{name}: {value!r} is not a whole number >= {low} ({what})"
        for spec in INPUT_PARAMETERS:
            value = parameters.get(spec.constant_param) if spec.constant_param else None
            if value in (None, ""):
                continue
            band = constant_band(spec.source)
            try:
                number = float(value)
            except (TypeError, ValueError):
                return f"{spec.constant_param}: {value!r} is not a number ({band.name} in {band.units})"
            lo, hi = band.physical_range
            if not lo <= number <= hi:
                return (f"{spec.constant_param}: {number:g} {band.units} lies outside the physical range of "
                        f"{spec.source} {band.name} ({lo:g}-{hi:g} {band.units})")
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context)
            problem = extent_problem(parameters.get(self.EXTENT), rect)
            if problem:
                return problem
        if parameters.get(self.OUTPUT_CRS) not in (None, ""):
            if not self.parameterAsCrs(parameters, self.OUTPUT_CRS, context).isValid():
                return crs_problem(parameters.get(self.OUTPUT_CRS))
        return ""


def QgsProject_has_layer(context: QgsProcessingContext, value: str) -> bool:  # noqa: N802 - reads as QGIS API
    """True when ``value`` names a layer of the context's project (by id or name), not a file."""
    project = context.project()
    if project is None:
        return False
    return project.mapLayer(value) is not None or bool(project.mapLayersByName(value))


def gdal_band_count(path: str) -> int | None:
    """Band count of the raster GDAL opens at ``path`` (None if it cannot, -1 if rasterio is missing).

    Reads the header only. Without rasterio nothing is checked here: the run itself then says how
    to install the missing packages, which is what the user must do first.
    """
    try:
        import rasterio
        from rasterio.errors import RasterioError
    except ImportError:
        return -1
    try:
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path) as ds:
            return int(ds.count)
    except (RasterioError, OSError):
        return None


def _is_choice(value: Any, options: list[str]) -> bool:
    """True when an enum parameter value is an index (or the label) of one of ``options``."""
    if isinstance(value, str) and value in options:
        return True
    try:
        index = float(value)
    except (TypeError, ValueError):
        return False
    return index == int(index) and 0 <= int(index) < len(options)


def extent_problem(value: Any, rect: Any) -> str:
    """What is wrong with an EXTENT value ('' when it is an area)."""
    import re

    number = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*"
    text_ok = not isinstance(value, str) or re.fullmatch(rf"{number},{number},{number},{number}(\[[^\]]*\])?\s*",
                                                        value) is not None
    finite = all(map(_finite, (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())))
    if not text_ok or not finite or (rect.isNull() and not isinstance(value, str)):
        return (f"EXTENT: {value!r} is not an extent; give 'xmin,xmax,ymin,ymax [EPSG:code]' (e.g. "
                "'599040,604160,3947840,3952960 [EPSG:32614]') or leave it empty for where the inputs overlap")
    if rect.width() <= 0 or rect.height() <= 0:
        return (f"EXTENT: {value!r} has no area (xmin = xmax or ymin = ymax: a point or a line); give the corners of "
                "an area, or leave it empty for where the inputs overlap")
    return ""


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


def crs_problem(value: Any) -> str:
    """The message for an OUTPUT_CRS that is not a CRS."""
    return (f"OUTPUT_CRS: {value!r} is not a CRS QGIS knows; give a projected CRS in metres such as the area's UTM "
            "zone (e.g. EPSG:32614), or leave it empty for the UTM zone of the extent's centre")


def crs_to_text(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS as the engine takes it: an EPSG id (``EPSG:32630``), else WKT (custom ``USER:`` CRSs)."""
    authid = crs.authid()
    return authid if authid.upper().startswith("EPSG:") else crs.toWkt()
