"""Checkpoints: model weights, every optimizer, the step counter.

`tf.train.CheckpointManager` writes the data and index files first and updates the `checkpoint`
state file last (itself through a temporary file and a rename), so an interrupted save leaves the
previous checkpoint as the latest one: saving is atomic from the reader's side. Resume restores
the newest checkpoint listed in that state file, with `assert_existing_objects_matched` so a
checkpoint of a different model or width fails loudly instead of half-loading.
"""

from __future__ import annotations

import os

import tensorflow as tf


class Checkpointer:
    def __init__(self, directory: str, model, step: tf.Variable, keep: int = 3):
        self.directory = directory
        objects = {"model": model, "step": step}
        for name, optimizer in model.optimizers.items():
            objects[f"optimizer_{name}"] = optimizer
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def save(self, step: int) -> str:
        return self.manager.save(checkpoint_number=step)

    def restore(self, path: str | None = None) -> str | None:
        """Restores `path` or the latest checkpoint; returns what was restored (None: nothing)."""
        path = path or self.latest
        if path is None:
            return None
        if not tf.io.gfile.exists(path + ".index"):
            raise FileNotFoundError(f"checkpoint {path} has no {os.path.basename(path)}.index file; "
                                    f"{describe(os.path.dirname(path))}")
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return path


def saved(directory: str) -> list[str]:
    """The checkpoint prefixes `directory`'s state file lists, oldest first."""
    state = tf.train.get_checkpoint_state(directory)
    return list(state.all_model_checkpoint_paths) if state else []


def describe(directory: str) -> str:
    """"the run has: ckpt-1, ckpt-2" (or "none"), for error messages."""
    return f"the run has: {', '.join(os.path.basename(p) for p in saved(directory)) or 'none'}"
