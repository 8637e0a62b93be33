"""GUI of smqgis (placeholder): the dock widget will drive the Processing algorithms, never re-implement them."""
