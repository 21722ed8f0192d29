"""Image-quality metrics on batches of images (``facerest.evaluation`` scores folders and test sets with them).

Every metric takes *images*: an (H, W, 3) or (N, H, W, 3) uint8 RGB array, a sequence of (H, W, 3) uint8 arrays
(sizes may differ between pairs), or a float tensor (N, 3, H, W) in [-1, 1] (rounded to uint8 first, as when it is
saved). Paired metrics take restored and ground-truth batches of the same length and sizes, and return one value
per image (the folder score is their mean, as in basicsr).

==========  ====  =========================================================================================
metric      best  convention
==========  ====  =========================================================================================
PSNR        high  on **RGB** in [0, 255], all three channels; ``inf`` for identical images
SSIM        high  on **RGB** in [0, 255], basicsr's: 11 x 11 Gaussian window (sigma 1.5), per channel, averaged
LPIPS       low   the ``lpips`` package, AlexNet backbone, v0.1 linear layers; inputs in [-1, 1]
NIQE        low   basicsr's port of the MATLAB release: Y channel (BT.601), 96 x 96 blocks, pristine parameters
FID         low   Frechet distance of pytorch-fid's Inception pool3 features (2048-d), float64
identity    low   angle in degrees between ArcFace embeddings (GFP-GAN's ResNet-IR18, 128 x 128 gray)
==========  ====  =========================================================================================

Weights are located with ``facerest.weights.find_weights`` (explicit path, ``$FACEREST_WEIGHTS_DIR``, the extra
folders given, torch's hub cache for the torchvision/pytorch-fid files, facerest's cache, then a download unless
offline). The random-backbone LPIPS (``lpips-random``) and a random-weight ``FIDInception()`` need no download;
their numbers are not comparable with published ones.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from scipy.ndimage import convolve
from scipy.special import gamma
from torch import nn

from .devices import resolve_device
from .errors import FacerestError, import_package
from .images import image_to_tensor, tensor_to_image
from .models.arcface import ArcFaceResNet18
from .weights import find_weights, torch_hub_checkpoints_dir


Images = Union[np.ndarray, Sequence[np.ndarray], torch.Tensor]

NIQE_FILENAME = "niqe_pris_params.npz"
NIQE_URL = "https://raw.githubusercontent.com/XPixelGroup/BasicSR/master/basicsr/metrics/niqe_pris_params.npz"
ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
FID_INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_INCEPTION_FILENAME


# ----------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------


def as_images(images: Images) -> list[np.ndarray]:
    """A batch of images (see the module docstring for the accepted forms) as a list of (H, W, 3) uint8 arrays."""
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a tensor of shape (N, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        return [tensor_to_image(image) for image in images]
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[None]
    result = list(images)
    for image in result:
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            described = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
            raise ValueError(f"expected uint8 RGB images of shape (H, W, 3), got a {described}")
    return result


def _as_pairs(restored: Images, gt: Images) -> tuple[list[np.ndarray], list[np.ndarray]]:
    restored, gt = as_images(restored), as_images(gt)
    if len(restored) != len(gt):
        raise ValueError(f"got {len(restored)} restored images but {len(gt)} ground-truth images")
    for index, (a, b) in enumerate(zip(restored, gt)):
        if a.shape != b.shape:
            raise ValueError(f"pair {index}: restored image is {a.shape}, ground truth is {b.shape}")
    return restored, gt


def _batch_slices(images: list[np.ndarray], batch_size: int) -> Iterator[slice]:
    """Runs of consecutive same-sized images, at most ``batch_size`` long, so each stacks into one tensor."""
    start = 0
    for end in range(1, len(images) + 1):
        if end == len(images) or end - start == batch_size or images[end].shape != images[start].shape:
            yield slice(start, end)
            start = end


def _to_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.stack([image_to_tensor(image) for image in images]).to(device)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------------------------------------------
# PSNR and SSIM (RGB or luma, [0, 255])
# ----------------------------------------------------------------------------------------------------------------


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma Y of an RGB uint8 image, float64 in [16, 235] (MATLAB's ``rgb2ycbcr``, as basicsr's
    ``test_y_channel`` takes it): the channel many super-resolution and restoration papers report PSNR and SSIM on."""
    return 16.0 + image.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0


def _pixels(image: np.ndarray, on_luma: bool) -> np.ndarray:
    return luma(image) if on_luma else image.astype(np.float64)


