"""The registry of model kinds: what each ``model_kind`` of the metadata is and which module runs it.

QGIS-free. A kind module (imported lazily through :func:`implementation`) defines
``validate_metadata(meta)``, ``open_model(path, provider, threads)`` and its mapping function.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ..errors import ModelError


@dataclass(frozen=True)
class ModelKind:
    """One model kind of the metadata's ``model_kind``."""

    name: str
    title: str
    nominal_resolution_m: float
    module: str
    algorithm_id: str


REGISTRY: dict[str, ModelKind] = {
    k.name: k
    for k in (
        ModelKind("published_tf1_fusion", "Published fusion model (paper 000, authors' TF-1 release), 320 m", 320.0,
                  "smqgis.core.kinds.published", "estimate_sm_published"),
    )
}


def kind_of(meta: dict) -> ModelKind:
    """The registered kind of a model's metadata; raises ModelError naming an unknown kind."""
    name = (meta or {}).get("model_kind")
    if name not in REGISTRY:
        raise ModelError(f"unknown model kind {name!r}; this smqgis knows {sorted(REGISTRY)}; update the plugin")
    return REGISTRY[name]


def implementation(kind: str | ModelKind) -> ModuleType:
    """The module implementing ``kind`` (imported on first use)."""
    entry = kind if isinstance(kind, ModelKind) else REGISTRY[kind]
    return importlib.import_module(entry.module)
