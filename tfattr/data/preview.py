"""Writes a PNG contact sheet of the synthetic bench for a person to inspect.

    python -m tfattr.data.preview --out=preview.png [--size=128 --seed=0]

Rows: bench faces (test split); then one row per factor, each showing an original face followed
by the same face with only that factor changed (the renderer's exact counterfactuals); then a row
of layer masks (hair, glasses, beard, mouth as colour overlays) and a row of 68-point landmarks.
"""

from __future__ import annotations

import numpy as np

from tfattr.data import synthetic

# (label shown in the console, attribute, list of values to show after the original).
COUNTERFACTUAL_ROWS = (
    ("glasses on/off", "Eyeglasses", ("no", "yes")),
    ("hair colour", "Hair_Color", ("black", "blond", "brown", "gray")),
    ("smile", "Smiling", ("no", "yes")),
    ("mouth open", "Mouth_Slightly_Open", ("no", "yes")),
    ("beard", "Beard", ("no", "yes")),
    ("bangs", "Bangs", ("no", "yes")),
    ("expression", "Expression", synthetic.SCHEMA["Expression"].values),
    ("illumination", "Illumination", synthetic.SCHEMA["Illumination"].values),
    ("gaze", "Gaze", synthetic.SCHEMA["Gaze"].values),
    ("pose", "Pose", synthetic.SCHEMA["Pose"].values),
)
_MASK_COLORS = {"hair": (255, 200, 0), "glasses": (0, 160, 255), "beard": (255, 0, 200), "mouth": (0, 255, 80)}


def _take(params, i):
    return {k: v[i : i + 1] for k, v in params.items()}


def _draw_points(image: np.ndarray, points: np.ndarray, color=(255, 40, 40)) -> np.ndarray:
    out = image.copy()
    s = image.shape[0]
    for x, y in points:
        j, i = int(np.floor(x)), int(np.floor(y))
        out[max(i - 1, 0) : min(i + 1, s), max(j - 1, 0) : min(j + 1, s)] = color
    return out


def make_sheet(size: int = 128, seed: int = 0, columns: int = 9) -> tuple[np.ndarray, list[str]]:
    """Builds the contact sheet.

    Args:
      size: face size in pixels.
      seed: bench seed (faces come from the test split).
      columns: faces per row.

    Returns:
      (sheet uint8 `[H, W, 3]`, one caption per row).
    """
    base = synthetic.params_for(seed, "test", np.arange(64))
    rows, captions = [], []
    rows.append(list(synthetic.render(_take_many(base, range(columns)), size)["image"]))
    captions.append("bench faces (test split)")
    for r, (caption, name, values) in enumerate(COUNTERFACTUAL_ROWS):
        p = _take(base, 9 + r)
        variants = [p] + [synthetic.counterfactual(p, {name: v}) for v in values]
        batch = {k: np.concatenate([v[k] for v in variants]) for k in p}
        rows.append(list(synthetic.render(batch, size)["image"]))
        captions.append(f"{caption}: original, then {name} = " + ", ".join(values))
    # Masks: faces with everything local switched on, masks tinted over the image.
    p = synthetic.counterfactual(_take_many(base, range(20, 20 + columns)), {"Eyeglasses": 1, "Beard": 1, "Mouth_Slightly_Open": 1})
    out = synthetic.render(p, size, outputs=("image", "masks", "landmarks68", "landmarks5"))
    tinted = []
    for i in range(columns):
        img = out["image"][i].astype(np.float32)
        for m, col in _MASK_COLORS.items():
            a = out["masks"][m][i][..., None] * 0.6
            img = img * (1 - a) + np.asarray(col, np.float32) * a
        tinted.append(img.astype(np.uint8))
    rows.append(tinted)
    captions.append("masks: hair (yellow), glasses (blue), beard (magenta), mouth (green)")
    rows.append([
        _draw_points(_draw_points(out["image"][i], out["landmarks68"][i]), out["landmarks5"][i], (40, 255, 40))
        for i in range(columns)
    ])
    captions.append("landmarks: 68 points (red), 5 points (green)")
    blank = np.full((size, size, 3), 255, np.uint8)
    grid = [r + [blank] * (columns - len(r)) for r in rows]
    pad = 2
    h, w = len(grid) * (size + pad) + pad, columns * (size + pad) + pad
    sheet = np.full((h, w, 3), 255, np.uint8)
    for i, row in enumerate(grid):
        for j, im in enumerate(row[:columns]):
            y, x = pad + i * (size + pad), pad + j * (size + pad)
            sheet[y : y + size, x : x + size] = im
    return sheet, captions


def _take_many(params, idx):
    idx = np.asarray(list(idx))
    return {k: v[idx] for k, v in params.items()}


def main(argv):
    del argv
    from absl import flags
    from PIL import Image

    f = flags.FLAGS
    sheet, captions = make_sheet(f.size, f.seed)
    Image.fromarray(sheet).save(f.out)
    print(f"wrote {f.out} ({sheet.shape[1]}x{sheet.shape[0]}); rows:")
    for i, c in enumerate(captions):
        print(f"  {i}: {c}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("out", "preview.png", "Output PNG path.")
    flags.DEFINE_integer("size", 128, "Face size in pixels (32..256).")
    flags.DEFINE_integer("seed", 0, "Bench seed.")
    app.run(main)
