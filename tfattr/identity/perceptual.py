"""Perceptual identity loss (Li et al. 2016, Eqs. 1-2) and identity cosine on any feature network.

`perceptual_identity_loss(a, b, network, layers, weights)` compares two image batches on named
layers of a functional Keras network (VGG-Face, dlib's ResNet, or a discriminator for DIAT-A's
adaptive loss, Eq. 12-13) and returns one value per example:

    sum_l  w_l * d_l(phi_l(a), phi_l(b))

with `d_l` = `1 / (2 C H W) * ||.||_F^2` (Eq. 1, distance="squared") or `1 - cosine` of the
flattened features (distance="cosine"; on the 128-D "embedding" layer this is 1 - the identity
cosine reported by evaluation). The same function serves DIAT's loss and the identity metric.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

_TAP_CACHE_ATTR = "_tfattr_feature_taps"


def feature_taps(network: keras.Model, layers: Sequence[str]) -> keras.Model:
    """A model with the same weights as `network` returning `{name: output}` for `layers`.

    Cached on the network, so repeated calls (every train step) reuse one model.

    Raises:
      ValueError: `network` is not functional, or a layer name is unknown (lists valid names).
    """
    layers = tuple(layers)
    cache = network.__dict__.setdefault(_TAP_CACHE_ATTR, {})
    if layers in cache:
        return cache[layers]
    try:
        inputs = network.inputs
    except AttributeError as e:
        raise ValueError(f"feature_taps: {network.name} is not a functional model") from e
    names = [l.name for l in network.layers]
    missing = [n for n in layers if n not in names]
    if missing:
        raise ValueError(f"feature_taps: {network.name} has no layer(s) {missing}; valid: {', '.join(names)}")
    outputs = {n: network.get_layer(n).output for n in layers}
    taps = keras.Model(inputs, outputs, name=f"{network.name}_taps")
    cache[layers] = taps
    return taps


def perceptual_identity_loss(images_a, images_b, network: keras.Model, layers: Sequence[str],
                             weights: Sequence[float] | None = None, distance: str = "squared",
                             training: bool = False):
    """Per-example weighted feature distance between two image batches (Li et al. 2016, Eq. 2).

    Args:
      images_a: float32 `[B, H, W, 3]` in [-1, 1] (e.g. the transform network's output T(x)).
      images_b: float32 `[B, H, W, 3]` in [-1, 1] (e.g. the input x).
      network: functional Keras model taking such images (see `feature_taps`).
      layers: names of the tapped layers (DIAT: the 4th and 5th conv layers).
      weights: one weight per layer; None = all 1.
      distance: "squared" (Eq. 1: ||phi(a) - phi(b)||^2 / (2 C H W)) or "cosine" (1 - cos of
        the flattened features).
      training: passed to the network (False keeps a frozen loss network in inference mode).

    Returns:
      float32 `[B]`; gradients flow to both image batches (and to `network` if trainable).

    Raises:
      ValueError: weights/layers length mismatch, unknown distance or layer, batch mismatch.
    """
    layers = list(layers)
    weights = [1.0] * len(layers) if weights is None else [float(w) for w in weights]
    if len(weights) != len(layers):
        raise ValueError(f"perceptual_identity_loss: {len(weights)} weights for {len(layers)} layers")
    if distance not in ("squared", "cosine"):
        raise ValueError(f"perceptual_identity_loss: distance must be 'squared' or 'cosine', got {distance!r}")
    images_a = tf.convert_to_tensor(images_a, tf.float32)
    images_b = tf.convert_to_tensor(images_b, tf.float32)
    if images_a.shape.rank != 4 or images_a.shape[1:] != images_b.shape[1:]:
        raise ValueError(f"perceptual_identity_loss: image shapes {images_a.shape} and {images_b.shape} "
                         "must be equal [B, H, W, 3]")
    taps = feature_taps(network, layers)
    batch = tf.shape(images_a)[0]
    # One pass over the concatenated batch: half the calls, and batch-dependent layers see both.
    feats = taps(tf.concat([images_a, images_b], axis=0), training=training)
    total = tf.zeros([batch], tf.float32)
    for name, w in zip(layers, weights):
        f = tf.cast(feats[name], tf.float32)
        f = tf.reshape(f, [tf.shape(f)[0], -1])
        fa, fb = f[:batch], f[batch:]
        if distance == "squared":
            d = 0.5 * tf.reduce_mean(tf.square(fa - fb), axis=1)
        else:
            d = 1.0 - tf.reduce_sum(tf.math.l2_normalize(fa, 1, 1e-12) * tf.math.l2_normalize(fb, 1, 1e-12), 1)
        total += w * d
    return total


def identity_cosine(images_a, images_b, network: keras.Model, layer: str = "embedding", batch_size: int = 64) -> np.ndarray:
    """Per-pair identity cosine similarity on `layer` (float64 `[N]`), batched.

    Evaluation's identity score (tfattr.metrics.identity) through `perceptual_identity_loss`:
    cos = 1 - loss(distance="cosine").
    """
    a = np.asarray(images_a, np.float32)
    b = np.asarray(images_b, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"identity_cosine: shapes {a.shape} and {b.shape} must be equal")
    out = [1.0 - perceptual_identity_loss(a[i:i + batch_size], b[i:i + batch_size], network, [layer],
                                          distance="cosine").numpy()
           for i in range(0, len(a), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros([0])


def embedding_fn(network: keras.Model, layer: str = "embedding"):
    """`images [N, H, W, 3] in [-1, 1] -> [N, D]` features of `layer` (for tfattr.metrics.identity)."""
    taps = feature_taps(network, [layer])

    @tf.function(reduce_retracing=True)
    def run(x):
        return taps(x, training=False)[layer]

    def fn(images):
        x = tf.convert_to_tensor(np.asarray(images, np.float32))
        f = run(x)
        return tf.reshape(f, [tf.shape(f)[0], -1]).numpy()

    return fn


def default_identity_network(input_size: int | None = None):
    """dlib's face-recognition ResNet if `face-recognition-models` is installed, else None.

    Args:
      input_size: the images' side (resized to 150 inside); None = 150.
    """
    from tfattr.identity import dlib_resnet

    try:
        path = dlib_resnet.default_weights_path()
    except FileNotFoundError:
        return None
    return dlib_resnet.load_dlib_resnet(path, input_size=input_size or dlib_resnet.INPUT_SIZE)
