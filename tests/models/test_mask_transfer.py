import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import models
from tfattr.losses import mask as mask_losses
from tfattr.models import mask_transfer

SIZE = 32
TINY = {"base_width": 4, "num_blocks": 2, "sep": 64, "classifier_width": 8}


def build(**overrides):
    return models.build("mask_transfer", testing.SCHEMA, SIZE, {**TINY, **overrides})


def two_domain_batch(batch_size=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, [2, batch_size, SIZE, SIZE, 3]).astype(np.float32)
    return {"image_a": tf.constant(images[0]), "image_b": tf.constant(images[1])}


@pytest.fixture(scope="module")
def model():
    m = build()
    m.compile()
    return m


def test_shapes_and_ranges(model):
    batch = two_domain_batch()
    z, mask = model.transfer(batch["image_a"], batch["image_b"])
    assert z.shape == (4, SIZE, SIZE, 3) and mask.shape == (4, SIZE, SIZE, 1)
    assert float(tf.reduce_min(mask)) >= 0.0 and float(tf.reduce_max(mask)) <= 1.0
    assert float(tf.reduce_min(z)) >= -1.0 and float(tf.reduce_max(z)) <= 1.0
    assert model.separate_encoder.output.shape[1:] == (8, 8, 1)  # sep=64 dims at an 8x8 code


def test_zero_mask_returns_the_target_exactly():
    batch = two_domain_batch(seed=1)
    target, raw = batch["image_a"], batch["image_b"]
    out = mask_losses.composite(tf.zeros([4, SIZE, SIZE, 1]), raw, target)
    np.testing.assert_array_equal(out.numpy(), target.numpy())
    out = mask_losses.composite(tf.ones([4, SIZE, SIZE, 1]), raw, target)
    np.testing.assert_array_equal(out.numpy(), raw.numpy())


def test_transfer_with_zeroed_mask_head_is_the_source(model):
    """A mask logit of -inf (bias) gives m = 0 and z(a, b) = a, bit for bit (Eq. 2)."""
    m = build()
    out_layer = m.decoder_b.get_layer("decoder_b_out")
    kernel, bias = out_layer.get_weights()
    kernel[..., 0, :] = 0.0  # Conv2DTranspose kernel: [k, k, out, in]
    bias[0] = -1e4
    out_layer.set_weights([kernel, bias])
    batch = two_domain_batch(seed=2)
    z, mask = m.transfer(batch["image_a"], batch["image_b"])
    assert float(tf.reduce_max(mask)) == 0.0
    np.testing.assert_array_equal(z.numpy(), batch["image_a"].numpy())


def test_reconstruction_path_is_transfer_onto_itself(model):
    x = two_domain_batch(seed=3)["image_a"]
    z, mask = model.reconstruct(x)
    z2, mask2 = model.transfer(x, x)
    np.testing.assert_array_equal(z.numpy(), z2.numpy())
    # z(a, a) = m z_raw + (1 - m) a: where the mask is small the output is the input.
    # z - a = m (z_raw - a) with z_raw, a in [-1, 1]: the change is at most 2m at every pixel.
    assert np.all(np.abs(z.numpy() - x.numpy()) <= 2 * mask.numpy() + 1e-5)


def test_thresholded_transfer_takes_each_pixel_from_one_image(model):
    batch = two_domain_batch(seed=7)
    a, b = batch["image_a"], batch["image_b"]
    soft_z, soft = model.transfer(a, b)
    mask, raw = model.decode_b(model.common_encoder(a), model.separate_encoder(b))
    for threshold in (0.3, 0.5, 0.7):
        z, returned = model.transfer(a, b, threshold=threshold)
        np.testing.assert_array_equal(returned.numpy(), soft.numpy())  # the soft mask is returned
        inside = np.broadcast_to(soft.numpy() > threshold, a.shape)
        np.testing.assert_allclose(z.numpy()[inside], raw.numpy()[inside], atol=1e-6)
        np.testing.assert_array_equal(z.numpy()[~inside], a.numpy()[~inside])
    assert not np.allclose(soft_z.numpy(), model.transfer(a, b, threshold=0.5)[0].numpy())


def test_removal_keeps_pixels_outside_the_binary_mask(model):
    b = two_domain_batch(seed=4)["image_b"]
    for threshold in (0.3, 0.5, 0.7):
        removed, binary = model.remove(b, threshold)
        _, soft = model.segment(b, threshold)
        np.testing.assert_array_equal(binary.numpy(), (soft.numpy() > threshold).astype(np.float32))
        outside = np.broadcast_to(binary.numpy() == 0, b.shape)
        np.testing.assert_array_equal(removed.numpy()[outside], b.numpy()[outside])
        inside = np.broadcast_to(binary.numpy() == 1, b.shape)
        unmasked = model.decoder_a(model.common_encoder(b)).numpy()
        np.testing.assert_allclose(removed.numpy()[inside], unmasked[inside], atol=1e-6)


