"""Metric registry: names, capability discovery, records, and each metric family against a
reference computed by hand from the oracle (fake models whose outputs are known)."""

import json

import numpy as np
import pytest

from tfattr.data import synthetic
from tfattr.metrics import oracle as oracle_lib
from tfattr.metrics import registry, segmentation

SIZE = 32


@pytest.fixture(scope="module")
def small():
    return registry.add_standard_metrics(registry.Registry(), small=True)


@pytest.fixture(scope="module")
def oracle():
    return oracle_lib.load_oracle()


class ReferenceCopier:
    """Returns the reference image (a perfect swap, no preservation); declares its operations, and
    segments/removes with bench ground truth it is handed (so masks are known)."""

    CAPABILITIES = ("reference_transfer", "mask", "removal")
    TRANSFER_ATTRIBUTES = ("Eyeglasses",)

    def __init__(self, mask_value=None):
        self.schema = synthetic.SCHEMA.select(["Eyeglasses"])
        self.image_size = SIZE
        self.mask_value = mask_value

    def transfer_from_reference(self, source, reference, names):
        return np.asarray(reference)

    def segment(self, images):
        m = np.asarray(self.mask_value)[: len(images), ..., None]
        return m, (m > 0.5).astype(np.float32)

    def remove(self, images):
        return np.asarray(images), None


def _ctx(model, oracle, identity_fn=None, inception=None, cache_dir=None):
    return registry.EvalContext(ops=registry.Operations(model), testset=registry.BenchTestSet(0), model_name="fake",
                                step=7, seed=0, oracle_fn=lambda: oracle, identity_fn=identity_fn,
                                inception_fn=inception, cache_dir=cache_dir)


def test_standard_names_encode_protocols_and_unknown_names_list_valid_ones():
    names = registry.list_metrics()
    for n in ("oracle_acc_swap_2k", "fid_10k_test", "kid_10k_test", "fid_swap_2k_test", "mask_iou_100",
              "oracle_acc_removal_100", "identity_cos_transfer_100pairs", "posterior_entropy_2k_test",
              "hopkins_2k_test", "oracle_acc_diat_200", "oracle_acc_neutral2expr_1600"):
        assert n in names
    assert not any(n.startswith("fid") and "identity" in n for n in names)
    with pytest.raises(registry.UnknownMetricError, match="valid metrics: .*oracle_acc_swap_2k"):
        registry.get_metric("fid_50k")
    with pytest.raises(registry.UnknownMetricError):
        registry.resolve(["zhang2019", "nope"])
    reg = registry.Registry()
    reg.register_metric("x_1", protocol="p")(lambda ctx: [])
    with pytest.raises(ValueError, match="already registered"):
        reg.register_metric("x_1", protocol="p")(lambda ctx: [])
    with pytest.raises(ValueError, match="unknown operation"):
        reg.register_metric("x_2", protocol="p", requires=("teleport",))


def test_operations_probe_a_real_model_by_what_it_does():
    from tfattr import models

    schema = synthetic.SCHEMA.select(["Eyeglasses", "Smiling"])
    model = models.build("latent_swap", schema, SIZE, {"base_width": "4", "unit_channels": "2",
                                                       "irrelevant_channels": "4", "d_width": "4",
                                                       "num_res_blocks": "2"})
    ops = registry.Operations(model)
    assert ops.supported == {"reference_transfer"}  # translate() raises NotImplementedError
    assert ops.transfer_attributes == ("Eyeglasses", "Smiling")
    x = np.zeros((3, SIZE, SIZE, 3), np.float32)
    assert ops.transfer(x, x, ["Smiling"]).shape == (3, SIZE, SIZE, 3)


def test_declared_capabilities_and_requirements(oracle, small):
    ctx = _ctx(ReferenceCopier(), oracle)
    assert ctx.ops.supported == {"reference_transfer", "mask", "removal"}
    with pytest.raises(registry.NotApplicable, match="latent_posteriors"):
        registry.calc_metric("posterior_entropy_16_test", ctx, small)
    with pytest.raises(registry.NotApplicable, match="identity network"):
        registry.calc_metric("identity_cos_transfer_8pairs", ctx, small)


