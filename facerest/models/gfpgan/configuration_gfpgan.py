"""GFP-GAN model configuration."""

import math

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# StyleGAN2's feature widths per resolution before `channel_multiplier` and `narrow` (the multiplier applies
# from 64 px up). The official code writes these tables inline in each network's constructor.
STYLEGAN2_BASE_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
OUT_SIZES = tuple(size for size in STYLEGAN2_BASE_CHANNELS if size >= 64)


@strict
class GFPGANConfig(PreTrainedConfig):
    r"""
    Configuration of a [`GFPGANModel`], the GFPGANv1Clean architecture. The defaults are those of the official
    GFPGAN v1.3 and v1.4 checkpoints.

    Args:
        out_size (`int`, defaults to 512):
            Resolution of the input and restored faces: a power of two from 64 to 1024.
        num_style_feat (`int`, defaults to 512):
            Width of the StyleGAN2 latent codes.
        channel_multiplier (`int`, defaults to 2):
            StyleGAN2's channel multiplier for the resolutions from 64 px up.
        narrow (`float`, defaults to 1.0):
            Scales every feature width of the decoder; the U-Net encoder uses half of it.
        sft_half (`bool`, defaults to `True`):
            Channel-Split SFT: modulate only half of the decoder's channels with the encoder's (scale, shift),
            passing the other half through unchanged.
        different_w (`bool`, defaults to `True`):
            Predict one latent code per decoder layer (W+) rather than one code shared by all layers.
        num_mlp (`int`, defaults to 8):
            Depth of StyleGAN2's mapping network (`style_mlp`), used only when `input_is_latent=False`.
        input_is_latent (`bool`, defaults to `True`):
            The encoder's codes are already in StyleGAN2's W space; when `False` they go through the mapping network.

    Example:

    ```python
    >>> from facerest.models.gfpgan import GFPGANConfig, GFPGANModel

    >>> config = GFPGANConfig(out_size=256, channel_multiplier=1)
    >>> model = GFPGANModel(config)
    ```"""

    model_type = "gfpgan"

    out_size: int = 512
    num_style_feat: int = 512
    channel_multiplier: int = 2
    narrow: float | int = 1.0
    sft_half: bool = True
    different_w: bool = True
    num_mlp: int = 8
    input_is_latent: bool = True

    @property
    def log_size(self) -> int:
        return int(math.log2(self.out_size))

    @property
    def num_latents(self) -> int:
        """Number of W+ codes the decoder reads: two style convs and a to-RGB per scale, sharing codes."""
        return 2 * self.log_size - 2

    @property
    def decoder_scales(self) -> list[int]:
        """The resolutions the decoders upsample to, 8 px to `out_size`: one SFT condition and one RGB output each."""
        return [2**i for i in range(3, self.log_size + 1)]

    def decoder_channels(self, size: int) -> int:
        """Feature width of the StyleGAN2 decoder at `size` px (official `StyleGAN2GeneratorClean` table)."""
        multiplier = self.channel_multiplier if size >= 64 else 1
        return int(STYLEGAN2_BASE_CHANNELS[size] * multiplier * self.narrow)

    def encoder_channels(self, size: int) -> int:
        """Feature width of the U-Net encoder at `size` px (official `GFPGANv1Clean` table, half the decoder's)."""
        multiplier = self.channel_multiplier if size >= 64 else 1
        return int(STYLEGAN2_BASE_CHANNELS[size] * multiplier * (self.narrow * 0.5))

    def __post_init__(self, **kwargs):
        self.check_architecture()
        super().__post_init__(**kwargs)

    def check_architecture(self):
        """Raise `ValueError` for a configuration the architecture cannot be built with. (Not a `@strict`
        `validate_*` method: those re-raise as `StrictDataclassClassValidationError`, not a `ValueError`.)"""
        if self.out_size not in OUT_SIZES:
            raise ValueError(f"out_size must be a power of two from 64 to 1024, got {self.out_size}")
        for name in ("num_style_feat", "channel_multiplier"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_mlp < 0:
            raise ValueError(f"num_mlp must be at least 0, got {self.num_mlp}")
        if self.narrow <= 0:
            raise ValueError(f"narrow must be positive, got {self.narrow}")
        # The SFT conditions have the encoder's width (doubled without sft_half) and modulate the decoder's
        # features (half of them with sft_half): both cases need decoder width = 2 x encoder width.
        for size in [4, *self.decoder_scales]:
            encoder, decoder = self.encoder_channels(size), self.decoder_channels(size)
            if encoder < 1 or decoder != 2 * encoder:
                raise ValueError(
                    f"narrow={self.narrow} with channel_multiplier={self.channel_multiplier} gives {decoder} decoder "
                    f"and {encoder} encoder channels at {size} px; the architecture needs at least 1 encoder channel "
                    "and exactly twice as many decoder channels at every scale"
                )


__all__ = ["GFPGANConfig"]
