import tensorflow as tf


def per_example_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean over every axis but the first: `[B, ...]` -> `[B]` (a `[B]` input is returned as is)."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and x.shape.rank <= 1:
        return x
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)
