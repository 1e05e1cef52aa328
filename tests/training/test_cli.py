import subprocess
import sys

import pytest
from absl import flags

from tfattr import flags as tfattr_flags
from tfattr import train

FLAGS = flags.FLAGS


@pytest.fixture
def parse():
    def _parse(*args):
        FLAGS.unparse_flags()
        FLAGS(["tfattr.train", *args])
        return tfattr_flags.train_config(FLAGS)

    yield _parse
    FLAGS.unparse_flags()


def test_written_flagfile_reproduces_the_run(parse, tmp_path):
    config = parse("--model=latent_swap", "--steps=7", "--attributes=Eyeglasses,Hair_Color", "--image_size=32",
                   "--hparams=base_width=8,lambda_rec=5", "--dataset_options=num_train=64", "--noflip")
    path = str(tmp_path / "flags.txt")
    train.write_flagfile(path, str(tmp_path / "run"))
    text = open(path).read()
    assert "--steps=7" in text and "--helpfull" not in text and "--test_srcdir" not in text
    again = parse(f"--flagfile={path}")
    assert again == config.__class__(**{**config.__dict__, "run_dir": str(tmp_path / "run")})


def test_dry_run_prints_config_and_bad_hparam_names_the_valid_ones():
    cmd = [sys.executable, "-m", "tfattr.train", "--dry_run", "--hparams=lambda_rec=3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"lambda_rec": 3.0' in out.stdout
    bad = subprocess.run([sys.executable, "-m", "tfattr.train", "--dry_run", "--hparams=lamda_rec=3"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "valid names" in bad.stderr and "lambda_rec" in bad.stderr
