"""The Python packages smqgis needs beyond QGIS, and a safe way to install them (QGIS-free).

onnxruntime, rasterio and earthengine-api are not part of QGIS. This module finds which are
missing (without importing them), and installs pinned versions into a plugin-private folder with
QGIS's own Python, never changing anything QGIS already ships: every installed distribution is
pinned in a constraints file, pip first resolves the plan with ``--dry-run --report``, the plan is
refused when it would change an installed distribution (numpy above all: QGIS builds compiled
against numpy 1 break under numpy 2), and only the packages QGIS lacks are then installed, with
``--no-deps``, so nothing QGIS has is shadowed. Where automatic installation is impossible,
:func:`manual_command` gives the exact command for the user's platform. The plugin's GUI offers
(never forces) the installation; the Processing algorithms report :func:`missing_message`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import subprocess  # nosec B404
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

LOGGER = logging.getLogger(__name__)

#: Pinned versions installed by the plugin (the versions the tests run with, requirements/qgis.txt).
PINNED: dict[str, str] = {
    "onnxruntime": "1.31.1",
    "rasterio": "1.4.4",
    "earthengine-api": "1.7.50",
}
#: The module each distribution provides (what the plugin imports).
IMPORT_NAMES: dict[str, str] = {"onnxruntime": "onnxruntime", "rasterio": "rasterio", "earthengine-api": "ee"}
#: Distributions the map algorithms need; earthengine-api only serves the Earth Engine inputs.
REQUIRED_FOR_MAPS = ("onnxruntime", "rasterio")
#: A PEP 440 version pip accepts in a constraint (distribution packages may carry others).
PEP440_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9.]+)?$", re.IGNORECASE)
#: pip >= 22.2 has ``--dry-run`` and ``--report`` (the plan is checked before anything is written).
MIN_PIP = (22, 2)
#: Seconds one pip call may take before the installer gives up (downloads of onnxruntime ~15 MB).
PIP_TIMEOUT_S = 900


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name (``Earthengine_API`` -> ``earthengine-api``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_packages(names: Iterable[str] = tuple(PINNED)) -> list[str]:
    """The distributions among ``names`` whose module cannot be found (nothing is imported)."""
    missing = []
    for name in names:
        module = IMPORT_NAMES.get(name, name)
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def installed_distributions(paths: list[str] | None = None) -> dict[str, str]:
    """Canonical name -> version of every distribution importable from ``paths`` (default sys.path)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=paths if paths is not None else sys.path):
        name = dist.metadata.get("Name") if dist.metadata else None
        if name and dist.version:
            found.setdefault(canonical(name), dist.version)
    return found


def constraints_text(installed: dict[str, str], exclude: Iterable[str] = ()) -> str:
    """A pip constraints file pinning every distribution of ``installed`` except ``exclude``."""
    skip = {canonical(n) for n in exclude}
    lines = ["# What QGIS's Python already has: pip must not change any of it (written by smqgis.deps)."]
    lines += [
        f"{name}=={version}"
        for name, version in sorted(installed.items())
        if name not in skip and PEP440_VERSION.match(version)  # pip rejects e.g. Debian's "1.2-3" versions
    ]
    return "\n".join(lines) + "\n"


def default_target(base: Path) -> Path:
    """The plugin-private package folder under ``base`` for this Python (``smqgis-packages/py3.11``)."""
    return Path(base) / "smqgis-packages" / f"py{sys.version_info[0]}.{sys.version_info[1]}"


def activate(target: Path) -> bool:
    """Append ``target`` to sys.path (after QGIS's own folders, so QGIS's packages win); True if added."""
    target_str = str(target)
    if Path(target).is_dir() and target_str not in sys.path:
        sys.path.append(target_str)
        importlib.invalidate_caches()
        return True
    return False


