"""Earth Engine downloads: chunk plan and size guard, retries, resumable cache, assembly, errors.

The real earthengine-api talks HTTP to a fake Earth Engine on 127.0.0.1
(``tests/data/ee_fake_server.py``) that answers from the bundled sample; faults are scripted
per request (429, 500, truncated bytes), and one test kills a downloading process between
chunks. No credentials, no network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

ee = pytest.importorskip("ee")

from smqgis.core import earthengine, ee_fetch, ee_maps, sources  # noqa: E402
from smqgis.core import ee_inputs as ei  # noqa: E402
from smqgis.core.errors import EarthEngineError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ee_fake_server", ROOT / "tests" / "data" / "ee_fake_server.py")
fake_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_module)

#: The sample's output area (EPSG:32614) and the fusion model's window reach around it (m).
SAMPLE_EXTENT = (599040.0, 3947840.0, 604160.0, 3952960.0)
REACH_M = 1280.0
#: A request limit that cuts the sample's 768 x 768 px 10 m grids into 3 x 3 chunks of 256 px (12 bytes/px).
SMALL_REQUEST_BYTES = 256 * 256 * 12 + ee_fetch.HEADER_ALLOWANCE_BYTES


#: Sources of the download tests: a chunked 10 m source and a coarse one (10 requests; the machine is shared).
KEYS = ["sentinel1", "smap"]


def sample_request(when: str = "2020-04-25T06:00:00Z") -> ei.Request:
    return ei.Request(ei.Area.from_extent(SAMPLE_EXTENT, "EPSG:32614", margin_m=REACH_M), when, source_keys=KEYS)


def digests(folder: Path) -> dict[str, str]:
    return {k: hashlib.sha256((folder / f"{k}.tif").read_bytes()).hexdigest() for k in KEYS}


class NoSleep:
    """Records the backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, s: float) -> None:
        self.delays.append(s)


# -- chunk plan and size guard (no server) -----------------------------------------------------------------------

def _plan_for(side_km: float) -> ee_fetch.Plan:
    half = side_km * 500.0
    cx, cy = 601600.0, 3950400.0
    area = ei.Area.from_extent((cx - half, cy - half, cx + half, cy + half), "EPSG:32614")
    req = ei.Request(area, "2020-04-25T06:00:00Z")
    chosen = {k: {"successor": False} for k in sources.SOURCES}
    return ee_maps.plan_request(req, chosen)


