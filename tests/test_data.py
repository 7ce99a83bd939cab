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
    data._load.cache_clear()
    yield
    data._load.cache_clear()


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
    data._load.cache_clear()
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


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="'mnist' is neither a known dataset \\(cifar10, cifar100, stl10\\) nor an "
                                         "ImageFolder tree .* does not exist"):
        load_dataset("mnist")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="is neither"):
        load_dataset(str(tmp_path / "flat"))  # a folder without train/ and test/


def _png(path, img):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def test_any_image_folder_by_path_with_its_own_classes_sizes_and_balance(tmp_path, monkeypatch):
    """Three classes of unequal size, images of 32 x 32 (kept exactly), 64 x 48 and 40 x 96 (resized on the shorter
    side and centre-cropped): left half red and right half blue stays so; a constant image stays constant."""
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    halves = np.zeros((48, 64, 3), np.uint8)
    halves[:, :32, 0], halves[:, 32:, 2] = 255, 255
    tall = np.full((96, 40, 3), 77, np.uint8)
    _png(tmp_path / "t/train/cat/a.png", exact)
    _png(tmp_path / "t/train/cat/b.png", halves)
    _png(tmp_path / "t/train/cat/c.png", tall)
    _png(tmp_path / "t/train/dog/a.png", tall)
    _png(tmp_path / "t/train/emu/a.png", exact)
    _png(tmp_path / "t/test/dog/a.png", halves)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))
    ds = load_dataset("t")  # relative to where the user is
    assert ds.name == str(tmp_path / "t") and ds.classes == ("cat", "dog", "emu")
    assert ds.x_train.shape == (5, 3, 32, 32) and ds.y_train.tolist() == [0, 0, 0, 1, 2] and ds.y_test.tolist() == [1]
    np.testing.assert_array_equal(ds.x_train[0].transpose(1, 2, 0), exact)
    resized = ds.x_train[1].transpose(1, 2, 0).astype(int)
    assert (resized[:, :12, 0] > 250).all() and (resized[:, :12, 2] < 5).all()
    assert (resized[:, -12:, 2] > 250).all() and (resized[:, -12:, 0] < 5).all()
    assert (ds.x_train[2] == 77).all()
    from sslgeo_lib.config import RunConfig

    assert RunConfig(dataset="t").dataset == str(tmp_path / "t")  # a run names its data by absolute path
    _png(tmp_path / "t/test/yak/a.png", exact)
    data._load.cache_clear()
    with pytest.raises(data.SourceError, match="test/yak/ is a class that .*train/ does not have"):
        load_dataset("t")


def test_cifar100_and_stl10_in_torchvisions_layouts(tmp_path, monkeypatch):
    """Both read from the cache folder where torchvision downloads them (nothing is downloaded when present):
    CIFAR-100's fine labels; STL-10's column-major 96 x 96 images turned upright and resized, labels from 0."""
    root = tmp_path / "cache" / "torchvision"
    rng = np.random.default_rng(2)
    (root / "cifar-100-python").mkdir(parents=True)
    x100 = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    for name, rows in (("train", x100[:4]), ("test", x100[4:])):
        with open(root / "cifar-100-python" / name, "wb") as f:
            pickle.dump({"data": rows, "fine_labels": [5, 0, 99, 5][:len(rows)], "coarse_labels": [0] * len(rows)}, f)
    with open(root / "cifar-100-python" / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    ds = load_dataset("cifar100")
    assert ds.y_train.tolist() == [5, 0, 99, 5] and ds.y_test.tolist() == [5, 0] and len(ds.classes) == 100
    np.testing.assert_array_equal(ds.x_train.reshape(4, -1), x100[:4])

    stl = root / "stl10_binary"
    stl.mkdir()
    upright = np.zeros((96, 96, 3), np.uint8)
    upright[:48] = 200  # the top half bright
    for split, n in (("train", 2), ("test", 1)):
        np.stack([upright.transpose(2, 1, 0)] * n).tofile(stl / f"{split}_X.bin")  # stored (C, W, H)
        np.array([1, 10][:n], np.uint8).tofile(stl / f"{split}_y.bin")
    (stl / "class_names.txt").write_text("\n".join(f"k{i}" for i in range(10)))
    ds = load_dataset("stl10")
    assert ds.x_train.shape == (2, 3, 32, 32) and ds.y_train.tolist() == [0, 9] and ds.y_test.tolist() == [0]
    assert (ds.x_train[0, :, :14] > 190).all() and (ds.x_train[0, :, -14:] < 10).all()
    np.array([1, 10, 3], np.uint8).tofile(stl / "train_y.bin")  # a label more than there are images
    data._load.cache_clear()
    monkeypatch.setenv("SSLGEO_CACHE", str(tmp_path / "cache2"))
    (tmp_path / "cache2").mkdir()
    (tmp_path / "cache2" / "torchvision").symlink_to(root)
    with pytest.raises(data.SourceError, match="train_X.bin and train_y.bin are truncated or do not match"):
        load_dataset("stl10")


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
    unbalanced = np.repeat(np.arange(4), [3, 50, 50, 7])  # small classes give all they have
    idx = class_balanced_subset(unbalanced, 40, seed=0)
    assert len(idx) == 40 and np.bincount(unbalanced[idx]).tolist() == [3, 15, 15, 7]
    idx = class_balanced_subset(unbalanced, 41, seed=0)
    assert len(idx) == 41 and np.bincount(unbalanced[idx]).tolist() == [3, 16, 15, 7]


def test_real_cifar10(cifar):
    assert cifar.x_train.shape == (50000, 3, 32, 32) and cifar.x_test.shape == (10000, 3, 32, 32)
    assert np.bincount(cifar.y_train).tolist() == [5000] * 10
    assert cifar.classes[0] == "airplane" and cifar.classes[-1] == "truck"
    # per-channel training mean of CIFAR-10 is (0.4914, 0.4822, 0.4465), within JPEG error
    mean = cifar.x_train.mean(axis=(0, 2, 3), dtype=np.float64) / 255
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-3)
