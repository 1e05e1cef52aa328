"""Where a bench transfer fails: per target class, and split by what source and reference share.

  python benchmarks/transfer_breakdown.py --run_dir=RUN [--checkpoint=PREFIX] --attribute=Expression [--num=1200] [--split=test]

On the first `num` bench faces of `split` (`train`: faces every bench run trained on, since runs
train on the split's first `num_train` faces; compare with `test` for overfitting), each source is
paired with a random other face (seed 0) whose `attribute` differs, and `attribute` is
transferred from it (`transfer_from_reference`, averaged weights as in `tfattr.evaluate`). The
oracle then judges the transferred images. Prints JSON lines:

* `overall`: swap accuracy, and the accuracy of the reference's own reconstruction (the decoder's ceiling);
* `per_class`: per target class: accuracy, reconstruction accuracy, what the wrong ones were called,
  and how many kept the source's class (the code did not move) rather than landing elsewhere;
* `split`: for every other bench attribute, accuracy on pairs whose source and reference share its
  value vs pairs that differ in it. A large gap names a factor the transferred code drags along.
"""

from __future__ import annotations

import json

import numpy as np
from absl import app, flags

flags.DEFINE_string("run_dir", None, "Training run directory.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: latest).")
flags.DEFINE_string("attribute", "Expression", "The attribute to transfer (a bench attribute the model has).")
flags.DEFINE_integer("num", 1200, "Bench faces.")
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Bench split the faces come from.")
FLAGS = flags.FLAGS


def batched(fn, *arrays, size: int = 200) -> np.ndarray:
    return np.concatenate([np.asarray(fn(*(a[i:i + size] for a in arrays))) for i in range(0, len(arrays[0]), size)])


def main(argv):
    del argv
    from tfattr.data import synthetic
    from tfattr.metrics import oracle as oracle_lib
    from tfattr.training import loop

    model, step, _ = loop.load_model_from_run(FLAGS.run_dir, FLAGS.checkpoint)
    images, labels = oracle_lib.render_labelled(0, FLAGS.split, 0, FLAGS.num, model.image_size)
    x = oracle_lib.uint8_to_signed(images)
    col = synthetic.SCHEMA.index(FLAGS.attribute)
    partner = np.random.default_rng(0).permutation(len(x))
    keep = labels[partner, col] != labels[:, col]
    src, ref = x[keep], x[partner][keep]
    src_labels, ref_labels = labels[keep], labels[partner][keep]
    target = ref_labels[:, col]
    out = batched(lambda s, r: model.transfer_from_reference(s, r, [FLAGS.attribute]), src, ref)
    oracle = oracle_lib.load_oracle()
    pred = oracle.predict_labels(out)[:, col]
    pred_rec = oracle.predict_labels(batched(model.reconstruct, ref))[:, col]
    right = pred == target
    names = synthetic.SCHEMA[FLAGS.attribute].values
    print(json.dumps({"run_dir": FLAGS.run_dir, "step": step, "attribute": FLAGS.attribute, "pairs": int(len(target)),
                      "overall": {"swap": round(float(right.mean()), 3),
                                  "reference_reconstruction": round(float((pred_rec == target).mean()), 3)}}))
    per_class = {}
    for c, name in enumerate(names):
        m = target == c
        wrong = pred[m & ~right]
        per_class[name] = {"n": int(m.sum()), "swap": round(float(right[m].mean()), 3),
                           "reconstruction": round(float((pred_rec[m] == c).mean()), 3),
                           "called": {names[k]: int((wrong == k).sum()) for k in np.unique(wrong)},
                           "kept_source": int((pred[m] == src_labels[m, col]).sum())}
    print(json.dumps({"per_class": per_class}))
    split = {}
    for a in synthetic.SCHEMA:
        if a.name == FLAGS.attribute:
            continue
        j = synthetic.SCHEMA.index(a.name)
        same = src_labels[:, j] == ref_labels[:, j]
        split[a.name] = {"same": round(float(right[same].mean()), 3) if same.any() else None, "n_same": int(same.sum()),
                         "differ": round(float(right[~same].mean()), 3) if (~same).any() else None,
                         "n_differ": int((~same).sum())}
    print(json.dumps({"split": split}))


if __name__ == "__main__":
    flags.mark_flag_as_required("run_dir")
    app.run(main)