def test_interpolation_endpoints_are_the_two_guides(model):
    batch = two_domain_batch(seed=5)
    a, b = batch["image_a"], batch["image_b"]
    b2 = b[::-1]
    z0, _ = model.interpolate(a, b, b2, tf.zeros([4]))
    z1, _ = model.interpolate(a, b, b2, tf.ones([4]))
    np.testing.assert_allclose(z0.numpy(), model.transfer(a, b)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(z1.numpy(), model.transfer(a, b2)[0].numpy(), atol=1e-6)


def test_sequential_transfer_and_reference_names(model):
    batch = two_domain_batch(seed=6)
    a, b = batch["image_a"], batch["image_b"]
    once = model.transfer(a, b)[0]
    out = mask_transfer.sequential_transfer(a, [(model, b), (model, None)])
    np.testing.assert_allclose(out.numpy(), model.remove(once)[0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(model.transfer_from_reference(a, b, ["Eyeglasses"]).numpy(), once.numpy())
    with pytest.raises(ValueError, match="Eyeglasses"):
        model.transfer_from_reference(a, b, ["Smiling"])


def test_train_step_finite_and_updates_every_network():
    m = build()
    m.compile()
    before = {name: testing.weights_of(net) for name, net in m.networks.items()}
    logs = m.train_step(two_domain_batch(seed=7))
    assert set(logs) == set(m.LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    for name, net in m.networks.items():
        assert testing.max_weight_change(before[name], testing.weights_of(net)) > 0, name
    logs = m.test_step(two_domain_batch(seed=8))
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_ema_momentum_averages_e_c_e_s_d_a_d_b_and_a_restored_model_infers_with_the_average(tmp_path):
    """ema_momentum averages the "g" group; the domain classifier C keeps its weights."""
    testing.check_generator_average(build, two_domain_batch(seed=3), tmp_path, untouched="domain_classifier")
    with pytest.raises(ValueError, match="ema_momentum"):
        build(ema_momentum=1.0)


def test_export_round_trip(model, tmp_path):
    from tfattr.export import saved_model

    path = saved_model.export(model, str(tmp_path), "mask_transfer", 1)
    errors = saved_model.verify(path, model)
    assert set(errors) == {"transfer", "remove", "segment", "interpolate", "replace"}
    served = saved_model.load(path).signatures["serving_default"]
    assert set(served.structured_outputs) == {"translated_image", "mask"}


def test_two_replica_step_equals_single_device(two_cpu_strategy):
    """One step on 2 replicas (2 pairs each) moves the weights as one step on 1 device
    (SGD: its update is linear in the gradient, so a doubled update would show). The train step
    draws nothing at random, and batch norm is synchronised across replicas."""
    batch = two_domain_batch(seed=9)

    def one_step(strategy):
        tf.keras.utils.set_random_seed(1)
        with strategy.scope():
            m = build()
            m.compile({"g": tf.keras.optimizers.SGD(0.05), "c": tf.keras.optimizers.SGD(0.05)})
        before = testing.weights_of(m)
        dist = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch)))

        @tf.function
        def step(b):
            strategy.run(m.train_step, args=(b,))

        step(next(dist))
        return before, testing.weights_of(m), {k: float(v) for k, v in m.logs().items()}

    before, single_w, single_logs = one_step(tf.distribute.get_strategy())
    _, multi_w, multi_logs = one_step(two_cpu_strategy)
    assert testing.max_weight_change(before, single_w) > 1e-3
    # A doubled update (a batch mean inside train_step) differs by 1.0; float noise measured <= 5e-3.
    assert testing.relative_update_difference(before, single_w, multi_w) < 5e-2
    for k in ("g/rec1_a", "g/rec2_b", "g/dc", "c/loss"):
        np.testing.assert_allclose(multi_logs[k], single_logs[k], rtol=1e-4, err_msg=k)


@pytest.mark.parametrize("upsample", ["deconv", "resize", "resize_output"])
def test_resize_decoder_has_no_checkerboard_on_a_constant_code(upsample):
    # A spatially constant code: nearest upsampling + stride-1 convs keep the interior constant; the
    # 4x4 stride-2 transposed convs print a period-2 pattern (the session-27 masks' dots). With
    # resize_output the hidden deconv's pattern stays, upsampled.
    m = build(decoder_upsample=upsample)
    h = mask_transfer.latent_size(m.config, SIZE)
    common = tf.ones([1, h, h, m.common_encoder.output.shape[-1]])
    separate = tf.ones([1, h, h, m.separate_encoder.output.shape[-1]])
    mask, raw = m.decode_b(common, separate)
    assert mask.shape == (1, SIZE, SIZE, 1) and raw.shape == (1, SIZE, SIZE, 3)
    assert m.decoder_a(common).shape == (1, SIZE, SIZE, 3)
    border = 3  # two 3x3 convs: one pixel at 16 px (two at 32) plus one at 32
    interior = np.concatenate([mask, raw], -1)[0, border:-border, border:-border]
    spread = float(np.max(np.std(interior.reshape(-1, 4), axis=0)))
    if upsample == "resize":
        assert spread < 1e-5
    else:
        assert spread > 1e-3


def test_bad_sizes_fail_with_a_located_message():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*num_blocks"):
        models.build("mask_transfer", testing.SCHEMA, 34, TINY)
    with pytest.raises(ValueError, match="sep=10"):
        build(sep=10)
    with pytest.raises(ValueError, match="decoder_upsample must be 'deconv', 'resize' or 'resize_output', got 'bilinear'"):
        build(decoder_upsample="bilinear")


def test_mask_iou():
    p = np.zeros([2, 4, 4], np.float32)
    t = np.zeros([2, 4, 4], np.float32)
    p[0, :2] = 1.0
    t[0, :1] = 1.0
    np.testing.assert_allclose(mask_losses.mask_iou(p, t).numpy(), [0.5, 1.0])


def test_training_loop_feeds_two_domain_batches():
    from tfattr import config as config_lib
    from tfattr.training import loop

    config = config_lib.TrainConfig(
        model="mask_transfer", dataset="synthetic", dataset_options="num_train=64,num_validation=8,num_test=16",
        attributes=("Eyeglasses", "Smiling"), image_size=SIZE, batch_size=4,
        hparams=",".join(f"{k}={v}" for k, v in TINY.items()))
    dataset, schema = loop.load_data(config, "train", 4, seed=0)
    assert schema.names == ["Eyeglasses", "Smiling"]
    batch = next(iter(dataset))
    assert batch["image_a"].shape == batch["image_b"].shape == (4, SIZE, SIZE, 3)
    np.testing.assert_array_equal(batch["labels_a"].numpy()[:, 0], 0)  # A: without the domain attribute
    np.testing.assert_array_equal(batch["labels_b"].numpy()[:, 0], 1)  # B: with it


@pytest.mark.parametrize("trains_raw", [True, False])
def test_recon2_gradient_reaches_the_raw_image_only_when_asked(trains_raw):
    m = build(recon2_trains_raw=trains_raw)
    batch = two_domain_batch(seed=5)
    out_kernel = m.decoder_b.get_layer("decoder_b_out").kernel  # [k, k, out=1 mask + 3 raw, in]
    with tf.GradientTape() as tape:
        terms, _, _ = m._forward(batch["image_a"], batch["image_b"], training=True)
        loss = tf.reduce_mean(terms["g/rec2_a"] + terms["g/rec2_b"])
    grad = tape.gradient(loss, out_kernel).numpy()
    assert np.abs(grad[:, :, :1]).max() > 0  # the mask channel always learns from L_Recon2
    assert (np.abs(grad[:, :, 1:]).max() > 0) == trains_raw


def test_zero_separate_code_makes_domain_a_reconstruction_independent_of_e_s():
    m = build(separate_code_a="zero")
    a, b = two_domain_batch(seed=6).values()
    before, _, _ = m._forward(a, b, training=False)
    for v in m.separate_encoder.trainable_variables:
        v.assign(v * 1.5 + 0.1)
    after, _, _ = m._forward(a, b, training=False)
    np.testing.assert_allclose(after["g/rec2_a"].numpy(), before["g/rec2_a"].numpy(), rtol=1e-6)
    assert np.abs(after["g/rec2_b"].numpy() - before["g/rec2_b"].numpy()).max() > 1e-6
    with pytest.raises(ValueError, match="separate_code_a"):
        build(separate_code_a="sometimes")


def test_mask_bias_init_sets_the_starting_mask():
    x = two_domain_batch(seed=7)["image_a"]
    default, opened = build(), build(mask_bias_init=3.0)
    np.testing.assert_array_equal(default.decoder_b.get_layer("decoder_b_out").bias.numpy(), 0.0)
    np.testing.assert_array_equal(opened.decoder_b.get_layer("decoder_b_out").bias.numpy(), [3.0, 0.0, 0.0, 0.0])
    m0 = float(tf.reduce_mean(default.transfer(x, x)[1]))
    m3 = float(tf.reduce_mean(opened.transfer(x, x)[1]))
    assert m3 > m0 + 0.2 and m3 > 0.7  # sigmoid(3) = 0.95 before the kernel's spread


@pytest.mark.parametrize("start,warmup,expected", [
    (0, 0, [1.0, 1.0, 1.0, 1.0]),
    (0, 4, [0.0, 0.25, 0.5, 1.0]),
    (2, 4, [0.0, 0.0, 0.0, 0.5]),
    (2, 0, [0.0, 0.0, 1.0, 1.0]),
])
def test_mask_prior_ramp_starts_after_mask_prior_start(start, warmup, expected):
    m = build(lambda_mask=1.0, mask_warmup_steps=warmup, mask_prior_start=start)
    m.compile()
    got = []
    for it in (0, 1, 2, 4):
        m.optimizers["g"].iterations.assign(it)
        got.append(float(m._ramp(m.config.mask_warmup_steps, m.config.mask_prior_start)))
    np.testing.assert_allclose(got, expected)


def test_a_cycle_term_with_zero_weight_is_skipped_and_the_others_are_unchanged():
    a, b = two_domain_batch(seed=11).values()
    both = build(lambda_cycle_common=1.0, lambda_cycle_separate=1.0)
    terms, _, _ = both._forward(a, b, training=False)
    assert float(tf.reduce_min(terms["g/cycle_common"])) > 0 and float(tf.reduce_min(terms["g/cycle_separate"])) > 0
    for name in ("common", "separate"):
        m = build(**{"lambda_cycle_common": 1.0, "lambda_cycle_separate": 1.0, f"lambda_cycle_{name}": 0.0})
        m.set_weights(both.get_weights())
        skipped, _, _ = m._forward(a, b, training=False)
        np.testing.assert_array_equal(skipped[f"g/cycle_{name}"], np.zeros(4))
        for k, v in terms.items():
            if k != f"g/cycle_{name}":
                np.testing.assert_allclose(skipped[k], v, rtol=1e-6, atol=1e-7, err_msg=k)


def test_mask_prior_stops_at_mask_prior_end():
    only_prior = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                                   "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    m = build(lambda_mask=2.0, mask_prior_start=1, mask_warmup_steps=2, mask_prior_end=5, **only_prior)
    m.compile()
    a, b = two_domain_batch(seed=10).values()
    terms, _, _ = m._forward(a, b, training=False)
    prior = float(tf.reduce_mean(terms["g/mask"]))
    got = []
    for it in (0, 2, 4, 5, 8):
        m.optimizers["g"].iterations.assign(it)
        got.append(float(tf.reduce_mean(m._generator_total(terms))))
    np.testing.assert_allclose(got, [0.0, 1.0 * prior, 2.0 * prior, 0.0, 0.0], rtol=1e-5, atol=1e-7)


def test_mask_binary_start_gives_the_binarisation_term_its_own_schedule():
    """mask_binary_start (not in the paper): -1 keeps the binarisation term on the L1 prior's
    schedule; otherwise it waits for its own start, ramps over mask_binary_warmup_steps, and
    outlives mask_prior_end."""
    only_priors = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                                    "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    schedule = dict(lambda_mask=2.0, lambda_mask_binary=3.0, mask_prior_start=1, mask_warmup_steps=2, mask_prior_end=5)
    a, b = two_domain_batch(seed=12).values()
    results = {}
    for start in (-1, 4):
        m = build(mask_binary_start=start, mask_binary_warmup_steps=4, **schedule, **only_priors)
        m.compile()
        terms, _, _ = m._forward(a, b, training=False)
        prior, binary = (float(tf.reduce_mean(terms[k])) for k in ("g/mask", "g/mask_binary"))
        assert binary > 0
        got = []
        for it in (0, 2, 4, 6, 9):
            m.optimizers["g"].iterations.assign(it)
            got.append(float(tf.reduce_mean(m._generator_total(terms))))
        results[start] = (got, prior, binary)
    got, prior, binary = results[-1]
    np.testing.assert_allclose(got, [0.0, prior + 1.5 * binary, 2.0 * prior + 3.0 * binary, 0.0, 0.0], rtol=1e-5)
    got, prior, binary = results[4]
    np.testing.assert_allclose(got, [0.0, prior, 2.0 * prior, 1.5 * binary, 3.0 * binary], rtol=1e-5)


@pytest.mark.parametrize("field,value", [("mask_binary_start", -2), ("mask_binary_warmup_steps", -1),
                                         ("mask_binary_center", 0.0), ("mask_binary_center", 1.0)])
def test_a_bad_binarisation_schedule_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        build(**{field: value})


@pytest.mark.parametrize("name", ["common", "separate"])
def test_cycle_weights_wait_for_cycle_start(name):
    """cycle_start / cycle_warmup_steps (not in the paper): each L_Cycle term adds nothing to the
    generator loss before cycle_start updates, then ramps to its lambda_cycle_* weight."""
    only_cycle = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                                   "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    m = build(**{**only_cycle, f"lambda_cycle_{name}": 2.0}, cycle_start=2, cycle_warmup_steps=4)
    m.compile()
    a, b = two_domain_batch(seed=9).values()
    terms, _, _ = m._forward(a, b, training=False)
    cycle = float(tf.reduce_mean(terms[f"g/cycle_{name}"]))
    assert cycle > 0
    got = []
    for it in (0, 2, 4, 6, 9):
        m.optimizers["g"].iterations.assign(it)
        got.append(float(tf.reduce_mean(m._generator_total(terms))))
    np.testing.assert_allclose(got, [0.0, 0.0, 1.0 * cycle, 2.0 * cycle, 2.0 * cycle], rtol=1e-5)


def test_mask_sparsity_term_shrinks_only_the_mask():
    """lambda_mask (not in the paper): the mean of m(a,b), m(b,b), m(a,a); its gradient closes the
    mask and never touches the raw image."""
    zeros = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                              "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    m = build(lambda_mask=1.0, **zeros)
    a, b = two_domain_batch(seed=8).values()
    out = m.decoder_b.get_layer("decoder_b_out")
    with tf.GradientTape() as tape:
        terms, masks, _ = m._forward(a, b, training=True)
        loss = tf.reduce_mean(m._generator_total(terms))
    np.testing.assert_allclose(terms["g/mask"].numpy(),
                               ((masks["mask/ab"] + masks["mask/bb"] + masks["mask/aa"]) / 3).numpy(), rtol=1e-6)
    np.testing.assert_allclose(loss.numpy(), tf.reduce_mean(terms["g/mask"]).numpy(), rtol=1e-6)
    grad = tape.gradient(loss, out.bias).numpy()
    assert grad[0] > 0  # descent lowers the mask logit
    np.testing.assert_array_equal(grad[1:], 0.0)  # the raw image is not asked to change
    assert float(tf.reduce_mean(build()._generator_total(terms) - build(lambda_mask=2.0)._generator_total(terms))) \
        == pytest.approx(-2.0 * float(tf.reduce_mean(terms["g/mask"])), rel=1e-5)


def test_gated_mask_prior_spares_the_pixels_d_a_cannot_render():
    """mask_prior_gate (not in the paper): m(b, b) is penalised only where |b - D_A(E_c(b))| is
    under the gate, m(a, a) everywhere, m(a, b) not at all; the gate passes no gradient to D_A."""
    zeros = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                              "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    a, b = two_domain_batch(seed=8).values()
    for gate, expected in ((100.0, lambda mk: (mk["mask/bb"] + mk["mask/aa"]) / 2),
                           (1e-9, lambda mk: mk["mask/aa"] / 2)):
        m = build(lambda_mask=1.0, mask_prior_gate=gate, **zeros)
        with tf.GradientTape() as tape:
            terms, masks, _ = m._forward(a, b, training=True)
            loss = tf.reduce_mean(m._generator_total(terms))
        np.testing.assert_allclose(terms["g/mask"].numpy(), expected(masks).numpy(), rtol=1e-6)
        grads = tape.gradient(loss, m.decoder_a.trainable_variables + m.decoder_b.trainable_variables)
        # zero, not None: the other terms enter the total with weight 0
        assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0 for g in grads[:len(m.decoder_a.trainable_variables)])
        assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[len(m.decoder_a.trainable_variables):])
    m = build(lambda_mask=1.0, mask_prior_gate=0.3, **zeros)
    terms, masks, _ = m._forward(a, b, training=False)
    residual = tf.reduce_mean(tf.abs(b - m.decoder_a(m.common_encoder(b))), -1, keepdims=True)
    m_bb = m.transfer(b, b)[1]
    gated = tf.reduce_mean(tf.reshape(m_bb * tf.cast(residual < 0.3, tf.float32), [len(b), -1]), 1)
    np.testing.assert_allclose(terms["g/mask"].numpy(), ((gated + masks["mask/aa"]) / 2).numpy(), rtol=1e-5)
    # mask_prior_gate_by="gain": penalised where D_B's raw image of (E_c(b), E_s(b)) is closer to b
    # than D_A's rendering by less than the gate.
    g = build(lambda_mask=1.0, mask_prior_gate=0.05, mask_prior_gate_by="gain", **zeros)
    terms, masks, _ = g._forward(a, b, training=False)
    c_b = g.common_encoder(b)
    m_bb, raw_bb = g.decode_b(c_b, g.separate_encoder(b))
    gain = tf.reduce_mean(tf.abs(b - g.decoder_a(c_b)) - tf.abs(b - raw_bb), -1, keepdims=True)
    gate = tf.cast(gain < 0.05, tf.float32)
    assert 0 < float(tf.reduce_mean(gate)) < 1
    gated = tf.reduce_mean(tf.reshape(m_bb * gate, [len(b), -1]), 1)
    np.testing.assert_allclose(terms["g/mask"].numpy(), ((gated + masks["mask/aa"]) / 2).numpy(), rtol=1e-5)


