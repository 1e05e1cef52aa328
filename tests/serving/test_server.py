"""End-to-end tests of the dev server: export -> serve on a loopback port -> PredictionClient."""

import os
import re
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

from tests import testing
from tfattr import models
from tfattr.export import saved_model
from tfattr.serving import client as client_lib
from tfattr.serving import request_lib, server

SIZE = 32
NAME = "latent_swap"
MAX_REQUEST_BYTES = 1 << 20  # small, so the oversized-request case stays cheap


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    m = models.build(NAME, testing.SCHEMA, SIZE, testing.TINY_LATENT_SWAP)
    m.compile()
    m.train_step(testing.random_batch(4, SIZE))
    m.train_step(testing.random_batch(4, SIZE, seed=1))
    root = str(tmp_path_factory.mktemp("models"))
    saved_model.export(m, root, NAME, 1, warmup_inputs=saved_model.example_inputs(m, 1))
    inputs = saved_model.example_inputs(m, 3)
    expected = {sig: {k: v.numpy() for k, v in m.signatures()[sig][0](**inputs[sig]).items()} for sig in inputs}
    return m, os.path.join(root, NAME), inputs, expected


@pytest.fixture(scope="module")
def served(exported):
    _, base, _, _ = exported
    srv, port, manager = server.start_server({NAME: base}, port=0, poll_wait_s=0,
                                             max_receive_message_length=MAX_REQUEST_BYTES)
    client = client_lib.PredictionClient(f"127.0.0.1:{port}", timeout_s=20, retries=1)
    yield client, port, manager
    client.close()
    srv.stop(0)
    manager.stop()


def test_every_signature_matches_the_eager_model(exported, served):
    _, _, inputs, expected = exported
    client, _, _ = served
    for sig, x in inputs.items():
        out = client.predict(NAME, sig, x)
        assert set(out) == set(expected[sig]), sig
        for key, value in expected[sig].items():
            np.testing.assert_allclose(out[key], value, atol=1e-4, err_msg=f"{sig}/{key}")
    default = client.predict(NAME, "serving_default", inputs["swap"])
    np.testing.assert_allclose(default["translated_image"], expected["swap"]["translated_image"], atol=1e-4)


def test_metadata_lists_the_signatures(exported, served):
    m, _, _, _ = exported
    client, _, _ = served
    meta = client.metadata(NAME)
    assert meta["name"] == NAME and meta["version"] == 1
    assert set(meta["signatures"]) == set(m.signatures()) | {"serving_default"}
    swap = meta["signatures"]["swap"]
    assert swap["inputs"] == {"source_image": {"dtype": "float32", "shape": [None, SIZE, SIZE, 3]},
                              "reference_image": {"dtype": "float32", "shape": [None, SIZE, SIZE, 3]},
                              "swap_attributes": {"dtype": "float32", "shape": [None, len(testing.SCHEMA)]}}
    assert swap["outputs"] == {"translated_image": {"dtype": "float32", "shape": [None, SIZE, SIZE, 3]}}
    assert client.status(NAME) == {1: "AVAILABLE"}


def test_uint8_images_batching_and_pinned_versions(exported, served):
    _, _, inputs, _ = exported
    client, _, _ = served
    pixels = np.random.default_rng(1).integers(0, 256, [5, SIZE, SIZE, 3]).astype(np.uint8)
    as_uint8 = client.predict(NAME, "reconstruct", {"image": pixels}, version=1)
    as_float = client.predict(NAME, "reconstruct", {"image": pixels / 127.5 - 1})
    np.testing.assert_allclose(as_uint8["reconstructed_image"], as_float["reconstructed_image"], atol=1e-5)
    batched = client.predict_batched(NAME, "reconstruct", {"image": pixels}, batch_size=2)
    np.testing.assert_allclose(batched["reconstructed_image"], as_float["reconstructed_image"], atol=1e-5)
    response = client.predict_response(NAME, "encode", inputs["encode"], output_filter=["embedding"])
    assert (response.model_spec.name, response.model_spec.signature_name) == (NAME, "encode")
    assert request_lib.response_version(response) == 1


def _swap_request(inputs, **changes):
    x = {**inputs["swap"], **changes}
    return request_lib.build_predict_request(x, NAME, "swap")


def _garbage(inputs):
    request = _swap_request(inputs)
    request.inputs["source_image"].tensor_content = b"\x00" * 5  # 5 bytes for a [3,32,32,3] float32 tensor
    return request


def _raw_float64(inputs):
    request = _swap_request(inputs)
    request.inputs["swap_attributes"].CopyFrom(tf.make_tensor_proto(inputs["swap"]["swap_attributes"], tf.float64))
    return request


def _with_spec(inputs, **spec):
    request = _swap_request(inputs)
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    return request