def test_swap_oracle_metrics_equal_the_oracle_on_references(oracle, small):
    ctx = _ctx(ReferenceCopier(), oracle)
    recs = registry.calc_metric("oracle_acc_swap_16", ctx, small)
    model = {r["attribute"]: r for r in recs if r["method"] == "model"}
    ref = {r["attribute"]: r for r in recs if r["method"] == "baseline_reference"}
    assert model["Eyeglasses"]["value"] == ref["Eyeglasses"]["value"]
    # Hand reference: the Eyeglasses-differing pairs of the 16-image A/B split, judged directly.
    src, refs = np.arange(16), np.r_[8:16, 0:8]
    g = synthetic.SCHEMA.index("Eyeglasses")
    lab = synthetic.labels(synthetic.params_for(0, "test", np.arange(16)))
    keep = lab[src, g] != lab[refs, g]
    images = ctx.testset.images(refs[keep], SIZE)
    assert model["Eyeglasses"]["value"] == pytest.approx(np.mean(oracle.predict_labels(images)[:, g] == lab[refs[keep], g]))
    assert model["Eyeglasses"]["count"] == keep.sum()
    r = recs[0]
    for field in ("metric", "protocol", "model", "step", "split", "seed", "value"):
        assert field in r
    assert (r["metric"], r["protocol"], r["step"], r["split"]) == ("oracle_acc_swap_16", "zhang2019", 7, "test")


def test_swap_identity_cosine_reads_the_embedding_of_source_and_output(oracle, small):
    """identity_cos_swap: a model that returns the reference scores as the reference baseline, the
    source baseline scores 1, the counterfactual row is the true render's cosine; without an
    identity network the metric is not applicable, and the other swap metrics skip the embedding."""
    calls = []

    def pixels(x):
        calls.append(len(x))
        return np.asarray(x).reshape(len(x), -1)

    ctx = _ctx(ReferenceCopier(), oracle, identity_fn=pixels)
    recs = registry.calc_metric("identity_cos_swap_16", ctx, small)
    by = {(r["method"], r["attribute"]): r["value"] for r in recs}
    assert by[("baseline_source", "Eyeglasses")] == pytest.approx(1.0)
    assert by[("model", "Eyeglasses")] == pytest.approx(by[("baseline_reference", "Eyeglasses")])
    assert by[("model", "Eyeglasses")] < 0.99
    # Hand reference for the counterfactual: the source with the reference's glasses, rendered.
    src, refs = np.arange(16), np.r_[8:16, 0:8]
    g = synthetic.SCHEMA.index("Eyeglasses")
    params = synthetic.params_for(0, "test", np.arange(16))
    lab = synthetic.labels(params)
    keep = np.nonzero(lab[src, g] != lab[refs, g])[0]
    pa = {k: v[src[keep]] for k, v in params.items()}
    pb = {k: v[refs[keep]] for k, v in params.items()}
    xa = synthetic.render(pa, SIZE)["image"].astype(np.float64) / 127.5 - 1
    xt = synthetic.render(synthetic.swap(pa, pb, ["Eyeglasses"]), SIZE)["image"].astype(np.float64) / 127.5 - 1
    a, t = xa.reshape(len(keep), -1), xt.reshape(len(keep), -1)
    cos = (a * t).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(t, axis=1)
    assert by[("baseline_counterfactual", "Eyeglasses")] == pytest.approx(cos.mean(), rel=1e-5)
    assert by[("baseline_source", "Eyeglasses")] > by[("baseline_counterfactual", "Eyeglasses")]

    fresh = _ctx(ReferenceCopier(), oracle, identity_fn=pixels)
    calls.clear()
    registry.evaluate_metrics(fresh, ["oracle_acc_swap_16"], registry=small, progress=False)
    assert calls == []
    with pytest.raises(registry.NotApplicable, match="identity network"):
        registry.calc_metric("identity_cos_swap_16", _ctx(ReferenceCopier(), oracle), small)


def test_mokady_transfer_removal_and_iou(oracle, small):
    g = synthetic.SCHEMA.index("Eyeglasses")
    pool = np.arange(4000)
    labels = synthetic.labels(synthetic.params_for(0, "test", pool))[:, g]
    b = pool[labels == 1][:8]
    truth = registry.BenchTestSet(0).masks(b, SIZE, "glasses")
    perfect = _ctx(ReferenceCopier(mask_value=truth), oracle)
    iou = registry.calc_metric("mask_iou_8", perfect, small)
    assert iou[0]["attribute"] == "Eyeglasses" and iou[0]["value"] == pytest.approx(1.0)
    shifted = np.roll(truth, 3, axis=2)
    half = registry.calc_metric("mask_iou_8", _ctx(ReferenceCopier(mask_value=shifted), oracle), small)
    assert half[0]["value"] == pytest.approx(segmentation.mask_iou(shifted, truth).mean())
    # "remove" returns the input: the removal rate is the oracle's miss rate on B images.
    removal = registry.calc_metric("oracle_acc_removal_8", perfect, small)[0]
    xb = perfect.testset.images(b, SIZE)
    assert removal["via"] == "remove"
    assert removal["value"] == pytest.approx(np.mean(oracle.predict_labels(xb)[:, g] == 0))
    acc = registry.calc_metric("oracle_acc_transfer_8pairs", perfect, small)[0]
    assert acc["value"] >= 0.75 and acc["count"] == 8  # the copied references have glasses
    with_id = _ctx(ReferenceCopier(mask_value=truth), oracle, identity_fn=lambda x: x.reshape(len(x), -1))
    cos = registry.calc_metric("identity_cos_transfer_8pairs", with_id, small)[0]
    assert -1.0 <= cos["value"] <= 1.0 and cos["count"] == 8


