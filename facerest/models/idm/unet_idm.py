"""Ready-made `diffusers.UNet2DModel` configurations for the IDM denoiser `f_theta(x_d, x_t, gamma)`.

The UNet sees the noisy target concatenated with the degraded face (`in_channels=6`) and predicts 3 channels (the
noise, the clean face or its difference from the degraded one, see `IDMScheduler.prediction_type`). Every
configuration goes down to 8x8, and the blocks working at 32x32, 16x16 and 8x8 (and the middle block) carry
self-attention, as in SR3 / IDM. The noise level enters through the timestep input, as
`IDMScheduler.model_timestep(gamma)`. `deepen_unet` makes a trained UNet one layer per block deeper without
changing what it computes; `redraw_full_resolution_layers` draws afresh the layers that see the face at its own pixels.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DModel

# Channels per resolution level, from the input resolution down to 8x8.
IDM_UNET_BLOCK_OUT_CHANNELS = {
    64: (64, 128, 256, 256),  # 64, 32, 16, 8
    128: (64, 128, 256, 256, 512),  # 128 .. 8
    256: (64, 128, 128, 256, 256, 512),  # 256 .. 8
    512: (32, 64, 128, 128, 256, 256, 512),  # 512 .. 8
}

# Self-attention at these feature-map sizes (in pixels per side).
ATTENTION_RESOLUTIONS = (32, 16, 8)


def idm_unet_config(resolution: int, **overrides: Any) -> dict[str, Any]:
    """
    The `UNet2DModel` keyword arguments of the IDM denoiser for square faces of `resolution` pixels.

    `resolution` is one of 64, 128, 256 or 512, unless `block_out_channels` is given in `overrides` (for tiny test
    models, say). The block types follow from the resolution and the number of levels (attention at 32x32 to 8x8)
    unless they are overridden too. Any other `UNet2DModel` argument may be overridden.
    """
    block_out_channels = overrides.get("block_out_channels", IDM_UNET_BLOCK_OUT_CHANNELS.get(resolution))
    if block_out_channels is None:
        raise ValueError(
            f"no ready-made IDM UNet for {resolution} px (have {sorted(IDM_UNET_BLOCK_OUT_CHANNELS)}); "
            "pass block_out_channels to build another one"
        )
    num_levels = len(block_out_channels)
    if resolution < 1 or resolution % 2 ** (num_levels - 1):
        raise ValueError(f"resolution {resolution} cannot be halved {num_levels - 1} times, once per level")

    level_resolutions = [resolution // 2**level for level in range(num_levels)]
    attention = [size in ATTENTION_RESOLUTIONS for size in level_resolutions]
    config = {
        "sample_size": resolution,
        "in_channels": 6,  # noisy target x_t ++ degraded face x_d
        "out_channels": 3,
        "block_out_channels": tuple(block_out_channels),
        "down_block_types": tuple("AttnDownBlock2D" if attn else "DownBlock2D" for attn in attention),
        "up_block_types": tuple("AttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(attention)),
        "layers_per_block": 2,
        "attention_head_dim": 32,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }
    config.update(overrides)
    return config


def make_idm_unet(resolution: int, **overrides: Any) -> UNet2DModel:
    """A freshly initialised IDM denoiser, see [`idm_unet_config`]."""
    return UNet2DModel(**idm_unet_config(resolution, **overrides))


def deepen_unet(unet: UNet2DModel) -> UNet2DModel:
    """A UNet with one more layer per block (``layers_per_block`` + 1) that computes exactly what ``unet`` computes,
    to fine-tune with more capacity from where ``unet`` stands.

    Each down block gets a new last resnet (and attention) that passes its input through: its output convolution
    (and the attention's output projection) starts at zero. Its skip connection then repeats the one before it, so
    each up block keeps the old first resnet for that repeated skip and gets a new second one, fed the old first
    one's skip, that passes the hidden state through its 1x1 shortcut and ignores the skip; the old later resnets
    follow. New layers' other weights keep their fresh initialisation (they take effect as training moves the zeros).
    """
    deeper = UNet2DModel.from_config({**unet.config, "layers_per_block": unet.config.layers_per_block + 1})
    old_weights = {_name_in_deeper_unet(name): value for name, value in unet.state_dict().items()}
    weights = deeper.state_dict()
    for name, value in weights.items():
        if name in old_weights:
            weights[name] = old_weights[name].clone()
        elif ".conv2." in name or ".conv_shortcut." in name or ".to_out." in name:
            weights[name] = torch.zeros_like(value)
    for block, up_block in enumerate(deeper.up_blocks):
        channels = up_block.resnets[1].out_channels
        weights[f"up_blocks.{block}.resnets.1.conv_shortcut.weight"][:, :channels, 0, 0] = torch.eye(channels)
    deeper.load_state_dict(weights)
    return deeper if unet.dtype == deeper.dtype else deeper.to(unet.dtype)


def average_unets(unets: list[UNet2DModel]) -> UNet2DModel:
    """A UNet whose weights are the mean of ``unets``' (a "model soup": fine-tunes of one model, averaged), in the
    first one's dtype. The UNets must share one configuration."""
    first = unets[0]
    for unet in unets[1:]:
        if _architecture(unet) != _architecture(first):
            raise ValueError("the UNets differ in configuration: only fine-tunes of one model can be averaged")
    states = [unet.state_dict() for unet in unets]
    mean = {name: sum(state[name].double() for state in states) / len(states) for name in states[0]}
    averaged = UNet2DModel.from_config(first.config)
    averaged.load_state_dict(mean)
    return averaged if averaged.dtype == first.dtype else averaged.to(first.dtype)


def redraw_full_resolution_layers(unet: UNet2DModel, seed: int = 0) -> list[str]:
    """Draw afresh, in place, the weights of every layer that works at the input's resolution (the input convolution,
    the first down block's resnets, the last up block and the output head) from a fresh UNet's initialisation drawn
    with `seed`, keeping the rest; returns the names of the redrawn weights.

    For fine-tuning on a kind of pixel-level degradation that a trained UNet has learnt to leave alone (noise at the
    face's own pixels for the shipped default): docs/experiments.md ("Stage from redrawn full-resolution layers")
    measures both, as they stand and redrawn.
    """
    last_up_block = f"up_blocks.{len(unet.up_blocks) - 1}."
    prefixes = ("conv_in.", "down_blocks.0.resnets.", last_up_block, "conv_norm_out.", "conv_out.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = UNet2DModel.from_config(unet.config).state_dict()
    weights = unet.state_dict()
    redrawn = [name for name in weights if name.startswith(prefixes)]
    unet.load_state_dict({**weights, **{name: fresh[name].to(weights[name].dtype) for name in redrawn}})
    return redrawn


def _architecture(unet: UNet2DModel) -> dict:
    """The UNet's configuration without the keys that say where it came from (``_name_or_path`` and the like)."""
    return {key: value for key, value in unet.config.items() if not key.startswith("_")}


def _name_in_deeper_unet(name: str) -> str:
    """The name of ``deepen_unet``'s copy of a weight: layer i > 0 of an up block moves to i + 1."""
    parts = name.split(".")
    if parts[0] == "up_blocks" and parts[2] in ("resnets", "attentions") and int(parts[3]) > 0:
        parts[3] = str(int(parts[3]) + 1)
    return ".".join(parts)
