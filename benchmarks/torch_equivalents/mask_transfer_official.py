"""mask_transfer against the authors' PyTorch code (rmokady/mbu-content-tansfer), for the speed benchmark.

The networks are imported from the official `mask_models.py` (checked out outside this repository,
never committed: set MBU_ROOT, default /work/third_party/mbu). The train step restates the body of
the official `mask_train.py` loop (its data loading needs CelebA and torchvision), with its default
weights, Adam and gradient-norm clipping at 5. At 128 px the official networks equal tfattr's
defaults (widths 32..512-sep, sep=25 channels at 2x2, batch norm), except that tfattr's
second-to-last common-encoder width is 512-2*sep (App. A) where the release keeps 512-sep.
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

MBU_ROOT = os.environ.get("MBU_ROOT", "/work/third_party/mbu")


def load_official():
    if not os.path.exists(os.path.join(MBU_ROOT, "mask_models.py")):
        raise FileNotFoundError(f"{MBU_ROOT}/mask_models.py not found: clone rmokady/mbu-content-tansfer there "
                                "or set MBU_ROOT")
    sys.path.insert(0, MBU_ROOT)
    try:
        import mask_models
    finally:
        sys.path.remove(MBU_ROOT)
    return mask_models


def bench(tf_model, batch_size):
    from benchmarks.torch_equivalents import TorchBench, count_flops

    mm = load_official()
    s = tf_model.image_size
    if s % 64:
        raise ValueError(f"the official mask_transfer networks need image_size a multiple of 64, got {s}")
    from tfattr.models.mask_transfer import separate_channels

    # The official default --sep=25 channels is tfattr's sep=100 at 128 px (2x2 code); at other
    # sizes take tfattr's channel count so both run the same code size.
    size, sep = s // 64, separate_channels(tf_model.config, s)
    e1, e2, d_a, d_b, disc = mm.E1(sep, size), mm.E2(sep, size), mm.D_A(size), mm.D_B(size), mm.Disc(sep, size)
    ae_params = [*e1.parameters(), *e2.parameters(), *d_a.parameters(), *d_b.parameters()]
    ae_opt = torch.optim.Adam(ae_params, lr=2e-4, betas=(0.5, 0.999))
    disc_opt = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    mse, bce, l1 = nn.MSELoss(), nn.BCELoss(), nn.L1Loss()
    a_img = torch.rand(batch_size, 3, s, s) * 2 - 1
    b_img = torch.rand(batch_size, 3, s, s) * 2 - 1
    a_label, b_label = torch.ones(batch_size), torch.zeros(batch_size)
    b_separate = torch.zeros(batch_size, sep * size * size)
    alpha1 = alpha2 = 0.7
    beta1, beta2, gama, delta, discweight = 0.0, 0.001, 7.0, 5.0, 0.005  # mask_train.py defaults

    def train_step():
        for m in (e1, e2, d_a, d_b, disc):
            m.train()
        ae_opt.zero_grad()
        a_common, a_sep = e1(a_img), e2(a_img)
        a_enc = torch.cat([a_common, a_sep], 1)
        a_shaved = torch.cat([a_common, b_separate], 1)
        b_common = e1(b_img)
        b_enc = torch.cat([b_common, b_separate], 1)
        a_dec, _ = d_b(a_enc, d_a(a_shaved))
        b_dec = d_a(b_enc)
        loss = gama * l1(a_dec, a_img) + delta * l1(b_dec, b_img)
        c_dec, _ = d_b(torch.cat([b_common, a_sep], 1), b_img)
        b_rec, _ = d_b(b_enc, b_img)
        a_rec, _ = d_b(a_enc, a_img)
        loss = loss + beta1 * mse(e1(c_dec), b_common) + beta2 * mse(e2(c_dec), a_sep)
        loss = loss + alpha1 * l1(a_rec, a_img) + alpha2 * l1(b_rec, b_img)
        loss = loss + discweight * (bce(disc(a_common), b_label) + bce(disc(b_common), b_label))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae_params, 5)
        ae_opt.step()
        disc_opt.zero_grad()
        d_loss = bce(disc(e1(a_img)), a_label) + bce(disc(e1(b_img)), b_label)
        d_loss.backward()
        torch.nn.utils.clip_grad_norm_(disc.parameters(), 5)
        disc_opt.step()

    @torch.inference_mode()
    def infer():  # guided transfer z(a, b) = D_B(E_c(a), E_s(b)) composited over a
        for m in (e1, e2, d_b):
            m.eval()
        d_b(torch.cat([e1(a_img), e2(b_img)], 1), a_img)

    return TorchBench("official: rmokady/mbu-content-tansfer mask_models.py (+ mask_train.py step)", train_step,
                      infer, lambda: count_flops(train_step), lambda: count_flops(infer),
                      notes="the official step runs more network passes than tfattr's (see speed.md)")