class HairCopier(ReferenceCopier):
    """A two-domain model over one class pair of a categorical attribute, as mask_transfer declares
    it: content = black hair (B), domain A = blond hair."""

    TRANSFER_ATTRIBUTES = ("Hair_Color",)
    transfer_domains = {"Hair_Color": ("black", "blond")}

    def __init__(self, mask_value=None):
        super().__init__(mask_value)
        self.schema = synthetic.SCHEMA.select(["Hair_Color"])
        self.sources = []

    def transfer_from_reference(self, source, reference, names):
        self.sources.append(np.asarray(source))
        return super().transfer_from_reference(source, reference, names)


def test_mokady_metrics_read_a_declared_categorical_domain(oracle, small):
    h = synthetic.SCHEMA.index("Hair_Color")
    black, blond = (synthetic.SCHEMA["Hair_Color"].value_index(v) for v in ("black", "blond"))
    labels = synthetic.labels(synthetic.params_for(0, "test", np.arange(4000)))[:, h]
    b = np.nonzero(labels == black)[0][:8]
    truth = registry.BenchTestSet(0).masks(b, SIZE, "hair")
    ctx = _ctx(HairCopier(mask_value=truth), oracle)
    assert ctx.ops.domains == {"Hair_Color": ("black", "blond")}
    iou = registry.calc_metric("mask_iou_8", ctx, small)[0]
    assert iou["attribute"] == "Hair_Color" and iou["mask"] == "hair" and iou["value"] == pytest.approx(1.0)
    # Transfer copies the reference: every b is black-haired, so the oracle reads black (not "class 1").
    acc = registry.calc_metric("oracle_acc_transfer_8pairs", ctx, small)[0]
    assert acc["value"] >= 0.75
    # "remove" returns the input: black-haired faces stay black, so removal fails on (nearly) all.
    removal = registry.calc_metric("oracle_acc_removal_8", ctx, small)[0]
    xb = ctx.testset.images(b, SIZE)
    assert removal["value"] == pytest.approx(np.mean(oracle.predict_labels(xb)[:, h] != black)) and removal["value"] <= 0.25
    # The pairs' sources come from domain A only (blond), not from every non-black class.
    sources = np.concatenate(ctx.ops.model.sources)
    assert len(sources) == 8 and np.mean(oracle.predict_labels(sources)[:, h] == blond) >= 0.75


def test_distribution_metrics_use_cached_real_features(oracle, small, tmp_path):
    class Extractor:
        identity = {"name": "pixel-stats"}

        def __call__(self, x):
            x = np.asarray(x, np.float64)
            return np.concatenate([x.mean((1, 2)), x.std((1, 2)), x[:, ::8, ::8, 1].reshape(len(x), -1)], 1)

    ctx = _ctx(ReferenceCopier(), oracle, inception=Extractor, cache_dir=str(tmp_path))
    fid = registry.calc_metric("fid_swap_16_test", ctx, small)[0]
    # Copying the Eyeglasses-differing references: the fakes are the real set with some images
    # replaced by their partners; compute that FID directly.
    from tfattr.metrics import frechet, protocols

    src, ref = protocols.zhang2019_pairs(16)
    g = synthetic.SCHEMA.index("Eyeglasses")
    lab = synthetic.labels(synthetic.params_for(0, "test", np.arange(16)))
    out_idx = np.where(lab[src, g] != lab[ref, g], ref, src)
    real = Extractor()(ctx.testset.images(np.arange(16), SIZE))
    fake = Extractor()(ctx.testset.images(out_idx, SIZE))
    expected = frechet.frechet_distance_from_features(real.astype(np.float32), fake)
    assert fid["value"] == pytest.approx(expected, rel=1e-4)
    assert len(list(tmp_path.iterdir())) == 1
    kid = registry.calc_metric("kid_swap_16_test", ctx, small)[0]
    assert "std" in kid and np.isfinite(kid["value"])


