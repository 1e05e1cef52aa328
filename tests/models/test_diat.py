import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import models
from tfattr.models import diat

SIZE = 32
TINY = {"base_width": 4, "d_width": 4, "d_fc": 8, "num_res_blocks": 1, "enhance_width": 4,
        "identity_network": "random_vgg_face", "pretrain_steps": 0}


def build(**overrides):
    return models.build("diat", testing.SCHEMA, SIZE, {**TINY, **overrides})


def two_domain_batch(batch_size=4, seed=0, mask=False):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, [2, batch_size, SIZE, SIZE, 3]).astype(np.float32)
    out = {"image_a": tf.constant(images[0]), "image_b": tf.constant(images[1])}
    if mask:
        m = np.zeros([batch_size, SIZE, SIZE, 1], np.float32)
        m[:, 8:20, 4:28] = 1.0
        out["mask_a"] = tf.constant(m)
    return out


@pytest.fixture(scope="module")
def model():
    m = build(enhancement="global")
    m.compile()
    return m


def test_shapes_networks_and_taps(model):
    x = two_domain_batch()["image_a"]
    assert model.transfer(x).shape == (4, SIZE, SIZE, 3)
    assert set(model.networks) == {"transform", "discriminator", "enhancer"}
    d = model.discriminator
    # Table 2 at 32 px: 16, 16, 8, 8, 4, 2; taps d_conv4 / d_conv5 for DIAT-A.
    assert [d.get_layer(f"d_conv{i}").output.shape[1] for i in range(1, 7)] == [16, 16, 8, 8, 4, 2]
    assert set(build(variant="diat").networks) == {"transform", "discriminator", "reconstruction", "denoiser"}
    assert model.identity_net is None  # DIAT-A + global enhancement need no identity network
    assert build(variant="diat2").identity_net is not None


def test_translate_edits_only_reference_targets_and_raw_transfer_is_t(model):
    x = two_domain_batch(seed=1)["image_a"]
    labels = np.zeros([4, len(testing.SCHEMA)], np.int32)
    labels[:, 0] = [0, 1, 0, 1]  # Eyeglasses target: no (the reference value), yes, no, yes
    out = model.translate(x, testing.SCHEMA.encode(labels)).numpy()
    edited = model.transfer(x).numpy()
    np.testing.assert_array_equal(out[[1, 3]], x.numpy()[[1, 3]])
    np.testing.assert_array_equal(out[[0, 2]], edited[[0, 2]])
    np.testing.assert_array_equal(model.transfer(x, enhance=False).numpy(), model.transform(x).numpy())
    blurred = diat.gaussian_blur(model.transform(x), 1.8)
    np.testing.assert_allclose(edited, model.enhancer(blurred).numpy(), atol=1e-6)


def test_gaussian_blur_matches_scipy_and_keeps_constants():
    from scipy import ndimage

    k = diat.gaussian_kernel(1.8)
    assert len(k) == 13 and abs(float(k.sum()) - 1.0) < 1e-6
    x = np.random.default_rng(0).uniform(-1, 1, [1, 24, 24, 1]).astype(np.float32)
    want = ndimage.gaussian_filter(x[0, ..., 0].astype(np.float64), 1.8, mode="mirror", truncate=6 / 1.8)
    np.testing.assert_allclose(diat.gaussian_blur(tf.constant(x), 1.8).numpy()[0, ..., 0], want, atol=1e-5)
    c = tf.fill([1, 16, 16, 3], 0.25)
    np.testing.assert_allclose(diat.gaussian_blur(c, 1.8).numpy(), 0.25, atol=1e-6)


