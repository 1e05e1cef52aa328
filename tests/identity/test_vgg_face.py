"""VGG-Face: architecture, taps, and exact loading of MatConvNet .mat and keras-vggface .h5 files."""

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from tfattr.identity import vgg_face as V

WIDTH, FC, CLASSES = 2, 6, 5  # a reduced-width VGG-Face; the file formats are the released ones


def _weights(model, seed=0):
    rng = np.random.default_rng(seed)
    return {l.name: (rng.normal(0, 0.1, l.kernel.shape).astype(np.float32),
                     rng.normal(0, 0.1, l.bias.shape).astype(np.float32))
            for l in model.layers if l.name.startswith(("conv", "fc"))}


def _cell(items):
    c = np.empty((1, len(items)), dtype=object)
    for i, v in enumerate(items):
        c[0, i] = v
    return c


def _mat_layers(weights):
    """MatConvNet simplenn layers: conv structs {name, type, weights={W, b}, stride, pad} plus relu/pool."""
    layers = []
    for name, (k, b) in weights.items():
        layers.append({"name": name, "type": "conv", "weights": _cell([k, b[:, None]]),
                       "stride": np.array([1.0, 1.0]), "pad": np.array([1.0, 1.0, 1.0, 1.0])})
        layers.append({"name": name.replace("conv", "relu").replace("fc", "relu"), "type": "relu"})
    return _cell(layers)


def _h5_file(path, weights, notop=False):
    """keras-vggface layout: groups per layer, weight_names attrs, Dense fc layers, BGR conv1_1."""
    with h5py.File(path, "w") as f:
        names = [n for n in weights if not (notop and n.startswith("fc"))]
        f.attrs["layer_names"] = [n.encode() for n in ["input_1"] + names]
        f.attrs["backend"] = b"tensorflow"
        f.create_group("input_1").attrs["weight_names"] = []
        for n in names:
            k, b = weights[n]
            if n == "conv1_1":
                k = k[:, :, ::-1, :]  # the Caffe-converted file takes BGR
            if n.startswith("fc"):
                k = k.reshape(-1, k.shape[-1])  # Dense over a HWC flatten
            g = f.create_group(n)
            g.attrs["weight_names"] = [f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()]
            g.create_dataset(f"{n}/kernel:0", data=k)
            g.create_dataset(f"{n}/bias:0", data=b)


def _build(include_top=True):
    return V.build_vgg_face(224, include_top=include_top, base_width=WIDTH, fc_width=FC, num_classes=CLASSES)


def _assert_loaded(model, weights):
    for name, (k, b) in weights.items():
        if name in [l.name for l in model.layers]:
            np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), k, err_msg=name)
            np.testing.assert_array_equal(model.get_layer(name).bias.numpy(), b, err_msg=name)


def test_architecture_and_taps():
    model = _build()
    assert V.conv_layer_names() == [l.name for l in model.layers if l.name.startswith("conv")]
    assert len(V.conv_layer_names()) == 13
    assert model.get_layer("conv4_1").output.shape[1:] == (28, 28, 8 * WIDTH)
    assert model.get_layer("conv5_3").output.shape[1:] == (14, 14, 8 * WIDTH)
    assert model(tf.zeros([1, 224, 224, 3])).shape == (1, CLASSES)
    with pytest.raises(ValueError, match="224"):
        V.build_vgg_face(64, include_top=True)
    assert V.build_vgg_face(64, include_top=False, base_width=2).output.shape[1:] == (2, 2, 16)


@pytest.mark.parametrize("layout", ["vgg_face_release", "model_zoo"])
def test_matconvnet_loading_is_exact(tmp_path, layout):
    model = _build()
    weights = _weights(model)
    meta = {"normalization": {"averageImage": np.array(V.MEAN_RGB)}, "classes": {"description": _cell(list("abcde"))}}
    content = ({"net": {"layers": _mat_layers(weights), **meta}} if layout == "vgg_face_release"
               else {"layers": _mat_layers(weights), "meta": meta})
    path = str(tmp_path / "vgg_face.mat")
    scipy.io.savemat(path, content)
    V.load_matconvnet(model, path)
    _assert_loaded(model, weights)


def test_keras_h5_loading_is_exact_and_agrees_with_matconvnet(tmp_path):
    weights = _weights(_build(), seed=1)
    mat_path, h5_path = str(tmp_path / "vgg_face.mat"), str(tmp_path / "rcmalli_vggface_tf_vgg16.h5")
    scipy.io.savemat(mat_path, {"net": {"layers": _mat_layers(weights)}})
    _h5_file(h5_path, weights)
    from_mat = V.load_matconvnet(_build(), mat_path)
    from_h5 = V.load_keras_h5(_build(), h5_path)
    _assert_loaded(from_h5, weights)
    x = tf.random.uniform([2, 224, 224, 3], -1, 1, seed=3)
    np.testing.assert_allclose(from_h5(x).numpy(), from_mat(x).numpy(), rtol=1e-5, atol=1e-6)


def test_notop_h5_and_load_vgg_face_by_extension(tmp_path):
    weights = _weights(_build(include_top=False), seed=2)
    path = str(tmp_path / "rcmalli_vggface_tf_notop_vgg16.h5")
    _h5_file(path, weights, notop=True)
    model = V.load_keras_h5(_build(include_top=False), path)
    _assert_loaded(model, weights)
    with pytest.raises(ValueError, match="fc6"):  # a no-top file cannot fill a model with fc layers
        V.load_keras_h5(_build(include_top=True), path)
    with pytest.raises(ValueError, match="kernel has shape"):  # full-width model vs reduced file
        V.load_keras_h5(V.build_vgg_face(224, include_top=False), path)


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg_face_matconvnet"):
        V.load_vgg_face(tmp_path / "vgg_face.mat")
    with pytest.raises(FileNotFoundError, match="keras-vggface"):
        V.load_keras_h5(_build(), tmp_path / "x.h5")
