"""How much of a training step waits for data: the input pipeline measured inside training.

    nice -n 10 python benchmarks/input_pipeline.py --model=latent_swap --image_size=64 --batch_size=16 \
        --steps=30 --dataset_options=num_train=2000,cache_dir=/tmp/issue11/cache

Builds the batches exactly as `tfattr.train` does (`loop.load_data`, i.e. `pipeline.load` with its
parallel map and prefetch) and the model with its paper defaults, then times each step in two
parts: `next(iterator)` (time blocked waiting for the pipeline) and the train step itself. The
pipeline keeps producing in the background while a step runs, so only the wait shows up. Reports
the waiting fraction (target < 5%) and, for scale, the pipeline's own rate with no training.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="latent_swap")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--dataset_options", default="num_train=2000,cache_dir=/tmp/tfattr_speed_cache")
    p.add_argument("--hparams", default="")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--jit_compile", action="store_true")
    args = p.parse_args()

    import keras
    import tensorflow as tf

    from tfattr import config as config_lib
    from tfattr import models
    from tfattr.training import loop

    keras.utils.set_random_seed(0)
    config = config_lib.TrainConfig(model=args.model, dataset=args.dataset, dataset_options=args.dataset_options,
                                    image_size=args.image_size, batch_size=args.batch_size, hparams=args.hparams)
    module = models.get(args.model)
    model_config = config_lib.override(module.Config(), config_lib.parse_hparams(args.hparams))

    # The pipeline alone (first pass also fills the cache when cache_dir is set).
    dataset, schema = loop.load_data(config, "train", args.batch_size, 0)
    it = iter(dataset)
    next(it)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        next(it)
    alone = (time.perf_counter() - t0) / args.steps

    model = models.build(args.model, schema, args.image_size, config=model_config)
    model.compile()
    step = tf.function(model.train_step, jit_compile=args.jit_compile)
    dataset, _ = loop.load_data(config, "train", args.batch_size, 1)
    it = iter(dataset)
    waits, computes = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        logs = step(batch)
        float(next(iter(logs.values())))  # the step has finished
        t2 = time.perf_counter()
        if i >= args.warmup:
            waits.append(t1 - t0)
            computes.append(t2 - t1)
    total = sum(waits) + sum(computes)
    print(json.dumps({
        "model": args.model, "image_size": args.image_size, "batch_size": args.batch_size,
        "dataset_options": args.dataset_options, "steps": args.steps,
        "waiting_fraction": sum(waits) / total,
        "mean_wait_ms": 1e3 * statistics.mean(waits), "max_wait_ms": 1e3 * max(waits),
        "mean_step_ms": 1e3 * statistics.mean(computes),
        "pipeline_alone_ms_per_batch": 1e3 * alone,
        "pipeline_alone_images_per_s": args.batch_size / alone,
        "loadavg": os.getloadavg(),
    }, indent=1))


if __name__ == "__main__":
    main()
