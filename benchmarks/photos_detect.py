"""MTCNN on the two real sample photos: timings and landmark residuals (benchmarks/photos.md)."""
import time

import matplotlib.cbook
import numpy as np
import skimage.data
from PIL import Image

from tfattr.photos import align, detect
t0 = time.time(); detect._detector(); print(f"MTCNN init {time.time()-t0:.1f}s")
for name, img in [("grace_hopper.jpg", detect.load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                  ("astronaut", skimage.data.astronaut())]:
    t0 = time.time(); faces = detect.detect_faces(img); dt = time.time() - t0
    for tpl in ("bench", "celeba"):
        m = align.alignment_matrix(faces[0].landmarks5, 64, tpl)
        e = np.linalg.norm(align.apply(m, faces[0].landmarks5) - align.template_for(tpl) * 64, axis=1)
        print(f"{name} {img.shape}: {len(faces)} face(s), detect {dt:.2f}s; residual to {tpl} template at 64px: max {e.max():.2f} px, mean {e.mean():.2f}")
big = np.asarray(Image.fromarray(img).resize((4096, 4096)))
t0 = time.time(); f = detect.detect_faces(big); print(f"4096x4096 (astronaut x8, detect at 1024): {time.time()-t0:.2f}s, {len(f)} face(s)")
