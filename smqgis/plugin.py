"""The smqgis plugin object: registers the Processing provider with QGIS.

QGIS (desktop or qgis_process) creates :class:`SmqgisPlugin` through the root
``classFactory``. ``initProcessing`` is what qgis_process calls (it never calls
``initGui``), so the provider is registered there; the desktop calls both. The
plugin adds no GUI of its own yet: the algorithm lives in the Processing Toolbox.
"""

from __future__ import annotations

import logging
from typing import Any

from qgis.core import QgsApplication, QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

from .paths import I18N_DIR
from .processing.provider import SmqgisProvider

LOGGER = logging.getLogger(__name__)


class SmqgisPlugin:
    """Plugin object; owns the Processing provider while the plugin is loaded."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: SmqgisProvider | None = None
        self.translator: QTranslator | None = None
        locale = str(QgsSettings().value("locale/userLocale", "") or "")[:2]
        qm_path = I18N_DIR / f"smqgis_{locale}.qm"
        if locale and qm_path.is_file():
            self.translator = QTranslator()
            if self.translator.load(str(qm_path)):
                QCoreApplication.installTranslator(self.translator)

    def initProcessing(self) -> None:  # noqa: N802 - QGIS plugin API
        """Register the smqgis Processing provider (idempotent)."""
        if self.provider is None:
            self.provider = SmqgisProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)
            LOGGER.debug("registered Processing provider %s", self.provider.id())

    def initGui(self) -> None:  # noqa: N802 - QGIS plugin API
        """Desktop start-up: only the provider (the algorithm is in the Processing Toolbox)."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider when QGIS unloads or reloads the plugin."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
            self.translator = None
