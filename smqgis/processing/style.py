"""Style and name a soil-moisture raster when Processing loads it into the project.

Last step of the flow on the QGIS side: after a successful run the algorithm attaches
:class:`SoilMoistureLayerStyler` to the output's "load on completion" details; QGIS
calls it on the main thread once the layer is loaded, and it applies
``resources/styles/soil_moisture.qml`` (0-0.5 m3/m3 colour ramp with a legend) and the
layer name carrying the model's label.
"""

from __future__ import annotations

import logging

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
)

from ..paths import STYLE_PATH

LOGGER = logging.getLogger(__name__)


class SoilMoistureLayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies the soil-moisture QML style and a name to a loaded output layer."""

    #: QGIS holds post-processors by raw pointer: keep the Python object alive
    #: after the algorithm instance that created it is deleted.
    _instances: list[SoilMoistureLayerStyler] = []

    def __init__(self, layer_name: str) -> None:
        super().__init__()
        self.layer_name = layer_name

    @classmethod
    def create(cls, layer_name: str) -> SoilMoistureLayerStyler:
        """A styler for ``layer_name``, kept referenced for the session (several runs may be pending)."""
        styler = cls(layer_name)
        cls._instances.append(styler)
        return styler

    def postProcessLayer(  # noqa: N802 - QGIS API
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        """Load the QML style and set the name (called by QGIS on the main thread)."""
        message, ok = layer.loadNamedStyle(str(STYLE_PATH))
        if not ok:
            feedback.pushWarning(f"Could not apply the soil-moisture style {STYLE_PATH}: {message}")
        layer.setName(self.layer_name)
        layer.triggerRepaint()
        LOGGER.debug("styled %s as %r", layer.source(), self.layer_name)
