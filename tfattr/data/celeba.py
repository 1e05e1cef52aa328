"""CelebA (Liu et al., ICCV 2015) from the official files, and the tfds `celeb_a` build.

Official layout (registered "celeba"), under `root`:

    <root>/img_align_celeba/000001.jpg ...           # "Align&Cropped Images", 178x218 JPEGs
    <root>/list_attr_celeba.txt                      # count / 40 names / "file v1..v40" (1 or -1)
    <root>/list_eval_partition.txt                   # "file 0|1|2" (train/validation/test)
    <root>/list_landmarks_align_celeba.txt           # optional: count / header / "file x1 y1 .. x5 y5"
    <root>/identity_CelebA.txt                       # optional: "file identity"

`root` defaults to `$TFATTR_CELEBA_DIR` when set, else `~/tensorflow_datasets/downloads/manual/celeba`.

Schema: the 40 binary attributes in file order, except that the four hair-colour columns
(Black_Hair, Blond_Hair, Brown_Hair, Gray_Hair) become one categorical `Hair_Color` (values
black/blond/brown/gray) at the position of the first of them; a row with none or several of them
set is unlabelled for `Hair_Color` (-1), as StarGAN treats hair colour as one exclusive domain.

Pre-processing follows StarGAN / Zhang et al. 2019: centre crop 178x178 (rows 20..197), then resize.
"""

from __future__ import annotations

import os
import random
import re

import numpy as np
import tensorflow as tf

from tfattr.data import attributes as attr_lib
from tfattr.data.attributes import Schema
from tfattr.data.base import SPLITS, DataError, MissingDataError, Source, register
from tfattr.data.image_folder import Table, TableSource, default_root

ENV_VAR = "TFATTR_CELEBA_DIR"
IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
HAIR_COLUMNS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
HAIR_VALUES = ("black", "blond", "brown", "gray")
HAIR_ATTRIBUTE = "Hair_Color"
IMAGE_HEIGHT, IMAGE_WIDTH, CROP_SIZE = 218, 178, 178
CROP_BOX = ((IMAGE_HEIGHT - CROP_SIZE) // 2, (IMAGE_WIDTH - CROP_SIZE) // 2, CROP_SIZE, CROP_SIZE)
STARGAN_SPLIT_SEED = 1234
_RANDOM_SPLIT = re.compile(r"^random(\d+)$")

_WHERE_TO_GET = (
    "Get it from the official CelebA site (Liu et al., MMLAB, CUHK: "
    "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html -> 'Align&Cropped Images' folder "
    "img_align_celeba.zip and 'Anno'/'Eval' folders list_attr_celeba.txt, list_eval_partition.txt, "
    "list_landmarks_align_celeba.txt), unzip the images so that {root}/img_align_celeba/000001.jpg "
    "exists, put the .txt files in {root}, or pass root=... / set $" + ENV_VAR + "."
)


def _missing(path: str, root: str) -> MissingDataError:
    return MissingDataError(f"CelebA: {path} not found. " + _WHERE_TO_GET.format(root=root))


def celeba_schema(names: list[str]) -> tuple[Schema, list]:
    """The tfattr schema for CelebA attribute columns `names`, and how to compute each label.

    Args:
      names: the attribute names of list_attr_celeba.txt, in file order.

    Returns:
      `(schema, plan)`; `plan[g]` is a column index (binary) or the tuple of the hair columns.
    """
    attrs, plan = [], []
    hair = [names.index(h) for h in HAIR_COLUMNS] if all(h in names for h in HAIR_COLUMNS) else None
    for j, name in enumerate(names):
        if hair is not None and j in hair:
            if j == min(hair):
                attrs.append(attr_lib.categorical(HAIR_ATTRIBUTE, HAIR_VALUES))
                plan.append(tuple(hair))
            continue
        attrs.append(attr_lib.binary(name))
        plan.append(j)
    return Schema(tuple(attrs)), plan


def read_attributes(path: str):
    """Parses list_attr_celeba.txt.

    Args:
      path: the file.

    Returns:
      `(files, names, values)`: file names, the attribute names of line 2, and int8 `[N, len(names)]`
      with 1 (present) or 0 (absent; the file's -1, also 0 accepted).

    Raises:
      MissingDataError: `path` does not exist.
      DataError: bad count line, wrong column count, value other than 1/-1/0, repeated file, or a
        row count different from line 1 (the message names the file and line).
    """
    if not os.path.isfile(path):
        raise _missing(path, os.path.dirname(path))
    with open(path) as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        raise DataError(f"{path}: expected a count line and a header line, got {len(lines)} line(s)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{path}:1: expected the number of images, got {lines[0][:80]!r}") from None
    names = lines[1].split()
    if not names or len(set(names)) != len(names):
        raise DataError(f"{path}:2: expected distinct attribute names, got {lines[1][:200]!r}")
    files, tokens, linenos, seen = [], [], [], set()
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(f"{path}:{lineno}: expected a file name and {len(names)} values, got {len(parts)} fields")
        if parts[0] in seen:
            raise DataError(f"{path}:{lineno}: file {parts[0]} listed twice")
        seen.add(parts[0])
        files.append(parts[0])
        tokens.append(parts[1:])
        linenos.append(lineno)
    rows = len(files)
    # Vectorised value check: a Python loop over 200k x 40 strings costs seconds at every start-up.
    raw = np.array(tokens, dtype=str).reshape(rows, len(names))
    present = raw == "1"
    bad = ~(present | (raw == "-1") | (raw == "0"))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}:{linenos[r]}: attribute {names[c]} has value {str(raw[r, c])!r}; expected 1 or -1")
    values = present.astype(np.int8)
    if rows != count:
        raise DataError(f"{path}: line 1 announces {count} images but {rows} rows follow")
    return files, names, values


