"""Mixed precision for any registered model, without touching the model files.

`--mixed_precision=mixed_float16|mixed_bfloat16` builds the networks under that Keras policy:
hidden layers compute in 16 bits and keep float32 variables. Two things make it safe for every
model at once:

* `float32_outputs(model)` switches the layers that produce each network's outputs to float32
  (the Keras mixed-precision guide's rule: the final activation, e.g. tanh or sigmoid, in float32),
  so the losses, the swaps/masks computed between networks and the exported outputs are float32.
* float16 has too few exponent bits for small gradients, so its optimizers are wrapped in
  `keras.optimizers.LossScaleOptimizer` (dynamic loss scaling); `AttributeTransferModel.apply`
  scales the loss through the tape's output gradient, so no `train_step` changes. bfloat16 has
  float32's exponent range and needs no loss scaling.
"""

from __future__ import annotations

import contextlib

import keras

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def check(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"--mixed_precision: unknown policy {policy!r}; valid: {', '.join(POLICIES)}")
    return policy


@contextlib.contextmanager
def policy_scope(policy: str):
    """Layers created inside use `policy`; the previous global policy is restored afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(check(policy))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_outputs(model) -> list[str]:
    """Makes the layers that produce each network's outputs compute in float32; returns their names.

    A layer casts its inputs to its compute dtype when called, so a functional network re-run
    with the changed layer returns float32 outputs while its hidden layers stay in 16 bits.
    """
    changed = []
    for net in model.networks.values():
        for tensor in keras.tree.flatten(net.outputs):
            layer = tensor._keras_history.operation
            if layer.compute_dtype != "float32":
                layer.dtype_policy = keras.DTypePolicy("float32")
                changed.append(f"{net.name}/{layer.name}")
    return changed


def build_model(name: str, schema, image_size: int, config, policy: str = "float32"):
    """`models.build(...)` under `policy`, with float32 outputs when the policy is mixed."""
    from tfattr import models

    with policy_scope(policy):
        model = models.build(name, schema, image_size, config=config)
    if policy != "float32":
        float32_outputs(model)
        # The outer model holds no layers of its own, only the math between networks (swaps,
        # masks, composites of the input with float32 network outputs). Under the mixed policy its
        # __call__ cast the batch's images to 16 bits, and `source + change` in latent_swap's
        # composite output failed (bfloat16 + float32) in the standing batch-norm pass of averaged
        # checkpoints (benchmarks/RESULTS.md, session 26). float32 leaves the batch as it is.
        model.dtype_policy = keras.DTypePolicy("float32")
    return model


def optimizers(model, policy: str) -> dict | None:
    """The model's default optimizers, loss-scaled for mixed_float16; None (= defaults) otherwise."""
    if check(policy) != "mixed_float16":
        return None
    return {k: keras.optimizers.LossScaleOptimizer(opt) for k, opt in model.default_optimizers().items()}
