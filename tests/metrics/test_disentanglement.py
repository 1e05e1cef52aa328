"""Classifier-posterior entropy against scipy; Hopkins statistic against a KD-tree reference."""

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import cKDTree

from tfattr.metrics import disentanglement


def test_posterior_entropy_matches_scipy():
    p = np.random.default_rng(0).dirichlet(np.ones(6), size=20)
    p[0] = [1, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(disentanglement.posterior_entropy(p), stats.entropy(p, axis=1), atol=1e-12)
    np.testing.assert_allclose(disentanglement.posterior_entropy(p, base=2), stats.entropy(p, base=2, axis=1),
                               atol=1e-12)
    uniform = np.full((2, 8), 1 / 8)
    np.testing.assert_allclose(disentanglement.posterior_entropy(uniform), np.log(8))
    np.testing.assert_allclose(disentanglement.posterior_entropy(uniform, base=8), 1.0)


def test_nearest_distances_match_kdtree():
    rng = np.random.default_rng(1)
    pts, q = rng.normal(size=(700, 3)), rng.normal(size=(600, 3))
    np.testing.assert_allclose(disentanglement._nearest_distances(q, pts), cKDTree(pts).query(q)[0], rtol=1e-9)
    own = np.arange(0, 600)
    np.testing.assert_allclose(disentanglement._nearest_distances(pts[own], pts, exclude_self=own),
                               cKDTree(pts).query(pts[own], k=2)[0][:, 1], rtol=1e-9)


def test_hopkins_hand_computed_and_reference():
    # 1-D points 0, 1, 3; m = 1. With the seed's draws the statistic must equal u / (u + w).
    x = np.array([[0.0], [1.0], [3.0]])
    rng = np.random.default_rng(5)
    u_point = rng.uniform(x.min(0), x.max(0), size=(1, 1))
    chosen = rng.choice(3, 1, replace=False)
    u = np.min(np.abs(x[:, 0] - u_point[0, 0]))
    others = np.delete(x[:, 0], chosen[0])
    w = np.min(np.abs(others - x[chosen[0], 0]))
    assert disentanglement.hopkins_statistic(x, num_samples=1, seed=5) == pytest.approx(u / (u + w))


def test_hopkins_uniform_vs_clustered():
    rng = np.random.default_rng(2)
    uniform = rng.uniform(size=(1000, 2))
    h_uniform = disentanglement.hopkins_statistic(uniform, seed=0)
    assert 0.4 < h_uniform < 0.6
    centers = rng.uniform(size=(5, 2)) * 10
    clustered = np.concatenate([c + 0.05 * rng.normal(size=(200, 2)) for c in centers])
    h_clustered = disentanglement.hopkins_statistic(clustered, seed=0)
    assert h_clustered > 0.9
    # Within one Gaussian blob there is no further cluster structure: far less clustered.
    per = disentanglement.hopkins_per_cluster(clustered, np.repeat(np.arange(5), 200), seed=0)
    assert sorted(per) == [0, 1, 2, 3, 4] and all(v < 0.8 for v in per.values())
    with pytest.raises(ValueError):
        disentanglement.hopkins_statistic(np.zeros((2, 2)))
