"""Spectral normalisation as Miyato et al. 2018 define it (Alg. 1), for convolutions.

The forward pass uses W / sigma(W), sigma estimated by power iteration from a stored vector u,
and the gradient flows through sigma (u and v are constants of the step), as in Miyato et al.'s
Alg. 1 and PyTorch's `torch.nn.utils.spectral_norm`.

`keras.layers.SpectralNormalization` (Keras 3.15) differs: in training calls it *assigns*
W / sigma back into the wrapped kernel and then calls the layer on that variable, so the optimiser
updates W as if it were unconstrained and the next call projects it back (on the example of
tests/layers/test_spectral.py its gradient has cosine 0.86 with W; the true one is orthogonal to W).
Neither version rescues latent_swap's spectrally normalised discriminator on the 64 px bench: both
froze by ~250-450 steps (benchmarks/RESULTS.md, session 19; `latent_swap.Config.d_spectral_norm`).
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable("tfattr")
class SpectralConv2D(layers.Conv2D):
    """A `Conv2D` whose kernel is divided by its largest singular value (kernel reshaped to
    `[kh * kw * c_in, c_out]`), estimated with `power_iterations` steps per training call; u is
    updated only in training calls, so inference is deterministic."""

    def __init__(self, *args, power_iterations: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        if power_iterations < 1:
            raise ValueError(f"SpectralConv2D: power_iterations must be >= 1, got {power_iterations}")
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        # Averaged across replicas; its norm is irrelevant (every use normalises it).
        self.vector_u = self.add_weight(shape=(1, self.filters), initializer=keras.initializers.TruncatedNormal(stddev=1.0),
                                        trainable=False, aggregation="mean", name="vector_u")

    def normalized_kernel(self, training=False):
        w = ops.reshape(self.kernel, [-1, self.filters])
        u = self.vector_u.value
        for _ in range(self.power_iterations if training else 1):
            v = ops.normalize(ops.matmul(u, ops.transpose(w)))
            u = ops.normalize(ops.matmul(v, w))
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        if training:
            self.vector_u.assign(u)
        sigma = ops.matmul(ops.matmul(v, w), ops.transpose(u))[0, 0]
        return self.kernel / sigma

    def call(self, inputs, training=False):
        outputs = self.convolution_op(inputs, self.normalized_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}