def test_mask_binary_term_pushes_each_pixel_toward_the_nearer_end():
    """lambda_mask_binary (not in the paper): 4 m (1 - m), 0 at m in {0, 1} and 1 at 0.5; its
    gradient opens a mostly-open mask further, closes a mostly-closed one, and leaves z_raw alone."""
    zero, half, one = (tf.fill([2, 4, 4, 1], v) for v in (0.0, 0.5, 1.0))
    np.testing.assert_allclose(mask_losses.undecided(zero).numpy(), 0.0)
    np.testing.assert_allclose(mask_losses.undecided(one).numpy(), 0.0)
    np.testing.assert_allclose(mask_losses.undecided(half).numpy(), 1.0)

    zeros = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                              "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    a, b = two_domain_batch(seed=8).values()
    for bias, direction in ((3.0, -1.0), (-3.0, 1.0)):  # gradient sign: descent raises / lowers the logit
        m = build(lambda_mask_binary=1.0, mask_bias_init=bias, **zeros)
        out = m.decoder_b.get_layer("decoder_b_out")
        with tf.GradientTape() as tape:
            terms, _, _ = m._forward(a, b, training=True)
            loss = tf.reduce_mean(m._generator_total(terms))
        np.testing.assert_allclose(loss.numpy(), tf.reduce_mean(terms["g/mask_binary"]).numpy(), rtol=1e-6)
        grad = tape.gradient(loss, out.bias).numpy()
        assert direction * grad[0] > 0
        np.testing.assert_array_equal(grad[1:], 0.0)


