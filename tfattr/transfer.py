"""Edit the faces in your own photo: `python -m tfattr.transfer --model_dir=RUN_OR_EXPORT --source=me.jpg
[--reference=other.jpg] [--operation=swap] [--attributes=Smiling,Eyeglasses] --output=out.png`.

Faces are found with MTCNN, aligned with five landmarks to the crop the model was trained on, run
through one of the model's operations (its export signatures; `--list_operations` shows them) and
pasted back into the full-resolution photo with a feathered edge. Swap/blend operations take
`--attributes` as names (default: all); label edits ("translate") as name=value pairs.
"""

import sys

from tfattr.utils import process_env

process_env.set_defaults()  # before TensorFlow starts: log level, the BFC CPU allocator

from absl import app, flags

from tfattr.utils import flag_util

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Training run directory or exported SavedModel version directory.")
flags.DEFINE_string("source", None, "Photo whose faces are edited.")
flags.DEFINE_string("reference", None, "Photo whose (largest) face gives the attributes, for reference operations.")
flags.DEFINE_string("output", None, "Edited photo (PNG/JPEG by extension).")
flags.DEFINE_string("operation", None, "Model operation (signature name); default: the model's default.")
flag_util.define(flags.DEFINE_list, "attributes", None, "Swap: attribute names (default all). Label edit: name=value pairs.")
flags.DEFINE_float("alpha", 1.0, "Blend/interpolation weight for operations with an `alpha` input.")
flags.DEFINE_integer("face_index", None, "Edit only this face (largest first); default: every face.")
flags.DEFINE_integer("reference_face_index", 0, "Face of --reference to use (largest first).")
flags.DEFINE_enum("template", None, ["bench", "celeba"], "Alignment template; default: from the training dataset.")
flags.DEFINE_integer("max_detect_side", 1024, "Photos larger than this are downscaled for detection only.",
                     lower_bound=64)
flags.DEFINE_string("mask_output", None, "Where to write the mask (operations with a mask output).")
flags.DEFINE_string("crops_output", None, "Optional PNG with the aligned crops (row 1) and edited crops (row 2).")
flags.DEFINE_boolean("list_operations", False, "Print the model's photo operations and their inputs, then exit.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required")
    from tfattr.photos import detect, edit, operations

    engine = operations.Engine(FLAGS.model_dir)
    if FLAGS.list_operations:
        for op in engine.photo_operations():
            ref = " (needs --reference)" if engine.needs_reference(op) else ""
            print(f"{op}{ref}: inputs {', '.join(engine.specs[op])}")
        return 0
    for name in ("source", "output"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required")
    try:
        photo = detect.load_image(FLAGS.source)
        reference = detect.load_image(FLAGS.reference) if FLAGS.reference else None
        request = operations.Request(tuple(FLAGS.attributes or ()), FLAGS.alpha, reference is not None)
        result = edit.edit_photo(engine, photo, FLAGS.operation, reference, request, FLAGS.face_index,
                                 FLAGS.reference_face_index, FLAGS.template, FLAGS.source, FLAGS.reference or "",
                                 FLAGS.max_detect_side)
    except (detect.NoFaceError, operations.OperationError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    detect.save_image(FLAGS.output, result.image)
    if FLAGS.mask_output:
        if result.mask is None:
            print(f"warning: operation has no mask output; {FLAGS.mask_output} not written", file=sys.stderr)
        else:
            detect.save_image(FLAGS.mask_output, result.mask)
    if FLAGS.crops_output:
        import numpy as np

        rows = [np.concatenate(list(result.crops), axis=1)]
        if result.outputs is not None:
            rows.append(np.concatenate(list(result.outputs), axis=1))
        detect.save_image(FLAGS.crops_output, np.concatenate(rows, axis=0))
    print(f"{FLAGS.output}: edited {len(result.edited)} of {len(result.faces)} face(s) with "
          f"{FLAGS.operation or engine.default_signature!r}")
    return 0


def run_main():
    app.run(main)


if __name__ == "__main__":
    run_main()
