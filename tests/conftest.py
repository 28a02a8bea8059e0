import os

import numpy as np
import pytest

# Keep tests single-threaded per worker: pytest-xdist already uses both cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where a GPU is (``make gpu-check``); elsewhere they are skipped."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (make gpu-check)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def datasets_dir(tmp_path, monkeypatch):
    """An empty $DETECTRON2_DATASETS for one test."""
    root = tmp_path / "datasets"
    root.mkdir()
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic benchmark, generated once per test worker."""
    from vltseg_d2.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic_datasets")
    generate(root, num_train=24, num_val=8, height=96, width=192, seed=0, nproc=1)
    return root


@pytest.fixture
def use_synthetic(synthetic_root, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(synthetic_root))
    return synthetic_root


@pytest.fixture
def rng():
    return np.random.default_rng(0)
