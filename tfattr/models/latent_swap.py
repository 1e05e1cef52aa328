"""latent_swap: multi-attribute transfer by swapping latent units (Zhang et al., AAAI 2019).

Paper: ../shared/papers/latent_swap__zhang2019_multi_attribute_transfer.txt ("Method").

An encoder maps an image to an embedding whose channels are split into one latent unit per
attribute (16 channels each) and an attribute-irrelevant part (160 channels). Swapping units
between two images' embeddings and decoding transfers those attributes *with their style*
(e.g. the exact hair shade); interpolating a unit channel-wise blends attribute values.

Training (per replica batch, paired as (0,1), (2,3), ...; see `pair_permutation`):
  e = Enc(x); e~ = swap(e, e_partner, S); x~ = Dec(e~)
  e' = swap(Enc(x~), Enc(x~)_partner, S)  (swap back);  x' = Dec(e')
  L_D = hinge(D(x), D(x~)) + lambda_gp GP + lambda_cls CE(Dcls(x), y)                     (Eqs. 1-2)
  L_G = -D(x~) + lambda_cls CE(Dcls(x~), y~) + lambda_ver L_ver(e, e') + lambda_rec |x - x'|  (Eqs. 1, 3-7)
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
from tfattr.losses import adversarial, classification, penalties, reconstruction
from tfattr.models import base


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters. Defaults follow Zhang et al. 2019, "Full Objective and Implementation Details"."""

    base_width: int = 64  # StarGAN generator width (Choi et al. 2018), which the paper follows
    unit_channels: int = 16  # "16 channels of feature map for each latent unit"
    irrelevant_channels: int = 160  # "160 channels for attribute-irrelevant parts"
    num_res_blocks: int = 6  # "six residue blocks", split evenly between Enc and Dec
    d_width: int = 64
    d_max_width: int = 2048
    # "Spectral Normalization Layers ... are applied" (Implementation Details), with Eq. 1's gradient
    # penalty. Off in the bench demo: there the spectrally normalised D (Miyato et al.'s, gradient
    # through sigma: `tfattr.layers.spectral`) freezes by ~250 steps at 64 px, lambda_gp 10, lr 1e-3:
    # each of its five stride-2 layers passes on a half to a twentieth of its input's magnitude, the
    # biases take over, and D's output stops depending on the image (hinge loss exactly 2, penalty
    # exactly 1; benchmarks/RESULTS.md, session 19). Without it D's classifier also learns much faster.
    d_spectral_norm: bool = True
    d_layers: int = 0  # 0: log2(image_size) - 1 stride-2 convs, i.e. 6 at 128 px as in StarGAN's PatchGAN
    lambda_cls: float = 0.1
    # Eq. 7 puts one lambda_cls on both classification terms; StarGAN, whose networks the paper
    # follows, trains the discriminator's classifier at weight 1. None = lambda_cls (the paper).
    lambda_cls_d: float | None = None
    lambda_ver: float = 0.1
    # Not in the paper: classify each latent unit's own attribute from that unit alone (a linear head
    # per unit on the real images' embeddings, trained with G). The paper ("Attribute Classification
    # Loss", "Claim of Disentanglement") relies on D_cls of swapped images alone to route each
    # attribute into its unit; on short CPU runs that happened only for hair colour: in the 4,000-step
    # demo run swapping the Smiling unit moved the smile in 11% of pairs. With this term at 1: smile
    # 0.46 at 1,000 steps, mean swap accuracy 0.500 vs 0.453 at 2,000 steps (benchmarks/RESULTS.md).
    # Oldfield et al.'s Eq. 3 is the same idea. 0 = the paper.
    lambda_unit_cls: float = 0.0
    # Not in the paper: keep each attribute out of everything but its own unit. An adversary R sees
    # the embedding with unit m zeroed (the attribute-irrelevant part and the other units) and is
    # trained, in the discriminator's step, to classify attribute m from it; the encoder is trained
    # to make R's posterior uniform (Oldfield et al.'s Eq. 4 target; Lample et al. 2017's Fader
    # networks train an encoder against such a latent classifier). The paper's "Claim of
    # Disentanglement" expects Eq. 2 on swapped images to do this; on the bench every unit and the
    # irrelevant part read hair colour at 0.92-0.99 (linear probes, RESULTS.md session 7), so the
    # decoder could ignore the units. Measured with the demo flagfile at 2,000 steps: mean swap
    # accuracy 0.668 vs 0.500 without it (hair 0.96, beard 0.53), preservation 0.792 vs 0.842
    # (benchmarks/RESULTS.md, session 11). 0 = the paper.
    lambda_rest_adv: float = 0.0
    rest_classifier_width: int = 16
    # Not in the paper: keep the source's value of each swapped attribute out of the swapped *image*.
    # A leak classifier L (D's conv stack with its own weights) is trained, in D's step, to read the
    # source's own label of attribute m from x~ = Dec(e with unit m from the partner), on the pairs
    # that swap m; G is trained to make L's posterior uniform there. When x~ shows the partner's
    # value of m and nothing of the source's, L is at chance, since the partner's value does not
    # depend on the source's (labels drawn independently; on correlated data L can also use the
    # correlated attributes the source keeps). Unlike R, which must find the attribute in the
    # embedding the encoder hides it in, L reads what the decoder draws, and unlike D's head it is
    # trained on the swaps themselves, so a mouth D accepts as a smile but that still differs between
    # smiling and non-smiling sources is what L learns to read. On the bench the decoder kept the
    # source's smile in 0.6 of Smiling swaps at 2,000 steps while D's head accepted them. Measured
    # at weight 1 on the demo: no gain (smile 0.319, source's smile still kept in 0.665 of swaps; L
    # stayed near chance; benchmarks/RESULTS.md, latent_swap session 22). 0 = the paper.
    lambda_swap_leak: float = 0.0
    # Not in the paper: an L1 penalty on the change a swap makes to the decoding,
    # |Dec(e~) - Dec(e)| (Dec(e) gradient-stopped; 0 where nothing is swapped), the sparsity term of
    # Shen & Liu 2017's residual images. Nothing in Eqs. 1-7 keeps a unit from carrying more than
    # its attribute: on the bench the 16x16 hair unit also carried the reference's bangs,
    # expression, gaze and illumination (hair swaps kept them in 0.25-0.72 of faces at 1,000 steps,
    # benchmarks/RESULTS.md session 24), so a hair swap redrew the whole face. D's classifier needs
    # only the new attribute, so the penalty leaves a unit the cheapest change that passes it.
    # 0 = the paper.
    lambda_swap_change: float = 0.0
    lambda_rec: float = 10.0
    # Not in the paper: an L1 autoencoding term |x - Dec(Enc(x))|. Eq. 4 reconstructs only through
    # two encode-swap-decode passes, which on short CPU runs leaves the decoder blurry for
    # thousands of steps; the direct term makes the "swap nothing" path exact early. 0 = paper.
    lambda_self_rec: float = 0.0
    # The paper uses a gradient penalty (Eq. 1) but does not give lambda_gp; 10 is Gulrajani et al.'s value.
    lambda_gp: float = 10.0
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    # The paper normalises with batch norm; "instance" is offered for small per-replica batches.
    g_norm: str = "batch"
    swap_probability: float = 0.5  # chance that each attribute in P (same labels) joins the subset A
    # "paper": the two strategies of "Attributes Swapping Strategy": S = A u N always swaps every
    # attribute whose labels differ together, so the decoder may read an attribute from any unit that
    # travels with it. At 5,500 bench steps a Smiling-only swap moved the smile in 0.34 of faces,
    # swapping every unit in 0.93, and swapping every unit but Smiling in 0.57: the smile sat in the
    # other units (benchmarks/RESULTS.md, session 16). "independent" (not in the paper): each
    # attribute joins S with probability `swap_probability` whether or not its labels differ, and
    # labels follow per attribute. The paper restricts S so that swapped labels stay observed
    # combinations; on data whose attributes vary independently (the bench) every combination is
    # observed, and single-attribute swaps are what `swap` is asked for.
    swap_strategy: str = "paper"
    # Inference only (training never calls swap/blend): what `swap`, `blend`, `call` and the export
    # signatures return. "decoded" = the paper, Dec(e~). "residual" (not in the paper): the source
    # plus the change the swap makes to the decoding, x + Dec(e~) - Dec(e), clipped to [-1, 1]; the
    # residual images of Shen & Liu 2017 and ELEGANT (Xiao et al. 2018), applied after training.
    # Where the swap does not change the decoding the source's own pixels come back, so the
    # decoder's blur of 1-3 px details (mouth, brows) no longer costs the untouched attributes:
    # on the bench reconstructions keep Expression in only 0.59-0.8 of faces (benchmarks/RESULTS.md,
    # sessions 12-23), and swapping nothing returns the source exactly. "composite" (not in the
    # paper either): per pixel, the decoding where the swap changes it a lot and the residual
    # output elsewhere, m Dec(e~) + (1 - m) residual with
    # m = min(1, maxpool3x3(mean_channels |Dec(e~) - Dec(e)|) / t), t = swap_output_threshold
    # (t -> 0: "decoded", t -> inf: "residual"). The residual alone leaves the source's sharp details
    # (a closed mouth's lines) under the new content where the swap redraws a region: at 1,000
    # bench steps it kept the smile swap at 0.01 against 0.26 decoded (RESULTS.md, session 24).
    swap_output: str = "decoded"
    swap_output_threshold: float = 0.1