def test_landmark_mask_is_the_grown_convex_hull():
    lm = np.zeros([1, 68, 2], np.float32)
    lm[:] = [16.0, 16.0]
    square = [(8, 8), (24, 8), (24, 24), (8, 24)]
    for i, j in zip(range(48, 68), range(20)):
        lm[0, i] = square[j % 4] if j < 4 else (16.0, 16.0 + (j % 3))  # interior points do not matter
    m0 = diat.landmark_mask(lm, "Smiling", 32, margin=0.0)[0, ..., 0]
    assert m0.sum() == 16 * 16 and m0[8:24, 8:24].all()
    m1 = diat.landmark_mask(lm, "Smiling", 32, margin=2 / 32)[0, ..., 0]
    assert m1[6:26, 6:26].all() and m1.sum() == 20 * 20
    with pytest.raises(ValueError, match="valid"):
        diat.landmark_mask(lm, "Hair_Color", 32)


def test_pretraining_ignores_the_adversarial_and_identity_terms():
    """While pre-training (Eq. 8), T's update must not depend on lambda_id or the discriminator."""
    def step(**hp):
        tf.keras.utils.set_random_seed(3)
        m = build(variant="diat2", pretrain_steps=5, **hp)
        m.compile()
        m.train_step(two_domain_batch(seed=2))
        return testing.weights_of(m.transform), m

    w1, m1 = step(lambda_id=0.0)
    w2, _ = step(lambda_id=100.0)
    assert testing.max_weight_change(w1, w2) == 0.0
    assert float(m1.logs()["t/pre"]) > 0


def test_zero_identity_weight_equals_attribute_only_diat1():
    def step(**hp):
        tf.keras.utils.set_random_seed(4)
        m = build(**hp)
        m.compile()
        before = testing.weights_of(m.transform)
        m.train_step(two_domain_batch(seed=3))
        return before, testing.weights_of(m.transform)

    before, diat1 = step(variant="diat1")
    _, zero_id = step(variant="diat2", lambda_id=0.0)
    _, with_id = step(variant="diat2", lambda_id=10.0)
    assert testing.max_weight_change(diat1, zero_id) == 0.0
    assert testing.max_weight_change(before, diat1) > 0
    assert testing.max_weight_change(diat1, with_id) > 0


