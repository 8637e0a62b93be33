"""Import the authors' published TF-1 model (paper 000) as an smqgis ONNX model, after a parity check.

The authors of paper 000 released their best model (test R 0.729 on ISMN sensors) as a TF-1
SavedModel (``saved_model.pb``, ``variables/``, ``graph_def.pbtxt``; tag ``"serve"``), linked
from google-research's ``soil_moisture_retrieval/README.md``. Their ``run_inference.py`` feeds
``ImageTensor:0`` [1, 512, 512, 10] (VV, VH, angle, B4, B3, B2, B8, B11, B12, DEM; 0-255),
``LowResImageTensor:0`` [1, 512, 512, 4] (SoilGrids sand, silt, clay, bdod; 0-255) and
``AuxTensor:0`` [1, 2] (``[smap_sm / 255, gldas_sm / 255]``) and fetches ``clip_by_value:0``
(m3/m3, clipped to [0, 1]); the graph crops/pads the images to 256 x 256 internally.

This module loads the SavedModel in a TF-1 session (``tf.compat.v1``), takes the feeds and
fetch from its ``signature_def`` when it has one and from the released tensor names
otherwise, freezes the variables to constants, tries to make the batch dimension dynamic
(kept only when the graph then gives, for a batch of windows, exactly what it gives for each
window alone), converts the frozen graph with tf2onnx keeping the released tensor names,
inspects the graph for a fully-convolutional fast mode, and compares onnxruntime with the
TF-1 session on random valid inputs. Only when the max |diff| is within the tolerance
(1e-4 m3/m3) does it write the ONNX file (temporary name, renamed on success) with the
smqgis metadata of model kind ``published_tf1_fusion`` (``smqgis/core/kinds/published.py``
documents the input contract it records).

Command line (training environment: TensorFlow 2.x, tf2onnx, onnx, onnxruntime)::

    python -m training.import_published soil_moisture_model.zip --out published.onnx
    python -m training.import_published path/to/unpacked_folder --out published.onnx
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smqgis.core import schema
from smqgis.core.kinds import published as kind

log = logging.getLogger(__name__)

#: tf2onnx opset (tf2onnx 1.17 supports <= 18; 17 is what training/export.py uses).
OPSET = 17
#: Largest accepted max |TF-1 - onnxruntime| on the parity inputs (m3/m3).
PARITY_TOLERANCE = 1e-4
#: Random windows of the parity check (one TF-1 call each; the real model takes ~1 s per call on a CPU).
PARITY_WINDOWS = 3
#: The outer ring of a window is "ignored" when changing it moves the output by at most this (m3/m3).
CROP_TOLERANCE = 1e-6
#: Timed onnxruntime calls (batch 1) whose median gives the seconds per window stored in the metadata.
TIMED_CALLS = 3
#: Longest the batch trial may take in its child process (s): TF start-up plus 3 windows of the real model.
PROBE_TIMEOUT_S = 600
#: Largest total size of the files of a zip we unpack (bytes): the release is ~100-300 MB.
MAX_UNZIPPED_BYTES = 4 * 2**30


class PublishedModelError(RuntimeError):
    """The given path is not a usable published model (message says what to do)."""


class ParityError(RuntimeError):
    """TF-1 and onnxruntime disagree beyond the tolerance; nothing was written."""


@dataclass
class LoadedModel:
    """A published SavedModel loaded in a TF-1 session, with its feeds and fetch resolved."""

    directory: Path
    session: Any
    graph: Any
    feeds: dict[str, str]  # role -> tensor name
    fetch: str
    signature: str | None
    shapes: dict[str, list[int | None]] = field(default_factory=dict)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """TF-1 output (m3/m3) for role-keyed feeds, one window per call; shape (N,)."""
        n = len(next(iter(feeds.values())))
        out = np.empty(n, dtype=np.float32)
        for i in range(n):
            value = self.session.run(self.fetch, {self.feeds[r]: a[i:i + 1] for r, a in feeds.items()})
            out[i] = np.asarray(value, dtype=np.float32).reshape(-1)[0]
        return out


# -- locating and loading -------------------------------------------------------------------------
def _safe_extract(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        total = 0
        for info in zf.infolist():
            name = info.filename
            if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                raise PublishedModelError(f"{archive} contains an unsafe path {name!r}; unpack it yourself and "
                                          "give the folder")
            total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise PublishedModelError(f"{archive} unpacks to {total / 2**30:.1f} GiB, more than a published model; "
                               "check that it is the soil_moisture_model.zip of the release")
        zf.extractall(target)


def locate_saved_model(path: str | os.PathLike, workdir: str | os.PathLike) -> Path:
    """The folder holding ``saved_model.pb`` for a zip, a folder, or the ``saved_model.pb`` itself.

    A zip is unpacked into ``workdir``. Raises :class:`PublishedModelError` naming what was expected.
    """
    p = Path(path)
    if not p.exists():
        raise PublishedModelError(f"{p} does not exist; give the downloaded soil_moisture_model.zip or its "
                                  "unpacked folder")
    if p.is_file() and p.name == "saved_model.pb":
        return p.parent
    if p.is_file():
        if not zipfile.is_zipfile(p):
            raise PublishedModelError(f"{p} is neither a zip nor a folder; give soil_moisture_model.zip or its "
                                      "unpacked folder")
        root = Path(workdir) / "unzipped"
        _safe_extract(p, root)
        p = root
    found = sorted(d.parent for d in p.rglob("saved_model.pb"))
    if not found:
        raise PublishedModelError(f"no saved_model.pb in {path}; give the published model's zip or the folder that "
                           "contains saved_model.pb and variables/")
    if len(found) > 1:
        raise PublishedModelError(f"{path} holds several SavedModels {[str(f) for f in found]}; "
                                  "give one of these folders")
    return found[0]


def _role_of(name: str, shape: list[int | None]) -> str | None:
    for role, released in kind.RELEASED_FEEDS.items():
        if name == released:
            return role
    if len(shape) == 4 and shape[-1] == len(kind.HIGH_RES_BANDS):
        return "high_res"
    if len(shape) == 4 and shape[-1] == len(kind.LOW_RES_BANDS):
        return "low_res"
    if len(shape) == 2 and shape[-1] == len(kind.AUX_BANDS):
        return "coarse"
    return None


def load_saved_model(directory: Path) -> LoadedModel:
    """Load the SavedModel (tag "serve") in a new TF-1 session and resolve feeds and fetch.

    The ``signature_def`` is used when present (``serving_default`` first); otherwise the
    released tensor names. Shapes are checked against the released contract.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    session = v1.Session(graph=graph)
    try:
        meta_graph = v1.saved_model.loader.load(session, [kind.SAVED_MODEL_TAG], str(directory))
    except Exception as exc:  # TF raises RuntimeError / NotFoundError / DecodeError for a bad SavedModel
        session.close()
        raise PublishedModelError(f"cannot load {directory} as a TF-1 SavedModel with tag "
                           f"{kind.SAVED_MODEL_TAG!r} ({type(exc).__name__}: {str(exc)[:300]})") from None
    signatures = dict(meta_graph.signature_def)
    feeds: dict[str, str] = {}
    fetch, used = kind.RELEASED_FETCH, None
    for key in ["serving_default", *sorted(k for k in signatures if k != "serving_default")]:
        sig = signatures.get(key)
        if sig is None or len(sig.inputs) != 3 or len(sig.outputs) != 1:
            continue
        found = {}
        for info in sig.inputs.values():
            shape = [d.size if d.size >= 0 else None for d in info.tensor_shape.dim]
            role = _role_of(info.name, shape)
            if role:
                found[role] = info.name
        if set(found) == set(kind.RELEASED_FEEDS):
            feeds, fetch, used = found, next(iter(sig.outputs.values())).name, key
            break
    if not feeds:
        feeds = dict(kind.RELEASED_FEEDS)
    shapes = {}
    try:
        for role, name in feeds.items():
            tensor = graph.get_tensor_by_name(name)
            shapes[role] = tensor.shape.as_list()
            if tensor.dtype != tf.float32:
                raise PublishedModelError(f"feed {name} is {tensor.dtype.name}, the release feeds float32")
        graph.get_tensor_by_name(fetch)
    except (KeyError, ValueError) as exc:
        session.close()
        raise PublishedModelError(f"{directory} has no signature_def for the three inputs and lacks a released tensor "
                           f"({exc}); is it the soil_moisture_retrieval model?") from None
    expected = {"high_res": [kind.WINDOW_PX, kind.WINDOW_PX, len(kind.HIGH_RES_BANDS)],
                "low_res": [kind.WINDOW_PX, kind.WINDOW_PX, len(kind.LOW_RES_BANDS)],
                "coarse": [len(kind.AUX_BANDS)]}
    for role, shape in shapes.items():
        # unknown dims (None) are fine: "crops or pads to 256 internally" allows any window size
        if len(shape) != len(expected[role]) + 1 or any(
                got is not None and got != want for got, want in zip(shape[1:], expected[role])):
            session.close()
            raise PublishedModelError(f"feed {feeds[role]} has shape {shape}; the published model takes "
                               f"[1, {', '.join(map(str, expected[role]))}]")
    log.info("loaded %s: feeds %s, fetch %s, signature %s", directory, feeds, fetch, used or "none (released names)")
    return LoadedModel(directory, session, graph, feeds, fetch, used, shapes)