BAD_REQUESTS = {
    "wrong_rank": (lambda x: _swap_request(x, source_image=x["swap"]["source_image"][..., 0]),
                   grpc.StatusCode.INVALID_ARGUMENT, r"'source_image'.*expected shape \[\?,32,32,3\], got \[3,32,32\]"),
    "oversized_image": (lambda x: _swap_request(x, reference_image=np.zeros([3, 64, 64, 3], np.float32)),
                        grpc.StatusCode.INVALID_ARGUMENT, r"'reference_image'.*got \[3,64,64,3\]"),
    "too_many_bytes": (lambda x: _swap_request(x, source_image=np.zeros([300, SIZE, SIZE, 3], np.float32)),
                       grpc.StatusCode.RESOURCE_EXHAUSTED, r"larger than max"),
    "wrong_dtype_int": (lambda x: _swap_request(x, swap_attributes=np.ones([3, 3], np.int32)),
                        grpc.StatusCode.INVALID_ARGUMENT, r"'swap_attributes'.*expected dtype float32, got int32"),
    "wrong_dtype_float64": (_raw_float64, grpc.StatusCode.INVALID_ARGUMENT, r"'swap_attributes'.*got float64"),
    "empty_batch": (lambda x: request_lib.build_predict_request({k: v[:0] for k, v in x["swap"].items()}, NAME,
                                                                "swap"),
                    grpc.StatusCode.INVALID_ARGUMENT, r"empty batch"),
    "batch_mismatch": (lambda x: _swap_request(x, swap_attributes=x["swap"]["swap_attributes"][:1]),
                       grpc.StatusCode.INVALID_ARGUMENT, r"'swap_attributes': batch size differs"),
    "out_of_range": (lambda x: _swap_request(x, source_image=np.abs(x["swap"]["source_image"]) + 1.5),
                     grpc.StatusCode.INVALID_ARGUMENT, r"'source_image': values above 1"),
    "nan": (lambda x: _swap_request(x, swap_attributes=x["swap"]["swap_attributes"] * np.nan),
            grpc.StatusCode.INVALID_ARGUMENT, r"'swap_attributes': NaN"),
    "garbage_bytes": (_garbage, grpc.StatusCode.INVALID_ARGUMENT,
                      r"tensor parsing error: input 'source_image': tensor_content has 5 bytes"),
    "missing_input": (lambda x: request_lib.build_predict_request(
        {k: v for k, v in x["swap"].items() if k != "swap_attributes"}, NAME, "swap"),
        grpc.StatusCode.INVALID_ARGUMENT, r"Missing but required: \['swap_attributes'\]"),
    "extra_input": (lambda x: _swap_request(x, bogus=np.zeros([3], np.float32)),
                    grpc.StatusCode.INVALID_ARGUMENT, r"Sent extra: \['bogus'\]"),
    "unknown_signature": (lambda x: _with_spec(x, signature_name="nope"),
                          grpc.StatusCode.FAILED_PRECONDITION, r'Serving signature key "nope" not found'),
    "unknown_model": (lambda x: _with_spec(x, name="nope"), grpc.StatusCode.NOT_FOUND,
                      r"Servable not found for request: Latest\(nope\)"),
    "unknown_version": (lambda x: _with_spec(x, version=42), grpc.StatusCode.NOT_FOUND,
                        r"Specific\(latent_swap, 42\).*loaded versions: \[1\]"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_the_right_status_and_the_server_keeps_serving(exported, served, case):
    _, _, inputs, expected = exported
    client, port, _ = served
    make, code, message = BAD_REQUESTS[case]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(make(inputs), timeout=20)
    assert error.value.code() == code, error.value.details()
    assert error.value.details() is not None
    assert re.search(message, error.value.details()), error.value.details()
    out = client.predict(NAME, "swap", inputs["swap"])
    np.testing.assert_allclose(out["translated_image"], expected["swap"]["translated_image"], atol=1e-4)


@pytest.mark.parametrize("fields, message", [([], "at least one metadata_field"),
                                             (["graph"], "graph is not supported")])
def test_bad_metadata_requests(served, fields, message):
    _, port, _ = served
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = NAME
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError, match=message) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=20)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_retries_only_unavailable():
    calls = []

    class Error(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

    def method(code):
        def call(request, timeout):
            calls.append(timeout)
            raise Error(code)
        return call

    client = client_lib.PredictionClient("127.0.0.1:1", timeout_s=0.5, retries=2, backoff_s=0.001)
    with pytest.raises(grpc.RpcError):
        client._call(method(grpc.StatusCode.UNAVAILABLE), None)
    assert calls == [0.5, 0.5, 0.5] and client.retries_done == 2
    for code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INVALID_ARGUMENT):
        calls.clear()
        with pytest.raises(grpc.RpcError):
            client._call(method(code), None)
        assert len(calls) == 1
    client.close()


def test_list_versions_ignores_non_versions(tmp_path):
    for name in ["1", "12", "0", "-3", ".tmp-3-123", "abc", "007"]:
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file, not a version directory")
    assert server.list_versions(str(tmp_path)) == {1: str(tmp_path / "1"), 12: str(tmp_path / "12"),
                                                   7: str(tmp_path / "007")}
    assert server.list_versions(str(tmp_path / "missing")) == {}


