"""Choosing a `tf.distribute` strategy and checking batch sizes against it."""

from __future__ import annotations

import json
import os

import tensorflow as tf


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """`auto`: MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy
    over all GPUs when there are any, else the default (single-device) strategy.

    `mirrored` forces MirroredStrategy over all local devices of one kind (GPUs, else CPUs, which
    splits the CPU only where logical devices were configured, as the tests do).
    """
    if kind == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            kind = "multi_worker"
        elif tf.config.list_logical_devices("GPU"):
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy: unknown strategy {kind!r}; valid: auto, default, mirrored, multi_worker")


def per_replica_batch(global_batch: int, strategy: tf.distribute.Strategy, multiple_of: int = 1) -> int:
    """The per-replica batch; raises naming --batch_size if it does not divide evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(f"--batch_size={global_batch} is not divisible by the {replicas} replicas")
    local = global_batch // replicas
    if local % multiple_of:
        raise ValueError(f"--batch_size={global_batch} gives {local} examples per replica; this model needs a "
                         f"multiple of {multiple_of} per replica")
    return local
