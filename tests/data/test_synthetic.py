"""Tests of the synthetic face bench: determinism, outputs, counterfactual locality, swap, labels,
landmarks, errors, the registered source and the TFDS builder."""

import numpy as np
import pytest
from scipy import ndimage

from tfattr.data import base, synthetic
from tfattr.data.attributes import UnknownAttributeError

SEED = 0


def _params(n=8, split="validation", start=0):
    return synthetic.params_for(SEED, split, np.arange(start, start + n))


def test_same_seed_same_pixels_and_any_subset_renders_the_same():
    a = synthetic.render(_params(6), 48)["image"]
    b = synthetic.render(_params(6), 48)["image"]
    np.testing.assert_array_equal(a, b)
    sub = synthetic.render(synthetic.params_for(SEED, "validation", [4, 2]), 48)["image"]
    np.testing.assert_array_equal(sub, a[[4, 2]])
    other = synthetic.render(synthetic.params_for(SEED + 1, "validation", np.arange(6)), 48)["image"]
    assert np.any(other != a)


@pytest.mark.parametrize("size", [32, 96])
def test_a_face_renders_the_same_alone_and_in_any_batch(size):
    # Layers are evaluated in windows shared by the batch; extreme faces (high/low eyes, angry or
    # surprised brows, long bangs, open smiles, aviators) must not be clipped by them.
    p = _params(24, split="train")
    extremes = synthetic.counterfactual(p, {"Expression": np.arange(24) % 8, "Bangs": 1, "Eyeglasses": 1,
                                            "Smiling": 1, "Mouth_Slightly_Open": np.arange(24) % 2})
    batch = synthetic.render(extremes, size, outputs=("image", "masks"))
    for i in range(24):
        alone = synthetic.render({k: v[i : i + 1] for k, v in extremes.items()}, size, outputs=("image", "masks"))
        np.testing.assert_array_equal(alone["image"][0], batch["image"][i], err_msg=f"face {i}")
        for m in synthetic.MASKS:
            np.testing.assert_array_equal(alone["masks"][m][0], batch["masks"][m][i], err_msg=f"face {i} {m}")


@pytest.mark.parametrize("size", [32, 128])
def test_output_shapes_dtypes_and_ranges(size):
    out = synthetic.render(_params(3), size, outputs=("image", "masks", "landmarks5", "landmarks68"))
    assert out["image"].shape == (3, size, size, 3) and out["image"].dtype == np.uint8
    assert out["image"].std() > 10  # not blank
    assert set(out["masks"]) == set(synthetic.MASKS) and set(synthetic.LOCAL_MASKS) <= set(out["masks"])
    for name, m in out["masks"].items():
        assert m.shape == (3, size, size) and m.dtype == np.float32, name
        assert m.min() >= 0.0 and m.max() <= 1.0, name
    assert out["masks"]["face"].max() == pytest.approx(1.0)
    assert out["landmarks5"].shape == (3, 5, 2) and out["landmarks5"].dtype == np.float32
    assert out["landmarks68"].shape == (3, 68, 2) and out["landmarks68"].dtype == np.float32


def test_render_rejects_unknown_output():
    with pytest.raises(ValueError, match="valid outputs"):
        synthetic.render(_params(1), 32, outputs=("depth",))


@pytest.mark.parametrize("attribute", sorted(synthetic.ATTRIBUTE_MASKS))
def test_local_counterfactual_changes_only_its_mask(attribute):
    p = _params(8)
    mask = synthetic.ATTRIBUTE_MASKS[attribute]
    before = synthetic.render(p, 48, outputs=("image", "masks"))
    changed_any = False
    for value in range(synthetic.SCHEMA[attribute].num_classes):
        after = synthetic.render(synthetic.counterfactual(p, {attribute: value}), 48, outputs=("image", "masks"))
        diff = np.any(after["image"] != before["image"], axis=-1)
        union = (after["masks"][mask] > 0) | (before["masks"][mask] > 0)
        # One pixel of dilation for anti-aliasing.
        allowed = ndimage.binary_dilation(union, structure=np.ones((1, 3, 3), bool))
        assert not np.any(diff & ~allowed), f"{attribute}={value} changed pixels outside the {mask} mask"
        changed_any |= bool(diff.any())
    assert changed_any, f"no value of {attribute} changed the image"


