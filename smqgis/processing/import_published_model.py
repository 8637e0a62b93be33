"""Processing algorithm ``smqgis:import_published_model`` - bring the authors' published model into QGIS.

The authors of paper 000 released their trained model as a TF-1 SavedModel zip (see the
google-research ``soil_moisture_retrieval`` README). QGIS cannot run TensorFlow, so this
algorithm hands the zip (or its unpacked folder, or its ``saved_model.pb``) to
``python -m training.import_published`` in a separate **training environment** - a Python
with tensorflow 2.x (tensorflow-cpu 2.21 tested), tf2onnx 1.17, onnx and onnxruntime, run
from the smqgis source folder that holds ``training/`` - which converts it to ONNX and
refuses to write anything unless onnxruntime reproduces the TF-1 session to 1e-4 m3/m3.
The lighter path needs no TensorFlow on this machine: convert elsewhere (any machine or a
notebook with the training environment) and give the resulting ``.onnx`` here; it is
checked the same way a map run would check it.

The verified model is then registered: copied into the smqgis models folder of the QGIS
profile (``<profile>/smqgis/models``, or ``$SMQGIS_MODELS_DIR``), where the map algorithm
``smqgis:estimate_sm_published`` takes it as its default model. Its time per 320 m output
pixel on this machine is measured and reported.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication

from .compat import FILE_BEHAVIOR_FILE, FLAG_ADVANCED

LOGGER = logging.getLogger(__name__)

IMPORT_PUBLISHED_MODEL = "import_published_model"
PLUGIN_DIR = Path(__file__).resolve().parents[2]
#: QSettings key remembering the training environment's Python after a successful conversion.
TRAIN_PYTHON_SETTING = "smqgis/train_python"
#: Longest a conversion may take (s): loading, freezing, converting and 6 parity windows of the real
#: model take a few minutes on a laptop CPU.
CONVERT_TIMEOUT_S = 3600
DEFAULT_NAME = "published_fusion_tf1"
#: TRAINED_ON choices: the authors' release, or a stand-in with random weights (tests), labelled as such.
TRAINED_ON_KINDS = ("ismn", "random")


def models_dir() -> Path:
    """The folder where registered models live: ``$SMQGIS_MODELS_DIR`` or ``<QGIS profile>/smqgis/models``."""
    env = os.environ.get("SMQGIS_MODELS_DIR")
    return Path(env) if env else Path(QgsApplication.qgisSettingsDirPath()) / "smqgis" / "models"


def registered_published_models() -> list[Path]:
    """Registered ``published_tf1_fusion`` models, newest first (by the registry file the import writes)."""
    folder = models_dir()
    index = folder / "published_models.json"
    try:
        entries = json.loads(index.read_text())
    except (OSError, ValueError):
        return []
    paths = [folder / e["file"] for e in sorted(entries, key=lambda e: e.get("registered_utc", ""), reverse=True)]
    return [p for p in paths if p.is_file()]


def default_train_python() -> str:
    """The training environment's Python: ``$SMQGIS_TRAIN_PYTHON``, the remembered one, or ``<plugin>/.venv-train``."""
    for candidate in (os.environ.get("SMQGIS_TRAIN_PYTHON"), QgsSettings().value(TRAIN_PYTHON_SETTING, "", type=str),
                      str(PLUGIN_DIR / ".venv-train" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return ""


class ImportPublishedModelAlgorithm(QgsProcessingAlgorithm):
    """Convert, verify and register the authors' published TF-1 model."""

    INPUT = "INPUT"
    TRAIN_PYTHON = "TRAIN_PYTHON"
    NAME = "NAME"
    TRAINED_ON = "TRAINED_ON"
    OUTPUT = "OUTPUT"
    PARITY = "PARITY_MAX_ABS_DIFF"
    SECONDS_PER_PIXEL = "SECONDS_PER_PIXEL"

    def tr(self, text: str) -> str:
        """Translate ``text`` in the algorithm's context."""
        return QCoreApplication.translate("ImportPublishedModelAlgorithm", text)

    def createInstance(self) -> ImportPublishedModelAlgorithm:  # noqa: N802 - QGIS API
        return ImportPublishedModelAlgorithm()

    def name(self) -> str:
        return IMPORT_PUBLISHED_MODEL

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Import the published model (paper 000, TF-1)")

    def group(self) -> str:
        return self.tr("Models")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "models"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "<p>Converts the soil-moisture model released by the authors of paper 000 (Batchu et al. 2023, "
            "trained on ISMN sensors; test R 0.729) to ONNX, verifies it and registers it for "
            "<i>Soil moisture 320 m with the published model</i>.</p>"
            "<p><b>Published model</b>: the downloaded <i>soil_moisture_model.zip</i> (link in the "
            "google-research <i>soil_moisture_retrieval</i> README), the <i>saved_model.pb</i> of its unpacked "
            "folder, or an .onnx converted before with <i>python -m training.import_published</i>.</p>"
            "<p><b>Training environment Python</b>: converting the zip needs a Python with tensorflow 2.x, "
            "tf2onnx 1.17, onnx and onnxruntime (e.g. smqgis' <i>.venv-train</i>: <i>make venv-train</i>) and "
            "the smqgis source folder with <i>training/</i>. Not needed for an .onnx.</p>"
            "<p>The conversion writes nothing unless onnxruntime reproduces the TensorFlow session to 1e-4 "
            "m3/m3 on random windows. The model is copied into the smqgis models folder of the QGIS profile; "
            "the time per 320 m output pixel measured on this machine is reported (one 5.12 km window per "
            "pixel: the published graph has no fast mode).</p>"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, self.tr("Published model (soil_moisture_model.zip, saved_model.pb or converted .onnx)"),
            behavior=FILE_BEHAVIOR_FILE,
            fileFilter=self.tr("Published model (*.zip saved_model.pb *.onnx);;All files (*)"),
        ))
        self.addParameter(QgsProcessingParameterFile(
            self.TRAIN_PYTHON, self.tr("Training environment Python (tensorflow, tf2onnx; not needed for .onnx)"),
            behavior=FILE_BEHAVIOR_FILE, optional=True, defaultValue=default_train_python() or None,
            # QGIS' default filter, "All files (*.*)", refuses a name without a dot (bin/python)
            fileFilter=self.tr("Python executable (python* *.exe);;All files (*)"),
        ))
        self.addParameter(QgsProcessingParameterString(
            self.NAME, self.tr("Name of the registered model (file name, no extension)"), defaultValue=DEFAULT_NAME,
        ))
        trained_on = QgsProcessingParameterEnum(
            self.TRAINED_ON, self.tr("What the weights are (labels the model)"),
            options=[self.tr("the authors' release, trained on ISMN sensors"),
                     self.tr("a test stand-in with random weights")], defaultValue=0)
        trained_on.setFlags(trained_on.flags() | FLAG_ADVANCED)
        self.addParameter(trained_on)
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT, self.tr("Registered model")))
        self.addOutput(QgsProcessingOutputString(self.PARITY, self.tr("Parity max |TF-1 - ONNX| (m3/m3)")))
        self.addOutput(QgsProcessingOutputNumber(self.SECONDS_PER_PIXEL, self.tr("Seconds per 320 m output pixel")))

    def processAlgorithm(  # noqa: N802 - QGIS API
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        source = Path(self.parameterAsFile(parameters, self.INPUT, context) or "")
        if not str(source) or not source.exists():
            raise QgsProcessingException(
                f"INPUT {source} does not exist: choose the downloaded soil_moisture_model.zip, the saved_model.pb "
                "of its unpacked folder, or a converted .onnx.")
        name = self.parameterAsString(parameters, self.NAME, context).strip() or DEFAULT_NAME
        if not name.replace("_", "").replace("-", "").isalnum():
            raise QgsProcessingException(f"NAME {name!r} may only hold letters, digits, '_' and '-'.")
        with tempfile.TemporaryDirectory(prefix="smqgis-import-") as work:
            if source.suffix.lower() == ".onnx":
                converted = source
                feedback.pushInfo(f"{source.name} is already ONNX: checking it (no TensorFlow needed).")
            else:
                converted = self._convert(source, Path(work), parameters, context, feedback)
            if feedback.isCanceled():
                raise QgsProcessingException("Cancelled by the user; nothing was registered.")
            model = self._verify(converted)
            feedback.pushInfo(f"Model: {model.metadata['title']} - {model.label} (kind {model.metadata['model_kind']})")
            pub = model.metadata["published"]
            parity = pub.get("parity_max_abs_diff_m3m3", {})
            feedback.pushInfo(f"Parity max |TF-1 - ONNX| (m3/m3): {json.dumps(parity, sort_keys=True)}; batch "
                              f"{'dynamic' if model.batch_dynamic else '1'} ({pub.get('batch_note', '')})")
            feedback.pushInfo(f"Fast mode: {pub.get('graph', {}).get('why', 'not analysed')}")
            seconds = model.seconds_per_window()
            feedback.pushInfo(
                f"Time per 320 m output pixel on this machine ({model.provider}): {seconds:.3g} s; a 10 x 10 km map "
                f"(~{int((10000 / 320) ** 2)} pixels) takes about {(10000 / 320) ** 2 * seconds / 60:.1f} min.")
            target = self._register(converted, name, model.metadata)
        feedback.pushInfo(f"Registered {target}: Soil moisture 320 m with the published model now uses it by default.")
        return {self.OUTPUT: str(target), self.PARITY: json.dumps(parity, sort_keys=True),
                self.SECONDS_PER_PIXEL: seconds}

    # -- steps ------------------------------------------------------------------------
    def _convert(self, source: Path, work: Path, parameters: dict[str, Any], context: QgsProcessingContext,
                 feedback: QgsProcessingFeedback) -> Path:
        """Run ``python -m training.import_published`` in the training environment; return the .onnx."""
        python = self.parameterAsFile(parameters, self.TRAIN_PYTHON, context) or default_train_python()
        if not python or not Path(python).is_file():
            raise QgsProcessingException(
                "TRAIN_PYTHON is not set: converting the TF-1 zip needs a Python with tensorflow 2.x, tf2onnx 1.17, "
                "onnx and onnxruntime (smqgis' `make venv-train` makes one). Or convert it elsewhere with "
                "`python -m training.import_published soil_moisture_model.zip --out published.onnx` and give the "
                ".onnx as INPUT.")
        if not (PLUGIN_DIR / "training" / "import_published.py").is_file():
            raise QgsProcessingException(
                f"{PLUGIN_DIR} has no training/ folder (an installed plugin ships without it): run "
                "`python -m training.import_published` from a smqgis source checkout and give the .onnx as INPUT.")
        out, report = work / "published.onnx", work / "report.json"
        trained_on = TRAINED_ON_KINDS[self.parameterAsEnum(parameters, self.TRAINED_ON, context)]
        cmd = [python, "-m", "training.import_published", str(source), "--out", str(out), "--json", str(report),
               "--trained-on", trained_on]
        env = {**os.environ, "PYTHONPATH": str(PLUGIN_DIR), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
        feedback.pushInfo(f"Converting with {python} (training environment) ...")
        LOGGER.info("running %s", cmd)
        try:
            proc = subprocess.Popen(cmd, cwd=str(PLUGIN_DIR), env=env, stdout=subprocess.PIPE,  # noqa: S603
                                    stderr=subprocess.STDOUT, text=True)
        except OSError as exc:
            raise QgsProcessingException(f"TRAIN_PYTHON {python} cannot be started ({exc}); choose a Python "
                                         "executable of the training environment.") from None
        lines: list[str] = []
        start = time.monotonic()
        assert proc.stdout is not None
        for line in proc.stdout:  # the importer logs one line per step; relay the meaningful ones
            lines.append(line.rstrip())
            if " training.import_published: " in line or "__main__:" in line:
                feedback.pushInfo(line.rstrip().split(": ", 1)[-1])
            if feedback.isCanceled() or time.monotonic() - start > CONVERT_TIMEOUT_S:
                proc.kill()
                proc.wait()
                raise QgsProcessingException("Conversion cancelled (or over the time limit); nothing was registered.")
        rc = proc.wait()
        if rc != 0 or not out.is_file():
            tail = "\n".join(lines[-8:])
            if "No module named" in tail:
                tail += ("\nTRAIN_PYTHON lacks a package: it needs tensorflow 2.x, tf2onnx 1.17, onnx and onnxruntime "
                         "(requirements/train.txt).")
            raise QgsProcessingException(f"The conversion failed (exit code {rc}); nothing was registered:\n{tail}")
        QgsSettings().setValue(TRAIN_PYTHON_SETTING, python)
        return out

    def _verify(self, path: Path) -> Any:
        """Open the .onnx as a ``published_tf1_fusion`` model (metadata and graph checked), on the CPU."""
        try:
            from ..core.errors import SmqgisError
            from ..core.kinds.published import open_model
        except ImportError as exc:
            from ..deps import missing_message

            raise QgsProcessingException(f"{missing_message(['onnxruntime'])} ({exc})") from None
        try:
            return open_model(str(path), provider="cpu")
        except SmqgisError as exc:
            raise QgsProcessingException(f"INPUT is not a usable published model: {exc}") from None

    def _register(self, converted: Path, name: str, meta: dict[str, Any]) -> Path:
        """Copy the model into the models folder (atomically) and record it in ``published_models.json``."""
        import datetime as dt

        folder = models_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{name}.onnx"
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
            os.close(fd)
            try:
                shutil.copyfile(converted, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            index = folder / "published_models.json"
            try:
                entries = [e for e in json.loads(index.read_text()) if e.get("file") != target.name]
            except (OSError, ValueError):
                entries = []
            entries.append({"file": target.name, "title": meta["title"], "label": meta["label"],
                            "registered_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
            index.write_text(json.dumps(entries, indent=1))
        except OSError as exc:
            raise QgsProcessingException(f"Cannot write to the models folder {folder} ({exc}); set SMQGIS_MODELS_DIR "
                                         "to a writable folder.") from None
        return target

