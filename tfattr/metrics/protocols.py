"""The papers' evaluation protocols as named presets.

A preset fixes *which* test images are paired or edited and how many (pure functions of the test
labels, so they are testable without a model), and lists the registry metrics that report it.
Sizes are part of the metric names (`registry.py`).

| preset       | paper (seed)                    | test images -> edits                                        |
|--------------|---------------------------------|-------------------------------------------------------------|
| `zhang2019`  | Zhang et al. 2019 (seed 000)    | first 2000 test images, halves A/B, one-to-one pairs; A<-B and B<-A swap every attribute whose labels differ: 2000 edits |
| `oldfield`   | Oldfield et al. (seed 001)      | first 200 neutral test images x every expression (8): 1600 edits |
| `mokady2020` | Mokady et al. 2020 (seed 003)   | per binary attribute: 100 random (a without, b with) pairs; removal and segmentation on the first 100 test images with it |
| `li2016`     | Li et al. 2016, DIAT (seed 004) | mouth_open, mouth_close, eyeglasses_removal: the first 200 test images with the source value each: 600 edits |
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    paper: str
    description: str
    metrics: tuple[str, ...]


# ---- seed 000: Zhang et al. 2019, "Quantitative Results" ---------------------------------------
ZHANG2019_NUM_TEST = 2000  # "we randomly select 2000 images ... as the test set" (StarGAN's split)


def zhang2019_pairs(num_test: int = ZHANG2019_NUM_TEST) -> tuple[np.ndarray, np.ndarray]:
    """"We split the test set ... into two parts A and B with equal quantity and construct pairs
    based on one-to-one matching": A = 0..n/2-1, B = n/2..n-1, and both directions are edited.

    Returns:
      `(source, reference)` test indices, int64 `[num_test]` each: A_i <- B_i, then B_i <- A_i.
    """
    half = num_test // 2
    a, b = np.arange(half), np.arange(half, 2 * half)
    return np.concatenate([a, b]), np.concatenate([b, a])


def differing_attributes(labels_source: np.ndarray, labels_reference: np.ndarray) -> np.ndarray:
    """bool `[N, G]`: which attributes to swap per pair ("the attributes which have different
    attribute values", Zhang et al. 2019)."""
    return np.asarray(labels_source) != np.asarray(labels_reference)


# ---- seed 001: Oldfield et al., Sec. IV-C ------------------------------------------------------
OLDFIELD_NUM_NEUTRAL = 200


def oldfield_neutral_to_all(expression_labels: np.ndarray, num_classes: int, num_neutral: int = OLDFIELD_NUM_NEUTRAL,
                            neutral_class: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """"We utilize all test set images with neutral expressions ... Subsequently, we translate to
    all expressions": the first `num_neutral` neutral test images, each to every class.

    Args:
      expression_labels: int `[N]` expression classes of the test images in index order (N large
        enough to hold `num_neutral` neutral faces).
      num_classes: number of expressions.
      num_neutral: neutral sources.
      neutral_class: class index of "neutral".

    Returns:
      `(source_index, target_class)`, int64 `[num_neutral * num_classes]` (source-major).

    Raises:
      ValueError: fewer than `num_neutral` neutral images.
    """
    neutral = np.nonzero(np.asarray(expression_labels) == neutral_class)[0]
    if len(neutral) < num_neutral:
        raise ValueError(f"oldfield: {len(neutral)} neutral images among {len(expression_labels)}, "
                         f"need {num_neutral}")
    src = neutral[:num_neutral]
    return np.repeat(src, num_classes).astype(np.int64), np.tile(np.arange(num_classes), len(src)).astype(np.int64)


# ---- seed 003: Mokady et al. 2020, Sec. 4 ------------------------------------------------------
MOKADY2020_NUM_PAIRS = 100  # Table 3: "average results over 100 random images"
MOKADY2020_NUM_REMOVAL = 100


def mokady2020_pairs(attribute_labels: np.ndarray, num_pairs: int = MOKADY2020_NUM_PAIRS, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """"100 random images created by sampling a and b from the test sets": a from domain A
    (attribute absent, label 0), b from domain B (label > 0), each without replacement.

    Returns:
      `(a_index, b_index)`, int64 `[num_pairs]` each.
    """
    labels = np.asarray(attribute_labels)
    rng = np.random.default_rng(seed)
    pool_a, pool_b = np.nonzero(labels == 0)[0], np.nonzero(labels > 0)[0]
    if min(len(pool_a), len(pool_b)) < num_pairs:
        raise ValueError(f"mokady2020: {len(pool_a)} A and {len(pool_b)} B test images, need {num_pairs} each")
    return (np.sort(rng.choice(pool_a, num_pairs, replace=False)).astype(np.int64),
            rng.choice(pool_b, num_pairs, replace=False).astype(np.int64))


def mokady2020_domain_b(attribute_labels: np.ndarray, num: int = MOKADY2020_NUM_REMOVAL) -> np.ndarray:
    """The first `num` test images with the attribute: inputs of removal (Table 6) and
    segmentation (Table 5)."""
    b = np.nonzero(np.asarray(attribute_labels) > 0)[0]
    if len(b) < num:
        raise ValueError(f"mokady2020: {len(b)} test images with the attribute, need {num}")
    return b[:num].astype(np.int64)


# ---- seed 004: Li et al. 2016 (DIAT), Sec. 5.2 ---------------------------------------------------
LI2016_PER_TASK = 200
# "three local attribute transfer tasks, i.e., mouth_open, mouth_close, and eyeglasses_removal":
# task -> (attribute, source class, target class). Gender and age have no bench attribute.
LI2016_TASKS = {
    "mouth_open": ("Mouth_Slightly_Open", 0, 1),
    "mouth_close": ("Mouth_Slightly_Open", 1, 0),
    "eyeglasses_removal": ("Eyeglasses", 1, 0),
    # Not in the paper's seed 004 (it has no smile task): the bench's second DIAT demo.
    "smile": ("Smiling", 0, 1),
}


def li2016_sources(attribute_labels: np.ndarray, source_class: int, per_task: int = LI2016_PER_TASK) -> np.ndarray:
    """The first `per_task` test images whose attribute has `source_class` (int64 `[per_task]`)."""
    idx = np.nonzero(np.asarray(attribute_labels) == source_class)[0]
    if len(idx) < per_task:
        raise ValueError(f"li2016: {len(idx)} test images of class {source_class}, need {per_task}")
    return idx[:per_task].astype(np.int64)


PRESETS = {
    "zhang2019": Preset(
        "zhang2019", "Zhang et al. 2019, Multi-attribute transfer via disentangled representation (seed 000)",
        "test set halves A/B, one-to-one pairs, swap every differing attribute both ways; FID of the 2000 "
        "results against the 2000 test images; bench: oracle swap accuracy, preservation, counterfactual L1",
        ("fid_swap_2k_test", "kid_swap_2k_test", "oracle_acc_swap_2k", "oracle_pres_swap_2k", "cf_l1_swap_2k")),
    "oldfield": Preset(
        "oldfield", "Oldfield et al., Disentangled and generalizable representations (seed 001)",
        "neutral test images translated to every expression; oracle expression accuracy and FID; "
        "classifier-posterior entropy and Hopkins statistic of the encodings (models that expose them)",
        ("oracle_acc_neutral2expr_1600", "fid_neutral2expr_1600", "posterior_entropy_2k_test",
         "hopkins_2k_test")),
    "mokady2020": Preset(
        "mokady2020", "Mokady et al. 2020, Mask based unsupervised content transfer (seed 003)",
        "100 random (a, b) test pairs per binary attribute: oracle transfer accuracy, identity cosine, KID (gamma "
        "0.01) against domain A, change outside the true content layer (bench); removal accuracy and segmentation "
        "IoU on the first 100 images with the attribute",
        ("oracle_acc_transfer_100pairs", "identity_cos_transfer_100pairs", "kid_transfer_100pairs",
         "mae_outside_transfer_100pairs", "oracle_acc_removal_100", "mask_iou_100")),
    "li2016": Preset(
        "li2016", "Li et al. 2016, Deep identity-aware transfer of facial attributes (DIAT, seed 004)",
        "mouth_open / mouth_close / eyeglasses_removal (and the bench's smile) on 200 test images each: oracle "
        "attribute success, identity cosine, preservation of the other attributes, L1 to the true edit (bench)",
        ("oracle_acc_diat_200", "identity_cos_diat_200", "oracle_pres_diat_200", "cf_l1_diat_200")),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown protocol preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
