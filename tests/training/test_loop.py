import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import testing
from tfattr import config as config_lib
from tfattr.training import checkpointing, loop

TINY = ",".join(f"{k}={v}" for k, v in testing.TINY_LATENT_SWAP.items())


def smoke_config(tmp_path, **overrides):
    base = dict(model="latent_swap", dataset="synthetic",
                dataset_options="num_train=64,num_validation=8,num_test=16",
                attributes=("Eyeglasses", "Hair_Color"), image_size=32, batch_size=4, steps=2, hparams=TINY,
                output_dir=str(tmp_path / "runs"), log_every=1, sample_every=2, checkpoint_every=2,
                strategy="default", progress=False)
    base.update(overrides)
    return config_lib.TrainConfig(**base)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    written = []
    result = loop.run(smoke_config(tmp), flags_writer=lambda p: (open(p, "w").write("--steps=2\n"), written.append(p)))
    return tmp, result, written


def test_smoke_run_writes_a_self_describing_run_dir(smoke_run):
    _, result, written = smoke_run
    run_dir = result["run_dir"]
    assert os.path.basename(run_dir) == "00000-latent_swap-synthetic32-bs4"
    assert written == [os.path.join(run_dir, "flags.txt")]
    meta = loop.rundir.read_json(os.path.join(run_dir, "config.json"))
    assert meta["train"]["run_dir"] == run_dir and meta["model"]["base_width"] == 8
    assert [a["name"] for a in meta["schema"]] == ["Eyeglasses", "Hair_Color"]
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-2")
    assert os.listdir(os.path.join(run_dir, "samples")) == ["0000002.png"]
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(os.path.join(run_dir, "logs")))
    assert result["step"] == 2 and all(np.isfinite(v) for v in result["logs"].values())
    assert os.path.exists(os.path.join(result["export"], "saved_model.pb"))


def test_resume_continues_the_step_count_and_restores_weights(smoke_run, tmp_path):
    _, result, _ = smoke_run
    run_dir = result["run_dir"]
    model, step, _ = loop.load_model_from_run(run_dir)
    assert step == 2
    saved = testing.weights_of(model)
    resumed = loop.run(smoke_config(tmp_path, run_dir=run_dir, resume=True, steps=3, export_after=False))
    assert resumed["step"] == 3
    model3, step3, _ = loop.load_model_from_run(run_dir)
    assert step3 == 3
    assert model3.optimizers["g"].iterations.numpy() == 3
    assert testing.max_weight_change(saved, testing.weights_of(model3)) > 0
    # the step-2 checkpoint still restores the step-2 weights exactly
    model2, _, _ = loop.load_model_from_run(run_dir, os.path.join(run_dir, "checkpoints", "ckpt-2"))
    assert testing.max_weight_change(saved, testing.weights_of(model2)) == 0


def test_existing_run_dir_needs_resume(smoke_run, tmp_path):
    _, result, _ = smoke_run
    with pytest.raises(FileExistsError, match="--resume"):
        loop.run(smoke_config(tmp_path, run_dir=result["run_dir"]))


def test_interrupted_save_leaves_the_previous_checkpoint_latest(smoke_run):
    _, result, _ = smoke_run
    ckpt_dir = os.path.join(result["run_dir"], "checkpoints")
    before = tf.train.latest_checkpoint(ckpt_dir)
    # A save killed before the state file was updated leaves data files nobody points to.
    with open(os.path.join(ckpt_dir, "ckpt-99.index"), "wb") as f:
        f.write(b"\x00garbage")
    assert tf.train.latest_checkpoint(ckpt_dir) == before
    model, step, _ = loop.load_model_from_run(result["run_dir"])
    assert step == int(before.rsplit("-", 1)[1])


def test_non_finite_loss_names_the_step_window(tmp_path, monkeypatch):
    real_load = loop.load_data

    def poisoned(*args, **kwargs):
        ds, schema = real_load(*args, **kwargs)
        return ds.map(lambda b: {**b, "image": b["image"] * np.nan}), schema

    monkeypatch.setattr(loop, "load_data", poisoned)
    with pytest.raises(loop.NonFiniteLossError, match="between steps 0 and 1"):
        loop.run(smoke_config(tmp_path, steps=3, export_after=False, sample_every=0))


def test_unknown_hparam_fails_before_training(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="unknown name 'lamda_rec'.*valid names"):
        loop.run(smoke_config(tmp_path, hparams="lamda_rec=1"))
    assert not os.path.exists(tmp_path / "runs")


def test_odd_per_replica_batch_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--batch_size=3"):
        loop.run(smoke_config(tmp_path, batch_size=3))


def test_averaged_weights_get_batch_norm_statistics_of_their_own(tmp_path):
    """ema_momentum: loading (and the end-of-training export) averages the generator's weights and
    re-estimates its batch norms on training batches; the raw load keeps the checkpoint's."""
    from tfattr.export import saved_model

    hparams = ("enc_width=4,dec_width=8,num_res_blocks=1,dec_resize_stride2=false,c_width=4,d_width=4,norm=batch,"
               "ema_momentum=0.5")
    result = loop.run(smoke_config(tmp_path, model="adv_disentangle", attributes=("Expression", "Illumination", "Gaze"),
                                   hparams=hparams, sample_every=0, batch_norm_batches=3))
    run_dir = result["run_dir"]
    meta = saved_model.read_metadata(result["export"])
    assert meta["averaged_weights"] == ["g"] and meta["batch_norm_batches"] == 3

    def stats(m):
        return [v.numpy() for layer in m.batch_norm_layers(m.group_networks(["g"]))
                for v in (layer.moving_mean, layer.moving_variance)]

    raw, _, raw_meta = loop.load_model_from_run(run_dir, average_weights=False)
    own, _, own_meta = loop.load_model_from_run(run_dir, batch_norm_batches=3)
    assert raw_meta["inference_weights"] == {"averaged": [], "batch_norm_batches": 0}
    assert own_meta["inference_weights"] == {"averaged": ["g"], "batch_norm_batches": 3}
    assert len(stats(raw)) > 0
    assert max(np.abs(a - b).max() for a, b in zip(stats(raw), stats(own))) > 1e-4
    assert testing.max_weight_change([v.numpy() for v in raw.group_variables("g")],
                                     [v.numpy() for v in own.group_variables("g")]) > 0


