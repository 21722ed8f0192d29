"""The synthetic degradation model of GFP-GAN, used to make training pairs and paired test sets.

    y = JPEG_q((x * k_sigma) downsampled by r + n_delta), resized back to the size of x

The downsampling and the resize back use bilinear interpolation, as GFP-GAN's do; ``downsample_modes`` and
``upsample_modes`` can draw each from several (bicubic, area), as photos are shrunk and enlarged by other tools
(Real-ESRGAN's second-order model draws them so too).

This is followed by the colour degradations of GFP-GAN's ``FFHQDegradationDataset``: a random shift of the
RGB values, conversion to gray, and a photometric jitter (brightness, contrast, saturation, hue in a
random order). Only the degraded image is changed, never the ground truth.

The blur width, downsampling factor, noise and JPEG blocks are measured in pixels of a face of GFP-GAN's
training size, 512 px (``reference_resolution``). A face of another size is degraded as a 512-px photo of
it would be: resized to 512, blurred, downsampled, noised and compressed there, and resized back. Applied
at 64 px as they stand, the same numbers would blur with sigma up to 80 px of a 512 face and shrink it to 8 px.

One call draws its random choices into a ``DegradationParams`` (``sample_degradation``) and then
applies them (``degrade``), so a degradation can be recorded in a manifest and replayed exactly.
Images are processed as float32 RGB in [0, 1]; the result is rounded to 8 bits, as in GFP-GAN.

``degrade`` works on one numpy image with OpenCV; ``degrade_batch`` applies the same parameters to a batch of torch
tensors on any device (a training GPU, say), so the same draws give the same degradation up to the two libraries'
arithmetic (tests/test_degradation.py states the measured differences).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

from .images import resize

Range = tuple[float, float]

# Interpolations of the downsampling and the resize back: OpenCV's flag for the numpy path, F.interpolate's mode for the
# torch path ("area" there is cv2's INTER_AREA as a matrix, `_area_weights`). Enlarging, "area" is not drawn.
RESIZE_MODES = {
    "linear": (cv2.INTER_LINEAR, "bilinear"),
    "cubic": (cv2.INTER_CUBIC, "bicubic"),
    "area": (cv2.INTER_AREA, "area"),
}
UPSAMPLE_MODES = ("linear", "cubic")


@dataclass
class DegradationConfig:
    """The distributions the degradation parameters are drawn from (defaults: GFP-GAN's published model).

    A range set to ``None`` switches its stage off (``blur_sigma``, ``downsample_range``,
    ``noise_range``, ``jpeg_range``); a probability of 0 switches off a colour degradation.
    """

    # the face size (longer side, px) that the pixel-valued parameters below are defined for; None: any size as is
    reference_resolution: int | None = 512
    # blur: 41 x 41 Gaussian kernel k_sigma, isotropic or (rotated) anisotropic
    kernel_size: int = 41
    anisotropic_prob: float = 0.5
    blur_sigma: Range | None = (0.1, 10.0)
    rotation_range: Range = (-math.pi, math.pi)
    # downsampling factor r (below 1 enlarges)
    downsample_range: Range | None = (0.8, 8.0)
    # the interpolations the downsampling by r and the resize back are drawn from, each uniformly (RESIZE_MODES; "area"
    # only shrinks: a downsampling by r < 1 drawn so enlarges bilinearly)
    downsample_modes: tuple[str, ...] = ("linear",)
    upsample_modes: tuple[str, ...] = ("linear",)
    # additive Gaussian noise n_delta: standard deviation delta, in units of 1/255
    noise_range: Range | None = (0.0, 20.0)
    # JPEG quality q (integer, both ends included)
    jpeg_range: tuple[int, int] | None = (60, 100)
    # colour jitter: the same uniform shift in [-shift, shift] (of 255) added to every pixel of a channel
    color_jitter_prob: float = 0.3
    color_jitter_shift: float = 20.0
    # conversion to gray
    gray_prob: float = 0.01
    # photometric jitter (GFP-GAN's ``color_jitter_pt``): the four factors below, applied in a random order
    photometric_jitter_prob: float = 0.3
    brightness_range: Range = (0.5, 1.5)
    contrast_range: Range = (0.5, 1.5)
    saturation_range: Range = (0.0, 1.5)
    hue_range: Range = (-0.1, 0.1)  # fraction of a full turn of the hue circle
    # a face left as it is (every stage off): clean pairs teach a model to keep a face that needs nothing;
    # drawn after all the others, so 0 (GFP-GAN's model) draws exactly what it drew before this field existed
    clean_prob: float = 0.0

    def __post_init__(self):
        for field in fields(self):  # ranges read back from JSON arrive as lists
            value = getattr(self, field.name)
            if isinstance(value, list):
                setattr(self, field.name, tuple(value))
        if self.reference_resolution is not None and not (
            isinstance(self.reference_resolution, int) and not isinstance(self.reference_resolution, bool) and self.reference_resolution > 0
        ):
            raise ValueError(f"reference_resolution must be a positive integer or None, got {self.reference_resolution!r}")
        if not (isinstance(self.kernel_size, int) and self.kernel_size > 0 and self.kernel_size % 2 == 1):
            raise ValueError(f"kernel_size must be a positive odd integer, got {self.kernel_size!r}")
        for name in ("anisotropic_prob", "color_jitter_prob", "gray_prob", "photometric_jitter_prob", "clean_prob"):
            _check_between(name, getattr(self, name), 0.0, 1.0)
        _check_between("color_jitter_shift", self.color_jitter_shift, 0.0, 255.0)
        _check_range("blur_sigma", self.blur_sigma, lowest=1e-3, optional=True)
        _check_range("rotation_range", self.rotation_range)
        _check_range("downsample_range", self.downsample_range, lowest=1e-3, optional=True)
        _check_modes("downsample_modes", self.downsample_modes, RESIZE_MODES)
        _check_modes("upsample_modes", self.upsample_modes, UPSAMPLE_MODES)
        _check_range("noise_range", self.noise_range, lowest=0.0, optional=True)
        _check_range("jpeg_range", self.jpeg_range, lowest=1, highest=100, optional=True)
        if self.jpeg_range is not None and not all(isinstance(q, (int, np.integer)) for q in self.jpeg_range):
            raise ValueError(f"jpeg_range must hold two integer qualities, got {self.jpeg_range!r}")
        _check_range("brightness_range", self.brightness_range, lowest=0.0)
        _check_range("contrast_range", self.contrast_range, lowest=0.0)
        _check_range("saturation_range", self.saturation_range, lowest=0.0)
        _check_range("hue_range", self.hue_range, lowest=-0.5, highest=0.5)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DegradationParams:
    """Everything one degradation drew: applying it again with ``degrade(image, params=...)`` gives the same bytes.

    A stage that was switched off has ``None``. ``noise_seed`` seeds the noise field, whose size is that of the
    downsampled image. ``reference_resolution`` is the config's (``None`` in manifests written before it existed,
    which degraded every image at its own size).
    """

    kernel_size: int
    kernel_type: str | None  # "isotropic" or "anisotropic"
    sigma_x: float | None
    sigma_y: float | None
    rotation: float | None  # radians
    scale: float | None
    noise_std: float | None  # of 255
    noise_seed: int | None
    jpeg_quality: int | None
    color_shift: tuple[float, float, float] | None  # of 255, per RGB channel
    gray: bool
    photometric: tuple[tuple[str, float], ...]  # (operation, factor) in the order applied
    reference_resolution: int | None = None
    # the interpolations of the downsampling and of the resize back (manifests written before they were drawn: linear)
    downsample_mode: str = "linear"
    upsample_mode: str = "linear"

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DegradationParams":
        values = dict(values)
        if values.get("color_shift") is not None:
            values["color_shift"] = tuple(values["color_shift"])
        values["photometric"] = tuple((name, factor) for name, factor in values.get("photometric", ()))
        return cls(**values)


def gaussian_blur_kernel(size: int, sigma_x: float, sigma_y: float, rotation: float = 0.0) -> np.ndarray:
    """A (size, size) bivariate Gaussian kernel, normalised to sum to 1.

    k(p) ~ exp(-1/2 p^T Sigma^-1 p) with the covariance Sigma = R(rotation) diag(sigma_x^2, sigma_y^2) R^T;
    p runs over the integer offsets from the kernel's centre. sigma_x == sigma_y gives the isotropic kernel.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be positive, got {sigma_x}, {sigma_y}")
    cos, sin = math.cos(rotation), math.sin(rotation)
    rotation_matrix = np.array([[cos, -sin], [sin, cos]])
    covariance = rotation_matrix @ np.diag([sigma_x**2, sigma_y**2]) @ rotation_matrix.T
    offsets = np.arange(size, dtype=np.float64) - size // 2
    grid = np.stack(np.meshgrid(offsets, offsets), axis=-1)  # (size, size, 2): (x, y) offsets
    mahalanobis = np.einsum("...i,ij,...j->...", grid, np.linalg.inv(covariance), grid)
    kernel = np.exp(-0.5 * mahalanobis)
    return kernel / kernel.sum()


