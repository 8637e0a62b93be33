"""The input sources of smqgis, as one table: the only home of facts about a source.

Everything the rest of the code needs to know about a source - its Earth Engine
collection, its bands, their units, physical ranges and other names, the band order of
its standard product, native pixel size, the temporal bound of the Sentinel-1-anchored
join (paper 000, Table 5), its default 0-255 encoding (Table 4 and Table 17), its field
name in the authors' released TFRecord schema, the dates it is valid for, its successor
product, its attribution, and the label and help text users see - lives here as data,
not as branches. The order of :data:`SOURCES` is the order inputs are listed everywhere.

Pure Python: imported by training/, by smqgis/core and by the Processing side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Sentinel-2 log-space statistics of paper 000, Table 17 (log_mean, log_std).
S2_LOG_STATS: dict[str, tuple[float, float]] = {
    "B2": (1.7417268007636313, 2.023298706048351),
    "B3": (1.7261204997060209, 2.038905204308012),
    "B4": (1.6798346251414997, 2.179592821212937),
    "B5": (1.7734969472909623, 2.2890068333026603),
    "B6": (2.289154079164943, 2.6171674549378166),
    "B7": (2.382939712192371, 2.773418590375327),
    "B8": (2.3828939530384052, 2.7578332604178284),
    "B11": (2.1952484264967844, 2.789092484314204),
    "B12": (1.554812948247501, 2.4140534947492487),
}


def linear(vmin: float, vmax: float) -> dict[str, Any]:
    """A linear 0-255 encoding of the physical range [vmin, vmax] (Table 4)."""
    return {"kind": "linear", "min": float(vmin), "max": float(vmax)}


def s2_log(band: str) -> dict[str, Any]:
    """The Sentinel-2 log-space encoding of Table 17 for one band.

    The paper's formula did not survive text extraction; we follow the scheme it
    cites (Brown et al. 2022, Dynamic World): ``z = (ln(1 + DN * dn_scale) -
    log_mean) / log_std`` and ``encoded = 255 * sigmoid(z)`` with DN the L1C
    digital number (TOA reflectance x 10000) and ``dn_scale = 0.01`` (reflectance
    in percent). The metadata of every model carries these numbers, so a model
    trained with another choice carries its own.
    """
    log_mean, log_std = S2_LOG_STATS[band]
    return {"kind": "log_sigmoid", "log_mean": log_mean, "log_std": log_std, "dn_scale": 0.01}


@dataclass(frozen=True)
class Band:
    """One band of a source.

    Attributes
    ----------
    name : str
        The band's name in smqgis (``"VV"``, ``"B4"``, ``"elevation"``, ...).
    units : str
        Physical units of its values.
    encoding : dict
        Default 0-255 encoding (a model's metadata carries its own).
    tfrecord_key : str
        Field name in the authors' released TFRecord schema.
    physical_range : tuple of float
        Values the band can physically take (its units); a constant given for it must lie inside.
    ee_band : str
        Earth Engine band name when it differs from ``name``.
    aliases : tuple of str
        Other names the band goes by in band descriptions (compared normalised: lower case,
        alphanumerics only, Sentinel-2 zero padding dropped).
    constant_note : str
        Why a constant in place of this band is an approximation (said in the warning), if it may be one.
    """

    name: str
    units: str
    encoding: dict[str, Any]
    tfrecord_key: str
    physical_range: tuple[float, float]
    ee_band: str = ""
    aliases: tuple[str, ...] = ()
    constant_note: str = ""

    @property
    def ee_name(self) -> str:
        """The band's name in Earth Engine."""
        return self.ee_band or self.name


@dataclass(frozen=True)
class Source:
    """One input source (a row of Table 5 with its bands).

    Attributes
    ----------
    key : str
        The source's key (``"sentinel1"``, ...), also the input role name in errors and tags.
    title : str
        The product's name.
    label : str
        How dialogs name the input: the product and its bands with units.
    help : str
        One sentence for help texts: what the input holds, in which units.
    ee_collection : str
        Earth Engine collection (``{band}`` is replaced per band for SoilGrids).
    bands : tuple of Band
        The bands smqgis knows, in the order of the authors' released model.
    native_resolution_m : float
        Pixel size of the product (m).
    temporal_bound_s : float or None
        Largest time from the Sentinel-1 acquisition (s); None for a static source.
    attribution : str
        Credit line, written into every map made from the source.
    valid_from, valid_to : str or None
        First and last day (ISO-8601) the product exists.
    successor : dict
        The product that continues it (collection, band, units, ``to_native_scale``).
    standard_order : tuple of str
        Band order of a file of the product without band descriptions (when its band count matches);
        empty: the order of ``bands``.
    ee_filters : dict
        Earth Engine filters of the collection.
    ee_asset : {"collection", "image", "image_per_band"}
        How the product is stored in Earth Engine: a time series, one image, or one image per band
        (``ee_collection`` with ``{band}`` replaced by the band's name).
    ee_dtype : str
        Pixel type requested from Earth Engine (numpy name); sets the bytes per pixel of a download.
    ee_native_grid : dict
        The product's own grid (``crs``, ``step`` in its units), for coarse products fetched on it; empty:
        fetched on the area's UTM grid.
    """

    key: str
    title: str
    label: str
    help: str
    ee_collection: str
    bands: tuple[Band, ...]
    native_resolution_m: float
    temporal_bound_s: float | None
    attribution: str
    valid_from: str | None = None
    valid_to: str | None = None
    successor: dict[str, Any] = field(default_factory=dict)
    standard_order: tuple[str, ...] = ()
    ee_filters: dict[str, Any] = field(default_factory=dict)
    ee_asset: str = "collection"
    ee_dtype: str = "float32"
    ee_native_grid: dict[str, Any] = field(default_factory=dict)

    def band(self, name: str) -> Band:
        """The band called ``name``; KeyError naming the bands there are."""
        for b in self.bands:
            if b.name == name:
                return b
        raise KeyError(f"{self.key} has no band {name!r}; it has {[b.name for b in self.bands]}")

    @property
    def band_names(self) -> list[str]:
        """Names of the bands, in table order."""
        return [b.name for b in self.bands]

    @property
    def file_band_order(self) -> tuple[str, ...]:
        """Band order assumed for a file of this source without band descriptions."""
        return self.standard_order or tuple(self.band_names)


HOUR_S = 3600.0
DAY_S = 86400.0

SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(
            key="sentinel1",
            title="Sentinel-1 GRD (IW)",
            label="Sentinel-1 GRD (VV, VH [dB], incidence angle [deg])",
            help="<b>Sentinel-1</b>: GRD backscatter VV and VH in dB and the incidence angle in degrees.",
            ee_collection="COPERNICUS/S1_GRD",
            bands=(
                Band(
                    "VV", "dB", linear(-25, 5), "sentinel_1_VV", (-50.0, 20.0), aliases=("sigma0vv", "vvdb", "gammavv")
                ),
                Band(
                    "VH", "dB", linear(-25, 5), "sentinel_1_VH", (-50.0, 20.0), aliases=("sigma0vh", "vhdb", "gammavh")
                ),
                Band(
                    "angle",
                    "deg",
                    linear(0, 90),
                    "sentinel_1_angle",
                    (0.0, 90.0),
                    aliases=("incidenceangle", "incidence", "localincidenceangle", "theta"),
                    constant_note="the true angle varies across the swath (about 30-46 deg in IW mode), which "
                    "biases the estimate away from the swath's centre; give a raster with an angle band where "
                    "you can",
                ),
            ),
            native_resolution_m=10.0,
            temporal_bound_s=1 * HOUR_S,
            attribution="Contains modified Copernicus Sentinel data",
            ee_filters={"instrumentMode": "IW", "transmitterReceiverPolarisation": ["VV", "VH"]},
        ),
        Source(
            key="sentinel2",
            title="Sentinel-2 L1C (harmonized)",
            label="Sentinel-2 L1C (B4, B3, B2, B8, B11, B12 as DN)",
            help="<b>Sentinel-2</b>: L1C bands B4, B3, B2, B8, B11, B12 as digital numbers (reflectance x 10000).",
            ee_collection="COPERNICUS/S2_HARMONIZED",
            bands=tuple(
                Band(b, "DN (TOA reflectance x 10000)", s2_log(b), f"sentinel_2_{b}", (0.0, 65535.0))
                for b in ("B4", "B3", "B2", "B8", "B11", "B12")
            ),
            native_resolution_m=10.0,
            temporal_bound_s=14 * DAY_S,
            # all 13 L1C bands, the order of a full-product export
            standard_order=("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"),
            attribution="Contains modified Copernicus Sentinel data",
            ee_filters={"max_cloud_percent": 30.0, "cloud_property": "CLOUDY_PIXEL_PERCENTAGE",
                        # QA60 bits 10 (opaque clouds) and 11 (cirrus) mask a pixel out
                        "mask_band": "QA60", "mask_bits": [10, 11]},
            ee_dtype="uint16",
        ),
        Source(
            key="dem",
            title="NASADEM elevation",
            label="DEM (elevation [m])",
            help="<b>DEM</b>: elevation in m.",
            ee_collection="NASA/NASADEM_HGT/001",
            bands=(
                Band(
                    "elevation",
                    "m",
                    linear(0, 3000),
                    "nasa_dem_elevation",
                    (-500.0, 9000.0),
                    aliases=("dem", "height", "elev", "altitude", "hgt"),
                ),
            ),
            native_resolution_m=30.0,
            temporal_bound_s=None,
            attribution="NASADEM, NASA JPL",
            ee_asset="image",
            ee_dtype="int16",
        ),
        Source(
            key="soilgrids",
            title="SoilGrids 2.0, 0-5 cm mean",
            label="SoilGrids 0-5 cm (sand, silt, clay [g/kg], bdod [cg/cm3])",
            help="<b>SoilGrids</b>: 0-5 cm sand, silt, clay (g/kg) and bulk density bdod (cg/cm3).",
            ee_collection="projects/soilgrids-isric/{band}_mean",
            bands=(
                Band(
                    "sand",
                    "g/kg",
                    linear(0, 800),
                    "soil_grids_sand_sand_0-5cm_mean",
                    (0.0, 1000.0),
                    "sand_0-5cm_mean",
                    aliases=("sand05cm", "sand05cmmean"),
                ),
                Band(
                    "silt",
                    "g/kg",
                    linear(0, 800),
                    "soil_grids_silt_silt_0-5cm_mean",
                    (0.0, 1000.0),
                    "silt_0-5cm_mean",
                    aliases=("silt05cm", "silt05cmmean"),
                ),
                Band(
                    "clay",
                    "g/kg",
                    linear(0, 800),
                    "soil_grids_clay_clay_0-5cm_mean",
                    (0.0, 1000.0),
                    "clay_0-5cm_mean",
                    aliases=("clay05cm", "clay05cmmean"),
                ),
                Band(
                    "bdod",
                    "cg/cm3",
                    linear(0, 800),
                    "soil_grids_bd_bdod_0-5cm_mean",
                    (0.0, 300.0),
                    "bdod_0-5cm_mean",
                    aliases=("bdod05cm", "bdod05cmmean", "bulkdensity", "bd"),
                ),
            ),
            native_resolution_m=250.0,
            temporal_bound_s=None,
            attribution="SoilGrids 2.0 (ISRIC), CC BY 4.0, Poggio et al. 2021",
            ee_asset="image_per_band",
            ee_dtype="int16",
        ),
        Source(
            key="smap",
            title="SMAP surface soil moisture (NASA-USDA 10 km)",
            label="SMAP surface soil moisture (ssm)",
            help="<b>SMAP</b>: surface soil moisture (see SMAP product).",
            ee_collection="NASA_USDA/HSL/SMAP10KM_soil_moisture",
            # ssm in mm over 0-5 cm; 0-50 mm spans 0-1 m3/m3 at 0.05 m depth.
            bands=(Band("ssm", "mm", linear(0, 50), "smap_sm", (0.0, 50.0), aliases=("smapssm", "soilmoisture")),),
            native_resolution_m=10000.0,
            temporal_bound_s=3 * DAY_S,
            attribution="NASA-USDA SMAP global soil moisture (NASA GSFC / USDA FAS)",
            valid_from="2015-04-02",
            valid_to="2022-08-02",
            successor={
                "ee_collection": "NASA/SMAP/SPL4SMGP/007",
                "ee_band": "sm_surface",
                "units": "m3/m3",
                # harmonize to the trained-on quantity: mm of water in the top 0.05 m
                "to_native_scale": 50.0,
                "native_resolution_m": 9000.0,
                # EASE-Grid 2.0 global, 9 km (9008.05 m)
                "ee_native_grid": {"crs": "EPSG:6933", "step": 9008.055210146},
            },
            ee_native_grid={"crs": "EPSG:4326", "step": 0.1},
        ),
        Source(
            key="gldas",
            title="GLDAS-2.1 Noah 0.25 deg 3-hourly",
            label="GLDAS Noah (SoilMoi0_10cm_inst [kg/m2])",
            help="<b>GLDAS</b>: Noah SoilMoi0_10cm_inst in kg/m2.",
            ee_collection="NASA/GLDAS/V021/NOAH/G025/T3H",
            bands=(
                Band(
                    "SoilMoi0_10cm_inst",
                    "kg/m2",
                    linear(0, 100),
                    "gldas_sm",
                    (0.0, 100.0),
                    aliases=("soilmoi010cm", "gldassm"),
                ),
            ),
            native_resolution_m=27750.0,
            temporal_bound_s=6 * HOUR_S,
            attribution="GLDAS-2.1, NASA GES DISC (Beaudoing & Rodell 2020)",
            ee_native_grid={"crs": "EPSG:4326", "step": 0.25},
        ),
    )
}

