import numpy as np
import pytest
import tensorflow as tf

from tfattr.losses import adversarial, classification, penalties, reconstruction

R = np.array([2.0, 0.5, -1.0], np.float32)
F = np.array([-2.0, 0.0, 1.5], np.float32)


@pytest.mark.parametrize("fn, args, expected", [
    (adversarial.hinge_discriminator_loss, (R, F), [0.0 + 0.0, 0.5 + 1.0, 2.0 + 2.5]),
    (adversarial.hinge_generator_loss, (F,), [2.0, 0.0, -1.5]),
    (adversarial.wasserstein_discriminator_loss, (R, F), [-4.0, -0.5, 2.5]),
    (adversarial.wasserstein_generator_loss, (F,), [2.0, 0.0, -1.5]),
    (adversarial.non_saturating_generator_loss, (F,), list(np.log1p(np.exp(-F)))),
    (adversarial.non_saturating_discriminator_loss, (R, F),
     list(np.log1p(np.exp(-R)) + np.log1p(np.exp(F)))),
])
def test_adversarial_per_example_values(fn, args, expected):
    out = fn(*[tf.constant(a) for a in args]).numpy()
    assert out.shape == (3,)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_patch_logits_are_averaged_per_example():
    real = tf.constant([[[[2.0], [0.0]], [[0.0], [0.0]]]])  # [1, 2, 2, 1]
    fake = tf.constant([[[[-1.0], [-1.0]], [[1.0], [-1.0]]]])
    # real: relu(1 - r) = [0, 1, 1, 1] -> 0.75; fake: relu(1 + f) = [0, 0, 2, 0] -> 0.5
    np.testing.assert_allclose(adversarial.hinge_discriminator_loss(real, fake).numpy(), [1.25])


def test_gradient_penalty_of_linear_critic():
    w = tf.constant(np.full([1, 2, 2, 1], 0.25, np.float32))  # ||grad|| = 4 * 0.25^2 ... sqrt(4*0.0625)=0.5
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])
    real = tf.random.normal([3, 2, 2, 1])
    fake = tf.random.normal([3, 2, 2, 1])
    np.testing.assert_allclose(penalties.gradient_penalty(critic, real, fake).numpy(), [0.25] * 3, rtol=1e-4)


def test_attribute_cross_entropy_mixes_sigmoid_and_softmax():
    logits = tf.constant([[0.0, 1.0, 0.0, 0.0]])
    targets = tf.constant([[1.0, 0.0, 1.0, 0.0]])
    slices, binary = [(0, 1), (1, 4)], [True, False]
    sig = np.log(2.0)  # sigmoid CE at logit 0, label 1
    soft = -np.log(np.exp(0.0) / (np.exp(1.0) + 2 * np.exp(0.0)))
    out = classification.attribute_cross_entropy(logits, targets, slices, binary).numpy()
    np.testing.assert_allclose(out, [(sig + soft) / 2], rtol=1e-6)
    masked = classification.attribute_cross_entropy(logits, targets, slices, binary, tf.constant([[1.0, 0.0]]))
    np.testing.assert_allclose(masked.numpy(), [sig], rtol=1e-6)


def test_l1_per_example():
    x = tf.zeros([2, 2, 2, 1])
    y = tf.constant(np.array([np.full([2, 2, 1], 1.0), np.full([2, 2, 1], -3.0)], np.float32))
    np.testing.assert_allclose(reconstruction.l1(x, y).numpy(), [1.0, 3.0])
