"""Training batches with a labelled companion stream, for semi-supervised models (bi_infogan).

Hinz & Wermter 2018 (Sec. IV) start training by drawing only labelled examples and lower that
probability to the true labelled share over the first iterations. A model does this per example
by choosing between the regular batch and a batch drawn from the labelled examples only, so each
batch here carries both:

* the `pipeline.make_batches` keys of the regular stream (`image`, `attributes`, `labels`,
  `labelled_mask`, ...), drawn uniformly from the split;
* `labelled_image` float32 `[B, S, S, 3]` and `labelled_labels` int32 `[B, G]`: a second,
  independently shuffled stream of examples with at least one selected attribute labelled.

`labelled_ratio(source, split, attributes)` is the true share of such examples.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfattr.data import pipeline
from tfattr.data.attributes import parse_names
from tfattr.data.base import DataError, Source, get_source


def _labelled_predicate(source: Source, attributes):
    columns = tf.constant(source.schema.selection_indices(parse_names(attributes)), tf.int32)

    def where(ex):
        return tf.reduce_any(tf.gather(tf.cast(ex["labels"], tf.int32), columns) >= 0)

    return where


def labelled_ratio(source: Source, split: str, attributes=None) -> float | None:
    """Share of `split` with at least one selected attribute labelled (None if the source has no table)."""
    table = getattr(source, "table", None)
    if table is None:
        return None
    labels = table(split).labels[:, source.schema.selection_indices(parse_names(attributes))]
    return float(np.mean(np.any(labels >= 0, axis=1)))


def with_labelled(source: Source, split: str, *, image_size: int, batch_size: int, attributes=None,
                  seed: int = 0, shuffle: bool = True, repeat: bool = True, flip: bool = False,
                  **kwargs) -> tuple[tf.data.Dataset, object]:
    """Regular batches of `split` zipped with a labelled-only stream (keys in the module docstring).

    Args:
      source: any `Source`.
      split: split name.
      image_size: output side.
      batch_size: examples per batch (both streams).
      attributes: attribute names to keep (None = all).
      seed: seed of the regular stream; the labelled stream uses `seed + 1`.
      shuffle: see `pipeline.make_batches`.
      repeat: see `pipeline.make_batches` (the labelled stream always repeats).
      flip: see `pipeline.make_batches`.
      **kwargs: further `make_batches` keywords.

    Returns:
      `(dataset, selected_schema)`.

    Raises:
      DataError: the split has no labelled example (checked when the source exposes its table).
    """
    ratio = labelled_ratio(source, split, attributes)
    if ratio == 0.0:
        raise DataError(f"{source.name}/{split}: no example has a label for {parse_names(attributes) or 'any attribute'}"
                        "; semi-supervised training needs at least one (see the source's num_labelled option)")
    common = dict(image_size=image_size, batch_size=batch_size, attributes=attributes, flip=flip, **kwargs)
    regular, schema = pipeline.make_batches(source, split, seed=seed, shuffle=shuffle, repeat=repeat, **common)
    labelled, _ = pipeline.make_batches(source, split, seed=seed + 1, shuffle=True, repeat=True,
                                        where=_labelled_predicate(source, attributes), **common)
    zipped = tf.data.Dataset.zip((regular, labelled)).map(
        lambda a, b: {**a, "labelled_image": b["image"], "labelled_labels": b["labels"]},
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return zipped.prefetch(tf.data.AUTOTUNE), schema


def load_with_labelled(name: str, split: str, *, image_size: int, batch_size: int, attributes=None, seed: int = 0,
                       shuffle: bool = True, repeat: bool = True, flip: bool = False, **source_options):
    """`with_labelled(get_source(name, image_size=image_size, **source_options), split, ...)`."""
    source = get_source(name, image_size=image_size, **source_options)
    return with_labelled(source, split, image_size=image_size, batch_size=batch_size, attributes=attributes,
                         seed=seed, shuffle=shuffle, repeat=repeat, flip=flip)
