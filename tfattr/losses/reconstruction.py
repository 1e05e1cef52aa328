"""Pixel reconstruction losses."""

import tensorflow as tf

from tfattr.losses._util import per_example_mean


def l1(x, y):
    """Mean absolute error per example, `[B, ...]` x2 -> `[B]` (Zhang et al. 2019, Eq. 4)."""
    return per_example_mean(tf.abs(tf.convert_to_tensor(x) - tf.convert_to_tensor(y)))


def l2(x, y):
    """Mean squared error per example, `[B, ...]` x2 -> `[B]`."""
    return per_example_mean(tf.square(tf.convert_to_tensor(x) - tf.convert_to_tensor(y)))