# -- freezing, dynamic batch, graph inspection ------------------------------------------------------
def freeze(model: LoadedModel) -> Any:
    """The graph with every variable folded into a constant, pruned to the fetch (a GraphDef)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    op = model.fetch.split(":")[0]
    with model.graph.as_default():
        frozen = v1.graph_util.convert_variables_to_constants(model.session, model.graph.as_graph_def(), [op])
    n_vars = sum(1 for n in model.graph.as_graph_def().node if n.op in ("VariableV2", "VarHandleOp"))
    log.info("froze %d variable(s); frozen graph has %d nodes", n_vars, len(frozen.node))
    return frozen


def with_dynamic_batch(graph_def: Any, feeds: dict[str, str]) -> Any:
    """A copy of ``graph_def`` whose feed placeholders take any batch size (first dim -1)."""
    import tensorflow as tf

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    names = {t.split(":")[0] for t in feeds.values()}
    for node in out.node:
        if node.name in names and node.op == "Placeholder":
            dims = node.attr["shape"].shape.dim
            if dims:
                dims[0].size = -1
        if "_output_shapes" in node.attr:  # stale static shapes would pin the batch again
            del node.attr["_output_shapes"]
    return out


def run_graph_def(graph_def: Any, feeds: dict[str, str], fetch: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate a frozen GraphDef once on role-keyed arrays (any batch); output reshaped to (N,)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        value = sess.run(fetch, {feeds[r]: a for r, a in arrays.items()})
    return np.asarray(value, dtype=np.float32).reshape(-1)


def random_windows(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` random valid windows: images 0-255 (float32), aux values in [0, 1] (= 0-255 / 255)."""
    rng = np.random.default_rng(seed)
    return {
        "high_res": rng.uniform(0.0, 255.0, (n, kind.WINDOW_PX, kind.WINDOW_PX, len(kind.HIGH_RES_BANDS))).astype(
            np.float32),
        "low_res": rng.uniform(0.0, 255.0, (n, kind.WINDOW_PX, kind.WINDOW_PX, len(kind.LOW_RES_BANDS))).astype(
            np.float32),
        "coarse": rng.uniform(0.0, 1.0, (n, len(kind.AUX_BANDS))).astype(np.float32),
    }


