"""The discriminators of GFP-GAN training.

- ``StyleGAN2Discriminator``: the global discriminator (Karras et al., 2020, residual architecture with
  equalised learning rate, FIR-filtered downsampling and a minibatch standard-deviation layer), with the
  channel widths of GFP-GAN's StyleGAN2 decoder;
- ``FacialComponentDiscriminator``: GFP-GAN's small VGG-style discriminator for one facial component
  (left eye, right eye or mouth), returning its intermediate features for the component style loss;
- ``FacialComponentDiscriminators``: the three of them, one forward for all crops.

Layer for layer these follow GFP-GAN's training networks (basicsr ``StyleGAN2Discriminator`` and
``FacialComponentDiscriminator``), written with plain PyTorch operators instead of compiled upfirdn2d.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

FACIAL_COMPONENTS = ("left_eye", "right_eye", "mouth")

# Channels per feature-map size, as in the StyleGAN2 decoder: scaled by channel_multiplier above 32 px, by narrow everywhere.
BASE_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def discriminator_channels(size: int, channel_multiplier: float, narrow: float) -> int:
    multiplier = channel_multiplier if size >= 64 else 1
    return int(BASE_CHANNELS[size] * multiplier * narrow)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate: weights drawn from N(0, 1) and scaled by 1/sqrt(fan_in) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = 1 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class BiasedLeakyReLU(nn.Module):
    """StyleGAN2's fused activation: leaky_relu(x + b, 0.2) * sqrt(2), the gain keeping unit variance."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.view(1, -1, *([1] * (x.ndim - 2)))
        return F.leaky_relu(x + bias, 0.2) * math.sqrt(2)


class ScaledLeakyReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class FIRBlur(nn.Module):
    """Low-pass FIR filter (outer product of ``kernel_1d``, normalised to sum 1) with asymmetric zero padding."""

    def __init__(self, padding: tuple[int, int], kernel_1d: tuple[int, ...] = (1, 3, 3, 1)):
        super().__init__()
        kernel = torch.tensor(kernel_1d, dtype=torch.float32)
        kernel = kernel[:, None] * kernel[None, :]
        self.register_buffer("kernel", kernel / kernel.sum(), persistent=False)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.padding[0], self.padding[1], self.padding[0], self.padding[1]))
        weight = self.kernel.to(x.dtype).expand(channels, 1, *self.kernel.shape)
        return F.conv2d(x, weight, groups=channels)


class ConvLayer(nn.Sequential):
    """[FIR blur ->] equalised conv (stride 2 when downsampling) [-> activation]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False, bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            # Blur, then a stride-2 conv without padding: the padding of upfirdn2d(down=2) for a 4-tap kernel.
            total_padding = (4 - 2) + (kernel_size - 1)
            layers.append(FIRBlur(((total_padding + 1) // 2, total_padding // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(BiasedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual downsampling block: (conv3x3 -> conv3x3/2 + conv1x1/2 skip) / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2's residual discriminator: an image (N, 3, S, S) in [-1, 1] to one realness logit per image."""

    def __init__(self, out_size: int, channel_multiplier: float = 2, narrow: float = 1.0, stddev_group: int = 4):
        super().__init__()
        if out_size not in BASE_CHANNELS or out_size < 8:
            raise ValueError(f"StyleGAN2Discriminator: out_size must be a power of two from 8 to 1024, got {out_size}")
        channels = {size: discriminator_channels(size, channel_multiplier, narrow) for size in BASE_CHANNELS}
        blocks: list[nn.Module] = [ConvLayer(3, channels[out_size], 1)]
        size = out_size
        while size > 4:
            blocks.append(ResBlock(channels[size], channels[size // 2]))
            size //= 2
        self.conv_body = nn.Sequential(*blocks)
        self.final_conv = ConvLayer(channels[4] + 1, channels[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 4 * 4, channels[4]), BiasedLeakyReLU(channels[4]), EqualLinear(channels[4], 1)
        )
        self.stddev_group = stddev_group

    def minibatch_stddev(self, features: torch.Tensor) -> torch.Tensor:
        """Append the feature standard deviation over groups of samples as one extra channel."""
        batch, channels, height, width = features.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            raise ValueError(f"StyleGAN2Discriminator: batch size {batch} must be a multiple of the stddev group {group}")
        grouped = features.view(group, -1, channels, height, width)
        stddev = torch.sqrt(grouped.var(0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # one value per sub-batch
        stddev = stddev.view(-1, 1, 1, 1).repeat(group, 1, height, width)
        return torch.cat([features, stddev], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.final_conv(self.minibatch_stddev(self.conv_body(images)))
        return self.final_linear(features.flatten(1))


class FacialComponentDiscriminator(nn.Module):
    """GFP-GAN's discriminator for one facial component crop; returns (logit map, [mid features, deep features])."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 64, 3)
        self.conv2 = ConvLayer(64, 128, 3, downsample=True)
        self.conv3 = ConvLayer(128, 128, 3)
        self.conv4 = ConvLayer(128, 256, 3, downsample=True)
        self.conv5 = ConvLayer(256, 256, 3)
        self.final_conv = ConvLayer(256, 1, 3, activate=False)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        mid_features = self.conv3(self.conv2(self.conv1(crops)))
        deep_features = self.conv5(self.conv4(mid_features))
        return self.final_conv(deep_features), [mid_features, deep_features]


class FacialComponentDiscriminators(nn.Module):
    """One ``FacialComponentDiscriminator`` per component; the forward takes and returns dicts keyed by component."""

    def __init__(self):
        super().__init__()
        self.discriminators = nn.ModuleDict({name: FacialComponentDiscriminator() for name in FACIAL_COMPONENTS})

    def forward(self, crops: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, list[torch.Tensor]]]:
        return {name: self.discriminators[name](crops[name]) for name in FACIAL_COMPONENTS}
