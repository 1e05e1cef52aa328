"""PyTorch counterparts of tfattr models for benchmarks/speed.py (benchmark-only code).

`EQUIVALENTS[name](tf_model, batch_size)` returns a `TorchBench` with `train_step()` and
`infer()` that run the same networks as the tfattr model on random NCHW data. Imported only by
the benchmark: torch is not a tfattr dependency.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass
class TorchBench:
    source: str  # where the networks come from ("official ..." or "re-statement ...")
    train_step: Callable[[], None]
    infer: Callable[[], None]
    train_flops: Callable[[], float]
    infer_flops: Callable[[], float]
    notes: str = ""


def _latent_swap(tf_model, batch_size):
    from benchmarks.torch_equivalents import latent_swap_torch

    return latent_swap_torch.bench(tf_model, batch_size)


def _mask_transfer(tf_model, batch_size):
    from benchmarks.torch_equivalents import mask_transfer_official

    return mask_transfer_official.bench(tf_model, batch_size)


EQUIVALENTS = {"latent_swap": _latent_swap, "mask_transfer": _mask_transfer}


def count_flops(fn) -> float:
    """FLOPs (2 per multiply-add) of one call of `fn`, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    except RuntimeError as e:  # reported, not fatal
        print(f"  (torch FLOP count failed: {e})")
        return None
    return float(counter.get_total_flops())
