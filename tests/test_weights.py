import pytest

from facerest.weights import MissingWeightsError, find_weights


def test_finds_file_in_weights_dir_subfolder(tmp_path, monkeypatch):
    (tmp_path / "niqe").mkdir()
    (tmp_path / "niqe" / "params.npz").write_bytes(b"x")
    monkeypatch.setenv("FACEREST_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "cache"))
    assert find_weights("params.npz") == tmp_path / "niqe" / "params.npz"


def test_explicit_path_wins(tmp_path, monkeypatch):
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "cache"))
    assert find_weights("other.pth", explicit=explicit) == explicit


def test_missing_offline_names_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREST_WEIGHTS_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as info:
        find_weights("net.pth", url="https://example.invalid/net.pth")
    message = str(info.value)
    assert "net.pth" in message and str(tmp_path / "a") in message and str(tmp_path / "cache") in message
    assert "offline" in message
