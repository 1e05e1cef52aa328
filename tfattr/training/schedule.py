"""Learning-rate decay for every optimizer of a model, driven by the training loop's global step.

`--lr_decay_start=N` keeps each optimizer's configured rate until global step N, then lowers it
linearly to 0 at `--steps` (the schedule of StarGAN, Choi et al. 2018, Sec. 4, which decays over
its second 100k iterations; AttGAN and STGAN decay as well). None of the five papers gives a
schedule. Measured on the adv_disentangle bench (decay over steps 7,000-10,000) it gave no gain
over constant rates (benchmarks/RESULTS.md, session 12), so no flagfile sets it. It is driven by the loop's step, not by each optimizer's `iterations`,
because a model may update one group several times per step (mask_transfer's
`domain_classifier_steps`) and all groups must follow the same schedule.

The loop assigns the rate before each multi-step execution, so with `--steps_per_execution=K` it
is constant over K steps. The base rates are read once after `compile()`, before a checkpoint is
restored (a checkpoint stores the last rate), so a resumed run continues the same schedule, and one
resumed with other rates in `--hparams` trains at those (it kept the checkpoint's before session 19).
"""

from __future__ import annotations


def _inner(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps the real one


def base_learning_rates(model) -> dict[str, float]:
    """Each optimizer group's configured learning rate (call after compile, before restoring)."""
    return {group: float(_inner(opt).learning_rate.numpy()) for group, opt in model.optimizers.items()}


def decay_factor(step: int, start: int, end: int) -> float:
    """1 before `start` (or when `start` is 0: no decay), then (end - step) / (end - start), 0 from `end`."""
    if start <= 0 or step < start:
        return 1.0
    return max(0.0, (end - step) / max(end - start, 1))


def set_learning_rates(model, base: dict[str, float], factor: float) -> None:
    for group, opt in model.optimizers.items():
        _inner(opt).learning_rate.assign(base[group] * factor)
