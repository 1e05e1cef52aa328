"""mask_transfer: mask based unsupervised content transfer (Mokady et al., ICLR 2020).

Paper: ../shared/papers/mask_transfer__mokady2020_mask_based_content_transfer.txt (Sec. 3, App. A).

Two domains: A (faces without an attribute, e.g. glasses) and B (faces with it). A common encoder
E_c keeps what both domains share, a separate encoder E_s what only B has. D_A decodes a common
code to a domain-A image; D_B decodes a (common, separate) pair to a soft mask m and a raw image,
and the output keeps the target image outside the mask (Eqs. 1-2):

  m(a, b), z_raw(a, b) = D_B(E_c(a), E_s(b));   z(a, b) = m * z_raw + (1 - m) * a

Training (one batch = B_local examples of A and B_local of B, paired by index):
  L = lambda_dc L_DC + lambda_rec1_a |D_A(E_c(a)) - a| + lambda_rec1_b |z'(D_A(E_c(b)), b, b) - b|
      + lambda_cycle_* (|E_c(z(a,b)) - E_c(a)|^2, |E_s(z(a,b)) - E_s(b)|^2)
      + lambda_rec2_a |z(a,a) - a| + lambda_rec2_b |z(b,b) - b|                            (Eqs. 3, 5-9)
  L_C = BCE(C(E_c(a)), 0) + BCE(C(E_c(b)), 1)                                                  (Eq. 4)

Operations: `transfer` z(a, b) (guided transfer), `remove` (attribute removal with the binarised
mask), `segment` (weakly supervised segmentation m(b, b) > threshold), `interpolate` (blend of two
guides' E_s codes), `replace` (remove then add a guide's content) and `sequential_transfer`
(several models, e.g. glasses then beard).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfattr.data.attributes import Schema
from tfattr.layers import blocks
from tfattr.losses import mask as mask_losses
from tfattr.losses import reconstruction
from tfattr.models import base


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters. Defaults follow Mokady et al. 2020, Sec. 3 and Appendix A.

    The paper does not print λ1..λ5; Appendix J gives the ranges it found insensitive (λ1 in 3-7,
    λ4 in 0.4-1.0). The defaults are the authors' released settings for glasses, which sit inside
    those ranges: λ1 = λ2 = 5, cycle 1 + 1, λ4 = λ5 = 1; L_DC keeps the paper's weight 1.
    """

    # Domain B = examples whose `domain_attribute` equals `domain_value` (None: "yes" of a binary
    # attribute); domain A = the other labelled examples (Sec. 4, "Guided Content Transfer"), or only
    # those equal to `domain_value_a`. Sec. 4's hair segmentation pairs two classes of one attribute:
    # women with blond hair (A) against black hair (B); on the bench, Hair_Color black vs blond.
    domain_attribute: str = "Eyeglasses"
    domain_value: str | None = None
    domain_value_a: str | None = None
    base_width: int = 32  # App. A: d32, d64, ... (u32 last hidden deconv)
    # App. A: 6 stride-2 blocks at 128 px (a 2x2 code). Fewer blocks keep a 2x2 code at 64 px; the
    # blocks dropped are the highest-resolution ones (first of each encoder, last of each decoder).
    num_blocks: int = 6
    # App. A: "sep is the dimension of the separate encoders, set to be 100". Read as the size of
    # the flattened E_s code (channels x h x w): the listed d_sep block at a 2x2 code then has
    # 25 channels, which is what the authors' release uses (sep=25 channels at 2x2).
    sep: int = 100
    classifier_width: int = 512  # App. A: C = FC 512, LeakyReLU 0.2, FC 1, sigmoid
    norm: str = "batch"  # App. A: batch norm in every hidden block
    # The overall loss (Sec. 3) writes L_DC with weight 1. The authors' release trains with 0.005
    # for 150k iterations; on the 64 px bench 0.005 left C ~70% right on E_c codes after 550 steps
    # and the masks collapsed to empty (the "w/o L_DC" row of Tab. 7), so the paper's 1 is kept.
    lambda_dc: float = 1.0
    # The label E_c wants C to give both domains' codes in L_DC. Eq. 3: "b" (1, domain B's label).
    # Then the E_c(b) half of Eq. 3 is the loss C itself minimises: its gradient makes b's common
    # code *more* recognisably domain B, i.e. keeps the content in E_c whenever C finds it. The
    # authors' release (mask_train.py) trains toward domain A's label instead ("a"): the E_c(b) half
    # then removes what C reads as content. "uniform": 0.5, Tzeng et al. 2015's confusion target.
    # Measured on bench beards (mask_transfer.md, session 11): with "a" D_A(E_c(b)) was beard-free
    # in 91-95% of faces from step 500, with "b" in 44-55% at the same C accuracy (0.6-0.7).
    confusion_target: str = "b"
    # λ1..λ5: the paper gives none (App. J: λ1 in 3-7 and λ4 in 0.4-1.0 give similar results);
    # these are the authors' release values (gama 5 / delta 7 / alpha 0.7 / beta1 0, beta2 0.001).
    lambda_rec1_a: float = 5.0  # λ1, L^A_Recon1 (Eq. 5)
    lambda_rec1_b: float = 7.0  # λ2, L^B_Recon1 (Eq. 6)
    # λ3, L_Cycle (Eq. 9), split per term: the release trains with 0 on the common-code term and
    # 0.001 on the separate-code term. The common term is also satisfied by an empty mask
    # (z(a, b) = a gives E_c(z) = E_c(a) exactly), so a large weight pulls masks shut: on bench
    # glasses at 50 the soft transfer fell to 0.03 within 250 steps. At 10, though, it is what keeps
    # the transfer local: E_c carries everything of a but the content (L_DC), so the term penalises
    # every change z(a, b) makes to a except the content's. With the fill term (gain gate) and the
    # gated prior kept on, from the same 2,250-step state: at 0 the transfers repainted the sources'
    # hair (soft transfer 0.99, mean change outside the true glasses 0.034 at 3,000 steps, averaged
    # weights); at 10, 0.96 and 0.015 (mask_transfer.md, session 36). From step 0 with the ramp of
    # cycle_start: 0.86 / 0.0077 at 10, 0.92 / 0.0135 at 5 (the glasses flagfile's weight).
    # The separate term is the only one in Sec. 3 that trains the transfer mask m(a, b) on
    # domain-A sources (Eqs. 6 and 8 train m(b, b) and m(a, a)): at 0.001 bench glasses' m(a, b)
    # stayed fainter than m(b, b) and the soft composite transferred 0.51; raised to 0.1 from that
    # state, 0.85 within 250 steps, IoU 0.26 -> 0.43, then at 1: 0.86-0.97, IoU 0.47-0.50. From step
    # 0 it shut the masks (mask_transfer.md, session 23).
    lambda_cycle_common: float = 0.0
    lambda_cycle_separate: float = 0.001
    # Not in the paper: generator updates with no L_Cycle (both terms weigh 0), then a linear ramp
    # to lambda_cycle_common and lambda_cycle_separate over cycle_warmup_steps. On bench glasses the
    # separate-code cycle at 0.1 from step 0 shut the masks within 250 steps even with no mask prior
    # (session 23), while the same weight after an open-mask phase and the gated prior trained
    # m(a, b) to transfer. 0/0 = the paper's constant weights.
    cycle_start: int = 0
    cycle_warmup_steps: int = 0
    lambda_rec2_a: float = 0.7  # λ4, L^A_Recon2 (Eq. 8)
    lambda_rec2_b: float = 0.7  # λ5, L^B_Recon2 (Eq. 8)
    # Eq. 8 writes z(a, a) = D_B(E_c(a), E_s(a)); the release (and Press et al. 2019, Sec. 2 of the
    # paper: "the second encoding is set to zero, to an image in A") feeds domain-A images a zero
    # separate code, so E_s only ever encodes B content. "encoded" = Eq. 8 literally. Measured on the
    # 64 px bench: with "encoded" the masks collapsed to empty within 1k steps
    # (benchmarks/mask_transfer.md, runs 1-3); with "zero" they stay open.
    separate_code_a: str = "zero"
    # Sec. 3 (after Eq. 8): L_Recon2 keeps masks minimal only because z_raw cannot auto-encode
    # perfectly. On the flat-shaded bench it nearly can, so z_raw learns to match a and b under
    # large masks. False stops L_Recon2's gradient into z_raw: it then only shrinks the mask where
    # z_raw differs from the input, which is the paper's stated mechanism. True = the paper's loss.
    recon2_trains_raw: bool = True
    # Not in the paper: initial bias of D_B's mask logit (0 = the default init, m = 0.5). D_B's raw
    # image learns only where the mask is open (Eq. 6), so a positive start lets it learn to draw
    # the content before L_Recon2 shrinks the mask.
    mask_bias_init: float = 0.0
    # Not in the paper: weight of an L1 sparsity term on the soft masks m(b, b), m(a, b) and m(a, a)
    # (mean over pixels). Sec. 3 keeps masks small only through L_Recon2, i.e. only where z_raw
    # is worse than the input; on the flat-shaded bench D_B (which sees E_c and E_s) re-renders the
    # whole face about as well as D_A, so the masks stay open over the face (mask_transfer.md,
    # session 8). The prior should leave the mask open only where Eq. 6 gains more than it costs:
    # where D_A(E_c(b)) lacks the content. Measured on beards (session 9): ramped in, it separates
    # inside/outside 4:1 but IoU stays <= 0.09, because E_c still carries beards. 0 = the paper.
    lambda_mask: float = 0.0
    # Ramp lambda_mask linearly from 0 over this many steps (0 = full weight from the start). At
    # full weight from step 0 the prior shut the masks before D_B had learnt to draw the content.
    mask_warmup_steps: int = 0
    # Not in the paper: generator updates before that ramp starts (lambda_mask and
    # lambda_mask_binary are 0 until then). On bench glasses a prior ramped from step 0 shut the
    # masks before D_B drew the frames (session 19: 0.01 of mask inside the glasses at 750 steps;
    # session 23 with the gate and the cycle at 0.1 too: 0.03 at 500), while 750 open-mask steps
    # first and the prior after them kept the glasses (mask_transfer.md, sessions 20-23). 0 = ramp
    # from the first update.
    mask_prior_start: int = 0
    # Not in the paper: generator updates after which lambda_mask and lambda_mask_binary are 0
    # again (0 = never). Once the prior has localised the masks and the separate-code cycle trains
    # m(a, b), the prior keeps pulling the inside down too: on bench glasses, with the prior on,
    # the inside oscillated at 0.19-0.39 and soft transfer at 0.12-0.66 over 2,000-3,000 steps,
    # and 250 steps without it from the 3,000-step state gave 0.61 inside, 0.04 outside and
    # transfer 0.92 (mask_transfer.md, session 24).
    mask_prior_end: int = 0
    # Not in the paper: apply lambda_mask to m(b, b) only where b has nothing D_A's rendering of
    # E_c(b) lacks, i.e. where mean_channels |b - D_A(E_c(b))| < mask_prior_gate (gradient stopped
    # through the gate; m(a, a) keeps the full prior, domain A has no content; m(a, b) none, it has
    # no target to gate by and follows m(b, b) through the shared decoder). Ungated, the prior
    # pulls the content's pixels down as hard as the rest: on bench glasses it ranked them first
    # (13:1 inside vs outside) but left them at mask 0.27-0.30, under the 0.5 threshold, so transfer
    # was 0.19 (mask_transfer.md, session 20). The gate is the model's own Eq. 6 residual, no labels:
    # with E_c(b) content-free, D_A's output differs from b where the content is, plus D_A's blur
    # (session 21's estimate at 750 steps: 0.3 keeps 0.59 of the glasses' pixels, 0.05 of the rest).
    # Measured at 0.3 with lambda_mask 0.5: 0.33-0.41 mask on the glasses against 0.27-0.30 ungated,
    # transfer 0.42-0.53 against 0.19-0.28, still under the 0.5 threshold (mask_transfer.md, session 22).
    # 0 = the ungated prior on all three masks.
    mask_prior_gate: float = 0.0
    # What the prior's gate reads, as mask_fill_gate_by below: "residual" (above), or "gain": the
    # prior applies where mean_channels (|b - D_A(E_c(b))| - |b - z_raw(b, b)|) < mask_prior_gate,
    # i.e. where showing D_B's raw image gains Eq. 6 less than the gate. Why: on bench beards with
    # the residual gate at 0.3 the prior also reached half the beard's pixels (0.51 of them read
    # >= 0.3), and the masks closed on goatees and moustaches (m(b, b) 0.37 / 0.28 inside at 3,000
    # steps) although D_B's raw image beats D_A there: gain >= 0.1 on 0.76 of the beards' pixels and
    # 0.07 of the rest (mask_transfer_diagnose.py --gates; mask_transfer.md, session 39).
    # "gain_zero": the same gain measured against D_B's own raw image of (E_c(b), 0) instead of
    # D_A(E_c(b)): where E_s(b) improves D_B's rendering of b, not where D_B is merely sharper
    # than D_A (eye, glasses and hair outlines). One more D_B pass when read; meant with lambda_raw_a,
    # which trains that zero-code image. Measured on bench beards with lambda_raw_a=1 (mask_transfer.md,
    # session 40): it picks the same pixels as "gain" (at 0.1: 0.80 of the beards' pixels and 0.074 of
    # the rest, against 0.82 and 0.079), and both gates on it gave more local but fewer transfers
    # (0.65-0.74 at a change outside of 0.010-0.013, 2,250-2,500 steps).
    mask_prior_gate_by: str = "residual"
    # Not in the paper: weight of a binarisation term 4 m (1 - m) on the same three masks (0 at
    # m in {0, 1}, 1 at m = 0.5), ramped with mask_warmup_steps. Eq. 6 is an L1 loss on the blend
    # m z_raw + (1 - m) D_A(E_c(b)); where b lies between a blurry z_raw and D_A's output, a
    # fractional m fits best, so the Eq. 6 optimum itself is a soft mask. Sec. 3 ("Inference")
    # then binarises at 0.5, and on bench beards the inside mean hovered at 0.44-0.56 (session 11),
    # so the threshold cut the beard in pieces. The term makes each pixel commit to one image.
    # With lambda_mask it pushes a pixel to 1 above m = 0.5 + lambda_mask / (8 lambda_mask_binary)
    # and to 0 below it. Measured (mask_transfer.md, session 13): with mask_bias_init=2 the masks
    # start above that point and opened over the whole face (IoU 0.03). 0 = the paper.
    lambda_mask_binary: float = 0.0
    # Not in the paper: a schedule of the binarisation term of its own. -1 = the L1 prior's
    # (mask_prior_start, mask_warmup_steps, mask_prior_end); otherwise 0 until this many generator
    # updates, then ramped to lambda_mask_binary over mask_binary_warmup_steps, and never ended by
    # mask_prior_end. Alone (without the L1 prior) the term's peak is at m = 0.5, so it pushes
    # pixels over 0.5 to 1 and the rest to 0 rather than opening or closing the mask as a whole.
    # For the cycle phase: once the L1 prior ends, beard masks reopened outside the beard (0.09 ->
    # 0.21 outside) while staying at 0.84 inside, and the soft composite faded the beard (soft
    # transfer 0.78 against 0.92 with m(a, b) > 0.2; mask_transfer.md, session 29).
    mask_binary_start: int = -1
    mask_binary_warmup_steps: int = 0
    # Not in the paper: the mask value where the binarisation term peaks and its push changes
    # direction (0.5 = 4 m (1 - m)). Pixels under it are pushed to 0, pixels over it to 1. For
    # glasses, thin frames whose masks stay faint inside (0.26-0.46 inside, 0.01-0.03 outside at
    # 2,250-2,750 steps, mask_transfer.md, session 27), a peak at 0.5 erased the frames (soft
    # transfer 0.47-0.53 against 0.66-0.81 without the term, session 30). A peak between the outside
    # and inside levels commits the frames to 1 instead; m(a, b) > 0.2 transferred 0.98 (session 27).
    mask_binary_center: float = 0.5
    # Not in the paper: weight of a fill term that pulls m(b, b) toward 1 where the real image b
    # differs from D_A's rendering of its own common code, i.e. where
    # mean_channels |b - D_A(E_c(b))| >= mask_fill_gate (the term is the pixel mean of gate * (1 - m),
    # the gate's gradient stopped). It is the complement of mask_prior_gate's region: the gated prior
    # closes the mask where b has nothing D_A lacks, this opens it where b has, both from the model's
    # own Eq. 6 residual, no labels. m(a, b) has no real image to gate by; it follows m(b, b) through
    # the shared decoder. Why: on bench glasses the masks cover the frames but sit at 0.4-0.5 inside
    # (0.05 outside), so the soft composite of Eq. 7 pastes the frames at half contrast and transfer
    # swings by 0.2 between checkpoints 250 steps apart, while m > 0.1 transfers 0.96-1.00
    # (mask_transfer.md, session 33). Eq. 6's own push is weak there: the smooth mask decoder cannot
    # follow thin frames, and L_Recon2 (Eq. 8) pulls the same pixels down wherever z_raw is blurrier
    # than b. Unlike the binarisation term it has no push toward 0, so it cannot erase faint content.
    # A gate on D_B's raw image instead of b (commit c20a5b2) opened the masks everywhere (0.85
    # outside the glasses at 3,000 steps, session 34): the raw image is unconstrained where the mask
    # is shut, so it differs from D_A there too. 0 = the paper.
    lambda_mask_fill: float = 0.0
    mask_fill_gate: float = 0.3
    # What the fill gate reads. "residual": mean_channels |b - D_A(E_c(b))| >= mask_fill_gate, above.
    # "gain": mean_channels (|b - D_A(E_c(b))| - |b - z_raw(b, b)|) >= mask_fill_gate, i.e. where
    # showing D_B's raw image instead of D_A's rendering brings Eq. 6's blend closer to b by at least
    # the gate: the sign of Eq. 6's own gradient on m, made a hard target of 1 there. With "residual"
    # the fill also opened the masks wherever D_A is merely blurry (eye and face outlines): glasses
    # masks 0.98 inside but 0.27 outside at 2,000-2,250 steps, the face outside the glasses changed
    # by 0.069 (mask_transfer.md, session 35), where D_B's raw image is as blurry and gains nothing.
    # "gain" keeps them tighter (soft transfer 0.99, change outside 0.034 with the prior kept on) but
    # still fills the hair edge: z_raw sees E_s(b), which carries b's hair colour too, so transfers
    # repainted the sources' hair (session 35 figures). The glasses flagfile uses "gain" together
    # with lambda_cycle_common, which keeps the transfer off the hair (session 36).
    mask_fill_gate_by: str = "residual"
    # The fill term's schedule: 0 until this many generator updates, then ramped to lambda_mask_fill over
    # mask_fill_warmup_steps; never ended.
    mask_fill_start: int = 0
    mask_fill_warmup_steps: int = 0
    # Not in the paper: weight of an unmasked L1 reconstruction |z_raw(b, b) - b| of D_B's raw image.
    # Eq. 6 trains z_raw only where the mask is open, so every prior that closes the mask also stops
    # D_B learning to draw the content, and the mask then has no reason to reopen on it (session 8:
    # the raw image was worse than D_A(E_c(b)) even inside the glasses). With this term z_raw
    # learns to render all of b from (E_c, E_s) whatever the mask does, and Eq. 6 alone decides
    # where z_raw should be shown: where D_A(E_c(b)), which lacks the content, is worse. It also
    # makes E_s carry what L_DC keeps out of E_c. Measured on bench beards (mask_transfer.md,
    # session 14), with confusion_target=a, a weak ramped lambda_mask=0.5 and a 4x4 code: masks 0.54
    # inside vs 0.05 outside the beard at 1,000 steps, IoU 0.25 (2x the best before); with the 2x2
    # code the blurrier decoders held IoU at 0.12. 0 = the paper.
    lambda_raw_b: float = 0.0
    # Not in the paper: weight of a second L1 term on D_B's raw image, |z_raw(b, b) - b| only where
    # mean_channels |b - D_A(E_c(b))| >= raw_b_content_gate (the pixel mean of gate * |z_raw - b|, the
    # gate's gradient stopped): where b has what D_A does not render from E_c(b), i.e. the content.
    # lambda_raw_b's unmasked term spreads D_B's L1 signal over the whole face; a goatee or a
    # moustache is ~2% of a 64 px image and D_B's raw drew it well enough for the oracle in only
    # ~0.5 of pairs (session 37). This weights those pixels up without labels. At 10 on bench beards
    # (mask_transfer.md, session 38) the raw beard through the true support passes 0.73-0.89 instead
    # of 0.66-0.72, but the masks still open over the lower face, so the soft transfer is no better
    # (0.79 at the beard flagfile's average against 0.90 without it). 0 = off.
    lambda_raw_b_content: float = 0.0
    raw_b_content_gate: float = 0.3
    # Not in the paper: weight of an unmasked L1 term |D_B(E_c(a), 0) - a|, D_B's raw image of z(a, a)
    # with the zero separate code (separate_code_a="zero"), as lambda_raw_b is for z(b, b). Sec. 3
    # trains that raw image only where m(a, a) is open, i.e. hardly at all once the masks are small,
    # so D_B never learns to render what E_c carries by itself: with lambda_raw_b on, E_s(b) then
    # carries b's glasses and hair outline besides its beard (D_B draws them sharper with its help),
    # L_Cycle's separate term asks z(a, b) to carry them over, and m(a, b) opened on the eyes, the
    # glasses and the hair outline on the bench beard failures (mask_transfer.md, session 39). With
    # this term D_B renders all of a from E_c alone, so E_s(b) need only add what E_c(b) lacks.
    # Measured (mask_transfer.md, session 40): added to session 39's local beard run H at 1,750
    # steps it ended at 0.70 soft transfer (change outside 0.018) against 0.77 (0.020) without it;
    # the session-40 grid showed the failures follow the reference's beard (grey, low contrast)
    # rather than glasses carried in E_s. 0 = off.
    lambda_raw_a: float = 0.0
    # Not in the paper: weight of Eq. 6 through z instead of z', |z(D_A(E_c(b)), b) - b|: b with its
    # content removed by D_A, encoded again by E_c, gets b's content back from E_s(b). Sec. 3 uses
    # z' so that D_A∘E_c's error does not enter the raw image; but then D_B's mask learns only on
    # common codes of domain-B images, while a transfer z(a, b) reads a domain-A face's code. With
    # L_DC imperfect (C still told the domains apart 0.7 of the time on bench beards) the mask did
    # not carry over: on the failing transfers m(a, b) was 0.15-0.19 inside the beard's true
    # support while m(b, b) was 0.68-0.79 inside b's own (mask_transfer.md, sessions 39-40). The
    # removed image is a domain-A face with b's geometry, so this is a transfer with a known
    # answer; the gated prior and the fill apply to its mask as to m(b, b) (the gate is b's).
    # D_A's output is gradient-stopped here: D_A must not learn to draw the content back. Measured
    # at 7 (λ2) from session 39's local beard run H at 1,750 steps: at 2,500 m(a, b) was 0.71 inside
    # coloured beards against 0.57 without it (a 24 x 24 grid of transfers 0.73 against 0.60), but the
    # final average was no better (0.77 soft transfer, change outside 0.032, against 0.77 / 0.020).
    # 0 = off.
    lambda_rec1_b_reencoded: float = 0.0
    # Not in the paper: ramp λ4 and λ5 linearly from 0 over this many steps (0 = off).
    rec2_warmup_steps: int = 0
    # App. A: the decoders' hidden blocks use ReLU; the release uses LeakyReLU(0.2) ("lrelu").
    decoder_activation: str = "relu"
    # App. A's decoders are 4x4 stride-2 transposed convolutions ("deconv"). "resize": nearest x2
    # upsampling then a 3x3 stride-1 conv in every decoder layer, output layers included (Odena et
    # al. 2016's resize-convolution); "resize_output": only in D_A's and D_B's output layers.
    # Not in the paper: on the bench the deconvs printed a checkerboard into D_B's mask over the
    # whole background, so the soft composite pasted a dotted raw image everywhere and a thresholded
    # one pasted blurry raw pixels at the dots (benchmarks/mask_transfer.md, session 27 figure).
    # Cost of a 64 px, base-width-16 train step against "deconv": 1.35-1.55x with "resize_output",
    # ~1.7x with "resize" (benchmarks/mask_transfer.md, session 28).
    decoder_upsample: str = "deconv"
    # Not in the paper (one C update per step in Sec. 3 and the release): C updates per training
    # step, each on this step's common codes. With one, C stayed at 51-55% accuracy on E_c codes of
    # bench beards while D_A(E_c(b)) still drew a beard in 11-58% of faces (mask_transfer.md,
    # sessions 8-9): E_c was fooling a C that lagged, not hiding the content. Several critic updates
    # per generator update is the WGAN remedy (Arjovsky et al. 2017: 5); C is a small MLP on the
    # 2x2 code, so an update costs little next to the encoders and decoders. 1 = the paper.
    domain_classifier_steps: int = 1
    lr: float = 2e-4  # App. A: Adam, learning rate 0.0002, beta1 0.5, beta2 0.999
    lr_c: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    # Not in the paper: the authors' release clips each network group's gradient norm at 5, which
    # keeps the adversarial encoder update from spiking early. 0 = no clipping.
    clip_norm: float = 5.0
    # Not in the paper: an exponential moving average of E_c, E_s, D_A and D_B (the "g" group) with
    # this momentum, which loading, evaluation and export then infer with, batch norm re-estimated
    # (as adv_disentangle's). On the bench, single states 250 steps apart differ by 0.1-0.3 in glasses
    # transfer accuracy (benchmarks/mask_transfer.md, sessions 23-24). 0 = no average (the paper).
    # Set it from step 0: resuming a run that had no average starts the average from zeros.
    ema_momentum: float = 0.0
    mask_threshold: float = 0.5  # Sec. 3 "Inference": binarise m(b, b); App. Fig. 37: insensitive


