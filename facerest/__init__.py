"""facerest: blind face restoration with GFP-GAN and an iterative diffusion model.

The public names are imported on first use (PEP 562), so that ``python -m facerest --help`` and the command line's
option errors answer at once rather than after torch, diffusers and transformers have loaded. Importing
``facerest.models.gfpgan`` (or using ``facerest.GFPGANModel``) registers GFP-GAN with transformers' ``AutoModel``.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module of facerest that defines it
_EXPORTS = {
    "DegradationConfig": "degradation",
    "DegradationParams": "degradation",
    "DegradedFaceDataset": "data",
    "FaceRestorePipeline": "pipeline",
    "FaceRestorePipelineOutput": "pipeline",
    "FacerestError": "errors",
    "GFPGANConfig": "models.gfpgan",
    "GFPGANModel": "models.gfpgan",
    "IDMScheduler": "models.idm",
    "ImageReadError": "errors",
    "PairedFolderDataset": "data",
    "degrade": "degradation",
    "idm_sample": "models.idm",
    "idm_unet_config": "models.idm",
    "make_idm_unet": "models.idm",
    "make_testset": "data",
    "sample_degradation": "degradation",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
