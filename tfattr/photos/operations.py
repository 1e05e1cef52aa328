"""Model-agnostic dispatch of a model's operations (its export signatures) on face crops.

A run directory (checkpoint) and an exported SavedModel expose the same named signatures (see
`AttributeTransferModel.signatures`), so an operation is chosen by signature name and its inputs
are filled by *role*, read from the input names and shapes, never from the model name:

  * images `[None, S, S, 3]`: the source face goes to the first of `SOURCE_INPUTS` present,
    every other image input gets the reference face (reference, guide, second endpoint);
  * `[None, None, S, S, 3]` image stacks (e.g. "reference_images"): the reference face, one deep;
  * "swap_attributes" `[None, k]`: 1 for the `--attributes` names (all when none is given); the k
    columns are the schema's attributes, plus a trailing "rest" when k = attributes + 1;
  * "target_attributes" `[None, A]`: the schema's multi-hot encoding of `--attributes name=value`;
  * "alpha": the `--alpha` weight (per example, or per reference for `[None, None]`).

Outputs: the first image-shaped output (`[B, S, S, 3]`, in [-1, 1]) is the edited face; a
`[B, S, S, 1]` output in [0, 1] (e.g. "mask") is a mask. A new model therefore works with the CLI
as soon as its signatures follow these names.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

SOURCE_INPUTS = ("source_image", "image", "image_a", "image_b")
IMAGE_OUTPUTS = ("translated_image", "image", "reconstructed_image")
REST = "rest"


class OperationError(ValueError):
    """An operation that does not exist or cannot run with the given flags."""


@dataclasses.dataclass
class Request:
    """What the user asked for, independent of the model."""

    attributes: tuple[str, ...] = ()  # names (swap) or name=value (label edit)
    alpha: float = 1.0
    has_reference: bool = False


class Engine:
    """A model from a run directory or a SavedModel version directory.

    Attributes:
      image_size, schema, dataset, model_name, default_signature.
      specs: signature name -> {input name: (shape tuple with None, dtype)}.
    """

    def __init__(self, model_dir: str):
        from tfattr.data.attributes import Schema

        self.model_dir = model_dir
        if os.path.exists(os.path.join(model_dir, "config.json")):
            from tfattr.training import loop

            model, self.step, meta = loop.load_model_from_run(model_dir)
            self._model, self._loaded = model, None
            self.schema, self.image_size = model.schema, model.image_size
            self.dataset, self.model_name = meta["train"].get("dataset"), meta["train"]["model"]
            self.default_signature = model.DEFAULT_SIGNATURE
            sigs = model.signatures()
            self._fns = {name: fn for name, (fn, _) in sigs.items()}
            self.specs = {name: {k: (tuple(s.shape.as_list()), s.dtype) for k, s in specs.items()}
                          for name, (_, specs) in sigs.items()}
        elif os.path.exists(os.path.join(model_dir, "saved_model.pb")):
            from tfattr.export import saved_model

            meta = saved_model.read_metadata(model_dir)
            self._loaded = saved_model.load(model_dir)
            self._model = None
            self.schema = Schema.from_json(meta["schema"])
            self.image_size = int(meta["image_size"])
            self.dataset = (meta.get("train") or {}).get("dataset")
            self.model_name = meta.get("model")
            self.step = meta.get("step")
            self.default_signature = meta.get("default_signature", "serving_default")
            self._fns = {name: self._loaded.signatures[name] for name in meta["signatures"]}
            self.specs = {}
            for name, fn in self._fns.items():
                kwargs = fn.structured_input_signature[1]
                self.specs[name] = {k: (tuple(s.shape.as_list()), s.dtype) for k, s in kwargs.items()}
        else:
            raise FileNotFoundError(f"--model_dir {model_dir!r} is neither a training run directory (config.json) "
                                    "nor a SavedModel version directory (saved_model.pb)")

    @classmethod
    def from_model(cls, model, dataset: str | None = "synthetic") -> "Engine":
        """An engine over an in-memory `AttributeTransferModel` (notebooks, tests)."""
        engine = cls.__new__(cls)
        engine.model_dir, engine.step, engine._model, engine._loaded = None, None, model, None
        engine.schema, engine.image_size = model.schema, model.image_size
        engine.dataset, engine.model_name = dataset, type(model).__module__.rsplit(".", 1)[-1]
        engine.default_signature = model.DEFAULT_SIGNATURE
        sigs = model.signatures()
        engine._fns = {name: fn for name, (fn, _) in sigs.items()}
        engine.specs = {name: {k: (tuple(s.shape.as_list()), s.dtype) for k, s in specs.items()}
                        for name, (_, specs) in sigs.items()}
        return engine

    # ---- roles ----------------------------------------------------------------------------------
    def _image_inputs(self, name):
        s = self.image_size
        return [k for k, (shape, _) in self.specs[name].items() if shape[1:] == (s, s, 3)]

    def source_input(self, name) -> str | None:
        images = self._image_inputs(name)
        for k in SOURCE_INPUTS:
            if k in images:
                return k
        return images[0] if images else None

    def needs_reference(self, name) -> bool:
        specs = self.specs[name]
        src = self.source_input(name)
        return any(k != src for k in self._image_inputs(name)) or any(len(shape) == 5 for shape, _ in specs.values())

    def output_shapes(self, name: str) -> dict[str, tuple]:
        """Output name -> static shape (traced once for in-memory models)."""
        cache = self.__dict__.setdefault("_output_shapes", {})
        if name not in cache:
            import tensorflow as tf

            fn = self._fns[name]
            if hasattr(fn, "structured_outputs"):
                outs = fn.structured_outputs
            else:
                specs = {k: tf.TensorSpec(shape, dtype) for k, (shape, dtype) in self.specs[name].items()}
                outs = tf.function(fn).get_concrete_function(**specs).structured_outputs
            cache[name] = {k: tuple(v.shape.as_list()) for k, v in outs.items()}
        return cache[name]

    def _returns_face(self, name: str) -> bool:
        s = self.image_size
        return any(shape[1:] in ((s, s, 3), (s, s, 1)) for shape in self.output_shapes(name).values())

    def photo_operations(self) -> list[str]:
        """Signatures this module can run on photos (face image in, face image or mask out)."""
        out = []
        for name, specs in self.specs.items():
            if self.source_input(name) is None or not self._returns_face(name):
                continue
            if all(self._role(k, shape) is not None for k, (shape, _) in specs.items()):
                out.append(name)
        return sorted(out)

    def _role(self, key, shape):
        s = self.image_size
        if shape[1:] == (s, s, 3) or (len(shape) == 5 and shape[2:] == (s, s, 3)):
            return "image"
        if key == "swap_attributes" or key == "target_attributes":
            return key
        if key == "alpha":
            return "alpha"
        return None

    def swap_columns(self, k: int) -> list[str]:
        names = list(self.schema.names)
        if k == len(names):
            return names
        if k == len(names) + 1:
            return names + [REST]
        raise OperationError(f"swap_attributes has {k} columns but the schema has {len(names)} attributes")

    def _swap_row(self, k, attributes):
        cols = self.swap_columns(k)
        if not attributes:
            return np.ones([k], np.float32)
        row = np.zeros([k], np.float32)
        for a in attributes:
            if "=" in a:
                raise OperationError(f"--attributes {a!r}: a swap takes attribute names, not name=value")
            if a not in cols:
                raise OperationError(f"--attributes: unknown attribute {a!r}; valid names: {', '.join(cols)}")
            row[cols.index(a)] = 1.0
        return row

    def _target_row(self, attributes):
        """Multi-hot target; attributes not named take their first value ("no" / first category)."""
        labels = np.zeros([len(self.schema)], np.int64)
        for a in attributes:
            if "=" not in a:
                raise OperationError(f"--attributes {a!r}: a label edit takes name=value (e.g. Eyeglasses=yes)")
            name, value = a.split("=", 1)
            labels[self.schema.index(name)] = self.schema[name].value_index(value)
        return np.asarray(self.schema.encode(labels[None]), np.float32)[0]

    # ---- running --------------------------------------------------------------------------------
    def inputs(self, name: str, source: np.ndarray, reference: np.ndarray | None, request: Request) -> dict:
        """Named float32 inputs for signature `name` from `[B, S, S, 3]` crops in [-1, 1]."""
        if name not in self.specs:
            raise OperationError(f"unknown --operation {name!r}; operations for photos: "
                                 f"{', '.join(self.photo_operations())}")
        if name not in self.photo_operations():
            raise OperationError(f"--operation {name!r} does not take and return face images; operations for "
                                 f"photos: {', '.join(self.photo_operations())}")
        b = source.shape[0]
        if self.needs_reference(name) and reference is None:
            free = [op for op in self.photo_operations() if not self.needs_reference(op)]
            raise OperationError(f"--operation {name!r} needs --reference (a photo with a face); operations without "
                                 f"a reference: {', '.join(free) or 'none'}")
        src_key = self.source_input(name)
        out = {}
        for key, (shape, _) in self.specs[name].items():
            role = self._role(key, shape)
            if role == "image" and len(shape) == 5:
                out[key] = reference[:, None]
            elif role == "image":
                out[key] = source if key == src_key else reference
            elif role == "swap_attributes":
                out[key] = np.tile(self._swap_row(shape[1], request.attributes), [b, 1])
            elif role == "target_attributes":
                out[key] = np.tile(self._target_row(request.attributes), [b, 1])
            elif role == "alpha":
                out[key] = np.full([b] + [1] * (len(shape) - 1), request.alpha, np.float32)
        return {k: np.asarray(v, np.float32) for k, v in out.items()}

    def run(self, name: str, inputs: dict) -> dict[str, np.ndarray]:
        import tensorflow as tf

        result = self._fns[name](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: np.asarray(v) for k, v in result.items()}

    def edit(self, name: str, source: np.ndarray, reference: np.ndarray | None, request: Request):
        """(edited images `[B, S, S, 3]` in [-1, 1] or None, mask `[B, S, S, 1]` in [0, 1] or None)."""
        outputs = self.run(name, self.inputs(name, source, reference, request))
        s = self.image_size
        image = mask = None
        for key in IMAGE_OUTPUTS + tuple(sorted(outputs)):
            v = outputs.get(key)
            if image is None and v is not None and v.shape[1:] == (s, s, 3):
                image = v
        for key in ("mask",) + tuple(sorted(outputs)):
            v = outputs.get(key)
            if mask is None and v is not None and v.shape[1:] == (s, s, 1):
                mask = v
        if image is None and mask is None:
            raise OperationError(f"operation {name!r} returned no image or mask (outputs: {sorted(outputs)})")
        return image, mask
