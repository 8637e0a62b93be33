"""A stand-in for the authors' published TF-1 SavedModel, and a TF-1 reference runner (training env only).

The real model (paper 000, google-research ``soil_moisture_retrieval``) cannot be downloaded
on the test machines, so the importer and the map algorithm are tested on a TF-1 graph with
the release's exact interface: feeds ``ImageTensor:0`` [1, 512, 512, 10], ``LowResImageTensor:0``
[1, 512, 512, 4] and ``AuxTensor:0`` [1, 2] (float32), fetch ``clip_by_value:0`` [1, 1]. Like the
real graph it crops the centre 256 x 256 px of both images, runs a small strided conv net with
an inference-mode fused batch norm to an 8 x 8 feature map (stride 32), pools it with
centre-weighted weights, concatenates the two branches, applies dense layers, appends the aux
scalars, and clips to [0, 1]. Its weights are random (fixed seed): its values mean nothing,
they only have to be reproduced. It is saved with tag "serve", with or without a
``serving_default`` signature_def, the way ``tf.compat.v1.saved_model.Builder`` saves any TF-1 model.

Command line (run with the training environment's Python)::

    python -m tests.data.make_published_fixture build OUT_DIR [--no-signature] [--seed 0] [--zip]
        [--crop-op resize_with_crop_or_pad|strided_slice]
    python -m tests.data.make_published_fixture build-paper-scale OUT_DIR [--seed 0]   # timing only
    python -m tests.data.make_published_fixture reference SAVED_MODEL_DIR WINDOWS.npz OUT.npy

``reference`` evaluates the SavedModel in a TF-1 session on the windows of an ``.npz`` with
arrays ``high_res`` [N, 512, 512, 10], ``low_res`` [N, 512, 512, 4] and ``coarse`` [N, 2]
(0-255 encoded; the aux feed is ``coarse / 255`` as in the authors' ``run_inference.py``),
one window per call (the release's batch size is 1), and saves the N outputs (m3/m3).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

log = logging.getLogger(__name__)

#: Side of the released input windows (px at 10 m) and of the centre crop the graph keeps.
WINDOW_PX = 512
CROP_PX = 256
#: Channels of the three feeds (10 high-res bands, 4 SoilGrids bands, SMAP + GLDAS).
HIGH_RES_BANDS, LOW_RES_BANDS, AUX_VALUES = 10, 4, 2
#: Feature channels of the stand-in's branches (small: the test must stay fast).
FEATURES = 12
#: Centre-weighted pooling sigma over the 8 x 8 feature cells (paper 000 pools with a centre peak).
POOL_SIGMA_CELLS = 2.0


def _pool_weights(cells: int) -> np.ndarray:
    c = (cells - 1) / 2.0
    i = np.arange(cells, dtype=np.float64)
    w = np.exp(-((i[:, None] - c) ** 2 + (i[None, :] - c) ** 2) / (2 * POOL_SIGMA_CELLS**2))
    return (w / w.sum()).astype(np.float32)


def build(out_dir: str | os.PathLike, *, signature: bool = True, seed: int = 0,
          crop_op: str = "resize_with_crop_or_pad", known_hw: bool = True) -> Path:
    """Write the stand-in TF-1 SavedModel (tag "serve") to ``out_dir`` and return it.

    ``out_dir`` must not exist. Also writes ``graph_def.pbtxt`` like the release. ``crop_op``
    chooses how the centre is cropped: ``"resize_with_crop_or_pad"`` (TF-1's image op, whose
    slice sizes come from the static shape, so the graph only runs at batch 1) or
    ``"strided_slice"`` (runs at any batch once the feeds' batch dimension is freed).
    ``known_hw=False`` leaves the image feeds' height and width unknown ([1, ?, ?, C]), as a graph
    that "crops or pads to 256" may well declare them.
    """
    if crop_op not in ("resize_with_crop_or_pad", "strided_slice"):
        raise ValueError(f"unknown crop_op {crop_op!r}")
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    graph = tf.Graph()
    with graph.as_default():

        def var(name: str, shape: tuple[int, ...], scale: float) -> tf.Tensor:
            init = rng.normal(0.0, scale, size=shape).astype(np.float32)
            return v1.get_variable(name, initializer=init)

        def branch(x: tf.Tensor, prefix: str, channels: int) -> tf.Tensor:
            # centre crop as the release does ("cropped/padded to 256 x 256 within the model")
            if crop_op == "resize_with_crop_or_pad":  # builds its slice from the static shape: batch pinned to 1
                x = v1.image.resize_image_with_crop_or_pad(x, CROP_PX, CROP_PX)
            else:  # a strided slice over all of the batch
                lo = (WINDOW_PX - CROP_PX) // 2
                x = x[:, lo:lo + CROP_PX, lo:lo + CROP_PX, :]
            x = x / 255.0
            specs = [(4, 4, channels, FEATURES, 4), (3, 3, FEATURES, FEATURES, 4), (3, 3, FEATURES, FEATURES, 2)]
            for k, (kh, kw, cin, cout, stride) in enumerate(specs):
                w = var(f"{prefix}/conv{k}/weights", (kh, kw, cin, cout), (2.0 / (kh * kw * cin)) ** 0.5)
                x = tf.nn.conv2d(x, w, strides=stride, padding="SAME")
                if k == 0:
                    scale = var(f"{prefix}/bn/gamma", (cout,), 0.1) + 1.0
                    offset = var(f"{prefix}/bn/beta", (cout,), 0.1)
                    mean = var(f"{prefix}/bn/moving_mean", (cout,), 0.1)
                    variance = tf.abs(var(f"{prefix}/bn/moving_variance", (cout,), 0.1)) + 1.0
                    x, _, _ = v1.nn.fused_batch_norm(x, scale, offset, mean, variance, is_training=False)
                x = tf.nn.relu(x)
            cells = CROP_PX // 32
            weights = tf.constant(_pool_weights(cells)[None, :, :, None], name=f"{prefix}/pool_weights")
            return tf.reduce_sum(x * weights, axis=[1, 2])  # centre-weighted global pooling -> [N, FEATURES]

        hw = WINDOW_PX if known_hw else None
        image = v1.placeholder(tf.float32, [1, hw, hw, HIGH_RES_BANDS], name="ImageTensor")
        low_res = v1.placeholder(tf.float32, [1, hw, hw, LOW_RES_BANDS], name="LowResImageTensor")
        aux = v1.placeholder(tf.float32, [1, AUX_VALUES], name="AuxTensor")
        features = tf.concat([branch(image, "high_res", HIGH_RES_BANDS), branch(low_res, "low_res", LOW_RES_BANDS)],
                             axis=1)
        hidden = tf.nn.swish(tf.matmul(features, var("head1/w", (2 * FEATURES, 8), 0.5)) + var("head1/b", (8,), 0.1))
        hidden = tf.concat([hidden, aux], axis=1)
        z = tf.matmul(hidden, var("head2/w", (8 + AUX_VALUES, 1), 0.5)) + var("head2/b", (1,), 0.1)
        estimate = 0.35 + 0.3 * tf.tanh(z)  # mostly inside (0, 1), so the clip rarely hides a difference
        output = tf.clip_by_value(estimate, 0.0, 1.0)
        assert output.name == "clip_by_value:0", output.name
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(out_dir))
            sig_map = None
            if signature:
                sig_map = {
                    "serving_default": v1.saved_model.predict_signature_def(
                        inputs={"image": image, "low_res_image": low_res, "auxiliary_inputs": aux},
                        outputs={"soil_moisture": output},
                    )
                }
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=sig_map)
            builder.save()
            tf.io.write_graph(sess.graph_def, str(out_dir), "graph_def.pbtxt", as_text=True)
    log.info("wrote the stand-in SavedModel %s (signature: %s, seed %d)", out_dir, signature, seed)
    return out_dir


def build_paper_scale(out_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """A frozen TF-1 SavedModel with the release's interface around smqgis' paper-size model (random init).

    For timing and for checking the importer at the release's scale (Xception-65 high-res and
    Xception-41 low-res encoders, ~1,000 frozen nodes), not for the fast tests: smqgis' own
    ``training.model`` (config "paper", variant "full") evaluated on the centre 256 px of
    ``ImageTensor``, on ``LowResImageTensor``'s centre 256 px averaged to 16 x 16 px of 160 m,
    and on ``AuxTensor * 255``, clipped to [0, 1] as ``clip_by_value:0``. The variables are
    frozen into constants before saving, like the release ("a frozen graph based model").
    """
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from training.config import get_config
    from training.model import build_model

    v1 = tf.compat.v1
    keras.utils.set_random_seed(seed)
    cfg = get_config("paper")
    model = build_model(cfg, "full")
    lo = (WINDOW_PX - CROP_PX) // 2
    low_res_px = cfg.low_res_window_px

    @tf.function(input_signature=[tf.TensorSpec([1, WINDOW_PX, WINDOW_PX, HIGH_RES_BANDS], tf.float32),
                                  tf.TensorSpec([1, WINDOW_PX, WINDOW_PX, LOW_RES_BANDS], tf.float32),
                                  tf.TensorSpec([1, AUX_VALUES], tf.float32)])
    def serve(image, low, aux):
        high = image[:, lo:lo + CROP_PX, lo:lo + CROP_PX, :]
        pool = CROP_PX // low_res_px
        low16 = tf.nn.avg_pool2d(low[:, lo:lo + CROP_PX, lo:lo + CROP_PX, :], pool, pool, "VALID")
        return model({"high_res": high, "low_res": low16, "coarse": aux * 255.0}, training=False)

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function()).graph.as_graph_def()
    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, [1, WINDOW_PX, WINDOW_PX, HIGH_RES_BANDS], name="ImageTensor")
        low_res = v1.placeholder(tf.float32, [1, WINDOW_PX, WINDOW_PX, LOW_RES_BANDS], name="LowResImageTensor")
        aux = v1.placeholder(tf.float32, [1, AUX_VALUES], name="AuxTensor")
        inputs = [t.name for t in frozen.node if t.op == "Placeholder"]
        (estimate,) = v1.import_graph_def(frozen, input_map=dict(zip(inputs, [image, low_res, aux])),
                                          return_elements=[serve.get_concrete_function().outputs[0].name],
                                          name="fusion")
        output = tf.clip_by_value(tf.reshape(estimate, [-1, 1]), 0.0, 1.0)
        assert output.name == "clip_by_value:0", output.name
        with v1.Session(graph=graph) as sess:
            builder = v1.saved_model.Builder(str(out_dir))
            builder.add_meta_graph_and_variables(sess, ["serve"])
            builder.save()
    log.info("wrote the paper-scale stand-in %s (%d frozen nodes)", out_dir, len(frozen.node))
    return Path(out_dir)


def zip_folder(folder: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """Zip ``folder`` with the folder itself as the archive's top directory (as a download would be)."""
    folder = Path(folder)
    base = str(Path(zip_path).with_suffix(""))
    return Path(shutil.make_archive(base, "zip", root_dir=folder.parent, base_dir=folder.name))


