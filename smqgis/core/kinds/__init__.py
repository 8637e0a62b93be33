"""The kinds of model smqgis maps with: one registry entry and one module per kind.

A model's metadata says its ``model_kind``; :func:`kind_of` finds the kind and
:func:`implementation` imports the module that implements it (lazily: registering a
kind imports nothing). Every kind module defines ``validate_metadata(meta)`` (its checks
beyond the generic schema; ``schema.validate`` calls it), ``open_model(path, provider,
threads)`` (a model object with ``.metadata``, ``.label``, ``.provider``) and its main
mapping function, named like its Processing algorithm (``algorithm_id``), which writes a
GeoTIFF atomically with provenance tags. Adding a kind is one module and one line here.
QGIS-free.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import ModelError


@dataclass(frozen=True)
class ModelKind:
    """One kind of model.

    Attributes
    ----------
    name : str
        The metadata's ``model_kind``.
    title : str
        How users see the kind.
    nominal_resolution_m : float
        Pixel size of its maps (m).
    module : str
        Dotted path of the implementing module, imported lazily; relative to this package
        (``".fusion"``), since the package's absolute name depends on how it was imported
        (``smqgis.core.kinds`` from the repository, ``smqgis.smqgis.core.kinds`` as a QGIS plugin).
    algorithm_id : str
        The Processing algorithm (and the module's mapping function) that maps with it.
    """

    name: str
    title: str
    nominal_resolution_m: float
    module: str
    algorithm_id: str


#: One entry per kind, in the order users see them.
REGISTRY: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("fusion_320m", "Fusion model (paper 000), 320 m", 320.0, ".fusion", "estimate_sm_320m"),
        ModelKind("published_tf1_fusion", "Published fusion model (paper 000, authors' TF-1 release), 320 m", 320.0,
                  ".published", "estimate_sm_published"),
        ModelKind("smen_3km", "SMEN downscaling (paper 002), 3 km", 3000.0, ".smen", "estimate_sm_3km"),
    )
}


def kind_of(meta: dict[str, Any]) -> ModelKind:
    """The kind of the model whose metadata is ``meta``.

    Raises
    ------
    ModelError
        Naming the unknown kind and the known ones (``parameter="model"``).
    """
    name = meta.get("model_kind")
    if name not in REGISTRY:
        raise ModelError(f"the model is of the kind {name!r}, which this smqgis cannot map (it maps "
                         f"{list(REGISTRY)}); update the plugin or choose another model", parameter="model")
    return REGISTRY[name]


def implementation(kind: str | ModelKind) -> ModuleType:
    """The module implementing ``kind`` (a name of :data:`REGISTRY` or a :class:`ModelKind`)."""
    if isinstance(kind, str):
        kind = kind_of({"model_kind": kind})
    module = kind.module
    if module.startswith(_ABSOLUTE_PREFIX):  # written as from the repository: resolve against this package
        module = module[len(_ABSOLUTE_PREFIX) - 1:]
    return importlib.import_module(module, __name__)


#: Absolute spelling of this package from the repository root (see ``ModelKind.module``).
_ABSOLUTE_PREFIX = "smqgis.core.kinds."
