"""Reference-based transfer metrics on the synthetic bench, where the true counterfactual exists.

Protocol `bench_swap` (after Zhang et al. 2019, "Quantitative Results": the test set split into
halves A and B, one-to-one pairs): test-split example i (A) is paired with example n + i (B). For
each transferred attribute g, only the pairs whose g labels differ count. The model transfers g
from B to A; the oracle then judges
  * swap accuracy: the result shows B's class of g;
  * preservation: every other bench attribute keeps A's class (including attributes the model
    was not trained on, e.g. expression and illumination);
  * counterfactual L1: mean |result - render(A with B's exact g factor)| in [-1, 1] units.
The trivial baselines are reported next to the model: "source" (return A: perfect preservation,
zero swap) and "reference" (return B: perfect swap, poor preservation).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tfattr.data import synthetic
from tfattr.metrics import identity

SwapFn = Callable[[np.ndarray, np.ndarray, Sequence[str]], np.ndarray]


def bench_pairs(num_pairs: int, seed: int = 0, split: str = "test"):
    """Params of the A and B halves: (params_a, params_b), A = 0..n-1, B = n..2n-1."""
    params_a = synthetic.params_for(seed, split, np.arange(num_pairs))
    params_b = synthetic.params_for(seed, split, np.arange(num_pairs, 2 * num_pairs))
    return params_a, params_b


def _signed(images_uint8):
    return np.asarray(images_uint8, np.float32) / 127.5 - 1.0


def evaluate_swap(swap_fn: SwapFn, attributes: Sequence[str], image_size: int, oracle, num_pairs: int = 500,
                  seed: int = 0, batch_size: int = 50, baselines: bool = True) -> list[dict]:
    """Runs protocol `bench_swap` for each attribute in `attributes`.

    Args:
      swap_fn: (source [N,S,S,3], reference [N,S,S,3], attribute names) -> result [N,S,S,3], all
        float in [-1, 1].
      attributes: bench attribute names to transfer one at a time.
      image_size: render size (the model's).
      oracle: `tfattr.metrics.oracle.Oracle`.
      num_pairs: pairs drawn (only those differing in the attribute count).
      seed: bench seed.
      batch_size: pairs per swap_fn call.
      baselines: also score the "source" and "reference" baselines.

    Returns:
      One record per (method, attribute): {"protocol", "method", "attribute", "pairs",
      "swap_accuracy", "preservation", "counterfactual_l1", "preserved"}; "preserved" maps each
      other bench attribute to the fraction of results in which the oracle still reads A's class
      ("preservation" is their mean), so a table can say which attribute a swap drags along.
    """
    params_a, params_b = bench_pairs(num_pairs, seed)
    return score_swaps(swap_fn, attributes, image_size, oracle, params_a, params_b, batch_size, baselines)


def score_swaps(swap_fn: SwapFn, attributes: Sequence[str], image_size: int, oracle, params_a, params_b,
                batch_size: int = 50, baselines: bool = True, protocol: str = "bench_swap",
                embed_fn=None) -> list[dict]:
    """Scores single-attribute swaps B -> A on given bench pairs (the body of `evaluate_swap`).

    Args:
      swap_fn, attributes, image_size, oracle, batch_size, baselines: as in `evaluate_swap`.
      params_a, params_b: bench parameter dicts of the sources and references, arrays `[N]`
        (pair i is (a_i, b_i)).
      protocol: value of the records' "protocol" field.
      embed_fn: optional identity embedding (images -> `[N, D]`, `metrics.identity`). Given, every
        record also has "identity_cosine", the mean cosine between each source and its output, and
        "identity_cosine_counterfactual", the same for the true render of the swap (what a perfect
        swap scores: the swapped attribute itself moves the embedding).

    Returns:
      Records as `evaluate_swap`'s.
    """
    la, lb = synthetic.labels(params_a), synthetic.labels(params_b)
    names = synthetic.SCHEMA.names
    records = []
    for attr in attributes:
        g = names.index(attr)
        idx = np.nonzero(la[:, g] != lb[:, g])[0]
        if idx.size == 0:
            continue
        pa = {k: v[idx] for k, v in params_a.items()}
        pb = {k: v[idx] for k, v in params_b.items()}
        xa = _signed(synthetic.render(pa, image_size)["image"])
        xb = _signed(synthetic.render(pb, image_size)["image"])
        truth = _signed(synthetic.render(synthetic.swap(pa, pb, [attr]), image_size)["image"])
        outputs = {"model": np.concatenate([np.asarray(swap_fn(xa[i:i + batch_size], xb[i:i + batch_size], [attr]))
                                            for i in range(0, len(idx), batch_size)])}
        if baselines:
            outputs.update({"baseline_source": xa, "baseline_reference": xb})
        others = [h for h in range(len(names)) if h != g]
        if embed_fn is not None:
            source = identity.embed(embed_fn, xa)
            true_cos = float(np.mean(identity.identity_cosine(source, identity.embed(embed_fn, truth))))
        for method, out in outputs.items():
            pred = oracle.predict_labels(out)
            kept = pred[:, others] == la[idx][:, others]
            records.append({
                "protocol": protocol, "method": method, "attribute": attr, "pairs": int(idx.size),
                "swap_accuracy": float(np.mean(pred[:, g] == lb[idx, g])),
                "preservation": float(np.mean(kept)),
                "counterfactual_l1": float(np.mean(np.abs(out - truth))),
                "preserved": {names[h]: float(v) for h, v in zip(others, np.mean(kept, axis=0))},
            })
            if embed_fn is not None:
                records[-1]["identity_cosine"] = float(np.mean(identity.identity_cosine(source, identity.embed(
                    embed_fn, out))))
                records[-1]["identity_cosine_counterfactual"] = true_cos
    return records


def summarize(records: list[dict]) -> list[dict]:
    """Mean over attributes per method (pair-weighted), as extra records with attribute "mean"."""
    out = []
    for method in dict.fromkeys(r["method"] for r in records):
        rs = [r for r in records if r["method"] == method]
        w = np.array([r["pairs"] for r in rs], np.float64)
        out.append({"protocol": rs[0]["protocol"], "method": method, "attribute": "mean", "pairs": int(w.sum()),
                    **{k: float(np.average([r[k] for r in rs], weights=w))
                       for k in ("swap_accuracy", "preservation", "counterfactual_l1", "identity_cosine",
                                 "identity_cosine_counterfactual") if k in rs[0]}})
    return out


def markdown_table(records: list[dict]) -> str:
    """The main table, then, for the model's swaps, each other attribute's preservation (rows:
    the swapped attribute; a low entry names what that swap changes besides its own attribute)."""
    lines = ["| method | attribute | pairs | swap acc | preservation | counterfactual L1 |",
             "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['method']} | {r['attribute']} | {r['pairs']} | {r['swap_accuracy']:.3f} | "
                     f"{r['preservation']:.3f} | {r['counterfactual_l1']:.4f} |")
    per = [r for r in records if r["method"] == "model" and "preserved" in r]
    if per:
        names = list(synthetic.SCHEMA.names)
        lines += ["", "Preservation of each other attribute in the model's swaps:", "",
                  "| swapped | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for r in per:
            cells = [f"{r['preserved'][n]:.3f}" if n in r["preserved"] else "-" for n in names]
            lines.append(f"| {r['attribute']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
