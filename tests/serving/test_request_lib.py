"""Request building and response parsing, without a server."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from tfattr.serving import client, request_lib


def test_build_predict_request_sets_model_spec_and_tensors():
    attrs = np.array([[1, 0, 1]], np.float32)
    request = request_lib.build_predict_request({"swap_attributes": attrs}, "latent_swap", "swap", version=3)
    assert request.model_spec.name == "latent_swap"
    assert request.model_spec.signature_name == "swap"
    assert request.model_spec.version.value == 3
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["swap_attributes"]), attrs)


def test_no_version_means_latest():
    request = request_lib.build_predict_request({"x": np.zeros([1], np.float32)}, "m", "s")
    assert not request.model_spec.HasField("version")


def test_uint8_images_become_signed_unit_floats():
    image = np.array([0, 255, 128], np.uint8).reshape([1, 1, 3, 1]).repeat(3, axis=-1)
    request = request_lib.build_predict_request({"source_image": image}, "m", "swap")
    sent = tf.make_ndarray(request.inputs["source_image"])
    assert sent.dtype == np.float32
    np.testing.assert_allclose(sent[0, 0, :, 0], [-1.0, 1.0, 128 / 127.5 - 1], atol=1e-6)


def test_float64_becomes_float32_but_other_dtypes_pass_unchanged():
    request = request_lib.build_predict_request(
        {"alpha": np.array([0.5]), "swap_attributes": np.array([[1, 0, 1]], np.int32),
         "mask": np.array([[7]], np.uint8)}, "m", "blend")
    assert request.inputs["alpha"].dtype == tf.float32.as_datatype_enum
    assert request.inputs["swap_attributes"].dtype == tf.int32.as_datatype_enum  # the server names the mismatch
    assert request.inputs["mask"].dtype == tf.uint8.as_datatype_enum  # uint8 is rescaled only for images


@pytest.mark.parametrize("kwargs, message", [
    ({"inputs": {}}, "no inputs"),
    ({"signature_name": ""}, "signature_name is required"),
    ({"model_name": ""}, "model_name is required"),
    ({"version": 0}, "positive integer"),
])
def test_bad_arguments_raise(kwargs, message):
    args = {"inputs": {"x": np.zeros([1], np.float32)}, "model_name": "m", "signature_name": "s", **kwargs}
    with pytest.raises(ValueError, match=message):
        request_lib.build_predict_request(**args)


def test_parse_predict_response_reads_content_and_value_fields():
    response = predict_pb2.PredictResponse()
    image = np.random.default_rng(0).uniform(-1, 1, [2, 4, 4, 3]).astype(np.float32)
    response.outputs["translated_image"].CopyFrom(tf.make_tensor_proto(image))  # tensor_content
    field = response.outputs["embedding"]  # float_val, as tensorflow_model_server writes it
    field.dtype = tf.float32.as_datatype_enum
    field.tensor_shape.dim.add(size=2)
    field.float_val.extend([0.25, -0.5])
    response.model_spec.version.value = 7
    out = request_lib.parse_predict_response(response)
    np.testing.assert_array_equal(out["translated_image"], image)
    np.testing.assert_array_equal(out["embedding"], np.array([0.25, -0.5], np.float32))
    assert request_lib.response_version(response) == 7
    assert request_lib.response_version(predict_pb2.PredictResponse()) is None


def test_split_batch():
    chunks = request_lib.split_batch({"a": np.arange(5), "b": np.arange(10).reshape(5, 2)}, 2)
    assert [len(c["a"]) for c in chunks] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([c["b"] for c in chunks]), np.arange(10).reshape(5, 2))
    with pytest.raises(ValueError, match="shared batch"):
        request_lib.split_batch({"a": np.arange(5), "b": np.arange(4)}, 2)
    with pytest.raises(ValueError, match="batch_size"):
        request_lib.split_batch({"a": np.arange(5)}, 0)


def test_signatures_from_metadata():
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    swap = sig_map.signature_def["swap"]
    swap.inputs["swap_attributes"].dtype = tf.float32.as_datatype_enum
    swap.inputs["swap_attributes"].tensor_shape.dim.add(size=-1)
    swap.inputs["swap_attributes"].tensor_shape.dim.add(size=3)
    swap.outputs["translated_image"].dtype = tf.float32.as_datatype_enum
    swap.outputs["translated_image"].tensor_shape.unknown_rank = True
    sig_map.signature_def["__saved_model_init_op"].SetInParent()
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.metadata["signature_def"].Pack(sig_map)
    assert client.signatures_from_metadata(response) == {"swap": {
        "inputs": {"swap_attributes": {"dtype": "float32", "shape": [None, 3]}},
        "outputs": {"translated_image": {"dtype": "float32", "shape": None}}}}
