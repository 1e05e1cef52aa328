"""Every absl flag of `python -m tfattr.train`, grouped; no logic besides validators."""

from absl import flags

from tfattr import config as config_lib
from tfattr.utils import flag_util

_D = config_lib.TrainConfig()

# What to train.
flags.DEFINE_string("model", _D.model, "Model name (tfattr.models.MODELS).")
flags.DEFINE_string("hparams", _D.hparams, "Model hyper-parameters as name=value,... over the model's Config "
                    "(e.g. base_width=16,lambda_rec=10); unknown names fail listing the valid ones.")
# Data.
flags.DEFINE_string("dataset", _D.dataset, "Dataset name (tfattr.data.base.available()).")
flags.DEFINE_string("dataset_options", _D.dataset_options, "Source options as name=value,... (e.g. root=/data/celeba).")
flag_util.define(flags.DEFINE_list, "attributes", None, "Attribute names to use (default: all the dataset's attributes).")
flags.DEFINE_integer("image_size", _D.image_size, "Square image size in pixels.", lower_bound=16)
flags.DEFINE_boolean("flip", _D.flip, "Random horizontal flips (off for left/right attributes such as gaze).")
# Optimisation.
flags.DEFINE_integer("batch_size", _D.batch_size, "Global batch size (split over replicas).", lower_bound=1)
flags.DEFINE_integer("steps", _D.steps, "Total training steps (a resumed run continues up to this).", lower_bound=1)
flag_util.define(flags.DEFINE_integer, "seed", _D.seed, "Random seed (weights and data order).")
flags.DEFINE_enum("strategy", _D.strategy, ["auto", "default", "mirrored", "multi_worker"],
                  "tf.distribute strategy; auto: multi-worker if TF_CONFIG lists several workers, mirrored over "
                  "GPUs if any, else default.")
flags.DEFINE_integer("lr_decay_start", _D.lr_decay_start, "Global step from which every optimizer's learning "
                     "rate falls linearly to 0 at --steps (StarGAN's schedule); 0: constant rates.", lower_bound=0)
flags.DEFINE_integer("steps_per_execution", _D.steps_per_execution, "Train steps per tf.function call.",
                     lower_bound=1)
flags.DEFINE_boolean("jit_compile", _D.jit_compile, "XLA-compile the train step (about 1.7x faster on this "
                     "CPU for latent_swap at 64 px; measured in benchmarks/RESULTS.md).")
flags.DEFINE_enum("mixed_precision", _D.mixed_precision, ["float32", "mixed_float16", "mixed_bfloat16"],
                  "Keras mixed-precision policy: 16-bit compute, float32 variables and network outputs; "
                  "mixed_float16 adds dynamic loss scaling. For GPUs (float16) and TPUs/recent CPUs (bfloat16); "
                  "see benchmarks/speed.md for what it does on this CPU.")
# Run directory, logging, checkpoints, export.
flags.DEFINE_string("output_dir", _D.output_dir, "Parent of new numbered run directories.")
flag_util.define(flags.DEFINE_string, "run_dir", _D.run_dir, "Exact run directory (required with --resume).")
flags.DEFINE_boolean("resume", _D.resume, "Continue the run in --run_dir from its latest checkpoint.")
flags.DEFINE_integer("log_every", _D.log_every, "Steps between TensorBoard scalars.", lower_bound=1)
flags.DEFINE_integer("sample_every", _D.sample_every, "Steps between sample grids (0: never).", lower_bound=0)
flags.DEFINE_integer("checkpoint_every", _D.checkpoint_every, "Steps between checkpoints (0: only at the end).",
                     lower_bound=0)
flags.DEFINE_integer("keep_checkpoints", _D.keep_checkpoints, "Checkpoints kept.", lower_bound=1)
flags.DEFINE_boolean("export_after", _D.export_after, "Export a SavedModel when training ends.")
flags.DEFINE_integer("export_version", _D.export_version, "Version directory of that export.", lower_bound=1)
flag_util.define(flags.DEFINE_integer, "batch_norm_batches", _D.batch_norm_batches,
                 "Training batches that set the batch-norm statistics of averaged weights (ema_momentum) "
                 "when they are loaded or exported (0: keep the raw weights' statistics).", lower_bound=0)
flag_util.define(flags.DEFINE_boolean, "progress", _D.progress, "Show a progress bar with ETA.")
flags.DEFINE_boolean("dry_run", False, "Print the resolved configuration and exit.")


def train_config(FLAGS) -> config_lib.TrainConfig:
    return config_lib.TrainConfig(
        model=FLAGS.model, dataset=FLAGS.dataset, dataset_options=FLAGS.dataset_options,
        attributes=tuple(FLAGS.attributes) if FLAGS.attributes else None, image_size=FLAGS.image_size,
        batch_size=FLAGS.batch_size, steps=FLAGS.steps, seed=FLAGS.seed, flip=FLAGS.flip, hparams=FLAGS.hparams,
        output_dir=FLAGS.output_dir, run_dir=FLAGS.run_dir, resume=FLAGS.resume, log_every=FLAGS.log_every,
        sample_every=FLAGS.sample_every, checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints, export_after=FLAGS.export_after,
        export_version=FLAGS.export_version, batch_norm_batches=FLAGS.batch_norm_batches,
        lr_decay_start=FLAGS.lr_decay_start, strategy=FLAGS.strategy,
        steps_per_execution=FLAGS.steps_per_execution, jit_compile=FLAGS.jit_compile,
        mixed_precision=FLAGS.mixed_precision, progress=FLAGS.progress)
