"""Build TF Serving `PredictRequest`s from numpy arrays and parse `PredictResponse`s back.

Pure proto work, no network: unit-tested without a server. Conventions follow the export
(`tfattr/export/saved_model.py`): every signature input is float32, and inputs whose name contains
"image" are `[N, H, W, 3]` in [-1, 1].
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def _apis():
    try:
        import tensorflow as tf
        from tensorflow_serving.apis import model_pb2, predict_pb2
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("tfattr.serving needs tensorflow-serving-api: pip install tensorflow-serving-api") from e
    return tf, model_pb2, predict_pb2


def to_model_input(name: str, value) -> np.ndarray:
    """Converts one input to what the exported signatures take.

    Args:
      name: the signature input name; names containing "image" are images.
      value: array-like. uint8 images `[N, H, W, 3]` in [0, 255] become float32 in [-1, 1]
        (x / 127.5 - 1, the inverse of the training pipeline's range); float64 becomes float32
        (numpy's default float type, never what a signature wants). Other dtypes pass unchanged,
        so the server, not this function, reports a wrong dtype.

    Returns:
      A C-contiguous numpy array.
    """
    array = np.asarray(value)
    if array.dtype == np.uint8 and "image" in name:
        array = array.astype(np.float32) / 127.5 - 1.0
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


def build_predict_request(inputs: Mapping[str, np.ndarray], model_name: str, signature_name: str,
                          version: int | None = None, output_filter=None):
    """Returns a `tensorflow.serving.PredictRequest`.

    Args:
      inputs: signature input name -> array (see `to_model_input` for the conversions applied).
      model_name: the served model name (`model_spec.name`).
      signature_name: always explicit (`serving_default` is only an alias of one signature).
      version: pin a model version; None lets the server pick its latest loaded version.
      output_filter: optional output names to return (default: all outputs of the signature).

    Raises:
      ValueError: empty `inputs`, or an empty model or signature name.
    """
    tf, model_pb2, predict_pb2 = _apis()
    if not model_name:
        raise ValueError("build_predict_request: model_name is required")
    if not signature_name:
        raise ValueError("build_predict_request: signature_name is required (pass it explicitly, e.g. 'swap')")
    if not inputs:
        raise ValueError("build_predict_request: no inputs given")
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    if version is not None:
        if int(version) <= 0:
            raise ValueError(f"build_predict_request: version must be a positive integer, got {version}")
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(to_model_input(key, value)))
    if output_filter:
        request.output_filter.extend(output_filter)
    return request


def parse_predict_response(response) -> dict[str, np.ndarray]:
    """`PredictResponse` -> output name -> numpy array (works for `tensor_content` and `*_val` encodings)."""
    tf, _, _ = _apis()
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def response_version(response) -> int | None:
    """The model version that answered, or None when the server did not say."""
    return int(response.model_spec.version.value) if response.model_spec.HasField("version") else None


def split_batch(inputs: Mapping[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
    """Splits every input along axis 0 into chunks of at most `batch_size` rows.

    Raises:
      ValueError: inputs with different batch sizes, or batch_size < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    sizes = {k: v.shape[0] if v.ndim else None for k, v in arrays.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(f"inputs need one shared batch dimension, got {sizes}")
    n = next(iter(sizes.values()))
    return [{k: v[i:i + batch_size] for k, v in arrays.items()} for i in range(0, n, batch_size)]
