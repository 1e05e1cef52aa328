"""Feature extractors for distribution metrics, and the real-image statistics cache.

The metric maths (`frechet.py`) never sees a network: an extractor is any object with
  * `__call__(images) -> float64 [N, D]` for float images `[N, H, W, 3]` in [-1, 1], and
  * `identity -> dict`, a JSON-serialisable description that changes whenever the features could
    (architecture, input size, weights file hash).
Real-image features are cached on disk under a hash of (dataset spec, extractor identity), so a
different weights file, input size or dataset selection never reuses stale statistics.

InceptionV3 weights are NEVER downloaded: the user supplies the Keras ImageNet no-top file
(`INCEPTION_WEIGHTS_FILE`), and a missing file raises an error that names it and where to put it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Iterable, Protocol

import numpy as np

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_ORIGIN = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                            + INCEPTION_WEIGHTS_FILE)
INCEPTION_WEIGHTS_ENV = "TFATTR_INCEPTION_WEIGHTS"
INCEPTION_INPUT_SIZE = 299
CACHE_VERSION = 1


class MissingWeightsError(FileNotFoundError):
    pass


class FeatureExtractor(Protocol):
    identity: dict

    def __call__(self, images) -> np.ndarray: ...


def default_inception_weights_path() -> str:
    """`$TFATTR_INCEPTION_WEIGHTS`, else Keras' own cache location `~/.keras/models/<file>`."""
    if os.environ.get(INCEPTION_WEIGHTS_ENV):
        return os.environ[INCEPTION_WEIGHTS_ENV]
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(keras_home, "models", INCEPTION_WEIGHTS_FILE)


def missing_weights_message(path: str) -> str:
    return (f"InceptionV3 weights not found at {path}. FID/KID need the Keras ImageNet InceptionV3 no-top "
            f"weights file {INCEPTION_WEIGHTS_FILE!r} (published at {INCEPTION_WEIGHTS_ORIGIN}); tfattr never "
            f"downloads it. Put the file at {default_inception_weights_path()} (Keras' cache directory), or "
            f"anywhere and pass --inception_weights=PATH or set ${INCEPTION_WEIGHTS_ENV}=PATH.")


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    if images.shape[1:3] == (size, size):
        return images
    return tf.image.resize(images, (size, size), method="bilinear").numpy()


class InceptionFeatures:
    """InceptionV3 2048-d average-pool features (the FID/KID feature space).

    Built with `keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg")`
    and weights read from a local `.h5` (Keras' legacy ImageNet file) or `.weights.h5` file.
    Inputs in [-1, 1] are already in Inception's preprocessing range ("tf" mode); they are
    resized bilinearly to `input_size`.

    Note: Keras' InceptionV3 is not the TF1 graph (`pt_inception-2015-12-05`) used by the reference
    FID code, so values are comparable between tfattr runs, not with published numbers.

    Args:
      weights_path: the weights file (default: `default_inception_weights_path()`).
      input_size: network input side (299 for FID; tests use 75, the smallest InceptionV3 accepts).
      batch_size: images per forward pass.

    Raises:
      MissingWeightsError: the weights file does not exist (the message names the file to get).
    """

    def __init__(self, weights_path: str | None = None, input_size: int = INCEPTION_INPUT_SIZE,
                 batch_size: int = 50):
        self.weights_path = os.path.abspath(weights_path or default_inception_weights_path())
        if not os.path.exists(self.weights_path):
            raise MissingWeightsError(missing_weights_message(self.weights_path))
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.weights_sha256 = file_sha256(self.weights_path)
        self._model = None

    @property
    def identity(self) -> dict:
        return {"network": "keras.applications.InceptionV3", "output": "avg_pool", "input_size": self.input_size,
                "resize": "bilinear", "weights_sha256": self.weights_sha256}

    @property
    def model(self):
        if self._model is None:
            import keras

            model = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                                   input_shape=(self.input_size, self.input_size, 3))
            model.load_weights(self.weights_path)
            self._model = model
        return self._model

    def __call__(self, images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"InceptionFeatures expects images [N, H, W, 3] in [-1, 1], got {images.shape}")
        out = [np.asarray(self.model(_resize(images[i:i + self.batch_size], self.input_size), training=False),
                          np.float64) for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 2048), np.float64)


def extract(extractor: Callable, batches: Iterable[np.ndarray], progress: Callable[[int], None] | None = None
            ) -> np.ndarray:
    """Features of a stream of image batches, concatenated, float64 `[N, D]`."""
    out = []
    for batch in batches:
        out.append(np.asarray(extractor(batch), np.float64))
        if progress:
            progress(len(batch))
    return np.concatenate(out)


def cache_key(dataset_spec: dict, extractor_identity: dict) -> str:
    """sha256 of the canonical JSON of (dataset spec, extractor identity, cache format version)."""
    blob = json.dumps({"dataset": dataset_spec, "extractor": extractor_identity, "version": CACHE_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class RealFeatureCache:
    """Real-image features on disk, keyed by `cache_key(dataset_spec, extractor.identity)`.

    Files are `<cache_dir>/real-<key[:20]>.npz` holding `features` (float32), `mu`, `sigma`
    (float64) and the key's JSON, so a cache file says what it contains.
    """

    def __init__(self, cache_dir: str):
        self.cache_dir = cache_dir

    def path(self, dataset_spec: dict, extractor) -> str:
        return os.path.join(self.cache_dir, f"real-{cache_key(dataset_spec, extractor.identity)[:20]}.npz")

    def features(self, dataset_spec: dict, extractor, images_fn: Callable[[], Iterable[np.ndarray]],
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Cached features of the real images `images_fn()` yields (computed on a miss).

        Args:
          dataset_spec: JSON-serialisable description of exactly which images (dataset, split,
            size, count, selection, renderer version...).
          extractor: a `FeatureExtractor`.
          images_fn: zero-argument callable returning an iterable of image batches in [-1, 1].
          progress: optional callable(num_images) called after each batch on a miss.

        Returns:
          float64 `[N, D]`.
        """
        path = self.path(dataset_spec, extractor)
        if os.path.exists(path):
            with np.load(path) as f:
                return np.asarray(f["features"], np.float64)
        # Rounded through float32 on a miss too, so a hit and a miss give identical metric values.
        feats = extract(extractor, images_fn(), progress).astype(np.float32).astype(np.float64)
        mu, sigma = feats.mean(0), np.cov(feats, rowvar=False) if len(feats) > 1 else None
        os.makedirs(self.cache_dir, exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, features=feats.astype(np.float32), mu=mu, sigma=sigma if sigma is not None else np.zeros(0),
                 key=json.dumps({"dataset": dataset_spec, "extractor": extractor.identity}, sort_keys=True,
                                default=str))
        os.replace(tmp, path)
        return feats
