"""A small DEVELOPMENT server speaking TF Serving's gRPC API, for tests and local work.

Production serves exports with `tensorflow_model_server` (see serving/README.md). That binary cannot
be installed on the development machines, so this module stands in for it: it implements
`tensorflow.serving.PredictionService/{Predict,GetModelMetadata}` and
`tensorflow.serving.ModelService/GetModelStatus` over the same on-disk layout and model config, so
clients, warm-up records and exports are exercised exactly as the real server would see them. It
is not a production server: Python gRPC, no batching, no REST API, no metrics, no TLS.

    python -m tfattr.serving.server --port=8500 --model_config_file=serving/models.config
    python -m tfattr.serving.server --port=8500 --model_name=latent_swap --model_base_path=/models/latent_swap

Behaviour copied from TF Serving (status codes and message shapes follow its predict_util.cc):
  * `<base_path>/<version>/` with a positive integer version; other names (`.tmp-3-123`) are ignored.
    Version policy `latest` (default, `num_versions` 1), `specific` or `all`. A poller (every
    `file_system_poll_wait_seconds`) loads new versions, replays their
    `assets.extra/tf_serving_warmup_requests`, then swaps them in atomically; a request keeps the
    version it started with, and a retired version is unloaded when its last request finishes.
    A version that fails to load (or to warm up) is logged and the old one keeps serving.
  * Unknown model or version: NOT_FOUND ("Servable not found for request: Latest(name)").
  * Unknown signature name: FAILED_PRECONDITION ('Serving signature key "x" not found.'); TF
    Serving returns FAILED_PRECONDITION here, not INVALID_ARGUMENT or NOT_FOUND.
  * Missing/extra input names, wrong dtype, wrong shape, unparsable tensors and the exported
    graph's own validation errors (empty batch, NaN, values out of range): INVALID_ARGUMENT with a
    message naming the input. No silent dtype conversion (TF Serving does none either).
  * A request larger than `max_receive_message_length`: RESOURCE_EXHAUSTED from gRPC itself.
Differences from TF Serving: dtype and shape are checked before running the graph (TF Serving lets
the session fail, with the same code but a terser message); responses use `tensor_content`
(TF Serving fills `float_val`; `tf.make_ndarray` reads both); the default receive limit is 64 MiB
(TF Serving: 2 GiB); if every version directory disappears the last loaded version keeps serving
(TF Serving unloads it); `version_labels` are not supported.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import threading
import time
import types

import numpy as np
from absl import logging

DEFAULT_POLL_WAIT_S = 1.0
DEFAULT_MAX_RECEIVE_BYTES = 64 << 20
DEFAULT_MAX_WORKERS = 8
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's cap as well


@functools.cache
def _deps():
    try:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                             predict_pb2, prediction_service_pb2_grpc)
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("the dev server needs grpcio and tensorflow-serving-api: "
                          "pip install grpcio tensorflow-serving-api") from e
    return types.SimpleNamespace(
        grpc=grpc, tf=tf, get_model_metadata_pb2=get_model_metadata_pb2, get_model_status_pb2=get_model_status_pb2,
        model_service_pb2_grpc=model_service_pb2_grpc, predict_pb2=predict_pb2,
        prediction_service_pb2_grpc=prediction_service_pb2_grpc, model_server_config_pb2=model_server_config_pb2)


class ServingError(Exception):
    """An error with the gRPC status code the client will see."""

    def __init__(self, code, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------------------
# Config


def load_config(config_or_paths):
    """Returns a `ModelServerConfig` from any of the accepted forms.

    Args:
      config_or_paths: a `ModelServerConfig` proto; a path to a text-proto model config file
        (`serving/models.config`); a dict `{model_name: base_path}`; or a `(model_name, base_path)`
        pair. Relative base paths are made absolute against the working directory.

    Raises:
      ValueError: no models, repeated names, a platform other than "tensorflow", a missing name or
        base path, or a `custom_model_config`.
    """
    d = _deps()
    from google.protobuf import text_format

    pb = d.model_server_config_pb2
    if isinstance(config_or_paths, pb.ModelServerConfig):
        config = pb.ModelServerConfig()
        config.CopyFrom(config_or_paths)
    elif isinstance(config_or_paths, (str, os.PathLike)):
        with open(config_or_paths) as f:
            config = text_format.Parse(f.read(), pb.ModelServerConfig())
    else:
        pairs = config_or_paths.items() if isinstance(config_or_paths, dict) else [tuple(config_or_paths)]
        config = pb.ModelServerConfig()
        for name, base_path in pairs:
            config.model_config_list.config.add(name=name, base_path=str(base_path), model_platform="tensorflow")
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("model config: only model_config_list is supported (no custom_model_config)")
    names = [c.name for c in config.model_config_list.config]
    if not names:
        raise ValueError("model config lists no models")
    if len(set(names)) != len(names):
        raise ValueError(f"model config repeats model names: {names}")
    for c in config.model_config_list.config:
        if not c.name or not c.base_path:
            raise ValueError(f"model config entry needs name and base_path: {text_format.MessageToString(c)!r}")
        if c.model_platform != "tensorflow":
            raise ValueError(f"model {c.name!r}: model_platform must be \"tensorflow\", got {c.model_platform!r}")
        c.base_path = os.path.abspath(c.base_path)
    return config


def list_versions(base_path: str) -> dict[int, str]:
    """Version -> path for every `<base_path>/<positive integer>/` directory (TF Serving's rule)."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return {}
    out = {}
    for name in names:
        if not name.isdigit() or int(name) <= 0:
            continue  # e.g. ".tmp-3-123" written by export before its atomic rename
        path = os.path.join(base_path, name)
        if os.path.isdir(path):
            out[int(name)] = path
    return out


def _wanted_versions(policy, available: dict[int, str]) -> set[int]:
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(available)
    if kind == "specific":
        return set(policy.specific.versions) & set(available)
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
    return set(sorted(available)[-n:])


# --------------------------------------------------------------------------------------------
# Loaded versions


class Servable:
    """One loaded version of one model. Requests hold it through `ModelManager.acquire`."""

    def __init__(self, name: str, version: int, path: str):
        d = _deps()
        from tensorflow.core.protobuf import saved_model_pb2

        self.name, self.version, self.path = name, version, path
        self._loaded = d.tf.saved_model.load(path)
        self.functions = dict(self._loaded.signatures)
        self.input_specs = {k: dict(f.structured_input_signature[1]) for k, f in self.functions.items()}
        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
        self.signature_defs = saved.meta_graphs[0].signature_def
        self.refs = 0
        self.retired = False

    def unload(self):
        self.functions = None
        self._loaded = None

    def warm_up(self, predict_fn) -> int:
        """Replays `assets.extra/tf_serving_warmup_requests`; any failure fails the load, like TF Serving."""
        d = _deps()
        from tensorflow_serving.apis import prediction_log_pb2

        path = os.path.join(self.path, "assets.extra", WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        count = 0
        for record in d.tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                continue
            predict_fn(self, log.predict_log.request)
            count += 1
        return count


@dataclasses.dataclass
class _Model:
    config: object
    versions: dict = dataclasses.field(default_factory=dict)  # version -> Servable, serving now
    states: dict = dataclasses.field(default_factory=dict)  # version -> (state name, error message)
    failed: dict = dataclasses.field(default_factory=dict)  # version -> directory mtime of the failed load


class ModelManager:
    """Loads, hot-swaps and reference-counts model versions; thread-safe.

    Args:
      config: anything `load_config` accepts.
      poll_wait_s: seconds between file-system polls (TF Serving's `--file_system_poll_wait_seconds`);
        0 or less disables the poller (call `poll_once` yourself).
      warmup: replay each version's warm-up records before serving it.
    """

    def __init__(self, config, poll_wait_s: float = DEFAULT_POLL_WAIT_S, warmup: bool = True):
        self.config = load_config(config)
        self.poll_wait_s = poll_wait_s
        self.warmup = warmup
        self._models = {c.name: _Model(c) for c in self.config.model_config_list.config}
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> "ModelManager":
        """Loads the initial versions (blocking, as TF Serving does before it listens), starts the poller."""
        self.poll_once()
        for name, model in self._models.items():
            if not model.versions:
                logging.warning("model %s: no servable version under %s yet; polling", name, model.config.base_path)
        if self.poll_wait_s > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="tfattr-serving-poller", daemon=True)
            self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _poll_loop(self):
        while not self._stop.wait(self.poll_wait_s):
            try:
                self.poll_once()
            except Exception:  # the poller must survive anything a file system can do
                logging.exception("model poll failed")

    def poll_once(self):
        with self._sync_lock:
            for model in self._models.values():
                self._sync(model)

    def _sync(self, model: _Model):
        name = model.config.name
        available = list_versions(model.config.base_path)
        wanted = _wanted_versions(model.config.model_version_policy, available)
        if not wanted:
            return  # keep serving what is loaded (TF Serving would unload it)
        loaded = {}
        for version in sorted(wanted - set(model.versions), reverse=True):
            mtime = os.stat(available[version]).st_mtime
            if model.failed.get(version) == mtime:
                continue  # same broken directory: do not reload it every poll
            model.states[version] = ("LOADING", "")
            start = time.perf_counter()
            try:
                servable = Servable(name, version, available[version])
                warmed = servable.warm_up(run_predict) if self.warmup else 0
            except Exception as e:
                model.failed[version] = mtime
                model.states[version] = ("END", f"{type(e).__name__}: {e}")
                logging.error("model %s version %d failed to load from %s: %s", name, version, available[version], e)
                continue
            model.failed.pop(version, None)
            loaded[version] = servable
            logging.info("model %s version %d loaded in %.2f s (%d warm-up requests)", name, version,
                         time.perf_counter() - start, warmed)
        with self._lock:
            serving = {v: s for v, s in model.versions.items() if v in wanted}
            serving.update(loaded)
            if set(serving) == wanted:  # availability preserving: retire old versions only once all new ones serve
                retired = [s for v, s in model.versions.items() if v not in wanted]
            else:
                serving.update(model.versions)
                retired = []
            model.versions = serving
            for version in loaded:
                model.states[version] = ("AVAILABLE", "")
            for servable in retired:
                servable.retired = True
                model.states[servable.version] = ("UNLOADING", "")
                if servable.refs == 0:
                    self._unload(model, servable)
        for servable in retired:
            logging.info("model %s version %d retired (in-flight requests: %d)", name, servable.version, servable.refs)

    def _unload(self, model: _Model, servable: Servable):  # holds self._lock
        servable.unload()
        model.states[servable.version] = ("END", "")

    @contextlib.contextmanager
    def acquire(self, name: str, version: int | None = None):
        """Yields the `Servable` for `name` (its latest version, or `version`), held until the block ends.

        Raises:
          ServingError: NOT_FOUND for an unknown model or a version that is not loaded.
        """
        grpc = _deps().grpc
        with self._lock:
            model = self._models.get(name)
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            servable = None
            if model is not None and model.versions:
                servable = model.versions.get(version if version is not None else max(model.versions))
            if servable is None:
                loaded = sorted(model.versions) if model is not None else []
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}"
                                   + ("" if model is not None else f"; served models: {sorted(self._models)}")
                                   + (f"; loaded versions: {loaded}" if model is not None else ""))
            servable.refs += 1
        try:
            yield servable
        finally:
            with self._lock:
                servable.refs -= 1
                if servable.retired and servable.refs == 0 and servable.functions is not None:
                    self._unload(self._models[name], servable)

    def loaded_versions(self, name: str) -> list[int]:
        with self._lock:
            return sorted(self._models[name].versions)

    def status(self, name: str) -> dict[int, tuple[str, str]]:
        """Version -> (state, error message); states are TF Serving's LOADING/AVAILABLE/UNLOADING/END."""
        with self._lock:
            if name not in self._models:
                raise ServingError(_deps().grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
            return dict(self._models[name].states)

    def wait_for_version(self, name: str, version: int, timeout_s: float = 30.0):
        """Blocks until `version` of `name` serves unpinned requests; raises TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            versions = self.loaded_versions(name)
            if versions and max(versions) == version:
                return
            time.sleep(0.02)
        raise TimeoutError(f"model {name} version {version} not served after {timeout_s} s")


# --------------------------------------------------------------------------------------------
# Request handling


def _invalid(message: str):
    return ServingError(_deps().grpc.StatusCode.INVALID_ARGUMENT, message)


def _shape_text(shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def parse_input(name: str, proto, spec) -> np.ndarray:
    """TensorProto -> numpy after checking dtype, shape and byte count against `spec`.

    Raises:
      ServingError: INVALID_ARGUMENT naming the input.
    """
    tf = _deps().tf
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise _invalid(f"tensor parsing error: input '{name}' has an invalid dtype enum {proto.dtype}") from None
    if dtype != spec.dtype:
        raise _invalid(f"input '{name}': expected dtype {spec.dtype.name}, got {dtype.name}")
    if proto.tensor_shape.unknown_rank:
        raise _invalid(f"tensor parsing error: input '{name}' has unknown rank")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(s < 0 for s in shape):
        raise _invalid(f"tensor parsing error: input '{name}' has a negative dimension in {shape}")
    if not spec.shape.is_compatible_with(shape):
        raise _invalid(f"input '{name}': expected shape {_shape_text(spec.shape.as_list())}, got {_shape_text(shape)}")
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.size
    if proto.tensor_content and len(proto.tensor_content) != needed:
        raise _invalid(f"tensor parsing error: input '{name}': tensor_content has {len(proto.tensor_content)} bytes, "
                       f"shape {_shape_text(shape)} {dtype.name} needs {needed}")
    try:
        array = tf.make_ndarray(proto)
    except Exception as e:
        raise _invalid(f"tensor parsing error: input '{name}': {e}") from None
    if list(array.shape) != shape:
        raise _invalid(f"tensor parsing error: input '{name}': values do not fill shape {_shape_text(shape)}")
    return array


def _graph_error_message(error) -> str:
    # Keep the assertion text ("input 'x': values above 1 ..."); drop TF's node and stack details.
    lines = [ln.strip() for ln in str(error.message).replace("\\'", "'").splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(
        ("Graph execution error", "Detected at node", "[[", "File ", "<stack traces unavailable>"))]
    text = " ".join(useful) or str(error.message)
    return text[:2000]


def run_predict(servable: Servable, request):
    """Runs one `PredictRequest` on `servable`; returns a `PredictResponse`.

    Raises:
      ServingError: with the status code TF Serving would return.
    """
    d = _deps()
    tf, grpc = d.tf, d.grpc
    signature = request.model_spec.signature_name or "serving_default"
    fn = servable.functions.get(signature)
    if fn is None:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature}" not found. '
                           f"Signatures: {sorted(servable.functions)}")
    specs = servable.input_specs[signature]
    if set(request.inputs) != set(specs):
        raise _invalid(f"input size does not match signature '{signature}': sent {sorted(request.inputs)}, expected "
                       f"{sorted(specs)}. Sent extra: {sorted(set(request.inputs) - set(specs))}. "
                       f"Missing but required: {sorted(set(specs) - set(request.inputs))}.")
    outputs_wanted = list(request.output_filter)
    known_outputs = set(fn.structured_outputs)
    for alias in outputs_wanted:
        if alias not in known_outputs:
            raise _invalid(f"output tensor alias not found in signature: {alias}. Outputs: {sorted(known_outputs)}")
    tensors = {k: tf.constant(parse_input(k, request.inputs[k], specs[k])) for k in specs}
    try:
        outputs = fn(**tensors)
    except tf.errors.OpError as e:
        code = _grpc_codes().get(e.error_code, grpc.StatusCode.UNKNOWN)
        raise ServingError(code, _graph_error_message(e)) from None
    except (TypeError, ValueError) as e:  # the function rejected what the checks above let through
        raise _invalid(f"signature '{signature}': {e}") from None
    response = d.predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.signature_name = signature
    response.model_spec.version.value = servable.version
    for key in outputs_wanted or sorted(outputs):
        response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
    return response


@functools.cache
def _grpc_codes() -> dict:
    return {code.value[0]: code for code in _deps().grpc.StatusCode}  # TF and gRPC share the numbering


def _servicers(manager: ModelManager):
    d = _deps()
    grpc = d.grpc

    def handle(context, method, fn):
        try:
            return fn()
        except ServingError as e:
            logging.log_every_n(logging.INFO, "%s: %s %s", 100, method, e.code.name, e.message)
            context.abort(e.code, e.message)
        except Exception as e:  # never let one request take the server down
            logging.exception("%s failed", method)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

    def version_of(spec):
        if spec.WhichOneof("version_choice") == "version_label":
            raise _invalid(f"version_label is not supported by the dev server: {spec.version_label!r}")
        return spec.version.value if spec.HasField("version") else None

    class PredictionService(d.prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            def go():
                with manager.acquire(request.model_spec.name, version_of(request.model_spec)) as servable:
                    return run_predict(servable, request)
            return handle(context, "Predict", go)

        def GetModelMetadata(self, request, context):
            def go():
                fields = list(request.metadata_field)
                if not fields:
                    raise _invalid("GetModelMetadataRequest must specify at least one metadata_field")
                for field in fields:
                    if field != "signature_def":
                        raise _invalid(f"Metadata field {field} is not supported")
                with manager.acquire(request.model_spec.name, version_of(request.model_spec)) as servable:
                    response = d.get_model_metadata_pb2.GetModelMetadataResponse()
                    response.model_spec.name = servable.name
                    response.model_spec.version.value = servable.version
                    sig_map = d.get_model_metadata_pb2.SignatureDefMap()
                    for key, value in servable.signature_defs.items():
                        sig_map.signature_def[key].CopyFrom(value)
                    response.metadata["signature_def"].Pack(sig_map)
                    return response
            return handle(context, "GetModelMetadata", go)

    class ModelService(d.model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            def go():
                pb = d.get_model_status_pb2
                states = manager.status(request.model_spec.name)
                version = version_of(request.model_spec)
                if version is not None:
                    if version not in states:
                        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model "
                                           f"{request.model_spec.name}")
                    states = {version: states[version]}
                response = pb.GetModelStatusResponse()
                for v, (state, error) in sorted(states.items()):
                    status = response.model_version_status.add(
                        version=v, state=pb.ModelVersionStatus.State.Value(state))
                    if error:
                        status.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                        status.status.error_message = error
                return response
            return handle(context, "GetModelStatus", go)

    return PredictionService(), ModelService()


def start_server(config_or_paths, port: int = 0, host: str = "127.0.0.1",
                 poll_wait_s: float = DEFAULT_POLL_WAIT_S,
                 max_receive_message_length: int = DEFAULT_MAX_RECEIVE_BYTES,
                 max_workers: int = DEFAULT_MAX_WORKERS, warmup: bool = True):
    """Loads the models, then serves them on `host:port`.

    Args:
      config_or_paths: anything `load_config` accepts (config file path, proto, `{name: base_path}`).
      port: TCP port; 0 picks a free one.
      host: bind address; loopback by default (use "0.0.0.0" deliberately).
      poll_wait_s: seconds between version polls; <= 0 disables hot loading.
      max_receive_message_length: larger requests fail with RESOURCE_EXHAUSTED.
      max_workers: request threads.
      warmup: replay warm-up records before a version serves.

    Returns:
      `(server, bound_port, manager)`; stop with `server.stop(grace)` and `manager.stop()`.
    """
    d = _deps()
    manager = ModelManager(config_or_paths, poll_wait_s=poll_wait_s, warmup=warmup).start()
    server = d.grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=max_workers,
                                                                 thread_name_prefix="tfattr-serving"),
                           options=[("grpc.max_receive_message_length", int(max_receive_message_length)),
                                    ("grpc.max_send_message_length", -1),
                                    ("grpc.so_reuseport", 0)])
    prediction, model = _servicers(manager)
    d.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    d.model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        manager.stop()
        raise OSError(f"could not bind {host}:{port}")
    server.start()
    logging.info("tfattr dev server listening on %s:%d (models: %s)", host, bound,
                 ", ".join(c.name for c in manager.config.model_config_list.config))
    return server, bound, manager


# --------------------------------------------------------------------------------------------
# CLI (flags are defined only when run as a program, so importing this module defines none)


def _define_flags():
    from absl import flags

    flags.DEFINE_integer("port", 8500, "gRPC port (0 = pick a free one).")
    flags.DEFINE_string("host", "127.0.0.1", "Bind address. The dev server is for local use: loopback by default.")
    flags.DEFINE_string("model_config_file", None, "Text-proto ModelServerConfig (e.g. serving/models.config).")
    flags.DEFINE_string("model_name", None, "Single model name (with --model_base_path) instead of a config file.")
    flags.DEFINE_string("model_base_path", None, "Directory holding <version>/ SavedModel directories.")
    flags.DEFINE_float("file_system_poll_wait_seconds", DEFAULT_POLL_WAIT_S,
                       "Seconds between polls for new versions (<= 0: no polling).")
    flags.DEFINE_integer("max_receive_message_length", DEFAULT_MAX_RECEIVE_BYTES,
                         "Largest request in bytes; larger ones fail with RESOURCE_EXHAUSTED.")
    flags.DEFINE_integer("grpc_max_threads", DEFAULT_MAX_WORKERS, "Request handler threads.")
    flags.DEFINE_boolean("enable_model_warmup", True, "Replay assets.extra/tf_serving_warmup_requests on load.")
    flags.register_multi_flags_validator(
        ["model_config_file", "model_name", "model_base_path"],
        lambda f: bool(f["model_config_file"]) != bool(f["model_name"] and f["model_base_path"]),
        "pass either --model_config_file or both --model_name and --model_base_path")


def main(argv):
    del argv
    from absl import flags

    FLAGS = flags.FLAGS
    config = FLAGS.model_config_file or {FLAGS.model_name: FLAGS.model_base_path}
    server, port, manager = start_server(config, port=FLAGS.port, host=FLAGS.host,
                                         poll_wait_s=FLAGS.file_system_poll_wait_seconds,
                                         max_receive_message_length=FLAGS.max_receive_message_length,
                                         max_workers=FLAGS.grpc_max_threads, warmup=FLAGS.enable_model_warmup)
    print(f"tfattr dev server (NOT tensorflow_model_server) listening on {FLAGS.host}:{port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=2).wait()
        manager.stop()


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
