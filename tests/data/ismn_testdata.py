"""Real ISMN station files for the validation tests, and maps built to hold known values at the stations.

ISMN data may not be redistributed, so nothing of it is committed: :func:`ismn_test_data`
fetches the source distribution of the ``ismn`` package (which ships real station files
from MAQU, SCAN, SOILSCAPE, COSMOS, FR_Aqui, SMOSMANIA and RSMN as its own test data) with
``pip download`` into ``build/ismn-sdist/`` at test time and unpacks its ``tests/test_data``
folder there, once. :func:`parse_stm` is an independent reader of ISMN's header+values
files (not the ``ismn`` package), so tests can check what smqgis read. :func:`write_map`
writes a small lon/lat GeoTIFF tagged like an smqgis map whose pixel at each station holds
a chosen value. Used by tests/core, tests/qgis (QGIS env) and tests/training (pytesmo).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: The ismn release whose sdist carries the station files (pinned in requirements/qgis.txt).
ISMN_VERSION = "1.5.4"
CACHE = ROOT / "build" / "ismn-sdist"
#: The multi-network archive (header+values format): MAQU CST-01/02 and SCAN 5-5 cm with C03 flags, SOILSCAPE.
MULTINETWORK_ZIP = "zip_archives/multinetwork/header_values/Data_header_values.zip"
#: A one-station archive (RSMN Adamclisi, 0-5 cm, hourly, G and D flags).
RSMN_ZIP = "archive_sample/ismn_archive.zip"
KEPT_FLAGS = ("G", "C02", "C03", "C02,C03")
#: Map pixel size of the test maps (deg, ~1.5 km): 1/64, exact in binary, so pixel edges are exact.
MAP_RES_DEG = 0.015625
NODATA = -9999.0


def ismn_test_data() -> Path:
    """The unpacked ``tests/test_data`` of the ismn sdist (downloaded once into build/ismn-sdist/).

    Raises ``RuntimeError`` when pip cannot download it (no network): callers skip with the message.
    """
    target = CACHE / f"ismn-{ISMN_VERSION}-test_data"
    if (target / MULTINETWORK_ZIP).is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"ismn-{ISMN_VERSION}.tar.gz"
    if not sdist.is_file():
        proc = subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"ismn=={ISMN_VERSION}", "-d", str(CACHE)], capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 or not sdist.is_file():
            raise RuntimeError(f"pip download of ismn=={ISMN_VERSION} failed: {proc.stderr.strip()[-400:]}")
    tmp = CACHE / f"extract-{ISMN_VERSION}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    prefix = f"ismn-{ISMN_VERSION}/tests/test_data/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(tmp, members=[m for m in members if m.name])  # noqa: S202 - names checked above
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def parse_stm(text: str) -> dict:
    """An ISMN header+values ``.stm`` file: header fields and arrays of times (s, UTC), values, flags."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    head = lines[0].split()
    times, values, flags = [], [], []
    for ln in lines[1:]:
        date, clock, value, flag = ln.split()[:4]
        times.append(np.datetime64(date.replace("/", "-") + "T" + clock, "s").astype(np.int64))
        values.append(float(value))
        flags.append(flag)
    return {"network": head[0], "station": head[2], "lat": float(head[3]), "lon": float(head[4]),
            "depth_from": float(head[6]), "depth_to": float(head[7]), "times": np.array(times, dtype=np.int64),
            "values": np.array(values), "flags": np.array(flags)}


def read_station(archive: Path, station: str) -> dict:
    """:func:`parse_stm` of the soil-moisture file of ``station`` in a zip archive."""
    with zipfile.ZipFile(archive) as zf:
        name = next(n for n in zf.namelist() if f"/{station}/" in n and "_sm_" in n and n.endswith(".stm"))
        return parse_stm(zf.read(name).decode("utf-8"))


