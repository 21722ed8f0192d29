"""The losses of GFP-GAN (Wang et al., "Towards Real-World Blind Face Restoration with Generative Facial
Prior", CVPR 2021, Sec. 3.4), as functions of tensors, and the published recipe that weights them
(``GFPGAN_RECIPE``, the defaults of train/train_gfpgan.py).

Notation: ``D`` a discriminator's logits, ``x`` real (ground-truth) images, ``y_hat`` restored images.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..models.arcface import ArcFaceResNet18

# GFP-GAN's published recipe (options/train_gfpgan_v1.yml): loss weights, lazy R1 interval, learning rates and the
# EMA decay of the generator, 0.5 ** (32 / 10k).
GFPGAN_RECIPE = {
    "l1_weight": 0.1,
    "pyramid_loss_weight": 1.0,
    "perceptual_weight": 1.0,
    "style_weight": 50.0,
    "gan_weight": 0.1,
    "r1_weight": 10.0,
    "r1_every": 16,
    "component_gan_weight": 1.0,
    "component_style_weight": 200.0,
    "identity_weight": 10.0,
    "learning_rate": 2e-3,
    "component_learning_rate": 2e-3,
    "ema_decay": 0.5 ** (32 / 10_000),
}


def adversarial_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Logistic GAN loss on a discriminator's logits, i.e. binary cross-entropy: E[softplus(-D)] towards
    "real", E[softplus(D)] towards "fake".

    Generator (non-saturating): ``adversarial_loss(D(y_hat), True)``. Discriminator:
    ``adversarial_loss(D(x), True) + adversarial_loss(D(y_hat), False)``.
    """
    return F.softplus(-logits).mean() if target_is_real else F.softplus(logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 regulariser (Mescheder et al., 2018): E_x ||grad_x D(x)||^2 on real images.

    ``real_images`` must have ``requires_grad=True`` and ``real_logits = D(real_images)``. The graph is kept
    (``create_graph``) so the penalty can be back-propagated into D. The caller applies gamma / 2.
    """
    (gradients,) = torch.autograd.grad(outputs=real_logits.float().sum(), inputs=real_images, create_graph=True)
    return gradients.pow(2).flatten(1).sum(dim=1).mean()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix G = F F^T / (C H W) of features (N, C, H, W), shape (N, C, C)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def image_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """``images`` and its successive bilinear halvings, coarsest first: ``num_levels`` tensors."""
    pyramid = [images]
    for _ in range(num_levels - 1):
        pyramid.insert(0, F.interpolate(pyramid[0], scale_factor=0.5, mode="bilinear", align_corners=False))
    return pyramid


def pyramid_l1_loss(intermediate_rgbs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Image-pyramid restoration loss: sum over scales of L1(intermediate RGB, target downsampled to that scale).

    ``intermediate_rgbs`` are the degradation-removal module's RGB outputs, coarsest first, the last one at
    the target's size (GFP-GAN's ``out_rgbs``: 8 px up to the output size).
    """
    pyramid = image_pyramid(target, len(intermediate_rgbs))
    for rgb, level in zip(intermediate_rgbs, pyramid):
        if rgb.shape != level.shape:
            raise ValueError(f"pyramid_l1_loss: intermediate output {tuple(rgb.shape)} does not match target level {tuple(level.shape)}")
    return sum(F.l1_loss(rgb, level) for rgb, level in zip(intermediate_rgbs, pyramid))


def component_style_loss(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Facial-component style loss: L1 between Gram matrices of a component discriminator's features of the
    restored and the real crop, 0.5 for the middle features and 1 for the deep ones (GFP-GAN's weighting)."""
    mid_fake, deep_fake = fake_features
    mid_real, deep_real = real_features
    return 0.5 * F.l1_loss(gram_matrix(mid_fake), gram_matrix(mid_real).detach()) + F.l1_loss(
        gram_matrix(deep_fake), gram_matrix(deep_real).detach()
    )


def identity_loss(arcface: ArcFaceResNet18, restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Identity-preserving loss: L1 between the ArcFace embeddings of the restored and the ground-truth faces
    (both turned into ArcFace's 128 x 128 gray input); the ground truth's embedding is a fixed target."""
    with torch.no_grad():
        target_embedding = arcface(arcface.prepare_input(target))
    return F.l1_loss(arcface(arcface.prepare_input(restored)), target_embedding)
