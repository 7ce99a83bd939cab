import io
import pickle
import tarfile

import numpy as np
import pytest

from sslgeo_lib import data
from sslgeo_lib.data import load_dataset
from sslgeo_lib.training.subset import class_balanced_subset


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLGEO_CACHE", str(tmp_path / "cache"))
    data._load_cifar10.cache_clear()
    yield
    data._load_cifar10.cache_clear()


def _check_tree_dataset(ds, images):
    # classes sorted (ant < bird), labels in that order, pixels exact (PNG is lossless)
    assert ds.classes == ("ant", "bird")
    assert ds.x_train.shape == (6, 3, 32, 32) and ds.x_train.dtype == np.uint8
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1] and ds.y_test.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(ds.x_train[3].transpose(1, 2, 0), images[("train", "bird", 0)])
    np.testing.assert_array_equal(ds.x_test[1].transpose(1, 2, 0), images[("test", "ant", 1)])


def test_imagefolder_tree(tiny_tree, monkeypatch):
    tree, images = tiny_tree
    monkeypatch.setenv("SSLGEO_DATA", str(tree))
    _check_tree_dataset(load_dataset("cifar10"), images)


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz")])
def test_tarball_of_tree(tiny_tree, tmp_path, monkeypatch, suffix, mode):
    tree, images = tiny_tree
    tar_path = tmp_path / f"data{suffix}"
    with tarfile.open(tar_path, mode) as tar:
        tar.add(tree, arcname="cifar")  # a leading folder must not matter
    monkeypatch.setenv("SSLGEO_DATA", str(tar_path))
    _check_tree_dataset(load_dataset("cifar10"), images)


def _write_batches(folder, rng):
    folder.mkdir(parents=True)
    x = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        arr = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        x[name] = arr
        with open(folder / name, "wb") as f:
            pickle.dump({"data": arr, "labels": [0, 1, 2, 1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["a", "b", "c"]}, f)
    return x


def test_torchvision_batches_layout(tmp_path, monkeypatch):
    x = _write_batches(tmp_path / "cifar-10-batches-py", np.random.default_rng(1))
    monkeypatch.setenv("SSLGEO_DATA", str(tmp_path))  # the parent folder is accepted too
    ds = load_dataset("cifar10")
    assert ds.classes == ("a", "b", "c") and ds.x_train.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(ds.x_train[4].reshape(-1), x["data_batch_2"][0])
    np.testing.assert_array_equal(ds.x_test.reshape(4, -1), x["test_batch"])


def test_batch_files_that_carry_code_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    _write_batches(folder, np.random.default_rng(2))

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({"data": Evil()}, f)
    monkeypatch.setenv("SSLGEO_DATA", str(folder))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        load_dataset("cifar10")


def test_second_load_reads_the_cache(tiny_tree, monkeypatch):
    tree, images = tiny_tree
    monkeypatch.setenv("SSLGEO_DATA", str(tree))
    load_dataset("cifar10")
    data._load_cifar10.cache_clear()
    monkeypatch.setattr(data, "_decode", lambda source: pytest.fail("decoded twice"))
    _check_tree_dataset(load_dataset("cifar10"), images)


def test_bad_source_names_every_option(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLGEO_DATA", str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10")
    for option in ("cifar-10-batches-py", "ImageFolder", ".tar.gz", "download"):
        assert option in str(err.value)


def test_offline_without_source_names_every_option(monkeypatch):
    monkeypatch.delenv("SSLGEO_DATA", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.CIFAR10", no_network)
    with pytest.raises(FileNotFoundError, match="could not be downloaded.*SSLGEO_DATA"):
        load_dataset("cifar10")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; accepted: cifar10"):
        load_dataset("mnist")


def test_class_balanced_subset():
    labels = np.repeat(np.arange(10), 100)
    idx = class_balanced_subset(labels, 55, seed=3)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 55 and counts.max() - counts.min() <= 1
    assert np.array_equal(idx, class_balanced_subset(labels, 55, seed=3))
    assert not np.array_equal(idx, class_balanced_subset(labels, 55, seed=4))
    assert np.array_equal(class_balanced_subset(labels, 0, seed=0), np.arange(1000))
    with pytest.raises(ValueError, match=">= 0"):
        class_balanced_subset(labels, -1, seed=0)
    with pytest.raises(ValueError, match="only 1,000"):  # never a silent cap
        class_balanced_subset(labels, 1001, seed=0)


def test_real_cifar10(cifar):
    assert cifar.x_train.shape == (50000, 3, 32, 32) and cifar.x_test.shape == (10000, 3, 32, 32)
    assert np.bincount(cifar.y_train).tolist() == [5000] * 10
    assert cifar.classes[0] == "airplane" and cifar.classes[-1] == "truck"
    # per-channel training mean of CIFAR-10 is (0.4914, 0.4822, 0.4465), within JPEG error
    mean = cifar.x_train.mean(axis=(0, 2, 3), dtype=np.float64) / 255
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-3)
