import numpy as np
import tensorflow as tf

from tfattr.layers.augment import random_translate


def shifted(image, dy, dx):
    """`image` moved down by dy and right by dx, zero fill."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_each_image_is_a_zero_filled_shift_of_itself_within_range():
    x = np.random.default_rng(0).uniform(-1, 1, [16, 9, 9, 3]).astype(np.float32) + 3.0  # no zeros in the input
    y = random_translate(tf.constant(x), 2, seed=[4, 5]).numpy()
    found = set()
    for xi, yi in zip(x, y):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if np.array_equal(yi, shifted(xi, dy, dx))]
        assert len(matches) == 1
        found.add(matches[0])
    assert len(found) > 4  # offsets differ between images


def test_zero_shift_is_identity_and_gradient_reaches_the_input():
    x = tf.random.normal([3, 8, 8, 2])
    assert random_translate(x, 0) is x
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = random_translate(x, 3, seed=[1, 1])
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    # Every kept pixel passes gradient 1, every pixel shifted out 0.
    assert set(np.unique(grad)) <= {0.0, 1.0}
    np.testing.assert_allclose(grad.sum(axis=(1, 2, 3)), (y.numpy() != 0).sum(axis=(1, 2, 3)))


def test_compiles_under_xla():
    x = tf.random.normal([2, 8, 8, 3])
    out = tf.function(lambda t: random_translate(t, 2, seed=[0, 1]), jit_compile=True)(x)
    np.testing.assert_array_equal(out.numpy(), random_translate(x, 2, seed=[0, 1]).numpy())
