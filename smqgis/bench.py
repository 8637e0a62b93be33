"""``python -m smqgis.bench``: fast (fully-convolutional) vs exact (window per pixel) mapping, measured.

Issue 5's benchmark. For each model (``small``: the CPU-sized config; ``paper``: Xception-65 /
Xception-41 at full width, random weights) and each area (5, 10, 20, 40 km squares) it
synthesises local GeoTIFF inputs (each source in its usual CRS and resolution), maps them
end to end with :func:`smqgis.core.kinds.fusion.estimate_sm_320m` in fast mode, and times exact
mode on a sample of windows (exact mode at 20-40 km takes hours with the paper model: its
time is the sampled time per output pixel times the area's pixels - extrapolated, and the
report says so). Each case runs in its own process so its peak RSS is its own. FLOPs come
from the ONNX graph with shape inference (convolutions and matrix products); the
onnxruntime peak is a 2048^3 MatMul measured in each case's process right before its run,
with the same threads, so "% of peak" compares numbers taken minutes apart at most on a
shared machine. With the demo model present it also reports the mean |fast - exact| on the
sample scene. Writes ``bench.json`` and ``bench.md`` to ``--out`` (default build/bench).
Quick run: ``python -m smqgis.bench --areas 5,10 --models small``.

Models: ``demo`` is the bundled demo model (the small config, trained on the simulated world), and
``<name>_int8`` the model ``name`` quantized by ``training/quantize.py`` (fast mode only: exact mode
is the float32 reference). Where both precisions of a model ran, the report compares them: speed
(wall and inference time, same run) and mean / max |int8 - fp32| (m3/m3) over each area's map and
over the sample scene. ``--big-km 100`` also maps one 100 x 100 km area end to end, measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .paths import DEMO_MODEL_PATH, PLUGIN_DIR

log = logging.getLogger("smqgis.bench")

ROOT = PLUGIN_DIR
UTM = "EPSG:32614"
ORIGIN = (600000.0, 3900000.0)  # SW corner of every synthetic area (m, UTM 14N)
MODELS = {
    "small": ROOT / "build" / "models" / "smqgis_small_full_random.onnx",
    "paper": ROOT / "build" / "models" / "smqgis_paper_full_random.onnx",
    "demo": DEMO_MODEL_PATH,
}
#: Suffix of a model name meaning "that model quantized to int8" (``training/quantize.py``).
INT8 = "_int8"
EXACT_SAMPLE_PX = 6  # exact mode is timed on a 6 x 6 block of output pixels (36 windows)


# --- models -------------------------------------------------------------------------------------

def path_of(name: str) -> Path:
    """Where model ``name`` lives: ``MODELS``, or for ``<name>_int8`` beside the float32 one in build/models."""
    if name.endswith(INT8):
        return ROOT / "build" / "models" / f"{MODELS[name[: -len(INT8)]].stem}{INT8}.onnx"
    return MODELS[name]


def ensure_model(name: str) -> Path:
    """The model file ``name``: exported with random weights by training/export.py, or quantized, if missing."""
    path = path_of(name)
    if path.is_file():
        return path
    train_py = ROOT / ".venv-train" / "bin" / "python"
    if not train_py.exists():
        raise SystemExit(f"{path} is missing and there is no training environment to export it (make venv-train)")
    if name.endswith(INT8):
        source = ensure_model(name[: -len(INT8)])
        log.info("quantizing %s to int8 -> %s", source, path)
        subprocess.run([str(train_py), "-m", "training.quantize", str(source), "--out", str(path)], cwd=ROOT,
                       check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        return path
    log.info("exporting the %s model with random weights to %s", name, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(train_py), "-m", "training.export", "--random-init", "--config", name, "--variant", "full", "--seed",
         "0", "--out", str(path), "--title", f"smqgis fusion model ({name} config, random init)", "--trained-on",
         "random", "--trained-on-description", "untrained random weights - for benchmarks only"],
        cwd=ROOT, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return path


def count_flops(model_path: Path, high_res_hw: tuple[int, int], n_windows: int = 1) -> float:
    """Multiply-add FLOPs (x2) of one graph call, from the ONNX graph with shape inference.

    ``high_res`` is [n_windows, H, W, C]; ``low_res`` and ``coarse`` get one row per output pixel.
    Counts Conv, ConvTranspose-free graphs' MatMul and Gemm; element-wise ops are ignored.
    """
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(model_path))
    h, w = high_res_hw
    p = n_windows * (h // 32 - 7) * (w // 32 - 7)
    dims = {"high_res": [n_windows, h, w], "low_res": [p, 16, 16], "coarse": [p]}
    for inp in model.graph.input:
        shape = inp.type.tensor_type.shape
        for d, v in zip(shape.dim, dims.get(inp.name, [])):
            d.ClearField("dim_param")
            d.dim_value = v
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    inits = {i.name: list(i.dims) for i in inferred.graph.initializer}
    shapes.update(inits)
    flops = 0.0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            wshape = shapes.get(node.input[1])
            if out and wshape and all(out):
                flops += 2.0 * float(np.prod(out)) * float(np.prod(wshape[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            if a and b and out and all(out):
                flops += 2.0 * float(np.prod(out)) * float(a[-1])
    return flops


def ort_peak_gflops(threads: int, n: int = 2048, repeats: int = 3) -> float:
    """onnxruntime's MatMul throughput (GFLOP/s) on n x n x n, best of ``repeats``, same session options."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from .core.model import session_options

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])
    a = rng.standard_normal((n, n)).astype(np.float32)
    sess.run(None, {"a": a})
    best = min(_timed(lambda: sess.run(None, {"a": a})) for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9


def peak_rss_mib() -> float:
    """Peak resident memory of this process's own address space (MiB): ``VmHWM`` of /proc/self/status.

    Not ``getrusage().ru_maxrss``: Linux carries that over an exec from the process that spawned
    this one, so every case process of the benchmark reported at least the parent's peak (which
    holds the synthesised inputs: 962 MiB after the 40 km inputs, 3233 MiB after the 100 km ones;
    the RSS columns of the runs before 2026-12-04 were floored that way).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- inputs ---------------------------------------------------------------------------------------

def _field(shape: tuple[int, int], rng: np.random.Generator, lo: float, hi: float, cell: int) -> np.ndarray:
    """A smooth-ish random field: coarse noise repeated to ``cell`` px blocks plus fine noise, in [lo, hi]."""
    coarse = rng.uniform(0, 1, (shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    f = np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[: shape[0], : shape[1]]
    f = 0.8 * f + 0.2 * rng.uniform(0, 1, shape).astype(np.float32)
    return (lo + (hi - lo) * f).astype(np.float32)


def _write(path: Path, crs: str, transform: Any, shape: tuple[int, int], bands: list[tuple[str, float, float]],
           dtype: str, rng: np.random.Generator, cell: int, nodata: float | None) -> None:
    import rasterio

    profile = {"driver": "GTiff", "width": shape[1], "height": shape[0], "count": len(bands), "dtype": dtype,
               "crs": crs, "transform": transform, "nodata": nodata}
    if min(shape) >= 512:
        profile.update(tiled=True, blockxsize=512, blockysize=512)
    with rasterio.open(path, "w", **profile) as ds:
        for i, (name, lo, hi) in enumerate(bands, start=1):
            ds.write(_field(shape, rng, lo, hi, cell).astype(dtype), i)
            ds.set_band_description(i, name)
        ds.update_tags(ACQUISITION_TIME="2020-06-01T12:00:00Z")


def synthesise_inputs(folder: Path, area_km: float, seed: int = 0) -> dict[str, str]:
    """GeoTIFF inputs covering an ``area_km`` square output area plus the 1280 m window reach.

    Sentinel-1 (float32 dB) and Sentinel-2 (uint16 DN) in UTM 14N at 10 m, the DEM in lon/lat
    at 1 arc-second (int16), SoilGrids in lon/lat at 0.0025 deg, SMAP and GLDAS in lon/lat.
    """
    from affine import Affine
    from rasterio.warp import transform_bounds

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "inputs.json"
    if done.is_file():
        return json.loads(done.read_text())
    rng = np.random.default_rng(seed)
    side = area_km * 1000.0 + 2 * 1280.0
    x0, y0 = ORIGIN[0] - 1280.0, ORIGIN[1] - 1280.0
    bounds = (x0, y0, x0 + side, y0 + side)
    n = int(round(side / 10.0))
    t10 = Affine(10.0, 0, x0, 0, -10.0, y0 + side)
    paths = {k: str(folder / f"{k}.tif") for k in ("sentinel1", "sentinel2", "dem", "soilgrids", "smap", "gldas")}
    _write(Path(paths["sentinel1"]), UTM, t10, (n, n), [("VV", -20, -5), ("VH", -25, -12), ("angle", 30, 45)],
           "float32", rng, 64, -9999.0)
    _write(Path(paths["sentinel2"]), UTM, t10, (n, n), [(b, 300, 4000) for b in ("B4", "B3", "B2", "B8", "B11", "B12")],
           "uint16", rng, 64, 0)
    ll = transform_bounds(UTM, "EPSG:4326", *bounds)
    pad = 0.01
    for key, res, bands, dtype, cell, nodata in (
        ("dem", 1 / 3600, [("elevation", 250, 450)], "int16", 32, -32768),
        ("soilgrids", 0.0025, [("sand", 100, 600), ("silt", 100, 500), ("clay", 50, 400), ("bdod", 110, 160)],
         "int16", 4, -32768),
        ("smap", 0.09, [("ssm", 5, 40)], "float32", 1, -9999.0),
        ("gldas", 0.25, [("SoilMoi0_10cm_inst", 10, 45)], "float32", 1, -9999.0),
    ):
        w = int(np.ceil((ll[2] - ll[0] + 2 * pad) / res)) + 1
        h = int(np.ceil((ll[3] - ll[1] + 2 * pad) / res)) + 1
        t = Affine(res, 0, ll[0] - pad, 0, -res, ll[3] + pad)
        _write(Path(paths[key]), "EPSG:4326", t, (h, w), bands, dtype, rng, cell, nodata)
    done.write_text(json.dumps(paths))
    return paths


# --- one case (own process) ---------------------------------------------------------------------------

def run_case(model_path: str, inputs: dict[str, str], area_km: float, mode: str, out: Path,
             tile_px: int | None, memory_budget_mib: float | None) -> dict[str, Any]:
    """Map the area (fast) or a sample block of it (exact); timings, peak RSS and the onnxruntime peak.

    The onnxruntime peak is measured in this process right before the run; the peak RSS is
    taken right after it (FLOPs are counted by the parent, not here).
    """
    from .core.kinds.fusion import estimate_sm_320m
    from .core.model import physical_cores
    from .core.pipeline import LayerInput

    threads = physical_cores()
    load = os.getloadavg()
    peak = ort_peak_gflops(threads)
    layer_inputs = {k: LayerInput(p) for k, p in inputs.items()}
    extent = (ORIGIN[0], ORIGIN[1], ORIGIN[0] + area_km * 1000.0, ORIGIN[1] + area_km * 1000.0)
    n_area = int(round(area_km * 1000.0 / 320.0)) ** 2
    if mode == "exact":
        side = EXACT_SAMPLE_PX * 320.0
        cx, cy = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
        extent = (cx - side / 2, cy - side / 2, cx + side / 2 - 1, cy + side / 2 - 1)
    t0 = time.perf_counter()
    res = estimate_sm_320m(model_path, layer_inputs, str(out), extent=extent, extent_crs=UTM, mode=mode,
                           provider="cpu", tile_px=tile_px, memory_budget_mib=memory_budget_mib)
    wall = time.perf_counter() - t0
    rss = peak_rss_mib()
    return {
        "mode": mode, "area_km": area_km, "output_px": res.width * res.height, "area_output_px": n_area,
        "extrapolated": mode == "exact" and res.width * res.height < n_area,
        "width": res.width, "height": res.height, "tile_px": int(_tags(res.output_path)["TILE_PX"]),
        "wall_s": wall, "seconds": res.seconds, "threads": threads, "ort_peak_gflops": peak, "output": str(out),
        "load_average_before": load,
        "peak_rss_mib": rss, "valid_fraction": res.stats["valid_fraction"], "mean_sm": res.stats["mean"],
    }


def add_flops(case: dict[str, Any], model_path: Path) -> None:
    """Add the case's graph FLOPs (GFLOP) and its inference rate (GFLOP/s, % of its onnxruntime peak)."""
    if case["mode"] == "fast":
        flops = _fast_flops(str(model_path), case["width"], case["height"], case["tile_px"])
    else:
        flops = count_flops(model_path, (256, 256)) * case["output_px"]
    rate = flops / 1e9 / max(case["seconds"]["inference"], 1e-9)
    case.update(gflop=flops / 1e9, gflops_per_s=rate, pct_of_peak=100.0 * rate / case["ort_peak_gflops"])


def fast_exact_agreement(model_path: Path) -> dict[str, Any] | None:
    """Mean and max |fast - exact| (m3/m3) on the bundled sample scene, or None without the demo model."""
    from .core.kinds.fusion import estimate_sm_arrays
    from .demo import SAMPLE, sample_inputs

    if not model_path.is_file() or not (SAMPLE / "manifest.json").is_file():
        return None
    fast, _, _ = estimate_sm_arrays(str(model_path), sample_inputs(), mode="fast", provider="cpu")
    exact, _, _ = estimate_sm_arrays(str(model_path), sample_inputs(), mode="exact", provider="cpu")
    both = (fast != -9999.0) & (exact != -9999.0)
    diff = np.abs(fast[both] - exact[both]).astype(np.float64)
    return {"model": model_path.name, "n_pixels": int(both.sum()), "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": float(diff.max()), "map_std": float(exact[both].std())}


def map_difference(fp32_tif: str, int8_tif: str) -> dict[str, Any]:
    """Mean and max |int8 - fp32| (m3/m3) between two maps of one area, over the pixels both estimate."""
    import rasterio

    with rasterio.open(fp32_tif) as a, rasterio.open(int8_tif) as b:
        x, y = a.read(1), b.read(1)
    both = (x != -9999.0) & (y != -9999.0)
    diff = np.abs(x[both].astype(np.float64) - y[both])
    return {"n_pixels": int(both.sum()), "mean_abs_diff": float(diff.mean()) if diff.size else float("nan"),
            "max_abs_diff": float(diff.max()) if diff.size else float("nan"),
            "map_std": float(x[both].std()) if diff.size else float("nan"),
            "nodata_mismatch_px": int(((x == -9999.0) != (y == -9999.0)).sum())}


def unclipped_copy(path: Path, dst: Path) -> Path:
    """A copy of the model at ``path`` whose output is the estimate before the final clip to [0, 1] m3/m3.

    A model with random weights (the paper-size one here) puts every estimate below 0, so its clipped
    maps are all 0 m3/m3 and |int8 - fp32| = 0 says nothing; the unclipped values show the quantization error.
    """
    import onnx

    model = onnx.load(str(path))
    producers = {out: node for node in model.graph.node for out in node.output}
    name = model.graph.output[0].name
    while name in producers and producers[name].op_type in ("Min", "Max", "Clip"):
        name = producers[name].input[0]
    model.graph.output[0].name = name
    onnx.save(model, str(dst))
    return dst


def embedding_agreement(fp32_model: Path, int8_model: Path) -> dict[str, Any] | None:
    """|int8 - fp32| of the high-res encoder's pooled features on the sample scene (every date, one block each).

    The quantized part of an int8 model is the high-res encoder (``training/quantize.py``); its pooled
    features (the ``_pool`` convolution's output) are compared relative to their float32 spread, which
    means something for a model with random weights too.
    """
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx.utils import extract_model

    from .core.layers import gdal_env
    from .core.model import session_options
    from .core.pipeline import prepare
    from .demo import SAMPLE, sample_dates, sample_inputs

    if not (SAMPLE / "manifest.json").is_file():
        return None
    graph = onnx.load(str(fp32_model), load_external_data=False).graph
    pooled = next((n.output[0] for n in graph.node if "_pool" in n.name and n.op_type == "Conv"), None)
    if pooled is None:
        return None
    diffs, values = [], []
    with tempfile.TemporaryDirectory(prefix="smqgis-bench-") as tmp:
        sessions = []
        for path in (fp32_model, int8_model):
            sub = Path(tmp) / path.name
            extract_model(str(path), str(sub), ["high_res"], [pooled], check_model=False)
            sessions.append(ort.InferenceSession(str(sub), session_options(), providers=["CPUExecutionProvider"]))
        for date in sample_dates():
            run = prepare(str(fp32_model), sample_inputs(Path(date["folder"])), provider="cpu")
            try:
                with gdal_env():
                    block = run.reader.read(0, 0, run.grid.height, run.grid.width).arrays["high_res"][None]
            finally:
                run.close()
            a, b = (s.run(None, {"high_res": block})[0] for s in sessions)
            diffs.append(np.abs(a.astype(np.float64) - b).ravel())
            values.append(a.ravel())
    diff, ref = np.concatenate(diffs), np.concatenate(values)
    return {"tensor": pooled, "n_values": int(diff.size), "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": float(diff.max()), "fp32_std": float(ref.std()),
            "relative_mean_abs_diff": float(diff.mean() / max(ref.std(), 1e-30))}


def sample_precision_agreement(fp32_model: Path, int8_model: Path) -> dict[str, Any] | None:
    """Mean and max |int8 - fp32| (m3/m3, fast mode) on every date of the bundled sample scene.

    Also before the output clip (``unclipped``: the same, and the std of the float32 values).
    """
    import tempfile

    from .core.kinds.fusion import estimate_sm_arrays
    from .demo import SAMPLE, sample_dates, sample_inputs

    if not (SAMPLE / "manifest.json").is_file():
        return None
    result: dict[str, Any] = {"fp32": fp32_model.name, "int8": int8_model.name}
    with tempfile.TemporaryDirectory(prefix="smqgis-bench-") as tmp:
        pairs = {"clipped": (fp32_model, int8_model),
                 "unclipped": (unclipped_copy(fp32_model, Path(tmp) / "fp32.onnx"),
                               unclipped_copy(int8_model, Path(tmp) / "int8.onnx"))}
        for what, (a_path, b_path) in pairs.items():
            dates, pooled, values = [], [], []
            for date in sample_dates():
                inputs = sample_inputs(Path(date["folder"]))
                fp32, _, _ = estimate_sm_arrays(str(a_path), inputs, mode="fast", provider="cpu")
                int8, _, _ = estimate_sm_arrays(str(b_path), inputs, mode="fast", provider="cpu")
                both = (fp32 != -9999.0) & (int8 != -9999.0)
                diff = np.abs(fp32[both].astype(np.float64) - int8[both])
                pooled.append(diff)
                values.append(fp32[both])
                dates.append({"date": date["date"], "mean_abs_diff": float(diff.mean()),
                              "max_abs_diff": float(diff.max()),
                              "mean_signed_diff": float(np.mean(int8[both].astype(np.float64) - fp32[both]))})
            diff = np.concatenate(pooled)
            result[what] = {"n_pixels": int(diff.size), "dates": dates, "mean_abs_diff": float(diff.mean()),
                            "max_abs_diff": float(diff.max()), "fp32_std": float(np.concatenate(values).std()),
                            "fp32_mean": float(np.concatenate(values).mean())}
    result["embedding"] = embedding_agreement(fp32_model, int8_model)
    return result


def _tags(path: str) -> dict[str, str]:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.tags()


def _fast_flops(model_path: str, width: int, height: int, tile: int) -> float:
    from .core.engine import plan_tiles
    from .core.grid import ModelGrid, RoleGrid

    grid = ModelGrid(UTM, 0.0, 0.0, width, height, 320.0, {"high_res": RoleGrid(10.0, 256, 32)})
    cache: dict[tuple[int, int], float] = {}
    total = 0.0
    for _, _, nr, nc in plan_tiles(grid, tile):
        key = (nr, nc)
        if key not in cache:
            cache[key] = count_flops(Path(model_path), (32 * (nr + 7), 32 * (nc + 7)))
        total += cache[key]
    return total


# --- report ---------------------------------------------------------------------------------------

def summarise(cases: list[dict[str, Any]], meta: dict[str, Any], agreement: dict[str, Any] | None,
              int8_sample: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], str]:
    """The JSON document and the markdown report of a benchmark run."""
    rows = []
    lines = [
        f"# smqgis benchmark: fast vs exact mode ({meta['machine']})",
        "",
        f"onnxruntime {meta['onnxruntime']}, CPU provider, {meta['threads']} intra-op threads; created "
        f"{meta['created']}. Command: `{meta['command']}`.",
        "",
        "- **fast s**: end to end from the GeoTIFF inputs to the written raster, model loading included.",
        f"- **exact**: timed on a {EXACT_SAMPLE_PX} x {EXACT_SAMPLE_PX} block of output pixels (read, warp, "
        "encode, inference, write) and **extrapolated** to the area (marked *): exact mode over 20-40 km takes "
        "hours. The ratio compares the engines' own wall times (loading excluded on both sides).",
        "- **% peak**: fast-mode inference GFLOP/s (FLOPs counted from the ONNX graph with shape inference) "
        "over onnxruntime's 2048^3 MatMul rate measured in the same process right before the run.",
        "- **RSS**: peak resident memory of the case's own process.",
        "",
        "| model | area | px | tile (block) | fast s | fast km2/s | fast px/s | exact s | exact px/s | ratio | "
        "fast read/inf/write/wait s | fast GFLOP/s | ort peak GFLOP/s | % peak | fast RSS MiB | exact RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(c["model"], c["area_km"], c["mode"]): c for c in cases}
    for (model, area, mode), fast in sorted(by.items()):
        if mode != "fast":
            continue
        exact = by.get((model, area, "exact"))
        km2 = area * area
        fast_pxs = fast["output_px"] / fast["wall_s"]
        row = {"model": model, "area_km": area, "output_px": fast["output_px"], "tile_px": fast["tile_px"],
               "fast_wall_s": fast["wall_s"], "fast_km2_per_s": km2 / fast["wall_s"], "fast_px_per_s": fast_pxs,
               "fast_seconds": fast["seconds"], "fast_gflops_per_s": fast["gflops_per_s"],
               "ort_peak_gflops": fast["ort_peak_gflops"], "fast_pct_of_peak": fast["pct_of_peak"],
               "fast_peak_rss_mib": fast["peak_rss_mib"]}
        if exact:
            exact_pxs = exact["output_px"] / exact["seconds"]["wall"]
            row.update(exact_px_per_s=exact_pxs, exact_wall_s_area=fast["output_px"] / exact_pxs,
                       exact_extrapolated=exact["extrapolated"],
                       ratio=fast["output_px"] / fast["seconds"]["wall"] / exact_pxs,
                       exact_gflops_per_s=exact["gflops_per_s"], exact_pct_of_peak=exact["pct_of_peak"],
                       exact_peak_rss_mib=exact["peak_rss_mib"])
        rows.append(row)
        s = fast["seconds"]
        block = 32 * (fast["tile_px"] + 7)
        lines.append(
            f"| {model} | {area:g} km | {fast['output_px']} | {fast['tile_px']} ({block}) | {fast['wall_s']:.1f} | "
            f"{row['fast_km2_per_s']:.2f} | {fast_pxs:.0f} | "
            + (f"{row['exact_wall_s_area']:.0f}{'*' if row['exact_extrapolated'] else ''} | {exact_pxs:.2f} | "
               f"{row['ratio']:.1f}x | " if exact else "- | - | - | ")
            + f"{s['read_warp_encode']:.1f}/{s['inference']:.1f}/{s['write']:.2f}/{s['wait_for_input']:.1f} | "
            f"{fast['gflops_per_s']:.0f} | {fast['ort_peak_gflops']:.0f} | {fast['pct_of_peak']:.0f} % | "
            f"{fast['peak_rss_mib']:.0f} | " + (f"{exact['peak_rss_mib']:.0f} |" if exact else "- |")
        )
    lines += ["", "## Growth with area and the 100 x 100 km extrapolation", ""]
    for model in sorted({r["model"] for r in rows}):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["area_km"])
        steps = [f"{a['area_km']:g} -> {b['area_km']:g} km: time x{b['fast_wall_s'] / a['fast_wall_s']:.2f}, "
                 f"RSS x{b['fast_peak_rss_mib'] / a['fast_peak_rss_mib']:.2f}" for a, b in zip(mine, mine[1:])]
        measured = [r for r in mine if r["area_km"] >= 100]
        if measured:
            m = measured[0]
            lines.append(f"- {model}: " + ("; ".join(steps) + ". " if steps else "")
                         + f"**{m['area_km']:g} x {m['area_km']:g} km, measured** end to end (fast, one run): "
                         f"{m['fast_wall_s'] / 60:.1f} min, peak RSS {m['fast_peak_rss_mib']:.0f} MiB.")
            continue
        big = mine[-1]
        per_px = big["fast_wall_s"] / big["output_px"]
        minutes = per_px * (100000 / 320) ** 2 / 60
        for r in rows:
            if r is big:
                r["extrapolated_100km_min"] = minutes
        lines.append(f"- {model}: " + ("; ".join(steps) + ". " if steps else "")
                     + f"**100 x 100 km, extrapolated** (not measured) from the {big['area_km']:g} km run's "
                     f"end-to-end time per output pixel: {minutes:.1f} min (fast).")
    lines += ["", "## Fast vs exact on the sample scene", ""]
    if agreement is None:
        lines.append("The demo model (resources/models/demo_fusion_simulated.onnx) is not present: not measured.")
    else:
        lines.append(f"{agreement['model']} on resources/sample ({agreement['n_pixels']} px): mean |fast - exact| "
                     f"= {agreement['mean_abs_diff']:.5f} m3/m3, max {agreement['max_abs_diff']:.5f} m3/m3 "
                     f"(map std {agreement['map_std']:.4f} m3/m3).")
    lines += precision_report(cases, int8_sample or [])
    doc = {"meta": meta, "rows": rows, "cases": cases, "fast_exact_sample": agreement, "int8_sample": int8_sample}
    return doc, "\n".join(lines) + "\n"