def psnr(restored: Images, gt: Images, on_luma: bool = False) -> np.ndarray:
    """Peak signal-to-noise ratio per image on RGB in [0, 255] (`on_luma`: on its `luma`): ``10 log10(255^2 /
    MSE)``, in dB."""
    values = []
    for a, b in zip(*_as_pairs(restored, gt)):
        mse = np.mean((_pixels(a, on_luma) - _pixels(b, on_luma)) ** 2)
        values.append(np.inf if mse == 0 else 10.0 * np.log10(255.0**2 / mse))
    return np.array(values)


def gradient_sharpness(image: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of an RGB uint8 image's gray levels (gray levels per pixel): it falls when an
    image is blurred, so comparing a face's value before and after restoration tells whether it came out blurrier."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)).mean())


def laplacian_variance(image: np.ndarray) -> float:
    """Variance of the Laplacian of an RGB uint8 image's gray levels (the common blur measure): it weighs the finest
    detail more than `gradient_sharpness` does, so a change that sharpens edges while smoothing fine texture can raise
    one and lower the other."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


_SSIM_KERNEL = cv2.getGaussianKernel(11, 1.5)  # separable: the 11 x 11 window is its outer product
_SSIM_MARGIN = 5  # half the window: only pixels whose whole window lies inside the image are averaged
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def ssim(restored: Images, gt: Images, on_luma: bool = False) -> np.ndarray:
    """Structural similarity per image on RGB in [0, 255] (basicsr's / Wang et al.'s, per channel, averaged;
    `on_luma`: on its `luma` alone).

    ``SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))`` with local
    statistics under an 11 x 11 Gaussian window (sigma 1.5), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``,
    averaged over the pixels whose window fits in the image and over the three channels.
    """
    values = []
    for a, b in zip(*_as_pairs(restored, gt)):
        if min(a.shape[:2]) <= 2 * _SSIM_MARGIN:
            raise ValueError(f"SSIM needs images larger than 11 x 11 pixels, got {a.shape[1]}x{a.shape[0]}")
        x, y = _pixels(a, on_luma), _pixels(b, on_luma)
        mu_x, mu_y = _ssim_local_mean(x), _ssim_local_mean(y)
        sigma_x2 = _ssim_local_mean(x * x) - mu_x**2
        sigma_y2 = _ssim_local_mean(y * y) - mu_y**2
        sigma_xy = _ssim_local_mean(x * y) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + _SSIM_C1) * (2 * sigma_xy + _SSIM_C2)) / (
            (mu_x**2 + mu_y**2 + _SSIM_C1) * (sigma_x2 + sigma_y2 + _SSIM_C2)
        )
        values.append(ssim_map.mean())
    return np.array(values)


def _ssim_local_mean(image: np.ndarray) -> np.ndarray:
    m = _SSIM_MARGIN
    return cv2.sepFilter2D(image, -1, _SSIM_KERNEL, _SSIM_KERNEL)[m:-m, m:-m]


# ----------------------------------------------------------------------------------------------------------------
# NIQE (Mittal et al., "Making a 'completely blind' image quality analyzer"), as basicsr's port of the MATLAB code
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class NIQEParams:
    """The multivariate Gaussian fitted to pristine images' block features, and the 7 x 7 smoothing window."""

    mu: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)
    gaussian_window: np.ndarray  # (7, 7)


def load_niqe_params(path: str | os.PathLike | None = None, extra_dirs: Sequence[os.PathLike] = ()) -> NIQEParams:
    """Read ``niqe_pris_params.npz`` (basicsr's copy of the MATLAB release's parameters).

    Looked for at ``path`` (the file or its folder), then in ``$FACEREST_WEIGHTS_DIR`` (and one level of
    sub-folders), ``extra_dirs``, facerest's cache, and finally downloaded from BasicSR's repository unless offline.
    """
    params_path = find_weights(NIQE_FILENAME, url=NIQE_URL, explicit=path, extra_dirs=tuple(map(Path, extra_dirs)))
    with np.load(params_path) as params:
        missing = {"mu_pris_param", "cov_pris_param", "gaussian_window"} - set(params.files)
        if missing:
            raise FacerestError(f"{params_path} is not a NIQE parameter file: it lacks {', '.join(sorted(missing))}")
        return NIQEParams(
            mu=params["mu_pris_param"].astype(np.float64).ravel(),
            cov=params["cov_pris_param"].astype(np.float64),
            gaussian_window=params["gaussian_window"].astype(np.float64),
        )


