"""facerest: blind face restoration with GFP-GAN and an iterative diffusion model."""

from .data import DegradedFaceDataset, PairedFolderDataset, make_testset
from .degradation import DegradationConfig, DegradationParams, degrade, sample_degradation
from .errors import FacerestError, ImageReadError
from .models.gfpgan import GFPGANConfig, GFPGANModel
from .models.idm import IDMScheduler, idm_sample, idm_unet_config, make_idm_unet
from .pipeline import FaceRestorePipeline, FaceRestorePipelineOutput

__version__ = "0.1.0"

__all__ = [
    "DegradationConfig",
    "DegradationParams",
    "DegradedFaceDataset",
    "FaceRestorePipeline",
    "FaceRestorePipelineOutput",
    "FacerestError",
    "GFPGANConfig",
    "GFPGANModel",
    "IDMScheduler",
    "ImageReadError",
    "PairedFolderDataset",
    "degrade",
    "idm_sample",
    "idm_unet_config",
    "make_idm_unet",
    "make_testset",
    "sample_degradation",
]
