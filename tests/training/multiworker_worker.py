"""One process of the multi-worker test (tests/training/test_multiworker.py); not a test itself.

    TF_CONFIG=... python tests/training/multiworker_worker.py CONFIG_JSON WEIGHTS_NPZ

Runs `loop.run(TrainConfig(**CONFIG_JSON))` with two changes that make runs comparable bit for
bit across worker counts: SGD instead of Adam (its update is linear in the gradient, so float
noise in the all-reduce stays float noise; Adam's first step is ~lr*sign(g)), and a fixed
"swap all units" choice added to every batch (latent_swap otherwise draws it per replica, which
differs between 1 and 2 workers). Writes the initial and trained weights to WEIGHTS_NPZ and prints the result.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfattr import config as config_lib  # noqa: E402
from tfattr import models  # noqa: E402
from tfattr.models import latent_swap  # noqa: E402
from tfattr.training import loop  # noqa: E402


def main(config_json: str, weights_path: str) -> None:
    config = config_lib.TrainConfig(**json.loads(config_json))
    built, initial = [], []
    real_build, real_load = models.build, loop.load_data

    def build(*args, **kwargs):
        built.append(real_build(*args, **kwargs))
        initial.extend(v.numpy().copy() for v in built[-1].trainable_variables)
        return built[-1]

    def load_data(*args, **kwargs):
        ds, schema = real_load(*args, **kwargs)
        k = len(schema)
        return ds.map(lambda b: {**b, "swap": tf.ones([tf.shape(b["image"])[0], k])}), schema

    models.build = build
    loop.load_data = load_data
    latent_swap.Model.default_optimizers = lambda self: {"g": keras.optimizers.SGD(0.05),
                                                         "d": keras.optimizers.SGD(0.05)}
    result = loop.run(config)
    (model,) = built
    arrays = {f"trained_{i}": v.numpy() for i, v in enumerate(model.trainable_variables)}
    arrays.update({f"initial_{i}": v for i, v in enumerate(initial)})
    np.savez(weights_path, **arrays)
    print(json.dumps({"step": result["step"], "run_dir": result["run_dir"], "logs": result["logs"]}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
