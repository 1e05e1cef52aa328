"""The matmul transposed convolution equals Keras' Conv2DTranspose in value and gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfattr.layers.conv_transpose import MatmulConv2DTranspose


def _pair(filters, kernel, strides, size, use_bias=True, activation=None):
    x = tf.random.stateless_normal([2, size, size + 1, 5], seed=[kernel, strides])
    ref = keras.layers.Conv2DTranspose(filters, kernel, strides=strides, padding="same", use_bias=use_bias,
                                       activation=activation, bias_initializer="random_normal")
    ours = MatmulConv2DTranspose(filters, kernel, strides=strides, padding="same", use_bias=use_bias,
                                  activation=activation)
    ref(x)
    ours(x)
    ours.set_weights(ref.get_weights())
    return x, ref, ours


def _value_and_grads(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.sin(3.0 * y))  # non-linear, so dy is not a constant
    return [y] + tape.gradient(loss, [x] + layer.trainable_weights)


@pytest.mark.parametrize("kernel,strides", [(4, 2), (3, 2), (5, 2), (2, 2), (6, 3), (4, 4)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_keras_value_and_gradient(kernel, strides, use_bias):
    x, ref, ours = _pair(3, kernel, strides, 4, use_bias=use_bias, activation="tanh")
    assert ours._use_matmul  # 4x5 input: the matmul path
    for a, b in zip(_value_and_grads(ref, x), _value_and_grads(ours, x)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=2e-5, rtol=1e-5)


def test_large_inputs_and_other_settings_use_keras_path():
    _, _, ours = _pair(3, 4, 2, 16)
    assert not ours._use_matmul  # 16x17 > MAX_MATMUL_AREA
    valid = MatmulConv2DTranspose(3, 4, strides=2, padding="valid")
    valid(tf.zeros([1, 4, 4, 2]))
    assert not valid._use_matmul
    unknown = MatmulConv2DTranspose(3, 4, strides=2, padding="same")
    unknown.build((None, None, None, 2))
    assert not unknown._use_matmul


def test_under_xla_and_in_a_saved_model(tmp_path):
    x, ref, ours = _pair(4, 4, 2, 3)
    fn = tf.function(lambda v: ours(v), jit_compile=True)
    np.testing.assert_allclose(fn(x).numpy(), ref(x).numpy(), atol=2e-5)
    module = tf.Module()
    module.layer = ours
    module.f = tf.function(lambda v: ours(v), input_signature=[tf.TensorSpec([None, 3, 4, 5], tf.float32)])
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    np.testing.assert_allclose(loaded.f(x).numpy(), ref(x).numpy(), atol=2e-5)
