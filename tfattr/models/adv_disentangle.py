"""adv_disentangle: disentangled, generalizable attribute codes (Oldfield et al.).

Paper: ../shared/papers/adv_disentangle__oldfield_disentangled_generalizable.txt (Sec. II, IV).

M + 1 encoders map an image to one spatial code per categorical attribute (z_1..z_M) plus a code
z_0 for everything else ("rest": identity and unmodelled factors). A decoder turns the
depth-concatenated codes back into an image. M shallow image classifiers C_m (Table II) end in a
dense layer whose input has exactly the codes' shape, so the same dense layer classifies a code.

Per replica batch of b images x with labels y (Sec. II-B to II-D, Eq. 8-9):
  z_m = E_m(x);  x_rec = Dec(z_0, z_1..z_M);  x~ = Dec(z_0, z_1[r_1], .., z_M[r_M])   (Eq. 5)
  L_G = -D(x~) + lambda_dis L_dis + lambda_cls L_cls^x + lambda_cls_syn L_cls^x~ + lambda_rec |x - x_rec|
        L_cls^x  = mean_m -log C_m(y_m | z_m)                     (Eq. 3, dense head on the code)
        L_dis    = mean_{m=0..M} mean_{m' != m} CE(uniform, C_m'(z_m))  (Eq. 4)
        L_cls^x~ = mean_m -log C_m(y_m[r_m] | x~)                 (Eq. 6, full image classifier)
  L_D = D(x~) - D(x) + lambda_gp GP                                (Eq. 9, WGAN-GP)
  L_C = mean_m -log C_m(y_m | x)                                   (classifiers train on real images)
        [+ lambda_c_fake mean_m CE(uniform, C_m(x~))]              (option, not in the paper)

Codes are ordered [z_1 .. z_M, z_0]: index m < M is attribute m of the schema, the last is "rest".
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfattr.data.attributes import Schema
from tfattr.layers import blocks
from tfattr.losses import adversarial, penalties, reconstruction
from tfattr.models import base

REST = "rest"


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters. Defaults follow Oldfield et al., Sec. II-E, Tables I-II and Sec. IV-A."""

    enc_width: int = 32  # Table I: enc-1 32, enc-2 64, enc-3 128 filters (code channels = 4 * enc_width)
    # Table I: "dec-res-{1..6}" at 128 * (M + 1) channels; 0 = that width (the concatenated codes).
    dec_width: int = 0
    num_res_blocks: int = 6
    # Table I's dec-1/dec-2 resize to 4x and convolve with stride 2 (net 2x). False: resize 2x and a
    # stride-1 conv, Odena et al.'s resize-convolution [16] at a quarter of the cost (CPU demos).
    dec_resize_stride2: bool = True
    # Channels of the first upsampling layer (the second has half). 0 = Table I's dec-1 / dec-2, i.e.
    # 2 * enc_width and enc_width (64 / 32 in the paper). With the CPU demo's enc_width of 8 that is
    # 16 / 8 channels at 32 and 64 px, the thinnest part of the network, and the reconstruction's
    # sharpness caps transfer: session 7's 800-step probe with 32 / 16 kept the expression in 52% of
    # reconstructions instead of 42% (benchmarks/RESULTS.md).
    dec_up_width: int = 0
    c_width: int = 64  # Table II block-1 filters; block-2 has the code's channel count (Sec. II-E)
    d_width: int = 64  # deeper PatchGAN of StarGAN [4]: 64, 128, ... doubling per stride-2 conv
    d_max_width: int = 2048
    d_layers: int = 0  # 0: log2(image_size) - 1 stride-2 convs, i.e. StarGAN's 6 at 128 px
    lambda_rec: float = 10.0  # Sec. IV-A
    lambda_gp: float = 10.0  # Sec. IV-A
    lambda_adv: float = 1.0  # Eq. 8 sums the terms; its lambda_i are not given, so 1
    lambda_dis: float = 1.0  # Sec. IV-B ablations compare 1 and 0
    lambda_cls: float = 1.0  # Eq. 3 weight
    lambda_cls_syn: float = 1.0  # Eq. 6 weight
    # Not given in the paper; StarGAN [4], whose discriminator and WGAN-GP setting it adopts, uses
    # Adam(1e-4, 0.5, 0.999). One critic and one generator update per step: the per-step G update
    # keeps the step a single XLA program (no data-dependent branch around an optimizer).
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    lr_c: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    # Label-mean codes (Sec. IV-D, label-based transfer): the expected code of each class, tracked
    # during training as a running mean (cumulative until ~1/(1-decay) examples, then an
    # exponential average so it follows the moving encoders); `compute_label_means` recomputes it
    # exactly over a dataset with the final encoders.
    label_mean_decay: float = 0.99
    # Normalisation of the encoders and the decoder. Table I: instance norm everywhere. Measured on
    # the bench (flat-coloured backgrounds and skin, 64 px, demo widths): an auto-encoder with only
    # the reconstruction loss stays at L1 0.225 after 250 steps and never gets the background colour
    # right, because instance norm of the first 7x7 conv keeps only each channel's spatial pattern,
    # not its level; "batch" or "none" keep absolute colour (see benchmarks/RESULTS.md).
    norm: str = "instance"
    # Not in the paper (Sec. II-D trains C_m on real images only): weight of a term that trains each
    # C_m to give the uniform posterior (Eq. 4's target) on the synthesized images x~, as CatGAN's
    # classifier is trained to be uncertain on generated samples. A classifier that only ever saw
    # real faces accepted 0.94 of the bench's expression swaps that the oracle rejects (0.74):
    # Eq. 6 was satisfied by cues off the image manifold. With it (1) and lambda_cls_syn=3, resumed
    # from the demo run's 12,500-step plateau, expression swap accuracy rose from 0.78 to 0.86-0.89
    # and gaze from 0.64 to 0.77-0.82 (benchmarks/RESULTS.md, session 9). 0 = the paper.
    lambda_c_fake: float = 0.0
    # Not in the paper: > 0 keeps an exponential moving average of the encoders' and decoder's
    # weights with this momentum (Keras' optimizer EMA, updated after every generator step), which
    # evaluation and export use (`load_model_from_run(average_weights=True)`); training itself is
    # unchanged. Averaging the generator over the last ~1/(1 - momentum) steps is the usual cure for
    # an adversarial game that oscillates (Karras et al. 2018, Yazici et al. 2019): on the bench,
    # expression swap accuracy moved by +-2-3 points between checkpoints 500 steps apart (session 9).
    # Measured (RESULTS.md, session 10): the average covers trainable weights only, so the batch-norm
    # statistics in the checkpoint belong to the raw weights. Evaluated as saved, the average was
    # 2-12 points worse than the raw weights at 2,000-4,000 steps. With the statistics re-estimated
    # it was equal at 4,000 and +1 point at 6,000; loading and export now re-estimate them
    # (AttributeTransferModel.standing_batch_norm).
    # Set it from step 0: resuming a run that had no average starts the average from zeros. The
    # label-mean codes are running means of the raw encoders' codes; `compute_label_means`
    # recomputes them with the averaged encoders.
    ema_momentum: float = 0.0


