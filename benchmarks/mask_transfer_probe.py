"""Fast mask_transfer experiments on the 64 px bench: in-memory data, no run directory.

    nice -n 5 python benchmarks/mask_transfer_probe.py \
        --hparams=base_width=16,num_blocks=4,sep=96,decoder_activation=lrelu,lr=5e-4,lr_c=5e-4 \
        --steps=1250 --every=250 [--attribute=Eyeglasses] [--save=weights.h5]

Renders `--num_train` bench training faces once (the bench source's .npy cache under --cache_dir), trains with
`tf.function(model.train_step, jit_compile=True)` (`--no-jit_compile`: without XLA) on random A/B
batches (horizontal flips), and
every `--every` steps prints one JSON line on the Mokady et al. 2020 protocol (seed 003 pairs of the
bench test split, `tfattr.metrics.protocols`):

  acc          oracle says the attribute is present in z(a, b), 100 pairs (target >= 0.9)
  iou          IoU of m(b, b) > 0.5 with the renderer's layer mask, first 100 domain-B faces (>= 0.7)
  removal      oracle says the attribute is absent after remove(b)
  mae_out      mean |z(a, b) - a| outside the true transferred layer (0 = untouched)
  iou_best, t_best  the best IoU over thresholds 0.05..0.95 and its threshold: a diagnostic of
               whether the soft mask ranks the layer's pixels first (not a result: it uses the truth)
  m_in, m_out  mean soft mask m(b, b) inside / outside the true layer
  da_absent    oracle: D_A(E_c(b)) lacks the attribute (is the common code free of it?)
  da_l1        mean |D_A(E_c(b)) - b| (how sharp the domain-A decoder is)

plus the training losses averaged over the interval. This is the loop behind the runs in
benchmarks/mask_transfer.md; the same metrics on a trained run dir come from
`python -m tfattr.evaluate --run_dir=RUN --metrics=mokady2020`.
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


def signed(x):
    return x.astype(np.float32) / 127.5 - 1.0


def bench_pairs(attribute, domain_of, seed, size=64):
    """The probe's evaluation faces (Mokady et al. 2020 protocol, `tfattr.metrics.protocols`): 100
    (a, b) pairs of the bench test split, the same pairs' true swap and the pixels outside its layer,
    and the first 100 domain-B faces with their true layer masks. `domain_of(labels)`: 1 = B,
    0 = A, -1 = neither. Images in [-1, 1]."""
    from tfattr.data import synthetic as S
    from tfattr.metrics import protocols

    col, layer = S.SCHEMA.index(attribute), S.ATTRIBUTE_MASKS[attribute]
    test = S.params_for(seed, "test", np.arange(4000))
    test_domain = domain_of(S.labels(test)[:, col])
    # the protocol functions take 0 = A, > 0 = B; faces in neither domain are dropped first
    kept = np.nonzero(test_domain >= 0)[0]
    test, test_labels = {k: v[kept] for k, v in test.items()}, test_domain[kept]
    ia, ib = protocols.mokady2020_pairs(test_labels, 100, seed=seed)
    ib100 = protocols.mokady2020_domain_b(test_labels, 100)
    sub = lambda idx: {k: v[idx] for k, v in test.items()}  # noqa: E731
    swapped = S.render(S.swap(sub(ia), sub(ib), [attribute]), size, outputs=("image", "masks"))
    rb = S.render(sub(ib100), size, outputs=("image", "masks"))
    return {"xa": signed(S.render(sub(ia), size)["image"]), "xb": signed(S.render(sub(ib), size)["image"]),
            "swapped": signed(swapped["image"]), "outside": swapped["masks"][layer] < 0.5,
            "xb100": signed(rb["image"]), "truth100": rb["masks"][layer]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hparams", default="", help="mask_transfer Config overrides, name=value,...")
    p.add_argument("--attribute", default="Eyeglasses")
    p.add_argument("--value", default=None, help="class of --attribute that defines domain B (default: 'yes' of a "
                   "binary attribute); e.g. --attribute=Hair_Color --value=black, the paper's hair segmentation")
    p.add_argument("--value_a", default=None, help="class that defines domain A (default: every other class); "
                   "the paper's women's hair benchmark is blond (A) against black (B), Sec. 4")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_train", type=int, default=10000)
    p.add_argument("--cache_dir", default="/tmp/tfattr_probe_cache")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jit_compile", action=argparse.BooleanOptionalAction, default=True,
                   help="XLA-compile the train step (default, as in sessions 12-25). On CPUs where oneDNN has "
                        "AVX-512 kernels, --no-jit_compile can be faster: benchmarks/speed.md, session 26")
    p.add_argument("--save", default=None,
                   help="write the networks' weights to this checkpoint prefix at every evaluation (the last one wins)")
    p.add_argument("--ema", type=float, default=0.0, help="also evaluate (keys ema_*) and --save (prefix + '_ema') an "
                   "exponential moving average of the generator networks' variables, batch-norm statistics "
                   "included, with this decay, e.g. 0.999 (warmed up as min(decay, (1 + t) / (10 + t)); 0: off)")
    p.add_argument("--hard_thresholds", default="", help="comma-separated thresholds t: also report transfer with "
                   "the binarised mask m(a, b) > t (acc_t, mae_out_t)")
    p.add_argument("--load", default=None, help="start from these weights (a --save file of a run with the same "
                   "architecture); the optimizers start fresh and the loss ramps count from this run's step 0")
    args = p.parse_args()

    import tensorflow as tf

    from tfattr import config as config_lib
    from tfattr import models
    from tfattr.data import synthetic as S
    from tfattr.data.attributes import domain_membership
    from tfattr.losses import mask as mask_losses
    from tfattr.metrics import oracle as oracle_lib
    from tfattr.metrics import segmentation

    size, col = 64, S.SCHEMA.index(args.attribute)
    values = S.SCHEMA[args.attribute].values
    value_b = values.index(args.value or "yes")
    value_a = None if args.value_a is None else values.index(args.value_a)

    def domain_of(labels):  # 1 = domain B, 0 = domain A, -1 = neither (a third class when --value_a is given)
        return domain_membership(labels, value_b, value_a)

    images, train_labels, _ = S.SyntheticSource(size, args.seed, num_train=args.num_train,
                                                cache_dir=args.cache_dir).arrays("train")
    domain = domain_of(np.asarray(train_labels)[:, col])
    train_a, train_b = images[domain == 0], images[domain == 1]

    bench = bench_pairs(args.attribute, domain_of, args.seed, size)
    xa, xb, outside, xb100, truth100 = (bench[k] for k in ("xa", "xb", "outside", "xb100", "truth100"))
    oracle = oracle_lib.load_oracle()

    hp = {"domain_attribute": args.attribute, "domain_value": args.value, **config_lib.parse_hparams(args.hparams)}
    model = models.build("mask_transfer", S.SCHEMA, size, hp)
    model.compile()
    if args.load:
        tf.train.Checkpoint(**model.networks).read(args.load).assert_existing_objects_matched()
    print(json.dumps({"config": repr(model.config), "load": args.load}), flush=True)
    step_fn = tf.function(model.train_step, jit_compile=args.jit_compile)
    # The weight average the library's `evaluate --average_checkpoints` takes over a few checkpoints,
    # kept here every step (not in the paper: sessions 23-26 found single states 0.1-0.3 apart).
    live = [v for name in model.OPTIMIZER_GROUPS["g"] for v in model.networks[name].weights]
    averaged = [tf.Variable(v, trainable=False) for v in live] if args.ema else []

    @tf.function
    def ema_update(t):
        decay = tf.minimum(args.ema, (1.0 + t) / (10.0 + t))
        for a, v in zip(averaged, live):
            a.assign(decay * a + (1.0 - decay) * v)

    def swap_in_average():  # exchanges the live and the averaged values (call twice to undo)
        for a, v in zip(averaged, live):
            held = v.numpy()
            v.assign(a)
            a.assign(held)
    rng = np.random.default_rng(args.seed)

    def batch(images):
        x = images[rng.integers(0, len(images), args.batch_size)]
        x = np.where(rng.uniform(size=(len(x), 1, 1, 1)) < 0.5, x[:, :, ::-1], x)
        return tf.constant(signed(x))

    hard = [float(t) for t in args.hard_thresholds.split(",") if t]

    def evaluate():
        # one pass of the encoders and D_B; the soft and every thresholded composite reuse it
        mask_ab, raw_ab = model.decode_b(model.common_encoder(xa), model.separate_encoder(xb))
        z = mask_losses.composite(mask_ab, raw_ab, xa).numpy()
        extra = {}
        for t in hard:
            zt = mask_losses.composite(tf.cast(mask_ab > t, tf.float32), raw_ab, xa).numpy()
            extra[f"acc_{t:g}"] = (oracle.predict_labels(zt)[:, col] == value_b).mean()
            extra[f"mae_out_{t:g}"] = np.abs(zt - xa).mean(-1)[outside].mean()
        soft, _ = model.segment(xb100)
        soft = soft.numpy()[..., 0]
        removed, _ = model.remove(xb100)
        da = model.decoder_a(model.common_encoder(xb100)).numpy()
        iou_best, t_best = segmentation.best_threshold_iou(soft, truth100, np.arange(0.05, 0.96, 0.05))
        return {"acc": (oracle.predict_labels(z)[:, col] == value_b).mean(),
                "iou_best": iou_best, "t_best": t_best,
                "iou": segmentation.mask_iou(soft, truth100).mean(),
                "removal": (oracle.predict_labels(removed.numpy())[:, col] != value_b).mean(),
                "mae_out": np.abs(z - xa).mean(-1)[outside].mean(),
                "m_in": soft[truth100 > 0.5].mean(), "m_out": soft[truth100 <= 0.5].mean(),
                "da_absent": (oracle.predict_labels(da)[:, col] != value_b).mean(),
                "da_l1": np.abs(da - xb100).mean(), **extra}

    def save():  # the live networks to --save, the average to --save + "_ema" (overwritten each time)
        tf.train.Checkpoint(**model.networks).write(args.save)
        if averaged:
            swap_in_average()
            tf.train.Checkpoint(**model.networks).write(args.save + "_ema")
            swap_in_average()

    start = time.time()
    if args.steps == 0:
        print(json.dumps({"step": 0, **{k: round(float(v), 3) for k, v in evaluate().items()}}), flush=True)
    for step in range(1, args.steps + 1):
        step_fn({"image_a": batch(train_a), "image_b": batch(train_b)})
        if averaged:
            ema_update(tf.constant(step, tf.float32))
        if step % args.every == 0 or step == args.steps:
            logs = {k: round(float(v), 4) for k, v in model.logs().items()}
            model.reset_trackers()
            metrics = {k: round(float(v), 3) for k, v in evaluate().items()}
            if averaged:
                swap_in_average()
                metrics.update({f"ema_{k}": round(float(v), 3) for k, v in evaluate().items()})
                swap_in_average()
            print(json.dumps({"step": step, "seconds": round(time.time() - start), **metrics, "losses": logs}),
                  flush=True)
            if args.save:  # at every evaluation, so a run stopped for time keeps its last evaluated state
                save()


if __name__ == "__main__":
    main()
