"""The smqgis Processing provider (id ``smqgis``): lists the plugin's algorithms.

Registered by the plugin's ``initProcessing`` (desktop and qgis_process) or directly
by tests. Algorithms are only declared here; the engine is imported when they run.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .estimate_sm_320m import EstimateSm320mAlgorithm
from .estimate_sm_3km import EstimateSm3kmAlgorithm
from .ids import PROVIDER_ID

#: The plugin folder (the repository root): smqgis/processing/provider.py -> ../../
PLUGIN_DIR = Path(__file__).resolve().parents[2]
ICON_PATH = PLUGIN_DIR / "resources" / "icons" / "smqgis.svg"


class SmqgisProvider(QgsProcessingProvider):
    """Processing provider of smqgis."""

    def id(self) -> str:  # noqa: A003 - QGIS API
        return PROVIDER_ID

    def name(self) -> str:
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
        self.addAlgorithm(EstimateSm3kmAlgorithm())
