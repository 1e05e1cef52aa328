"""Train a model: `python -m tfattr.train --flagfile=experiments/latent_swap_bench64.flags`.

Turns flags into a `TrainConfig` and calls `tfattr.training.loop.run`; nothing else.
"""

import os
import sys

from tfattr.utils import process_env

process_env.set_defaults()  # before TensorFlow starts: log level, the BFC CPU allocator

from absl import app, flags

from tfattr import config as config_lib
from tfattr import flags as tfattr_flags

FLAGS = flags.FLAGS


def write_flagfile(path: str, run_dir: str) -> None:
    """Writes tfattr's flags (not absl's own) as a flagfile that re-runs, or with --resume
    continues, this exact run; atomically, through a temporary file."""
    FLAGS.run_dir = run_dir
    lines = [flag.serialize() for flag in FLAGS.get_flags_for_module(tfattr_flags)
             if flag.name not in ("resume", "dry_run")]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# python -m tfattr.train --flagfile=" + path + "  (add --resume to continue)\n")
        f.write("\n".join(line for line in lines if line) + "\n")
    os.replace(tmp, path)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = tfattr_flags.train_config(FLAGS)
    from tfattr import models

    try:
        model_config = models.config_from_hparams(config.model, config.hparams)
    except config_lib.ConfigError as e:
        sys.exit(f"error: {e}")
    if FLAGS.dry_run:
        print(config_lib.to_json(config))
        print(config_lib.to_json(model_config))
        return
    from tfattr.training import loop

    def flags_writer(path):
        write_flagfile(path, os.path.dirname(path))

    result = loop.run(config, flags_writer=flags_writer)
    print(f"run_dir={result['run_dir']} step={result['step']} export={result['export']}")


def run_main():
    """Console entry point `tfattr-train` (same flags)."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
