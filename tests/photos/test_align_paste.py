import numpy as np
import pytest

from tfattr.data import synthetic
from tfattr.photos import align, paste


def _bench(n=16, size=64):
    p = synthetic.params_for(0, "test", np.arange(n))
    return synthetic.render(p, size, outputs=("image", "landmarks5"))


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, [5, 2])
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    m = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ m.T + shift
    a = align.similarity_transform(src, dst)
    np.testing.assert_allclose(a[:, :2], m, atol=1e-9)
    np.testing.assert_allclose(a[:, 2], shift, atol=1e-9)
    np.testing.assert_allclose(align.apply(align.invert(a), dst), src, atol=1e-9)


def test_frontal_bench_faces_align_to_the_template_within_one_pixel():
    """The template is the mean bench face: frontal, neutral bench faces land on it within 1 px (median);
    the remaining residual is each face's own shape (pose and expression add ~2 px, benchmarks/photos.md)."""
    size = 64
    p = synthetic.counterfactual(synthetic.params_for(0, "test", np.arange(64)),
                                 {"Pose": "frontal", "Expression": "neutral", "Smiling": "no", "Mouth_Slightly_Open": "no"})
    lms = synthetic.render(p, size, outputs=("landmarks5",))["landmarks5"]
    t = align.bench_template() * size
    err = np.array([np.linalg.norm(align.apply(align.alignment_matrix(lm, size, "bench"), lm) - t, axis=1).max()
                    for lm in lms])
    assert np.median(err) < 1.0, np.median(err)


def test_bench_face_in_a_photo_aligns_like_its_own_crop():
    """A bench face placed in a larger photo (random rotation, scale, shift) aligns to the same crop
    as the bench crop itself: landmarks within 1 px, pixels equal up to resampling."""
    size = 64
    out = _bench(6, size)
    rng = np.random.default_rng(1)
    for img, lm in zip(out["image"], out["landmarks5"]):
        angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(1.5, 3.0)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        place = np.concatenate([rot, rng.uniform(60, 90, [2, 1])], axis=1)  # crop -> photo
        photo = align.warp(img, place, (300, 280))
        photo_lm = align.apply(place, lm)
        crop, m = align.align(photo, photo_lm, size, "bench")
        own_crop, own_m = align.align(img, lm, size, "bench")
        err = np.linalg.norm(align.apply(m, photo_lm) - align.apply(own_m, lm), axis=1)
        assert err.max() < 1.0, err
        inner = slice(12, size - 12)
        diff = np.abs(crop[inner, inner].astype(float) - own_crop[inner, inner].astype(float)).mean()
        assert diff < 12.0, diff


def test_unknown_template_names_valid_ones():
    with pytest.raises(ValueError, match="bench, celeba"):
        align.template_for("ffhq")


def test_paste_changes_only_the_face_box():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, [400, 440, 3], dtype=np.uint8)
    lm = np.array([[200, 190], [240, 192], [220, 215], [204, 235], [236, 237]], np.float64)
    m = align.alignment_matrix(lm, 32, "bench")
    crop = np.full([32, 32, 3], 255, np.uint8)
    out = paste.paste(photo, crop, m)
    x0, y0, x1, y1 = paste.face_box(m, 32, photo.shape)
    assert 0 < x0 < x1 < 440 and 0 < y0 < y1 < 400
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], photo[outside])
    # The face centre is fully replaced; the seam is soft (intermediate weights exist).
    cx, cy = align.apply(align.invert(m), [[16, 16]])[0].astype(int)
    np.testing.assert_array_equal(out[cy, cx], [255, 255, 255])
    changed = np.abs(out.astype(int) - photo.astype(int)).max(-1)
    assert changed[y0:y1, x0:x1].any()


def test_feather_mask_is_soft_and_zero_at_the_border():
    m = paste.feather_mask(64)
    assert m[0].max() == 0 and m[:, -1].max() == 0 and m[32, 32] == pytest.approx(1.0)
    assert ((m > 0.05) & (m < 0.95)).sum() > 64
