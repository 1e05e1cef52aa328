"""Generic image folder + CSV: schema inference, exact parsing, splits, corrupt images, error messages."""

import io
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfattr.data import attributes as attr_lib
from tfattr.data import base, image_folder, pipeline
from tfattr.data.base import DataError, MissingDataError

CSV = """file,Smiling,Glasses,Hair,Age
img/a.jpg,1,-1,blond,old
img/b.png,0,1,black,
img/c.bmp,,1,,young
img/d.jpg,1,-1,red,young
"""


def write_images(root, names=("img/a.jpg", "img/b.png", "img/c.bmp", "img/d.jpg"), size=(10, 14)):
    for i, n in enumerate(names):
        os.makedirs(os.path.dirname(root / n), exist_ok=True)
        Image.fromarray(np.full((size[0], size[1], 3), (40 * i) % 256, np.uint8)).save(root / n)


@pytest.fixture
def root(tmp_path):
    write_images(tmp_path)
    (tmp_path / "attributes.csv").write_text(CSV)
    return tmp_path


def test_infers_schema_and_parses_exactly(root):
    src = base.get_source("image_folder", root=str(root), image_size=8, test_fraction=0.25)
    assert src.schema.names == ["Smiling", "Glasses", "Hair", "Age"]
    assert src.schema["Smiling"].binary and src.schema["Glasses"].binary
    assert src.schema["Hair"].values == ("black", "blond", "red")
    assert src.schema["Age"].values == ("old", "young")
    rows = {}
    for s in base.SPLITS:
        t = src.table(s)
        rows.update({os.path.relpath(p, root): l.tolist() for p, l in zip(t.paths, t.labels)})
    assert rows == {"img/a.jpg": [1, 0, 1, 0], "img/b.png": [0, 1, 0, -1], "img/c.bmp": [-1, 1, -1, 1],
                    "img/d.jpg": [1, 0, 2, 1]}
    assert [src.num_examples(s) for s in base.SPLITS] == [3, 0, 1]


def test_given_schema(root):
    schema = attr_lib.Schema((attr_lib.categorical("Hair", ["red", "blond", "black", "brown"]),
                              attr_lib.binary("Glasses")))
    src = image_folder.make_image_folder(str(root), schema=schema, test_fraction=0.0)
    assert src.schema is schema
    t = src.table("train")
    assert t.labels.tolist() == [[1, 0], [2, 1], [-1, 1], [0, 0]]
    again = image_folder.make_image_folder(str(root), schema=schema.to_json(), test_fraction=0.0)
    np.testing.assert_array_equal(again.table("train").labels, t.labels)
    bad = attr_lib.Schema((attr_lib.categorical("Hair", ["blond", "black"]),))
    with pytest.raises(DataError, match=r"attributes.csv:5: attribute 'Hair' has value 'red'; valid values: blond"):
        image_folder.make_image_folder(str(root), schema=bad)
    with pytest.raises(DataError, match="not CSV columns; columns: Smiling, Glasses, Hair, Age"):
        image_folder.make_image_folder(str(root), schema=attr_lib.Schema((attr_lib.binary("Bald"),)))


def test_split_and_identity_columns(tmp_path):
    names = [f"{i}.png" for i in range(8)]
    write_images(tmp_path, names, size=(4, 4))
    rows = [f"{n},{i % 2},{s},{i // 2}" for i, (n, s) in enumerate(zip(names, ["train"] * 5 + ["validation", "test",
                                                                                               "test"]))]
    (tmp_path / "labels.csv").write_text("file,Smiling,split,identity\n" + "\n".join(rows) + "\n")
    src = image_folder.make_image_folder(str(tmp_path), csv="labels.csv")
    assert src.schema.names == ["Smiling"]
    assert [src.num_examples(s) for s in base.SPLITS] == [5, 1, 2]
    assert src.table("test").identity.tolist() == [3, 3]
    # Without the split column, the identity column makes the random split identity-disjoint.
    (tmp_path / "noslit.csv").write_text(
        "file,Smiling,identity\n" + "\n".join(f"{n},{i % 2},{i // 2}" for i, n in enumerate(names)) + "\n")
    src = image_folder.make_image_folder(str(tmp_path), csv=str(tmp_path / "noslit.csv"), test_fraction=0.25,
                                         split_seed=4)
    assert src.num_examples("test") == 2 and len(set(src.table("test").identity)) == 1
    assert not set(src.table("test").identity) & set(src.table("train").identity)


