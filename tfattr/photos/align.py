"""Five-point similarity alignment of a face to a model's training crop (CelebA-style).

Landmark order everywhere: image-left eye centre, image-right eye centre, nose tip, image-left
mouth corner, image-right mouth corner, as pixel (x, y) with the image spanning [0, W] x [0, H].
This is the order of MTCNN's keypoints (left_eye, right_eye, nose, mouth_left, mouth_right, which
are the viewer's left/right) and of `synthetic.render(..., outputs=("landmarks5",))`.

CelebA's "Align&Cropped" images were made by a similarity transform of each face's five
landmarks to fixed positions (Liu et al. 2015); the crop a model trains on is a fixed window of
that aligned image, so a photo face warped by the least-squares similarity transform onto the same
template (Umeyama 1991) looks like a training image.
"""

from __future__ import annotations

import functools

import numpy as np

# Means of CelebA's list_landmarks_align_celeba.txt (178x218 aligned images), shifted into the
# 178x178 training crop (rows 20..197, tfattr.data.celeba.CROP_BOX) and divided by 178.
_CELEBA_ALIGNED_178x218 = np.array([[69.0, 111.5], [107.7, 111.5], [87.9, 135.0], [71.8, 152.1], [105.3, 152.2]])
CELEBA_TEMPLATE = ((_CELEBA_ALIGNED_178x218 - [0.0, 20.0]) / 178.0).astype(np.float64)

TEMPLATE_NAMES = ("bench", "celeba")


@functools.lru_cache(maxsize=None)
def bench_template(num_faces: int = 2000) -> np.ndarray:
    """The mean bench landmarks, `[5, 2]` in crop units ([0, 1] across the crop).

    Bench faces are drawn already aligned (the renderer's head is centred, eyes near one height),
    so the template is their average: a bench crop aligns to (almost) itself, and the residual is
    each face's own shape variation (measured in benchmarks/photos.md).
    """
    from tfattr.data import synthetic

    params = synthetic.params_for(0, "train", np.arange(num_faces))
    size = 256
    lm = synthetic.render(params, size, outputs=("landmarks5",))["landmarks5"]
    return lm.mean(axis=0).astype(np.float64) / size


def template_for(name: str) -> np.ndarray:
    """Template `[5, 2]` in crop units for "bench" or "celeba"."""
    if name == "bench":
        return bench_template()
    if name == "celeba":
        return CELEBA_TEMPLATE
    raise ValueError(f"unknown alignment template {name!r}; valid templates: {', '.join(TEMPLATE_NAMES)}")


def template_for_dataset(dataset: str | None) -> str:
    """The template of a training dataset name (CelebA variants -> "celeba", else the bench's)."""
    return "celeba" if dataset and dataset.startswith("celeb") else "bench"


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) src -> dst.

    Args:
      src, dst: float `[N, 2]` corresponding points, N >= 2.

    Returns:
      float64 `[2, 3]` matrix `A` with `dst ~= src @ A[:, :2].T + A[:, 2]`.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"similarity_transform needs two [N>=2, 2] point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("similarity_transform: source points coincide")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1.0
    rot = u @ e @ vt
    scale = (sig * np.diag(e)).sum() / var_s
    m = scale * rot
    return np.concatenate([m, (mu_d - m @ mu_s)[:, None]], axis=1)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    m = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(m)[:2]


def alignment_matrix(landmarks5: np.ndarray, crop_size: int, template: np.ndarray | str = "bench") -> np.ndarray:
    """Photo pixels -> crop pixels for a face with `landmarks5` (`[5, 2]` photo pixels)."""
    landmarks5 = np.asarray(landmarks5, np.float64)
    if landmarks5.shape != (5, 2):
        raise ValueError(f"landmarks5 must have shape [5, 2], got {landmarks5.shape}")
    t = template_for(template) if isinstance(template, str) else np.asarray(template, np.float64)
    return similarity_transform(landmarks5, t * crop_size)


def warp(image: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Resamples `image` so that output pixel p shows input point `invert(matrix)` applied to p.

    Args:
      image: uint8 `[H, W, C]` (C = 1 or 3) or float32 `[H, W]`.
      matrix: `[2, 3]` input pixels -> output pixels.
      out_size: (width, height) of the output.

    Returns:
      The warped image, same dtype; points from outside the input are 0.
    """
    from PIL import Image

    inv = invert(matrix)
    # PIL samples at pixel centres: output centre (x+.5) maps to input centre; its coefficients take
    # the corner-based output coordinate and return the corner-based input coordinate.
    coeffs = tuple(inv.reshape(-1))
    if image.dtype == np.float32 and image.ndim == 2:
        pil = Image.fromarray(image, mode="F")
        out = pil.transform(out_size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
        return np.asarray(out, np.float32)
    pil = Image.fromarray(np.asarray(image, np.uint8))
    out = pil.transform(out_size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BICUBIC)
    return np.asarray(out)


def align(image: np.ndarray, landmarks5: np.ndarray, crop_size: int,
          template: np.ndarray | str = "bench") -> tuple[np.ndarray, np.ndarray]:
    """The aligned `[crop_size, crop_size, 3]` uint8 crop and its photo->crop matrix."""
    matrix = alignment_matrix(landmarks5, crop_size, template)
    return warp(image, matrix, (crop_size, crop_size)), matrix
