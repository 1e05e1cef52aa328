import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import models
from tfattr.models import latent_swap

SIZE = 32


def build(**overrides):
    return models.build("latent_swap", testing.SCHEMA, SIZE, {**testing.TINY_LATENT_SWAP, **overrides})


@pytest.fixture(scope="module")
def model():
    m = build()
    m.compile()
    return m


def test_shapes_and_ranges(model):
    x = testing.random_batch(4, SIZE)["image"]
    e = model.encode(x)
    assert e.shape == (4, SIZE // 4, SIZE // 4, 3 * 4 + 8)
    out = model.swap(x, x[::-1], tf.ones([4, 3]))
    assert out.shape == x.shape
    assert float(tf.reduce_min(out)) >= -1.0 and float(tf.reduce_max(out)) <= 1.0


def test_swapping_no_units_reconstructs(model):
    x = testing.random_batch(4, SIZE, seed=1)["image"]
    np.testing.assert_array_equal(model.swap(x, x[::-1], tf.zeros([4, 3])).numpy(), model.reconstruct(x).numpy())


def test_swap_changes_only_selected_unit_channels(model):
    x = testing.random_batch(4, SIZE, seed=2)["image"]
    ea, eb = model.encode(x), model.encode(x[::-1])
    mixed = model.mix(ea, eb, tf.constant([[0.0, 1.0, 0.0]] * 4)).numpy()
    c = model.unit_channels
    np.testing.assert_array_equal(mixed[..., c:2 * c], eb.numpy()[..., c:2 * c])
    np.testing.assert_array_equal(mixed[..., :c], ea.numpy()[..., :c])
    np.testing.assert_array_equal(mixed[..., 2 * c:], ea.numpy()[..., 2 * c:])  # incl. attribute-irrelevant part


def test_blend_endpoints(model):
    x = testing.random_batch(2, SIZE, seed=3)["image"]
    ref, sel = x[::-1], tf.constant([[1.0, 0.0, 1.0]] * 2)
    np.testing.assert_allclose(model.blend(x, ref, sel, tf.zeros([2])).numpy(), model.reconstruct(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(model.blend(x, ref, sel, tf.ones([2])).numpy(), model.swap(x, ref, sel).numpy(), atol=1e-6)


def test_swap_strategies_keep_label_combinations_observed(model):
    batch = testing.random_batch(64, 8, seed=4)
    y = batch["attributes"]
    perm = latent_swap.pair_permutation(64)
    y_partner = tf.gather(y, perm)
    differ = model._attribute_differs(y, y_partner).numpy()
    for _ in range(5):
        s = model.sample_swap(y, perm)
        np.testing.assert_array_equal(s.numpy()[0::2], s.numpy()[1::2])  # one draw per pair
        y_tilde = model.swapped_labels(y, y_partner, s).numpy()
        for i in range(64):
            # Strategy 1 swaps every differing attribute (y~ = partner's labels), strategy 2 none (y~ = y).
            assert np.array_equal(y_tilde[i], y.numpy()[i]) or np.array_equal(y_tilde[i], y_partner.numpy()[i])
            if differ[i].any() and np.array_equal(y_tilde[i], y_partner.numpy()[i]):
                assert np.all(s.numpy()[i][differ[i] > 0] == 1)


def test_independent_swaps_single_differing_attributes_and_labels_follow():
    m = build(swap_strategy="independent")
    batch = testing.random_batch(64, 8, seed=4)
    y = batch["attributes"]
    perm = latent_swap.pair_permutation(64)
    y_partner = tf.gather(y, perm)
    differ = m._attribute_differs(y, y_partner).numpy()
    partial = 0
    for _ in range(5):
        s = m.sample_swap(y, perm).numpy()
        np.testing.assert_array_equal(s[0::2], s[1::2])  # one draw per pair
        y_tilde = m.swapped_labels(y, y_partner, tf.constant(s)).numpy()
        cols = s @ m._col_to_attr.numpy().T  # attribute -> its label columns
        np.testing.assert_array_equal(y_tilde, np.where(cols > 0, y_partner.numpy(), y.numpy()))
        # Some pairs keep a differing attribute while swapping another: the paper's strategies never do.
        partial += int(np.sum(((s * differ).sum(1) > 0) & (((1 - s) * differ).sum(1) > 0)))
    assert partial > 0


def test_unknown_swap_strategy_names_the_valid_ones():
    with pytest.raises(ValueError, match="swap_strategy must be one of paper, independent"):
        build(swap_strategy="random")


def test_residual_swap_output_returns_the_source_plus_the_decoding_change():
    """swap_output=residual (inference only): x + Dec(e~) - Dec(e), clipped; swapping nothing returns
    the source itself, and the weights (hence training) are those of the paper's output."""
    decoded, residual = build(), build(swap_output="residual")
    residual.set_weights(decoded.get_weights())
    x = testing.random_batch(4, SIZE, seed=11)["image"]
    ref, sel = x[::-1], tf.constant([[0.0, 1.0, 0.0]] * 4)
    np.testing.assert_allclose(residual.swap(x, ref, tf.zeros([4, 3])).numpy(), x.numpy(), atol=1e-6)
    expected = tf.clip_by_value(x + decoded.swap(x, ref, sel) - decoded.reconstruct(x), -1.0, 1.0)
    got = residual.swap(x, ref, sel)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)
    assert float(tf.reduce_max(tf.abs(got - x))) > 1e-3  # the swap still changes the image
    np.testing.assert_allclose(residual.blend(x, ref, sel, tf.ones([4])).numpy(), got.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="swap_output must be one of decoded, residual, composite"):
        build(swap_output="pasted")


def test_composite_swap_output_takes_the_decoding_only_where_the_swap_changes_it():
    """swap_output=composite: m Dec(e~) + (1 - m) residual, m from the swap's change to the decoding."""
    decoded = build()
    x = testing.random_batch(4, SIZE, seed=12)["image"]
    ref, sel = x[::-1], tf.constant([[1.0, 0.0, 0.0]] * 4)
    swapped = decoded.swap(x, ref, sel).numpy()
    residual = np.clip(x.numpy() + swapped - decoded.reconstruct(x).numpy(), -1.0, 1.0)
    change = tf.reduce_mean(tf.abs(swapped - decoded.reconstruct(x)), -1, keepdims=True)
    pooled = tf.nn.max_pool2d(change, 3, 1, "SAME").numpy()
    t = float(np.median(pooled))  # half the pixels take the decoding whole, half are partly the source
    comp = build(swap_output="composite", swap_output_threshold=t)
    comp.set_weights(decoded.get_weights())
    np.testing.assert_array_equal(comp.swap(x, ref, tf.zeros([4, 3])).numpy(), x.numpy())
    m = np.minimum(1.0, pooled / t)
    assert (m == 1.0).mean() >= 0.4 and (m < 0.9).mean() > 0.1
    np.testing.assert_allclose(comp.swap(x, ref, sel).numpy(), m * swapped + (1 - m) * residual, atol=1e-5)
    with pytest.raises(ValueError, match="swap_output_threshold must be > 0"):
        build(swap_output_threshold=0.0)


def test_train_step_finite_and_updates_every_network():
    m = build()
    m.compile()
    batch = testing.random_batch(4, SIZE)
    before = {name: testing.weights_of(net) for name, net in m.networks.items()}
    logs = m.train_step(batch)
    assert set(logs) == set(m.LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values())
    for name, net in m.networks.items():
        assert testing.max_weight_change(before[name], testing.weights_of(net)) > 0, name


def train_on_one_batch(m, loss_name, network, logs=None, steps=30):
    """30 train steps on one smooth batch; asserts `network` changed; returns `loss_name`'s first and
    last values (the last step's logs go into `logs`)."""
    batch = testing.smooth_batch(4, SIZE, seed=5)
    step = tf.function(m.train_step)
    first = float(step(batch)[loss_name])
    before = testing.weights_of(network)
    for _ in range(steps):
        m.reset_trackers()
        out = step(batch)
    assert testing.max_weight_change(before, testing.weights_of(network)) > 0
    if logs is not None:
        logs.update(out)
    return first, float(out[loss_name])


def test_swap_change_penalty_is_zero_without_a_swap_and_shrinks_the_change():
    """lambda_swap_change (not in the paper): |Dec(e~) - Dec(e)| per example, 0 when no unit moves."""
    tf.keras.utils.set_random_seed(0)
    m = build(lambda_swap_change=10.0, lr_g=1e-3)
    m.compile()
    batch = testing.smooth_batch(4, SIZE, seed=5)
    assert float(m.train_step({**batch, "swap": tf.zeros([4, 3])})["g/swap_change"]) == 0.0
    m.reset_trackers()
    first, last = train_on_one_batch(m, "g/swap_change", m.networks["decoder"])
    assert first > 0 and last < 0.5 * first
    paper = build()
    paper.compile()
    assert float(paper.train_step(batch)["g/swap_change"]) == 0.0  # weight 0: not computed


def test_unit_classifier_reads_only_its_own_unit_and_learns():
    assert "unit_classifier" not in build().networks  # the paper's objective: no such term
    tf.keras.utils.set_random_seed(0)
    m = build(lambda_unit_cls=1.0, lr_g=2e-3)
    m.compile()
    k, c = m.num_units, m.unit_channels
    latent = SIZE // 4
    units = tf.random.normal([2, latent, latent, k * c])
    base = m.unit_classifier(units).numpy()
    for j, (s, e) in enumerate(testing.SCHEMA.column_slices):
        # Perturb every unit except j: attribute j's logits must not move.
        noise = np.random.default_rng(j).normal(size=units.shape).astype(np.float32)
        noise[..., j * c:(j + 1) * c] = 0.0
        moved = m.unit_classifier(units + noise).numpy()
        np.testing.assert_allclose(moved[:, s:e], base[:, s:e], atol=1e-5)
        assert np.abs(moved - base).max() > 1e-3
    first, last = train_on_one_batch(m, "g/unit_cls", m.unit_classifier)
    assert last < 0.5 * first, (first, last)


def test_overfits_one_batch():
    tf.keras.utils.set_random_seed(0)
    m = build(lr_g=2e-3, lr_d=1e-4)
    m.compile()
    batch = testing.smooth_batch(4, SIZE, seed=5)
    batch["swap"] = tf.constant([[1.0, 0.0, 1.0]] * 4)
    step = tf.function(m.train_step)
    first = float(step(batch)["g/rec"])
    for _ in range(40):
        m.reset_trackers()
        last = float(step(batch)["g/rec"])
    assert last < 0.6 * first, (first, last)


def test_two_replica_step_equals_single_device(two_cpu_strategy):
    """One step on 2 replicas (2 examples each) moves the weights as one step on 1 device.

    SGD, not Adam: Adam's first step is ~lr*sign(g), which float noise flips for near-zero
    gradients; SGD's update is linear in the gradient, so a doubled update (per-replica mean
    reduction) would show as twice the change.
    """
    batch = testing.random_batch(4, SIZE, seed=6)
    batch["swap"] = tf.constant([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])

    def one_step(strategy):
        tf.keras.utils.set_random_seed(1)
        with strategy.scope():
            m = build(lambda_gp=0.0)
            m.compile({"g": tf.keras.optimizers.SGD(0.01), "d": tf.keras.optimizers.SGD(0.01)})
        before = testing.weights_of(m)
        dist = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch)))

        @tf.function
        def step(b):
            strategy.run(m.train_step, args=(b,))

        step(next(dist))
        return before, testing.weights_of(m), {k: float(v) for k, v in m.logs().items()}

    before, single_w, single_logs = one_step(tf.distribute.get_strategy())
    _, multi_w, multi_logs = one_step(two_cpu_strategy)
    assert testing.max_weight_change(before, single_w) > 1e-3  # the step did move the weights
    # A doubled update (a batch mean inside train_step) differs by 1.0; float noise measured <= 5e-3.
    assert testing.relative_update_difference(before, single_w, multi_w) < 5e-2
    for k in ("g/rec", "d/adv", "g/cls"):
        np.testing.assert_allclose(multi_logs[k], single_logs[k], rtol=1e-4, err_msg=k)


