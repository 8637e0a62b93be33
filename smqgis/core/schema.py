"""The smqgis model-metadata schema: the one contract between training/ and the plugin.

An smqgis ONNX model carries a JSON document under the ``metadata_props`` key
``smqgis`` (plus a few flat keys other tools can read). ``training/export.py``
writes it with :func:`build_metadata` / :func:`to_metadata_props`; ``smqgis/core``
reads it with :func:`from_metadata_props`, and both validate with
:func:`validate`. Pure Python (no numpy, no TF, no qgis).

Schema version 1 (all sizes in pixels of the input's own grid, all lengths in m)::

    {
      "schema": "smqgis-model", "schema_version": 1,
      "model_kind": one of MODEL_KINDS (the kinds of ``kinds.REGISTRY``),
      "variant": one of VARIANTS (fusion) or "smen",
      "title": str, "description": str,
      "trained_on": {"kind": "simulated" | "ismn" | "random", "description": str},
      "label": str,            # shown to users; says "simulated" for simulated data
      "inputs": [              # one per ONNX input, in graph order
        {"name": "high_res" | "low_res" | "coarse", "layout": "NHWC" | "NC",
         "window_px": int (0 for "NC"), "pixel_size_m": float (0 for "NC"),
         "output_stride": int (encoder stride; 0 for "NC"),
         "bands": [{"ref": "sentinel1/VV", "units": "dB",
                    "encoding": {"kind": "linear", "min": -25, "max": 5}}, ...]}
      ],
      "output": {"name": str, "units": "m3/m3", "valid_range": [0.0, 1.0],
                 "quantity": str},
      "nominal_resolution_m": 320.0,
      "fully_convolutional": {"input": "high_res", "stride_px": 32,
                              "window_px": 256, "halo_px": 128} | null,
      "pooling": {"kind": "center_weighted_gaussian", "sigma_cells": float},
      "metrics": {...} | {},
      "training": {...} | {},
      "created_utc": str, "producer": str,
      "precision": one of PRECISIONS     # optional (added later): absent = "float32"
      "quantization": {...}              # optional: how an int8 model was made (training/quantize.py)
    }

How the graph is called (both modes are the same graph; see training/model.py):
``high_res`` is [N, H, W, C] with H, W >= window_px and multiples of the
output stride; the graph pools the encoder features with the centre-weighted
kernel as a valid convolution, giving ``P = N * (H/s - k + 1) * (W/s - k + 1)``
output pixels (k = window_px / s), each the estimate for the window whose
top-left is at feature cell (i, j). ``low_res`` is [P, 16, 16, C_low] and
``coarse`` is [P, C_coarse], one row per output pixel in row-major order;
the output is [P, 1]. With H = W = window_px that is the paper's per-window
model with batch N (exact mode); with one large tile it is the fast mode.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_NAME = "smqgis-model"
SCHEMA_VERSION = 1
METADATA_KEY = "smqgis"

#: The kinds of model this schema describes: the keys of ``kinds.REGISTRY``, in its order (a test checks it).
MODEL_KINDS = ("fusion_320m", "published_tf1_fusion", "smen_3km")
INPUT_NAMES = ("high_res", "low_res", "coarse")
OUTPUT_NAME = "soil_moisture"
#: The two ways of calling the graph (see above): fast (fully-convolutional, the default) and exact.
INFERENCE_MODES = ("fast", "exact")
#: onnxruntime execution providers a caller may ask for ("auto": CUDA when available, else CPU).
EXECUTION_PROVIDERS = ("auto", "cpu", "cuda")
#: Numeric precision of a model's weights and activations (metadata ``precision``; absent = the first).
PRECISIONS = ("float32", "int8")
DEFAULT_PRECISION = PRECISIONS[0]
SIMULATED_LABEL = "DEMO model trained on simulated data - not for real-world use"

_HR_S1 = ["sentinel1/VV", "sentinel1/VH", "sentinel1/angle"]
_HR_S2 = ["sentinel2/B4", "sentinel2/B3", "sentinel2/B2", "sentinel2/B8", "sentinel2/B11", "sentinel2/B12"]
_DEM = ["dem/elevation"]
_SOIL = ["soilgrids/sand", "soilgrids/silt", "soilgrids/clay", "soilgrids/bdod"]
_COARSE = ["smap/ssm", "gldas/SoilMoi0_10cm_inst"]

#: The input sets of paper 000 (Table 9 ablations and Table 19), by name.
#: High-res band order follows the authors' released model (VV, VH, angle,
#: B4, B3, B2, B8, B11, B12, DEM).
VARIANTS: dict[str, dict[str, list[str]]] = {
    "smap_gldas": {"high_res": [], "low_res": [], "coarse": _COARSE},
    "s1_dem": {"high_res": _HR_S1 + _DEM, "low_res": [], "coarse": []},
    "s1_dem_s2": {"high_res": _HR_S1 + _HR_S2 + _DEM, "low_res": [], "coarse": []},
    "s1_dem_s2_soilgrids": {"high_res": _HR_S1 + _HR_S2 + _DEM, "low_res": _SOIL, "coarse": []},
    "full": {"high_res": _HR_S1 + _HR_S2 + _DEM, "low_res": _SOIL, "coarse": _COARSE},
    "s1_dem_smap": {"high_res": _HR_S1 + _DEM, "low_res": [], "coarse": ["smap/ssm"]},
}

# --- the fusion model's geometry (paper 000 section 3a): the one place these numbers live ----------------
#: Side of a high-res model window (px of 10 m): 2.56 km.
HIGH_RES_WINDOW_PX = 256
#: Pixel size of the high-res inputs (m).
HIGH_RES_PIXEL_SIZE_M = 10.0
#: Encoder output stride of the high-res branch (px): 256 px -> 8 x 8 feature cells of 320 m.
HIGH_RES_OUTPUT_STRIDE = 32
#: Side of a low-res model window (px of 160 m): the same 2.56 km.
LOW_RES_WINDOW_PX = 16
#: Pixel size of the low-res inputs (m).
LOW_RES_PIXEL_SIZE_M = 160.0
#: Encoder output stride of the low-res branch (px): 16 px -> 1 x 1 cell.
LOW_RES_OUTPUT_STRIDE = 16
#: Width of the centre-weighted pooling Gaussian (encoder cells; not in the paper): 640 m at stride 32.
POOLING_SIGMA_CELLS = 2.0

#: Grid of each input role for the fusion model (derived from the geometry above).
ROLE_GRID = {
    "high_res": {"window_px": HIGH_RES_WINDOW_PX, "pixel_size_m": HIGH_RES_PIXEL_SIZE_M, "layout": "NHWC"},
    "low_res": {"window_px": LOW_RES_WINDOW_PX, "pixel_size_m": LOW_RES_PIXEL_SIZE_M, "layout": "NHWC"},
    "coarse": {"window_px": 0, "pixel_size_m": 0.0, "layout": "NC"},
}


class SchemaError(ValueError):
    """The model's metadata is missing or does not follow the smqgis schema."""


