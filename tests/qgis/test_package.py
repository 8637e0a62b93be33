"""The plugin zip (`make package`): built from git-tracked files, it passes the plugins.qgis.org rules
and QGIS loads the unpacked folder the way the plugin manager installs it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _package_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_plugin", REPO / "tools" / "package_plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["package_plugin"] = module
    spec.loader.exec_module(module)
    return module


pkg = _package_module()


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("packaging needs git and a git checkout")
    return pkg.build_plugin_zip(tmp_path_factory.mktemp("dist"))


def test_zip_passes_the_validator_rules(plugin_zip: Path) -> None:
    meta = pkg.validate_plugin_zip(plugin_zip)
    assert plugin_zip.name == f"smqgis-{meta['version']}.zip"
    assert plugin_zip.stat().st_size <= 25 * 1024 * 1024
    assert meta["qgisMaximumVersion"] == "4.99"
    assert meta["repository"].startswith("https://github.com/")
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert {n.split("/")[0] for n in names} == {"smqgis"}
    # the plugin's own files are in, the development side is out
    for needed in ("smqgis/__init__.py", "smqgis/metadata.txt", "smqgis/LICENSE", "smqgis/smqgis/plugin.py",
                   "smqgis/smqgis/deps.py", "smqgis/smqgis/gui/dock.py", "smqgis/i18n/smqgis_de.qm",
                   "smqgis/resources/models/demo_fusion_simulated.onnx", "smqgis/resources/sample/manifest.json"):
        assert needed in names, needed
    for name in names:
        rel = name.split("/", 1)[1]
        assert not rel.startswith(("training/", "tests/", "docs/", "tools/", ".ci/", "requirements/")), name
        assert rel not in ("Makefile", "pyproject.toml", "pytest.ini", ".gitignore"), name
        assert "__pycache__" not in name and not name.endswith(".pyc")
    # every packaged file is tracked by git (nothing from the work tree's build outputs)
    tracked = set(pkg.tracked_files())
    assert {n.split("/", 1)[1] for n in names} <= tracked


def test_zip_is_reproducible(plugin_zip: Path, tmp_path: Path) -> None:
    again = pkg.build_plugin_zip(tmp_path)
    assert again.read_bytes() == plugin_zip.read_bytes()


def _write_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


GOOD_META = (
    "[general]\nname=x\ndescription=d\nversion=0.1.0\nqgisMinimumVersion=3.22\nauthor=a\nemail=a@b.org\n"
    "about=t\ntracker=https://github.com/o/x/issues\nrepository=https://github.com/o/x\n"
)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"x/__init__.py": "", "x/metadata.txt": GOOD_META, "x/LICENSE": "GPL", "y/a.py": ""}, "one top folder"),
        ({"x/metadata.txt": GOOD_META, "x/LICENSE": "GPL"}, "__init__.py"),
        ({"x/__init__.py": "", "x/metadata.txt": GOOD_META}, "LICENSE"),
        ({"x/__init__.py": "", "x/metadata.txt": GOOD_META, "x/LICENSE": "", "x/__pycache__/a.pyc": ""}, "compiled"),
        ({"x/__init__.py": "", "x/metadata.txt": GOOD_META, "x/LICENSE": "", "x/.git/HEAD": ""}, "version-control"),
        ({"x/__init__.py": "", "x/metadata.txt": GOOD_META.replace("email=a@b.org\n", ""), "x/LICENSE": ""}, "email"),
        ({"x/__init__.py": "", "x/metadata.txt": GOOD_META.replace("https://github.com/o/x\n", "TODO\n"),
          "x/LICENSE": ""}, "real URL"),
        ({"my-plugin/__init__.py": "", "my-plugin/metadata.txt": GOOD_META, "my-plugin/LICENSE": ""}, "package name"),
    ],
)
def test_validator_refuses_each_broken_rule(tmp_path: Path, files: dict[str, str], message: str) -> None:
    bad = _write_zip(tmp_path / "bad.zip", files)
    with pytest.raises(pkg.PackageError, match=message):
        pkg.validate_plugin_zip(bad)
    assert pkg.validate_plugin_zip(_write_zip(tmp_path / "good.zip", {
        "x/__init__.py": "", "x/metadata.txt": GOOD_META, "x/LICENSE": "GPL"}))["name"] == "x"


def test_validator_refuses_an_oversized_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_zip(tmp_path / "big.zip", {"x/__init__.py": "", "x/metadata.txt": GOOD_META, "x/LICENSE": "GPL"})
    monkeypatch.setattr(pkg, "MAX_ZIP_BYTES", path.stat().st_size - 1)
    with pytest.raises(pkg.PackageError, match="at most"):
        pkg.validate_plugin_zip(path)


LOAD_SCRIPT = """
import sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
sys.path.append(QgsApplication.pkgDataPath() + "/python/plugins")  # QGIS's Processing plugin
from processing.core.Processing import Processing
Processing.initialize()
import qgis.utils
sys.path.insert(0, sys.argv[1])
qgis.utils.plugin_paths = [sys.argv[1]]
assert qgis.utils.loadPlugin("smqgis"), "loadPlugin failed"
assert qgis.utils.startProcessingPlugin("smqgis"), "startProcessingPlugin failed"
import smqgis
ids = sorted(a.id() for a in QgsApplication.processingRegistry().algorithms() if a.provider().id() == "smqgis")
from smqgis.smqgis import paths
print("FILE", smqgis.__file__)
print("DEMO", paths.DEMO_MODEL_PATH.is_file())
print("IDS", ",".join(ids))
print("GUI", "smqgis.smqgis.gui.dock" in sys.modules)
qgis.utils.unloadPlugin("smqgis")
app.exitQgis()
"""


@pytest.mark.slow
def test_unpacked_zip_loads_like_qgis_installs_it(plugin_zip: Path, tmp_path: Path) -> None:
    """QGIS's own loader (qgis.utils.loadPlugin) imports the unpacked folder; the provider registers."""
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.run([sys.executable, str(script), str(plugins)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line[:4] in ("FILE", "DEMO", "IDS ", "GUI "))
    assert out["FILE"].startswith(str(plugins / "smqgis")), out
    assert out["DEMO"] == "True"
    assert "smqgis:estimate_sm_320m" in out["IDS"].split(",")
    assert out["GUI"] == "False"  # no GUI module imported at load