#: Water depth that converts each coarse product to volumetric soil moisture (m).
VOLUMETRIC_DEPTH_M = {"smap": 0.05, "gldas": 0.10}


def band_ref(ref: str) -> tuple[Source, Band]:
    """Resolve ``"source/band"`` (e.g. ``"sentinel1/VV"``) to its Source and Band."""
    try:
        source_key, band_name = ref.split("/", 1)
        source = SOURCES[source_key]
    except (ValueError, KeyError) as exc:
        raise KeyError(f"unknown band reference {ref!r}; expected one of {all_band_refs()}") from exc
    return source, source.band(band_name)


def all_band_refs() -> list[str]:
    """Every ``"source/band"`` reference of the table."""
    return [f"{s.key}/{b.name}" for s in SOURCES.values() for b in s.bands]


# --- plausibility: what a file of each source holds, and the usual mix-ups ---------------------------------
@dataclass(frozen=True)
class UnitOption:
    """A declared conversion of an input given in other units to the units of the table.

    Attributes
    ----------
    name : str
        The option's name (``LayerInput.units``, the Processing ``*_UNITS`` choice).
    units : str
        The units the file holds.
    bands : tuple of str
        Bands converted (the others are read as they are).
    scale : float
        Factor to the table's units (after ``10 log10`` when ``decibel``).
    decibel : bool
        Convert linear power to dB (``10 log10(x)``) first.
    """

    name: str
    units: str
    bands: tuple[str, ...]
    scale: float = 1.0
    decibel: bool = False


