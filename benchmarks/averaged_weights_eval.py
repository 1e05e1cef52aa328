"""Evaluate a run's averaged weights (ema_momentum) after re-estimating batch-norm statistics.

    python benchmarks/averaged_weights_eval.py --run_dir=RUN --checkpoint=RUN/checkpoints/ckpt-6000 \
        --train_images=/tmp/cache_advdis/synthetic-<hash>-train-image.npy --out_dir=DIR

The optimizer's moving average covers trainable weights only; the batch-norm moving statistics in
the checkpoint were gathered with the raw weights and do not match the averaged network. This
re-estimates them (BigGAN's "standing statistics"): `--batches` training-mode reconstructions of
random training faces, each batch norm's statistics set to the plain mean over those batches, then
the bench metrics (`oracle_acc_swap_2k`, `oracle_pres_swap_2k`, `cf_l1_swap_2k`). adv_disentangle
only (its encoders and decoder hold the batch norms). `--train_images` is the bench cache's uint8
`[N, S, S, 3]` training-image array written by the run's `cache_dir` dataset option.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

METRICS = ["oracle_acc_swap_2k", "oracle_pres_swap_2k", "cf_l1_swap_2k"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_dir", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--train_images", required=True, help="uint8 [N, S, S, 3] .npy of training faces")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--batch_size", type=int, default=16)
    args = p.parse_args()
    if not os.path.exists(args.train_images):
        sys.exit(f"--train_images: {args.train_images} does not exist (the bench cache's *-train-image.npy)")

    import keras
    import tensorflow as tf

    from tfattr import evaluate
    from tfattr.metrics import registry
    from tfattr.training import loop

    model, step, meta = loop.load_model_from_run(args.run_dir, args.checkpoint, average_weights=True)
    images = np.load(args.train_images, mmap_mode="r")
    norms = [layer for name in ("encoder", "decoder") for layer in model.networks[name]._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    rng = np.random.default_rng(0)
    for i in range(1, args.batches + 1):
        for layer in norms:
            layer.momentum = 1.0 - 1.0 / i  # running mean over the batches seen so far
        x = images[np.sort(rng.choice(len(images), args.batch_size, replace=False))].astype(np.float32) / 127.5 - 1
        model.reconstruct(tf.constant(x), training=True)
    os.makedirs(args.out_dir, exist_ok=True)
    ctx = evaluate.make_context(model, meta, step, 0, None, evaluate.DEFAULT_FEATURE_CACHE)
    records, skipped = evaluate.evaluate_metrics(ctx, METRICS, args.out_dir, progress=False)
    table = registry.markdown_table(records, skipped)
    with open(os.path.join(args.out_dir, "metrics.md"), "w") as f:
        f.write(f"averaged weights, re-estimated batch norm ({len(norms)} layers, {args.batches} batches), "
                f"step {step}, {args.run_dir}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
