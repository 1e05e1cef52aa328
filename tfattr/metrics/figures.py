"""Qualitative figures on held-out bench faces: swap grids (Zhang et al. 2019, Fig. 3), blend
strips (Fig. 4), and for two-domain content transfer (Mokady et al. 2020) transfer grids (Fig. 3),
segmentations (Fig. 8) and separate-code interpolations (Fig. 4)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfattr.data import synthetic
from tfattr.data.attributes import domain_indices, domain_membership
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


# ---- two-domain content transfer (Mokady et al. 2020) ---------------------------------------------
def _domain_faces(model, n: int, seed: int):
    """The first `n` held-out bench faces of domain A and of domain B of `model.transfer_domains`,
    as float images in [-1, 1], with their parameters (for the renderer's true masks)."""
    (attr, (value_b, value_a)), = model.transfer_domains.items()
    a = synthetic.SCHEMA[attr]
    pool = np.arange(max(400, 40 * n))
    params = synthetic.params_for(seed, "test", pool)
    domain = domain_membership(synthetic.labels(params)[:, synthetic.SCHEMA.index(attr)],
                               *domain_indices(a, value_b, value_a))
    out = []
    for idx in (np.nonzero(domain == 0)[0][:n], np.nonzero(domain == 1)[0][:n]):
        sub = {k: v[idx] for k, v in params.items()}
        out.append((synthetic.render(sub, model.image_size)["image"] / 127.5 - 1.0, sub))
    return attr, out


def _mask_tiles(mask) -> list[np.ndarray]:
    m = np.asarray(mask, np.float32)
    m = m[..., 0] if m.ndim == 4 else m
    return list(np.repeat(np.clip(np.round(m * 255.0), 0, 255).astype(np.uint8)[..., None], 3, -1))


def content_transfer_grid(model, n: int = 5, seed: int = 0) -> np.ndarray:
    """Mokady et al. Fig. 3: top row domain-B guides b, left column domain-A sources a; each cell
    z(a, b) with its mask m(a, b) in the row beneath."""
    _, ((xa, _), (xb, _)) = _domain_faces(model, n, seed)
    src = tf.constant(np.repeat(xa, n, 0), tf.float32)
    guide = tf.constant(np.tile(xb, [n, 1, 1, 1]), tf.float32)
    z, m = model.transfer(src, guide)
    z, m = image_grid.to_uint8(z.numpy()), _mask_tiles(m.numpy())
    tiles = [None] + list(image_grid.to_uint8(xb))
    for r in range(n):
        tiles += [image_grid.to_uint8(xa[r])] + list(z[r * n:(r + 1) * n])
        tiles += [None] + m[r * n:(r + 1) * n]
    return image_grid.grid(tiles, 2 * n + 1, n + 1)


def segmentation_strip(model, n: int = 6, seed: int = 0) -> np.ndarray:
    """Mokady et al. Fig. 8, one row per domain-B face: b, the renderer's true layer, the soft mask
    m(b, b), the binarised mask, and the removal result."""
    attr, (_, (xb, params)) = _domain_faces(model, n, seed)
    truth = synthetic.render(params, model.image_size, outputs=("masks",))["masks"][synthetic.ATTRIBUTE_MASKS[attr]]
    x = tf.constant(xb, tf.float32)
    soft, binary = model.segment(x)
    removed, _ = model.remove(x)
    cols = [list(image_grid.to_uint8(xb)), _mask_tiles(truth), _mask_tiles(soft.numpy()), _mask_tiles(binary.numpy()),
            list(image_grid.to_uint8(removed.numpy()))]
    return image_grid.grid([c[r] for r in range(n) for c in cols], n, len(cols))


def interpolation_strip(model, steps: int = 6, seed: int = 0) -> np.ndarray:
    """Mokady et al. Fig. 4: source a fixed, E_s interpolated from E_s(b1) to E_s(b2); rows: two
    sources' images, each followed by its masks; b1 and b2 at the ends."""
    _, ((xa, _), (xb, _)) = _domain_faces(model, 2, seed)
    alpha = tf.linspace(0.0, 1.0, steps)
    tiles = []
    for r in range(2):
        a = tf.constant(np.repeat(xa[r:r + 1], steps, 0), tf.float32)
        z, m = model.interpolate(a, tf.constant(np.repeat(xb[:1], steps, 0), tf.float32),
                                 tf.constant(np.repeat(xb[1:2], steps, 0), tf.float32), alpha)
        ends = image_grid.to_uint8(xb[:2])
        tiles += [ends[0]] + list(image_grid.to_uint8(z.numpy())) + [ends[1]]
        tiles += [image_grid.to_uint8(xa[r])] + _mask_tiles(m.numpy()) + [None]
    return image_grid.grid(tiles, 4, steps + 2)


def write_content_transfer_figures(model, out_dir: str, seed: int = 0) -> list[str]:
    """transfer_grid.png (Fig. 3), segmentation.png (Fig. 8), interpolation.png (Fig. 4)."""
    paths = []
    for name, fig in (("transfer_grid", content_transfer_grid), ("segmentation", segmentation_strip),
                      ("interpolation", interpolation_strip)):
        p = os.path.join(out_dir, f"{name}.png")
        image_grid.save_png(p, fig(model, seed=seed))
        paths.append(p)
    return paths
