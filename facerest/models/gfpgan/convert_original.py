"""Official GFP-GAN checkpoints (TencentARC/GFPGAN `.pth` files) -> `GFPGANModel` weights.

An official file is a pickled dict holding `params_ema` (the generator's moving average, the one to use) and/or
`params`. `GFPGANModel` keeps the official module names, so the mapping is one-to-one by name; the conversion
is strict: every tensor of the checkpoint is used, every tensor of the model is given, shapes agree, or the error
names the keys. The same reading serves a pretrained StyleGAN2 decoder (`StyleGAN2GeneratorClean`).

    model = convert_original_checkpoint(GFPGAN_V14_URL, GFPGANConfig(**GFPGAN_V14_CONFIG))  # the official v1.4
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ...errors import FacerestError
from ...weights import find_weights
from .configuration_gfpgan import GFPGANConfig
from .modeling_gfpgan import GFPGANModel

GFPGAN_V14_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth"
# The `GFPGANConfig` arguments of the v1.4 checkpoint (the others at their defaults).
GFPGAN_V14_CONFIG = {"out_size": 512, "channel_multiplier": 2}
ORIGINAL_WEIGHT_KEYS = ("params_ema", "params")


class CheckpointError(FacerestError):
    """A checkpoint that cannot be read, or whose tensors do not match the model."""


def read_original_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an official checkpoint: `params_ema`, else `params`, of a `.pth` file (read with
    `weights_only=True`), or all tensors of a `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    # A damaged file surfaces as any of several exception types (zip, pickle, EOF, safetensors header errors).
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None

    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: expected a dict with 'params_ema' or 'params', found a {type(checkpoint).__name__}")
    weight_key = next((key for key in ORIGINAL_WEIGHT_KEYS if key in checkpoint), None)
    if weight_key is None:
        found = ", ".join(repr(key) for key in list(checkpoint)[:10]) or "none"
        raise CheckpointError(f"{path}: has neither 'params_ema' nor 'params' (top-level keys: {found})")
    state_dict = checkpoint[weight_key]
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: '{weight_key}' is a {type(state_dict).__name__}, not a dict of tensors")
    not_tensors = [key for key, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: '{weight_key}' holds non-tensor values under {_some(not_tensors)}")
    return dict(state_dict)


def convert_original_state_dict(
    original: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Map an official state dict onto a model's (`expected`, e.g. `model.state_dict()`), strictly: raise
    `CheckpointError` naming the missing, unexpected and wrongly shaped keys of `source`."""
    missing = sorted(expected.keys() - original.keys())
    unexpected = sorted(original.keys() - expected.keys())
    wrong_shapes = [
        f"{key} (checkpoint {tuple(original[key].shape)}, model {tuple(expected[key].shape)})"
        for key in sorted(expected.keys() & original.keys())
        if original[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_some(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_some(unexpected)}")
    if wrong_shapes:
        problems.append(f"{len(wrong_shapes)} with another shape: {_some(wrong_shapes)}")
    if problems:
        raise CheckpointError(f"{source} does not match the model's weights; keys " + "; ".join(problems))
    return {key: original[key].to(expected[key].dtype) for key in expected}


def original_checkpoint_path(source: str | Path) -> Path:
    """A local checkpoint path as given; a URL through facerest's weight cache (`facerest.weights.find_weights`),
    downloaded the first time."""
    if str(source).startswith(("http://", "https://")):
        return find_weights(str(source).rsplit("/", 1)[-1], url=str(source))
    return Path(source)


def convert_original_checkpoint(source: str | Path, config: GFPGANConfig) -> GFPGANModel:
    """A `GFPGANModel` of `config`, in eval mode, holding the official checkpoint `source` (a path, or a URL fetched
    through the weight cache), converted strictly (`load_original_weights`)."""
    model = GFPGANModel(config).eval()
    load_original_weights(model, original_checkpoint_path(source))
    return model


def load_original_weights(module: nn.Module, path: str | Path) -> None:
    """Load an official checkpoint into `module`, strictly: a `GFPGANModel`, or its `stylegan_decoder` for a
    pretrained StyleGAN2 (an official `StyleGAN2GeneratorClean` `.pth` with `params_ema` or `params`, or a
    safetensors file of the decoder's state dict)."""
    state_dict = convert_original_state_dict(read_original_state_dict(path), module.state_dict(), source=str(path))
    module.load_state_dict(state_dict, strict=True)


def _some(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... ({len(keys) - limit} more)"