def test_mask_binary_center_moves_the_peak_and_the_turning_point():
    """mask_binary_center (not in the paper): the prior is 1 at the center, 0 at 0 and 1, equals
    4 m (1 - m) at 0.5, and descent pushes a pixel under the center to 0 and one over it to 1."""
    values = tf.constant([0.0, 0.1, 0.2, 0.3, 0.6, 1.0])
    mask = tf.reshape(values, [6, 1, 1, 1])
    np.testing.assert_allclose(mask_losses.undecided(mask, 0.2).numpy(),
                               [0.0, 0.75, 1.0, 0.984375, 0.75, 0.0], rtol=1e-6)  # u = 0, .25, .5, .5625, .75, 1
    np.testing.assert_allclose(mask_losses.undecided(mask, 0.5).numpy(), (4 * values * (1 - values)).numpy(), rtol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(mask)
        loss = tf.reduce_sum(mask_losses.undecided(mask, 0.2))
    grad = tape.gradient(loss, mask).numpy().ravel()
    assert grad[1] > 0 and grad[3] < 0 and grad[4] < 0  # 0.1 falls, 0.3 and 0.6 rise
    with pytest.raises(ValueError, match="center"):
        mask_losses.undecided(mask, 1.0)

    # Through the model: with D_B's output kernel zeroed every mask pixel is sigmoid(-1) = 0.27,
    # which the 0.5 peak closes further and a 0.1 peak opens.
    zeros = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                              "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    a, b = two_domain_batch(seed=8).values()
    for center, direction in ((0.5, 1.0), (0.1, -1.0)):
        m = build(lambda_mask_binary=1.0, mask_bias_init=-1.0, mask_binary_center=center, **zeros)
        out = m.decoder_b.get_layer("decoder_b_out")
        out.kernel.assign(tf.zeros_like(out.kernel))
        np.testing.assert_allclose(m.transfer(a, b)[1].numpy(), 1.0 / (1.0 + np.exp(1.0)), rtol=1e-5)
        with tf.GradientTape() as tape:
            terms, _, _ = m._forward(a, b, training=True)
            loss = tf.reduce_mean(m._generator_total(terms))
        assert direction * tape.gradient(loss, out.bias).numpy()[0] > 0


ONLY_EXTRA_TERMS = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                                     "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}


def _only_term_gradients(term, a, b, **overrides):
    """A model whose generator loss is `term` alone (the paper's terms weighted 0; asserted), and that
    loss's gradients on D_B's output bias (channel 0: the mask logit, 1-3: the raw image) and on D_A."""
    m = build(**ONLY_EXTRA_TERMS, **overrides)
    out = m.decoder_b.get_layer("decoder_b_out")
    with tf.GradientTape() as tape:
        terms, _, _ = m._forward(a, b, training=True)
        loss = tf.reduce_mean(m._generator_total(terms))
    np.testing.assert_allclose(loss.numpy(), tf.reduce_mean(terms[term]).numpy(), rtol=1e-6)
    grads = tape.gradient(loss, [out.bias] + m.decoder_a.trainable_variables)
    return m, grads[0].numpy(), grads[1:]


def test_mask_fill_term_opens_m_bb_only_where_b_differs_from_d_a_of_its_common_code():
    """lambda_mask_fill (not in the paper): the pixel mean of (1 - m(b, b)) where
    |b - D_A(E_c(b))| >= mask_fill_gate; descent raises the mask logit,
    leaves z_raw and D_A alone (the gate is stopped), a gate nothing passes gives 0, and
    lambda_mask_fill=0 computes nothing."""
    a, b = two_domain_batch(seed=8).values()
    m, out_grad, da_grads = _only_term_gradients("g/mask_fill", a, b, lambda_mask_fill=1.0, mask_fill_gate=0.3)
    assert out_grad[0] < 0  # descent raises the mask logit
    np.testing.assert_array_equal(out_grad[1:], 0.0)  # the raw image is not asked to change
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0 for g in da_grads)

    # The same value recomputed from the public operations (inference mode: batch norm's averages).
    terms, _, _ = m._forward(a, b, training=False)
    c_b = m.common_encoder(b)
    s_b = m.separate_encoder(b)

    mask_bb = m.decode_b(c_b, s_b)[0]
    gate = tf.cast(tf.reduce_mean(tf.abs(b - m.decoder_a(c_b)), -1, keepdims=True) >= 0.3, tf.float32)
    expected = tf.reduce_mean(tf.reshape(gate * (1 - mask_bb), [len(a), -1]), 1)
    assert float(tf.reduce_max(expected)) > 0
    np.testing.assert_allclose(terms["g/mask_fill"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)

    shut = build(lambda_mask_fill=1.0, mask_fill_gate=1e9, **ONLY_EXTRA_TERMS)
    np.testing.assert_array_equal(shut._forward(a, b, training=False)[0]["g/mask_fill"].numpy(), 0.0)
    np.testing.assert_array_equal(build()._forward(a, b, training=False)[0]["g/mask_fill"].numpy(), 0.0)

    # mask_fill_gate_by="gain": only where D_B's raw image of (E_c(b), E_s(b)) is closer to b than
    # D_A's rendering by at least the gate (same weights, so the same networks' outputs).
    g = build(lambda_mask_fill=1.0, mask_fill_gate=0.05, mask_fill_gate_by="gain", **ONLY_EXTRA_TERMS)
    g.set_weights(m.get_weights())
    raw_bb = m.decode_b(c_b, s_b)[1]
    gain = tf.reduce_mean(tf.abs(b - m.decoder_a(c_b)) - tf.abs(b - raw_bb), -1, keepdims=True)
    gate = tf.cast(gain >= 0.05, tf.float32)
    assert 0 < float(tf.reduce_mean(gate)) < 1
    expected = tf.reduce_mean(tf.reshape(gate * (1 - mask_bb), [len(a), -1]), 1)
    np.testing.assert_allclose(g._forward(a, b, training=False)[0]["g/mask_fill"].numpy(), expected.numpy(),
                               rtol=1e-5, atol=1e-7)


def test_mask_fill_waits_for_its_start_and_ramps():
    only_fill = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_rec1_b", "lambda_cycle_common",
                                  "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    m = build(lambda_mask_fill=2.0, mask_fill_gate=1e-6, mask_fill_start=2, mask_fill_warmup_steps=4, **only_fill)
    m.compile()
    a, b = two_domain_batch(seed=13).values()
    terms, _, _ = m._forward(a, b, training=False)
    fill = float(tf.reduce_mean(terms["g/mask_fill"]))
    assert fill > 0
    got = []
    for it in (0, 2, 4, 6, 9):
        m.optimizers["g"].iterations.assign(it)
        got.append(float(tf.reduce_mean(m._generator_total(terms))))
    np.testing.assert_allclose(got, [0.0, 0.0, 1.0 * fill, 2.0 * fill, 2.0 * fill], rtol=1e-5)


@pytest.mark.parametrize("field,value", [("lambda_mask_fill", -1.0), ("mask_fill_gate", 0.0),
                                         ("mask_fill_start", -1), ("mask_fill_warmup_steps", -1),
                                         ("mask_fill_gate_by", "raw"), ("mask_prior_gate_by", "raw")])
def test_a_bad_fill_setting_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        build(**{field: value})


def test_raw_reconstruction_term_trains_the_raw_image_under_a_closed_mask():
    """lambda_raw_b (not in the paper): |z_raw(b, b) - b| per example. With the mask shut, Eq. 6
    gives D_B's raw image no gradient; this term still does, and never touches the mask channel."""
    zeros = {k: 0.0 for k in ("lambda_dc", "lambda_rec1_a", "lambda_cycle_common",
                              "lambda_cycle_separate", "lambda_rec2_a", "lambda_rec2_b")}
    a, b = two_domain_batch(seed=10).values()

    def out_bias_grad(**overrides):
        m = build(mask_bias_init=-30.0, **zeros, **overrides)  # m = sigmoid(-30 + ...) ~ 1e-13
        out = m.decoder_b.get_layer("decoder_b_out")
        with tf.GradientTape() as tape:
            terms, _, _ = m._forward(a, b, training=True)
            loss = tf.reduce_mean(m._generator_total(terms))
        # The value, in inference mode (training mode normalises over the mixed A+B batch).
        terms, _, _ = m._forward(a, b, training=False)
        _, raw = m.decode_b(m.common_encoder(b), m.separate_encoder(b))
        np.testing.assert_allclose(terms["g/raw_b"].numpy(),
                                   tf.reduce_mean(tf.abs(raw - b), [1, 2, 3]).numpy(), rtol=1e-5)
        return tape.gradient(loss, out.bias).numpy()

    closed = out_bias_grad(lambda_raw_b=0.0)  # Eq. 6 alone
    assert np.abs(closed[1:]).max() < 1e-8
    raw_only = out_bias_grad(lambda_rec1_b=0.0, lambda_raw_b=1.0)
    assert np.abs(raw_only[1:]).max() > 1e-4
    assert raw_only[0] == 0.0


def test_raw_content_term_weights_d_b_raw_where_d_a_misses_b():
    """lambda_raw_b_content (not in the paper): the pixel mean of |z_raw(b, b) - b| where
    mean_channels |b - D_A(E_c(b))| >= raw_b_content_gate. Its gradient reaches D_B's raw channels
    only (the gate is stopped: not D_A, not the mask channel); a gate nothing passes gives 0, and
    lambda_raw_b_content=0 computes nothing."""
    a, b = two_domain_batch(seed=8).values()
    m, out_grad, da_grads = _only_term_gradients("g/raw_b_content", a, b, lambda_raw_b_content=1.0,
                                                 raw_b_content_gate=0.3)
    assert out_grad[0] == 0.0  # the mask channel
    assert np.abs(out_grad[1:]).max() > 1e-6  # the raw image's channels
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0 for g in da_grads)

    terms, _, _ = m._forward(a, b, training=False)
    c_b = m.common_encoder(b)
    raw_bb = m.decode_b(c_b, m.separate_encoder(b))[1]
    gate = tf.cast(tf.reduce_mean(tf.abs(b - m.decoder_a(c_b)), -1, keepdims=True) >= 0.3, tf.float32)
    assert 0 < float(tf.reduce_mean(gate)) < 1
    expected = tf.reduce_mean(tf.reshape(gate * tf.abs(raw_bb - b), [len(a), -1]), 1)
    np.testing.assert_allclose(terms["g/raw_b_content"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)

    shut = build(lambda_raw_b_content=1.0, raw_b_content_gate=1e9, **ONLY_EXTRA_TERMS)
    np.testing.assert_array_equal(shut._forward(a, b, training=False)[0]["g/raw_b_content"].numpy(), 0.0)
    np.testing.assert_array_equal(build()._forward(a, b, training=False)[0]["g/raw_b_content"].numpy(), 0.0)


def test_raw_a_term_trains_d_b_to_render_a_from_its_common_code_alone():
    """lambda_raw_a (not in the paper): |D_B(E_c(a), 0) - a| per example, unmasked. Its gradient
    reaches D_B's raw channels and E_c, not the mask channel, D_A or (outside batch norm's batch
    statistics) E_s, the code being zero;
    lambda_raw_a=0 computes nothing."""
    a, b = two_domain_batch(seed=8).values()
    m, out_grad, da_grads = _only_term_gradients("g/raw_a", a, b, lambda_raw_a=1.0)
    assert out_grad[0] == 0.0
    assert np.abs(out_grad[1:]).max() > 1e-6
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0 for g in da_grads)
    # Inference mode: in training mode D_B's batch norm couples the zero-code chunk to the others.
    with tf.GradientTape() as tape:
        terms, _, _ = m._forward(a, b, training=False)
        loss = tf.reduce_mean(m._generator_total(terms))
    g_sep, g_common = tape.gradient(loss, [m.separate_encoder.trainable_variables,
                                           m.common_encoder.trainable_variables])
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0 for g in g_sep)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in g_common)

    terms, _, _ = m._forward(a, b, training=False)
    c_a = m.common_encoder(a)
    raw = m.decode_b(c_a, tf.zeros_like(m.separate_encoder(a)))[1]
    np.testing.assert_allclose(terms["g/raw_a"].numpy(), tf.reduce_mean(tf.abs(raw - a), [1, 2, 3]).numpy(),
                               rtol=1e-5)
    np.testing.assert_array_equal(build()._forward(a, b, training=False)[0]["g/raw_a"].numpy(), 0.0)


