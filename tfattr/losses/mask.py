"""Mask compositing and domain-confusion losses (Mokady et al. 2020, "Mask based unsupervised
content transfer", Sec. 3)."""

import tensorflow as tf

from tfattr.losses._util import per_example_mean
from tfattr.losses.classification import binary_cross_entropy


def composite(mask, raw, background):
    """z = m * z_raw + (1 - m) * background (Eqs. 2 and 7).

    Written as a sum of two products, not `background + m * (raw - background)`, so that a zero
    mask returns the background bit for bit.

    Args:
      mask: float32 `[B, H, W, 1]` in [0, 1].
      raw: float32 `[B, H, W, 3]` in [-1, 1], the decoder's raw image.
      background: float32 `[B, H, W, 3]` in [-1, 1] (image a for z, D_A(E_c(b)) for z').

    Returns:
      float32 `[B, H, W, 3]`.
    """
    return mask * raw + (1.0 - mask) * background


def undecided(mask, center: float = 0.5):
    """Per-example mean of a binarisation prior that is 0 where every pixel is 0 or 1 and 1 where
    every pixel is at `center` (not in Mokady et al. 2020; for the soft masks that Sec. 3
    thresholds at inference).

    The mask is first mapped piecewise linearly onto [0, 1] with `center` going to 0.5
    (u = m / (2 c) below c, 0.5 + (m - c) / (2 (1 - c)) above), then 4 u (1 - u) is taken; at
    center = 0.5 that is 4 m (1 - m). Descent pushes pixels under `center` to 0 and pixels over
    it to 1, so a lower center commits faint masks to 1 instead of erasing them.

    Args:
      mask: float32 `[B, H, W, 1]` in [0, 1].
      center: the mask value in (0, 1) where the prior peaks and its gradient changes sign.

    Returns:
      float32 `[B]`.
    """
    if not 0.0 < center < 1.0:
        raise ValueError(f"undecided: center must be in (0, 1), got {center}")
    if center == 0.5:  # the general map is the identity here; skipping it keeps old runs bit-exact
        u = mask
    else:
        u = tf.where(mask < center, mask / (2.0 * center), 0.5 + (mask - center) / (2.0 * (1.0 - center)))
    return per_example_mean(4.0 * u * (1.0 - u))


def domain_confusion_loss(logits_a, logits_b, target: float = 1.0):
    """L_DC (Eq. 3), per example: the common encoder wants C to call both domains `target`.

    Eq. 3 uses target 1 (C's label for domain B); the authors' release uses 0 (domain A's label);
    0.5 is Tzeng et al. 2015's confusion target (both domains equally likely).

    Args:
      logits_a: C's logits on E_c(a), `[B]` or `[B, 1]` (pre-sigmoid; C ends with a sigmoid).
      logits_b: C's logits on E_c(b), same shape.
      target: the label both encodings should get, in [0, 1].

    Returns:
      float32 `[B]`: l(C(E_c(a_i)), t) + l(C(E_c(b_i)), t), pairing the i-th examples of the domains.
    """
    return (binary_cross_entropy(logits_a, tf.fill(tf.shape(logits_a), target))
            + binary_cross_entropy(logits_b, tf.fill(tf.shape(logits_b), target)))


def domain_classifier_loss(logits_a, logits_b):
    """L_C (Eq. 4), per example: C labels domain A encodings 0 and domain B encodings 1.

    Args:
      logits_a: C's logits on E_c(a), `[B]` or `[B, 1]`.
      logits_b: C's logits on E_c(b), same shape.

    Returns:
      float32 `[B]`.
    """
    return (binary_cross_entropy(logits_a, tf.zeros_like(logits_a))
            + binary_cross_entropy(logits_b, tf.ones_like(logits_b)))


def mask_iou(predicted, target, threshold: float = 0.5):
    """Intersection over union of binarised masks, per example (Sec. 4, Tab. 5 protocol).

    Args:
      predicted: float `[B, H, W]` or `[B, H, W, 1]` soft mask in [0, 1].
      target: float, same shape, in [0, 1].
      threshold: both masks are binarised with `> threshold`.

    Returns:
      float32 `[B]`; 1 where both masks are empty.
    """
    p = tf.reshape(tf.cast(tf.convert_to_tensor(predicted) > threshold, tf.float32), [tf.shape(predicted)[0], -1])
    t = tf.reshape(tf.cast(tf.convert_to_tensor(target) > threshold, tf.float32), [tf.shape(target)[0], -1])
    inter = tf.reduce_sum(p * t, axis=1)
    union = tf.reduce_sum(tf.maximum(p, t), axis=1)
    return tf.where(union > 0, inter / tf.maximum(union, 1.0), tf.ones_like(union))
