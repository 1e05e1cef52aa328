"""Mixed precision (tfattr/training/precision.py): bfloat16 steps are finite with float32 outputs;
float16 wraps every optimizer in loss scaling and the scale is divided out of the update."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import config as config_lib
from tfattr.models import latent_swap
from tfattr.training import loop, precision

SIZE = 16


def build(policy, **overrides):
    config = config_lib.override(latent_swap.Config(), {**testing.TINY_LATENT_SWAP, "lambda_gp": 0.0, **overrides})
    return precision.build_model("latent_swap", testing.SCHEMA, SIZE, config, policy)


def test_bfloat16_step_is_finite_with_float32_outputs():
    keras.utils.set_random_seed(0)
    model = build("mixed_bfloat16")
    model.compile(precision.optimizers(model, "mixed_bfloat16"))
    assert not any(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.optimizers.values())
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    hidden = [l for l in model.encoder.layers if isinstance(l, keras.layers.Conv2D)][0]
    assert hidden.compute_dtype == "bfloat16" and hidden.kernel.dtype == "float32"
    batch = testing.random_batch(4, SIZE)
    x = batch["image"]
    assert model.encode(x).dtype == tf.float32 and model.reconstruct(x).dtype == tf.float32
    assert model.discriminator(x)["cls"].dtype == tf.float32
    before = testing.weights_of(model)
    logs = tf.function(model.train_step)(batch)
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    assert testing.max_weight_change(before, testing.weights_of(model)) > 0


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_model_call_keeps_the_batch_in_float32(policy):
    # `model(batch)` (standing batch norm, serving's default path) must not cast the images to 16
    # bits: the composite output adds the float32 decoder change to the source image.
    model = build(policy, swap_output="composite")
    batch = testing.random_batch(4, SIZE)
    out = model(batch, training=True)
    assert out.dtype == tf.float32 and out.shape == batch["image"].shape
    assert np.all(np.abs(out.numpy()) <= 1.0)
    assert model.standing_batch_norm([batch]) == 1


def test_float16_wraps_optimizers_and_unscales_the_update():
    def one_sgd_step(policy, wrap):
        keras.utils.set_random_seed(0)
        model = build(policy)
        sgd = {"g": keras.optimizers.SGD(0.05), "d": keras.optimizers.SGD(0.05)}
        model.compile({k: keras.optimizers.LossScaleOptimizer(o) for k, o in sgd.items()} if wrap else sgd)
        batch = testing.random_batch(4, SIZE, seed=3)
        batch["swap"] = tf.ones([4, len(testing.SCHEMA)])
        before = testing.weights_of(model)
        logs = tf.function(model.train_step)(batch)
        return model, before, testing.weights_of(model), logs

    default = build("mixed_float16")
    wrapped = precision.optimizers(default, "mixed_float16")
    assert set(wrapped) == {"g", "d"}
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in wrapped.values())
    assert precision.optimizers(default, "float32") is None

    model, before, after, logs = one_sgd_step("mixed_float16", wrap=True)
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    assert float(model.optimizers["g"].dynamic_scale.numpy()) == 32768.0  # no overflow skipped the step
    _, before32, after32, _ = one_sgd_step("float32", wrap=False)
    np.testing.assert_array_equal(before[0], before32[0])
    # A missing loss scale would shrink the update 32768 times; float16 noise stays far below 2x.
    ratio = testing.max_weight_change(before, after) / testing.max_weight_change(before32, after32)
    assert 0.5 < ratio < 2.0, ratio


def test_unknown_policy_names_the_flag():
    with pytest.raises(ValueError, match="--mixed_precision.*mixed_bfloat16"):
        precision.check("float16")


def test_float16_run_saves_and_reloads_loss_scaled_optimizers(tmp_path):
    from tests.training.test_loop import smoke_config

    config = smoke_config(tmp_path, image_size=16, mixed_precision="mixed_float16", steps=1, sample_every=0,
                          checkpoint_every=1, export_after=False)
    result = loop.run(config)
    assert all(np.isfinite(v) for v in result["logs"].values())
    model, step, _ = loop.load_model_from_run(result["run_dir"])
    assert step == 1 and isinstance(model.optimizers["g"], keras.optimizers.LossScaleOptimizer)
    assert model.encoder.layers[1].compute_dtype == "float16"
