"""Bounded gRPC load test of the serving path (loopback only; stops by itself within --max_seconds).

    python benchmarks/serving_load.py --threads=4 --requests=1000
    python benchmarks/serving_load.py --threads=4 --requests=1000 --hot_swap

Exports a tiny latent_swap model (32 px by default) to a temporary directory, starts the dev server
(`python -m tfattr.serving.server`, a separate process, bound to 127.0.0.1) on it, and sends
`--requests` Predict calls from `--threads` client threads, each with its own channel. Reports
p50/p90/p99/max latency and throughput; any error on this valid traffic fails the run (exit 1).
With `--hot_swap`, version 2 (different weights) is exported when half the requests are done;
the run then checks that every request succeeded, that each thread saw versions 1 then 2 and never
went back, and that version 2 served the last requests. The deadline covers set-up too: whatever
is not done by `--max_seconds` is reported as not sent, and the run fails.

The numbers measure the Python dev server, not `tensorflow_model_server`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer("threads", 4, "Concurrent client threads.", lower_bound=1)
flags.DEFINE_integer("requests", 1000, "Total Predict requests.", lower_bound=1)
flags.DEFINE_integer("batch", 1, "Examples per request.", lower_bound=1)
flags.DEFINE_string("signature", "swap", "Signature to call.")
flags.DEFINE_integer("image_size", 32, "Model image size (keep it tiny on shared CPUs).")
flags.DEFINE_float("max_seconds", 60.0, "Hard bound on the whole run, set-up included.")
flags.DEFINE_boolean("hot_swap", False, "Export version 2 half-way and check that no request is lost.")
flags.DEFINE_integer("server_threads", 8, "Dev server request threads.")
flags.DEFINE_string("json", None, "Also write the results here.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without `pip install -e .`

NAME = "latent_swap"
TINY = {"base_width": 8, "unit_channels": 4, "irrelevant_channels": 8, "d_width": 8, "num_res_blocks": 2}


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_model(size: int):
    from tfattr import models
    from tfattr.data import attributes as A

    schema = A.Schema((A.binary("Eyeglasses"), A.categorical("Hair_Color", ["black", "blond", "brown", "gray"]),
                       A.binary("Smiling")))
    model = models.build(NAME, schema, size, TINY)
    model.compile()
    model.train_step(_batch(schema, size, seed=0))
    return model, schema


def _batch(schema, size, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, a.num_classes, 4) for a in schema], axis=1).astype(np.int32)
    return {"image": tf.constant(rng.uniform(-1, 1, [4, size, size, 3]).astype(np.float32)),
            "attributes": tf.constant(schema.encode(labels)), "labels": tf.constant(labels)}


class _Load:
    """Shared state of the client threads: a request budget, latencies, versions, errors."""

    def __init__(self, total: int, deadline: float, threads: int, until_version: int | None = None):
        # With `until_version`, keep going past `total` until every thread has had 5 answers from it:
        # the hot-swap check needs traffic before, during and after the swap.
        self.total, self.deadline, self.threads, self.until_version = total, deadline, threads, until_version
        self.lock = threading.Lock()
        self.issued = 0
        self.done = 0
        self.half_done = threading.Event()
        self.errors = []
        self.retries = 0  # UNAVAILABLE retries by the clients: 0 means no request needed a second try
        self.latencies = []
        self.versions = {}  # thread index -> versions in order

    def take(self) -> bool:
        with self.lock:
            if time.monotonic() > self.deadline:
                return False
            if self.issued >= self.total and (self.until_version is None or self._reached_version()):
                return False
            self.issued += 1
            return True

    def _reached_version(self) -> bool:
        seen = [v.count(self.until_version) for v in self.versions.values()]
        return len(seen) == self.threads and min(seen) >= 5

    def record(self, thread: int, latency: float, version: int | None, error: Exception | None):
        with self.lock:
            self.done += 1
            if error is not None:
                self.errors.append(repr(error))
            else:
                self.latencies.append(latency)
                self.versions.setdefault(thread, []).append(version)
            if self.done >= self.total // 2:
                self.half_done.set()


def _client_thread(index, target, inputs, load: _Load):
    from tfattr.serving import client as client_lib
    from tfattr.serving import request_lib

    with client_lib.PredictionClient(target, timeout_s=10, retries=3, backoff_s=0.05) as client:
        while load.take():
            start = time.perf_counter()
            try:
                response = client.predict_response(NAME, FLAGS.signature, inputs)
                load.record(index, time.perf_counter() - start, request_lib.response_version(response), None)
            except Exception as e:
                load.record(index, time.perf_counter() - start, None, e)
        with load.lock:
            load.retries += client.retries_done


def main(argv):
    del argv
    t0 = time.monotonic()
    deadline = t0 + FLAGS.max_seconds - 3.0  # leave time to stop the server and report
    root = tempfile.mkdtemp(prefix="tfattr-serving-load-")
    base = os.path.join(root, NAME)
    os.makedirs(base)
    port = _free_loopback_port()
    server_log_path = os.path.join(root, "server.log")
    server_log = open(server_log_path, "w")
    target = f"127.0.0.1:{port}"
    # The server starts on an empty base path and hot-loads version 1 when it appears.
    server = subprocess.Popen(
        [sys.executable, "-m", "tfattr.serving.server", f"--port={port}", "--host=127.0.0.1",
         f"--model_name={NAME}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=0.2",
         f"--grpc_max_threads={FLAGS.server_threads}"],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, stdout=subprocess.DEVNULL, stderr=server_log)
    result = {"threads": FLAGS.threads, "requests": FLAGS.requests, "batch": FLAGS.batch,
              "signature": FLAGS.signature, "image_size": FLAGS.image_size, "hot_swap": FLAGS.hot_swap}
    ok = False
    try:
        from tfattr.export import saved_model
        from tfattr.serving import client as client_lib

        model, schema = _tiny_model(FLAGS.image_size)
        saved_model.export(model, root, NAME, 1, warmup_inputs=saved_model.example_inputs(model, 1))
        inputs = saved_model.example_inputs(model, FLAGS.batch)[FLAGS.signature]
        with client_lib.PredictionClient(target, timeout_s=5, retries=0) as probe:
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"server exited; see {server_log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError("server not ready before the deadline")
                try:
                    probe.metadata(NAME)
                    break
                except Exception:
                    time.sleep(0.2)
            for _ in range(20):  # untimed warm-up of the client and server paths
                probe.predict(NAME, FLAGS.signature, inputs)
        result["setup_s"] = round(time.monotonic() - t0, 1)

        load = _Load(FLAGS.requests, deadline, FLAGS.threads, 2 if FLAGS.hot_swap else None)
        threads = [threading.Thread(target=_client_thread, args=(i, target, inputs, load))
                   for i in range(FLAGS.threads)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        if FLAGS.hot_swap:
            load.half_done.wait(max(0.0, deadline - time.monotonic()))
            model.train_step(_batch(schema, FLAGS.image_size, seed=1))
            swap_start = time.perf_counter()
            saved_model.export(model, root, NAME, 2, warmup_inputs=saved_model.example_inputs(model, 1))
            result["export_v2_s"] = round(time.perf_counter() - swap_start, 2)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 12)
        elapsed = time.perf_counter() - start

        lat = np.array(load.latencies) * 1000
        result.update({
            "completed": len(load.latencies), "errors": len(load.errors), "first_errors": load.errors[:5],
            "retries": load.retries, "issued": load.issued, "lost": load.issued - load.done,
            "not_sent": max(0, FLAGS.requests - load.issued),
            "duration_s": round(elapsed, 2),
            "throughput_rps": round(len(lat) / elapsed, 1),
            "latency_ms": {q: round(float(np.percentile(lat, p)), 2) if len(lat) else None
                           for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
        })
        ok = result["errors"] == 0 and result["lost"] == 0 and result["completed"] == load.issued >= FLAGS.requests
        if FLAGS.hot_swap:
            per_thread = {i: {"v1": v.count(1), "v2": v.count(2), "monotonic": v == sorted(v)}
                          for i, v in sorted(load.versions.items())}
            final = [v[-1] for v in load.versions.values() if v]
            result["versions"] = per_thread
            result["served_v2_at_end"] = bool(final) and all(v == 2 for v in final)
            ok = ok and result["served_v2_at_end"] and all(p["monotonic"] for p in per_thread.values())
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server_log.close()
    if ok:
        shutil.rmtree(root, ignore_errors=True)
    else:
        result["kept_for_inspection"] = root
    result["total_s"] = round(time.monotonic() - t0, 1)
    result["ok"] = ok
    print(json.dumps(result, indent=2))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(result, f, indent=2)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
