"""Alignment of bench faces to the bench template (benchmarks/photos.md): python benchmarks/photos_alignment.py"""
import numpy as np
from tfattr.data import synthetic
from tfattr.photos import align
S = 64
p = synthetic.params_for(0, "test", np.arange(1000))
for name, q in [("all test faces", p), ("frontal, neutral, mouth closed", synthetic.counterfactual(p, {"Pose": "frontal", "Expression": "neutral", "Smiling": "no", "Mouth_Slightly_Open": "no"}))]:
    lm = synthetic.render(q, S, outputs=("landmarks5",))["landmarks5"]
    t = align.bench_template() * S
    e = np.array([np.linalg.norm(align.apply(align.alignment_matrix(l, S), l) - t, axis=1).max() for l in lm])
    print(f"{name}: max-landmark residual to template at {S}px: median {np.median(e):.2f}, p90 {np.percentile(e,90):.2f}, max {e.max():.2f}")
rng = np.random.default_rng(1)
out = synthetic.render({k: v[:200] for k, v in p.items()}, S, outputs=("image", "landmarks5"))
errs = []
for img, l in zip(out["image"], out["landmarks5"]):
    a, s = rng.uniform(-0.5, 0.5), rng.uniform(1.5, 3.0)
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    place = np.concatenate([rot, rng.uniform(60, 90, [2, 1])], 1)
    pl = align.apply(place, l)
    m = align.alignment_matrix(pl, S); own = align.alignment_matrix(l, S)
    errs.append(np.linalg.norm(align.apply(m, pl) - align.apply(own, l), axis=1).max())
print(f"placed in a photo (rot +-0.5 rad, scale 1.5-3): recovery error vs own crop: max {max(errs):.2e} px over 200 faces")
