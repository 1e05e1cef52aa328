import math

import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import models
from tfattr.data import attributes as A
from tfattr.models import adv_disentangle

SIZE = 16
SCHEMA = A.Schema((A.categorical("Expression", [f"e{i}" for i in range(8)]),
                   A.categorical("Illumination", [f"l{i}" for i in range(5)]),
                   A.categorical("Gaze", ["left", "front", "right"])))
TINY = {"enc_width": 4, "dec_width": 8, "num_res_blocks": 1, "dec_resize_stride2": "false", "c_width": 4,
        "d_width": 4}
M = len(SCHEMA)


def build(**overrides):
    return models.build("adv_disentangle", SCHEMA, SIZE, {**TINY, **overrides})


def batch(n=4, seed=0):
    return testing.random_batch(n, SIZE, SCHEMA, seed)


@pytest.fixture(scope="module")
def model():
    m = build()
    m.compile()
    return m


def test_shapes_of_every_operation(model):
    x = batch(4)["image"]
    h = SIZE // 4
    codes = model.encode(x)
    assert len(codes) == M + 1 and all(z.shape == (4, h, h, 16) for z in codes)
    mask = tf.constant([[1.0, 0.0, 1.0, 0.0]] * 4)
    refs = tf.stack([x, x[::-1], tf.roll(x, 1, 0)], axis=1)
    outs = {
        "reconstruct": model.reconstruct(x),
        "transfer": model.transfer(x, x[::-1], mask),
        "transfer_from_reference": model.transfer_from_reference(x, x[::-1], ["Expression", "rest"]),
        "mix": model.mix(x, refs, tf.constant([[0.2, 0.3, 0.5]] * 4), mask),
        "interpolate": model.interpolate(x, x[::-1], tf.fill([4], 0.5), mask),
        "translate": model.translate(x, batch(4, seed=9)["attributes"]),
        "synthesize": model.synthesize(x, tf.constant([[1, 0, 3, 2]] * M)),
    }
    for name, out in outs.items():
        assert out.shape == x.shape, name
        assert float(tf.reduce_min(out)) >= -1.0 and float(tf.reduce_max(out)) <= 1.0, name
    post = model.latent_posteriors(x)
    assert set(post) == set(SCHEMA.names) | {"rest"}
    for per_attr in post.values():
        assert {a: p.shape for a, p in per_attr.items()} == {"Expression": (4, 8), "Illumination": (4, 5), "Gaze": (4, 3)}
        np.testing.assert_allclose(sum(tf.reduce_sum(p, 1) for p in per_attr.values()).numpy(), 3.0, rtol=1e-5)
    enc = model.attribute_encodings(x)
    assert {k: v.shape for k, v in enc.items()} == {n: (4, h * h * 16) for n in SCHEMA.names + ["rest"]}
    assert model.label_code(0, tf.constant([0, 7])).shape == (2, h, h, 16)


def test_identity_permutation_reproduces_reconstruction(model):
    x = batch(4, seed=1)["image"]
    identity = tf.tile(tf.range(4)[None], [M, 1])
    np.testing.assert_array_equal(model.synthesize(x, identity).numpy(), model.reconstruct(x).numpy())
    # ... and a real shuffle does change the image.
    assert not np.allclose(model.synthesize(x, tf.constant([[1, 0, 3, 2]] * M)).numpy(), model.reconstruct(x).numpy())


def test_offsets_to_permutations():
    perm = adv_disentangle.offsets_to_permutations(tf.constant([[1, 0], [-1, 2], [1, 0], [-1, -2]]))
    np.testing.assert_array_equal(perm.numpy(), [[1, 0, 3, 2], [0, 3, 2, 1]])


def test_uniform_target_loss_table():
    for k in (2, 3, 5, 8):
        uniform = tf.zeros([1, k])
        assert float(adv_disentangle.uniform_target_loss(uniform)[0]) == pytest.approx(math.log(k), rel=1e-6)
        assert float(adv_disentangle.softmax_entropy(uniform)[0]) == pytest.approx(math.log(k), rel=1e-6)
        # Any shift of the logits that keeps them equal is still uniform.
        assert float(adv_disentangle.uniform_target_loss(tf.fill([1, k], 3.7))[0]) == pytest.approx(math.log(k), rel=1e-6)
    # Hand-computed non-uniform case: logits (0, log 3) -> p = (1/4, 3/4); -(log 1/4 + log 3/4)/2.
    got = float(adv_disentangle.uniform_target_loss(tf.constant([[0.0, math.log(3.0)]]))[0])
    assert got == pytest.approx(-(math.log(0.25) + math.log(0.75)) / 2, rel=1e-6)
    # The loss is minimal (and the entropy maximal) exactly at uniform posteriors.
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(0, 2, [200, 5]).astype(np.float32))
    assert np.all(adv_disentangle.uniform_target_loss(logits).numpy() > math.log(5))
    assert np.all(adv_disentangle.softmax_entropy(logits).numpy() < math.log(5))


