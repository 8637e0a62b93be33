"""Static int8 quantization of an exported smqgis model, calibrated on the simulated world.

An option of the export step (``training/export.py --int8`` calls it): the float32 ONNX file
of ``export.py`` becomes a QDQ graph (``onnxruntime.quantization.quantize_static``: uint8
activations, int8 weights per output channel with a 7-bit range) whose activation ranges come from fast-mode
calls on tiles of the bundled sample scene (``resources/sample``, every date of it), read,
warped and encoded by the plugin core exactly as a run would (``smqgis.core.pipeline``), at
tile positions drawn with a fixed seed. Inputs and outputs stay float32, so the plugin runs
the int8 file as any other model. The metadata is the float32 model's with ``precision``
set to ``"int8"``, the quantization settings recorded under ``quantization`` and " (int8)"
appended to the title and label (which users see). No TensorFlow: this also runs in the
plugin's environment.

Only the high-res encoder is quantized (Xception over 10 m blocks: most of the FLOPs of a
fast-mode call). The low-res encoder, the centre-weighted pooling and the fusion heads stay
float32: on the demo model, quantizing the low-res encoder as well made the error larger (mean
|int8 - fp32| per sample date 0.0046-0.0063 instead of 0.0038-0.0053 m3/m3, docs/benchmark.md) for
little speed. onnxruntime's graph optimisations run first (``quant_pre_process``), so the batch-norm
scales and paddings are folded into the convolutions before Q/DQ pairs would keep them apart (int8
kernel time of the demo model 0.68 s -> 0.33 s per 1248 px block; float32 0.80 s). The 7-bit weight
range (``reduce_range``) is onnxruntime's advice for x86 CPUs without VNNI, whose u8 x s8 products
saturate in 16 bits: with 8-bit weights the error tripled (0.011-0.018 m3/m3).

Command line::

    python -m training.quantize build/models/x.onnx --out build/models/x_int8.onnx [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from smqgis.core import schema

log = logging.getLogger(__name__)

#: Output pixels a side of a calibration tile: 8 -> a 480 px high-res block (the sample's map is 16 x 16 px).
CALIBRATION_TILE_PX = 8
#: Calibration tiles drawn per date of the sample scene (3 dates -> 12 fast-mode calls).
CALIBRATION_TILES_PER_DATE = 4
#: Node types quantized: the convolutions and what lies between them (batch-norm scales, activations,
#: residual sums, padding, layout changes), so that int8 tensors flow from one convolution to the next.
DEFAULT_OP_TYPES = ("Conv", "Mul", "Add", "Relu", "Pad", "Transpose", "Reshape", "Concat", "MatMul")
#: Nodes of the high-res branch kept float32 all the same, by the node names of ``training/model.py`` (tf2onnx
#: keeps them): the centre-weighted pooling and the embedding (a weighted mean and a reshape: no speed to gain).
FLOAT32_NODE_MARKS = ("_pool", "embedding")


def fast_mode_feeds(tile: Any, grid: Any, roles: list[str]) -> dict[str, np.ndarray]:
    """The graph inputs of one fast-mode call on a tile (``tile_inputs.TileInputs``), as ``kinds.fusion`` makes them.

    ``high_res`` is the whole block [1, H, W, C]; ``low_res`` one window per output pixel
    [P, 16, 16, C] and ``coarse`` one row per output pixel [P, K], row-major (``schema.py``).
    """
    nr, nc = tile.nrows, tile.ncols
    feeds: dict[str, np.ndarray] = {}
    for role in roles:
        block = tile.arrays[role]
        if role == "high_res":
            feeds[role] = np.ascontiguousarray(block[None], dtype=np.float32)
        elif role == "coarse":
            feeds[role] = np.ascontiguousarray(block.reshape(nr * nc, -1), dtype=np.float32)
        else:
            g = grid.roles[role]
            view = np.lib.stride_tricks.sliding_window_view(block, (g.window_px, g.window_px), axis=(0, 1))
            windows = np.moveaxis(view[:: g.step_px, :: g.step_px][:nr, :nc], 2, -1)
            feeds[role] = np.ascontiguousarray(windows.reshape(nr * nc, g.window_px, g.window_px, -1),
                                               dtype=np.float32)
    return feeds


def branch_nodes(graph: Any, input_name: str) -> list[str]:
    """Names of the nodes that depend on graph input ``input_name`` and on no other graph input (its branch).

    For the fusion graph and ``"high_res"``: the high-res encoder and its pooling, up to the
    concatenation with the other inputs' features. The nodes must be named (:func:`name_nodes`).
    """
    consumers: dict[str, list[int]] = {}
    for k, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(k)
    inits = {i.name for i in graph.initializer}

    def reached(start: str) -> set[int]:
        seen: set[int] = set()
        todo = [start]
        while todo:
            for k in consumers.get(todo.pop(), []):
                if k not in seen:
                    seen.add(k)
                    todo.extend(graph.node[k].output)
        return seen

    mine = reached(input_name)
    for other in graph.input:
        if other.name != input_name and other.name not in inits:
            mine -= reached(other.name)
    return [graph.node[k].name for k in sorted(mine)]


def name_nodes(graph: Any) -> None:
    """Give every unnamed node a unique name (``<op type>_<index>``): quantization selects nodes by name."""
    taken = {n.name for n in graph.node}
    for k, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{k}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def calibration_feeds(model_path: str | os.PathLike, *, tile_px: int = CALIBRATION_TILE_PX,
                      tiles_per_date: int = CALIBRATION_TILES_PER_DATE, seed: int = 0,
                      sample_dir: Path | None = None) -> list[dict[str, np.ndarray]]:
    """Fast-mode graph inputs from tiles of the sample scene, every date, encoded by the plugin core.

    Parameters
    ----------
    model_path : str or path
        The float32 model (its metadata says which bands and encodings to read).
    tile_px : int
        Tile side (output pixels of 320 m); clipped to the sample's map.
    tiles_per_date : int
        Tiles per date of the sample; the first is the map's top-left tile, the others at positions
        drawn with ``seed`` (only tiles whose every window has every input are kept).
    seed : int
        Seed of the tile positions.
    sample_dir : Path, optional
        The sample scene (default: the bundled ``resources/sample``).

    Returns
    -------
    list of dict
        One ``{input name: float32 array}`` per tile.
    """
    from smqgis.core.layers import gdal_env
    from smqgis.core.pipeline import prepare
    from smqgis.demo import SAMPLE, sample_dates, sample_inputs

    rng = np.random.default_rng(seed)
    feeds = []
    for date in sample_dates(sample_dir or SAMPLE):
        run = prepare(str(model_path), sample_inputs(Path(date["folder"])), provider="cpu")
        try:
            grid = run.grid
            n_r, n_c = min(tile_px, grid.height), min(tile_px, grid.width)
            starts = [(0, 0)] + [(int(rng.integers(0, grid.height - n_r + 1)),
                                  int(rng.integers(0, grid.width - n_c + 1))) for _ in range(tiles_per_date - 1)]
            with gdal_env():
                for r0, c0 in starts:
                    tile = run.reader.read(r0, c0, n_r, n_c)
                    if not (tile.coverage >= 1.0 - 1e-6).all():
                        log.info("calibration tile (%d, %d) of %s lacks inputs: skipped", r0, c0, date["date"])
                        continue
                    feeds.append(fast_mode_feeds(tile, grid, run.model.roles))
        finally:
            run.close()
    if not feeds:
        raise RuntimeError("no calibration tile of the sample scene has every input")
    log.info("%d calibration calls of %s px high-res blocks", len(feeds),
             sorted({f["high_res"].shape[1] for f in feeds if "high_res" in f}))
    return feeds


class _FeedReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = list(feeds)
        self._next, self._end = 0, len(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self._feeds))


def with_precision(meta: dict[str, Any], precision: str, quantization: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``meta`` marked ``precision`` (title and label say it), with the ``quantization`` record."""
    out = json.loads(json.dumps(meta))
    out["precision"] = precision
    out["quantization"] = quantization
    for key in ("title", "label"):
        if f"({precision})" not in out[key]:
            out[key] = f"{out[key]} ({precision})"
    return schema.validate(out)