def _probe_main(folder: str) -> None:
    """Child-process side of :func:`probe_batch`: run ``graph.pb`` on ``windows.npz``, save ``out.npy``."""
    import tensorflow as tf

    d = Path(folder)
    spec = json.loads((d / "spec.json").read_text())
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((d / "graph.pb").read_bytes())
    arrays = dict(np.load(d / "windows.npz"))
    np.save(d / "out.npy", run_graph_def(graph_def, spec["feeds"], spec["fetch"], arrays))


def probe_batch(graph_def: Any, feeds: dict[str, str], fetch: str, windows: dict[str, np.ndarray]) -> np.ndarray | str:
    """Outputs of ``graph_def`` on a batch, evaluated in a child process; or why that failed.

    A graph built for batch 1 can crash TensorFlow outright (a segmentation fault, seen with
    SpaceToBatchND / BatchToSpaceND of atrous convolutions at the paper model's size) when fed a
    larger batch, so the trial must not run in the importer's own process.
    """
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="smqgis-probe-") as folder:
        d = Path(folder)
        (d / "graph.pb").write_bytes(graph_def.SerializeToString())
        (d / "spec.json").write_text(json.dumps({"feeds": feeds, "fetch": fetch}))
        np.savez(d / "windows.npz", **windows)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        code = f"from training.import_published import _probe_main; _probe_main({str(d)!r})"
        try:
            proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,  # noqa: S603
                                  timeout=PROBE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return f"no answer within {PROBE_TIMEOUT_S} s"
        if proc.returncode < 0:
            return f"TensorFlow crashed on it (signal {-proc.returncode})"
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if "Error" in line] or [""]
            return f"exit code {proc.returncode}: {errors[-1][:200]}"
        return np.load(d / "out.npy")


