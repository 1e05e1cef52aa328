"""Why a mask_transfer checkpoint's soft transfers fail the oracle: opacity or extent of the mask.

On the mokady2020 evaluation pairs (the 100 a <- b pairs of `oracle_acc_transfer_100pairs`) it
reports the oracle's accuracy on z(a, b) = m r + (1 - m) a for variants of the mask m = m(a, b):

  soft          the model's output (what the metric scores)
  gain_k        min(1, k m): the same support, k times as opaque
  hard_t        m > t: the support at threshold t, fully opaque
  true_mask     the renderer's own mask of the content in the counterfactual a-with-b's-content
                face (the support an ideal mask would have), with the model's raw image r
  own_true_mask D_B's raw reconstruction of b from b's own codes, pasted through b's true content
                mask onto D_A(E_c(b)): how well D_B draws the content at all, with no transfer
                (inflated while D_A still draws the content around the mask: see the next row)
  da_common_b   D_A(E_c(b)) alone, which should not show the content (L_DC's job): the oracle's
                rate of finding it there
  cf_blur_s     (with --blur_sigmas) no model at all: the counterfactual face, Gaussian-blurred by s
                pixels and pasted through its true content mask onto a; how much blur the oracle
                forgives, i.e. whether a blurred raw image alone explains a failing `true_mask`

  (with --gates) no transfer: on b's own codes, the fraction of b's true content pixels, and of
                the other pixels, where the gates of mask_prior_gate / mask_fill_gate open: Eq. 6's
                residual |b - D_A(E_c(b))| or its gain (that minus |b - z_raw(b, b)|) at or above each
                threshold, or its gain over D_B's raw image of (E_c(b), 0) ("gain_zero"); what a gate at that
                value would single out as the content
  (with --gate_fpr) the same readings, and two relative to an error level, at the threshold that
                opens on that fraction of the other pixels: the share of grey and of coloured content
                pixels it opens on (how well a gate at any value could separate them), and D_A's
                residual on the sources (domain A) inside and outside the content's region

  (with --grid=N) every one of N sources with every one of N references: whether the failures
                follow the source or the reference, then per reference (and for grey against
                coloured content) its pass rate, its masks, its true-mask composite, its content's
                contrast and the gates' readings on it

and, per pair, the soft mask's mean value inside that true support and the fraction of the support
where m > 0.5, split by whether the soft transfer passed. If `gain_k` recovers the failures the
masks cover the content but too faintly; if only `true_mask` does, they miss part of it; if
`true_mask` fails too, D_B's raw content is what fails, and `own_true_mask` says whether it fails
even on b's own codes. The content's categorical rendering factors (e.g. beard style) are broken
down per value; `--failures_png` draws the pairs whose `true_mask` composite fails (a, b, the
counterfactual, r, the true-mask composite, the soft transfer and its mask); with `--failures_of=soft`,
the pairs whose soft transfer fails although the true-mask composite passes, i.e. where the mask fails.

    python benchmarks/mask_transfer_diagnose.py --run_dir=RUN [--checkpoint=RUN/checkpoints/ckpt-N] [--average_weights] [--failures_png=F [--failures_of=soft]] [--gates=0.1,0.3] [--gate_fpr=0.05,0.02] [--grid=24]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfattr.utils import process_env  # noqa: E402

process_env.set_defaults()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfattr.data import synthetic  # noqa: E402
from tfattr.losses import mask as mask_losses  # noqa: E402
from tfattr.metrics import oracle as oracle_lib  # noqa: E402
from tfattr.metrics import protocols, registry, segmentation  # noqa: E402
from tfattr.models import diat, mask_transfer  # noqa: E402
from tfattr.training import loop  # noqa: E402
from tfattr.utils import image_grid  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_dir", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--average_weights", action="store_true",
                   help="the moving averages with re-estimated batch norms (default: the raw weights)")
    p.add_argument("--gains", default="1.5,2,3")
    p.add_argument("--thresholds", default="0.1,0.2,0.3,0.5")
    p.add_argument("--num_pairs", type=int, default=protocols.MOKADY2020_NUM_PAIRS)
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument("--failures_png", default=None,
                   help="draw up to --failures_rows pairs whose true-mask composite fails the oracle")
    p.add_argument("--failures_rows", type=int, default=8)
    p.add_argument("--failures_of", choices=("true_mask", "soft"), default="true_mask",
                   help="true_mask: pairs whose true-mask composite fails (D_B's raw content fails); "
                        "soft: pairs whose soft transfer fails while that composite passes (the mask fails)")
    p.add_argument("--blur_sigmas", default="", help="e.g. 1,1.5,2: add the cf_blur_s rows")
    p.add_argument("--grid", type=int, default=0,
                   help="N: also every one of the first N sources with every one of the first N references, "
                        "per reference (slow: N oracle passes of N images)")
    p.add_argument("--gates", default="", help="e.g. 0.1,0.2,0.3: add the gate table (residual, gain, gain_zero)")
    p.add_argument("--gate_fpr", default="", help="e.g. 0.05,0.02: add the gate separation table")
    args = p.parse_args()

    model, step, meta = loop.load_model_from_run(args.run_dir, args.checkpoint, average_weights=args.average_weights)
    attr = model.config.domain_attribute
    if attr not in synthetic.ATTRIBUTE_MASKS:
        raise SystemExit(f"--run_dir={args.run_dir}: domain_attribute={attr} has no bench mask "
                         f"(one of {sorted(synthetic.ATTRIBUTE_MASKS)})")
    size = int(meta["train"]["image_size"])
    testset = registry.BenchTestSet()
    schema = testset.schema
    col = schema.index(attr)
    value_b = schema[attr].value_index("yes")
    # The metric's pool and pairs (registry.add_mokady_metrics).
    pool = np.arange(max(4000, 8 * args.num_pairs, 8 * protocols.MOKADY2020_NUM_REMOVAL))
    labels = (testset.labels(pool)[:, col] == value_b).astype(np.int64)
    a_idx, b_idx = protocols.mokady2020_pairs(labels, args.num_pairs, seed=0)
    xa, xb = testset.images(a_idx, size), testset.images(b_idx, size)

    # The counterfactual face: a with b's content (synthetic.swap, the bench's ground truth of the
    # transfer), whose rendered mask is where the content should go in z(a, b).
    cf = synthetic.swap(testset.params(a_idx), testset.params(b_idx), [attr])
    layer = synthetic.ATTRIBUTE_MASKS[attr]
    cf_render = synthetic.render(cf, size, outputs=("image", "masks"))
    truth = np.asarray(cf_render["masks"][layer]).reshape(len(a_idx), size, size, 1) > 0.5

    common_b, separate_b = model.common_encoder(xb, training=False), model.separate_encoder(xb, training=False)
    m, r = model.decode_b(model.common_encoder(xa, training=False), separate_b, False)
    m, r = np.asarray(m, np.float32), np.asarray(r, np.float32)
    # No transfer at all: D_B's raw b from b's own codes, through b's true content mask onto D_A(E_c(b)).
    m_own, r_own = model.decode_b(common_b, separate_b, False)
    m_own, r_own = np.asarray(m_own, np.float32), np.asarray(r_own, np.float32)
    unmasked_b = np.asarray(model.decoder_a(common_b, training=False), np.float32)
    truth_b = np.asarray(testset.masks(b_idx, size, layer)).reshape(len(b_idx), size, size, 1) > 0.5
    oracle = oracle_lib.load_oracle()

    changes = {}  # variant -> mean |z - a| outside the true support (mae_outside_transfer_100pairs for soft)

    def acc(mask, name, raw=r):
        z = np.asarray(mask_losses.composite(mask.astype(np.float32), raw, xa))
        changes[name] = float(segmentation.change_outside(z, xa, truth).mean())
        return oracle.predict_labels(z)[:, col] == value_b

    rows = {"soft": acc(m, "soft")}
    for k in [float(x) for x in args.gains.split(",") if x]:
        rows[f"gain_{k:g}"] = acc(np.minimum(1.0, k * m), f"gain_{k:g}")
    for t in [float(x) for x in args.thresholds.split(",") if x]:
        rows[f"hard_{t:g}"] = acc((m > t).astype(np.float32), f"hard_{t:g}")
    rows["true_mask"] = acc(truth.astype(np.float32), "true_mask")
    own = np.asarray(mask_losses.composite(truth_b.astype(np.float32), r_own, unmasked_b))
    rows["own_true_mask"] = oracle.predict_labels(own)[:, col] == value_b
    rows["da_common_b"] = oracle.predict_labels(unmasked_b)[:, col] == value_b
    cf_image = oracle_lib.uint8_to_signed(cf_render["image"])
    for sigma in [float(x) for x in args.blur_sigmas.split(",") if x]:
        blurred = np.asarray(diat.gaussian_blur(cf_image, sigma), np.float32)  # DIAT's B(x), Eq. 11
        rows[f"cf_blur_{sigma:g}"] = acc(truth.astype(np.float32), f"cf_blur_{sigma:g}", raw=blurred)
    passed = rows["soft"]
    # m(b, b) inside b's own content, per pair: whether the mask stays open on the content at all.
    own_inside = np.array([m_own[i][truth_b[i]].mean() if truth_b[i].any() else np.nan for i in range(len(m_own))])
    inside = np.array([m[i][truth[i]].mean() if truth[i].any() else np.nan for i in range(len(m))])
    covered = np.array([(m[i][truth[i]] > 0.5).mean() if truth[i].any() else np.nan for i in range(len(m))])
    outside = np.array([m[i][~truth[i]].mean() for i in range(len(m))])

    print(f"{args.run_dir} {step} {attr}: {len(m)} pairs, "
          f"{'average' if args.average_weights else 'raw'} weights")
    print("| mask variant | oracle acc | change outside |\n|---|---|---|")
    for name, ok in rows.items():
        change = f"{changes[name]:.4f}" if name in changes else "-"  # b's own codes: no source a
        print(f"| {name} | {ok.mean():.2f} | {change} |")
    print(f"m(b, b) on b's own content: {np.nanmean(own_inside):.3f} inside, "
          f"{m_own[~truth_b].mean():.4f} outside")
    thresholds = [float(x) for x in args.gates.split(",") if x]
    fprs = [float(x) for x in args.gate_fpr.split(",") if x]
    if thresholds or fprs:  # the gates' readings on b's own codes, once for both tables
        _, r_zero = model.decode_b(common_b, tf.zeros_like(separate_b), False)  # D_B(E_c(b), 0)
        readings = {k: np.asarray(v)[..., 0] for k, v in
                    mask_transfer.gate_readings(xb, unmasked_b, r_own, raw_b_zero=r_zero).items()}
        content = truth_b[..., 0]
    if thresholds:
        print("| gate reads | threshold | content pixels >= | other pixels >= |\n|---|---|---|---|")
        for name, v in readings.items():
            for t in thresholds:
                print(f"| {name} | {t:g} | {(v[content] >= t).mean():.3f} | {(v[~content] >= t).mean():.4f} |")
    if fprs:
        gate_separation(model, xa, xb, readings, content, grey_content(testset.params(b_idx), attr), fprs)
    print("| pairs | n | m inside true mask | fraction > 0.5 | m outside |\n|---|---|---|---|---|")
    for name, sel in (("soft passes", passed), ("soft fails", ~passed)):
        if sel.any():
            print(f"| {name} | {sel.sum()} | {np.nanmean(inside[sel]):.3f} | {np.nanmean(covered[sel]):.3f} "
                  f"| {outside[sel].mean():.4f} |")
    # Which references fail: soft accuracy below and above the median of each of the content's
    # rendering factors (e.g. glasses' lens tint, frame thickness).
    params_b = testset.params(b_idx)
    print("| factor of b | median | acc below | acc above |\n|---|---|---|---|")
    categorical = []
    for key in synthetic.FACTORS[attr]:
        if np.issubdtype(np.asarray(params_b[key]).dtype, np.integer):
            categorical.append(key)  # an on/off switch or a style index: a median split means nothing
            continue
        v = np.asarray(params_b[key], np.float64)
        if np.ptp(v) == 0:
            continue
        med = np.median(v)
        lo, hi = v <= med, v > med
        if hi.any() and lo.any():
            print(f"| {key} | {med:.3g} | {passed[lo].mean():.2f} ({lo.sum()}) | {passed[hi].mean():.2f} ({hi.sum()}) |")
    for key in categorical:
        v = np.asarray(params_b[key])
        if len(np.unique(v)) < 2:
            continue
        cols = ["soft", "true_mask", "own_true_mask"] + [k for k in rows if k.startswith("cf_blur_")]
        print(f"| {key} | n | {' | '.join(cols)} | m(b, b) inside |\n|---|---|{'---|' * (len(cols) + 1)}")
        for value in np.unique(v):
            sel = v == value
            print(f"| {category(key, value)} | {sel.sum()} | "
                  + " | ".join(f"{rows[c][sel].mean():.2f}" for c in cols) + f" | {np.nanmean(own_inside[sel]):.2f} |")
    if args.failures_png:
        z_true = np.asarray(mask_losses.composite(truth.astype(np.float32), r, xa))
        z_soft = np.asarray(mask_losses.composite(m, r, xa))
        failed = ~rows["true_mask"] if args.failures_of == "true_mask" else ~rows["soft"] & rows["true_mask"]
        pick = np.flatnonzero(failed)[:args.failures_rows]
        if len(pick):
            columns = (xa, xb, cf_image, r, z_true, z_soft, np.repeat(m, 3, -1) * 2 - 1)
            tiles = [image_grid.to_uint8(c[i]) for i in pick for c in columns]
            image_grid.save_png(args.failures_png, image_grid.grid(tiles, len(pick), len(columns)))
            print(f"wrote {args.failures_png}: {args.failures_of} failures, pairs {pick.tolist()} (a, b, "
                  f"a with b's content, D_B raw, true-mask composite, soft transfer, soft mask)")
    if args.grid:
        reference_grid(model, testset, pool, labels, col, value_b, attr, layer, size, args.grid, oracle)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"run_dir": args.run_dir, "checkpoint": args.checkpoint, "average": args.average_weights,
                       "acc": {k: float(v.mean()) for k, v in rows.items()}, "change_outside": changes,
                       "inside": inside.tolist(), "covered": covered.tolist(), "passed": passed.tolist()}, f)


CATEGORY_NAMES = {"beard_style": synthetic.BEARD_STYLES, "frame_shape": synthetic.FRAME_SHAPES}


def category(key, value):
    names = CATEGORY_NAMES.get(key)
    return names[value] if names else str(value)


def grey_content(params, attr):
    """Per image, whether its content is rendered grey (equal red, green and blue factors)."""
    colour = [k for k in synthetic.FACTORS[attr] if k.endswith(("_r", "_g", "_b"))]
    if len(colour) != 3:
        return np.zeros(len(np.asarray(params[synthetic.FACTORS[attr][0]])), bool)
    return np.ptp(np.stack([np.asarray(params[k]) for k in colour]), axis=0) == 0


DETAIL_SIGMAS = (1.0, 2.0)  # --gate_fpr: the blur scales of the "residual - detail" readings


def gate_separation(model, xa, xb, readings, truth_b, grey, fprs):
    """--gate_fpr: how well each gate reading could single out the content at any threshold. For
    each reading and each fraction f, the threshold opening on f of b's other pixels, and the share
    of b's grey and coloured content pixels it opens on. Besides the model's gates (`readings`, from
    gate_readings), two relative to an error level that the absolute ones lack: "residual - A":
    Eq. 6's residual minus D_A's mean residual |a - D_A(E_c(a))| on the sources (domain A, no
    content) at the same pixel; "residual - detail s": minus mean_channels |b - blur_s(b)|, the error
    a decoder as blurry as a Gaussian of s pixels makes on b where it has no content."""
    readings = dict(readings)
    residual_a = np.abs(xa - np.asarray(model.decoder_a(model.common_encoder(xa, training=False),
                                                        training=False))).mean(-1)
    readings["residual - A"] = readings["residual"] - residual_a.mean(0)
    for s in DETAIL_SIGMAS:
        detail = np.abs(xb - np.asarray(diat.gaussian_blur(tf.constant(xb), s))).mean(-1)
        readings[f"residual - detail {s:g}"] = readings["residual"] - detail
    region = truth_b.any(0)
    print(f"D_A's residual on the sources (domain A): {residual_a[:, region].mean():.3f} inside the region "
          f"b's content covers, {residual_a[:, ~region].mean():.3f} elsewhere; on b: "
          f"{readings['residual'][grey][truth_b[grey]].mean() if grey.any() else np.nan:.3f} inside grey content, "
          f"{readings['residual'][~grey][truth_b[~grey]].mean():.3f} inside coloured ({grey.sum()} / {(~grey).sum()} images)")
    print("| gate reads | other pixels >= | threshold | grey content >= | coloured content >= |\n|---|---|---|---|---|")
    for name, v in readings.items():
        for f in fprs:
            t = np.quantile(v[~truth_b], 1.0 - f)
            g = f"{(v[grey][truth_b[grey]] >= t).mean():.2f}" if grey.any() else "-"
            print(f"| {name} | {f:g} | {t:.3f} | {g} | {(v[~grey][truth_b[~grey]] >= t).mean():.2f} |")


def reference_grid(model, testset, pool, labels, col, value_b, attr, layer, size, n, oracle):
    """--grid: every one of the pool's first n sources a with every one of its first n references b.
    Whether failures follow the source or the reference (the variance of the pass grid's row and
    column means), then per reference: its factors, the pass rate over the sources, m(b, b) inside
    its own content, m(a, b) inside the counterfactual's content (mean over the sources), the
    true-mask composite's pass rate, the content's contrast |b - b without the content| inside it,
    and the fraction of its content pixels where the residual / the gain reach 0.2."""
    a_idx, b_idx = pool[labels == 0][:n], pool[labels == 1][:n]
    xa, xb = testset.images(a_idx, size), testset.images(b_idx, size)
    params_a, params_b = testset.params(a_idx), testset.params(b_idx)
    common_a = model.common_encoder(xa, training=False)
    common_b, separate_b = model.common_encoder(xb, training=False), model.separate_encoder(xb, training=False)
    m_own, r_own = model.decode_b(common_b, separate_b, False)
    m_own = np.asarray(m_own)
    readings = {k: np.asarray(v)[..., 0] for k, v in
                mask_transfer.gate_readings(xb, model.decoder_a(common_b, training=False), r_own, ("gain",)).items()}
    truth_b = np.asarray(testset.masks(b_idx, size, layer)).reshape(len(b_idx), size, size) > 0.5
    without = {k: np.array(v) for k, v in params_b.items()}
    without[synthetic.FACTORS[attr][0]] = np.zeros_like(without[synthetic.FACTORS[attr][0]])
    clean = oracle_lib.uint8_to_signed(synthetic.render(without, size, outputs=("image",))["image"])
    contrast = np.abs(xb - clean).mean(-1)
    grid = np.zeros((len(a_idx), len(b_idx)), bool)
    rows = []
    for j in range(len(b_idx)):
        one = {k: np.repeat(np.asarray(v)[j:j + 1], len(a_idx), 0) for k, v in params_b.items()}
        cf = synthetic.render(synthetic.swap(params_a, one, [attr]), size, outputs=("masks",))
        truth = np.asarray(cf["masks"][layer]).reshape(len(a_idx), size, size, 1) > 0.5
        m, r = model.decode_b(common_a, tf.repeat(separate_b[j:j + 1], len(a_idx), 0), False)
        m, r = np.asarray(m), np.asarray(r)
        grid[:, j] = oracle.predict_labels(np.asarray(mask_losses.composite(m, r, xa)))[:, col] == value_b
        true_pass = oracle.predict_labels(np.asarray(mask_losses.composite(truth.astype(np.float32), r, xa)))
        t = truth_b[j]
        rows.append((grid[:, j].mean(), m_own[j, ..., 0][t].mean(), np.mean([m[i][truth[i]].mean() for i in range(len(m))
                                                                            if truth[i].any()]),
                     (true_pass[:, col] == value_b).mean(), contrast[j][t].mean(),
                     (readings["residual"][j][t] >= 0.2).mean(), (readings["gain"][j][t] >= 0.2).mean()))
    rows = np.array(rows)
    print(f"grid {len(a_idx)} x {len(b_idx)}: soft transfer {grid.mean():.3f}; variance of the pass grid "
          f"{grid.var():.3f}, of its source means {grid.mean(1).var():.3f}, of its reference means "
          f"{grid.mean(0).var():.3f}")
    grey = grey_content(params_b, attr)
    groups = {"grey": grey, "coloured": ~grey} if grey.any() else {"all": np.ones(len(b_idx), bool)}
    cols = ("pass", "m(b, b) in", "m(a, b) in", "true mask", "contrast", "residual >= 0.2", "gain >= 0.2")
    print(f"| references | n | {' | '.join(cols)} |\n|---|---|{'---|' * len(cols)}")
    for name, sel in groups.items():
        if sel.any():
            print(f"| {name} | {sel.sum()} | " + " | ".join(f"{v:.2f}" for v in rows[sel].mean(0)) + " |")
    keys = [k for k in synthetic.FACTORS[attr][1:] if np.issubdtype(np.asarray(params_b[k]).dtype, np.integer)]
    print(f"| reference | {' | '.join(keys)} | grey | {' | '.join(cols)} |\n|---|{'---|' * (len(keys) + 1 + len(cols))}")
    for j in np.argsort(rows[:, 0]):
        print(f"| {b_idx[j]} | " + " | ".join(category(k, np.asarray(params_b[k])[j]) for k in keys)
              + f" | {'yes' if grey[j] else 'no'} | " + " | ".join(f"{v:.2f}" for v in rows[j]) + " |")


if __name__ == "__main__":
    main()
