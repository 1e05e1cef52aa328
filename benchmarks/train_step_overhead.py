"""Seconds per train step with and without the training loop's input pipeline in the process.

    python benchmarks/train_step_overhead.py --flagfile=experiments/mask_transfer_bench64.flags --mode=images,iterator
    python benchmarks/train_step_overhead.py --flagfile=experiments/mask_transfer_bench64.flags --mode=images --nodata

Builds the model of a flagfile as `tfattr.train` does and times `tf.function(model.train_step)`
(15 calls after 3 warm-up calls), reporting wall, user and system CPU seconds per step:
  images:   one fixed batch of `image_a` / `image_b` from the loop's `load_data` stream
  batch:    that whole batch dict (every key the stream yields)
  iterator: a new batch from the stream each step
`--nodata` never builds the stream (a random fixed batch): the step without the pipeline in the
process, like `benchmarks/speed.py`. `--drop_iterator` deletes the stream's iterator before timing.
Written for session 29's finding that the flagfile trains 1.7x slower than the probe (speed.md).
"""

import resource
import time

from absl import app, flags

from tfattr import flags as tfattr_flags  # defines the training flags a flagfile sets

FLAGS = flags.FLAGS
flags.DEFINE_list("mode", ["images", "iterator"], "what to time, in order: images, batch, iterator")
flags.DEFINE_boolean("nodata", False, "time a random batch, without building the training stream")
flags.DEFINE_boolean("drop_iterator", False, "delete the stream's iterator after taking the fixed batch")
flags.DEFINE_integer("timed_steps", 15, "timed calls per mode")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from tfattr import config as config_lib
    from tfattr import models
    from tfattr.data import base as data_base
    from tfattr.data.attributes import parse_names
    from tfattr.training import loop, precision

    config = tfattr_flags.train_config(FLAGS)
    model_config = models.config_from_hparams(config.model, config.hparams)
    if FLAGS.nodata:
        source = data_base.get_source(config.dataset, image_size=config.image_size,
                                      **config_lib.parse_hparams(config.dataset_options))
        schema = source.schema.select(parse_names(config.attributes))
        rng = np.random.default_rng(0)
        shape = (config.batch_size, config.image_size, config.image_size, 3)
        fixed = {k: tf.constant(rng.uniform(-1, 1, shape), tf.float32) for k in ("image_a", "image_b")}
        iterator = None
    else:
        dataset, schema = loop.load_data(config, "train", config.batch_size, config.seed)
        iterator = iter(dataset)
        fixed = {k: tf.identity(v) for k, v in next(iterator).items()}
        if FLAGS.drop_iterator:
            iterator = None
    model = precision.build_model(config.model, schema, config.image_size, model_config, config.mixed_precision)
    model.compile()
    step = tf.function(model.train_step, jit_compile=config.jit_compile)

    sources = {"images": lambda: {k: fixed[k] for k in ("image_a", "image_b")},
               "batch": lambda: fixed,
               "iterator": lambda: next(iterator)}
    for mode in FLAGS.mode:
        if mode not in sources:
            raise app.UsageError(f"--mode: unknown {mode!r}; valid: {', '.join(sources)}")
        if mode == "iterator" and iterator is None:
            raise app.UsageError("--mode=iterator needs the stream: drop --nodata / --drop_iterator")
        get = sources[mode]
        for _ in range(3):
            step(get())
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
        for _ in range(FLAGS.timed_steps):
            step(get())
        r1, n = resource.getrusage(resource.RUSAGE_SELF), FLAGS.timed_steps
        print(f"{mode}: {(time.time() - t0) / n:.2f} s/step, user {(r1.ru_utime - r0.ru_utime) / n:.2f} s, "
              f"system {(r1.ru_stime - r0.ru_stime) / n:.2f} s", flush=True)


if __name__ == "__main__":
    app.run(main)