def test_missing_inputs(tmp_path, root):
    with pytest.raises(MissingDataError, match="file,<attr1>") as e:
        image_folder.make_image_folder(str(tmp_path / "absent"))
    assert str(tmp_path / "absent") in str(e.value)
    with pytest.raises(MissingDataError, match=r"other.csv not found"):
        image_folder.make_image_folder(str(root), csv="other.csv")
    (root / "attributes.csv").write_text(CSV + "img/zzz.jpg,1,1,red,old\n")
    with pytest.raises(MissingDataError, match=r"attributes.csv:6: image .*img/zzz.jpg listed in the CSV does not"):
        image_folder.make_image_folder(str(root))


@pytest.mark.parametrize("text,match", [
    ("file,Smiling\na.jpg,1\nb.jpg,1,0\n", r"attributes.csv:3: expected 2 columns \(file,Smiling\), got 3"),
    ("file,Smiling,Smiling\na.jpg,1,1\n", r"attributes.csv:1: repeated column names"),
    ("file,Smiling\na.jpg,maybe\n", r"column 'Smiling' has a single class"),
    ("file,Smiling,split\na.jpg,1,dev\n", r"attributes.csv:2: split 'dev' is not one of train, validation, test"),
    ("file,Smiling,identity\na.jpg,1,bob\n", r"attributes.csv:2: identity 'bob' is not an integer"),
    ("", r"empty file"),
])
def test_malformed_csv(tmp_path, text, match):
    (tmp_path / "attributes.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        image_folder.make_image_folder(str(tmp_path))


def test_structural_check_python_and_tf_agree(tmp_path):
    good = {}
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp"), ("GIF", "gif")):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buf, fmt)
        good[ext] = buf.getvalue()
    cases = {f"ok.{e}": b for e, b in good.items()}
    cases.update({f"cut.{e}": b[: len(b) // 2] for e, b in good.items()})
    cases.update({"empty.jpg": b"", "text.jpg": b"hello, not an image at all" + b"." * 20, "tiny.png": b"\x89P"})
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        py_ok = image_folder.image_problem(str(path)) is None
        tf_ok = bool(image_folder._tf_image_ok(tf.io.read_file(str(path))))
        assert py_ok == tf_ok == name.startswith("ok."), name
    assert image_folder.image_problem(str(tmp_path / "missing.jpg")).startswith("cannot read")


def test_corrupt_image_raises_naming_file_or_is_skipped_and_counted(root, caplog):
    data = (root / "img/d.jpg").read_bytes()
    (root / "img/d.jpg").write_bytes(data[: len(data) // 2])
    ds, _ = pipeline.load("image_folder", "train", image_size=8, batch_size=1, root=str(root), test_fraction=0.0,
                          shuffle=False, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"img/d.jpg"):
        for _ in ds:
            pass
    src = image_folder.make_image_folder(str(root), test_fraction=0.0)
    with caplog.at_level(logging.WARNING):
        ds, _ = pipeline.make_batches(src, "train", image_size=8, batch_size=1, shuffle=False, repeat=False,
                                      skip_corrupt=True)
        seen = sorted(int(b["index"][0]) for b in ds)
    assert seen == [0, 1, 2]
    assert [(os.path.basename(p), why) for p, why in src.skipped_files("train")] == [
        ("d.jpg", "truncated JPEG (no end-of-image marker)")]
    assert "skipping 1 corrupt or unreadable image(s) of 4" in caplog.text and "d.jpg" in caplog.text
