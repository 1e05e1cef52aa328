"""Pure TensorFlow image transforms shared by every data source and the batch pipeline.

Each function takes a single image `[H, W, C]` or a batch `[B, H, W, C]`, has no Python-side state,
and gives the same result eagerly and inside `tf.data.Dataset.map` (tested both ways), so the
pipeline, the evaluation code and the serving pre-processing can share one implementation.
"""

from __future__ import annotations

from typing import Sequence, Union

import tensorflow as tf

Size = Union[int, Sequence[int], tf.Tensor]

RESIZE_METHODS = ("bilinear", "area", "bicubic", "nearest")


def _hw(size: Size) -> tuple:
    """int or (h, w) (Python or tensor) -> (h, w)."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, tf.Tensor) and size.shape.rank == 0:
        return size, size
    h, w = size[0], size[1]
    return h, w


def center_crop(image: tf.Tensor, size: Size) -> tf.Tensor:
    """Crops the centred `size` window (odd margins put the extra pixel at the bottom/right).

    Args:
      image: `[H, W, C]` or `[B, H, W, C]`, any dtype.
      size: crop side `s` or `(height, width)`; Python ints or scalar int tensors.

    Returns:
      The crop, same dtype and rank as `image`.

    Raises:
      tf.errors.InvalidArgumentError (or ValueError for static shapes): `size` exceeds the image.
    """
    h, w = _hw(size)
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    # Floor division keeps CelebA's 218 -> 178 crop at top=20, as torchvision's CenterCrop does.
    top = (height - h) // 2
    left = (width - w) // 2
    return tf.image.crop_to_bounding_box(image, top, left, h, w)


def crop_box(image: tf.Tensor, top, left, height, width) -> tf.Tensor:
    """Crops the window with upper-left corner `(top, left)` and size `(height, width)`.

    Args:
      image: `[H, W, C]` or `[B, H, W, C]`, any dtype.
      top: first row (int or scalar int tensor).
      left: first column.
      height: rows to keep.
      width: columns to keep.

    Returns:
      `[height, width, C]` (or batched), same dtype.

    Raises:
      tf.errors.InvalidArgumentError (or ValueError for static shapes): the box leaves the image.
    """
    return tf.image.crop_to_bounding_box(image, top, left, height, width)


def resize(image: tf.Tensor, size: Size, method: str = "bilinear") -> tf.Tensor:
    """Resizes with antialiasing; output is float32 on the input's value scale (uint8 -> [0, 255]).

    Antialiased bilinear is a triangle filter whose support grows with the downscale factor, like
    PIL's `Image.resize(..., BILINEAR)` that the PyTorch reference pipelines (torchvision `Resize`)
    use; plain `tf.image.resize` bilinear would alias badly at 178 -> 64. "area" averages pixel
    areas and is antialiased by construction. Both have non-negative weights, so values never
    leave the input range.

    Args:
      image: `[H, W, C]` or `[B, H, W, C]`, any real dtype.
      size: output side `s` or `(height, width)`.
      method: one of `RESIZE_METHODS`.

    Returns:
      float32 `[h, w, C]` (or batched).

    Raises:
      ValueError: unknown `method`.
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {method!r}; valid methods: {', '.join(RESIZE_METHODS)}")
    h, w = _hw(size)
    image = tf.cast(image, tf.float32)
    out = tf.image.resize(image, [h, w], method=method, antialias=(method != "nearest"))
    return tf.cast(out, tf.float32)


def to_signed_unit_range(image: tf.Tensor) -> tf.Tensor:
    """uint8 (or float on the [0, 255] scale) -> float32 in [-1, 1] (0 -> -1, 255 -> 1).

    Args:
      image: any shape; uint8, or float holding values in [0, 255].

    Returns:
      float32 tensor of the same shape, `x / 127.5 - 1`.
    """
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def from_signed_unit_range(image: tf.Tensor) -> tf.Tensor:
    """float in [-1, 1] -> uint8 in [0, 255] (rounded, clipped): the inverse of `to_signed_unit_range`.

    Args:
      image: any shape, float.

    Returns:
      uint8 tensor of the same shape.
    """
    x = (tf.cast(image, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float on the [0, 255] scale (e.g. `resize` output) -> uint8, rounded and clipped.

    Args:
      image: any shape, real dtype.

    Returns:
      uint8 tensor of the same shape.
    """
    if image.dtype == tf.uint8:
        return image
    x = tf.cast(image, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def random_flip(image: tf.Tensor, seed) -> tf.Tensor:
    """Stateless random left-right flip (each image of a batch independently).

    The same `seed` always gives the same flips, eagerly or in `Dataset.map`, which keeps the
    pipeline reproducible without a global random state.

    Args:
      image: `[H, W, C]` or `[B, H, W, C]`.
      seed: shape `[2]` integer tensor or pair of ints.

    Returns:
      The (possibly flipped) image(s), same dtype and shape.
    """
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    return tf.image.stateless_random_flip_left_right(image, seed)
