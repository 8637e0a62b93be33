"""QGIS entry point of the smqgis plugin (the repository root is the plugin folder).

QGIS imports this package by its folder name and calls :func:`classFactory`. Nothing
heavy is imported here: the plugin object only registers the Processing provider, and
the inference engine (numpy, onnxruntime, rasterio) is imported when an algorithm runs.

SPDX-License-Identifier: GPL-2.0-or-later
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:  # noqa: N802 - name required by QGIS
    """Create the plugin object for the QGIS interface ``iface`` (None in qgis_process)."""
    from .smqgis.plugin import SmqgisPlugin

    return SmqgisPlugin(iface)
