"""The exceptions of smqgis/core, raised anywhere in the flow from inputs to the written raster.

Every message says what to do next; the Processing side turns them into
``QgsProcessingException`` unchanged, so they are written for the user.
"""

from __future__ import annotations


class SmqgisError(Exception):
    """Base class of all smqgis errors."""


class InputError(SmqgisError):
    """A user input (raster, band mapping, extent, CRS, output path) cannot be used."""


class ModelError(SmqgisError):
    """The ONNX file is corrupt, not an smqgis model, or does not match its metadata."""


class InferenceError(SmqgisError):
    """onnxruntime failed while evaluating the model (e.g. out of memory on the device)."""


class Cancelled(SmqgisError):
    """The user cancelled the run; nothing was written."""
