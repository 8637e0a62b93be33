"""smqgis/core: everything that is not QGIS, one module per step of the flow (never imports ``qgis``).

Read top-down in the order of the flow:

- ``sources.py``      the input sources as one table (bands, units, ranges, aliases, labels, products)
- ``schema.py``       the model-metadata contract shared with training/, and the fusion model's geometry
- ``kinds/``          the registry of model kinds; one module per kind (``fusion.py``: the 320 m model)
- ``model.py``        opening an ONNX model: metadata, onnxruntime session, execution provider
- ``earthengine.py``  inputs from Earth Engine, step 0: Cloud project, sign-in, initialisation, errors to act on
- ``ee_inputs.py``    the Table 5 join on Earth Engine and one expression and grid per source
- ``ee_fetch.py``     chunked computePixels downloads: plan, size guard, retries, resumable cache, assembly
- ``ee_maps.py``      fetch_inputs (GeoTIFFs + manifest) and soil_moisture_map (fetch then map, time series)
- ``pipeline.py``     a run's flow: model + user's layers -> target grid -> reader of tile inputs
- ``layers.py``       step 1: opening the user's rasters and reading them in physical units on a grid
- ``grid.py``         step 2: the output grid and the model's input grids aligned to it
- ``tile_inputs.py``  step 3: the encoded inputs of one tile (``encoding.py``: the 0-255 encodings)
- ``engine.py``       step 4: tiled inference, streaming, on protocols only
- ``output.py``       step 5: the written map (GeoTIFF, atomically) or arrays
- ``metrics.py``, ``texture.py``  validation metrics and USDA texture classes (shared with training/)
- ``errors.py``       the exceptions, carrying the input role / argument at fault
"""
