"""Adversarial losses with TF-GAN's names. Logits may be `[B]`, `[B, 1]` or patch maps `[B, h, w, 1]`
(PatchGAN); patch losses are averaged over the patch so the scale does not depend on image size."""

import tensorflow as tf

from tfattr.losses._util import per_example_mean


def hinge_discriminator_loss(real_logits, fake_logits):
    """Hinge critic loss, ReLU(1 - D(x)) + ReLU(1 + D(x~)) (Zhang et al. 2019, Eq. 1; Lim & Ye 2017).

    Args:
      real_logits: critic outputs on real images, `[B]` or `[B, h, w, 1]`.
      fake_logits: critic outputs on generated images, same shape.

    Returns:
      float32 `[B]`.
    """
    return per_example_mean(tf.nn.relu(1.0 - real_logits)) + per_example_mean(tf.nn.relu(1.0 + fake_logits))


def hinge_generator_loss(fake_logits):
    """Generator side of the hinge loss, -D(x~) (Zhang et al. 2019, Eq. 1). Returns `[B]`."""
    return -per_example_mean(fake_logits)


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """WGAN critic loss D(x~) - D(x) (Arjovsky et al. 2017). Returns `[B]`."""
    return per_example_mean(fake_logits) - per_example_mean(real_logits)


def wasserstein_generator_loss(fake_logits):
    """WGAN generator loss -D(x~). Returns `[B]`."""
    return -per_example_mean(fake_logits)


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """Standard GAN discriminator cross-entropy, softplus(-D(x)) + softplus(D(x~)). Returns `[B]`."""
    return per_example_mean(tf.nn.softplus(-real_logits)) + per_example_mean(tf.nn.softplus(fake_logits))


def non_saturating_generator_loss(fake_logits):
    """Non-saturating generator loss softplus(-D(x~)) (Goodfellow et al. 2014). Returns `[B]`."""
    return per_example_mean(tf.nn.softplus(-fake_logits))
