"""perceptual_identity_loss against hand-computed values; identity metric through the same loss."""

import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfattr.identity import perceptual
from tfattr.metrics import identity as identity_metric


def _net():
    """x -> conv 'f1' (1x1, fixed weights) -> 'f2' = 2 * f1 (fixed): features are computable by hand."""
    x = keras.Input([4, 4, 3])
    f1 = keras.layers.Conv2D(2, 1, use_bias=False, name="f1")(x)
    f2 = keras.layers.Rescaling(2.0, name="f2")(f1)
    model = keras.Model(x, f2)
    model.get_layer("f1").set_weights([np.array([[[[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]]], np.float32)])
    return model


def _features(x):
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    f1 = x @ w
    return f1.reshape(len(x), -1), (2 * f1).reshape(len(x), -1)


def test_squared_distance_matches_eq1_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, [3, 4, 4, 3]), rng.uniform(-1, 1, [3, 4, 4, 3])
    got = perceptual.perceptual_identity_loss(a, b, _net(), ["f1", "f2"], [0.3, 2.0]).numpy()
    (a1, a2), (b1, b2) = _features(a), _features(b)
    # Eq. 1: ||phi(a) - phi(b)||^2 / (2 C H W), weighted sum over layers (Eq. 2).
    want = 0.3 * ((a1 - b1) ** 2).sum(1) / (2 * a1.shape[1]) + 2.0 * ((a2 - b2) ** 2).sum(1) / (2 * a2.shape[1])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got.shape == (3,)
    np.testing.assert_allclose(perceptual.perceptual_identity_loss(a, a, _net(), ["f1"]).numpy(), 0.0, atol=1e-7)


def test_cosine_distance_and_identity_cosine():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1, 1, [5, 4, 4, 3]), rng.uniform(-1, 1, [5, 4, 4, 3])
    got = perceptual.perceptual_identity_loss(a, b, _net(), ["f2"], distance="cosine").numpy()
    (_, a2), (_, b2) = _features(a), _features(b)
    want_cos = (a2 * b2).sum(1) / np.linalg.norm(a2, axis=1) / np.linalg.norm(b2, axis=1)
    np.testing.assert_allclose(got, 1 - want_cos, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(perceptual.identity_cosine(a, b, _net(), "f2", batch_size=2), want_cos, rtol=1e-4)
    # The evaluation metric on the same embeddings gives the same cosine.
    emb = perceptual.embedding_fn(_net(), "f2")
    np.testing.assert_allclose(identity_metric.identity_cosine(emb(a), emb(b)), want_cos, rtol=1e-4)


def test_gradients_reach_images_and_errors_are_named():
    a = tf.Variable(tf.random.uniform([2, 4, 4, 3], -1, 1, seed=1))
    b = tf.random.uniform([2, 4, 4, 3], -1, 1, seed=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(perceptual.perceptual_identity_loss(a, b, _net(), ["f1"]))
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, a)))) > 0
    with pytest.raises(ValueError, match="valid"):
        perceptual.perceptual_identity_loss(b, b, _net(), ["nope"])
    with pytest.raises(ValueError, match="weights"):
        perceptual.perceptual_identity_loss(b, b, _net(), ["f1"], [1.0, 2.0])
    with pytest.raises(ValueError, match="distance"):
        perceptual.perceptual_identity_loss(b, b, _net(), ["f1"], distance="l1")


@pytest.mark.skipif(importlib.util.find_spec("face_recognition_models") is None,
                    reason="PyPI face-recognition-models not installed (pip install tfattr[identity])")
def test_default_identity_network_for_evaluation():
    fn = identity_metric.default_embedding_fn()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, [2, 32, 32, 3]).astype(np.float32)
    e = fn(x)
    assert e.shape == (2, 128)
    np.testing.assert_allclose(identity_metric.identity_cosine(e, e), 1.0, atol=1e-6)
    net = perceptual.default_identity_network(32)
    np.testing.assert_allclose(perceptual.identity_cosine(x, x[::-1], net),
                               identity_metric.identity_cosine(e, e[::-1]), atol=1e-5)
