"""VGG19 perceptual and style losses (Johnson et al., 2016; Gatys et al., 2016) as used by GFP-GAN.

Features are taken before the ReLUs (``conv1_2`` ... ``conv5_4``) of torchvision's ImageNet VGG19
(``vgg19-dcbb9e9d.pth``), on images mapped from [-1, 1] to [0, 1] and normalised with the ImageNet mean
and std. Perceptual loss: sum_l w_l |phi_l(y_hat) - phi_l(x)|_1; style loss: sum_l w_l |G(phi_l(y_hat)) - G(phi_l(x))|_1.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from ..models.arcface import ArcFaceResNet18
from ..weights import find_weights, torch_hub_checkpoints_dir
from .losses import gram_matrix

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"

# The layers of torchvision's ``vgg19().features``, in order.
VGG19_LAYER_NAMES = [
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
]  # fmt: skip

# Output channels of VGG19's convolutions ("M": 2x2 max-pooling), torchvision's configuration "E".
VGG19_CONFIGURATION = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]

# GFP-GAN's published layer weights (train_gfpgan_v1.yml).
GFPGAN_LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_vgg19_state_dict(weights: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The ``features`` part of torchvision's ImageNet VGG19 weights, keys without the ``features.`` prefix.

    Read from ``weights`` (a file or folder), else the usual places (see ``facerest.weights``, torch hub's
    checkpoint cache included). Raises ``MissingWeightsError`` naming the file when it cannot be found.
    """
    path = find_weights(VGG19_FILENAME, url=VGG19_URL, explicit=weights, extra_dirs=(torch_hub_checkpoints_dir(),))
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return {key.removeprefix("features."): value for key, value in state_dict.items() if key.startswith("features.")}


def vgg19_features() -> nn.Sequential:
    """torchvision's ``vgg19().features`` (same layers and parameter names), without the classifier."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG19_CONFIGURATION:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = item
    return nn.Sequential(*layers)


class VGG19FeatureExtractor(nn.Module):
    """The VGG19 ``features`` stack up to the deepest requested layer; returns {layer name: features}."""

    def __init__(self, layer_names: list[str], state_dict: dict[str, torch.Tensor] | None = None):
        """``state_dict``: from ``load_vgg19_state_dict``; None keeps the random initialisation (for tests)."""
        super().__init__()
        unknown = [name for name in layer_names if name not in VGG19_LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; known: {', '.join(VGG19_LAYER_NAMES)}")
        features = vgg19_features()
        if state_dict is not None:
            features.load_state_dict(state_dict)
        depth = max(VGG19_LAYER_NAMES.index(name) for name in layer_names) + 1
        self.layers = features[:depth]
        self.layer_names = set(layer_names)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = ((images + 1) / 2 - self.mean) / self.std
        features = {}
        for name, layer in zip(VGG19_LAYER_NAMES, self.layers):
            x = layer(x)
            if name in self.layer_names:
                features[name] = x
        return features


class PerceptualLoss(nn.Module):
    """Returns (perceptual loss, style loss), each already multiplied by its weight; a weight of 0 gives 0."""

    def __init__(
        self,
        feature_extractor: VGG19FeatureExtractor,
        layer_weights: dict[str, float] = GFPGAN_LAYER_WEIGHTS,
        perceptual_weight: float = 1.0,
        style_weight: float = 50.0,
    ):
        super().__init__()
        missing = set(layer_weights) - feature_extractor.layer_names
        if missing:
            raise ValueError(f"PerceptualLoss: the feature extractor does not return layers {sorted(missing)}")
        self.vgg = feature_extractor
        self.layer_weights = dict(layer_weights)
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight

    def forward(self, restored: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored_features = self.vgg(restored)
        with torch.no_grad():
            target_features = self.vgg(target)
        perceptual = restored.new_zeros(())
        style = restored.new_zeros(())
        for name, weight in self.layer_weights.items():
            if self.perceptual_weight:
                perceptual = perceptual + weight * F.l1_loss(restored_features[name], target_features[name])
            if self.style_weight:
                style = style + weight * F.l1_loss(gram_matrix(restored_features[name]), gram_matrix(target_features[name]))
        return self.perceptual_weight * perceptual, self.style_weight * style


def load_feature_nets(
    perceptual_weight: float,
    style_weight: float,
    identity_weight: float,
    vgg_weights: str | os.PathLike | None = None,
    arcface_weights: str | os.PathLike | None = None,
    random_init: bool = False,
) -> tuple[PerceptualLoss | None, ArcFaceResNet18 | None]:
    """The frozen VGG19 (perceptual and style losses) and ArcFace (identity loss) nets the loss weights ask for;
    None for a loss that is off. Raises ``MissingWeightsError`` naming a file that cannot be found, unless
    ``random_init`` (randomly initialised nets, for tests)."""
    perceptual_loss = arcface = None
    if perceptual_weight > 0 or style_weight > 0:
        state_dict = None if random_init else load_vgg19_state_dict(vgg_weights)
        extractor = VGG19FeatureExtractor(list(GFPGAN_LAYER_WEIGHTS), state_dict)
        perceptual_loss = PerceptualLoss(extractor, GFPGAN_LAYER_WEIGHTS, perceptual_weight, style_weight)
    if identity_weight > 0:
        arcface = ArcFaceResNet18() if random_init else ArcFaceResNet18.from_pretrained(arcface_weights)
        arcface.eval().requires_grad_(False)
    return perceptual_loss, arcface