def variant_inputs(variant: str) -> dict[str, list[str]]:
    """Band references per input role of a named variant (only non-empty roles)."""
    if variant not in VARIANTS:
        raise SchemaError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return {role: list(refs) for role, refs in VARIANTS[variant].items() if refs}


def build_metadata(
    *,
    variant: str,
    title: str,
    trained_on: dict[str, str],
    window_px: int = HIGH_RES_WINDOW_PX,
    output_stride: int = HIGH_RES_OUTPUT_STRIDE,
    low_res_output_stride: int = LOW_RES_OUTPUT_STRIDE,
    pooling_sigma_cells: float = POOLING_SIGMA_CELLS,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    description: str = "",
    created_utc: str = "",
    producer: str = "smqgis training/export.py",
    encodings: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Assemble the metadata of a fusion-model variant (validated before return).

    Parameters
    ----------
    variant : str
        A key of :data:`VARIANTS`.
    title : str
        The model's title.
    trained_on : dict
        ``{"kind": "simulated" | "ismn" | "random", "description": str}``.
    window_px, output_stride, low_res_output_stride : int
        High-res window side (px), high-res and low-res encoder strides (px); default: the geometry above.
    pooling_sigma_cells : float
        Width of the centre-weighted pooling (encoder cells).
    metrics, training : dict, optional
        Validation metrics and the training configuration, recorded as they are.
    description, created_utc, producer : str
        Free text, creation time (ISO-8601) and the program that made the model.
    encodings : dict, optional
        Encoding per band reference, overriding the sources table's default.

    Returns
    -------
    dict
        The validated metadata.
    """
    from .sources import band_ref  # local: keeps module import trivial

    encodings = encodings or {}
    inputs = []
    for role, refs in variant_inputs(variant).items():
        grid = {**ROLE_GRID[role], "window_px": window_px} if role == "high_res" else ROLE_GRID[role]
        bands = []
        for ref in refs:
            _, band = band_ref(ref)
            bands.append({"ref": ref, "units": band.units, "encoding": dict(encodings.get(ref, band.encoding))})
        stride = {"high_res": output_stride, "low_res": low_res_output_stride}.get(role, 0)
        inputs.append({"name": role, **grid, "output_stride": stride, "bands": bands})
    has_hr = any(i["name"] == "high_res" for i in inputs)
    kind = (trained_on or {}).get("kind", "")
    label = SIMULATED_LABEL if kind == "simulated" else title
    meta = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "model_kind": "fusion_320m",
        "variant": variant,
        "title": title,
        "description": description,
        "trained_on": dict(trained_on),
        "label": label,
        "inputs": inputs,
        "output": {
            "name": OUTPUT_NAME,
            "units": "m3/m3",
            "valid_range": [0.0, 1.0],
            "quantity": "volumetric soil moisture, top ~5 cm",
        },
        "nominal_resolution_m": float(HIGH_RES_PIXEL_SIZE_M * output_stride) if has_hr else 0.0,
        "fully_convolutional": (
            {
                "input": "high_res",
                "stride_px": output_stride,
                "window_px": window_px,
                "halo_px": window_px // 2,
            }
            if has_hr
            else None
        ),
        "pooling": {"kind": "center_weighted_gaussian", "sigma_cells": float(pooling_sigma_cells)},
        "metrics": dict(metrics or {}),
        "training": dict(training or {}),
        "created_utc": created_utc,
        "producer": producer,
    }
    validate(meta)
    return meta


def _require(cond: bool, msg: str) -> None:
    """SchemaError(``msg``) unless ``cond``."""
    if not cond:
        raise SchemaError(msg)


def validate(meta: dict[str, Any]) -> dict[str, Any]:
    """Check ``meta`` against schema version 1; return it, or raise SchemaError.

    The generic checks are made here; then the kind's own ``validate_metadata`` (``kinds``) makes its own.
    """
    from .sources import band_ref

    _require(isinstance(meta, dict), "model metadata must be a JSON object")
    _require(meta.get("schema") == SCHEMA_NAME, f"not an smqgis model (schema is {meta.get('schema')!r})")
    version = meta.get("schema_version")
    _require(
        version == SCHEMA_VERSION,
        f"model metadata schema version {version!r} is not supported by this smqgis "
        f"(supports {SCHEMA_VERSION}); update the plugin or re-export the model",
    )
    for key in ("model_kind", "variant", "title", "trained_on", "label", "inputs", "output", "nominal_resolution_m"):
        _require(key in meta, f"model metadata lacks the field {key!r}")
    _require(
        meta["model_kind"] in MODEL_KINDS,
        f"unknown model_kind {meta['model_kind']!r}; this smqgis maps {list(MODEL_KINDS)}: update the plugin",
    )
    _require(isinstance(meta["inputs"], list) and meta["inputs"], "model metadata lists no inputs")
    names = [i.get("name") for i in meta["inputs"]]
    _require(len(set(names)) == len(names), f"duplicate input names {names}")
    for spec in meta["inputs"]:
        name = spec.get("name")
        _require(spec.get("layout") in ("NHWC", "NC", "NTHW"), f"input {name!r}: bad layout {spec.get('layout')!r}")
        _require(isinstance(spec.get("bands"), list) and spec["bands"], f"input {name!r} has no bands")
        if spec["layout"] == "NHWC":
            _require(int(spec.get("window_px", 0)) > 0, f"input {name!r}: window_px must be > 0")
            _require(float(spec.get("pixel_size_m", 0)) > 0, f"input {name!r}: pixel_size_m must be > 0")
        for band in spec["bands"]:
            ref = band.get("ref", "")
            try:
                if meta["model_kind"] != "smen_3km":  # SMEN's grids are not in the sources table: its kind checks them
                    band_ref(ref)
            except KeyError as exc:
                raise SchemaError(f"input {name!r}: {exc.args[0]}") from None
            enc = band.get("encoding", {})
            _require(enc.get("kind") in ("linear", "log_sigmoid"), f"band {ref}: unknown encoding {enc!r}")
            if enc["kind"] == "linear":
                _require(float(enc["max"]) > float(enc["min"]), f"band {ref}: encoding max must exceed min")
            else:
                _require(float(enc["log_std"]) > 0 and float(enc["dn_scale"]) > 0, f"band {ref}: bad log encoding")
    _require(meta.get("precision", DEFAULT_PRECISION) in PRECISIONS,
             f"unknown precision {meta.get('precision')!r}; this smqgis runs {list(PRECISIONS)}: update the plugin")
    out = meta["output"]
    _require(out.get("units") == "m3/m3", f"output units must be m3/m3, got {out.get('units')!r}")
    lo, hi = out.get("valid_range", [None, None])
    _require(lo is not None and hi is not None and float(hi) > float(lo), "output valid_range must be [lo, hi]")
    kind = meta["trained_on"].get("kind")
    if kind == "simulated":
        _require("simulated" in meta["label"].lower(), "a model trained on simulated data must say so in its label")
    from . import kinds  # lazy: the kind modules import this one

    kinds.implementation(meta["model_kind"]).validate_metadata(meta)
    return meta


def to_metadata_props(meta: dict[str, Any]) -> dict[str, str]:
    """The ONNX ``metadata_props`` entries for ``meta`` (validated)."""
    validate(meta)
    return {
        METADATA_KEY: json.dumps(meta, sort_keys=True),
        "smqgis_schema_version": str(SCHEMA_VERSION),
        "model_kind": meta["model_kind"],
        "variant": meta["variant"],
        "label": meta["label"],
        "output_units": meta["output"]["units"],
        "precision": precision_of(meta),
    }


def precision_of(meta: dict[str, Any]) -> str:
    """The model's numeric precision (one of :data:`PRECISIONS`); models written before the field are float32."""
    return str(meta.get("precision", DEFAULT_PRECISION))


def from_metadata_props(props: dict[str, str]) -> dict[str, Any]:
    """Parse and validate the smqgis metadata from ONNX ``metadata_props``."""
    if METADATA_KEY not in props:
        raise SchemaError(
            "this ONNX file carries no smqgis metadata; choose a model exported by "
            "`python -m training.export` (or the bundled demo model)"
        )
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise SchemaError(f"the smqgis metadata is not valid JSON: {exc}") from None
    return validate(meta)


def input_spec(meta: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The spec of input ``name``, or None if the model has no such input."""
    for spec in meta["inputs"]:
        if spec["name"] == name:
            return spec
    return None


def center_weighted_kernel(size_cells: int, sigma_cells: float) -> list[list[float]]:
    """Centre-weighted pooling weights over a ``size x size`` grid of encoder cells.

    ``w[i][j] = exp(-((i - c)^2 + (j - c)^2) / (2 sigma^2))`` with ``c = (size - 1) / 2``,
    normalised to sum to 1, so the peak is at the window centre (the four central
    cells for an even size) and the result is a weighted mean (paper 000, Fig. 9).
    ``sigma_cells = 2`` (640 m at stride 32 on 10 m) puts about half the weight in
    the central 4 x 4 cells of the 8 x 8 grid. Pure Python so both TF and numpy use
    the very same numbers.
    """
    import math

    c = (size_cells - 1) / 2.0
    raw = [
        [math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2.0 * sigma_cells**2)) for j in range(size_cells)]
        for i in range(size_cells)
    ]
    total = sum(sum(row) for row in raw)
    return [[v / total for v in row] for row in raw]
