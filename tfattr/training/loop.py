"""`run(config)`: strategy, data, model, checkpoints, logging, samples, export.

The loop is written out (not `model.fit`) so that the step counter, checkpoints and resume are
explicit: `step` is a checkpointed variable, and resuming restores model, optimizers and step and
continues to `config.steps`. The data stream after a resume is re-seeded with the resumed step
(tf.data cannot cheaply restore a shuffle position over decoded images), so it is a fresh,
equally distributed stream, never a replay of the batches already seen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence

import keras
import tensorflow as tf

from tfattr import config as config_lib
from tfattr import models
from tfattr.data import attributes as attributes_lib
from tfattr.training import checkpointing, precision, rundir, schedule
from tfattr.training import strategy as strategy_lib
from tfattr.utils import image_grid

CONFIG_FILE = "config.json"


class NonFiniteLossError(FloatingPointError):
    pass


def _is_chief() -> bool:
    """The chief writes the run directory: task "chief", or worker 0 when the cluster has no chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    if not task:
        return True
    if "chief" in tf_config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def _source_options(config: config_lib.TrainConfig) -> dict:
    return config_lib.parse_hparams(config.dataset_options)


def load_data(config: config_lib.TrainConfig, split: str, batch_size: int, seed: int, shuffle=True, repeat=True,
              flip=None):
    """Batches for `config.model`: `pipeline.load` batches, or, for a model class declaring
    `DATA = "two_domains"`, `pipeline.pairs` of the two `pipeline.two_domains` streams split on
    the model's `domain_attribute`/`domain_value` hparams (`{"image_a", ..., "image_b", ...}`)."""
    from tfattr.data import base as data_base
    from tfattr.data import pipeline
    from tfattr.data.attributes import parse_names

    flip = config.flip if flip is None else flip
    module = models.get(config.model)
    if getattr(module.Model, "DATA", "single") == "two_domains":
        model_config = models.config_from_hparams(config.model, config.hparams)
        source = data_base.get_source(config.dataset, image_size=config.image_size, **_source_options(config))
        # A model needing more than images and labels per batch (diat's local enhancement: landmark
        # masks) supplies its own training stream.
        extra = getattr(module, "training_stream", None)
        stream = extra(config, model_config, batch_size, seed) if extra and split == "train" else None
        if stream is not None:
            return stream, source.schema.select(parse_names(config.attributes))
        domain_a, domain_b = pipeline.two_domains(
            source, split, model_config.domain_attribute, model_config.domain_value, image_size=config.image_size,
            batch_size=batch_size, attributes=config.attributes, shuffle=shuffle, repeat=repeat, flip=flip, seed=seed,
            value_a=getattr(model_config, "domain_value_a", None))
        return pipeline.pairs(domain_a, domain_b), source.schema.select(parse_names(config.attributes))
    if getattr(module.Model, "DATA", "single") == "labelled_mix" and split == "train":
        from tfattr.data import semi_supervised

        return semi_supervised.load_with_labelled(config.dataset, split, image_size=config.image_size,
                                                  batch_size=batch_size, attributes=config.attributes,
                                                  shuffle=shuffle, repeat=repeat, flip=flip, seed=seed,
                                                  **_source_options(config))
    return pipeline.load(config.dataset, split, image_size=config.image_size, batch_size=batch_size,
                         attributes=config.attributes, shuffle=shuffle, repeat=repeat,
                         flip=flip, seed=seed, **_source_options(config))


def prepare_run_dir(config: config_lib.TrainConfig) -> str:
    if config.run_dir:
        run_dir = config.run_dir
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        if (not config.resume and tf.io.gfile.exists(ckpt_dir)
                and tf.train.latest_checkpoint(ckpt_dir) is not None):
            raise FileExistsError(f"--run_dir={run_dir} already has checkpoints; pass --resume to continue it "
                                  "or choose a new --run_dir")
        os.makedirs(run_dir, exist_ok=True)
        return run_dir
    if config.resume:
        raise ValueError("--resume needs --run_dir (the run to continue)")
    return rundir.new_run_dir(config.output_dir, config.model, config.dataset, config.image_size, config.batch_size)