def try_dynamic_batch(frozen: Any, model: LoadedModel, windows: dict[str, np.ndarray],
                      expected: np.ndarray) -> tuple[Any, bool, str]:
    """The dynamic-batch graph if it reproduces the per-window outputs on a batch, else the frozen one."""
    if all(shape[0] is None for shape in model.shapes.values()):
        return frozen, True, "the released feeds already have a dynamic batch dimension"
    candidate = with_dynamic_batch(frozen, model.feeds)
    got = probe_batch(candidate, model.feeds, model.fetch, windows)
    if isinstance(got, str):  # the graph pins the batch somewhere (e.g. a Reshape to [1, ...]) or crashed
        return frozen, False, f"batch kept at 1: the graph fails on a batch of {len(expected)} ({got})"
    if got.shape != expected.shape:
        return frozen, False, f"batch kept at 1: a batch of {len(expected)} gave {got.shape[0]} outputs"
    diff = float(np.max(np.abs(got - expected)))
    if diff > PARITY_TOLERANCE:
        return frozen, False, f"batch kept at 1: batched outputs differ from single-window ones by {diff:.3g}"
    return candidate, True, f"batch dimension made dynamic: a batch of {len(expected)} matches single windows " \
                            f"(max |diff| {diff:.3g} m3/m3)"


def spatial_reductions(graph_def: Any) -> list[str]:
    """Names of the Mean/Sum/Max ops of an NHWC graph that reduce over both spatial axes (1 and 2)."""
    from tensorflow.python.framework import tensor_util

    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    found = []
    for node in graph_def.node:
        if node.op not in ("Mean", "Sum", "Max") or len(node.input) < 2:
            continue
        axes_node = consts.get(node.input[1].split(":")[0].lstrip("^"))
        if axes_node is None:
            continue
        axes = {int(a) % 4 for a in np.atleast_1d(tensor_util.MakeNdarray(axes_node.attr["value"].tensor))}
        if {1, 2} <= axes:
            found.append(node.name)
    return found


