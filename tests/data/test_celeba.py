"""CelebA official-layout parsing, hair-colour grouping, splits, crop, and error messages."""

import os
import random

import numpy as np
import pytest
from PIL import Image

from tfattr.data import base, celeba, pipeline
from tfattr.data.base import DataError, MissingDataError

NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
# file -> attributes set to 1 (all others -1), and official partition.
ROWS = {
    "000001.jpg": ({"Black_Hair", "Smiling", "Young"}, 0),
    "000002.jpg": ({"Male", "Eyeglasses"}, 0),  # no hair colour -> unlabelled
    "000003.jpg": ({"Blond_Hair", "Brown_Hair"}, 0),  # two hair colours -> unlabelled
    "000004.jpg": ({"Gray_Hair", "Male"}, 1),
    "000005.jpg": ({"Blond_Hair"}, 2),
    "000006.jpg": ({"Brown_Hair", "Smiling"}, 2),
}


def attr_text(rows=ROWS, names=NAMES, count=None):
    lines = [str(len(rows) if count is None else count), " ".join(names)]
    for f, (on, _) in rows.items():
        # The official file pads with two spaces before positive values; split() must cope.
        lines.append(f + " " + " ".join(" 1" if n in on else "-1" for n in names))
    return "\n".join(lines) + "\n"


def write_celeba(root, rows=ROWS):
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True)
    for f in rows:
        # Top 20 rows red, rest blue: the 178x178 centre crop must contain only blue.
        a = np.zeros((218, 178, 3), np.uint8)
        a[:20] = (255, 0, 0)
        a[20:] = (0, 0, 255)
        Image.fromarray(a).save(img_dir / f, quality=95)
    (root / "list_attr_celeba.txt").write_text(attr_text(rows))
    (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, (_, p) in rows.items()))
    marks = ["%d" % len(rows), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
             "rightmouth_x rightmouth_y"]
    marks += [f"{f} " + " ".join(str(i * 10 + k) for k in range(10)) for i, f in enumerate(rows)]
    (root / "list_landmarks_align_celeba.txt").write_text("\n".join(marks) + "\n")
    return root


@pytest.fixture
def root(tmp_path):
    return write_celeba(tmp_path / "celeba")


def test_schema_groups_hair_colour(root):
    src = celeba.make_celeba(str(root))
    assert len(src.schema) == 37
    assert src.schema.names[8] == "Hair_Color" and src.schema.names[:8] == NAMES[:8]
    assert src.schema["Hair_Color"].values == ("black", "blond", "brown", "gray")
    for h in celeba.HAIR_COLUMNS:
        assert h not in src.schema.names
    assert src.schema.num_columns == 36 + 4


def test_exact_labels_per_file(root):
    src = celeba.make_celeba(str(root))
    s = src.schema
    labels = {os.path.basename(p): l for p, l in zip(src.table("train").paths, src.table("train").labels)}
    labels.update({os.path.basename(p): l for p, l in zip(src.table("test").paths, src.table("test").labels)})
    labels.update({os.path.basename(p): l for p, l in zip(src.table("validation").paths,
                                                          src.table("validation").labels)})
    hair, smiling, male = s.index("Hair_Color"), s.index("Smiling"), s.index("Male")
    assert labels["000001.jpg"][hair] == 0 and labels["000001.jpg"][smiling] == 1 and labels["000001.jpg"][male] == 0
    assert labels["000002.jpg"][hair] == -1 and labels["000002.jpg"][s.index("Eyeglasses")] == 1
    assert labels["000003.jpg"][hair] == -1
    assert labels["000004.jpg"][hair] == 3 and labels["000004.jpg"][male] == 1
    assert labels["000005.jpg"][hair] == 1
    assert labels["000006.jpg"][hair] == 2
    expected = np.zeros(37, np.int32)
    expected[[hair, smiling, s.index("Young")]] = [0, 1, 1]
    np.testing.assert_array_equal(labels["000001.jpg"], expected)


def test_official_partition_sizes(root):
    src = celeba.make_celeba(str(root))
    assert [src.num_examples(x) for x in base.SPLITS] == [3, 1, 2]
    assert [os.path.basename(p) for p in src.table("test").paths] == ["000005.jpg", "000006.jpg"]


def test_random_test_split_is_seeded_and_stargan_compatible(root):
    src = celeba.make_celeba(str(root), test_split="random2")
    again = celeba.make_celeba(str(root), test_split="random2")
    assert [src.num_examples(x) for x in base.SPLITS] == [4, 0, 2]
    np.testing.assert_array_equal(src.table("test").index, again.table("test").index)
    order = list(range(6))
    random.Random(1234).shuffle(order)
    assert sorted(order[:2]) == src.table("test").index.tolist()
    assert set(src.table("train").index) | set(src.table("test").index) == set(range(6))
    other = celeba.make_celeba(str(root), test_split="random2", split_seed=5)
    assert other.num_examples("test") == 2
    with pytest.raises(DataError, match="random<N>"):
        celeba.make_celeba(str(root), test_split="random_half")


