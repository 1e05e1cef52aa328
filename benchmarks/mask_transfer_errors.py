"""Where a trained mask_transfer run's decoders err, inside vs outside the renderer's layer mask.

    python benchmarks/mask_transfer_errors.py --run_dir=RUN [--checkpoint=PREFIX] [--num=100] [--png=FILE]
    python benchmarks/mask_transfer_errors.py --load=PREFIX --attribute=Beard --hparams=... [--png=FILE]

(the second form reads the networks `benchmarks/mask_transfer_probe.py --save=PREFIX` wrote; give
the probe's --attribute and --hparams).

On the first `num` bench test faces that have the run's domain attribute, prints per pixel (in
[-1, 1] units) |D_A(E_c(b)) - b| (the removed image's error: large only on the content if E_c is
content-free), |z_raw(b, b) - b| (D_B's raw image) and the soft mask m(b, b), each averaged inside
and outside the true layer mask. The mask can only localise where z_raw beats D_A (Eq. 6), so it
also prints that gain, |D_A(E_c(b)) - b| - |z_raw(b, b) - b|, and `gain_iou_best`: the IoU with the
true layer of the pixels whose gain exceeds a threshold, at the best threshold (a diagnostic that
uses the truth: how well Eq. 6's per-pixel incentive singles out the content, whatever D_B's mask
head has learnt). --png writes 8 faces as rows of b, D_A(E_c(b)), z_raw(b, b), m(b, b), the true
layer, and the gain (white = z_raw better).

It also prints the masks' roughness, mean |m - box3x3(m)| inside and outside the layer: large where
m has pixel-scale dots (the transposed convolutions' checkerboard, mask_transfer.md session 27).
--pairs_png writes the first 10 of the probe's test pairs (`mask_transfer_probe.bench_pairs`) as
columns, rows: a, b, the true swap, m(a, b), D_B's raw(a, b), the soft z(a, b), z with m(a, b) >
--pairs_threshold, raw(b, b) and D_A(E_c(b)).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_dir", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--load", default=None, help="networks saved by mask_transfer_probe.py --save (64 px)")
    p.add_argument("--attribute", default="Eyeglasses", help="with --load: the probe's --attribute")
    p.add_argument("--hparams", default="", help="with --load: the probe's --hparams")
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--png", default=None)
    p.add_argument("--pairs_png", default=None)
    p.add_argument("--pairs_threshold", type=float, default=0.2)
    args = p.parse_args()
    if (args.run_dir is None) == (args.load is None):
        p.error("give exactly one of --run_dir and --load")

    import tensorflow as tf

    from tfattr import config as config_lib
    from tfattr import models
    from tfattr.data import synthetic as S
    from tfattr.losses import mask as mask_losses
    from tfattr.metrics import segmentation
    from tfattr.training import loop
    from tfattr.utils import image_grid

    if args.run_dir:
        model, step, _ = loop.load_model_from_run(args.run_dir, args.checkpoint)
    else:
        hp = {"domain_attribute": args.attribute, **config_lib.parse_hparams(args.hparams)}
        model, step = models.build("mask_transfer", S.SCHEMA, 64, hp), args.load
        tf.train.Checkpoint(**model.networks).read(args.load).assert_existing_objects_matched()
    attribute = model.config.domain_attribute
    test = S.params_for(0, "test", np.arange(20 * args.num))
    idx = np.where(S.labels(test)[:, S.SCHEMA.index(attribute)] == 1)[0][:args.num]
    out = S.render({k: v[idx] for k, v in test.items()}, model.image_size, outputs=("image", "masks"))
    b = out["image"].astype(np.float32) / 127.5 - 1.0
    inside = out["masks"][S.ATTRIBUTE_MASKS[attribute]] > 0.5
    common, separate = model.common_encoder(b), model.separate_encoder(b)
    mask, raw = model.decode_b(common, separate)
    removed, raw = model.decoder_a(common).numpy(), raw.numpy()
    rows = {"|D_A(E_c(b)) - b|": np.abs(removed - b).mean(-1),
            "|z_raw(b, b) - b|": np.abs(raw - b).mean(-1),
            "m(b, b)": mask.numpy()[..., 0]}
    rows["Eq. 6 gain"] = gain = rows["|D_A(E_c(b)) - b|"] - rows["|z_raw(b, b) - b|"]
    print(f"step {step}, {attribute}, {len(idx)} faces, layer covers {inside.mean():.3f} of the pixels")
    for name, v in rows.items():
        print(f"  {name:20s} inside {v[inside].mean():.3f}  outside {v[~inside].mean():.3f}")
    iou_best, t_best = segmentation.best_threshold_iou(gain, inside, np.arange(-0.2, 0.81, 0.05))
    print(f"  gain_iou_best {iou_best:.3f} at gain > {t_best}")
    m = rows["m(b, b)"]
    rough = np.abs(m - tf.nn.avg_pool2d(m[..., None], 3, 1, "SAME").numpy()[..., 0])
    print(f"  {'mask roughness':20s} inside {rough[inside].mean():.4f}  outside {rough[~inside].mean():.4f}")
    if args.png:
        n = min(8, len(idx))
        gray = lambda x: np.repeat(np.clip(x, -1.0, 1.0)[:n, ..., None], 3, -1)  # noqa: E731  [-1, 1] map -> RGB
        cells = [b[:n], removed[:n], raw[:n], gray(2 * rows["m(b, b)"] - 1), gray(2 * inside - 1.0), gray(4 * gain)]
        tiles = image_grid.to_uint8(np.stack(cells, 1).reshape(-1, *b.shape[1:]))
        image_grid.save_png(args.png, image_grid.grid(tiles, n, len(cells)))
    if args.pairs_png:
        from mask_transfer_probe import bench_pairs

        from tfattr.data.attributes import domain_membership

        c = model.config
        values = S.SCHEMA[attribute].values
        value_b = values.index(c.domain_value or "yes")
        value_a = None if c.domain_value_a is None else values.index(c.domain_value_a)
        pairs = bench_pairs(attribute, lambda labels: domain_membership(labels, value_b, value_a), 0,
                           model.image_size)
        xa, xb = pairs["xa"][:10], pairs["xb"][:10]
        m_ab, raw_ab = model.decode_b(model.common_encoder(xa), model.separate_encoder(xb))
        soft, hard = (mask_losses.composite(mk, raw_ab, xa).numpy()
                      for mk in (m_ab, tf.cast(m_ab > args.pairs_threshold, tf.float32)))
        _, raw_bb = model.decode_b(model.common_encoder(xb), model.separate_encoder(xb))
        gray = lambda x: np.repeat(2.0 * x.numpy() - 1.0, 3, -1)  # noqa: E731  mask [0, 1] -> RGB
        rows_ = [xa, xb, pairs["swapped"][:10], gray(m_ab), raw_ab.numpy(), soft, hard, raw_bb.numpy(),
                 model.decoder_a(model.common_encoder(xb)).numpy()]
        tiles = image_grid.to_uint8(np.concatenate(rows_, 0))
        image_grid.save_png(args.pairs_png, image_grid.grid(tiles, len(rows_), len(xa)))


if __name__ == "__main__":
    main()
