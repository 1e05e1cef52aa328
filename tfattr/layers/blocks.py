"""Convolution blocks shared by the models. Each helper builds layers for the functional API.

`norm` is one of "batch" (synchronised across replicas, so a multi-replica step equals a
single-device step), "instance" (`GroupNormalization(groups=-1)`), or "none"; `spectral=True` makes
the convolution a `spectral.SpectralConv2D` (Miyato et al.'s normalisation, gradient through sigma;
not available for transposed convolutions).
"""

from __future__ import annotations

import keras
from keras import layers

from tfattr.layers.conv_transpose import MatmulConv2DTranspose
from tfattr.layers.spectral import SpectralConv2D


def normalization(norm: str, name: str | None = None):
    if norm == "batch":
        # Per-replica batch statistics would make the result depend on the replica count.
        return layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5, name=name)
    if norm == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    if norm == "none":
        return None
    raise ValueError(f"unknown normalization {norm!r}; valid: batch, instance, none")


def conv(filters, kernel, strides=1, spectral=False, use_bias=True, transpose=False, name=None, padding="same"):
    if spectral and transpose:
        raise ValueError("blocks.conv: spectral normalisation is implemented for Conv2D only, not transposed convolutions")
    cls = MatmulConv2DTranspose if transpose else SpectralConv2D if spectral else layers.Conv2D
    return cls(filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
               kernel_initializer=keras.initializers.HeNormal(), name=name)


def conv_norm_act(x, filters, kernel, strides=1, norm="batch", activation="relu", spectral=False,
                  transpose=False, name=None):
    """conv -> norm -> activation. A normalised conv drops its bias (the norm's shift replaces it)."""
    norm_layer = normalization(norm, None if name is None else name + "_norm")
    x = conv(filters, kernel, strides, spectral, use_bias=norm_layer is None, transpose=transpose,
             name=name)(x)
    if norm_layer is not None:
        x = norm_layer(x)
    return activate(x, activation)


def patchgan_stack(x, num_layers, width, max_width, spectral=False, name="d_conv"):
    """StarGAN's discriminator trunk: `num_layers` stride-2 4x4 convs, widths doubling from `width`
    up to `max_width`, LeakyReLU 0.01, no normalisation; layers named `{name}0`, `{name}1`, ..."""
    for i in range(num_layers):
        x = conv_norm_act(x, min(width * 2**i, max_width), 4, strides=2, norm="none", activation="lrelu01",
                          spectral=spectral, name=f"{name}{i}")
    return x


def activate(x, activation):
    if activation is None:
        return x
    if activation == "lrelu":
        return layers.LeakyReLU(0.2)(x)
    if activation == "lrelu01":
        return layers.LeakyReLU(0.01)(x)
    return layers.Activation(activation)(x)


def residual_block(x, filters, norm="batch", spectral=False, name=None):
    """conv3-norm-relu-conv3-norm plus identity (Johnson et al. 2016, as in CycleGAN/StarGAN)."""
    h = conv_norm_act(x, filters, 3, norm=norm, spectral=spectral, name=None if name is None else name + "_a")
    h = conv_norm_act(h, filters, 3, norm=norm, activation=None, spectral=spectral,
                      name=None if name is None else name + "_b")
    return layers.Add()([x, h])


def resize_conv(x, filters, kernel=5, norm="instance", activation="relu", spectral=False, name=None):
    """Nearest-neighbour x2 upsampling then conv: no checkerboard (Odena et al. 2016)."""
    x = layers.UpSampling2D(2, interpolation="nearest")(x)
    return conv_norm_act(x, filters, kernel, norm=norm, activation=activation, spectral=spectral, name=name)
