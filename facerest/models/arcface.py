"""The ArcFace face-recognition network GFP-GAN uses for its identity loss, and facerest for the identity metric.

A ResNet-18 with improved residual ("IR") blocks on 128 x 128 grayscale faces, giving 512-d embeddings: basicsr's
``ResNetArcFace(block="IRBlock", layers=[2, 2, 2, 2], use_se=False)``. Module names match that class, so GFP-GAN's
``arcface_resnet18.pth`` loads strictly.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..weights import find_weights

ARCFACE_FILENAME = "arcface_resnet18.pth"
ARCFACE_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth"

# ITU-R 601 luma weights, as GFP-GAN's gray_resize_for_identity.
_LUMA = (0.2989, 0.5870, 0.1140)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class IRBlock(nn.Module):
    """Improved residual block: BN -> conv -> BN -> PReLU -> conv (strided) -> BN, plus the shortcut, then PReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, in_channels)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.prelu = nn.PReLU()
        self.conv2 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + shortcut)


class ArcFaceResNet18(nn.Module):
    """ArcFace ResNet-IR18: (N, 1, 128, 128) grayscale faces in [-1, 1] -> (N, 512) embeddings.

    Use ``prepare_input`` to turn aligned RGB faces of any size into the network's input, and
    ``from_pretrained`` to load GFP-GAN's weights.
    """

    input_size = 128

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.layer1 = self._make_layer(64, 64, stride=1)
        self.layer2 = self._make_layer(64, 128, stride=2)
        self.layer3 = self._make_layer(128, 256, stride=2)
        self.layer4 = self._make_layer(256, 512, stride=2)
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout()
        self.fc5 = nn.Linear(512 * 8 * 8, 512)
        self.bn5 = nn.BatchNorm1d(512)
        self._init_weights()

    @staticmethod
    def _make_layer(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
        return nn.Sequential(IRBlock(in_channels, out_channels, stride), IRBlock(out_channels, out_channels))

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @classmethod
    def prepare_input(cls, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [-1, 1] -> (N, 1, 128, 128) gray: luma, then bilinear resize (GFP-GAN's recipe)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images of shape (N, 3, H, W), got {tuple(images.shape)}")
        weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
        gray = (images * weights).sum(dim=1, keepdim=True)
        return F.interpolate(gray, size=(cls.input_size, cls.input_size), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, extra_dirs: tuple[os.PathLike, ...] = ()
    ) -> "ArcFaceResNet18":
        """GFP-GAN's ``arcface_resnet18.pth``, found by ``facerest.weights.find_weights``, in eval mode.

        ``path`` is the file or a folder holding it; without it the usual places are searched and, when allowed,
        the file is downloaded from GFP-GAN's release. Raises ``MissingWeightsError`` naming the places looked in.
        """
        weights_path = find_weights(ARCFACE_FILENAME, url=ARCFACE_URL, explicit=path, extra_dirs=tuple(extra_dirs))
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
        for key in ("params_ema", "params"):  # basicsr training checkpoints wrap the weights
            if isinstance(state_dict, dict) and key in state_dict:
                state_dict = state_dict[key]
                break
        state_dict = {name.removeprefix("module."): tensor for name, tensor in state_dict.items()}
        model = cls()
        model.load_state_dict(state_dict, strict=True)
        return model.eval()
