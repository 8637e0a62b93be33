"""Export a fusion model to ONNX with the smqgis metadata, after a TF vs onnxruntime parity check.

The last step of training/: a Keras model (restored from a ``training.train`` model
directory, or randomly initialised for tests and demos) becomes one ONNX graph
(tf2onnx, opset 17) whose named inputs are the variant's roles (``high_res``
[N, H, W, C] with dynamic N, H, W; ``low_res`` [P, 16, 16, C]; ``coarse`` [P, K]) and
whose output ``soil_moisture`` [P, 1] is clipped to the valid range [0, 1] m3/m3.
The metadata of ``smqgis.core.schema`` goes into ``metadata_props``. Before anything is
written the graph is run in both modes of the schema - N windows of 256 px, and one
tile whose P = (H/32 - 7) * (W/32 - 7) - by TF and by onnxruntime; a max |diff| above
the tolerance raises and leaves no file behind (the file is written to a temporary
name and renamed on success).

Command line::

    python -m training.export --random-init --config small --variant full --seed 0 \
        --out build/models/small_full_random.onnx --title "..." --trained-on random
    python -m training.export --model-dir runs/x --out model.onnx --title "..." \
        --trained-on simulated --trained-on-description "..." [--metrics-json FILE] [--int8]

``--int8`` also writes an int8 copy beside ``--out`` (``<stem>_int8.onnx``, metadata ``precision``
"int8"): static quantization calibrated on the sample scene, ``training/quantize.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from smqgis.core import schema

from .config import ModelConfig, get_config
from .model import build_model

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4  # m3/m3, max |TF - onnxruntime|
#: Tile used by the fast-mode parity check: 10 x 12 cells of 32 px -> P = 3 x 5.
PARITY_TILE_HW = (320, 384)


class ParityError(RuntimeError):
    """TF and onnxruntime disagree on the exported graph beyond the tolerance."""


def input_signature(cfg: ModelConfig, variant: str) -> list[tf.TensorSpec]:
    """The ONNX inputs of ``variant`` in schema order, with dynamic N / P, H and W."""
    roles = schema.variant_inputs(variant)
    specs = []
    for role in schema.INPUT_NAMES:
        if role not in roles:
            continue
        channels = len(roles[role])
        if role == "high_res":
            shape = [None, None, None, channels]
        elif role == "low_res":
            shape = [None, cfg.low_res_window_px, cfg.low_res_window_px, channels]
        else:
            shape = [None, channels]
        specs.append(tf.TensorSpec(shape, tf.float32, name=role))
    return specs


def inference_function(model: Any, cfg: ModelConfig, variant: str) -> tf.types.experimental.GenericFunction:
    """The exported computation: the model in inference mode, output clipped to [0, 1] m3/m3."""
    signature = input_signature(cfg, variant)
    names = [s.name for s in signature]

    @tf.function(input_signature=signature)
    def serve(*tensors):
        estimate = model(dict(zip(names, tensors)), training=False)
        return {schema.OUTPUT_NAME: tf.clip_by_value(estimate, 0.0, 1.0, name=schema.OUTPUT_NAME)}

    return serve


def random_inputs(
    cfg: ModelConfig, variant: str, *, windows: int | None, tile_hw: tuple[int, int] | None, seed: int
) -> dict[str, np.ndarray]:
    """Random 0-255 encoded inputs for one call: ``windows`` windows of 256 px, or one tile."""
    rng = np.random.default_rng(seed)
    roles = schema.variant_inputs(variant)
    window = cfg.high_res_window_px
    stride = cfg.high_res_output_stride
    if windows is not None:
        n, (h, w), pixels = windows, (window, window), windows
    else:
        h, w = tile_hw
        cells = window // stride
        n, pixels = 1, (h // stride - cells + 1) * (w // stride - cells + 1)
    out = {}
    for role in schema.INPUT_NAMES:
        if role not in roles:
            continue
        c = len(roles[role])
        shape = {
            "high_res": (n, h, w, c),
            "low_res": (pixels, cfg.low_res_window_px, cfg.low_res_window_px, c),
            "coarse": (pixels, c),
        }[role]
        out[role] = rng.uniform(0.0, 255.0, size=shape).astype(np.float32)
    return out


def parity_check(
    serve: Any, onnx_bytes: bytes, cfg: ModelConfig, variant: str, *, seed: int, tolerance: float = PARITY_TOLERANCE
) -> dict[str, float]:
    """Max |TF - onnxruntime| (m3/m3) on random inputs in both call modes; raise if above ``tolerance``."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    modes = {"windows": {"windows": 2, "tile_hw": None}}
    if "high_res" in schema.variant_inputs(variant):
        modes["tile"] = {"windows": None, "tile_hw": PARITY_TILE_HW}
    diffs: dict[str, float] = {}
    for i, (mode, kwargs) in enumerate(modes.items()):
        feeds = random_inputs(cfg, variant, seed=seed + i, **kwargs)
        expected = serve(*[tf.constant(v) for v in feeds.values()])[schema.OUTPUT_NAME].numpy()
        (got,) = session.run([schema.OUTPUT_NAME], feeds)
        if got.shape != expected.shape:
            raise ParityError(f"{mode}: onnxruntime shape {got.shape} != TF shape {expected.shape}")
        diffs[mode] = float(np.max(np.abs(got - expected)))
        log.info("parity %s: P=%d, max|diff| = %.3g m3/m3", mode, got.shape[0], diffs[mode])
    worst = max(diffs.values())
    if not worst <= tolerance:
        raise ParityError(f"TF vs onnxruntime max |diff| {worst:.3g} > {tolerance:g} ({diffs}); nothing written")
    return diffs