CONFUSION_TARGETS = {"a": 0.0, "b": 1.0, "uniform": 0.5}  # C's labels: domain A 0, domain B 1 (Eq. 4)
GATES = ("residual", "gain", "gain_zero")  # what mask_prior_gate / mask_fill_gate read (Config)


def gate_readings(image_b, removed_b, raw_b, names=GATES, raw_b_zero=None):
    """Per pixel, what mask_prior_gate / mask_fill_gate read (gradients stopped), for the `names`
    asked: "residual", Eq. 6's mean_channels |b - D_A(E_c(b))|; "gain", that minus
    mean_channels |b - z_raw(b, b)|; "gain_zero", mean_channels |b - raw_b_zero| (D_B's raw image
    of (E_c(b), 0)) minus the same. The gains are only computed when asked."""
    def error(image):
        return tf.stop_gradient(tf.reduce_mean(tf.abs(image_b - image), axis=-1, keepdims=True))

    readings = {"residual": error(removed_b)}
    if "gain" in names or "gain_zero" in names:
        raw_error = error(raw_b)
        if "gain" in names:
            readings["gain"] = readings["residual"] - raw_error
        if "gain_zero" in names:
            if raw_b_zero is None:
                raise ValueError("gate_readings: the 'gain_zero' gate needs raw_b_zero, D_B's raw image of (E_c(b), 0)")
            readings["gain_zero"] = error(raw_b_zero) - raw_error
    return readings