@pytest.mark.parametrize("hp", [dict(variant="diat_a"), dict(variant="diat", enhancement="local")])
def test_train_step_finite_and_updates_every_network(hp):
    m = build(**hp)
    m.compile()
    before = {name: testing.weights_of(net) for name, net in m.networks.items()}
    m.train_step(two_domain_batch(seed=4, mask=True))
    # Two steps: the residual local enhancer's zero-initialised output conv passes no gradient to
    # the layers below it on the first step.
    logs = m.train_step(two_domain_batch(seed=5, mask=True))
    assert set(logs) == set(m.LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    for name, net in m.networks.items():
        assert testing.max_weight_change(before[name], testing.weights_of(net)) > 0, name


def test_residual_local_enhancer_starts_at_the_edit_and_plain_one_is_bounded():
    x = two_domain_batch(seed=6)["image_a"]
    m = build(enhancement="local", variant="diat1")
    np.testing.assert_array_equal(m.transfer(x).numpy(), m.transfer(x, enhance=False).numpy())
    plain = build(enhancement="local", variant="diat1", enhance_residual=False)
    out = plain.transfer(x).numpy()
    assert np.abs(out - plain.transfer(x, enhance=False).numpy()).max() > 1e-3
    assert np.all(np.abs(out) < 1.0)


@pytest.mark.parametrize("region_mean", [True, False])
def test_local_enhancement_loss_is_eq10_with_the_chosen_normalisation(region_mean):
    rng = np.random.default_rng(7)
    x, t, e = rng.uniform(-1, 1, [3, 2, 8, 8, 3]).astype(np.float32)
    mask = np.zeros([2, 8, 8, 1], np.float32)
    mask[0, 2:4, 2:6] = 1.0  # 8 of 64 pixels
    mask[1, :, :4] = 1.0  # half
    got = diat.local_enhancement_loss(x, t, e, mask, ["pixels"], [0.1], region_mean=region_mean).numpy()
    for n in range(2):
        m = mask[n]
        unchanged = ((1 - m) * (e[n] - x[n]) ** 2).mean()
        content = 0.1 * 0.5 * ((m * (t[n] - e[n])) ** 2).mean()
        if region_mean:
            unchanged, content = unchanged / (1 - m.mean()), content / m.mean()
        np.testing.assert_allclose(got[n], unchanged + content, rtol=1e-5)
    # Zero exactly when E is x outside the mask and T(x) inside it.
    ideal = mask * t + (1 - mask) * x
    assert np.all(diat.local_enhancement_loss(x, t, ideal, mask, ["pixels"], [0.1]).numpy() == 0)


def test_errors_name_the_field():
    m = build(enhancement="local", variant="diat1")
    m.compile()
    with pytest.raises(ValueError, match="mask_a"):
        m.train_step(two_domain_batch())
    with pytest.raises(ValueError, match="identity_weights"):
        build(variant="diat2", identity_network="vgg_face")
    with pytest.raises(ValueError, match="variant"):
        build(variant="diat9")
    with pytest.raises(ValueError, match="multiple of 32"):
        models.build("diat", testing.SCHEMA, 48, TINY)


def test_export_round_trip(model, tmp_path):
    from tfattr.export import saved_model

    path = saved_model.export(model, str(tmp_path), "diat", 1)
    errors = saved_model.verify(path, model)
    assert set(errors) == {"transfer", "transfer_raw", "translate"}
    served = saved_model.load(path).signatures["serving_default"]
    assert set(served.structured_outputs) == {"translated_image"}


@pytest.mark.parametrize("pretrain_steps", [0, 5])
def test_two_replica_step_equals_single_device(two_cpu_strategy, pretrain_steps):
    batch = two_domain_batch(seed=9)

    def one_step(strategy):
        tf.keras.utils.set_random_seed(1)
        with strategy.scope():
            m = build(variant="diat_a", pretrain_steps=pretrain_steps)
            m.compile({g: tf.keras.optimizers.SGD(0.05) for g in m.OPTIMIZER_GROUPS})
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
    assert testing.max_weight_change(single_w, multi_w) < 1e-5
    for k in ("d/adv", "t/adv", "t/id", "t/pre"):
        np.testing.assert_allclose(multi_logs[k], single_logs[k], rtol=1e-4, err_msg=k)


def test_training_loop_feeds_input_and_guided_sets():
    from tfattr import config as config_lib
    from tfattr.training import loop

    config = config_lib.TrainConfig(
        model="diat", dataset="synthetic", dataset_options="num_train=64,num_validation=8,num_test=16",
        attributes=("Eyeglasses", "Smiling"), image_size=SIZE, batch_size=4,
        hparams="domain_attribute=Eyeglasses,domain_value=no")
    dataset, schema = loop.load_data(config, "train", 4, seed=0)
    batch = next(iter(dataset))
    np.testing.assert_array_equal(batch["labels_a"].numpy()[:, 0], 1)  # input set: with glasses
    np.testing.assert_array_equal(batch["labels_b"].numpy()[:, 0], 0)  # guided set: without


def test_evaluation_can_switch_the_enhancement_off_on_a_saved_run(tmp_path):
    from tfattr import config as config_lib
    from tfattr.training import loop

    hp = ",".join(f"{k}={v}" for k, v in {**TINY, "enhancement": "global"}.items())
    config = config_lib.TrainConfig(
        model="diat", dataset="synthetic", dataset_options="num_train=64,num_validation=8,num_test=64",
        attributes=("Eyeglasses", "Smiling"), image_size=SIZE, batch_size=4, steps=1, hparams=hp,
        output_dir=str(tmp_path), sample_every=0, checkpoint_every=1, export_after=False, progress=False)
    run_dir = loop.run(config)["run_dir"]
    x = two_domain_batch(seed=3)["image_a"]
    on, _, _ = loop.load_model_from_run(run_dir)
    off, _, _ = loop.load_model_from_run(run_dir, overrides="use_enhancement=false")
    np.testing.assert_array_equal(off.transfer(x).numpy(), on.transform(x).numpy())
    np.testing.assert_array_equal(on.transfer(x).numpy(), off.transfer(x, enhance=True).numpy())
    assert np.abs(on.transfer(x).numpy() - off.transfer(x).numpy()).max() > 0
    with pytest.raises(config_lib.ConfigError, match="model_options"):
        loop.load_model_from_run(run_dir, overrides="no_such_field=1")


def test_local_enhancement_trains_from_the_loop_with_landmark_masks(tmp_path):
    from tfattr import config as config_lib
    from tfattr.training import loop

    hp = ",".join(f"{k}={v}" for k, v in {**TINY, "enhancement": "local"}.items())
    config = config_lib.TrainConfig(
        model="diat", dataset="synthetic", dataset_options="num_train=64,num_validation=8,num_test=64",
        attributes=("Eyeglasses", "Smiling"), image_size=SIZE, batch_size=4, steps=2, hparams=hp,
        output_dir=str(tmp_path), sample_every=0, checkpoint_every=2, export_after=False, progress=False)
    batch = next(iter(loop.load_data(config, "train", 4, seed=0)[0]))
    assert set(batch) == {"image_a", "mask_a", "image_b"} and batch["mask_a"].shape == (4, SIZE, SIZE, 1)
    m = batch["mask_a"].numpy()
    assert set(np.unique(m)) == {0.0, 1.0} and 0 < m.mean() < 0.5  # an eye-region hull, not the frame
    result = loop.run(config)
    assert result["step"] == 2 and all(np.isfinite(v) for v in result["logs"].values())
    celeba = config_lib.TrainConfig(model="diat", dataset="celeba", hparams=hp, image_size=SIZE)
    with pytest.raises(ValueError, match="--dataset=synthetic"):
        diat.training_stream(celeba, diat.Config(enhancement="local"), 4, 0)


def test_resize_upsampling_and_no_norm_keep_table1_shapes():
    """upsample=resize replaces Table 1's stride-2 deconvs by nearest x2 + 3x3 conv (no checkerboard);
    transform_norm=none drops the (unlisted) instance norm, which erased the input's colour statistics."""
    m = build(upsample="resize", transform_norm="none")
    layer_types = {type(l).__name__ for l in m.transform.layers}
    assert "Conv2DTranspose" not in layer_types and "GroupNormalization" not in layer_types
    assert "UpSampling2D" in layer_types
    x = two_domain_batch()["image_a"]
    assert m.transform(x).shape == x.shape
    with pytest.raises(ValueError, match="upsample"):
        build(upsample="bilinear")
    with pytest.raises(ValueError, match="transform_norm"):
        build(transform_norm="batch")


def test_pixel_content_weight_changes_only_the_adversarial_phase():
    def step(pretrain_steps, **hp):
        tf.keras.utils.set_random_seed(5)
        m = build(variant="diat1", pretrain_steps=pretrain_steps, **hp)
        m.compile()
        m.train_step(two_domain_batch(seed=6))
        return testing.weights_of(m.transform)

    assert testing.max_weight_change(step(5), step(5, lambda_pixel=10.0)) == 0.0  # Eq. 8 only
    assert testing.max_weight_change(step(0), step(0, lambda_pixel=10.0)) > 0


def test_output_skip_makes_t_a_residual_of_its_input():
    m = build(output_skip=True, upsample="resize", transform_norm="none")
    out = m.transform.get_layer("transform_out")
    out.set_weights([np.zeros_like(w) for w in out.get_weights()])
    x = two_domain_batch()["image_a"]
    np.testing.assert_allclose(m.transform(x).numpy(), x.numpy(), atol=1e-6)
    assert "enhancer_skip" not in [l.name for l in build(output_skip=True, enhancement="global").enhancer.layers]
