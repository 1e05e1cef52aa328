"""Loss functions. Every function returns one value per example (shape `[batch]`); models reduce
them with `tf.nn.compute_average_loss` so the result is right under any `tf.distribute` strategy."""
