"""Reading photos and finding faces with MTCNN (Zhang et al. 2016; PyPI `mtcnn`, weights included)."""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np


class NoFaceError(ValueError):
    """No face was found in a photo; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face, in the full-resolution photo's pixels.

    Attributes:
      box: (x, y, width, height).
      landmarks5: float64 `[5, 2]`: image-left eye, image-right eye, nose, image-left and
        image-right mouth corners (the order of `tfattr.photos.align`).
      confidence: detector score in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks5: np.ndarray
    confidence: float

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


def load_image(path: str) -> np.ndarray:
    """A photo as uint8 RGB `[H, W, 3]`, upright (EXIF orientation applied).

    Grayscale and palette images are expanded to RGB; transparent pixels (RGBA, LA, palette with
    transparency) are composited over white.

    Raises:
      FileNotFoundError / ValueError naming `path` when it is missing or not an image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not os.path.exists(path):
        raise FileNotFoundError(f"photo {path!r} does not exist")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, np.float64)
                arr = (arr - arr.min()) / max(arr.max() - arr.min(), 1e-9) * 255.0
                im = Image.fromarray(arr.astype(np.uint8), mode="L")
            if im.mode == "P" or im.mode in ("LA", "RGBA", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, rgba)
            return np.asarray(im.convert("RGB"), np.uint8).copy()
    except UnidentifiedImageError:
        raise ValueError(f"photo {path!r} is not an image PIL can read") from None


def save_image(path: str, image: np.ndarray) -> None:
    from PIL import Image

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    image = np.asarray(image, np.uint8)
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image).save(path)


@functools.lru_cache(maxsize=1)
def _detector():
    try:
        from mtcnn import MTCNN
    except ImportError:
        raise ImportError("face detection needs the `mtcnn` package: pip install 'tfattr[photos]'") from None
    return MTCNN()


_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def detect_faces(image: np.ndarray, max_side: int = 1024, min_confidence: float = 0.9,
                 min_face: int = 20) -> list[Face]:
    """Faces in `image` (uint8 RGB `[H, W, 3]`), largest first.

    Images larger than `max_side` are detected on a downscaled copy (MTCNN's image pyramid
    grows with the image; a 24-megapixel photo takes minutes) and the boxes and landmarks are
    scaled back to full resolution.
    """
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"detect_faces: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        scale_x, scale_y = w / size[0], h / size[1]
    else:
        scale_x = scale_y = 1.0
    found = _detector().detect_faces(small)
    faces = []
    for f in found:
        if f["confidence"] < min_confidence:
            continue
        x, y, bw, bh = (float(v) for v in f["box"])
        box = (x * scale_x, y * scale_y, bw * scale_x, bh * scale_y)
        if min(box[2], box[3]) < min_face:
            continue
        lm = np.array([f["keypoints"][k] for k in _KEYPOINTS], np.float64)
        # MTCNN's keypoints are integer pixel indices; +0.5 is the pixel centre in [0, W] coordinates.
        lm = (lm + 0.5) * [scale_x, scale_y]
        faces.append(Face(box, lm, float(f["confidence"])))
    return sorted(faces, key=lambda f: -f.area)


def find_faces(image: np.ndarray, path: str, **kwargs) -> list[Face]:
    """`detect_faces`, raising `NoFaceError` naming `path` when there is none."""
    faces = detect_faces(image, **kwargs)
    if not faces:
        raise NoFaceError(f"no face found in {path!r} (image {image.shape[1]}x{image.shape[0]}); "
                          "try a larger, frontal, well-lit face")
    return faces
