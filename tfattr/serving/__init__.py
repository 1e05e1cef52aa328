"""Serving helpers: request building (`request_lib`), a gRPC client (`client`) and a development
stand-in for `tensorflow_model_server` (`server`).

Nothing is imported here eagerly: `tensorflow-serving-api` and `grpcio` are optional dependencies,
loaded by the submodules that need them.
"""
