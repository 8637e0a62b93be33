"""Without onnxruntime and rasterio the provider still registers, and a run fails with the installer's message.

A child QGIS process hides the two packages (an import hook, as if QGIS's Python lacked them),
registers the provider and runs the map algorithm on the sample.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys, importlib.abc
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("onnxruntime", "rasterio"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Hide())
sys.path.insert(0, sys.argv[1])
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.initQgis()
sys.path.append(QgsApplication.pkgDataPath() + "/python/plugins")  # QGIS's Processing plugin
from processing.core.Processing import Processing
Processing.initialize()
import processing
from smqgis.processing.provider import SmqgisProvider
provider = SmqgisProvider()
QgsApplication.processingRegistry().addProvider(provider)
print("ALGS", ",".join(sorted(a.id() for a in provider.algorithms())))
sample = sys.argv[1] + "/resources/sample/"
try:
    processing.run("smqgis:estimate_sm_320m", {"SENTINEL1": sample + "sentinel1.tif", "SMAP": sample + "smap.tif",
                   "OUTPUT": sys.argv[2]})
    print("RAN")
except QgsProcessingException as exc:
    print("ERROR", str(exc).replace("\n", " "))
print("LOADED", "onnxruntime" in sys.modules or "rasterio" in sys.modules)
app.exitQgis()
"""


@pytest.mark.slow
def test_algorithms_register_without_the_packages_and_say_how_to_install(tmp_path: Path) -> None:
    script = tmp_path / "nodeps.py"
    script.write_text(SCRIPT)
    out = tmp_path / "sm.tif"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.run([sys.executable, str(script), str(REPO), str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.split(" ")[0] in
                 ("ALGS", "ERROR", "LOADED", "RAN"))
    assert "smqgis:estimate_sm_320m" in lines["ALGS"].split(",")
    assert "RAN" not in lines
    error = lines["ERROR"]
    assert "onnxruntime, rasterio" in error and "Install Python dependencies" in error
    assert "'onnxruntime==1.31.1' 'rasterio==1.4.4'" in error  # the exact manual command
    assert lines["LOADED"] == "False"
    assert not out.exists()
