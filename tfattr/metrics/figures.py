"""Qualitative figures on held-out bench faces: swap grids (Zhang et al. 2019, Fig. 3) and blend
strips (Fig. 4)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfattr.data import synthetic
from tfattr.utils import image_grid


def _faces(indices, size, seed):
    return synthetic.render(synthetic.params_for(seed, "test", np.asarray(indices)), size)["image"]


def swap_grid(model, attribute_names, n: int = 5, seed: int = 0, start: int = 0) -> np.ndarray:
    """(n+1)x(n+1) grid: top row references, left column sources, cell = source with the
    references' `attribute_names` swapped in."""
    x = tf.constant(_faces(np.arange(start, start + n), model.image_size, seed) / 127.5 - 1.0, tf.float32)
    out = image_grid.to_uint8(model.transfer_from_reference(tf.repeat(x, n, 0), tf.tile(x, [n, 1, 1, 1]),
                                                            attribute_names))
    xs = image_grid.to_uint8(x)
    tiles = [None] + list(xs)
    for r in range(n):
        tiles += [xs[r]] + list(out[r * n:(r + 1) * n])
    return image_grid.grid(tiles, n + 1, n + 1)


def blend_strip(model, attribute, pairs=((0, 1), (2, 3)), steps: int = 5, seed: int = 0) -> np.ndarray:
    """Rows: source, blends at alpha = 0, 1/(steps-1), ..., 1, reference."""
    tiles = []
    mask = model.swap_mask_from_names([attribute], steps)
    for a, b in pairs:
        faces = _faces([a, b], model.image_size, seed) / 127.5 - 1.0
        src = tf.constant(np.repeat(faces[:1], steps, 0), tf.float32)
        ref = tf.constant(np.repeat(faces[1:], steps, 0), tf.float32)
        out = image_grid.to_uint8(model.blend(src, ref, mask, tf.linspace(0.0, 1.0, steps)))
        tiles += [image_grid.to_uint8(faces[0])] + list(out) + [image_grid.to_uint8(faces[1])]
    return image_grid.grid(tiles, len(pairs), steps + 2)


def write_swap_figures(model, attributes, out_dir: str, seed: int = 0) -> list[str]:
    paths = []
    for attr in list(attributes) + ["all"]:
        names = list(attributes) if attr == "all" else [attr]
        p = os.path.join(out_dir, f"swap_grid_{attr}.png")
        image_grid.save_png(p, swap_grid(model, names, seed=seed))
        paths.append(p)
        if attr != "all":
            pairs = _differing_pairs(attr, seed)
            p = os.path.join(out_dir, f"blend_{attr}.png")
            image_grid.save_png(p, blend_strip(model, attr, pairs, seed=seed))
            paths.append(p)
    return paths


def _differing_pairs(attr, seed, count=3):
    """Consecutive test faces whose `attr` labels differ, so a blend strip shows a change."""
    labels = synthetic.labels(synthetic.params_for(seed, "test", np.arange(200)))
    g = synthetic.SCHEMA.index(attr)
    pairs = [(i, i + 1) for i in range(0, 199, 2) if labels[i, g] != labels[i + 1, g]]
    return tuple(pairs[:count])
