import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # in this process only: notebook kernels keep their inline backend
ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # Tests never write into the user's run store.
    if "SSLGEO_RUNS_TEST" not in os.environ:
        import tempfile

        os.environ["SSLGEO_RUNS_TEST"] = tempfile.mkdtemp(prefix="sslgeo-runs-")
    os.environ["SSLGEO_RUNS"] = os.environ["SSLGEO_RUNS_TEST"]


@pytest.fixture(scope="session")
def cifar():
    """The real CIFAR-10 (from $SSLGEO_DATA or the cache); skipped where none can be found."""
    from sslgeo_lib.data import load_dataset

    try:
        return load_dataset("cifar10")
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"CIFAR-10 not available: {exc}")


@pytest.fixture
def tiny_tree(tmp_path):
    """An ImageFolder tree with 2 classes x (3 train, 2 test) PNGs of known pixels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = {}
    for split, n in (("train", 3), ("test", 2)):
        for c in ("bird", "ant"):
            (tmp_path / "tree" / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(tmp_path / "tree" / split / c / f"{i:04d}.png")
                images[(split, c, i)] = img
    return tmp_path / "tree", images


@pytest.fixture
def isolated_store(tmp_path, monkeypatch):
    """A fresh, empty run store for one test."""
    monkeypatch.setenv("SSLGEO_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


# --- the book, built once per test session with the smoke preset (test_book, test_browser) ---------------------

@pytest.fixture(scope="session")
def book_config(tmp_path_factory):
    """The book's _config.yml with notebook execution cached in a temporary folder."""
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    folder = tmp_path_factory.mktemp("config")
    cfg["execute"] |= {"execute_notebooks": "cache", "cache": str(folder / "jupyter_cache")}
    # paths the book's own config gives relative to the book root, made absolute for a config read from elsewhere
    cfg["bibtex_bibfiles"] = [str(ROOT / f) for f in cfg["bibtex_bibfiles"]]
    cfg["sphinx"]["config"]["html_static_path"] = [str(ROOT / f) for f in cfg["sphinx"]["config"]["html_static_path"]]
    (folder / "_config.yml").write_text(yaml.safe_dump(cfg))
    return folder / "_config.yml"


def _build_book(out: Path, config: Path, *options: str) -> Path:
    env = {**os.environ, "SSLGEO_PRESET": "smoke"}
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT), "-W", "-n", "--keep-going",
           "--path-output", str(out), "--config", str(config), *options]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return out / "_build" / "html" / "book"


@pytest.fixture(scope="session")
def html(cifar, book_config, tmp_path_factory):
    return _build_book(tmp_path_factory.mktemp("book"), book_config)


@pytest.fixture(scope="session")
def book_glue(html, book_config):
    """Every page's glued values from that one smoke build (read from its jupyter-cache, so no notebook runs
    again): {notebook file name: {key: value}}."""
    from jupyter_cache import get_cache

    from sslgeo_lib.report import read_glue

    cache = get_cache(str(book_config.parent / "jupyter_cache"))
    out = {}
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        record = cache.match_cache_file(str(notebook))
        out[notebook.name] = read_glue(cache.get_cache_bundle(record.pk).nb)
    return out


@pytest.fixture(scope="session")
def core_html(html, book_config, tmp_path_factory):
    return _build_book(tmp_path_factory.mktemp("core"), book_config, "--toc", str(ROOT / "_toc_core.yml"))


