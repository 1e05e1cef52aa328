"""RaFD, Multi-PIE and BU-3DFE: file-name parsing, identity-disjoint splits and error messages."""

import os

import numpy as np
import pytest
from PIL import Image

from tfattr.data import base, faces, pipeline
from tfattr.data.base import DataError, MissingDataError


def save(path, size=(12, 8)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size[0], size[1], 3), 100, np.uint8)).save(path)


# --- RaFD ---

RAFD_FILES = [
    "Rafd090_01_Caucasian_female_angry_frontal.jpg",
    "Rafd045_01_Caucasian_female_happy_left.jpg",
    "Rafd180_02_Moroccan_male_surprised_right.jpg",
    "Rafd000_03_Kid_male_contemptuous_frontal.jpg",
    "Rafd135_04_Caucasian_female_neutral_left.jpg",
    "Rafd090_05_Moroccan_male_sad_frontal.jpg",
]


@pytest.fixture
def rafd_root(tmp_path):
    root = tmp_path / "rafd"
    for i, f in enumerate(RAFD_FILES):
        save(str(root / ("sub" if i % 2 else "") / f))
    (root / "README.txt").write_text("not an image")
    save(str(root / "other.jpg"))  # not a RaFD name: ignored
    return root


def test_rafd_name_parsing():
    labels, subject = faces.parse_rafd_name("Rafd090_01_Caucasian_female_angry_frontal.jpg")
    assert subject == 1
    s = faces.RAFD_SCHEMA
    assert s.names == ["Expression", "Gaze", "Pose", "Gender", "Ethnicity"]
    assert [s.attributes[g].values[v] for g, v in enumerate(labels)] == ["angry", "frontal", "090", "female",
                                                                          "Caucasian"]
    labels, subject = faces.parse_rafd_name("Rafd180_02_Moroccan_male_surprised_right.jpg")
    assert labels == [7, 2, 4, 1, 1] and subject == 2
    assert faces.parse_rafd_name("IMG_0001.jpg") is None
    with pytest.raises(DataError, match="Rafd090_01_Caucasian_female_bored_frontal.jpg.*expression 'bored'"):
        faces.parse_rafd_name("Rafd090_01_Caucasian_female_bored_frontal.jpg")
    with pytest.raises(DataError, match="Rafd090_01_female.jpg"):
        faces.parse_rafd_name("Rafd090_01_female.jpg")


def test_rafd_source_identity_split(rafd_root):
    src = base.get_source("rafd", root=str(rafd_root), test_fraction=0.4, image_size=8)
    assert sum(src.num_examples(s) for s in base.SPLITS) == 6
    train, test = src.table("train"), src.table("test")
    assert len(test.identity) >= 1 and not set(train.identity) & set(test.identity)
    assert len(set(test.identity)) == 2  # round(0.4 * 5 subjects)
    again = base.get_source("rafd", root=str(rafd_root), test_fraction=0.4)
    np.testing.assert_array_equal(again.table("test").index, test.index)
    rnd = base.get_source("rafd", root=str(rafd_root), split="random", test_fraction=0.5)
    assert rnd.num_examples("test") == 3
    with pytest.raises(DataError, match="valid: identity, random"):
        base.get_source("rafd", root=str(rafd_root), split="by_age")


def test_rafd_batches_carry_identity(rafd_root):
    src = faces.make_rafd(str(rafd_root), split="random", test_fraction=0.0001)
    ds, schema = pipeline.make_batches(src, "train", image_size=8, batch_size=5, shuffle=False, attributes="Gaze")
    batch = next(iter(ds))
    assert batch["image"].shape == (5, 8, 8, 3) and schema.names == ["Gaze"]
    by_index = {int(i): (int(ident), int(l[0])) for i, ident, l in
                zip(batch["index"], batch["identity"], batch["labels"].numpy())}
    paths = src.table("train").paths
    for i, (ident, gaze) in by_index.items():
        labels, subject = faces.parse_rafd_name(os.path.basename(paths[list(src.table("train").index).index(i)]))
        assert (ident, gaze) == (subject, labels[1])


def test_rafd_missing_folder(tmp_path):
    with pytest.raises(MissingDataError, match="rafd.socsci.ru.nl") as e:
        faces.make_rafd(str(tmp_path / "none"))
    assert str(tmp_path / "none") in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="no rafd images found"):
        faces.make_rafd(str(tmp_path / "empty"))


# --- Multi-PIE ---


