"""Processing side of smqgis: the provider and one thin module per algorithm.

Each algorithm translates Processing parameters into a call of ``smqgis.core`` and
the core's errors into ``QgsProcessingException``; it never re-implements the engine.
"""
