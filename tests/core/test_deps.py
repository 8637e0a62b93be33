"""The dependency installer (smqgis.deps) with real pip, against local wheels in a temporary folder.

No network: pip runs with ``--no-index --find-links`` over wheels made here (tiny pure-Python test
packages, and stand-in numpy wheels at QGIS's numpy version and at 2.0.0). The checks: a package
that needs numpy 2 is refused and nothing is written; the plan pip would have made without the
constraints is refused by the plan check; a package happy with QGIS's numpy is installed alone,
without a copy of numpy in the target.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pytest

from smqgis import deps

NUMPY = numpy.__version__


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel ``name-version`` requiring ``requires``."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: smqgis-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "numpy", NUMPY)
    make_wheel(folder, "numpy", "2.0.0")
    make_wheel(folder, "needsnumpytwo", "1.0", ("numpy>=2",))
    make_wheel(folder, "likesqgisnumpy", "1.0", ("numpy>=1.20",))
    return folder


def index(wheelhouse: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheelhouse)]


@pytest.mark.slow
def test_a_package_that_would_upgrade_numpy_is_refused(wheelhouse: Path, tmp_path: Path) -> None:
    target = tmp_path / "packages"
    lines: list[str] = []
    result = deps.install(["needsnumpytwo"], target, python=sys.executable, index_args=index(wheelhouse),
                          pins={"needsnumpytwo": "1.0"}, log=lines.append)
    assert not result.ok
    assert "keeps QGIS's packages" in result.message and "nothing was installed" in result.message
    assert not any(target.iterdir())  # nothing written
    assert any("numpy" in line for line in lines)  # pip's conflict is in the log
    assert numpy.__version__ == NUMPY


@pytest.mark.slow
def test_without_constraints_the_plan_check_still_refuses(wheelhouse: Path, tmp_path: Path) -> None:
    """Deepness's bug: pip alone plans numpy 2 (--target ignores what is installed); check_plan refuses it."""
    empty = tmp_path / "none.txt"
    empty.write_text("")
    report = tmp_path / "report.json"
    cmd = deps.pip_install_args(sys.executable, tmp_path / "t", ["needsnumpytwo==1.0"], empty,
                                dry_run_report=report, index_args=index(wheelhouse))
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    plan = json.loads(report.read_text())
    assert {(i["metadata"]["name"], i["metadata"]["version"]) for i in plan["install"]} == {
        ("needsnumpytwo", "1.0"), ("numpy", "2.0.0")}
    with pytest.raises(deps.PlanRefusedError, match=rf"numpy 2\.0\.0 over QGIS's numpy {NUMPY}"):
        deps.check_plan(plan, deps.installed_distributions())


@pytest.mark.slow
def test_a_compatible_package_is_installed_alone(wheelhouse: Path, tmp_path: Path) -> None:
    target = tmp_path / "packages"
    result = deps.install(["likesqgisnumpy"], target, python=sys.executable, index_args=index(wheelhouse),
                          pins={"likesqgisnumpy": "1.0"})
    try:
        assert result.ok, result.log
        assert result.installed == {"likesqgisnumpy": "1.0"}
        assert result.already_present == {"numpy": NUMPY}
        assert sorted(p.name for p in target.iterdir()) == ["likesqgisnumpy", "likesqgisnumpy-1.0.dist-info"]
        assert str(target) in sys.path  # activated, after QGIS's own folders
        assert sys.path.index(str(target)) > sys.path.index(str(Path(numpy.__file__).parents[1]))
    finally:
        if str(target) in sys.path:
            sys.path.remove(str(target))


def test_constraints_pin_every_installed_distribution() -> None:
    installed = deps.installed_distributions()
    text = deps.constraints_text(installed, exclude=["onnxruntime"])
    assert f"numpy=={NUMPY}" in text.splitlines()
    assert not any(line.startswith("onnxruntime==") for line in text.splitlines())


def test_missing_packages_and_the_manual_command() -> None:
    assert deps.missing_packages(["onnxruntime", "rasterio"]) == []  # the test environment has them
    assert deps.missing_packages(["nosuchpackage-smqgis"]) == ["nosuchpackage-smqgis"]
    linux = deps.manual_command(["onnxruntime", "rasterio"], python="/usr/bin/python3", platform="linux")
    assert linux == f"/usr/bin/python3 -m pip install --user 'onnxruntime==1.31.1' 'rasterio==1.4.4' 'numpy=={NUMPY}'"
    windows = deps.manual_command(["earthengine-api"], platform="win32")
    assert windows.startswith("In the OSGeo4W Shell") and '"earthengine-api==1.7.50"' in windows
    assert "Install Python dependencies" in deps.missing_message(["rasterio"])


def test_pins_match_the_requirements_file() -> None:
    req = (Path(__file__).resolve().parents[2] / "requirements" / "qgis.txt").read_text()
    for name, version in deps.PINNED.items():
        assert f"{name}=={version}" in req.splitlines()