def test_reencoded_recon1_b_puts_b_s_content_back_on_its_removed_face():
    """lambda_rec1_b_reencoded (not in the paper): |z(D_A(E_c(b)), b) - b| per example, Eq. 6 through
    z. Its gradient reaches D_B's mask and raw channels, not D_A (the removed image is stopped); the
    fill then covers m(D_A(E_c(b)), b) as well as m(b, b), by b's gate; 0 computes nothing."""
    a, b = two_domain_batch(seed=8).values()
    m, out_grad, da_grads = _only_term_gradients("g/rec1_b_reencoded", a, b, lambda_rec1_b_reencoded=1.0)
    assert np.abs(out_grad).min() > 0  # the mask logit and the raw image
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0 for g in da_grads)

    terms, _, _ = m._forward(a, b, training=False)
    removed = m.decoder_a(m.common_encoder(b))
    z, _ = m.transfer(removed, b)
    np.testing.assert_allclose(terms["g/rec1_b_reencoded"].numpy(),
                               tf.reduce_mean(tf.abs(z - b), [1, 2, 3]).numpy(), rtol=1e-5)
    np.testing.assert_array_equal(build()._forward(a, b, training=False)[0]["g/rec1_b_reencoded"].numpy(), 0.0)

    fill = {"lambda_mask_fill": 1.0, "mask_fill_gate": 0.3}
    both = build(lambda_rec1_b_reencoded=1.0, **fill, **ONLY_EXTRA_TERMS)
    terms, _, _ = both._forward(a, b, training=False)
    c_b, s_b = both.common_encoder(b), both.separate_encoder(b)
    removed = both.decoder_a(c_b)
    gate = tf.cast(tf.reduce_mean(tf.abs(b - removed), -1, keepdims=True) >= 0.3, tf.float32)
    assert 0 < float(tf.reduce_mean(gate)) < 1
    m_bb = both.decode_b(c_b, s_b)[0]
    m_rb = both.decode_b(both.common_encoder(removed), s_b)[0]
    per = [tf.reduce_mean(tf.reshape(gate * (1 - mk), [len(b), -1]), 1) for mk in (m_bb, m_rb)]
    np.testing.assert_allclose(terms["g/mask_fill"].numpy(), ((per[0] + per[1]) / 2).numpy(), rtol=1e-5)
    assert np.abs((per[0] - per[1]).numpy()).max() > 1e-6  # the two masks differ: both enter


