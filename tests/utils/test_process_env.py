"""The command-line programs start TensorFlow with the BFC CPU allocator unless told otherwise."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# TensorFlow tracks a CPU:0 peak only when its CPU allocator is the BFC one. Without it, some builds
# raise ValueError and others (seen on an AVX-512 machine, session 33) report a peak of 0.
PROBE = """
import {module}
import tensorflow as tf
tf.matmul(tf.ones([64, 64]), tf.ones([64, 64]))
try:
    bfc = tf.config.experimental.get_memory_info("CPU:0")["peak"] > 0
except ValueError:
    bfc = False
print("bfc" if bfc else "not bfc")
"""


def run_probe(module, **env_overrides):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    env.update(env_overrides, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["tfattr.train", "tfattr.evaluate"])
def test_importing_a_cli_module_selects_the_bfc_allocator(module):
    assert run_probe(module) == "bfc"


def test_a_users_setting_wins():
    assert run_probe("tfattr.train", TF_CPU_ALLOCATOR_USE_BFC="false") == "not bfc"


def test_set_defaults_keeps_exported_values(monkeypatch):
    from tfattr.utils import process_env

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    process_env.set_defaults()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