def precision_report(cases: list[dict[str, Any]], int8_sample: list[dict[str, Any]]) -> list[str]:
    """Markdown lines comparing the int8 and float32 fast-mode runs of each model and area (same run)."""
    fast = {(c["model"], c["area_km"]): c for c in cases if c["mode"] == "fast"}
    pairs = [(fast[(m[: -len(INT8)], a)], c) for (m, a), c in sorted(fast.items())
             if m.endswith(INT8) and (m[: -len(INT8)], a) in fast]
    if not pairs and not int8_sample:
        return []
    lines = ["", "## int8 vs fp32 (fast mode, same run)", "",
             "Speed-ups are fp32 time / int8 time of the two cases (each in its own process, minutes apart); "
             "|int8 - fp32| over the pixels both maps estimate.", "",
             "| model | area | fp32 s | int8 s | speed-up (wall) | fp32 inf s | int8 inf s | speed-up (inference) | "
             "mean abs(int8 - fp32) m3/m3 | max m3/m3 | map std m3/m3 | fp32 RSS MiB | int8 RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fp32, int8 in pairs:
        d = int8.get("vs_fp32") or {}
        lines.append(
            f"| {fp32['model']} | {fp32['area_km']:g} km | {fp32['wall_s']:.1f} | {int8['wall_s']:.1f} | "
            f"{fp32['wall_s'] / int8['wall_s']:.2f}x | {fp32['seconds']['inference']:.1f} | "
            f"{int8['seconds']['inference']:.1f} | "
            f"{fp32['seconds']['inference'] / max(int8['seconds']['inference'], 1e-9):.2f}x | "
            f"{d.get('mean_abs_diff', float('nan')):.4f} | {d.get('max_abs_diff', float('nan')):.4f} | "
            f"{d.get('map_std', float('nan')):.4f} | {fp32['peak_rss_mib']:.0f} | {int8['peak_rss_mib']:.0f} |")
    if int8_sample:
        lines += ["", "On the sample scene (fast mode, every date; pooled over the dates' pixels). "
                  "\"Before the clip\": the graph's estimate before its final clip to [0, 1] m3/m3.", "",
                  "| int8 model | output | px | fp32 mean | fp32 std | mean abs(int8 - fp32) | max | per date "
                  "mean abs / max / mean signed |", "|---|---|---|---|---|---|---|---|"]
    for a in int8_sample:
        for what, label in (("clipped", "m3/m3"), ("unclipped", "before the clip")):
            d = a[what]
            per_date = ", ".join(f"{x['date']} {x['mean_abs_diff']:.4f} / {x['max_abs_diff']:.4f} / "
                                 f"{x['mean_signed_diff']:+.4f}" for x in d["dates"])
            lines.append(f"| {a['int8']} | {label} | {d['n_pixels']} | {d['fp32_mean']:.4f} | {d['fp32_std']:.4f} | "
                         f"{d['mean_abs_diff']:.4f} | {d['max_abs_diff']:.4f} | {per_date} |")
    for a in int8_sample:
        e = a.get("embedding")
        if e:
            lines.append(f"\n{a['int8']}: the high-res encoder's pooled features ({e['n_values']} values, one block "
                         f"per sample date): mean |int8 - fp32| = {e['mean_abs_diff']:.4g} against a float32 std of "
                         f"{e['fp32_std']:.4g} ({100 * e['relative_mean_abs_diff']:.1f} %), "
                         f"max {e['max_abs_diff']:.4g}.")
    return lines


# --- block-size study (one model call per block, in isolation) -------------------------------------

#: onnxruntime memory variants of the block study: ``off`` (no arena: what smqgis used up to 2026-12-03),
#: ``arena`` (onnxruntime's default BFC arena, kept between calls), ``arena_shrink`` (the arena, shrunk
#: back after every call: ``memory.enable_memory_arena_shrinkage``).
BLOCK_VARIANTS = ("off", "arena", "arena_shrink")


def run_block_case(model_path: str, tiles: list[int], variant: str, repeats: int) -> list[dict[str, Any]]:
    """Time one fast-mode call per tile size (``32 (n + 7)`` px blocks) under one memory variant.

    Per call: wall time, CPU time in user and kernel mode, minor page faults (pages the kernel
    had to hand in fresh), and the resident memory right after the call; the process's peak RSS
    and onnxruntime's MatMul peak of this process come with the first row.
    """
    import onnxruntime as ort

    from .core.model import physical_cores, run_options, session_options

    threads = physical_cores()
    peak = ort_peak_gflops(threads)
    opts = session_options(threads, arena=variant != "off")
    ro = run_options(shrink_arena=variant == "arena_shrink") if variant != "off" else None
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    channels = {i.name: i.shape[-1] for i in sess.get_inputs()}
    rng = np.random.default_rng(0)
    rows = []
    for n in tiles:
        h, p = 32 * (n + 7), n * n
        feeds = {"high_res": rng.uniform(0, 255, (1, h, h, channels["high_res"])).astype(np.float32),
                 "low_res": rng.uniform(0, 255, (p, 16, 16, channels["low_res"])).astype(np.float32),
                 "coarse": rng.uniform(0, 255, (p, channels["coarse"])).astype(np.float32)}
        feeds = {k: v for k, v in feeds.items() if k in channels}
        for rep in range(repeats):
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            sess.run(None, feeds, ro)
            wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
            with open("/proc/self/statm") as fh:
                rss_now = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            rows.append({"variant": variant, "tile": n, "block_px": h, "rep": rep, "wall_s": wall,
                         "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                         "minor_faults": r1.ru_minflt - r0.ru_minflt, "rss_after_mib": rss_now,
                         "peak_rss_mib": peak_rss_mib(), "ort_peak_gflops": peak, "threads": threads})
    return rows


#: Prefix of the line a case process prints its result on (JSON).
RESULT_PREFIX = "BENCH_RESULT "


def emit_result(result: Any) -> None:
    """Print a case process's result for :func:`run_in_process`."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")


def run_in_process(flag: str, case: dict[str, Any]) -> Any:
    """Run one case (``--case`` / ``--block-case`` JSON) in its own process; its result, or None (logged)."""
    proc = subprocess.run([sys.executable, "-m", "smqgis.bench", flag, json.dumps(case)],
                          cwd=ROOT, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)), None)
    if proc.returncode != 0 or line is None:
        log.error("%s failed:\n%s", flag.lstrip("-"), proc.stderr[-3000:])
        return None
    return json.loads(line[len(RESULT_PREFIX):])


def block_study(model: str, tiles: list[int], variants: list[str], repeats: int, out: Path) -> list[str]:
    """Run :func:`run_block_case` for each variant in its own process; the markdown table (also written)."""
    model_path = ensure_model(model)
    rows: list[dict[str, Any]] = []
    for variant in variants:
        case = {"model_path": str(model_path), "tiles": tiles, "variant": variant, "repeats": repeats}
        log.info("block study: %s model, %s, tiles %s ...", model, variant, tiles)
        result = run_in_process("--block-case", case)
        if result is not None:
            rows += result
    flops = {n: count_flops(model_path, (32 * (n + 7),) * 2) for n in tiles}
    lines = [f"### Block study: {model} model ({model_path.name}), one call per block, {repeats} calls each",
             "",
             "| memory | tile (block px) | call s (best / median) | ms per output px | GFLOP/s (best) | % peak "
             "| user / sys CPU s | minor faults (k) | RSS after call MiB | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        for n in tiles:
            rs = [r for r in rows if r["variant"] == variant and r["tile"] == n]
            if not rs:
                continue
            best = min(rs, key=lambda r: r["wall_s"])
            med = float(np.median([r["wall_s"] for r in rs]))
            g = flops[n] / best["wall_s"] / 1e9
            lines.append(
                f"| {variant} | {n} ({best['block_px']}) | {best['wall_s']:.2f} / {med:.2f} "
                f"| {1000 * best['wall_s'] / n ** 2:.2f} | {g:.0f} | {100 * g / best['ort_peak_gflops']:.0f} % "
                f"| {best['user_s']:.1f} / {best['sys_s']:.1f} | {best['minor_faults'] / 1000:.0f} "
                f"| {max(r['rss_after_mib'] for r in rs):.0f} | {max(r['peak_rss_mib'] for r in rs):.0f} |")
    lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"blocks_{model}.json").write_text(json.dumps({"rows": rows, "flops": flops}, indent=1))
    (out / f"blocks_{model}.md").write_text("\n".join(lines))
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--case``, one case in this process)."""
    parser = argparse.ArgumentParser(description="Benchmark fast vs exact mode of smqgis.")
    parser.add_argument("--areas", default="5,10,20,40", help="square sides in km, comma separated")
    parser.add_argument("--models", default="demo,demo_int8,paper,paper_int8",
                        help="models, comma separated: small, paper, demo, and any of them + '_int8' (quantized)")
    parser.add_argument("--big-km", type=float, default=None,
                        help="also map one square of this side (km) end to end in fast mode, e.g. 100")
    parser.add_argument("--big-models", default="demo", help="models of the --big-km run, comma separated")
    parser.add_argument("--out", default=str(ROOT / "build" / "bench"))
    parser.add_argument("--tile-px", type=int, default=None, help="fast-mode tile (output px); default auto")
    parser.add_argument("--memory-budget-mib", type=float, default=None,
                        help="memory budget of the automatic tile size (MiB); default the engine's (3 GiB)")
    parser.add_argument("--blocks", default=None,
                        help="block-size study instead: fast-mode tile sizes (output px), e.g. 32,48,63 "
                             "(blocks of 32 (n + 7) px), one call each per --models model and memory variant")
    parser.add_argument("--block-variants", default=",".join(BLOCK_VARIANTS),
                        help=f"onnxruntime memory variants of --blocks, comma separated: {', '.join(BLOCK_VARIANTS)}")
    parser.add_argument("--repeats", type=int, default=3, help="calls per block size in --blocks")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # JSON of one case, run in this process
    parser.add_argument("--block-case", help=argparse.SUPPRESS)  # JSON of one block-study process
    parser.add_argument("--report-only", action="store_true", help="rewrite bench.md from --out/bench.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    if args.case:
        c = json.loads(args.case)
        result = run_case(c["model_path"], c["inputs"], c["area_km"], c["mode"], Path(c["output"]), c["tile_px"],
                          c["memory_budget_mib"])
        emit_result(result)
        return 0
    if args.block_case:
        c = json.loads(args.block_case)
        rows = run_block_case(c["model_path"], c["tiles"], c["variant"], c["repeats"])
        emit_result(rows)
        return 0
    if args.blocks:
        tiles = [int(t) for t in args.blocks.split(",")]
        variants = args.block_variants.split(",")
        for model in args.models.split(","):
            sys.stdout.write("\n".join(block_study(model, tiles, variants, args.repeats, out)) + "\n")
        return 0
    if args.report_only:
        old = json.loads((out / "bench.json").read_text())
        _, md = summarise(old["cases"], old["meta"], old.get("fast_exact_sample"), old.get("int8_sample"))
        (out / "bench.md").write_text(md)
        sys.stdout.write(md)
        return 0
    import onnxruntime as ort

    from .core.model import physical_cores
    from .demo import DEMO_MODEL

    cases = []
    plan = [(m, float(a), False) for m in args.models.split(",") for a in args.areas.split(",")]
    if args.big_km:
        plan += [(m, args.big_km, True) for m in args.big_models.split(",")]
    for model, area, big in plan:
        model_path = ensure_model(model)
        inputs = synthesise_inputs(out / "inputs" / f"{area:g}km", area)
        # exact mode is the float32 reference, and takes hours at the big area: timed for float32 areas only
        for mode in ("fast",) if model.endswith(INT8) or big else ("fast", "exact"):
            case = {"model_path": str(model_path), "inputs": inputs, "area_km": area, "mode": mode,
                    "output": str(out / f"{model}_{area:g}km_{mode}.tif"), "tile_px": args.tile_px,
                    "memory_budget_mib": args.memory_budget_mib}
            log.info("%s model, %g km, %s mode ...", model, area, mode)
            measured = run_in_process("--case", case)
            if measured is None:
                continue
            result = {"model": model, **measured}
            add_flops(result, path_of(model[: -len(INT8)]) if model.endswith(INT8) else model_path)
            log.info("  %.1f s wall, %.0f MiB peak RSS, %.0f GFLOP/s (%.0f %% of %.0f)", result["wall_s"],
                     result["peak_rss_mib"], result["gflops_per_s"], result["pct_of_peak"],
                     result["ort_peak_gflops"])
            cases.append(result)
    for case in cases:  # int8 maps against the float32 maps of the same area
        fp32 = next((c for c in cases if c["mode"] == "fast" and c["area_km"] == case["area_km"]
                     and case["model"] == c["model"] + INT8), None)
        if fp32 is not None and case["mode"] == "fast":
            case["vs_fp32"] = map_difference(fp32["output"], case["output"])
    int8_sample = [sample_precision_agreement(path_of(m[: -len(INT8)]), path_of(m))
                   for m in dict.fromkeys(m for m, _, _ in plan if m.endswith(INT8))]
    agreement = fast_exact_agreement(DEMO_MODEL)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs", "onnxruntime": ort.__version__,
            "threads": physical_cores(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": "python -m smqgis.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "load_average_at_end": os.getloadavg()}
    doc, md = summarise(cases, meta, agreement, [a for a in int8_sample if a])
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(doc, indent=2))
    (out / "bench.md").write_text(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
