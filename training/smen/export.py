"""Export SMEN to ONNX with the smqgis metadata, after a TF vs onnxruntime parity check.

The last step of training/smen: a Keras SMEN (restored from a ``training.smen.train``
model directory, or randomly initialised for tests) becomes one ONNX graph (tf2onnx,
opset 17) with the inputs ``low_res`` [N, H, W, 1] and ``history_low_res`` /
``history_high_res`` [N, k, H, W] (0-255 encoded soil moisture; dynamic N, H, W) and
the output ``soil_moisture`` [N, H, W, 1] in m3/m3, *not* clipped: the uRMSE loss is blind to a
constant offset, so the caller first anchors the map's level (``smen.anchor``) and then clips
to the metadata's ``valid_range`` - clipping in the graph would cut off dry pixels before that. The metadata
(``smqgis.core.kinds.smen.build_metadata``: model kind ``smen_3km``, EASE-Grid 2.0
grid, k, units, what it was trained on) goes into ``metadata_props``. Before anything
is written, TF and onnxruntime run the graph on random soil-moisture inputs of an odd
size; a max |diff| above 1e-4 m3/m3 raises and leaves no file (temporary name + rename).

Command line::

    python -m training.smen.export --model-dir build/smen/run --out model.onnx \
        --title "..." --trained-on simulated --trained-on-description "..."
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
from smqgis.core.kinds import smen as smen_kind

from .config import SmenConfig
from .model import CURRENT, HISTORY_HIGH, HISTORY_LOW, OUTPUT, build_model

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4  # m3/m3, max |TF - onnxruntime|
#: Parity inputs: 2 images of 37 x 53 px (odd sizes, not multiples of anything) at 3 km.
PARITY_SHAPE = (2, 37, 53)


class ParityError(RuntimeError):
    """TF and onnxruntime disagree on the exported graph beyond the tolerance."""


def input_signature(cfg: SmenConfig) -> list[tf.TensorSpec]:
    """The ONNX inputs of the variant, in graph order, with dynamic N, H, W."""
    shapes = {
        CURRENT: [None, None, None, 1],
        HISTORY_LOW: [None, cfg.k, None, None],
        HISTORY_HIGH: [None, cfg.k, None, None],
    }
    return [tf.TensorSpec(shapes[name], tf.float32, name=name) for name in smen_kind.VARIANT_INPUTS[cfg.variant]]


def inference_function(model: Any, cfg: SmenConfig) -> Any:
    """The exported computation: the model in inference mode (m3/m3, unclipped; see the module docstring)."""
    signature = input_signature(cfg)
    names = [s.name for s in signature]

    @tf.function(input_signature=signature)
    def serve(*tensors):
        estimate = model(dict(zip(names, tensors, strict=True)), training=False)
        return {OUTPUT: tf.identity(estimate, name=OUTPUT)}

    return serve


def random_inputs(cfg: SmenConfig, seed: int, shape: tuple[int, int, int] = PARITY_SHAPE) -> dict[str, np.ndarray]:
    """Random encoded soil-moisture inputs (0.02-0.5 m3/m3) of ``shape`` = (N, H, W)."""
    rng = np.random.default_rng(seed)
    n, h, w = shape
    full = {
        CURRENT: rng.uniform(0.02, 0.5, (n, h, w, 1)),
        HISTORY_LOW: rng.uniform(0.02, 0.5, (n, cfg.k, h, w)),
        HISTORY_HIGH: rng.uniform(0.02, 0.5, (n, cfg.k, h, w)),
    }
    return {
        name: (full[name] * smen_kind.ENCODED_PER_M3M3).astype(np.float32)
        for name in smen_kind.VARIANT_INPUTS[cfg.variant]
    }


def parity_check(
    serve: Any, onnx_bytes: bytes, cfg: SmenConfig, *, seed: int, tolerance: float = PARITY_TOLERANCE
) -> float:
    """Max |TF - onnxruntime| (m3/m3) on random inputs; raise ParityError above ``tolerance``."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = random_inputs(cfg, seed)
    expected = serve(*[tf.constant(v) for v in feeds.values()])[OUTPUT].numpy()
    (got,) = session.run([OUTPUT], feeds)
    if got.shape != expected.shape:
        raise ParityError(f"onnxruntime shape {got.shape} != TF shape {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    log.info("parity on %s: max|diff| = %.3g m3/m3", PARITY_SHAPE, diff)
    if not diff <= tolerance:
        raise ParityError(f"TF vs onnxruntime max |diff| {diff:.3g} > {tolerance:g} m3/m3; nothing written")
    return diff


def _rename_io(model_proto: Any, names: dict[str, str]) -> None:
    """Rename graph inputs/outputs (``low_res:0`` -> ``low_res``) everywhere they occur."""
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output):
        if value.name in names:
            value.name = names[value.name]
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def _name_dynamic_dims(model_proto: Any) -> None:
    """Readable names for the dynamic dimensions: N, H, W."""
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        labels = ("N", "T", "H", "W") if len(dims) == 4 and value.name.startswith("history") else ("N", "H", "W", "C")
        for dim, label in zip(dims, labels, strict=False):
            if not dim.dim_value:
                dim.dim_param = label


