"""Train-step and inference throughput of every registered model, side by side with PyTorch.

    # throughput (images/s) of all models, tfattr vs PyTorch where an equivalent exists, interleaved
    nice -n 10 /tmp/issue11/torchenv/bin/python benchmarks/speed.py --image_size=64 --batch_size=16 \
        --repeats=3 --steps=3 --out=/tmp/issue11/speed64.json
    # peak resident memory per model (one fresh process per model) at 128x128, batch 16
    nice -n 10 python benchmarks/speed.py --rss --image_size=128 --batch_size=16

Generic over `tfattr.models.MODELS`: each model is built with its paper defaults (`Config()`), fed
one real batch of the synthetic bench (from `loop.load_data`, so every batch layout works) and
timed on `tf.function(model.train_step)` and `tf.function(model.call)` (each model's inference
path: translate / swap / transfer). PyTorch counterparts come from
`benchmarks/torch_equivalents` (official code where it exists); "interleaved" means that every
repeat times tfattr and then PyTorch on the same model, so load from other processes on a shared
machine hits both alike. Images per train step = the global batch (two-domain models count the
pair as one example of each domain: 2 x batch images).

FLOPs: tfattr from TensorFlow's graph profiler on the traced step, PyTorch from FlopCounterMode;
both count 2 FLOPs per multiply-add.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def images_per_example(batch) -> int:
    return 2 if "image_a" in batch else 1


def bench_attributes(name):
    """The attributes of the model's synthetic-bench flagfile (experiments/<name>_*.flags), if any:
    some models need a particular kind (e.g. categorical only)."""
    import glob

    for path in sorted(glob.glob(os.path.join(REPO, "experiments", f"{name}_*.flags"))):
        lines = [ln.strip() for ln in open(path)]
        if "--dataset=synthetic" in lines:
            for ln in lines:
                if ln.startswith("--attributes="):
                    return tuple(ln.split("=", 1)[1].split(","))
    return None


def build(name, image_size, batch_size, cache_dir, mixed_precision="float32", hparams=""):
    import keras

    from tfattr import config as config_lib
    from tfattr import models
    from tfattr.training import loop, precision

    keras.utils.set_random_seed(0)
    module = models.get(name)
    config = config_lib.TrainConfig(model=name, dataset="synthetic", image_size=image_size, batch_size=batch_size,
                                    attributes=bench_attributes(name),
                                    dataset_options=f"num_train=64,num_validation=8,num_test=8,cache_dir={cache_dir}")
    dataset, schema = loop.load_data(config, "train", batch_size, 0)
    batch = next(iter(dataset))
    model_config = models.config_from_hparams(name, hparams) if hparams else module.Config()
    model = precision.build_model(name, schema, image_size, model_config, mixed_precision)
    model.compile(precision.optimizers(model, mixed_precision))
    return model, batch


def tf_flops(function, batch) -> float | None:
    """Float ops of one call of a traced tf.function, from TensorFlow's graph profiler (None if it cannot count)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    try:
        graph = function.get_concrete_function(batch).graph
        opts = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation()) \
            .with_empty_output().build()
        return float(model_analyzer.profile(graph, options=opts).total_float_ops)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        print(f"  (FLOP count failed: {type(e).__name__}: {e})", file=sys.stderr)
        return None


