"""Build a small smqgis fusion model with random weights, following the graph-calling convention.

Tests of smqgis/core use it until (and beside) the models exported by training/export.py.
The graph is what ``schema.py`` describes, in miniature: ``high_res`` [N, H, W, C] -> five
stride-2 convolutions (total stride 32) -> the centre-weighted pooling as a valid depthwise
8 x 8 convolution (``schema.center_weighted_kernel``) -> one row per output pixel;
``low_res`` [P, 16, 16, C_low] -> two stride-4 convolutions -> [P, 8]; a dense head on the
concatenated features, then a second head with ``coarse`` [P, K]; output [P, 1] in m3/m3.

``context=True`` uses 3 x 3 kernels with zero padding, so a feature cell sees its
neighbours (fast and exact mode differ near window edges, as with the real encoder);
``context=False`` uses 2 x 2 kernels, so each 32 px cell is encoded on its own and fast
mode equals exact mode exactly (a check of the tiling arithmetic).

Run ``python tests/data/make_test_model.py OUT.onnx [--variant full] [--local] [--seed 0]``;
tests call :func:`make_test_model` into a temporary folder (no binaries are committed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from smqgis.core import schema

OPSET = 17
HR_WIDTHS = (8, 8, 16, 16, 16)
LR_WIDTH = 8


def make_test_model(path: str | Path, *, variant: str = "full", context: bool = True, seed: int = 0) -> Path:
    """Write the test model to ``path`` and return the path.

    Parameters
    ----------
    path : str or Path
        Target .onnx file.
    variant : str
        A variant of ``schema.VARIANTS`` with a high-res input.
    context : bool
        3 x 3 padded kernels (cells see their neighbours) or 2 x 2 kernels (cell-local).
    seed : int
        Seed of the random weights.
    """
    rng = np.random.default_rng(seed)
    meta = schema.build_metadata(
        variant=variant,
        title=f"smqgis test model ({variant}, {'context' if context else 'cell-local'} encoder)",
        trained_on={"kind": "random", "description": f"random weights, seed {seed}"},
        producer="tests/data/make_test_model.py",
    )
    roles = {spec["name"]: len(spec["bands"]) for spec in meta["inputs"]}
    nodes, inits, graph_inputs = [], [], []

    def const(name: str, array: np.ndarray, dtype: type = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def conv(x: str, name: str, c_in: int, c_out: int, k: int, s: int, pad: int) -> str:
        w = rng.normal(0.0, 1.5 / np.sqrt(c_in * k * k), (c_out, c_in, k, k))
        b = rng.normal(0.0, 0.1, c_out)
        nodes.append(helper.make_node("Conv", [x, const(f"{name}_w", w), const(f"{name}_b", b)], [f"{name}_c"],
                                      kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4))
        nodes.append(helper.make_node("Tanh", [f"{name}_c"], [name]))
        return name

    def dense(x: str, name: str, n_in: int, n_out: int, act: str | None) -> str:
        w = rng.normal(0.0, 3.0 / np.sqrt(n_in), (n_in, n_out))
        b = rng.normal(0.0, 0.1, n_out)
        nodes.append(helper.make_node("MatMul", [x, const(f"{name}_w", w)], [f"{name}_m"]))
        nodes.append(helper.make_node("Add", [f"{name}_m", const(f"{name}_b", b)], [name if not act else f"{name}_a"]))
        if act:
            nodes.append(helper.make_node(act, [f"{name}_a"], [name]))
        return name

    def scaled(role: str, shape: list) -> str:
        graph_inputs.append(helper.make_tensor_value_info(role, TensorProto.FLOAT, shape))
        nodes.append(helper.make_node("Mul", [role, const(f"{role}_scale", np.array(1 / 255.0))], [f"{role}_s"]))
        return f"{role}_s"

    feats, n_feat = [], 0
    hr = scaled("high_res", ["N", "H", "W", roles["high_res"]])
    nodes.append(helper.make_node("Transpose", [hr], ["hr_nchw"], perm=[0, 3, 1, 2]))
    x, c = "hr_nchw", roles["high_res"]
    k, pad = (3, 1) if context else (2, 0)
    for i, width in enumerate(HR_WIDTHS):
        x, c = conv(x, f"hr{i}", c, width, k, 2, pad), width
    kernel = np.array(schema.center_weighted_kernel(8, meta["pooling"]["sigma_cells"]), dtype=np.float32)
    nodes.append(helper.make_node("Conv", [x, const("pool_w", np.tile(kernel, (c, 1, 1, 1)))], ["pooled"],
                                  kernel_shape=[8, 8], group=c))
    nodes.append(helper.make_node("Transpose", ["pooled"], ["pooled_nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Reshape", ["pooled_nhwc", const("rows_shape", [-1, c], np.int64)], ["hr_rows"]))
    feats.append("hr_rows")
    n_feat += c
    if "low_res" in roles:
        lr = scaled("low_res", ["P", 16, 16, roles["low_res"]])
        nodes.append(helper.make_node("Transpose", [lr], ["lr_nchw"], perm=[0, 3, 1, 2]))
        y = conv("lr_nchw", "lr0", roles["low_res"], LR_WIDTH, 4, 4, 0)
        y = conv(y, "lr1", LR_WIDTH, LR_WIDTH, 4, 4, 0)
        nodes.append(helper.make_node("Reshape", [y, const("lr_rows_shape", [-1, LR_WIDTH], np.int64)], ["lr_rows"]))
        feats.append("lr_rows")
        n_feat += LR_WIDTH
    nodes.append(helper.make_node("Concat", feats, ["fused"], axis=1))
    h = dense(dense("fused", "head1a", n_feat, 16, "Tanh"), "head1b", 16, 1, None)
    n_in = 1
    if "coarse" in roles:
        co = scaled("coarse", ["P", roles["coarse"]])
        nodes.append(helper.make_node("Concat", [h, co], ["head2_in"], axis=1))
        h, n_in = "head2_in", 1 + roles["coarse"]
    z = dense(dense(h, "head2a", n_in, 8, "Tanh"), "head2b", 8, 1, "Sigmoid")
    nodes.append(helper.make_node("Mul", [z, const("out_scale", np.array(0.5))], [schema.OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes, "smqgis_test_fusion", graph_inputs,
        [helper.make_tensor_value_info(schema.OUTPUT_NAME, TensorProto.FLOAT, ["P", 1])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="smqgis-tests")
    model.ir_version = 8
    helper.set_model_props(model, schema.to_metadata_props(meta))
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def main() -> None:
    """Command line: write one test model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--local", action="store_true", help="cell-local 2 x 2 kernels instead of 3 x 3")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_test_model(args.output, variant=args.variant, context=not args.local, seed=args.seed)


if __name__ == "__main__":
    main()
