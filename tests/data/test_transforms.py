"""Transforms give the same result eagerly and inside `tf.data.Dataset.map` (big_vision `tfrun` style)."""

import numpy as np
import pytest
import tensorflow as tf

from tfattr.data import transforms


def run_both(fn, x):
    """(eager result, result inside Dataset.map) as numpy arrays."""
    eager = fn(tf.constant(x)).numpy()
    mapped = next(iter(tf.data.Dataset.from_tensors(tf.constant(x)).map(fn))).numpy()
    return eager, mapped


def ramp(h=6, w=5, c=3):
    return np.arange(h * w * c, dtype=np.uint8).reshape(h, w, c)


def test_center_crop_exact_window():
    x = np.random.default_rng(0).integers(0, 255, (218, 178, 3), dtype=np.uint8)
    eager, mapped = run_both(lambda im: transforms.center_crop(im, 178), x)
    np.testing.assert_array_equal(eager, x[20:198])
    np.testing.assert_array_equal(eager, mapped)
    eager, mapped = run_both(lambda im: transforms.center_crop(im, (3, 2)), ramp())
    np.testing.assert_array_equal(eager, ramp()[1:4, 1:3])
    np.testing.assert_array_equal(eager, mapped)


def test_center_crop_batch_and_tensor_size():
    x = np.stack([ramp(), ramp() + 1])
    eager, mapped = run_both(lambda im: transforms.center_crop(im, tf.constant(4)), x)
    np.testing.assert_array_equal(eager, x[:, 1:5, 0:4])
    np.testing.assert_array_equal(eager, mapped)


def test_crop_box_exact_and_out_of_bounds():
    eager, mapped = run_both(lambda im: transforms.crop_box(im, 2, 1, 3, 4), ramp())
    np.testing.assert_array_equal(eager, ramp()[2:5, 1:5])
    np.testing.assert_array_equal(eager, mapped)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        transforms.crop_box(tf.constant(ramp()), 4, 0, 3, 3)


@pytest.mark.parametrize("method", ["bilinear", "area"])
def test_resize_shape_range_and_map_equivalence(method):
    x = np.random.default_rng(1).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    eager, mapped = run_both(lambda im: transforms.resize(im, 8, method), x)
    assert eager.shape == (8, 8, 3) and eager.dtype == np.float32
    assert eager.min() >= 0 and eager.max() <= 255
    np.testing.assert_allclose(eager, mapped, atol=1e-4)
    const = np.full((40, 30, 3), 77, np.uint8)
    np.testing.assert_allclose(transforms.resize(tf.constant(const), (5, 7), method).numpy(), 77, atol=1e-3)


def test_resize_antialiases_downscaling():
    # A 1-pixel checkerboard must average to grey; non-antialiased bilinear would sample it.
    checker = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    out = transforms.resize(tf.constant(checker), 8).numpy()
    np.testing.assert_allclose(out, 127.5, atol=3)


def test_resize_rejects_unknown_method():
    with pytest.raises(ValueError, match="valid methods"):
        transforms.resize(tf.zeros([4, 4, 3]), 2, method="lanczos7")


def test_signed_unit_range_and_inverse():
    x = np.array([[[0, 127, 255]]], np.uint8)
    eager, mapped = run_both(transforms.to_signed_unit_range, x)
    np.testing.assert_allclose(eager, [[[-1.0, 127 / 127.5 - 1, 1.0]]], atol=1e-6)
    np.testing.assert_array_equal(eager, mapped)
    assert eager.dtype == np.float32
    np.testing.assert_array_equal(transforms.from_signed_unit_range(tf.constant(eager)).numpy(), x)
    np.testing.assert_array_equal(transforms.to_uint8(tf.constant([[-3.0, 12.4, 300.0]])).numpy(), [[0, 12, 255]])


def test_random_flip_stateless():
    x = ramp()
    results = []
    for s in range(12):
        eager, mapped = run_both(lambda im: transforms.random_flip(im, [7, s]), x)
        np.testing.assert_array_equal(eager, mapped)
        np.testing.assert_array_equal(eager, transforms.random_flip(tf.constant(x), [7, s]).numpy())
        assert np.array_equal(eager, x) or np.array_equal(eager, x[:, ::-1])
        results.append(np.array_equal(eager, x))
    assert any(results) and not all(results)  # 12 seeds: both outcomes occur


def test_random_flip_batch_flips_images_independently():
    x = np.stack([ramp()] * 16)
    eager, mapped = run_both(lambda im: transforms.random_flip(im, [3, 4]), x)
    np.testing.assert_array_equal(eager, mapped)
    flipped = [np.array_equal(e, x[0, :, ::-1]) for e in eager]
    assert any(flipped) and not all(flipped)