#: Names of the dynamic dimensions in the exported graph (schema docstring).
_DYNAMIC_DIMS = {"high_res": ("N", "H", "W"), "low_res": ("P",), "coarse": ("P",), schema.OUTPUT_NAME: ("P",)}


def _name_dynamic_dims(model_proto: Any) -> None:
    """Give the dynamic dimensions readable names: high_res [N, H, W, C], others [P, ...]."""
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        for dim, label in zip(value.type.tensor_type.shape.dim, _DYNAMIC_DIMS.get(value.name, ())):
            if not dim.dim_value:
                dim.dim_param = label


def _rename_io(model_proto: Any, names: dict[str, str]) -> None:
    """Rename graph inputs/outputs (e.g. ``high_res:0`` -> ``high_res``) everywhere they occur."""
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output):
        if value.name in names:
            value.name = names[value.name]
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def export_model(
    model: Any,
    cfg: ModelConfig,
    variant: str,
    out_path: str | os.PathLike,
    *,
    title: str,
    trained_on: dict[str, str],
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    description: str = "",
    seed: int = 0,
    opset: int = OPSET,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, Any]:
    """Convert ``model`` to ONNX at ``out_path`` with metadata; return the metadata and parity numbers.

    Raises :class:`ParityError` (and writes nothing) when TF and onnxruntime disagree by
    more than ``tolerance`` m3/m3.
    """
    import onnx
    import tf2onnx

    serve = inference_function(model, cfg, variant)
    signature = input_signature(cfg, variant)
    model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=opset)
    renames = {f"{s.name}:0": s.name for s in signature}
    renames.update({o.name: schema.OUTPUT_NAME for o in model_proto.graph.output if o.name != schema.OUTPUT_NAME})
    _rename_io(model_proto, renames)
    _name_dynamic_dims(model_proto)
    got_inputs = [i.name for i in model_proto.graph.input]
    if got_inputs != [s.name for s in signature]:
        raise RuntimeError(f"exported inputs {got_inputs} != {[s.name for s in signature]}")

    meta = schema.build_metadata(
        variant=variant,
        title=title,
        trained_on=trained_on,
        window_px=cfg.high_res_window_px,
        output_stride=cfg.high_res_output_stride,
        low_res_output_stride=cfg.low_res_output_stride,
        pooling_sigma_cells=cfg.pooling_sigma_cells,
        metrics=metrics,
        training={"config": cfg.to_dict(), "opset": opset, **(training or {})},
        description=description,
        created_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    for key, value in schema.to_metadata_props(meta).items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value
    model_proto.producer_name = "smqgis"
    onnx.checker.check_model(model_proto)
    onnx_bytes = model_proto.SerializeToString()

    diffs = parity_check(serve, onnx_bytes, cfg, variant, seed=seed, tolerance=tolerance)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(onnx_bytes)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is meant to be read by others (QGIS, packaging)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %s (%.1f MB, opset %d)", out_path, len(onnx_bytes) / 1e6, opset)
    return {"metadata": meta, "parity_max_abs_diff": diffs, "path": str(out_path)}


def load_trained(model_dir: str | os.PathLike) -> tuple[Any, ModelConfig, str, dict[str, Any]]:
    """Rebuild the model of a ``training.train`` directory from its latest checkpoint.

    Returns (model, config, variant, final validation metrics or {}).
    """
    from .train import read_run, restore_latest

    cfg, variant, metrics = read_run(model_dir)
    model = build_model(cfg, variant)
    restore_latest(model_dir, model)
    return model, cfg, variant, metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", help="a training.train model directory (latest checkpoint)")
    src.add_argument("--random-init", action="store_true", help="export a randomly initialised model")
    parser.add_argument("--config", default="small", help="config name for --random-init (small|paper)")
    parser.add_argument("--variant", default="full", choices=sorted(schema.VARIANTS), help="variant for --random-init")
    parser.add_argument("--seed", type=int, default=0, help="weight-init seed (--random-init) and parity-input seed")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--title", required=True)
    parser.add_argument("--description", default="")
    parser.add_argument("--trained-on", required=True, choices=["simulated", "random", "ismn"])
    parser.add_argument("--trained-on-description", default="")
    parser.add_argument("--metrics-json", help="JSON file of metrics to embed (default: the run's metrics.json)")
    parser.add_argument("--opset", type=int, default=OPSET, choices=[17, 18])
    parser.add_argument("--int8", action="store_true",
                        help="also write an int8 copy (<stem>_int8.onnx beside --out; training/quantize.py)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import keras

    if args.random_init:
        cfg = get_config(args.config).replace(seed=args.seed)
        keras.utils.set_random_seed(args.seed)
        model, variant, metrics = build_model(cfg, args.variant), args.variant, {}
    else:
        model, cfg, variant, metrics = load_trained(args.model_dir)
    if args.metrics_json:
        metrics = json.loads(Path(args.metrics_json).read_text())
    result = export_model(
        model,
        cfg,
        variant,
        args.out,
        title=args.title,
        description=args.description,
        trained_on={"kind": args.trained_on, "description": args.trained_on_description},
        metrics=metrics,
        seed=args.seed,
        opset=args.opset,
    )
    log.info("parity max |diff| (m3/m3): %s", result["parity_max_abs_diff"])
    if args.int8:
        from .quantize import quantize_model

        out = Path(args.out)
        quantize_model(out, out.with_name(f"{out.stem}_int8.onnx"), seed=args.seed)


if __name__ == "__main__":
    main()
