"""Test session set-up: split the CPU into 2 logical devices before TensorFlow initialises, so
distribution (MirroredStrategy over 2 replicas) is tested on any machine; slow/gpu markers."""

import os

from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # already initialised (e.g. a plugin touched TF first): tests needing 2 devices skip.
    pass


def pytest_addoption(parser):
    parser.addoption("--run_slow", action="store_true", default=False, help="run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests (real weights, long training); need --run_slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run_slow"):
        return
    skip = pytest.mark.skip(reason="slow test: pass --run_slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One 2-replica strategy for the whole session.

    Each MirroredStrategy numbers its collective ops (synchronized batch norm, gradient all-reduce)
    from the same starting instance key, and the process's collective executor remembers the shape
    of each key: a second strategy in the same process reuses key 100 with another shape and
    aborts ("Shape mismatch in the collective instance 100"). One shared strategy keeps counting.
    """
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs 2 logical CPU devices")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