def test_crop_and_resize_through_pipeline(root):
    src = base.get_source("celeba", root=str(root), image_size=16)
    assert src.crop_box() == (20, 0, 178, 178)
    ds, schema = pipeline.make_batches(src, "train", image_size=16, batch_size=3, shuffle=False,
                                       attributes=["Hair_Color", "Smiling"])
    batch = next(iter(ds))
    assert batch["image"].shape == (3, 16, 16, 3)
    img = batch["image"].numpy()
    assert img[..., 0].max() < -0.9 and img[..., 2].min() > 0.9  # only the blue part survives the crop
    np.testing.assert_array_equal(batch["labels"].numpy(), [[0, 1], [-1, 0], [-1, 0]])
    np.testing.assert_array_equal(batch["attributes"].numpy(), [[1, 0, 0, 0, 1], [0] * 5, [0] * 5])
    np.testing.assert_array_equal(batch["labelled_mask"].numpy(), [[1, 1], [0, 1], [0, 1]])


def test_landmarks(root):
    src = celeba.make_celeba(str(root))
    marks = src.landmarks("test")
    assert marks.shape == (2, 5, 2)
    np.testing.assert_array_equal(marks[0].ravel(), np.arange(40, 50))


def test_env_var_default_root(root, monkeypatch):
    monkeypatch.setenv("TFATTR_CELEBA_DIR", str(root))
    assert base.get_source("celeba").num_examples("train") == 3


def test_missing_root_and_files(tmp_path):
    with pytest.raises(MissingDataError, match="mmlab.ie.cuhk.edu.hk") as e:
        celeba.make_celeba(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(e.value)
    root = write_celeba(tmp_path / "c")
    os.remove(root / "list_attr_celeba.txt")
    with pytest.raises(MissingDataError, match="list_attr_celeba.txt"):
        celeba.make_celeba(str(root))
    os.rename(root / "img_align_celeba", root / "imgs")
    with pytest.raises(MissingDataError, match="img_align_celeba"):
        celeba.make_celeba(str(root))


def test_malformed_attribute_rows(root):
    path = root / "list_attr_celeba.txt"
    lines = attr_text().splitlines()
    lines[4] = lines[4].replace("-1", "2", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:5: attribute 5_o_Clock_Shadow has value '2'"):
        celeba.make_celeba(str(root))
    lines = attr_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0]  # 39 values
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:4: expected a file name and 40 values, got 40"):
        celeba.make_celeba(str(root))
    path.write_text(attr_text(count=9))
    with pytest.raises(DataError, match="announces 9 images but 6"):
        celeba.make_celeba(str(root))
    path.write_text("six\n" + attr_text().split("\n", 1)[1])
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:1:"):
        celeba.make_celeba(str(root))


def test_partition_errors(root):
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg x\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt:2:"):
        celeba.make_celeba(str(root))
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(DataError, match="no partition for 5 image"):
        celeba.make_celeba(str(root))


def test_tfds_not_prepared_says_what_to_do(tmp_path):
    with pytest.raises(MissingDataError) as e:
        base.get_source("celeba_tfds", data_dir=str(tmp_path), image_size=64)
    msg = str(e.value)
    assert "tfds build celeb_a" in msg and str(tmp_path) in msg and "img_align_celeba.zip" in msg
    assert not os.path.exists(tmp_path / "downloads" / "img_align_celeba.zip")


def test_tfds_prepared_build_gives_same_schema_and_grouping(tmp_path):
    import tensorflow_datasets as tfds

    celeb_cls = tfds.builder_cls("celeb_a")

    class TinyCelebA(celeb_cls, skip_registration=True):
        """The real celeb_a builder (name, version, features) fed two generated examples."""

        name = "celeb_a"
        url_infos = {}  # nothing is downloaded

        def _split_generators(self, dl_manager):
            return {"train": self._make(["000001.jpg", "000003.jpg"]), "test": self._make(["000004.jpg"])}

        def _make(self, files):
            for f in files:
                on, _ = ROWS[f]
                yield f, {"image": np.full((218, 178, 3), 90, np.uint8),
                          "landmarks": {k: 0 for k in self.info.features["landmarks"].keys()},
                          "attributes": {n: n in on for n in NAMES},
                          "identity": {"Identity_No": int(f[:6])}}

    TinyCelebA(data_dir=str(tmp_path)).download_and_prepare()
    src = base.get_source("celeba_tfds", data_dir=str(tmp_path), image_size=8)
    assert src.schema == celeba.celeba_schema(NAMES)[0]  # same schema as the official-files source
    assert src.crop_box() == (20, 0, 178, 178)
    assert (src.num_examples("train"), src.num_examples("validation"), src.num_examples("test")) == (2, 0, 1)
    ds, schema = pipeline.make_batches(src, "train", image_size=8, batch_size=2, shuffle=False, repeat=False,
                                       attributes=["Hair_Color", "Smiling", "Male"])
    batch = next(iter(ds))
    got = sorted(zip(batch["identity"].numpy().tolist(), batch["labels"].numpy().tolist()))
    assert got == [(1, [0, 1, 0]), (3, [-1, 0, 0])]
    assert batch["image"].shape == (2, 8, 8, 3)
