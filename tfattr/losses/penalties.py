"""Critic regularisers that take the critic as a callable."""

import tensorflow as tf

from tfattr.losses._util import per_example_mean


def gradient_penalty(critic_fn, real, fake, target: float = 1.0, epsilon=None):
    """WGAN-GP penalty (||grad_x^ D(x^)||_2 - target)^2 at x^ = e*x + (1-e)*x~ (Gulrajani et al. 2017).

    Args:
      critic_fn: images `[B, H, W, C]` -> logits `[B]` or `[B, h, w, 1]` (patch logits are averaged
        per example before differentiating, so the penalty is the same for any patch count).
      real: real images `[B, H, W, C]`.
      fake: generated images, same shape.
      target: the wanted gradient norm.
      epsilon: optional `[B, 1, 1, 1]` interpolation weights in [0, 1]; uniform random when None.

    Returns:
      float32 `[B]`.
    """
    real = tf.convert_to_tensor(real)
    fake = tf.stop_gradient(tf.convert_to_tensor(fake))
    if epsilon is None:
        epsilon = tf.random.uniform([tf.shape(real)[0], 1, 1, 1], dtype=real.dtype)
    mixed = epsilon * real + (1.0 - epsilon) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        critic = per_example_mean(critic_fn(mixed))
    grads = tape.gradient(critic, mixed)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norm - target)