def code_shape(config: Config, image_size: int) -> tuple[int, int, int]:
    return image_size // 4, image_size // 4, 4 * config.enc_width


def build_networks(config: Config, schema: Schema, image_size: int) -> dict[str, keras.Model]:
    if image_size % 4:
        raise ValueError(f"adv_disentangle: image_size must be a multiple of 4, got {image_size}")
    bad = [a.name for a in schema if a.binary]
    if bad:
        raise ValueError(f"adv_disentangle: attributes must be categorical (softmax classes); binary: {bad}. "
                         "Encode a binary attribute as a 2-class categorical one.")
    if REST in schema.names:
        raise ValueError(f"adv_disentangle: attribute name {REST!r} is reserved for the rest code z_0")
    if config.norm not in ("instance", "batch", "none"):
        raise ValueError(f"adv_disentangle: norm must be instance, batch or none, got {config.norm!r}")
    if not 0.0 <= config.ema_momentum < 1.0:
        raise ValueError(f"adv_disentangle: ema_momentum must be in [0, 1) (0 = no average), got {config.ema_momentum}")
    norm = config.norm
    w = config.enc_width
    h, _, c = code_shape(config, image_size)
    num_codes = len(schema) + 1
    names = schema.names + [REST]

    # Table I encoders, one per attribute plus z_0. Same-padding replaces r_pad(3): equal output size.
    x_in = keras.Input([image_size, image_size, 3], name="image")
    codes = {}
    for name in names:
        t = blocks.conv_norm_act(x_in, w, 7, norm=norm, name=f"enc_{name}_1")
        t = blocks.conv_norm_act(t, 2 * w, 3, strides=2, norm=norm, name=f"enc_{name}_2")
        codes[name] = blocks.conv_norm_act(t, 4 * w, 3, strides=2, norm=norm, name=f"enc_{name}_3")
    encoder = keras.Model(x_in, codes, name="encoder")

    z_in = keras.Input([h, h, num_codes * c], name="codes")
    dec_width = config.dec_width or num_codes * c
    t = z_in if dec_width == num_codes * c else blocks.conv_norm_act(z_in, dec_width, 1, norm=norm, name="dec_in")
    for i in range(config.num_res_blocks):
        t = blocks.residual_block(t, dec_width, norm=norm, name=f"dec_res{i + 1}")
    up = config.dec_up_width or 2 * w
    for i, filters in enumerate((up, max(1, up // 2))):
        if config.dec_resize_stride2:
            t = layers.UpSampling2D(4, interpolation="nearest")(t)
            t = blocks.conv_norm_act(t, filters, 3, strides=2, norm=norm, name=f"dec_{i + 1}")
        else:
            t = blocks.resize_conv(t, filters, 3, norm=norm, name=f"dec_{i + 1}")
    x_out = layers.Conv2D(3, 7, padding="same", activation="tanh", name="dec_3")(t)
    decoder = keras.Model(z_in, x_out, name="decoder")

    # Table II classifiers; the dense heads are shared with `latent_classifier`, which applies them
    # to codes (Sec. II-E: enc-3 output has the shape of the input to class-logits).
    heads = {a.name: layers.Dense(a.num_classes, name=f"cls_{a.name}_logits") for a in schema}
    x_c = keras.Input([image_size, image_size, 3], name="image")
    logits = {}
    for a in schema:
        t = blocks.conv_norm_act(x_c, config.c_width, 4, strides=2, norm="none", activation="lrelu",
                                 name=f"cls_{a.name}_1")
        t = blocks.conv_norm_act(t, c, 4, strides=2, norm="none", activation="lrelu", name=f"cls_{a.name}_2")
        logits[a.name] = heads[a.name](layers.Flatten()(t))
    classifier = keras.Model(x_c, logits, name="classifier")
    z_c = keras.Input([h, h, c], name="code")
    flat = layers.Flatten()(z_c)
    latent_classifier = keras.Model(z_c, {n: heads[n](flat) for n in schema.names}, name="latent_classifier")

    d_layers = config.d_layers or max(1, int(math.log2(image_size)) - 1)
    x_d = keras.Input([image_size, image_size, 3], name="image")
    t = blocks.patchgan_stack(x_d, d_layers, config.d_width, config.d_max_width)
    discriminator = keras.Model(x_d, blocks.conv(1, 3, name="adv")(t), name="discriminator")
    return {"encoder": encoder, "decoder": decoder, "classifier": classifier,
            "latent_classifier": latent_classifier, "discriminator": discriminator}


def uniform_target_loss(logits) -> tf.Tensor:
    """Cross-entropy between the uniform distribution and softmax(logits), per example (Eq. 4 summand).

    -1/K sum_i log p_i = log K + KL(u || p): minimal, log K, exactly at uniform posteriors, where the
    posterior entropy is maximal.

    Args:
      logits: float `[B, K]`.

    Returns:
      float32 `[B]`.
    """
    return -tf.reduce_mean(tf.nn.log_softmax(logits, axis=-1), axis=-1)


def softmax_entropy(logits) -> tf.Tensor:
    """Entropy (nats) of softmax(logits) `[B, K]` -> `[B]`."""
    logp = tf.nn.log_softmax(logits, axis=-1)
    return -tf.reduce_sum(tf.exp(logp) * logp, axis=-1)


def offsets_to_permutations(offsets) -> tf.Tensor:
    """Per-attribute partner offsets `[B, M]` (partner of i is i + offset) -> indices `[M, B]`.

    Offsets rather than indices keep a fixed shuffle meaningful whatever the replica split.
    """
    offsets = tf.cast(offsets, tf.int32)
    return tf.transpose(tf.range(tf.shape(offsets)[0])[:, None] + offsets)


class Model(base.AttributeTransferModel):
    """adv_disentangle trainer and its operations (transfer, mixture, interpolation, label codes)."""

    LOSS_NAMES = ("g/adv", "g/rec", "g/cls", "g/cls_syn", "g/dis", "d/adv", "d/gp", "c/cls",
                  "c/fake", "c/acc", "z/acc", "z/entropy_other")
    OPTIMIZER_GROUPS = {"g": ("encoder", "decoder"), "d": ("discriminator",), "c": ("classifier",)}
    CAPABILITIES = ("reference_transfer", "label_translation", "latent_posteriors", "encodings")
    DEFAULT_SIGNATURE = "transfer"

    def __init__(self, networks, config: Config, schema: Schema, image_size: int, **kwargs):
        super().__init__(networks, config, schema, image_size, **kwargs)
        self.num_attributes = len(schema)
        self.code_names = tuple(schema.names) + (REST,)
        self.code_shape = code_shape(config, image_size)
        self.num_classes = [a.num_classes for a in schema]
        d = int(np.prod(self.code_shape))
        self.label_means = [self.add_weight(shape=(k, d), initializer="zeros", trainable=False,
                                            aggregation="only_first_replica", name=f"label_mean_{a.name}")
                            for a, k in zip(schema, self.num_classes)]
        self.label_counts = [self.add_weight(shape=(k,), initializer="zeros", trainable=False,
                                             aggregation="only_first_replica", name=f"label_count_{a.name}")
                             for a, k in zip(schema, self.num_classes)]
        # Checkpoints track variables held directly as attributes (not inside a list).
        for a, mean, count in zip(schema, self.label_means, self.label_counts):
            setattr(self, f"label_mean_{a.name}", mean)
            setattr(self, f"label_count_{a.name}", count)

    def default_optimizers(self):
        c = self.config
        ema = {"use_ema": True, "ema_momentum": c.ema_momentum} if c.ema_momentum > 0 else {}
        return {g: keras.optimizers.Adam(lr, beta_1=c.beta_1, beta_2=c.beta_2, **(ema if g == "g" else {}))
                for g, lr in (("g", c.lr_g), ("d", c.lr_d), ("c", c.lr_c))}

    # ---- codes --------------------------------------------------------------------------------
    def encode(self, images, training=False) -> list:
        """Images `[B, S, S, 3]` -> list of M + 1 codes `[B, S/4, S/4, C]`, ordered [z_1..z_M, z_0]."""
        out = self.encoder(images, training=training)
        return [out[n] for n in self.code_names]

    def decode(self, codes, training=False):
        return self.decoder(tf.concat(list(codes), axis=-1), training=training)

    def reconstruct(self, images, training=False):
        return self.decode(self.encode(images, training), training)

    def code_mask(self, names) -> np.ndarray:
        """Attribute names (schema names or "rest") -> `[M + 1]` float mask over codes."""
        row = np.zeros([len(self.code_names)], np.float32)
        for n in names:
            if n not in self.code_names:
                raise ValueError(f"unknown code {n!r}; valid: {', '.join(self.code_names)}")
            row[self.code_names.index(n)] = 1.0
        return row

    @staticmethod
    def _select(source_codes, other_codes, mask):
        """Code m of example i from `other_codes` where mask[i, m] = 1, else from `source_codes`."""
        mask = tf.cast(mask, tf.float32)
        # (1-m)*a + m*b is exact at m in {0, 1}, so a transfer copies a code bit for bit.
        return [(1.0 - mask[:, m, None, None, None]) * a + mask[:, m, None, None, None] * b
                for m, (a, b) in enumerate(zip(source_codes, other_codes))]

    def transfer(self, source, reference, swap_attributes, training=False):
        """Source images with the codes selected by `swap_attributes` (`[B, M + 1]` in {0, 1}, last
        column = rest/identity) taken from `reference` (no labels needed, Sec. IV-D)."""
        return self.decode(self._select(self.encode(source, training), self.encode(reference, training),
                                        swap_attributes), training)

    def transfer_from_reference(self, source, reference, attribute_names):
        mask = np.tile(self.code_mask(attribute_names), [int(tf.shape(source)[0]), 1])
        return self.transfer(source, reference, tf.constant(mask))

    def mix(self, source, references, weights, swap_attributes, training=False):
        """Convex mixture of K reference codes (Eq. 11) for the selected codes.

        Args:
          source: `[B, S, S, 3]`.
          references: `[B, K, S, S, 3]`.
          weights: `[B, K]`, alpha_k >= 0; normalised to sum 1 (Eq. 11's constraint).
          swap_attributes: `[B, M + 1]` in {0, 1}: the codes replaced by the mixture.
        """
        weights = tf.convert_to_tensor(weights, tf.float32)
        with tf.control_dependencies([tf.debugging.assert_non_negative(
                weights, message="mix: weights (alpha) must be >= 0 (Eq. 11)")]):
            weights = weights / tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1e-12)
        references = tf.convert_to_tensor(references, tf.float32)
        b, k = tf.shape(references)[0], tf.shape(references)[1]
        ref_codes = self.encode(tf.reshape(references, [b * k, self.image_size, self.image_size, 3]), training)
        mixed = [tf.einsum("bk,bkhwc->bhwc", weights, tf.reshape(z, [b, k, *self.code_shape])) for z in ref_codes]
        return self.decode(self._select(self.encode(source, training), mixed, swap_attributes), training)

    def interpolate(self, source, reference, alpha, swap_attributes, training=False):
        """Eq. 12: selected codes alpha * z(reference) + (1 - alpha) * z(source); alpha `[B]`."""
        alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1])
        return self.decode(self._select(self.encode(source, training), self.encode(reference, training),
                                        tf.cast(swap_attributes, tf.float32) * alpha), training)

    def synthesize(self, images, permutations, training=False):
        """Eq. 5: decode (z_0, z_1[r_1], .., z_M[r_M]) for index vectors `permutations` `[M, B]`."""
        codes = self.encode(images, training)
        return self.decode(self._shuffle(codes, permutations), training)

    @staticmethod
    def _shuffle(codes, permutations):
        return [tf.gather(z, permutations[m]) for m, z in enumerate(codes[:-1])] + [codes[-1]]

    def class_indices(self, attributes) -> list:
        """Multi-hot `[B, A]` -> per attribute int32 class indices `[B]`."""
        attributes = tf.cast(attributes, tf.float32)
        return [tf.argmax(attributes[:, s:e], axis=1, output_type=tf.int32) for s, e in self.schema.column_slices]

    def label_code(self, attribute: int, classes):
        """Label-mean code(s) of `attribute` (index) for int classes `[B]` -> `[B, h, w, C]`."""
        return tf.reshape(tf.gather(self.label_means[attribute], classes), [-1, *self.code_shape])

    def translate(self, images, target_attributes, training=False):
        """Label-based transfer: code m becomes the training mean code of the target class where the
        target class differs from what C_m reads in the source's code; codes already of the target
        class stay, so their intensity is preserved (Sec. IV-C/D)."""
        codes = self.encode(images, training)
        out = []
        for m, cls in enumerate(self.class_indices(target_attributes)):
            current = tf.argmax(self.latent_classifier(codes[m])[self.schema.names[m]], axis=1, output_type=tf.int32)
            keep = tf.cast(tf.equal(current, cls), tf.float32)[:, None, None, None]
            out.append(keep * codes[m] + (1.0 - keep) * self.label_code(m, cls))
        return self.decode(out + [codes[-1]], training)

    def latent_posteriors(self, images):
        """{code name: {attribute: softmax(C_attribute(z_code)) [N, K]}} (Fig. 5)."""
        codes = self.encode(images)
        out = {}
        for name, z in zip(self.code_names, codes):
            logits = self.latent_classifier(z)
            out[name] = {a: tf.nn.softmax(logits[a]) for a in self.schema.names}
        return out

    def attribute_encodings(self, images):
        """{code name: flattened code [N, D]} (Hopkins statistic, Table III)."""
        codes = self.encode(images)
        return {n: tf.reshape(z, [tf.shape(z)[0], -1]) for n, z in zip(self.code_names, codes)}

    def compute_label_means(self, dataset, max_batches: int | None = None) -> None:
        """Sets the label-mean codes to the exact per-class mean code over `dataset` batches."""
        d = int(np.prod(self.code_shape))
        sums = [np.zeros([k, d], np.float64) for k in self.num_classes]
        counts = [np.zeros([k], np.float64) for k in self.num_classes]
        for i, batch in enumerate(dataset):
            if max_batches is not None and i >= max_batches:
                break
            codes = self.encode(batch["image"])
            for m, cls in enumerate(self.class_indices(batch["attributes"])):
                onehot = tf.one_hot(cls, self.num_classes[m]).numpy().astype(np.float64)
                sums[m] += onehot.T @ tf.reshape(codes[m], [-1, d]).numpy().astype(np.float64)
                counts[m] += onehot.sum(0)
        for m in range(self.num_attributes):
            seen = counts[m] > 0
            mean = self.label_means[m].numpy()
            mean[seen] = (sums[m][seen] / counts[m][seen, None]).astype(np.float32)
            self.label_means[m].assign(mean)
            self.label_counts[m].assign(counts[m].astype(np.float32))

    # ---- training -----------------------------------------------------------------------------
    def _class_ce(self, logits_by_name, classes):
        """Mean over attributes of softmax CE: `{name: [B, K]}`, list of `[B]` classes -> `[B]`."""
        terms = [tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits_by_name[n])
                 for n, y in zip(self.schema.names, classes)]
        return tf.add_n(terms) / float(len(terms))

    def _latent_terms(self, codes, classes):
        """Eq. 3 (classification of z_m by C_m), Eq. 4 (uniform posteriors of C_m' on z_m, m' != m,
        averaged over the M + 1 encoders), plus diagnostics; all `[B]`."""
        b = tf.shape(codes[0])[0]
        stacked = self.latent_classifier(tf.concat(codes, axis=0), training=True)  # every head on every code
        cls_terms, dis_terms, acc_terms, ent_terms = [], [], [], []
        for m in range(len(self.code_names)):
            others = []
            for j, name in enumerate(self.schema.names):
                logits = stacked[name][m * b:(m + 1) * b]
                if j == m:
                    cls_terms.append(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes[j], logits=logits))
                    acc_terms.append(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), classes[j]),
                                             tf.float32))
                else:
                    others.append(uniform_target_loss(logits))
                    ent_terms.append(softmax_entropy(logits) / math.log(self.num_classes[j]))
            if others:
                dis_terms.append(tf.add_n(others) / float(len(others)))
        mean = lambda t: tf.add_n(t) / float(len(t)) if t else tf.zeros([b])  # noqa: E731
        return mean(cls_terms), mean(dis_terms), mean(acc_terms), mean(ent_terms)

    def _update_label_means(self, codes, classes):
        ctx = tf.distribute.get_replica_context()
        d = int(np.prod(self.code_shape))
        for m in range(self.num_attributes):
            onehot = tf.one_hot(classes[m], self.num_classes[m])
            sums = tf.matmul(onehot, tf.reshape(tf.stop_gradient(codes[m]), [-1, d]), transpose_a=True)
            n = tf.reduce_sum(onehot, axis=0)
            if ctx is not None and ctx.num_replicas_in_sync > 1:
                sums, n = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [sums, n])
            count = self.label_counts[m]
            rate = tf.where(n > 0, tf.maximum(1.0 - self.config.label_mean_decay, n / tf.maximum(count + n, 1.0)), 0.0)
            batch_mean = sums / tf.maximum(n, 1.0)[:, None]
            self.label_means[m].assign(self.label_means[m] + rate[:, None] * (batch_mean - self.label_means[m]))
            count.assign(count + n)

    def _permutations(self, batch, b):
        if "shuffle_offset" in batch:
            return offsets_to_permutations(batch["shuffle_offset"])
        # Eq. 5: an independent random shuffle of each attribute's codes along the batch.
        return tf.argsort(tf.random.uniform([self.num_attributes, b]), axis=1)

    def train_step(self, batch):
        x = batch["image"]
        b = tf.shape(x)[0]
        classes = self.class_indices(batch["attributes"])
        perms = self._permutations(batch, b)
        shuffled_classes = [tf.gather(y, perms[m]) for m, y in enumerate(classes)]
        c = self.config

        with tf.GradientTape() as g_tape:
            codes = self.encode(x, training=True)
            both = self.decoder(tf.concat([tf.concat(codes, -1), tf.concat(self._shuffle(codes, perms), -1)], 0),
                                training=True)
            x_rec, x_syn = both[:b], both[b:]
            g_rec = reconstruction.l1(x, x_rec)
            g_cls, g_dis, z_acc, z_ent = self._latent_terms(codes, classes)
            g_cls_syn = self._class_ce(self.classifier(x_syn, training=True), shuffled_classes)
            g_adv = adversarial.wasserstein_generator_loss(self.discriminator(x_syn, training=True))
            g_loss = self.reduce(c.lambda_adv * g_adv + c.lambda_rec * g_rec + c.lambda_cls * g_cls
                                 + c.lambda_dis * g_dis + c.lambda_cls_syn * g_cls_syn)
        self.apply("g", g_tape, g_loss)

        fake = tf.stop_gradient(x_syn)
        with tf.GradientTape() as d_tape:
            d_adv = adversarial.wasserstein_discriminator_loss(self.discriminator(x, training=True),
                                                               self.discriminator(fake, training=True))
            if c.lambda_gp > 0:
                d_gp = penalties.gradient_penalty(lambda t: self.discriminator(t, training=True), x, fake)
            else:
                d_gp = tf.zeros_like(d_adv)
            d_loss = self.reduce(d_adv + c.lambda_gp * d_gp)
        self.apply("d", d_tape, d_loss)

        with tf.GradientTape() as c_tape:
            # One classifier pass over real and synthesized images (C has no batch statistics).
            logits = self.classifier(tf.concat([x, fake], 0) if c.lambda_c_fake > 0 else x, training=True)
            real_logits = {n: t[:b] for n, t in logits.items()}
            c_cls = self._class_ce(real_logits, classes)
            if c.lambda_c_fake > 0:
                c_fake = tf.add_n([uniform_target_loss(logits[n][b:]) for n in self.schema.names]) / float(
                    self.num_attributes)
            else:
                c_fake = tf.zeros_like(c_cls)
            c_loss = self.reduce(c_cls + c.lambda_c_fake * c_fake)
        self.apply("c", c_tape, c_loss)
        c_acc = tf.add_n([tf.cast(tf.equal(tf.argmax(real_logits[n], 1, output_type=tf.int32), y), tf.float32)
                          for n, y in zip(self.schema.names, classes)]) / float(self.num_attributes)

        self._update_label_means(codes, classes)
        for name, value in (("g/adv", g_adv), ("g/rec", g_rec), ("g/cls", g_cls), ("g/cls_syn", g_cls_syn),
                            ("g/dis", g_dis), ("d/adv", d_adv), ("d/gp", d_gp), ("c/cls", c_cls),
                            ("c/fake", c_fake), ("c/acc", c_acc), ("z/acc", z_acc), ("z/entropy_other", z_ent)):
            self.track(name, value)
        return self.logs()

    def test_step(self, batch):
        x = batch["image"]
        self.track("g/rec", reconstruction.l1(x, self.reconstruct(x)))
        return self.logs()

    def call(self, batch, training=False):
        return self.reconstruct(batch["image"], training)

    # ---- export -----------------------------------------------------------------------------
    def signatures(self):
        image = self.image_spec
        codes = tf.TensorSpec([None, len(self.code_names)], tf.float32, name="swap_attributes")
        refs = tf.TensorSpec([None, None, self.image_size, self.image_size, 3], tf.float32, name="reference_images")
        return {
            "transfer": (lambda source_image, reference_image, swap_attributes: {
                "translated_image": self.transfer(source_image, reference_image, swap_attributes)},
                {"source_image": image("source_image"), "reference_image": image("reference_image"),
                 "swap_attributes": codes}),
            "translate": (lambda image, target_attributes: {
                "translated_image": self.translate(image, target_attributes)},
                {"image": image("image"), "target_attributes": self.attributes_spec()}),
            # Named "alpha" so the shared range check and example inputs treat them as weights.
            "mix": (lambda source_image, reference_images, alpha, swap_attributes: {
                "translated_image": self.mix(source_image, reference_images, alpha, swap_attributes)},
                {"source_image": image("source_image"), "reference_images": refs,
                 "alpha": tf.TensorSpec([None, None], tf.float32, name="alpha"), "swap_attributes": codes}),
            "interpolate": (lambda source_image, reference_image, alpha, swap_attributes: {
                "translated_image": self.interpolate(source_image, reference_image, alpha, swap_attributes)},
                {"source_image": image("source_image"), "reference_image": image("reference_image"),
                 "alpha": tf.TensorSpec([None], tf.float32, name="alpha"), "swap_attributes": codes}),
            "reconstruct": (lambda image: {"reconstructed_image": self.reconstruct(image)}, {"image": image("image")}),
        }

    def sample_grid(self, batch, n: int = 6):
        """Row i: source i, reference (source i+1), then source i with each single code of the
        reference (attributes..., rest), then all attribute codes."""
        from tfattr.utils import image_grid

        x = batch["image"][:n]
        n = int(x.shape[0])
        ref = tf.roll(x, -1, axis=0)
        k = len(self.code_names)
        masks = [np.eye(k, dtype=np.float32)[j] for j in range(k)] + [self.code_mask(self.schema.names)]
        cols = [image_grid.to_uint8(x), image_grid.to_uint8(ref)]
        for mask in masks:
            cols.append(image_grid.to_uint8(self.transfer(x, ref, tf.constant(np.tile(mask, [n, 1])))))
        tiles = [cols[c][r] for r in range(n) for c in range(len(cols))]
        return image_grid.grid(tiles, n, len(cols))