def labels_from_values(values: np.ndarray, plan: list) -> np.ndarray:
    """0/1 attribute values `[N, 40]` -> int32 labels `[N, G]` (hair colours grouped, ambiguous -> -1).

    Args:
      values: int array `[N, C]` of 0/1 in list_attr_celeba.txt column order.
      plan: from `celeba_schema`.

    Returns:
      int32 `[N, G]`.
    """
    out = np.empty([len(values), len(plan)], np.int32)
    for g, p in enumerate(plan):
        if isinstance(p, tuple):
            hair = values[:, list(p)].astype(np.int32)
            exactly_one = hair.sum(axis=1) == 1
            out[:, g] = np.where(exactly_one, hair.argmax(axis=1), -1)
        else:
            out[:, g] = values[:, p]
    return out


def read_pairs(path: str, *, header_lines: int = 0, kind: str = "value") -> dict[str, list[int]]:
    """Parses "file int [int ...]" lines (partition, identity, landmark files).

    Args:
      path: the file.
      header_lines: lines to skip first (2 for the landmarks file).
      kind: what the integers are, for messages.

    Returns:
      `{file: [ints]}` in file order.

    Raises:
      MissingDataError: `path` does not exist.
      DataError: non-integer field or inconsistent field count (file and line named).
    """
    if not os.path.isfile(path):
        raise _missing(path, os.path.dirname(path))
    out, width = {}, None
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if lineno <= header_lines:
                continue
            parts = line.split()
            if not parts:
                continue
            if width is None:
                width = len(parts)
            if len(parts) != width or width < 2:
                raise DataError(f"{path}:{lineno}: expected a file name and {max((width or 2) - 1, 1)} {kind}(s), "
                                f"got {len(parts)} fields")
            try:
                out[parts[0]] = [int(v) for v in parts[1:]]
            except ValueError:
                raise DataError(f"{path}:{lineno}: {kind} {parts[1:]} is not an integer") from None
    return out


def read_landmarks(path: str) -> dict[str, np.ndarray]:
    """list_landmarks_align_celeba.txt -> `{file: int32 [5, 2]}` (eyes, nose, mouth corners; x, y)."""
    rows = read_pairs(path, header_lines=2, kind="coordinate")
    out = {}
    for name, v in rows.items():
        if len(v) != 10:
            raise DataError(f"{path}: {name} has {len(v)} coordinates; expected 10 (5 points)")
        out[name] = np.asarray(v, np.int32).reshape(5, 2)
    return out


