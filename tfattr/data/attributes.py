"""Attribute schemas: named binary and categorical attributes, and their encodings.

Every dataset in tfattr describes its labels with a `Schema`. Labels are stored per example as
integer class indices, one per attribute (`labels`, int32 `[G]`, `-1` = not labelled), and fed to
models as a multi-hot float vector (`attributes`, float32 `[A]` in {0, 1}): a binary attribute takes
one column (1 = present), a categorical attribute with K values takes K one-hot columns (CelebA's
Black_Hair/Blond_Hair/Brown_Hair/Gray_Hair columns become one categorical `Hair_Color`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

BINARY_VALUES = ("no", "yes")


class UnknownAttributeError(KeyError):
    """An attribute name that the schema does not have; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One labelled factor.

    Attributes:
      name: column name, e.g. "Eyeglasses" or "Hair_Color".
      values: class names; a binary attribute has exactly `BINARY_VALUES` ("no", "yes").
    """

    name: str
    values: tuple[str, ...] = BINARY_VALUES

    def __post_init__(self):
        if len(self.values) < 2:
            raise ValueError(f"attribute {self.name!r} needs at least 2 values, got {self.values}")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"attribute {self.name!r} has repeated values {self.values}")

    @property
    def binary(self) -> bool:
        return tuple(self.values) == BINARY_VALUES

    @property
    def num_classes(self) -> int:
        return len(self.values)

    @property
    def num_columns(self) -> int:
        return 1 if self.binary else len(self.values)

    def column_names(self) -> list[str]:
        if self.binary:
            return [self.name]
        return [f"{self.name}={v}" for v in self.values]

    def value_index(self, value: str) -> int:
        try:
            return self.values.index(value)
        except ValueError:
            raise UnknownAttributeError(
                f"attribute {self.name!r} has no value {value!r}; valid values: {', '.join(self.values)}"
            ) from None


def binary(name: str) -> Attribute:
    return Attribute(name, BINARY_VALUES)


def categorical(name: str, values: Sequence[str]) -> Attribute:
    return Attribute(name, tuple(values))


@dataclasses.dataclass(frozen=True)
class Schema:
    """An ordered set of attributes with the multi-hot encoding models see."""

    attributes: tuple[Attribute, ...]

    def __post_init__(self):
        names = [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            raise ValueError(f"schema has repeated attribute names: {names}")

    def __len__(self) -> int:
        return len(self.attributes)

    def __iter__(self):
        return iter(self.attributes)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    @property
    def num_columns(self) -> int:
        return sum(a.num_columns for a in self.attributes)

    @property
    def column_names(self) -> list[str]:
        return [c for a in self.attributes for c in a.column_names()]

    @property
    def column_slices(self) -> list[tuple[int, int]]:
        """`(start, stop)` of each attribute's columns in the multi-hot vector."""
        out, start = [], 0
        for a in self.attributes:
            out.append((start, start + a.num_columns))
            start += a.num_columns
        return out

    def index(self, name: str) -> int:
        for i, a in enumerate(self.attributes):
            if a.name == name:
                return i
        raise UnknownAttributeError(
            f"unknown attribute {name!r}; valid attributes: {', '.join(self.names)}"
        )

    def __getitem__(self, name: str) -> Attribute:
        return self.attributes[self.index(name)]

    def select(self, names: Iterable[str] | None) -> "Schema":
        """The sub-schema with `names` in the given order (all attributes when `names` is None)."""
        if names is None:
            return self
        names = list(names)
        if not names:
            raise ValueError("select() needs at least one attribute name")
        return Schema(tuple(self[n] for n in names))

    def selection_indices(self, names: Iterable[str] | None) -> list[int]:
        """Positions of `names` in this schema, for slicing `labels` arrays."""
        if names is None:
            return list(range(len(self)))
        return [self.index(n) for n in names]

    def validate_labels(self, labels: np.ndarray, where: str = "labels") -> None:
        """Raises ValueError naming `where` and the attribute if a label is out of range."""
        labels = np.asarray(labels)
        if labels.shape[-1] != len(self):
            raise ValueError(f"{where}: expected {len(self)} label columns {self.names}, got {labels.shape[-1]}")
        for i, a in enumerate(self.attributes):
            col = labels[..., i]
            bad = (col < -1) | (col >= a.num_classes)
            if np.any(bad):
                raise ValueError(
                    f"{where}: attribute {a.name!r} has label {int(col[bad].flat[0])} outside "
                    f"[-1, {a.num_classes - 1}] (values {a.values})"
                )

    def encode(self, labels):
        """Class indices `[..., G]` (int, -1 = unlabelled) -> multi-hot float32 `[..., A]`.

        Works on numpy arrays and on tensors (inside `tf.data.Dataset.map`). Unlabelled attributes
        encode as all-zero columns; use `labels >= 0` as the mask.
        """
        if isinstance(labels, np.ndarray) or np.isscalar(labels) or isinstance(labels, (list, tuple)):
            labels = np.asarray(labels)
            cols = []
            for i, a in enumerate(self.attributes):
                col = labels[..., i]
                if a.binary:
                    cols.append((col == 1).astype(np.float32)[..., None])
                else:
                    cols.append((col[..., None] == np.arange(a.num_classes)).astype(np.float32))
            return np.concatenate(cols, axis=-1)
        import tensorflow as tf

        labels = tf.cast(labels, tf.int32)
        cols = []
        for i, a in enumerate(self.attributes):
            col = labels[..., i]
            if a.binary:
                cols.append(tf.cast(tf.equal(col, 1), tf.float32)[..., None])
            else:
                cols.append(tf.one_hot(col, a.num_classes, dtype=tf.float32))  # -1 -> zeros
        return tf.concat(cols, axis=-1)

    def decode(self, attributes: np.ndarray) -> np.ndarray:
        """Multi-hot (or scores/probabilities) `[..., A]` -> class indices int32 `[..., G]`."""
        attributes = np.asarray(attributes)
        out = []
        for a, (s, e) in zip(self.attributes, self.column_slices):
            if a.binary:
                out.append((attributes[..., s] > 0.5).astype(np.int32))
            else:
                out.append(np.argmax(attributes[..., s:e], axis=-1).astype(np.int32))
        return np.stack(out, axis=-1)

    def to_json(self) -> list[dict]:
        return [{"name": a.name, "values": list(a.values)} for a in self.attributes]

    @classmethod
    def from_json(cls, items: list[dict]) -> "Schema":
        return cls(tuple(Attribute(d["name"], tuple(d["values"])) for d in items))