def niqe(images: Images, params: NIQEParams, crop_border: int = 0, block_size: int = 96) -> np.ndarray:
    """NIQE per image (no reference; lower is better), as basicsr's ``calculate_niqe(img, crop_border)``.

    The score is computed on the rounded BT.601 luma (MATLAB's ``rgb2ycbcr`` Y channel) after cropping
    ``crop_border`` pixels from each edge. An image needs at least two ``block_size`` blocks. Arithmetic is float64,
    as in MATLAB; basicsr computes the local variance in float32, which on smooth 256-px faces moves its score by
    up to about 0.1 (elsewhere the two agree to 1e-4).
    """
    values = []
    for image in as_images(images):
        luma = _matlab_luma(image)
        if crop_border:
            luma = luma[crop_border:-crop_border, crop_border:-crop_border]
        values.append(_niqe_of_luma(luma.round(), params, block_size))
    return np.array(values)


def _matlab_luma(image: np.ndarray) -> np.ndarray:
    """Y of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio swing 16..235) of an RGB uint8 image, as float."""
    rgb = image.astype(np.float64) / 255.0
    return rgb @ np.array([65.481, 128.553, 24.966]) + 16.0


def _niqe_of_luma(luma: np.ndarray, params: NIQEParams, block_size: int) -> float:
    blocks_h, blocks_w = luma.shape[0] // block_size, luma.shape[1] // block_size
    if blocks_h * blocks_w < 2:
        raise FacerestError(
            f"NIQE needs images with at least two {block_size}x{block_size} blocks, got {luma.shape[1]}x{luma.shape[0]}"
        )
    image = luma[: blocks_h * block_size, : blocks_w * block_size]
    features_per_scale = []
    for scale in (1, 2):
        # Mean-subtracted contrast-normalised coefficients, Eq. 1 of the paper.
        mu = convolve(image, params.gaussian_window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(image**2, params.gaussian_window, mode="nearest") - mu**2))
        mscn = (image - mu) / (sigma + 1)
        size = block_size // scale
        with warnings.catch_warnings():  # a flat block has no negative/positive side: NaN features, dropped below
            warnings.simplefilter("ignore", RuntimeWarning)
            features_per_scale.append(
                np.array(
                    [
                        _block_features(mscn[i * size : (i + 1) * size, j * size : (j + 1) * size])
                        for i in range(blocks_h)
                        for j in range(blocks_w)
                    ]
                )
            )
        if scale == 1:
            image = _matlab_bicubic_downscale(image / 255.0, 0.5) * 255.0
    features = np.concatenate(features_per_scale, axis=1)  # (blocks, 36)

    # Fit a multivariate Gaussian to the image's blocks and compare it with the pristine one, Eq. 10:
    # D = sqrt((mu_p - mu_d)^T ((Sigma_p + Sigma_d) / 2)^+ (mu_p - mu_d)).
    mu_distorted = np.nanmean(features, axis=0)
    cov_distorted = np.cov(features[~np.isnan(features).any(axis=1)], rowvar=False)
    difference = params.mu - mu_distorted
    return float(np.sqrt(difference @ np.linalg.pinv((params.cov + cov_distorted) / 2) @ difference))


# The AGGD shape is found by table look-up over alpha in [0.2, 10] (step 0.001), as in the MATLAB release:
# rho(alpha) = Gamma(2/alpha)^2 / (Gamma(1/alpha) Gamma(3/alpha)).
_AGGD_ALPHAS = np.arange(0.2, 10.001, 0.001)
_AGGD_RHO = gamma(2 / _AGGD_ALPHAS) ** 2 / (gamma(1 / _AGGD_ALPHAS) * gamma(3 / _AGGD_ALPHAS))


