"""Controlled face datasets: RaFD, Multi-PIE and BU-3DFE, parsed from their official file names.

All three are licensed (request access on the official site) and read from local folders; every
label comes from the file name, so no annotation file is needed. Each source is a `TableSource`
with an `identity` key and a seeded split that is identity-disjoint by default (`split="identity"`:
whole subjects go to test, so translation is evaluated on unseen people) or per image
(`split="random"`). Images are cropped to the largest centred square (override with `crop_box`).

Default roots: `$TFATTR_<NAME>_DIR` if set, else `~/tensorflow_datasets/downloads/manual/<name>`
with `<name>` = rafd, multipie, bu3dfe.

RaFD (Langner et al. 2010), any folder depth under root:

    Rafd090_01_Caucasian_female_angry_frontal.jpg
        camera angle (000/045/090/135/180) _ subject _ ethnicity (Caucasian/Moroccan/Kid)
        _ gender _ expression _ gaze (left/frontal/right)

Multi-PIE (Gross et al. 2010), the official tree:

    <root>/session01/multiview/001/01/05_1/001_01_01_051_07.png
        session/multiview/<subject>/<recording>/<camera>/<subject>_<session>_<recording>_<camera>_<flash>.png

  -> identity = subject, Pose = camera (15 values, "05_1" = frontal), Illumination = flash 00-19
  (00 = no flash; `illumination_groups` can merge flashes), Expression = (session, recording):
  s1: 01 neutral, 02 smile; s2: 01 neutral, 02 surprise, 03 squint; s3: 01 neutral, 02 smile,
  03 disgust; s4: 01 neutral, 02 neutral, 03 scream.

BU-3DFE (Yin et al. 2006), the 2D frontal texture images:

    <root>/F0001/F0001_AN01WH_F2D.bmp
        subject (F/M + 4 digits) _ expression AN/DI/FE/HA/NE/SA/SU + intensity 01-04 (NE00)
        + ethnicity (WH/BL/AE/AM/IN/LA) _ F2D

  -> identity = digits (+10000 for M subjects), Expression (7), Intensity ("0" = neutral, "1".."4"),
  Gender, Ethnicity.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

import numpy as np

from tfattr.data import attributes as attr_lib
from tfattr.data.attributes import Schema
from tfattr.data.base import DataError, MissingDataError, register
from tfattr.data.image_folder import Table, TableSource, default_root, list_images, split_indices

SPLIT_MODES = ("identity", "random")


def _check_root(root: str, dataset: str, what: str) -> str:
    root = os.path.expanduser(str(root))
    if not os.path.isdir(root):
        raise MissingDataError(f"{dataset}: folder {root} not found. {what}")
    return root


def _build(name: str, schema: Schema, paths: list[str], labels: list[list[int]], identity: list[int], *,
           split: str, test_fraction: float, validation_fraction: float, split_seed: int,
           crop_box, root: str, what: str) -> TableSource:
    if not paths:
        raise MissingDataError(f"{name}: no {name} images found under {root}. {what}")
    if split not in SPLIT_MODES:
        raise DataError(f"{name}: split={split!r}; valid: {', '.join(SPLIT_MODES)}")
    ident = np.asarray(identity, np.int32)
    table = Table(np.asarray(labels, np.int32), np.arange(len(paths), dtype=np.int64),
                  paths=np.asarray(paths, dtype=object), identity=ident)
    parts = split_indices(len(paths), groups=ident if split == "identity" else None, test_fraction=test_fraction,
                          validation_fraction=validation_fraction, seed=split_seed)
    return TableSource(name, schema, {s: table.take(idx) for s, idx in parts.items()}, crop=crop_box)


# --- RaFD. ---

RAFD_POSES = ("000", "045", "090", "135", "180")
RAFD_EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
RAFD_GAZES = ("left", "frontal", "right")
RAFD_GENDERS = ("female", "male")
RAFD_ETHNICITIES = ("Caucasian", "Moroccan", "Kid")
RAFD_SCHEMA = Schema((
    attr_lib.categorical("Expression", RAFD_EXPRESSIONS),
    attr_lib.categorical("Gaze", RAFD_GAZES),
    attr_lib.categorical("Pose", RAFD_POSES),
    attr_lib.categorical("Gender", RAFD_GENDERS),
    attr_lib.categorical("Ethnicity", RAFD_ETHNICITIES),
))
_RAFD_NAME = re.compile(r"^Rafd(\d{3})_(\d+)_([A-Za-z]+)_([A-Za-z]+)_([A-Za-z]+)_([A-Za-z]+)\.(?:jpe?g|png|bmp)$",
                        re.IGNORECASE)
_RAFD_WHAT = ("Request the Radboud Faces Database from its official site (Radboud University, "
              "https://rafd.socsci.ru.nl) and put its images (Rafd090_01_Caucasian_female_angry_frontal.jpg, ...) "
              "in that folder, or pass root=... / set $TFATTR_RAFD_DIR.")


def parse_rafd_name(filename: str) -> tuple[list[int], int] | None:
    """`Rafd090_01_Caucasian_female_angry_frontal.jpg` -> (labels in `RAFD_SCHEMA` order, subject).

    Args:
      filename: a base name.

    Returns:
      `(labels, subject)`, or None if the name does not start with "Rafd" (not a RaFD image).

    Raises:
      DataError: a "Rafd..." name with an unknown field (names the file and the valid values).
    """
    if not filename.lower().startswith("rafd"):
        return None
    m = _RAFD_NAME.match(filename)
    if not m:
        raise DataError(f"RaFD: file name {filename!r} does not match "
                        "Rafd<angle>_<subject>_<ethnicity>_<gender>_<expression>_<gaze>.jpg")
    angle, subject, ethnicity, gender, expression, gaze = m.groups()
    fields = ((expression.lower(), RAFD_EXPRESSIONS, "expression"), (gaze.lower(), RAFD_GAZES, "gaze"),
              (angle, RAFD_POSES, "camera angle"), (gender.lower(), RAFD_GENDERS, "gender"),
              (ethnicity.capitalize(), RAFD_ETHNICITIES, "ethnicity"))
    labels = []
    for value, valid, what in fields:
        if value not in valid:
            raise DataError(f"RaFD: {filename}: unknown {what} {value!r}; valid: {', '.join(valid)}")
        labels.append(valid.index(value))
    return labels, int(subject)


@register("rafd")
def make_rafd(root: str | None = None, *, split: str = "identity", test_fraction: float = 0.1,
              validation_fraction: float = 0.0, split_seed: int = 0, crop_box=None,
              image_size: int | None = None) -> TableSource:
    """RaFD: Expression, Gaze, Pose (camera angle), Gender, Ethnicity; identity = subject number.

    Args:
      root: folder with the RaFD images (searched recursively); None = `$TFATTR_RAFD_DIR`, else
        `~/tensorflow_datasets/downloads/manual/rafd`.
      split: "identity" (seeded subject-disjoint) or "random" (seeded per image).
      test_fraction: share of subjects (or images) in "test".
      validation_fraction: share in "validation".
      split_seed: split seed.
      crop_box: `(top, left, height, width)`; None = largest centred square (681x681 of 681x1024).
      image_size: accepted for the `load()` contract.

    Returns:
      A `TableSource` named "rafd".

    Raises:
      MissingDataError: no folder or no RaFD images in it.
      DataError: a malformed RaFD file name (named).
    """
    del image_size
    root = _check_root(root or default_root("TFATTR_RAFD_DIR", "rafd"), "RaFD", _RAFD_WHAT)
    paths, labels, identity = _scan_file_names(root, parse_rafd_name)
    return _build("rafd", RAFD_SCHEMA, paths, labels, identity, split=split, test_fraction=test_fraction,
                  validation_fraction=validation_fraction, split_seed=split_seed, crop_box=crop_box, root=root,
                  what=_RAFD_WHAT)


def _scan_file_names(root: str, parse):
    """Images under `root` whose base name `parse` accepts -> (paths, labels, identities)."""
    paths, labels, identity = [], [], []
    for path in list_images(root):
        parsed = parse(os.path.basename(path))
        if parsed is None:
            continue
        paths.append(path)
        labels.append(parsed[0])
        identity.append(parsed[1])
    return paths, labels, identity


# --- Multi-PIE. ---

# Cameras ordered by yaw from one profile to the other (-90 .. +90 degrees in 15-degree steps at
# head height), then the two cameras above the head (08_1, 19_1).
MULTIPIE_CAMERAS = ("11_0", "12_0", "09_0", "08_0", "13_0", "14_0", "05_1", "05_0", "04_1", "19_0", "20_0",
                    "01_0", "24_0", "08_1", "19_1")
MULTIPIE_FLASHES = tuple(f"{i:02d}" for i in range(20))
MULTIPIE_EXPRESSIONS = ("neutral", "smile", "surprise", "squint", "disgust", "scream")
MULTIPIE_RECORDINGS = {
    (1, 1): "neutral", (1, 2): "smile",
    (2, 1): "neutral", (2, 2): "surprise", (2, 3): "squint",
    (3, 1): "neutral", (3, 2): "smile", (3, 3): "disgust",
    (4, 1): "neutral", (4, 2): "neutral", (4, 3): "scream",
}
_MULTIPIE_NAME = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{2})(\d)_(\d{2})\.png$", re.IGNORECASE)
_MULTIPIE_WHAT = ("Multi-PIE is licensed by Carnegie Mellon University (CMU Multi-PIE Face Database, "
                  "http://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/Multi-Pie/Home.html); copy its "
                  "session01..session04 folders (session<NN>/multiview/<subject>/<recording>/<camera>/*.png) into "
                  "that folder, or pass root=... / set $TFATTR_MULTIPIE_DIR.")


def parse_multipie_path(path: str, root: str, flash_to_class: Mapping[int, int]) -> tuple[list[int], int]:
    """One Multi-PIE image path -> (labels [Pose, Illumination, Expression], subject).

    Args:
      path: image path under `root`.
      root: the Multi-PIE root.
      flash_to_class: flash number -> Illumination class (-1 = unlabelled).

    Returns:
      `(labels, subject)`.

    Raises:
      DataError: a name or folder that breaks the convention, or folders and name that disagree.
    """
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    name = parts[-1]
    m = _MULTIPIE_NAME.match(name)
    layout = ("session<NN>/multiview/<subject>/<recording>/<camera>/"
              "<subject>_<session>_<recording>_<camera digits>_<flash>.png")
    if not m or len(parts) != 6 or parts[1] != "multiview":
        raise DataError(f"Multi-PIE: {path} does not follow {layout}")
    subject, session, recording, cam_a, cam_b, flash = m.groups()
    camera = f"{cam_a}_{cam_b}"
    expected = [f"session{session}", "multiview", subject, recording, camera]
    if parts[:5] != expected:
        raise DataError(f"Multi-PIE: {path}: folders {'/'.join(parts[:5])} disagree with the file name "
                        f"(expected {'/'.join(expected)})")
    if camera not in MULTIPIE_CAMERAS:
        raise DataError(f"Multi-PIE: {path}: unknown camera {camera}; valid: {', '.join(MULTIPIE_CAMERAS)}")
    key = (int(session), int(recording))
    if key not in MULTIPIE_RECORDINGS:
        raise DataError(f"Multi-PIE: {path}: session {session} has no recording {recording}")
    if int(flash) >= len(MULTIPIE_FLASHES):
        raise DataError(f"Multi-PIE: {path}: flash {flash} outside 00-19")
    labels = [MULTIPIE_CAMERAS.index(camera), flash_to_class.get(int(flash), -1),
              MULTIPIE_EXPRESSIONS.index(MULTIPIE_RECORDINGS[key])]
    return labels, int(subject)


def multipie_schema(illumination_groups: Mapping[str, Sequence[int]] | None = None) -> tuple[Schema, dict[int, int]]:
    """The Multi-PIE schema and the flash -> Illumination class map.

    Args:
      illumination_groups: optional `{group name: [flash numbers]}` (e.g. {"none": [0],
        "front": [6, 7, 8]}); flashes in no group are unlabelled. None = 20 classes "00".."19".

    Returns:
      `(schema, flash_to_class)`.

    Raises:
      DataError: a flash in two groups or outside 0-19.
    """
    if illumination_groups is None:
        values, flash_to_class = MULTIPIE_FLASHES, {i: i for i in range(20)}
    else:
        values, flash_to_class = tuple(illumination_groups), {}
        for c, (group, flashes) in enumerate(illumination_groups.items()):
            for f in flashes:
                if not 0 <= int(f) < 20 or int(f) in flash_to_class:
                    raise DataError(f"Multi-PIE: illumination group {group!r}: flash {f} is outside 0-19 or "
                                    "already in another group")
                flash_to_class[int(f)] = c
    schema = Schema((attr_lib.categorical("Pose", MULTIPIE_CAMERAS), attr_lib.categorical("Illumination", values),
                     attr_lib.categorical("Expression", MULTIPIE_EXPRESSIONS)))
    return schema, flash_to_class


@register("multipie")
def make_multipie(root: str | None = None, *, illumination_groups: Mapping[str, Sequence[int]] | None = None,
                  split: str = "identity", test_fraction: float = 0.1, validation_fraction: float = 0.0,
                  split_seed: int = 0, crop_box=None, image_size: int | None = None) -> TableSource:
    """Multi-PIE: Pose (camera), Illumination (flash, optionally grouped), Expression; identity = subject.

    Args:
      root: folder holding session01..session04; None = `$TFATTR_MULTIPIE_DIR`, else
        `~/tensorflow_datasets/downloads/manual/multipie`.
      illumination_groups: see `multipie_schema`.
      split: "identity" (seeded subject-disjoint) or "random".
      test_fraction: share of subjects (or images) in "test".
      validation_fraction: share in "validation".
      split_seed: split seed.
      crop_box: `(top, left, height, width)`; None = largest centred square (480x480 of 640x480).
      image_size: accepted for the `load()` contract.

    Returns:
      A `TableSource` named "multipie".

    Raises:
      MissingDataError: no folder or no images.
      DataError: a .png under `session*/multiview` that breaks the convention (named).
    """
    del image_size
    root = _check_root(root or default_root("TFATTR_MULTIPIE_DIR", "multipie"), "Multi-PIE", _MULTIPIE_WHAT)
    schema, flash_to_class = multipie_schema(illumination_groups)
    paths, labels, identity = [], [], []
    for path in list_images(root):
        rel = os.path.relpath(path, root).split(os.sep)
        # Only the multiview tree holds the images; skip e.g. calibration or highres folders.
        if len(rel) < 2 or not rel[0].startswith("session") or rel[1] != "multiview":
            continue
        lab, subject = parse_multipie_path(path, root, flash_to_class)
        paths.append(path)
        labels.append(lab)
        identity.append(subject)
    return _build("multipie", schema, paths, labels, identity, split=split, test_fraction=test_fraction,
                  validation_fraction=validation_fraction, split_seed=split_seed, crop_box=crop_box, root=root,
                  what=_MULTIPIE_WHAT)


# --- BU-3DFE. ---

BU3DFE_EXPRESSIONS = {"AN": "angry", "DI": "disgusted", "FE": "fearful", "HA": "happy", "NE": "neutral",
                      "SA": "sad", "SU": "surprised"}
BU3DFE_ETHNICITIES = {"WH": "white", "BL": "black", "AE": "east_asian", "AM": "middle_east_asian",
                      "IN": "indian", "LA": "latino"}
BU3DFE_SCHEMA = Schema((
    attr_lib.categorical("Expression", list(BU3DFE_EXPRESSIONS.values())),
    attr_lib.categorical("Intensity", ["0", "1", "2", "3", "4"]),
    attr_lib.categorical("Gender", ["female", "male"]),
    attr_lib.categorical("Ethnicity", list(BU3DFE_ETHNICITIES.values())),
))
_BU3DFE_NAME = re.compile(r"^([FM])(\d{4})_([A-Z]{2})(\d{2})([A-Z]{2})_F2D\.bmp$", re.IGNORECASE)
_BU3DFE_WHAT = ("BU-3DFE is licensed by Binghamton University (Lijun Yin; "
                "http://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html); copy its subject folders "
                "(F0001/F0001_AN01WH_F2D.bmp, ...) into that folder, or pass root=... / set $TFATTR_BU3DFE_DIR.")


def parse_bu3dfe_name(filename: str) -> tuple[list[int], int] | None:
    """`F0001_AN01WH_F2D.bmp` -> (labels in `BU3DFE_SCHEMA` order, identity); None if not an F2D image.

    Args:
      filename: a base name.

    Returns:
      `(labels, identity)` with identity = number, +10000 for male subjects; None for files that
      are not 2D frontal textures (`*_F2D.bmp`).

    Raises:
      DataError: an F2D name with an unknown code or intensity (file and valid codes named).
    """
    if not filename.upper().endswith("_F2D.BMP"):
        return None
    m = _BU3DFE_NAME.match(filename)
    if not m:
        raise DataError(f"BU-3DFE: file name {filename!r} does not match <F|M><4 digits>_<EX><01-04><ET>_F2D.bmp")
    gender, number, expr, intensity, ethnicity = m.groups()
    expr, ethnicity = expr.upper(), ethnicity.upper()
    if expr not in BU3DFE_EXPRESSIONS:
        raise DataError(f"BU-3DFE: {filename}: unknown expression {expr}; valid: {', '.join(BU3DFE_EXPRESSIONS)}")
    if ethnicity not in BU3DFE_ETHNICITIES:
        raise DataError(f"BU-3DFE: {filename}: unknown ethnicity {ethnicity}; valid: {', '.join(BU3DFE_ETHNICITIES)}")
    level = int(intensity)
    if (expr == "NE") != (level == 0) or level > 4:
        raise DataError(f"BU-3DFE: {filename}: intensity {intensity} invalid (NE00 for neutral, 01-04 otherwise)")
    labels = [list(BU3DFE_EXPRESSIONS).index(expr), level, 0 if gender.upper() == "F" else 1,
              list(BU3DFE_ETHNICITIES).index(ethnicity)]
    return labels, int(number) + (10000 if gender.upper() == "M" else 0)


@register("bu3dfe")
def make_bu3dfe(root: str | None = None, *, split: str = "identity", test_fraction: float = 0.1,
                validation_fraction: float = 0.0, split_seed: int = 0, crop_box=None,
                image_size: int | None = None) -> TableSource:
    """BU-3DFE 2D frontal images: Expression, Intensity, Gender, Ethnicity; identity per subject.

    Args:
      root: folder holding the subject folders; None = `$TFATTR_BU3DFE_DIR`, else
        `~/tensorflow_datasets/downloads/manual/bu3dfe`.
      split: "identity" (seeded subject-disjoint) or "random".
      test_fraction: share of subjects (or images) in "test".
      validation_fraction: share in "validation".
      split_seed: split seed.
      crop_box: `(top, left, height, width)`; None = largest centred square.
      image_size: accepted for the `load()` contract.

    Returns:
      A `TableSource` named "bu3dfe".

    Raises:
      MissingDataError: no folder or no `*_F2D.bmp` images.
      DataError: a malformed F2D file name (named).
    """
    del image_size
    root = _check_root(root or default_root("TFATTR_BU3DFE_DIR", "bu3dfe"), "BU-3DFE", _BU3DFE_WHAT)
    paths, labels, identity = _scan_file_names(root, parse_bu3dfe_name)
    return _build("bu3dfe", BU3DFE_SCHEMA, paths, labels, identity, split=split, test_fraction=test_fraction,
                  validation_fraction=validation_fraction, split_seed=split_seed, crop_box=crop_box, root=root,
                  what=_BU3DFE_WHAT)
