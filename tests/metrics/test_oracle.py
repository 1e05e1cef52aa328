"""Tests of the oracle attribute classifier: architecture contract, loading, and held-out accuracy
of the packaged weights on fresh test-split renders."""

import os

import numpy as np
import pytest

from tfattr.data import synthetic
from tfattr.metrics import oracle

_HAVE_WEIGHTS = os.path.exists(oracle.DEFAULT_WEIGHTS)
_SKIP_REASON = f"packaged oracle weights absent ({oracle.DEFAULT_WEIGHTS}); create them with: {oracle.TRAIN_COMMAND}"


def test_build_oracle_has_one_softmax_head_per_attribute():
    model = oracle.build_oracle()
    out = model(np.zeros((2, 64, 64, 3), np.float32))
    assert list(out) == synthetic.SCHEMA.names
    for a in synthetic.SCHEMA:
        assert out[a.name].shape == (2, a.num_classes)
        np.testing.assert_allclose(np.asarray(out[a.name]).sum(-1), 1.0, rtol=1e-5)


def test_missing_weights_say_how_to_create_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m tfattr.metrics.oracle"):
        oracle.load_oracle(str(tmp_path / "absent.weights.h5"))


def test_untrained_oracle_predicts_valid_labels_at_any_size():
    o = oracle.Oracle(oracle.build_oracle())
    images = np.random.default_rng(0).uniform(-1, 1, (3, 40, 40, 3)).astype(np.float32)
    labels = o.predict_labels(images)
    assert labels.shape == (3, len(synthetic.SCHEMA)) and labels.dtype == np.int32
    synthetic.SCHEMA.validate_labels(labels)
    probs = o.predict_proba(images)
    assert [p.shape for p in probs] == [(3, a.num_classes) for a in synthetic.SCHEMA]
    acc = oracle.accuracy(o, images, np.full_like(labels, -1))
    assert set(acc) == set(synthetic.SCHEMA.names) and all(np.isnan(v) for v in acc.values())


@pytest.fixture(scope="module")
def packaged():
    if not _HAVE_WEIGHTS:
        pytest.skip(_SKIP_REASON)
    return oracle.load_oracle()


def test_packaged_weights_are_small():
    if not _HAVE_WEIGHTS:
        pytest.skip(_SKIP_REASON)
    assert os.path.getsize(oracle.DEFAULT_WEIGHTS) < 3_000_000


def test_packaged_oracle_reads_every_attribute_of_fresh_test_renders(packaged):
    # Test-split identities never appear in training; these indices are beyond the 2000 the
    # training command reports on, so the faces are fresh.
    p = synthetic.params_for(0, "test", np.arange(5000, 5200))
    images = oracle.uint8_to_signed(synthetic.render(p, 64)["image"])
    acc = oracle.accuracy(packaged, images, synthetic.labels(p))
    low = {k: v for k, v in acc.items() if v < 0.98}
    assert not low, f"oracle accuracy below 0.98: {low} (all: {acc})"


def test_packaged_oracle_works_on_other_sizes(packaged):
    p = synthetic.params_for(0, "test", np.arange(6000, 6100))
    images = oracle.uint8_to_signed(synthetic.render(p, 128)["image"])
    acc = oracle.accuracy(packaged, images, synthetic.labels(p))
    # Resizing 128 -> 64 is not pixel-identical to rendering at 64; allow a small margin.
    assert min(acc.values()) >= 0.9, acc


def test_packaged_oracle_sees_counterfactuals(packaged):
    p = synthetic.params_for(0, "test", np.arange(7000, 7040))
    for name, value in (("Eyeglasses", 1), ("Expression", "surprised"), ("Gaze", "left"), ("Pose", "right")):
        q = synthetic.counterfactual(p, {name: value})
        pred = packaged.predict_labels(oracle.uint8_to_signed(synthetic.render(q, 64)["image"]))
        target = synthetic.SCHEMA[name].value_index(value) if isinstance(value, str) else value
        assert np.mean(pred[:, synthetic.SCHEMA.index(name)] == target) >= 0.95, name