def latent_size(config: Config, image_size: int) -> int:
    return image_size // 2**config.num_blocks


def separate_channels(config: Config, image_size: int) -> int:
    h = latent_size(config, image_size)
    return config.sep // (h * h)


def _widths(config: Config, image_size: int):
    w, sep = config.base_width, separate_channels(config, image_size)
    n = config.num_blocks
    common = [w, 2 * w, 4 * w, 8 * w, 16 * w - sep, 16 * w - 2 * sep]  # App. A: d512-sep, d512-2sep
    separate = [w, 2 * w, 4 * w, 4 * w, 4 * w, sep]  # App. A: d32, d64, d128, d128, d128, d_sep
    decoder = [16 * w, 8 * w, 4 * w, 2 * w, w]  # App. A: u512 ... u32, then u3 / u4
    return common[-n:], separate[-n:], decoder[:n - 1]


def build_networks(config: Config, schema: Schema, image_size: int) -> dict[str, keras.Model]:
    del schema  # the networks do not see attribute labels: the domain split is the supervision
    n = config.num_blocks
    if not 2 <= n <= 6:
        raise ValueError(f"mask_transfer: num_blocks must be in 2..6, got {n}")
    if image_size % 2**n:
        raise ValueError(f"mask_transfer: image_size {image_size} is not a multiple of 2**num_blocks = {2**n}")
    if config.confusion_target not in CONFUSION_TARGETS:
        raise ValueError(f"mask_transfer: confusion_target must be one of {', '.join(CONFUSION_TARGETS)}, "
                         f"got {config.confusion_target!r}")
    if config.separate_code_a not in ("zero", "encoded"):
        raise ValueError(f"mask_transfer: separate_code_a must be 'zero' or 'encoded', got {config.separate_code_a!r}")
    if config.decoder_upsample not in ("deconv", "resize", "resize_output"):
        raise ValueError(f"mask_transfer: decoder_upsample must be 'deconv', 'resize' or 'resize_output', got "
                         f"{config.decoder_upsample!r}")
    if config.decoder_activation not in ("relu", "lrelu"):
        raise ValueError(f"mask_transfer: decoder_activation must be 'relu' or 'lrelu', got "
                         f"{config.decoder_activation!r}")
    if not 0.0 <= config.ema_momentum < 1.0:
        raise ValueError(f"mask_transfer: ema_momentum must be in [0, 1) (0 = no average), got {config.ema_momentum}")
    if config.mask_binary_start < -1 or config.mask_binary_warmup_steps < 0:
        raise ValueError(f"mask_transfer: mask_binary_start must be >= -1 (-1 = the L1 prior's schedule) and "
                         f"mask_binary_warmup_steps >= 0, got {config.mask_binary_start} and "
                         f"{config.mask_binary_warmup_steps}")
    if not 0.0 < config.mask_binary_center < 1.0:
        raise ValueError(f"mask_transfer: mask_binary_center must be in (0, 1), got {config.mask_binary_center}")
    if config.lambda_mask_fill < 0 or config.mask_fill_gate <= 0:
        raise ValueError(f"mask_transfer: lambda_mask_fill must be >= 0 and mask_fill_gate > 0, got "
                         f"{config.lambda_mask_fill} and {config.mask_fill_gate}")
    if config.lambda_raw_b_content < 0 or config.raw_b_content_gate <= 0:
        raise ValueError(f"mask_transfer: lambda_raw_b_content must be >= 0 and raw_b_content_gate > 0, got "
                         f"{config.lambda_raw_b_content} and {config.raw_b_content_gate}")
    for field in ("lambda_raw_a", "lambda_rec1_b_reencoded"):
        if getattr(config, field) < 0:
            raise ValueError(f"mask_transfer: {field} must be >= 0, got {getattr(config, field)}")
    for field in ("mask_prior_gate_by", "mask_fill_gate_by"):
        if getattr(config, field) not in GATES:
            raise ValueError(f"mask_transfer: {field} must be one of {GATES}, got {getattr(config, field)!r}")
    if config.mask_fill_start < 0 or config.mask_fill_warmup_steps < 0:
        raise ValueError(f"mask_transfer: mask_fill_start and mask_fill_warmup_steps must be >= 0, got "
                         f"{config.mask_fill_start} and {config.mask_fill_warmup_steps}")
    if config.domain_classifier_steps < 1:
        raise ValueError(f"mask_transfer: domain_classifier_steps must be >= 1, got {config.domain_classifier_steps}")
    h = latent_size(config, image_size)
    if config.sep % (h * h) or config.sep < h * h:
        raise ValueError(f"mask_transfer: sep={config.sep} must be a positive multiple of the code area "
                         f"{h}x{h}={h * h}")
    common_w, separate_w, decoder_w = _widths(config, image_size)
    if min(common_w) <= 0:
        raise ValueError(f"mask_transfer: base_width={config.base_width} too small for sep={config.sep} "
                         f"(common encoder widths {common_w})")

    def encoder(widths, name):
        x_in = keras.Input([image_size, image_size, 3], name="image")
        x = x_in
        for i, k in enumerate(widths):
            x = blocks.conv_norm_act(x, k, 4, strides=2, norm=config.norm, activation="lrelu", name=f"{name}_d{i}")
        return keras.Model(x_in, x, name=name)

    def up(x, filters, resize, name, norm=config.norm, activation=config.decoder_activation):
        if resize:
            return blocks.resize_conv(x, filters, 3, norm=norm, activation=activation, name=name)
        return blocks.conv_norm_act(x, filters, 4, strides=2, norm=norm, activation=activation, transpose=True,
                                    name=name)

    def decoder_body(x, name):
        for i, k in enumerate(decoder_w):
            x = up(x, k, config.decoder_upsample == "resize", f"{name}_u{i}")
        return x

    def output_layer(x, channels, name):  # App. A: u3 / u4 without norm
        return up(x, channels, config.decoder_upsample != "deconv", name, norm="none", activation=None)

    common_encoder = encoder(common_w, "common_encoder")
    separate_encoder = encoder(separate_w, "separate_encoder")

    c_in = keras.Input([h, h, common_w[-1]], name="common")
    x = decoder_body(c_in, "decoder_a")
    x = output_layer(x, 3, "decoder_a_out")  # tanh
    decoder_a = keras.Model(c_in, layers.Activation("tanh")(x), name="decoder_a")

    c_in = keras.Input([h, h, common_w[-1]], name="common")
    s_in = keras.Input([h, h, separate_w[-1]], name="separate")
    x = decoder_body(layers.Concatenate()([c_in, s_in]), "decoder_b")
    x = output_layer(x, 4, "decoder_b_out")  # mask logit + raw image
    mask = layers.Activation("sigmoid", name="mask")(x[..., :1])
    raw = layers.Activation("tanh", name="raw")(x[..., 1:])
    decoder_b = keras.Model([c_in, s_in], {"mask": mask, "raw": raw}, name="decoder_b")
    if config.mask_bias_init:
        decoder_b.get_layer("decoder_b_out").bias.assign(np.array([config.mask_bias_init, 0, 0, 0], np.float32))

    c_in = keras.Input([h, h, common_w[-1]], name="common")
    x = layers.Flatten()(c_in)
    x = layers.LeakyReLU(0.2)(layers.Dense(config.classifier_width, name="c_fc1")(x))
    # Logits: the paper's final sigmoid is folded into the cross-entropy (numerically stable).
    logits = layers.Dense(1, name="c_fc2")(x)
    classifier = keras.Model(c_in, logits, name="domain_classifier")
    return {"common_encoder": common_encoder, "separate_encoder": separate_encoder, "decoder_a": decoder_a,
            "decoder_b": decoder_b, "domain_classifier": classifier}