def timed(fn, steps) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def run_throughput(args):
    import tensorflow as tf

    from tfattr import models

    time_tf = args.only != "torch"
    torch_equivalents = {}
    if not args.no_torch and args.only != "tf":
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        from benchmarks.torch_equivalents import EQUIVALENTS as torch_equivalents
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    names = sorted(models.MODELS) if args.models == "all" else args.models.split(",")
    results = []
    for name in names:
        print(f"== {name}", flush=True)
        try:
            model, batch = build(name, args.image_size, args.batch_size, args.cache_dir, args.mixed_precision,
                                 args.hparams)
        except Exception as e:  # noqa: BLE001 - one model failing must not hide the others
            print(f"  build failed: {type(e).__name__}: {e}", flush=True)
            results.append({"model": name, "error": f"{type(e).__name__}: {e}"})
            continue
        images = args.batch_size * images_per_example(batch)
        train = tf.function(model.train_step, jit_compile=args.jit_compile)
        infer = tf.function(lambda b: model(b, training=False), jit_compile=args.jit_compile)

        def tf_train():
            logs = train(batch)
            float(next(iter(logs.values())))  # wait for the step to finish

        def tf_infer():
            _ = tf.nest.map_structure(lambda t: t.numpy(), infer(batch))

        row = {"model": name, "images_per_step": images}
        if time_tf:
            row["tf"] = {"train_s": [], "infer_s": []}
            tf_train(), tf_infer()  # trace
            tf_train(), tf_infer()
        xla = None
        if args.xla and time_tf:  # the same model, XLA-compiled (`--jit_compile`), timed in the same interleaving
            xla_train = tf.function(model.train_step, jit_compile=True)
            xla_infer = tf.function(lambda b: model(b, training=False), jit_compile=True)
            xla = (lambda: float(next(iter(xla_train(batch).values()))),
                   lambda: tf.nest.map_structure(lambda t: t.numpy(), xla_infer(batch)))
            try:
                for _ in range(2):
                    xla[0](), xla[1]()
                row["tf_xla"] = {"train_s": [], "infer_s": []}
            except Exception as e:  # noqa: BLE001 - reported, not fatal
                row["tf_xla_error"] = f"{type(e).__name__}: {str(e)[:300]}"
                xla = None
        bench = None
        if name in torch_equivalents:
            bench = torch_equivalents[name](model, args.batch_size)
            bench.train_step(), bench.infer()
            row["torch"] = {"source": bench.source, "notes": bench.notes, "train_s": [], "infer_s": []}
        for r in range(args.repeats):
            if time_tf:
                row["tf"]["train_s"].append(timed(tf_train, args.steps))
            if bench:
                row["torch"]["train_s"].append(timed(bench.train_step, args.steps))
            if xla:
                row["tf_xla"]["train_s"].append(timed(xla[0], args.steps))
            if time_tf:
                row["tf"]["infer_s"].append(timed(tf_infer, args.steps))
            if xla:
                row["tf_xla"]["infer_s"].append(timed(xla[1], args.steps))
            if bench:
                row["torch"]["infer_s"].append(timed(bench.infer, args.steps))
            print(f"  repeat {r}: " + json.dumps({k: [round(v[-1], 4) for v in (row[k]["train_s"], row[k]["infer_s"])]
                                                    for k in ("tf", "tf_xla", "torch") if k in row}), flush=True)
        if time_tf:
            row["tf"]["train_flops"] = tf_flops(train, batch) if not args.no_flops else None
            row["tf"]["infer_flops"] = tf_flops(infer, batch) if not args.no_flops else None
        if bench and not args.no_flops:
            row["torch"]["train_flops"] = bench.train_flops()
            row["torch"]["infer_flops"] = bench.infer_flops()
        if "tf_xla" in row:
            row["tf_xla"]["train_flops"], row["tf_xla"]["infer_flops"] = row["tf"]["train_flops"], row["tf"]["infer_flops"]
        for side in ("tf", "tf_xla", "torch"):
            if side not in row:
                continue
            d = row[side]
            d["train_images_per_s"] = images / statistics.median(d["train_s"])
            d["infer_images_per_s"] = args.batch_size / statistics.median(d["infer_s"])
            for kind in ("train", "infer"):
                fl = d.get(f"{kind}_flops")
                d[f"{kind}_gflops_per_s"] = fl / statistics.median(d[f"{kind}_s"]) / 1e9 if fl else None
        if "torch" in row and "tf" in row:
            row["ratio_train"] = row["tf"]["train_images_per_s"] / row["torch"]["train_images_per_s"]
            row["ratio_infer"] = row["tf"]["infer_images_per_s"] / row["torch"]["infer_images_per_s"]
            if "tf_xla" in row:
                row["ratio_train_xla"] = row["tf_xla"]["train_images_per_s"] / row["torch"]["train_images_per_s"]
                row["ratio_infer_xla"] = row["tf_xla"]["infer_images_per_s"] / row["torch"]["infer_images_per_s"]
        print("  " + json.dumps({k: v for k, v in row.items() if k.startswith("ratio")}), flush=True)
        results.append(row)
        del model, bench
    return results


