"""Finding third-party weight files (NIQE parameters, Inception, AlexNet, VGG, ArcFace, RetinaFace).

A file is looked for, in this order:
1. the path given explicitly (a file, or a folder holding the file);
2. each folder in ``$FACEREST_WEIGHTS_DIR`` (``os.pathsep``-separated), and one level of sub-folders;
3. the extra folders a caller names (for example torchvision's hub cache);
4. facerest's cache, ``$FACEREST_CACHE`` or ``~/.cache/facerest``;
5. a download from the file's URL into that cache, unless ``HF_HUB_OFFLINE=1`` or ``FACEREST_OFFLINE=1``.
When all fail, ``MissingWeightsError`` names the file and every place it looked.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import FacerestError


class MissingWeightsError(FacerestError):
    def __init__(self, filename: str, looked_in: list[Path], download_note: str, needed_by: str | None = None):
        self.filename = filename
        self.looked_in = looked_in
        self.download_note = download_note
        places = ", ".join(str(p) for p in looked_in) or "nowhere"
        needs = f"{needed_by} needs" if needed_by else "needs"
        super().__init__(f"{needs} {filename}; looked in: {places}; {download_note}")


def cache_dir() -> Path:
    return Path(os.environ.get("FACEREST_CACHE", Path.home() / ".cache" / "facerest"))


def torch_hub_checkpoints_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def is_offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "FACEREST_OFFLINE"))


def find_weights(
    filename: str,
    url: str | None = None,
    explicit: str | os.PathLike | None = None,
    extra_dirs: tuple[Path, ...] = (),
) -> Path:
    """Return the path of ``filename``, downloading it from ``url`` when allowed (see module docstring)."""
    looked_in: list[Path] = []
    if explicit is not None:
        explicit = Path(explicit)
        if explicit.is_file():
            return explicit
        looked_in.append(explicit)
        if (explicit / filename).is_file():
            return explicit / filename
    env_dirs = [Path(p) for p in os.environ.get("FACEREST_WEIGHTS_DIR", "").split(os.pathsep) if p]
    for folder in [*env_dirs, *extra_dirs, cache_dir()]:
        looked_in.append(folder)
        candidates = [folder / filename, *sorted(folder.glob(f"*/{filename}"))] if folder.is_dir() else []
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    if url is None:
        raise MissingWeightsError(filename, looked_in, "no download URL is known for it")
    if is_offline():
        raise MissingWeightsError(filename, looked_in, f"offline mode is on, so it was not downloaded from {url}")
    return _download(url, filename, looked_in)


def _download(url: str, filename: str, looked_in: list[Path]) -> Path:
    import torch

    target = cache_dir() / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=True)
    except Exception as error:  # network errors come in many types (URLError, HTTPError, timeouts, SSL)
        partial.unlink(missing_ok=True)
        raise MissingWeightsError(filename, looked_in, f"downloading {url} failed: {error}") from None
    partial.replace(target)
    return target
