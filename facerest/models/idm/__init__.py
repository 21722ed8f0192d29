"""IDM: the conditional diffusion model (scheduler, UNet configurations, sampling)."""

from .sampling_idm import idm_sample
from .scheduling_idm import IDMScheduler, IDMSchedulerOutput
from .unet_idm import IDM_UNET_BLOCK_OUT_CHANNELS, idm_unet_config, make_idm_unet

__all__ = [
    "IDM_UNET_BLOCK_OUT_CHANNELS",
    "IDMScheduler",
    "IDMSchedulerOutput",
    "idm_sample",
    "idm_unet_config",
    "make_idm_unet",
]
