"""Loading an smqgis ONNX model of any kind: the onnxruntime session plus its validated metadata.

Step four of the flow (tiled ONNX inference) starts here. The file's ``metadata_props``
carry the smqgis schema (``schema.py``), which says which kind of model it is and which
bands each graph input takes and how they are encoded. :func:`read_metadata` reads them
without building a session; :class:`OnnxModel` is what every kind's model is built on
(session options, execution provider, the check that the graph agrees with its metadata,
onnxruntime failures as :class:`~smqgis.core.errors.InferenceError`); :func:`load_model`
opens a model as its own kind (``kinds.REGISTRY``).
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any, BinaryIO

import numpy as np

from . import schema
from .errors import InferenceError, InputError, ModelError

log = logging.getLogger(__name__)

PROVIDERS = schema.EXECUTION_PROVIDERS
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
#: Field numbers of ONNX's ``ModelProto`` (onnx/onnx.proto3): the graph and the metadata_props.
PROTO_GRAPH_FIELD = 7
PROTO_METADATA_PROPS_FIELD = 14


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers (e.g. ``["CPUExecutionProvider"]``)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyper-threads counted once; at least 1).

    onnxruntime's convolutions are compute-bound: a second thread on a core's hyper-thread
    adds contention, not throughput.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topo}/physical_package_id") as fh_pkg, open(f"{topo}/core_id") as fh_core:
                cores.add((fh_pkg.read().strip(), fh_core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def session_options(threads: int | None = None, arena: bool = False) -> Any:
    """onnxruntime session options of an smqgis run.

    ``threads`` intra-op threads (default: the physical cores), one inter-op thread and
    sequential execution (the graph is a chain: parallel branches only contend for cores),
    every graph optimisation (fusions, NCHWc blocked layout), no memory pattern (pre-planned
    buffers per input shape: 2.6 GiB instead of 1.5 for one 1536 px block), and onnxruntime's
    CPU memory arena only with ``arena`` (see :class:`OnnxModel`; the fusion kind's models run
    with it, the other sessions, which run small calls, without).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or physical_cores())
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = bool(arena)
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3
    return opts


def run_options(shrink_arena: bool = True) -> Any:
    """onnxruntime run options; with ``shrink_arena`` the CPU arena gives its free memory back after each call.

    Measured in the block study (``python -m smqgis.bench --blocks``, variant ``arena_shrink``) and
    not used by the engine: the arena then re-faults its memory on every call (paper-size model,
    2240 px block: 565 k faults, 20.4 s against 16.9 s with the arena kept).
    """
    import onnxruntime as ort

    ro = ort.RunOptions()
    if shrink_arena:
        ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return ro


def _provider_list(provider: str) -> list[str]:
    """onnxruntime providers to ask for, by preference, for the user's choice ``provider``."""
    if provider not in PROVIDERS:
        raise InputError(f"unknown execution provider {provider!r}; choose one of {PROVIDERS}", parameter="provider")
    available = available_providers()
    if provider == "cuda" and _CUDA not in available:
        raise InputError(
            "onnxruntime has no CUDA execution provider here (it offers "
            f"{available}); install onnxruntime-gpu (`pip install onnxruntime-gpu`, needs CUDA 12 and cuDNN 9) "
            "or choose the CPU provider",
            parameter="provider",
        )
    if provider in ("cuda", "auto") and _CUDA in available:
        return [_CUDA, _CPU]
    return [_CPU]