def test_disentanglement_loss_value_at_uniform_posteriors():
    """Zero latent heads give uniform posteriors; Eq. 4 averaged over m = 0..M then equals the
    mean over the M + 1 codes of the mean log|m'| over the other attributes."""
    m = build()
    for layer in m.latent_classifier.layers:
        for w in layer.weights:
            w.assign(tf.zeros_like(w))
    b = batch(3, seed=2)
    codes = m.encode(b["image"])
    cls, dis, _, ent = m._latent_terms(codes, m.class_indices(b["attributes"]))
    l8, l5, l3 = math.log(8), math.log(5), math.log(3)
    expected = ((l5 + l3) / 2 + (l8 + l3) / 2 + (l8 + l5) / 2 + (l8 + l5 + l3) / 3) / 4
    np.testing.assert_allclose(dis.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(cls.numpy(), (l8 + l5 + l3) / 3, rtol=1e-6)  # Eq. 3 at uniform posteriors
    np.testing.assert_allclose(ent.numpy(), 1.0, rtol=1e-6)  # normalised entropy is maximal


def test_mixture_with_one_hot_weights_equals_that_code(model):
    x = batch(2, seed=3)["image"]
    a, b = x[::-1], tf.roll(x, 1, 0) * 0.5
    mask = tf.constant([[0.0, 1.0, 0.0, 1.0]] * 2)
    got = model.mix(x, tf.stack([a, b], 1), tf.constant([[0.0, 1.0]] * 2), mask)
    # atol 1e-5: the two paths run the decoder on differently composed batches; float32 conv
    # reductions then differ by ~1e-6 (seen in CI: max 1.25e-6).
    np.testing.assert_allclose(got.numpy(), model.transfer(x, b, mask).numpy(), atol=1e-5)
    # Interpolation end points (Eq. 12): 0 reconstructs, 1 transfers.
    np.testing.assert_allclose(model.interpolate(x, a, tf.zeros([2]), mask).numpy(), model.reconstruct(x).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(model.interpolate(x, a, tf.ones([2]), mask).numpy(), model.transfer(x, a, mask).numpy(),
                               atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="weights .alpha. must be >= 0"):
        model.mix(x, tf.stack([a, b], 1), tf.constant([[-0.5, 1.5]] * 2), mask)


def test_train_step_updates_every_network_and_label_means():
    m = build()
    m.compile()
    b = batch(6, seed=4)
    codes_before = m.encode(b["image"])
    before = {name: testing.weights_of(net) for name, net in m.networks.items()}
    logs = m.train_step(b)
    assert set(logs) == set(m.LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values())
    for name, net in m.networks.items():
        assert testing.max_weight_change(before[name], testing.weights_of(net)) > 0, name
    # First visit of a class: its label-mean code is the mean code of that class in the batch.
    expr = b["labels"].numpy()[:, 0]
    z = codes_before[0].numpy().reshape(6, -1)
    for c in np.unique(expr):
        np.testing.assert_allclose(m.label_means[0].numpy()[c], z[expr == c].mean(0), rtol=1e-4, atol=1e-5)
    assert m.label_counts[0].numpy().sum() == 6


def test_translate_to_own_label_mean_changes_only_differing_codes():
    m = build()
    m.compile()
    b = batch(4, seed=5)
    x = b["image"]
    m.compute_label_means([b])
    codes = m.encode(x)
    # Target = what each latent classifier currently reads: translate keeps every code.
    target = np.zeros([4, SCHEMA.num_columns], np.float32)
    for j, (name, (s, _)) in enumerate(zip(SCHEMA.names, SCHEMA.column_slices)):
        pred = tf.argmax(m.latent_classifier(codes[j])[name], 1).numpy()
        target[np.arange(4), s + pred] = 1.0
    np.testing.assert_allclose(m.translate(x, tf.constant(target)).numpy(), m.reconstruct(x).numpy(), atol=1e-6)


def test_two_replica_step_equals_single_device(two_cpu_strategy):
    """SGD (linear in the gradient) so a doubled update under 2 replicas would show; fixed shuffle."""
    b = batch(4, seed=6)
    b["shuffle_offset"] = tf.constant([[1] * M, [-1] * M, [1] * M, [-1] * M])
    b = {k: v for k, v in b.items() if k != "labels"}

    def one_step(strategy):
        tf.keras.utils.set_random_seed(1)
        with strategy.scope():
            m = build(lambda_gp=0.0)
            # The generator keeps a weight average (ema_momentum): its update runs in every replica.
            m.compile({g: tf.keras.optimizers.SGD(0.01, use_ema=g == "g", ema_momentum=0.5) for g in ("g", "d", "c")})
        before = testing.weights_of(m)
        dist = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(b)))

        @tf.function
        def step(x):
            strategy.run(m.train_step, args=(x,))

        step(next(dist))
        means = [v.numpy() for v in m.label_means]
        out = before, testing.weights_of(m), {k: float(v) for k, v in m.logs().items()}, means
        m.reset_trackers()
        step(next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(b)))))
        with strategy.scope():
            m.average_weights()
        return out + (testing.weights_of(m),)

    before, single_w, single_logs, single_means, single_avg = one_step(tf.distribute.get_strategy())
    _, multi_w, multi_logs, multi_means, multi_avg = one_step(two_cpu_strategy)
    assert testing.max_weight_change(before, single_w) > 1e-4
    assert testing.max_weight_change(single_w, multi_w) < 1e-6
    assert testing.max_weight_change(single_w, single_avg) > 1e-5
    assert testing.max_weight_change(single_avg, multi_avg) < 1e-6
    for k in ("g/rec", "g/cls", "g/cls_syn", "g/dis", "d/adv", "c/cls"):
        np.testing.assert_allclose(multi_logs[k], single_logs[k], rtol=1e-4, err_msg=k)
    for a, c in zip(single_means, multi_means):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def test_export_round_trip(model, tmp_path):
    from tfattr.export import saved_model

    path = saved_model.export(model, str(tmp_path), "adv_disentangle", 1)
    errors = saved_model.verify(path, model)
    assert set(errors) == {"transfer", "translate", "mix", "interpolate", "reconstruct"}
    assert max(errors.values()) < 1e-4


