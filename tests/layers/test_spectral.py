import keras
import numpy as np
import tensorflow as tf

from tfattr.layers import blocks
from tfattr.layers.spectral import SpectralConv2D


def build(filters=6, kernel=3, seed=0):
    keras.utils.set_random_seed(seed)
    layer = SpectralConv2D(filters, kernel, padding="same")
    layer.build([None, 8, 8, 4])
    return layer


def top_singular_value(kernel, filters):
    return float(np.linalg.svd(np.reshape(kernel, [-1, filters]), compute_uv=False)[0])


def test_training_calls_converge_to_unit_spectral_norm():
    layer = build()
    layer.kernel.assign(layer.kernel * 3.0)
    stored = top_singular_value(layer.kernel.numpy(), 6)
    x = tf.random.normal([2, 8, 8, 4])
    for _ in range(30):  # one power iteration per training call
        layer(x, training=True)
    effective = layer.normalized_kernel(training=False).numpy()
    assert abs(top_singular_value(effective, 6) - 1.0) < 1e-3
    assert top_singular_value(layer.kernel.numpy(), 6) == stored  # the stored kernel is not rescaled


def test_gradient_flows_through_sigma():
    # W / sigma(W) does not change when W is scaled, so any loss's gradient is orthogonal to W.
    # keras.layers.SpectralNormalization's gradient (W treated as unconstrained) is not.
    layer = build(seed=1)
    x = tf.random.normal([2, 8, 8, 4], seed=3)
    for _ in range(30):
        layer(x, training=True)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, training=False) - 0.3))
    grad = tape.gradient(loss, layer.kernel).numpy()
    w = layer.kernel.numpy()
    cosine = float(np.sum(grad * w) / (np.linalg.norm(grad) * np.linalg.norm(w)))
    assert abs(cosine) < 1e-3, cosine


def test_inference_is_deterministic_and_leaves_u_alone():
    layer = build(seed=2)
    x = tf.random.normal([2, 8, 8, 4])
    u = layer.vector_u.numpy().copy()
    a, b = layer(x, training=False).numpy(), layer(x, training=False).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(layer.vector_u.numpy(), u)
    layer(x, training=True)
    assert not np.array_equal(layer.vector_u.numpy(), u)


def test_config_round_trip_and_blocks_wiring():
    layer = SpectralConv2D(4, 3, strides=2, power_iterations=2, name="d0")
    clone = SpectralConv2D.from_config(layer.get_config())
    assert clone.power_iterations == 2 and clone.strides == (2, 2)
    assert isinstance(blocks.conv(4, 3, spectral=True), SpectralConv2D)
    assert not isinstance(blocks.conv(4, 3), SpectralConv2D)
    try:
        blocks.conv(4, 3, spectral=True, transpose=True)
    except ValueError as e:
        assert "transposed" in str(e)
    else:
        raise AssertionError("spectral transposed convolution was accepted")