def model_config_from_meta(meta: dict, overrides: str | None = None, flag: str = "model_options"):
    """The model `Config` a run's `config.json` (`meta`) records, with `overrides` ("name=value,...",
    reported under `flag` when invalid) applied."""
    module = models.get(meta["train"]["model"])
    model_config = module.Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["model"].items()})
    return config_lib.override(model_config, config_lib.parse_hparams(overrides), flag)


def train_config_from_meta(meta: dict) -> config_lib.TrainConfig:
    """The `TrainConfig` a run's `config.json` (`meta`) records (fields this version lacks are dropped)."""
    names = {f.name for f in dataclasses.fields(config_lib.TrainConfig)}
    return config_lib.TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                                     for k, v in meta["train"].items() if k in names})


def load_model_from_run(run_dir: str, checkpoint: str | None = None, strategy=None, overrides: str | None = None,
                        average_weights: bool = True, batch_norm_batches: int = 200,
                        average_checkpoints: Sequence[str] = ()):
    """Rebuilds the model a run trained and restores its latest (or the given) checkpoint.

    With `average_weights` the networks of every optimizer that kept a moving average of its
    variables (a model's `ema_momentum` hparam) get those averages: the weights to infer with.
    Their batch norms then get statistics of their own from `batch_norm_batches` batches of the
    run's training data (`AttributeTransferModel.standing_batch_norm`; 0 keeps the raw weights'
    statistics). False loads the raw weights the last step produced. `meta["inference_weights"]`
    records which groups were averaged and over how many batches the statistics were taken.

    `average_checkpoints` (two or more checkpoint prefixes or steps of this run, instead of
    `checkpoint`) loads the uniform mean of their trainable weights, every network's (stochastic
    weight averaging, Izmailov et al. 2018, applied to saved checkpoints); each checkpoint's moving
    averages are taken first when `average_weights` applies. Every batch norm then gets statistics
    of its own as above. The step reported is the newest checkpoint's. On the bench, adv_disentangle's
    expression swaps swing by up to 5 points between checkpoints 1,000 steps apart at constant rates;
    the mean of four is 2-4 points over their average and at or over the best of them
    (benchmarks/RESULTS.md, session 20).

    `overrides` ("name=value,...") replaces model hparams for this load only, for inference-time
    settings such as diat's `use_enhancement=false`; a field that changes the variables makes the
    checkpoint restore fail.
    """
    meta = rundir.read_json(os.path.join(run_dir, CONFIG_FILE))
    paths = checkpoint_paths(run_dir, average_checkpoints)
    if paths and checkpoint:
        raise ValueError(f"give either a checkpoint ({checkpoint}) or checkpoints to average ({', '.join(paths)})")
    schema = attributes_lib.Schema.from_json(meta["schema"])
    model_config = model_config_from_meta(meta, overrides)
    scope = strategy.scope() if strategy else _null_scope()
    policy = meta["train"].get("mixed_precision", "float32")
    with scope:
        model = precision.build_model(meta["train"]["model"], schema, meta["train"]["image_size"], model_config,
                                      policy)
        model.compile(precision.optimizers(model, policy))
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        ckpt = checkpointing.Checkpointer(os.path.join(run_dir, "checkpoints"), model, step)
        steps, sums = [], None
        for path in paths or [checkpoint]:
            if ckpt.restore(path) is None:
                raise FileNotFoundError(f"{run_dir}/checkpoints has no checkpoint to load")
            averaged = model.average_weights() if average_weights else []
            steps.append(int(step.numpy()))
            if paths:
                values = [v.numpy() for v in model.trainable_variables]
                sums = values if sums is None else [a + b for a, b in zip(sums, values)]
        if paths:
            for variable, total in zip(model.trainable_variables, sums):
                variable.assign(total / len(paths))
        networks = list(model.networks) if paths else model.group_networks(averaged)
        used = 0
        if (averaged or paths) and batch_norm_batches > 0 and model.batch_norm_layers(networks):
            config = train_config_from_meta(meta)
            dataset, _ = load_data(config, "train", config.batch_size, config.seed)
            used = model.standing_batch_norm(dataset.take(batch_norm_batches), networks)
    meta["inference_weights"] = {"averaged": averaged, "batch_norm_batches": used}
    if paths:
        meta["inference_weights"]["checkpoints"] = paths
    return model, max(steps), meta


