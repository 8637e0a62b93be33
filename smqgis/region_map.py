"""Region-scale maps: the plugin's 320 m map of an area too large for one machine, as a Beam pipeline.

``python -m smqgis.region_map`` cuts the output grid of the whole area (the same snapped grid a
single run over the area would have, ``pipeline.prepare``) into square tiles of whole output
pixels and maps each tile on a Beam worker with the plugin's own function,
``kinds.fusion.estimate_sm_320m``, over the tile's extent and as one engine tile. The core reads
each tile's inputs with the halo its model windows need (``grid.ModelGrid.reach_m`` beyond the
tile's pixel centres), so a tile's values are those of the single run over the whole area made
with engine tiles of the same size (``tests/core/test_engine_tiling.py``); in exact mode they are
those of any single run. Each tile becomes one cloud-optimised GeoTIFF with the plugin's
provenance tags, written under a temporary name and renamed (a killed run leaves no half tile);
tiles whose file exists are skipped, so a rerun only makes what is missing. A VRT mosaic of the
tiles, with the same tags, and the plugin's QML style beside it end the run.

Stages: ``PlanTiles`` -> ``Reshuffle`` -> ``MapTiles`` -> ``CollectTiles`` -> ``WriteMosaic``.
Counters (namespace ``smqgis.region_map``): ``tiles_written``, ``tiles_skipped``,
``tiles_without_input``. Apache Beam is imported here only; ``smqgis.core`` never needs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from typing import Any
from xml.sax.saxutils import escape

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from .core import sources
from .core.engine import NODATA
from .core.errors import InputError
from .core.grid import ModelGrid, bounds_in, intersect
from .core.kinds import fusion
from .core.pipeline import LayerInput

log = logging.getLogger(__name__)

#: Namespace of the pipeline's Beam counters.
COUNTER_NAMESPACE = "smqgis.region_map"
#: Default tile side (km): 10 km is 31 output pixels of 320 m, a 1216 px high-res block (~0.8 GiB of
#: activations for the paper-size model at ``engine.BYTES_PER_BLOCK_PX``), one engine tile per worker call.
DEFAULT_TILE_KM = 10.0
#: Name of the mosaic (beside the tiles) and of its style (QGIS loads ``<name>.qml`` with ``<name>.vrt``).
MOSAIC_NAME = "mosaic.vrt"
#: Temporary name of a tile being written: ``<final name>.<random hex>.part``, renamed when complete.
PART_RE = re.compile(r"^tile_\d+_\d+\.tif\.[0-9a-f]+\.part$")
#: Tags of a tile that do not describe the mosaic.
TILE_ONLY_TAGS = ("REGION_TILE", "REGION_TILE_ROW0", "REGION_TILE_COL0")
#: Name of a finished tile.
TILE_RE = re.compile(r"^tile_\d+_\d+\.tif$")
#: Command-line option of each source key (the keys of ``sources.SOURCES``).
SOURCE_OPTIONS = {"sentinel1": "--s1", "sentinel2": "--s2", "dem": "--dem", "soilgrids": "--soilgrids",
                  "smap": "--smap", "gldas": "--gldas"}


@dataclass(frozen=True)
class Tile:
    """One work item: a square of output pixels of the region's grid.

    Attributes
    ----------
    index_row, index_col : int
        Position in the tile lattice (tiles).
    row0, col0, nrows, ncols : int
        Position and size on the region's output grid (output pixels).
    bounds : tuple of float
        (xmin, ymin, xmax, ymax) of the tile's output pixels in the region's CRS (m).
    """

    index_row: int
    index_col: int
    row0: int
    col0: int
    nrows: int
    ncols: int
    bounds: tuple[float, float, float, float]

    @property
    def name(self) -> str:
        """File name of the tile's GeoTIFF, e.g. ``tile_0001_0002.tif`` (lattice row, column)."""
        return f"tile_{self.index_row:04d}_{self.index_col:04d}.tif"


