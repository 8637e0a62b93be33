"""The translatable strings of the plugin's Python code, by Qt context (a development tool, not packaged).

pylupdate cannot read ``tr(f"...")`` nor module-level ``tr`` helpers reliably, so this walks the
source: every ``tr("...")`` / ``self.tr("...")`` call with a literal argument, in the context that
module's ``tr`` uses. ``python tools/i18n_strings.py`` prints them; the translation test checks
that ``i18n/smqgis_de.ts`` translates each one.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_strings(path: Path) -> tuple[str, list[str]]:
    """(Qt context, literal strings passed to tr) of one module; the context is its translate() call's."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r'QCoreApplication\.translate\("(\w+)"', text)
    context = match.group(1) if match else ""
    found: list[str] = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name == "tr" and isinstance(node.args[0].value, str) and node.args[0].value not in found:
            found.append(node.args[0].value)
    return context, found


def all_strings(paths: list[Path] | None = None) -> dict[str, list[str]]:
    """Context -> strings for the plugin's modules (default: smqgis/plugin.py, gui/, processing/)."""
    paths = paths or [ROOT / "smqgis" / "plugin.py", *sorted((ROOT / "smqgis" / "gui").glob("*.py")),
                      *sorted((ROOT / "smqgis" / "processing").glob("*.py"))]
    out: dict[str, list[str]] = {}
    for path in paths:
        context, strings = module_strings(path)
        if context and strings:
            out.setdefault(context, []).extend(s for s in strings if s not in out.get(context, []))
    return out


if __name__ == "__main__":
    for ctx, strings in all_strings().items():
        for s in strings:
            sys.stdout.write(f"{ctx}\t{s!r}\n")