def inspect_graph(graph_def: Any, model: LoadedModel, windows: dict[str, np.ndarray],
                  expected: np.ndarray) -> dict[str, Any]:
    """What the graph does to its windows, and whether a fully-convolutional fast mode is possible.

    Measured: changing everything outside the centre ``CROP_PX`` x ``CROP_PX`` px of a window
    (both images) and seeing whether the output moves. Read from the ops: crops/pads/resizes,
    spatial reductions (global pooling), matrix multiplications (dense heads) and shape
    constants. A fast mode like the fusion_320m kind's (one encoder pass over a large tile,
    pooling sliding over its feature map) needs a graph whose spatial size is free up to the
    pooling and whose pooling and heads are per-position; a fixed crop, a global reduction or a
    dense head means the release has to be evaluated window by window (exact mode).
    """
    ops: dict[str, int] = {}
    for node in graph_def.node:
        ops[node.op] = ops.get(node.op, 0) + 1
    interesting = ("Slice", "StridedSlice", "Pad", "PadV2", "MirrorPad", "CropAndResize", "ResizeBilinear",
                   "ResizeNearestNeighbor", "Mean", "Sum", "Max", "MatMul", "Reshape", "Conv2D",
                   "DepthwiseConv2dNative", "FusedBatchNorm", "FusedBatchNormV3")
    found_ops = {op: ops[op] for op in interesting if op in ops}
    crop = kind.CROP_PX
    lo, hi = (kind.WINDOW_PX - crop) // 2, (kind.WINDOW_PX + crop) // 2
    rng = np.random.default_rng(12345)
    ring = {role: a.copy() for role, a in windows.items()}
    for role in ("high_res", "low_res"):
        outer = rng.uniform(0.0, 255.0, ring[role].shape).astype(np.float32)
        outer[:, lo:hi, lo:hi, :] = ring[role][:, lo:hi, lo:hi, :]
        ring[role] = outer
    moved = float(np.max(np.abs(model.run(ring) - expected)))
    reads_only_centre = moved <= CROP_TOLERANCE
    reasons = []
    if reads_only_centre:
        reasons.append(f"the output ignores everything outside the centre {crop} px of the {kind.WINDOW_PX} px "
                       f"window (changing it moved the output by {moved:.2g} m3/m3): the graph crops to a fixed "
                       f"{crop} px, so a larger tile would be cut back to one window")
    spatial = spatial_reductions(graph_def)
    if spatial:
        reasons.append(f"it reduces over the spatial axes ({len(spatial)} global pooling op(s): "
                       f"{', '.join(spatial[:4])}), giving one value per window, not a map")
    if "MatMul" in ops:
        reasons.append(f"its heads are dense layers ({ops['MatMul']} MatMul) on the pooled vector")
    possible = not reasons
    why = ("; ".join(reasons) + ". A fast mode would need graph surgery (remove the crop, turn the pooling into a "
           "sliding centre-weighted convolution and the dense heads into 1 x 1 convolutions) and would then see "
           "real neighbours where the released model saw zero padding at the crop's edges, i.e. a different "
           "model from the published one; smqgis therefore runs it in exact mode only") if reasons else \
        "no fixed crop, global reduction or dense head found"
    log.info("fast mode possible: %s (%s)", possible, why)
    return {"reads_only_centre_px": crop if reads_only_centre else None, "outer_ring_effect_m3m3": moved,
            "ops": found_ops, "spatial_reductions": spatial, "fully_convolutional_possible": possible, "why": why}


# -- conversion, parity, metadata ---------------------------------------------------------------------
def convert(graph_def: Any, model: LoadedModel, opset: int = OPSET) -> Any:
    """tf2onnx conversion of the frozen graph; ONNX inputs/output keep the released tensor names."""
    import tf2onnx

    if not 7 <= opset <= 18:
        raise ValueError(f"opset {opset} is outside what tf2onnx 1.17 supports (<= 18)")
    inputs = [model.feeds[r] for r in ("high_res", "low_res", "coarse")]
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=[model.fetch], opset=opset)
    got = [i.name for i in proto.graph.input]
    if sorted(got) != sorted(inputs) or [o.name for o in proto.graph.output] != [model.fetch]:
        raise RuntimeError(f"converted graph has inputs {got} / outputs {[o.name for o in proto.graph.output]}")
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_param = "N"
    return proto


