"""Environment defaults that tfattr's command-line programs set before TensorFlow starts.

Each default is `os.environ.setdefault`: a value the user exported wins.
"""

import os

DEFAULTS = {
    # TensorFlow's C++ info and warning lines (CUDA probing on CPU machines, instruction sets).
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # TensorFlow's CPU allocator serves each tensor from malloc. On CPU, a training step's
    # multi-megabyte activations are freed and allocated again every step, and glibc hands the
    # memory back to the kernel, so every step touches fresh pages: 200,000 page faults per second
    # in a mask_transfer bench training (perf: memmove and Eigen writes into new buffers), 0.89 s of
    # system time per 2.58 s step. The BFC allocator keeps the pages it has taken: 0.17 s system,
    # 2.20 s per step (benchmarks/speed.md, session 31). It grows on demand (allow_growth), capped at
    # TF_CPU_BFC_MEM_LIMIT_IN_MB (TensorFlow's default 64 GB). Set it to "false" to get the default back.
    "TF_CPU_ALLOCATOR_USE_BFC": "true",
}


def set_defaults() -> None:
    """Sets every entry of DEFAULTS that the environment does not already set. Call before the
    first TensorFlow op: TensorFlow reads TF_CPU_ALLOCATOR_USE_BFC when it makes its CPU allocator."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
