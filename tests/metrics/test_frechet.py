"""FID/KID maths against scipy and hand-computed references (STYLE §22), plus identity and mask scores."""

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial import distance

from tfattr.metrics import frechet, identity, segmentation


def _scipy_fid(x, y):
    """The reference FID recipe (Heusel et al. code): scipy.linalg.sqrtm of the covariance product."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(200, 16), (500, 64)])
def test_frechet_distance_matches_scipy_sqrtm(n, d):
    rng = np.random.default_rng(d)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, d)) @ rng.normal(scale=0.4, size=(d, d)) + 0.3
    ours = frechet.frechet_distance(*frechet.feature_statistics(x), *frechet.feature_statistics(y))
    np.testing.assert_allclose(ours, _scipy_fid(x, y), rtol=1e-8)
    assert ours == pytest.approx(frechet.frechet_distance_from_features(x, y))


def test_feature_statistics_are_float64_mean_and_unbiased_covariance():
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    mu, sigma = frechet.feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    np.testing.assert_allclose(sigma, xc.T @ xc / 49, rtol=1e-12)


def test_frechet_distance_hand_cases():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8))
    assert frechet.frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    # A pure shift changes only the mean term: |delta|^2.
    assert frechet.frechet_distance_from_features(x, x + 2.0) == pytest.approx(8 * 4.0, rel=1e-9)
    # Diagonal Gaussians: d^2 = sum (s1 - s2)^2 for standard deviations s1, s2.
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    assert frechet.frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx((1 - 3) ** 2 + (2 - 1) ** 2)
    with pytest.raises(ValueError, match="shapes"):
        frechet.frechet_distance(np.zeros(2), s1, np.zeros(3), np.eye(3))


def test_polynomial_kernel_and_unbiased_mmd_match_loops():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)) + 0.5
    k = lambda a, b: (a @ b / 3 + 1) ** 3
    kxy = frechet.polynomial_kernel(x, y)
    np.testing.assert_allclose(kxy, [[k(a, b) for b in y] for a in x], rtol=1e-12)
    sxx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    syy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    expected = sxx + syy - 2 * np.mean([[k(a, b) for b in y] for a in x])
    got = frechet.mmd2_unbiased(frechet.polynomial_kernel(x, x), frechet.polynomial_kernel(y, y), kxy)
    assert got == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(frechet.polynomial_kernel(x, y, gamma=0.01), (0.01 * x @ y.T + 1) ** 3)


def test_kernel_distance_subsets():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(30, 4)) + 1.0
    # Subsets as large as the smaller set, drawn from a set of that size, are permutations of it:
    # the estimate over x's subsets varies, but with equal sizes both sets are used whole.
    x30 = x[:30]
    mean, std = frechet.kernel_distance(x30, y, num_subsets=3, subset_size=100)
    full = frechet.mmd2_unbiased(frechet.polynomial_kernel(x30, x30), frechet.polynomial_kernel(y, y),
                                 frechet.polynomial_kernel(x30, y))
    assert mean == pytest.approx(full, rel=1e-10) and std == pytest.approx(0.0, abs=1e-12)
    same_mean, _ = frechet.kernel_distance(rng.normal(size=(400, 4)), rng.normal(size=(400, 4)), num_subsets=10,
                                           subset_size=200)
    assert abs(same_mean) < 0.05 < mean


def test_identity_cosine_and_frechet_identity_distance():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    np.testing.assert_allclose(identity.identity_cosine(a, b), [1 - distance.cosine(u, v) for u, v in zip(a, b)])
    np.testing.assert_allclose(identity.identity_cosine(a, 3 * a), 1.0)
    x, y = rng.normal(size=(100, 5)), rng.normal(size=(100, 5)) + 1
    assert identity.frechet_identity_distance(x, y) == pytest.approx(_scipy_fid(x, y), rel=1e-8)
    emb = identity.embed(lambda im: im.reshape(len(im), -1)[:, :3], np.ones((5, 4, 4, 3)), batch_size=2)
    assert emb.shape == (5, 3) and emb.dtype == np.float64


def test_mask_iou_hand_computed():
    pred = np.zeros((3, 4, 4))
    true = np.zeros((3, 4, 4, 1))
    pred[0, :2, :2] = 0.9          # 4 px
    true[0, :2, :4, 0] = 1.0       # 8 px, 4 shared -> 0.5
    pred[1, 0, 0] = 0.4            # below threshold: empty vs empty -> 1
    true[2, 3, 3, 0] = 1.0         # empty vs 1 px -> 0
    np.testing.assert_allclose(segmentation.mask_iou(pred, true), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(segmentation.mask_iou(pred, true, threshold=0.3), [0.5, 0.0, 0.0])


def test_best_threshold_iou_picks_the_threshold_that_separates_the_truth():
    truth = np.zeros([2, 4, 4], np.float32)
    truth[:, :2] = 1.0
    scores = np.where(truth > 0, 0.3, 0.1) + np.zeros([2, 4, 4])  # true pixels rank first, all below 0.5
    np.testing.assert_allclose(segmentation.mask_iou(scores, truth), [0.0, 0.0])
    iou, t = segmentation.best_threshold_iou(scores, truth, np.arange(0.05, 0.96, 0.05))
    assert iou == 1.0 and 0.1 <= t < 0.3
    iou, t = segmentation.best_threshold_iou(-scores, truth, [-0.5, -0.2])  # negative scores and thresholds
    assert (iou, t) == (0.5, -0.5)
