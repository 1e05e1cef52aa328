"""How fast does latent_swap's encoder/decoder pair learn to reconstruct the bench's fine details?

Trains only the encoder and decoder of `tfattr.models.latent_swap` (built from the given hparams)
as a plain L1 autoencoder on 10,000 rendered training faces (no swaps, no discriminator, no
classifiers), and every `--every` steps prints the fraction of 600 held-out test faces whose
reconstruction the oracle still reads with each true attribute (`keep`). A swap can preserve an
untouched attribute only as well as the reconstruction keeps it, so `keep` bounds the bench's
preservation rate; compare it with `benchmarks/code_diagnostics.py --sections=reconstruction` on a
trained GAN run (its `oracle_reconstruction`).

    python benchmarks/latent_swap_ae_probe.py --hparams=<the demo flagfile's> [--lr=3e-4] --steps=2000 --every=500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfattr.utils import process_env

process_env.set_defaults()  # as the command-line programs run: log level, the BFC CPU allocator

import numpy as np

ATTRIBUTES = ["Hair_Color", "Eyeglasses", "Smiling", "Beard"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hparams", default="", help="latent_swap Config overrides, name=value,...")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (beta_1 0.5, as lr_g)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_train", type=int, default=10000)
    p.add_argument("--num_test", type=int, default=600)
    p.add_argument("--cache_dir", default="/tmp/tfattr_probe_cache")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import keras
    import tensorflow as tf

    from tfattr import config as config_lib
    from tfattr.data import synthetic as S
    from tfattr.metrics import oracle as oracle_lib
    from tfattr.models import latent_swap

    size = 64
    # The training runs' own bench cache (the same key for the same sizes and seed).
    train = np.asarray(S.SyntheticSource(size, args.seed, num_train=args.num_train,
                                         cache_dir=args.cache_dir).arrays("train")[0])
    signed = lambda x: x.astype(np.float32) / 127.5 - 1.0  # noqa: E731
    test = S.params_for(args.seed, "test", np.arange(args.num_test))
    x_test, y_test = signed(S.render(test, size)["image"]), S.labels(test)
    oracle = oracle_lib.load_oracle()

    config = config_lib.override(latent_swap.Config(), config_lib.parse_hparams(args.hparams))
    nets = latent_swap.build_networks(config, S.SCHEMA.select(ATTRIBUTES), size)
    encoder, decoder = nets["encoder"], nets["decoder"]
    variables = encoder.trainable_variables + decoder.trainable_variables
    optimizer = keras.optimizers.Adam(args.lr, beta_1=config.beta_1, beta_2=config.beta_2)

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(x - decoder(encoder(x, training=True), training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(args.seed)
    start, losses = time.time(), []
    print(json.dumps({"config": repr(config), "lr": args.lr}), flush=True)
    for s in range(1, args.steps + 1):
        losses.append(float(step(tf.constant(signed(train[rng.integers(0, len(train), args.batch_size)])))))
        if s % args.every == 0 or s == args.steps:
            recon = np.concatenate([decoder(encoder(x_test[i:i + 100], training=False), training=False).numpy()
                                    for i in range(0, len(x_test), 100)])
            keep = (oracle.predict_labels(recon) == y_test).mean(0)
            print(json.dumps({"step": s, "seconds": round(time.time() - start),
                              "train_l1": round(float(np.mean(losses[-100:])), 4),
                              "test_l1": round(float(np.abs(recon - x_test).mean()), 4),
                              "keep": {n: round(float(k), 3) for n, k in zip(S.SCHEMA.names, keep)}}), flush=True)


if __name__ == "__main__":
    main()
