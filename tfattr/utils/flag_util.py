"""Flags shared by several tfattr CLIs.

Each CLI (`tfattr.train`, `tfattr.evaluate`, `tfattr.transfer`, ...) is its own process, but a
program or a test may import several of them, and absl refuses a second definition of a name.
The few names they share (`--run_dir`, `--attributes`, `--seed`, `--progress`) mean the same thing
in each and have the same defaults, so the second module reuses the first definition.
"""

from __future__ import annotations

import sys

from absl import app, flags


def define(define_fn, name: str, default, help_text: str, **kwargs):
    """`define_fn(name, default, help_text, **kwargs)` unless `name` exists; then checks it matches.

    The reused flag is also registered as the calling module's, so `get_flags_for_module` (used
    to write a run's flagfile) lists it whatever the import order. Raises ValueError if the
    existing flag has another type or default (a real clash).
    """
    if name in flags.FLAGS:
        existing = flags.FLAGS[name]
        probe = flags.FlagValues()
        define_fn(name, default, help_text, flag_values=probe, **kwargs)
        if type(probe[name]) is not type(existing) or probe[name].default != existing.default:
            raise ValueError(f"flag --{name} is defined twice with different types or defaults "
                             f"({existing.default!r} vs {probe[name].default!r})")
    else:
        define_fn(name, default, help_text, **kwargs)
    # absl files a flag under the module that called DEFINE_*, which is this one; file it under
    # the CLI module that asked for it as well.
    flags.FLAGS.register_flag_by_module(sys._getframe(1).f_globals["__name__"], flags.FLAGS[name])
    return flags.FLAGS[name]


def load_run_model(run_dir: str, checkpoint: str | None, average_checkpoints, **kwargs):
    """`loop.load_model_from_run` for CLIs with `--checkpoint` and `--average_checkpoints`: a bad
    list of checkpoints to average becomes a usage error naming that flag."""
    from tfattr.training import loop

    if checkpoint and average_checkpoints:
        raise app.UsageError("--checkpoint and --average_checkpoints exclude each other")
    try:
        loop.checkpoint_paths(run_dir, average_checkpoints)
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(f"--average_checkpoints: {e}") from e
    return loop.load_model_from_run(run_dir, checkpoint, average_checkpoints=average_checkpoints, **kwargs)