def test_swap_copies_the_exact_glasses_style():
    a = synthetic.counterfactual(_params(6, start=0), {"Eyeglasses": "no"})
    b = synthetic.counterfactual(_params(6, start=40), {"Eyeglasses": "yes"})
    swapped = synthetic.swap(a, b, ["Eyeglasses"])
    by_hand = {k: v.copy() for k, v in a.items()}
    for key in synthetic.FACTORS["Eyeglasses"]:
        by_hand[key] = b[key].copy()
    out = synthetic.render(swapped, 64, outputs=("image", "masks"))
    ref = synthetic.render(by_hand, 64, outputs=("image", "masks"))
    glasses = out["masks"]["glasses"] > 0
    assert glasses.sum() > 100
    np.testing.assert_array_equal(out["image"][glasses], ref["image"][glasses])
    np.testing.assert_array_equal(out["masks"]["glasses"], ref["masks"]["glasses"])
    # A's own glasses style would look different: the style really came from B.
    own = synthetic.render(synthetic.counterfactual(a, {"Eyeglasses": "yes"}), 64)["image"]
    assert np.any(own[glasses] != out["image"][glasses])
    # Everything outside the glasses factor is still A's.
    for key in set(a) - set(synthetic.FACTORS["Eyeglasses"]):
        np.testing.assert_array_equal(swapped[key], a[key])


def test_swap_hair_copies_shade_and_label():
    a, b = _params(4, start=0), _params(4, start=100)
    s = synthetic.swap(a, b, ["Hair_Color"])
    np.testing.assert_array_equal(s["hair_color"], b["hair_color"])
    np.testing.assert_array_equal(s["hair_shade"], b["hair_shade"])
    np.testing.assert_array_equal(s["bangs"], a["bangs"])


def test_labels_match_params_and_counterfactual_sets_only_the_label():
    p = _params(16)
    labs = synthetic.labels(p)
    assert labs.shape == (16, len(synthetic.SCHEMA)) and labs.dtype == np.int32
    synthetic.SCHEMA.validate_labels(labs)
    for i, key in enumerate(synthetic.LABEL_KEYS):
        np.testing.assert_array_equal(labs[:, i], p[key])
    q = synthetic.counterfactual(p, {"Expression": "angry", "Eyeglasses": 1})
    ql = synthetic.labels(q)
    expr, glasses = synthetic.SCHEMA.index("Expression"), synthetic.SCHEMA.index("Eyeglasses")
    assert np.all(ql[:, expr] == 3) and np.all(ql[:, glasses] == 1)
    other = [i for i in range(len(synthetic.SCHEMA)) if i not in (expr, glasses)]
    np.testing.assert_array_equal(ql[:, other], labs[:, other])
    for key in set(p) - {"expression", "eyeglasses"}:
        np.testing.assert_array_equal(q[key], p[key])


def test_every_class_occurs_in_a_few_hundred_examples():
    labs = synthetic.labels(synthetic.params_for(SEED, "train", np.arange(400)))
    for i, a in enumerate(synthetic.SCHEMA):
        assert set(np.unique(labs[:, i])) == set(range(a.num_classes)), a.name


def test_landmarks_inside_the_image_and_following_pose():
    size = 64
    p = _params(8)
    xs = {}
    for pose in synthetic.SCHEMA["Pose"].values:
        out = synthetic.render(synthetic.counterfactual(p, {"Pose": pose}), size, outputs=("landmarks5", "landmarks68"))
        for key in ("landmarks5", "landmarks68"):
            assert np.all(out[key] >= 0) and np.all(out[key] <= size), (pose, key)
        lm = out["landmarks68"]
        assert np.all(lm[:, 36:42, 0].mean(1) < lm[:, 42:48, 0].mean(1))  # image-left eye is left
        assert np.all(lm[:, 48, 0] < lm[:, 54, 0]) and np.all(lm[:, 8, 1] > lm[:, 30, 1])  # mouth, chin
        np.testing.assert_allclose(out["landmarks5"][:, 2], lm[:, 30])
        xs[pose] = lm[:, 30, 0]  # nose tip
    assert np.all(xs["left"] < xs["frontal"] - 2) and np.all(xs["frontal"] < xs["right"] - 2)


def test_landmarks_scale_with_image_size():
    p = _params(2)
    small = synthetic.render(p, 32, outputs=("landmarks68",))["landmarks68"]
    large = synthetic.render(p, 128, outputs=("landmarks68",))["landmarks68"]
    np.testing.assert_allclose(small * 4, large, rtol=1e-5)