SWAP_STRATEGIES = ("paper", "independent")
SWAP_OUTPUTS = ("decoded", "residual", "composite")


def embedding_channels(config: Config, schema: Schema) -> int:
    return len(schema) * config.unit_channels + config.irrelevant_channels


def build_networks(config: Config, schema: Schema, image_size: int) -> dict[str, keras.Model]:
    if image_size % 4:
        raise ValueError(f"latent_swap: image_size must be a multiple of 4, got {image_size}")
    if config.swap_strategy not in SWAP_STRATEGIES:
        raise ValueError(f"latent_swap: swap_strategy must be one of {', '.join(SWAP_STRATEGIES)}, "
                         f"got {config.swap_strategy!r}")
    if config.swap_output not in SWAP_OUTPUTS:
        raise ValueError(f"latent_swap: swap_output must be one of {', '.join(SWAP_OUTPUTS)}, "
                         f"got {config.swap_output!r}")
    if config.swap_output_threshold <= 0:
        raise ValueError(f"latent_swap: swap_output_threshold must be > 0, got {config.swap_output_threshold}")
    if config.lambda_swap_leak > 0 and config.swap_strategy != "independent":
        # The paper's strategy always swaps the attributes whose labels differ, so "m was swapped"
        # itself tells L that the source's value is probably not the one drawn.
        raise ValueError("latent_swap: lambda_swap_leak > 0 needs swap_strategy=independent, "
                         f"got swap_strategy={config.swap_strategy!r}")
    w, norm = config.base_width, config.g_norm
    n_enc = config.num_res_blocks // 2
    n_dec = config.num_res_blocks - n_enc
    channels = embedding_channels(config, schema)
    latent = image_size // 4

    x_in = keras.Input([image_size, image_size, 3], name="image")
    h = blocks.conv_norm_act(x_in, w, 7, norm=norm)
    h = blocks.conv_norm_act(h, 2 * w, 4, strides=2, norm=norm)
    h = blocks.conv_norm_act(h, 4 * w, 4, strides=2, norm=norm)
    for _ in range(n_enc):
        h = blocks.residual_block(h, 4 * w, norm=norm)
    # Linear output: units are swapped and interpolated, so they should not be clipped by a ReLU.
    e = layers.Conv2D(channels, 1, name="embedding")(h)
    encoder = keras.Model(x_in, e, name="encoder")

    e_in = keras.Input([latent, latent, channels], name="embedding")
    h = blocks.conv_norm_act(e_in, 4 * w, 3, norm=norm)
    for _ in range(n_dec):
        h = blocks.residual_block(h, 4 * w, norm=norm)
    h = blocks.conv_norm_act(h, 2 * w, 4, strides=2, norm=norm, transpose=True)
    h = blocks.conv_norm_act(h, w, 4, strides=2, norm=norm, transpose=True)
    x_out = layers.Conv2D(3, 7, padding="same", activation="tanh", name="image_out")(h)
    decoder = keras.Model(e_in, x_out, name="decoder")

    d_layers = config.d_layers or max(1, int(math.log2(image_size)) - 1)
    x_d = keras.Input([image_size, image_size, 3], name="image")
    h = blocks.patchgan_stack(x_d, d_layers, config.d_width, config.d_max_width, config.d_spectral_norm)
    adv = blocks.conv(1, 3, spectral=config.d_spectral_norm, name="adv")(h)  # PatchGAN real/fake map
    final = image_size // 2**d_layers
    cls = blocks.conv(schema.num_columns, final, spectral=config.d_spectral_norm, padding="valid", name="cls")(h)
    cls = layers.Flatten()(cls)
    discriminator = keras.Model(x_d, {"adv": adv, "cls": cls}, name="discriminator")
    networks = {}
    if config.lambda_swap_leak > 0:
        x_l = keras.Input([image_size, image_size, 3], name="swapped_image")
        h = blocks.patchgan_stack(x_l, d_layers, config.d_width, config.d_max_width, name="leak_conv")
        leak = layers.Flatten()(blocks.conv(schema.num_columns, final, padding="valid", name="leak_cls")(h))
        networks["leak_classifier"] = keras.Model(x_l, leak, name="leak_classifier")

    u_in = keras.Input([latent, latent, len(schema) * config.unit_channels], name="unit_difference")
    verifier = keras.Model(u_in, UnitwiseDense(len(schema), name="verify")(u_in), name="verifier")
    networks.update({"encoder": encoder, "decoder": decoder, "discriminator": discriminator, "verifier": verifier})
    if config.lambda_rest_adv > 0:
        r_in = keras.Input([latent, latent, channels], name="embedding_without_unit")
        h, rw = r_in, config.rest_classifier_width
        for i in range(2 if latent >= 8 else 1):
            h = blocks.conv_norm_act(h, rw * 2**i, 4, strides=2, norm="none", activation="lrelu01", name=f"rest_conv{i}")
        networks["rest_classifier"] = keras.Model(
            r_in, layers.Dense(schema.num_columns, name="rest_cls")(layers.Flatten()(h)), name="rest_classifier")
    if config.lambda_unit_cls > 0:
        # One linear head per unit over that unit's channels only, giving its attribute's label columns.
        c = config.unit_channels
        units = keras.Input([latent, latent, len(schema) * c], name="units")
        heads = [layers.Dense(e - s, name=f"unit_cls_{a.name}")(layers.Flatten()(units[..., j * c:(j + 1) * c]))
                 for j, (a, (s, e)) in enumerate(zip(schema, schema.column_slices))]
        networks["unit_classifier"] = keras.Model(
            units, layers.Concatenate()(heads) if len(heads) > 1 else heads[0], name="unit_classifier")
    return networks


