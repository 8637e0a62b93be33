"""Translations: the German .ts covers every string of the panel, the installer and the menu (same
placeholders), the committed .qm is what lrelease makes of it, and QGIS's locale setting loads it."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET  # noqa: N817 - the usual alias
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication

REPO = Path(__file__).resolve().parents[2]
TS = REPO / "i18n" / "smqgis_de.ts"
QM = REPO / "i18n" / "smqgis_de.qm"


def _tool(name: str) -> ModuleType:
    sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ts_messages() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for context in ET.parse(TS).getroot().iter("context"):
        name = context.findtext("name")
        for message in context.iter("message"):
            out.setdefault(name, {})[message.findtext("source")] = message.findtext("translation")
    return out


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"\{[^}]*\}", text))


def test_every_gui_string_is_translated() -> None:
    messages = ts_messages()
    strings = _tool("i18n_strings").all_strings()
    for context in ("SmqgisDock", "DependencyDialog", "SmqgisPlugin"):
        assert strings[context], context
        for source in strings[context]:
            translation = messages.get(context, {}).get(source)
            assert translation, f"{context}: {source!r} has no German translation"
            assert placeholders(translation) == placeholders(source), source
    # the algorithms' names and groups as the Toolbox lists them
    from smqgis.processing.provider import SmqgisProvider

    provider = SmqgisProvider()
    provider.loadAlgorithms()
    for alg in provider.algorithms():
        context = type(alg).__name__
        for text in (alg.displayName(), alg.group()):
            assert messages.get(context, {}).get(text), f"{context}: {text!r} has no German translation"


def test_committed_qm_is_compiled_from_the_ts(tmp_path: Path) -> None:
    lrelease = shutil.which("lrelease") or shutil.which("lrelease-qt5")
    if lrelease is None:
        pytest.skip("lrelease is not installed (Debian: qttools5-dev-tools)")
    out = tmp_path / "de.qm"
    subprocess.run([lrelease, "-silent", str(TS), "-qm", str(out)], check=True, timeout=60)
    assert out.read_bytes() == QM.read_bytes(), "i18n/smqgis_de.qm is stale: run `make translations`"


@pytest.fixture
def german(qgis_app: Any) -> Any:
    settings = QgsSettings()
    saved = (settings.value("locale/overrideFlag"), settings.value("locale/userLocale"))
    settings.setValue("locale/overrideFlag", True)
    settings.setValue("locale/userLocale", "de_DE")
    yield settings
    settings.setValue("locale/overrideFlag", saved[0] if saved[0] is not None else False)
    settings.setValue("locale/userLocale", saved[1] if saved[1] is not None else "")


def test_the_qgis_locale_loads_the_german_translation(german: Any, qgis_iface: Any) -> None:
    from smqgis.plugin import SmqgisPlugin, qgis_locale

    assert qgis_locale() == "de"
    assert QCoreApplication.translate("SmqgisDock", "Run") == "Run"  # nothing installed yet
    plugin = SmqgisPlugin(qgis_iface)
    try:
        assert plugin.translator is not None and not plugin.translator.isEmpty()
        assert QCoreApplication.translate("SmqgisDock", "Run") == "Starten"
        from smqgis.gui.dock import SmqgisDock
        from smqgis.processing.estimate_sm_320m import EstimateSm320mAlgorithm

        assert EstimateSm320mAlgorithm().displayName() == "Bodenfeuchte 320 m aus Layern"
        dock = SmqgisDock(qgis_iface)
        assert dock.run_button.text() == "Starten" and dock.windowTitle() == "Bodenfeuchte (smqgis)"
        assert "SIMULIERTEN" in dock.model_info.text()
        dock.deleteLater()
    finally:
        plugin.unload()
    assert QCoreApplication.translate("SmqgisDock", "Run") == "Run"  # unload removes it


def test_english_locale_loads_nothing(qgis_app: Any) -> None:
    from smqgis.plugin import install_translator

    assert install_translator("en") is None
    translator = install_translator("de")
    try:
        assert translator is not None
        assert QCoreApplication.translate("SmqgisPlugin", "Soil moisture panel") == "Bodenfeuchte-Bedienfeld"
    finally:
        QCoreApplication.removeTranslator(translator)
