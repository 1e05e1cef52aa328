"""`python -m tfattr.export --run_dir=RUN --export_dir=DIR [--name=latent_swap --version=2]`.

Restores a run's latest checkpoint (or --checkpoint) and writes `<export_dir>/<name>/<version>/`,
then reloads it and checks every signature against the eager model.
"""

import os

from tfattr.utils import process_env

process_env.set_defaults()  # before TensorFlow starts: log level, the BFC CPU allocator

from absl import app, flags

from tfattr.utils import flag_util

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Training run directory (with config.json and checkpoints/).", required=True)
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: the latest in run_dir/checkpoints).")
flags.DEFINE_list("average_checkpoints", [], "Export the mean weights of these checkpoints of the run (steps "
                  "such as 11000,12000,13000,14000, or prefixes), batch norm re-estimated; instead of --checkpoint.")
flags.DEFINE_string("export_dir", None, "Model base directory parent (default: run_dir/export).")
flags.DEFINE_string("name", None, "Served model name (default: the model's name).")
flags.DEFINE_integer("version", 1, "Version directory.", lower_bound=1)
flags.DEFINE_boolean("overwrite", False, "Replace an existing version directory.")
flags.DEFINE_boolean("verify", True, "Reload the export and compare every signature with the eager model.")


def main(argv):
    del argv
    from tfattr.export import saved_model

    model, step, meta = flag_util.load_run_model(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.average_checkpoints)
    name = FLAGS.name or meta["train"]["model"]
    export_dir = FLAGS.export_dir or os.path.join(FLAGS.run_dir, "export")
    path = saved_model.export(model, export_dir, name, FLAGS.version, overwrite=FLAGS.overwrite,
                              metadata={"train": meta["train"], "model_config": meta["model"], "step": step,
                                        "averaged_weights": meta["inference_weights"]["averaged"],
                                        "batch_norm_batches": meta["inference_weights"]["batch_norm_batches"],
                                        "averaged_checkpoints": meta["inference_weights"].get("checkpoints", [])},
                              warmup_inputs=saved_model.example_inputs(model, batch_size=1))
    if FLAGS.verify:
        errors = saved_model.verify(path, model)
        print("verified: max abs difference per signature " + ", ".join(f"{k}={v:.2e}" for k, v in errors.items()))
    print(path)


if __name__ == "__main__":
    app.run(main)
