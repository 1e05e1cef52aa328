"""Every committed flagfile names only defined flags and valid model hyper-parameters.

A misspelt `--hparams` name only fails when the run starts; these files are the README's and the
benchmarks' entry points, so they are checked here without training anything.
"""

import glob
import os

import pytest
from absl import flags

import tfattr.train  # noqa: F401  (defines the training flags)
from tfattr import models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGFILES = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.flags")))


def read_flags(path):
    out = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            assert line.startswith("--") and "=" in line, f"{path}:{number}: not --name=value: {line!r}"
            name, value = line[2:].split("=", 1)
            out[name] = value
    return out


def test_there_are_flagfiles_for_every_model():
    named = {read_flags(p).get("model") for p in FLAGFILES}
    assert named == set(models.MODELS), named


@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_flagfile_is_valid(path):
    values = read_flags(path)
    unknown = sorted(set(values) - set(flags.FLAGS))
    assert not unknown, f"{path}: undefined flags {unknown}"
    # Raises ConfigError naming the field for an unknown name or a bad value.
    models.config_from_hparams(values["model"], values.get("hparams"))
