"""Identifiers of the Processing algorithms and their enum choices, QGIS-free.

Shared by the algorithms and by callers that drive them through ``qgis_process``
(``smqgis.demo``), which pass enum parameters by index.
"""

PROVIDER_ID = "smqgis"
ESTIMATE_SM_320M = "estimate_sm_320m"
ALGORITHM_ID = f"{PROVIDER_ID}:{ESTIMATE_SM_320M}"
MODES: tuple[str, ...] = ("fast", "exact")
EXECUTION_PROVIDERS: tuple[str, ...] = ("auto", "cpu", "cuda")
