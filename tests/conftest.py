import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEREST_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test naming what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data folder, ../shared, is not beside this checkout)")
    return path


@pytest.fixture(scope="session")
def ffhq_test_dir() -> Path:
    return shared_path("data", "ffhq256", "test")


@pytest.fixture(scope="session")
def ffhq_train_dir() -> Path:
    return shared_path("data", "ffhq256", "train")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a small shared machine OpenMP threads mostly wait for each other, and the
    tests' small convolutions run faster on one thread than on two busy cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
