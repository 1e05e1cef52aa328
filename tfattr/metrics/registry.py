"""Metric registry: named metrics whose names encode the protocol, computed on any model by the
operations it supports.

    @register_metric("oracle_acc_swap_2k", protocol="zhang2019", requires_any=("reference_transfer",
                     "label_translation"), bench_only=True)
    def oracle_acc_swap_2k(ctx: EvalContext) -> list[dict]: ...

A metric function takes an `EvalContext` and returns records (dicts with at least "value");
`calc_metric` adds the common fields (metric, protocol, model, step, split, seed, dataset). A model
plugs in through `Operations`, which finds what it can do (reference transfer, label translation,
masks, removal, generation, latent posteriors/encodings) from an optional `CAPABILITIES` class
attribute or by probing each operation on one blank image, never from the model's name. A metric
the model cannot run raises `NotApplicable` with the reason.

Name grammar: `<score>_<protocol edit>_<size>[_<split>]`, e.g. `fid_10k_test` (FID of edits of the
first 10k test images against those images), `oracle_acc_swap_2k` (oracle swap accuracy on the
2k-image Zhang et al. 2019 pairing), `mask_iou_100` (IoU on 100 test images). Sizes are fixed by the
name; tests register small variants with the same factories into their own `Registry`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from tfattr.data import synthetic
from tfattr.data.attributes import domain_indices, domain_membership
from tfattr.metrics import disentanglement, frechet, identity, protocols, segmentation

OPERATIONS = ("reference_transfer", "label_translation", "mask", "removal", "generation", "latent_posteriors",
              "encodings")


class UnknownMetricError(ValueError):
    pass


class NotApplicable(Exception):
    """The metric cannot run on this model or dataset; str(e) says why."""


# ---------------------------------------------------------------------------------------------
# Operations a model supports
# ---------------------------------------------------------------------------------------------
def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, np.float32)


class Operations:
    """numpy-in, numpy-out view of a model's inference operations (images float in [-1, 1]).

    A model may declare `CAPABILITIES = ("reference_transfer", "mask", ...)` (and, for reference
    transfer, `TRANSFER_ATTRIBUTES`); otherwise each operation is probed once on a blank image:
      reference_transfer: `transfer_from_reference(source, reference, [name])`, probed per attribute
      label_translation:  `translate(images, target_attributes)` (multi-hot in the model's schema)
      mask:               `segment(images) -> (soft [N,S,S,1], binary)`
      removal:            `remove(images) -> (images, mask)`
      generation:         `generate(num, seed) -> images`
      latent_posteriors:  `latent_posteriors(images) -> {encoding: {attribute: probs [N, K]}}`
      encodings:          `attribute_encodings(images) -> {attribute: [N, D]}`

    Attributes:
      supported: frozenset of operation names.
      transfer_attributes: attribute names reference transfer accepts.
      domains: `{attribute: (class of domain B, class of domain A or None = every other class)}` the
        model declares as `transfer_domains` (two-domain models); empty otherwise.
      schema: the model's attribute schema; image_size: its input side.
    """

    def __init__(self, model, batch_size: int = 50):
        self.model = model
        self.batch_size = batch_size
        self.schema = model.schema
        self.image_size = int(model.image_size)
        declared = getattr(model, "CAPABILITIES", None)
        if declared is not None:
            bad = set(declared) - set(OPERATIONS)
            if bad:
                raise ValueError(f"{type(model).__name__}.CAPABILITIES: unknown operations {sorted(bad)}; "
                                 f"valid: {', '.join(OPERATIONS)}")
            self.supported = frozenset(declared)
            self.transfer_attributes = tuple(getattr(model, "TRANSFER_ATTRIBUTES", self.schema.names)
                                             if "reference_transfer" in declared else ())
        else:
            self.supported, self.transfer_attributes = self._probe()
        # {attribute: (class of domain B, class of domain A or None)} for two-domain models whose
        # "content" is one class of an attribute (mask_transfer's `transfer_domains`); binary
        # attributes default to yes / no.
        self.domains = dict(getattr(model, "transfer_domains", None) or {})

    def _probe(self):
        import tensorflow as tf

        x = tf.zeros([1, self.image_size, self.image_size, 3])
        m = self.model
        quiet = (NotImplementedError, ValueError, KeyError, TypeError, AttributeError, tf.errors.InvalidArgumentError)

        def works(fn):
            try:
                fn()
                return True
            except quiet:
                return False

        supported = set()
        transfer = tuple(n for n in self.schema.names if works(lambda n=n: m.transfer_from_reference(x, x, [n])))
        if transfer:
            supported.add("reference_transfer")
        probes = {
            "label_translation": lambda: m.translate(x, tf.zeros([1, self.schema.num_columns])),
            "mask": lambda: m.segment(x),
            "removal": lambda: m.remove(x),
            "generation": lambda: m.generate(1, 0),
            "latent_posteriors": lambda: m.latent_posteriors(x),
            "encodings": lambda: m.attribute_encodings(x),
        }
        for op, fn in probes.items():
            if works(fn):
                supported.add(op)
        return frozenset(supported), transfer

    def has(self, op: str) -> bool:
        return op in self.supported

    def _batched(self, fn, *arrays) -> np.ndarray:
        n = len(arrays[0])
        return np.concatenate([fn(*(a[i:i + self.batch_size] for a in arrays)) for i in range(0, n, self.batch_size)])

    def transfer(self, source, reference, names: Sequence[str]) -> np.ndarray:
        names = list(names)
        return self._batched(lambda s, r: _np(self.model.transfer_from_reference(s, r, names)),
                             np.asarray(source, np.float32), np.asarray(reference, np.float32))

    def translate(self, images, target_multi_hot) -> np.ndarray:
        return self._batched(lambda x, t: _np(self.model.translate(x, t)), np.asarray(images, np.float32),
                             np.asarray(target_multi_hot, np.float32))

    def segment(self, images) -> np.ndarray:
        """Soft masks `[N, S, S]` in [0, 1]."""
        out = self._batched(lambda x: _np(self.model.segment(x)[0]), np.asarray(images, np.float32))
        return out[..., 0] if out.ndim == 4 else out

    def remove(self, images) -> np.ndarray:
        return self._batched(lambda x: _np(self.model.remove(x)[0]), np.asarray(images, np.float32))

    def latent_posteriors(self, images) -> dict:
        images = np.asarray(images, np.float32)
        chunks = [self.model.latent_posteriors(images[i:i + self.batch_size])
                  for i in range(0, len(images), self.batch_size)]
        return {e: {a: np.concatenate([_np(c[e][a]) for c in chunks]) for a in chunks[0][e]} for e in chunks[0]}

    def encodings(self, images) -> dict:
        images = np.asarray(images, np.float32)
        chunks = [self.model.attribute_encodings(images[i:i + self.batch_size])
                  for i in range(0, len(images), self.batch_size)]
        return {k: np.concatenate([_np(c[k]).reshape(len(_np(c[k])), -1) for c in chunks]) for k in chunks[0]}


# ---------------------------------------------------------------------------------------------
# Test images
# ---------------------------------------------------------------------------------------------
class BenchTestSet:
    """The synthetic bench's test split: labels are free, images are rendered on demand."""

    is_bench = True

    def __init__(self, seed: int = 0, split: str = "test"):
        self.seed, self.split, self.schema = seed, split, synthetic.SCHEMA

    def params(self, indices) -> dict:
        return synthetic.params_for(self.seed, self.split, np.asarray(indices))

    def labels(self, indices) -> np.ndarray:
        """Class indices int32 `[N, G]` in `schema` order."""
        return synthetic.labels(self.params(indices))

    def images(self, indices, size: int) -> np.ndarray:
        return synthetic.render(self.params(indices), size)["image"].astype(np.float32) / 127.5 - 1.0

    def masks(self, indices, size: int, mask_name: str) -> np.ndarray:
        return synthetic.render(self.params(indices), size, outputs=("masks",))["masks"][mask_name]

    def spec(self, indices, size: int) -> dict:
        idx = np.asarray(indices)
        return {"dataset": "synthetic", "split": self.split, "seed": self.seed, "size": size,
                "renderer": synthetic.RENDERER_VERSION, "indices_sha": _array_digest(idx), "count": int(idx.size)}


class DatasetTestSet:
    """The first examples of a registered dataset's test split (held in memory as uint8)."""

    is_bench = False

    def __init__(self, name: str, image_size: int, split: str = "test", options: dict | None = None,
                 attributes=None):
        self.name, self.image_size, self.split = name, image_size, split
        self.options, self.attributes = dict(options or {}), attributes
        self._images = np.zeros((0, image_size, image_size, 3), np.uint8)
        self._labels = None
        self._schema = None
        self._exhausted = False

    @property
    def schema(self):
        if self._schema is None:
            self._ensure(1)
        return self._schema

    def _ensure(self, count: int):
        if len(self._images) >= count or self._exhausted:
            if len(self._images) < count:
                raise NotApplicable(f"{self.name}/{self.split} has {len(self._images)} images, need {count}")
            return
        from tfattr.data import pipeline

        ds, schema = pipeline.load(self.name, self.split, image_size=self.image_size, batch_size=64,
                                   attributes=self.attributes, shuffle=False, repeat=False, drop_remainder=False,
                                   **self.options)
        self._schema = schema
        images, labels = [], []
        n = 0
        for batch in ds:
            images.append(np.clip(np.round((batch["image"].numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8))
            labels.append(schema.decode(batch["attributes"].numpy()))
            n += len(images[-1])
            if n >= count:
                break
        else:
            self._exhausted = True
        self._images, self._labels = np.concatenate(images), np.concatenate(labels)
        self._ensure(count)

    def labels(self, indices) -> np.ndarray:
        idx = np.asarray(indices)
        self._ensure(int(idx.max()) + 1 if idx.size else 0)
        return self._labels[idx]

    def images(self, indices, size: int) -> np.ndarray:
        import tensorflow as tf

        idx = np.asarray(indices)
        self._ensure(int(idx.max()) + 1 if idx.size else 0)
        x = self._images[idx].astype(np.float32) / 127.5 - 1.0
        return x if size == self.image_size else tf.image.resize(x, (size, size), antialias=True).numpy()

    def masks(self, indices, size, mask_name):
        raise NotApplicable(f"dataset {self.name!r} has no ground-truth masks (bench only)")

    def spec(self, indices, size: int) -> dict:
        idx = np.asarray(indices)
        return {"dataset": self.name, "split": self.split, "options": self.options, "size": size,
                "attributes": self.attributes, "indices_sha": _array_digest(idx), "count": int(idx.size)}


def _array_digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, np.int64).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------------------------
class Progress:
    """A one-line text progress bar on stderr: `[#####.....] 12/40 metric-name`."""

    def __init__(self, total: int, label: str = "", stream=None, width: int = 30, enabled: bool = True):
        self.total, self.label, self.width = max(int(total), 1), label, width
        self.stream, self.enabled, self.done, self.t0 = stream or sys.stderr, enabled, 0, time.time()

    def update(self, n: int = 1, label: str | None = None):
        self.done = min(self.total, self.done + n)
        if label is not None:
            self.label = label
        if self.enabled:
            fill = int(self.width * self.done / self.total)
            self.stream.write(f"\r[{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} "
                              f"{time.time() - self.t0:6.1f}s {self.label[:40]:40s}")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


@dataclasses.dataclass
class EvalContext:
    """Everything a metric may use. Heavy parts (oracle, Inception) are created on first use.

    Attributes:
      ops: the model's `Operations`.
      testset: `BenchTestSet` or `DatasetTestSet`.
      model_name, step, seed, split: recorded with every value.
      oracle_fn: zero-argument callable returning a `metrics.oracle.Oracle` (bench metrics).
      inception_fn: zero-argument callable returning a feature extractor (`features.InceptionFeatures`).
      identity_fn: optional embedding callable (images -> `[N, D]`) for identity metrics.
      cache_dir: where real-image features are cached (None: no cache).
      requested: the metric names about to be computed (`evaluate_metrics` sets it), so shared work
        can skip parts no requested metric reads; None: unknown, compute everything.
    """

    ops: Operations
    testset: object
    model_name: str = "model"
    step: int = 0
    seed: int = 0
    split: str = "test"
    oracle_fn: Callable | None = None
    inception_fn: Callable | None = None
    identity_fn: Callable | None = None
    cache_dir: str | None = None
    progress: Progress | None = None
    requested: frozenset | None = None
    _memo: dict = dataclasses.field(default_factory=dict)

    def memo(self, key, fn):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    @property
    def identity(self):
        """The identity embedding callable; NotApplicable when none is configured."""
        if self.identity_fn is None:
            raise NotApplicable("no identity network configured")
        return self.identity_fn

    @property
    def oracle(self):
        if self.oracle_fn is None:
            raise NotApplicable("no oracle configured")
        return self.memo("oracle", self.oracle_fn)

    @property
    def inception(self):
        if self.inception_fn is None:
            raise NotApplicable("no Inception feature extractor configured")
        return self.memo("inception", self.inception_fn)

    def require_bench(self):
        if not getattr(self.testset, "is_bench", False):
            raise NotApplicable("needs the synthetic bench (oracle labels / true counterfactuals)")

    def real_features(self, indices, extractor=None) -> np.ndarray:
        """Features of real test images `indices`, cached by (image spec, extractor identity)."""
        from tfattr.metrics import features

        extractor = extractor or self.inception
        size = self.ops.image_size
        spec = self.testset.spec(indices, size)
        idx = np.asarray(indices)
        batches = lambda: (self.testset.images(idx[i:i + 250], size) for i in range(0, len(idx), 250))
        if self.cache_dir is None:
            return features.extract(extractor, batches())
        return features.RealFeatureCache(self.cache_dir).features(spec, extractor, batches)

    def fake_features(self, images, extractor=None) -> np.ndarray:
        from tfattr.metrics import features

        extractor = extractor or self.inception
        return features.extract(extractor, (images[i:i + 250] for i in range(0, len(images), 250)))


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[[EvalContext], list]
    protocol: str
    requires: tuple[str, ...] = ()  # all of these operations
    requires_any: tuple[str, ...] = ()  # at least one of these
    bench_only: bool = False
    description: str = ""

    def check(self, ctx: EvalContext) -> None:
        missing = [op for op in self.requires if not ctx.ops.has(op)]
        if missing or (self.requires_any and not any(ctx.ops.has(op) for op in self.requires_any)):
            need = " and ".join(self.requires) or ""
            if self.requires_any:
                need = (need + " and " if need else "") + "one of " + "/".join(self.requires_any)
            raise NotApplicable(f"needs {need}; the model supports {', '.join(sorted(ctx.ops.supported)) or 'none'}")
        if self.bench_only:
            ctx.require_bench()


class Registry:
    def __init__(self):
        self._metrics: dict[str, MetricSpec] = {}

    def register_metric(self, name: str, *, protocol: str, requires: Sequence[str] = (),
                        requires_any: Sequence[str] = (), bench_only: bool = False):
        """Decorator registering `fn(ctx) -> list[dict]` under `name`."""
        for op in tuple(requires) + tuple(requires_any):
            if op not in OPERATIONS:
                raise ValueError(f"metric {name}: unknown operation {op!r}; valid: {', '.join(OPERATIONS)}")

        def deco(fn):
            if name in self._metrics:
                raise ValueError(f"metric {name!r} is already registered")
            self._metrics[name] = MetricSpec(name, fn, protocol, tuple(requires), tuple(requires_any), bench_only,
                                             (fn.__doc__ or "").strip().split("\n")[0])
            return fn

        return deco

    def get(self, name: str) -> MetricSpec:
        if name not in self._metrics:
            raise UnknownMetricError(f"unknown metric {name!r}; valid metrics: {', '.join(self.names())}")
        return self._metrics[name]

    def names(self) -> list[str]:
        return sorted(self._metrics)

    def __contains__(self, name):
        return name in self._metrics


DEFAULT_REGISTRY = Registry()
register_metric = DEFAULT_REGISTRY.register_metric


def get_metric(name: str) -> MetricSpec:
    return DEFAULT_REGISTRY.get(name)


def list_metrics() -> list[str]:
    return DEFAULT_REGISTRY.names()


def resolve(names: Iterable[str], registry: Registry = DEFAULT_REGISTRY) -> list[str]:
    """Metric names with presets (`zhang2019`, ...) expanded; unknown names list the valid ones."""
    out = []
    for n in names:
        if n in protocols.PRESETS:
            out.extend(m for m in protocols.PRESETS[n].metrics if m in registry)
        else:
            registry.get(n)
            out.append(n)
    return list(dict.fromkeys(out))


def calc_metric(name: str, ctx: EvalContext, registry: Registry = DEFAULT_REGISTRY) -> list[dict]:
    """Runs metric `name` on `ctx`; returns its records with the common fields filled in.

    Raises:
      UnknownMetricError: lists the valid names.
      NotApplicable: the model lacks a required operation, or the metric needs the bench.
    """
    spec = registry.get(name)
    spec.check(ctx)
    t0 = time.time()
    records = spec.fn(ctx)
    common = {"metric": name, "protocol": spec.protocol, "model": ctx.model_name, "step": ctx.step,
              "split": ctx.split, "seed": ctx.seed, "dataset": ctx.testset.spec([], 0)["dataset"]}
    seconds = round(time.time() - t0, 2)
    return [{**common, **r, "seconds": seconds} for r in records]


def report_metric(records: list[dict], out_dir: str, name: str) -> str:
    """Appends `records` to `<out_dir>/metric-<name>.jsonl` (one JSON object per line)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"metric-{name}.jsonl")
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(r, default=_json_default) + "\n")
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def markdown_table(records: list[dict], skipped: dict[str, str] | None = None) -> str:
    lines = ["| metric | protocol | method | attribute | value | ± | n |", "|---|---|---|---|---|---|---|"]
    for r in records:
        std = r.get("std")
        lines.append(f"| {r['metric']} | {r['protocol']} | {r.get('method', 'model')} | {r.get('attribute', '')} | "
                     f"{_fmt(r['value'])} | {_fmt(std) if std is not None else ''} | {r.get('count', '')} |")
    for name, reason in (skipped or {}).items():
        lines.append(f"| {name} | | | | skipped: {reason.split('. ')[0]} | | |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) and abs(v) < 1000 else f"{v:.4g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------
# Running metrics on a run
# ---------------------------------------------------------------------------------------------
def make_context(model, meta: dict, step: int, seed: int = 0, inception_weights: str | None = None,
                 cache_dir: str | None = None, identity_fn="default", progress=None):
    """An `EvalContext` for a loaded model and its run metadata (`config.json`).

    `identity_fn="default"` uses dlib's face-recognition ResNet when installed (else no identity metrics).
    """
    from tfattr import config as config_lib

    if isinstance(identity_fn, str) and identity_fn == "default":
        identity_fn = identity.default_embedding_fn()

    train = meta["train"]
    if train["dataset"] == "synthetic":
        testset = BenchTestSet(seed)
    else:
        testset = DatasetTestSet(train["dataset"], train["image_size"],
                                          options=config_lib.parse_hparams(train.get("dataset_options")),
                                          attributes=train.get("attributes"))

    def oracle_fn():
        from tfattr.metrics import oracle

        return oracle.load_oracle()

    def inception_fn():
        from tfattr.metrics import features

        return features.InceptionFeatures(inception_weights)

    return EvalContext(ops=Operations(model), testset=testset, model_name=train["model"], step=step, seed=seed,
                       oracle_fn=oracle_fn, inception_fn=inception_fn, identity_fn=identity_fn, cache_dir=cache_dir,
                       progress=progress)


def evaluate_metrics(ctx, names, out_dir: str | None = None, registry=None, progress: bool = True,
                     log=print) -> tuple[list[dict], dict[str, str]]:
    """Runs registry metrics `names` (presets expanded) on `ctx`.

    Args:
      ctx: `registry.EvalContext`.
      names: metric names or preset names.
      out_dir: if given, each metric's records are appended to `metric-<name>.jsonl` there.
      registry: a `registry.Registry` (default: the standard one).
      progress: show a progress bar over the metrics.
      log: printing function for skipped metrics.

    Returns:
      `(records, skipped)`, skipped = {metric name: reason}.

    Raises:
      UnknownMetricError: an unknown name (the message lists the valid ones).
    """
    from tfattr.metrics import features

    reg = registry or DEFAULT_REGISTRY
    names = resolve(names, reg)
    ctx.requested = frozenset(names)
    bar = Progress(len(names), enabled=progress)
    records, skipped = [], {}
    for name in names:
        bar.update(0, name)
        try:
            recs = calc_metric(name, ctx, reg)
        except (NotApplicable, features.MissingWeightsError) as e:
            # Missing Inception weights skip FID/KID that a preset brought in; `main` fails fast
            # before loading the model when they were asked for by name.
            skipped[name] = str(e)
            bar.update(1)
            continue
        records += recs
        if out_dir:
            report_metric(recs, out_dir, name)
        bar.update(1)
    for name, reason in skipped.items():
        log(f"skipped {name}: {reason}")
    return records, skipped


# ---------------------------------------------------------------------------------------------
# Shared edit helpers
# ---------------------------------------------------------------------------------------------
def _model_columns(ctx: EvalContext) -> list[int]:
    """Test-set label columns of the model's attributes (by name)."""
    missing = [n for n in ctx.ops.schema.names if n not in ctx.testset.schema.names]
    if missing:
        raise NotApplicable(f"test set lacks the model's attributes {missing}")
    return [ctx.testset.schema.index(n) for n in ctx.ops.schema.names]


def editable(ctx: EvalContext) -> list[str]:
    """Attributes the model can edit: its reference-transfer attributes, else (label translation)
    its schema."""
    if ctx.ops.has("reference_transfer"):
        return list(ctx.ops.transfer_attributes)
    if ctx.ops.has("label_translation"):
        return list(ctx.ops.schema.names)
    return []


def edit_by_reference_or_label(ctx: EvalContext, src_idx, ref_idx, names_per_pair: np.ndarray, names: list[str]
                               ) -> np.ndarray:
    """Edits test images `src_idx` so the attributes selected by `names_per_pair` (bool `[N, len(names)]`)
    take the values of test images `ref_idx`: by reference transfer (grouped by the selected name
    set, one call per group) or by label translation to the reference's labels.
    Pairs that select nothing are returned unchanged (the source)."""
    size = ctx.ops.image_size
    src_idx, ref_idx = np.asarray(src_idx), np.asarray(ref_idx)
    xs = ctx.testset.images(src_idx, size)
    out = xs.copy()
    if ctx.ops.has("reference_transfer"):
        xr = ctx.testset.images(ref_idx, size)
        keys = [tuple(np.nonzero(row)[0]) for row in names_per_pair]
        for key in dict.fromkeys(keys):
            if not key:
                continue
            sel = np.array([k == key for k in keys])
            out[sel] = ctx.ops.transfer(xs[sel], xr[sel], [names[i] for i in key])
        return out
    cols = _model_columns(ctx)
    target = ctx.testset.labels(src_idx)[:, cols]
    ref = ctx.testset.labels(ref_idx)[:, cols]
    model_names = ctx.ops.schema.names
    for j, n in enumerate(names):
        k = model_names.index(n)
        target[:, k] = np.where(names_per_pair[:, j], ref[:, k], target[:, k])
    return ctx.ops.translate(xs, ctx.ops.schema.encode(target))


def edit_to_class(ctx: EvalContext, src_idx, attribute: str, target_class: np.ndarray, ref_pool: np.ndarray
                  ) -> np.ndarray:
    """Sets `attribute` of test images `src_idx` to `target_class` (int `[N]`): by label translation,
    else by reference transfer from test images of that class drawn in order from `ref_pool`."""
    size = ctx.ops.image_size
    src_idx, target_class = np.asarray(src_idx), np.asarray(target_class)
    if ctx.ops.has("label_translation") and attribute in ctx.ops.schema.names:
        cols = _model_columns(ctx)
        target = ctx.testset.labels(src_idx)[:, cols]
        target[:, ctx.ops.schema.names.index(attribute)] = target_class
        return ctx.ops.translate(ctx.testset.images(src_idx, size), ctx.ops.schema.encode(target))
    if attribute not in ctx.ops.transfer_attributes:
        raise NotApplicable(f"the model cannot edit {attribute}")
    g = ctx.testset.schema.index(attribute)
    pool = np.asarray(ref_pool)
    pool_labels = ctx.testset.labels(pool)[:, g]
    refs = np.empty_like(src_idx)
    for c in np.unique(target_class):
        candidates = pool[(pool_labels == c) & ~np.isin(pool, src_idx)]
        if len(candidates) == 0:
            raise NotApplicable(f"no reference test image with {attribute} class {c}")
        where = np.nonzero(target_class == c)[0]
        refs[where] = candidates[np.arange(len(where)) % len(candidates)]
    xs = ctx.testset.images(src_idx, size)
    return ctx.ops.transfer(xs, ctx.testset.images(refs, size), [attribute])


def _summary(values: np.ndarray, **fields) -> dict:
    v = np.asarray(values, np.float64)
    return {**fields, "value": float(v.mean()), "std": float(v.std()), "count": int(v.size)}


# ---------------------------------------------------------------------------------------------
# Metric families (factories, so tests can register small sizes into their own Registry)
# ---------------------------------------------------------------------------------------------
def add_swap_oracle_metrics(registry: Registry, suffix: str, num_test: int):
    """`oracle_acc_swap_<suffix>`, `oracle_pres_swap_<suffix>`, `cf_l1_swap_<suffix>`,
    `identity_cos_swap_<suffix>` (seed 000 pairing, bench): each attribute swapped alone on the pairs
    whose labels differ, with the source and reference baselines (and, for the identity cosine, the
    true render of the swap)."""
    requires = dict(protocol="zhang2019", requires=("reference_transfer",), bench_only=True)
    identity_name = f"identity_cos_swap_{suffix}"

    def run(ctx):
        # The identity embeddings cost about a third of the swaps' time: only when asked for (or
        # when the caller did not say what it will ask for).
        embed = ctx.identity_fn if ctx.requested is None or identity_name in ctx.requested else None

        def compute():
            from tfattr.metrics import transfer

            src, ref = protocols.zhang2019_pairs(num_test)
            pa, pb = ctx.testset.params(src), ctx.testset.params(ref)
            attrs = [a for a in ctx.ops.transfer_attributes if a in synthetic.SCHEMA.names]
            recs = transfer.score_swaps(lambda a, b, n: ctx.ops.transfer(a, b, n), attrs, ctx.ops.image_size,
                                        ctx.oracle, pa, pb, protocol="zhang2019", embed_fn=embed)
            return recs + transfer.summarize(recs)

        return ctx.memo(("swap_oracle", num_test, embed is not None), compute)

    for key, score in (("acc", "swap_accuracy"), ("pres", "preservation"), ("cf_l1", "counterfactual_l1")):
        name = f"{'cf_l1' if key == 'cf_l1' else 'oracle_' + key}_swap_{suffix}"

        def fn(ctx, score=score):
            return [{"method": r["method"], "attribute": r["attribute"], "value": r[score], "count": r["pairs"]}
                    for r in run(ctx)]

        fn.__doc__ = f"{score} of single-attribute swaps on the {num_test}-image A/B pairing (bench)."
        registry.register_metric(name, **requires)(fn)

    def ident(ctx):
        ctx.identity  # NotApplicable without an identity network
        recs = run(ctx)
        out = [{"method": r["method"], "attribute": r["attribute"], "value": r["identity_cosine"], "count": r["pairs"]}
               for r in recs]
        return out + [{"method": "baseline_counterfactual", "attribute": r["attribute"],
                       "value": r["identity_cosine_counterfactual"], "count": r["pairs"]}
                      for r in recs if r["method"] == "model"]

    ident.__doc__ = (f"Identity cosine between each source and its single-attribute swap, {num_test}-image A/B "
                     "pairing (bench; identity network); baseline_counterfactual: the true render of the swap.")
    registry.register_metric(identity_name, **requires)(ident)


def add_swap_distribution_metrics(registry: Registry, fid_name: str, kid_name: str, num_test: int,
                                  kid_subset: int = 1000):
    """FID / KID of edits of the first `num_test` test images (A/B halves, every differing
    attribute swapped both ways, Zhang et al. 2019) against those `num_test` real images."""
    req = dict(protocol="zhang2019", requires_any=("reference_transfer", "label_translation"))

    def features(ctx):
        def compute():
            ctx.inception  # fail before the edits when there is no extractor
            src, ref = protocols.zhang2019_pairs(num_test)
            names = editable(ctx)
            cols = [ctx.testset.schema.index(n) for n in names]
            differ = protocols.differing_attributes(ctx.testset.labels(src)[:, cols], ctx.testset.labels(ref)[:, cols])
            fake = edit_by_reference_or_label(ctx, src, ref, differ, names)
            return ctx.real_features(np.arange(2 * (num_test // 2))), ctx.fake_features(fake)

        return ctx.memo(("swap_features", num_test), compute)

    def fid(ctx):
        real, fake = features(ctx)
        return [{"value": frechet.frechet_distance_from_features(real, fake), "count": len(fake)}]

    def kid(ctx):
        real, fake = features(ctx)
        mean, std = frechet.kernel_distance(real, fake, subset_size=kid_subset, seed=ctx.seed)
        return [{"value": mean, "std": std, "count": len(fake)}]

    fid.__doc__ = f"FID of {num_test} A<->B swaps of differing attributes vs the {num_test} test images."
    kid.__doc__ = f"KID (cubic kernel, gamma=1/d, 100 subsets) of the same {num_test} swaps."
    registry.register_metric(fid_name, **req)(fid)
    registry.register_metric(kid_name, **req)(kid)


def add_oldfield_metrics(registry: Registry, suffix: str, num_neutral: int, num_encoded: int, enc_suffix: str):
    """Seed 001: neutral test faces to every expression (oracle accuracy, FID); classifier-posterior
    entropy and Hopkins statistic of the encodings of the first `num_encoded` test images."""
    expr = "Expression"

    def edits(ctx):
        def compute():
            g = ctx.testset.schema.index(expr) if expr in ctx.testset.schema.names else None
            if g is None:
                raise NotApplicable("test set has no Expression attribute")
            k = ctx.testset.schema[expr].num_classes
            pool = np.arange(max(4000, num_neutral * k * 4))
            src, target = protocols.oldfield_neutral_to_all(ctx.testset.labels(pool)[:, g], k, num_neutral)
            return src, target, edit_to_class(ctx, src, expr, target, pool)

        return ctx.memo(("oldfield", num_neutral), compute)

    def acc(ctx):
        src, target, out = edits(ctx)
        pred = ctx.oracle.predict_labels(out)[:, synthetic.SCHEMA.index(expr)]
        names = synthetic.SCHEMA[expr].values
        recs = [_summary(pred[target == c] == c, attribute=f"{expr}={names[c]}") for c in np.unique(target)]
        return recs + [_summary(pred == target, attribute=expr)]

    def fid(ctx):
        ctx.inception
        src, target, out = edits(ctx)
        real = ctx.real_features(np.arange(len(out)))
        return [{"value": frechet.frechet_distance_from_features(real, ctx.fake_features(out)), "count": len(out)}]

    def entropy(ctx):
        post = ctx.ops.latent_posteriors(ctx.testset.images(np.arange(num_encoded), ctx.ops.image_size))
        recs = []
        for enc, per_attr in post.items():
            for attr, p in per_attr.items():
                h = disentanglement.posterior_entropy(p)
                recs.append(_summary(h, attribute=f"C_{attr}(z_{enc})", max_entropy=float(np.log(p.shape[1]))))
        return recs

    def hopkins(ctx):
        idx = np.arange(num_encoded)
        enc = ctx.ops.encodings(ctx.testset.images(idx, ctx.ops.image_size))
        labels = ctx.testset.labels(idx)
        recs = []
        for attr, z in enc.items():
            if attr not in ctx.testset.schema.names:
                continue
            per = disentanglement.hopkins_per_cluster(z, labels[:, ctx.testset.schema.index(attr)], seed=ctx.seed)
            if per:
                recs.append(_summary(np.array(list(per.values())), attribute=attr))
        return recs

    acc.__doc__ = "Oracle expression accuracy of neutral test faces edited to every expression (bench)."
    fid.__doc__ = "FID of the neutral-to-every-expression edits vs as many test images."
    entropy.__doc__ = "Mean classifier-posterior entropy (nats) of every (encoding, attribute classifier) pair."
    hopkins.__doc__ = "Hopkins statistic of each attribute's encodings within each class cluster (mean ± std)."
    n = num_neutral * synthetic.SCHEMA[expr].num_classes
    registry.register_metric(f"oracle_acc_neutral2expr_{suffix}", protocol="oldfield", bench_only=True,
                             requires_any=("reference_transfer", "label_translation"))(acc)
    registry.register_metric(f"fid_neutral2expr_{suffix}", protocol="oldfield",
                             requires_any=("reference_transfer", "label_translation"))(fid)
    registry.register_metric(f"posterior_entropy_{enc_suffix}", protocol="oldfield",
                             requires=("latent_posteriors",))(entropy)
    registry.register_metric(f"hopkins_{enc_suffix}", protocol="oldfield", requires=("encodings",))(hopkins)
    del n


def _domain(ctx, attr: str) -> tuple[int, int | None] | None:
    """(class index of domain B, of domain A or None = every other class) for `attr`: the model's
    declared domain, else yes / no for a binary attribute, else None (no two-domain reading)."""
    if attr not in ctx.testset.schema.names:
        return None
    a = ctx.testset.schema[attr]
    if attr in ctx.ops.domains:
        return domain_indices(a, *ctx.ops.domains[attr])
    return (a.value_index("yes"), a.value_index("no")) if a.binary else None


def _domain_editable(ctx) -> list[str]:
    return [a for a in editable(ctx) if _domain(ctx, a) is not None]


def add_mokady_metrics(registry: Registry, suffix_pairs: str, num_pairs: int, suffix_b: str, num_b: int,
                       kid_real: int = 1000):
    """Seed 003, per attribute the model edits with a two-domain reading: A = without, B = with for
    a binary attribute, or the classes the model declares (`Operations.domains`, e.g. Hair_Color
    blond / black); the oracle's "has the content" is "reads domain B's class"."""
    pool = np.arange(max(4000, 8 * num_pairs, 8 * num_b))

    def domain_labels(ctx, attr):
        """1 = domain B, 0 = domain A, -1 = neither, for the test faces in `pool`."""
        return domain_membership(ctx.testset.labels(pool)[:, ctx.testset.schema.index(attr)], *_domain(ctx, attr))

    def transfers(ctx):
        def compute():
            if not ctx.ops.has("reference_transfer"):
                raise NotApplicable("needs reference_transfer")
            out = {}
            for attr in _domain_editable(ctx):
                a, b = protocols.mokady2020_pairs(domain_labels(ctx, attr), num_pairs, seed=ctx.seed)
                xa = ctx.testset.images(a, ctx.ops.image_size)
                out[attr] = (a, xa, ctx.ops.transfer(xa, ctx.testset.images(b, ctx.ops.image_size), [attr]), b)
            if not out:
                raise NotApplicable("the model transfers no binary attribute and declares no domain")
            return out

        return ctx.memo(("mokady", num_pairs), compute)

    def acc(ctx):
        recs = []
        for attr, (_, _, z, _) in transfers(ctx).items():
            pred = ctx.oracle.predict_labels(z)[:, synthetic.SCHEMA.index(attr)]
            recs.append(_summary(pred == _domain(ctx, attr)[0], attribute=attr))
        return recs

    def ident(ctx):
        embed = ctx.identity
        recs = []
        for attr, (_, xa, z, _) in transfers(ctx).items():
            cos = identity.identity_cosine(identity.embed(embed, xa), identity.embed(embed, z))
            recs.append(_summary(cos, attribute=attr))
        return recs

    def kid(ctx):
        ctx.inception
        recs = []
        for attr, (_, _, z, _) in transfers(ctx).items():
            real_idx = pool[domain_labels(ctx, attr) == 0][:kid_real]
            mean, std = frechet.kernel_distance(ctx.real_features(real_idx), ctx.fake_features(z), gamma=0.01,
                                                subset_size=num_pairs, seed=ctx.seed)
            recs.append({"attribute": attr, "value": mean, "std": std, "count": len(z)})
        return recs

    def outside(ctx):
        recs = []
        for attr, (a, xa, z, b) in transfers(ctx).items():
            if attr not in synthetic.ATTRIBUTE_MASKS:
                continue
            # Where the content goes: the layer of the bench's true transfer, a rendered with b's
            # content factors (synthetic.swap); every other pixel should stay a's.
            size = ctx.ops.image_size
            truth = synthetic.render(synthetic.swap(ctx.testset.params(a), ctx.testset.params(b), [attr]), size,
                                     outputs=("masks",))["masks"][synthetic.ATTRIBUTE_MASKS[attr]]
            recs.append(_summary(segmentation.change_outside(z, xa, truth), attribute=attr,
                                 mask=synthetic.ATTRIBUTE_MASKS[attr]))
        if not recs:
            raise NotApplicable("no transferred attribute has a bench mask")
        return recs

    def removal(ctx):
        recs = []
        attrs = _domain_editable(ctx)
        if not attrs:
            raise NotApplicable("the model edits no binary attribute and declares no domain")
        for attr in attrs:
            value_b, value_a = _domain(ctx, attr)
            labels = domain_labels(ctx, attr)
            b = protocols.mokady2020_domain_b(labels, num_b)
            xb = ctx.testset.images(b, ctx.ops.image_size)
            if ctx.ops.has("removal") and list(ctx.ops.transfer_attributes) == [attr]:
                out, via = ctx.ops.remove(xb), "remove"
            else:
                # An editor without removal is asked for domain A's class (the first other class
                # when A is "every other class").
                target = value_a if value_a is not None else next(
                    i for i in range(len(ctx.testset.schema[attr].values)) if i != value_b)
                out = edit_to_class(ctx, b, attr, np.full(len(b), target, np.int64), pool)
                via = "translate" if ctx.ops.has("label_translation") else "reference_transfer"
            pred = ctx.oracle.predict_labels(out)[:, synthetic.SCHEMA.index(attr)]
            recs.append(_summary(pred != value_b, attribute=attr, via=via))
        return recs

    def iou(ctx):
        recs = []
        for attr in ctx.ops.transfer_attributes:
            if attr not in synthetic.ATTRIBUTE_MASKS or _domain(ctx, attr) is None:
                continue
            b = protocols.mokady2020_domain_b(domain_labels(ctx, attr), num_b)
            soft = ctx.ops.segment(ctx.testset.images(b, ctx.ops.image_size))
            truth = ctx.testset.masks(b, ctx.ops.image_size, synthetic.ATTRIBUTE_MASKS[attr])
            recs.append(_summary(segmentation.mask_iou(soft, truth), attribute=attr,
                                 mask=synthetic.ATTRIBUTE_MASKS[attr]))
        if not recs:
            raise NotApplicable("no transferred attribute has a bench mask")
        return recs

    acc.__doc__ = f"Oracle: fraction of {num_pairs} a<-b transfers showing domain B's class (bench)."
    ident.__doc__ = f"Identity cosine between a and its {num_pairs} transfers (identity network)."
    kid.__doc__ = f"KID x1 (gamma=0.01, Mokady Table 1) of {num_pairs} transfers vs {kid_real} domain-A test images."
    outside.__doc__ = (f"Mean |z(a, b) - a| in [-1, 1] units over the pixels outside the true transfer's layer, "
                       f"{num_pairs} a<-b pairs (bench; 0 = untouched).")
    removal.__doc__ = f"Oracle: fraction of {num_b} domain-B test images no longer of B's class after removal."
    iou.__doc__ = f"IoU of the model's masks on {num_b} domain-B test images vs the bench layer mask."
    registry.register_metric(f"oracle_acc_transfer_{suffix_pairs}", protocol="mokady2020", bench_only=True,
                             requires=("reference_transfer",))(acc)
    registry.register_metric(f"identity_cos_transfer_{suffix_pairs}", protocol="mokady2020",
                             requires=("reference_transfer",))(ident)
    registry.register_metric(f"kid_transfer_{suffix_pairs}", protocol="mokady2020",
                             requires=("reference_transfer",))(kid)
    registry.register_metric(f"mae_outside_transfer_{suffix_pairs}", protocol="mokady2020", bench_only=True,
                             requires=("reference_transfer",))(outside)
    registry.register_metric(f"oracle_acc_removal_{suffix_b}", protocol="mokady2020", bench_only=True,
                             requires_any=("removal", "reference_transfer", "label_translation"))(removal)
    registry.register_metric(f"mask_iou_{suffix_b}", protocol="mokady2020", bench_only=True,
                             requires=("mask",))(iou)


def add_li2016_metrics(registry: Registry, suffix: str, per_task: int):
    """Seed 004 (DIAT): mouth_open, mouth_close, eyeglasses_removal (+ the bench's smile) on
    `per_task` sources each, with two reference rows: `baseline_source` (the unedited input) and,
    on the bench, `baseline_counterfactual` (the renderer's true edit of the same face: what a perfect
    model scores, e.g. the identity cosine an ideal edit keeps)."""
    pool = np.arange(max(4000, 8 * per_task))
    req = dict(protocol="li2016", requires_any=("reference_transfer", "label_translation"))

    def edits(ctx):
        def compute():
            out = {}
            size = ctx.ops.image_size
            for task, (attr, src_class, dst_class) in protocols.LI2016_TASKS.items():
                if attr not in editable(ctx) or attr not in ctx.testset.schema.names:
                    continue
                src = protocols.li2016_sources(ctx.testset.labels(pool)[:, ctx.testset.schema.index(attr)],
                                               src_class, per_task)
                images = {"model": edit_to_class(ctx, src, attr, np.full(len(src), dst_class), pool),
                          "baseline_source": ctx.testset.images(src, size)}
                if getattr(ctx.testset, "is_bench", False):
                    params = synthetic.counterfactual(ctx.testset.params(src), {attr: dst_class})
                    images["baseline_counterfactual"] = (synthetic.render(params, size)["image"].astype(np.float32)
                                                         / 127.5 - 1.0)
                out[task] = (attr, src, dst_class, images)
            if not out:
                raise NotApplicable(f"the model edits none of {sorted({a for a, _, _ in protocols.LI2016_TASKS.values()})}")
            return out

        return ctx.memo(("li2016", per_task), compute)

    def acc(ctx):
        recs = []
        for task, (attr, _, dst, images) in edits(ctx).items():
            for method, out in images.items():
                pred = ctx.oracle.predict_labels(out)[:, synthetic.SCHEMA.index(attr)]
                recs.append(_summary(pred == dst, method=method, attribute=task))
        return recs

    def pres(ctx):
        recs = []
        for task, (attr, src, _, images) in edits(ctx).items():
            g = synthetic.SCHEMA.index(attr)
            others = [h for h in range(len(synthetic.SCHEMA)) if h != g]
            for method, out in images.items():
                pred = ctx.oracle.predict_labels(out)
                recs.append(_summary((pred[:, others] == ctx.testset.labels(src)[:, others]).mean(1), method=method,
                                     attribute=task))
        return recs

    def ident(ctx):
        embed = ctx.identity
        recs = []
        for task, (attr, src, _, images) in edits(ctx).items():
            source = identity.embed(embed, images["baseline_source"])
            for method, out in images.items():
                cos = identity.identity_cosine(source, identity.embed(embed, out))
                recs.append(_summary(cos, method=method, attribute=task))
            # Another test face with the target value: the cosine of a *different* identity, the
            # floor against which the model's value reads.
            others = np.roll(src, 1)
            cos = identity.identity_cosine(source, identity.embed(embed, ctx.testset.images(
                others, ctx.ops.image_size)))
            recs.append(_summary(cos, method="baseline_other_face", attribute=task))
        return recs

    def cf_l1(ctx):
        recs = []
        for task, (_, _, _, images) in edits(ctx).items():
            truth = images["baseline_counterfactual"]
            for method in ("model", "baseline_source"):
                recs.append(_summary(np.abs(images[method] - truth).mean(axis=(1, 2, 3)), method=method,
                                     attribute=task))
        return recs

    acc.__doc__ = f"Oracle attribute success of the DIAT tasks, {per_task} sources each (bench)."
    pres.__doc__ = "Oracle preservation of every other bench attribute in the DIAT edits (bench)."
    ident.__doc__ = "Identity cosine between each DIAT source and its edit (identity network)."
    cf_l1.__doc__ = "Mean |edit - true counterfactual render| in [-1, 1] units of the DIAT edits (bench)."
    registry.register_metric(f"oracle_acc_diat_{suffix}", bench_only=True, **req)(acc)
    registry.register_metric(f"oracle_pres_diat_{suffix}", bench_only=True, **req)(pres)
    registry.register_metric(f"identity_cos_diat_{suffix}", **req)(ident)
    registry.register_metric(f"cf_l1_diat_{suffix}", bench_only=True, **req)(cf_l1)


def add_standard_metrics(registry: Registry, small: bool = False):
    """The named metrics at the papers' sizes (or, with `small`, tiny sizes for tests)."""
    if small:
        add_swap_oracle_metrics(registry, "16", 16)
        add_swap_distribution_metrics(registry, "fid_swap_16_test", "kid_swap_16_test", 16, kid_subset=8)
        add_oldfield_metrics(registry, "16", 2, 16, "16_test")
        add_mokady_metrics(registry, "8pairs", 8, "8", 8, kid_real=16)
        add_li2016_metrics(registry, "8", 8)
        return registry
    add_swap_oracle_metrics(registry, "2k", protocols.ZHANG2019_NUM_TEST)
    add_swap_distribution_metrics(registry, "fid_swap_2k_test", "kid_swap_2k_test", protocols.ZHANG2019_NUM_TEST)
    add_swap_distribution_metrics(registry, "fid_10k_test", "kid_10k_test", 10_000)
    add_oldfield_metrics(registry, "1600", protocols.OLDFIELD_NUM_NEUTRAL, 2000, "2k_test")
    add_mokady_metrics(registry, "100pairs", protocols.MOKADY2020_NUM_PAIRS, "100", protocols.MOKADY2020_NUM_REMOVAL)
    add_li2016_metrics(registry, "200", protocols.LI2016_PER_TASK)
    return registry


add_standard_metrics(DEFAULT_REGISTRY)
