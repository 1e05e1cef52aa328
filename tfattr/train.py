"""Train a model: `python -m tfattr.train --flagfile=experiments/latent_swap_bench64.flags`.

Turns flags into a `TrainConfig` and calls `tfattr.training.loop.run`; nothing else.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from tfattr import config as config_lib
from tfattr import flags as tfattr_flags

FLAGS = flags.FLAGS


def _write_flags(run_dir_value):
    def write(path):
        FLAGS.run_dir = run_dir_value  # the flagfile reproduces (and resumes) this exact run
        tmp = path + ".tmp"
        if os.path.exists(tmp):
            os.remove(tmp)
        FLAGS.append_flags_into_file(tmp)
        os.replace(tmp, path)
    return write


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = tfattr_flags.train_config(FLAGS)
    from tfattr import models

    module = models.get(config.model)
    try:
        model_config = config_lib.override(module.Config(), config_lib.parse_hparams(config.hparams))
    except config_lib.ConfigError as e:
        sys.exit(f"error: {e}")
    if FLAGS.dry_run:
        print(config_lib.to_json(config))
        print(config_lib.to_json(model_config))
        return
    from tfattr.training import loop

    def flags_writer(path):
        _write_flags(os.path.dirname(path))(path)

    result = loop.run(config, flags_writer=flags_writer)
    print(f"run_dir={result['run_dir']} step={result['step']} export={result['export']}")


def run_main():
    """Console entry point `tfattr-train` (same flags)."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
