"""Regenerate the bundled resources from fixed seeds: the sample scene and the demo model.

    python -m training.simulate.make_resources                 # sample scene + demo model (~35 min on 2 CPU cores)
    python -m training.simulate.make_resources --sample-only   # the sample scene only (~6 s)

The sample scene goes to ``resources/sample/`` (see ``training.simulate.scene``).
The demo model is trained on simulated TFRecords (``training.simulate.tfrecords``)
with ``training.train`` and exported with ``training.export`` to
``resources/models/demo_fusion_simulated.onnx`` (see ``training.simulate.demo``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from .scene import build_sample_dates
from .world import World, WorldConfig

LOG = logging.getLogger(__name__)

#: The seed of the world behind every bundled resource.
RESOURCE_SEED = WorldConfig().seed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=RESOURCE_SEED, help="world seed")
    parser.add_argument("--sample-dir", default="resources/sample", help="output folder of the sample scene")
    parser.add_argument("--sample-only", action="store_true", help="write the sample scene only")
    parser.add_argument("--work-dir", default="build/simulate", help="scratch folder (TFRecords, model runs)")
    parser.add_argument("--model-out", default="resources/models/demo_fusion_simulated.onnx", help="demo model path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    world = World(WorldConfig(seed=args.seed))
    build_sample_dates(args.sample_dir, world)
    from .sample_sensors import make_sensors_csv

    make_sensors_csv(Path(args.sample_dir))
    LOG.info("sample scene written to %s in %.1f s", args.sample_dir, time.perf_counter() - start)
    if args.sample_only:
        return
    from .demo import make_demo_model  # TensorFlow only when the model is wanted

    make_demo_model(world, Path(args.work_dir), Path(args.model_out), Path(args.sample_dir))
    LOG.info("resources regenerated in %.1f s", time.perf_counter() - start)


if __name__ == "__main__":
    main()
