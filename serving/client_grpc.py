"""Command-line gRPC client: translate one image through a served model and write a PNG.

    python serving/client_grpc.py --server=localhost:8500 --model=latent_swap --signature=swap \
        --image=a.png --reference=b.png --swap_attributes=1,0,1 --output=out.png

Works against `tensorflow_model_server` and the dev server (`python -m tfattr.serving.server`).
Image size and input names come from GetModelMetadata; images are resized to the model size and
sent as uint8 (request_lib converts them to float32 in [-1, 1]).

`swap_attributes` is a `[k]` vector in the model's attribute order, which is stored in the export's
`assets.extra/tfattr.json` ("schema") and is not visible over gRPC. Give either the vector itself
(`--swap_attributes=1,0,1`) or names plus that order
(`--attributes=Eyeglasses,Smiling --attribute_order=Eyeglasses,Hair_Color,Smiling`).
"""

from __future__ import annotations

import numpy as np


def attribute_vector(swap_attributes=None, attributes=None, attribute_order=None) -> np.ndarray:
    """`[k]` float32 vector from "1,0,1" or from names and the model's attribute order.

    Raises:
      ValueError: neither or both forms given, or a name missing from the order (the error lists it).
    """
    if bool(swap_attributes) == bool(attributes):
        raise ValueError("give exactly one of --swap_attributes=1,0,1 or --attributes=names (with --attribute_order)")
    if swap_attributes:
        return np.array([float(v) for v in swap_attributes], np.float32)
    if not attribute_order:
        raise ValueError("--attributes needs --attribute_order (the 'schema' names in the export's "
                         "assets.extra/tfattr.json)")
    unknown = [a for a in attributes if a not in attribute_order]
    if unknown:
        raise ValueError(f"unknown attributes {unknown}; the model's order is {list(attribute_order)}")
    return np.array([1.0 if a in attributes else 0.0 for a in attribute_order], np.float32)


def read_image(path: str, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), np.uint8)


def write_image(path: str, image: np.ndarray):
    from PIL import Image

    Image.fromarray(np.clip((image + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)).save(path)


def run(client, model: str, signature: str, image: str, reference: str | None = None,
        swap: np.ndarray | None = None, alpha: float = 0.5, output: str | None = None) -> dict[str, np.ndarray]:
    """Fills the signature's inputs by name from the arguments, calls it, writes the first image output."""
    meta = client.metadata(model)
    if signature not in meta["signatures"]:
        raise ValueError(f"model {model!r} has no signature {signature!r}; it has {sorted(meta['signatures'])}")
    specs = meta["signatures"][signature]["inputs"]
    inputs = {}
    for name, spec in specs.items():
        if name in ("image", "source_image"):
            inputs[name] = read_image(image, spec["shape"][1])[None]
        elif name == "reference_image":
            if not reference:
                raise ValueError(f"signature {signature!r} needs --reference")
            inputs[name] = read_image(reference, spec["shape"][1])[None]
        elif name in ("swap_attributes", "target_attributes"):
            if swap is None or len(swap) != spec["shape"][1]:
                raise ValueError(f"{name} needs {spec['shape'][1]} values, got {None if swap is None else list(swap)}")
            inputs[name] = swap[None]
        elif name == "alpha":
            inputs[name] = np.array([alpha], np.float32)
        else:
            raise ValueError(f"this CLI cannot fill input {name!r} of {signature!r}; use tfattr.serving.client")
    outputs = client.predict(model, signature, inputs)
    if output:
        images = [v for v in outputs.values() if v.ndim == 4 and v.shape[-1] == 3]
        if images:
            write_image(output, images[0][0])
        else:
            np.save(output, next(iter(outputs.values())))
    return outputs


def main(argv):
    del argv
    from absl import flags

    from tfattr.serving.client import PredictionClient

    FLAGS = flags.FLAGS
    swap = None
    if FLAGS.swap_attributes or FLAGS.attributes:
        swap = attribute_vector(FLAGS.swap_attributes, FLAGS.attributes, FLAGS.attribute_order)
    with PredictionClient(FLAGS.server, timeout_s=FLAGS.timeout_s, retries=FLAGS.retries) as client:
        outputs = run(client, FLAGS.model, FLAGS.signature, FLAGS.image, FLAGS.reference, swap, FLAGS.alpha,
                      FLAGS.output)
    for key, value in outputs.items():
        print(f"{key}: {value.dtype} {list(value.shape)}")
    if FLAGS.output:
        print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    import os
    import sys

    from absl import app, flags

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tfattr from a checkout

    flags.DEFINE_string("server", "localhost:8500", "gRPC host:port of the model server.")
    flags.DEFINE_string("model", "latent_swap", "Served model name.")
    flags.DEFINE_string("signature", "swap", "Signature name (always explicit).")
    flags.DEFINE_float("timeout_s", 10.0, "Deadline of each RPC.")
    flags.DEFINE_integer("retries", 3, "Retries on UNAVAILABLE.")
    flags.DEFINE_string("image", None, "Source image (any size; resized to the model's).")
    flags.DEFINE_string("reference", None, "Reference image for swap/blend.")
    flags.DEFINE_list("swap_attributes", None, "Vector in the model's attribute order, e.g. 1,0,1.")
    flags.DEFINE_list("attributes", None, "Attribute names to swap (needs --attribute_order).")
    flags.DEFINE_list("attribute_order", None, "The model's attribute names in order (tfattr.json 'schema').")
    flags.DEFINE_float("alpha", 0.5, "Blend weight for the blend signature.")
    flags.DEFINE_string("output", None, "Output PNG (image outputs) or .npy.")
    flags.mark_flag_as_required("image")
    app.run(main)
