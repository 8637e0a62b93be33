"""Processing algorithms for Earth Engine: ``sign_in_ee``, ``fetch_inputs_ee`` and ``soil_moisture_map_ee``.

The thin QGIS side of :mod:`smqgis.core.earthengine` and :mod:`smqgis.core.ee_maps`: they read
the parameters (extent, dates, model, Cloud project, Sentinel-1 window, parallel requests, size
limit), initialise Earth Engine, and run the core with progress and cancel wired to the
Processing feedback. The Cloud project comes from the PROJECT parameter, else the plugin setting
``smqgis/ee_project`` (the sign-in algorithm stores it), else ``SMQGIS_EE_PROJECT`` /
``EARTHENGINE_PROJECT``, else the Earth Engine command-line tool's credentials file.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..paths import DEMO_MODEL_PATH
from .compat import FILE_BEHAVIOR_FILE, FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER

LOGGER = logging.getLogger(__name__)

#: Plugin setting holding the Cloud project for Earth Engine.
PROJECT_SETTING = "smqgis/ee_project"
#: Sign-in modes offered (None: the library chooses).
AUTH_MODES = (None, "localhost", "notebook", "gcloud")
GIB = 1 << 30


def settings_project() -> str:
    """The Cloud project stored in the plugin's settings ('' when none)."""
    return str(QgsSettings().value(PROJECT_SETTING, "") or "")


def _core_errors() -> tuple[Any, Any]:
    try:
        from ..core.errors import Cancelled, SmqgisError
    except ImportError as exc:  # pragma: no cover - depends on the user's Python
        raise QgsProcessingException(f"smqgis needs numpy, rasterio and earthengine-api in QGIS's Python ({exc}); "
                                     "install them with `python3 -m pip install earthengine-api rasterio`") from None
    return Cancelled, SmqgisError


