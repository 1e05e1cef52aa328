"""Typed run configuration. Flags are read only by the CLIs; everything below takes these objects."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any


class ConfigError(ValueError):
    """A bad flag or hyper-parameter; the message names it and lists the valid choices."""


def _coerce(value: str, kind: Any, name: str):
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if value.lower() in ("none", "null", ""):
            return None
        return _coerce(value, non_none[0], name)
    if kind is bool or kind == "bool":
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"hparam {name}: expected a boolean, got {value!r}")
    if origin in (tuple, list):
        items = [v for v in value.replace(";", ":").split(":") if v]
        inner = args[0] if args else str
        return tuple(_coerce(v, inner, name) for v in items)
    try:
        if kind is int or kind == "int":
            return int(value)
        if kind is float or kind == "float":
            return float(value)
    except ValueError:
        raise ConfigError(f"hparam {name}: expected {getattr(kind, '__name__', kind)}, got {value!r}") from None
    return value


def parse_hparams(text: str | None) -> dict[str, str]:
    """"a=1,b=x" -> {"a": "1", "b": "x"}. Tuple values use ':' (e.g. `widths=8:16`)."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ConfigError(f"--hparams: {item!r} is not name=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def override(config, overrides: dict[str, Any], what: str = "hparams"):
    """A copy of dataclass `config` with fields replaced; string values are parsed to the field type.

    Raises:
      ConfigError: an unknown field (the message lists the valid ones) or an unparsable value.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for name, value in overrides.items():
        if name not in fields:
            raise ConfigError(
                f"--{what}: unknown name {name!r} for {type(config).__module__}.{type(config).__name__}; "
                f"valid names: {', '.join(sorted(fields))}"
            )
        changes[name] = _coerce(value, hints[name], name) if isinstance(value, str) else value
    return dataclasses.replace(config, **changes)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def to_json(config) -> str:
    return json.dumps(to_dict(config), indent=2, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model's own hyper-parameters."""

    model: str = "latent_swap"
    dataset: str = "synthetic"
    dataset_options: str = ""  # name=value pairs passed to the source factory, e.g. "root=/data/celeba"
    attributes: tuple[str, ...] | None = None
    image_size: int = 64
    batch_size: int = 16  # global batch, split over replicas
    steps: int = 1000
    seed: int = 0
    flip: bool = True
    hparams: str = ""
    output_dir: str = "runs"
    run_dir: str | None = None  # exact run directory (resume); default: a new numbered dir in output_dir
    resume: bool = False
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    export_after: bool = True
    export_version: int = 1
    # Averaged weights (a model's ema_momentum) get batch-norm statistics from this many training
    # batches before the end-of-training export (AttributeTransferModel.standing_batch_norm).
    batch_norm_batches: int = 200
    # 0: constant learning rates. N: every optimizer's rate falls linearly from its configured value
    # at global step N to 0 at `steps` (tfattr/training/schedule.py).
    lr_decay_start: int = 0
    strategy: str = "auto"  # auto | default | mirrored | multi_worker
    steps_per_execution: int = 1
    jit_compile: bool = False
    mixed_precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16 (tfattr/training/precision.py)
    progress: bool = True