@keras.saving.register_keras_serializable("tfattr")
class UnitwiseDense(layers.Layer):
    """One fully connected unit per latent unit: `[B, h, w, k*c]` -> `[B, k]` logits.

    Zhang et al. 2019, "Attribute Verification Loss": "a fully-connected layer within each unit pair".
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        h, w, c = input_shape[1:]
        if c % self.units:
            raise ValueError(f"UnitwiseDense: {c} channels do not split into {self.units} units")
        self.per_unit = h * w * (c // self.units)
        self.kernel = self.add_weight(shape=(self.units, self.per_unit), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        b = tf.shape(x)[0]
        h, w, c = x.shape[1:]
        x = tf.reshape(x, [b, h, w, self.units, c // self.units])
        x = tf.transpose(x, [0, 3, 1, 2, 4])
        x = tf.reshape(x, [b, self.units, self.per_unit])
        return tf.einsum("bkn,kn->bk", x, self.kernel) + self.bias

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def pair_permutation(batch_size):
    """Partner of each example: 0<->1, 2<->3, ... (the per-replica batch must be even).

    Pairing adjacent examples, not e.g. reversing the batch, keeps the same pairs whatever the
    number of replicas, so a multi-replica step equals a single-device step.
    """
    idx = tf.range(batch_size)
    return tf.bitwise.bitwise_xor(idx, 1)


class Model(base.AttributeTransferModel):
    """latent_swap trainer and inference operations (encode, decode, swap, blend)."""

    LOSS_NAMES = ("d/adv", "d/gp", "d/cls", "d/rest_cls", "g/adv", "g/cls", "g/ver", "g/rec", "g/self_rec",
                  "g/unit_cls", "g/rest_adv", "g/ver_acc", "d/leak_cls", "g/leak", "g/swap_change")
    OPTIMIZER_GROUPS = {"g": ("encoder", "decoder", "verifier", "unit_classifier"),
                        "d": ("discriminator", "rest_classifier", "leak_classifier")}
    # built only when lambda_unit_cls > 0 / lambda_rest_adv > 0 / lambda_swap_leak > 0
    OPTIONAL_NETWORKS = ("unit_classifier", "rest_classifier", "leak_classifier")
    BATCH_MULTIPLE = 2  # examples are paired (0,1), (2,3), ... within each replica

    def __init__(self, networks, config: Config, schema: Schema, image_size: int, **kwargs):
        super().__init__(networks, config, schema, image_size, **kwargs)
        self.num_units = len(schema)
        self.unit_channels = config.unit_channels
        self.channels = embedding_channels(config, schema)
        # Column -> attribute matrix, to turn per-attribute swap flags into per-column label masks.
        col_to_attr = np.zeros([schema.num_columns, len(schema)], np.float32)
        for g, (s, e) in enumerate(schema.column_slices):
            col_to_attr[s:e, g] = 1.0
        self._col_to_attr = tf.constant(col_to_attr)
        self._binary = [a.binary for a in schema]
        # Uniform posterior per attribute, as multi-hot targets: 1/2 for a binary column, 1/K for each
        # of a categorical attribute's K columns.
        self._uniform = tf.constant([[0.5 if a.binary else 1.0 / (e - s) for a, (s, e) in
                                      zip(schema, schema.column_slices) for _ in range(e - s)]], tf.float32)

    def default_optimizers(self):
        c = self.config
        return {
            "g": keras.optimizers.Adam(c.lr_g, beta_1=c.beta_1, beta_2=c.beta_2),
            "d": keras.optimizers.Adam(c.lr_d, beta_1=c.beta_1, beta_2=c.beta_2),
        }

    # ---- latent operations ------------------------------------------------------------------
    def channel_mask(self, swap):
        """Per-attribute weights `[B, k]` -> channel weights `[B, 1, 1, C]` (irrelevant part: 0)."""
        swap = tf.cast(swap, tf.float32)
        units = tf.repeat(swap, self.unit_channels, axis=1)
        rest = tf.zeros([tf.shape(swap)[0], self.channels - self.num_units * self.unit_channels])
        return tf.concat([units, rest], axis=1)[:, None, None, :]

    def mix(self, e_source, e_reference, weights):
        """Channel-wise interpolation: weight 0 keeps the source unit, 1 takes the reference unit."""
        m = self.channel_mask(weights)
        # (1-m)*a + m*b, not a + m*(b-a): exact at m in {0, 1}, so a swap copies units bit for bit.
        return (1.0 - m) * e_source + m * e_reference

    def encode(self, images, training=False):
        return self.encoder(images, training=training)

    def decode(self, embedding, training=False):
        return self.decoder(embedding, training=training)

    def swap(self, source, reference, attributes, training=False):
        """Source images with the units of `attributes` (`[B, k]` in {0,1}) taken from `reference`
        (Config.swap_output: the decoding, the source plus the change it makes, or their composite)."""
        e_source = self.encode(source, training)
        swapped = self.decode(self.mix(e_source, self.encode(reference, training), attributes), training)
        if self.config.swap_output == "decoded":
            return swapped
        change = swapped - self.decode(e_source, training)
        residual = tf.clip_by_value(source + change, -1.0, 1.0)
        if self.config.swap_output == "residual":
            return residual
        m = tf.nn.max_pool2d(tf.reduce_mean(tf.abs(change), axis=-1, keepdims=True), 3, 1, "SAME")
        m = tf.minimum(1.0, m / self.config.swap_output_threshold)
        return m * swapped + (1.0 - m) * residual

    def blend(self, source, reference, attributes, alpha, training=False):
        """Like `swap`, with the selected units interpolated by `alpha` (`[B]`, 0 = source, 1 = swap)."""
        alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1])
        return self.swap(source, reference, tf.cast(attributes, tf.float32) * alpha, training)

    def reconstruct(self, images, training=False):
        return self.decode(self.encode(images, training), training)

    def swap_mask_from_names(self, names, batch_size):
        row = np.zeros([len(self.schema)], np.float32)
        for n in names:
            row[self.schema.index(n)] = 1.0
        return tf.constant(np.tile(row, [batch_size, 1]))

    def transfer_from_reference(self, source, reference, attribute_names):
        return self.swap(source, reference, self.swap_mask_from_names(attribute_names, tf.shape(source)[0]))

    def call(self, batch, training=False):
        images = batch["image"]
        perm = pair_permutation(tf.shape(images)[0])
        return self.swap(images, tf.gather(images, perm), tf.ones([tf.shape(images)[0], self.num_units]), training)

    def translate(self, images, target_attributes, training=False):
        raise NotImplementedError("latent_swap transfers attributes from a reference image: use swap()/blend()")

    # ---- training -----------------------------------------------------------------------------
    def _attribute_differs(self, y, y_partner):
        diff = tf.abs(y - y_partner) @ self._col_to_attr  # [B, k], > 0 where labels differ
        return tf.cast(diff > 0.5, tf.float32)

    def sample_swap(self, y, perm):
        """The paper's two swapping strategies, chosen with equal probability per pair ("Attributes
        Swapping Strategy"): S = A u N (all differing attributes plus a random subset A of the equal
        ones; labels swap) or S = A (labels unchanged); with `swap_strategy="independent"` each
        attribute joins S on its own (see Config). One draw per pair, shared by both members."""
        b = tf.shape(y)[0]
        subset = tf.cast(tf.random.uniform([b // 2, self.num_units]) < self.config.swap_probability, tf.float32)
        if self.config.swap_strategy == "independent":
            return tf.repeat(subset, 2, axis=0)
        first = self._attribute_differs(y, tf.gather(y, perm))[0::2]  # one row per pair
        subset = subset * (1.0 - first)
        strategy = tf.cast(tf.random.uniform([b // 2, 1]) < 0.5, tf.float32)
        s = tf.maximum(subset, first * strategy)
        return tf.repeat(s, 2, axis=0)

    def swapped_labels(self, y, y_partner, swap):
        cols = swap @ tf.transpose(self._col_to_attr)  # [B, A]
        return y * (1.0 - cols) + y_partner * cols

    def attribute_ce(self, logits, y):
        return classification.attribute_cross_entropy(logits, y, self.schema.column_slices, self._binary)

    def rest_logits(self, e, training=False):
        """R's logits on the embedding with each unit zeroed in turn: `[k, B, A]`, row m without unit m."""
        k = self.num_units
        keep = 1.0 - self.channel_mask(tf.eye(k))  # [k, 1, 1, C]: 0 on unit m's channels, 1 elsewhere
        b = tf.shape(e)[0]
        stacked = tf.reshape(keep[:, None] * e[None], tf.concat([[k * b], tf.shape(e)[1:]], 0))
        return tf.reshape(self.rest_classifier(stacked, training=training), [k, b, -1])

    def rest_loss(self, logits, targets):
        """Per example `[B]`: mean over m of the cross-entropy of R's row m (the embedding without
        unit m) against attribute m's columns of `targets`: the labels (R's loss) or
        `uniform_targets` (the encoder's loss)."""
        k = self.num_units
        mask = tf.ones([tf.shape(targets)[0], 1]) * tf.eye(k)[:, None, :]  # [k, B, k]: row m keeps attribute m
        return tf.add_n([classification.attribute_cross_entropy(logits[m], targets, self.schema.column_slices,
                                                                self._binary, mask[m]) for m in range(k)]) / k

    def leak_loss(self, logits, targets, swap):
        """Per example `[B]`: cross-entropy of L's logits on x~ against `targets` (the source's own
        labels for L, `uniform_targets` for G), averaged over the attributes the pair swapped; 0 for
        a pair that swapped none."""
        return classification.attribute_cross_entropy(logits, targets, self.schema.column_slices, self._binary, swap)

    def uniform_targets(self, batch_size):
        return tf.tile(self._uniform, [batch_size, 1])

    def verification_loss(self, e, e_back, perm):
        """Eqs. 5-6 for the pairs (e_i, e'_i) -> 1 and (e_i, e'_partner) -> 0, on unit channels only.

        Summed over the batch this covers the paper's four pairs (e_a,e'_a), (e_a,e'_b), (e_b,e'_a),
        (e_b,e'_b); e' is the embedding of the synthesised image after swapping back, so its unit i
        comes from the same source image as e's unit i exactly when the verification label is 1.
        """
        n = self.num_units * self.unit_channels
        u, u_back = e[..., :n], e_back[..., :n]
        same = self.verifier(tf.abs(u - u_back), training=True)
        other = self.verifier(tf.abs(u - tf.gather(u_back, perm)), training=True)
        loss = (tf.reduce_mean(tf.nn.softplus(-same), axis=1) + tf.reduce_mean(tf.nn.softplus(other), axis=1))
        acc = 0.5 * (tf.reduce_mean(tf.cast(same > 0, tf.float32), 1) + tf.reduce_mean(tf.cast(other < 0, tf.float32), 1))
        return loss, acc

    def train_step(self, batch):
        x = batch["image"]
        y = tf.cast(batch["attributes"], tf.float32)
        perm = pair_permutation(tf.shape(x)[0])
        y_partner = tf.gather(y, perm)
        swap = tf.cast(batch["swap"], tf.float32) if "swap" in batch else self.sample_swap(y, perm)
        y_tilde = self.swapped_labels(y, y_partner, swap)
        c = self.config

        with tf.GradientTape() as g_tape:
            e = self.encode(x, training=True)
            x_tilde = self.decode(self.mix(e, tf.gather(e, perm), swap), training=True)
            e_tilde = self.encode(x_tilde, training=True)
            e_back = self.mix(e_tilde, tf.gather(e_tilde, perm), swap)
            x_back = self.decode(e_back, training=True)
            d_fake = self.discriminator(x_tilde, training=True)
            g_adv = adversarial.hinge_generator_loss(d_fake["adv"])
            g_cls = self.attribute_ce(d_fake["cls"], y_tilde)
            g_ver, ver_acc = self.verification_loss(e, e_back, perm)
            g_rec = reconstruction.l1(x, x_back)
            g_total = g_adv + c.lambda_cls * g_cls + c.lambda_ver * g_ver + c.lambda_rec * g_rec
            if c.lambda_self_rec > 0 or c.lambda_swap_change > 0:
                x_self = self.decode(e, training=True)
            if c.lambda_self_rec > 0:
                g_self = reconstruction.l1(x, x_self)
                g_total += c.lambda_self_rec * g_self
            else:
                g_self = tf.zeros_like(g_rec)
            if c.lambda_swap_change > 0:
                g_change = reconstruction.l1(x_tilde, tf.stop_gradient(x_self))
                g_total += c.lambda_swap_change * g_change
            else:
                g_change = tf.zeros_like(g_rec)
            if c.lambda_unit_cls > 0:
                units = e[..., :self.num_units * self.unit_channels]
                g_unit = self.attribute_ce(self.unit_classifier(units, training=True), y)
                g_total += c.lambda_unit_cls * g_unit
            else:
                g_unit = tf.zeros_like(g_rec)
            if c.lambda_rest_adv > 0:
                g_rest = self.rest_loss(self.rest_logits(e, training=True), self.uniform_targets(tf.shape(y)[0]))
                g_total += c.lambda_rest_adv * g_rest
            else:
                g_rest = tf.zeros_like(g_rec)
            if c.lambda_swap_leak > 0:
                g_leak = self.leak_loss(self.leak_classifier(x_tilde, training=True),
                                        self.uniform_targets(tf.shape(y)[0]), swap)
                g_total += c.lambda_swap_leak * g_leak
            else:
                g_leak = tf.zeros_like(g_rec)
            g_loss = self.reduce(g_total)
        self.apply("g", g_tape, g_loss)

        fake = tf.stop_gradient(x_tilde)
        with tf.GradientTape() as d_tape:
            d_real = self.discriminator(x, training=True)
            d_fake = self.discriminator(fake, training=True)
            d_adv = adversarial.hinge_discriminator_loss(d_real["adv"], d_fake["adv"])
            d_cls = self.attribute_ce(d_real["cls"], y)
            if c.lambda_gp > 0:
                d_gp = penalties.gradient_penalty(lambda t: self.discriminator(t, training=True)["adv"], x, fake)
            else:
                d_gp = tf.zeros_like(d_adv)
            lambda_cls_d = c.lambda_cls if c.lambda_cls_d is None else c.lambda_cls_d
            d_total = d_adv + c.lambda_gp * d_gp + lambda_cls_d * d_cls
            if c.lambda_rest_adv > 0:  # R has its own weights: its term does not touch D's gradient
                d_rest = self.rest_loss(self.rest_logits(tf.stop_gradient(e), training=True), y)
                d_total += d_rest
            else:
                d_rest = tf.zeros_like(d_adv)
            if c.lambda_swap_leak > 0:  # L has its own weights too; it learns the source's labels from x~
                d_leak = self.leak_loss(self.leak_classifier(fake, training=True), y, swap)
                d_total += d_leak
            else:
                d_leak = tf.zeros_like(d_adv)
            d_loss = self.reduce(d_total)
        self.apply("d", d_tape, d_loss)

        for name, value in (("d/adv", d_adv), ("d/gp", d_gp), ("d/cls", d_cls), ("d/rest_cls", d_rest),
                            ("g/adv", g_adv), ("g/cls", g_cls), ("g/ver", g_ver), ("g/rec", g_rec),
                            ("g/self_rec", g_self), ("g/unit_cls", g_unit), ("g/rest_adv", g_rest),
                            ("g/ver_acc", ver_acc), ("d/leak_cls", d_leak), ("g/leak", g_leak),
                            ("g/swap_change", g_change)):
            self.track(name, value)
        return self.logs()

    def test_step(self, batch):
        x = batch["image"]
        perm = pair_permutation(tf.shape(x)[0])
        e = self.encode(x)
        zero = tf.zeros([tf.shape(x)[0], self.num_units])
        self.track("g/rec", reconstruction.l1(x, self.decode(self.mix(e, tf.gather(e, perm), zero))))
        return self.logs()

    # ---- export -----------------------------------------------------------------------------
    def signatures(self):
        image, k = self.image_spec, self.num_units
        latent = self.image_size // 4
        swap_spec = tf.TensorSpec([None, k], tf.float32, name="swap_attributes")
        return {
            "swap": (lambda source_image, reference_image, swap_attributes: {
                "translated_image": self.swap(source_image, reference_image, swap_attributes)},
                {"source_image": image("source_image"), "reference_image": image("reference_image"),
                 "swap_attributes": swap_spec}),
            "blend": (lambda source_image, reference_image, swap_attributes, alpha: {
                "translated_image": self.blend(source_image, reference_image, swap_attributes, alpha)},
                {"source_image": image("source_image"), "reference_image": image("reference_image"),
                 "swap_attributes": swap_spec, "alpha": tf.TensorSpec([None], tf.float32, name="alpha")}),
            "encode": (lambda image: {"embedding": self.encode(image)}, {"image": image("image")}),
            "decode": (lambda embedding: {"image": self.decode(embedding)},
                       {"embedding": tf.TensorSpec([None, latent, latent, self.channels], tf.float32,
                                                   name="embedding")}),
            "reconstruct": (lambda image: {"reconstructed_image": self.reconstruct(image)}, {"image": image("image")}),
        }

    def sample_grid(self, batch, n: int = 5):
        """Fig. 3-style grid: row r is source r with ALL units of reference c (column c) swapped in."""
        from tfattr.utils import image_grid

        x = batch["image"][:n]
        n = int(x.shape[0])
        out = image_grid.to_uint8(self.swap(tf.repeat(x, n, axis=0), tf.tile(x, [n, 1, 1, 1]),
                                            tf.ones([n * n, self.num_units])))
        xs = image_grid.to_uint8(x)
        tiles = [None] + list(xs)
        for r in range(n):
            tiles += [xs[r]] + list(out[r * n:(r + 1) * n])
        return image_grid.grid(tiles, n + 1, n + 1)

    DEFAULT_SIGNATURE = "swap"