class CelebA(TableSource):
    """CelebA from the official files (see the module docstring); a `TableSource`."""

    def __init__(self, root: str, *, test_split: str = "official", split_seed: int = STARGAN_SPLIT_SEED):
        root = os.path.expanduser(str(root))
        self.root = root
        if not os.path.isdir(root):
            raise _missing(root, root)
        image_dir = os.path.join(root, IMAGE_DIR)
        if not os.path.isdir(image_dir):
            raise _missing(image_dir, root)
        files, names, values = read_attributes(os.path.join(root, ATTR_FILE))
        schema, plan = celeba_schema(names)
        labels = labels_from_values(values, plan)
        identity = None
        if os.path.isfile(os.path.join(root, IDENTITY_FILE)):
            ids = read_pairs(os.path.join(root, IDENTITY_FILE), kind="identity")
            identity = np.array([ids.get(f, [-1])[0] for f in files], np.int32)
        paths = np.array([os.path.join(image_dir, f) for f in files], dtype=object)
        table = Table(labels, np.arange(len(files), dtype=np.int64), paths=paths, identity=identity)
        parts = self._split(root, files, test_split, split_seed)
        super().__init__("celeba", schema, {s: table.take(idx) for s, idx in parts.items()}, crop=CROP_BOX)
        self.files = files

    @staticmethod
    def _split(root: str, files: list[str], test_split: str, seed: int) -> dict[str, np.ndarray]:
        if test_split == "official":
            path = os.path.join(root, PARTITION_FILE)
            part = read_pairs(path, kind="partition")
            missing = [f for f in files if f not in part]
            if missing:
                raise DataError(f"{path}: no partition for {len(missing)} image(s) of {ATTR_FILE}, e.g. {missing[0]}")
            codes = np.array([part[f][0] for f in files])
            bad = sorted(set(codes.tolist()) - {0, 1, 2})
            if bad:
                raise DataError(f"{path}: partition codes must be 0 (train), 1 (validation), 2 (test); got {bad}")
            return {s: np.flatnonzero(codes == k) for k, s in enumerate(SPLITS)}
        m = _RANDOM_SPLIT.match(str(test_split))
        if not m:
            raise DataError(f"CelebA: test_split={test_split!r}; valid: 'official' or 'random<N>' (e.g. 'random2000')")
        n_test = int(m.group(1))
        if not 0 < n_test < len(files):
            raise DataError(f"CelebA: test_split={test_split!r} needs 0 < N < {len(files)} images")
        # The same permutation as StarGAN's loader (Python's `random.seed(1234); random.shuffle(rows)`
        # over the attribute-file rows), so test sets line up with published StarGAN numbers.
        order = list(range(len(files)))
        random.Random(seed).shuffle(order)
        test = np.sort(np.array(order[:n_test], np.int64))
        train = np.sort(np.array(order[n_test:], np.int64))
        return {"train": train, "validation": np.zeros([0], np.int64), "test": test}

    def landmarks(self, split: str) -> np.ndarray:
        """int32 `[N, 5, 2]` landmarks of `split` in `examples(split)` order (needs the landmarks file).

        Raises:
          MissingDataError: list_landmarks_align_celeba.txt is absent.
          DataError: an image has no landmarks row.
        """
        path = os.path.join(self.root, LANDMARKS_FILE)
        marks = read_landmarks(path)
        out = []
        for p in self.table(split).paths:
            name = os.path.basename(str(p))
            if name not in marks:
                raise DataError(f"{path}: no landmarks for {name}")
            out.append(marks[name])
        return np.stack(out) if out else np.zeros([0, 5, 2], np.int32)


@register("celeba")
def make_celeba(root: str | None = None, *, test_split: str = "official", split_seed: int = STARGAN_SPLIT_SEED,
                image_size: int | None = None) -> CelebA:
    """CelebA from the official files.

    Args:
      root: dataset folder; None = `$TFATTR_CELEBA_DIR`, else
        `~/tensorflow_datasets/downloads/manual/celeba`.
      test_split: "official" (list_eval_partition.txt: train/validation/test) or "random<N>", e.g.
        "random2000": N seeded random test images, all others train, no validation (StarGAN,
        Zhang et al. 2019).
      split_seed: seed of the random split (1234 = StarGAN's).
      image_size: accepted for the `load()` contract; resizing happens in the pipeline.

    Returns:
      A `CelebA` source.

    Raises:
      MissingDataError: a folder or file is missing (the message says what to download, from where).
      DataError: malformed annotation files (file and line named) or bad `test_split`.
    """
    del image_size
    return CelebA(root or default_root(ENV_VAR, "celeba"), test_split=test_split, split_seed=split_seed)


