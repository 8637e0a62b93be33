"""The model kinds smqgis knows, one registry entry each (the contract of the kinds issue).

A model's metadata names its ``model_kind``; :func:`kind_of` finds the entry and
:func:`implementation` imports the module that opens, validates and maps with that kind
(lazily, so importing the registry costs nothing). QGIS-free.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import ModelError


@dataclass(frozen=True)
class ModelKind:
    """One model kind: its metadata name, user-facing title, nominal resolution and implementation."""

    name: str
    title: str
    nominal_resolution_m: float
    module: str
    algorithm_id: str


REGISTRY: dict[str, ModelKind] = {
    "fusion_320m": ModelKind(
        "fusion_320m", "Fusion model (paper 000), 320 m", 320.0, "smqgis.core.kinds.fusion", "estimate_sm_320m"
    ),
    "smen_3km": ModelKind(
        "smen_3km", "SMEN downscaling (paper 002), 3 km", 3000.0, "smqgis.core.kinds.smen", "estimate_sm_3km"
    ),
}


def kind_of(meta: dict[str, Any]) -> ModelKind:
    """The registry entry of a model's metadata; ModelError naming an unknown kind."""
    name = meta.get("model_kind")
    if name not in REGISTRY:
        raise ModelError(f"unknown model kind {name!r}; this smqgis knows {sorted(REGISTRY)} - update the plugin")
    return REGISTRY[name]


def implementation(kind: str | ModelKind) -> ModuleType:
    """The module implementing ``kind`` (imported on first use)."""
    entry = kind if isinstance(kind, ModelKind) else REGISTRY[kind]
    return importlib.import_module(entry.module)
