"""Shared helpers for model tests: tiny schemas, batches and configs."""

import numpy as np
import tensorflow as tf

from tfattr.data import attributes as A

SCHEMA = A.Schema((A.binary("Eyeglasses"), A.categorical("Hair_Color", ["black", "blond", "brown", "gray"]),
                   A.binary("Smiling")))
TINY_LATENT_SWAP = {"base_width": 8, "unit_channels": 4, "irrelevant_channels": 8, "d_width": 8,
                    "num_res_blocks": 2}


def random_batch(batch_size=4, image_size=32, schema=SCHEMA, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, a.num_classes, batch_size) for a in schema], axis=1).astype(np.int32)
    return {
        "image": tf.constant(rng.uniform(-1, 1, [batch_size, image_size, image_size, 3]).astype(np.float32)),
        "attributes": tf.constant(schema.encode(labels)),
        "labels": tf.constant(labels),
    }


def weights_of(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def max_weight_change(before, after):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(before, after))


def relative_update_difference(before, after_a, after_b) -> float:
    """||update_a - update_b|| / ||update_a|| over all weights: 0 for identical steps, 1 for a
    doubled (or skipped) update. Multi-replica equivalence tests use it instead of an elementwise
    bound: L1 and hinge losses have sign-discontinuous gradients, so float noise that differs
    between kernels for 2 and 4 examples (oneDNN picks them per shape) flips single elements by a
    full gradient step while the update as a whole agrees to ~1e-3."""
    ua = np.concatenate([(a - b).ravel() for a, b in zip(after_a, before)])
    ub = np.concatenate([(a - b).ravel() for a, b in zip(after_b, before)])
    return float(np.linalg.norm(ua - ub) / np.linalg.norm(ua))


def smooth_batch(batch_size=4, image_size=32, schema=SCHEMA, seed=0):
    """Like `random_batch` but with low-frequency images (blobs), which a tiny autoencoder can fit."""
    batch = random_batch(batch_size, image_size, schema, seed)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:image_size, 0:image_size] / image_size
    images = []
    for _ in range(batch_size):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        blob = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.float32)
        colour = rng.uniform(-1, 1, 3)
        images.append(blob[..., None] * colour + (1 - blob[..., None]) * rng.uniform(-1, 1, 3) * 0.5)
    batch["image"] = tf.constant(np.asarray(images, np.float32))
    return batch


def check_generator_average(build, batch, tmp_path, untouched):
    """`ema_momentum` (not in any paper): after each step the "g" group's average is
    m * average + (1 - m) * weights, from the first step's weights; the average survives a
    checkpoint, a restored model infers with it (`average_weights`), the `untouched` network keeps
    its weights, and the default (no average) averages nothing. `build(**hparams)` builds a model."""
    from tfattr.training import checkpointing

    m = build(ema_momentum=0.5)
    m.compile()
    steps = []
    for _ in range(3):
        m.train_step(batch)
        steps.append([v.numpy() for v in m.group_variables("g")])
    expected = steps[0]
    for w in steps[1:]:
        expected = [0.5 * e + 0.5 * x for e, x in zip(expected, w)]
    assert max(np.abs(e - x).max() for e, x in zip(expected, steps[-1])) > 1e-5  # the average is not the last step
    checkpointing.Checkpointer(str(tmp_path), m, tf.Variable(3, dtype=tf.int64)).save(3)

    restored = build(ema_momentum=0.5)
    restored.compile()
    checkpointing.Checkpointer(str(tmp_path), restored, tf.Variable(0, dtype=tf.int64)).restore()
    other = weights_of(restored.networks[untouched])
    assert restored.average_weights() == ["g"]
    for e, v in zip(expected, restored.group_variables("g")):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-6)
    assert max_weight_change(other, weights_of(restored.networks[untouched])) == 0
    plain = build()
    plain.compile()
    assert plain.average_weights() == []  # the paper's setting keeps no average
