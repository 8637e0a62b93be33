"""Training side of smqgis: the fusion model of paper 000, its training loop and ONNX export.

Nothing here is imported by the QGIS plugin; what joins the two is the exported ONNX
file and its metadata (``smqgis.core.schema``).
"""