def qgis_python() -> Path | None:
    """QGIS's own Python interpreter (inside QGIS ``sys.executable`` is often the QGIS binary)."""
    exe = Path(sys.executable)
    prefix = Path(sys.exec_prefix)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [exe] if exe.name.lower().startswith("python") else []
    if os.name == "nt":
        candidates += [prefix / "python.exe", prefix / "python3.exe"]
    else:
        candidates += [prefix / "bin" / f"python{version}", prefix / "bin" / "python3"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def manual_command(
    packages: Iterable[str],
    python: Path | str | None = None,
    platform: str | None = None,
    pins: dict[str, str] | None = None,
) -> str:
    """The exact command a user runs to install ``packages`` (pinned) without changing numpy.

    ``platform``: ``sys.platform`` by default (``win32`` adds the OSGeo4W Shell advice).
    """
    platform = platform or sys.platform
    pins = {canonical(k): v for k, v in (pins or PINNED).items()}
    python = str(python or qgis_python() or ("python" if platform == "win32" else "python3"))
    numpy = installed_distributions().get("numpy")
    specs = [f"{canonical(p)}=={pins[canonical(p)]}" if canonical(p) in pins else canonical(p) for p in packages]
    if numpy:
        specs.append(f"numpy=={numpy}")
    if platform == "win32":
        quoted = " ".join(f'"{s}"' for s in specs)
        return f'In the OSGeo4W Shell (Start menu, QGIS folder): python -m pip install {quoted}'
    quoted = " ".join(f"'{s}'" for s in specs)
    exe = f'"{python}"' if " " in python else python
    return f"{exe} -m pip install --user {quoted}"


def missing_message(packages: Iterable[str] | None = None) -> str:
    """The message an algorithm raises when packages are missing: what, and how to install them."""
    packages = list(packages) if packages is not None else missing_packages(REQUIRED_FOR_MAPS)
    return (
        f"smqgis needs the Python package(s) {', '.join(packages)}, which QGIS does not ship. Install them "
        f"from the smqgis panel (Plugins > smqgis > Install Python dependencies), or run: "
        f"{manual_command(packages)}"
    )


@dataclass
class InstallResult:
    """What an installation did: ``ok``, the packages installed into ``target``, or why not."""

    ok: bool
    target: Path
    installed: dict[str, str] = field(default_factory=dict)
    already_present: dict[str, str] = field(default_factory=dict)
    message: str = ""
    log: list[str] = field(default_factory=list)


class PlanRefusedError(RuntimeError):
    """pip's plan would change a distribution QGIS already has (numpy, ...)."""


@functools.lru_cache(maxsize=4)
def pip_version(python: Path | str) -> tuple[int, ...]:
    """The version of pip in ``python`` (``()`` if it has none)."""
    proc = subprocess.run(  # nosec B603
        [str(python), "-m", "pip", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    match = re.match(r"pip (\d+)\.(\d+)", proc.stdout)
    return (int(match.group(1)), int(match.group(2))) if proc.returncode == 0 and match else ()


def pip_install_args(
    python: Path | str,
    target: Path,
    requirements: Iterable[str],
    constraints: Path,
    *,
    dry_run_report: Path | None = None,
    no_deps: bool = False,
    index_args: Iterable[str] = (),
) -> list[str]:
    """The pip command line (a list, no shell) for the plan (``dry_run_report``) or the install."""
    args = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "--target", str(target), "--constraint", str(constraints), "--only-binary", ":all:"]
    if dry_run_report is not None:
        args += ["--dry-run", "--ignore-installed", "--report", str(dry_run_report)]
    if no_deps:
        args.append("--no-deps")
    return [*args, *index_args, *requirements]


def check_plan(report: dict, installed: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split pip's ``--report`` plan into (to install, already present); refuse a change to QGIS's packages.

    Raises
    ------
    PlanRefusedError
        If the plan holds a distribution that QGIS's Python has at another version.
    """
    to_install: dict[str, str] = {}
    present: dict[str, str] = {}
    for item in report.get("install", []):
        meta = item.get("metadata", {})
        name, version = canonical(meta.get("name", "")), meta.get("version", "")
        if name in installed:
            if installed[name] != version:
                raise PlanRefusedError(
                    f"pip would install {name} {version} over QGIS's {name} {installed[name]}; refused "
                    "(QGIS's own packages are never changed)"
                )
            present[name] = version
        else:
            to_install[name] = version
    return to_install, present


def install(
    packages: Iterable[str],
    target: Path,
    *,
    python: Path | str | None = None,
    index_args: Iterable[str] = (),
    pins: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    installed: dict[str, str] | None = None,
) -> InstallResult:
    """Install pinned ``packages`` into ``target`` with QGIS's Python, leaving QGIS's packages untouched.

    Steps: constraints pinning every installed distribution; ``pip install --dry-run --report`` to get
    the plan; :func:`check_plan` (refuses any change to an installed distribution); ``pip install
    --no-deps`` of only what QGIS lacks. ``index_args`` go to pip (e.g. ``["--no-index",
    "--find-links", DIR]``); ``pins`` overrides :data:`PINNED`; ``installed`` overrides what counts as
    installed (default: the distributions of this Python). Never raises for a pip failure: the
    result says what happened and the log holds pip's output.
    """
    pins = {canonical(k): v for k, v in (pins or PINNED).items()}
    names = [canonical(p) for p in packages]
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        LOGGER.info("%s", text)
        if log is not None:
            log(text)

    target = Path(target)
    python = python or qgis_python()
    result = InstallResult(ok=False, target=target, log=lines)
    if python is None:
        result.message = f"QGIS's Python interpreter was not found. Install by hand: {manual_command(names, pins=pins)}"
        say(result.message)
        return result
    version = pip_version(python)
    if version < MIN_PIP:
        result.message = (
            f"{python} has no pip >= {'.'.join(map(str, MIN_PIP))} (found {version or 'none'}), which the safe "
            f"installer needs. Install by hand: {manual_command(names, python, pins=pins)}"
        )
        say(result.message)
        return result
    unknown = [n for n in names if n not in pins]
    if unknown:
        result.message = f"no pinned version for {', '.join(unknown)}; known: {', '.join(sorted(pins))}"
        say(result.message)
        return result
    installed = dict(installed if installed is not None else installed_distributions())
    requirements = [f"{n}=={pins[n]}" for n in names]
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smqgis-pip-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(constraints_text(installed, exclude=names), encoding="utf-8")
        report_path = Path(tmp) / "report.json"
        say(f"Planning: {' '.join(requirements)} into {target} with {python} (QGIS's packages pinned)")
        plan_cmd = pip_install_args(python, target, requirements, constraints, dry_run_report=report_path,
                                    index_args=index_args)
        if not _run(plan_cmd, say):
            result.message = (
                "pip found no installation that keeps QGIS's packages (numpy, ...) as they are; nothing was "
                f"installed. See the log, or install by hand: {manual_command(names, python, pins=pins)}"
            )
            say(result.message)
            return result
        report = json.loads(report_path.read_text(encoding="utf-8"))
        try:
            to_install, present = check_plan(report, installed)
        except PlanRefusedError as exc:
            result.message = f"{exc}; nothing was installed."
            say(result.message)
            return result
        result.already_present = present
        if present:
            say("Already in QGIS (kept as they are): " + ", ".join(f"{k} {v}" for k, v in sorted(present.items())))
        if to_install:
            say("Installing: " + ", ".join(f"{k} {v}" for k, v in sorted(to_install.items())))
            specs = [f"{k}=={v}" for k, v in sorted(to_install.items())]
            install_cmd = pip_install_args(python, target, specs, constraints, no_deps=True, index_args=index_args)
            if not _run(install_cmd, say):
                result.message = f"pip failed; see the log. Install by hand: {manual_command(names, python, pins=pins)}"
                say(result.message)
                return result
    result.installed = to_install
    result.ok = True
    activate(target)
    result.message = (
        f"Installed {', '.join(f'{k} {v}' for k, v in sorted(to_install.items())) or 'nothing new'} into {target}. "
        "QGIS's own packages were not changed."
    )
    say(result.message)
    return result


def _run(cmd: list[str], say: Callable[[str], None]) -> bool:
    """Run pip (list arguments, no shell), feeding its output to ``say``; True on success."""
    LOGGER.debug("running %s", cmd)
    try:
        proc = subprocess.run(  # nosec B603
            cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"pip could not run: {exc}")
        return False
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip():
            say(line)
    return proc.returncode == 0
