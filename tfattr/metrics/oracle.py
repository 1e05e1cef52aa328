"""The oracle: a small CNN that reads every synthetic-bench attribute from a 64x64 render.

Attribute-transfer metrics ask "did the edit change the attribute, and only that one?". On the
synthetic bench the answer is judged by this classifier, trained on renders of train-split
identities and checked on held-out test-split identities (>= 98% per attribute). It has one softmax
head per `synthetic.SCHEMA` attribute.

Training (writes the packaged weights):
    python -m tfattr.metrics.oracle --out=tfattr/metrics/oracle_weights/bench64.weights.h5 \
        --steps=3000 --seed=0

Random horizontal flips are deliberately not used: gaze, pose, illumination and the contemptuous
expression have a left/right meaning.
"""

from __future__ import annotations

import os
import time

import numpy as np

from tfattr.data import synthetic

ORACLE_SIZE = 64
DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "oracle_weights", "bench64.weights.h5")
TRAIN_COMMAND = (
    "python -m tfattr.metrics.oracle --out=tfattr/metrics/oracle_weights/bench64.weights.h5 --steps=3000 --seed=0"
)


def build_oracle(schema=synthetic.SCHEMA):
    """The oracle network (untrained).

    A plain conv stack down to 4x4, then a dense layer over the flattened map: flattening keeps
    *where* things are (iris left/right, light side), which global pooling would blur.

    Args:
      schema: attributes to predict; one softmax head each (named after the attribute).

    Returns:
      keras.Model: float32 `[B, 64, 64, 3]` in [-1, 1] -> dict name -> probabilities `[B, K]`.
    """
    import keras
    from keras import layers

    inputs = keras.Input((ORACLE_SIZE, ORACLE_SIZE, 3), name="image")
    # A 5x5 stride-2 stem: at 64 px the iris is ~3 pixels wide, so the first layer must see
    # every pixel but need not keep full resolution; this halves the cost of the whole net.
    x = layers.Conv2D(24, 5, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for width, stride in ((32, 1), (48, 2), (64, 1), (96, 2), (96, 1), (128, 2)):
        x = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(192, activation="relu")(x)
    outputs = {a.name: layers.Dense(a.num_classes, activation="softmax", name=a.name)(x) for a in schema}
    return keras.Model(inputs, outputs, name="oracle")


def _to_model_input(images) -> np.ndarray:
    """Float images in [-1, 1] of any size -> float32 [N, 64, 64, 3]."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"oracle expects images [N, H, W, 3] in [-1, 1], got shape {images.shape}")
    if images.shape[1:3] != (ORACLE_SIZE, ORACLE_SIZE):
        images = tf.image.resize(images, (ORACLE_SIZE, ORACLE_SIZE), method="bilinear", antialias=True).numpy()
    return images


def uint8_to_signed(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1] (the model-batch convention)."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


class Oracle:
    """A trained oracle with numpy in, numpy out.

    Attributes:
      model: the keras model from `build_oracle`.
      schema: the attributes it predicts.
    """

    def __init__(self, model, schema=synthetic.SCHEMA, batch_size: int = 256):
        self.model, self.schema, self.batch_size = model, schema, batch_size

    def predict_proba(self, images) -> list[np.ndarray]:
        """Class probabilities per attribute.

        Args:
          images: float `[N, H, W, 3]` in [-1, 1], any size (resized to 64x64).

        Returns:
          List (schema order) of float32 `[N, K]` arrays.
        """
        x = _to_model_input(images)
        chunks = [self.model(x[i : i + self.batch_size], training=False) for i in range(0, len(x), self.batch_size)]
        return [
            np.concatenate([np.asarray(c[a.name]) for c in chunks], axis=0) if chunks else np.zeros((0, a.num_classes), np.float32)
            for a in self.schema
        ]

    def predict_labels(self, images) -> np.ndarray:
        """Predicted class indices, int32 `[N, G]` in schema order, for float images in [-1, 1]."""
        probs = self.predict_proba(images)
        return np.stack([p.argmax(-1) for p in probs], axis=-1).astype(np.int32)


def load_oracle(path: str | None = None) -> Oracle:
    """Loads oracle weights (default: the packaged `bench64.weights.h5`).

    Raises:
      FileNotFoundError: the weights file is missing; the message gives the training command.
    """
    path = path or DEFAULT_WEIGHTS
    if not os.path.exists(path):
        raise FileNotFoundError(f"oracle weights not found at {path}; create them with: {TRAIN_COMMAND}")
    model = build_oracle()
    model.load_weights(path)
    return Oracle(model)


def accuracy(oracle: Oracle, images, labels) -> dict[str, float]:
    """Per-attribute accuracy of the oracle on labelled images.

    Args:
      oracle: an `Oracle`.
      images: float `[N, H, W, 3]` in [-1, 1].
      labels: int `[N, G]` class indices in the oracle's schema order; -1 entries are ignored.

    Returns:
      Dict attribute name -> accuracy in [0, 1] (NaN for an attribute with no labelled example).
    """
    labels = np.asarray(labels)
    pred = oracle.predict_labels(images)
    out = {}
    for i, a in enumerate(oracle.schema):
        known = labels[:, i] >= 0
        out[a.name] = float(np.mean(pred[known, i] == labels[known, i])) if known.any() else float("nan")
    return out


def render_labelled(seed: int, split: str, start: int, count: int, size: int = ORACLE_SIZE):
    """Renders examples [start, start+count) of a bench split: (uint8 images, int32 labels)."""
    images = np.zeros((count, size, size, 3), np.uint8)
    labs = np.zeros((count, len(synthetic.SCHEMA)), np.int32)
    for idx, p, imgs in synthetic.render_split(seed, split, start, start + count, size):
        images[idx - start] = imgs
        labs[idx - start] = synthetic.labels(p)
    return images, labs


def train(out: str, steps: int, seed: int = 0, batch_size: int = 32, num_train: int = 30000,
          num_eval: int = 2000, learning_rate: float = 2e-3, init_from: str | None = None,
          log=print) -> dict[str, float]:
    """Trains the oracle on train-split renders and reports held-out (test-split) accuracy.

    Args:
      out: path of the `.weights.h5` file to write.
      steps: optimiser steps.
      seed: bench seed and initialisation seed.
      batch_size: batch size.
      num_train: train-split renders (rendered once, cycled in shuffled epochs).
      num_eval: test-split renders for the reported accuracy.
      learning_rate: peak AdamW learning rate (cosine decay to zero).
      init_from: optional `.weights.h5` to continue from (a second, shorter schedule).
      log: printing function.

    Returns:
      Dict attribute name -> held-out accuracy.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    t0 = time.time()
    train_x, train_y = render_labelled(seed, "train", 0, num_train)
    test_x, test_y = render_labelled(seed, "test", 0, num_eval)
    log(f"rendered {num_train} train + {num_eval} test images in {time.time() - t0:.1f}s")

    names = synthetic.SCHEMA.names

    def to_batch(x, y):
        x = tf.cast(x, tf.float32) / 127.5 - 1.0
        # Mild pixel noise: the oracle later judges generator outputs, which are never pixel-clean.
        x = x + tf.random.normal(tf.shape(x), stddev=0.03)
        return x, {n: y[:, i] for i, n in enumerate(names)}

    ds = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(num_train, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
    )
    model = build_oracle()
    if init_from:
        model.load_weights(init_from)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, alpha=0.0, warmup_target=learning_rate,
                                                      warmup_steps=max(1, steps // 20))
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss={n: keras.losses.SparseCategoricalCrossentropy() for n in names},
    )
    epochs = 10
    per_epoch = max(1, steps // epochs)
    t1 = time.time()
    model.fit(ds, steps_per_epoch=per_epoch, epochs=max(1, steps // per_epoch), verbose=2)
    log(f"trained {steps} steps in {time.time() - t1:.1f}s")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # Save from an uncompiled twin: a compiled model's weights file also carries the optimizer
    # state, which would triple the packaged file.
    clean = build_oracle()
    clean.set_weights(model.get_weights())
    clean.save_weights(out)
    acc = accuracy(Oracle(model), uint8_to_signed(test_x), test_y)
    log(f"held-out accuracy on {num_eval} test-split renders (identities disjoint from train):")
    for n, v in acc.items():
        log(f"  {n:20s} {v:.4f}")
    log(f"total wall time {time.time() - t0:.1f}s; weights {out} ({os.path.getsize(out) / 1e6:.2f} MB)")
    return acc


def main(argv):
    del argv
    from absl import flags

    f = flags.FLAGS
    train(f.out, f.steps, f.seed, f.batch_size, f.num_train, f.num_eval, f.learning_rate, f.init_from)


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("out", DEFAULT_WEIGHTS, "Output .weights.h5 path.")
    flags.DEFINE_integer("steps", 3000, "Training steps.")
    flags.DEFINE_integer("seed", 0, "Bench and initialisation seed.")
    flags.DEFINE_integer("batch_size", 32, "Batch size.")
    flags.DEFINE_integer("num_train", 30000, "Train-split renders (cycled).")
    flags.DEFINE_integer("num_eval", 2000, "Held-out test-split renders for the reported accuracy.")
    flags.DEFINE_float("learning_rate", 2e-3, "Peak learning rate.")
    flags.DEFINE_string("init_from", None, "Optional weights to continue training from.")
    app.run(main)