@pytest.mark.parametrize("side_km", [10, 100])
def test_chunk_plan_keeps_every_request_under_the_limits(side_km: float) -> None:
    plan = _plan_for(side_km)
    for key, grid in plan.grids.items():
        chunks = [c for c in plan.chunks if c.key == key]
        covered = np.zeros((grid.height, grid.width), dtype=np.int8)
        for c in chunks:
            assert c.nbytes + ee_fetch.HEADER_ALLOWANCE_BYTES <= ee_fetch.MAX_REQUEST_BYTES == 50_331_648
            assert 0 < c.width <= ee_fetch.MAX_REQUEST_SIDE_PX and 0 < c.height <= ee_fetch.MAX_REQUEST_SIDE_PX
            covered[c.row0:c.row0 + c.height, c.col0:c.col0 + c.width] += 1
        assert (covered == 1).all(), f"{key}: chunks must tile the grid exactly once"
    s1 = plan.grids["sentinel1"]
    assert (s1.width, s1.height) == (side_km * 100, side_km * 100)  # 10 m pixels
    # 100 km: S1 float32 x 3 and S2 uint16 x 6 are 12 bytes/px -> 1792 px chunks (6 x 6); 10 km: 6 x 6 too small
    per_side = -(-side_km * 100 // 1792)
    assert sum(c.key == "sentinel1" for c in plan.chunks) == per_side**2
    assert plan.nbytes == sum(g.width * g.height * len(sources.SOURCES[k].bands)
                              * np.dtype(sources.SOURCES[k].ee_dtype).itemsize for k, g in plan.grids.items())
    # more workers, less time; never less than one request's time
    assert plan.estimated_s(8) < plan.estimated_s(1)


def test_chunk_side_respects_the_side_limit_too() -> None:
    assert ee_fetch.chunk_side_px(1, "uint8", max_bytes=1 << 40) == ee_fetch.MAX_REQUEST_SIDE_PX
    assert ee_fetch.chunk_side_px(3, "float32") == 1792  # sqrt((48 MiB - 1 MiB) / 12 B) = 2026 -> 1792 (x 256)


def test_size_guard_refuses_with_the_estimate() -> None:
    plan = _plan_for(100)
    with pytest.raises(EarthEngineError) as err:
        plan.check(limit_bytes=1 << 30, workers=4)
    assert err.value.reason == "too_large" and err.value.parameter == "extent"
    text = str(err.value)
    assert f"{plan.n_requests} requests" in text and "smaller area" in text and "qgis_process" in text
    plan.check(limit_bytes=plan.nbytes)  # at the limit: allowed


# -- retries (no server) ----------------------------------------------------------------------------------------

class HttpLikeError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status_code = status


def test_backoff_is_exponential_with_jitter_and_bounded() -> None:
    sleep = NoSleep()
    answers = iter([HttpLikeError(429, "quota"), HttpLikeError(503, "unavailable"), HttpLikeError(500, "internal"),
                    "ok"])

    def call() -> str:
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    assert ee_fetch.with_retries(call, sleep=sleep, rng=random.Random(1), base_s=1.0) == "ok"
    assert len(sleep.delays) == 3
    for n, d in enumerate(sleep.delays):
        assert 0.0 <= d <= 2.0**n  # full jitter under base * 2**n
    assert len(set(sleep.delays)) == 3


def test_non_retryable_errors_fail_at_once_with_advice() -> None:
    sleep = NoSleep()
    calls = []

    def call() -> None:
        calls.append(1)
        raise ee.EEException("Not signed in. Please authorize access to your Earth Engine account by running "
                             "earthengine authenticate")

    with pytest.raises(EarthEngineError) as err:
        ee_fetch.with_retries(call, sleep=sleep)
    assert len(calls) == 1 and not sleep.delays
    assert err.value.reason == "not_signed_in" and "smqgis:sign_in_ee" in str(err.value)


@pytest.mark.parametrize(("text", "status", "reason"), [
    ("Earth Engine API has not been used in project 123 before or it is disabled", None, "project"),
    ("Project 'x' is not registered to use Earth Engine", 403, "project"),
    ("Too many concurrent aggregations", 429, "quota"),
    ("Total request size (60000000 bytes) must be less than or equal to 50331648 bytes", 400, "too_large"),
    ("An internal error has occurred", 500, "server"),
])
def test_errors_are_translated_to_actions(text: str, status: int | None, reason: str) -> None:
    exc = HttpLikeError(status, text) if status else ee.EEException(text)
    err = earthengine.translate(exc)
    assert err.reason == reason
    assert text in str(err)


def test_project_resolution_order(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text('{"refresh_token": "secret", "project": "from-cli"}')
    env = {"EARTHENGINE_PROJECT": "from-env2", "SMQGIS_EE_PROJECT": "from-env1"}
    assert earthengine.resolve_project("from-settings", environ=env, credentials_file=str(creds)) == (
        "from-settings", "settings")
    assert earthengine.resolve_project("", environ=env, credentials_file=str(creds)) == ("from-env1",
                                                                                            "SMQGIS_EE_PROJECT")
    assert earthengine.resolve_project(None, environ={"EARTHENGINE_PROJECT": "e"}, credentials_file=str(creds)) == (
        "e", "EARTHENGINE_PROJECT")
    assert earthengine.resolve_project(None, environ={}, credentials_file=str(creds)) == ("from-cli",
                                                                                          "credentials file")
    assert earthengine.resolve_project(None, environ={}, credentials_file=str(tmp_path / "none")) == (None, "none")
    with pytest.raises(EarthEngineError) as err:
        earthengine.initialise(None, environ={"HOME": str(tmp_path)})
    assert err.value.reason == "project" and err.value.parameter == "project"


# -- against the fake endpoint ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    server = fake_module.FakeEarthEngine()
    url = server.start()
    saved = ee.deprecation._FetchDataCatalogStac
    ee.deprecation._FetchDataCatalogStac = lambda: {}  # the deprecated-assets list lives on the internet
    earthengine.initialise("smqgis-fake", url=url)
    yield server
    ee.deprecation._FetchDataCatalogStac = saved
    ee.Reset()
    server.stop()


@pytest.fixture(scope="module")
def reference(fake, tmp_path_factory) -> tuple[Path, dict]:
    """A clean run in chunks (no faults): the bytes every other run must reproduce."""
    out = tmp_path_factory.mktemp("ee_reference")
    fake.faults.clear()
    manifest = ee_maps.fetch_inputs(sample_request(), str(out), max_request_bytes=SMALL_REQUEST_BYTES, workers=2)
    return out, manifest


def test_fetch_matches_the_sample_on_its_own_grid(fake, reference) -> None:
    out, manifest = reference
    assert manifest["anchor_utc"] == "2020-04-25T00:30:00Z"
    assert manifest["images"]["smap"]["offset_s"] == 60.5 * 3600  # the sample's 60.5 h old SMAP
    smap_id = "NASA_USDA/HSL/SMAP10KM_soil_moisture/smqgis_sample_20200425"  # pragma: allowlist secret (an asset id)
    assert manifest["images"]["smap"]["id"] == smap_id
    assert manifest["plan"]["sources"]["sentinel1"]["chunks"] == 9
    assert manifest["download"] == {"requests": manifest["plan"]["requests"], "retries": 0, "cached_chunks": 0,
                                    "fetched_chunks": manifest["plan"]["requests"]}
    with rasterio.open(out / "sentinel1.tif") as got, rasterio.open(ROOT / "resources/sample/sentinel1.tif") as src:
        assert got.crs == src.crs and got.transform == src.transform and got.descriptions == ("VV", "VH", "angle")
        np.testing.assert_allclose(got.read(), src.read().astype(np.float64) * 0.01, atol=1e-5)  # dB
        tags = got.tags()
    assert tags["EE_IMAGE_ID"] == "COPERNICUS/S1_GRD/smqgis_sample_20200425"
    assert tags["ACQUISITION_TIME"] == "2020-04-25T00:30:00Z" and tags["OFFSET_FROM_ANCHOR_S"] == "0"


def test_429_then_success_is_retried_and_identical(fake, reference, tmp_path: Path) -> None:
    out_ref, manifest = reference
    fake.faults[:] = ["429", "", "429", "429"]  # 1 retry on the first chunk, 2 on the second
    sleep = NoSleep()
    m = ee_maps.fetch_inputs(sample_request(), str(tmp_path), max_request_bytes=SMALL_REQUEST_BYTES, workers=1,
                             retry_options={"sleep": sleep, "rng": random.Random(0)})
    assert m["download"]["retries"] == 3 and len(sleep.delays) == 3
    assert m["download"]["requests"] == manifest["plan"]["requests"] + 3
    assert digests(tmp_path) == digests(out_ref)


def test_truncated_answers_are_refetched(fake, reference, tmp_path: Path) -> None:
    out_ref, manifest = reference
    fake.faults[:] = ["truncate", "", "truncate"]
    m = ee_maps.fetch_inputs(sample_request(), str(tmp_path), max_request_bytes=SMALL_REQUEST_BYTES, workers=1,
                             retry_options={"sleep": NoSleep()})
    assert m["download"]["retries"] == 2
    assert digests(tmp_path) == digests(out_ref)
    assert not list((tmp_path / ".ee-cache").glob(".part-*"))


def test_repeated_500s_fail_with_advice_and_keep_the_cache(fake, reference, tmp_path: Path) -> None:
    out_ref, manifest = reference
    fake.faults[:] = ["", "", "500", "500", "500"]
    with pytest.raises(EarthEngineError) as err:
        ee_maps.fetch_inputs(sample_request(), str(tmp_path), max_request_bytes=SMALL_REQUEST_BYTES, workers=1,
                             retry_options={"sleep": NoSleep(), "attempts": 3})
    assert err.value.reason == "server" and "rerun resumes" in str(err.value)
    assert not list(tmp_path.glob("*.tif"))  # no partial output
    assert len(list((tmp_path / ".ee-cache").glob("*.tif"))) == 2  # the two good chunks stay
    fake.faults.clear()
    before = len(fake.pixels_requests)
    m = ee_maps.fetch_inputs(sample_request(), str(tmp_path), max_request_bytes=SMALL_REQUEST_BYTES, workers=2)
    assert m["download"]["cached_chunks"] == 2
    assert len(fake.pixels_requests) - before == manifest["plan"]["requests"] - 2
    assert digests(tmp_path) == digests(out_ref)


CHILD = """
import sys
sys.path.insert(0, {root!r})
import ee
ee.deprecation._FetchDataCatalogStac = lambda: {{}}
from smqgis.core import earthengine, ee_inputs as ei, ee_maps
earthengine.initialise("smqgis-fake")
req = ei.Request(ei.Area.from_extent({extent!r}, "EPSG:32614", margin_m={reach!r}), "2020-04-25T06:00:00Z")
req.source_keys = {keys!r}
ee_maps.fetch_inputs(req, {out!r}, max_request_bytes={limit!r}, workers=1)
"""


@pytest.mark.slow
def test_a_killed_download_resumes_without_refetching(fake, reference, tmp_path: Path) -> None:
    out_ref, manifest = reference
    total = manifest["plan"]["requests"]
    fake.faults.clear()
    fake.delay_s = 0.15  # slow answers: the kill lands between chunks
    start = len(fake.pixels_requests)
    served0 = fake.pixels_served
    code = CHILD.format(root=str(ROOT), extent=SAMPLE_EXTENT, reach=REACH_M, out=str(tmp_path),
                        limit=SMALL_REQUEST_BYTES, keys=KEYS)
    env = {**os.environ, earthengine.URL_ENV_VAR: fake.url}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 120
        while fake.pixels_served - served0 < 5 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        fake.delay_s = 0.0
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    cache = tmp_path / ".ee-cache"
    done = {p.name for p in cache.glob("*.tif")}
    # the 5th answer may or may not have reached the cache when the kill landed
    assert 4 <= len(done) < total
    assert not list(tmp_path.glob("*.tif"))  # nothing assembled yet
    first_round = len(fake.pixels_requests) - start
    m = ee_maps.fetch_inputs(sample_request(), str(tmp_path), max_request_bytes=SMALL_REQUEST_BYTES, workers=2)
    rerun = len(fake.pixels_requests) - start - first_round
    assert m["download"]["cached_chunks"] == len(done)
    assert rerun == m["download"]["fetched_chunks"] == total - len(done)
    assert digests(tmp_path) == digests(out_ref)


def test_no_sentinel1_in_the_window_is_a_clear_error(fake, tmp_path: Path) -> None:
    req = sample_request("2020-06-01T00:00:00Z")  # no sample date in the 6 days before
    with pytest.raises(EarthEngineError) as err:
        ee_maps.fetch_inputs(req, str(tmp_path))
    assert err.value.reason == "no_image" and err.value.role == "sentinel1"
    assert not list(tmp_path.glob("*"))  # nothing written


def test_cancel_stops_between_chunks_and_keeps_what_is_done(fake, reference, tmp_path: Path) -> None:
    from smqgis.core.errors import Cancelled

    fake.faults.clear()
    seen: list[float] = []

    def progress(p: float, msg: str) -> None:
        seen.append(p)

    def three_done() -> bool:
        return len(list((tmp_path / ".ee-cache").glob("*.tif"))) >= 3

    with pytest.raises(Cancelled):
        ee_maps.fetch_inputs(sample_request(), str(tmp_path), max_request_bytes=SMALL_REQUEST_BYTES, workers=1,
                             progress=progress, is_cancelled=three_done)
    assert 3 <= len(list((tmp_path / ".ee-cache").glob("*.tif"))) < reference[1]["plan"]["requests"]
    assert not list(tmp_path.glob("*.tif"))
    assert seen == sorted(seen)