def _set_metadata(model_proto: Any, meta: dict[str, Any]) -> None:
    """Replace the smqgis ``metadata_props`` of ``model_proto`` by those of ``meta``."""
    props = schema.to_metadata_props(meta)
    keep = [(p.key, p.value) for p in model_proto.metadata_props if p.key not in props]
    del model_proto.metadata_props[:]
    for key, value in [*keep, *props.items()]:
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value


def quantize_model(in_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   feeds: list[dict[str, np.ndarray]] | None = None, seed: int = 0,
                   op_types: tuple[str, ...] = DEFAULT_OP_TYPES, per_channel: bool = True,
                   reduce_range: bool = True, float32_marks: tuple[str, ...] = FLOAT32_NODE_MARKS,
                   calibrate_method: str = "MinMax") -> dict[str, Any]:
    """Quantize the float32 smqgis model ``in_path`` to int8 (QDQ) at ``out_path``; return its metadata.

    Parameters
    ----------
    in_path, out_path : str or path
        The float32 model and the int8 file to write (written to a temporary name, then renamed).
    feeds : list of dict, optional
        Calibration inputs; default :func:`calibration_feeds` (the sample scene, ``seed``).
    seed : int
        Seed of the calibration tiles.
    op_types : tuple of str
        ONNX node types to quantize (within the high-res branch, :func:`branch_nodes`).
    per_channel : bool
        One weight scale per output channel (more accurate for the depthwise convolutions).
    reduce_range : bool
        7-bit weights (for x86 CPUs without VNNI, where 8-bit products can saturate in 16 bits).
    float32_marks : tuple of str
        Nodes of the high-res branch whose names contain one of these stay float32.
    calibrate_method : {"MinMax", "Percentile", "Entropy"}
        How activation ranges are taken from the calibration calls.

    Returns
    -------
    dict
        The written model's validated metadata.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    from smqgis.core.model import read_metadata

    in_path, out_path = Path(in_path), Path(out_path)
    meta = read_metadata(str(in_path))
    if schema.precision_of(meta) != "float32":
        raise ValueError(f"{in_path} is already {schema.precision_of(meta)}; quantize its float32 model")
    feeds = calibration_feeds(in_path, seed=seed) if feeds is None else feeds
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    pre = f"{tmp[:-5]}.pre.onnx"
    try:
        # onnxruntime's graph optimisations first (batch-norm scales and explicit padding folded into the
        # convolutions): once Q/DQ pairs sit between a convolution and its Mul or Pad they can no longer be
        # fused, and the int8 graph ran its depthwise scales and paddings as separate int8 ops.
        quant_pre_process(str(in_path), pre, skip_symbolic_shape=True)
        pre_model = onnx.load(pre)
        name_nodes(pre_model.graph)
        onnx.save(pre_model, pre)
        branch = branch_nodes(pre_model.graph, "high_res")
        if not branch:
            raise ValueError(f"{in_path} has no high_res input: only the high-res encoder is quantized")
        quantized = [name for name in branch if not any(mark in name for mark in float32_marks)]
        quantize_static(
            pre, tmp, _FeedReader(feeds), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
            reduce_range=reduce_range, op_types_to_quantize=list(op_types), nodes_to_quantize=quantized,
            calibrate_method=CalibrationMethod[calibrate_method],
            # one call at a time, ranges merged after each: one call's activations in memory, not all of them
            # (CalibMaxIntermediateOutputs would do the same, but onnxruntime 1.31 drops the data instead)
            extra_options={"CalibStridedMinMax": 1},
        )
        proto = onnx.load(tmp)
        record = {
            "tool": f"onnxruntime.quantization {onnxruntime.__version__}, quantize_static",
            "format": "QDQ", "activations": "uint8", "weights": "int8" + (" (7-bit range)" if reduce_range else ""),
            "per_channel": per_channel, "quantized": "the high-res encoder (its branch up to the pooling)",
            "op_types": list(op_types), "float32_node_marks": list(float32_marks),
            "calibration": {"method": calibrate_method, "calls": len(feeds), "seed": seed,
                            "data": "fast-mode tiles of the bundled sample scene (simulated world), every date"},
            "float32_model": in_path.name,
        }
        out_meta = with_precision(meta, "int8", record)
        _set_metadata(proto, out_meta)
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        Path(pre).unlink(missing_ok=True)
    log.info("wrote %s (%.1f MB, int8 QDQ, %d calibration calls)", out_path, out_path.stat().st_size / 1e6,
             len(feeds))
    return out_meta


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m training.quantize IN.onnx --out OUT.onnx``."""
    parser = argparse.ArgumentParser(prog="python -m training.quantize", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="float32 smqgis ONNX model (from training.export)")
    parser.add_argument("--out", required=True, help="int8 ONNX file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration tiles")
    parser.add_argument("--full-range", action="store_true",
                        help="8-bit weights (CPUs with VNNI); default 7-bit, which CPUs without VNNI need")
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    parser.add_argument("--op-types", default=",".join(DEFAULT_OP_TYPES), help="node types to quantize")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quantize_model(args.model, args.out, seed=args.seed, reduce_range=not args.full_range,
                   per_channel=not args.per_tensor, op_types=tuple(args.op_types.split(",")))


if __name__ == "__main__":
    main()
