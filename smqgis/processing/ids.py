"""Identifiers of the Processing algorithms and their enum choices, QGIS-free.

Shared by the algorithms and by callers that drive them through ``qgis_process``
(``smqgis.demo``), which pass enum parameters by index.
"""

from ..core import schema

PROVIDER_ID = "smqgis"
ESTIMATE_SM_320M = "estimate_sm_320m"
ALGORITHM_ID = f"{PROVIDER_ID}:{ESTIMATE_SM_320M}"
#: Enum order of the MODE and PROVIDER parameters: the core's own tuples (fast and auto first).
MODES = schema.INFERENCE_MODES
EXECUTION_PROVIDERS = schema.EXECUTION_PROVIDERS
