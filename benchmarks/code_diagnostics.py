"""Why a bench transfer fails: the reconstruction ceiling, and what each latent part encodes.

  python benchmarks/code_diagnostics.py --run_dir=RUN [--checkpoint=PREFIX] [--num=1200] [--split=test]

Prints, on the first `num` bench faces of `split` (64 px models trained on the synthetic bench;
`train` gives faces the run trained on, to compare with `test` for overfitting):

* `reconstruction`: the oracle's accuracy per bench attribute on the real faces and on the model's
  reconstructions (swap nothing). A swap of attribute X can only be judged right as often as a
  reconstruction keeps X, so this is the ceiling of the swap accuracy that the decoder's sharpness sets.
* `probe` (latent_swap: each unit and the irrelevant part; adv_disentangle: each code z_m and the
  rest code): held-out accuracy of a linear probe (ridge classifier on the 4x4
  average-pooled code, trained on the first 2/3 of the faces) from each latent part to each of the
  model's attributes. A unit that reads its own attribute no better than the other parts do is not
  the one the decoder can be taught to follow.
* `judges`: for each model attribute, up to 300 faces each take it from a random face whose label
  differs (`transfer_from_reference`); how often the model's own attribute classifier (latent_swap:
  D's classification head; adv_disentangle: C_m) and the oracle call the result the reference's
  class, next to the own classifier's accuracy on the real faces. A classifier that is weak on real
  faces gives the generator little to follow; one that accepts swaps the oracle rejects is fooled.
* `discriminator` (models with a `discriminator` network): root mean square of every D layer's
  output on the faces (inference mode), with each convolution's largest singular value as used
  (spectrally normalised layers: of W / sigma) and its largest bias. A D whose signal shrinks layer
  by layer until the biases dominate no longer depends on its input.
"""

from __future__ import annotations

import json

import numpy as np
from absl import app, flags

flags.DEFINE_string("run_dir", None, "Training run directory.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: latest).")
flags.DEFINE_integer("num", 1200, "Bench faces.")
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Bench split the faces come from.")
SECTIONS = ("reconstruction", "probe", "judges", "carriers", "discriminator")
flags.DEFINE_list("sections", list(SECTIONS), f"Sections to print, comma-separated: {', '.join(SECTIONS)}.")
flags.register_validator("sections", lambda names: set(names) <= set(SECTIONS),
                         f"--sections: each name must be one of {', '.join(SECTIONS)}")
FLAGS = flags.FLAGS


def ridge_probe_accuracy(train_x, train_y, test_x, test_y, num_classes: int, l2: float = 10.0) -> float:
    """Accuracy of a ridge-regression classifier (one-hot targets) fitted on standardised features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    a = np.concatenate([a, np.ones([len(a), 1])], 1)
    b = np.concatenate([b, np.ones([len(b), 1])], 1)
    targets = np.eye(num_classes)[train_y]
    w = np.linalg.solve(a.T @ a + l2 * np.eye(a.shape[1]), a.T @ targets)
    return float(np.mean((b @ w).argmax(1) == test_y))


def pooled(code: np.ndarray, cells: int = 4) -> np.ndarray:
    n, h, w, c = code.shape
    return code.reshape(n, cells, h // cells, cells, w // cells, c).mean((2, 4)).reshape(n, -1)


def batched(fn, *arrays: np.ndarray, size: int = 200) -> np.ndarray:
    """`fn` over aligned slices of `arrays`, `size` rows at a time, concatenated."""
    return np.concatenate([np.asarray(fn(*(a[i:i + size] for a in arrays))) for i in range(0, len(arrays[0]), size)])


def latent_parts(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """{part name: [N, h, w, c]} for latent_swap (units + irrelevant) and adv_disentangle (codes)."""
    if hasattr(model, "code_names"):  # adv_disentangle: encode() -> [z_1 .. z_M, z_0]
        return {n: batched(lambda x, j=j: model.encode(x)[j], images) for j, n in enumerate(model.code_names)}
    e = batched(model.encode, images)
    u = model.unit_channels
    parts = {a.name: e[..., j * u:(j + 1) * u] for j, a in enumerate(model.schema)}
    parts["irrelevant"] = e[..., len(model.schema) * u:]
    return parts


def own_classifier_labels(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """{attribute: predicted class [N]} from the model's own attribute classifier (see `judges`)."""
    import tensorflow as tf

    if hasattr(model, "code_names"):  # adv_disentangle: C_m, one logits head per attribute
        return {n: batched(lambda x, n=n: model.classifier(x, training=False)[n], images).argmax(-1)
                for n in model.schema.names}
    flat = batched(lambda x: tf.reshape(model.discriminator(x, training=False)["cls"], [len(x), -1]), images)
    # Sigmoid keeps each categorical slice's argmax and puts the binary threshold at 0.5 for decode().
    classes = model.schema.decode(1.0 / (1.0 + np.exp(-flat.astype(np.float64))))
    return {a.name: classes[:, i] for i, a in enumerate(model.schema)}


