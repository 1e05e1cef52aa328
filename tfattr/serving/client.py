"""gRPC client for TF Serving (`tensorflow_model_server`) and the dev server (`tfattr.serving.server`).

    client = PredictionClient("localhost:8500", timeout_s=10)
    out = client.predict("latent_swap", "swap", {"source_image": a, "reference_image": b,
                                                 "swap_attributes": np.array([[1, 0, 1]], np.float32)})
    out["translated_image"]  # float32 [N, H, W, 3] in [-1, 1]

Every RPC carries a deadline (`timeout_s`) and an explicit signature name. Retries, with exponential
backoff and jitter, happen only on UNAVAILABLE: the request never reached a model (server
restarting, connection refused), so repeating it is safe and cheap. DEADLINE_EXCEEDED is NOT
retried by default: the server may still be computing the timed-out request, and re-sending it to
an overloaded server multiplies its load (pass `retry_on=(UNAVAILABLE, DEADLINE_EXCEEDED)` for
idempotent, cheap calls if you want that). All other errors (INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ...) are the caller's to fix and are raised at once as
`grpc.RpcError` with the server's code and message.
"""

from __future__ import annotations

import random
import time
from typing import Mapping

import numpy as np

from tfattr.serving import request_lib

DEFAULT_TARGET = "localhost:8500"
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20


def _grpc():
    try:
        import grpc
        from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                             prediction_service_pb2_grpc)
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("the client needs grpcio and tensorflow-serving-api: "
                          "pip install grpcio tensorflow-serving-api") from e
    return grpc, get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc


def signatures_from_metadata(response) -> dict[str, dict]:
    """`GetModelMetadataResponse` -> {signature: {"inputs"|"outputs": {name: {"dtype", "shape"}}}}.

    Shapes use None for unknown dimensions; internal keys such as `__saved_model_init_op` are dropped.
    """
    import tensorflow as tf

    _, metadata_pb2, _, _, _ = _grpc()
    sig_map = metadata_pb2.SignatureDefMap()
    if not response.metadata["signature_def"].Unpack(sig_map):
        raise ValueError("GetModelMetadata response holds no SignatureDefMap")

    def tensors(infos):
        return {name: {"dtype": tf.dtypes.as_dtype(info.dtype).name,
                       "shape": None if info.tensor_shape.unknown_rank else
                       [d.size if d.size >= 0 else None for d in info.tensor_shape.dim]}
                for name, info in sorted(infos.items())}

    return {key: {"inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
            for key, sig in sorted(sig_map.signature_def.items()) if not key.startswith("__")}


class PredictionClient:
    """Predict / GetModelMetadata / GetModelStatus with deadlines and bounded retries.

    Args:
      target: "host:port" of the gRPC endpoint.
      timeout_s: deadline of every RPC attempt.
      retries: extra attempts after the first, on the codes in `retry_on` only.
      backoff_s: first retry delay; doubles per attempt, plus up to 100% random jitter.
      retry_on: status codes worth retrying (default: UNAVAILABLE only; see the module docstring).
      max_message_bytes: largest request/response this channel sends or accepts.
    """

    def __init__(self, target: str = DEFAULT_TARGET, timeout_s: float = 10.0, retries: int = 3,
                 backoff_s: float = 0.1, retry_on=None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        grpc, _, _, model_grpc, prediction_grpc = _grpc()
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.target, self.timeout_s, self.retries, self.backoff_s = target, timeout_s, retries, backoff_s
        self.retry_on = frozenset(retry_on if retry_on is not None else (grpc.StatusCode.UNAVAILABLE,))
        self._channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", max_message_bytes),
                                                               ("grpc.max_receive_message_length", max_message_bytes)])
        self._prediction = prediction_grpc.PredictionServiceStub(self._channel)
        self._model = model_grpc.ModelServiceStub(self._channel)
        self.retries_done = 0  # total retries over the client's life (load tests report it)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        grpc = _grpc()[0]
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as e:
                if e.code() not in self.retry_on or attempt == self.retries:
                    raise
                self.retries_done += 1
                delay = self.backoff_s * (2 ** attempt)
                time.sleep(delay + random.uniform(0, delay))

    def predict_response(self, model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray],
                         version: int | None = None, output_filter=None):
        """Returns the raw `PredictResponse` (its `model_spec.version` says which version answered)."""
        request = request_lib.build_predict_request(inputs, model_name, signature_name, version, output_filter)
        return self._call(self._prediction.Predict, request)

    def predict(self, model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray],
                version: int | None = None, output_filter=None) -> dict[str, np.ndarray]:
        """Output name -> numpy array. uint8 images are sent as float32 in [-1, 1] (request_lib)."""
        return request_lib.parse_predict_response(
            self.predict_response(model_name, signature_name, inputs, version, output_filter))

    def predict_batched(self, model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray],
                        batch_size: int = 16, version: int | None = None) -> dict[str, np.ndarray]:
        """Like `predict` for N examples sent as ceil(N / batch_size) requests; outputs are concatenated.

        Keeps each request under the message limit and the server's per-request latency bounded. Chunks
        go one after another; pin `version` if all chunks must come from one model version during a
        hot swap.
        """
        parts = [self.predict(model_name, signature_name, chunk, version)
                 for chunk in request_lib.split_batch(inputs, batch_size)]
        return {key: np.concatenate([p[key] for p in parts], axis=0) for key in parts[0]}

    def metadata(self, model_name: str, version: int | None = None) -> dict:
        """{"name", "version", "signatures": {sig: {"inputs": {...}, "outputs": {...}}}} via GetModelMetadata."""
        _, metadata_pb2, _, _, _ = _grpc()
        request = metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = int(version)
        response = self._call(self._prediction.GetModelMetadata, request)
        return {"name": response.model_spec.name, "version": int(response.model_spec.version.value),
                "signatures": signatures_from_metadata(response)}

    def status(self, model_name: str) -> dict[int, str]:
        """Version -> state name ("AVAILABLE", "END", ...) via ModelService.GetModelStatus."""
        _, _, status_pb2, _, _ = _grpc()
        request = status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        response = self._call(self._model.GetModelStatus, request)
        return {int(s.version): status_pb2.ModelVersionStatus.State.Name(s.state)
                for s in response.model_version_status}
