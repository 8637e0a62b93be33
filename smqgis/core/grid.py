"""The target grids of a run: the 320 m output grid and the model's input grids aligned to it.

Step two of the flow (inputs -> one target grid -> encoded arrays -> inference -> raster).
Output pixel (r, c) of a run is the estimate for the model window centred on that pixel's
centre, so the output transform's pixel centres are the window centres. Each input role
of the model ("high_res" at 10 m, "low_res" at 160 m) has its own grid, aligned so that the
window of output pixel (r, c) starts at role pixel (step * r, step * c) of the role grid,
with ``step = output resolution / role pixel size`` (32 for 10 m, 2 for 160 m). This is
the graph-calling convention of ``schema.py``: a block of output pixels reads one role
block of ``step * (n - 1) + window`` pixels a side. The coarse role is sampled at the
window centres. Output grids are snapped to multiples of the output resolution in the
destination CRS so runs over neighbouring extents line up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import InputError

#: Output resolution used when a model has no high-res input (m).
DEFAULT_OUTPUT_RES_M = 320.0
_EPS = 1e-6


@dataclass(frozen=True)
class RoleGrid:
    """The grid of one NHWC model input relative to the output grid.

    Attributes
    ----------
    pixel_size_m : float
        Pixel size of the role grid (m), e.g. 10 for ``high_res``.
    window_px : int
        Side of one model window in role pixels, e.g. 256.
    step_px : int
        Role pixels per output pixel, e.g. 32 (= output resolution / pixel size).
    """

    pixel_size_m: float
    window_px: int
    step_px: int

    @property
    def half_window_m(self) -> float:
        """Half the window's ground size (m), e.g. 1280 for 256 px at 10 m."""
        return self.window_px * self.pixel_size_m / 2.0

    def block_shape(self, n_rows: int, n_cols: int) -> tuple[int, int]:
        """Role pixels (rows, cols) covering the windows of ``n_rows x n_cols`` output pixels."""
        return (self.step_px * (n_rows - 1) + self.window_px, self.step_px * (n_cols - 1) + self.window_px)


def role_grids(meta: dict[str, Any]) -> tuple[float, dict[str, RoleGrid]]:
    """Output resolution (m) and the grid of each NHWC input of a model's metadata.

    Raises
    ------
    ModelError
        If a role's pixel size does not divide the output resolution.
    """
    from .errors import ModelError

    out_res = float(meta.get("nominal_resolution_m") or 0.0) or DEFAULT_OUTPUT_RES_M
    grids: dict[str, RoleGrid] = {}
    for spec in meta["inputs"]:
        if spec["layout"] != "NHWC":
            continue
        size = float(spec["pixel_size_m"])
        step = out_res / size
        if abs(step - round(step)) > _EPS:
            raise ModelError(
                f"input {spec['name']!r}: pixel size {size} m does not divide the output resolution {out_res} m"
            )
        grids[spec["name"]] = RoleGrid(size, int(spec["window_px"]), int(round(step)))
    extents = {g.half_window_m for g in grids.values()}
    if len(extents) > 1:
        raise ModelError(f"the model's input windows cover different ground sizes {sorted(2 * e for e in extents)} m; "
                         "smqgis needs them centred on the same square")
    return out_res, grids


