"""Export a trained model as a SavedModel with explicit, validated, named signatures.

Each signature comes from `model.signatures()`: a function of named tensors returning a dict of
named outputs, plus its `tf.TensorSpec`s. The exported function checks at run time what the spec
cannot express or does not enforce (each fixed dimension, non-empty batch, equal batch sizes
across inputs, images in [-1, 1], weights in [0, 1]) and fails with INVALID_ARGUMENT naming the input, so a server rejects the request and
keeps serving. The version directory is written under a temporary name and renamed into place,
because TF Serving loads any numbered directory it sees, even a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import tensorflow as tf

METADATA_FILE = "tfattr.json"  # in assets.extra/, next to TF Serving's warm-up records

UNIT_RANGE_INPUTS = {"swap_attributes": (0.0, 1.0), "alpha": (-1.0, 2.0), "target_attributes": (0.0, 1.0)}


def _validate(kwargs: dict, specs: dict) -> list:
    checks = []
    batch = None
    for name, value in kwargs.items():
        n = tf.shape(value)[0]
        checks.append(tf.debugging.assert_positive(n, message=f"input '{name}': empty batch"))
        if batch is None:
            batch, first = n, name
        else:
            checks.append(tf.debugging.assert_equal(n, batch, message=f"input '{name}': batch size differs from '{first}'"))
        # A signature's own shape check is not enforced on every path (TF Serving feeds the graph,
        # and a loaded signature accepted a 36x36 image for a 32x32 spec), where the first
        # convolution would fail with an opaque error or abort: check each fixed dimension here.
        for axis, size in enumerate(specs[name].shape):
            if axis > 0 and size is not None:
                checks.append(tf.debugging.assert_equal(
                    tf.shape(value)[axis], size, message=f"input '{name}': dimension {axis} must be {size}"))
        checks.append(tf.debugging.assert_all_finite(value, message=f"input '{name}': NaN or Inf"))
        if "image" in name:
            lo, hi = -1.0, 1.0
        else:
            lo, hi = UNIT_RANGE_INPUTS.get(name, (None, None))
        if lo is not None:
            checks.append(tf.debugging.assert_greater_equal(value, tf.cast(lo, value.dtype) - 1e-3,
                                                            message=f"input '{name}': values below {lo}"))
            checks.append(tf.debugging.assert_less_equal(value, tf.cast(hi, value.dtype) + 1e-3,
                                                         message=f"input '{name}': values above {hi}"))
    return checks


def _serving_function(fn, specs: dict):
    names = list(specs)

    @tf.function(input_signature=[specs[n] for n in names])
    def serve(*args):
        kwargs = dict(zip(names, args))
        with tf.control_dependencies(_validate(kwargs, specs)):
            kwargs = {k: tf.identity(v) for k, v in kwargs.items()}
        return fn(**kwargs)

    return serve


class ServingModule(tf.Module):
    """Holds the model's variables and one `tf.function` per signature."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.functions = {name: _serving_function(fn, specs) for name, (fn, specs) in model.signatures().items()}

    def signature_map(self) -> dict:
        out = {name: f.get_concrete_function() for name, f in self.functions.items()}
        out["serving_default"] = out[self.model.DEFAULT_SIGNATURE]
        return out


def export(model, export_dir: str, name: str, version: int = 1, overwrite: bool = False,
           metadata: dict | None = None, warmup_inputs: dict | None = None) -> str:
    """Writes `<export_dir>/<name>/<version>/` and returns its path.

    Args:
      model: an `AttributeTransferModel`.
      export_dir: the model base path TF Serving watches is `<export_dir>/<name>`.
      name: the served model name.
      version: positive integer version directory.
      overwrite: replace an existing version (otherwise an error names it).
      metadata: extra JSON written to `assets.extra/tfattr.json` (schema, configs).
      warmup_inputs: signature name -> dict of numpy inputs, written as TF Serving warm-up requests.

    Raises:
      FileExistsError: the version exists and overwrite is False.
    """
    if int(version) <= 0:
        raise ValueError(f"export version must be a positive integer, got {version}")
    base = os.path.join(export_dir, name)
    final = os.path.join(base, str(int(version)))
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(f"export {final} exists; choose another --export_version or pass --overwrite")
    os.makedirs(base, exist_ok=True)
    tmp = os.path.join(base, f".tmp-{int(version)}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    module = ServingModule(model)
    tf.saved_model.save(module, tmp, signatures=module.signature_map())
    extra = os.path.join(tmp, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    meta = {"model": type(model).__module__.rsplit(".", 1)[-1], "image_size": model.image_size,
            "schema": model.schema.to_json(), "default_signature": model.DEFAULT_SIGNATURE,
            "signatures": sorted(module.functions), **(metadata or {})}
    with open(os.path.join(extra, METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True, default=str)
    if warmup_inputs:
        from tfattr.export import warmup

        warmup.write(os.path.join(extra, warmup.WARMUP_FILE), name, warmup_inputs)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def example_inputs(model, batch_size: int = 2, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Valid random inputs for every signature (used for warm-up records and round-trip checks)."""
    rng = np.random.default_rng(seed)
    out = {}
    for sig, (_, specs) in model.signatures().items():
        inputs = {}
        for name, spec in specs.items():
            shape = [batch_size if d is None else d for d in spec.shape]
            if "image" in name:
                inputs[name] = rng.uniform(-1, 1, shape).astype(np.float32)
            elif name in UNIT_RANGE_INPUTS:
                inputs[name] = rng.integers(0, 2, shape).astype(np.float32) if "attributes" in name else \
                    rng.uniform(0, 1, shape).astype(np.float32)
            else:
                inputs[name] = rng.normal(0, 1, shape).astype(np.float32)
        out[sig] = inputs
    return out


def load(path: str):
    return tf.saved_model.load(path)


def read_metadata(path: str) -> dict:
    with open(os.path.join(path, "assets.extra", METADATA_FILE)) as f:
        return json.load(f)


def verify(path: str, model, batch_size: int = 2, atol: float = 1e-4) -> dict[str, float]:
    """Reloads `path` and runs every signature against the eager model on the same inputs.

    Returns:
      signature name -> max absolute difference over its outputs.

    Raises:
      AssertionError: a difference above `atol`, naming the signature and output.
    """
    loaded = load(path)
    errors = {}
    for sig, inputs in example_inputs(model, batch_size).items():
        fn, _ = model.signatures()[sig]
        eager = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        served = loaded.signatures[sig](**{k: tf.constant(v) for k, v in inputs.items()})
        worst = 0.0
        for key, value in eager.items():
            diff = float(np.max(np.abs(value.numpy() - served[key].numpy())))
            if diff > atol:
                raise AssertionError(f"signature {sig!r} output {key!r} differs from the eager model by {diff}")
            worst = max(worst, diff)
        errors[sig] = worst
    return errors
