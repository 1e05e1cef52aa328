"""dlib face-recognition ResNet: .dat parsing (exact), Keras port semantics, agreement with dlib."""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf

from tfattr.identity import dlib_resnet as D

HAVE_MODELS = importlib.util.find_spec("face_recognition_models") is not None
HAVE_DLIB = importlib.util.find_spec("dlib") is not None


def _random_weights(seed=0):
    rng = np.random.default_rng(seed)
    model = D.build_dlib_resnet()
    convs = [(rng.normal(0, 0.05, l.kernel.shape).astype(np.float32), rng.normal(0, 0.1, l.bias.shape).astype(np.float32))
             for l in model.layers if isinstance(l, tf.keras.layers.Conv2D)]
    affines = [(rng.uniform(0.5, 1.5, l.gamma.shape).astype(np.float32), rng.normal(0, 0.1, l.beta.shape).astype(np.float32))
               for l in model.layers if isinstance(l, D.ChannelAffine)]
    fc = rng.normal(0, 0.1, (256, 128)).astype(np.float32)
    return model, D.DlibWeights(np.array([121.5, 110.25, 99.125], np.float32), 150, convs, affines, fc)


def test_write_read_roundtrip_is_exact_and_loads_into_model():
    model, w = _random_weights()
    back = D.read_dat(D.write_dat(w))
    np.testing.assert_array_equal(back.mean_rgb, w.mean_rgb)
    assert len(back.convs) == 29 and len(back.affines) == 29
    for (k1, b1), (k2, b2) in zip(w.convs, back.convs):
        np.testing.assert_array_equal(k1, k2)
        np.testing.assert_array_equal(b1, b2)
    for (g1, be1), (g2, be2) in zip(w.affines, back.affines):
        np.testing.assert_array_equal(g1, g2)
        np.testing.assert_array_equal(be1, be2)
    np.testing.assert_array_equal(back.fc, w.fc)
    D.set_weights(model, back)
    np.testing.assert_array_equal(model.get_layer("level5_block1_conv1").kernel.numpy(), w.convs[-2][0])
    np.testing.assert_array_equal(model.get_layer("embedding").kernel.numpy(), w.fc)
    assert model.get_layer("dlib_input").mean_rgb == tuple(float(v) for v in w.mean_rgb)


def test_truncated_or_foreign_file_is_a_located_error(tmp_path):
    _, w = _random_weights()
    data = D.write_dat(w)
    with pytest.raises(D.DatFormatError, match="end of file"):
        D.read_dat(data[:len(data) // 2])
    with pytest.raises(D.DatFormatError, match="byte"):
        D.read_dat(b"\x01\x01" + data[2:].replace(b"loss_metric_2", b"loss_mmod_xx2"))
    with pytest.raises(FileNotFoundError, match="face-recognition-models"):
        D.read_dat(tmp_path / "nope.dat")


def test_zero_fill_add_matches_dlib_semantics():
    a = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4)
    b = np.ones([2, 4, 4, 2], np.float32)
    out = D.ZeroFillAdd()([tf.constant(a), tf.constant(b)]).numpy()
    want = np.zeros([2, 4, 4, 4], np.float32)
    want[:, :3, :3, :] += a
    want[:, :, :, :2] += b
    np.testing.assert_array_equal(out, want)


def test_shapes_and_resizing_input():
    model = D.build_dlib_resnet(input_size=64)
    out = model(tf.zeros([2, 64, 64, 3]))
    assert out.shape == (2, 128)
    # dlib's size chain 150 -> 72 -> 35 -> 17 -> 8 -> 4 (3x3 block zero-filled to 4x4) -> 2.
    assert model.get_layer("level4_block1").output.shape[1:] == (4, 4, 256)
    assert model.get_layer("level5_block1").output.shape[1:] == (2, 2, 256)


@pytest.mark.skipif(not HAVE_MODELS, reason="PyPI face-recognition-models not installed (pip install tfattr[identity])")
def test_enlarging_input_compiles_under_xla_and_equals_the_antialiased_resize():
    layer = D.DlibInput()
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, [2, 64, 64, 3]).astype(np.float32))
    out = tf.function(layer, jit_compile=True)(x)
    expected = tf.image.resize(x, [150, 150], method="bilinear", antialias=True)
    expected = ((expected + 1.0) * 127.5 - tf.constant(layer.mean_rgb)) / 256.0
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-5)


def test_released_file_parses():
    w = D.read_dat(D.default_weights_path())
    assert w.fc.shape == (256, 128) and len(w.convs) == 29
    assert w.convs[0][0].shape == (7, 7, 3, 32)
    assert np.all(np.isfinite(w.fc))


@pytest.mark.skipif(not (HAVE_MODELS and HAVE_DLIB),
                    reason="needs PyPI dlib-bin and face-recognition-models to compare with dlib's own embeddings")
def test_matches_dlib_embeddings_on_real_photos():
    dlib = pytest.importorskip("dlib")
    import face_recognition_models as frm
    from PIL import Image

    photos = []
    try:
        import matplotlib.cbook

        photos.append(np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")))
    except ImportError:
        pass
    try:
        import skimage.data

        photos.append(skimage.data.astronaut())
    except ImportError:
        pass
    if not photos:
        pytest.skip("needs matplotlib or scikit-image for their sample photos")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_model_location())
    reference = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    model = D.load_dlib_resnet()
    for photo in photos:
        faces = detector(photo, 1)
        assert len(faces) >= 1
        # dlib's own alignment for both, so only the networks are compared.
        chip = dlib.get_face_chip(photo, predictor(photo, faces[0]), size=150, padding=0.25)
        want = np.asarray(reference.compute_face_descriptor(chip))
        got = model(chip[None].astype(np.float32) / 127.5 - 1.0).numpy()[0].astype(np.float64)
        cos = got @ want / (np.linalg.norm(got) * np.linalg.norm(want))
        assert cos >= 0.999, cos
        np.testing.assert_allclose(got, want, atol=1e-4)