def sample_degradation(config: DegradationConfig, rng: np.random.Generator) -> DegradationParams:
    """Draw one degradation from ``config`` (the draws are made in a fixed order, so a seed fixes them all)."""
    kernel_type = sigma_x = sigma_y = rotation = None
    if config.blur_sigma is not None:
        if rng.random() < config.anisotropic_prob:
            kernel_type = "anisotropic"
            sigma_x, sigma_y = (float(rng.uniform(*config.blur_sigma)) for _ in range(2))
            rotation = float(rng.uniform(*config.rotation_range))
        else:
            kernel_type = "isotropic"
            sigma_x = sigma_y = float(rng.uniform(*config.blur_sigma))
            rotation = 0.0
    scale = None if config.downsample_range is None else float(rng.uniform(*config.downsample_range))
    noise_std = noise_seed = None
    if config.noise_range is not None:
        noise_std = float(rng.uniform(*config.noise_range))
        noise_seed = int(rng.integers(2**63))
    jpeg_quality = None
    if config.jpeg_range is not None:
        jpeg_quality = int(rng.integers(config.jpeg_range[0], config.jpeg_range[1], endpoint=True))
    color_shift = None
    if rng.random() < config.color_jitter_prob:
        shift = config.color_jitter_shift
        color_shift = tuple(float(value) for value in rng.uniform(-shift, shift, size=3))
    gray = bool(rng.random() < config.gray_prob)
    photometric = ()
    if rng.random() < config.photometric_jitter_prob:
        ranges = {
            "brightness": config.brightness_range,
            "contrast": config.contrast_range,
            "saturation": config.saturation_range,
            "hue": config.hue_range,
        }
        order = [list(ranges)[i] for i in rng.permutation(len(ranges))]
        photometric = tuple((name, float(rng.uniform(*ranges[name]))) for name in order)
    if config.clean_prob > 0 and rng.random() < config.clean_prob:  # a clean pair: every stage off
        kernel_type = sigma_x = sigma_y = rotation = scale = noise_std = noise_seed = jpeg_quality = color_shift = None
        gray, photometric = False, ()
    # drawn last, and only from a choice, so a config of one mode each draws what it drew before these existed
    downsample_mode, upsample_mode = (
        modes[int(rng.integers(len(modes)))] if len(modes) > 1 else modes[0]
        for modes in (config.downsample_modes, config.upsample_modes)
    )
    return DegradationParams(
        kernel_size=config.kernel_size,
        kernel_type=kernel_type,
        sigma_x=sigma_x,
        sigma_y=sigma_y,
        rotation=rotation,
        scale=scale,
        noise_std=noise_std,
        noise_seed=noise_seed,
        jpeg_quality=jpeg_quality,
        color_shift=color_shift,
        gray=gray,
        photometric=photometric,
        reference_resolution=config.reference_resolution,
        downsample_mode=downsample_mode,
        upsample_mode=upsample_mode,
    )