@dataclass(frozen=True)
class Lookalike:
    """Values that are plausible for a file, but in other units or of another quantity: refused.

    Attributes
    ----------
    looks_like : str
        What the values look like (said in the message).
    bands : tuple of str
        Bands whose values are tested (all must match).
    low, high : float
        The test: the 2nd and 98th percentiles of the values read both lie in [low, high].
    option : str
        The :class:`UnitOption` that converts such values ('' if none; ``advice`` says what to do).
    advice : str
        What to do, when no unit option converts them.
    """

    looks_like: str
    bands: tuple[str, ...]
    low: float
    high: float
    option: str = ""
    advice: str = ""


_S2 = ("B4", "B3", "B2", "B8", "B11", "B12")

#: Declared unit conversions per source (never applied unless chosen).
UNIT_OPTIONS: dict[str, tuple[UnitOption, ...]] = {
    "sentinel1": (UnitOption("linear", "linear power (sigma0)", ("VV", "VH"), decibel=True),),
    "sentinel2": (UnitOption("reflectance", "TOA reflectance 0-1", _S2, scale=10000.0),),
    "soilgrids": (UnitOption("percent", "sand, silt, clay in %", ("sand", "silt", "clay"), scale=10.0),),
    # m3/m3 over 0-5 cm -> mm: x 50 (the successor product's harmonisation)
    "smap": (UnitOption("m3/m3", "volumetric m3/m3", ("ssm",), scale=1000.0 * VOLUMETRIC_DEPTH_M["smap"]),),
    # m3/m3 over 0-10 cm -> kg/m2: x 100
    "gldas": (UnitOption("m3/m3", "volumetric m3/m3", ("SoilMoi0_10cm_inst",),
                         scale=1000.0 * VOLUMETRIC_DEPTH_M["gldas"]),),
}

