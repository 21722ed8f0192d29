"""facerest: blind face restoration with GFP-GAN and an iterative diffusion model."""

from .errors import FacerestError, ImageReadError

__version__ = "0.1.0"