def reference(saved_model_dir: str | os.PathLike, high_res: np.ndarray, low_res: np.ndarray,
              coarse: np.ndarray) -> np.ndarray:
    """TF-1 session outputs (m3/m3) of a SavedModel on N encoded windows, one call per window."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    out = np.empty(len(high_res), dtype=np.float32)
    with v1.Session(graph=graph) as sess:
        v1.saved_model.loader.load(sess, ["serve"], str(saved_model_dir))
        for i in range(len(high_res)):
            value = sess.run("clip_by_value:0", feed_dict={
                "ImageTensor:0": high_res[i:i + 1].astype(np.float32),
                "LowResImageTensor:0": low_res[i:i + 1].astype(np.float32),
                "AuxTensor:0": (coarse[i:i + 1] / 255.0).astype(np.float32),
            })
            out[i] = float(np.asarray(value).reshape(-1)[0])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.data.make_published_fixture",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the stand-in SavedModel")
    b.add_argument("out_dir")
    b.add_argument("--no-signature", action="store_true", help="save without a signature_def")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--crop-op", default="resize_with_crop_or_pad", choices=["resize_with_crop_or_pad", "strided_slice"])
    b.add_argument("--zip", action="store_true", help="also write OUT_DIR.zip (the folder as its top directory)")
    ps = sub.add_parser("build-paper-scale", help="frozen stand-in around the paper-size model (timing)")
    ps.add_argument("out_dir")
    ps.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("reference", help="TF-1 session outputs on encoded windows")
    r.add_argument("saved_model_dir")
    r.add_argument("windows_npz")
    r.add_argument("out_npy")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "build-paper-scale":
        build_paper_scale(args.out_dir, seed=args.seed)
    elif args.command == "build":
        folder = build(args.out_dir, signature=not args.no_signature, seed=args.seed, crop_op=args.crop_op)
        if args.zip:
            zip_folder(folder, f"{folder}.zip")
    else:
        arrays = np.load(args.windows_npz)
        np.save(args.out_npy, reference(args.saved_model_dir, arrays["high_res"], arrays["low_res"], arrays["coarse"]))


if __name__ == "__main__":
    main()
