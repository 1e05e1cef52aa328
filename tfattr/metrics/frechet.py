"""Distribution distances between feature sets: Fréchet distance (FID) and kernel distance (KID).

Pure float64 numpy on feature arrays; which network produced the features is `features.py`'s
business (STYLE §16). The same functions serve Inception pool features (FID/KID) and identity
embeddings (`identity.frechet_identity_distance`).

References:
  Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
  equilibrium" (FID).
  Bińkowski et al. 2018, "Demystifying MMD GANs" (KID: unbiased MMD^2 with the cubic polynomial
  kernel k(x, y) = (gamma x.y + coef0)^3, gamma = 1/d, averaged over random subsets).
  Mokady et al. 2020, Table 1 (KID with gamma = 0.01, reported x100 as mean ± std).
"""

from __future__ import annotations

import numpy as np


def _as_features(x, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: features must be [N, D], got shape {x.shape}")
    return x


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
      features: `[N, D]` array, N >= 2.

    Returns:
      `(mu [D], sigma [D, D])`, float64; sigma uses the unbiased (N - 1) normalisation, as the
      reference FID implementation (`np.cov(rowvar=False)`).
    """
    x = _as_features(features, "feature_statistics")
    if x.shape[0] < 2:
        raise ValueError(f"feature_statistics needs at least 2 samples, got {x.shape[0]}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """tr((sigma1 sigma2)^(1/2)) for covariance matrices.

    sigma1 sigma2 is not symmetric, but it is similar to s sigma2 s with s = sigma1^(1/2), which is
    symmetric PSD; its eigenvalues are therefore real and non-negative and the trace of the square
    root is the sum of their square roots. This avoids the complex round-off `scipy.linalg.sqrtm`
    produces on near-singular products (and the need for an `eps` offset).
    """
    s = _sqrt_psd(np.asarray(sigma1, np.float64))
    m = s @ np.asarray(sigma2, np.float64) @ s
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))  (Heusel et al. 2017).

    Args:
      mu1, mu2: means `[D]`.
      sigma1, sigma2: covariances `[D, D]`.

    Returns:
      The squared distance d^2 (what "FID" reports), a non-negative float.

    Raises:
      ValueError: mismatched shapes.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape} "
                         "must be [D], [D, D], [D], [D, D]")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))


def frechet_distance_from_features(features1, features2) -> float:
    """`frechet_distance` of the statistics of two feature sets `[N1, D]`, `[N2, D]`."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def polynomial_kernel(x, y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (gamma x.y + coef0)^degree for all row pairs: `[N, D]`, `[M, D]` -> `[N, M]`.

    gamma defaults to 1/D (Bińkowski et al. 2018; sklearn's `polynomial_kernel` default).
    """
    x, y = _as_features(x, "polynomial_kernel"), _as_features(y, "polynomial_kernel")
    gamma = 1.0 / x.shape[1] if gamma is None else float(gamma)
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 from kernel matrices (Gretton et al. 2012, Eq. 3).

    MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(n(n-1)) - 2 sum_{i,j} k(x_i,y_j)/(mn)

    Args:
      kxx: `[m, m]`, kyy: `[n, n]`, kxy: `[m, n]` kernel matrices, m, n >= 2.

    Returns:
      The estimate (can be slightly negative when the distributions match).
    """
    m, n = kxx.shape[0], kyy.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"mmd2_unbiased needs at least 2 samples per set, got {m} and {n}")
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kernel_distance(features1, features2, num_subsets: int = 100, subset_size: int = 1000,
                    gamma: float | None = None, degree: int = 3, coef0: float = 1.0,
                    seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with a polynomial kernel, over random subsets.

    Each subset draws `subset_size` rows (without replacement) from each set; the subset size is
    capped at the smaller set. Bińkowski et al. 2018 and the reference implementations use 100
    subsets of 1000.

    Args:
      features1, features2: `[N1, D]`, `[N2, D]` features (e.g. real, generated).
      num_subsets: number of random subsets.
      subset_size: rows per subset and set.
      gamma: kernel scale (default 1/D; Mokady et al. 2020 use 0.01).
      degree, coef0: kernel (gamma x.y + coef0)^degree.
      seed: subset sampling seed.

    Returns:
      `(mean, std)` of MMD^2 over the subsets (multiply by 100 to compare with papers that report
      KID x 100, e.g. Mokady et al. 2020).
    """
    x, y = _as_features(features1, "kernel_distance"), _as_features(features2, "kernel_distance")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"kernel_distance: feature sizes differ ({x.shape[1]} vs {y.shape[1]})")
    size = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        xs = x[rng.choice(x.shape[0], size, replace=False)]
        ys = y[rng.choice(y.shape[0], size, replace=False)]
        k = lambda a, b: polynomial_kernel(a, b, degree, gamma, coef0)
        values.append(mmd2_unbiased(k(xs, xs), k(ys, ys), k(xs, ys)))
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std())
