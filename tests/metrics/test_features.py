"""InceptionV3 feature extractor (weights from a local file only) and the real-feature cache."""

import os

import numpy as np
import pytest

from tfattr.metrics import features


def test_missing_weights_name_the_keras_file_and_where_to_put_it(tmp_path):
    path = str(tmp_path / "nowhere.h5")
    with pytest.raises(features.MissingWeightsError) as e:
        features.InceptionFeatures(path)
    msg = str(e.value)
    assert path in msg and features.INCEPTION_WEIGHTS_FILE in msg and "--inception_weights" in msg
    assert features.INCEPTION_WEIGHTS_FILE == "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_default_path_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv(features.INCEPTION_WEIGHTS_ENV, str(tmp_path / "w.h5"))
    assert features.default_inception_weights_path() == str(tmp_path / "w.h5")
    monkeypatch.delenv(features.INCEPTION_WEIGHTS_ENV)
    assert features.default_inception_weights_path().endswith(os.path.join("models", features.INCEPTION_WEIGHTS_FILE))


def _random_inception(tmp_path):
    import keras

    net = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=(75, 75, 3))
    images = np.random.default_rng(0).uniform(-1, 1, (3, 40, 40, 3)).astype(np.float32)
    expected = np.asarray(net(features._resize(images, 75), training=False), np.float64)
    return net, images, expected


def test_inception_features_load_generated_weights_file(tmp_path):
    """Build InceptionV3 at 75x75 (its minimum) with random weights, save them, load them back
    through `InceptionFeatures`: the same features as the source network (~12 s on 2 idle cores)."""
    net, images, expected = _random_inception(tmp_path)
    path = str(tmp_path / "inception.weights.h5")
    net.save_weights(path)
    extractor = features.InceptionFeatures(path, input_size=75, batch_size=2)
    got = extractor(images)
    assert got.shape == (3, 2048) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert extractor.identity["weights_sha256"] == features.file_sha256(path)
    assert extractor.identity["input_size"] == 75


@pytest.mark.slow
def test_inception_features_load_legacy_h5_like_the_keras_file(tmp_path):
    """The Keras ImageNet file is in the legacy (topological) h5 format; generate one and load it."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    net, images, expected = _random_inception(tmp_path)
    path = str(tmp_path / features.INCEPTION_WEIGHTS_FILE)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, net)
    np.testing.assert_allclose(features.InceptionFeatures(path, input_size=75)(images), expected, rtol=1e-5,
                               atol=1e-6)


class _Counting:
    def __init__(self, name, scale=1.0):
        self.identity = {"name": name}
        self.scale, self.calls = scale, 0

    def __call__(self, images):
        self.calls += 1
        x = np.asarray(images, np.float64)
        return self.scale * np.stack([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1)


def test_real_feature_cache_hits_and_invalidates_on_extractor_or_dataset(tmp_path):
    cache = features.RealFeatureCache(str(tmp_path))
    rng = np.random.default_rng(0)
    batches = [rng.uniform(-1, 1, (4, 8, 8, 3)) for _ in range(3)]
    spec = {"dataset": "synthetic", "split": "test", "count": 12}
    a = _Counting("net-a")
    first = cache.features(spec, a, lambda: iter(batches))
    assert a.calls == 3 and first.shape == (12, 2)
    again = cache.features(spec, a, lambda: iter(batches))
    assert a.calls == 3  # hit
    np.testing.assert_array_equal(first, again)
    b = _Counting("net-b", scale=2.0)  # another extractor identity (e.g. a different weights hash)
    other = cache.features(spec, b, lambda: iter(batches))
    assert b.calls == 3
    np.testing.assert_allclose(other, 2 * first, rtol=1e-6)
    cache.features({**spec, "count": 8}, a, lambda: iter(batches[:2]))
    assert a.calls == 5  # a different dataset spec misses too
    assert len(os.listdir(tmp_path)) == 3
    assert features.cache_key(spec, a.identity) != features.cache_key(spec, b.identity)
