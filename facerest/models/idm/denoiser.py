"""The IDM denoiser `f_theta(x_d, x_t, gamma)`: the one call of the UNet, for sampling and training alike.

In the shape of k-diffusion's `Denoiser` (`k_diffusion/layers.py`): one object holds the network and its
preconditioning, its `forward` is what sampling calls and its `loss` what training minimises, so the two cannot
drift apart. The equations themselves (the preconditioning of each prediction type, the training target, the forward
process and the reverse step) are the scheduler's, in `scheduling_idm.py`; this class only puts them around the UNet.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from tqdm.auto import tqdm

from .scheduling_idm import IDMScalings, IDMScheduler

LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}
DETAIL_WINDOW = 8  # side in pixels of the tiles over which `detail_deficit` compares the gradient energy
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # the Gaussian window of `facerest.metrics.ssim`, which the SSIM term follows


class IDMDenoiser(torch.nn.Module):
    """
    The conditional denoiser of IDM: a `UNet2DModel` (`in_channels=6`, `out_channels=3`) with the preconditioning of
    its [`IDMScheduler`].

    Notation (code name -> paper name):
    - x_t -> x_t, the noisy target;  x_d -> x_d, the degraded face the model is conditioned on
    - noise_level -> gamma (an integer timestep t stands for gamma_t);  x_0 -> x_0, the clean face;  noise -> eps
    - `forward`'s result -> f_theta(x_d, x_t, gamma), what `IDMScheduler.step` takes as `model_output`

    Args:
        unet: the UNet, or anything called as `unet(sample, timestep).sample` (a DDP-wrapped UNet in training).
        scheduler: the [`IDMScheduler`] the UNet is trained and sampled with.
    """

    def __init__(self, unet: UNet2DModel | torch.nn.Module, scheduler: IDMScheduler):
        super().__init__()
        self.unet = unet
        self.scheduler = scheduler

    def get_scalings(self, noise_level: torch.Tensor | float | int, like: torch.Tensor | None = None) -> IDMScalings:
        """c_skip, c_out, c_in (and the terms of `x_d`) at this noise level: [`IDMScheduler.get_scalings`]."""
        return self.scheduler.get_scalings(noise_level, like=like)

    def model_input(
        self, x_t: torch.Tensor, x_d: torch.Tensor, noise_level: torch.Tensor | float | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The UNet's `(sample, timestep)`: the preconditioned `x_t` concatenated with `x_d` along the channels, and
        the noise level as the UNet's timestep ([`IDMScheduler.model_timestep`])."""
        scaled = self.scheduler.scale_model_input(x_t, noise_level, condition=x_d)
        timestep = self.scheduler.model_timestep(noise_level).to(x_t.device)
        return torch.cat([scaled, x_d], dim=1), timestep

    def forward(self, x_t: torch.Tensor, x_d: torch.Tensor, noise_level: torch.Tensor | float | int) -> torch.Tensor:
        """`f_theta(x_d, x_t, gamma)`: the UNet's output (noise, clean face, correction or velocity, after the
        scheduler's `prediction_type`), ready for `IDMScheduler.step` or `precondition_outputs`.

        Args:
            x_t: the noisy faces, `(N, 3, R, R)`.
            x_d: the degraded faces they are conditioned on, same shape.
            noise_level: an integer timestep (sampling), or gamma as a float, one per face or one for all (training).
        """
        sample, timestep = self.model_input(x_t, x_d, noise_level)
        return self.unet(sample, timestep).sample

    def loss(
        self,
        x_0: torch.Tensor,
        x_d: torch.Tensor,
        noise: torch.Tensor,
        noise_level: torch.Tensor | float | int,
        loss_type: str = "l1",
        detail_weight: float = 0.0,
        ssim_weight: float = 0.0,
    ) -> torch.Tensor:
        """The training loss `E || f_theta(x_d, x_t, gamma) - target ||_p^p` (p = 1 for `"l1"`, 2 for `"l2"`) at
        `x_t = add_noise(x_0, noise, noise_level)`, the target after the scheduler's `prediction_type`, plus
        `detail_weight` times the [`detail_deficit`] and `ssim_weight` times the [`structural_dissimilarity`] of the
        resulting estimate of `x_0`."""
        x_t = self.scheduler.add_noise(x_0, noise, noise_level)
        target = self.scheduler.training_target(x_0, noise, condition=x_d, noise_level=noise_level)
        output = self(x_t, x_d, noise_level)
        loss = LOSSES[loss_type](output.float(), target.float())
        if detail_weight or ssim_weight:
            estimate = self.scheduler.precondition_outputs(output, noise_level, x_t, condition=x_d)
            loss = loss + estimate_terms(estimate, x_0, detail_weight, ssim_weight)
        return loss

    def sample(
        self,
        x_t: torch.Tensor,
        x_d: torch.Tensor,
        timesteps: torch.Tensor,
        eta: float | None = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """The reverse process from `x_t` over `timesteps` (the scheduler's schedule set by `set_timesteps`, or its
        tail): `x_t <- IDMScheduler.step(f_theta(x_d, x_t, t), t, x_t)` at each. Differentiable: sampling runs it
        without gradients, [`sampler_loss`] through them."""
        for t in tqdm(timesteps, desc="IDM sampling", disable=not progress):
            x_t = self.scheduler.step(self(x_t, x_d, t), t, x_t, generator=generator, eta=eta, condition=x_d).prev_sample
        return x_t

    def sampler_loss(
        self,
        x_0: torch.Tensor,
        x_d: torch.Tensor,
        noise: torch.Tensor,
        num_inference_steps: int,
        loss_type: str = "l1",
        detail_weight: float = 0.0,
        ssim_weight: float = 0.0,
    ) -> torch.Tensor:
        """The loss of what `num_inference_steps`-step DDIM sampling (eta 0, the pipeline's default) restores from
        `x_T = noise`: the chain run with gradients through every step, its result `x_0^` scored as [`loss`] scores
        one step's estimate. The distance is taken in the units of the last step's output,
        `|| (x_0^ - x_0) / c_out ||_p^p` (the one-step loss at that step, at the `x_t` the chain reached rather than
        at the clean face noised), plus the detail and SSIM terms of `x_0^`. Training so fits the model to its own
        chain (the earlier steps' estimates are what the later steps see), at N forward and backward passes a batch.
        """
        scheduler = copy.deepcopy(self.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=x_0.device)
        chain = IDMDenoiser(self.unet, scheduler)
        restored = chain.sample(noise * scheduler.init_noise_sigma, x_d, scheduler.timesteps).float()
        c_out = scheduler.get_scalings(scheduler.timesteps[-1:], like=x_0).c_out
        scale = 1.0 if c_out is None else abs(float(c_out))
        loss = LOSSES[loss_type](restored / scale, x_0.float() / scale)
        return loss + estimate_terms(restored, x_0, detail_weight, ssim_weight)


def estimate_terms(estimate: torch.Tensor, x_0: torch.Tensor, detail_weight: float, ssim_weight: float) -> torch.Tensor:
    """The terms of the training loss on an estimate of the clean face: `detail_weight` times its
    [`detail_deficit`] plus `ssim_weight` times its [`structural_dissimilarity`] against `x_0`."""
    estimate, x_0 = estimate.float(), x_0.float()
    terms = estimate.new_zeros(())
    if detail_weight:
        terms = terms + detail_weight * detail_deficit(estimate, x_0)
    if ssim_weight:
        terms = terms + ssim_weight * structural_dissimilarity(estimate, x_0)
    return terms


def local_gradient_energy(images: torch.Tensor, window: int = DETAIL_WINDOW) -> torch.Tensor:
    """The mean gradient magnitude of the images' gray levels over each `window` x `window` tile, `(N, 1, H/w, W/w)`."""
    gray = images.mean(dim=1, keepdim=True)
    dx = gray[..., :-1, 1:] - gray[..., :-1, :-1]
    dy = gray[..., 1:, :-1] - gray[..., :-1, :-1]
    return F.avg_pool2d((dx.square() + dy.square() + 1e-8).sqrt(), window, ceil_mode=True)


def detail_deficit(estimate: torch.Tensor, x_0: torch.Tensor, window: int = DETAIL_WINDOW) -> torch.Tensor:
    """How much local detail the estimate lacks: the mean over tiles of `max(0, E(x_0) - E(estimate))`, `E` the
    [`local_gradient_energy`]. One-sided, so it never asks for less detail than the estimate has (the L1/L2 term
    keeps that in check) and, unlike a pixel distance, it does not ask for the detail to be where `x_0` has it: the
    estimate of an uncertain texture is then a texture, not its blurred average."""
    return F.relu(local_gradient_energy(x_0, window) - local_gradient_energy(estimate, window)).mean()


def structural_dissimilarity(estimate: torch.Tensor, x_0: torch.Tensor) -> torch.Tensor:
    """`1 - SSIM(estimate, x_0)` for faces in [-1, 1]: the SSIM of `facerest.metrics.ssim` (11 x 11 Gaussian window,
    sigma 1.5, per channel, over the pixels whose window fits), differentiable, on the faces moved to [0, 1] (its
    luminance term depends on the mean itself, not only on its differences). Zhao et al., "Loss Functions for Image
    Restoration with Neural Networks", pair such a term with L1."""
    estimate, x_0 = (estimate + 1) / 2, (x_0 + 1) / 2
    channels = x_0.shape[1]
    line = torch.signal.windows.gaussian(SSIM_WINDOW, std=SSIM_SIGMA, dtype=x_0.dtype, device=x_0.device)
    line = line / line.sum()
    rows, columns = line.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), line.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)

    def local_mean(images: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(images, rows, groups=channels), columns, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = local_mean(estimate), local_mean(x_0)
    sigma_x2 = local_mean(estimate * estimate) - mu_x**2
    sigma_y2 = local_mean(x_0 * x_0) - mu_y**2
    sigma_xy = local_mean(estimate * x_0) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x2 + sigma_y2 + c2))
    return 1 - ssim_map.mean()
