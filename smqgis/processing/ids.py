"""Identifiers of the Processing algorithms and their enum choices, QGIS-free.

Shared by the algorithms and by callers that drive them through ``qgis_process``
(``smqgis.demo``), which pass enum parameters by index.
"""

from ..core import schema
from ..core.kinds import REGISTRY

PROVIDER_ID = "smqgis"
#: The algorithm of the fusion kind (its id is the registry's).
ESTIMATE_SM_320M = REGISTRY["fusion_320m"].algorithm_id
ALGORITHM_ID = f"{PROVIDER_ID}:{ESTIMATE_SM_320M}"
#: Enum order of the MODE and PROVIDER parameters: the core's own tuples (fast and auto first).
MODES = schema.INFERENCE_MODES
EXECUTION_PROVIDERS = schema.EXECUTION_PROVIDERS