def _varint(fh: BinaryIO) -> int | None:
    """A protobuf varint read from ``fh``; None at the end of the file."""
    value, shift = 0, 0
    while True:
        byte = fh.read(1)
        if not byte:
            if shift:
                raise ValueError("truncated varint")
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _metadata_props(path: str) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read from its top-level protobuf fields.

    Only ``ModelProto`` field 14 (``metadata_props``: key = 1, value = 2) is parsed; every other
    field - the graph with its weights among them - is skipped by its length, so this reads a
    few hundred bytes of any model. Raises ValueError when the file is not a ModelProto with a graph.
    """
    size = os.path.getsize(path)
    props: dict[str, str] = {}
    has_graph = False
    with open(path, "rb") as fh:
        while (tag := _varint(fh)) is not None:
            field_number, wire_type = tag >> 3, tag & 7
            if wire_type == 0:
                if _varint(fh) is None:
                    raise ValueError("truncated field")
            elif wire_type == 1 or wire_type == 5:
                fh.seek(8 if wire_type == 1 else 4, os.SEEK_CUR)
            elif wire_type == 2:
                length = _varint(fh)
                if length is None or fh.tell() + length > size:
                    raise ValueError("field longer than the file")
                if field_number == PROTO_GRAPH_FIELD:
                    has_graph = True
                if field_number == PROTO_METADATA_PROPS_FIELD:
                    entry = io.BytesIO(fh.read(length))
                    item: dict[int, str] = {}
                    while (sub := _varint(entry)) is not None and sub & 7 == 2:
                        n = _varint(entry) or 0
                        item[sub >> 3] = entry.read(n).decode("utf-8")
                    props[item.get(1, "")] = item.get(2, "")
                else:
                    fh.seek(length, os.SEEK_CUR)
            else:
                raise ValueError(f"wire type {wire_type} of field {field_number} is not ONNX's")
            if fh.tell() > size:
                raise ValueError("field longer than the file")
    if not has_graph:
        raise ValueError("no graph")
    return props


def read_metadata(path: str) -> dict[str, Any]:
    """The validated smqgis metadata of the ONNX file ``path``, without building a session.

    Raises
    ------
    ModelError
        If the file is missing, is not an ONNX model, or carries no valid smqgis metadata
        (``parameter="model"``).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ModelError(f"model file not found: {path}; choose an smqgis .onnx model", parameter="model")
    try:
        props = _metadata_props(path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ModelError(
            f"{path} is not a valid ONNX model ({exc}); choose a model exported by `python -m training.export` "
            "or the bundled demo model",
            parameter="model",
        ) from None
    try:
        return schema.from_metadata_props(props)
    except schema.SchemaError as exc:
        raise ModelError(f"{path}: {exc}", parameter="model") from None


class OnnxModel:
    """An smqgis ONNX model ready to run, of the kind ``model_kind`` (every kind's model builds on it).

    Parameters
    ----------
    path : str
        The ONNX file.
    provider : {"auto", "cpu", "cuda"}
        Execution provider; ``"auto"`` takes CUDA when onnxruntime has it, else the CPU.
    threads : int, optional
        onnxruntime intra-op threads (default: the physical cores).
    model_kind : str, optional
        The kind the caller needs (a key of ``kinds.REGISTRY``); a model of another kind is refused.
    arena : bool
        Run with onnxruntime's CPU memory arena: inside a call freed activations are reused instead of
        being mmap'd and page-faulted in afresh layer by layer (block study, docs/benchmark.md: the
        paper-size model's 2240 px block 4.26 ms per output px with it, 6.37 ms without; the demo
        model's 1248 px block 1.5x faster). The arena keeps the largest call's memory until the
        session is closed at the end of the run (``engine.BYTES_PER_BLOCK_PX`` budgets for it).
        False: no arena (every activation malloc'd and freed).

    Attributes
    ----------
    metadata : dict
        The validated smqgis metadata.
    providers : list of str
        The providers the session actually uses, first = the one that runs the graph.
    """

    def __init__(self, path: str, provider: str = "auto", threads: int | None = None,
                 model_kind: str | None = None, arena: bool = True) -> None:
        import onnxruntime as ort

        self.path = str(path)
        self.metadata: dict[str, Any] = read_metadata(self.path)
        if model_kind is not None and self.metadata["model_kind"] != model_kind:
            from . import kinds

            found, wanted = kinds.kind_of(self.metadata), kinds.REGISTRY[model_kind]
            raise ModelError(
                f"{self.path} is a {found.title} model ({found.name}); this needs a {wanted.title} model "
                f"({wanted.name}): choose another model, or map with the {found.algorithm_id} algorithm",
                parameter="model",
            )
        wanted_providers = _provider_list(provider)
        try:
            self.session = ort.InferenceSession(self.path, sess_options=session_options(threads, arena=arena),
                                                providers=wanted_providers)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
            raise ModelError(
                f"{self.path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]}); "
                "choose a model exported by `python -m training.export` or the bundled demo model",
                parameter="model",
            ) from None
        self._check_graph()
        self.providers: list[str] = list(self.session.get_providers())
        log.info("model %s (%s, %s, %s) runs on %s", os.path.basename(self.path), self.metadata["model_kind"],
                 self.metadata["variant"], self.precision, self.providers[0])

    def _check_graph(self) -> None:
        """ModelError unless the graph's inputs are the metadata's."""
        graph_inputs = [i.name for i in self.session.get_inputs()]
        if set(graph_inputs) != set(self.roles):
            raise ModelError(
                f"{self.path}: the graph's inputs {sorted(graph_inputs)} differ from its metadata's "
                f"{sorted(self.roles)}",
                parameter="model",
            )
        self.output_name = self.session.get_outputs()[0].name

    @property
    def label(self) -> str:
        """Label shown to users (says "simulated" for models trained on simulated data)."""
        return str(self.metadata["label"])

    @property
    def precision(self) -> str:
        """Numeric precision of the graph (``schema.PRECISIONS``: "float32", or "int8" for a quantized model).

        Inputs and outputs are float32 whatever it is; models without the field are float32.
        """
        return schema.precision_of(self.metadata)

    @property
    def roles(self) -> list[str]:
        """Names of the graph inputs, in metadata order."""
        return [spec["name"] for spec in self.metadata["inputs"]]

    @property
    def provider(self) -> str:
        """The execution provider that runs the graph."""
        return self.providers[0]

    def bands(self, role: str) -> list[dict[str, Any]]:
        """Band specs (``ref``, ``units``, ``encoding``) of input ``role``, in channel order."""
        spec = schema.input_spec(self.metadata, role)
        return list(spec["bands"]) if spec else []

    def evaluate(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run the graph on ``feeds`` (input name -> array, cast to contiguous float32); the first output.

        Raises
        ------
        InferenceError
            When onnxruntime fails (e.g. out of device memory), with the input shapes and what to try.
        """
        feeds = {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in feeds.items()}
        try:
            (out,) = self.session.run([self.output_name], feeds)
        except Exception as exc:  # onnxruntime's pybind errors (Fail, RuntimeException, ...) derive from Exception
            shapes = {role: tuple(arr.shape) for role, arr in feeds.items()}
            raise InferenceError(
                f"onnxruntime failed on {self.providers[0] if self.providers else 'its provider'} with inputs "
                f"{shapes} ({type(exc).__name__}: {exc}); try a smaller tile (tile_px / TILE_PX) or the CPU provider"
            ) from exc
        return np.asarray(out, dtype=np.float32)


def load_model(path: str, provider: str = "auto", threads: int | None = None) -> OnnxModel:
    """Open the smqgis model at ``path`` as its own kind (the kind module's ``open_model``).

    Raises
    ------
    ModelError
        For a missing or corrupt file, metadata that is not smqgis', or a kind this smqgis does not know.
    """
    from . import kinds

    return kinds.implementation(kinds.kind_of(read_metadata(path))).open_model(path, provider=provider, threads=threads)
