"""latent_swap's networks and train step restated in PyTorch, layer for layer, for the speed benchmark.

Mirrors tfattr/models/latent_swap.py (Zhang et al. 2019): encoder (conv7, two stride-2 conv4,
residual blocks, 1x1 embedding), decoder (conv3, residual blocks, two stride-2 transposed conv4,
conv7 tanh), spectrally normalised PatchGAN discriminator with a classification head, and the
unit-wise verifier; the step does the same passes (encode, swap, decode, re-encode, swap back,
decode, D on the swap; then D on real and fake with the gradient penalty). Differences that do
not change the work measurably: every attribute column uses a sigmoid cross-entropy (tfattr uses
softmax for categorical groups) and the swap choice is fixed.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm


def _norm(kind, c):
    return nn.BatchNorm2d(c) if kind == "batch" else nn.GroupNorm(c, c, affine=True)


def conv_norm_act(cin, cout, k, stride=1, norm="batch", act="relu", transpose=False):
    # Keras "same": odd kernels pad (k-1)/2; the stride-2 kernel-4 convs pad 1 on each side.
    pad = (k - 1) // 2 if k % 2 else 1
    conv = (nn.ConvTranspose2d(cin, cout, k, stride, 1, bias=False) if transpose
            else nn.Conv2d(cin, cout, k, stride, pad, bias=False))
    layers = [conv, _norm(norm, cout)]
    if act == "relu":
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, c, norm):
        super().__init__()
        self.body = nn.Sequential(conv_norm_act(c, c, 3, norm=norm), conv_norm_act(c, c, 3, norm=norm, act=None))

    def forward(self, x):
        return x + self.body(x)


class Discriminator(nn.Module):
    def __init__(self, image_size, width, max_width, num_columns, spectral):
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        n = max(1, int(math.log2(image_size)) - 1)
        layers, cin = [], 3
        for i in range(n):
            cout = min(width * 2**i, max_width)
            layers += [sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.01)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.adv = sn(nn.Conv2d(cin, 1, 3, 1, 1))
        self.cls = sn(nn.Conv2d(cin, num_columns, image_size // 2**n))

    def forward(self, x):
        h = self.body(x)
        return self.adv(h), self.cls(h).flatten(1)


class LatentSwap(nn.Module):
    def __init__(self, image_size, num_units, num_columns, base_width=64, unit_channels=16, irrelevant_channels=160,
                 num_res_blocks=6, d_width=64, d_max_width=2048, spectral=True, norm="batch"):
        super().__init__()
        w = base_width
        self.k, self.uc = num_units, unit_channels
        self.channels = num_units * unit_channels + irrelevant_channels
        n_enc = num_res_blocks // 2
        self.encoder = nn.Sequential(
            conv_norm_act(3, w, 7, norm=norm), conv_norm_act(w, 2 * w, 4, 2, norm=norm),
            conv_norm_act(2 * w, 4 * w, 4, 2, norm=norm), *[Residual(4 * w, norm) for _ in range(n_enc)],
            nn.Conv2d(4 * w, self.channels, 1))
        self.decoder = nn.Sequential(
            conv_norm_act(self.channels, 4 * w, 3, norm=norm),
            *[Residual(4 * w, norm) for _ in range(num_res_blocks - n_enc)],
            conv_norm_act(4 * w, 2 * w, 4, 2, norm=norm, transpose=True),
            conv_norm_act(2 * w, w, 4, 2, norm=norm, transpose=True),
            nn.Conv2d(w, 3, 7, 1, 3), nn.Tanh())
        self.discriminator = Discriminator(image_size, d_width, d_max_width, num_columns, spectral)
        latent = image_size // 4
        self.per_unit = latent * latent * unit_channels
        self.verifier_kernel = nn.Parameter(torch.randn(num_units, self.per_unit) * (2 / (1 + self.per_unit)) ** 0.5)
        self.verifier_bias = nn.Parameter(torch.zeros(num_units))

    def verify(self, u):  # u: [B, k*c, h, w] -> [B, k]
        b = u.shape[0]
        u = u.reshape(b, self.k, self.uc, *u.shape[2:]).reshape(b, self.k, -1)
        return torch.einsum("bkn,kn->bk", u, self.verifier_kernel) + self.verifier_bias

    def mix(self, a, b, swap):
        m = torch.cat([swap.repeat_interleave(self.uc, 1), swap.new_zeros(swap.shape[0], self.channels - self.k * self.uc)], 1)
        m = m[:, :, None, None]
        return (1 - m) * a + m * b

    def swap(self, source, reference, swap):
        return self.decoder(self.mix(self.encoder(source), self.encoder(reference), swap))


def bench(tf_model, batch_size):
    from benchmarks.torch_equivalents import TorchBench, count_flops

    c, s = tf_model.config, tf_model.image_size
    k, cols = len(tf_model.schema), tf_model.schema.num_columns
    net = LatentSwap(s, k, cols, c.base_width, c.unit_channels, c.irrelevant_channels, c.num_res_blocks, c.d_width,
                     c.d_max_width, c.d_spectral_norm, c.g_norm)
    g_params = list(net.encoder.parameters()) + list(net.decoder.parameters()) + [net.verifier_kernel, net.verifier_bias]
    opt_g = torch.optim.Adam(g_params, c.lr_g, betas=(c.beta_1, c.beta_2))
    opt_d = torch.optim.Adam(net.discriminator.parameters(), c.lr_d, betas=(c.beta_1, c.beta_2))
    x = torch.rand(batch_size, 3, s, s) * 2 - 1
    y = (torch.rand(batch_size, cols) > 0.5).float()
    perm = torch.arange(batch_size) ^ 1
    swap = (torch.rand(batch_size // 2, k) > 0.5).float().repeat_interleave(2, 0)
    n = k * c.unit_channels
    lambda_cls_d = c.lambda_cls if c.lambda_cls_d is None else c.lambda_cls_d
    gp_anchor = torch.zeros((), requires_grad=True)

    def train_step():
        net.train()
        e = net.encoder(x)
        x_t = net.decoder(net.mix(e, e[perm], swap))
        e_t = net.encoder(x_t)
        e_back = net.mix(e_t, e_t[perm], swap)
        x_back = net.decoder(e_back)
        adv, cls = net.discriminator(x_t)
        same = net.verify((e[:, :n] - e_back[:, :n]).abs())
        other = net.verify((e[:, :n] - e_back[perm][:, :n]).abs())
        g_loss = (-adv.mean() + c.lambda_cls * F.binary_cross_entropy_with_logits(cls, y)
                  + c.lambda_ver * (F.softplus(-same).mean() + F.softplus(other).mean())
                  + c.lambda_rec * (x - x_back).abs().mean())
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

        fake = x_t.detach()
        adv_r, cls_r = net.discriminator(x)
        adv_f, _ = net.discriminator(fake)
        d_loss = F.relu(1 - adv_r).mean() + F.relu(1 + adv_f).mean() + lambda_cls_d * F.binary_cross_entropy_with_logits(cls_r, y)
        if c.lambda_gp > 0:
            eps = torch.rand(batch_size, 1, 1, 1)
            # A non-leaf (x + 0*anchor) so FlopCounterMode can follow autograd.grad through it.
            mixed = eps * x + (1 - eps) * fake + 0.0 * gp_anchor
            out = net.discriminator(mixed)[0].flatten(1).mean(1)
            (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
            d_loss = d_loss + c.lambda_gp * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    ones = torch.ones(batch_size, k)

    @torch.inference_mode()
    def infer():
        net.eval()
        net.swap(x, x[perm], ones)

    return TorchBench("re-statement: benchmarks/torch_equivalents/latent_swap_torch.py", train_step, infer,
                      lambda: count_flops(train_step), lambda: count_flops(infer))
