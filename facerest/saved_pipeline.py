"""The files of a saved `FaceRestorePipeline`: where its folder is (a local folder or a Hub repository's snapshot) and
whether each file it needs is there and readable, checked before any model is built so that a missing or broken file
gives one error naming it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .errors import FacerestError, one_line

# Component folder -> (its config file, its weights file or None); as diffusers and transformers save them.
SAVED_COMPONENT_FILES = {
    "restorer": ("config.json", "model.safetensors"),
    "unet": ("config.json", "diffusion_pytorch_model.safetensors"),
    "scheduler": ("scheduler_config.json", None),
}
# Arguments of `from_pretrained` that only concern fetching a Hub repository.
DOWNLOAD_ARGUMENTS = ("revision", "token", "cache_dir", "force_download", "local_files_only")


def pipeline_folder(name_or_path: str | os.PathLike, download: dict) -> Path:
    """The pipeline's folder: ``name_or_path`` itself, or the snapshot of the Hub repository of that name.

    (diffusers' own download refuses components whose module is not a diffusers or transformers one, as here.)
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise FacerestError(f"{path} is a file; a saved pipeline is a folder holding model_index.json")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(str(name_or_path))
    except HFValidationError:
        raise FacerestError(f"model folder not found: {name_or_path}") from None
    patterns = ["model_index.json", "*/*.json", "*/*.safetensors"]
    try:
        return Path(snapshot_download(str(name_or_path), allow_patterns=patterns, **download))
    except Exception as error:  # network, authorisation and offline-cache errors come in many types
        raise FacerestError(
            f"model {name_or_path!r} is neither a local folder nor a Hub repository that could be fetched: "
            f"{one_line(error)}"
        ) from None


def check_saved_pipeline(folder: str | os.PathLike, variant: str | None = None) -> dict[str, str]:
    """Return the components a saved pipeline holds, `{folder name: class name}`; raise a `FacerestError` naming the
    file when the index, a config or a weights file is missing or unreadable (safetensors headers are parsed: that
    finds truncated and non-safetensors files), or when the index names no model."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacerestError(f"{folder} is not a folder")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise FacerestError(f"{folder} is not a saved FaceRestorePipeline: {index_path.name} not found")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FacerestError(f"{index_path}: not valid JSON ({error})") from None
    if not isinstance(index, dict):
        raise FacerestError(f"{index_path}: not a pipeline index")
    components = {  # an absent optional component is saved as [null, null]
        name: entry[1]
        for name in SAVED_COMPONENT_FILES
        if isinstance(entry := index.get(name), list) and len(entry) == 2 and entry[0] is not None
    }
    if "restorer" not in components and "unet" not in components:
        raise FacerestError(f"{index_path} names no model component (restorer or unet)")
    for component in components:
        config_name, weights_name = SAVED_COMPONENT_FILES[component]
        config_path = folder / component / config_name
        if not config_path.is_file():
            raise FacerestError(f"missing file {config_path}")
        if weights_name is not None:
            for weights_path in _weights_files(folder / component, weights_name, variant):
                _check_safetensors(weights_path)
    return components


def _weights_files(component_folder: Path, weights_name: str, variant: str | None) -> list[Path]:
    """The weights file of a component, or its shards when it was saved sharded (with an index)."""
    if variant is not None:
        stem, extension = weights_name.rsplit(".", 1)
        weights_name = f"{stem}.{variant}.{extension}"
    shard_index = component_folder / f"{weights_name}.index.json"
    if not shard_index.is_file():
        return [component_folder / weights_name]
    try:
        shards = sorted(set(json.loads(shard_index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError) as error:
        raise FacerestError(f"{shard_index}: not a shard index ({error})") from None
    return [component_folder / shard for shard in shards]


def _check_safetensors(path: Path) -> None:
    if not path.is_file():
        raise FacerestError(f"missing weights file {path}")
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as error:
        raise FacerestError(f"corrupt weights file {path}: {error}") from None