@dataclass(frozen=True)
class RegionPlan:
    """The region's output grid, its tiles and what every tile run shares.

    Attributes
    ----------
    grid : ModelGrid
        The region's output grid, as a single run over the area has it (its ``reach_m``: how far the
        model windows reach beyond the output pixel centres, so how far each tile reads).
    tile_px : int
        Tile side (output pixels).
    tiles : list of Tile
        Row-major.
    inputs : dict of str to LayerInput
        The inputs, with what was detected once for the whole area fixed (the Sentinel-2 DN offset),
        so every tile reads them alike.
    input_boxes : list of tuple
        Each input's bounds in ``crs`` (m): a tile whose windows reach none of one input has no input.
    warnings : list of str
        What the whole-area checks assumed.
    tags : dict of str to str
        Tags of the whole-area checks that every tile carries instead of its own (how the Sentinel-2 DN
        offset was found).
    """

    grid: ModelGrid
    tile_px: int
    tiles: list[Tile]
    inputs: dict[str, LayerInput]
    input_boxes: list[tuple[float, float, float, float]]
    warnings: list[str]
    tags: dict[str, str]


def plan_region(model: Any, inputs: dict[str, LayerInput], *, extent: tuple[float, float, float, float],
                extent_crs: str, dst_crs: str | None = None, tile_km: float = DEFAULT_TILE_KM,
                provider: str = "auto", ignore_time_bounds: bool = False) -> RegionPlan:
    """Check the inputs over the whole area once and cut its output grid into tiles.

    Parameters
    ----------
    model : str or FusionModel
        The fusion model.
    inputs : dict of str to LayerInput
        By source key, as for ``kinds.fusion.estimate_sm_320m``.
    extent : tuple of float
        (xmin, ymin, xmax, ymax) of the area in ``extent_crs``.
    extent_crs : str
        CRS of ``extent``, e.g. "EPSG:4326".
    dst_crs : str, optional
        Projected metric output CRS; default the UTM zone of the extent's centre.
    tile_km : float
        Tile side (km), rounded to whole output pixels (at least one).
    provider : str
        onnxruntime provider for opening the model.
    ignore_time_bounds : bool
        As for ``estimate_sm_320m``.

    Returns
    -------
    RegionPlan

    Raises
    ------
    InputError, ModelError
        As a single run over the area would (``parameter`` / ``role`` say which argument or input).
    """
    from .core.layers import gdal_env
    from .core.pipeline import prepare

    if not (isinstance(tile_km, (int, float)) and math.isfinite(tile_km) and tile_km > 0):
        raise InputError(f"--tile-km must be a positive number of km, not {tile_km!r}", parameter="tile_km")
    with gdal_env():
        run = prepare(model, inputs, extent=extent, extent_crs=extent_crs, dst_crs=dst_crs, provider=provider,
                      model_kind=fusion.KIND, ignore_time_bounds=ignore_time_bounds)
        try:
            grid = run.grid
            fixed = dict(inputs)
            s2 = run.layers.get("sentinel2")
            if s2 is not None and inputs["sentinel2"].dn_offset is None:
                # detected from the whole area's values: every tile must remove the same offset
                fixed["sentinel2"] = replace(inputs["sentinel2"], dn_offset=float(s2.dn_offset or 0.0))
            boxes = [bounds_in(lay.dataset.crs, tuple(lay.dataset.bounds), grid.crs) for lay in run.layers.values()]
            warnings = list(run.warnings)
            tags = {k: f"{v} (whole area)" for k, v in run.tags.items() if k == "INPUT_SENTINEL2_DN_OFFSET_SOURCE"}
        finally:
            run.close()
    res = grid.out_res_m
    tile_px = max(1, int(round(tile_km * 1000.0 / res)))
    tiles = []
    for i, row0 in enumerate(range(0, grid.height, tile_px)):
        for j, col0 in enumerate(range(0, grid.width, tile_px)):
            nr, nc = min(tile_px, grid.height - row0), min(tile_px, grid.width - col0)
            x0, y0 = grid.x0 + col0 * res, grid.y0 - row0 * res
            tiles.append(Tile(i, j, row0, col0, nr, nc, (x0, y0 - nr * res, x0 + nc * res, y0)))
    log.info("region %s: %d x %d px of %g m from (%.1f, %.1f) in %d tiles of %d px (%.2f km)", grid.crs,
             grid.width, grid.height, res, grid.x0, grid.y0, len(tiles), tile_px, tile_px * res / 1000.0)
    return RegionPlan(grid, tile_px, tiles, fixed, boxes, warnings, tags)