def _aggd_parameters(values: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalised Gaussian (Eq. 7): shape alpha, left and right scales."""
    values = values.ravel()
    left_std = np.sqrt(np.mean(values[values < 0] ** 2))
    right_std = np.sqrt(np.mean(values[values > 0] ** 2))
    gamma_hat = left_std / right_std
    r_hat = np.mean(np.abs(values)) ** 2 / np.mean(values**2)
    r_hat_normalized = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _AGGD_ALPHAS[np.argmin((_AGGD_RHO - r_hat_normalized) ** 2)]
    to_scale = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left_std * to_scale, right_std * to_scale


def _block_features(block: np.ndarray) -> list[float]:
    """The 18 features of one block: AGGD of the coefficients, and of their products with 4 neighbours."""
    alpha, left, right = _aggd_parameters(block)
    features = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # horizontal, vertical, main and anti diagonal
        alpha, left, right = _aggd_parameters(block * np.roll(block, shift, axis=(0, 1)))
        mean = (right - left) * gamma(2 / alpha) / gamma(1 / alpha)  # Eq. 8
        features += [alpha, mean, left, right]
    return features


def _matlab_bicubic_downscale(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's ``imresize(image, scale)`` for scale < 1: bicubic (a = -0.5) with antialiasing, symmetric edges."""
    return _matlab_resize_matrix(image.shape[0], scale) @ image @ _matlab_resize_matrix(image.shape[1], scale).T


def _matlab_resize_matrix(in_length: int, scale: float) -> np.ndarray:
    """The (out_length, in_length) matrix of MATLAB's antialiased bicubic downscaling along one axis."""
    out_length = math.ceil(in_length * scale)
    kernel_width = 4 / scale  # the cubic kernel stretched by 1/scale, which low-passes before subsampling
    centers = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinates
    first = np.floor(centers - kernel_width / 2)
    taps = first[:, None] + np.arange(math.ceil(kernel_width) + 2)[None, :]
    distance = (centers[:, None] - taps) * scale
    x = np.abs(distance)
    cubic = np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1, np.where(x <= 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0))
    weights = scale * cubic
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: 0-based index -1 reads pixel 0, -2 reads pixel 1, in_length reads in_length - 1, ...
    index = taps.astype(int) - 1
    index = np.where(index < 0, -index - 1, index)
    index = np.where(index >= in_length, 2 * in_length - 1 - index, index)
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), index.shape[1]), index.ravel()), weights.ravel())
    return matrix


# ----------------------------------------------------------------------------------------------------------------
# LPIPS (AlexNet)
# ----------------------------------------------------------------------------------------------------------------


def load_lpips(
    random_backbone: bool = False,
    device: str | torch.device | None = None,
    extra_dirs: Sequence[os.PathLike] = (),
    seed: int = 0,
) -> nn.Module:
    """The ``lpips`` package's LPIPS v0.1 with the AlexNet backbone, built without letting it download anything.

    The calibrated linear layers ship with ``lpips``. The backbone is torchvision's ImageNet AlexNet
    (``alexnet-owt-7be5be79.pth``, located by ``find_weights`` and torch's hub cache), or, with
    ``random_backbone=True``, a randomly initialised AlexNet seeded with ``seed``: reproducible, but its values
    are not comparable with published LPIPS.
    """
    lpips = import_package("lpips", "lpips", "LPIPS")
    alexnet_state = None
    if not random_backbone:
        dirs = (*map(Path, extra_dirs), torch_hub_checkpoints_dir())
        alexnet_path = find_weights(ALEXNET_FILENAME, url=ALEXNET_URL, extra_dirs=dirs)
        alexnet_state = torch.load(alexnet_path, map_location="cpu", weights_only=True)
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision's deprecated `pretrained=` argument
        torch.manual_seed(seed)
        model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    linear_path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    linear_state = torch.load(linear_path, map_location="cpu", weights_only=True)
    for index, layer in enumerate(model.lins):
        layer.load_state_dict({"model.1.weight": linear_state[f"lin{index}.model.1.weight"]})
    if alexnet_state is not None:
        # lpips splits torchvision's `features` Sequential into slices that keep the original module indices.
        for part in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            part.load_state_dict({name: alexnet_state[f"features.{name}"] for name in part.state_dict()})
    return model.to(resolve_device(device)).eval()


@torch.no_grad()
def lpips_distance(restored: Images, gt: Images, model: nn.Module, batch_size: int = 16) -> np.ndarray:
    """LPIPS per image pair with a model from ``load_lpips`` (lower is more similar)."""
    restored, gt = _as_pairs(restored, gt)
    device = _model_device(model)
    values = []
    for part in _batch_slices(restored, batch_size):
        distance = model(_to_tensor(restored[part], device), _to_tensor(gt[part], device))
        values.append(distance.flatten().double().cpu().numpy())
    return np.concatenate(values) if values else np.zeros(0)