class _EarthEngineAlgorithm(QgsProcessingAlgorithm):
    """Shared parameters and error handling of the Earth Engine algorithms."""

    EXTENT = "EXTENT"
    MODEL = "MODEL"
    PROJECT = "PROJECT"
    S1_WINDOW_DAYS = "S1_WINDOW_DAYS"
    WORKERS = "WORKERS"
    LIMIT_GIB = "LIMIT_GIB"
    #: Core argument -> Processing parameter, for error messages.
    CORE_PARAMETERS = {"extent": "EXTENT", "project": "PROJECT", "s1_window_days": "S1_WINDOW_DAYS",
                       "datetime": "DATETIME", "dates": "DATES", "model": "MODEL", "output_path": "OUTPUT"}

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def group(self) -> str:
        return self.tr("Earth Engine")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "earth_engine"

    def add_common(self) -> None:
        """Extent, model, project, Sentinel-1 window, workers and size limit."""
        from ..core.ee_fetch import DEFAULT_LIMIT_BYTES, DEFAULT_WORKERS
        from ..core.ee_inputs import DEFAULT_S1_WINDOW_DAYS

        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Area")))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Model (.onnx; empty: the demo model, trained on simulated data)"),
            behavior=FILE_BEHAVIOR_FILE, extension="onnx", optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.PROJECT, self.tr("Google Cloud project registered for Earth Engine (empty: settings, environment "
                                  "or the earthengine tool's)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.S1_WINDOW_DAYS, self.tr("Sentinel-1 window before the date (days)"), NUMBER_DOUBLE,
            defaultValue=DEFAULT_S1_WINDOW_DAYS, minValue=0.01, maxValue=60.0))
        workers = QgsProcessingParameterNumber(self.WORKERS, self.tr("Parallel requests"), NUMBER_INTEGER,
                                               defaultValue=DEFAULT_WORKERS, minValue=1, maxValue=32)
        workers.setFlags(workers.flags() | FLAG_ADVANCED)
        self.addParameter(workers)
        limit = QgsProcessingParameterNumber(self.LIMIT_GIB, self.tr("Refuse downloads above (GiB)"), NUMBER_DOUBLE,
                                             defaultValue=DEFAULT_LIMIT_BYTES / GIB, minValue=0.001)
        limit.setFlags(limit.flags() | FLAG_ADVANCED)
        self.addParameter(limit)

    def extent(self, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[tuple, str]:
        """The EXTENT and its CRS (EPSG id or WKT)."""
        from .estimate_sm_320m import crs_to_text

        rect = self.parameterAsExtent(parameters, self.EXTENT, context)
        if rect.isNull() or rect.isEmpty():
            raise QgsProcessingException("Give an area (EXTENT): draw it or take a layer's extent.")
        crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs_to_text(crs)

    def initialise(self, parameters: dict[str, Any], context: QgsProcessingContext,
                   feedback: QgsProcessingFeedback) -> None:
        """Initialise Earth Engine for the project of PROJECT or the settings."""
        from ..core.earthengine import initialise

        project = self.parameterAsString(parameters, self.PROJECT, context) or settings_project()
        used = initialise(project or None)
        feedback.pushInfo(f"Earth Engine project: {used}")

    def fetch_options(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """workers and limit_bytes for the core."""
        return {"workers": self.parameterAsInt(parameters, self.WORKERS, context),
                "limit_bytes": int(self.parameterAsDouble(parameters, self.LIMIT_GIB, context) * GIB)}

    def message(self, error: Any) -> str:
        """A core error's message with the parameter it names."""
        param = self.CORE_PARAMETERS.get(getattr(error, "parameter", None) or "")
        return f"{error} (parameter {param})" if param else str(error)

    def progress_fn(self, feedback: QgsProcessingFeedback) -> Any:
        last = [""]

        def progress(percent: float, message: str) -> None:
            feedback.setProgress(percent)
            if message and message != last[0]:
                last[0] = message
                feedback.setProgressText(message)

        return progress


class EeSignInAlgorithm(QgsProcessingAlgorithm):
    """Run Earth Engine's own sign-in flow and store the Cloud project in the plugin's settings."""

    AUTH_MODE = "AUTH_MODE"
    FORCE = "FORCE"
    PROJECT = "PROJECT"
    CREDENTIALS = "CREDENTIALS"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self) -> EeSignInAlgorithm:  # noqa: N802 - QGIS API
        return EeSignInAlgorithm()

    def name(self) -> str:
        return "sign_in_ee"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Sign in to Earth Engine")

    def group(self) -> str:
        return self.tr("Earth Engine")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "earth_engine"

    def flags(self) -> Any:
        # the flow may open a browser and wait: keep it on the main thread (QGIS 4 spells the flag in Qgis)
        enum = getattr(Qgis, "ProcessingAlgorithmFlag", None)
        no_threading = enum.NoThreading if enum is not None else QgsProcessingAlgorithm.Flag.FlagNoThreading
        return super().flags() | no_threading

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Signs in to Google Earth Engine with the earthengine-api library's own flow (a browser page, or "
            "gcloud) and stores the credentials where the 'earthengine' command-line tool keeps them. "
            "<b>Cloud project</b>: a Google Cloud project registered for Earth Engine "
            "(https://code.earthengine.google.com/register); it is saved in the plugin's settings and used by "
            "the other Earth Engine algorithms. <b>Mode</b>: how to sign in (automatic, a local browser, a "
            "notebook page, or gcloud). <b>Force</b>: sign in again even if credentials exist. No token is "
            "written to the log.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterString(self.PROJECT, self.tr("Google Cloud project"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.AUTH_MODE, self.tr("Sign-in mode"), options=["automatic", "localhost", "notebook", "gcloud"],
            defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(self.FORCE, self.tr("Sign in again"), defaultValue=False))
        self.addOutput(QgsProcessingOutputFile(self.CREDENTIALS, self.tr("Credentials file")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802 - QGIS API
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        _, smqgis_error = _core_errors()
        from ..core.earthengine import sign_in

        project = self.parameterAsString(parameters, self.PROJECT, context).strip()
        if project:
            QgsSettings().setValue(PROJECT_SETTING, project)
            feedback.pushInfo(f"Cloud project {project} saved in the plugin's settings ({PROJECT_SETTING})")
        try:
            path = sign_in(AUTH_MODES[self.parameterAsEnum(parameters, self.AUTH_MODE, context)],
                           self.parameterAsBool(parameters, self.FORCE, context))
        except smqgis_error as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"Signed in; credentials in {path}")
        return {self.CREDENTIALS: path}


class FetchInputsEeAlgorithm(_EarthEngineAlgorithm):
    """Fetch the model's inputs for an area and a time from Earth Engine."""

    DATETIME = "DATETIME"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    MANIFEST = "MANIFEST"

    def createInstance(self) -> FetchInputsEeAlgorithm:  # noqa: N802 - QGIS API
        return FetchInputsEeAlgorithm()

    def name(self) -> str:
        return "fetch_inputs_ee"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Fetch model inputs from Earth Engine")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Downloads the inputs of a model for an area and a time from Google Earth Engine, joined as in "
            "paper 000 (Table 5): the Sentinel-1 IW scene closest before the time (within the window) is the "
            "anchor; Sentinel-2 (cloud < 30 %, QA60 masked), SMAP and GLDAS are the closest images before it "
            "within 14 days, 3 days and 6 hours; NASADEM and SoilGrids are static. After 2022-08-02 SMAP comes "
            "from its successor SPL4SMGP (m3/m3, harmonised when mapping). Writes one GeoTIFF per input on the "
            "area's UTM zone (10 m, coarse products at their own pixel size) and manifest_ee.json with the "
            "chosen images and their time offsets. A rerun resumes an interrupted download. <b>Date and time</b>: "
            "ISO-8601 UTC, e.g. 2021-06-01T12:00:00Z. Needs a sign-in (Sign in to Earth Engine).")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.add_common()
        self.addParameter(QgsProcessingParameterString(self.DATETIME, self.tr("Date and time (UTC, ISO-8601)")))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputFile(self.MANIFEST, self.tr("Manifest of the chosen images")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802 - QGIS API
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        cancelled, smqgis_error = _core_errors()
        from ..core.ee_inputs import Area, Request
        from ..core.ee_maps import MANIFEST_NAME, _model_sources_and_reach, fetch_inputs

        model = self.parameterAsFile(parameters, self.MODEL, context) or str(DEMO_MODEL_PATH)
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        try:
            extent, crs = self.extent(parameters, context)
            self.initialise(parameters, context, feedback)
            _, keys, reach = _model_sources_and_reach(model)
            request = Request(Area.from_extent(extent, crs, margin_m=reach),
                              self.parameterAsString(parameters, self.DATETIME, context).strip(), source_keys=keys,
                              s1_window_days=self.parameterAsDouble(parameters, self.S1_WINDOW_DAYS, context))
            manifest = fetch_inputs(request, folder, progress=self.progress_fn(feedback),
                                    is_cancelled=feedback.isCanceled, **self.fetch_options(parameters, context))
        except cancelled:
            raise QgsProcessingException("Cancelled; the downloaded chunks stay in the cache and a rerun "
                                         "fetches only the rest.") from None
        except smqgis_error as exc:
            raise QgsProcessingException(self.message(exc)) from None
        for key, img in manifest["images"].items():
            feedback.pushInfo(f"{key}: {img['id']} (offset {img['offset_s']} s from the Sentinel-1 anchor)")
        return {self.OUTPUT_FOLDER: folder, self.MANIFEST: os.path.join(folder, MANIFEST_NAME)}


class SoilMoistureMapEeAlgorithm(_EarthEngineAlgorithm):
    """Fetch from Earth Engine and map soil moisture in one step; several dates make a time series."""

    DATES = "DATES"
    WORK_FOLDER = "WORK_FOLDER"
    OUTPUT = "OUTPUT"

    def createInstance(self) -> SoilMoistureMapEeAlgorithm:  # noqa: N802 - QGIS API
        return SoilMoistureMapEeAlgorithm()

    def name(self) -> str:
        return "soil_moisture_map_ee"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Soil moisture map from Earth Engine")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Fetches the model's inputs from Google Earth Engine (as 'Fetch model inputs from Earth Engine') and "
            "maps soil moisture (m3/m3) with the model in one step. <b>Dates</b>: one ISO-8601 UTC time, or "
            "several separated by commas, e.g. 2020-04-25T06:00Z, 2020-10-10T06:00Z; several dates make one "
            "GeoTIFF with, per date, a band 'soil_moisture <Sentinel-1 time>' (m3/m3) and a band "
            "'input_coverage <time>' (0-1). The chosen images and their offsets are in the EE_SELECTION tag. "
            "<b>Work folder</b>: where inputs and the download cache are kept (empty: a temporary folder).")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.add_common()
        self.addParameter(QgsProcessingParameterString(self.DATES, self.tr("Dates (UTC, ISO-8601, comma-separated)")))
        work = QgsProcessingParameterString(self.WORK_FOLDER, self.tr("Work folder (inputs and cache)"),
                                            optional=True)
        work.setFlags(work.flags() | FLAG_ADVANCED)
        self.addParameter(work)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Soil moisture")))
        self.addOutput(QgsProcessingOutputFolder(self.WORK_FOLDER, self.tr("Work folder")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802 - QGIS API
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        cancelled, smqgis_error = _core_errors()
        from ..core.ee_maps import soil_moisture_map

        model = self.parameterAsFile(parameters, self.MODEL, context) or str(DEMO_MODEL_PATH)
        dates = [d.strip() for d in re.split(r"[,;]", self.parameterAsString(parameters, self.DATES, context))
                 if d.strip()]
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        work = self.parameterAsString(parameters, self.WORK_FOLDER, context) or tempfile.mkdtemp(prefix="smqgis-ee-")
        try:
            extent, crs = self.extent(parameters, context)
            self.initialise(parameters, context, feedback)
            result = soil_moisture_map(model, extent, crs, dates, out, work,
                                       s1_window_days=self.parameterAsDouble(parameters, self.S1_WINDOW_DAYS,
                                                                             context),
                                       progress=self.progress_fn(feedback), is_cancelled=feedback.isCanceled,
                                       **self.fetch_options(parameters, context))
        except cancelled:
            raise QgsProcessingException("Cancelled; no map was written (downloads stay in the cache).") from None
        except smqgis_error as exc:
            raise QgsProcessingException(self.message(exc)) from None
        for d in result["dates"]:
            feedback.pushInfo(f"{d['requested_utc']}: Sentinel-1 anchor {d['anchor_utc']}")
            for w in d["warnings"]:
                feedback.pushWarning(w)
        return {self.OUTPUT: out, self.WORK_FOLDER: work}
