"""The tf.data service (paper 000 section 3b): input preprocessing on other machines.

Reading, parsing and augmenting the 512 x 512 x 14 records is the training's CPU work; on a
TPU pod the host CPUs cannot keep up. TensorFlow's own tf.data service moves it to a pool of
CPU workers: one dispatcher, any number of workers, and the trainer reads finished global
batches from them (``python -m training.train ... --data-service grpc://HOST:5050``). This
module only starts TensorFlow's servers and applies ``tf.data.experimental.service.distribute``;
there is no scheduler of ours.

Command line (one dispatcher, then a worker per CPU machine)::

    python -m training.data_service dispatcher --port 5050 [--work-dir gs://bucket/dispatcher]
    python -m training.data_service worker --dispatcher HOST:5050 --port 5051

Sharding: ``dynamic`` (default; the dispatcher hands out the input files a split at a time, so
no record is read twice per epoch whatever the number of workers) or ``off`` (every worker
produces the whole dataset: only for one worker, or for tests).
"""

from __future__ import annotations

import argparse
import logging
import time

import tensorflow as tf

log = logging.getLogger(__name__)

SHARDING = {"dynamic": tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            "off": tf.data.experimental.service.ShardingPolicy.OFF}
DEFAULT_PORT = 5050


def distribute(dataset: tf.data.Dataset, service: str, *, sharding: str = "dynamic",
               job_name: str | None = None) -> tf.data.Dataset:
    """``dataset`` produced by the tf.data service at ``service`` (``grpc://host:port``) instead of in-process.

    ``job_name`` shares one job between trainers (e.g. the hosts of a TPU pod) so that they
    read disjoint batches; None gives each trainer its own job.
    """
    if sharding not in SHARDING:
        raise ValueError(f"unknown sharding {sharding!r}; choose one of {sorted(SHARDING)}")
    if not service.startswith(("grpc://", "grpc+loas://")):
        service = f"grpc://{service}"
    log.info("input pipeline on the tf.data service %s (sharding %s, job %s)", service, sharding, job_name)
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=SHARDING[sharding], service=service, job_name=job_name))


def start_dispatcher(port: int = DEFAULT_PORT,
                     work_dir: str | None = None) -> tf.data.experimental.service.DispatchServer:
    """A tf.data service dispatcher on ``port`` (0: any free port); ``work_dir`` makes it fault tolerant."""
    config = tf.data.experimental.service.DispatcherConfig(port=port, work_dir=work_dir,
                                                           fault_tolerant_mode=bool(work_dir))
    server = tf.data.experimental.service.DispatchServer(config)
    log.info("tf.data dispatcher at %s", server.target)
    return server


def start_worker(dispatcher: str, port: int = 0, worker_address: str | None = None
                 ) -> tf.data.experimental.service.WorkerServer:
    """A tf.data service worker registered with ``dispatcher`` (``host:port``, no scheme)."""
    dispatcher = dispatcher.split("://", 1)[-1]
    config = tf.data.experimental.service.WorkerConfig(dispatcher_address=dispatcher, port=port,
                                                       worker_address=worker_address)
    server = tf.data.experimental.service.WorkerServer(config)
    log.info("tf.data worker on port %s registered with %s", port or "(any)", dispatcher)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.data_service", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    d = sub.add_parser("dispatcher", help="start the dispatcher (one per training job)")
    d.add_argument("--port", type=int, default=DEFAULT_PORT)
    d.add_argument("--work-dir", help="journal folder (local or gs://) for a fault-tolerant dispatcher")
    w = sub.add_parser("worker", help="start a worker (one per CPU machine)")
    w.add_argument("--dispatcher", required=True, help="HOST:PORT of the dispatcher")
    w.add_argument("--port", type=int, default=DEFAULT_PORT + 1)
    w.add_argument("--worker-address", help="address the trainers reach this worker at (default: hostname:port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.role == "dispatcher":
        server = start_dispatcher(args.port, args.work_dir)
    else:
        server = start_worker(args.dispatcher, args.port, args.worker_address)
    try:
        server.join()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        time.sleep(0)


if __name__ == "__main__":
    main()
