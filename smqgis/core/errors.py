"""The exceptions of smqgis/core, raised anywhere in the flow from inputs to the written raster.

Every message says what to do next; the Processing side turns them into
``QgsProcessingException`` unchanged, so they are written for the user. Which input or
argument is at fault is carried as data, never left in the text to be parsed: ``role`` is
the source key of an input (``"sentinel1"``, ... as in ``sources.SOURCES``) and
``parameter`` the name of the core argument (``"extent"``, ``"dst_crs"``, ``"output_path"``,
``"model"``, ``"mode"``, ``"provider"``); a caller maps them onto its own parameters.
"""

from __future__ import annotations


class SmqgisError(Exception):
    """Base class of all smqgis errors.

    Parameters
    ----------
    message : str
        What went wrong and what to do next, for the user.
    role : str, optional
        Source key of the input at fault (e.g. ``"sentinel1"``).
    parameter : str, optional
        Name of the core argument at fault (e.g. ``"extent"``).
    """

    def __init__(self, message: str, *, role: str | None = None, parameter: str | None = None) -> None:
        super().__init__(message)
        self.role = role
        self.parameter = parameter


class InputError(SmqgisError):
    """A user input (raster, band mapping, extent, CRS, output path) cannot be used."""


class ModelError(SmqgisError):
    """The ONNX file is corrupt, not an smqgis model, or does not match its metadata."""


class InferenceError(SmqgisError):
    """onnxruntime failed while evaluating the model (e.g. out of memory on the device)."""


class Cancelled(SmqgisError):  # noqa: N818 - the user's choice, not an error
    """The user cancelled the run; nothing was written."""


class EarthEngineError(SmqgisError):
    """Earth Engine refused or failed a request; ``reason`` says which case (the message says what to do).

    ``reason`` is one of ``"not_signed_in"``, ``"project"`` (no Cloud project, or one not registered for
    Earth Engine), ``"quota"`` (HTTP 429), ``"no_image"`` (nothing for the date and area), ``"too_large"``
    (a request or a run above the limits), ``"server"`` (5xx after the retries) or ``"other"``.
    """

    def __init__(self, message: str, *, reason: str = "other", role: str | None = None,
                 parameter: str | None = None) -> None:
        super().__init__(message, role=role, parameter=parameter)
        self.reason = reason
