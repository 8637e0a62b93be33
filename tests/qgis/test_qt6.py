"""QGIS 4 (Qt 6) readiness: QGIS's migration script (when in build/pyqt5_to_pyqt6/) or its rules find nothing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "qt6_check.py"


def test_plugin_needs_no_qt6_change() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, str(TOOL)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_finds_qt5_only_code(tmp_path: Path, qgis_app: object) -> None:
    spec = importlib.util.spec_from_file_location("qt6_check", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bad = tmp_path / "bad.py"
    bad.write_text("from PyQt5.QtCore import Qt\nfrom qgis.gui import QgsFileWidget\n"
                   "a = Qt.RichText\nb = Qt.TextFormat.RichText\nc = QgsFileWidget.SaveFile\nd.exec_()\n")
    findings = [f.split(": ", 1)[1] for f in module.unscoped_enums(bad, module._namespace())]
    assert sorted(findings) == sorted([
        "import from PyQt5.QtCore (use qgis.PyQt)",
        "Qt.RichText -> Qt.TextFormat.RichText",
        "QgsFileWidget.SaveFile -> QgsFileWidget.StorageMode.SaveFile",
        "exec_() (use exec())",
    ])
