"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests`, a TFRecord file of
`PredictionLog` protos that the server replays before it marks the model available."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"


def write(path: str, model_name: str, inputs_by_signature: dict[str, dict[str, np.ndarray]]) -> int:
    """Writes one PredictRequest per signature; returns the count.

    Raises:
      ImportError: tensorflow-serving-api is not installed (pip install tensorflow-serving-api).
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("warm-up records need tensorflow-serving-api: pip install tensorflow-serving-api") from e
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in inputs_by_signature.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
            count += 1
    return count


def read(path: str) -> list:
    from tensorflow_serving.apis import prediction_log_pb2

    out = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        out.append(log)
    return out
