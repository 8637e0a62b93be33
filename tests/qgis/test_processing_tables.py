"""The Processing algorithm takes its choices, labels and parameter names from the core's tables.

The MODE and PROVIDER enums are indexed by the schema's tuples (a reordering there must not mislabel
a choice), the inputs come from the sources table, and a core error is mapped onto the parameter that
set the input or argument it names - from the error's attributes, not its text.
"""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication

from sm_qgis_helpers import ALG_ID


def test_enum_labels_follow_the_schemas_order(smqgis_provider: object) -> None:
    from smqgis.core import schema
    from smqgis.processing.estimate_sm_320m import MODE_LABELS, PROVIDER_LABELS

    assert set(MODE_LABELS) == set(schema.INFERENCE_MODES)
    assert set(PROVIDER_LABELS) == set(schema.EXECUTION_PROVIDERS)
    alg = QgsApplication.processingRegistry().algorithmById(ALG_ID)
    params = {p.name(): p for p in alg.parameterDefinitions()}
    for index, mode in enumerate(schema.INFERENCE_MODES):  # the index a caller passes selects this mode
        assert params["MODE"].options()[index].startswith(mode)
    for index, provider in enumerate(schema.EXECUTION_PROVIDERS):
        assert params["PROVIDER"].options()[index].startswith(provider)


def test_inputs_are_the_sources_tables(smqgis_provider: object) -> None:
    from smqgis.core import sources
    from smqgis.processing.estimate_sm_320m import INPUT_PARAMETERS

    assert [spec.source for spec in INPUT_PARAMETERS] == list(sources.SOURCES)
    alg = QgsApplication.processingRegistry().algorithmById(ALG_ID)
    params = {p.name(): p for p in alg.parameterDefinitions()}
    for spec in INPUT_PARAMETERS:
        assert params[spec.layer_param].description() == sources.SOURCES[spec.source].label
        assert sources.SOURCES[spec.source].help in alg.shortHelpString()


@pytest.mark.parametrize(
    ("role", "parameter", "suffix"),
    [
        ("gldas", None, " (here: the raster is GLDAS, its band order GLDAS_BANDS)"),
        (None, "extent", " (parameter EXTENT)"),
        (None, "dst_crs", " (parameter OUTPUT_CRS)"),
        (None, "output_path", " (parameter OUTPUT)"),
        (None, "model", " (parameter MODEL)"),
        (None, None, ""),
    ],
)
def test_core_errors_name_the_parameter(smqgis_provider: object, role: str | None, parameter: str | None,
                                        suffix: str) -> None:
    from smqgis.core.errors import InputError

    alg = QgsApplication.processingRegistry().algorithmById(ALG_ID)
    # the text says nothing about the input: only the attributes place it
    assert alg.with_parameter(InputError("it cannot be used", role=role, parameter=parameter)) == (
        "it cannot be used" + suffix)