def run_signature(model: Any, model_path: str, inputs: dict[str, LayerInput], mode: str,
                  tile_px: int) -> dict[str, str]:
    """The tags every tile of one region run carries alike (``pipeline.provenance_tags``): model, mode, inputs."""
    meta = model.metadata
    sig = {"MODEL_FILE": os.path.basename(model_path), "MODEL_TITLE": str(meta["title"]),
           "MODEL_VARIANT": str(meta["variant"]), "MODE": mode, "TILE_PX": str(tile_px)}
    for key, li in inputs.items():
        sig[f"INPUT_{key.upper()}_PATH"] = str(li.path)
    return sig


def check_existing_tiles(out_dir: str, signature: dict[str, str], scratch: str) -> int:
    """InputError when a tile already in ``out_dir`` was made by another run (model, mode, inputs); the tiles found.

    A rerun skips the tiles it finds; mixing in tiles of another model or other inputs would make
    a mosaic that is no single map, so such a folder is refused instead (nothing is written or deleted).
    """
    import rasterio

    if not FileSystems.exists(out_dir):
        return 0
    (found,) = FileSystems.match([FileSystems.join(out_dir, "tile_*.tif")])
    names = sorted(n for n in (m.path.rsplit("/", 1)[-1] for m in found.metadata_list) if TILE_RE.match(n))
    for name in names:
        with rasterio.open(_local_copy(FileSystems.join(out_dir, name), scratch)) as ds:
            tags = ds.tags()
        differ = {k: (tags.get(k), v) for k, v in signature.items() if tags.get(k) != v}
        if differ:
            what = "; ".join(f"{k} {old!r} there, {new!r} now" for k, (old, new) in sorted(differ.items()))
            raise InputError(f"{out_dir} already holds {name} from another run ({what}); a rerun only completes "
                             "the same run: choose a new output folder (--out), or delete its tiles", parameter="out")
    return len(names)


def _local_copy(path: str, folder: str) -> str:
    """``path`` itself when local, else a copy of the remote file (gs://...) in ``folder``."""
    if FileSystems.get_scheme(path) in (None, "file"):
        return path
    local = os.path.join(folder, os.path.basename(path))
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return local


def _publish(local_path: str, final_path: str) -> None:
    """Copy ``local_path`` to a temporary name beside ``final_path`` and rename it there (atomic per file)."""
    part = f"{final_path}.{uuid.uuid4().hex}.part"
    with open(local_path, "rb") as src, FileSystems.create(
            part, mime_type="image/tiff", compression_type=CompressionTypes.UNCOMPRESSED) as dst:
        shutil.copyfileobj(src, dst)
    FileSystems.rename([part], [final_path])


def clean_parts(out_dir: str) -> list[str]:
    """Delete temporary tiles left in ``out_dir`` by a killed run (names matching ``PART_RE``); return them."""
    found = FileSystems.match([FileSystems.join(out_dir, "tile_*.part")])[0].metadata_list
    stale = [m.path for m in found if PART_RE.match(os.path.basename(m.path))]
    if stale:
        FileSystems.delete(stale)
        log.info("removed %d temporary tile(s) left by a killed run", len(stale))
    return stale