def kept(station: dict) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of the readings with a kept flag."""
    ok = np.isin(station["flags"], KEPT_FLAGS)
    return station["times"][ok], station["values"][ok]


def nearest_brute(times: np.ndarray, anchor: int, tolerance_s: float) -> int | None:
    """Brute-force nearest reading within the tolerance (first of equals, i.e. the earlier), else None."""
    if not times.size:
        return None
    dt = np.abs(times - anchor)
    j = int(np.argmin(dt))
    return j if dt[j] <= tolerance_s else None


def iso(seconds: int) -> str:
    return str(np.datetime64(int(seconds), "s")) + "Z"


def write_map(path: Path, west: float, north: float, width: int, height: int, time_iso: str | None,
              points: list[tuple[float, float, float]], seed: int = 0, smap_path: Path | None = None,
              extra_tags: dict | None = None) -> Path:
    """A float32 lon/lat GeoTIFF tagged like an smqgis map: band 1 soil moisture, band 2 coverage.

    ``points`` are (lon, lat, value): the pixel containing each holds ``value``; the rest holds seeded
    values in 0.1-0.4 m3/m3. ``time_iso`` goes to INPUT_SENTINEL1_ACQUIRED_UTC (None: no time tag).
    """
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    band = rng.uniform(0.1, 0.4, (height, width)).astype(np.float32)
    for lon, lat, value in points:
        col, row = int(np.floor((lon - west) / MAP_RES_DEG)), int(np.floor((north - lat) / MAP_RES_DEG))
        band[row, col] = value
    tags = {"UNITS": "m3/m3", "MODEL_LABEL": "test map (values chosen by the test)"}
    if time_iso:
        tags["INPUT_SENTINEL1_ACQUIRED_UTC"] = time_iso
    if smap_path is not None:
        tags.update({"INPUT_SMAP_PATH": str(smap_path), "INPUT_SMAP_PRODUCT": "NASA_USDA/HSL/SMAP10KM_soil_moisture",
                     "INPUT_SMAP_BANDS": '{"ssm": 1}'})
    tags.update(extra_tags or {})
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=2, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(west, north, MAP_RES_DEG, MAP_RES_DEG),
                       nodata=NODATA) as ds:
        ds.write(band, 1)
        ds.write(np.ones_like(band), 2)
        ds.update_tags(**tags)
    return path


def png_is_not_blank(data: bytes) -> tuple[int, int, float]:
    """(width, height, fraction of pixels that differ from the most common colour) of a PNG."""
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(data), format="png")
    flat = img.reshape(-1, img.shape[-1]) if img.ndim == 3 else img.reshape(-1, 1)
    colours, counts = np.unique(np.round(flat * 255).astype(np.uint8), axis=0, return_counts=True)
    return img.shape[1], img.shape[0], 1.0 - counts.max() / counts.sum()


#: Stations of the multi-network case: (station, sensor id as smqgis names it, map origin west/north (deg),
#: map size (px), anchors wanted). MAQU CST-01 gets >= 13 pairs, SCAN AAMU-jtg fewer than 13.
CASE_STATIONS = (
    ("CST-01", "MAQU__CST-01__ECH20-EC-TM", 102.003, 34.004, 30, 50, 16),
    ("AAMU-jtg", "SCAN__AAMU-jtg__Hydraprobe-Analog-(2.5-Volt)", -86.603, 34.807, 10, 10, 5),
)
#: Minutes after a kept reading at which a map's anchor is placed (nearest reading: 20 min before).
ANCHOR_OFFSET_S = 20 * 60
#: Fewest seconds between two chosen anchors (2 days): one pair per map and sensor.
ANCHOR_SPACING_S = 2 * 86400


def estimate_for(obs: float, k: int) -> float:
    """The map value a test writes at a station for in-situ ``obs`` (m3/m3) on its k-th date, as float32."""
    return float(np.float32(np.clip(0.8 * obs + 0.05 + 0.03 * np.sin(1.7 * k), 0.0, 1.0)))


def multinetwork_case(data_dir: Path, out_dir: Path, tolerance_s: float = 3600.0) -> dict:
    """Maps around MAQU (CST-01 and CST-02 share the raster) and SCAN AAMU-jtg with known values.

    Anchors are 20 min after kept readings of the case's main station, at least 2 days apart; one
    more MAQU map sits in a gap of CST-01's kept readings (> 1 h from any). Each station's pixel holds
    :func:`estimate_for` of the reading nearest to the anchor within ``tolerance_s`` (found by brute
    force on an independent parse of the .stm file) or 0.25 when there is none.

    Returns ``{"archive", "maps": [paths], "expected": {sensor id: [(anchor, t_insitu, obs, est)]},
    "gap_anchor": int}``.
    """
    archive = data_dir / MULTINETWORK_ZIP
    maqu2 = read_station(archive, "CST-02")
    expected: dict[str, list] = {}
    maps: list[Path] = []
    gap_anchor = None
    for station, sid, west, north, width, height, count in CASE_STATIONS:
        main = read_station(archive, station)
        neighbours = [(main, sid)]
        if station == "CST-01":
            neighbours.append((maqu2, "MAQU__CST-02__ECH20-EC-TM"))
        times, _ = kept(main)
        anchors: list[int] = []
        for t in times:
            if not anchors or t - anchors[-1] >= ANCHOR_SPACING_S:
                anchors.append(int(t) + ANCHOR_OFFSET_S)
            if len(anchors) == count:
                break
        if station == "CST-01":
            gaps = np.flatnonzero(np.diff(times) > 6 * 3600)
            gap_anchor = int(times[gaps[-1]]) + 3 * 3600  # 3 h after a kept reading, > 3 h before the next
            anchors.append(gap_anchor)
        for k, anchor in enumerate(anchors):
            points = []
            for st, st_id in neighbours:
                t_kept, v_kept = kept(st)
                j = nearest_brute(t_kept, anchor, tolerance_s)
                if j is None:
                    points.append((st["lon"], st["lat"], 0.25))
                    continue
                est = estimate_for(v_kept[j], k)
                points.append((st["lon"], st["lat"], est))
                expected.setdefault(st_id, []).append((anchor, int(t_kept[j]), float(v_kept[j]), est))
            path = out_dir / f"map_{station}_{k:02d}.tif"
            maps.append(write_map(path, west, north, width, height, iso(anchor), points, seed=k))
    return {"archive": archive, "maps": maps, "expected": expected, "gap_anchor": gap_anchor}


#: An unpacked ISMN download in the CEOP format: FR_Aqui fraye (5-5 cm, G and D flags) and COSMOS (0-19/21 cm).
CEOP_FOLDER = "Data_seperate_files_20170810_20180809"


def parse_ceop(text: str) -> dict:
    """An ISMN CEOP-format ``.stm`` file (one reading per line with its station fields), read independently."""
    times, values, flags = [], [], []
    for ln in text.splitlines():
        f = ln.split()
        if len(f) < 14:
            continue
        times.append(np.datetime64(f[0].replace("/", "-") + "T" + f[1], "s").astype(np.int64))
        values.append(float(f[12]))
        flags.append(f[13])
    first = text.split(None, 12)
    return {"network": first[4], "station": first[6], "lat": float(first[7]), "lon": float(first[8]),
            "times": np.array(times, dtype=np.int64), "values": np.array(values), "flags": np.array(flags)}
