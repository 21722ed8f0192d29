"""Restore aligned degraded faces with the IDM denoiser: the conditional reverse process."""

from __future__ import annotations

import copy

import torch
from diffusers import UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

from .denoiser import IDMDenoiser
from .scheduling_idm import IDMScheduler


@torch.no_grad()
def idm_sample(
    unet: UNet2DModel,
    scheduler: IDMScheduler,
    lq: torch.Tensor,
    num_inference_steps: int = 25,
    strength: float = 1.0,
    init: torch.Tensor | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    eta: float | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """
    Run the reverse process conditioned on the degraded faces `lq` and return the restored faces.

    Args:
        unet: the denoiser, `in_channels=6` (sample ++ degraded face), `out_channels=3`.
        scheduler: the [`IDMScheduler`] it was trained with. The call sets the timesteps of a copy, so the scheduler
            is left as it was and calls can run side by side (threads sharing one pipeline).
        lq: degraded aligned faces, `(N, 3, R, R)` in [-1, 1].
        num_inference_steps: steps of the full schedule (strided over the training chain).
        strength: in (0, 1]; how much of the schedule to run. 1.0 starts from pure noise and ignores `init`. Below
            1, `init` is noised to the level of the timestep `strength` of the way up the schedule and only the last
            `round(strength * num_inference_steps)` steps (at least one) are run, as in diffusers' image-to-image
            pipelines: small strengths stay close to `init` and cost few steps.
        init: the estimate the reverse process starts from when `strength < 1`, `(N, 3, R, R)` in [-1, 1] (e.g.
            a GAN restoration, for the hybrid); defaults to `lq`.
        generator: random generator(s); the same seed gives the same output.
        eta: `None` for the ancestral update, a value in [0, 1] for the DDIM update (0.0: deterministic); see
            [`IDMScheduler.step`].
        progress: show a progress bar.

    Returns:
        The restored faces, `(N, 3, R, R)` in [-1, 1], on the device and in the dtype of `lq`.
    """
    if lq.ndim != 4 or lq.shape[1] != 3:
        raise ValueError(f"lq must be a batch of RGB images (N, 3, H, W), got shape {tuple(lq.shape)}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must lie in (0, 1], got {strength}")
    if init is not None and init.shape != lq.shape:
        raise ValueError(f"init must have the shape of lq {tuple(lq.shape)}, got {tuple(init.shape)}")

    scheduler = copy.deepcopy(scheduler)
    scheduler.set_timesteps(num_inference_steps)
    num_steps_run = max(1, round(strength * num_inference_steps))
    timesteps = scheduler.timesteps[-num_steps_run:]

    device, dtype = unet.device, unet.dtype
    condition = lq.to(device=device, dtype=dtype)
    noise = randn_tensor(condition.shape, generator=generator, device=device, dtype=dtype)
    if strength == 1.0:
        sample = noise * scheduler.init_noise_sigma
    else:
        start = (lq if init is None else init).to(device=device, dtype=dtype)
        sample = scheduler.add_noise(start, noise, timesteps[:1])

    was_training = unet.training
    unet.eval()
    try:
        sample = IDMDenoiser(unet, scheduler).sample(sample, condition, timesteps, eta, generator, progress)
    finally:
        unet.train(was_training)
    return sample.clamp(-1.0, 1.0).to(device=lq.device, dtype=lq.dtype)