class MapTileFn(beam.DoFn):
    """Maps one tile with ``kinds.fusion.estimate_sm_320m`` into a COG; yields the tiles that have a file.

    Parameters
    ----------
    model_path : str
        The fusion model (local path or a Beam file system URL such as gs://...).
    plan : RegionPlan
        The region's plan (its inputs, CRS and input boxes).
    out_dir : str
        Where the tiles go (local folder or gs://...).
    mode, provider : str
        As for ``estimate_sm_320m``.
    """

    def __init__(self, model_path: str, plan: RegionPlan, out_dir: str, mode: str = "fast",
                 provider: str = "auto") -> None:
        self.model_path = model_path
        self.plan = plan
        self.out_dir = out_dir
        self.mode = mode
        self.provider = provider
        self.written = Metrics.counter(COUNTER_NAMESPACE, "tiles_written")
        self.skipped = Metrics.counter(COUNTER_NAMESPACE, "tiles_skipped")
        self.without_input = Metrics.counter(COUNTER_NAMESPACE, "tiles_without_input")

    def setup(self) -> None:
        """Open the model once per worker (a remote model is copied to local disk first)."""
        self._scratch = tempfile.mkdtemp(prefix="smqgis-region-")
        self.model = fusion.open_model(_local_copy(self.model_path, self._scratch), provider=self.provider)
        if not os.listdir(self._scratch):  # a local model: nothing to keep (teardown is not always called)
            os.rmdir(self._scratch)

    def teardown(self) -> None:
        """Remove the worker's scratch folder."""
        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)

    def _reaches_every_input(self, tile: Tile) -> bool:
        inset = self.plan.grid.reach_m - self.plan.grid.out_res_m / 2.0  # windows reach this far beyond the tile's edge
        b = tile.bounds
        reach = (b[0] - inset, b[1] - inset, b[2] + inset, b[3] + inset)
        return all(intersect([reach, box]) is not None for box in self.plan.input_boxes)

    def process(self, tile: Tile) -> Any:
        """Skip a tile whose file exists, else map it; yield the tile when its file exists afterwards."""
        final = FileSystems.join(self.out_dir, tile.name)
        if FileSystems.exists(final):
            self.skipped.inc()
            yield tile
            return
        if not self._reaches_every_input(tile):
            self.without_input.inc()
            return
        work = tempfile.mkdtemp(prefix="smqgis-tile-")
        try:
            raw = os.path.join(work, "raw.tif")
            # 1 m inside the tile's pixel edges: grid_covering snaps back to exactly the tile's pixels
            b = tile.bounds
            extent = (b[0] + 1.0, b[1] + 1.0, b[2] - 1.0, b[3] - 1.0)
            try:
                fusion.estimate_sm_320m(self.model, self.plan.inputs, raw, extent=extent, extent_crs=self.plan.grid.crs,
                                        dst_crs=self.plan.grid.crs, mode=self.mode, provider=self.provider,
                                        tile_px=self.plan.tile_px)
            except InputError as exc:
                if exc.parameter != "extent":
                    raise
                log.info("%s: no input (%s)", tile.name, exc)  # no window of the tile has every input
                self.without_input.inc()
                return
            cog = os.path.join(work, tile.name)
            write_cog(raw, cog, {**self.plan.tags, "REGION_TILE": f"{tile.index_row},{tile.index_col}",
                                 "REGION_TILE_ROW0": str(tile.row0), "REGION_TILE_COL0": str(tile.col0)})
            _publish(cog, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.written.inc()
        yield tile


def write_cog(src_path: str, dst_path: str, extra_tags: dict[str, str]) -> None:
    """Copy the plugin's GeoTIFF ``src_path`` to a cloud-optimised GeoTIFF with its tags plus ``extra_tags``."""
    import rasterio
    import rasterio.shutil

    with rasterio.open(src_path, "r+") as ds:
        ds.update_tags(**extra_tags)
    rasterio.shutil.copy(src_path, dst_path, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE="256",
                         OVERVIEWS="AUTO")


def _open_path(path: str) -> str:
    """A path GDAL reads for a Beam file system path (gs://b/k -> /vsigs/b/k)."""
    return "/vsigs/" + path[len("gs://"):] if path.startswith("gs://") else path


def mosaic_vrt(plan: RegionPlan, tiles: list[Tile], tags: dict[str, str], band_info: list[dict[str, str]]) -> str:
    """VRT XML of the region's grid with each tile (relative to the VRT) in its place; two float32 bands."""
    from rasterio.crs import CRS

    srs = escape(CRS.from_user_input(plan.grid.crs).to_wkt())
    gt = ", ".join(repr(float(v)) for v in plan.grid.transform.to_gdal())
    lines = [f'<VRTDataset rasterXSize="{plan.grid.width}" rasterYSize="{plan.grid.height}">',
             f"  <SRS>{srs}</SRS>", f"  <GeoTransform>{gt}</GeoTransform>", "  <Metadata>"]
    lines += [f'    <MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in sorted(tags.items())]
    lines.append("  </Metadata>")
    for band, info in enumerate(band_info, start=1):
        lines += [f'  <VRTRasterBand dataType="Float32" band="{band}">',
                  f"    <Description>{escape(info['description'])}</Description>",
                  f"    <NoDataValue>{NODATA:g}</NoDataValue>",
                  f"    <UnitType>{escape(info['unit'])}</UnitType>"]
        if info.get("tags"):
            lines.append("    <Metadata>")
            lines += [f'      <MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in sorted(info["tags"].items())]
            lines.append("    </Metadata>")
        for t in sorted(tiles, key=lambda t: (t.row0, t.col0)):
            lines += ["    <ComplexSource>",
                      f'      <SourceFilename relativeToVRT="1">{escape(t.name)}</SourceFilename>',
                      f"      <SourceBand>{band}</SourceBand>",
                      f'      <SourceProperties RasterXSize="{t.ncols}" RasterYSize="{t.nrows}" '
                      'DataType="Float32" BlockXSize="256" BlockYSize="256" />',
                      f'      <SrcRect xOff="0" yOff="0" xSize="{t.ncols}" ySize="{t.nrows}" />',
                      f'      <DstRect xOff="{t.col0}" yOff="{t.row0}" xSize="{t.ncols}" ySize="{t.nrows}" />',
                      f"      <NODATA>{NODATA:g}</NODATA>",
                      "    </ComplexSource>"]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def write_mosaic(tiles: list[Tile], plan: RegionPlan, out_dir: str) -> str:
    """Write ``mosaic.vrt`` over the tiles that have a file (tags of the first) and its QML style; return its path."""
    import rasterio

    from .paths import STYLE_PATH

    vrt_path = FileSystems.join(out_dir, MOSAIC_NAME)
    if not tiles:
        log.warning("no tile has a map (every tile lacks some input); no mosaic written")
        return ""
    first = min(tiles, key=lambda t: (t.row0, t.col0))
    with rasterio.open(_open_path(FileSystems.join(out_dir, first.name))) as ds:
        tags = {k: v for k, v in ds.tags().items() if k not in TILE_ONLY_TAGS}
        band_info = [{"description": ds.descriptions[i] or "", "unit": ds.units[i] or "",
                      "tags": ds.tags(i + 1)} for i in range(ds.count)]
    tags.update(REGION_TILES=f"{len(tiles)} of {len(plan.tiles)}", REGION_TILE_PX=str(plan.tile_px))
    text = mosaic_vrt(plan, tiles, tags, band_info)
    with tempfile.TemporaryDirectory(prefix="smqgis-mosaic-") as work:
        local = os.path.join(work, MOSAIC_NAME)
        with open(local, "w", encoding="utf-8") as fh:
            fh.write(text)
        _publish(local, vrt_path)
        _publish(str(STYLE_PATH), FileSystems.join(out_dir, MOSAIC_NAME[:-4] + ".qml"))
    log.info("mosaic of %d tile(s): %s", len(tiles), vrt_path)
    return vrt_path


def build_pipeline(p: beam.Pipeline, model_path: str, plan: RegionPlan, out_dir: str, *, mode: str = "fast",
                   provider: str = "auto") -> Any:
    """Add the stages to ``p``: PlanTiles -> Reshuffle -> MapTiles -> CollectTiles -> WriteMosaic."""
    return (p
            | "PlanTiles" >> beam.Create(plan.tiles)
            | "Reshuffle" >> beam.Reshuffle()
            | "MapTiles" >> beam.ParDo(MapTileFn(model_path, plan, out_dir, mode=mode, provider=provider))
            | "CollectTiles" >> beam.combiners.ToList()
            | "WriteMosaic" >> beam.Map(write_mosaic, plan=plan, out_dir=out_dir))


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The region map's own options and the rest (Beam's pipeline options)."""
    parser = argparse.ArgumentParser(prog="python -m smqgis.region_map", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="fusion model (.onnx), local or gs://")
    for key, opt in SOURCE_OPTIONS.items():
        parser.add_argument(opt, dest=key, help=f"{key} raster (any GDAL path: file, COG URL, /vsigs/...)")
    parser.add_argument("--sample", action="store_true", help="take every input not given from the bundled sample")
    parser.add_argument("--layer-options", default="{}",
                        help="JSON: source key -> LayerInput fields (bands, constants, fallback_constants, "
                             "acquired_utc, product, units, dn_offset), "
                             "e.g. '{\"sentinel1\": {\"units\": \"linear\"}}'")
    parser.add_argument("--extent", required=True, help="xmin,ymin,xmax,ymax of the area")
    parser.add_argument("--extent-crs", default="EPSG:4326", help="CRS of --extent (default EPSG:4326)")
    parser.add_argument("--dst-crs", default=None, help="projected output CRS (default: UTM zone of the centre)")
    parser.add_argument("--out", required=True, help="folder of the tiles and mosaic (local or gs://)")
    parser.add_argument("--tile-km", type=float, default=DEFAULT_TILE_KM, help="tile side (km), whole 320 m pixels")
    parser.add_argument("--mode", choices=fusion.MODES, default="fast")
    parser.add_argument("--provider", default="auto", help="onnxruntime provider: auto, cpu, cuda")
    parser.add_argument("--ignore-time-bounds", action="store_true")
    return parser.parse_known_args(argv)


def layer_inputs(args: argparse.Namespace) -> dict[str, LayerInput]:
    """LayerInputs of the command line (paths, ``--layer-options``, ``--sample`` for the rest)."""
    try:
        options = json.loads(args.layer_options)
    except json.JSONDecodeError as exc:
        raise InputError(f"--layer-options is not JSON ({exc})", parameter="inputs") from None
    inputs: dict[str, LayerInput] = {}
    if args.sample:
        from .demo import sample_inputs

        inputs.update(sample_inputs())
    for key in sources.SOURCES:
        path = getattr(args, key, None)
        try:
            if path:
                inputs[key] = LayerInput(path, **options.get(key, {}))
            elif key in inputs and key in options:
                inputs[key] = replace(inputs[key], **options[key])
        except TypeError as exc:
            raise InputError(f"--layer-options for {key}: {exc}", role=key, parameter="inputs") from None
    return inputs


def run(argv: list[str] | None = None) -> Any:
    """Plan the region on this machine, then run the pipeline; returns Beam's PipelineResult (finished)."""
    args, beam_args = parse_args(argv)
    try:
        extent = tuple(float(v) for v in args.extent.split(","))
    except ValueError:
        raise InputError(f"--extent {args.extent!r} is not xmin,ymin,xmax,ymax", parameter="extent") from None
    inputs = layer_inputs(args)
    with tempfile.TemporaryDirectory(prefix="smqgis-plan-") as scratch:
        model = fusion.open_model(_local_copy(args.model, scratch), provider="cpu")
        plan = plan_region(model, inputs, extent=extent, extent_crs=args.extent_crs, dst_crs=args.dst_crs,
                           tile_km=args.tile_km, ignore_time_bounds=args.ignore_time_bounds)
        found = check_existing_tiles(args.out, run_signature(model, args.model, inputs, args.mode, plan.tile_px),
                                     scratch)
        if found:
            log.info("%d tile(s) of this run already in %s: they are kept", found, args.out)
    for w in plan.warnings:
        log.warning("%s", w)
    if not FileSystems.exists(args.out):
        FileSystems.mkdirs(args.out)
    clean_parts(args.out)
    p = beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(p, args.model, plan, args.out, mode=args.mode, provider=args.provider)
    result = p.run()
    result.wait_until_finish()
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from .core.errors import SmqgisError

    # force: importing Beam already gave the root logger a WARNING-level handler
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    try:
        run(argv)
    except SmqgisError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    # run the module's own copy (not __main__'s) so that Beam pickles Tile and MapTileFn by importable names
    from smqgis.region_map import main as _main

    raise SystemExit(_main())
