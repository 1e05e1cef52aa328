"""A strided transposed convolution for small inputs, computed with matmuls instead of TF's conv kernels.

Why: TensorFlow's CPU kernels for `conv2d_transpose` (Conv2DBackpropInput) and for the
convolution gradients are very slow when the spatial size is small and the channel count large,
exactly the first layers of the decoders here (mask_transfer's 1x1 and 2x2 codes, bi_infogan's
generator). Measured on the project's idle 2-core CPU, batch 16, 4x4 kernel, stride 2, forward /
forward + backward in ms, `keras.layers.Conv2DTranspose` -> this layer (`benchmarks/speed.md`):

    1x1x412 -> 2x2x512      78 -> 4.5  / 109 -> 16
    2x2x512 -> 4x4x256     130 -> 13   / 165 -> 21
    4x4x256 -> 8x8x128      17 -> 12   /  31 -> 20
    8x8x128 -> 16x16x64     15 -> 11   /  24 -> 19
    16x16x64 -> 32x32x32   9.0 -> 13   /  18 -> 21   (TF's kernel is efficient from here on)

so the layer takes the matmul path for inputs up to 8x8 (`MAX_MATMUL_AREA`) and Keras' own call
above. It keeps Keras' `Conv2DTranspose` variables (same names and shapes, kernel
`[k, k, filters, in]`), so checkpoints, exports and weight files are interchangeable; outputs and
gradients agree with Keras' layer to float32 rounding (tests/layers/test_conv_transpose.py).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable("tfattr")
class MatmulConv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose`; with "same" padding, stride > 1 and inputs up to 8x8, computed with matmuls.

    Inputs larger than 8x8 (or of unknown size) and other settings (valid padding, dilation,
    output_padding, channels_first, stride 1) use the parent's `call`.
    """

    # Measured crossover (module docstring): the matmul form wins up to 8x8 inputs and loses ~15-40%
    # from 16x16 up, where TF's own kernel is efficient; larger inputs keep the parent's call.
    MAX_MATMUL_AREA = 64

    def _supported(self) -> bool:
        s = self.strides
        return (self.padding == "same" and s[0] == s[1] and s[0] > 1 and self.kernel_size[0] == self.kernel_size[1]
                and self.kernel_size[0] >= s[0] and self.data_format == "channels_last"
                and tuple(self.dilation_rate) == (1, 1) and self.output_padding is None)

    def build(self, input_shape):
        super().build(input_shape)
        h, w = input_shape[1], input_shape[2]
        self._use_matmul = (self._supported() and h is not None and w is not None
                            and h * w <= self.MAX_MATMUL_AREA)

    def call(self, inputs):
        if not self._use_matmul:
            return super().call(inputs)
        y = _transpose_conv(inputs, tf.cast(self.kernel, inputs.dtype), self.strides[0])
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.activation is not None:
            y = self.activation(y)
        return y


def _transpose_conv(x, kernel, s):
    """Transposed conv ("same", stride s) of x `[B,H,W,in]` with kernel `[k,k,out,in]`; `[B,sH,sW,out]`.

    Small inputs only (see the class): every product is a matmul, because TF's CPU convolutions of
    any kind (forward, backprop input or filter) are slow at 1x1 to 8x8 spatial size with hundreds
    of channels. Forward ("scatter" form): Z = x @ kernel^T gives every input pixel's k x k x out
    contribution; output pixel s*i + kh - p sums Z[i, kh], which, writing kh = s*q + r, is phase r of
    the coarse grid shifted by q, so k*k shifted adds and a `depth_to_space` assemble the output.
    The gradient is written out: the transposed conv is the adjoint of conv2d(., kernel, s, "SAME"),
    so with P = the k x k patches of dy (stride s, that padding), d/dx = P @ kernel and
    d/dkernel = P^T @ x.
    """
    k, out_channels = kernel.shape[0], kernel.shape[2]
    p = (k - s) // 2  # TF "SAME" for conv2d of size s*H with stride s: total k - s, before p
    taps = -(-k // s)  # coarse shifts q = kh // s in [0, taps)

    @tf.custom_gradient
    def op(x, kernel):
        batch, h, w, in_channels = tf.unstack(tf.shape(x))
        flat_kernel = tf.reshape(kernel, [k * k * out_channels, in_channels])  # rows (kh, kw, out)
        z = tf.matmul(tf.reshape(x, [-1, in_channels]), flat_kernel, transpose_b=True)
        z = tf.reshape(z, [batch, h, w, k, k, out_channels])
        phases = []
        for r in range(s):
            row = []
            for c in range(s):
                acc = 0.0
                for q in range((k - r + s - 1) // s):
                    for t in range((k - c + s - 1) // s):
                        acc += tf.pad(z[:, :, :, s * q + r, s * t + c],
                                      [[0, 0], [q, taps - 1 - q], [t, taps - 1 - t], [0, 0]])
                row.append(acc)
            phases.append(tf.stack(row, 3))  # [B, H', W', s(c), out]
        # [B, H', W', s(r), s(c), out] -> channels (r, c, out) -> interleave -> crop "same"
        full = tf.nn.depth_to_space(tf.reshape(tf.stack(phases, 3), [batch, h + taps - 1, w + taps - 1,
                                                                     s * s * out_channels]), s)
        y = full[:, p:p + s * h, p:p + s * w, :]

        def grad(dy):
            dy_padded = tf.pad(dy, [[0, 0], [p, k - s - p], [p, k - s - p], [0, 0]])
            patches = tf.image.extract_patches(dy_padded, [1, k, k, 1], [1, s, s, 1], [1, 1, 1, 1], "VALID")
            patches = tf.reshape(patches, [-1, k * k * out_channels])
            dx = tf.reshape(tf.matmul(patches, flat_kernel), tf.shape(x))
            dk = tf.matmul(patches, tf.reshape(x, [-1, in_channels]), transpose_a=True)
            return dx, tf.reshape(dk, tf.shape(kernel))

        return y, grad

    return op(x, kernel)
