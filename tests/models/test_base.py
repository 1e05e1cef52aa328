"""The base contract's inference-weight helpers: weight averages and their batch-norm statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfattr.data import attributes as A
from tfattr.models import base

SCHEMA = A.Schema((A.binary("Smiling"),))


class Tiny(base.AttributeTransferModel):
    """Two networks, Dense -> BatchNorm each; only "g" keeps a weight average."""

    OPTIMIZER_GROUPS = {"g": ("net",), "d": ("other",)}

    def default_optimizers(self):
        return {"g": keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), "d": keras.optimizers.SGD(0.1)}

    def call(self, batch, training=False):
        return self.net(batch["x"], training=training) + self.other(batch["x"], training=training)


def tiny():
    def net(name):
        x = keras.Input([2])
        return keras.Model(x, keras.layers.BatchNormalization(name=f"{name}_bn")(keras.layers.Dense(3)(x)), name=name)

    m = Tiny({"net": net("net"), "other": net("other")}, None, SCHEMA, 8)
    m.compile()
    return m


def batches(n=3):
    rng = np.random.default_rng(0)
    return [{"x": tf.constant(rng.normal(2.0, 3.0, [8, 2]).astype(np.float32))} for _ in range(n)]


def test_standing_batch_norm_sets_the_plain_mean_of_the_batch_statistics_and_restores_momentum():
    m = tiny()
    bn, other = m.net.get_layer("net_bn"), m.other.get_layer("other_bn")
    other_before = [v.numpy().copy() for v in other.non_trainable_variables]
    data = batches(3)
    assert m.standing_batch_norm(data, ["net"]) == 3
    h = [m.net.layers[1](b["x"]).numpy() for b in data]  # the Dense output each batch norm saw
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([x.mean(0) for x in h], 0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([x.var(0) for x in h], 0), rtol=1e-4)
    assert bn.momentum == other.momentum == 0.99
    for before, v in zip(other_before, other.non_trainable_variables):
        np.testing.assert_array_equal(before, v.numpy())  # networks not named keep their statistics
    with pytest.raises(ValueError, match="no batch"):
        m.standing_batch_norm([], ["net"])


def test_average_weights_re_estimates_only_the_averaged_networks_batch_norms():
    m = tiny()
    for b in batches(2):  # two SGD steps, so the average differs from the weights
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(m(b, training=True)))
        m.apply("g", tape, loss)
    raw = m.net.layers[1].kernel.numpy().copy()
    other_stats = [v.numpy().copy() for v in m.other.get_layer("other_bn").non_trainable_variables]
    assert m.averaging_groups() == ["g"]
    assert m.average_weights(batches(4)) == ["g"]
    assert np.abs(m.net.layers[1].kernel.numpy() - raw).max() > 1e-6
    h = [m.net.layers[1](b["x"]).numpy() for b in batches(4)]
    np.testing.assert_allclose(m.net.get_layer("net_bn").moving_mean.numpy(), np.mean([x.mean(0) for x in h], 0),
                               rtol=1e-5)
    for before, v in zip(other_stats, m.other.get_layer("other_bn").non_trainable_variables):
        np.testing.assert_array_equal(before, v.numpy())