def domain_indices(attribute: Attribute, value_b: str, value_a: str | None = None) -> tuple[int, int | None]:
    """Class indices of a two-domain reading of `attribute`: (domain B's, domain A's or None = every
    other class), for `domain_membership`. Unknown names fail listing the valid ones; A = B fails."""
    b = attribute.value_index(value_b)
    a = None if value_a is None else attribute.value_index(value_a)
    if a == b:
        raise ValueError(f"two-domain reading: {attribute.name} domains A and B are both {value_b!r}")
    return b, a


def domain_membership(labels, value_b: int, value_a: int | None = None) -> np.ndarray:
    """Two-domain reading of one attribute's class indices (-1 = unlabelled), as in
    `pipeline.two_domains`: 1 = domain B (`value_b`), 0 = domain A (`value_a`, or every other
    labelled class when None), -1 = neither."""
    labels = np.asarray(labels)
    in_a = (labels >= 0) & (labels != value_b) if value_a is None else labels == value_a
    return np.where(labels == value_b, 1, np.where(in_a, 0, -1))


def parse_names(text: str | Sequence[str] | None) -> list[str] | None:
    """"A,B , C" or ["A", "B"] -> ["A", "B", "C"]; empty or None -> None (all attributes)."""
    if text is None:
        return None
    if isinstance(text, str):
        items = [t.strip() for t in text.split(",")]
    else:
        items = [str(t).strip() for t in text]
    items = [t for t in items if t]
    return items or None
