"""GFP-GAN, the GFPGANv1Clean architecture, as a transformers model.

Wang et al., "Towards Real-World Blind Face Restoration with Generative Facial Prior", CVPR 2021. This follows
the official "clean" networks (TencentARC/GFPGAN `gfpganv1_clean_arch.py` and `stylegan2_clean_arch.py`, no
custom CUDA operators) and keeps their module names, so official checkpoints map onto it key for key
(`convert_original.py`):

    degraded face (S px) -> conv_body_first -> conv_body_down (S -> 4 px) -> final_conv -> final_linear -> W+ codes
                                                    | U-Net skips                                          |
    conv_body_up (4 -> S px) -> at each scale: condition_scale / condition_shift -> SFT (scale, shift)    |
                                               toRGB -> intermediate RGB (pyramid loss)                   v
    stylegan_decoder: StyleGAN2 generator from the codes, its features modulated by SFT at every scale -> face
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_gfpgan import GFPGANConfig


@dataclass
class GFPGANOutput(ModelOutput):
    """
    Args:
        image (`torch.FloatTensor` of shape `(batch_size, 3, out_size, out_size)`):
            The restored faces, in [-1, 1] up to the network's overshoot (not clamped).
        intermediate_rgbs (`list[torch.FloatTensor]`, *optional*):
            With `return_rgbs=True`: the U-Net decoder's RGB images at 8, 16, ..., out_size px, coarsest first
            (targets of the image-pyramid loss).
    """

    image: torch.FloatTensor | None = None
    intermediate_rgbs: list[torch.FloatTensor] | None = None


# StyleGAN2 decoder ---------------------------------------------------------------------------------------------


class NormStyleCode(nn.Module):
    """Pixel norm of the style codes: z / sqrt(mean(z^2) + 1e-8) over dim 1."""

    def forward(self, style):
        return style * torch.rsqrt(torch.mean(style**2, dim=1, keepdim=True) + 1e-8)


class MappingLinear(nn.Linear):
    """A layer of StyleGAN2's mapping network (z -> w); its own class only for its initialisation."""


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution, one set of weights per sample:

    modulation:    s = A(w)                                           (affine map of the latent code, one per input channel)
    modulate:      w'[o, i, k] = s[i] * weight[o, i, k]
    demodulate:    w''[o, i, k] = w'[o, i, k] / sqrt(sum_{i, k} w'[o, i, k]^2 + eps)
    With `upsample`, the input is first enlarged 2x bilinearly. `forward` can also scale the result by a constant
    `gain` and add a per-channel `bias`; both are applied to the weights and by the convolution, which is
    cheaper than separate passes over the output.
    """

    def __init__(self, in_channels, out_channels, kernel_size, num_style_feat, demodulate=True, upsample=False, eps=1e-8):
        super().__init__()
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.modulation = nn.Linear(num_style_feat, in_channels)
        self.weight = nn.Parameter(torch.empty(1, out_channels, in_channels, kernel_size, kernel_size))

    def forward(self, hidden_states, style, gain=1.0, bias=None):
        batch, in_channels = hidden_states.shape[:2]
        style = self.modulation(style).view(batch, 1, in_channels, 1, 1)
        weight = self.weight * style  # (batch, out, in, k, k)
        if self.demodulate:
            demodulation = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps) * gain
            weight = weight * demodulation.view(batch, self.out_channels, 1, 1, 1)
        elif gain != 1.0:
            weight = weight * gain
        weight = weight.view(batch * self.out_channels, in_channels, self.kernel_size, self.kernel_size)
        if bias is not None:
            bias = bias.reshape(1, self.out_channels).expand(batch, -1).reshape(-1)

        if self.upsample:
            hidden_states = F.interpolate(hidden_states, scale_factor=2, mode="bilinear", align_corners=False)
        height, width = hidden_states.shape[2:]
        # One grouped convolution applies each sample's own weights, in the memory format of the input.
        channels_last = hidden_states.is_contiguous(memory_format=torch.channels_last)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        hidden_states = hidden_states.reshape(1, batch * in_channels, height, width).contiguous(memory_format=memory_format)
        weight = weight.contiguous(memory_format=memory_format)
        out = F.conv2d(hidden_states, weight, bias, padding=self.kernel_size // 2, groups=batch)
        if batch == 1:
            # Already (1, out, H, W): a view would give the batch dimension another stride, after which
            # F.interpolate no longer sees a channels-last tensor and takes its much slower contiguous path.
            return out
        return out.view(batch, self.out_channels, height, width)


class StyleConv(nn.Module):
    """Modulated 3x3 convolution, noise injection, bias, leaky ReLU:

    out = lrelu(sqrt(2) * modconv(x, w) + weight * noise + bias)
    (sqrt(2) is the official activation gain, folded in here as in the official code.)
    """

    def __init__(self, in_channels, out_channels, num_style_feat, upsample=False):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, 3, num_style_feat, upsample=upsample)
        self.weight = nn.Parameter(torch.empty(1))  # noise strength (official name)
        self.bias = nn.Parameter(torch.empty(1, out_channels, 1, 1))

    def forward(self, hidden_states, style, noise=None):
        out = self.modulated_conv(hidden_states, style, gain=2**0.5, bias=self.bias)
        if noise is None:
            batch, _, height, width = out.shape
            noise = out.new_empty(batch, 1, height, width).normal_()
        # In place: the convolution's output is not needed for its backward pass.
        out = out.add_(self.weight * noise)
        return F.leaky_relu_(out, negative_slope=0.2)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to RGB (not demodulated) plus bias; the previous scale's RGB, upsampled 2x, is added."""

    def __init__(self, in_channels, num_style_feat):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.empty(1, 3, 1, 1))

    def forward(self, hidden_states, style, skip=None):
        out = self.modulated_conv(hidden_states, style, bias=self.bias)
        if skip is not None:
            out = out.add_(F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False))
        return out


