"""Dialog that offers (never forces) to install the Python packages smqgis needs into QGIS.

The user sees what is missing, where it would go (a plugin-private folder in the QGIS profile)
and the exact manual command; nothing happens until they press Install. The installation
(:func:`smqgis.deps.install`: pinned versions, QGIS's packages pinned by constraints, pip's plan
checked) runs as a QgsTask, its log streams into the dialog, and the result is stated plainly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .. import deps

LOGGER = logging.getLogger(__name__)


def tr(text: str) -> str:
    """Translate ``text`` in the dialog's context (``DependencyDialog``)."""
    return QCoreApplication.translate("DependencyDialog", text)


def packages_folder() -> Path:
    """The plugin-private package folder in the active QGIS profile."""
    return deps.default_target(Path(QgsApplication.qgisSettingsDirPath()))


class DependencyDialog(QDialog):
    """Shows the missing packages and installs them on request."""

    logLine = pyqtSignal(str)  # noqa: N815 - Qt signal naming

    def __init__(self, missing: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("smqgis: Python packages"))
        self.missing = list(missing)
        self.target = packages_folder()
        self.result: deps.InstallResult | None = None
        self.task: QgsTask | None = None
        layout = QVBoxLayout(self)
        pins = ", ".join(f"{name} {deps.PINNED.get(name, '')}" for name in self.missing)
        intro = QLabel(tr(
            "smqgis needs Python packages that QGIS does not ship: {pins}.\n"
            "Install them into a folder of your QGIS profile ({target})? QGIS's own packages "
            "(numpy and the others) are never changed.").format(pins=pins, target=self.target), self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addWidget(QLabel(tr("Or install them by hand:"), self))
        self.manual = QPlainTextEdit(deps.manual_command(self.missing), self)
        self.manual.setReadOnly(True)
        self.manual.setMaximumHeight(60)
        layout.addWidget(self.manual)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        layout.addWidget(self.log)
        self.logLine.connect(self.log.appendPlainText)
        self.outcome = QLabel("", self)
        self.outcome.setWordWrap(True)
        layout.addWidget(self.outcome)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.install_button = QPushButton(tr("Install"), self)
        buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.install_button.clicked.connect(self.start_install)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def start_install(self) -> None:
        """Run the installer as a QgsTask (the interface stays responsive)."""
        if self.task is not None:
            return
        self.install_button.setEnabled(False)
        self.outcome.setText(tr("Installing..."))

        def work(_task: QgsTask) -> deps.InstallResult:
            return deps.install(self.missing, self.target, log=self.logLine.emit)

        self.task = QgsTask.fromFunction(tr("Installing Python packages for smqgis"), work,
                                         on_finished=self._done)
        QgsApplication.taskManager().addTask(self.task)

    def _done(self, exception: Any, result: deps.InstallResult | None = None) -> None:
        self.task = None
        self.result = result
        if exception is not None or result is None:
            text = tr("The installation failed: {error}").format(error=exception)
            ok = False
        else:
            text, ok = result.message, result.ok
        self.outcome.setText(text)
        self.outcome.setStyleSheet("" if ok else "color: #c00000")
        self.install_button.setEnabled(not ok)
        LOGGER.info("dependency installation: %s", text)
