"""Enum names that differ between QGIS 3.22 and QGIS 3.36+/4 (Qt 6).

QGIS 3.36 moved many class-scoped enums to ``Qgis.*`` and QGIS 4 drops the old
spellings; QGIS 3.22 only has the old ones. Each constant here takes the new name
when it exists and falls back to the 3.22 name, so the algorithms read the same on
every supported version.
"""

from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)

if hasattr(Qgis, "ProcessingNumberParameterType"):  # QGIS >= 3.36
    NUMBER_DOUBLE = Qgis.ProcessingNumberParameterType.Double
    NUMBER_INTEGER = Qgis.ProcessingNumberParameterType.Integer
    FILE_BEHAVIOR_FILE = Qgis.ProcessingFileParameterBehavior.File
    FLAG_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
else:  # QGIS 3.22 - 3.34
    NUMBER_DOUBLE = QgsProcessingParameterNumber.Type.Double
    NUMBER_INTEGER = QgsProcessingParameterNumber.Type.Integer
    FILE_BEHAVIOR_FILE = QgsProcessingParameterFile.Behavior.File
    FLAG_ADVANCED = QgsProcessingParameterDefinition.Flag.FlagAdvanced
