"""Write i18n/smqgis_de.ts: the German translation of the panel, the installer dialog, the menu and
the Processing algorithms' names and groups (a development tool; ``lrelease`` compiles it to .qm).

The translations are written here by hand; the test checks that every string of the panel, the
dialog and the menu has one and that the {placeholders} match.
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from i18n_strings import ROOT, all_strings  # noqa: E402

DE: dict[str, dict[str, str]] = {
    "SmqgisDock": {
        "Soil moisture (smqgis)": "Bodenfeuchte (smqgis)",
        "Where and when": "Wo und wann",
        "Full extent of the inputs": "Gesamte Ausdehnung der Eingaben",
        "Map area: the canvas extent, a layer's extent or a rectangle drawn on the map":
            "Kartenbereich: die Ausdehnung der Kartenansicht, eines Layers oder ein auf der Karte gezeichnetes "
            "Rechteck",
        "Area": "Gebiet",
        "Date": "Datum",
        "The bundled sample (simulated)": "Mitgelieferte Beispielszene (simuliert)",
        "My layers": "Meine Layer",
        "Earth Engine": "Earth Engine",
        "Inputs": "Eingaben",
        "Model": "Modell",
        "smqgis ONNX models (*.onnx)": "smqgis-ONNX-Modelle (*.onnx)",
        "Other model file": "Andere Modelldatei",
        "Mode": "Modus",
        "Device": "Gerät",
        "GeoTIFF (*.tif)": "GeoTIFF (*.tif)",
        "Where to write the map; empty: a temporary file":
            "Wohin die Karte geschrieben wird; leer: eine temporäre Datei",
        "Output": "Ausgabe",
        "Run": "Starten",
        "Cancel": "Abbrechen",
        "Value at a click": "Wert per Klick",
        "Click the map to see the soil moisture of the result there":
            "Klicken Sie in die Karte, um dort die Bodenfeuchte des Ergebnisses zu sehen",
        "Ready.": "Bereit.",
        "Kind: {kind}, variant {variant}, {res:g} m": "Art: {kind}, Variante {variant}, {res:g} m",
        "Trained on: {what}": "Trainiert mit: {what}",
        "coming with the Earth Engine algorithms": "kommt mit den Earth-Engine-Algorithmen",
        "Bundled demo model (simulated data)": "Mitgeliefertes Demo-Modell (simulierte Daten)",
        "No model chosen.": "Kein Modell gewählt.",
        "Choose a model.": "Wählen Sie ein Modell.",
        "Cancelling...": "Wird abgebrochen...",
        "Cancelled; no map was written.": "Abgebrochen; es wurde keine Karte geschrieben.",
        "The run failed; see the Processing log (View > Panels > Log Messages).":
            "Der Lauf ist fehlgeschlagen; siehe das Processing-Protokoll (Ansicht > Bedienfelder > "
            "Protokollmeldungen).",
        "Done: {path}": "Fertig: {path}",
        "not stated": "nicht angegeben",
        "Test ({split}): R {r:.3f}, ubRMSE {ubrmse:.3f} m3/m3, {n} sensors":
            "Test ({split}): R {r:.3f}, ubRMSE {ubrmse:.3f} m3/m3, {n} Sensoren",
        "Trained on SIMULATED data: its maps show how the plugin works, they are not measurements of real "
        "soil moisture.":
            "Mit SIMULIERTEN Daten trainiert: Seine Karten zeigen, wie das Plugin arbeitet; sie sind keine "
            "Messungen der echten Bodenfeuchte.",
        "Earth Engine inputs are coming with the Earth Engine algorithms.":
            "Earth-Engine-Eingaben kommen mit den Earth-Engine-Algorithmen.",
        "Running {id}...": "{id} läuft...",
        "Device used: {device}": "Verwendetes Gerät: {device}",
        "Soil moisture {date} - {label}": "Bodenfeuchte {date} - {label}",
        "The map {path} could not be loaded.": "Die Karte {path} konnte nicht geladen werden.",
        "Missing Python packages: {names}": "Fehlende Python-Pakete: {names}",
        "Choose at least one input layer, or use the bundled sample.":
            "Wählen Sie mindestens einen Eingabe-Layer oder verwenden Sie die mitgelieferte Beispielszene.",
        "The algorithm {id} is not registered.": "Der Algorithmus {id} ist nicht registriert.",
        "No soil moisture at ({x:.1f}, {y:.1f})": "Keine Bodenfeuchte bei ({x:.1f}, {y:.1f})",
        "Soil moisture at ({x:.1f}, {y:.1f}): {v:.3f} m3/m3": "Bodenfeuchte bei ({x:.1f}, {y:.1f}): {v:.3f} m3/m3",
        "fast (fully convolutional)": "schnell (vollständig faltend)",
        "exact (window per pixel)": "exakt (ein Fenster pro Pixel)",
        "automatic (GPU if available)": "automatisch (GPU, falls vorhanden)",
        "CPU": "CPU",
        "Published model: {name}": "Veröffentlichtes Modell: {name}",
        "The sample has the dates {dates}; choose one of them.":
            "Die Beispielszene hat die Daten {dates}; wählen Sie eines davon.",
    },
    "DependencyDialog": {
        "smqgis: Python packages": "smqgis: Python-Pakete",
        "Install": "Installieren",
        "Installing...": "Wird installiert...",
        "Installing Python packages for smqgis": "Python-Pakete für smqgis werden installiert",
        "Or install them by hand:": "Oder installieren Sie sie von Hand:",
        "smqgis needs Python packages that QGIS does not ship: {pins}.\nInstall them into a folder of your QGIS "
        "profile ({target})? QGIS's own packages (numpy and the others) are never changed.":
            "smqgis braucht Python-Pakete, die QGIS nicht mitbringt: {pins}.\nSollen sie in einen Ordner Ihres "
            "QGIS-Profils ({target}) installiert werden? Die eigenen Pakete von QGIS (numpy und die anderen) "
            "werden nie verändert.",
        "The installation failed: {error}": "Die Installation ist fehlgeschlagen: {error}",
    },
    "SmqgisPlugin": {
        "Soil moisture panel": "Bodenfeuchte-Bedienfeld",
        "Install Python dependencies...": "Python-Abhängigkeiten installieren...",
    },
    # Processing: the algorithms' names and groups (what the Toolbox lists).
    "EstimateSm320mAlgorithm": {
        "Soil moisture 320 m from layers": "Bodenfeuchte 320 m aus Layern",
        "Soil moisture": "Bodenfeuchte",
    },
    "EstimateSmPublishedAlgorithm": {
        "Soil moisture 320 m with the published model (paper 000)":
            "Bodenfeuchte 320 m mit dem veröffentlichten Modell (Paper 000)",
        "Soil moisture": "Bodenfeuchte",
    },
    "ImportPublishedModelAlgorithm": {
        "Import the published model (paper 000, TF-1)": "Veröffentlichtes Modell importieren (Paper 000, TF-1)",
        "Models": "Modelle",
    },
    "EstimateSm3kmAlgorithm": {
        "Soil moisture 3 km (SMEN)": "Bodenfeuchte 3 km (SMEN)",
        "Soil moisture": "Bodenfeuchte",
    },
    "EeSignInAlgorithm": {
        "Sign in to Earth Engine": "Bei Earth Engine anmelden",
        "Earth Engine": "Earth Engine",
    },
    "FetchInputsEeAlgorithm": {
        "Fetch model inputs from Earth Engine": "Modelleingaben aus Earth Engine laden",
        "Earth Engine": "Earth Engine",
    },
    "SoilMoistureMapEeAlgorithm": {
        "Soil moisture map from Earth Engine": "Bodenfeuchtekarte aus Earth Engine",
        "Earth Engine": "Earth Engine",
    },
    "ValidateInsituAlgorithm": {
        "Validate against in-situ sensors": "Mit In-situ-Sensoren validieren",
        "Soil moisture": "Bodenfeuchte",
    },
}


def write_ts(path: Path) -> None:
    """Write the .ts file (Qt Linguist XML), contexts and messages in a stable order."""
    found = all_strings()
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE TS>", '<TS version="2.1" language="de_DE">']
    for context, messages in DE.items():
        lines += ["<context>", f"    <name>{context}</name>"]
        for source, translation in messages.items():
            kind = "" if source in found.get(context, []) or context.endswith("Algorithm") else ' type="obsolete"'
            lines += ["    <message>", f"        <source>{escape(source)}</source>",
                      f"        <translation{kind}>{escape(translation)}</translation>", "    </message>"]
        lines.append("</context>")
    lines.append("</TS>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_ts(ROOT / "i18n" / "smqgis_de.ts")
