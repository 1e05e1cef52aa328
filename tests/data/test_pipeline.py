"""The batch pipeline, against a tiny in-test `Source` (no dependency on the synthetic bench)."""

import types

import numpy as np
import pytest
import tensorflow as tf

from tfattr.data import attributes as attr_lib
from tfattr.data import base, pipeline
from tfattr.data.attributes import UnknownAttributeError
from tfattr.data.base import DataError

SCHEMA = attr_lib.Schema((attr_lib.binary("Smiling"), attr_lib.categorical("Hair", ["black", "blond", "brown"]),
                          attr_lib.binary("Glasses")))
N = 10
LABELS = np.array([[i % 2, i % 3 if i != 4 else -1, 1 if i in (2, 5) else (0 if i != 7 else -1)] for i in range(N)],
                  np.int32)


def image(i, h=12, w=10):
    """Example i: value 20*i everywhere except a bright left column (so flips are visible)."""
    a = np.full((h, w, 3), 20 * i, np.uint8)
    a[:, 0] = 255
    return a


class TinySource(base.Source):
    name = "tiny"
    schema = SCHEMA

    def __init__(self, n=N, box=None, h=12, w=10):
        self.n, self.box, self.h, self.w = n, box, h, w

    def num_examples(self, split):
        self.check_split(split)
        return self.n if split == "train" else 0

    def examples(self, split):
        self.check_split(split)
        return tf.data.Dataset.from_tensor_slices({
            "image": np.stack([image(i, self.h, self.w) for i in range(self.n)]),
            "labels": LABELS[: self.n],
            "identity": np.arange(self.n, dtype=np.int32) // 2,
            "index": np.arange(self.n, dtype=np.int64),
        })

    def crop_box(self):
        return self.box


def take(ds, k):
    return [{key: v.numpy() for key, v in b.items()} for b in ds.take(k)]


def test_batch_keys_shapes_ranges():
    ds, schema = pipeline.make_batches(TinySource(), "train", image_size=8, batch_size=4, shuffle=False)
    assert schema is SCHEMA
    b = take(ds, 1)[0]
    assert set(b) == {"image", "attributes", "labels", "labelled_mask", "identity", "index"}
    assert b["image"].shape == (4, 8, 8, 3) and b["image"].dtype == np.float32
    assert b["image"].min() >= -1 and b["image"].max() <= 1
    np.testing.assert_array_equal(b["index"], [0, 1, 2, 3])
    np.testing.assert_array_equal(b["identity"], [0, 0, 1, 1])
    np.testing.assert_array_equal(b["labels"], LABELS[:4])
    np.testing.assert_array_equal(b["attributes"], SCHEMA.encode(LABELS[:4]))
    np.testing.assert_array_equal(b["labelled_mask"], (LABELS[:4] >= 0).astype(np.float32))
    assert b["attributes"].shape == (4, 5) and b["attributes"].dtype == np.float32
    # Image 3 (value 60) away from the bright left column, after [-1, 1] scaling.
    np.testing.assert_allclose(b["image"][3, :, 4:], 60 / 127.5 - 1, atol=1 / 127.5)
    static = ds.element_spec["image"].shape
    assert static.as_list() == [4, 8, 8, 3]


def test_attribute_selection_and_unknown_name():
    ds, schema = pipeline.make_batches(TinySource(), "train", image_size=4, batch_size=5, shuffle=False,
                                       attributes="Glasses, Hair")
    assert schema.names == ["Glasses", "Hair"]
    b = take(ds, 1)[0]
    np.testing.assert_array_equal(b["labels"], LABELS[:5][:, [2, 1]])
    np.testing.assert_array_equal(b["attributes"], schema.encode(LABELS[:5][:, [2, 1]]))
    assert b["labelled_mask"][4].tolist() == [1, 0]  # example 4 has no hair label
    with pytest.raises(UnknownAttributeError,
                       match="unknown attribute 'Bald'; valid attributes: Smiling, Hair, Glasses"):
        pipeline.make_batches(TinySource(), "train", image_size=4, batch_size=2, attributes=["Smiling", "Bald"])