def differing_pairs(y: np.ndarray, rng: np.random.Generator, max_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """(sources, references): up to `max_pairs` faces in order, each with a random face of another label."""
    pairs = [(i, rng.choice(np.flatnonzero(y != y[i]))) for i in range(len(y)) if (y != y[i]).any()][:max_pairs]
    return tuple(np.array(pairs).T)


def judges(model, oracle, x: np.ndarray, labels: np.ndarray, max_pairs: int = 300) -> dict[str, dict]:
    """Per model attribute: the own classifier's accuracy on `x`, and how often it and the oracle call
    a transfer from a reference with another label the reference's class (see the module docstring)."""
    from tfattr.data import synthetic

    rng = np.random.default_rng(0)
    real = own_classifier_labels(model, x)
    out = {}
    for a in model.schema:
        column = synthetic.SCHEMA.index(a.name)
        y = labels[:, column]
        src, ref = differing_pairs(y, rng, max_pairs)
        swapped = batched(lambda s, r: model.transfer_from_reference(s, r, [a.name]), x[src], x[ref])
        target = y[ref]
        own = own_classifier_labels(model, swapped)[a.name] == target
        orc = oracle.predict_labels(swapped)[:, column] == target
        out[a.name] = {"pairs": len(src), "own_on_real": round(float(np.mean(real[a.name] == y)), 3),
                       "own_on_swap": round(float(own.mean()), 3), "oracle_on_swap": round(float(orc.mean()), 3),
                       "own_yes_oracle_no": round(float(np.mean(own & ~orc)), 3)}
    return out


def carriers(model, oracle, x: np.ndarray, labels: np.ndarray, max_pairs: int = 300) -> dict[str, dict]:
    """Per model attribute: oracle accuracy of transferring it alone, with all, and with all but it."""
    from tfattr.data import synthetic

    rng = np.random.default_rng(0)
    names = list(model.schema.names)
    out = {}
    for name in names:
        column = synthetic.SCHEMA.index(name)
        y = labels[:, column]
        src, ref = differing_pairs(y, rng, max_pairs)
        out[name] = {"pairs": len(src)}
        for key, moved in (("single", [name]), ("all", names), ("all_but", [n for n in names if n != name])):
            if not moved:
                continue
            swapped = batched(lambda s, r, moved=moved: model.transfer_from_reference(s, r, moved), x[src], x[ref])
            out[name][key] = round(float(np.mean(oracle.predict_labels(swapped)[:, column] == y[ref])), 3)
    return out


def discriminator_layers(model, x: np.ndarray) -> list[dict]:
    import keras

    d = model.networks["discriminator"]
    inner = [layer for layer in d.layers if not isinstance(layer, keras.layers.InputLayer)]
    outputs = keras.Model(d.inputs, [layer.output for layer in inner])(x[:200], training=False)
    rows = []
    for layer, out in zip(inner, outputs):
        row = {"layer": layer.name, "rms": round(float(np.sqrt(np.mean(np.square(out)))), 5)}
        if hasattr(layer, "kernel"):
            w = layer.normalized_kernel() if hasattr(layer, "normalized_kernel") else layer.kernel
            w = np.asarray(w)
            row["sigma"] = round(float(np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]), 3)
            if getattr(layer, "use_bias", False):
                row["max_abs_bias"] = round(float(np.abs(np.asarray(layer.bias)).max()), 4)
        rows.append(row)
    return rows


def main(argv):
    del argv
    from tfattr.data import synthetic
    from tfattr.metrics import oracle as oracle_lib
    from tfattr.training import loop

    model, step, _ = loop.load_model_from_run(FLAGS.run_dir, FLAGS.checkpoint)
    images, labels = oracle_lib.render_labelled(0, FLAGS.split, 0, FLAGS.num, model.image_size)
    x = oracle_lib.uint8_to_signed(images)
    oracle = oracle_lib.load_oracle()
    sections = set(FLAGS.sections)
    print(json.dumps({"run_dir": FLAGS.run_dir, "step": step}))
    if "reconstruction" in sections:
        rec = batched(model.reconstruct, x)
        real, recon = oracle_lib.accuracy(oracle, x, labels), oracle_lib.accuracy(oracle, rec, labels)
        r3 = lambda d: {k: round(v, 3) for k, v in d.items()}  # noqa: E731
        print(json.dumps({"reconstruction_l1": round(float(np.abs(rec - x).mean()), 4),
                          "oracle_real": r3(real), "oracle_reconstruction": r3(recon)}))
    if "probe" in sections:
        cut = 2 * len(x) // 3
        probe = {}
        for part, code in latent_parts(model, x).items():
            f = pooled(code)
            probe[part] = {}
            for a in model.schema:
                y = labels[:, synthetic.SCHEMA.index(a.name)]
                k = synthetic.SCHEMA[a.name].num_classes
                probe[part][a.name] = round(ridge_probe_accuracy(f[:cut], y[:cut], f[cut:], y[cut:], k), 3)
        print(json.dumps({"probe": probe}))
    if "judges" in sections:
        print(json.dumps({"judges": judges(model, oracle, x, labels)}))
    if "carriers" in sections:
        print(json.dumps({"carriers": carriers(model, oracle, x, labels)}))
    if "discriminator" in sections and "discriminator" in model.networks:
        print(json.dumps({"discriminator": discriminator_layers(model, x)}))


if __name__ == "__main__":
    flags.mark_flag_as_required("run_dir")
    app.run(main)
