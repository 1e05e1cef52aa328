"""Model registry: `get(name)` returns the model module (with `Config`, `build_networks`, `Model`)."""

from __future__ import annotations

import importlib

MODELS = {
    "latent_swap": "tfattr.models.latent_swap",
    "mask_transfer": "tfattr.models.mask_transfer",
    "bi_infogan": "tfattr.models.bi_infogan",
    "diat": "tfattr.models.diat",
    "adv_disentangle": "tfattr.models.adv_disentangle",
}


def get(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return importlib.import_module(MODELS[name])


def config_from_hparams(name: str, hparams: str | None):
    """Model `name`'s `Config` with `--hparams` text ("a=1,b=x") applied; raises `ConfigError` naming
    an unknown field (and the valid ones) or an unparsable value."""
    from tfattr import config as config_lib

    return config_lib.override(get(name).Config(), config_lib.parse_hparams(hparams))


def build(name: str, schema, image_size: int, hparams: dict | None = None, config=None):
    """Builds model `name` for `schema` at `image_size`, with `hparams` overriding `Config` fields."""
    from tfattr import config as config_lib

    module = get(name)
    if config is None:
        config = config_lib.override(module.Config(), hparams or {})
    networks = module.build_networks(config, schema, image_size)
    return module.Model(networks, config, schema, image_size)
