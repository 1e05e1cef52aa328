"""Evaluate a training run: `python -m tfattr.evaluate --run_dir=RUN [--protocols=bench_swap]`.

Writes `metric-<protocol>.jsonl` (one JSON record per line, with model, step, split and seed) and
`metric-<protocol>.md` in the run directory, and with --figures a Fig. 3-style swap grid and a
Fig. 4-style blend strip per attribute under `figures/`.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Training run directory.", required=True)
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: latest).")
flags.DEFINE_list("protocols", ["bench_swap"], "Protocols to run: bench_swap.")
flags.DEFINE_list("attributes", None, "Attributes to evaluate (default: all the model was trained on).")
flags.DEFINE_integer("num_pairs", 500, "Test pairs per protocol.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Bench seed of the evaluation pairs.")
flags.DEFINE_boolean("figures", True, "Write swap grids and blend strips.")

PROTOCOLS = ("bench_swap",)


def main(argv):
    del argv
    for p in FLAGS.protocols:
        if p not in PROTOCOLS:
            raise app.UsageError(f"--protocols: unknown protocol {p!r}; valid: {', '.join(PROTOCOLS)}")
    from tfattr.metrics import oracle as oracle_lib
    from tfattr.metrics import transfer
    from tfattr.training import loop

    model, step, meta = loop.load_model_from_run(FLAGS.run_dir, FLAGS.checkpoint)
    if meta["train"]["dataset"] != "synthetic":
        raise app.UsageError(f"bench_swap needs a run trained on the synthetic bench; {FLAGS.run_dir} used "
                             f"{meta['train']['dataset']!r}")
    attributes = FLAGS.attributes or model.schema.names
    oracle = oracle_lib.load_oracle()
    swap = lambda a, b, names: model.transfer_from_reference(a, b, names).numpy()
    records = transfer.evaluate_swap(swap, attributes, model.image_size, oracle, FLAGS.num_pairs, FLAGS.seed)
    records += transfer.summarize(records)
    common = {"model": meta["train"]["model"], "step": step, "split": "test", "seed": FLAGS.seed,
              "run_dir": FLAGS.run_dir}
    path = os.path.join(FLAGS.run_dir, "metric-bench_swap.jsonl")
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps({**common, **r}) + "\n")
    table = transfer.markdown_table(records)
    with open(os.path.join(FLAGS.run_dir, "metric-bench_swap.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    if FLAGS.figures and hasattr(model, "blend"):
        from tfattr.metrics import figures

        for p in figures.write_swap_figures(model, attributes, os.path.join(FLAGS.run_dir, "figures"), FLAGS.seed):
            print(p)


if __name__ == "__main__":
    app.run(main)