def export_model(
    model: Any,
    cfg: SmenConfig,
    out_path: str | os.PathLike,
    *,
    title: str,
    trained_on: dict[str, str],
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    description: str = "",
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, Any]:
    """Convert ``model`` to ONNX at ``out_path`` with metadata; return metadata, parity and path.

    Raises :class:`ParityError` (writing nothing) when TF and onnxruntime disagree by more
    than ``tolerance`` m3/m3.
    """
    import onnx
    import tf2onnx

    serve = inference_function(model, cfg)
    signature = input_signature(cfg)
    model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=OPSET)
    renames = {f"{s.name}:0": s.name for s in signature}
    renames.update({o.name: OUTPUT for o in model_proto.graph.output if o.name != OUTPUT})
    _rename_io(model_proto, renames)
    _name_dynamic_dims(model_proto)
    got_inputs = [i.name for i in model_proto.graph.input]
    if got_inputs != [s.name for s in signature]:
        raise RuntimeError(f"exported inputs {got_inputs} != {[s.name for s in signature]}")
    meta = smen_kind.build_metadata(
        variant=cfg.variant,
        k=cfg.k,
        title=title,
        trained_on=trained_on,
        window_px=cfg.patch_px,
        metrics=metrics,
        training={"config": cfg.to_dict(), "opset": OPSET, **(training or {})},
        description=description,
        created_utc=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    for key, value in schema.to_metadata_props(meta).items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value
    model_proto.producer_name = "smqgis"
    onnx.checker.check_model(model_proto)
    onnx_bytes = model_proto.SerializeToString()
    diff = parity_check(serve, onnx_bytes, cfg, seed=seed, tolerance=tolerance)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(onnx_bytes)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; model files are read by QGIS and packaging
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %s (%.0f kB, opset %d)", out_path, len(onnx_bytes) / 1e3, OPSET)
    return {"metadata": meta, "parity_max_abs_diff": diff, "path": str(out_path)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.smen.export", description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", help="a training.smen.train model directory (latest checkpoint)")
    src.add_argument("--random-init", action="store_true", help="export a randomly initialised model (k from --k)")
    parser.add_argument("--k", type=int, default=SmenConfig.k)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", required=True)
    parser.add_argument("--description", default="")
    parser.add_argument("--trained-on", required=True, choices=["simulated", "random", "smap"])
    parser.add_argument("--trained-on-description", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import keras

    from .train import read_run, restore_latest

    if args.random_init:
        cfg, metrics = SmenConfig(k=args.k, seed=args.seed), {}
        keras.utils.set_random_seed(args.seed)
        model = build_model(cfg)
    else:
        cfg, metrics = read_run(args.model_dir)
        model = build_model(cfg)
        restore_latest(args.model_dir, model)
    result = export_model(
        model,
        cfg,
        args.out,
        title=args.title,
        description=args.description,
        trained_on={"kind": args.trained_on, "description": args.trained_on_description},
        metrics=metrics,
        seed=args.seed,
    )
    log.info(
        "parity max |diff| %.3g m3/m3; metadata %s",
        result["parity_max_abs_diff"],
        json.dumps(result["metadata"]["smen"]),
    )


if __name__ == "__main__":
    main()