def rss_child(args):
    """Peak RSS of one process that builds `args.rss_child`, trains 3 steps and runs inference 3 times."""
    import tensorflow as tf

    model, batch = build(args.rss_child, args.image_size, args.batch_size, args.cache_dir, args.mixed_precision,
                         args.hparams)
    train = tf.function(model.train_step, jit_compile=args.jit_compile)
    infer = tf.function(lambda b: model(b, training=False), jit_compile=args.jit_compile)
    for _ in range(3):
        float(next(iter(train(batch).values())))
        tf.nest.map_structure(lambda t: t.numpy(), infer(batch))
    params = sum(int(tf.size(v)) for v in model.trainable_variables)
    print(json.dumps({"model": args.rss_child, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "trainable_parameters": params}))


def run_rss(args):
    from tfattr import models

    names = sorted(models.MODELS) if args.models == "all" else args.models.split(",")
    out = []
    for name in names:
        cmd = [sys.executable, os.path.abspath(__file__), f"--rss_child={name}", f"--image_size={args.image_size}",
               f"--batch_size={args.batch_size}", f"--cache_dir={args.cache_dir}",
               f"--mixed_precision={args.mixed_precision}", f"--hparams={args.hparams}"] + (
                   ["--jit_compile"] if args.jit_compile else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.rss_timeout)
        except subprocess.TimeoutExpired:
            out.append({"model": name, "error": f"no result within --rss_timeout={args.rss_timeout} s"})
            print(json.dumps(out[-1]), flush=True)
            continue
        if proc.returncode:
            out.append({"model": name, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(out[-1]), flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="all", help="comma-separated names or 'all' (tfattr.models.MODELS)")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="timed calls per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for both frameworks")
    p.add_argument("--jit_compile", action="store_true", help="XLA for the main tfattr timing")
    p.add_argument("--xla", action="store_true", help="also time an XLA-compiled tfattr variant, interleaved")
    p.add_argument("--only", choices=("both", "tf", "torch"), default="both",
                   help="time one framework per process (no interleaving): on an idle machine each side then has "
                        "the cores alone; interleaved, one framework's idle worker threads were seen to slow the "
                        "other (PyTorch's mask_transfer step 1.3-1.5 s in one run, 2.6 s in the next)")
    p.add_argument("--mixed_precision", default="float32")
    p.add_argument("--hparams", default="", help="model Config overrides (name=value,...) instead of the paper "
                   "defaults, e.g. a flagfile's --hparams; needs a single --models name")
    p.add_argument("--no_torch", action="store_true")
    p.add_argument("--no_flops", action="store_true")
    p.add_argument("--cache_dir", default="/tmp/tfattr_speed_cache")
    p.add_argument("--rss", action="store_true", help="peak RSS per model, one subprocess each")
    p.add_argument("--rss_timeout", type=int, default=3600, help="seconds per model subprocess (--rss)")
    p.add_argument("--rss_child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    if args.hparams and (args.models == "all" or "," in args.models):
        p.error("--hparams names one model's Config fields: give a single --models name with it")
    if args.rss_child:
        return rss_child(args)
    results = run_rss(args) if args.rss else run_throughput(args)
    meta = {"args": vars(args), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_at_end": os.getloadavg(), "cpus": os.cpu_count()}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
    print(json.dumps({"meta": meta}))


if __name__ == "__main__":
    main()
