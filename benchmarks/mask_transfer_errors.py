"""Where a trained mask_transfer run's decoders err, inside vs outside the renderer's layer mask.

    python benchmarks/mask_transfer_errors.py --run_dir=RUN [--checkpoint=PREFIX] [--num=100]

On the first `num` bench test faces that have the run's domain attribute, prints per pixel (in
[-1, 1] units) |D_A(E_c(b)) - b| (the removed image's error: large only on the content if E_c is
content-free), |z_raw(b, b) - b| (D_B's raw image) and the soft mask m(b, b), each averaged inside
and outside the true layer mask. The mask can only localise where z_raw beats D_A (Eq. 6).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_dir", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--num", type=int, default=100)
    args = p.parse_args()

    from tfattr.data import synthetic as S
    from tfattr.training import loop

    model, step, _ = loop.load_model_from_run(args.run_dir, args.checkpoint)
    attribute = model.config.domain_attribute
    test = S.params_for(0, "test", np.arange(20 * args.num))
    idx = np.where(S.labels(test)[:, S.SCHEMA.index(attribute)] == 1)[0][:args.num]
    out = S.render({k: v[idx] for k, v in test.items()}, model.image_size, outputs=("image", "masks"))
    b = out["image"].astype(np.float32) / 127.5 - 1.0
    inside = out["masks"][S.ATTRIBUTE_MASKS[attribute]] > 0.5
    common, separate = model.common_encoder(b), model.separate_encoder(b)
    mask, raw = model.decode_b(common, separate)
    rows = {"|D_A(E_c(b)) - b|": np.abs(model.decoder_a(common).numpy() - b).mean(-1),
            "|z_raw(b, b) - b|": np.abs(raw.numpy() - b).mean(-1),
            "m(b, b)": mask.numpy()[..., 0]}
    print(f"step {step}, {attribute}, {len(idx)} faces, layer covers {inside.mean():.3f} of the pixels")
    for name, v in rows.items():
        print(f"  {name:20s} inside {v[inside].mean():.3f}  outside {v[~inside].mean():.3f}")


if __name__ == "__main__":
    main()
