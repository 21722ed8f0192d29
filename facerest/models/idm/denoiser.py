"""The IDM denoiser `f_theta(x_d, x_t, gamma)`: the one call of the UNet, for sampling and training alike.

In the shape of k-diffusion's `Denoiser` (`k_diffusion/layers.py`): one object holds the network and its
preconditioning, its `forward` is what sampling calls and its `loss` what training minimises, so the two cannot
drift apart. The equations themselves (the preconditioning of each prediction type, the training target, the forward
process and the reverse step) are the scheduler's, in `scheduling_idm.py`; this class only puts them around the UNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from .scheduling_idm import IDMScalings, IDMScheduler

LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


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
        gamma = self.scheduler._noise_level(noise_level)
        timestep = self.scheduler.model_timestep(gamma).to(x_t.device)
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
    ) -> torch.Tensor:
        """The training loss `E || f_theta(x_d, x_t, gamma) - target ||_p^p` (p = 1 for `"l1"`, 2 for `"l2"`) at
        `x_t = add_noise(x_0, noise, noise_level)`, the target after the scheduler's `prediction_type`."""
        x_t = self.scheduler.add_noise(x_0, noise, noise_level)
        target = self.scheduler.training_target(x_0, noise, condition=x_d, noise_level=noise_level)
        output = self(x_t, x_d, noise_level)
        return LOSSES[loss_type](output.float(), target.float())
