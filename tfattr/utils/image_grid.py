"""Image grids and PNG files (Pillow, no matplotlib)."""

from __future__ import annotations

import os

import numpy as np


def to_uint8(images) -> np.ndarray:
    """float images in [-1, 1] -> uint8 [0, 255]."""
    images = np.asarray(images, np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images, rows: int, cols: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """`[rows*cols, H, W, 3]` uint8 (row-major) -> one `[rows*(H+pad)+pad, cols*(W+pad)+pad, 3]` image.

    None entries become blank tiles (used for the corner of swap grids)."""
    first = next(i for i in images if i is not None)
    h, w, c = np.asarray(first).shape
    out = np.full([rows * (h + pad) + pad, cols * (w + pad) + pad, c], pad_value, np.uint8)
    for n, img in enumerate(images):
        if img is None:
            continue
        r, k = divmod(n, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img
    return out


def save_png(path: str, image: np.ndarray) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    Image.fromarray(np.asarray(image, np.uint8)).save(tmp)
    os.replace(tmp, path)
