"""Build the QGIS plugin zip from git-tracked files and check it against the plugins.qgis.org rules.

``python tools/package_plugin.py`` (or ``make package``) writes ``dist/smqgis-<version>.zip``: one
top folder ``smqgis/`` holding the plugin folder (the repository root) as QGIS installs it, without
the training code, the tests, the documentation sources and the development tools. The entries are
written in sorted order with a fixed timestamp, so the same commit gives the same zip.

:func:`validate_plugin_zip` applies the rules of the plugins.qgis.org upload validator
(shared/REFERENCE.md section 7): size, one top folder that is a valid Python identifier,
``__init__.py``, ``metadata.txt`` with every required field and real URLs, a LICENSE, no compiled
Python, ``__pycache__`` or ``.git``. It is pure Python, so the tests run it on the built zip.
This script is a development tool: it is not part of the zip.
"""

from __future__ import annotations

import argparse
import configparser
import logging
import re
import subprocess  # nosec B404
import sys
import zipfile
from pathlib import Path, PurePosixPath

LOGGER = logging.getLogger("smqgis.package")

ROOT = Path(__file__).resolve().parents[1]
#: The plugin's folder name inside the zip (QGIS imports the plugin by this name).
PLUGIN_NAME = "smqgis"
#: plugins.qgis.org refuses uploads larger than 25 MB (its validator's limit, in bytes).
MAX_ZIP_BYTES = 25 * 1024 * 1024
#: Fixed entry timestamp (the zip format's earliest date) so builds are reproducible.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
#: Tracked paths (prefixes) that stay out of the zip: training, tests, docs sources, dev tools and config.
EXCLUDED_PREFIXES = (
    "training/",
    "tests/",
    "docs/",
    "tools/",
    "requirements/",
    ".ci/",
    ".github/",
    "smqgis/bench.py",
    "smqgis/demo.py",
)
EXCLUDED_FILES = {".gitignore", ".gitattributes", "Makefile", "pyproject.toml", "pytest.ini"}
#: Translation sources stay out (QGIS loads the compiled .qm files).
EXCLUDED_SUFFIXES = (".ts", ".pyc", ".pyo")
#: metadata.txt fields the validator requires in [general].
REQUIRED_METADATA = (
    "name",
    "description",
    "version",
    "qgisMinimumVersion",
    "author",
    "email",
    "about",
    "tracker",
    "repository",
)
URL_FIELDS = ("tracker", "repository", "homepage")
LICENSE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING")


class PackageError(ValueError):
    """The plugin zip breaks a rule of the plugins.qgis.org validator."""