class Model(base.AttributeTransferModel):
    """mask_transfer trainer and inference operations (transfer, remove, segment, interpolate).

    Batches are `{"image_a": [B,S,S,3], "image_b": [B,S,S,3], ...}` in [-1, 1]: domain A (without
    `config.domain_attribute`) and domain B (with it); the training loop builds them with
    `pipeline.two_domains` because `DATA = "two_domains"`.
    """

    DATA = "two_domains"
    LOSS_NAMES = ("g/dc", "g/rec1_a", "g/rec1_b", "g/cycle_common", "g/cycle_separate", "g/rec2_a", "g/rec2_b",
                  "g/mask", "g/mask_binary", "g/mask_fill", "g/raw_b", "g/raw_b_content", "g/raw_a",
                  "g/rec1_b_reencoded", "c/loss", "c/acc", "mask/ab", "mask/bb", "mask/aa")
    OPTIMIZER_GROUPS = {"g": ("common_encoder", "separate_encoder", "decoder_a", "decoder_b"),
                        "c": ("domain_classifier",)}
    DEFAULT_SIGNATURE = "transfer"

    def default_optimizers(self):
        c = self.config
        clip = {"global_clipnorm": c.clip_norm} if c.clip_norm > 0 else {}
        ema = {"use_ema": True, "ema_momentum": c.ema_momentum} if c.ema_momentum > 0 else {}
        return {"g": keras.optimizers.Adam(c.lr, beta_1=c.beta_1, beta_2=c.beta_2, **clip, **ema),
                "c": keras.optimizers.Adam(c.lr_c, beta_1=c.beta_1, beta_2=c.beta_2, **clip)}

    # ---- inference operations -------------------------------------------------------------------
    def decode_b(self, common, separate, training=False):
        out = self.decoder_b([common, separate], training=training)
        return out["mask"], out["raw"]

    def transfer(self, image_a, image_b, training=False, threshold: float | None = None):
        """Guided transfer z(a, b) (Eqs. 1-2): returns (translated image, soft mask `[B,S,S,1]`).

        With `threshold`, the composite uses the binarised mask m(a, b) > threshold instead of the
        soft one (the returned mask stays soft)."""
        mask, raw = self.decode_b(self.common_encoder(image_a, training=training),
                                  self.separate_encoder(image_b, training=training), training)
        used = mask if threshold is None else tf.cast(mask > threshold, mask.dtype)
        return mask_losses.composite(used, raw, image_a), mask

    def reconstruct(self, images, training=False):
        """z(x, x), the path L_Recon2 trains (Eq. 8): ideally the input with an empty mask for x in A."""
        return self.transfer(images, images, training)

    def segment(self, image_b, threshold: float | None = None):
        """Weakly supervised segmentation (Sec. 3 "Inference"): (soft m(b, b), binary m(b, b) > t)."""
        t = self.config.mask_threshold if threshold is None else threshold
        _, mask = self.transfer(image_b, image_b)
        return mask, tf.cast(mask > t, tf.float32)

    def remove(self, image_b, threshold: float | None = None):
        """Attribute removal (Sec. 3 "Inference"): z_removed = (1 - M) b + M D_A(E_c(b)), M binarised."""
        _, binary = self.segment(image_b, threshold)
        unmasked = self.decoder_a(self.common_encoder(image_b))
        return mask_losses.composite(binary, unmasked, image_b), binary

    def interpolate(self, image_a, image_b1, image_b2, alpha):
        """z with E_s = (1 - alpha) E_s(b1) + alpha E_s(b2) (Sec. 4, Fig. 4); alpha `[B]`."""
        alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1, 1, 1])
        s1, s2 = self.separate_encoder(image_b1), self.separate_encoder(image_b2)
        mask, raw = self.decode_b(self.common_encoder(image_a), (1.0 - alpha) * s1 + alpha * s2)
        return mask_losses.composite(mask, raw, image_a), mask

    def replace(self, image_b, guide_image):
        """Removes this domain's content from `image_b`, then adds the guide's (App. F, facial hair swap)."""
        removed, _ = self.remove(image_b)
        return self.transfer(removed, guide_image)

    @property
    def transfer_domains(self) -> dict[str, tuple[str, str | None]]:
        """{attribute: (class of domain B, class of domain A or None = every other class)}: what
        "has the content" means for evaluation (`tfattr.metrics.registry`)."""
        c = self.config
        return {c.domain_attribute: (c.domain_value or "yes", c.domain_value_a)}

    def _check_names(self, attribute_names):
        names = [attribute_names] if isinstance(attribute_names, str) else list(attribute_names)
        if names != [self.config.domain_attribute]:
            raise ValueError(f"mask_transfer was trained to transfer {self.config.domain_attribute!r} only, "
                             f"got {names}")

    def transfer_from_reference(self, source, reference, attribute_names):
        self._check_names(attribute_names)
        return self.transfer(source, reference)[0]

    def translate(self, images, target_attributes, training=False):
        raise NotImplementedError("mask_transfer adds content from a guide image: use transfer()/remove()")

    def call(self, batch, training=False):
        return self.transfer(batch["image_a"], batch["image_b"], training)[0]

    # ---- training -------------------------------------------------------------------------------
    def batch_norm_pass(self, batch):
        # `call` is z(a, b) alone: E_c would see only domain A and D_A nothing, while in training
        # E_c and E_s see both domains in one batch and D_B three code pairs (_forward). Measured on
        # the glasses flagfile (mask_transfer.md, session 30): averaged weights with `call`'s
        # statistics transferred 0.43, the raw weights 0.81.
        self._forward(batch["image_a"], batch["image_b"], training=True)

    def _forward(self, a, b, training):
        """Every term of L (Sec. 3) per example, pairing a_i with b_i."""
        n = tf.shape(a)[0]
        # One pass over both domains per network: cheaper than two, and batch norm then uses the
        # statistics of the mixed batch, which its moving averages (used at inference) also see.
        common = self.common_encoder(tf.concat([a, b], 0), training=training)
        separate = self.separate_encoder(tf.concat([a, b], 0), training=training)
        c_a, c_b = common[:n], common[n:]
        s_a, s_b = separate[:n], separate[n:]

        decoded_a = self.decoder_a(common, training=training)
        rec_a, removed_b = decoded_a[:n], decoded_a[n:]
        # D_B on (c_b, s_b) serves both z' (Eq. 6) and z(b, b) (Eq. 8); (c_a, s_a) is z(a, a); (c_a, s_b) z(a, b).
        c = self.config
        used = {c.mask_prior_gate_by if c.mask_prior_gate > 0 else None,
                c.mask_fill_gate_by if c.lambda_mask_fill > 0 else None}
        s_aa = tf.zeros_like(s_a) if c.separate_code_a == "zero" else s_a
        codes = {"bb": (c_b, s_b), "aa": (c_a, s_aa), "ab": (c_a, s_b)}
        if "gain_zero" in used:  # the gate also reads D_B(E_c(b), 0)
            codes["b0"] = (c_b, tf.zeros_like(s_b))
        if c.lambda_rec1_b_reencoded > 0:
            # b with its content removed, D_A(E_c(b)) (gradient stopped: D_A must not learn to draw
            # the content back), encoded again: a domain-A face with b's geometry.
            removed_b_stopped = tf.stop_gradient(removed_b)
            codes["rb"] = (self.common_encoder(removed_b_stopped, training=training), s_b)
        # One D_B pass over every code pair.
        mask, raw = self.decode_b(tf.concat([p[0] for p in codes.values()], 0),
                                  tf.concat([p[1] for p in codes.values()], 0), training)
        mask = dict(zip(codes, tf.split(mask, len(codes))))
        raw = dict(zip(codes, tf.split(raw, len(codes))))
        m_bb, m_aa, m_ab = mask["bb"], mask["aa"], mask["ab"]
        r_bb, r_aa, r_ab = raw["bb"], raw["aa"], raw["ab"]
        z_ab = mask_losses.composite(m_ab, r_ab, a)
        rec2_raw = tf.identity if self.config.recon2_trains_raw else tf.stop_gradient

        # A cycle term with a weight of 0 (the release's common-code term) is not computed: its
        # encoder pass and backward pass took 11% of a 64 px step (session 28); it is then logged
        # as 0, and its batch-norm statistics of z(a, b) no longer enter that encoder's averages.
        def cycle(encoder, weight, target):
            if weight == 0:
                return tf.zeros([n], target.dtype)
            return reconstruction.l2(encoder(z_ab, training=training), target)

        logits = self.domain_classifier(common, training=training)
        terms = {
            "g/dc": mask_losses.domain_confusion_loss(logits[:n], logits[n:],
                                                      CONFUSION_TARGETS[self.config.confusion_target]),
            "g/rec1_a": reconstruction.l1(rec_a, a),
            # Eq. 6 uses z'(D_A(E_c(b)), b, b): the removed image is the background, so E_c is not
            # re-applied to D_A's output (Sec. 3).
            "g/rec1_b": reconstruction.l1(mask_losses.composite(m_bb, r_bb, removed_b), b),
            "g/cycle_common": cycle(self.common_encoder, self.config.lambda_cycle_common, c_a),
            "g/cycle_separate": cycle(self.separate_encoder, self.config.lambda_cycle_separate, s_b),
            "g/rec2_a": reconstruction.l1(mask_losses.composite(m_aa, rec2_raw(r_aa), a), a),
            "g/rec2_b": reconstruction.l1(mask_losses.composite(m_bb, rec2_raw(r_bb), b), b),
            "g/raw_b": reconstruction.l1(r_bb, b),
        }
        masks = {"mask/ab": reconstruction.l1(m_ab, 0.0), "mask/bb": reconstruction.l1(m_bb, 0.0),
                 "mask/aa": reconstruction.l1(m_aa, 0.0)}
        # Eq. 6's residual (where b has content that D_A does not render from b's common code) and,
        # if a gate reads it, its gain from showing D_B's raw image instead.
        gates = gate_readings(b, removed_b, r_bb, used, raw_b_zero=raw.get("b0"))
        residual = gates["residual"]
        # The masks drawn over b's own geometry: m(b, b), and m(D_A(E_c(b)), b) with the re-encoded term.
        own = [m_bb] + ([mask["rb"]] if "rb" in mask else [])

        def over_own(term):  # the mean of a per-example term over those masks
            return tf.add_n([term(m) for m in own]) / float(len(own))

        if self.config.mask_prior_gate > 0:
            gate = tf.cast(gates[self.config.mask_prior_gate_by] < self.config.mask_prior_gate, m_bb.dtype)
            terms["g/mask"] = (over_own(lambda m: reconstruction.l1(m * gate, 0.0)) + masks["mask/aa"]) / 2.0
        else:
            terms["g/mask"] = (masks["mask/ab"] + masks["mask/bb"] + masks["mask/aa"]) / 3.0
        center = self.config.mask_binary_center
        terms["g/mask_binary"] = (mask_losses.undecided(m_ab, center) + mask_losses.undecided(m_bb, center)
                                  + mask_losses.undecided(m_aa, center)) / 3.0
        if self.config.lambda_mask_fill > 0:  # skipped at 0 like the cycle terms: nothing to compute
            content = tf.cast(gates[self.config.mask_fill_gate_by] >= self.config.mask_fill_gate, m_bb.dtype)
            terms["g/mask_fill"] = over_own(lambda m: reconstruction.l1(content * (1.0 - m), 0.0))
        else:
            terms["g/mask_fill"] = tf.zeros([n], m_bb.dtype)
        if self.config.lambda_raw_b_content > 0:
            content = tf.cast(residual >= self.config.raw_b_content_gate, r_bb.dtype)
            terms["g/raw_b_content"] = reconstruction.l1(content * (r_bb - b), 0.0)
        else:
            terms["g/raw_b_content"] = tf.zeros([n], r_bb.dtype)
        terms["g/raw_a"] = reconstruction.l1(r_aa, a) if c.lambda_raw_a > 0 else tf.zeros([n], r_aa.dtype)
        if "rb" in mask:  # Eq. 6 through z itself: z(D_A(E_c(b)), b) against b
            terms["g/rec1_b_reencoded"] = reconstruction.l1(
                mask_losses.composite(mask["rb"], raw["rb"], removed_b_stopped), b)
        else:
            terms["g/rec1_b_reencoded"] = tf.zeros([n], r_bb.dtype)
        return terms, masks, common

    def _ramp(self, warmup: int, start: int = 0, end: int = 0):
        """0 for the first `start` generator updates, then linear 0 -> 1 over `warmup` more (a step
        at `start` when warmup <= 0), and 0 again from update `end` on (end <= 0: never)."""
        if warmup <= 0 and start <= 0 and end <= 0:
            return 1.0
        it = tf.cast(self.optimizers["g"].iterations, tf.float32)
        done = it - float(start)
        ramp = tf.cast(done >= 0.0, tf.float32) if warmup <= 0 else tf.clip_by_value(done / float(warmup), 0.0, 1.0)
        if end > 0:
            ramp *= tf.cast(it < float(end), tf.float32)
        return ramp

    def _generator_total(self, terms):
        c = self.config
        rec2_ramp = self._ramp(c.rec2_warmup_steps)
        mask_ramp = self._ramp(c.mask_warmup_steps, c.mask_prior_start, c.mask_prior_end)
        binary_ramp = mask_ramp if c.mask_binary_start < 0 else self._ramp(c.mask_binary_warmup_steps,
                                                                           c.mask_binary_start)
        cycle_ramp = self._ramp(c.cycle_warmup_steps, c.cycle_start)
        fill_ramp = self._ramp(c.mask_fill_warmup_steps, c.mask_fill_start)
        weights = {"g/dc": c.lambda_dc, "g/rec1_a": c.lambda_rec1_a, "g/rec1_b": c.lambda_rec1_b,
                   "g/cycle_common": c.lambda_cycle_common * cycle_ramp,
                   "g/cycle_separate": c.lambda_cycle_separate * cycle_ramp,
                   "g/rec2_a": c.lambda_rec2_a * rec2_ramp, "g/rec2_b": c.lambda_rec2_b * rec2_ramp,
                   "g/mask": c.lambda_mask * mask_ramp, "g/mask_binary": c.lambda_mask_binary * binary_ramp,
                   "g/mask_fill": c.lambda_mask_fill * fill_ramp,
                   "g/raw_b": c.lambda_raw_b, "g/raw_b_content": c.lambda_raw_b_content, "g/raw_a": c.lambda_raw_a,
                   "g/rec1_b_reencoded": c.lambda_rec1_b_reencoded}
        return tf.add_n([weights[k] * v for k, v in terms.items()])

    def train_step(self, batch):
        a, b = batch["image_a"], batch["image_b"]
        n = tf.shape(a)[0]
        with tf.GradientTape() as g_tape:
            terms, masks, common = self._forward(a, b, training=True)
            g_loss = self.reduce(self._generator_total(terms))
        self.apply("g", g_tape, g_loss)

        # C is trained on the encodings of this step's forward pass (before the update above), as
        # usual for GANs; the released code re-encodes after the update, one more E_c pass.
        common = tf.stop_gradient(common)
        for _ in range(self.config.domain_classifier_steps):  # unrolled: a small static count
            with tf.GradientTape() as c_tape:
                logits = self.domain_classifier(common, training=True)
                c_loss = mask_losses.domain_classifier_loss(logits[:n], logits[n:])
                c_total = self.reduce(c_loss)
            self.apply("c", c_tape, c_total)
        # c/loss and c/acc: before the last update, as with one update.
        c_acc = 0.5 * (tf.cast(logits[:n, 0] < 0, tf.float32) + tf.cast(logits[n:, 0] > 0, tf.float32))

        for name, value in {**terms, **masks, "c/loss": c_loss, "c/acc": c_acc}.items():
            self.track(name, value)
        return self.logs()

    def test_step(self, batch):
        terms, masks, _ = self._forward(batch["image_a"], batch["image_b"], training=False)
        for name, value in {**terms, **masks}.items():
            self.track(name, value)
        return self.logs()

    # ---- export -------------------------------------------------------------------------------
    def signatures(self):
        image = self.image_spec
        t = self.config.mask_threshold
        return {
            "transfer": (lambda image_a, image_b: dict(zip(("translated_image", "mask"), self.transfer(image_a, image_b))),
                         {"image_a": image("image_a"), "image_b": image("image_b")}),
            "remove": (lambda image_b: dict(zip(("image", "mask"), self.remove(image_b, t))),
                       {"image_b": image("image_b")}),
            "segment": (lambda image_b: dict(zip(("mask", "segmentation"), self.segment(image_b, t))),
                        {"image_b": image("image_b")}),
            "interpolate": (lambda image_a, image_b1, image_b2, alpha: dict(zip(
                ("translated_image", "mask"), self.interpolate(image_a, image_b1, image_b2, alpha))),
                {"image_a": image("image_a"), "image_b1": image("image_b1"), "image_b2": image("image_b2"),
                 "alpha": tf.TensorSpec([None], tf.float32, name="alpha")}),
            "replace": (lambda image_b, guide_image: dict(zip(("translated_image", "mask"),
                                                              self.replace(image_b, guide_image))),
                        {"image_b": image("image_b"), "guide_image": image("guide_image")}),
        }

    def sample_grid(self, batch, n: int = 5):
        """Fig. 3-style grid: row r = guide b_r then z(a_c, b_r) per source a_c (top row); the last
        two rows are m(b_c, b_c) and the removal of b_c for each guide b_c."""
        from tfattr.utils import image_grid

        a, b = batch["image_a"][:n], batch["image_b"][:n]
        n = int(min(a.shape[0], b.shape[0]))
        a, b = a[:n], b[:n]
        z, _ = self.transfer(tf.tile(a, [n, 1, 1, 1]), tf.repeat(b, n, axis=0))
        z = image_grid.to_uint8(z)
        seg, _ = self.segment(b)
        removed, _ = self.remove(b)
        blank = np.full_like(image_grid.to_uint8(a[:1])[0], 255)
        tiles = [blank] + list(image_grid.to_uint8(a))
        bs = image_grid.to_uint8(b)
        for r in range(n):
            tiles += [bs[r]] + list(z[r * n:(r + 1) * n])
        tiles += [blank] + list(image_grid.to_uint8(tf.tile(seg * 2.0 - 1.0, [1, 1, 1, 3])))
        tiles += [blank] + list(image_grid.to_uint8(removed))
        return image_grid.grid(tiles, n + 3, n + 1)


def sequential_transfer(image, steps: Sequence[tuple[Model, tf.Tensor | None]]):
    """Applies several mask_transfer models in turn (Sec. 4 "Sequential content transfer").

    Args:
      image: float32 `[B, S, S, 3]` in [-1, 1].
      steps: `(model, guide)` pairs; `guide` `[B, S, S, 3]` adds that model's content from the
        guide, `None` removes that model's content (e.g. remove smile, then add glasses).

    Returns:
      The final image, float32 `[B, S, S, 3]`.
    """
    for model, guide in steps:
        image = model.remove(image)[0] if guide is None else model.transfer(image, guide)[0]
    return image
