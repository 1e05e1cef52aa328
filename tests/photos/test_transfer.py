"""`python -m tfattr.transfer` on real photos that packages ship (never committed)."""

import os

import numpy as np
import pytest
from absl import flags
from PIL import Image

from tests import testing
from tfattr.photos import detect, operations

pytest.importorskip("mtcnn")

TINY = ",".join(f"{k}={v}" for k, v in testing.TINY_LATENT_SWAP.items())


def _grace_hopper(tmp):
    import matplotlib.cbook

    return matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def _astronaut(tmp):
    skimage_data = pytest.importorskip("skimage.data")
    path = os.path.join(tmp, "astronaut.png")
    Image.fromarray(skimage_data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tfattr import config as config_lib
    from tfattr.training import loop

    tmp = tmp_path_factory.mktemp("photos")
    config = config_lib.TrainConfig(
        model="latent_swap", dataset="synthetic", dataset_options="num_train=32,num_validation=8,num_test=8",
        attributes=("Eyeglasses", "Hair_Color"), image_size=32, batch_size=4, steps=1, hparams=TINY,
        output_dir=str(tmp / "runs"), log_every=1, sample_every=0, checkpoint_every=1, strategy="default",
        progress=False, export_after=True)
    return loop.run(config)


def _cli(args):
    from tfattr import transfer

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["transfer"] + args)
    return transfer.main(["transfer"])


def test_cli_edits_the_faces_of_two_real_photos(run_dir, tmp_path):
    source, reference = _grace_hopper(tmp_path), _astronaut(tmp_path)
    for model_dir in (run_dir["run_dir"], run_dir["export"]):
        out = str(tmp_path / "out.png")
        assert _cli([f"--model_dir={model_dir}", f"--source={source}", f"--reference={reference}",
                     "--attributes=Eyeglasses", f"--output={out}"]) == 0
        before, after = detect.load_image(source), detect.load_image(out)
        assert after.shape == before.shape
        x, y, w, h = (int(v) for v in detect.detect_faces(before)[0].box)
        face_change = np.abs(after[y:y + h, x:x + w].astype(int) - before[y:y + h, x:x + w].astype(int)).mean()
        assert face_change > 10.0, face_change
        # Far from the face (the bottom rows: uniform and medals) the photo is untouched.
        np.testing.assert_array_equal(after[-60:], before[-60:])
    # The astronaut as source, with an operation that needs no reference.
    out = str(tmp_path / "astro.png")
    assert _cli([f"--model_dir={run_dir['export']}", f"--source={reference}", "--operation=reconstruct",
                 f"--output={out}"]) == 0
    assert np.abs(detect.load_image(out).astype(int) - detect.load_image(reference).astype(int)).max() > 0


def test_cli_errors_name_the_file_and_the_flag(run_dir, tmp_path, capsys):
    blank = str(tmp_path / "blank.png")
    Image.fromarray(np.full([120, 160, 3], 200, np.uint8)).save(blank)
    assert _cli([f"--model_dir={run_dir['export']}", f"--source={blank}", "--operation=reconstruct",
                 f"--output={tmp_path / 'x.png'}"]) == 2
    err = capsys.readouterr().err
    assert "no face found in" in err and "blank.png" in err, err
    assert _cli([f"--model_dir={run_dir['export']}", f"--source={blank}", "--operation=swap",
                 f"--output={tmp_path / 'x.png'}"]) == 2
    assert "needs --reference" in capsys.readouterr().err


def test_no_face_message_names_the_file(tmp_path):
    with pytest.raises(detect.NoFaceError, match="blank.png"):
        detect.find_faces(np.full([120, 160, 3], 200, np.uint8), str(tmp_path / "blank.png"))


def test_huge_photo_is_detected_downscaled_with_full_resolution_landmarks(tmp_path):
    photo = detect.load_image(_grace_hopper(tmp_path))
    big = np.asarray(Image.fromarray(photo).resize((photo.shape[1] * 4, photo.shape[0] * 4)))
    small_faces = detect.detect_faces(photo)
    big_faces = detect.detect_faces(big, max_side=600)
    np.testing.assert_allclose(big_faces[0].landmarks5 / 4, small_faces[0].landmarks5, atol=4.0)


def test_load_image_grayscale_rgba_exif(tmp_path):
    rgb = np.zeros([20, 30, 3], np.uint8)
    rgb[:, :10] = 255
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    assert detect.load_image(str(tmp_path / "g.png")).shape == (20, 30, 3)
    rgba = np.concatenate([rgb, np.zeros([20, 30, 1], np.uint8)], -1)  # fully transparent -> white
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert (detect.load_image(str(tmp_path / "a.png")) == 255).all()
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    upright = detect.load_image(str(tmp_path / "r.jpg"))
    assert upright.shape == (30, 20, 3) and upright[:10].mean() > 200 and upright[-10:].mean() < 50
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        detect.load_image(str(tmp_path / "missing.jpg"))


@pytest.mark.parametrize("name", ["latent_swap", "mask_transfer", "adv_disentangle", "diat", "bi_infogan"])
def test_dispatch_fills_every_photo_operation(name):
    from tfattr import models
    from tfattr.data import synthetic

    if name not in models.MODELS:
        pytest.skip(f"{name} not registered")
    attributes = {"adv_disentangle": ["Hair_Color", "Gaze"]}.get(name, ["Eyeglasses", "Hair_Color"])
    size = 64 if name == "mask_transfer" else 32  # its default 6 blocks need a multiple of 2**6
    model = models.build(name, synthetic.SCHEMA.select(attributes), size)
    engine = operations.Engine.from_model(model)
    ops = engine.photo_operations()
    assert ops, name
    src = np.zeros([2, size, size, 3], np.float32)
    for op in ops:
        a = attributes[0]
        edit = f"{a}={model.schema[a].values[1]}"
        request = operations.Request((edit,) if "target_attributes" in engine.specs[op] else (a,))
        if "target_attributes" in engine.specs[op] and "swap_attributes" in engine.specs[op]:
            continue
        inputs = engine.inputs(op, src, src, request)
        assert set(inputs) == set(engine.specs[op]), (name, op)
        for k, v in inputs.items():
            shape = engine.specs[op][k][0]
            assert v.shape[0] == 2 and all(d is None or d == e for d, e in zip(shape, v.shape)), (name, op, k)
        if op == model.DEFAULT_SIGNATURE:
            image, mask = engine.edit(op, src, src, request)
            assert image is not None or mask is not None, (name, op)