def checkpoint_paths(run_dir: str, checkpoints: Sequence[str]) -> list[str]:
    """Checkpoint prefixes for `checkpoints` given as prefixes or as steps of `run_dir`'s checkpoints
    ("12000" -> RUN/checkpoints/ckpt-12000); each must exist, and an average needs two or more."""
    paths = [os.path.join(run_dir, "checkpoints", f"ckpt-{c}") if str(c).isdigit() else str(c) for c in checkpoints]
    if len(paths) == 1:
        raise ValueError(f"averaging checkpoints needs two or more, got {paths[0]}")
    missing = [p for p in paths if not tf.io.gfile.exists(p + ".index")]
    if missing:
        raise FileNotFoundError(f"no checkpoint {', '.join(missing)} (no .index file); "
                                f"{checkpointing.describe(os.path.join(run_dir, 'checkpoints'))}")
    if len(set(paths)) < len(paths):
        raise ValueError(f"checkpoints to average repeat one: {', '.join(paths)}")
    return paths


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run(config: config_lib.TrainConfig, flags_writer=None) -> dict:
    """Trains `config.model` and returns {"run_dir", "step", "logs", "export"}.

    Args:
      config: the run configuration.
      flags_writer: optional callable(path) writing the resolved flags as a flagfile (the CLI passes
        absl's `FLAGS.append_flags_into_file`), so the run directory reproduces itself.
    """
    if config.lr_decay_start and config.lr_decay_start >= config.steps:
        raise ValueError(f"--lr_decay_start={config.lr_decay_start} must be below --steps={config.steps} "
                         "(0: constant learning rates)")
    keras.utils.set_random_seed(config.seed)
    strategy = strategy_lib.make_strategy(config.strategy)
    module = models.get(config.model)
    model_config = models.config_from_hparams(config.model, config.hparams)
    local_batch = strategy_lib.per_replica_batch(config.batch_size, strategy,
                                                 multiple_of=getattr(module.Model, "BATCH_MULTIPLE", 1))
    del local_batch
    chief = _is_chief()
    # Multi-worker: every worker runs every step and every save (a save may read variables
    # collectively), but only the chief writes the run directory; the others write into a private
    # temporary directory, deleted at the end, and resume from the chief's checkpoints.
    run_dir = prepare_run_dir(config) if chief else tempfile.mkdtemp(prefix=f"tfattr-worker{_task_index()}-")

    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    # The schema must be known to build the model; the dataset gives it.
    _, schema = load_data(config, "train", config.batch_size, config.seed)
    with strategy.scope():
        model = precision.build_model(config.model, schema, config.image_size, model_config, config.mixed_precision)
        model.compile(precision.optimizers(model, config.mixed_precision))
        base_lrs = schedule.base_learning_rates(model)  # before a restore brings back a decayed value
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        ckpt = checkpointing.Checkpointer(ckpt_dir, model, step, keep=config.keep_checkpoints)
        restored = None
        if config.resume:
            restored = ckpt.restore() if chief else ckpt.restore(
                tf.train.latest_checkpoint(os.path.join(config.run_dir, "checkpoints")))
    start = int(step.numpy())
    if config.resume and restored is None:
        print(f"--resume: no checkpoint in {ckpt_dir}; starting at step 0")

    if chief:
        rundir.write_json(os.path.join(run_dir, CONFIG_FILE), {
            "train": config_lib.to_dict(dataclasses.replace(config, run_dir=run_dir)),
            "model": config_lib.to_dict(model_config), "schema": schema.to_json(),
            "replicas": strategy.num_replicas_in_sync})
        if flags_writer is not None:
            flags_writer(os.path.join(run_dir, "flags.txt"))

    dataset, _ = load_data(config, "train", config.batch_size, config.seed + start)
    # Multi-worker: every worker reads the same seeded stream and keeps its slice of each global
    # batch (DATA sharding), so a global batch is the same examples as on one worker. (FILE
    # sharding, the AUTO default for file sources, would give each worker other files.)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    dist_iter = iter(strategy.experimental_distribute_dataset(dataset))
    try:
        sample_batch = next(iter(load_data(config, "test", 8, config.seed, shuffle=False, repeat=False,
                                           flip=False)[0]))
    except (StopIteration, tf.errors.OutOfRangeError):
        raise ValueError(f"--dataset={config.dataset} --dataset_options={config.dataset_options!r}: the test split "
                         "has fewer than 8 examples (of each domain, for two-domain models) for the sample grids"
                         ) from None

    spe = max(1, int(config.steps_per_execution))
    # XLA compiles the step itself; the loop around it reads the iterator, which XLA cannot hold.
    step_fn = tf.function(model.train_step, jit_compile=True) if config.jit_compile else model.train_step

    @tf.function
    def train_steps(iterator, n):
        for _ in tf.range(n):
            strategy.run(step_fn, args=(next(iterator),))
            step.assign_add(1)

    writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs")) if chief else tf.summary.create_noop_writer()
    progbar = keras.utils.Progbar(config.steps, stateful_metrics=list(model.LOSS_NAMES)) \
        if config.progress and chief else None
    logs: dict[str, float] = {}
    last_ok = start
    t0 = time.time()
    current = start
    while current < config.steps:
        n = min(spe, config.steps - current, _until_next(current, config))
        # Always, not only under decay: a checkpoint stores each optimizer's rate, and a run resumed
        # with other rates in --hparams must train at those.
        lr_factor = schedule.decay_factor(current, config.lr_decay_start, config.steps)
        schedule.set_learning_rates(model, base_lrs, lr_factor)
        train_steps(dist_iter, tf.constant(n, tf.int64))
        current = int(step.numpy())
        if current % config.log_every == 0 or current == config.steps:
            logs = {k: float(v) for k, v in model.logs().items()}
            bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
            if bad:
                raise NonFiniteLossError(
                    f"non-finite loss {bad} between steps {last_ok} and {current}; the last good checkpoint is "
                    f"{ckpt.latest} (resume from it with a lower learning rate)")
            last_ok = current
            with writer.as_default(step=current):
                for k, v in logs.items():
                    tf.summary.scalar(k, v)
                tf.summary.scalar("steps_per_second", (current - start) / max(time.time() - t0, 1e-9))
                tf.summary.scalar("lr_factor", lr_factor)
            model.reset_trackers()
            if progbar is not None:
                progbar.update(current, list(logs.items()))
        if chief and config.sample_every and (current % config.sample_every == 0 or current == config.steps):
            grid = model.sample_grid(sample_batch)
            image_grid.save_png(os.path.join(run_dir, "samples", f"{current:07d}.png"), grid)
            with writer.as_default(step=current):
                tf.summary.image("samples", grid[None], max_outputs=1)
        if config.checkpoint_every and (current % config.checkpoint_every == 0 or current == config.steps):
            ckpt.save(current)
    writer.flush()

    result = {"run_dir": run_dir, "step": int(step.numpy()), "logs": logs, "export": None}
    if chief and config.export_after:
        from tfattr.export import saved_model

        path = os.path.join(run_dir, "export", config.model, str(config.export_version))
        if not os.path.exists(path):
            # Training is over (the last checkpoint keeps the raw weights): serve the moving averages.
            # The averaged networks' batch norms get statistics of their own (see average_weights).
            bn_batches = None
            if config.batch_norm_batches and model.averaging_groups():
                bn_batches = load_data(config, "train", config.batch_size, config.seed)[0].take(
                    config.batch_norm_batches)
            averaged = model.average_weights(bn_batches)
            result["export"] = saved_model.export(
                model, os.path.join(run_dir, "export"), config.model, config.export_version,
                metadata={"train": config_lib.to_dict(config), "model_config": config_lib.to_dict(model_config),
                          "step": result["step"], "averaged_weights": averaged,
                          "batch_norm_batches": config.batch_norm_batches if averaged and model.batch_norm_layers(
                              model.group_networks(averaged)) else 0},
                warmup_inputs=saved_model.example_inputs(model, batch_size=1))
        else:
            result["export"] = path
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        result["run_dir"] = None
    return result


def _task_index() -> int:
    return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))


def _until_next(current: int, config) -> int:
    """Steps until the next log/sample/checkpoint boundary, so a multi-step execution stops there."""
    out = config.steps - current
    for every in (config.log_every, config.sample_every, config.checkpoint_every):
        if every:
            out = min(out, every - current % every)
    return max(out, 1)