def test_config_file_is_parsed(tmp_path):
    path = tmp_path / "models.config"
    path.write_text('model_config_list { config { name: "a" base_path: "/models/a" model_platform: "tensorflow" }\n'
                    '  config { name: "b" base_path: "rel/b" model_platform: "tensorflow"\n'
                    '           model_version_policy { specific { versions: 2 } } } }')
    config = server.load_config(str(path))
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [
        ("a", "/models/a"), ("b", os.path.abspath("rel/b"))]
    with pytest.raises(ValueError, match="model_platform"):
        path.write_text('model_config_list { config { name: "a" base_path: "/m" model_platform: "pytorch" } }')
        server.load_config(str(path))
    repo_config = server.load_config(os.path.join(os.path.dirname(__file__), "..", "..", "serving", "models.config"))
    assert {c.name for c in repo_config.model_config_list.config} == {
        "latent_swap", "adv_disentangle", "bi_infogan", "mask_transfer", "diat"}


def test_hot_swap_under_load_loses_no_request(exported, tmp_path):
    m, base, inputs, expected = exported
    hot_base = str(tmp_path / NAME)
    shutil.copytree(os.path.join(base, "1"), os.path.join(hot_base, "1"))
    os.makedirs(os.path.join(hot_base, ".tmp-9-123"))  # a half-written export: never loaded
    srv, port, manager = server.start_server({NAME: hot_base}, poll_wait_s=0.1)
    client = client_lib.PredictionClient(f"127.0.0.1:{port}", timeout_s=20, retries=0)
    x = {"image": inputs["reconstruct"]["image"]}
    results, errors, stop = [[], []], [], threading.Event()

    def send(log):
        while not stop.is_set():
            try:
                response = client.predict_response(NAME, "reconstruct", x)
                log.append((request_lib.response_version(response),
                            request_lib.parse_predict_response(response)["reconstructed_image"]))
            except Exception as e:  # any error fails the test below
                errors.append(e)
            time.sleep(0.02)  # continuous traffic that still leaves the 2 CPU cores to the export

    threads = [threading.Thread(target=send, args=(log,)) for log in results]
    try:
        for t in threads:
            t.start()
        while min(len(log) for log in results) < 3:
            time.sleep(0.01)
        m.train_step(testing.random_batch(4, SIZE, seed=2))  # version 2 has different weights
        expected_v2 = m.reconstruct(x["image"]).numpy()
        assert np.max(np.abs(expected_v2 - expected["reconstruct"]["reconstructed_image"])) > 1e-3
        saved_model.export(m, str(tmp_path), NAME, 2)
        deadline = time.monotonic() + 30
        while not all(log and log[-1][0] == 2 for log in results) or min(
                sum(v == 2 for v, _ in log) for log in results) < 3:
            assert time.monotonic() < deadline, "version 2 was not served within 30 s"
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    for log in results:
        versions = [v for v, _ in log]
        assert versions == sorted(versions) and versions[0] == 1 and versions[-1] == 2  # switched once, for good
        for version, image in log:
            want = expected["reconstruct"]["reconstructed_image"] if version == 1 else expected_v2
            np.testing.assert_allclose(image, want, atol=1e-4)
    deadline = time.monotonic() + 10  # version 1 is unloaded once its last request has finished
    while client.status(NAME) != {1: "END", 2: "AVAILABLE"}:
        assert time.monotonic() < deadline, client.status(NAME)
        time.sleep(0.05)
    with pytest.raises(grpc.RpcError) as error:
        client.predict(NAME, "reconstruct", x, version=1)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND

    # A broken newer version fails to load; version 2 keeps serving.
    os.makedirs(os.path.join(hot_base, "3"))
    with open(os.path.join(hot_base, "3", "saved_model.pb"), "wb") as f:
        f.write(b"not a SavedModel")
    manager.poll_once()
    assert client.status(NAME) == {1: "END", 2: "AVAILABLE", 3: "END"}
    assert request_lib.response_version(client.predict_response(NAME, "reconstruct", x)) == 2
    client.close()
    srv.stop(0)
    manager.stop()


def _client_cli():
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "..", "serving", "client_grpc.py")
    spec = importlib.util.spec_from_file_location("client_grpc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines no flags: they are defined under __main__ only
    return module


def test_client_cli_round_trip(served, tmp_path):
    from PIL import Image

    cli = _client_cli()
    client, _, _ = served
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, [48, 40, 3]).astype(np.uint8)).save(tmp_path / name)
    order = testing.SCHEMA.names
    swap = cli.attribute_vector(attributes=[order[0], order[2]], attribute_order=order)
    np.testing.assert_array_equal(swap, [1, 0, 1])
    np.testing.assert_array_equal(cli.attribute_vector(swap_attributes=["1", "0", "1"]), swap)
    with pytest.raises(ValueError, match="unknown attributes"):
        cli.attribute_vector(attributes=["Beard"], attribute_order=order)
    out = cli.run(client, NAME, "swap", str(tmp_path / "a.png"), str(tmp_path / "b.png"), swap,
                  output=str(tmp_path / "out.png"))
    assert out["translated_image"].shape == (1, SIZE, SIZE, 3)
    assert Image.open(tmp_path / "out.png").size == (SIZE, SIZE)