def test_unknown_hparam_lists_valid_names():
    from tfattr.config import ConfigError

    with pytest.raises(ConfigError, match="valid names: .*lambda_rec"):
        models.build("latent_swap", testing.SCHEMA, SIZE, {"lambda_recc": "1"})


def test_odd_batch_rejected_by_strategy_check():
    from tfattr.training import strategy

    with pytest.raises(ValueError, match="multiple of 2"):
        strategy.per_replica_batch(6, two_replicas(), multiple_of=2)


class two_replicas:
    num_replicas_in_sync = 2


def test_optimizer_group_leaves_out_only_declared_optional_networks():
    plain, with_units = build(), build(lambda_unit_cls=1.0)
    ids = lambda variables: {id(v) for v in variables}  # noqa: E731
    assert ids(with_units.group_variables("g")) == ids(
        [v for n in ("encoder", "decoder", "verifier", "unit_classifier")
         for v in with_units.networks[n].trainable_variables])
    assert ids(plain.group_variables("g")) == ids(
        [v for n in ("encoder", "decoder", "verifier") for v in plain.networks[n].trainable_variables])
    plain.OPTIMIZER_GROUPS = {**plain.OPTIMIZER_GROUPS, "g": ("encoder", "decodr")}
    with pytest.raises(KeyError, match="'decodr'"):
        plain.group_variables("g")


