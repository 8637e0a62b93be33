"""Where the plugin's own files are: the one place the plugin folder is worked out.

The repository root is the QGIS plugin folder; this module is ``<plugin>/smqgis/paths.py``.
Pure Python (no qgis), so the core, the Processing side, the demo and the benchmark share it.
"""

from __future__ import annotations

from pathlib import Path

#: The plugin folder (the repository root).
PLUGIN_DIR = Path(__file__).resolve().parents[1]
RESOURCES_DIR = PLUGIN_DIR / "resources"
#: The bundled demo model (trained on simulated data) and the simulated sample scene.
DEMO_MODEL_PATH = RESOURCES_DIR / "models" / "demo_fusion_simulated.onnx"
SAMPLE_DIR = RESOURCES_DIR / "sample"
STYLE_PATH = RESOURCES_DIR / "styles" / "soil_moisture.qml"
ICON_PATH = RESOURCES_DIR / "icons" / "smqgis.svg"
I18N_DIR = PLUGIN_DIR / "i18n"
#: The plugin's metadata.txt (its version).
METADATA_TXT = PLUGIN_DIR / "metadata.txt"