def test_averaged_checkpoints_load_the_mean_weights_with_batch_norm_statistics_of_their_own(tmp_path):
    """--average_checkpoints: every trainable weight is the mean over the checkpoints, the step is the
    newest one's, and the batch norms are re-estimated for the mean weights."""
    from absl import app

    from tfattr.utils import flag_util

    run_dir = loop.run(smoke_config(tmp_path, steps=3, checkpoint_every=1, keep_checkpoints=5, sample_every=0,
                                    export_after=False))["run_dir"]
    ckpts = [os.path.join(run_dir, "checkpoints", f"ckpt-{s}") for s in (1, 3)]
    singles = [loop.load_model_from_run(run_dir, c)[0] for c in ckpts]
    mean, step, meta = loop.load_model_from_run(run_dir, average_checkpoints=["1", ckpts[1]], batch_norm_batches=2)
    assert step == 3
    assert meta["inference_weights"] == {"averaged": [], "batch_norm_batches": 2, "checkpoints": ckpts}
    first, last = ([v.numpy() for v in m.trainable_variables] for m in singles)
    assert testing.max_weight_change(first, last) > 0
    for v, a, b in zip(mean.trainable_variables, first, last):
        np.testing.assert_allclose(v.numpy(), (a + b) / 2, rtol=1e-6, atol=1e-7)
    moving = [v.numpy() for layer in mean.batch_norm_layers() for v in (layer.moving_mean, layer.moving_variance)]
    saved = [v.numpy() for layer in singles[1].batch_norm_layers() for v in (layer.moving_mean, layer.moving_variance)]
    assert moving and max(np.abs(a - b).max() for a, b in zip(moving, saved)) > 1e-4

    with pytest.raises(ValueError, match="two or more"):
        loop.load_model_from_run(run_dir, average_checkpoints=["3"])
    with pytest.raises(FileNotFoundError, match=r"ckpt-7 .*the run has: ckpt-1, ckpt-2, ckpt-3"):
        loop.load_model_from_run(run_dir, average_checkpoints=["1", "7"])
    with pytest.raises(app.UsageError, match="--average_checkpoints: checkpoints to average repeat one"):
        flag_util.load_run_model(run_dir, None, ["3", "3"])
    with pytest.raises(app.UsageError, match="--checkpoint and --average_checkpoints"):
        flag_util.load_run_model(run_dir, ckpts[0], ["1", "3"])


def test_learning_rates_decay_linearly_to_zero_and_a_resumed_run_keeps_the_schedule(tmp_path):
    from tfattr.training import schedule

    assert [schedule.decay_factor(s, 2, 6) for s in range(7)] == [1, 1, 1, 0.75, 0.5, 0.25, 0]
    assert schedule.decay_factor(5, 0, 6) == 1.0  # 0 = no decay
    cfg = smoke_config(tmp_path, steps=6, lr_decay_start=2, checkpoint_every=2, sample_every=0, keep_checkpoints=5,
                       export_after=False)
    run_dir = loop.run(cfg)["run_dir"]
    ckpts = os.path.join(run_dir, "checkpoints")

    def rates(step):
        model, _, _ = loop.load_model_from_run(run_dir, os.path.join(ckpts, f"ckpt-{step}"), average_weights=False)
        return {g: float(o.learning_rate.numpy()) for g, o in model.optimizers.items()}, model.config

    at4, model_config = rates(4)
    base = {"g": model_config.lr_g, "d": model_config.lr_d}
    # the save at step k holds the rate of step k - 1: (6 - 3) / (6 - 2) = 0.75 at ckpt-4
    assert at4 == pytest.approx({g: 0.75 * v for g, v in base.items()})
    assert rates(6)[0] == pytest.approx({g: 0.25 * v for g, v in base.items()})
    # Interrupted after step 4: resuming reads the base rates from the config, not the restored 0.75.
    tf.compat.v1.train.update_checkpoint_state(ckpts, os.path.join(ckpts, "ckpt-4"))
    loop.run(dataclasses.replace(cfg, run_dir=run_dir, resume=True))
    assert rates(6)[0] == pytest.approx({g: 0.25 * v for g, v in base.items()})
    with pytest.raises(ValueError, match="--lr_decay_start=6 must be below --steps=6"):
        loop.run(dataclasses.replace(cfg, lr_decay_start=6))


def test_a_run_resumed_with_other_rates_trains_at_them(tmp_path):
    # A checkpoint stores each optimizer's rate; resuming with new rates in --hparams must not keep it.
    cfg = smoke_config(tmp_path, steps=2, sample_every=0, export_after=False)
    run_dir = loop.run(cfg)["run_dir"]
    loop.run(dataclasses.replace(cfg, run_dir=run_dir, resume=True, steps=3, hparams=TINY + ",lr_g=3e-5,lr_d=7e-5"))
    model, step, _ = loop.load_model_from_run(run_dir, average_weights=False)
    assert step == 3
    assert {g: float(o.learning_rate.numpy()) for g, o in model.optimizers.items()} == pytest.approx({"g": 3e-5, "d": 7e-5})
