"""The contract every tfattr model follows.

A model file exposes `Config` (frozen dataclass of hyper-parameters, defaults citing the paper),
`build_networks(config, schema, image_size) -> dict[str, keras.Model]` and `Model`, a subclass of
`AttributeTransferModel` with a custom `train_step`. The training loop, export and tests only use
what this class defines, so they never branch on the model name.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfattr.data.attributes import Schema


class AttributeTransferModel(keras.Model):
    """Base class: networks by name, per-group optimizers, per-example loss reduction, trackers.

    Subclasses set:
      LOSS_NAMES: tracker names, e.g. ("d/adv", "g/rec").
      OPTIMIZER_GROUPS: optimizer name -> network names it trains, e.g. {"g": ("encoder",), "d": (...)}.
      OPTIONAL_NETWORKS: names in OPTIMIZER_GROUPS that some configurations do not build.
    and implement `train_step(batch)`, `translate(images, target_attributes)` and `signatures()`.
    """

    LOSS_NAMES: tuple[str, ...] = ()
    OPTIMIZER_GROUPS: dict[str, tuple[str, ...]] = {}
    OPTIONAL_NETWORKS: tuple[str, ...] = ()
    BATCH_MULTIPLE: int = 1  # the per-replica batch must be a multiple of this
    DEFAULT_SIGNATURE: str = "translate"

    def __init__(self, networks: dict[str, keras.Model], config, schema: Schema, image_size: int, **kwargs):
        super().__init__(**kwargs)
        self.networks = dict(networks)
        for name, net in self.networks.items():
            setattr(self, name, net)  # tracked by Keras for weights and checkpoints
        self.config = config
        self.schema = schema
        self.image_size = int(image_size)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.LOSS_NAMES}
        self.optimizers: dict[str, keras.optimizers.Optimizer] = {}

    # ---- optimizers -------------------------------------------------------------------------
    def default_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        """The paper's optimizers; subclasses override."""
        raise NotImplementedError(f"{type(self).__name__} must define default_optimizers()")

    def compile(self, optimizers: dict[str, keras.optimizers.Optimizer] | None = None, **kwargs):
        """Stores one optimizer per group and builds each on its group's variables.

        Building here (inside the strategy scope the caller holds) creates the slot variables as
        mirrored variables; an unbuilt optimizer would create them inside the first replica step.
        """
        for bad in ("loss", "optimizer"):
            if kwargs.get(bad) is not None:
                raise ValueError(f"{type(self).__name__}.compile() takes `optimizers=`, not `{bad}=`; "
                                 "losses are part of the model")
        kwargs.pop("loss", None)
        kwargs.pop("optimizer", None)
        super().compile(**kwargs)
        optimizers = dict(optimizers or self.default_optimizers())
        if set(optimizers) != set(self.OPTIMIZER_GROUPS):
            raise ValueError(f"{type(self).__name__}.compile(): optimizer keys {sorted(optimizers)} must be "
                             f"exactly {sorted(self.OPTIMIZER_GROUPS)}")
        self.optimizers = optimizers
        for group, optimizer in optimizers.items():
            optimizer.build(self.group_variables(group))

    def group_variables(self, group: str) -> list:
        out = []
        for name in self.OPTIMIZER_GROUPS[group]:
            if name in self.networks:
                out.extend(self.networks[name].trainable_variables)
            elif name not in self.OPTIONAL_NETWORKS:
                raise KeyError(f"{type(self).__name__}: optimizer group {group!r} names network {name!r}, "
                               f"which was not built; built: {sorted(self.networks)}")
        return out

    def average_weights(self, batches=None) -> list[str]:
        """Overwrites each group's trainable variables with its optimizer's moving average.

        Only groups whose optimizer was built with `use_ema=True` (a model's `ema_momentum` hparam)
        change; call it on a model loaded for inference, not on one that will keep training (the raw
        weights stay in the checkpoint). Returns the groups that were averaged.

        The optimizer averages trainable variables only: the batch-norm moving statistics saved with
        them were gathered with the raw weights. Given `batches` (training batches, e.g.
        `dataset.take(200)`), the averaged networks' batch norms get statistics of their own
        (`standing_batch_norm`); without it they keep the raw weights' statistics, which cost 2-12
        points of swap accuracy on the bench (benchmarks/RESULTS.md, session 10).
        """
        averaged = self.averaging_groups()
        for group in averaged:
            inner = getattr(self.optimizers[group], "inner_optimizer", self.optimizers[group])
            inner.finalize_variable_values(self.group_variables(group))
        if averaged and batches is not None:
            self.standing_batch_norm(batches, self.group_networks(averaged))
        return averaged

    def averaging_groups(self) -> list[str]:
        """Optimizer groups that keep a moving average of their variables (`use_ema`)."""
        # LossScaleOptimizer (mixed precision) wraps the optimizer that holds the average.
        return [g for g, opt in self.optimizers.items() if getattr(opt, "inner_optimizer", opt).use_ema]

    def group_networks(self, groups) -> list[str]:
        """Names of the built networks the optimizer `groups` train."""
        return [n for g in groups for n in self.OPTIMIZER_GROUPS[g] if n in self.networks]

    def batch_norm_layers(self, networks=None) -> list:
        names = self.networks if networks is None else networks
        return [layer for n in names for layer in self.networks[n]._flatten_layers()
                if isinstance(layer, keras.layers.BatchNormalization)]

    def standing_batch_norm(self, batches, networks=None) -> int:
        """Sets the batch norms of `networks` (default all) to their statistics' mean over `batches`.

        BigGAN's "standing statistics" (Brock et al. 2019, Sec. 4 / App. C): each batch runs through
        `batch_norm_pass` (by default `call` in training mode), with batch norm momentum 1 - 1/i at
        the i-th batch, so the moving mean and variance end as the plain average over the batches
        instead of an exponential one.
        Only the batch norms of `networks` that `batch_norm_pass` reaches change. Returns the number
        of batches used.
        """
        norms = self.batch_norm_layers(networks)
        if not norms:
            return 0
        saved = [layer.momentum for layer in norms]
        # `call` in training mode also moves the statistics of batch norms outside `networks`: keep them.
        ids = {id(layer) for layer in norms}
        others = [(v, v.numpy()) for layer in self.batch_norm_layers() if id(layer) not in ids
                  for v in (layer.moving_mean, layer.moving_variance)]
        count = 0
        try:
            for count, batch in enumerate(batches, 1):
                for layer in norms:
                    layer.momentum = 1.0 - 1.0 / count
                self.batch_norm_pass(batch)
        finally:
            for layer, momentum in zip(norms, saved):
                layer.momentum = momentum
            for variable, value in others:
                variable.assign(value)
        if count == 0:
            raise ValueError("standing_batch_norm: `batches` yielded no batch")
        return count

    def batch_norm_pass(self, batch) -> None:
        """One training-mode forward pass for `standing_batch_norm`: `call`. A model whose `call`
        does not reach every network, or feeds them batches other than its train step's (batch norm
        would then learn statistics the networks never saw in training), overrides this."""
        self(batch, training=True)

    def apply(self, group: str, tape: tf.GradientTape, loss: tf.Tensor) -> None:
        variables = self.group_variables(group)
        optimizer = self.optimizers[group]
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            # mixed_float16: scaling the loss's upstream gradient equals scaling the loss; the
            # optimizer divides the scale out again (see tfattr/training/precision.py).
            grads = tape.gradient(loss, variables, output_gradients=optimizer.scale_loss(tf.ones_like(loss)))
        else:
            grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))

    # ---- losses and logging ----------------------------------------------------------------
    @staticmethod
    def reduce(per_example: tf.Tensor) -> tf.Tensor:
        """Sum over the local batch divided by the GLOBAL batch: right under any replica count."""
        return tf.nn.compute_average_loss(per_example)

    def track(self, name: str, per_example: tf.Tensor) -> None:
        self.trackers[name].update_state(per_example)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def logs(self) -> dict[str, tf.Tensor]:
        return {name: m.result() for name, m in self.trackers.items()}

    def reset_trackers(self) -> None:
        for m in self.trackers.values():
            m.reset_state()

    # ---- inference ---------------------------------------------------------------------------
    def call(self, batch, training=False):
        return self.translate(batch["image"], batch["attributes"], training=training)

    def translate(self, images, target_attributes, training=False):
        raise NotImplementedError

    def transfer_from_reference(self, source, reference, attribute_names):
        """Source images with the named attributes taken from the reference images (models that can)."""
        raise NotImplementedError(f"{type(self).__name__} does not transfer attributes from a reference image")

    def signatures(self) -> dict[str, tuple[Any, dict[str, tf.TensorSpec]]]:
        """Export signatures: name -> (python function of named tensors returning a dict, input specs).

        Specs use `None` batch; image inputs are float32 `[None, S, S, 3]` in [-1, 1].
        """
        raise NotImplementedError

    def sample_grid(self, batch) -> "np.ndarray":
        """A uint8 `[H, W, 3]` picture of what the model does on `batch` (saved during training)."""
        raise NotImplementedError

    def build_all(self) -> None:
        """Creates every network's variables (functional networks are built at construction)."""
        for net in self.networks.values():
            if not net.built:
                raise RuntimeError(f"network {net.name} is not built")

    def image_spec(self, name: str = "image") -> tf.TensorSpec:
        return tf.TensorSpec([None, self.image_size, self.image_size, 3], tf.float32, name=name)

    def attributes_spec(self, name: str = "target_attributes") -> tf.TensorSpec:
        return tf.TensorSpec([None, self.schema.num_columns], tf.float32, name=name)