def test_gain_zero_gate_reads_d_b_without_the_separate_code():
    """mask_prior_gate_by="gain_zero" (not in the paper): the prior applies to m(b, b) where
    |b - D_B(E_c(b), 0)| - |b - D_B(E_c(b), E_s(b))| is under the gate; gate_readings asks for
    that zero-code image by name."""
    a, b = two_domain_batch(seed=8).values()
    g = build(lambda_mask=1.0, mask_prior_gate=0.05, mask_prior_gate_by="gain_zero", **ONLY_EXTRA_TERMS)
    terms, masks, _ = g._forward(a, b, training=False)
    c_b, s_b = g.common_encoder(b), g.separate_encoder(b)
    m_bb, raw_bb = g.decode_b(c_b, s_b)
    raw_zero = g.decode_b(c_b, tf.zeros_like(s_b))[1]
    gain = tf.reduce_mean(tf.abs(b - raw_zero) - tf.abs(b - raw_bb), -1, keepdims=True)
    gate = tf.cast(gain < 0.05, tf.float32)
    assert 0 < float(tf.reduce_mean(gate)) < 1
    gated = tf.reduce_mean(tf.reshape(m_bb * gate, [len(b), -1]), 1)
    np.testing.assert_allclose(terms["g/mask"].numpy(), ((gated + masks["mask/aa"]) / 2).numpy(), rtol=1e-5)
    # The gain against D_A's rendering is another gate: the value differs.
    d_a = build(lambda_mask=1.0, mask_prior_gate=0.05, mask_prior_gate_by="gain", **ONLY_EXTRA_TERMS)
    d_a.set_weights(g.get_weights())
    assert np.abs(d_a._forward(a, b, training=False)[0]["g/mask"].numpy() - terms["g/mask"].numpy()).max() > 1e-6
    with pytest.raises(ValueError, match="raw_b_zero"):
        mask_transfer.gate_readings(b, b, b, ["gain_zero"])


