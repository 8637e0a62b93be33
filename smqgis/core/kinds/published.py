"""Model kind ``published_tf1_fusion``: the authors' released TF-1 model of paper 000, converted to ONNX.

``python -m training.import_published`` converts the release (a TF-1 SavedModel, tag "serve")
and writes this kind's metadata; this module validates it, opens the ONNX session and maps with
it over the user's rasters, reusing the 320 m pipeline's reader/warper (``pipeline.prepare``),
tiled engine (``engine.run_tiles``, exact mode) and GeoTIFF writer. QGIS-free.

The input contract recorded in the metadata (the release's ``run_inference.py``):

- ``high_res`` -> ``ImageTensor:0`` [N, 512, 512, 10], float32, 10 m: VV, VH (dB, -25..5 -> 0..255),
  angle (deg, 0..90), Sentinel-2 L1C B4, B3, B2, B8, B11, B12 (log-sigmoid of Table 17), DEM
  (m, 0..3000, clipped). Each band's encoding is the sources table's (``sources.py``).
- ``low_res`` -> ``LowResImageTensor:0`` [N, 512, 512, 4], SoilGrids 0-5 cm sand, silt, clay
  (g/kg) and bdod (cg/cm3), 0..800 -> 0..255, **at 10 m**: the released dataset stores every
  image, SoilGrids included, as a 512 x 512 int64 feature of one footprint (one
  ``utm_easting_northing_image_polygon`` per example), i.e. SoilGrids resampled to the 10 m
  grid of the 5.12 km window; the graph crops the centre 256 px (2.56 km) of both images, the
  paper's 16 x 16 px at 160 m being that same 2.56 km.
- ``coarse`` -> ``AuxTensor:0`` [N, 2] = [SMAP ssm, GLDAS SoilMoi0_10cm_inst] encoded 0..255 and
  divided by 255 (``value_scale``), SMAP 0..50 mm, GLDAS 0..100 kg/m2, taken at the window centre.
- output ``clip_by_value:0`` [N, 1], m3/m3 in [0, 1].

The released dataset holds integers 0..255 (the DEM truncated after scaling); smqgis feeds the
unrounded float encodings. One model evaluation per 320 m output pixel (exact mode): the graph
crops a fixed 256 px and pools globally, so there is no fully-convolutional fast mode (the
importer measures this and records why under ``published.graph``). N is dynamic when the
importer could make it so (``published.batch_dynamic``), else 1. When the importer measured that
the graph ignores everything outside the centre 256 px, only that centre is read and the rest
of the 512 px window is fed as zeros (same outputs; see :func:`centre_reading_view`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import schema
from ..errors import InferenceError, InputError, ModelError
from ..model import OnnxModel, _provider_list, session_options

log = logging.getLogger(__name__)

KIND = "published_tf1_fusion"
SAVED_MODEL_TAG = "serve"
#: The release's feeds by smqgis input role, and its fetch (``run_inference.py``).
RELEASED_FEEDS = {"high_res": "ImageTensor:0", "low_res": "LowResImageTensor:0", "coarse": "AuxTensor:0"}
RELEASED_FETCH = "clip_by_value:0"
#: Window side of both image feeds (px at 10 m = 5.12 km) and the centre the graph keeps (px).
WINDOW_PX = 512
CROP_PX = 256
PIXEL_SIZE_M = 10.0
#: Output pixel (m): the encoder's stride 32 on 10 m (paper 000); one window per output pixel.
NOMINAL_RESOLUTION_M = 320.0
#: Band order of each feed (sources.py references), the release's own order.
HIGH_RES_BANDS = tuple(schema.VARIANTS["full"]["high_res"])
LOW_RES_BANDS = tuple(schema.VARIANTS["full"]["low_res"])
AUX_BANDS = tuple(schema.VARIANTS["full"]["coarse"])
#: AuxTensor = encoded coarse value (0..255) x this (``smap_sm / 255``, ``gldas_sm / 255``).
AUX_VALUE_SCALE = 1.0 / 255.0
#: Output pixels per side of a tile read at once: 16 px -> 736 px blocks of 14 bands (30 MB float32) when
#: reading the 256 px centres, 992 px (55 MB) for full windows.
DEFAULT_TILE_PX = 16
#: Windows per graph call on a GPU when the batch is dynamic. On the CPU one window already keeps every
#: core busy and a batch only adds memory (measured with the stand-in: batch 4 was slower than 1).
DEFAULT_BATCH = 4
DOWNLOAD_URL = "https://storage.googleapis.com/eoscience-public/soil_moisture_retrieval_model/soil_moisture_model.zip"
README_URL = "https://github.com/google-research/google-research/tree/master/soil_moisture_retrieval"
#: Test metrics of the release as published (paper 000, arXiv version, Table 9; the JHM version reports R 0.707).
PAPER_TEST_METRICS = {"ubrmse_m3m3": 0.055, "rmse_m3m3": 0.088, "pearson_r": 0.729,
                      "source": "Batchu et al., arXiv 2206.09649, Table 9 (test split, ISMN sensors)"}


def _bands(refs: tuple[str, ...]) -> list[dict[str, Any]]:
    from ..sources import band_ref

    out = []
    for ref in refs:
        _, band = band_ref(ref)
        out.append({"ref": ref, "units": band.units, "encoding": dict(band.encoding)})
    return out


def build_metadata(*, feeds: dict[str, str], fetch: str, trained_on: str, published: dict[str, Any],
                   created_utc: str = "") -> dict[str, Any]:
    """The smqgis metadata of an imported release (validated).

    Parameters
    ----------
    feeds : dict
        Tensor name per role (``high_res``, ``low_res``, ``coarse``).
    fetch : str
        The output tensor name.
    trained_on : {"ismn", "random"}
        "ismn" for the authors' release; "random" for test stand-ins (labelled so).
    published : dict
        What the importer found and measured (signature, batch, graph analysis, parity, timing).
    """
    if trained_on == "ismn":
        title = "Published fusion model (Batchu et al. 2023, authors' TF-1 release)"
        label = "Published fusion model (paper 000), trained on ISMN sensors"
        described = ("ISMN 0-5 cm sensors and SMAP core validation sites, 2015-2021, split by sensor "
                     "(85,591 training points; paper 000 section 2)")
    elif trained_on == "random":
        title = "Stand-in for the published model (random weights, test only)"
        label = "TEST stand-in with random weights - not a soil-moisture model"
        described = "random weights (a test stand-in with the release's interface)"
    else:
        raise schema.SchemaError(f"trained_on must be 'ismn' or 'random', got {trained_on!r}")
    roles = {"high_res": HIGH_RES_BANDS, "low_res": LOW_RES_BANDS, "coarse": AUX_BANDS}
    inputs = []
    for role, refs in roles.items():
        image = role != "coarse"
        spec = {
            "name": role, "tensor": feeds[role], "layout": "NHWC" if image else "NC",
            "window_px": WINDOW_PX if image else 0, "pixel_size_m": PIXEL_SIZE_M if image else 0.0,
            "output_stride": 32 if role == "high_res" else 0, "bands": _bands(refs),
        }
        if image:
            spec["centre_crop_px"] = CROP_PX
        else:
            spec["value_scale"] = AUX_VALUE_SCALE
        inputs.append(spec)
    meta = {
        "schema": schema.SCHEMA_NAME,
        "schema_version": schema.SCHEMA_VERSION,
        "model_kind": KIND,
        "variant": "full",
        "title": title,
        "description": ("The model released with paper 000 (Batchu, Nearing, Gulshan 2023), converted from its "
                        f"TF-1 SavedModel by smqgis. Download: {DOWNLOAD_URL} (see {README_URL})."),
        "trained_on": {"kind": trained_on, "description": described},
        "label": label,
        "inputs": inputs,
        "output": {"name": fetch, "units": "m3/m3", "valid_range": [0.0, 1.0],
                   "quantity": "volumetric soil moisture, top ~5 cm"},
        "nominal_resolution_m": NOMINAL_RESOLUTION_M,
        "fully_convolutional": None,
        "pooling": {"kind": "inside the graph"},
        "metrics": {"test": dict(PAPER_TEST_METRICS)} if trained_on == "ismn" else {},
        "training": {},
        "published": {
            "download_url": DOWNLOAD_URL,
            "input_values": "the released dataset holds integers 0-255 (DEM truncated after scaling); "
                            "smqgis feeds the unrounded float encodings",
            "low_res_pixel_size_m": PIXEL_SIZE_M,
            **published,
        },
        "created_utc": created_utc,
        "producer": "smqgis training/import_published.py",
    }
    schema.validate(meta)
    validate_metadata(meta)
    return meta


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise schema.SchemaError(msg)


def validate_metadata(meta: dict[str, Any]) -> None:
    """Checks of this kind beyond the generic schema; raises ``schema.SchemaError``."""
    _require(meta.get("model_kind") == KIND, f"not a {KIND} model (model_kind {meta.get('model_kind')!r})")
    names = [spec.get("name") for spec in meta["inputs"]]
    _require(names == ["high_res", "low_res", "coarse"],
             f"{KIND}: inputs must be high_res, low_res, coarse; got {names}")
    expected = {"high_res": HIGH_RES_BANDS, "low_res": LOW_RES_BANDS, "coarse": AUX_BANDS}
    for spec in meta["inputs"]:
        role = spec["name"]
        refs = tuple(b["ref"] for b in spec["bands"])
        _require(refs == expected[role], f"{KIND}: input {role} must take {list(expected[role])} in this order, "
                                         f"got {list(refs)}")
        _require(isinstance(spec.get("tensor"), str) and spec["tensor"], f"{KIND}: input {role} names no tensor")
        if role == "coarse":
            _require(spec["layout"] == "NC", f"{KIND}: coarse must be NC")
            _require(abs(float(spec.get("value_scale", 0)) - AUX_VALUE_SCALE) < 1e-12,
                     f"{KIND}: coarse value_scale must be 1/255 (AuxTensor = [smap/255, gldas/255])")
        else:
            _require(spec["layout"] == "NHWC" and int(spec["window_px"]) == WINDOW_PX
                     and float(spec["pixel_size_m"]) == PIXEL_SIZE_M,
                     f"{KIND}: input {role} must be NHWC windows of {WINDOW_PX} px at {PIXEL_SIZE_M} m")
    _require(float(meta["nominal_resolution_m"]) == NOMINAL_RESOLUTION_M,
             f"{KIND}: nominal_resolution_m must be {NOMINAL_RESOLUTION_M}")
    _require(meta.get("fully_convolutional") is None, f"{KIND}: the release has no fully-convolutional mode")
    _require(meta["trained_on"].get("kind") in ("ismn", "random"), f"{KIND}: trained_on.kind must be ismn or random")
    if meta["trained_on"]["kind"] == "random":
        _require("test" in meta["label"].lower(), f"{KIND}: a random-weight stand-in must say TEST in its label")
    pub = meta.get("published")
    _require(isinstance(pub, dict) and isinstance(pub.get("batch_dynamic"), bool),
             f"{KIND}: metadata lacks published.batch_dynamic; re-import with training.import_published")


class PublishedModel(OnnxModel):
    """An imported release ready to run: the engine's ``Model`` protocol over the released tensors.

    An :class:`~smqgis.core.model.OnnxModel` to the 320 m pipeline (``pipeline.prepare`` reads
    and encodes ``metadata["inputs"]`` by role); :meth:`run` maps the roles onto the released
    tensors, scales the aux values and evaluates one window per output pixel.

    Parameters
    ----------
    path : str
        The ONNX file written by ``training.import_published``.
    provider : {"auto", "cpu", "cuda"}
        onnxruntime execution provider.
    threads : int, optional
        onnxruntime intra-op threads (default: the physical cores).
    """

    def __init__(self, path: str, provider: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = str(path)
        if not os.path.isfile(self.path):
            raise ModelError(f"model file not found: {self.path}; import the published model first "
                             "(smqgis:import_published_model or python -m training.import_published)")
        try:
            self.session = ort.InferenceSession(self.path, sess_options=session_options(threads),
                                                providers=_provider_list(provider))
        except InputError:
            raise
        except Exception as exc:  # onnxruntime's own Fail / InvalidProtobuf types
            raise ModelError(f"{self.path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]})") \
                from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        try:
            meta = schema.from_metadata_props(props)
            validate_metadata(meta)
        except schema.SchemaError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        self.metadata: dict[str, Any] = meta
        self.tensors = {spec["name"]: spec["tensor"] for spec in meta["inputs"]}
        graph_inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if set(graph_inputs) != set(self.tensors.values()):
            raise ModelError(f"{self.path}: the graph's inputs {sorted(graph_inputs)} differ from its metadata's "
                             f"{sorted(self.tensors.values())}")
        self.batch_dynamic = bool(meta["published"]["batch_dynamic"]) and not isinstance(
            graph_inputs[self.tensors["high_res"]][0], int)
        self.output_name = self.session.get_outputs()[0].name
        self.providers: list[str] = list(self.session.get_providers())
        log.info("published model %s runs on %s (batch %s)", os.path.basename(self.path), self.providers[0],
                 "dynamic" if self.batch_dynamic else "1")

    def run(self, high_res: np.ndarray | None = None, low_res: np.ndarray | None = None,
            coarse: np.ndarray | None = None) -> np.ndarray:
        """Soil moisture (m3/m3, shape (N,)) of N windows of encoded inputs (float32, 0-255).

        Parameters
        ----------
        high_res : ndarray, shape (N, 512, 512, 10)
            Or (N, 256, 256, 10), the centre only: placed in the middle of a zero 512 px window
            (see :func:`centre_reading_view`).
        low_res : ndarray, shape (N, 512, 512, 4)
            Or its 256 px centre, likewise.
        coarse : ndarray, shape (N, 2)
            Encoded SMAP and GLDAS (0-255); divided by 255 here as the release expects.
        """
        if high_res is None or low_res is None or coarse is None:
            raise ValueError("the published model needs high_res, low_res and coarse")
        feeds = {
            self.tensors["high_res"]: _centred_window(high_res),
            self.tensors["low_res"]: _centred_window(low_res),
            self.tensors["coarse"]: np.ascontiguousarray(np.asarray(coarse, dtype=np.float32) * AUX_VALUE_SCALE,
                                                         dtype=np.float32),
        }
        n = feeds[self.tensors["coarse"]].shape[0]
        step = n if self.batch_dynamic else 1
        out = np.empty(n, dtype=np.float32)
        for i in range(0, n, step):
            part = {k: v[i:i + step] for k, v in feeds.items()}
            try:
                (value,) = self.session.run([self.output_name], part)
            except Exception as exc:  # onnxruntime's pybind errors derive from Exception
                raise InferenceError(f"onnxruntime failed on {self.providers[0]} with {step} window(s) of "
                                     f"{WINDOW_PX} px ({type(exc).__name__}: {exc}); try the CPU provider") from exc
            out[i:i + step] = np.asarray(value, dtype=np.float32).reshape(-1)
        return out

    def seconds_per_window(self, calls: int = 3) -> float:
        """Measured seconds of one window (= one 320 m output pixel) on this machine and provider.

        One warm-up call, then the median of ``calls`` timed calls on a zero window (the cost does
        not depend on the values).
        """
        hr = np.zeros((1, WINDOW_PX, WINDOW_PX, len(HIGH_RES_BANDS)), dtype=np.float32)
        lr = np.zeros((1, WINDOW_PX, WINDOW_PX, len(LOW_RES_BANDS)), dtype=np.float32)
        aux = np.zeros((1, len(AUX_BANDS)), dtype=np.float32)
        self.run(hr, lr, aux)
        times = []
        for _ in range(max(1, calls)):
            t0 = time.perf_counter()
            self.run(hr, lr, aux)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))


def _centred_window(a: np.ndarray) -> np.ndarray:
    """``a`` (N, h, w, C) as float32 (N, 512, 512, C): itself, or centred in zeros when smaller."""
    a = np.asarray(a, dtype=np.float32)
    n, h, w, c = a.shape
    if (h, w) == (WINDOW_PX, WINDOW_PX):
        return np.ascontiguousarray(a)
    if h > WINDOW_PX or w > WINDOW_PX or (WINDOW_PX - h) % 2 or (WINDOW_PX - w) % 2:
        raise ValueError(f"windows of {h} x {w} px do not centre in the model's {WINDOW_PX} px window")
    out = np.zeros((n, WINDOW_PX, WINDOW_PX, c), dtype=np.float32)
    top, left = (WINDOW_PX - h) // 2, (WINDOW_PX - w) // 2
    out[:, top:top + h, left:left + w] = a
    return out


def centre_reading_view(model: PublishedModel, centre_only: bool | None = None) -> PublishedModel:
    """The model as the reader should see it: full 512 px windows, or only the centre the graph uses.

    The importer measures whether the graph ignores everything outside the centre ``CROP_PX``
    (``published.graph.reads_only_centre_px``; the release crops to 256 px). When it does,
    reading only that centre gives the very same outputs (the rest is fed as zeros) with a
    quarter of the reading and inputs that need reach only 1.28 km, not 2.56 km, beyond the
    mapped pixels. The returned view shares the session; only its ``metadata`` (read by the
    pipeline's grid and reader) says 256 px windows.

    Parameters
    ----------
    model : PublishedModel
    centre_only : bool, optional
        None (default): read the centre when the import measured that the graph ignores the rest.
        False: always read the full window. True: require the measurement, else InputError.
    """
    import copy

    measured = model.metadata["published"].get("graph", {}).get("reads_only_centre_px") == CROP_PX
    if centre_only is None:
        centre_only = measured
    if not centre_only:
        return model
    if not measured:
        raise InputError(f"the import did not find that this graph ignores everything outside its centre {CROP_PX} px; "
                         "read the full window (FULL_WINDOW / centre_only=False)")
    view = copy.copy(model)
    view.metadata = copy.deepcopy(model.metadata)
    for spec in view.metadata["inputs"]:
        if spec["layout"] == "NHWC":
            spec["window_px"] = CROP_PX
    return view


def open_model(path: str, provider: str = "auto", threads: int | None = None) -> PublishedModel:
    """Open an imported release (see :class:`PublishedModel`); raises ModelError / InputError."""
    return PublishedModel(path, provider=provider, threads=threads)


@dataclass
class Estimate:
    """What a run will cost, measured before it starts."""

    output_pixels: int
    width: int
    height: int
    seconds_per_pixel: float
    provider: str

    @property
    def seconds(self) -> float:
        """Expected inference time of the whole run (s), one window per output pixel."""
        return self.output_pixels * self.seconds_per_pixel

    def describe(self) -> str:
        """One line for the user, e.g. '64 output pixels x 0.85 s = about 54 s (CPUExecutionProvider)'."""
        return (f"{self.width} x {self.height} = {self.output_pixels} output pixels of 320 m x "
                f"{self.seconds_per_pixel:.3g} s per pixel (measured now on {self.provider}) = about "
                f"{format_duration(self.seconds)} of inference")


def format_duration(seconds: float) -> str:
    """'54 s', '12.5 min' or '3.2 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_sm_published(
    model: str | PublishedModel,
    inputs: dict[str, Any],
    output_path: str,
    *,
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    dst_crs: str | None = None,
    provider: str = "auto",
    tile_px: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    on_estimate: Callable[[Estimate], bool | None] | None = None,
    centre_only: bool | None = None,
) -> Any:
    """Map soil moisture at 320 m with an imported release, one model window per output pixel.

    Parameters
    ----------
    model : str or PublishedModel
        The imported ONNX file, or one already opened.
    inputs : dict of str to pipeline.LayerInput
        sentinel1, sentinel2, dem, soilgrids, smap, gldas (all six are needed).
    output_path : str
        Target GeoTIFF (band 1 m3/m3, band 2 input coverage); written to a temporary file and
        renamed on success, nothing left on failure.
    extent, extent_crs, dst_crs
        As in ``pipeline.estimate_sm_320m``; the windows are 5.12 km, so the default extent
        (where all inputs overlap) is inset 2.4 km from the overlap's edges.
    provider : {"auto", "cpu", "cuda"}
        onnxruntime execution provider.
    tile_px : int, optional
        Output pixels per tile side read at once (default ``DEFAULT_TILE_PX``).
    batch_size : int, optional
        Windows per graph call (default ``DEFAULT_BATCH`` on CUDA when the batch is dynamic, else 1).
    progress, is_cancelled
        As in ``pipeline.estimate_sm_320m``.
    on_estimate : callable, optional
        Called with the :class:`Estimate` (measured time per output pixel) before inference
        starts; returning False stops there (nothing written) and the Estimate is returned.
    centre_only : bool, optional
        Read only the centre 256 px of each window (default when the import measured that the
        graph ignores the rest; same outputs, inputs need reach only 1.28 km beyond the map) or
        the full 512 px (False); see :func:`centre_reading_view`.

    Returns
    -------
    pipeline.RunResult or Estimate
    """
    from functools import partial

    from ..engine import NODATA, run_tiles
    from ..errors import Cancelled
    from ..layers import gdal_env
    from ..output import GeoTiffWriter, check_writable
    from ..pipeline import RunResult, prepare, provenance_tags
    from .fusion import predict_tile

    check_writable(output_path)
    if not isinstance(model, PublishedModel):
        model = open_model(str(model), provider=provider)
    reading = centre_reading_view(model, centre_only)
    read_px = int(reading.metadata["inputs"][0]["window_px"])
    run = prepare(reading, inputs, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs, provider=provider)
    try:
        estimate = Estimate(run.grid.width * run.grid.height, run.grid.width, run.grid.height,
                            model.seconds_per_window(), model.provider)
        log.info("published model: %s", estimate.describe())
        if on_estimate is not None and on_estimate(estimate) is False:
            return estimate
        if is_cancelled is not None and is_cancelled():
            raise Cancelled("cancelled by the user; nothing was written")
        tile = int(tile_px or DEFAULT_TILE_PX)
        batch = int(batch_size or (DEFAULT_BATCH if model.batch_dynamic and "CUDA" in model.provider else 1))
        writer = GeoTiffWriter(run.grid, output_path)
        try:
            with gdal_env():
                stats = run_tiles(partial(predict_tile, model, run.grid, mode="exact", batch_size=batch), run.reader,
                                  run.grid, writer, tile_px=tile, label="exact mode (published model)",
                                  progress=progress, is_cancelled=is_cancelled)
            tags = provenance_tags(run, MODE="exact", TILE_PX=str(tile))
            pub = model.metadata["published"]
            per_pixel = stats.seconds["inference"] / max(1, run.grid.width * run.grid.height)
            tags.update({
                "MODEL_KIND": KIND,
                "MODEL_SOURCE": pub.get("source_file", ""),
                "MODEL_SAVED_MODEL_SHA256": pub.get("saved_model_sha256", ""),
                "MODEL_PARITY_MAX_ABS_DIFF": json.dumps(pub.get("parity_max_abs_diff_m3m3", {}), sort_keys=True),
                "WINDOW": f"{WINDOW_PX} px at {PIXEL_SIZE_M:g} m (graph keeps the centre {CROP_PX} px)",
                "WINDOW_READ_PX": str(read_px) + ("" if read_px == WINDOW_PX else " (centre; zeros outside, which "
                                                   "the graph ignores)"),
                "SECONDS_PER_OUTPUT_PIXEL_ESTIMATED": f"{estimate.seconds_per_pixel:.4g}",
                "SECONDS_PER_OUTPUT_PIXEL_RUN": f"{per_pixel:.4g}",
                "BATCH": str(batch),
            })
            writer.commit(tags)
        except BaseException:
            writer.abort()
            raise
    finally:
        run.close()
    summary = stats.summary()
    log.info("wrote %s: %d x %d px, mean %.4f m3/m3, %.3g s per output pixel", writer.output_path,
             run.grid.width, run.grid.height, summary["mean"], per_pixel)
    return RunResult(
        output_path=writer.output_path, crs=run.grid.crs, transform=tuple(run.grid.transform)[:6],
        width=run.grid.width, height=run.grid.height, nodata=NODATA, stats=summary, provider=model.provider,
        mode="exact", label=model.label, seconds={**stats.seconds, "per_output_pixel": per_pixel,
                                                  "estimated_per_output_pixel": estimate.seconds_per_pixel},
        warnings=list(run.warnings), notes=list(getattr(run, "notes", [])),
    )