@dataclass(frozen=True)
class ModelGrid:
    """The output grid of a run and the aligned grids of the model's inputs.

    Attributes
    ----------
    crs : str
        Destination CRS as a string rasterio accepts (``"EPSG:32614"`` or WKT); projected, metres.
    x0, y0 : float
        Left and top edge of the output grid in ``crs`` (m).
    width, height : int
        Output size (pixels).
    out_res_m : float
        Output pixel size (m), 320 for the fusion model.
    roles : dict of str to RoleGrid
        Grid of each NHWC model input.
    """

    crs: str
    x0: float
    y0: float
    width: int
    height: int
    out_res_m: float
    roles: dict[str, RoleGrid]

    @property
    def transform(self) -> Any:
        """Affine transform of the output raster (pixel centres = window centres)."""
        from affine import Affine

        return Affine(self.out_res_m, 0.0, self.x0, 0.0, -self.out_res_m, self.y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Output bounds (xmin, ymin, xmax, ymax) in ``crs`` (m)."""
        return (self.x0, self.y0 - self.height * self.out_res_m, self.x0 + self.width * self.out_res_m, self.y0)

    def window_centre(self, row: int, col: int) -> tuple[float, float]:
        """Centre (x, y) in ``crs`` of output pixel (row, col), i.e. of its model window (m)."""
        return (self.x0 + (col + 0.5) * self.out_res_m, self.y0 - (row + 0.5) * self.out_res_m)

    def block_transform(self, role: str, row0: int, col0: int) -> Any:
        """Transform of ``role``'s block whose first window belongs to output pixel (row0, col0)."""
        from affine import Affine

        g = self.roles[role]
        cx, cy = self.window_centre(row0, col0)
        return Affine(g.pixel_size_m, 0.0, cx - g.half_window_m, 0.0, -g.pixel_size_m, cy + g.half_window_m)

    @property
    def reach_m(self) -> float:
        """How far (m) the model windows reach beyond the output pixel centres."""
        return max((g.half_window_m for g in self.roles.values()), default=self.out_res_m / 2.0)


def utm_crs_for(lon: float, lat: float) -> str:
    """EPSG code string of the WGS 84 UTM zone containing (lon, lat) in degrees."""
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def check_projected(crs: Any, suggestion: Callable[[], str] | None = None) -> str:
    """Return ``crs`` as a string if it is projected in metres; raise InputError (``parameter="dst_crs"``) otherwise.

    ``suggestion()`` names the CRS to suggest instead (e.g. the area's UTM zone), asked only on error.
    """
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        c = CRS.from_user_input(crs)
    except CRSError as exc:
        raise InputError(f"output CRS {crs!r} is not a CRS GDAL understands ({exc}); give e.g. 'EPSG:32614'",
                         parameter="dst_crs") from None
    if c.is_projected and (c.linear_units or "").lower() in ("metre", "meter", "m", "metres", "meters"):
        return c.to_string()
    zone = suggestion() if suggestion is not None else ""
    pick = (f"the area's UTM zone {zone}" if zone
            else "the UTM zone of the area (e.g. EPSG:326xx north, EPSG:327xx south)")
    if not c.is_projected:
        raise InputError(
            f"the output CRS {crs} is geographic (degrees); the grid needs a projected metric CRS: pick {pick} "
            "or leave it empty for the UTM zone of the extent's centre",
            parameter="dst_crs",
        )
    raise InputError(
        f"the output CRS {crs} has units {c.linear_units!r}; pick a projected CRS in metres, e.g. {pick}",
        parameter="dst_crs",
    )


def intersect(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float] | None:
    """Intersection of (xmin, ymin, xmax, ymax) boxes, or None when it is empty."""
    xmin = max(b[0] for b in boxes)
    ymin = max(b[1] for b in boxes)
    xmax = min(b[2] for b in boxes)
    ymax = min(b[3] for b in boxes)
    if xmin >= xmax or ymin >= ymax:
        return None
    return (xmin, ymin, xmax, ymax)


def bounds_in(
    crs_from: Any, bounds: tuple[float, float, float, float], crs_to: Any
) -> tuple[float, float, float, float]:
    """``bounds`` of ``crs_from`` as a box in ``crs_to`` (densified edges)."""
    from rasterio.warp import transform_bounds

    return tuple(transform_bounds(crs_from, crs_to, *bounds, densify_pts=21))  # type: ignore[return-value]


def grid_inside(
    area: tuple[float, float, float, float], crs: str, out_res_m: float, roles: dict[str, RoleGrid]
) -> ModelGrid:
    """The largest snapped output grid whose every model window lies inside ``area`` (dst CRS, m)."""
    probe = ModelGrid(crs, 0.0, 0.0, 0, 0, out_res_m, roles)
    inset = probe.reach_m - out_res_m / 2.0  # window edge beyond the output pixel edge
    x0 = math.ceil((area[0] + inset) / out_res_m - _EPS) * out_res_m
    x1 = math.floor((area[2] - inset) / out_res_m + _EPS) * out_res_m
    y0 = math.floor((area[3] - inset) / out_res_m + _EPS) * out_res_m
    y1 = math.ceil((area[1] + inset) / out_res_m - _EPS) * out_res_m
    width, height = int(round((x1 - x0) / out_res_m)), int(round((y0 - y1) / out_res_m))
    if width < 1 or height < 1:
        raise InputError(
            f"the inputs overlap on {area[2] - area[0]:.0f} m x {area[3] - area[1]:.0f} m, less than one model "
            f"window ({2 * probe.reach_m:.0f} m a side); give inputs that overlap on a larger area"
        )
    return ModelGrid(crs, x0, y0, width, height, out_res_m, roles)


def grid_covering(
    extent: tuple[float, float, float, float], crs: str, out_res_m: float, roles: dict[str, RoleGrid]
) -> ModelGrid:
    """The snapped output grid whose pixels cover ``extent`` (dst CRS, m)."""
    x0 = math.floor(extent[0] / out_res_m + _EPS) * out_res_m
    x1 = math.ceil(extent[2] / out_res_m - _EPS) * out_res_m
    y0 = math.ceil(extent[3] / out_res_m - _EPS) * out_res_m
    y1 = math.floor(extent[1] / out_res_m + _EPS) * out_res_m
    width, height = max(1, int(round((x1 - x0) / out_res_m))), max(1, int(round((y0 - y1) / out_res_m)))
    return ModelGrid(crs, x0, y0, width, height, out_res_m, roles)
