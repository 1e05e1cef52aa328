"""Disentanglement of latent encodings (Oldfield et al., Sec. IV-B).

  * Classifier-posterior entropy (Fig. 5): the entropy of the class posterior of the classifier
    for attribute m' applied to the encoding of attribute m. High (near log K) for m != m' means
    the encoding carries no information about m'; near 0 for m == m'.
  * Hopkins statistic (Table III; Hopkins & Skellam 1954, as used by Banerjee & Dave 2004): cluster
    tendency of a point set; about 0.5 for uniformly random data, towards 1 for clustered data
    ("> 0.75: clustering tendency at the 90% confidence level").
"""

from __future__ import annotations

import numpy as np


def posterior_entropy(probs, base: float | None = None, eps: float = 0.0) -> np.ndarray:
    """Entropy of each row of class posteriors.

    Args:
      probs: `[N, K]` class probabilities (rows are renormalised to sum to 1).
      base: logarithm base (None = natural log, nats; 2 = bits; K = normalised to [0, 1]).
      eps: optional floor added to probabilities (0 uses the convention 0 log 0 = 0).

    Returns:
      float64 `[N]`.
    """
    p = np.asarray(probs, np.float64) + eps
    if p.ndim != 2:
        raise ValueError(f"posterior_entropy: probs must be [N, K], got {p.shape}")
    p = p / p.sum(axis=1, keepdims=True)
    logp = np.log(np.where(p > 0, p, 1.0))
    h = -np.sum(p * logp, axis=1)
    return h / np.log(base) if base is not None else h


def _nearest_distances(queries: np.ndarray, points: np.ndarray, exclude_self: np.ndarray | None = None
                       ) -> np.ndarray:
    """Euclidean distance from each query to its nearest point (float64, exact, brute force in
    chunks); `exclude_self[i]` is the index in `points` that query i must skip (itself)."""
    out = np.empty(len(queries), np.float64)
    sq_p = np.sum(points ** 2, axis=1)
    for s in range(0, len(queries), 512):
        q = queries[s:s + 512]
        d2 = np.sum(q ** 2, axis=1)[:, None] + sq_p[None, :] - 2.0 * q @ points.T
        if exclude_self is not None:
            d2[np.arange(len(q)), exclude_self[s:s + 512]] = np.inf
        out[s:s + 512] = np.sqrt(np.clip(d2.min(axis=1), 0.0, None))
    return out


def hopkins_statistic(points, num_samples: int | None = None, seed: int = 0, power: float | str = 1.0) -> float:
    """Hopkins statistic H = sum u^p / (sum u^p + sum w^p).

    u_i: distance from a uniform random point in the data's bounding box to its nearest data point;
    w_i: distance from a randomly chosen data point to its nearest *other* data point; m of each.
    Distances are used as they are (p = 1, Banerjee & Dave 2004); `power="dim"` uses p = D, the
    form under which H follows Beta(m, m) for uniform data.

    Args:
      points: `[N, D]` data, N >= 3.
      num_samples: m (default: max(1, N // 10), the usual choice; at most N - 1).
      seed: sampling seed.
      power: exponent p, a number or "dim".

    Returns:
      H in [0, 1]: ~0.5 random, -> 1 clustered, -> 0 regularly spaced.
    """
    x = np.asarray(points, np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"hopkins_statistic needs points [N >= 3, D], got {x.shape}")
    n, d = x.shape
    m = max(1, n // 10) if num_samples is None else int(num_samples)
    m = min(m, n - 1)
    p = float(d) if power == "dim" else float(power)
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(x.min(axis=0), x.max(axis=0), size=(m, d))
    chosen = rng.choice(n, m, replace=False)
    u = _nearest_distances(uniform, x) ** p
    w = _nearest_distances(x[chosen], x, exclude_self=chosen) ** p
    return float(u.sum() / (u.sum() + w.sum()))


def hopkins_per_cluster(points, cluster_labels, min_size: int = 10, **kwargs) -> dict[int, float]:
    """Hopkins statistic of each cluster separately (Oldfield et al. Table III: per expression
    cluster of the expression encodings); clusters smaller than `min_size` are skipped."""
    x = np.asarray(points, np.float64)
    labels = np.asarray(cluster_labels)
    out = {}
    for c in np.unique(labels):
        sel = x[labels == c]
        if len(sel) >= max(3, min_size):
            out[int(c)] = hopkins_statistic(sel, **kwargs)
    return out