def test_instance_norm_codes_cannot_see_brightness_but_batch_norm_codes_can():
    """Why `norm` exists: with Table I's instance norm the codes of x and of a darker copy 0.5 x are
    the same (the first conv is linear, zero padding scales too, and the norm divides the scale
    out), so no decoder can give them different colours; batch norm (inference) keeps the level."""
    x = batch(2, seed=3)["image"]
    for norm, same in (("instance", True), ("batch", False)):
        m = build(norm=norm)
        a, b = m.encode(x), m.encode(0.5 * x)
        diff = max(float(tf.reduce_max(tf.abs(u - v))) for u, v in zip(a, b))
        scale = max(float(tf.reduce_max(tf.abs(u))) for u in a)
        assert (diff < 1e-3 * scale) == same, (norm, diff, scale)
    layers = [type(layer).__name__ for layer in build(norm="batch").encoder.layers]
    assert "BatchNormalization" in layers and "GroupNormalization" not in layers


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="norm must be instance, batch or none, got 'layer'"):
        build(norm="layer")
    with pytest.raises(ValueError, match="categorical.*Eyeglasses"):
        models.build("adv_disentangle", testing.SCHEMA, SIZE, TINY)
    with pytest.raises(ValueError, match="image_size must be a multiple of 4"):
        models.build("adv_disentangle", SCHEMA, 18, TINY)
    m = build()
    with pytest.raises(ValueError, match="unknown code 'Smiling'; valid: Expression, Illumination, Gaze, rest"):
        m.code_mask(["Smiling"])


def test_fake_term_trains_the_classifier_toward_uniform_posteriors_on_synthesized_images():
    """lambda_c_fake (not in the paper): C_m's update also pushes its posterior on x~ toward uniform."""
    b = batch(4, seed=8)
    b["shuffle_offset"] = tf.constant([[1] * M, [-1] * M, [1] * M, [-1] * M])
    perms = adv_disentangle.offsets_to_permutations(b["shuffle_offset"])

    def entropy_after_one_step(lambda_c_fake):
        tf.keras.utils.set_random_seed(2)
        m = build(lambda_c_fake=lambda_c_fake, lambda_gp=0.0)
        m.compile({g: tf.keras.optimizers.SGD(0.01) for g in ("g", "d", "c")})
        x_syn = m.synthesize(b["image"], perms, training=True)
        before = m.classifier(x_syn)
        expected = np.mean([adv_disentangle.uniform_target_loss(before[n]).numpy() for n in SCHEMA.names], 0)
        logs = m.train_step(b)
        after = m.classifier(x_syn)
        entropy = np.mean([adv_disentangle.softmax_entropy(after[a.name]).numpy() / math.log(a.num_classes)
                           for a in SCHEMA])
        return float(logs["c/fake"]), float(expected.mean()), entropy

    off_logged, _, off_entropy = entropy_after_one_step(0.0)
    on_logged, on_expected, on_entropy = entropy_after_one_step(10.0)
    assert off_logged == 0.0
    np.testing.assert_allclose(on_logged, on_expected, rtol=1e-4)
    assert on_entropy > off_entropy + 1e-3, (on_entropy, off_entropy)


def test_dec_up_width_sets_the_upsampling_channels_and_keeps_shapes():
    default = build().networks["decoder"]
    wide = build(dec_up_width=12).networks["decoder"]
    assert [default.get_layer(f"dec_{i}").filters for i in (1, 2)] == [8, 4]  # Table I: 2w, w
    assert [wide.get_layer(f"dec_{i}").filters for i in (1, 2)] == [12, 6]
    assert wide.output_shape == default.output_shape == (None, SIZE, SIZE, 3)


def test_ema_momentum_averages_the_generator_and_a_restored_model_infers_with_the_average(tmp_path):
    """ema_momentum averages the encoders and decoder only; the discriminator keeps its weights."""
    testing.check_generator_average(build, batch(4, seed=3), tmp_path, untouched="discriminator")
    with pytest.raises(ValueError, match="ema_momentum"):
        build(ema_momentum=1.0)