# --- tfds `celeb_a` (prepared beforehand; never downloaded here). ---

TFDS_NAME = "celeb_a"
TFDS_FILES = ("img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt",
              "list_landmarks_align_celeba.txt", "identity_CelebA.txt")


class CelebATfds(Source):
    """CelebA read from a prepared tfds `celeb_a` build (same schema and crop as "celeba")."""

    def __init__(self, builder):
        self.name = "celeba_tfds"
        self._builder = builder
        names = list(builder.info.features["attributes"].keys())
        self.schema, self._plan = celeba_schema(names)
        self._names = names

    def crop_box(self):
        return CROP_BOX

    def num_examples(self, split: str) -> int:
        self.check_split(split)
        info = self._builder.info.splits
        return info[split].num_examples if split in info else 0

    def examples(self, split: str):
        self.check_split(split)
        ds = self._builder.as_dataset(split=split, shuffle_files=False)
        names, plan = self._names, self._plan

        def convert(ex):
            values = tf.stack([tf.cast(ex["attributes"][n], tf.int32) for n in names])
            cols = []
            for p in plan:
                if isinstance(p, tuple):
                    hair = tf.gather(values, list(p))
                    cols.append(tf.where(tf.reduce_sum(hair) == 1, tf.cast(tf.argmax(hair), tf.int32), -1))
                else:
                    cols.append(values[p])
            out = {"image": ex["image"], "labels": tf.stack(cols)}
            if "identity" in ex:
                out["identity"] = tf.cast(ex["identity"]["Identity_No"], tf.int32)
            return out

        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@register("celeba_tfds")
def make_celeba_tfds(data_dir: str | None = None, *, prepare_from_manual: bool = False,
                     image_size: int | None = None) -> CelebATfds:
    """CelebA from tfds' `celeb_a` build in `data_dir` (official partition only).

    Nothing is downloaded. If the build is missing and `prepare_from_manual=True`, it is built
    offline from the five official files placed in `<data_dir>/downloads/manual/` (tfds takes a
    manually downloaded file instead of its URL when the names match).

    Args:
      data_dir: tfds data dir; None = tfds' default (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
      prepare_from_manual: build from the manual files when not yet prepared.
      image_size: accepted for the `load()` contract.

    Returns:
      A `CelebATfds` source.

    Raises:
      MissingDataError: not prepared (and no complete manual files); the message says what to do.
    """
    del image_size
    import tensorflow_datasets as tfds

    builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
    if builder.is_prepared():
        return CelebATfds(builder)
    base = data_dir or os.path.dirname(os.path.dirname(builder.data_dir))  # <base>/celeb_a/<version>
    manual = os.path.join(os.path.expanduser(str(base)), "downloads", "manual")
    have = [f for f in TFDS_FILES if os.path.isfile(os.path.join(manual, f))]
    if prepare_from_manual and len(have) == len(TFDS_FILES):
        config = tfds.download.DownloadConfig(manual_dir=manual)
        builder.download_and_prepare(download_config=config)
        return CelebATfds(builder)
    missing = [f for f in TFDS_FILES if f not in have]
    raise MissingDataError(
        f"celeba_tfds: tfds dataset {TFDS_NAME!r} is not prepared in {builder.data_dir} and tfattr never downloads. "
        f"Either (a) on a machine with internet run `tfds build {TFDS_NAME} --data_dir=<dir>` and copy "
        f"<dir>/{TFDS_NAME} into {base}; or (b) get {', '.join(missing)} from the official CelebA site "
        "(http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html; identity_CelebA.txt is in its 'Anno' folder), "
        f"put them in {manual} and pass prepare_from_manual=True; or (c) use the 'celeba' source on the "
        "unzipped official files."
    )
