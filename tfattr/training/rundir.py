"""Self-describing run directories: `<output_dir>/00007-<model>-<dataset><size>-bs<batch>/`."""

from __future__ import annotations

import json
import os
import re

RUN_RE = re.compile(r"^(\d{5})-")


def new_run_dir(output_dir: str, model: str, dataset: str, image_size: int, batch_size: int) -> str:
    os.makedirs(output_dir, exist_ok=True)
    numbers = [int(m.group(1)) for m in (RUN_RE.match(n) for n in os.listdir(output_dir)) if m]
    number = max(numbers, default=-1) + 1
    path = os.path.join(output_dir, f"{number:05d}-{model}-{dataset}{image_size}-bs{batch_size}")
    os.makedirs(path)
    return path


def write_json(path: str, obj) -> None:
    """Atomic: write a temporary file then rename, so a crash never leaves half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)
