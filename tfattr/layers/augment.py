"""Differentiable augmentation of discriminator inputs (DiffAugment; Zhao et al. 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

The same random transformation family is applied to every image the discriminator sees, real and
generated, in both players' steps, and gradients flow through it to the generator. Made of pads and
gathers only, so it compiles under XLA.
"""

from __future__ import annotations

import tensorflow as tf


def random_translate(images: tf.Tensor, max_shift: int, seed=None) -> tf.Tensor:
    """Shift each image of `[B, H, W, C]` by its own integer offset in [-max_shift, max_shift] along
    each axis; uncovered pixels are 0 (mid-grey in [-1, 1] images). `max_shift=0` returns the input."""
    if max_shift <= 0:
        return images
    b = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    if seed is None:
        shifts = tf.random.uniform([2, b], -max_shift, max_shift + 1, tf.int32)
    else:
        shifts = tf.random.stateless_uniform([2, b], seed, -max_shift, max_shift + 1, tf.int32)
    padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    rows = tf.range(h)[None, :] + max_shift - shifts[0][:, None]  # [B, H] rows of the padded image
    cols = tf.range(w)[None, :] + max_shift - shifts[1][:, None]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)
