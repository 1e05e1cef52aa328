"""VGG-Face (Parkhi, Vedaldi and Zisserman, "Deep Face Recognition", BMVC 2015) in Keras.

Thirteen 3x3 convolutions in five groups (64, 128, 256, 512, 512 channels; 2x2 max pool after each
group), then fc6 (a 7x7 convolution, 4096), fc7 (4096) and fc8 (2,622 identities of the VGG-Face
dataset). Convolutions are linear layers named `conv{g}_{i}` followed by ReLU layers named
`relu{g}_{i}`, so perceptual losses can tap either (Li et al. 2016 use the 4th and 5th conv
groups). The model takes float RGB images in [-1, 1] (`[B, S, S, 3]`); it maps them to the
released weights' input (RGB pixels minus the mean face colour).

Released weights (not bundled: the VGG-Face licence is non-commercial research only):
  * MatConvNet `vgg_face.mat` ("vgg_face_matconvnet.tar.gz" from the VGG-Face page, or
    `vgg-face.mat` from the MatConvNet model zoo): `load_matconvnet(model, path)`.
  * Keras `.h5` in the keras-vggface layout (`rcmalli_vggface_tf_vgg16.h5` or
    `rcmalli_vggface_tf_notop_vgg16.h5`, converted from the Caffe release; BGR input):
    `load_keras_h5(model, path)`.
`load_vgg_face(path)` picks the loader from the file extension.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers

# (group, convolutions in the group, channel multiplier of the base width)
GROUPS = ((1, 2, 1), (2, 2, 2), (3, 3, 4), (4, 3, 8), (5, 3, 8))
MEAN_RGB = (129.1863, 104.7624, 93.5940)  # the VGG-Face training set's mean colour (both releases)
INPUT_SIZE = 224
NUM_CLASSES = 2622
INSTALL_HINT = (
    "VGG-Face weights are not bundled (non-commercial licence). Download either the MatConvNet model "
    "(vgg_face_matconvnet.tar.gz from https://www.robots.ox.ac.uk/~vgg/software/vgg_face/ -> "
    "data/vgg_face.mat, or https://www.vlfeat.org/matconvnet/models/vgg-face.mat) or the Keras weights "
    "of keras-vggface (rcmalli_vggface_tf_vgg16.h5 / rcmalli_vggface_tf_notop_vgg16.h5 from "
    "https://github.com/rcmalli/keras-vggface/releases), put the file anywhere (e.g. "
    "~/.tfattr/weights/) and pass its path.")


def conv_layer_names() -> list[str]:
    return [f"conv{g}_{i}" for g, n, _ in GROUPS for i in range(1, n + 1)]


@keras.saving.register_keras_serializable("tfattr")
class VggFaceInput(layers.Layer):
    """[-1, 1] RGB -> RGB pixels minus `mean_rgb`, resized to `size` when different (bilinear)."""

    def __init__(self, size: int | None = None, mean_rgb=MEAN_RGB, **kwargs):
        super().__init__(**kwargs)
        self.size = None if size is None else int(size)
        self.mean_rgb = tuple(float(v) for v in mean_rgb)

    def call(self, x):
        if self.size is not None and (x.shape[1] != self.size or x.shape[2] != self.size):
            x = tf.image.resize(x, [self.size, self.size], method="bilinear", antialias=True)
        return (x + 1.0) * 127.5 - tf.constant(self.mean_rgb, tf.float32)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "mean_rgb": list(self.mean_rgb)}


def build_vgg_face(input_size: int = INPUT_SIZE, include_top: bool = True, base_width: int = 64,
                   fc_width: int = 4096, num_classes: int = NUM_CLASSES, resize_to: int | None = None,
                   name: str = "vgg_face") -> keras.Model:
    """VGG-Face with random weights (load released ones with `load_matconvnet` / `load_keras_h5`).

    Args:
      input_size: input side; 224 with `include_top` (fc6 is a 7x7 conv over the 7x7 pool5 map).
      include_top: add fc6, fc7, fc8 and the softmax ("prob").
      base_width: conv1 channels (64 in the release; tests use smaller widths).
      fc_width: fc6/fc7 units (4096 in the release).
      num_classes: fc8 units (2622 in the release).
      resize_to: if set, inputs of another size are resized to it inside the model.

    Returns:
      Functional `keras.Model`, float RGB `[B, S, S, 3]` in [-1, 1] -> class probabilities
      `[B, num_classes]` (include_top) or pool5 features `[B, S/32, S/32, 8*base_width]`.

    Raises:
      ValueError: `include_top` with an input that does not reach 7x7 at pool5.
    """
    size = resize_to or input_size
    if include_top and size != 32 * 7:
        raise ValueError(f"build_vgg_face: include_top needs 224 px at the network (input_size or resize_to), got {size}")
    x_in = keras.Input([input_size, input_size, 3], name="image")
    h = VggFaceInput(resize_to, name="preprocess")(x_in)
    for g, n, mult in GROUPS:
        for i in range(1, n + 1):
            h = layers.Conv2D(base_width * mult, 3, padding="same", name=f"conv{g}_{i}")(h)
            h = layers.ReLU(name=f"relu{g}_{i}")(h)
        h = layers.MaxPooling2D(2, 2, name=f"pool{g}")(h)
    if include_top:
        h = layers.Conv2D(fc_width, 7, padding="valid", name="fc6")(h)
        h = layers.ReLU(name="relu6")(h)
        h = layers.Conv2D(fc_width, 1, name="fc7")(h)
        h = layers.ReLU(name="relu7")(h)
        h = layers.Conv2D(num_classes, 1, name="fc8")(h)
        h = layers.Flatten(name="flatten")(h)
        h = layers.Softmax(name="prob")(h)
    return keras.Model(x_in, h, name=name)


def _weighted_layers(model: keras.Model) -> list[str]:
    return [l.name for l in model.layers if l.name.startswith(("conv", "fc")) and l.weights]


def _check_path(path) -> str:
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"VGG-Face weights not found at {path!r}. {INSTALL_HINT}")
    return path


def _assign(model: keras.Model, name: str, kernel: np.ndarray, bias: np.ndarray, source: str) -> None:
    layer = model.get_layer(name)
    want = tuple(layer.kernel.shape)
    kernel = np.asarray(kernel, np.float32)
    if kernel.shape != want and kernel.size == int(np.prod(want)) and len(want) == 4 and kernel.ndim == 2:
        kernel = kernel.reshape(want)  # keras-vggface fc6/fc7/fc8 are Dense over a HWC flatten
    if kernel.shape != want:
        raise ValueError(f"{source}: layer {name!r} kernel has shape {kernel.shape}, the model wants {want} "
                         "(wrong base_width/fc_width/num_classes, or a channels-first file)")
    bias = np.asarray(bias, np.float32).reshape(-1)
    if bias.shape != (want[-1],):
        raise ValueError(f"{source}: layer {name!r} bias has {bias.size} values, the model wants {want[-1]}")
    layer.set_weights([kernel, bias])


def load_matconvnet(model: keras.Model, path) -> keras.Model:
    """Loads MatConvNet VGG-Face weights (`vgg_face.mat` / `vgg-face.mat`) into `model`.

    Both MatConvNet layouts are read: the VGG-Face release (a `net` struct with `layers`) and the
    model-zoo file (`layers` and `meta` at the top). Each conv layer is a struct with `name` and
    `weights` = {W `[h, w, in, out]`, b}; W is already in Keras' HWIO order and the release takes
    RGB input, so nothing is permuted.

    Raises:
      FileNotFoundError: no file at `path` (the message says where to get it).
      ValueError: a layer of the model is missing from the file or has another shape.
    """
    import scipy.io

    path = _check_path(path)
    mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    root = mat["net"] if "net" in mat else mat
    mat_layers = root.layers if hasattr(root, "layers") else root["layers"]
    by_name = {}
    for layer in np.atleast_1d(mat_layers):
        weights = getattr(layer, "weights", None)
        if weights is not None and np.size(weights) == 2:
            by_name[str(layer.name)] = (weights[0], weights[1])
        elif np.size(getattr(layer, "filters", [])) and hasattr(layer, "biases"):  # pre-2015 MatConvNet
            by_name[str(layer.name)] = (layer.filters, layer.biases)
    for name in _weighted_layers(model):
        if name not in by_name:
            raise ValueError(f"{path}: no weights for layer {name!r}; the file has {sorted(by_name)}")
        kernel, bias = by_name[name]
        kernel = np.asarray(kernel)
        if kernel.ndim == 2 and model.get_layer(name).kernel.shape[0] == 1:  # 1x1 convs squeezed by scipy
            kernel = kernel[None, None]
        _assign(model, name, kernel, bias, path)
    return model


def load_keras_h5(model: keras.Model, path) -> keras.Model:
    """Loads keras-vggface weights (`rcmalli_vggface_tf_[notop_]vgg16.h5`) into `model`.

    The file is Keras 2's HDF5 weights layout: one group per layer name holding datasets listed
    in the group's `weight_names` attribute (kernel then bias); full-model files keep them under
    `model_weights`. The weights were converted from the Caffe release, which takes BGR input,
    so conv1_1's input channels are reversed to fit this model's RGB input.

    Raises:
      FileNotFoundError: no file at `path` (the message says where to get it).
      ValueError: a layer is missing from the file or has another shape.
    """
    import h5py

    path = _check_path(path)
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for name in _weighted_layers(model):
            if name not in root:
                raise ValueError(f"{path}: no weights for layer {name!r}; the file has {sorted(root.keys())}")
            group = root[name]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
            arrays = [np.asarray(group[n]) for n in names] if names else []
            if len(arrays) != 2:
                raise ValueError(f"{path}: layer {name!r} has {len(arrays)} weight arrays, expected kernel and bias")
            kernel, bias = sorted(arrays, key=lambda a: -a.ndim)
            if name == "conv1_1":
                kernel = kernel[:, :, ::-1, :]  # BGR -> RGB input channels
            _assign(model, name, kernel, bias, path)
    return model


def load_vgg_face(path, input_size: int = INPUT_SIZE, include_top: bool = False, resize_to: int | None = None,
                  trainable: bool = False) -> keras.Model:
    """VGG-Face with released weights from `path` (`.mat` -> MatConvNet, `.h5` -> keras-vggface).

    Raises:
      FileNotFoundError: no file at `path` (the message says where to get one).
      ValueError: unknown extension.
    """
    path = _check_path(path)
    model = build_vgg_face(input_size, include_top=include_top, resize_to=resize_to)
    if path.endswith(".mat"):
        load_matconvnet(model, path)
    elif path.endswith(".h5"):
        load_keras_h5(model, path)
    else:
        raise ValueError(f"load_vgg_face: {path!r} is neither a MatConvNet .mat nor a Keras .h5 file")
    model.trainable = trainable
    return model
