"""The synthetic degradation model of GFP-GAN, used to make training pairs and paired test sets.

    y = JPEG_q((x * k_sigma) downsampled by r + n_delta), resized back to the size of x

followed by the colour degradations of GFP-GAN's ``FFHQDegradationDataset``: a random shift of the
RGB values, conversion to gray, and a photometric jitter (brightness, contrast, saturation, hue in a
random order). Only the degraded image is changed, never the ground truth.

The blur width, downsampling factor, noise and JPEG blocks are measured in pixels of a face of GFP-GAN's
training size, 512 px (``reference_resolution``). A face of another size is degraded as a 512-px photo of
it would be: resized to 512, blurred, downsampled, noised and compressed there, and resized back. Applied
at 64 px as they stand, the same numbers would blur with sigma up to 80 px of a 512 face and shrink it to 8 px.

One call draws its random choices into a ``DegradationParams`` (``sample_degradation``) and then
applies them (``degrade``), so a degradation can be recorded in a manifest and replayed exactly.
Images are processed as float32 RGB in [0, 1]; the result is rounded to 8 bits, as in GFP-GAN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from .images import resize

Range = tuple[float, float]


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
    if config.clean_prob > 0 and rng.random() < config.clean_prob:
        return DegradationParams(
            kernel_size=config.kernel_size,
            kernel_type=None,
            sigma_x=None,
            sigma_y=None,
            rotation=None,
            scale=None,
            noise_std=None,
            noise_seed=None,
            jpeg_quality=None,
            color_shift=None,
            gray=False,
            photometric=(),
            reference_resolution=config.reference_resolution,
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
    if params.reference_resolution is not None:
        x = _resize_longer_side(x, params.reference_resolution)
    reference_height, reference_width = x.shape[:2]
    if params.kernel_type is not None:
        # x * k_sigma (cv2.filter2D correlates; a Gaussian kernel is point-symmetric, so this is the convolution)
        kernel = gaussian_blur_kernel(params.kernel_size, params.sigma_x, params.sigma_y, params.rotation)
        x = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    if params.scale is not None:
        # downsampled by r
        size = (max(1, int(reference_width // params.scale)), max(1, int(reference_height // params.scale)))
        x = cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)
    if params.noise_std is not None:
        # + n_delta, with n_delta ~ N(0, (delta / 255)^2) independently per pixel and channel
        noise = np.random.default_rng(params.noise_seed).standard_normal(x.shape, dtype=np.float32)
        x = np.clip(x + noise * np.float32(params.noise_std / 255.0), 0.0, 1.0)
    if params.jpeg_quality is not None:
        x = _jpeg(x, params.jpeg_quality)
    x = cv2.resize(x, (reference_width, reference_height), interpolation=cv2.INTER_LINEAR)
    if (reference_height, reference_width) != (height, width):
        x = np.clip(resize(x, width, height), 0.0, 1.0)
    return x


def _resize_longer_side(x: np.ndarray, length: int) -> np.ndarray:
    height, width = x.shape[:2]
    scale = length / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return x
    return np.clip(resize(x, *size), 0.0, 1.0)


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


def _check_between(name: str, value: float, lowest: float, highest: float) -> None:
    if not lowest <= value <= highest:
        raise ValueError(f"{name} must be in [{lowest}, {highest}], got {value!r}")


def _check_range(name: str, value, lowest: float = -math.inf, highest: float = math.inf, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, tuple) or len(value) != 2 or not lowest <= value[0] <= value[1] <= highest:
        raise ValueError(f"{name} must be (low, high) with {lowest} <= low <= high <= {highest}, got {value!r}")
