"""Mask quality: intersection over union against ground-truth masks (Mokady et al. 2020, Table 5,
"Mean and SD IoU"); on the synthetic bench the ground truth is the rendered layer mask."""

from __future__ import annotations

import numpy as np


def binarize(masks, threshold: float = 0.5) -> np.ndarray:
    """Soft masks in [0, 1] (any shape) -> bool, `mask > threshold`."""
    return np.asarray(masks, np.float64) > threshold


def mask_iou(predicted, target, threshold: float = 0.5, empty: float = 1.0) -> np.ndarray:
    """Per-example IoU of binarised masks.

    Args:
      predicted: `[N, H, W]` or `[N, H, W, 1]` soft or binary masks in [0, 1].
      target: same shape (a trailing 1 channel may differ) ground-truth masks in [0, 1].
      threshold: both masks are binarised with `> threshold`.
      empty: value when both masks are empty (union 0): a correct "nothing here" counts as 1.

    Returns:
      float64 `[N]` in [0, 1].
    """
    p, t = np.asarray(predicted), np.asarray(target)
    if p.ndim == 4 and p.shape[-1] == 1:
        p = p[..., 0]
    if t.ndim == 4 and t.shape[-1] == 1:
        t = t[..., 0]
    if p.shape != t.shape or p.ndim != 3:
        raise ValueError(f"mask_iou: predicted {p.shape} and target {t.shape} must both be [N, H, W]")
    p, t = binarize(p, threshold), binarize(t, threshold)
    inter = np.sum(p & t, axis=(1, 2)).astype(np.float64)
    union = np.sum(p | t, axis=(1, 2)).astype(np.float64)
    return np.where(union > 0, inter / np.maximum(union, 1.0), empty)


def best_threshold_iou(scores, target, thresholds) -> tuple[float, float]:
    """Mean IoU of `scores > t` with `target > 0.5` at the best `t` of `thresholds`: `(iou, t)`.

    A diagnostic of how well a soft map (a mask, or any per-pixel score) ranks the true pixels first;
    it uses the truth to pick `t`, so it is not a segmentation result."""
    truth = binarize(target)
    ious = {round(float(t), 2): float(mask_iou(np.asarray(scores) > t, truth).mean()) for t in thresholds}
    best = max(ious, key=ious.get)
    return ious[best], best


def change_outside(edited, source, layer) -> np.ndarray:
    """Per image, mean |edited - source| (channel mean) over the pixels where `layer` <= 0.5.

    `edited`, `source`: `[N, S, S, C]`; `layer`: the content's true mask, `[N, S, S]` or `[N, S, S, 1]`.
    0 = nothing outside the content changed. Returns float64 `[N]`."""
    change = np.abs(np.asarray(edited, np.float64) - np.asarray(source, np.float64)).mean(-1)
    keep = ~binarize(np.asarray(layer).reshape(change.shape))
    return np.array([c[k].mean() for c, k in zip(change, keep)])
