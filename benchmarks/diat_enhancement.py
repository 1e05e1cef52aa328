"""Train diat's local enhancement network E alone on a trained, frozen transform T (Sec. 3.2's
second stage) and evaluate T+E on the bench as E learns.

    nice -n 5 python benchmarks/diat_enhancement.py --run_dir=RUN --out=DIR --steps=500 --every=250 \
        [--hparams=enhance_residual=true,enhance_region_mean=true] [--margin=0.06]

RUN is a diat run on the synthetic bench trained without enhancement (e.g. the
experiments/diat_bench64_glasses.flags run). Its latest checkpoint provides T (E is new, built with
`enhancement=local` and --hparams); E trains on Eq. 10 with the ground-truth landmark masks
(`diat.bench_mask_batches`, batch 16), T stays fixed. Prints, and appends to DIR/log.jsonl, the li2016
metrics of T+E at E step 0 (= T alone for a residual E) and every --every steps:
`oracle_acc_diat_200`, `identity_cos_diat_200`, `cf_l1_diat_200`. The first line is the fraction of
the renderer's true glasses pixels inside the landmark mask (does the mask cover the edit?).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator

import numpy as np

METRICS = ("oracle_acc_diat_200", "identity_cos_diat_200", "cf_l1_diat_200")


def mask_coverage(attribute: str, size: int, margin: float, count: int = 100) -> dict:
    from tfattr.data import synthetic
    from tfattr.models import diat

    layer = {"Eyeglasses": "glasses"}.get(attribute)
    if layer is None:
        return {}
    p = synthetic.params_for(0, "test", np.arange(4 * count))
    has = synthetic.labels(p)[:, synthetic.SCHEMA.index(attribute)] == synthetic.SCHEMA[attribute].value_index("yes")
    idx = np.nonzero(has)[0][:count]
    r = synthetic.render(synthetic.params_for(0, "test", idx), size, outputs=("image", "masks", "landmarks68"))
    true = np.asarray(r["masks"][layer]).reshape(len(idx), size, size) > 0.5
    hull = diat.landmark_mask(r["landmarks68"], attribute, size, margin)[..., 0] > 0.5
    return {"true_pixels_in_mask": float((true & hull).sum() / true.sum()), "mask_area": float(hull.mean())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run_dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--hparams", default="", help="diat hparams for E (enhancement=local is implied)")
    ap.add_argument("--margin", type=float, default=0.06, help="landmark hull margin (fraction of the side)")
    ap.add_argument("--num_train", type=int, default=10000)
    args = ap.parse_args()

    import tensorflow as tf

    from tfattr.data import attributes as attributes_lib
    from tfattr.metrics import registry
    from tfattr.models import diat
    from tfattr.training import loop, precision, rundir

    meta = rundir.read_json(os.path.join(args.run_dir, "config.json"))
    if meta["train"]["model"] != "diat" or meta["train"]["dataset"] != "synthetic":
        sys.exit(f"--run_dir={args.run_dir}: needs a diat run on --dataset=synthetic, got "
                 f"{meta['train']['model']} on {meta['train']['dataset']}")
    schema = attributes_lib.Schema.from_json(meta["schema"])
    config = loop.model_config_from_meta(meta, ",".join(h for h in ("enhancement=local", args.hparams) if h),
                                         "--hparams")
    size = meta["train"]["image_size"]
    model = precision.build_model("diat", schema, size, config)
    model.compile()
    path = tf.train.latest_checkpoint(os.path.join(args.run_dir, "checkpoints"))
    if path is None:
        sys.exit(f"--run_dir={args.run_dir}: no checkpoint under checkpoints/")
    tf.train.Checkpoint(model=model).restore(path).expect_partial()  # E is not in the checkpoint
    step = int(path.rsplit("-", 1)[1])
    os.makedirs(args.out, exist_ok=True)

    def record(values):
        print(json.dumps(values), flush=True)
        with open(os.path.join(args.out, "log.jsonl"), "a") as f:
            f.write(json.dumps(values) + "\n")

    record({"checkpoint": path, "hparams": args.hparams, "margin": args.margin,
            **mask_coverage(config.domain_attribute, size, args.margin)})

    def evaluate(e_step):
        ctx = registry.make_context(model, meta, step, seed=0, progress=False)
        records, _ = registry.evaluate_metrics(ctx, list(METRICS), progress=False, log=lambda *a: None)
        record({"e_step": e_step, **{r["metric"]: round(r["value"], 4) for r in records if r["method"] == "model"}})

    batches = diat.bench_mask_batches(config.domain_attribute, config.domain_value or "yes", size, 16, seed=0,
                                      num_train=args.num_train, margin=args.margin)
    train = tf.function(lambda x, m: model._enhancer_step(x, x, m), jit_compile=True)
    evaluate(0)
    start, losses = time.time(), []
    for s in range(1, args.steps + 1):
        b = next(batches)
        losses.append(float(tf.reduce_mean(train(tf.constant(b["image_a"]), tf.constant(b["mask_a"])))))
        if s % args.every == 0:
            print(f"step {s}: E loss {np.mean(losses):.5f}, {time.time() - start:.0f} s", flush=True)
            losses = []
            evaluate(s)


if __name__ == "__main__":
    main()
