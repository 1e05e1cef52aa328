"""adv_disentangle on the bench: disentanglement analysis and the mixture / interpolation figures.

  python benchmarks/adv_disentangle_analysis.py --run_dir=RUN [--checkpoint=PREFIX] [--tag=dis1]
      [--figures_dir=benchmarks/figures] [--num=2000]
  python benchmarks/adv_disentangle_analysis.py --ablation_steps=300 --lambda_dis=0,1   (Ablation Study I)

Prints one JSON line: mean classifier-posterior entropy of C_m' on every code z_m (Oldfield et al.
Fig. 5; natural log and normalised by log K), latent classification accuracy, and the Hopkins
statistic of each attribute code within each class cluster (Table III), on the first `num` bench
test images. With --figures_dir it writes
  adv_disentangle_<tag>_mixture.png: row r mixes the Expression codes of three references with
      weights (1,0,0), (.5,.5,0), (0,1,0), (0,.5,.5), (0,0,1), (1/3,1/3,1/3) into source r (Eq. 11);
      then the rest (identity) code of the same references, same weights.
  adv_disentangle_<tag>_interpolation.png: per source, alpha = 0, 1/6, .., 1 between its Expression,
      Illumination and rest codes and a reference's (Eq. 12).
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

flags.DEFINE_string("run_dir", None, "Training run directory.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: latest).")
flags.DEFINE_string("tag", "demo", "Name used in the figure files.")
flags.DEFINE_string("figures_dir", None, "Where to write the figures (none: no figures).")
flags.DEFINE_integer("num", 2000, "Bench test images for entropy / Hopkins.")
flags.DEFINE_integer("seed", 0, "Bench seed.")
flags.DEFINE_integer("ablation_steps", 0, "If > 0 (and no --run_dir): Ablation Study I instead, see ablation().")
flags.DEFINE_list("lambda_dis", ["0", "1"], "Ablation: lambda_dis values.")
flags.DEFINE_string("hparams", "enc_width=8,dec_width=64,num_res_blocks=2,dec_resize_stride2=false,c_width=16,"
                    "d_width=16,d_max_width=256,lr_g=3e-4,lr_c=3e-4", "Ablation: model hparams (the demo's).")
flags.DEFINE_string("cache_dir", "/tmp/cache_advdis", "Ablation: synthetic cache.")
FLAGS = flags.FLAGS

MIX_WEIGHTS = np.array([[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, .5, .5], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]], np.float32)


def analyse(model, testset, num: int, seed: int) -> dict:
    from tfattr.metrics import disentanglement

    idx = np.arange(num)
    x = testset.images(idx, model.image_size)
    labels = testset.labels(idx)
    names = model.schema.names
    cols = [testset.schema.index(n) for n in names]
    out = {"entropy": {}, "entropy_normalised": {}, "latent_acc": {}, "hopkins": {}}
    posts, codes = [], []
    for s in range(0, num, 100):
        p = model.latent_posteriors(x[s:s + 100])
        posts.append({e: {a: v.numpy() for a, v in d.items()} for e, d in p.items()})
        codes.append({k: v.numpy() for k, v in model.attribute_encodings(x[s:s + 100]).items()})
    for enc in model.code_names:
        for a, col in zip(names, cols):
            probs = np.concatenate([p[enc][a] for p in posts])
            h = disentanglement.posterior_entropy(probs)
            key = f"C_{a}(z_{enc})"
            out["entropy"][key] = float(h.mean())
            out["entropy_normalised"][key] = float(h.mean() / np.log(probs.shape[1]))
            if enc == a:
                out["latent_acc"][a] = float(np.mean(probs.argmax(1) == labels[:, col]))
    for a, col in zip(names, cols):
        z = np.concatenate([c[a] for c in codes])
        per = disentanglement.hopkins_per_cluster(z, labels[:, col], seed=seed)
        out["hopkins"][a] = {"mean": float(np.mean(list(per.values()))), "per_class": per}
    return out


def figures(model, testset, tag: str, figures_dir: str) -> list[str]:
    import tensorflow as tf

    from tfattr.utils import image_grid

    size = model.image_size
    n = 4
    src = testset.images(np.arange(n), size)
    refs = testset.images(np.arange(10, 10 + 3 * n), size).reshape(n, 3, size, size, 3)
    paths = []
    tiles = []
    for code in ("Expression", "rest"):
        mask = np.tile(model.code_mask([code]), [n, 1])
        for r in range(n):
            row = [src[r]] + list(refs[r])
            for w in MIX_WEIGHTS:
                row.append(model.mix(src[r:r + 1], refs[r:r + 1], w[None], mask[:1]).numpy()[0])
            tiles += list(image_grid.to_uint8(np.stack(row)))
    path = os.path.join(figures_dir, f"adv_disentangle_{tag}_mixture.png")
    image_grid.save_png(path, image_grid.grid(tiles, 2 * n, 4 + len(MIX_WEIGHTS)))
    paths.append(path)

    alphas = np.linspace(0, 1, 7).astype(np.float32)
    ref = testset.images(np.arange(20, 20 + n), size)
    tiles = []
    for r in range(n):
        for code in ("Expression", "Illumination", "rest"):
            k = len(alphas)
            out = model.interpolate(np.repeat(src[r:r + 1], k, 0), np.repeat(ref[r:r + 1], k, 0), alphas,
                                    tf.constant(np.tile(model.code_mask([code]), [k, 1]))).numpy()
            tiles += list(image_grid.to_uint8(np.concatenate([src[r:r + 1], out, ref[r:r + 1]])))
    path = os.path.join(figures_dir, f"adv_disentangle_{tag}_interpolation.png")
    image_grid.save_png(path, image_grid.grid(tiles, 3 * n, len(alphas) + 2))
    paths.append(path)
    return paths


def ablation(lambda_dis: float, steps: int, seed: int) -> dict:
    """Oldfield et al. Sec. IV-B-1 (Ablation Study I) on the bench: only the encoders and the
    classifiers train, the encoders on lambda_cls * Eq. 3 + lambda_dis * Eq. 4 (Eq. 10), the
    classifiers on real images; no decoder or critic. Returns `analyse()` of the trained codes."""
    import keras
    import tensorflow as tf

    from tfattr import config as config_lib
    from tfattr import models
    from tfattr.data import pipeline
    from tfattr.metrics.registry import BenchTestSet

    keras.utils.set_random_seed(seed)
    ds, schema = pipeline.load("synthetic", "train", image_size=64, batch_size=16,
                               attributes=["Expression", "Illumination", "Gaze"], shuffle=True, repeat=True,
                               flip=False, seed=seed, cache_dir=FLAGS.cache_dir, num_train=10000)
    hp = config_lib.parse_hparams(FLAGS.hparams)
    hp["lambda_dis"] = str(lambda_dis)
    model = models.build("adv_disentangle", schema, 64, hp)
    model.compile()
    c = model.config

    @tf.function(jit_compile=True)
    def step(batch):
        classes = model.class_indices(batch["attributes"])
        with tf.GradientTape() as tape:
            codes = model.encode(batch["image"], training=True)
            cls, dis, acc, ent = model._latent_terms(codes, classes)
            loss = model.reduce(c.lambda_cls * cls + c.lambda_dis * dis)
        model.apply("g", tape, loss)
        with tf.GradientTape() as tape:
            c_loss = model.reduce(model._class_ce(model.classifier(batch["image"], training=True), classes))
        model.apply("c", tape, c_loss)
        return tf.reduce_mean(acc), tf.reduce_mean(ent)

    it = iter(ds)
    for i in range(steps):
        acc, ent = step(next(it))
        if (i + 1) % 100 == 0:
            print(f"lambda_dis={lambda_dis} step {i + 1}: latent acc {float(acc):.3f}, "
                  f"normalised entropy on other codes {float(ent):.3f}", flush=True)
    return {"lambda_dis": lambda_dis, "steps": steps, **analyse(model, BenchTestSet(seed=seed), FLAGS.num, seed)}


def main(argv):
    del argv
    if FLAGS.ablation_steps > 0:
        for value in FLAGS.lambda_dis:
            print(json.dumps(ablation(float(value), FLAGS.ablation_steps, FLAGS.seed), sort_keys=True,
                             default=float), flush=True)
        return
    from tfattr.metrics.registry import BenchTestSet
    from tfattr.training import loop

    model, step, _ = loop.load_model_from_run(FLAGS.run_dir, FLAGS.checkpoint)
    testset = BenchTestSet(seed=FLAGS.seed)
    result = {"run_dir": FLAGS.run_dir, "step": step, **analyse(model, testset, FLAGS.num, FLAGS.seed)}
    if FLAGS.figures_dir:
        result["figures"] = figures(model, testset, FLAGS.tag, FLAGS.figures_dir)
    print(json.dumps(result, sort_keys=True, default=float))


if __name__ == "__main__":
    app.run(main)
