"""The synthetic face bench: procedural cartoon face crops with exact attribute ground truth.

Every image is drawn from a small set of parameters (identity shape and colours, plus one factor per
attribute: a class label and the style of that class), so the bench knows what a real dataset cannot:
the exact counterfactual of any face (`counterfactual`), the exact reference-based transfer
(`swap`), per-pixel masks of each local layer, and landmarks.

Rendering is numpy-vectorised over a batch: each layer is a signed-distance shape evaluated on the
pixel grid, anti-aliased with a smoothstep over one pixel of the signed distance, and composited
back to front. Lighting is a per-pixel multiplication applied after compositing and depends only on
head geometry, so changing a local attribute (glasses, beard, hair, mouth) changes pixels only
inside that layer's mask.

Coordinates: the renderer works in normalised image coordinates (x, y) in [-1, 1]^2, x to the
right and y downwards; landmarks are returned in pixels with the image spanning [0, size] (pixel
(i, j) covers [j, j+1] x [i, i+1]), so they scale with the image. "left"/"right" in attribute values
always mean the image's left/right (the viewer's), e.g. `Gaze=left` looks towards the image's left
edge, `Pose=left` turns the face towards it and `Illumination=left` lights it from there.

Example:
    p = params_for(seed=0, split="train", indices=np.arange(8))
    out = render(p, size=128, outputs=("image", "masks"))
    with_glasses = render(counterfactual(p, {"Eyeglasses": "yes"}), size=128)["image"]
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from tfattr.data import attributes as attrs
from tfattr.data.attributes import UnknownAttributeError  # noqa: F401 (raised via SCHEMA; re-exported)
from tfattr.data.base import SPLITS, DataError, Source, register

# Bump when pixels change for the same parameters: disk caches are keyed by it.
RENDERER_VERSION = 1

SCHEMA = attrs.Schema(
    (
        attrs.categorical("Hair_Color", ("black", "blond", "brown", "gray")),
        attrs.binary("Bangs"),
        attrs.binary("Eyeglasses"),
        attrs.binary("Beard"),
        attrs.binary("Smiling"),
        attrs.binary("Mouth_Slightly_Open"),
        attrs.categorical(
            "Expression",
            ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful", "contemptuous"),
        ),
        attrs.categorical("Illumination", ("left", "half_left", "front", "half_right", "right")),
        attrs.categorical("Gaze", ("left", "front", "right")),
        attrs.categorical("Pose", ("left", "frontal", "right")),
    )
)

# Masks of the layers that local attributes own (the locality contract), then extra part masks.
LOCAL_MASKS = ("hair", "glasses", "beard", "mouth")
MASKS = LOCAL_MASKS + ("eyes", "brows", "face")

# Which mask each local attribute may change (used by tests and by localisation metrics).
ATTRIBUTE_MASKS = {
    "Hair_Color": "hair",
    "Bangs": "hair",
    "Eyeglasses": "glasses",
    "Beard": "beard",
    "Smiling": "mouth",
    "Mouth_Slightly_Open": "mouth",
}

# Each attribute's complete factor: its label key first, then its style parameters. `swap` copies
# all of them, `counterfactual` only the label.
FACTORS = {
    "Hair_Color": ("hair_color", "hair_shade"),
    "Bangs": ("bangs", "bangs_length", "bangs_tilt", "bangs_wave", "bangs_freq"),
    "Eyeglasses": (
        "eyeglasses",
        "frame_shape",
        "frame_r",
        "frame_g",
        "frame_b",
        "frame_thickness",
        "lens_size",
        "lens_tint",
        "tint_r",
        "tint_g",
        "tint_b",
    ),
    "Beard": ("beard", "beard_style", "beard_r", "beard_g", "beard_b", "beard_density"),
    "Smiling": ("smiling", "smile_intensity"),
    "Mouth_Slightly_Open": ("mouth_slightly_open", "mouth_opening"),
    "Expression": ("expression", "expression_intensity"),
    "Illumination": ("illumination", "light_jitter", "light_strength"),
    "Gaze": ("gaze", "gaze_jitter"),
    "Pose": ("pose", "yaw_jitter"),
}
LABEL_KEYS = tuple(FACTORS[name][0] for name in SCHEMA.names)

IMAGES_PER_IDENTITY = 4
# Identity ranges per split are disjoint by construction: split k uses identities k * 10^7 + i.
_IDENTITY_BASE = {"train": 0, "validation": 10_000_000, "test": 20_000_000}

FRAME_SHAPES = ("round", "rectangular", "aviator")
BEARD_STYLES = ("full", "goatee", "mustache", "chin_strap")

# ---------------------------------------------------------------------------------------------
# Parameter sampling
# ---------------------------------------------------------------------------------------------

# Identity parameters: (name, low, high). Drawn uniformly from a hash of (seed, identity).
_IDENTITY_RANGES = (
    ("face_width", 0.40, 0.48),
    ("face_height", 0.60, 0.66),
    ("jaw", 0.66, 0.9),
    ("eye_y", -0.04, 0.04),
    ("eye_spacing", 0.23, 0.27),
    ("eye_width", 0.115, 0.135),
    ("eye_height", 0.060, 0.072),
    ("nose_length", 0.21, 0.25),
    ("nose_width", 0.055, 0.08),
    ("mouth_width", 0.14, 0.18),
    ("mouth_drop", 0.40, 0.45),
    ("lip_thickness", 0.016, 0.026),
    ("skin_tone", 0.0, 1.0),
    ("skin_hue", -1.0, 1.0),
    ("iris_hue", 0.0, 1.0),
    ("iris_dark", 0.0, 1.0),
    ("brow_thickness", 0.036, 0.05),
    ("brow_length", 0.11, 0.14),
    ("brow_gap", 0.13, 0.15),
    ("brow_dark", 0.0, 1.0),
    ("hair_volume", 0.03, 0.10),
    ("hair_length", 0.0, 1.0),
    ("hairline", -0.57, -0.50),
    ("bg_hue", 0.0, 1.0),
    ("bg_sat", 0.1, 0.6),
    ("bg_val", 0.35, 0.95),
    ("bg_grad", -0.25, 0.25),
    ("cloth_hue", 0.0, 1.0),
    ("cloth_val", 0.2, 0.9),
)

# Style parameters per example, (name, low, high): sampled whether or not the attribute is on, so
# that switching it on has a defined look.
_STYLE_RANGES = (
    ("hair_shade", 0.0, 1.0),
    ("bangs_length", 0.0, 1.0),
    ("bangs_tilt", -1.0, 1.0),
    ("bangs_wave", 0.0, 1.0),
    ("bangs_freq", 0.0, 1.0),
    ("frame_thickness", 0.032, 0.05),
    ("lens_size", 0.0, 1.0),
    ("beard_density", 0.8, 0.97),
    ("smile_intensity", 0.0, 1.0),
    ("mouth_opening", 0.0, 1.0),
    ("expression_intensity", 0.85, 1.15),
    ("light_jitter", -1.0, 1.0),
    ("light_strength", 0.0, 1.0),
    ("gaze_jitter", -1.0, 1.0),
    ("yaw_jitter", -1.0, 1.0),
)

# Binary attribute probabilities: balanced, so models and the oracle see both classes equally.
_P_ON = 0.5


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based hash (SplitMix64 finaliser) of uint64 arrays; wraps modulo 2^64."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _hash_uniform(*keys) -> np.ndarray:
    """Uniforms in [0, 1) from integer keys (scalars or broadcastable arrays), order-sensitive."""
    h = np.uint64(0x1234567)
    for k in keys:
        k = np.asarray(k).astype(np.int64).astype(np.uint64)
        with np.errstate(over="ignore"):
            h = _splitmix64(h ^ k)
    return ((h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))).astype(np.float64)


class _HashDraws:
    """Uniform draws keyed by (stream, row key, draw number): the same key always gives the same value."""

    def __init__(self, *row_keys):
        self.row_keys = [np.asarray(k, np.int64) for k in row_keys]
        self.count = 0

    def __call__(self) -> np.ndarray:
        self.count += 1
        return _hash_uniform(*self.row_keys, self.count)


class _RngDraws:
    def __init__(self, rng: np.random.Generator, n: int):
        self.rng, self.n = rng, n

    def __call__(self) -> np.ndarray:
        return self.rng.random(self.n)


def _identity_params(identities: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    draw = _HashDraws(np.full_like(identities, seed), np.full_like(identities, 1), identities)
    out = {"identity": identities.astype(np.int32)}
    for name, lo, hi in _IDENTITY_RANGES:
        out[name] = (lo + (hi - lo) * draw()).astype(np.float32)
    return out


def _categorical(u: np.ndarray, k: int) -> np.ndarray:
    return np.minimum((u * k).astype(np.int32), k - 1)


def _example_params(draw) -> dict[str, np.ndarray]:
    out = {}
    for name in SCHEMA.names:
        a = SCHEMA[name]
        u = draw()
        key = FACTORS[name][0]
        out[key] = (u < _P_ON).astype(np.int32) if a.binary else _categorical(u, a.num_classes)
    for name, lo, hi in _STYLE_RANGES:
        out[name] = (lo + (hi - lo) * draw()).astype(np.float32)
    out["frame_shape"] = _categorical(draw(), len(FRAME_SHAPES))
    out["beard_style"] = _categorical(draw(), len(BEARD_STYLES))
    # Frame colours: dark or saturated, so a 1-pixel frame stays visible on any skin at 64 px.
    hue, val = draw(), 0.08 + 0.32 * draw()
    sat = np.where(draw() < 0.5, 0.15, 0.75)
    out["frame_r"], out["frame_g"], out["frame_b"] = _hsv_to_rgb(hue, sat, val)
    # Half the glasses have clear lenses: the glasses factor then is the frame alone.
    tint = draw()
    out["lens_tint"] = np.where(tint < 0.5, 0.0, 0.15 + 0.35 * (tint - 0.5) * 2).astype(np.float32)
    out["tint_r"], out["tint_g"], out["tint_b"] = _hsv_to_rgb(draw(), 0.4 * draw(), 0.1 + 0.3 * draw())
    # Beards are black-to-brown or grey; blond beards would vanish on light skin at 64 px.
    u, grey = draw(), draw() < 0.2
    dark = np.array([0.07, 0.05, 0.04])[:, None]
    brown = np.array([0.36, 0.22, 0.12])[:, None]
    rgb = dark + (brown - dark) * u
    rgb = np.where(grey, (0.45 + 0.2 * u)[None], rgb)
    out["beard_r"], out["beard_g"], out["beard_b"] = (c.astype(np.float32) for c in rgb)
    for k in ("frame_r", "frame_g", "frame_b", "tint_r", "tint_g", "tint_b"):
        out[k] = out[k].astype(np.float32)
    return out


def params_for(seed: int, split: str, indices) -> dict[str, np.ndarray]:
    """The deterministic parameters of examples `indices` of `split`.

    Example `i` of a split shows identity `base(split) + i // IMAGES_PER_IDENTITY`; the identity
    ranges of the three splits are disjoint. Every value depends only on (seed, split, index), so
    any subset can be rendered in any order.

    Args:
      seed: bench seed.
      split: "train", "validation" or "test".
      indices: int array `[N]` of example indices (>= 0).

    Returns:
      Dict of batch-first arrays `[N]`: "identity" int32, the attribute labels (int32, keys in
      `LABEL_KEYS`), and float32 (or int32 for discrete styles) identity and style parameters.

    Raises:
      DataError: unknown split.
    """
    if split not in _IDENTITY_BASE:
        raise DataError(f"synthetic: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    indices = np.asarray(indices, np.int64).reshape(-1)
    identities = _IDENTITY_BASE[split] + indices // IMAGES_PER_IDENTITY
    out = _identity_params(identities, seed)
    split_id = SPLITS.index(split)
    out.update(_example_params(_HashDraws(np.full_like(indices, seed), np.full_like(indices, 2 + split_id), indices)))
    return out


def sample_params(rng: np.random.Generator, n: int, identities=None) -> dict[str, np.ndarray]:
    """Fresh parameters from the bench distribution, for ad-hoc use.

    Args:
      rng: random generator for the per-example factors (and identities when not given).
      n: number of faces.
      identities: optional int array `[n]`; identity parameters are a function of the identity
        number (with seed 0), so the same number gives the same person as `params_for(0, ...)`.

    Returns:
      A parameter dict like `params_for`.
    """
    if identities is None:
        identities = rng.integers(0, 3 * 10_000_000, size=n)
    identities = np.asarray(identities, np.int64).reshape(-1)
    if identities.shape[0] != n:
        raise ValueError(f"identities has {identities.shape[0]} entries, expected n={n}")
    out = _identity_params(identities, 0)
    out.update(_example_params(_RngDraws(rng, n)))
    return out


def labels(params: Mapping[str, np.ndarray]) -> np.ndarray:
    """Attribute labels of `params` as int32 `[N, G]` class indices in `SCHEMA` order."""
    return np.stack([np.asarray(params[k], np.int32) for k in LABEL_KEYS], axis=-1)


def _copy(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in params.items()}


def swap(params_a: Mapping[str, np.ndarray], params_b: Mapping[str, np.ndarray], attributes: Sequence[str]) -> dict:
    """A's faces with the named attributes' complete factors (label and style) taken from B.

    This is the ground truth of reference-based transfer: `swap(a, b, ["Eyeglasses"])` renders B's
    exact glasses (shape, colour, thickness, tint) on A.

    Args:
      params_a: parameters of the faces to edit, arrays `[N]`.
      params_b: parameters of the references, arrays `[N]` (or `[1]`, broadcast).
      attributes: attribute names from `SCHEMA`.

    Returns:
      A new parameter dict.

    Raises:
      UnknownAttributeError: a name not in `SCHEMA` (the message lists the valid ones).
    """
    out = _copy(params_a)
    n = len(out["identity"])
    for name in attributes:
        SCHEMA.index(name)
        for key in FACTORS[name]:
            out[key] = np.broadcast_to(np.asarray(params_b[key], out[key].dtype), (n,)).copy()
    return out


def counterfactual(params: Mapping[str, np.ndarray], changes: Mapping[str, int | str]) -> dict:
    """The same faces with only the named attributes set to a class; all style parameters kept.

    Args:
      params: parameter dict, arrays `[N]`.
      changes: attribute name -> class index or value name (e.g. {"Eyeglasses": "yes",
        "Hair_Color": 1}); an index may also be an int array `[N]`.

    Returns:
      A new parameter dict.

    Raises:
      UnknownAttributeError: unknown attribute or value name (the message lists the valid ones).
      ValueError: a class index out of range.
    """
    out = _copy(params)
    n = len(out["identity"])
    for name, value in changes.items():
        a = SCHEMA[name]
        if isinstance(value, str):
            value = a.value_index(value)
        value = np.asarray(value, np.int32)
        if np.any((value < 0) | (value >= a.num_classes)):
            raise ValueError(f"attribute {name!r}: class {value} outside [0, {a.num_classes - 1}] {a.values}")
        out[FACTORS[name][0]] = np.broadcast_to(value, (n,)).copy()
    return out


# ---------------------------------------------------------------------------------------------
# Colour helpers and signed-distance shapes (all vectorised; shapes broadcast [N,1,1] params
# against [1,H,1] / [1,1,W] grids; negative distance = inside).
# ---------------------------------------------------------------------------------------------


def _hsv_to_rgb(h, s, v):
    h, s, v = (np.asarray(t, np.float64) for t in (h, s, v))
    h, s, v = np.broadcast_arrays(h, s, v)
    i = np.floor(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i.astype(int), [v, q, p, p, t, v])
    g = np.choose(i.astype(int), [t, v, v, q, p, p])
    b = np.choose(i.astype(int), [p, p, t, v, v, q])
    return r, g, b


_HAIR_COLORS = np.array(
    [  # (dark end, light end) per class, in SCHEMA value order: black, blond, brown, gray.
        [[0.05, 0.045, 0.04], [0.15, 0.12, 0.10]],
        [[0.80, 0.64, 0.33], [0.96, 0.87, 0.60]],
        [[0.32, 0.18, 0.08], [0.50, 0.31, 0.16]],
        [[0.58, 0.58, 0.60], [0.84, 0.84, 0.86]],
    ],
    np.float32,
)
_SKIN_LIGHT = np.array([0.97, 0.82, 0.71], np.float32)
_SKIN_DARK = np.array([0.42, 0.27, 0.19], np.float32)
_IRIS = np.array([[0.35, 0.20, 0.08], [0.25, 0.45, 0.70], [0.30, 0.50, 0.25], [0.50, 0.38, 0.15]], np.float32)

# Expression -> (brow raise, inner-end raise (tilt), arch, right-brow extra raise, eye openness,
# right-eye openness factor). Units: normalised image coordinates (0.03 ~ 1 pixel at 64 px).
_EXPRESSIONS = np.array(
    [
        [0.000, 0.000, 0.012, 0.000, 1.00, 1.00],  # neutral
        [0.015, 0.000, 0.025, 0.000, 0.55, 1.00],  # happy: smiling eyes, cheeks raised
        [0.005, 0.060, -0.005, 0.000, 0.75, 1.00],  # sad: inner ends up
        [-0.030, -0.065, 0.000, 0.000, 0.90, 1.00],  # angry: inner ends down, frown lines
        [0.075, 0.005, 0.035, 0.000, 1.45, 1.00],  # surprised: high arched brows, wide eyes
        [-0.035, -0.020, 0.000, 0.000, 0.40, 1.00],  # disgusted: low brows, squint, nose wrinkles
        [0.050, 0.060, 0.000, 0.000, 1.35, 1.00],  # fearful: raised and inner-up, wide eyes
        [0.000, 0.000, 0.012, 0.055, 1.00, 0.65],  # contemptuous: one brow up, one eye narrowed
    ],
    np.float32,
)
_ILLUMINATION_DEG = np.array([-70.0, -35.0, 0.0, 35.0, 70.0], np.float32)
_POSE_DEG = np.array([-28.0, 0.0, 28.0], np.float32)
_GAZE = np.array([-1.0, 0.0, 1.0], np.float32)


def _smoothstep01(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ellipse(x, y, cx, cy, rx, ry):
    """Approximate signed distance to an axis-aligned ellipse (exact on the boundary's normal)."""
    dx, dy = x - cx, y - cy
    f = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    g = np.sqrt((dx / (rx * rx)) ** 2 + (dy / (ry * ry)) ** 2)
    rmin = np.minimum(rx, ry)
    return (f - 1.0) * (f + 1e-6) / (g + 1e-6 / rmin)


def _box(x, y, cx, cy, hx, hy, r=0.0):
    """Signed distance to a rounded box with half sizes (hx, hy) and corner radius r."""
    qx = np.abs(x - cx) - (hx - r)
    qy = np.abs(y - cy) - (hy - r)
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def _segment(x, y, ax, ay, bx, by, radius):
    """Signed distance to a capsule (segment a-b with radius)."""
    px, py = x - ax, y - ay
    vx, vy = bx - ax, by - ay
    h = np.clip((px * vx + py * vy) / (vx * vx + vy * vy + 1e-12), 0.0, 1.0)
    return np.sqrt((px - vx * h) ** 2 + (py - vy * h) ** 2) - radius


def _col(p, key):
    return np.asarray(p[key], np.float32)[:, None, None]


class _Canvas:
    """Back-to-front compositing with anti-aliasing and per-group visible-coverage masks."""

    def __init__(self, n: int, size: int, track_masks: bool):
        self.n, self.size = n, size
        self.px = 2.0 / size
        c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
        self.xs, self.ys = c[None, None, :], c[None, :, None]
        self.image = np.zeros((n, size, size, 3), np.float32)
        self.masks = {m: np.zeros((n, size, size), np.float32) for m in MASKS} if track_masks else None

    def window(self, y0, y1, x0=-1.0, x1=1.0):
        """Pixel window covering normalised box [x0,x1]x[y0,y1] for every face: (x, y, slices)."""
        s = self.size

        def idx(lo, hi):
            a = int(np.clip(np.floor((float(np.min(lo)) + 1) / 2 * s) - 2, 0, s))
            b = int(np.clip(np.ceil((float(np.max(hi)) + 1) / 2 * s) + 2, 0, s))
            return slice(a, max(a, b))

        rs, cs = idx(y0, y1), idx(x0, x1)
        return self.xs[:, :, cs], self.ys[:, rs, :], (rs, cs)

    def coverage(self, d):
        """Anti-aliased coverage of signed distance d: smoothstep across one pixel."""
        return _smoothstep01(0.5 - d / self.px)

    def add(self, alpha, color, group=None, win=None, footprint=None):
        """Composites `color` ([N,1,1,3] or [N,h,w,3]) with `alpha` ([N,h,w]) into window `win`."""
        rs, cs = win if win is not None else (slice(None), slice(None))
        alpha = np.broadcast_to(alpha, self.image[:, rs, cs, 0].shape).astype(np.float32)
        region = self.image[:, rs, cs]
        region += alpha[..., None] * (np.asarray(color, np.float32) - region)
        if self.masks is not None:
            for name, m in self.masks.items():
                mr = m[:, rs, cs]
                if name == group:
                    mr += alpha * (1.0 - mr)
                    if footprint is not None:
                        np.maximum(mr, footprint, out=mr)
                else:
                    mr *= 1.0 - alpha


def _rgb(*channels):
    return np.stack([np.asarray(c, np.float32) for c in channels], axis=-1)[:, None, None, :]


# ---------------------------------------------------------------------------------------------
# Geometry shared by the renderer and the landmarks
# ---------------------------------------------------------------------------------------------


class _Geometry:
    """Derived positions of a batch of faces (normalised coordinates, arrays [N,1,1])."""

    def __init__(self, p):
        c = lambda k: _col(p, k)
        pose = np.asarray(p["pose"], np.int64)
        yaw = np.deg2rad(_POSE_DEG[pose] + 7.0 * np.asarray(p["yaw_jitter"], np.float32))[:, None, None]
        self.sin, self.cos = np.sin(yaw).astype(np.float32), np.cos(yaw).astype(np.float32)
        self.eye_y = c("eye_y")
        self.W = c("face_width") * (1 - 0.08 * np.abs(self.sin))
        self.H = c("face_height")
        self.cy = self.eye_y + 0.03
        self.cx = np.zeros_like(self.eye_y) - 0.1 * self.sin  # head rotates about the neck
        self.jaw = c("jaw")
        self.depth = 0.42
        # Frontal-frame (x0, z) projected to image x: features on the face's front surface shift
        # by z * sin(yaw), so the nose (most forward) moves most and the ears move the other way.
        self.eye_sep = c("eye_spacing")
        self.eye_w = c("eye_width")
        self.eye_h = c("eye_height")
        self.nose_len, self.nose_w = c("nose_length"), c("nose_width")
        self.mouth_w = c("mouth_width")
        self.mouth_y = self.eye_y + c("mouth_drop")
        self.nose_y = self.eye_y + self.nose_len

        expr = _EXPRESSIONS[np.asarray(p["expression"], np.int64)]
        k = np.asarray(p["expression_intensity"], np.float32)[:, None]
        neutral = _EXPRESSIONS[0][None]
        e = neutral + (expr - neutral) * k
        e = e[:, :, None, None].astype(np.float32)
        self.brow_raise, self.brow_tilt, self.brow_arch, self.brow_asym = e[:, 0], e[:, 1], e[:, 2], e[:, 3]
        self.eye_open, self.eye_open_right = e[:, 4], e[:, 5]
        gaze = _GAZE[np.asarray(p["gaze"], np.int64)] + 0.12 * np.asarray(p["gaze_jitter"], np.float32)
        self.gaze = gaze[:, None, None].astype(np.float32)
        self.expression = np.asarray(p["expression"], np.int64)

    def proj(self, x0, z):
        return self.cx + x0 * self.cos + z * self.sin

    def half_width(self, y):
        """Head half-width at height y (narrowing to the jaw below the head centre)."""
        t = np.clip((y - self.cy) / self.H, 0, 1)
        return self.W * (1.0 - (1.0 - self.jaw) * t * t)

    def center_x(self, y):
        """Head outline centre at height y: the chin follows the yaw more than the skull does."""
        t = np.clip((y - self.cy) / self.H, 0, 1)
        return self.cx + self.sin * 0.16 * (0.3 + t)

    def eye(self, side):
        """(centre x, centre y, half width, half height) of the eye on image side -1 (left) / +1."""
        x = self.proj(side * self.eye_sep, 0.34)
        # The eye on the side the face turns away from is foreshortened.
        w = self.eye_w * (self.cos - 0.35 * self.sin * side)
        open_ = self.eye_open * (self.eye_open_right if side > 0 else 1.0)
        return x, self.eye_y, w, self.eye_h * open_

    def brow(self, side):
        """(outer x, inner x, y at outer, y at inner, arch) of the brow on image side -1 / +1."""
        cxb = self.proj(side * (self.eye_sep + 0.01), 0.34)
        half = self.eye_w * 1.05 * (self.cos - 0.35 * self.sin * side)
        base = self.eye_y - _BROW_GAP - self.brow_raise - (self.brow_asym if side > 0 else 0.0)
        outer_x, inner_x = cxb + side * half, cxb - side * half
        return outer_x, inner_x, base, base - self.brow_tilt, self.brow_arch

    def mouth(self, p):
        """(centre x, centre y, half width, corner lift, opening) of the mouth."""
        smile = np.asarray(p["smiling"], np.float32)[:, None, None]
        lift = smile * (0.075 + 0.035 * _col(p, "smile_intensity")) - (1 - smile) * 0.004
        opening = np.asarray(p["mouth_slightly_open"], np.float32)[:, None, None] * (0.05 + 0.035 * _col(p, "mouth_opening"))
        w = self.mouth_w * (1.0 + 0.2 * smile) * self.cos
        return self.proj(0.0, 0.37), self.mouth_y, w, lift, opening

    def hairline_y(self, x, p):
        t = np.clip(np.abs(x - self.proj(0.0, 0.2)) / self.W, 0, 1)
        top = self.eye_y + _col(p, "hairline")
        return top + (self.eye_y - 0.08 - top) * t**4


_BROW_GAP = 0.135


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _skin(p):
    t = _col(p, "skin_tone")[..., None]
    base = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * t
    hue = _col(p, "skin_hue")[..., None] * np.array([0.03, 0.0, -0.03], np.float32)
    return np.clip(base + hue, 0, 1)


def _hair_rgb(p):
    cls = np.asarray(p["hair_color"], np.int64)
    lo, hi = _HAIR_COLORS[cls, 0], _HAIR_COLORS[cls, 1]
    s = np.asarray(p["hair_shade"], np.float32)[:, None]
    return (lo + (hi - lo) * s)[:, None, None, :]


def _draw_background(cv, p, g):
    h, s, v = (np.asarray(p[k], np.float64) for k in ("bg_hue", "bg_sat", "bg_val"))
    top = _rgb(*_hsv_to_rgb(h, s, v))
    bot = _rgb(*_hsv_to_rgb(h, s, np.clip(v * (1.0 + np.asarray(p["bg_grad"])), 0, 1)))
    t = ((cv.ys + 1) / 2)[..., None]
    cv.image[:] = top + (bot - top) * t
    # Shoulders and clothes.
    cloth = _rgb(*_hsv_to_rgb(np.asarray(p["cloth_hue"]), 0.45, np.asarray(p["cloth_val"])))
    x, y, win = cv.window(0.75, 1.0)
    d = _ellipse(x, y, g.cx * 0.5, 1.35, 0.95, 0.55)
    cv.add(cv.coverage(d), cloth, None, win)


def _hair_outer(x, y, g, p):
    vol = _col(p, "hair_volume")
    return _ellipse(x, y, g.cx, g.cy - 0.06, g.W + vol, g.H + vol * 0.8)


def _draw_hair_back(cv, p, g, hair):
    # Long hair falls to (at most) the bottom edge; short hair stops around the ears.
    length = _col(p, "hair_length")
    y_end = g.eye_y + 0.05 + 0.95 * length
    x, y, win = cv.window(-1.0, 1.0)
    vol = _col(p, "hair_volume")
    outer = _hair_outer(x, y, g, p)
    drape = _box(x, y, g.cx, (g.cy + y_end) / 2, g.W + vol * 0.9, np.maximum((y_end - g.cy) / 2, 0.01), 0.08)
    d = np.minimum(np.maximum(outer, y - y_end), np.where(length > 0.35, drape, 1.0))
    cv.add(cv.coverage(d), hair, "hair", win)


def _head_sd(x, y, g):
    return _ellipse(x, y, g.center_x(y), g.cy, g.half_width(y), g.H)


def _draw_face(cv, p, g, skin):
    # Neck (in shadow under the jaw), ears, head.
    x, y, win = cv.window(g.cy, 1.0)
    d = _box(x, y, g.cx * 0.6 + g.sin * 0.05, g.cy + 0.6, g.W * 0.55, 0.6, 0.02)
    cv.add(cv.coverage(d), skin * 0.78, "face", win)
    x, y, win = cv.window(g.eye_y - 0.2, g.eye_y + 0.3)
    for side in (-1, 1):
        ex = g.cx + side * g.W * (0.97 - 0.05 * side * g.sin) - g.sin * 0.1
        d = _ellipse(x, y, ex, g.eye_y + 0.07, 0.065, 0.12)
        cv.add(cv.coverage(d), skin * 0.9, "face", win)
    x, y, win = cv.window(-1.0, 1.0)
    cv.add(cv.coverage(_head_sd(x, y, g)), skin, "face", win)


def _draw_expression_marks(cv, p, g, skin):
    e = g.expression
    # Happy: raised, rosy cheeks.
    x, y, win = cv.window(g.eye_y + 0.05, g.eye_y + 0.35)
    on = (e == 1)[:, None, None].astype(np.float32)
    for side in (-1, 1):
        d = _ellipse(x, y, g.proj(side * (g.eye_sep + 0.02), 0.3), g.eye_y + 0.19, 0.085, 0.05)
        cv.add(0.45 * on * cv.coverage(d), np.array([0.93, 0.42, 0.42], np.float32), "face", win)
    # Angry: vertical frown lines between the brows. Disgusted: wrinkles across the nose bridge.
    x, y, win = cv.window(g.eye_y - 0.25, g.eye_y + 0.1)
    line = skin * 0.55
    on = (e == 3)[:, None, None].astype(np.float32)
    for side in (-1, 1):
        xc = g.proj(side * 0.035, 0.4)
        d = _segment(x, y, xc, g.eye_y - 0.19, xc + side * 0.005, g.eye_y - 0.08, 0.011)
        cv.add(on * cv.coverage(d), line, "face", win)
    on = (e == 5)[:, None, None].astype(np.float32)
    for k in range(2):
        yy = g.eye_y + 0.02 + 0.045 * k
        d = _segment(x, y, g.proj(-0.045, 0.42), yy, g.proj(0.045, 0.42), yy, 0.01)
        cv.add(on * cv.coverage(d), line, "face", win)
    # Surprised and fearful: forehead lines.
    x, y, win = cv.window(g.eye_y - 0.4, g.eye_y - 0.2)
    on = np.isin(e, (4, 6))[:, None, None].astype(np.float32)
    for k in range(2):
        yy = g.eye_y - 0.27 - 0.05 * k
        d = _segment(x, y, g.proj(-0.13, 0.35), yy, g.proj(0.13, 0.35), yy, 0.009)
        cv.add(on * cv.coverage(d), skin * 0.7, "face", win)


def _draw_brows(cv, p, g):
    dark = _col(p, "brow_dark")[..., None]
    color = np.array([0.32, 0.2, 0.12], np.float32) * (1 - dark) + np.array([0.06, 0.05, 0.04], np.float32) * dark
    th = _col(p, "brow_thickness") / 2
    # Windows must hold every face's full extent (here: raised, tilted, arched brows), or a face's
    # pixels would depend on which other faces share its batch.
    x, y, win = cv.window(g.eye_y - 0.45, g.eye_y + 0.05)
    for side in (-1, 1):
        ox, ix, oy, iy, arch = g.brow(side)
        s = np.clip((x - ox) / (ix - ox), 0, 1)  # 0 at the outer end, 1 at the inner end
        yc = oy + (iy - oy) * s - arch * 4 * s * (1 - s)
        slope = (iy - oy) / (ix - ox)
        taper = th * (0.65 + 0.35 * s)
        d_y = (np.abs(y - yc) - taper) / np.sqrt(1 + slope * slope)
        d_x = np.abs(x - (ox + ix) / 2) - np.abs(ix - ox) / 2
        d = np.maximum(d_y, d_x)
        cv.add(cv.coverage(d), color, "brows", win)


def _draw_eyes(cv, p, g):
    iris_col = _IRIS[np.minimum((np.asarray(p["iris_hue"]) * 4).astype(int), 3)]
    iris_col = iris_col * (1.0 - 0.5 * np.asarray(p["iris_dark"], np.float32))[:, None]
    iris_col = iris_col[:, None, None, :]
    x, y, win = cv.window(g.eye_y - 0.14, g.eye_y + 0.14)
    for side in (-1, 1):
        ex, ey, ew, eh = g.eye(side)
        sclera = _ellipse(x, y, ex, ey, ew, eh)
        a_sclera = cv.coverage(sclera)
        cv.add(a_sclera, np.array([0.96, 0.95, 0.92], np.float32), "eyes", win)
        ir = g.eye_h * 0.8
        ix = ex + g.gaze * (ew - ir) * 0.85
        a_iris = cv.coverage(_ellipse(x, y, ix, ey, ir * g.cos, ir)) * a_sclera
        cv.add(a_iris, iris_col, "eyes", win)
        a_pupil = cv.coverage(_ellipse(x, y, ix, ey, ir * 0.5 * g.cos, ir * 0.5)) * a_sclera
        cv.add(a_pupil, np.array([0.02, 0.02, 0.02], np.float32), "eyes", win)
        # Upper lid and lashes: the top half of the eye outline.
        lid = np.maximum(np.abs(sclera) - 0.012, y - ey + 0.3 * eh)
        cv.add(cv.coverage(lid), np.array([0.08, 0.05, 0.04], np.float32), "eyes", win)


def _draw_nose(cv, p, g, skin):
    x, y, win = cv.window(g.eye_y, g.nose_y + 0.08)
    tip_x = g.proj(0.0, 0.55)
    nw = g.nose_w * g.cos
    d = _ellipse(x, y, tip_x, g.nose_y - 0.015, nw, 0.04)
    cv.add(0.45 * cv.coverage(d), skin * 0.8, None, win)
    # Bridge shadow: from between the eyes down to the side of the tip.
    d = _segment(x, y, g.proj(0.035, 0.4), g.eye_y + 0.06, tip_x + nw * 0.8, g.nose_y - 0.03, 0.009)
    cv.add(0.55 * cv.coverage(d), skin * 0.72, None, win)
    for side in (-1, 1):
        d = _ellipse(x, y, tip_x + side * nw * 0.55, g.nose_y + 0.012, 0.02 * g.cos, 0.012)
        cv.add(cv.coverage(d), skin * 0.42, None, win)


def _draw_beard(cv, p, g):
    on = np.asarray(p["beard"], np.float32)[:, None, None]
    style = np.asarray(p["beard_style"], np.int64)[:, None, None]
    color = _rgb(p["beard_r"], p["beard_g"], p["beard_b"])
    density = _col(p, "beard_density")
    # The beard follows the resting mouth, not the smile: a smile must only change mouth pixels.
    mx, my, mw = g.proj(0.0, 0.37), g.mouth_y, g.mouth_w * g.cos
    x, y, win = cv.window(g.eye_y, 1.0)
    head = _head_sd(x, y, g)
    # Beard volume: a little beyond the jaw outline.
    jaw = np.maximum(head - 0.03, g.eye_y + 0.1 - y)
    top = (g.nose_y + 0.035) + ((g.eye_y + 0.13) - (g.nose_y + 0.035)) * np.clip(np.abs(x - mx) / g.W, 0, 1) ** 1.5
    full = np.maximum(jaw, top - y)
    mustache = _ellipse(x, y, mx, my - 0.062, mw * 1.05 + 0.02, 0.036)
    goatee = np.minimum(_ellipse(x, y, mx, my + 0.11, mw * 0.75, 0.12), mustache)
    goatee = np.maximum(goatee, jaw)
    strap = np.maximum(np.maximum(jaw, -head - 0.07), g.eye_y + 0.12 - y)
    d = np.where(style == 0, full, np.where(style == 1, goatee, np.where(style == 2, mustache, strap)))
    cv.add(on * density * cv.coverage(d), color, "beard", win)


def _draw_mouth(cv, p, g):
    mx, my, mw, lift, opening = g.mouth(p)
    skin = _skin(p)
    lip = np.clip(skin * np.array([0.85, 0.5, 0.5], np.float32) + np.array([0.08, 0.0, 0.0], np.float32), 0, 1)
    x, y, win = cv.window(g.mouth_y - 0.15, g.mouth_y + 0.17)
    t = np.clip((x - mx) / mw, -1, 1)
    u = np.sqrt(np.maximum(1 - t * t, 0))
    yc = my + lift * (0.35 - t * t)
    o_up, o_lo = 0.3 * opening, opening
    lip_up = _col(p, "lip_thickness") * 0.8
    lip_lo = _col(p, "lip_thickness") * 1.1
    side = np.abs(x - mx) - mw
    d_lips = np.maximum(side, np.maximum(yc - (o_up + lip_up) * u**0.7 - y, y - yc - (o_lo + lip_lo) * u**0.7))
    cv.add(cv.coverage(d_lips), lip, "mouth", win)
    # The mouth line: always drawn, so a closed mouth shows its curvature.
    d_line = np.maximum(side + 0.005, np.abs(y - yc) - 0.015 * (0.4 + 0.6 * u))
    cv.add(cv.coverage(d_line), lip * 0.25, "mouth", win)
    has_open = opening > 0
    top_in, bot_in = yc - o_up * u, yc + o_lo * u
    d_in = np.maximum(side + 0.01, np.maximum(top_in - y, y - bot_in))
    d_in = np.where(has_open, d_in, 1.0)
    cv.add(cv.coverage(d_in), np.array([0.22, 0.05, 0.06], np.float32), "mouth", win)
    d_teeth = np.maximum(d_in, y - (top_in + 0.45 * opening * u))
    cv.add(cv.coverage(d_teeth), np.array([0.95, 0.94, 0.9], np.float32), "mouth", win)


def _draw_bangs(cv, p, g, hair):
    on = np.asarray(p["bangs"], np.float32)[:, None, None]
    x, y, win = cv.window(-1.0, g.eye_y)  # the cap reaches eye_y - 0.08 at the temples
    # Fringe bottom edge: length, tilt (side-swept) and wave (scalloped); it always stays above
    # the highest brow so expressions remain readable.
    fx = g.proj(0.0, 0.3)
    length = _col(p, "bangs_length")
    edge = g.eye_y - 0.275 + 0.045 * length + 0.05 * _col(p, "bangs_tilt") * (x - fx) / g.W
    freq = 14.0 + 14.0 * _col(p, "bangs_freq")
    edge = edge - 0.035 * _col(p, "bangs_wave") * np.abs(np.sin(freq * (x - fx)))
    inside = np.maximum(_head_sd(x, y, g) + 0.02, y - edge)
    d = np.minimum(inside, np.maximum(_hair_outer(x, y, g, p), y - g.hairline_y(x, p)))
    # Strands: darker combed lines, so a fringe reads as hair even when its colour is near the skin's.
    strands = 1.0 - 0.22 * np.abs(np.sin(55.0 * (x - fx) + 6.0 * (y - edge)))
    cv.add(on * cv.coverage(d), hair * strands[..., None], "hair", win)
    # Hair cap when there are no bangs (the same hair on top of the head, above the hairline).
    d_cap = np.maximum(_hair_outer(x, y, g, p), y - g.hairline_y(x, p))
    cv.add((1 - on) * cv.coverage(d_cap), hair, "hair", win)


def _lens_sd(x, y, cx, cy, rx, ry, shape):
    rnd = _ellipse(x, y, cx, cy, rx, ry)
    rect = _box(x, y, cx, cy, rx, ry * 0.9, 0.035)
    # Aviator: deeper below the centre than above, like a teardrop.
    ry_av = np.where(y > cy, ry * 1.2, ry * 0.85)
    avi = _ellipse(x, y, cx, cy, rx * 1.02, ry_av)
    return np.where(shape == 0, rnd, np.where(shape == 1, rect, avi))


def _draw_glasses(cv, p, g):
    on = np.asarray(p["eyeglasses"], np.float32)[:, None, None]
    shape = np.asarray(p["frame_shape"], np.int64)[:, None, None]
    color = _rgb(p["frame_r"], p["frame_g"], p["frame_b"])
    tint_col = _rgb(p["tint_r"], p["tint_g"], p["tint_b"])
    th = _col(p, "frame_thickness") / 2
    size = 1.0 + 0.12 * _col(p, "lens_size")
    x, y, win = cv.window(g.eye_y - 0.2, g.eye_y + 0.2)
    lenses, rings, centers = [], [], []
    for side in (-1, 1):
        ex, ey, ew, _ = g.eye(side)
        rx = (g.eye_w * 1.3 * size) * (g.cos - 0.3 * g.sin * side)
        ry = 0.095 * size
        sd = _lens_sd(x, y, ex, ey + 0.01, rx, ry, shape)
        lenses.append(sd)
        rings.append(np.abs(sd) - th)
        centers.append((ex, rx))
    lens = np.minimum(*lenses)
    (lx, lrx), (rx_, rrx) = centers
    bridge = _segment(x, y, lx + lrx, g.eye_y - 0.015, rx_ - rrx, g.eye_y - 0.015, th * 0.9)
    ear_l = g.cx - g.W * (1.0 + 0.05 * g.sin) - g.sin * 0.1
    ear_r = g.cx + g.W * (1.0 - 0.05 * g.sin) - g.sin * 0.1
    temple_l = _segment(x, y, lx - lrx, g.eye_y - 0.02, ear_l, g.eye_y - 0.005, th * 0.8)
    temple_r = _segment(x, y, rx_ + rrx, g.eye_y - 0.02, ear_r, g.eye_y - 0.005, th * 0.8)
    frame = np.minimum(np.minimum(np.minimum(*rings), bridge), np.minimum(temple_l, temple_r))
    a_lens = on * cv.coverage(lens)
    a_frame = on * cv.coverage(frame)
    cv.add(a_lens * _col(p, "lens_tint"), tint_col, "glasses", win, footprint=a_lens)
    cv.add(a_frame, color, "glasses", win, footprint=np.maximum(a_lens, a_frame))


def _lighting(cv, p, g):
    """Per-pixel shading: a lit ellipsoid for the head, a directional gradient elsewhere."""
    cls = np.asarray(p["illumination"], np.int64)
    theta = np.deg2rad(_ILLUMINATION_DEG[cls] + 8.0 * np.asarray(p["light_jitter"], np.float32))
    lx = np.sin(theta)[:, None, None].astype(np.float32)
    lz = np.cos(theta)[:, None, None].astype(np.float32)
    ly = -0.3
    norm = np.sqrt(lx * lx + ly * ly + lz * lz)
    x, y = cv.xs, cv.ys
    nx = (x - g.cx) / (g.W * 1.15)
    ny = (y - g.cy) / (g.H * 1.1)
    r2 = nx * nx + ny * ny
    nz = np.sqrt(np.maximum(1 - r2, 0))
    inside = _smoothstep01((1.0 - np.sqrt(r2)) / 0.15)  # soft rim: geometry only, no layer masks
    nxs = nx / np.maximum(np.sqrt(r2), 1.0)
    nys = ny / np.maximum(np.sqrt(r2), 1.0)
    lambert = np.maximum((nxs * lx + nys * ly + nz * lz) / norm, 0)
    # Ambient never below ~0.35, so features on the shadow side stay readable.
    strength = 0.5 + 0.15 * _col(p, "light_strength")
    head = (1 - strength) + strength * 1.25 * lambert
    bg = 1.0 + 0.45 * lx * x
    shade = bg + (head - bg) * inside
    cv.image *= shade[..., None]


def render(params: Mapping[str, np.ndarray], size: int, outputs: Iterable[str] = ("image",)) -> dict:
    """Renders a batch of faces.

    Args:
      params: parameter dict from `params_for`, `sample_params`, `swap` or `counterfactual`.
      size: image side in pixels, 32..256 (renders are correct for any size; smaller loses detail).
      outputs: any of "image", "masks", "landmarks5", "landmarks68".

    Returns:
      Dict with the requested outputs: "image" uint8 `[N, size, size, 3]`; "masks" dict name ->
      float32 `[N, size, size]` in [0, 1] (visible coverage of each layer in `MASKS`);
      "landmarks5" float32 `[N, 5, 2]` and "landmarks68" float32 `[N, 68, 2]` as pixel (x, y)
      with the image spanning [0, size].

    Raises:
      ValueError: unknown output name or size outside 8..1024.
    """
    outputs = tuple(outputs)
    valid = ("image", "masks", "landmarks5", "landmarks68")
    for o in outputs:
        if o not in valid:
            raise ValueError(f"unknown render output {o!r}; valid outputs: {', '.join(valid)}")
    if not 8 <= int(size) <= 1024:
        raise ValueError(f"render size must be in 8..1024 (32..256 recommended), got {size}")
    size = int(size)
    out = {}
    g = _Geometry(params)
    if "image" in outputs or "masks" in outputs:
        n = len(params["identity"])
        cv = _Canvas(n, size, "masks" in outputs)
        skin = _skin(params)
        hair = _hair_rgb(params)
        _draw_background(cv, params, g)
        _draw_hair_back(cv, params, g, hair)
        _draw_face(cv, params, g, skin)
        _draw_expression_marks(cv, params, g, skin)
        _draw_nose(cv, params, g, skin)
        _draw_brows(cv, params, g)
        _draw_eyes(cv, params, g)
        _draw_beard(cv, params, g)
        _draw_mouth(cv, params, g)
        _draw_bangs(cv, params, g, hair)
        _draw_glasses(cv, params, g)
        if "image" in outputs:
            _lighting(cv, params, g)
            out["image"] = np.clip(cv.image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if "masks" in outputs:
            out["masks"] = {k: np.clip(v, 0, 1) for k, v in cv.masks.items()}
    if "landmarks68" in outputs or "landmarks5" in outputs:
        lm68 = _landmarks68(params, g)
        to_px = lambda a: ((a + 1.0) * size / 2.0).astype(np.float32)
        if "landmarks68" in outputs:
            out["landmarks68"] = to_px(lm68)
        if "landmarks5" in outputs:
            eyes_l = lm68[:, 36:42].mean(axis=1)
            eyes_r = lm68[:, 42:48].mean(axis=1)
            lm5 = np.stack([eyes_l, eyes_r, lm68[:, 30], lm68[:, 48], lm68[:, 54]], axis=1)
            out["landmarks5"] = to_px(lm5)
    return out


def _landmarks68(p, g) -> np.ndarray:
    """iBUG 68-point landmarks in normalised coordinates, float32 [N, 68, 2]."""
    n = len(p["identity"])
    sq = lambda a: np.asarray(a, np.float32).reshape(n, -1)
    pts = []

    def add(xs, ys):
        xs, ys = np.broadcast_arrays(sq(xs), sq(ys))
        pts.append(np.stack([xs, ys], axis=-1))

    # Jaw 0-16: along the head outline from eye level (image left) round the chin to the right.
    beta0 = np.arcsin(np.clip((g.eye_y + 0.02 - g.cy) / g.H, -1, 1))
    beta = (beta0 + (np.pi / 2 - beta0) * (np.arange(9, dtype=np.float32) / 8.0).reshape(1, 1, 9)).reshape(n, 9)
    ys = g.cy.reshape(n, 1) + g.H.reshape(n, 1) * np.sin(beta)
    t = np.clip((ys - g.cy.reshape(n, 1)) / g.H.reshape(n, 1), 0, 1)
    hw = g.W.reshape(n, 1) * (1.0 - (1.0 - g.jaw.reshape(n, 1)) * t * t)
    cxy = g.cx.reshape(n, 1) + g.sin.reshape(n, 1) * 0.16 * (0.3 + t)
    left_x = cxy - hw * np.cos(beta)
    right_x = cxy + hw * np.cos(beta)
    add(np.concatenate([left_x, right_x[:, ::-1][:, 1:]], 1), np.concatenate([ys, ys[:, ::-1][:, 1:]], 1))
    # Brows 17-21 (image-left brow, outer to inner) and 22-26 (image-right, inner to outer).
    s = np.linspace(0, 1, 5, dtype=np.float32).reshape(1, 5)
    for side in (-1, 1):
        ox, ix, oy, iy, arch = (np.asarray(v, np.float32).reshape(n, 1) for v in g.brow(side))
        ss = s if side < 0 else s[:, ::-1]
        add(ox + (ix - ox) * ss, oy + (iy - oy) * ss - arch * 4 * ss * (1 - ss))
    # Nose 27-30 (bridge to tip) and 31-35 (base, left to right).
    k = np.linspace(0, 1, 4, dtype=np.float32).reshape(1, 4)
    add(g.proj(0.0, 0.4 + 0.15 * k.reshape(1, 1, 4)).reshape(n, 4), g.eye_y.reshape(n, 1) + 0.02 + (g.nose_len.reshape(n, 1) - 0.02) * k)
    tip = g.proj(0.0, 0.55).reshape(n, 1)
    nw = (g.nose_w * g.cos).reshape(n, 1)
    add(tip + nw * np.array([-1, -0.5, 0, 0.5, 1], np.float32), g.nose_y.reshape(n, 1) + np.array([0.0, 0.012, 0.02, 0.012, 0.0], np.float32))
    # Eyes 36-41 and 42-47: each starts at its image-left corner (outer for the left eye, inner
    # for the right, as in iBUG), then upper lid, image-right corner, lower lid.
    ang = np.deg2rad(np.array([180, 120, 60, 0, -60, -120], np.float32))
    for side in (-1, 1):
        ex, ey, ew, eh = (np.asarray(v, np.float32).reshape(n, 1) for v in np.broadcast_arrays(*g.eye(side)))
        add(ex + ew * np.cos(ang), ey - eh * np.sin(ang))
    # Mouth 48-59 outer lip, 60-67 inner lip.
    mx, my, mw, lift, opening = (np.asarray(v, np.float32).reshape(n, 1) for v in np.broadcast_arrays(*g.mouth(p)))
    lip = sq(p["lip_thickness"])
    tt = np.array([-1, -0.6, -0.25, 0, 0.25, 0.6, 1], np.float32)
    uu = np.sqrt(np.maximum(1 - tt * tt, 0))
    yc = my + lift * (0.35 - tt * tt)
    upper = yc - (0.3 * opening + lip * 0.8) * uu**0.7
    lower = yc + (opening + lip * 1.1) * uu**0.7
    add(np.concatenate([mx + mw * tt, (mx + mw * tt)[:, 5:0:-1]], 1), np.concatenate([upper, lower[:, 5:0:-1]], 1))
    ti = np.array([-0.9, -0.4, 0, 0.4, 0.9], np.float32)
    ui = np.sqrt(1 - ti * ti)
    yci = my + lift * (0.35 - ti * ti)
    up_in = yci - 0.3 * opening * ui
    lo_in = yci + opening * ui
    add(np.concatenate([mx + mw * ti, (mx + mw * ti)[:, 3:0:-1]], 1), np.concatenate([yci[:, :1], up_in[:, 1:4], yci[:, 4:5], lo_in[:, 3:0:-1]], 1))
    lm = np.concatenate(pts, axis=1).astype(np.float32)
    assert lm.shape == (n, 68, 2), lm.shape
    return lm


# ---------------------------------------------------------------------------------------------
# Dataset source
# ---------------------------------------------------------------------------------------------


_MALLOC_TUNED = False


def _keep_large_arrays_on_heap() -> None:
    """Raises glibc's mmap and trim thresholds (to 32 MB / 256 MB), once per process.

    Once the TensorFlow runtime has started, glibc serves every multi-megabyte numpy temporary
    with a fresh mmap (page faults on every layer), which made bulk rendering 3x slower inside
    TF processes (measured 187 -> 58 faces/s at 128 px); heap-served arrays restore it. It does not
    undo a second slowdown seen after `tf.data` generator threads have rendered (~50 faces/s at
    128 px): pass `cache_dir` to the source for long runs. No-op off glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD: don't hand freed arrays back at once
    except (OSError, AttributeError):
        pass


def render_split(seed: int, split: str, start: int, stop: int, image_size: int, chunk: int | None = None):
    """Yields (indices, params, images) chunks of examples [start, stop) of `split`, in order.

    The default chunk keeps each [chunk, size, size] float32 layer near 2 MB: larger batches fall
    out of the CPU cache (measured: 32 faces per chunk render 1.6x faster than 128 at 128 px).
    """
    _keep_large_arrays_on_heap()
    if chunk is None:
        chunk = int(np.clip(2**19 // (image_size * image_size), 16, 256))
    for a in range(start, stop, chunk):
        idx = np.arange(a, min(a + chunk, stop), dtype=np.int64)
        p = params_for(seed, split, idx)
        yield idx, p, render(p, image_size)["image"]


class SyntheticSource(Source):
    """The synthetic face bench as a `Source` (see the module docstring).

    Without `cache_dir` each pass renders on the fly (about 150-190 faces/s at 64 px and 25-50 at
    128 px inside a TF process on 2 CPU cores); with `cache_dir` a split is rendered once into .npy
    files keyed by `cache_key()` and then read at thousands of faces/s.
    """

    name = "synthetic"
    schema = SCHEMA

    def __init__(self, image_size: int = 64, seed: int = 0, num_train: int = 20000, num_validation: int = 1000,
                 num_test: int = 2000, cache_dir: str | None = None):
        if not 8 <= image_size <= 1024:
            raise DataError(f"synthetic: image_size must be in 8..1024 (32..256 recommended), got {image_size}")
        self.image_size, self.seed, self.cache_dir = int(image_size), int(seed), cache_dir
        self.sizes = {"train": int(num_train), "validation": int(num_validation), "test": int(num_test)}

    def num_examples(self, split: str) -> int:
        self.check_split(split)
        return self.sizes[split]

    def cache_key(self) -> str:
        """Hash of everything that determines the pixels of a split."""
        spec = repr((self.seed, sorted(self.sizes.items()), self.image_size, RENDERER_VERSION))
        return hashlib.sha1(spec.encode()).hexdigest()[:16]

    def _cached_arrays(self, split: str):
        """(images, labels, identities) as .npy memory maps under cache_dir, rendering them once."""
        n = self.sizes[split]
        base = os.path.join(self.cache_dir, f"synthetic-{self.cache_key()}-{split}")
        paths = {k: f"{base}-{k}.npy" for k in ("image", "labels", "identity")}
        if not all(os.path.exists(p) for p in paths.values()):
            os.makedirs(self.cache_dir, exist_ok=True)
            s = self.image_size
            tmp = {k: v + f".tmp{os.getpid()}.npy" for k, v in paths.items()}
            img = np.lib.format.open_memmap(tmp["image"], "w+", np.uint8, (n, s, s, 3))
            lab = np.zeros((n, len(SCHEMA)), np.int32)
            ident = np.zeros((n,), np.int32)
            for idx, p, images in render_split(self.seed, split, 0, n, s):
                img[idx] = images
                lab[idx] = labels(p)
                ident[idx] = p["identity"]
            img.flush()
            del img
            np.save(tmp["labels"], lab)
            np.save(tmp["identity"], ident)
            # Rename last, so a crashed render never leaves a cache that looks complete.
            for k in ("labels", "identity", "image"):
                os.replace(tmp[k], paths[k])
        return tuple(np.load(paths[k], mmap_mode="r") for k in ("image", "labels", "identity"))

    def arrays(self, split: str):
        """A whole split as numpy arrays `(images uint8 [N,S,S,3], labels int32 [N,A], identities
        int32 [N])`: memory maps of the disk cache when `cache_dir` is set (rendered once), else
        rendered in memory. For scripts that sample their own batches (benchmarks' probes)."""
        self.check_split(split)
        if self.cache_dir:
            return self._cached_arrays(split)
        chunks = list(self.numpy_chunks(split))
        return tuple(np.concatenate([c[k] for c in chunks]) for k in ("image", "labels", "identity"))

    def numpy_chunks(self, split: str):
        """Yields dicts of batched numpy arrays (chunks of up to 128 examples, in index order)."""
        self.check_split(split)
        n = self.sizes[split]
        if self.cache_dir:
            images, labs, ident = self._cached_arrays(split)
            for a in range(0, n, 512):
                b = min(a + 512, n)
                yield {"image": np.asarray(images[a:b]), "labels": np.asarray(labs[a:b]),
                       "identity": np.asarray(ident[a:b]), "index": np.arange(a, b, dtype=np.int64)}
            return
        for idx, p, images in render_split(self.seed, split, 0, n, self.image_size):
            yield {"image": images, "labels": labels(p), "identity": p["identity"].astype(np.int32), "index": idx}

    def numpy_examples(self, split: str):
        """Yields single-example numpy dicts, like `examples` but without TensorFlow."""
        for c in self.numpy_chunks(split):
            for i in range(len(c["index"])):
                yield {k: v[i] for k, v in c.items()}

    def examples(self, split: str):
        """A `tf.data.Dataset` of `{"image": uint8 [S,S,3], "labels": int32 [G], "identity": int32 [],
        "index": int64 []}` in index order. Renders in chunks on the fly (or reads the disk cache)."""
        import tensorflow as tf

        self.check_split(split)
        s, g = self.image_size, len(SCHEMA)
        sig = {
            "image": tf.TensorSpec([None, s, s, 3], tf.uint8),
            "labels": tf.TensorSpec([None, g], tf.int32),
            "identity": tf.TensorSpec([None], tf.int32),
            "index": tf.TensorSpec([None], tf.int64),
        }
        ds = tf.data.Dataset.from_generator(lambda: self.numpy_chunks(split), output_signature=sig)
        # Chunks keep Python overhead per example out of the input pipeline.
        ds = ds.prefetch(2).unbatch()
        return ds.apply(tf.data.experimental.assert_cardinality(self.sizes[split]))


@register("synthetic")
def make_source(image_size: int = 64, seed: int = 0, num_train: int = 20000, num_validation: int = 1000,
                num_test: int = 2000, cache_dir: str | None = None, **unused) -> SyntheticSource:
    """Registry factory for the synthetic bench; unknown options (meant for other sources) are ignored."""
    return SyntheticSource(image_size, seed, num_train, num_validation, num_test, cache_dir)


# ---------------------------------------------------------------------------------------------
# TensorFlow Datasets builder (built lazily so importing this module does not import tfds)
# ---------------------------------------------------------------------------------------------

_TFDS_CLASSES: dict[str, type] = {}


def _make_tfds_classes() -> dict[str, type]:
    if _TFDS_CLASSES:
        return _TFDS_CLASSES
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError("SyntheticFacesBuilder needs tensorflow-datasets: pip install tensorflow-datasets") from e
    import dataclasses

    @dataclasses.dataclass
    class SyntheticFacesConfig(tfds.core.BuilderConfig):
        """Bench size and resolution of one build."""

        image_size: int = 64
        seed: int = 0
        num_train: int = 20000
        num_validation: int = 1000
        num_test: int = 2000

    class SyntheticFacesBuilder(tfds.core.GeneratorBasedBuilder):
        """The synthetic face bench as a TFDS dataset: image, one ClassLabel per attribute, identity."""

        VERSION = tfds.core.Version(f"1.0.{RENDERER_VERSION}")
        # Nothing is downloaded, so there is no checksums file next to the code; also spares tfds's
        # code-path lookup, which needs `importlib_resources` for builders outside its package.
        code_path = None
        BUILDER_CONFIGS = [
            SyntheticFacesConfig(name="bench64", image_size=64),
            SyntheticFacesConfig(name="bench128", image_size=128),
        ]

        def _info(self):
            s = self.builder_config.image_size
            feats = {"image": tfds.features.Image(shape=(s, s, 3)), "identity": np.int32, "index": np.int64}
            for a in SCHEMA:
                feats[a.name] = tfds.features.ClassLabel(names=list(a.values))
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(feats),
                description="Procedural cartoon face crops with exact attribute labels (tfattr synthetic bench).",
            )

        def _split_generators(self, dl_manager):
            c = self.builder_config
            sizes = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test}
            return {split: self._generate_examples(split, n) for split, n in sizes.items() if n > 0}

        def _generate_examples(self, split, n):
            c = self.builder_config
            for idx, p, images in render_split(c.seed, split, 0, n, c.image_size):
                lab = labels(p)
                for j, i in enumerate(idx):
                    ex = {"image": images[j], "identity": int(p["identity"][j]), "index": int(i)}
                    ex.update({name: int(lab[j, k]) for k, name in enumerate(SCHEMA.names)})
                    yield int(i), ex

    _TFDS_CLASSES.update(SyntheticFacesConfig=SyntheticFacesConfig, SyntheticFacesBuilder=SyntheticFacesBuilder)
    return _TFDS_CLASSES


def __getattr__(name: str):
    # PEP 562: `synthetic.SyntheticFacesBuilder` imports tensorflow_datasets on first use only.
    if name in ("SyntheticFacesBuilder", "SyntheticFacesConfig"):
        return _make_tfds_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
