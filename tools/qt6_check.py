"""Qt 6 readiness check of the plugin's Python (a development tool, not packaged).

Runs QGIS's own migration script when it is available (``build/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py``
with its ``enums.json``, from the QGIS repository's ``scripts/pyqt5_to_pyqt6``; it needs
``tokenize-rt``): it must find nothing to change. Without it, applies the script's main rules by
introspection of the installed PyQt5/QGIS: no ``PyQt5`` imports, no ``exec_``, no ``qApp``,
``QVariant.<Type>`` and no unscoped enum values (``Qt.RichText`` must be ``Qt.TextFormat.RichText``).
Prints one line per finding; exit status 1 when there is any.
"""

from __future__ import annotations

import ast
import importlib
import subprocess  # nosec B404
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "build" / "pyqt5_to_pyqt6" / "pyqt5_to_pyqt6.py"
MODULES = ("qgis.PyQt.QtCore", "qgis.PyQt.QtGui", "qgis.PyQt.QtWidgets", "qgis.core", "qgis.gui")


def _namespace() -> dict[str, object]:
    names: dict[str, object] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names.update({k: v for k, v in vars(module).items() if isinstance(v, type)})
    return names


def unscoped_enums(path: Path, names: dict[str, object]) -> list[str]:
    """Findings of the script's rules in one file, as ``path:line: message``."""
    findings = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("PyQt5"):
            findings.append(f"{path}:{node.lineno}: import from {node.module} (use qgis.PyQt)")
        if isinstance(node, ast.Attribute) and node.attr == "exec_":
            findings.append(f"{path}:{node.lineno}: exec_() (use exec())")
        if isinstance(node, ast.Name) and node.id == "qApp":
            findings.append(f"{path}:{node.lineno}: qApp (use QApplication.instance())")
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        if isinstance(parents.get(node), ast.Attribute):
            continue  # Class.Enum.member: node is Class.Enum
        cls = names.get(node.value.id)
        if cls is None:
            continue
        if node.value.id == "QVariant":
            continue  # like the script's default (QGIS 3 compatible) mode: QVariant types are left alone
        value = getattr(cls, node.attr, None)
        enum_type = type(value)
        if value is None or isinstance(value, type) or callable(value) or enum_type in (int, float, str, bool):
            continue
        enum_name = enum_type.__name__
        if getattr(cls, enum_name, None) is enum_type and enum_name != node.attr:
            findings.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr} -> "
                            f"{node.value.id}.{enum_name}.{node.attr}")
    return findings


def main() -> int:
    """Run QGIS's script when present, else the introspection rules, over smqgis/ and __init__.py."""
    targets = [ROOT / "__init__.py", *sorted((ROOT / "smqgis").rglob("*.py"))]
    if SCRIPT.is_file():
        proc = subprocess.run(  # nosec B603
            [sys.executable, str(SCRIPT), str(ROOT / "smqgis")], capture_output=True, text=True, check=False)
        sys.stdout.write(proc.stdout + proc.stderr)
        changes = [line for line in proc.stdout.splitlines() if line.startswith(("+++", "---", "@@"))]
        warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
        return 1 if proc.returncode or changes or warnings else 0
    names = _namespace()
    findings = [f for path in targets for f in unscoped_enums(path, names)]
    for finding in findings:
        sys.stdout.write(finding + "\n")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