#: The usual mix-ups, tested on a decimated read of each input over the run's extent.
LOOKALIKES: dict[str, tuple[Lookalike, ...]] = {
    # dB backscatter is negative over land; linear sigma0 is 0-1 (rarely above 2)
    "sentinel1": (Lookalike("linear power (0-2), not dB (about -30..0)", ("VV", "VH"), 0.0, 2.0, "linear"),),
    # L1C DN over land lie in hundreds to thousands; reflectance is 0-1 (clouds and snow to ~1.6)
    "sentinel2": (Lookalike("TOA reflectance 0-1, not L1C DN 0-10000", _S2, -0.1, 2.0, "reflectance"),),
    # g/kg fractions sum to ~1000; % sum to ~100: sand, silt and clay all at most 100
    "soilgrids": (Lookalike("percent (0-100), not g/kg (0-1000)", ("sand", "silt", "clay"), 0.0, 100.0,
                            "percent"),),
    # ssm in mm over 5 cm lies in 1-30; m3/m3 lie in 0.01-0.6
    "smap": (Lookalike("volumetric soil moisture m3/m3 (0-1), not mm (0-50)", ("ssm",), 0.0, 1.0, "m3/m3",
                       "or, for the successor product NASA/SMAP/SPL4SMGP/007, choose it as the product "
                       "(SMAP_PRODUCT)"),),
    "gldas": (Lookalike("volumetric soil moisture m3/m3 (0-1), not kg/m2 (0-100)", ("SoilMoi0_10cm_inst",), 0.0,
                        1.0, "m3/m3"),),
}

#: Sentinel-2 L1C processing baseline 04.00 (scenes from this day on, UTC) adds a +1000 DN offset
#: (RADIO_ADD_OFFSET = -1000 in the product metadata); Earth Engine's S2_HARMONIZED removes it.
S2_OFFSET_FROM = "2022-01-25"
S2_OFFSET_DN = 1000.0
#: Sentinel-2 DN below which a scene with the offset has (almost) no pixel: the offset's own floor.
S2_OFFSET_FLOOR_DN = 1000.0

#: Largest relative scale error of the output CRS over the extent (0.5 %: a 320 m pixel is 320 +- 1.6 m on
#: the ground; a UTM zone's own error is at most 0.1 % within it).
MAX_SCALE_ERROR = 0.005
#: Largest map a run makes unless the caller raises the limit (output pixels: 4 million of 320 m = about
#: 640 km x 640 km, 32 MiB of float32 per band); above it the run is refused with advice.
DEFAULT_MAX_OUTPUT_PX = 4_000_000
