"""Loading an smqgis ONNX model: the onnxruntime session plus its validated metadata.

Step four of the flow (tiled ONNX inference) starts here. The file's ``metadata_props``
carry the smqgis schema (``schema.py``), which says which bands each graph input takes and
how they are encoded; this module checks that the graph agrees with it, picks the
execution provider, and offers one call, :meth:`FusionModel.run`, used by both the exact
and the fast mode (the graph-calling convention of ``schema.py``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from . import schema
from .errors import InferenceError, InputError, ModelError

log = logging.getLogger(__name__)

PROVIDERS = schema.EXECUTION_PROVIDERS
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


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


def session_options(threads: int | None = None) -> Any:
    """onnxruntime session options of an smqgis run.

    ``threads`` intra-op threads (default: the physical cores), one inter-op thread and
    sequential execution (the graph is a chain: parallel branches only contend for cores),
    every graph optimisation (fusions, NCHWc blocked layout), and no memory arena or memory
    pattern: activations are returned to the system after each call, so peak memory is that
    of the largest call and does not grow with the number of tile shapes a run meets
    (measured: paper-size model, 1536 px block, peak RSS 2.6 -> 1.5 GiB; see docs/benchmark.md).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or physical_cores())
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3
    return opts


def _provider_list(provider: str) -> list[str]:
    if provider not in PROVIDERS:
        raise InputError(f"unknown execution provider {provider!r}; choose one of {PROVIDERS}")
    available = available_providers()
    if provider == "cuda" and _CUDA not in available:
        raise InputError(
            "onnxruntime has no CUDA execution provider here (it offers "
            f"{available}); install onnxruntime-gpu (`pip install onnxruntime-gpu`, needs CUDA 12 and cuDNN 9) "
            "or choose the CPU provider"
        )
    if provider in ("cuda", "auto") and _CUDA in available:
        return [_CUDA, _CPU]
    return [_CPU]


class FusionModel:
    """An smqgis fusion model ready to run.

    Parameters
    ----------
    path : str
        The ONNX file.
    provider : {"auto", "cpu", "cuda"}
        Execution provider; ``"auto"`` takes CUDA when onnxruntime has it, else the CPU.
    threads : int, optional
        onnxruntime intra-op threads (default: the physical cores).

    Attributes
    ----------
    metadata : dict
        The validated smqgis metadata.
    providers : list of str
        The providers the session actually uses, first = the one that runs the graph.
    """

    def __init__(self, path: str, provider: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = str(path)
        if not os.path.isfile(self.path):
            raise ModelError(f"model file not found: {self.path}; choose an smqgis .onnx model")
        wanted = _provider_list(provider)
        try:
            self.session = ort.InferenceSession(self.path, sess_options=session_options(threads), providers=wanted)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
            raise ModelError(
                f"{self.path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]}); "
                "choose a model exported by `python -m training.export` or the bundled demo model"
            ) from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        try:
            self.metadata: dict[str, Any] = schema.from_metadata_props(props)
        except schema.SchemaError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        if self.metadata["model_kind"] != "fusion_320m":
            raise ModelError(
                f"{self.path} is a {self.metadata['model_kind']!r} model; the 320 m map needs a 'fusion_320m' model"
            )
        self._check_graph()
        self.providers: list[str] = list(self.session.get_providers())
        log.info("model %s (%s) runs on %s", os.path.basename(self.path), self.metadata["variant"], self.providers[0])

    def _check_graph(self) -> None:
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        meta_names = [spec["name"] for spec in self.metadata["inputs"]]
        if set(graph_inputs) != set(meta_names):
            raise ModelError(
                f"{self.path}: the graph's inputs {sorted(graph_inputs)} differ from its metadata's {sorted(meta_names)}"
            )
        for spec in self.metadata["inputs"]:
            shape = graph_inputs[spec["name"]].shape
            channels = shape[-1] if shape else None
            if isinstance(channels, int) and channels != len(spec["bands"]):
                raise ModelError(
                    f"{self.path}: input {spec['name']!r} takes {channels} channels but its metadata lists "
                    f"{len(spec['bands'])} bands"
                )
        self.output_name = self.session.get_outputs()[0].name

    @property
    def label(self) -> str:
        """Label shown to users (says "simulated" for models trained on simulated data)."""
        return str(self.metadata["label"])

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

    def run(
        self,
        high_res: np.ndarray | None = None,
        low_res: np.ndarray | None = None,
        coarse: np.ndarray | None = None,
    ) -> np.ndarray:
        """Evaluate the graph on encoded inputs (float32, 0-255).

        Parameters
        ----------
        high_res : ndarray, shape (N, H, W, C), optional
            N windows of 256 px (exact mode) or one large tile (fast mode), H and W multiples of 32.
        low_res : ndarray, shape (P, 16, 16, C_low), optional
            One 160 m window per output pixel, row-major.
        coarse : ndarray, shape (P, K), optional
            The coarse values at each output pixel's window centre.

        Returns
        -------
        ndarray, shape (P,)
            Soil moisture (m3/m3, float32), one value per output pixel in row-major order.
        """
        given = {"high_res": high_res, "low_res": low_res, "coarse": coarse}
        feeds = {}
        for role in self.roles:
            if given[role] is None:
                raise ValueError(f"the model needs the {role!r} input")
            feeds[role] = np.ascontiguousarray(given[role], dtype=np.float32)
        try:
            (out,) = self.session.run([self.output_name], feeds)
        except Exception as exc:  # onnxruntime's pybind errors (Fail, RuntimeException, ...) derive from Exception
            shapes = {role: tuple(arr.shape) for role, arr in feeds.items()}
            raise InferenceError(
                f"onnxruntime failed on {self.providers[0] if self.providers else 'its provider'} with inputs "
                f"{shapes} ({type(exc).__name__}: {exc}); try a smaller tile (tile_px / TILE_PX) or the CPU provider"
            ) from exc
        return np.asarray(out, dtype=np.float32).reshape(-1)


def load_model(path: str, provider: str = "auto", threads: int | None = None) -> FusionModel:
    """Open an smqgis fusion model (see :class:`FusionModel`)."""
    return FusionModel(path, provider=provider, threads=threads)