def test_rest_adversary_sees_everything_but_the_unit_and_its_uniform_loss_is_minimal_at_uniform():
    """lambda_rest_adv (not in the paper): R's row m must not depend on unit m and must depend on
    the rest; the encoder's term is smallest (the mean entropy) when R is uninformative; R learns."""
    assert "rest_classifier" not in build().networks
    tf.keras.utils.set_random_seed(0)
    m = build(lambda_rest_adv=1.0, lr_d=2e-3)
    m.compile()
    k, c = m.num_units, m.unit_channels
    e = tf.random.normal([2, SIZE // 4, SIZE // 4, m.channels])
    base = m.rest_logits(e).numpy()
    assert base.shape == (k, 2, testing.SCHEMA.num_columns)
    for j in range(k):
        noise = np.zeros(e.shape, np.float32)
        noise[..., j * c:(j + 1) * c] = np.random.default_rng(j).normal(size=(2, SIZE // 4, SIZE // 4, c))
        moved = m.rest_logits(e + noise).numpy()
        np.testing.assert_allclose(moved[j], base[j], atol=1e-5)  # row j never sees unit j
        assert np.abs(moved - base).max() > 1e-3  # the other rows do
    uniform = m.uniform_targets(2)
    at_uniform = m.rest_loss(tf.zeros_like(base), uniform)
    confident = m.rest_loss(tf.constant(base * 50.0), uniform)
    entropy = np.mean([np.log(2.0) if a.binary else np.log(e - s)
                       for a, (s, e) in zip(testing.SCHEMA, testing.SCHEMA.column_slices)])
    np.testing.assert_allclose(at_uniform.numpy(), entropy, rtol=1e-5)
    assert float(tf.reduce_min(confident)) > entropy
    logs = {}
    first, last = train_on_one_batch(m, "d/rest_cls", m.rest_classifier, logs)
    assert last < 0.7 * first, (first, last)
    assert np.isfinite(float(logs["g/rest_adv"]))


def test_swap_leak_classifier_reads_only_swapped_attributes_and_learns_the_sources_labels():
    """lambda_swap_leak (not in the paper): L's loss counts only the attributes a pair swapped, G's
    uniform target is smallest at uninformative logits, L learns the source's labels from x~, and
    the term needs label-independent swaps."""
    assert "leak_classifier" not in build().networks
    with pytest.raises(ValueError, match="lambda_swap_leak.*swap_strategy=independent"):
        build(lambda_swap_leak=1.0)
    tf.keras.utils.set_random_seed(0)
    m = build(lambda_swap_leak=1.0, swap_strategy="independent", lr_d=2e-3)
    m.compile()
    batch = testing.smooth_batch(4, SIZE, seed=5)
    y = tf.cast(batch["attributes"], tf.float32)
    logits = m.leak_classifier(batch["image"])
    assert logits.shape == (4, testing.SCHEMA.num_columns)
    np.testing.assert_array_equal(m.leak_loss(logits, y, tf.zeros([4, m.num_units])).numpy(), 0.0)
    (s, e), other = testing.SCHEMA.column_slices[1], testing.SCHEMA.column_slices[0]
    only_second = tf.constant([[0.0, 1.0, 0.0]] * 4)
    moved = logits.numpy().copy()
    moved[:, other[0]:other[1]] += 5.0  # an attribute nobody swapped: no effect
    np.testing.assert_allclose(m.leak_loss(moved, y, only_second), m.leak_loss(logits, y, only_second), rtol=1e-6)
    moved[:, s] += 5.0  # one column: a shift of all K would leave a softmax unchanged
    assert np.abs(m.leak_loss(moved, y, only_second).numpy() - m.leak_loss(logits, y, only_second).numpy()).min() > 1e-3
    everything = tf.ones([4, m.num_units])
    uniform = m.uniform_targets(4)
    entropy = np.mean([np.log(2.0) if a.binary else np.log(e - s)
                       for a, (s, e) in zip(testing.SCHEMA, testing.SCHEMA.column_slices)])
    np.testing.assert_allclose(m.leak_loss(tf.zeros_like(logits), uniform, everything).numpy(), entropy, rtol=1e-5)
    assert float(tf.reduce_min(m.leak_loss(logits * 50.0, uniform, everything))) > entropy
    # L trained on a fixed swap learns the source's labels from the swapped images.
    step = tf.function(m.train_step)
    fixed = {**batch, "swap": everything}
    first = float(step(fixed)["d/leak_cls"])
    for _ in range(30):
        m.reset_trackers()
        out = step(fixed)
    assert float(out["d/leak_cls"]) < 0.7 * first, (first, float(out["d/leak_cls"]))
    assert np.isfinite(float(out["g/leak"]))
