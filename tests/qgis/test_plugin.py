"""The plugin's shell in a real QGIS: metadata, licence, classFactory, provider, parameters, style.

None of these tests runs the engine; they pin what QGIS and plugins.qgis.org see.
"""

from __future__ import annotations

import configparser
import importlib.util
import sys
import xml.etree.ElementTree as ET

import pytest
from qgis.core import (
    QgsApplication,
    QgsColorRampShader,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
)

from sm_qgis_helpers import ALG_ID, REPO

REQUIRED_METADATA = (
    "name", "description", "about", "version", "qgisMinimumVersion", "author", "email", "tracker", "repository",
)


def read_metadata() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(REPO / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_metadata_has_every_validator_field() -> None:
    meta = read_metadata()
    for key in REQUIRED_METADATA:
        assert meta.get(key, "").strip(), f"metadata.txt lacks {key}"
    assert meta["name"] == "smqgis"
    assert meta["version"] == "0.1.0"
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["qgisMaximumVersion"] == "4.99"
    assert meta["hasProcessingProvider"] == "yes"
    assert meta["experimental"] == "True"
    assert meta["category"] == "Analysis"
    assert meta["tracker"] == "https://github.com/smqgis/smqgis/issues"
    assert meta["repository"] == "https://github.com/smqgis/smqgis"
    about = meta["about"]
    assert "DEMO" in about and "simulated" in about
    for attribution in ("Copernicus", "SoilGrids", "CC BY 4.0", "NASA"):
        assert attribution in about
    assert (REPO / meta["icon"]).is_file()
    ET.parse(REPO / meta["icon"])  # well-formed SVG


def test_license_is_gpl2() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text
    assert "TERMS AND CONDITIONS FOR COPYING, DISTRIBUTION AND MODIFICATION" in text


def load_root_plugin_package() -> object:
    """Import the repository root as QGIS does: a package named after the plugin folder."""
    name = "smqgis_plugin_under_test"
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_class_factory_registers_and_unregisters_the_provider(smqgis_provider: object) -> None:
    registry = QgsApplication.processingRegistry()
    registry.removeProvider(registry.providerById("smqgis"))  # the plugin must do it itself
    heavy = {"onnxruntime", "rasterio"}
    loaded_before = heavy & set(sys.modules)
    plugin = load_root_plugin_package().classFactory(None)
    plugin.initProcessing()
    plugin.initGui()  # idempotent: no second provider
    try:
        provider = registry.providerById("smqgis")
        assert provider is plugin.provider
        ids = [alg.id() for alg in provider.algorithms()]
        assert ids[0] == ALG_ID
        assert {"smqgis:import_published_model", "smqgis:estimate_sm_published", "smqgis:validate_insitu",
                "smqgis:estimate_sm_3km"} <= set(ids)
        # the engine is not imported at plugin load time
        assert heavy & set(sys.modules) == loaded_before
    finally:
        plugin.unload()
    assert registry.providerById("smqgis") is None
    assert plugin.provider is None


def test_provider_and_algorithm_registered(smqgis_provider: object) -> None:
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("smqgis")
    assert provider is not None and provider.name() == "smqgis"
    assert not provider.icon().isNull()
    assert provider.supportedOutputRasterLayerExtensions() == ["tif"]
    alg = registry.algorithmById(ALG_ID)
    assert alg is not None
    assert alg.displayName() == "Soil moisture 320 m from layers"
    assert alg.group() == "Soil moisture"


def test_algorithm_parameters(smqgis_provider: object) -> None:
    alg = QgsApplication.processingRegistry().algorithmById(ALG_ID)
    params = {p.name(): p for p in alg.parameterDefinitions()}
    expected_types = {
        "MODEL": QgsProcessingParameterFile,
        "SENTINEL1": QgsProcessingParameterRasterLayer,
        "S1_BANDS": QgsProcessingParameterString,
        "S1_ANGLE_DEG": QgsProcessingParameterNumber,
        "SENTINEL2": QgsProcessingParameterRasterLayer,
        "S2_BANDS": QgsProcessingParameterString,
        "DEM": QgsProcessingParameterRasterLayer,
        "DEM_BANDS": QgsProcessingParameterString,
        "SOILGRIDS": QgsProcessingParameterRasterLayer,
        "SOILGRIDS_BANDS": QgsProcessingParameterString,
        "SMAP": QgsProcessingParameterRasterLayer,
        "SMAP_BANDS": QgsProcessingParameterString,
        "SMAP_PRODUCT": QgsProcessingParameterEnum,
        "GLDAS": QgsProcessingParameterRasterLayer,
        "GLDAS_BANDS": QgsProcessingParameterString,
        "EXTENT": QgsProcessingParameterExtent,
        "OUTPUT_CRS": QgsProcessingParameterCrs,
        "MODE": QgsProcessingParameterEnum,
        "PROVIDER": QgsProcessingParameterEnum,
        "TILE_PX": QgsProcessingParameterNumber,
        "OUTPUT": QgsProcessingParameterRasterDestination,
        # issue 10: declared unit conversions, the Sentinel-2 offset, the time-bound override, the size guard
        "S1_UNITS": QgsProcessingParameterEnum,
        "S2_UNITS": QgsProcessingParameterEnum,
        "S2_DN_OFFSET": QgsProcessingParameterEnum,
        "SOILGRIDS_UNITS": QgsProcessingParameterEnum,
        "SMAP_UNITS": QgsProcessingParameterEnum,
        "GLDAS_UNITS": QgsProcessingParameterEnum,
        "IGNORE_TIME_BOUNDS": QgsProcessingParameterBoolean,
        "MAX_OUTPUT_PX": QgsProcessingParameterNumber,
    }
    assert set(params) == set(expected_types)
    for name, cls in expected_types.items():
        assert isinstance(params[name], cls), name
    optional = {name for name, p in params.items() if p.flags() & p.FlagOptional}
    assert optional == set(expected_types) - {"SMAP_PRODUCT", "MODE", "PROVIDER", "OUTPUT"}
    assert params["MODEL"].defaultValue() == str(REPO / "resources" / "models" / "demo_fusion_simulated.onnx")
    assert "*.onnx" in params["MODEL"].fileFilter()
    assert params["MODE"].options()[0].startswith("fast") and params["MODE"].options()[1].startswith("exact")
    assert params["MODE"].defaultValue() == 0
    assert params["PROVIDER"].options() == ["auto (GPU if available)", "cpu", "cuda"]
    assert params["SMAP_PRODUCT"].options() == [
        "auto (from the band description)",
        "NASA_USDA/HSL/SMAP10KM_soil_moisture (mm)",
        "NASA/SMAP/SPL4SMGP/007 (m3/m3)",
    ]
    assert params["S1_ANGLE_DEG"].minimum() == 0.0 and params["S1_ANGLE_DEG"].maximum() == 90.0
    assert params["OUTPUT"].defaultFileExtension() == "tif"
    assert {o.name() for o in alg.outputDefinitions()} == {"OUTPUT", "EXECUTION_PROVIDER", "MODEL_LABEL"}
    help_text = alg.shortHelpString()
    for words in ("m3/m3", "320 m", "band 2", "input coverage", "Band order", "incidence angle", "SMAP product",
                  "Extent", "Output CRS", "Inference mode", "Execution provider", "Tile size", "DEMO", "simulated"):
        assert words in help_text, words


@pytest.mark.parametrize(
    ("text", "source", "count", "expected"),
    [
        ("", "sentinel1", 3, None),
        ("VV,VH,angle", "sentinel1", 3, {"VV": 1, "VH": 2, "angle": 3}),
        ("vh, vv", "sentinel1", 2, {"VH": 1, "VV": 2}),
        (
            "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12",
            "sentinel2",
            13,
            {"B2": 2, "B3": 3, "B4": 4, "B8": 8, "B11": 12, "B12": 13},
        ),
        ("B4=3,B3=2,B2=1,-,B8=5", "sentinel2", 5, {"B4": 3, "B3": 2, "B2": 1, "B8": 5}),
        ("-,elevation", "dem", 2, {"elevation": 2}),
    ],
)
def test_parse_band_order(text: str, source: str, count: int, expected: dict[str, int] | None) -> None:
    from smqgis.processing.estimate_sm_320m import parse_band_order

    assert parse_band_order(text, source, count, "X_BANDS") == expected


@pytest.mark.parametrize(
    ("text", "count", "message"),
    [
        ("VV,VH,angle", 2, "the raster has 2 band(s)"),
        ("VV,VV", 2, "names 'VV' twice"),
        ("VV=x", 2, "is not 'name=band number'"),
        ("VV=0", 2, "at band 0"),
    ],
)
def test_parse_band_order_errors(text: str, count: int, message: str) -> None:
    from qgis.core import QgsProcessingException

    from smqgis.processing.estimate_sm_320m import parse_band_order

    with pytest.raises(QgsProcessingException) as info:
        parse_band_order(text, "sentinel1", count, "S1_BANDS")
    assert message in str(info.value)
    assert "S1_BANDS" in str(info.value)


def test_qml_style_applies_pseudocolor_ramp(tmp_path: object) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "sm.tif"
    data = np.array([[0.0, 0.1], [0.45, -9999.0]], dtype="float32")
    with rasterio.open(
        path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32", crs="EPSG:32630",
        transform=from_origin(500000, 4500000, 320, 320), nodata=-9999.0,
    ) as dst:
        dst.write(data, 1)
    layer = QgsRasterLayer(str(path), "sm")
    assert layer.isValid()
    message, ok = layer.loadNamedStyle(str(REPO / "resources" / "styles" / "soil_moisture.qml"))
    assert ok, message
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    assert renderer.band() == 1
    assert renderer.classificationMin() == 0.0 and renderer.classificationMax() == 0.5
    ramp = renderer.shader().rasterShaderFunction()
    assert ramp.colorRampType() == QgsColorRampShader.Interpolated
    items = ramp.colorRampItemList()
    assert [round(i.value, 3) for i in items] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert all("m3/m3" in i.label for i in items)
    assert items[0].color.name() == "#8c510a" and items[-1].color.name() == "#2166ac"  # brown -> blue
    legend = [text for text, _ in renderer.legendSymbologyItems()]
    assert legend[0].startswith("0.00 m3/m3") and legend[-1].startswith("0.50 m3/m3")
    # nodata is transparent: the provider reports it and the renderer draws no colour for it
    assert layer.dataProvider().sourceHasNoDataValue(1) and layer.dataProvider().sourceNoDataValue(1) == -9999.0
    block = renderer.block(1, layer.extent(), 2, 2)
    def alpha(row: int, col: int) -> int:
        return (block.color(row, col) >> 24) & 0xFF  # QRgb is 0xAARRGGBB

    assert alpha(1, 1) == 0
    assert alpha(0, 0) == 255
    del layer