# ----------------------------------------------------------------------------------------------------------------
# FID
# ----------------------------------------------------------------------------------------------------------------


class FIDInception(nn.Module):
    """pytorch-fid's FID Inception v3 (TensorFlow's 2015-12-05 graph) up to pool3: (N, 3, H, W) in [-1, 1] -> (N, 2048).

    Inputs are resized to 299 x 299 bilinearly, as pytorch-fid does. ``FIDInception()`` has random weights (for
    tests only); ``FIDInception.from_pretrained()`` loads pytorch-fid's ported weights.
    """

    def __init__(self):
        super().__init__()
        fid = import_package("pytorch_fid.inception", "pytorch-fid", "FID")
        net = fid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        # The blocks whose TensorFlow version differs from torchvision's, as pytorch-fid's fid_inception_v3().
        net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = fid.FIDInceptionE_1(1280)
        net.Mixed_7c = fid.FIDInceptionE_2(2048)
        self.net = net

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, extra_dirs: Sequence[os.PathLike] = ()
    ) -> "FIDInception":
        """Load ``pt_inception-2015-12-05-6726825d.pth``, located by ``find_weights`` (also in torch's hub cache)."""
        model = cls()  # first: a missing pytorch-fid is said before any download
        dirs = (*map(Path, extra_dirs), torch_hub_checkpoints_dir())
        weights = find_weights(FID_INCEPTION_FILENAME, url=FID_INCEPTION_URL, explicit=path, extra_dirs=dirs)
        model.net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        for name, layer in self.net.named_children():  # children in forward order; stop after global pooling
            if name == "dropout":
                break
            x = layer(x)
        return x.flatten(1)


@torch.no_grad()
def inception_features(images: Images, model: FIDInception, batch_size: int = 32) -> np.ndarray:
    """(N, 2048) float64 pool3 features of a batch of images."""
    images = as_images(images)
    device = _model_device(model)
    features = [
        model(_to_tensor(images[part], device)).double().cpu().numpy() for part in _batch_slices(images, batch_size)
    ]
    return np.concatenate(features) if features else np.zeros((0, 2048))


@dataclass
class FIDStatistics:
    """Mean and covariance of Inception features; saved as ``.npz`` with ``mu`` and ``sigma`` (pytorch-fid's layout)."""

    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FIDStatistics":
        if len(features) < 2:
            raise FacerestError(f"FID needs at least 2 images, got {len(features)}")
        features = np.asarray(features, dtype=np.float64)
        return cls(mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mu=self.mu, sigma=self.sigma)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FIDStatistics":
        path = Path(path)
        if not path.is_file():
            raise FacerestError(f"FID statistics file not found: {path}")
        try:
            with np.load(path) as data:
                mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
        except (KeyError, ValueError, OSError) as error:
            raise FacerestError(f"{path} is not an .npz file with 'mu' and 'sigma' arrays: {error}") from None
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
            raise FacerestError(f"{path}: expected mu (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
        return cls(mu=mu, sigma=sigma)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64:

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.

    As pytorch-fid: when the matrix square root is not finite (a singular product), ``eps`` is added to both
    diagonals; an imaginary part left by rounding is dropped, and one above 1e-3 on the diagonal is an error.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    difference = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"the covariance square root has an imaginary part of {np.max(np.abs(covmean.imag)):g}")
        covmean = covmean.real
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------------------------------------------
# Identity (ArcFace angle)
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def identity_angle(restored: Images, gt: Images, arcface: ArcFaceResNet18, batch_size: int = 32) -> np.ndarray:
    """Angle in degrees between the ArcFace embeddings of each restored face and its ground truth (lower is better)."""
    restored, gt = _as_pairs(restored, gt)
    device = _model_device(arcface)
    values = []
    for part in _batch_slices(restored, batch_size):
        embedded = [
            arcface(arcface.prepare_input(_to_tensor(batch[part], device))).double() for batch in (restored, gt)
        ]
        cosine = F.cosine_similarity(*embedded, dim=1).clamp(-1.0, 1.0)
        values.append(torch.rad2deg(torch.arccos(cosine)).cpu().numpy())
    return np.concatenate(values) if values else np.zeros(0)
