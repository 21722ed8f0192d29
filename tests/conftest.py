import os
import socket
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEREST_SHARED", REPO_ROOT.parent / "shared"))


def with_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """``image`` (RGB uint8) with white Gaussian noise of standard deviation ``sigma`` grey levels, rounded and clipped."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def saved_small_and_enlarged(image: np.ndarray, times: float, quality: int) -> np.ndarray:
    """``image`` shrunk ``times`` times, saved as a JPEG of ``quality`` and enlarged back (bicubic), as a photo passed
    around the web is."""
    import io

    import cv2
    from PIL import Image

    height, width = image.shape[:2]
    small = cv2.resize(image, (round(width / times), round(height / times)), interpolation=cv2.INTER_AREA)
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    return cv2.resize(decoded, (width, height), interpolation=cv2.INTER_CUBIC)


def png_claiming(side: int) -> bytes:
    """A PNG of one pixel whose header claims ``side`` x ``side`` pixels: decoding it would fail as truncated, so a
    size check must refuse it first."""
    import io
    import struct
    import zlib

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (1, 1)).save(png, "PNG")
    data = bytearray(png.getvalue())
    header = b"IHDR" + struct.pack(">II", side, side) + bytes(data[24:29])
    data[12:33] = header + struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test naming what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data folder, ../shared, is not beside this checkout)")
    return path


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch) -> Path:
    """Only the project's shared weights are findable: no user caches, no downloads."""
    weights = shared_path("weights")
    monkeypatch.setenv("FACEREST_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "facerest-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return weights


def free_port() -> int:
    """A local TCP port that nothing listens on (bound, then closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """huggingface_hub, in this process, pointed at a local port where nothing listens, with an empty cache: every
    Hub call is refused a connection."""
    import huggingface_hub.constants

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    # File URLs are made from this template (set from the endpoint at import), not from ENDPOINT.
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent_harnesses.json"))
    monkeypatch.setenv("HF_TOKEN", "hf_unused")


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
