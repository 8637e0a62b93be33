"""The smqgis Processing provider (id ``smqgis``): lists the plugin's algorithms.

Registered by the plugin's ``initProcessing`` (desktop and qgis_process) or directly
by tests. Algorithms are only declared here; the engine is imported when they run.
"""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..paths import ICON_PATH
from .earth_engine import EeSignInAlgorithm, FetchInputsEeAlgorithm, SoilMoistureMapEeAlgorithm
from .estimate_sm_3km import EstimateSm3kmAlgorithm
from .estimate_sm_320m import EstimateSm320mAlgorithm
from .estimate_sm_published import EstimateSmPublishedAlgorithm
from .ids import PROVIDER_ID
from .import_published_model import ImportPublishedModelAlgorithm
from .validate_insitu import ValidateInsituAlgorithm


class SmqgisProvider(QgsProcessingProvider):
    """Processing provider of smqgis."""

    def id(self) -> str:
        """The provider id (``smqgis``), the prefix of the algorithm ids."""
        return PROVIDER_ID

    def name(self) -> str:
        """The provider's short name."""
        return "smqgis"

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return "smqgis - soil moisture from Earth-observation layers"

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS API
        return str(ICON_PATH)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802 - QGIS API
        """The engine writes GeoTIFF only."""
        return ["tif"]

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        self.addAlgorithm(EstimateSm320mAlgorithm())
        self.addAlgorithm(ImportPublishedModelAlgorithm())
        self.addAlgorithm(EstimateSmPublishedAlgorithm())
        self.addAlgorithm(ValidateInsituAlgorithm())
        self.addAlgorithm(EstimateSm3kmAlgorithm())
        self.addAlgorithm(EeSignInAlgorithm())
        self.addAlgorithm(FetchInputsEeAlgorithm())
        self.addAlgorithm(SoilMoistureMapEeAlgorithm())