def test_evaluate_metrics_writes_jsonl_and_skips_with_reasons(oracle, small, tmp_path):
    from tfattr import evaluate

    ctx = _ctx(ReferenceCopier(), oracle)
    records, skipped = evaluate.evaluate_metrics(ctx, ["oracle_acc_diat_8", "hopkins_16_test"], str(tmp_path),
                                                 registry=small, progress=False, log=lambda *_: None)
    assert set(skipped) == {"hopkins_16_test"}
    lines = (tmp_path / "metric-oracle_acc_diat_8.jsonl").read_text().splitlines()
    # only eyeglasses_removal (the model edits Eyeglasses only): the model and two reference rows
    assert len(lines) == len(records) == 3
    by_method = {r["method"]: r for r in map(json.loads, lines)}
    rec = by_method["model"]
    assert rec["attribute"] == "eyeglasses_removal" and rec["count"] == 8 and rec["protocol"] == "li2016"
    # the unedited input keeps its glasses; the renderer's true edit has none
    assert by_method["baseline_source"]["value"] == 0.0 and by_method["baseline_counterfactual"]["value"] == 1.0
    table = registry.markdown_table(records, skipped)
    assert "oracle_acc_diat_8" in table and "skipped" in table


def test_compare_table_and_side_by_side_figure(oracle):
    from tfattr import compare

    a = [{"metric": "m", "method": "model", "attribute": "Eyeglasses", "value": 0.5},
         {"metric": "k", "method": "model", "attribute": "", "value": 0.1, "std": 0.01}]
    b = [{"metric": "m", "method": "model", "attribute": "Eyeglasses", "value": 0.75}]
    table = compare.comparison_table({"run_a": a, "run_b": b}, {"run_b": {"x": "needs mask"}})
    assert "| m | model | Eyeglasses | 0.5000 | 0.7500 |" in table
    assert "| k | model |  | 0.1000 ± 0.0100 | - |" in table and "n/a" in table

    class Blind(ReferenceCopier):
        CAPABILITIES = ("mask",)

    img = compare.side_by_side([_ctx(ReferenceCopier(), oracle), _ctx(Blind(), oracle)], "Eyeglasses", 3)
    assert img.shape == (4 * (SIZE + 1) + 1, 3 * (SIZE + 1) + 1, 3)
    # Row 3 (the copier) equals row 2 (the references); row 4 (cannot edit) is blank.
    row = lambda r: img[1 + r * (SIZE + 1): (r + 1) * (SIZE + 1)]
    np.testing.assert_array_equal(row(2), row(1))
    assert np.all(row(3) == 255)
    assert compare.side_by_side([_ctx(Blind(), oracle)], "Eyeglasses", 3) is None


class SourceReturner(ReferenceCopier):
    def transfer_from_reference(self, source, reference, names):
        return np.asarray(source)


class TrueTransfer(ReferenceCopier):
    """Renders the bench's ground truth: the source face with the reference's glasses."""

    def __init__(self, a_idx, b_idx):
        super().__init__()
        self.truth = registry.BenchTestSet(0).params(a_idx), registry.BenchTestSet(0).params(b_idx)

    def transfer_from_reference(self, source, reference, names):
        cf = synthetic.swap(*self.truth, names)
        return synthetic.render(cf, SIZE)["image"].astype(np.float32) / 127.5 - 1.0


def test_mokady_change_outside_the_true_layer(oracle, small):
    untouched = registry.calc_metric("mae_outside_transfer_8pairs", _ctx(SourceReturner(), oracle), small)[0]
    assert untouched["value"] == 0.0 and untouched["attribute"] == "Eyeglasses" and untouched["count"] == 8
    # Copying the reference changes the face everywhere: the metric is |b - a| outside the layer of
    # the true transfer, recomputed here from the same pairs.
    g = synthetic.SCHEMA.index("Eyeglasses")
    labels = synthetic.labels(synthetic.params_for(0, "test", np.arange(4000)))[:, g]
    from tfattr.metrics import protocols
    a, b = protocols.mokady2020_pairs(labels, 8, seed=0)
    test = registry.BenchTestSet(0)
    xa, xb = test.images(a, SIZE), test.images(b, SIZE)
    layer = synthetic.render(synthetic.swap(test.params(a), test.params(b), ["Eyeglasses"]), SIZE,
                             outputs=("masks",))["masks"]["glasses"].reshape(8, SIZE, SIZE)
    expected = np.mean([np.abs(xb - xa).mean(-1)[i][layer[i] < 0.5].mean() for i in range(8)])
    copied = registry.calc_metric("mae_outside_transfer_8pairs", _ctx(ReferenceCopier(), oracle), small)[0]
    assert copied["value"] == pytest.approx(expected, rel=1e-5) and copied["value"] > 0.1
    # The true transfer only touches the layer (anti-aliased edges under 0.5 coverage aside).
    true = registry.calc_metric("mae_outside_transfer_8pairs", _ctx(TrueTransfer(a, b), oracle), small)[0]
    assert true["value"] < 0.01 * copied["value"]