class ConstantInput(nn.Module):
    """StyleGAN2's learned 4x4 input."""

    def __init__(self, num_channels, size):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, num_channels, size, size))

    def forward(self, batch_size):
        return self.weight.repeat(batch_size, 1, 1, 1)


class NoiseMaps(nn.Module):
    """The fixed noise maps of the style convs, buffers `noise0`, `noise1`, ...: 4 px for the first, then two per
    scale from 8 px up."""

    def __init__(self, num_layers):
        super().__init__()
        for layer_idx in range(num_layers):
            resolution = 2 ** ((layer_idx + 5) // 2)
            self.register_buffer(f"noise{layer_idx}", torch.empty(1, 1, resolution, resolution))


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2 generator whose features are modulated by Channel-Split SFT after the first conv of each scale.

    Its parameters are exactly those of the official `StyleGAN2GeneratorClean`, so a pretrained StyleGAN2 loads
    into it. The fixed noise maps are buffers (`noises.noise{i}`), used unless fresh noise is asked for.
    """

    def __init__(self, config: GFPGANConfig):
        super().__init__()
        self.sft_half = config.sft_half
        self.num_latents = config.num_latents
        num_style_feat = config.num_style_feat

        # Mapping network z -> w: pixel norm, then num_mlp (linear, leaky ReLU) pairs (official indices).
        mapping_layers = [NormStyleCode()]
        for _ in range(config.num_mlp):
            mapping_layers += [MappingLinear(num_style_feat, num_style_feat), nn.LeakyReLU(negative_slope=0.2)]
        self.style_mlp = nn.Sequential(*mapping_layers)

        channels = config.decoder_channels(4)
        self.constant_input = ConstantInput(channels, size=4)
        self.style_conv1 = StyleConv(channels, channels, num_style_feat)
        self.to_rgb1 = ToRGB(channels, num_style_feat)

        # Per scale 8..out_size: an upsampling style conv, a style conv, a to-RGB.
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channels = channels
        for size in config.decoder_scales:
            out_channels = config.decoder_channels(size)
            self.style_convs.append(StyleConv(in_channels, out_channels, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(out_channels, out_channels, num_style_feat))
            self.to_rgbs.append(ToRGB(out_channels, num_style_feat))
            in_channels = out_channels

        self.num_layers = 2 * len(config.decoder_scales) + 1  # style convs
        self.noises = NoiseMaps(self.num_layers)

    def forward(self, style_code, conditions, input_is_latent=True, randomize_noise=False, memory_format=torch.contiguous_format):
        """
        style_code: (N, num_style_feat), one code for all layers, or (N, num_latents, num_style_feat), W+ codes.
        conditions: one (scale, shift) pair per scale 8..out_size.
        memory_format: of the features, from the constant input on (the convolutions keep their input's).
        """
        if not input_is_latent:
            # As in the official code, W+ codes (N, L, F) are pixel-normed over dim 1, the layer index.
            style_code = self.style_mlp(style_code)
        latents = style_code if style_code.ndim == 3 else style_code.unsqueeze(1).repeat(1, self.num_latents, 1)
        if randomize_noise:
            noises = [None] * self.num_layers
        else:
            noises = [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

        out = self.constant_input(latents.shape[0]).contiguous(memory_format=memory_format)
        out = self.style_conv1(out, latents[:, 0], noise=noises[0])
        skip = self.to_rgb1(out, latents[:, 1])

        # Layer i of scale k: style convs 2k+1 and 2k+2, to-RGB reading latent 2k+3.
        for scale_idx, (scale, shift) in enumerate(conditions):
            i = 2 * scale_idx + 1
            out = self.style_convs[i - 1](out, latents[:, i], noise=noises[i])
            # SFT: features * scale + shift; Channel-Split SFT keeps the first half of the channels as they are.
            if self.sft_half:
                out_same, out_sft = torch.split(out, out.size(1) // 2, dim=1)
                out = torch.cat([out_same, torch.addcmul(shift, out_sft, scale)], dim=1)
            else:
                out = out * scale + shift
            out = self.style_convs[i](out, latents[:, i + 1], noise=noises[i + 1])
            skip = self.to_rgbs[scale_idx](out, latents[:, i + 2], skip)
        return skip


# U-Net degradation removal module -----------------------------------------------------------------------------


class ResBlock(nn.Module):
    """Residual block resizing bilinearly by `scale_factor` (0.5 down, 2 up):

    out = lrelu(conv2(resize(lrelu(conv1(x))))) + skip(resize(x))
    """

    def __init__(self, in_channels, out_channels, scale_factor):
        super().__init__()
        self.scale_factor = scale_factor
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, hidden_states):
        out = F.leaky_relu_(self.conv1(hidden_states), negative_slope=0.2)
        out = F.interpolate(out, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        out = F.leaky_relu_(self.conv2(out), negative_slope=0.2)
        skip = F.interpolate(hidden_states, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return out + self.skip(skip)


def sft_condition_branch(channels, out_channels):
    """Two 3x3 convolutions predicting one SFT parameter (scale or shift) from the U-Net's features."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


class GFPGANModel(PreTrainedModel):
    """GFP-GAN generator (GFPGANv1Clean): restores an aligned face with a StyleGAN2 prior.

    `forward` is deterministic by default, using the fixed noise buffers (the official `randomize_noise=False`);
    `randomize_noise=True` draws fresh noise, as in training.
    """

    config_class = GFPGANConfig
    base_model_prefix = "gfpgan"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: GFPGANConfig):
        super().__init__(config)
        channels = {size: config.encoder_channels(size) for size in [4, *config.decoder_scales]}
        scales = config.decoder_scales  # 8 .. out_size

        # U-Net encoder: out_size -> 4 px.
        self.conv_body_first = nn.Conv2d(3, channels[config.out_size], 1)
        self.conv_body_down = nn.ModuleList(ResBlock(channels[size], channels[size // 2], 0.5) for size in reversed(scales))
        self.final_conv = nn.Conv2d(channels[4], channels[4], 3, 1, 1)

        # U-Net decoder: 4 px -> out_size, with an RGB image and SFT conditions at each scale.
        self.conv_body_up = nn.ModuleList(ResBlock(channels[size // 2], channels[size], 2) for size in scales)
        self.toRGB = nn.ModuleList(nn.Conv2d(channels[size], 3, 1) for size in scales)
        sft_channels = {size: channels[size] if config.sft_half else 2 * channels[size] for size in scales}
        self.condition_scale = nn.ModuleList(sft_condition_branch(channels[size], sft_channels[size]) for size in scales)
        self.condition_shift = nn.ModuleList(sft_condition_branch(channels[size], sft_channels[size]) for size in scales)

        # 4x4 features -> latent codes: one per decoder layer (W+) with different_w, else one shared.
        num_codes = config.num_latents if config.different_w else 1
        self.final_linear = nn.Linear(channels[4] * 4 * 4, num_codes * config.num_style_feat)

        self.stylegan_decoder = StyleGAN2GeneratorCSFT(config)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        """The official initialisation. (transformers skips modules without parameters or buffers of their own in
        custom models, hence the small classes that carry each rule.)"""
        if isinstance(module, MappingLinear):
            init.kaiming_normal_(module.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()  # PyTorch's default, as in the official code
        elif isinstance(module, ModulatedConv2d):
            # weight ~ N(0, 1 / fan_in); the modulation starts near identity (bias 1).
            fan_in = module.weight[0, 0].numel()  # in_channels * kernel_size^2
            init.normal_(module.weight, std=fan_in**-0.5)
            init.kaiming_normal_(module.modulation.weight, a=0, mode="fan_in", nonlinearity="linear")
            init.constant_(module.modulation.bias, 1.0)
        elif isinstance(module, StyleConv):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, ToRGB):
            init.zeros_(module.bias)
        elif isinstance(module, ConstantInput):
            init.normal_(module.weight)
        elif isinstance(module, NoiseMaps):
            for noise in module.buffers():
                init.normal_(noise)

    def forward(self, pixel_values: torch.Tensor, return_rgbs: bool = False, randomize_noise: bool = False) -> GFPGANOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, out_size, out_size)`):
            Degraded aligned faces in [-1, 1].
        return_rgbs (`bool`, defaults to `False`):
            Also return the U-Net decoder's RGB image at each scale (for the image-pyramid loss).
        randomize_noise (`bool`, defaults to `False`):
            Draw fresh noise for StyleGAN2's noise injection instead of using the fixed noise buffers.
        """
        size = self.config.out_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(f"GFPGANModel expects images of shape (N, 3, {size}, {size}), got {tuple(pixel_values.shape)}")

        # CPU convolutions and resizing run faster on channels-last tensors (BENCHMARKS.md); the result is the same.
        memory_format = torch.channels_last if pixel_values.device.type == "cpu" else torch.contiguous_format
        pixel_values = pixel_values.contiguous(memory_format=memory_format)

        # Encoder, keeping each scale's features for the U-Net skips (4 px first).
        feat = F.leaky_relu_(self.conv_body_first(pixel_values), negative_slope=0.2)
        unet_skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            unet_skips.insert(0, feat)
        feat = F.leaky_relu_(self.final_conv(feat), negative_slope=0.2)

        style_code = self.final_linear(feat.flatten(1))
        if self.config.different_w:
            style_code = style_code.view(style_code.size(0), -1, self.config.num_style_feat)

        # Decoder: upsample with the skips; each scale's features give the SFT (scale, shift) and an RGB image.
        conditions, rgbs = [], []
        for skip, block, to_scale, to_shift, to_rgb in zip(
            unet_skips, self.conv_body_up, self.condition_scale, self.condition_shift, self.toRGB
        ):
            feat = block(feat + skip)
            conditions.append((to_scale(feat), to_shift(feat)))
            if return_rgbs:
                rgbs.append(to_rgb(feat))

        image = self.stylegan_decoder(
            style_code,
            conditions,
            input_is_latent=self.config.input_is_latent,
            randomize_noise=randomize_noise,
            memory_format=memory_format,
        )
        rgbs = [rgb.contiguous() for rgb in rgbs]
        return GFPGANOutput(image=image.contiguous(), intermediate_rgbs=rgbs if return_rgbs else None)


__all__ = ["GFPGANModel", "GFPGANOutput"]