def onnx_run(session: Any, model: LoadedModel, arrays: dict[str, np.ndarray], batch_dynamic: bool) -> np.ndarray:
    """onnxruntime outputs (N,) for role-keyed arrays; one call, or one per window at batch 1."""
    n = len(arrays["coarse"])
    if batch_dynamic:
        (out,) = session.run(None, {model.feeds[r]: a for r, a in arrays.items()})
        return np.asarray(out, dtype=np.float32).reshape(-1)
    return np.concatenate([
        np.asarray(session.run(None, {model.feeds[r]: a[i:i + 1] for r, a in arrays.items()})[0]).reshape(-1)
        for i in range(n)
    ]).astype(np.float32)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_published(
    path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    opset: int = OPSET,
    tolerance: float = PARITY_TOLERANCE,
    seed: int = 0,
    trained_on: str = "ismn",
) -> dict[str, Any]:
    """Convert the published SavedModel at ``path`` (zip, folder or saved_model.pb) to ``out_path``.

    Parameters
    ----------
    path : path-like
        The downloaded ``soil_moisture_model.zip``, its unpacked folder, or its ``saved_model.pb``.
    out_path : path-like
        The ONNX file to write (only when parity holds; written atomically).
    opset : int
        ONNX opset (<= 18).
    tolerance : float
        Largest accepted max |TF-1 - onnxruntime| (m3/m3) on the parity windows.
    seed : int
        Seed of the random parity windows.
    trained_on : {"ismn", "random"}
        What the weights were trained on: "ismn" for the authors' release; "random" for test stand-ins.

    Returns
    -------
    dict
        ``metadata``, ``parity`` (max |diff| per check, m3/m3), ``seconds_per_window``, ``path``.

    Raises
    ------
    PublishedModelError
        The path is not a usable published model.
    ParityError
        onnxruntime and the TF-1 session disagree by more than ``tolerance``; nothing is written.
    """
    import onnx
    import onnxruntime as ort

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise PublishedModelError(f"the output {out_path} must end in .onnx")
    with tempfile.TemporaryDirectory(prefix="smqgis-import-") as work:
        directory = locate_saved_model(path, work)
        digest = _sha256(directory / "saved_model.pb")
        model = load_saved_model(directory)
        try:
            windows = random_windows(PARITY_WINDOWS, seed)
            expected = model.run(windows)
            log.info("TF-1 outputs on %d random windows: %s", PARITY_WINDOWS, np.round(expected, 4).tolist())
            frozen = freeze(model)
            frozen_out = run_graph_def(frozen, model.feeds, model.fetch,
                                       {r: a[:1] for r, a in windows.items()})
            graph_def, batch_dynamic, batch_note = try_dynamic_batch(frozen, model, windows, expected)
            log.info(batch_note)
            analysis = inspect_graph(graph_def, model, windows, expected)
            proto = convert(graph_def, model, opset)
            session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
            got = onnx_run(session, model, windows, batch_dynamic)
            fresh = random_windows(PARITY_WINDOWS, seed + 1)  # windows the conversion never saw
            parity = {
                "frozen_vs_session": float(abs(frozen_out[0] - expected[0])),
                "onnx_vs_session": float(np.max(np.abs(got - expected))),
                "onnx_vs_session_fresh": float(np.max(np.abs(onnx_run(session, model, fresh, batch_dynamic)
                                                             - model.run(fresh)))),
            }
        finally:
            model.session.close()
        worst = max(parity.values())
        log.info("parity max |diff| (m3/m3): %s", parity)
        if not worst <= tolerance:
            raise ParityError(f"TF-1 vs onnxruntime max |diff| {worst:.3g} m3/m3 > {tolerance:g} ({parity}); "
                              "nothing was written")
        one = {r: a[:1] for r, a in fresh.items()}
        onnx_run(session, model, one, batch_dynamic)  # warm-up
        times = []
        for _ in range(TIMED_CALLS):
            t0 = time.perf_counter()
            onnx_run(session, model, one, batch_dynamic)
            times.append(time.perf_counter() - t0)
        seconds = float(np.median(times))
        meta = kind.build_metadata(
            feeds=model.feeds, fetch=model.fetch, trained_on=trained_on,
            published={
                "source_file": Path(path).name,
                "saved_model_sha256": digest,
                "saved_model_tag": kind.SAVED_MODEL_TAG,
                "signature_def": model.signature,
                "batch_dynamic": batch_dynamic,
                "batch_note": batch_note,
                "graph": analysis,
                "parity_max_abs_diff_m3m3": parity,
                "parity_windows": 2 * PARITY_WINDOWS,
                "opset": opset,
                "seconds_per_window_import_cpu": seconds,
            },
            created_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for key, value in schema.to_metadata_props(meta).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "smqgis training/import_published.py"
        onnx.checker.check_model(proto)
        data = proto.SerializeToString()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; QGIS and other users read model files
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %s (%.1f MB); %.3f s per window on this CPU", out_path, len(data) / 1e6, seconds)
    return {"metadata": meta, "parity": parity, "seconds_per_window": seconds, "path": str(out_path)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.import_published", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="soil_moisture_model.zip, its unpacked folder, or its saved_model.pb")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=OPSET, choices=range(13, 19), metavar="13..18")
    parser.add_argument("--tolerance", type=float, default=PARITY_TOLERANCE, help="max |diff| accepted (m3/m3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parity windows")
    parser.add_argument("--trained-on", default="ismn", choices=["ismn", "random"],
                        help="'ismn' for the authors' release (default); 'random' for test stand-ins")
    parser.add_argument("--json", help="also write the result (metadata, parity, timing) to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = import_published(args.path, args.out, opset=args.opset, tolerance=args.tolerance, seed=args.seed,
                                  trained_on=args.trained_on)
    except (PublishedModelError, ParityError) as exc:
        log.error("%s", exc)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