def tracked_files(root: Path = ROOT) -> list[str]:
    """The repository's git-tracked files (POSIX paths relative to ``root``), sorted."""
    out = subprocess.run(  # nosec B603 B607
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.decode()
    return sorted(p for p in out.split("\0") if p)


def is_packaged(path: str) -> bool:
    """Whether the tracked file ``path`` goes into the plugin zip."""
    if path in EXCLUDED_FILES or path.endswith(EXCLUDED_SUFFIXES):
        return False
    parts = PurePosixPath(path).parts
    if "__pycache__" in parts or any(p.startswith(".git") for p in parts):
        return False
    return not path.startswith(EXCLUDED_PREFIXES)


def plugin_version(root: Path = ROOT) -> str:
    """The ``version`` of the plugin's metadata.txt."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(root / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"].strip()


def build_plugin_zip(out_dir: Path, root: Path = ROOT) -> Path:
    """Write ``<out_dir>/smqgis-<version>.zip`` from the tracked files of ``root`` and validate it.

    Returns the zip's path. Raises :class:`PackageError` if the result breaks a validator rule
    (the invalid zip is removed).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{PLUGIN_NAME}-{plugin_version(root)}.zip"
    tmp_path = zip_path.with_suffix(".zip.part")
    files = [p for p in tracked_files(root) if is_packaged(p)]
    with zipfile.ZipFile(tmp_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for rel in files:
            src = root / rel
            if not src.is_file():  # deleted in the work tree but still tracked
                continue
            info = zipfile.ZipInfo(f"{PLUGIN_NAME}/{rel}", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, src.read_bytes())
    try:
        validate_plugin_zip(tmp_path)
    except PackageError:
        tmp_path.unlink()
        raise
    tmp_path.replace(zip_path)
    LOGGER.info("wrote %s (%d files, %.2f MB)", zip_path, len(files), zip_path.stat().st_size / 1e6)
    return zip_path


def validate_plugin_zip(zip_path: Path) -> dict[str, str]:
    """Check ``zip_path`` against the plugins.qgis.org validator's rules; return its [general] metadata.

    Raises
    ------
    PackageError
        Naming the first rule the zip breaks.
    """
    size = zip_path.stat().st_size
    if size > MAX_ZIP_BYTES:
        raise PackageError(f"{zip_path.name} is {size} bytes; plugins.qgis.org accepts at most {MAX_ZIP_BYTES}")
    if not zipfile.is_zipfile(zip_path):
        raise PackageError(f"{zip_path} is not a zip file")
    with zipfile.ZipFile(zip_path) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise PackageError(f"corrupt member {bad} in {zip_path.name}")
        names = zf.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1 or any("/" not in n for n in names):
            raise PackageError(f"the zip must hold exactly one top folder, found {sorted(tops)}")
        top = tops.pop()
        if not top.isidentifier():
            raise PackageError(f"top folder {top!r} is not a valid Python package name")
        for name in names:
            parts = PurePosixPath(name).parts
            if name.endswith((".pyc", ".pyo")) or "__pycache__" in parts:
                raise PackageError(f"compiled Python in the zip: {name}")
            if ".git" in parts or "__MACOSX" in parts or any(p.startswith("._") for p in parts):
                raise PackageError(f"version-control or OS metadata in the zip: {name}")
            if any(p in ("..", "") for p in parts) or name.startswith("/"):
                raise PackageError(f"unsafe path in the zip: {name}")
        if f"{top}/__init__.py" not in names:
            raise PackageError(f"{top}/__init__.py is missing")
        if f"{top}/metadata.txt" not in names:
            raise PackageError(f"{top}/metadata.txt is missing")
        if not any(f"{top}/{lic}" in names for lic in LICENSE_NAMES):
            raise PackageError(f"no LICENSE file in {top}/")
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # keep qgisMinimumVersion's case
        try:
            parser.read_string(zf.read(f"{top}/metadata.txt").decode("utf-8"))
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise PackageError(f"metadata.txt cannot be parsed: {exc}") from None
        if not parser.has_section("general"):
            raise PackageError("metadata.txt has no [general] section")
        meta = {k: v.strip() for k, v in parser["general"].items()}
        for field in REQUIRED_METADATA:
            if not meta.get(field):
                raise PackageError(f"metadata.txt: required field {field!r} is missing or empty")
        for field in URL_FIELDS:
            if field in meta and not re.match(r"^https?://[\w.-]+\.[a-z]{2,}(/\S*)?$", meta[field]):
                raise PackageError(f"metadata.txt: {field} is not a real URL: {meta[field]!r}")
        if not re.match(r"^\d+\.\d+(\.\d+)?([-.]?[A-Za-z0-9]+)*$", meta["version"]):
            raise PackageError(f"metadata.txt: version {meta['version']!r} is not a version number")
        for field in ("qgisMinimumVersion", "qgisMaximumVersion"):
            if field in meta and not re.match(r"^\d+\.\d+(\.\d+)?$", meta[field]):
                raise PackageError(f"metadata.txt: {field} {meta[field]!r} is not a QGIS version")
        if "@" not in meta["email"]:
            raise PackageError(f"metadata.txt: email {meta['email']!r} is not an e-mail address")
        if meta.get("icon") and f"{top}/{meta['icon']}" not in names:
            raise PackageError(f"metadata.txt: icon {meta['icon']} is not in the zip")
    return meta


def main(argv: list[str] | None = None) -> int:
    """Command line: build (and validate) the zip, or validate an existing one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--check", type=Path, help="only validate this zip")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.check:
            validate_plugin_zip(args.check)
            LOGGER.info("%s passes the plugins.qgis.org rules", args.check)
        else:
            build_plugin_zip(args.out)
    except PackageError as exc:
        LOGGER.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
