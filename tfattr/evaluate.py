"""Evaluate a training run.

    python -m tfattr.evaluate --run_dir=RUN [--num_pairs=500]            # protocol bench_swap (as before)
    python -m tfattr.evaluate --run_dir=RUN --metrics=oracle_acc_swap_2k,mask_iou_100 [--out_dir=DIR]
    python -m tfattr.evaluate --run_dir=RUN --metrics=zhang2019,mokady2020  # presets expand to their metrics
    python -m tfattr.evaluate --list_metrics

`bench_swap` writes `metric-bench_swap.jsonl` / `.md` (and figures). Registry metrics
(`tfattr/metrics/registry.py`) append one JSON record per value to `metric-<name>.jsonl` (fields:
metric, protocol, model, step, split, seed, dataset, value, ...) and write `metrics.md`, a table
of this invocation. Everything goes to --out_dir (default: the run directory).
FID/KID read the InceptionV3 weights from --inception_weights (never downloaded).
"""

import json
import os

from tfattr.utils import process_env

process_env.set_defaults()  # before TensorFlow starts: log level, the BFC CPU allocator

from absl import app, flags

from tfattr.utils import flag_util

FLAGS = flags.FLAGS
DEFAULT_FEATURE_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tfattr", "real_features")

flag_util.define(flags.DEFINE_string, "run_dir", None, "Training run directory.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: latest).")
flags.DEFINE_list("average_checkpoints", [], "Evaluate the mean weights of these checkpoints of the run "
                  "(steps such as 11000,12000,13000,14000, or prefixes), batch norm re-estimated; instead of --checkpoint.")
flags.DEFINE_string("model_options", None, "Inference-time model hparams for this evaluation, e.g. "
                    "use_enhancement=false (diat: T without the enhancement network).")
flags.DEFINE_boolean("average_weights", True, "Evaluate the optimizers' moving averages of the weights when the "
                     "run kept them (a model's ema_momentum hparam); false: the raw weights of the checkpoint.")
flag_util.define(flags.DEFINE_integer, "batch_norm_batches", 200,
                 "Training batches that set the batch-norm statistics of averaged weights (ema_momentum) "
                 "when they are loaded or exported (0: keep the raw weights' statistics).", lower_bound=0)
flags.DEFINE_list("protocols", None, "Legacy protocols: bench_swap (default when --metrics is empty).")
flags.DEFINE_list("metrics", [], "Registry metric names or presets (zhang2019, oldfield, mokady2020, li2016).")
flags.DEFINE_boolean("list_metrics", False, "Print the metric names and presets, then exit.")
flags.DEFINE_string("out_dir", None, "Where metric files go (default: --run_dir).")
flag_util.define(flags.DEFINE_list, "attributes", None, "bench_swap: attributes to evaluate (default: all the model was trained on).")
flags.DEFINE_integer("num_pairs", 500, "bench_swap: test pairs.", lower_bound=1)
flag_util.define(flags.DEFINE_integer, "seed", 0, "Bench seed of the evaluation images.")
flags.DEFINE_boolean("figures", True, "Write figures on bench runs: swap grids and blend strips (bench_swap); "
                     "transfer grids, segmentations and interpolations (two-domain models such as mask_transfer).")
flags.DEFINE_string("inception_weights", None, "InceptionV3 no-top weights (.h5/.weights.h5) for FID/KID "
                    "(default: $TFATTR_INCEPTION_WEIGHTS or ~/.keras/models/<Keras file name>).")
flags.DEFINE_string("cache_dir", DEFAULT_FEATURE_CACHE,
                    "Cache of real-image features (keyed by dataset spec and extractor).")
flag_util.define(flags.DEFINE_boolean, "progress", True, "Show a progress bar.")

PROTOCOLS = ("bench_swap",)


def make_context(*args, **kwargs):
    """`registry.make_context` (kept here for callers of the CLI module)."""
    from tfattr.metrics import registry

    return registry.make_context(*args, **kwargs)


def evaluate_metrics(*args, **kwargs):
    """`registry.evaluate_metrics`."""
    from tfattr.metrics import registry

    return registry.evaluate_metrics(*args, **kwargs)


