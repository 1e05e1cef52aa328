"""The contract every dataset source follows, the data errors, and the source registry.

A source turns files (or the procedural renderer) into single examples:
`{"image": uint8 [H, W, 3], "labels": int32 [G], ...}` with `labels` described by `source.schema`
(class indices, -1 = unlabelled). Optional keys a source may add: `"identity"` int32 `[]`,
`"index"` int64 `[]`. `tfattr.data.pipeline` crops, resizes, encodes and batches them into model
batches `{"image": float32 [B, S, S, 3] in [-1, 1], "attributes": float32 [B, A] in {0, 1},
"labels": int32 [B, G], ...}`.
"""

from __future__ import annotations

import abc
from typing import Callable

from tfattr.data.attributes import Schema

SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """Bad or missing input data. The message names the file (and line/field where known)."""


class MissingDataError(DataError, FileNotFoundError):
    """A required file or folder is absent. The message says what to get and where to put it."""


class Source(abc.ABC):
    """A labelled image dataset (real files or the synthetic bench)."""

    name: str = ""
    schema: Schema

    @abc.abstractmethod
    def num_examples(self, split: str) -> int:
        """Examples in `split` (one of `SPLITS`)."""

    @abc.abstractmethod
    def examples(self, split: str):
        """A `tf.data.Dataset` of single-example dicts, in a fixed order (the pipeline shuffles)."""

    def check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise DataError(f"{self.name}: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")

    # Real face datasets need the papers' crop; sources override this (e.g. CelebA: centre 178x178).
    def crop_box(self) -> tuple[int, int, int, int] | None:
        """(top, left, height, width) to crop before resizing, or None for the whole image."""
        return None


_REGISTRY: dict[str, Callable[..., Source]] = {}


def register(name: str):
    """Decorator: `@register("celeba")` on a factory `(**options) -> Source`."""

    def wrap(factory):
        if name in _REGISTRY:
            raise ValueError(f"data source {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def available() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def get_source(name: str, **options) -> Source:
    """Builds the source registered as `name`; an unknown name lists the valid ones."""
    _import_all()
    if name not in _REGISTRY:
        raise DataError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


def _import_all() -> None:
    # Sources register themselves on import; import lazily so `import tfattr` stays cheap.
    import importlib

    for module in ("synthetic", "celeba", "faces", "tfds_sources", "image_folder"):
        try:
            importlib.import_module(f"tfattr.data.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"tfattr.data.{module}":
                raise