def degrade(
    image: np.ndarray,
    config: DegradationConfig | None = None,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    params: DegradationParams | None = None,
    return_params: bool = False,
):
    """Degrade one (H, W, 3) RGB image, uint8 or float in [0, 1]; returns the same dtype and size.

    The degradation is drawn from ``config`` (default: GFP-GAN's) with ``seed`` or ``rng``, or replayed
    from ``params``. With ``return_params=True`` returns ``(degraded, params)``.
    """
    if params is None:
        if seed is not None and rng is not None:
            raise ValueError("give either seed or rng, not both")
        params = sample_degradation(config or DegradationConfig(), rng if rng is not None else np.random.default_rng(seed))
    elif config is not None or seed is not None or rng is not None:
        raise ValueError("params already fix the degradation: do not pass config, seed or rng with them")

    x = _to_float(image)
    if params.kernel_type is not None or params.scale is not None or params.noise_std is not None or params.jpeg_quality is not None:
        x = _blur_downsample_noise_jpeg(x, params)
    if params.color_shift is not None:
        x = np.clip(x + np.asarray(params.color_shift, dtype=np.float32) / 255.0, 0.0, 1.0)
    if params.gray:
        x = np.repeat(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    for name, factor in params.photometric:
        x = _PHOTOMETRIC[name](x, factor)

    quantised = np.clip(np.round(x * 255.0), 0, 255)
    result = quantised.astype(np.uint8) if image.dtype == np.uint8 else (quantised / 255.0).astype(image.dtype)
    return (result, params) if return_params else result


def _blur_downsample_noise_jpeg(x: np.ndarray, params: DegradationParams) -> np.ndarray:
    """JPEG_q((x * k_sigma) downsampled by r + n_delta), resized back to the size of x; at the reference size, if any."""
    height, width = x.shape[:2]
    (reference_height, reference_width), (small_height, small_width) = _stage_sizes(height, width, params)
    if (reference_height, reference_width) != (height, width):
        x = np.clip(resize(x, reference_width, reference_height), 0.0, 1.0)
    if params.kernel_type is not None:
        # x * k_sigma (cv2.filter2D correlates; a Gaussian kernel is point-symmetric, so this is the convolution)
        kernel = gaussian_blur_kernel(params.kernel_size, params.sigma_x, params.sigma_y, params.rotation)
        x = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    if params.scale is not None:
        # downsampled by r
        mode = _downsample_mode(params)
        x = np.clip(cv2.resize(x, (small_width, small_height), interpolation=RESIZE_MODES[mode][0]), 0.0, 1.0)
    if params.noise_std is not None:
        # + n_delta, with n_delta ~ N(0, (delta / 255)^2) independently per pixel and channel
        x = np.clip(x + noise_field(params, height, width) * np.float32(params.noise_std / 255.0), 0.0, 1.0)
    if params.jpeg_quality is not None:
        x = _jpeg(x, params.jpeg_quality)
    upsampling = RESIZE_MODES[params.upsample_mode][0]
    x = np.clip(cv2.resize(x, (reference_width, reference_height), interpolation=upsampling), 0.0, 1.0)
    if (reference_height, reference_width) != (height, width):
        x = np.clip(resize(x, width, height), 0.0, 1.0)
    return x


def _downsample_mode(params: DegradationParams) -> str:
    """The downsampling's interpolation: the drawn one, but bilinear where r < 1 enlarges and "area" was drawn."""
    return "linear" if params.downsample_mode == "area" and params.scale < 1 else params.downsample_mode


def _stage_sizes(height: int, width: int, params: DegradationParams) -> tuple[tuple[int, int], tuple[int, int]]:
    """(height, width) at the reference resolution (the longer side resized to it; the blur works there) and after
    the downsampling by r (the noise and JPEG work there), for an image of ``height`` x ``width``."""
    reference = (height, width)
    if params.reference_resolution is not None:
        scale = params.reference_resolution / max(height, width)
        reference = (max(1, round(height * scale)), max(1, round(width * scale)))
    if params.scale is None:
        return reference, reference
    return reference, (max(1, int(reference[0] // params.scale)), max(1, int(reference[1] // params.scale)))


def noise_field(params: DegradationParams, height: int, width: int) -> np.ndarray | None:
    """The standard normal field that degrading a ``height`` x ``width`` image with ``params`` scales by
    ``noise_std / 255`` and adds: (h, w, 3) float32 at the downsampled size, drawn from ``params.noise_seed``.
    ``None`` when the noise stage is off."""
    if params.noise_std is None:
        return None
    _, (small_height, small_width) = _stage_sizes(height, width, params)
    return np.random.default_rng(params.noise_seed).standard_normal((small_height, small_width, 3), dtype=np.float32)


def _to_float(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an (H, W, 3) RGB numpy array, got {type(image).__name__} of shape {shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image: shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected a uint8 image or a float image in [0, 1], got dtype {image.dtype}")
    if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
        raise ValueError(f"float images must hold finite values in [0, 1], got [{image.min()}, {image.max()}]")
    return image.astype(np.float32)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """JPEG_q: encode and decode at quality q (via BGR, the channel order the codec's colour transform expects)."""
    bgr = cv2.cvtColor(np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode an image of shape {x.shape}")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


# Photometric jitter, as torchvision's adjust_* functions define it on [0, 1] images.
def _blend(x: np.ndarray, other, factor: float) -> np.ndarray:
    return np.clip(factor * x + (1.0 - factor) * other, 0.0, 1.0)


def _gray(x: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]


def _adjust_hue(x: np.ndarray, factor: float) -> np.ndarray:
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # float input: hue in degrees [0, 360)
    hsv[..., 0] = np.mod(hsv[..., 0] + factor * 360.0, 360.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


_PHOTOMETRIC = {
    "brightness": lambda x, factor: _blend(x, 0.0, factor),
    "contrast": lambda x, factor: _blend(x, float(_gray(x).mean()), factor),
    "saturation": lambda x, factor: _blend(x, _gray(x), factor),
    "hue": _adjust_hue,
}


# The same model on batches of torch tensors, on any device (``degrade_batch``).


def degrade_batch(
    images: torch.Tensor, params: Sequence[DegradationParams], noise: Sequence[torch.Tensor | None] | None = None
) -> torch.Tensor:
    """Degrade a batch of (N, 3, H, W) RGB tensors on their own device, image ``i`` with ``params[i]``: uint8, or
    float in [0, 1]; returns the same dtype and shape, rounded to 8 bits like ``degrade``.

    The stages of ``degrade`` with the same parameters, so a batch degrades as ``degrade`` would degrade each image,
    up to the libraries' arithmetic: the blur is a product of spectra (FFT), resizing ``F.interpolate`` and an area
    matrix, JPEG torchvision's codec (libjpeg on the CPU, nvJPEG on CUDA). The resizes to and from the reference size
    and the blur run on the whole batch; downsampling, noise and JPEG, whose sizes differ per image, image by image.
    ``noise`` holds each image's ``noise_field`` as a tensor on any device (drawn by data-loader workers, say);
    by default they are drawn here, on the CPU. The parameters must come from one config (one ``kernel_size`` and
    ``reference_resolution``).
    """
    params = list(params)
    x = _batch_to_float(images, len(params))
    if len({(p.kernel_size, p.reference_resolution) for p in params}) > 1:
        raise ValueError("a batch's parameters must share kernel_size and reference_resolution: draw them from one config")
    height, width = x.shape[-2:]
    if noise is None:
        noise = [None if field is None else torch.from_numpy(field) for field in (noise_field(p, height, width) for p in params)]
    if len(noise) != len(params):
        raise ValueError(f"{len(noise)} noise fields for a batch of {len(params)}")
    resampled = [i for i, p in enumerate(params) if _resamples(p)]
    if resampled:
        x[resampled] = _blur_downsample_noise_jpeg_batch(
            x[resampled], [params[i] for i in resampled], [noise[i] for i in resampled]
        )
    x = _colour_batch(x, params)
    quantised = (x * 255.0).round().clamp(0, 255)
    return quantised.to(torch.uint8) if images.dtype == torch.uint8 else (quantised / 255.0).to(images.dtype)


def _resamples(params: DegradationParams) -> bool:
    """Whether ``degrade`` runs ``_blur_downsample_noise_jpeg`` (and its resizes) for these parameters."""
    return any(value is not None for value in (params.kernel_type, params.scale, params.noise_std, params.jpeg_quality))


def _batch_to_float(images: torch.Tensor, count: int) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(getattr(images, "shape", ()))
        raise ValueError(f"expected an (N, 3, H, W) RGB tensor, got {type(images).__name__} of shape {shape}")
    if images.shape[0] != count or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(f"a batch of shape {tuple(images.shape)} for {count} sets of parameters")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise ValueError(f"expected a uint8 batch or a float batch in [0, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all() or images.min() < 0.0 or images.max() > 1.0:
        raise ValueError(f"float batches must hold finite values in [0, 1], got [{images.min()}, {images.max()}]")
    return images.float().clone()


def _blur_downsample_noise_jpeg_batch(x: torch.Tensor, params: list[DegradationParams], noise: list) -> torch.Tensor:
    """``_blur_downsample_noise_jpeg`` on a batch of float (N, 3, H, W) tensors."""
    height, width = x.shape[-2:]
    (reference_height, reference_width), _ = _stage_sizes(height, width, params[0])
    if (reference_height, reference_width) != (height, width):
        x = _resize_batch(x, reference_height, reference_width).clamp(0.0, 1.0)
    blurred = [i for i, p in enumerate(params) if p.kernel_type is not None]
    if blurred:
        kernels = [gaussian_blur_kernel(p.kernel_size, p.sigma_x, p.sigma_y, p.rotation) for p in (params[i] for i in blurred)]
        x[blurred] = _blur_batch(x[blurred], torch.from_numpy(np.stack(kernels)).to(x))
    small = [_downsample_and_noise(image, p, field, _stage_sizes(height, width, p)[1]) for image, p, field in zip(x, params, noise)]
    small = _jpeg_batch(small, [p.jpeg_quality for p in params])
    x = torch.stack([
        image if image.shape[-2:] == (reference_height, reference_width)
        else _interpolate(image, (reference_height, reference_width), p.upsample_mode)
        for image, p in zip(small, params)
    ])  # fmt: skip
    if (reference_height, reference_width) != (height, width):
        x = _resize_batch(x, height, width).clamp(0.0, 1.0)
    return x


def _blur_batch(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """x * k_sigma, each image with its own (K, K) kernel, as ``cv2.filter2D`` with BORDER_REFLECT_101 computes it: the
    product of the spectra of the reflect-padded image and of the flipped kernel (a correlation, like filter2D's)."""
    pad = kernels.shape[-1] // 2
    height, width = x.shape[-2:]
    padded = x[..., _reflect_101(height, pad, x.device), :][..., _reflect_101(width, pad, x.device)]
    size = (_fast_fft_size(height + 2 * pad), _fast_fft_size(width + 2 * pad))  # zeros beyond the padding never wrap in
    spectrum = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(kernels.flip(-2, -1)[:, None], s=size)
    return torch.fft.irfft2(spectrum, s=size)[..., 2 * pad : 2 * pad + height, 2 * pad : 2 * pad + width]


def _reflect_101(size: int, pad: int, device) -> torch.Tensor:
    """The indices of ``size`` samples padded by ``pad`` on both sides as BORDER_REFLECT_101 does (dcb|abcd|cba)."""
    if size == 1:
        return torch.zeros(1 + 2 * pad, dtype=torch.long, device=device)
    period = 2 * (size - 1)
    index = torch.arange(-pad, size + pad, device=device).remainder(period)
    return torch.where(index < size, index, period - index)


def _fast_fft_size(length: int) -> int:
    """The smallest length >= ``length`` with no prime factor above 5."""
    while True:
        rest = length
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return length
        length += 1


def _resize_batch(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``images.resize`` on a batch: cv2's area filter when the longer side shrinks, else bicubic."""
    if max(height, width) >= max(x.shape[-2:]):
        return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    if height > x.shape[-2] or width > x.shape[-1]:
        raise ValueError(f"the area filter shrinks both sides, not {tuple(x.shape[-2:])} to {(height, width)}")
    return _area_shrink(x, height, width)


def _interpolate(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """One (3, h, w) image resized to ``size`` as ``cv2.resize`` does with ``RESIZE_MODES[mode]``, clipped to [0, 1]."""
    if mode == "area":
        return _area_shrink(image, *size).clamp(0.0, 1.0)
    return F.interpolate(image[None], size=size, mode=RESIZE_MODES[mode][1], align_corners=False)[0].clamp(0.0, 1.0)


def _area_shrink(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``x`` (..., H, W) shrunk to ``height`` x ``width`` by cv2's INTER_AREA, as two matrix products."""
    rows = torch.from_numpy(_area_weights(x.shape[-2], height)).to(x)
    columns = torch.from_numpy(_area_weights(x.shape[-1], width)).to(x)
    return rows @ x @ columns.T


@functools.lru_cache(maxsize=32)
def _area_weights(source: int, target: int) -> np.ndarray:
    """The (target, source) matrix of cv2's INTER_AREA shrinking (``computeResizeAreaTab``): each output sample
    averages the input samples its cell covers, weighted by the covered fraction (below 1e-3 of a sample: none)."""
    scale = source / target
    weights = np.zeros((target, source), dtype=np.float32)
    for index in range(target):
        start = index * scale
        end = start + scale
        cell = min(scale, source - start)
        first, last = math.ceil(start), min(math.floor(end), source - 1)
        first = min(first, last)
        if first - start > 1e-3:
            weights[index, first - 1] = (first - start) / cell
        weights[index, first:last] = 1.0 / cell
        if end - last > 1e-3:
            weights[index, last] = min(end - last, 1.0, cell) / cell
    return weights


def _downsample_and_noise(image: torch.Tensor, params: DegradationParams, noise, size: tuple[int, int]) -> torch.Tensor:
    """(x * k_sigma) downsampled by r + n_delta, for one (3, H, W) image; ``noise`` is its (h, w, 3) ``noise_field``."""
    if params.scale is not None:
        image = _interpolate(image, size, _downsample_mode(params))
    if params.noise_std is not None:
        if noise is None or tuple(noise.shape) != (*size, 3):
            raise ValueError(f"expected a noise field of shape {(*size, 3)}, got {None if noise is None else tuple(noise.shape)}")
        field = noise.to(image.device, non_blocking=True).permute(2, 0, 1)
        image = (image + field * float(np.float32(params.noise_std / 255.0))).clamp(0.0, 1.0)
    return image


def _jpeg_batch(images: list[torch.Tensor], qualities: list[int | None]) -> list[torch.Tensor]:
    """JPEG_q of each (3, h, w) image in [0, 1] with torchvision's codec on the images' device (``None``: unchanged);
    the images of one quality are encoded together, and all are decoded together.

    On the CPU this is libjpeg, whose bytes are OpenCV's. On CUDA it is nvJPEG, which encodes the chroma at full
    resolution (4:4:4) where libjpeg subsamples it (4:2:0), so there the stage degrades colour a little less.
    """
    coded = [i for i, quality in enumerate(qualities) if quality is not None]
    if not coded:
        return images
    device = images[coded[0]].device
    as_bytes = {i: (images[i] * 255.0).round().clamp(0, 255).to(torch.uint8).contiguous() for i in coded}
    streams = {}
    for quality in sorted({qualities[i] for i in coded}):
        group = [i for i in coded if qualities[i] == quality]
        for i, stream in zip(group, encode_jpeg([as_bytes[i] for i in group], quality=quality)):
            streams[i] = stream.cpu()  # decode_jpeg reads the streams from host memory, whatever its device
    if device.type == "cuda":  # nvJPEG decodes on its own stream, unordered with work queued on ours (pytorch/vision#9606)
        torch.cuda.synchronize(device)
    decoded = decode_jpeg([streams[i] for i in coded], mode=ImageReadMode.RGB, device=device)
    result = list(images)
    for i, image in zip(coded, decoded):
        result[i] = image.float() / 255.0
    return result


def _colour_batch(x: torch.Tensor, params: list[DegradationParams]) -> torch.Tensor:
    """The colour shift, gray and photometric jitter of ``degrade``, each on the images that drew it."""
    shifted = [i for i, p in enumerate(params) if p.color_shift is not None]
    if shifted:
        shifts = torch.tensor([params[i].color_shift for i in shifted], dtype=torch.float32, device=x.device) / 255.0
        x[shifted] = (x[shifted] + shifts[:, :, None, None]).clamp(0.0, 1.0)
    gray = [i for i, p in enumerate(params) if p.gray]
    if gray:
        x[gray] = _luma(x[gray]).expand(-1, 3, -1, -1)
    for position in range(max(len(p.photometric) for p in params)):  # each image's operations in its own order
        for name, operation in _PHOTOMETRIC_BATCH.items():
            chosen = [i for i, p in enumerate(params) if len(p.photometric) > position and p.photometric[position][0] == name]
            if chosen:
                x[chosen] = operation(x[chosen], [params[i].photometric[position][1] for i in chosen])
    return x


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) gray of (N, 3, H, W) RGB, with cv2's RGB2GRAY weights."""
    return x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114


def _blend_batch(x: torch.Tensor, other, factors: list[float]) -> torch.Tensor:
    factor = torch.tensor(factors, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    rest = torch.tensor([1.0 - f for f in factors], dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    return (factor * x + rest * other).clamp(0.0, 1.0)


def _adjust_hue_batch(x: torch.Tensor, factors: list[float]) -> torch.Tensor:
    hue, saturation, value = _rgb_to_hsv(x)
    turn = torch.tensor([f * 360.0 for f in factors], dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return _hsv_to_rgb(torch.remainder(hue + turn, 360.0), saturation, value).clamp(0.0, 1.0)


_FLT_EPSILON = float(np.finfo(np.float32).eps)
# per sector of the hue circle, the (b, g, r) entries of (v, v (1 - s), v (1 - s f), v (1 - s (1 - f))) (cv2's table)
_HSV_SECTORS = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1, 0))


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cv2's float RGB2HSV: hue in degrees [0, 360), saturation and value in [0, 1]; each (N, H, W)."""
    red, green, blue = x.unbind(1)
    value = torch.maximum(torch.maximum(red, green), blue)
    spread = value - torch.minimum(torch.minimum(red, green), blue)
    saturation = spread / (value.abs() + _FLT_EPSILON)
    per_unit = 60.0 / (spread + _FLT_EPSILON)
    hue = torch.where(
        value == red, (green - blue) * per_unit, torch.where(value == green, (blue - red) * per_unit + 120.0, (red - green) * per_unit + 240.0)
    )
    return torch.where(hue < 0, hue + 360.0, hue), saturation, value


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """cv2's float HSV2RGB, to (N, 3, H, W)."""
    sixths = torch.remainder(hue * (6.0 / 360.0), 6.0)
    sector = sixths.floor()
    within = sixths - sector
    table = torch.stack([value, value * (1 - saturation), value * (1 - saturation * within), value * (1 - saturation * (1 - within))])
    order = torch.tensor(_HSV_SECTORS, device=hue.device)[sector.long().clamp(0, 5)]  # (N, H, W, 3): b, g, r
    blue, green, red = (table.gather(0, order[None, ..., k]).squeeze(0) for k in range(3))
    rgb = torch.stack([red, green, blue], dim=1)
    return torch.where((saturation == 0)[:, None], value[:, None], rgb)


_PHOTOMETRIC_BATCH = {
    "brightness": lambda x, factors: _blend_batch(x, 0.0, factors),
    "contrast": lambda x, factors: _blend_batch(x, _luma(x).mean(dim=(1, 2, 3), keepdim=True), factors),
    "saturation": lambda x, factors: _blend_batch(x, _luma(x), factors),
    "hue": _adjust_hue_batch,
}


def _check_modes(name: str, modes, known) -> None:
    if not isinstance(modes, tuple) or not modes or any(mode not in known for mode in modes):
        raise ValueError(f"{name} must be a non-empty list of {', '.join(known)}, got {modes!r}")


def _check_between(name: str, value: float, lowest: float, highest: float) -> None:
    if not lowest <= value <= highest:
        raise ValueError(f"{name} must be in [{lowest}, {highest}], got {value!r}")


def _check_range(name: str, value, lowest: float = -math.inf, highest: float = math.inf, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, tuple) or len(value) != 2 or not lowest <= value[0] <= value[1] <= highest:
        raise ValueError(f"{name} must be (low, high) with {lowest} <= low <= high <= {highest}, got {value!r}")
