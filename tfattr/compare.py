"""Compare runs: `python -m tfattr.compare --run_dirs=a,b,... --out=DIR [--metrics=...]`.

--metrics, --seed, --inception_weights, --cache_dir and --progress are `tfattr.evaluate`'s flags
(default metrics here: the bench swap trio `oracle_acc_swap_2k`, `oracle_pres_swap_2k`, `cf_l1_swap_2k`).

Evaluates every run with the same registry metrics (presets allowed), then writes
  * `DIR/comparison.md`: one table, a row per (metric, method, attribute), a column per run;
  * `DIR/comparison.jsonl`: every record, with its run directory;
  * `DIR/compare_<attribute>.png`: the same bench test pairs through every model that can edit the
    attribute (rows: sources, references, then one row per run in --run_dirs order; a blank row
    for a model that cannot do it).
"""

from __future__ import annotations

import json
import os

from tfattr.utils import process_env

process_env.set_defaults()  # before TensorFlow starts: log level, the BFC CPU allocator

import numpy as np
from absl import app, flags

from tfattr import evaluate  # noqa: F401  (shares --metrics, --seed, --inception_weights, --cache_dir, --progress)

FLAGS = flags.FLAGS
flags.DEFINE_list("run_dirs", None, "Run directories to compare.")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_integer("figure_pairs", 6, "Pairs per comparison figure.")
DEFAULT_METRICS = ("oracle_acc_swap_2k", "oracle_pres_swap_2k", "cf_l1_swap_2k")


def run_label(run_dir: str) -> str:
    return os.path.basename(os.path.normpath(run_dir))


def comparison_table(records_by_run: dict[str, list[dict]], skipped_by_run: dict[str, dict] | None = None) -> str:
    """Markdown: rows (metric, method, attribute), one value column per run ("-" when absent)."""
    runs = list(records_by_run)
    rows: dict[tuple, dict[str, str]] = {}
    for run, records in records_by_run.items():
        for r in records:
            key = (r["metric"], r.get("method", "model"), str(r.get("attribute", "")))
            v = r["value"]
            text = f"{v:.4f}" if isinstance(v, float) else str(v)
            if r.get("std") is not None:
                text += f" ± {r['std']:.4f}"
            rows.setdefault(key, {})[run] = text
    for run, skipped in (skipped_by_run or {}).items():
        for name in skipped:
            rows.setdefault((name, "model", ""), {}).setdefault(run, "n/a")
    lines = ["| metric | method | attribute | " + " | ".join(runs) + " |", "|---|---|---|" + "---|" * len(runs)]
    for key in sorted(rows):
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(rows[key].get(r, "-") for r in runs) + " |")
    return "\n".join(lines)


def side_by_side(contexts: list, attribute: str, num_pairs: int = 6, seed: int = 0) -> np.ndarray | None:
    """uint8 grid: sources, references, then each context's edit of `attribute` (reference's value).

    Args:
      contexts: `registry.EvalContext`s on the synthetic bench, one per model.
      attribute: bench attribute.
      num_pairs: columns.
      seed: bench seed.

    Returns:
      The image, or None when no model edits `attribute`.
    """
    import tensorflow as tf

    from tfattr.data import synthetic
    from tfattr.metrics import protocols, registry
    from tfattr.utils import image_grid

    bench = registry.BenchTestSet(seed)
    src_all, ref_all = protocols.zhang2019_pairs(400)
    g = synthetic.SCHEMA.index(attribute)
    lab_s, lab_r = bench.labels(src_all)[:, g], bench.labels(ref_all)[:, g]
    keep = np.nonzero(lab_s != lab_r)[0][:num_pairs]
    src, ref = src_all[keep], ref_all[keep]
    size = max(ctx.ops.image_size for ctx in contexts)
    show = lambda x: image_grid.to_uint8(x if x.shape[1] == size else tf.image.resize(x, (size, size)).numpy())
    rows = [list(show(bench.images(src, size))), list(show(bench.images(ref, size)))]
    any_model = False
    for ctx in contexts:
        names = registry.editable(ctx)
        if attribute not in names:
            rows.append([None] * len(src))
            continue
        mask = np.zeros((len(src), len(names)), bool)
        mask[:, names.index(attribute)] = True
        rows.append(list(show(registry.edit_by_reference_or_label(ctx, src, ref, mask, names))))
        any_model = True
    if not any_model:
        return None
    tiles = [t for row in rows for t in row]
    if tiles[0] is None:
        return None
    return image_grid.grid(tiles, len(rows), len(src))


def main(argv):
    del argv
    if not FLAGS.run_dirs or not FLAGS.out:
        raise app.UsageError("--run_dirs and --out are required")
    from tfattr.metrics import registry
    from tfattr.training import loop
    from tfattr.utils import image_grid

    metrics = FLAGS.metrics or list(DEFAULT_METRICS)
    try:
        registry.resolve(metrics)
    except registry.UnknownMetricError as e:
        raise app.UsageError(f"--metrics: {e}")
    os.makedirs(FLAGS.out, exist_ok=True)
    records_by_run, skipped_by_run, contexts = {}, {}, []
    for run_dir in FLAGS.run_dirs:
        label = run_label(run_dir)
        model, step, meta = loop.load_model_from_run(run_dir)
        ctx = registry.make_context(model, meta, step, FLAGS.seed, FLAGS.inception_weights, FLAGS.cache_dir)
        print(f"{label}: {meta['train']['model']} step {step}; operations {', '.join(sorted(ctx.ops.supported))}")
        records, skipped = registry.evaluate_metrics(ctx, metrics, progress=FLAGS.progress)
        records_by_run[label] = [{**r, "run_dir": run_dir} for r in records]
        skipped_by_run[label] = skipped
        if getattr(ctx.testset, "is_bench", False):
            contexts.append(ctx)
    table = comparison_table(records_by_run, skipped_by_run)
    with open(os.path.join(FLAGS.out, "comparison.jsonl"), "w") as f:
        for records in records_by_run.values():
            for r in records:
                f.write(json.dumps(r, default=registry._json_default) + "\n")
    figure_lines = []
    if contexts:
        from tfattr.data import synthetic

        attrs = [a for a in synthetic.SCHEMA.names if any(a in registry.editable(c) for c in contexts)]
        for attr in attrs:
            img = side_by_side(contexts, attr, FLAGS.figure_pairs, FLAGS.seed)
            if img is not None:
                path = os.path.join(FLAGS.out, f"compare_{attr}.png")
                image_grid.save_png(path, img)
                figure_lines.append(f"* `{os.path.basename(path)}`: rows = sources, references, "
                                    + ", ".join(run_label(c) for c in FLAGS.run_dirs))
    with open(os.path.join(FLAGS.out, "comparison.md"), "w") as f:
        f.write(table + "\n\n" + "\n".join(figure_lines) + "\n")
    print(table)
    print("\n".join(figure_lines))


if __name__ == "__main__":
    app.run(main)