@pytest.mark.parametrize("field,value", [("lambda_raw_b_content", -1.0), ("raw_b_content_gate", 0.0),
                                         ("lambda_raw_a", -1.0), ("lambda_rec1_b_reencoded", -1.0)])
def test_a_bad_raw_content_setting_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        build(**{field: value})


def test_domain_classifier_steps_updates_c_several_times_on_the_step_s_codes():
    """domain_classifier_steps (not in the paper): k C updates per G update, on this step's E_c codes."""
    batch = two_domain_batch(seed=9)
    x = tf.concat([batch["image_a"], batch["image_b"]], 0)
    n = batch["image_a"].shape[0]

    def c_loss_after_one_step(steps):
        tf.keras.utils.set_random_seed(4)
        m = build(domain_classifier_steps=steps)
        m.compile()
        common = m.common_encoder(x, training=True)  # what the step's forward pass computes
        m.train_step(batch)
        assert int(m.optimizers["c"].iterations) == steps and int(m.optimizers["g"].iterations) == 1
        logits = m.domain_classifier(common, training=True)
        return float(tf.reduce_mean(mask_losses.domain_classifier_loss(logits[:n], logits[n:])))

    assert c_loss_after_one_step(4) < c_loss_after_one_step(1) - 1e-3
    with pytest.raises(ValueError, match="domain_classifier_steps"):
        build(domain_classifier_steps=0)