def run_bench_swap(model, meta, step, run_dir, out_dir, attributes, num_pairs, seed, figures):
    from tfattr.metrics import oracle as oracle_lib
    from tfattr.metrics import transfer

    if meta["train"]["dataset"] != "synthetic":
        raise app.UsageError(f"bench_swap needs a run trained on the synthetic bench; {run_dir} used "
                             f"{meta['train']['dataset']!r}")
    attributes = attributes or model.schema.names
    oracle = oracle_lib.load_oracle()
    swap = lambda a, b, names: model.transfer_from_reference(a, b, names).numpy()
    records = transfer.evaluate_swap(swap, attributes, model.image_size, oracle, num_pairs, seed)
    records += transfer.summarize(records)
    common = {"model": meta["train"]["model"], "step": step, "split": "test", "seed": seed, "run_dir": run_dir}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metric-bench_swap.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps({**common, **r}) + "\n")
    table = transfer.markdown_table(records)
    with open(os.path.join(out_dir, "metric-bench_swap.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    if figures and hasattr(model, "blend"):
        from tfattr.metrics import figures as figures_lib

        for p in figures_lib.write_swap_figures(model, attributes, os.path.join(out_dir, "figures"), seed):
            print(p)


def main(argv):
    del argv
    from tfattr.metrics import registry

    if FLAGS.list_metrics:
        from tfattr.metrics import protocols

        for name in registry.list_metrics():
            spec = registry.get_metric(name)
            print(f"{name:34s} {spec.protocol:11s} {spec.description}")
        for p in protocols.PRESETS.values():
            print(f"preset {p.name}: {', '.join(p.metrics)}")
        return
    if not FLAGS.run_dir:
        raise app.UsageError("--run_dir is required")
    protocols_ = FLAGS.protocols if FLAGS.protocols is not None else ([] if FLAGS.metrics else ["bench_swap"])
    for p in protocols_:
        if p not in PROTOCOLS:
            raise app.UsageError(f"--protocols: unknown protocol {p!r}; valid: {', '.join(PROTOCOLS)}")
    try:
        registry.resolve(FLAGS.metrics)
    except registry.UnknownMetricError as e:
        raise app.UsageError(f"--metrics: {e}")
    if any(n.startswith(("fid_", "kid_")) for n in FLAGS.metrics):
        from tfattr.metrics import features

        path = FLAGS.inception_weights or features.default_inception_weights_path()
        if not os.path.exists(path):
            raise app.UsageError(features.missing_weights_message(path))

    model, step, meta = flag_util.load_run_model(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.average_checkpoints,
                                                 overrides=FLAGS.model_options, average_weights=FLAGS.average_weights,
                                                 batch_norm_batches=FLAGS.batch_norm_batches)
    if meta["inference_weights"].get("checkpoints"):
        print(f"mean weights of {len(meta['inference_weights']['checkpoints'])} checkpoints; batch-norm statistics "
              f"from {meta['inference_weights']['batch_norm_batches']} training batches")
    elif meta["inference_weights"]["averaged"]:
        print(f"averaged weights of {', '.join(meta['inference_weights']['averaged'])}; batch-norm statistics "
              f"from {meta['inference_weights']['batch_norm_batches']} training batches")
    out_dir = FLAGS.out_dir or FLAGS.run_dir
    if "bench_swap" in protocols_:
        run_bench_swap(model, meta, step, FLAGS.run_dir, out_dir, FLAGS.attributes, FLAGS.num_pairs, FLAGS.seed,
                       FLAGS.figures)
    if FLAGS.metrics:
        ctx = make_context(model, meta, step, FLAGS.seed, FLAGS.inception_weights, FLAGS.cache_dir)
        print(f"model operations: {', '.join(sorted(ctx.ops.supported))}; "
              f"reference transfer of: {', '.join(ctx.ops.transfer_attributes) or '-'}")
        records, skipped = evaluate_metrics(ctx, FLAGS.metrics, out_dir, progress=FLAGS.progress)
        table = registry.markdown_table(records, skipped)
        with open(os.path.join(out_dir, "metrics.md"), "w") as f:
            f.write(f"{meta['train']['model']} step {step}, {FLAGS.run_dir}, weights {meta['inference_weights']}\n\n{table}\n")
        print(table)
    if FLAGS.figures and meta["train"]["dataset"] == "synthetic" and hasattr(model, "transfer_domains"):
        from tfattr.metrics import figures as figures_lib

        for p in figures_lib.write_content_transfer_figures(model, os.path.join(out_dir, "figures"), FLAGS.seed):
            print(p)


if __name__ == "__main__":
    app.run(main)
