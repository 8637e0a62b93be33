"""A local fake of the Earth Engine REST endpoint, answering from the bundled sample (simulated data).

Earth Engine cannot be reached from the test machines, so the tests point the real
earthengine-api (its discovery, its HTTP transport, its serializer) at this server on
127.0.0.1 with ``ee.Initialize(url=...)`` / ``SMQGIS_EE_URL``. It serves:

- ``GET /$discovery/rest``: the library's own bundled discovery document, re-rooted here;
- ``GET /v*/projects/P/algorithms``: the library's own bundled algorithm list;
- ``POST /v*/projects/P/value:compute``: the answer of smqgis's Table 5 selection, computed from the
  sample's manifests: the sample date whose Sentinel-1 anchor lies in the requested window, with the
  acquisition times of its other inputs (image ids ``<collection>/smqgis_sample_<date>``);
- ``POST /v*/projects/P/image:computePixels``: the sample raster of the requested source and date,
  warped (nearest) onto the request's grid, in the requested pixel type, as GeoTIFF bytes.

Extra Sentinel-1 scenes can be scripted (``FakeEarthEngine.scenes``: (time in ms, sample date key)):
the selection also considers them, with ids ``<collection>/smqgis_sample_<date>_<ms>`` and the other
inputs' times shifted by the same amount, and their pixels are the sample date's. With ``relocate``
every computePixels grid is moved (same size, pixel and CRS kind) onto the sample's centre, so a
request anywhere on Earth gets the sample's pixels (for pipelines over real station positions).

Faults are scripted per computePixels request (``FakeEarthEngine.faults``: ``"429"``, ``"500"``,
``"truncate"``; an empty list answers normally), and ``delay_s`` slows each answer. Run as a script
(``python tests/data/ee_fake_server.py``) it prints its URL and serves until killed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "sample"


def _ee_tests_dir() -> Path:
    import ee

    return Path(ee.__file__).parent / "tests"


def _resolve(enc: dict[str, Any]) -> Any:
    values = enc["values"]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return walk(values[node["valueReference"]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(values[enc["result"]])


def _calls(node: Any, name: str) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        inv = node.get("functionInvocationValue")
        if inv and inv["functionName"] == name:
            found.append(inv["arguments"])
        for v in node.values():
            found += _calls(v, name)
    elif isinstance(node, list):
        for v in node:
            found += _calls(v, name)
    return found


def _const(node: dict[str, Any]) -> Any:
    if "constantValue" in node:
        return node["constantValue"]
    return _const(node["functionInvocationValue"]["arguments"]["value"])


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def sample_dates() -> dict[str, dict[str, Any]]:
    """Per sample date key (``YYYYMMDD``): its folder and manifest."""
    dates = json.loads((SAMPLE / "dates.json").read_text())["dates"]
    out = {}
    for d in dates:
        folder = SAMPLE / d["folder"]
        out[d["date"].replace("-", "")] = {"folder": folder,
                                           "manifest": json.loads((folder / "manifest.json").read_text())}
    return out


class FakeEarthEngine:
    """The fake endpoint; ``url`` once started. Counters and scripted faults are public attributes."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.faults: list[str] = []
        self.delay_s = delay_s
        self.pixels_served = 0
        self.pixels_requests: list[dict[str, Any]] = []
        self.value_requests = 0
        self.lock = threading.Lock()
        self.dates = sample_dates()
        #: Source key -> x (grid CRS): pixels centred west of it are served masked (a cloud, a swath edge).
        self.masked_west_of: dict[str, float] = {}
        #: Extra Sentinel-1 scenes: (acquisition time in ms, sample date key ``YYYYMMDD`` whose pixels they serve).
        self.scenes: list[tuple[int, str]] = []
        #: Move every computePixels grid onto the sample's centre (see the module paragraph).
        self.relocate = False
        self.server: ThreadingHTTPServer | None = None
        self._bands: dict[Path, tuple[dict[str, np.ndarray], Any, Any]] = {}

    # -- answers ---------------------------------------------------------------------------------------------
    def selection(self, expr: dict[str, Any]) -> dict[str, Any]:
        from smqgis.core import sources

        tree = _resolve(expr)
        branches = tree["dictionaryValue"]["values"]
        rng = _calls(branches["sentinel1"], "DateRange")[0]
        start, end = _const(rng["start"]), _const(rng["end"])
        chosen = None
        candidates = [(_ms(d["manifest"]["anchor_time"]), key, "") for key, d in self.dates.items()]
        candidates += [(int(t), key, f"_{int(t)}") for t, key in self.scenes]
        for anchor, key, suffix in candidates:
            if start <= anchor < end and (chosen is None or anchor > chosen[0]):
                chosen = (anchor, key, suffix)
        out: dict[str, Any] = {}
        for src in branches:
            if chosen is None:
                out[src] = {"ids": [], "times": []}
                continue
            anchor, key, suffix = chosen
            manifest = self.dates[key]["manifest"]
            shift = anchor - _ms(manifest["anchor_time"])  # 0 for the sample's own dates
            t = _ms(manifest["inputs"][src]["acquisition_time"]) + shift
            coll = sources.SOURCES[src].ee_collection
            out[src] = {"ids": [f"{coll}/smqgis_sample_{key}{suffix}"], "times": [t]}
        return out

    def _relocated(self, transform: Any, crs: str, width: int, height: int) -> tuple[Any, str]:
        """``transform`` moved so that the grid's centre is the sample's centre (UTM grids: the sample's CRS)."""
        from affine import Affine
        from rasterio.warp import transform as warp_points

        with self.lock:
            if not hasattr(self, "_sample_centre"):
                import rasterio

                with rasterio.open(SAMPLE / "sentinel1.tif") as src:
                    b = src.bounds
                    self._sample_centre = (str(src.crs), (b.left + b.right) / 2.0, (b.bottom + b.top) / 2.0)
        sample_crs, sx, sy = self._sample_centre
        dst_crs = sample_crs if re.match(r"^EPSG:32[67]\d\d$", crs) else crs
        xs, ys = warp_points(sample_crs, dst_crs, [sx], [sy])
        cx, cy = transform @ (width / 2.0, height / 2.0)
        t = transform
        return Affine(t.a, t.b, t.c + xs[0] - cx, t.d, t.e, t.f + ys[0] - cy), dst_crs

    def pixels(self, body: dict[str, Any]) -> bytes:
        from affine import Affine
        from rasterio.io import MemoryFile
        from rasterio.warp import Resampling, reproject

        from smqgis.core import sources

        tree = _resolve(body["expression"])
        ids = [_const(a["id"]) for a in _calls(tree, "Image.load")]
        key = date = None
        for s in sources.SOURCES.values():
            for i in ids:
                prefix = s.ee_collection.split("{")[0]
                if i.startswith(prefix):
                    key = s.key
                    m = re.search(r"smqgis_sample_(\d{8})(?:_\d+)?$", i)
                    date = m.group(1) if m else None
        folder = self.dates[date]["folder"] if date else SAMPLE
        dtype = {"Image.toFloat": "float32", "Image.toUint16": "uint16", "Image.toInt16": "int16"}
        pixel_type = next(v for k, v in dtype.items() if _calls(tree, k))
        g = body["grid"]
        at = g["affineTransform"]
        w, h = g["dimensions"]["width"], g["dimensions"]["height"]
        dst_transform = Affine(at["scaleX"], at["shearX"], at["translateX"], at["shearY"], at["scaleY"],
                               at["translateY"])
        names = body["bandIds"]
        out = np.zeros((len(names), h, w), dtype=np.float64)
        bands, src_transform, src_crs = self.sample_bands(folder / f"{key}.tif")
        read_transform, read_crs = dst_transform, g["crsCode"]
        if self.relocate:
            read_transform, read_crs = self._relocated(dst_transform, read_crs, w, h)
        for i, name in enumerate(names):
            reproject(bands[name], out[i], src_transform=src_transform, src_crs=src_crs, dst_transform=read_transform,
                      dst_crs=read_crs, resampling=Resampling.nearest, src_nodata=np.nan, dst_nodata=np.nan)
        west = self.masked_west_of.get(key)
        if west is not None:  # scripted masked pixels (clouds): every pixel centred west of ``west`` (grid CRS)
            xs = dst_transform.c + dst_transform.a * (np.arange(w) + 0.5)
            out[:, :, xs < west] = np.nan
        unmasks = _calls(tree, "Image.unmask")  # outermost first: the value the download's masked pixels get
        out = np.where(np.isnan(out), float(_const(unmasks[0]["value"])) if unmasks else 0.0, out)
        if pixel_type != "float32":
            out = np.round(out)
        profile = {"driver": "GTiff", "width": w, "height": h, "count": len(names), "dtype": pixel_type,
                   "crs": g["crsCode"], "transform": dst_transform}
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(out.astype(pixel_type))
            return mem.read()

    def sample_bands(self, path: Path) -> tuple[dict[str, np.ndarray], Any, Any]:
        """A sample file's bands in physical units (NaN where masked), read once."""
        import rasterio

        with self.lock:
            if path not in self._bands:
                with rasterio.open(path) as src:
                    bands = {}
                    for b, name in enumerate(src.descriptions, start=1):
                        data = src.read(b).astype(np.float64)
                        valid = src.read_masks(b) > 0
                        bands[name] = np.where(valid, data * src.scales[b - 1] + src.offsets[b - 1], np.nan)
                    self._bands[path] = (bands, src.transform, src.crs)
            return self._bands[path]

    # -- server ----------------------------------------------------------------------------------------------
    def start(self) -> str:
        fake = self
        tests_dir = _ee_tests_dir()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, state: str) -> None:
                self._send(status, json.dumps({"error": {"code": status, "message": message,
                                                         "status": state}}).encode())

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.startswith("/$discovery/rest"):
                    doc = json.loads((tests_dir / "cloud_api_discovery_document.json").read_text())
                    doc["rootUrl"] = doc["baseUrl"] = fake.url + "/"
                    self._send(200, json.dumps(doc).encode())
                elif re.match(r"^/v1\w*/projects/[^/]+/algorithms", self.path):
                    self._send(200, (tests_dir / "algorithms.json").read_bytes())
                else:
                    self._error(404, f"not found: {self.path}", "NOT_FOUND")

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.split("?")[0].endswith("value:compute"):
                    with fake.lock:
                        fake.value_requests += 1
                    self._send(200, json.dumps({"result": fake.selection(body["expression"])}).encode())
                elif self.path.split("?")[0].endswith("image:computePixels"):
                    with fake.lock:
                        fault = fake.faults.pop(0) if fake.faults else ""
                        fake.pixels_requests.append({"grid": body["grid"], "bandIds": body["bandIds"],
                                                     "fault": fault})
                    if fake.delay_s:
                        time.sleep(fake.delay_s)
                    if fault == "429":
                        self._error(429, "Too many concurrent aggregations: quota exceeded", "RESOURCE_EXHAUSTED")
                        return
                    if fault == "500":
                        self._error(500, "An internal error has occurred", "INTERNAL")
                        return
                    data = fake.pixels(body)
                    if fault == "truncate":
                        data = data[: len(data) // 2]
                    self._send(200, data, "image/tiff")
                    with fake.lock:
                        fake.pixels_served += 1
                else:
                    self._error(404, f"not found: {self.path}", "NOT_FOUND")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    fake = FakeEarthEngine(delay_s=float(os.environ.get("FAKE_EE_DELAY_S", "0")))
    print(fake.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
