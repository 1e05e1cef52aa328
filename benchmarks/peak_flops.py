"""This machine's measured float32 matmul and conv peak, in TensorFlow and PyTorch (interleaved).

    nice -n 10 /tmp/issue11/torchenv/bin/python benchmarks/peak_flops.py --repeats=5

Matmul: 2048x2048 @ 2048x2048 (2*n^3 FLOPs). Conv: 3x3, 128 -> 128 channels, 32x32, batch 16 (NHWC
for TF, NCHW for PyTorch; 2*B*H*W*k*k*Cin*Cout FLOPs). The best repeat is the peak: on a shared
machine the fastest run is the one least disturbed by other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator


def best_gflops(fn, flops, calls, repeats_out):
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    repeats_out.append(flops * calls / (time.perf_counter() - t0) / 1e9)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no_torch", action="store_true")
    args = p.parse_args()
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    n, b, hw, c, k = 2048, 16, 32, 128, 3
    mm_flops, conv_flops = 2 * n**3, 2 * b * hw * hw * k * k * c * c
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal([n, n], np.float32))
    x = tf.constant(rng.standard_normal([b, hw, hw, c], np.float32))
    w = tf.constant(rng.standard_normal([k, k, c, c], np.float32))
    tf_mm = tf.function(lambda: tf.matmul(a, a))
    tf_conv = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME"))
    out = {"tf_matmul": [], "tf_conv": []}
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
        ta, tx, tw = torch.from_numpy(a.numpy()), torch.from_numpy(np.transpose(x.numpy(), [0, 3, 1, 2]).copy()), \
            torch.from_numpy(np.transpose(w.numpy(), [3, 2, 0, 1]).copy())
        out.update(torch_matmul=[], torch_conv=[])
    for _ in range(args.repeats):
        best_gflops(lambda: tf_mm().numpy(), mm_flops, 3, out["tf_matmul"])
        if not args.no_torch:
            with torch.inference_mode():
                best_gflops(lambda: ta @ ta, mm_flops, 3, out["torch_matmul"])
        best_gflops(lambda: tf_conv().numpy(), conv_flops, 3, out["tf_conv"])
        if not args.no_torch:
            with torch.inference_mode():
                best_gflops(lambda: torch.nn.functional.conv2d(tx, tw, padding=1), conv_flops, 3, out["torch_conv"])
    summary = {k: {"best_gflops": round(max(v), 1), "median_gflops": round(sorted(v)[len(v) // 2], 1)}
               for k, v in out.items()}
    summary["peak_gflops"] = max(s["best_gflops"] for s in summary.values())
    summary["loadavg"] = os.getloadavg()
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
