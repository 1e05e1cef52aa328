"""Pasting an edited aligned crop back into the full photo with a feathered blend."""

from __future__ import annotations

import numpy as np

from tfattr.photos import align as align_lib


def feather_mask(size: int, margin: float = 0.06, feather: float = 0.12) -> np.ndarray:
    """float32 `[size, size]` blend weight in crop coordinates: 1 inside, falling smoothly to 0.

    A rounded square inset by `margin` (fraction of the side) whose edge ramps over `feather` (a
    smoothstep), so that the crop's border, where the warp sampled outside the photo and where the
    generator is weakest, never shows and the seam has no step.
    """
    if not (0 <= margin < 0.5 and 0 < feather < 0.5 and margin + feather < 0.5):
        raise ValueError(f"feather_mask: need 0 <= margin, 0 < feather, margin + feather < 0.5; got {margin}, {feather}")
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    # Distance to the nearest crop edge (in crop units), per axis; a soft minimum rounds the corners.
    d = np.minimum(c, 1.0 - c)
    dx, dy = np.meshgrid(d, d)
    dist = -np.logaddexp(-dx / 0.02, -dy / 0.02) * 0.02
    t = np.clip((dist - margin) / feather, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def face_box(matrix: np.ndarray, crop_size: int, photo_shape) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the photo pixels the crop covers (clipped to the photo), from photo->crop `matrix`."""
    corners = np.array([[0, 0], [crop_size, 0], [0, crop_size], [crop_size, crop_size]], np.float64)
    pts = align_lib.apply(align_lib.invert(matrix), corners)
    h, w = photo_shape[:2]
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def paste(photo: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Blends the edited `crop` back into `photo` at full resolution.

    Args:
      photo: uint8 `[H, W, 3]`, the (unmodified) photo.
      crop: uint8 `[S, S, C]` edited face crop (C = 3) or a mask (C = 1) for a mask canvas.
      matrix: the photo->crop matrix the crop was aligned with.
      mask: crop-space blend weight `[S, S]` (default `feather_mask(S)`).

    Returns:
      A new uint8 photo; pixels outside `face_box(matrix, S, photo.shape)` are unchanged.
    """
    photo = np.asarray(photo)
    crop = np.asarray(crop, np.uint8)
    s = crop.shape[0]
    if crop.shape[:2] != (s, s):
        raise ValueError(f"paste: crop must be square, got {crop.shape}")
    if photo.ndim != 3 or photo.shape[2] != crop.shape[2]:
        raise ValueError(f"paste: photo {photo.shape} and crop {crop.shape} must have the same channels")
    mask = feather_mask(s) if mask is None else np.asarray(mask, np.float32)
    x0, y0, x1, y1 = face_box(matrix, s, photo.shape)
    out = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    # crop -> box pixels: undo the alignment, then shift to the box origin.
    to_box = align_lib.invert(matrix)
    to_box[:, 2] -= [x0, y0]
    size = (x1 - x0, y1 - y0)
    pasted = align_lib.warp(crop if crop.shape[2] == 3 else crop[..., 0], to_box, size)
    if pasted.ndim == 2:
        pasted = pasted[..., None]
    weight = align_lib.warp(mask, to_box, size)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + weight * (pasted.astype(np.float32) - region) + 0.5, 0, 255).astype(np.uint8)
    return out
