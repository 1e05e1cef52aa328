"""The papers' presets produce their documented pair counts."""

import numpy as np
import pytest

from tfattr.data import synthetic
from tfattr.metrics import protocols, registry

_LABELS = synthetic.labels(synthetic.params_for(0, "test", np.arange(6400)))


def _col(name):
    return _LABELS[:, synthetic.SCHEMA.index(name)]


def test_zhang2019_halves_one_to_one_both_ways():
    src, ref = protocols.zhang2019_pairs()
    assert len(src) == len(ref) == 2000
    np.testing.assert_array_equal(src[:1000], np.arange(1000))
    np.testing.assert_array_equal(ref[:1000], np.arange(1000, 2000))
    np.testing.assert_array_equal(src[1000:], ref[:1000])  # B <- A reverses A <- B
    assert len(set(zip(src.tolist(), ref.tolist()))) == 2000


def test_oldfield_neutral_to_every_expression():
    src, target = protocols.oldfield_neutral_to_all(_col("Expression"), 8)
    assert len(src) == len(target) == 200 * 8
    assert np.all(_col("Expression")[src] == 0)
    assert len(np.unique(src)) == 200
    np.testing.assert_array_equal(np.bincount(target), [200] * 8)
    with pytest.raises(ValueError, match="neutral"):
        protocols.oldfield_neutral_to_all(_col("Expression")[:100], 8)


def test_mokady2020_100_random_pairs_and_domain_b():
    for attr in ("Eyeglasses", "Beard", "Smiling"):
        a, b = protocols.mokady2020_pairs(_col(attr), seed=3)
        assert len(a) == len(b) == 100 and len(set(a)) == len(set(b)) == 100
        assert np.all(_col(attr)[a] == 0) and np.all(_col(attr)[b] == 1)
        b_first = protocols.mokady2020_domain_b(_col(attr))
        assert len(b_first) == 100 and np.all(_col(attr)[b_first] == 1) and np.all(np.diff(b_first) > 0)
    a1, _ = protocols.mokady2020_pairs(_col("Beard"), seed=3)
    a2, _ = protocols.mokady2020_pairs(_col("Beard"), seed=4)
    assert not np.array_equal(a1, a2)


def test_li2016_four_tasks_of_200():
    total = 0
    for task, (attr, src_class, dst_class) in protocols.LI2016_TASKS.items():
        src = protocols.li2016_sources(_col(attr), src_class)
        assert len(src) == 200 and np.all(_col(attr)[src] == src_class) and src_class != dst_class
        total += len(src)
    assert total == 800


def test_every_preset_names_registered_metrics():
    for preset in protocols.PRESETS.values():
        for m in preset.metrics:
            assert m in registry.DEFAULT_REGISTRY, (preset.name, m)
    assert registry.resolve(["zhang2019"]) == list(protocols.PRESETS["zhang2019"].metrics)
    with pytest.raises(ValueError, match="valid presets"):
        protocols.get_preset("zhang")
