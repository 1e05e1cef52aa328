"""MultiWorkerMirroredStrategy with TF_CONFIG: two worker processes on loopback (CPU) train 2 steps
and must end with the same weights as each other and as one worker on the same global batch."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import testing

WORKER = os.path.join(os.path.dirname(__file__), "multiworker_worker.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 300  # generous: the machine running CI may be shared; idle, the test takes ~30 s


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _config(tmp_path, name):
    hparams = {**testing.TINY_LATENT_SWAP, "lambda_gp": 0, "g_norm": "instance", "d_spectral_norm": False}
    return {
        "model": "latent_swap", "dataset": "synthetic",
        "dataset_options": f"num_train=32,num_validation=4,num_test=8,cache_dir={tmp_path / ('cache_' + name)}",
        "attributes": ["Eyeglasses", "Hair_Color"], "image_size": 16, "batch_size": 4, "steps": 2, "flip": False,
        "hparams": ",".join(f"{k}={v}" for k, v in hparams.items()), "output_dir": str(tmp_path / name),
        "log_every": 1, "sample_every": 2, "checkpoint_every": 2, "export_after": True, "progress": False,
        "strategy": "auto",
    }


def _start(tmp_path, name, tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    out = tmp_path / f"{name}.npz"
    log = open(tmp_path / f"{name}.log", "w+")
    proc = subprocess.Popen([sys.executable, WORKER, json.dumps(_config(tmp_path, name)), str(out)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path), start_new_session=True)
    return {"name": name, "proc": proc, "log": log, "out": out}


def _wait_all(procs, timeout_s):
    deadline = time.monotonic() + timeout_s
    try:
        for p in procs:
            p["proc"].wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p["proc"].poll() is None:
                p["proc"].kill()
                p["proc"].wait()
    report = []
    for p in procs:
        p["log"].seek(0)
        p["text"] = p["log"].read()
        p["log"].close()
        report.append(f"--- {p['name']} (exit {p['proc'].returncode}) ---\n{p['text'][-3000:]}")
    failed = [p["name"] for p in procs if p["proc"].returncode != 0]
    if failed:
        pytest.fail(f"{failed} failed or did not finish within {timeout_s} s:\n" + "\n".join(report))


def _weights(p, which="trained"):
    with np.load(p["out"]) as f:
        keys = sorted((k for k in f.files if k.startswith(which + "_")), key=lambda k: int(k.split("_")[1]))
        return [f[k] for k in keys]


def _result(p):
    # The worker's result is its last JSON line. A log line may follow it: when one worker exits
    # first, the coordination service of the other may log that the finished task stopped sending
    # heartbeats (seen in CI after both had saved their weights).
    lines = [line for line in p["text"].splitlines() if line.startswith("{")]
    assert lines, p["text"][-2000:]
    return json.loads(lines[-1])


def test_two_workers_match_each_other_and_one_worker(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    procs = [_start(tmp_path, f"worker{i}", {"cluster": cluster, "task": {"type": "worker", "index": i}})
             for i in range(2)]
    procs.append(_start(tmp_path, "single"))
    _wait_all(procs, TIMEOUT_S)
    w0, w1, single = (_weights(p) for p in procs)
    r0, r1, rs = (_result(p) for p in procs)
    assert (r0["step"], r1["step"], rs["step"]) == (2, 2, 2)
    with open(os.path.join(r0["run_dir"], "config.json")) as f:
        assert json.load(f)["replicas"] == 2
    # only the chief (worker 0) keeps a run directory; worker 1 saved into a deleted temp dir
    assert r1["run_dir"] is None and os.path.isdir(os.path.join(r0["run_dir"], "checkpoints"))
    for part in ("samples/0000002.png", "export/latent_swap/1/saved_model.pb", "config.json"):
        assert os.path.exists(os.path.join(r0["run_dir"], part)), f"the chief did not write {part}"
    assert not os.path.exists(tmp_path / "worker1")
    init = _weights(procs[2], "initial")
    assert testing.max_weight_change(init, _weights(procs[0], "initial")) == 0, "workers started from other weights"
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b, err_msg="the two workers' weights differ")
    moved = testing.max_weight_change(init, single)
    assert moved > 1e-2, "training did not move the weights"
    # Float noise of a different summation order, amplified over 2 steps: measured 5e-4 of the
    # update. A doubled update, or workers reading the same half of the batch, gives order 1.
    diff = testing.max_weight_change(single, w0)
    assert diff < 2e-3 * moved, f"2 workers differ from 1 worker on the same global batch: {diff} vs update {moved}"
    for k in ("g/rec", "d/adv"):
        np.testing.assert_allclose(r0["logs"][k], rs["logs"][k], rtol=1e-4, err_msg=k)
