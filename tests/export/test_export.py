import os

import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import models
from tfattr.export import saved_model, warmup

SIZE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    m = models.build("latent_swap", testing.SCHEMA, SIZE, testing.TINY_LATENT_SWAP)
    m.compile()
    m.train_step(testing.random_batch(4, SIZE))  # non-trivial batch-norm statistics
    path = saved_model.export(m, str(tmp_path_factory.mktemp("export")), "latent_swap", 3,
                              warmup_inputs=saved_model.example_inputs(m, 1))
    return m, path


def test_layout_and_metadata(exported):
    m, path = exported
    assert path.endswith(os.path.join("latent_swap", "3"))
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    meta = saved_model.read_metadata(path)
    assert meta["schema"] == testing.SCHEMA.to_json() and meta["image_size"] == SIZE
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".tmp")]


def test_every_signature_matches_eager_model(exported):
    m, path = exported
    errors = saved_model.verify(path, m, batch_size=3)
    assert set(errors) == set(m.signatures())
    assert max(errors.values()) < 1e-4


def test_signatures_are_named(exported):
    _, path = exported
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) >= {"serving_default", "swap", "blend", "encode", "decode", "reconstruct"}
    swap = loaded.signatures["swap"]
    assert set(swap.structured_input_signature[1]) == {"source_image", "reference_image", "swap_attributes"}
    assert set(swap.structured_outputs) == {"translated_image"}


@pytest.mark.parametrize("change, message", [
    (lambda d: {**d, "source_image": np.abs(d["source_image"]) + 1.5}, "source_image.*above"),
    (lambda d: {**d, "reference_image": -np.abs(d["reference_image"]) - 1.5}, "reference_image.*below"),
    (lambda d: {k: v[:0] for k, v in d.items()}, "empty batch"),
    (lambda d: {**d, "swap_attributes": d["swap_attributes"][:1]}, "batch size differs"),
    (lambda d: {**d, "swap_attributes": d["swap_attributes"] * np.nan}, "NaN"),
])
def test_bad_inputs_are_rejected_with_the_input_named(exported, change, message):
    m, path = exported
    loaded = tf.saved_model.load(path)
    inputs = saved_model.example_inputs(m, 2)["swap"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["swap"](**{k: tf.constant(v) for k, v in change(inputs).items()})
    # ... and the same loaded model keeps serving valid requests.
    out = loaded.signatures["swap"](**{k: tf.constant(v) for k, v in inputs.items()})
    assert out["translated_image"].shape == (2, SIZE, SIZE, 3)


def test_wrong_image_size_is_rejected(exported):
    _, path = exported
    loaded = tf.saved_model.load(path)
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError), match="image.*dimension 1 must be 32"):
        loaded.signatures["reconstruct"](image=tf.zeros([1, SIZE + 4, SIZE + 4, 3]))


def test_warmup_records(exported):
    m, path = exported
    logs = warmup.read(os.path.join(path, "assets.extra", warmup.WARMUP_FILE))
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == set(m.signatures())


def test_existing_version_is_not_overwritten(exported, tmp_path):
    m, path = exported
    with pytest.raises(FileExistsError, match="export_version"):
        saved_model.export(m, os.path.dirname(os.path.dirname(path)), "latent_swap", 3)