def test_deterministic_given_seed_and_reshuffled_each_epoch():
    def stream(seed):
        ds, _ = pipeline.make_batches(TinySource(), "train", image_size=4, batch_size=5, seed=seed, flip=True)
        return take(ds, 6)

    a, b, c = stream(3), stream(3), stream(4)
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    order_a = np.concatenate([x["index"] for x in a])
    assert not np.array_equal(order_a, np.concatenate([x["index"] for x in c]))
    epochs = order_a.reshape(3, N)
    for e in epochs:
        assert sorted(e) == list(range(N))  # each epoch is a permutation
    assert len({tuple(e) for e in epochs}) > 1


def test_no_shuffle_no_repeat_remainder():
    ds, _ = pipeline.make_batches(TinySource(), "train", image_size=4, batch_size=4, shuffle=False, repeat=False)
    assert [b["index"].tolist() for b in take(ds, 10)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    ds, _ = pipeline.make_batches(TinySource(), "train", image_size=4, batch_size=4, shuffle=False, repeat=False,
                                  drop_remainder=False)
    assert [len(b["index"]) for b in take(ds, 10)] == [4, 4, 2]


def test_flip_is_seeded_and_mirrors():
    ds, _ = pipeline.make_batches(TinySource(h=8, w=8), "train", image_size=8, batch_size=10, shuffle=False,
                                  flip=True, seed=1)
    imgs = take(ds, 1)[0]["image"]
    left_bright = imgs[:, :, 0, 0] > 0.9
    right_bright = imgs[:, :, -1, 0] > 0.9
    assert np.all(left_bright.all(1) ^ right_bright.all(1))  # each image is either original or mirrored
    assert 0 < right_bright.all(1).sum() < 10
    again = take(pipeline.make_batches(TinySource(h=8, w=8), "train", image_size=8, batch_size=10, shuffle=False,
                                       flip=True, seed=1)[0], 1)[0]["image"]
    np.testing.assert_array_equal(imgs, again)


def test_crop_box_and_default_centre_square():
    # The source's box (rows 2..9, columns 1..8) drops the bright column 0.
    ds, _ = pipeline.make_batches(TinySource(box=(2, 1, 8, 8)), "train", image_size=8, batch_size=2, shuffle=False)
    img = take(ds, 1)[0]["image"]
    np.testing.assert_allclose(img[1], 20 / 127.5 - 1, atol=1e-6)
    # No box: the centred 10x10 square of a 12x10 image keeps the bright column; non-square never stretches.
    ds, _ = pipeline.make_batches(TinySource(), "train", image_size=10, batch_size=2, shuffle=False)
    img = take(ds, 1)[0]["image"]
    np.testing.assert_allclose(img[1][:, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(img[1][:, 1:], 20 / 127.5 - 1, atol=1e-6)


def test_pairs_and_make_pairs():
    ds, _ = pipeline.make_batches(TinySource(), "train", image_size=4, batch_size=5, seed=0)
    paired = pipeline.pairs(ds, seed=2, shuffle_buffer=N)
    batches = take(paired, 4)
    assert set(batches[0]) == {f"{k}_{s}" for k in ("image", "attributes", "labels", "labelled_mask", "identity",
                                                     "index") for s in "ab"}
    assert batches[0]["image_b"].shape == (5, 4, 4, 3)
    a = np.concatenate([b["index_a"] for b in batches])
    b = np.concatenate([b["index_b"] for b in batches])
    assert not np.array_equal(a, b)
    for batch in batches:  # each half stays self-consistent
        np.testing.assert_array_equal(batch["labels_b"], LABELS[batch["index_b"]])
    made, schema = pipeline.make_pairs(TinySource(), "train", image_size=4, batch_size=5, seed=0, attributes="Hair")
    m = take(made, 2)
    assert schema.names == ["Hair"] and m[0]["attributes_a"].shape == (5, 3)
    assert not np.array_equal(np.concatenate([x["index_a"] for x in m]), np.concatenate([x["index_b"] for x in m]))


def test_two_domains():
    dom_a, dom_b = pipeline.two_domains(TinySource(), "train", "Glasses", image_size=4, batch_size=2)
    a_idx = np.concatenate([x["index"] for x in take(dom_a, 8)])
    b_idx = np.concatenate([x["index"] for x in take(dom_b, 4)])
    assert set(b_idx) == {2, 5}
    assert set(a_idx) == {0, 1, 3, 4, 6, 8, 9}  # 7 is unlabelled: in neither domain
    ha, hb = pipeline.two_domains(TinySource(), "train", "Hair", "blond", image_size=4, batch_size=1,
                                  attributes=["Hair"])
    hb_batch = take(hb, 3)
    assert all(x["labels"][0, 0] == 1 for x in hb_batch)
    assert all(x["labels"][0, 0] in (0, 2) for x in take(ha, 6))
    # value_a narrows domain A to one class (Mokady et al.'s blond vs black hair): brown is in neither.
    ha, hb = pipeline.two_domains(TinySource(), "train", "Hair", "blond", image_size=4, batch_size=1,
                                  value_a="black")
    assert set(np.concatenate([x["index"] for x in take(ha, 12)])) == {0, 3, 6, 9}
    assert set(np.concatenate([x["index"] for x in take(hb, 6)])) == {1, 7}
    with pytest.raises(ValueError, match="Hair domains A and B are both 'blond'"):
        pipeline.two_domains(TinySource(), "train", "Hair", "blond", image_size=4, batch_size=1, value_a="blond")

    class Tabled(TinySource):  # a source exposing its label table, so empty domains fail up front
        def table(self, split):
            return types.SimpleNamespace(labels=LABELS[: self.n])

    with pytest.raises(DataError, match="domain A \\(without\\) Hair=brown has no examples"):
        pipeline.two_domains(Tabled(n=2), "train", "Hair", "blond", image_size=4, batch_size=1, value_a="brown")
    with pytest.raises(DataError, match="domain B \\(with\\) Hair=brown has no examples"):
        pipeline.two_domains(Tabled(n=2), "train", "Hair", "brown", image_size=4, batch_size=1)
    with pytest.raises(UnknownAttributeError, match="valid values: black, blond, brown"):
        pipeline.two_domains(TinySource(), "train", "Hair", "red", image_size=4, batch_size=1)
    with pytest.raises(ValueError, match="needs a value"):
        pipeline.two_domains(TinySource(), "train", "Hair", image_size=4, batch_size=1)


def test_domain_membership_matches_two_domains_reading():
    hair = LABELS[:, 1]  # black 0, blond 1, brown 2, one unlabelled (-1) at index 4
    np.testing.assert_array_equal(attr_lib.domain_membership(hair, 1), [0, 1, 0, 0, -1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(attr_lib.domain_membership(hair, 1, 0), [0, 1, -1, 0, -1, -1, 0, 1, -1, 0])


def test_load_uses_registry_and_passes_image_size(monkeypatch):
    seen = {}

    def factory(*, image_size=None, n=N):
        seen["image_size"] = image_size
        return TinySource(n=n)

    base._import_all()
    monkeypatch.setitem(base._REGISTRY, "tiny_test", factory)
    ds, schema = pipeline.load("tiny_test", "train", image_size=6, batch_size=3, attributes="Smiling", n=6)
    assert seen == {"image_size": 6} and schema.names == ["Smiling"]
    assert take(ds, 1)[0]["image"].shape == (3, 6, 6, 3)
    with pytest.raises(DataError, match="unknown dataset 'nope'; valid datasets: .*tiny_test"):
        pipeline.load("nope", "train", image_size=6, batch_size=3)


def test_bad_split_and_sizes():
    with pytest.raises(DataError, match="split 'test' has no examples"):
        pipeline.make_batches(TinySource(), "test", image_size=4, batch_size=2)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        pipeline.make_batches(TinySource(), "dev", image_size=4, batch_size=2)
    with pytest.raises(ValueError, match="must be positive"):
        pipeline.make_batches(TinySource(), "train", image_size=0, batch_size=2)