def test_unknown_names_raise_with_the_valid_list():
    p = _params(2)
    with pytest.raises(UnknownAttributeError, match="valid attributes: Hair_Color, Bangs"):
        synthetic.counterfactual(p, {"Glasses": 1})
    with pytest.raises(UnknownAttributeError, match="valid values: black, blond, brown, gray"):
        synthetic.counterfactual(p, {"Hair_Color": "red"})
    with pytest.raises(UnknownAttributeError, match="valid attributes"):
        synthetic.swap(p, p, ["Hat"])
    with pytest.raises(ValueError, match="outside"):
        synthetic.counterfactual(p, {"Gaze": 3})
    with pytest.raises(base.DataError, match="valid splits"):
        synthetic.params_for(SEED, "dev", [0])


def test_identities_are_disjoint_across_splits():
    ids = {s: set(synthetic.params_for(SEED, s, np.arange(2000))["identity"].tolist()) for s in base.SPLITS}
    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert len(ids["train"]) == 2000 // synthetic.IMAGES_PER_IDENTITY


def test_sample_params_matches_identity_of_params_for():
    p = synthetic.params_for(0, "train", np.arange(0, 8, 4))
    q = synthetic.sample_params(np.random.default_rng(1), 2, identities=p["identity"])
    for key, _, _ in synthetic._IDENTITY_RANGES:
        np.testing.assert_array_equal(q[key], p[key])
    assert set(q) == set(p)
    synthetic.render(q, 32)


@pytest.mark.parametrize("use_cache", [False, True])
def test_registered_source_yields_the_documented_dict(tmp_path, use_cache):
    src = base.get_source("synthetic", image_size=32, num_train=4, num_validation=5, num_test=3,
                          cache_dir=str(tmp_path) if use_cache else None, celeba_dir="ignored")
    assert src.schema is synthetic.SCHEMA and src.num_examples("validation") == 5
    examples = list(src.examples("validation").as_numpy_iterator())
    assert len(examples) == 5
    ex = examples[0]
    assert set(ex) == {"image", "labels", "identity", "index"}
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
    assert ex["labels"].shape == (len(synthetic.SCHEMA),) and ex["labels"].dtype == np.int32
    assert ex["identity"].shape == () and ex["identity"].dtype == np.int32
    assert ex["index"].shape == () and ex["index"].dtype == np.int64
    assert [int(e["index"]) for e in examples] == list(range(5))
    p = synthetic.params_for(0, "validation", np.arange(5))
    np.testing.assert_array_equal(np.stack([e["image"] for e in examples]), synthetic.render(p, 32)["image"])
    np.testing.assert_array_equal(np.stack([e["labels"] for e in examples]), synthetic.labels(p))
    if use_cache:
        assert any(f.suffix == ".npy" for f in tmp_path.iterdir())
        again = list(src.examples("validation").as_numpy_iterator())  # served from the cache
        np.testing.assert_array_equal(again[4]["image"], examples[4]["image"])
    with pytest.raises(base.DataError, match="valid splits"):
        src.examples("dev")
    images, labels, identities = src.arrays("validation")  # whole split at once, cached or not
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8 and identities.shape == (5,)
    np.testing.assert_array_equal(images, synthetic.render(p, 32)["image"])
    np.testing.assert_array_equal(labels, synthetic.labels(p))
    with pytest.raises(base.DataError, match="valid splits"):
        src.arrays("dev")


def test_tfds_builder_round_trip(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = synthetic.SyntheticFacesConfig(name="tiny32", image_size=32, num_train=6, num_validation=2, num_test=2)
    builder = synthetic.SyntheticFacesBuilder(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
    assert builder.info.splits["train"].num_examples == 6
    assert builder.info.features["Expression"].names == list(synthetic.SCHEMA["Expression"].values)
    rows = sorted(tfds.as_numpy(builder.as_dataset(split="train")), key=lambda r: r["index"])
    p = synthetic.params_for(0, "train", np.arange(6))
    np.testing.assert_array_equal(np.stack([r["image"] for r in rows]), synthetic.render(p, 32)["image"])
    got = np.stack([[r[name] for name in synthetic.SCHEMA.names] for r in rows])
    np.testing.assert_array_equal(got, synthetic.labels(p))
    np.testing.assert_array_equal([r["identity"] for r in rows], p["identity"])
