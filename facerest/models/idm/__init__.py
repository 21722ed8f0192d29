"""IDM: the conditional diffusion model (scheduler with its equations, denoiser, UNet configurations, sampling)."""

from .denoiser import IDMDenoiser
from .sampling_idm import idm_sample
from .scheduling_idm import IDMScalings, IDMScheduler, IDMSchedulerOutput
from .unet_idm import (
    IDM_UNET_BLOCK_OUT_CHANNELS,
    average_unets,
    deepen_unet,
    idm_unet_config,
    make_idm_unet,
    redraw_full_resolution_layers,
)

__all__ = [
    "IDM_UNET_BLOCK_OUT_CHANNELS",
    "IDMDenoiser",
    "IDMScalings",
    "IDMScheduler",
    "IDMSchedulerOutput",
    "average_unets",
    "deepen_unet",
    "idm_sample",
    "idm_unet_config",
    "make_idm_unet",
    "redraw_full_resolution_layers",
]
