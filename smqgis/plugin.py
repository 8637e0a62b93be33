"""The smqgis plugin object: registers the Processing provider with QGIS.

QGIS (desktop or qgis_process) creates :class:`SmqgisPlugin` through the root
``classFactory``. ``initProcessing`` is what qgis_process calls (it never calls
``initGui``), so the provider is registered there; the desktop calls both. The
plugin adds no GUI of its own yet: the algorithm lives in the Processing Toolbox.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

from . import deps
from .paths import I18N_DIR, ICON_PATH
from .processing.provider import SmqgisProvider

LOGGER = logging.getLogger(__name__)


def tr(text: str) -> str:
    """Translate ``text`` in the plugin's context (``SmqgisPlugin``)."""
    return QCoreApplication.translate("SmqgisPlugin", text)


#: The Plugins-menu entry of smqgis.
MENU = "&smqgis"


def qgis_locale() -> str:
    """The two-letter language QGIS runs in (its locale override, else the system's)."""
    settings = QgsSettings()
    override = settings.value("locale/overrideFlag", False, type=bool)
    locale = str(settings.value("locale/userLocale", "") or "") if override else ""
    if not locale:
        from qgis.PyQt.QtCore import QLocale

        locale = str(settings.value("locale/userLocale", "") or "") or QLocale.system().name()
    return locale[:2]


def install_translator(locale: str | None = None) -> QTranslator | None:
    """Load and install ``i18n/smqgis_<locale>.qm`` for the QGIS locale; None when there is none."""
    locale = locale if locale is not None else qgis_locale()
    qm_path = I18N_DIR / f"smqgis_{locale}.qm"
    if not locale or not qm_path.is_file():
        return None
    translator = QTranslator()
    if not translator.load(str(qm_path)):
        LOGGER.warning("could not load the translation %s", qm_path)
        return None
    QCoreApplication.installTranslator(translator)
    return translator


class SmqgisPlugin:
    """Plugin object; owns the Processing provider while the plugin is loaded."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: SmqgisProvider | None = None
        self.translator: QTranslator | None = None
        self.dock: Any = None
        self.actions: list[Any] = []
        self.translator = install_translator()
        deps.activate(deps.default_target(Path(QgsApplication.qgisSettingsDirPath())))

    def initProcessing(self) -> None:  # noqa: N802 - QGIS plugin API
        """Register the smqgis Processing provider (idempotent)."""
        if self.provider is None:
            provider = SmqgisProvider()
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider
                LOGGER.debug("registered Processing provider %s", provider.id())
            else:  # another smqgis provider is registered (QGIS deleted this one)
                LOGGER.warning("the smqgis Processing provider is already registered")

    def initGui(self) -> None:  # noqa: N802 - QGIS plugin API
        """Desktop start-up: the provider, and the actions that open the panel and the installer."""
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        self.initProcessing()
        if self.iface is None:
            return
        window = self.iface.mainWindow()
        panel = QAction(QIcon(str(ICON_PATH)), tr("Soil moisture panel"), window)
        panel.setObjectName("smqgisShowPanel")
        panel.triggered.connect(self.show_dock)
        install = QAction(tr("Install Python dependencies..."), window)
        install.setObjectName("smqgisInstallDependencies")
        install.triggered.connect(self.show_installer)
        self.iface.addPluginToMenu(MENU, panel)
        self.iface.addPluginToMenu(MENU, install)
        self.iface.addToolBarIcon(panel)
        self.actions = [panel, install]

    def show_dock(self) -> Any:
        """Create the panel on first use and show it; returns it."""
        if self.dock is None:
            from qgis.PyQt.QtCore import Qt

            from .gui.dock import SmqgisDock

            self.dock = SmqgisDock(self.iface, self.iface.mainWindow() if self.iface is not None else None)
            if self.iface is not None:
                self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.show()
        self.dock.raise_()
        return self.dock

    def show_installer(self) -> None:
        """Open the dependency installer (it lists what is missing; nothing happens without a click)."""
        from .gui.deps_dialog import DependencyDialog

        missing = deps.missing_packages()
        DependencyDialog(missing or [], self.iface.mainWindow() if self.iface is not None else None).exec()

    def unload(self) -> None:
        """Remove the provider, the actions and the panel when QGIS unloads or reloads the plugin."""
        for action in self.actions:
            if self.iface is not None:
                self.iface.removePluginMenu(MENU, action)
                self.iface.removeToolBarIcon(action)
        self.actions = []
        if self.dock is not None:
            if self.iface is not None:
                self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
            self.translator = None