def mpie(root, subject, session, recording, camera, flash):
    name = f"{subject:03d}_{session:02d}_{recording:02d}_{camera.replace('_', '')}_{flash:02d}.png"
    path = root / f"session{session:02d}" / "multiview" / f"{subject:03d}" / f"{recording:02d}" / camera / name
    save(str(path), (16, 20))
    return path


def by_identity(src):
    return {int(i): tuple(lab) for s in base.SPLITS for i, lab in zip(src.table(s).identity, src.table(s).labels)}


def test_multipie_paths_to_labels(tmp_path):
    root = tmp_path / "mpie"
    p = mpie(root, 1, 1, 2, "05_1", 7)
    mpie(root, 2, 2, 3, "11_0", 0)
    mpie(root, 3, 4, 3, "19_1", 19)
    mpie(root, 4, 3, 1, "05_0", 12)
    save(str(root / "calibration" / "x.png"))  # outside session*/multiview: ignored
    src = faces.make_multipie(str(root), split="random", test_fraction=0.25)
    assert src.schema.names == ["Pose", "Illumination", "Expression"]
    labels, subject = faces.parse_multipie_path(str(p), str(root), {i: i for i in range(20)})
    assert subject == 1 and labels == [faces.MULTIPIE_CAMERAS.index("05_1"), 7, 1]  # smile
    all_labels = by_identity(src)
    assert all_labels[2] == (0, 0, faces.MULTIPIE_EXPRESSIONS.index("squint"))
    assert all_labels[3] == (14, 19, faces.MULTIPIE_EXPRESSIONS.index("scream"))
    assert all_labels[4] == (7, 12, 0)
    grouped = faces.make_multipie(str(root), illumination_groups={"none": [0], "front": [7, 12]})
    g = by_identity(grouped)
    assert grouped.schema["Illumination"].values == ("none", "front")
    assert g[1][1] == 1 and g[2][1] == 0 and g[3][1] == -1


def test_multipie_convention_errors(tmp_path):
    root = tmp_path / "mpie"
    save(str(root / "session01" / "multiview" / "001" / "01" / "05_1" / "001_01_01_051.png"))
    with pytest.raises(DataError, match="001_01_01_051.png does not follow"):
        faces.make_multipie(str(root))
    root = tmp_path / "mpie2"
    save(str(root / "session01" / "multiview" / "001" / "01" / "05_1" / "002_01_01_051_00.png"))
    with pytest.raises(DataError, match="disagree with the file name"):
        faces.make_multipie(str(root))
    root = tmp_path / "mpie3"
    mpie(root, 1, 1, 3, "05_1", 0)
    with pytest.raises(DataError, match="session 01 has no recording 03"):
        faces.make_multipie(str(root))
    with pytest.raises(MissingDataError, match="Carnegie Mellon"):
        faces.make_multipie(str(tmp_path / "nope"))


# --- BU-3DFE ---


def test_bu3dfe_parsing_and_split(tmp_path):
    root = tmp_path / "bu"
    files = ["F0001/F0001_AN01WH_F2D.bmp", "F0001/F0001_NE00WH_F2D.bmp", "M0001/M0001_SU04AE_F2D.bmp",
             "F0002/F0002_HA03LA_F2D.bmp", "M0003/M0003_DI02BL_F2D.bmp"]
    for f in files:
        save(str(root / f))
    (root / "F0001" / "F0001_AN01WH_F3D.wrl").write_text("3d mesh")
    assert faces.parse_bu3dfe_name("F0001_AN01WH_F2D.bmp") == ([0, 1, 0, 0], 1)
    assert faces.parse_bu3dfe_name("M0001_SU04AE_F2D.bmp") == ([6, 4, 1, 2], 10001)
    assert faces.parse_bu3dfe_name("F0001_NE00WH_F2D.bmp") == ([4, 0, 0, 0], 1)
    assert faces.parse_bu3dfe_name("F0001_AN01WH_F3D.wrl") is None
    with pytest.raises(DataError, match="F0001_XX01WH_F2D.bmp: unknown expression XX"):
        faces.parse_bu3dfe_name("F0001_XX01WH_F2D.bmp")
    with pytest.raises(DataError, match="intensity 00"):
        faces.parse_bu3dfe_name("F0001_AN00WH_F2D.bmp")
    src = base.get_source("bu3dfe", root=str(root), test_fraction=0.25, split_seed=3)
    assert src.num_examples("train") + src.num_examples("test") == 5
    assert not set(src.table("train").identity) & set(src.table("test").identity)
    ds, _ = pipeline.make_batches(src, "train", image_size=4, batch_size=2)
    assert next(iter(ds))["image"].shape == (2, 4, 4, 3)
