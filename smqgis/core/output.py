"""The last step of the flow: where the engine puts each finished block of the map.

:class:`GeoTiffWriter` streams blocks into a temporary float32 GeoTIFF and renames it onto
the target only when the run succeeds (nothing is left behind on failure or cancel);
:class:`ArrayWriter` keeps the blocks in memory. The temporary file lives in smqgis's own
folder (:func:`part_dir`, on the output's file system) with the writing process's id in its
name, so a run killed with SIGKILL leaves it where the next run finds and removes it
(:func:`clean_stale_parts`); nothing hidden is ever made beside the output. Both take what the
engine's ``Writer`` protocol gives: soil moisture (m3/m3, :data:`engine.NODATA` where
there is no estimate) and the input coverage (0-1).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .engine import NODATA
from .errors import InputError
from .grid import ModelGrid

#: File name endings of the one format the writers make.
GEOTIFF_SUFFIXES = (".tif", ".tiff")
#: Internal tile side of the written GeoTIFF (px), when the map is at least that large.
GEOTIFF_BLOCK_PX = 256
#: Name of a temporary map: ``<pid>-<random>-<output name>.part.tif`` (in :func:`part_dir`) or, when that
#: folder is on another file system than the output, ``<output name>.smqgis-<pid>-<random>.part.tif`` beside it.
PART_RE = re.compile(r"^(?:(?P<pid>\d+)-[^-]+-.+|.+\.smqgis-(?P<pid2>\d+)-[^.]+)\.part\.tif$")

log = logging.getLogger(__name__)


def part_dir() -> str:
    """smqgis's folder of temporary maps: ``$SMQGIS_TMPDIR``, else ``<system temp>/smqgis-<user id>`` (mode 0700)."""
    folder = os.environ.get("SMQGIS_TMPDIR") or os.path.join(tempfile.gettempdir(),
                                                              f"smqgis-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_parts(*folders: str) -> list[str]:
    """Remove temporary maps of runs whose process is gone (killed) from ``folders``; return what was removed."""
    removed = []
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            m = PART_RE.match(name)
            if not m:
                continue
            pid = int(m.group("pid") or m.group("pid2"))
            if _alive(pid):
                continue
            path = os.path.join(folder, name)
            try:
                os.remove(path)
                removed.append(path)
                log.info("removed %s, left by a run that was killed (process %d)", path, pid)
            except OSError:
                pass
    return removed


def check_writable(output_path: str) -> None:
    """Raise InputError (``parameter="output_path"``) unless a GeoTIFF can be created at ``output_path``."""
    if not isinstance(output_path, (str, os.PathLike)) or not str(output_path).strip():
        raise InputError(f"the output path {output_path!r} is not a file name; give a .tif file to write the map to",
                         parameter="output_path")
    output_path = str(output_path)
    folder = os.path.dirname(os.path.abspath(output_path)) or "."
    if os.path.isdir(output_path):
        raise InputError(f"the output path {output_path} is a folder; give a file name ending in .tif",
                         parameter="output_path")
    if not output_path.lower().endswith(GEOTIFF_SUFFIXES):
        raise InputError(f"the output {output_path} must be a GeoTIFF: give it a .tif extension",
                         parameter="output_path")
    if not os.path.isdir(folder):
        raise InputError(f"cannot write the output {output_path}: the folder {folder} does not exist or is not "
                         "writable; choose an output file in a folder you can write to", parameter="output_path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {folder} (permission denied); choose an output path in a writable folder",
                         parameter="output_path")


class ArrayWriter:
    """Collects the output blocks in memory (for tests and callers that want arrays)."""

    def __init__(self, grid: ModelGrid) -> None:
        self.soil_moisture = np.full((grid.height, grid.width), NODATA, dtype=np.float32)
        self.coverage = np.zeros((grid.height, grid.width), dtype=np.float32)

    def write(self, row0: int, col0: int, soil_moisture: np.ndarray, coverage: np.ndarray) -> None:
        """Store one block (m3/m3 with NODATA, and coverage 0-1)."""
        r, c = soil_moisture.shape
        self.soil_moisture[row0:row0 + r, col0:col0 + c] = soil_moisture
        self.coverage[row0:row0 + r, col0:col0 + c] = coverage

    def commit(self, tags: dict[str, str]) -> None:
        """Nothing to finish in memory."""

    def abort(self) -> None:
        """Nothing to remove in memory."""


class GeoTiffWriter:
    """Streams output blocks into a temporary float32 GeoTIFF, renamed onto the target on commit.

    Band 1 ``soil_moisture`` (m3/m3, nodata -9999), band 2 ``input_coverage`` (0-1).
    """

    def __init__(self, grid: ModelGrid, output_path: str) -> None:
        self.output_path = os.path.abspath(output_path)
        folder, name = os.path.split(self.output_path)
        parts = part_dir()
        clean_stale_parts(parts, folder)
        pid = os.getpid()
        if os.stat(parts).st_dev == os.stat(folder).st_dev:  # os.replace works: the part file stays out of sight
            fd, self.tmp_path = tempfile.mkstemp(prefix=f"{pid}-", suffix=f"-{name}.part.tif", dir=parts)
        else:
            fd, self.tmp_path = tempfile.mkstemp(prefix=f"{name}.smqgis-{pid}-", suffix=".part.tif", dir=folder)
        os.close(fd)
        block = GEOTIFF_BLOCK_PX
        profile = {
            "driver": "GTiff", "width": grid.width, "height": grid.height, "count": 2, "dtype": "float32",
            "crs": grid.crs, "transform": grid.transform, "nodata": NODATA, "compress": "deflate",
            "predictor": 3,
        }
        if grid.width >= block and grid.height >= block:
            profile.update(tiled=True, blockxsize=block, blockysize=block)
        try:
            self.ds = rasterio.open(self.tmp_path, "w", **profile)
        except (RasterioError, OSError) as exc:
            os.remove(self.tmp_path)
            raise InputError(f"cannot create {self.output_path} ({exc}); choose another output path",
                             parameter="output_path") from None
        self.ds.set_band_description(1, "soil_moisture")
        self.ds.set_band_description(2, "input_coverage")
        self.ds.set_band_unit(1, "m3/m3")
        self.ds.set_band_unit(2, "fraction")

    def write(self, row0: int, col0: int, soil_moisture: np.ndarray, coverage: np.ndarray) -> None:
        """Write one block (m3/m3 with NODATA, and coverage 0-1) at (row0, col0)."""
        win = Window(col0, row0, soil_moisture.shape[1], soil_moisture.shape[0])
        self.ds.write(soil_moisture.astype(np.float32), 1, window=win)
        self.ds.write(coverage.astype(np.float32), 2, window=win)

    def commit(self, tags: dict[str, str]) -> None:
        """Write the provenance tags, close, and move the file onto the target path."""
        self.ds.update_tags(**tags)
        self.ds.update_tags(1, units="m3/m3", quantity="volumetric soil moisture")
        self.ds.close()
        # mkstemp makes the file private (0600); a map gets the permissions of any new file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp_path, 0o666 & ~umask)
        os.replace(self.tmp_path, self.output_path)

    def abort(self) -> None:
        """Close and delete the temporary file (no partial output)."""
        try:
            self.ds.close()
        finally:
            if os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)