@pytest.mark.parametrize("target,label", [("b", 1.0), ("a", 0.0), ("uniform", 0.5)])
def test_confusion_target_sets_the_label_e_c_trains_both_domains_toward(target, label):
    """Eq. 3 ("b"): descent on L_DC raises C's domain-B logit of b's own code; the release's "a"
    lowers it; "uniform" moves it toward 0 (p = 0.5)."""
    m = build(confusion_target=target)
    a, b = two_domain_batch(seed=10).values()
    terms, _, common = m._forward(a, b, training=False)
    logits = m.domain_classifier(common, training=False)
    n = a.shape[0]
    np.testing.assert_allclose(terms["g/dc"].numpy(),
                               mask_losses.domain_confusion_loss(logits[:n], logits[n:], label).numpy(), rtol=1e-6)
    z = tf.constant([[-2.0], [2.0]])
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = tf.reduce_sum(mask_losses.domain_confusion_loss(tf.zeros_like(z), z, label))
    descent = -tape.gradient(loss, z).numpy()[:, 0]
    expected = {"b": [1, 1], "a": [-1, -1], "uniform": [1, -1]}[target]
    np.testing.assert_array_equal(np.sign(descent), expected)
    with pytest.raises(ValueError, match="confusion_target"):
        build(confusion_target="c")


def test_transfer_domains_and_figures_use_the_declared_classes(tmp_path):
    from PIL import Image

    from tfattr.data import synthetic
    from tfattr.metrics import figures
    from tfattr.utils import image_grid

    m = build(domain_attribute="Hair_Color", domain_value="black", domain_value_a="blond")
    assert m.transfer_domains == {"Hair_Color": ("black", "blond")}
    assert build().transfer_domains == {"Eyeglasses": ("yes", None)}
    attr, ((xa, pa), (xb, pb)) = figures._domain_faces(m, 3, seed=0)
    hair = synthetic.SCHEMA["Hair_Color"]
    assert attr == "Hair_Color" and xa.shape == xb.shape == (3, SIZE, SIZE, 3)
    assert list(pa["hair_color"]) == [hair.value_index("blond")] * 3
    assert list(pb["hair_color"]) == [hair.value_index("black")] * 3
    paths = figures.write_content_transfer_figures(m, str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["transfer_grid.png", "segmentation.png", "interpolation.png"]
    seg = np.asarray(Image.open(paths[1]))
    assert seg.shape == (6 * (SIZE + 1) + 1, 5 * (SIZE + 1) + 1, 3)
    # Row 0: the first black-haired test face, then the renderer's hair layer of that face.
    _, (_, (xb6, pb6)) = figures._domain_faces(m, 6, seed=0)
    tile = lambda r, c: seg[1 + r * (SIZE + 1):(r + 1) * (SIZE + 1), 1 + c * (SIZE + 1):(c + 1) * (SIZE + 1)]  # noqa: E731
    np.testing.assert_array_equal(tile(0, 0), image_grid.to_uint8(xb6[0]))
    truth = synthetic.render(pb6, SIZE, outputs=("masks",))["masks"]["hair"][0]
    np.testing.assert_array_equal(tile(0, 1)[..., 0], np.clip(np.round(truth * 255), 0, 255).astype(np.uint8))
    grid = np.asarray(Image.open(paths[0]))
    assert grid.shape == (11 * (SIZE + 1) + 1, 6 * (SIZE + 1) + 1, 3)


def test_standing_batch_norm_uses_both_domains_and_reaches_decoder_a():
    """Averaged weights get batch-norm statistics from the train step's forward pass: E_c's come
    from a and b together (as in `_forward`), not from a alone (`call` is z(a, b)), and D_A's move too."""
    m = build()
    a, b = two_domain_batch(seed=13).values()
    conv = tf.keras.Model(m.common_encoder.input, m.common_encoder.get_layer("common_encoder_d0").output)
    norm_e = m.common_encoder.get_layer("common_encoder_d0_norm")
    norm_d = m.decoder_a.get_layer("decoder_a_u0_norm")
    d_before = norm_d.moving_mean.numpy().copy()
    assert m.standing_batch_norm([{"image_a": a, "image_b": b}], ["common_encoder", "decoder_a"]) == 1
    both = tf.reduce_mean(conv(tf.concat([a, b], 0)), axis=[0, 1, 2]).numpy()
    only_a = tf.reduce_mean(conv(a), axis=[0, 1, 2]).numpy()
    np.testing.assert_allclose(norm_e.moving_mean.numpy(), both, rtol=1e-4, atol=1e-5)
    assert np.abs(both - only_a).max() > 1e-3
    assert np.abs(norm_d.moving_mean.numpy() - d_before).max() > 1e-4
