"""White noise at a face's own pixels: its level, and a denoised copy for the model to restore.

The models undo blur and lost resolution, but noise at the resolution they restore at passes through them much as it
is (docs/what-the-default-undoes.md), so the pipeline gives a noisy face to the model through non-local means first.
Both happen at the image's own pixels, before a face is aligned and resized: resampling smooths white noise (a face
aligned from a photo at about its own size read a third of its noise) and would hide it from the estimate.

The level is the robust standard deviation of the finest diagonal Haar band (``HH``: one pixel's difference from its
neighbours, where a face's structure is weakest and white noise keeps its full variance) in the flattest blocks of
the face: the root mean square of ``HH`` over blocks of ``NOISE_BLOCK`` x ``NOISE_BLOCK`` coefficients, its
``NOISE_QUANTILE``-th percentile over the blocks divided by that percentile's expected value under white noise of
level 1 (the square root of a chi-squared quantile over its degrees of freedom), the median over the three channels.
Blocks of hair or lashes hold strong ``HH`` without noise; taking the flattest blocks keeps such texture from passing
for noise (the median over a whole face did not: a face under a net of hair read as noise of 13 grey levels). Where
the flattest blocks are themselves texture (grass or gravel behind a small face fills most of its region), the band
one octave coarser tells it from noise: white noise halves there, texture does not (``next_band_ratio``).

A camera's JPEG takes white noise's finest band and leaves its coarser grain (a low-light photo as it is saved): the
finest band then reads nearly clean while the image at half its size still shows the grain. So a face whose finest band
reads clean is measured again at half its size (``grain_level``), and denoised where the grain there reads as noise,
at the level white noise of that grain would read at the face's own pixels (twice the grain's).

A face larger than the model's face size keeps the photo's own detail finer than the model's pixels (the model never
sees that band), less what reads as noise in its finest octave (``fine_noise``): that band is shrunk by a local Wiener
gain, 1 - floor / energy, where the energy is the band's square averaged over a Gaussian window of
``FINE_BAND_WINDOW`` times the band's pixel and the floor is its ``FINE_BAND_FLOOR_PERCENTILE``-th percentile over the
image, the level the band holds even in the flattest parts of the face. Noise and JPEG blocks cover a face evenly and
reach that floor; a face's own detail gathers at its edges (eyes, lashes, hair), far above it, and is kept.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from scipy.stats import chi2

from .images import halved, is_monochrome, resize

# HH coefficients along a block's side (a block covers 16 x 16 pixels).
NOISE_BLOCK = 8
# The percentile of the blocks' levels taken as the face's: the flattest tenth of the face.
NOISE_QUANTILE = 10
# That percentile of a block's root mean square under white noise of level 1 (0.884): what the reading is divided by.
_QUANTILE_UNDER_UNIT_NOISE = float(np.sqrt(chi2.ppf(NOISE_QUANTILE / 100, NOISE_BLOCK**2) / NOISE_BLOCK**2))
# A face is denoised above this level (grey levels of 255): faint noise is left to the model, and a margin kept for
# faces whose texture reads higher than any here. The 1,100 clean faces of ffhq256 read at most 3.89 (0.42 in the
# median), the degraded faces of the 256-px test set at most 4.45, those of realworld_lq at most 1.42; white noise of
# standard deviation 6 reads 6.22 in the median face, 8 reads 8.18.
DENOISE_ABOVE = 6.0
# A face whose finest band reads at most DENOISE_ABOVE is denoised where its grain, the noise level of the face at half
# its size, is above this (grey levels there) and reads as noise there too (`next_band_ratio` of the halved face under
# TEXTURE_BAND_RATIO). The regions around the faces of four photos from outside the project (docs/restoring.md, "Noisy
# faces") with white noise of 20 grey levels saved as JPEG of quality 50 read 3.2-5.5 at their own pixels and 6.0-6.9
# halved. Of clean faces read as noise there, the 1,000 of ffhq256/train at most 3.1 and its 100 test faces at most
# 4.2 (a freckled face); a margin above that keeps them.
GRAIN_ABOVE = 5.0
# White noise halves one octave coarser (the diagonal band of 2 x 2 pixels' means holds a quarter of its variance), a
# photo's own fine texture does not: a face is denoised only where that band, in the flattest tenth of the blocks,
# reads under this share of the finest band's (`next_band_ratio`). Clean 48- to 110-px faces set before scikit-image's
# `grass` and `gravel` read 1.27-1.84 there and 6.0-11.0 as noise; the regions of `whole_imgs` faces with white noise
# of 6-15 grey levels, at most 0.85 (docs/restoring.md, "Noisy faces").
TEXTURE_BAND_RATIO = 1.0
# Only an image at least this large is measured (an aligned face; a photo's region around a face, which `face_region`
# grows to this size): where a face fills a smaller one, its own finest detail reads as noise (ffhq256's clean test
# faces shrunk to 64 px: 4.47 in the median, 36 of 100 above DENOISE_ABOVE; at 192 px 0.61, one of 100 at 5.08).
MIN_DENOISED_SIZE = 192
# A face of at most this many levels in each channel (a 1-bit or few-colour image, dithered) is left as it is: its
# dither reads as strong noise (a 1-bit photo's face: 92 grey levels), and smoothing the region of one face of it
# would leave a grey patch in a dithered photo.
MAX_DITHERED_LEVELS = 16
# The region of a photo around a face that is measured and denoised: its box grown to this many times its longer
# side, about what the aligned 512-px crop of the face covers, and further to MIN_DENOISED_SIZE around a smaller face
# (`face_region`), where the background then holds the flattest blocks the level is read from.
FACE_REGION_SCALE = 2.0
# The denoised region fades into the photo over this fraction of its side (not at the photo's own edges), so that no
# rectangle shows where the noise stops.
REGION_FEATHER = 1 / 8
# Non-local means' filter strength h per grey level of noise, and its patch and search windows (pixels). Through the
# default model, on 24 test faces with white noise of standard deviation 6, 15 and 30, 0.6-0.8 did best at 6 and 15
# (within 0.25 dB), 1.0 at 30; the lowest keeps the most texture (skin still comes out smooth, freckles gone).
FILTER_STRENGTH_PER_LEVEL = 0.6
# The same for gray images, filtered on their gray levels (the colour filter works on lightness, where the noise reads
# lower): 1.0-1.2 did best on 8 gray test faces alone at 8, 15 and 30, 0.6 gained a third as much; 0.9 keeps texture.
GRAY_FILTER_STRENGTH_PER_LEVEL = 0.9
PATCH_SIZE = 5
SEARCH_SIZE = 15
# The fine band's local energy is averaged over a Gaussian of this standard deviation, in the band's pixels, and its
# floor is this percentile of that energy. On the 100 test faces at 512 px (`runs/testset512`) through the default
# model, windows of 2 and 4 and percentiles of 3 and 10 all raised PSNR and SSIM and lowered NIQE; 4 and 10 did most
# (docs/experiments.md, "The finest octave above the model's resolution").
FINE_BAND_WINDOW = 4.0
FINE_BAND_FLOOR_PERCENTILE = 10
# Only the finest octave, detail finer than this many pixels, is cleaned so, and only where the model's pixels span it:
# there white noise is strongest and a face's own detail sparse. Coarser bands above a smaller model's resolution (a
# 64-px model's pixel is 8 px of a 512-px face) hold the face's shading and features, which the floor would thin out.
FINE_BAND_PIXELS = 2.0


def noise_level(image: np.ndarray) -> float:
    """The standard deviation of the white noise in an RGB uint8 image, in grey levels of 255 (see the module)."""
    finest = _block_levels(_diagonal_band(_whole_blocks(image)), NOISE_BLOCK)
    if finest.size == 0:
        return 0.0
    quantiles = np.percentile(finest, NOISE_QUANTILE, axis=0)
    return float(np.median(quantiles)) / _QUANTILE_UNDER_UNIT_NOISE


def next_band_ratio(image: np.ndarray) -> float:
    """The level of the diagonal band one octave coarser over the finest's, in the flattest tenth of the blocks (by
    the finest band, per channel; the median over the channels): about 0.5 under white noise, 1 or more where a
    photo's own fine texture (grass, gravel) fills the flattest blocks (see `TEXTURE_BAND_RATIO`)."""
    pixels = _whole_blocks(image)
    finest = _block_levels(_diagonal_band(pixels), NOISE_BLOCK)
    if finest.size == 0:
        return 0.0
    cell_means = (pixels[0::2, 0::2] + pixels[0::2, 1::2] + pixels[1::2, 0::2] + pixels[1::2, 1::2]) / 4
    next_band = _block_levels(_diagonal_band(cell_means), NOISE_BLOCK // 2)  # the same blocks, half the coefficients
    flattest = np.argsort(finest, axis=0)[: max(1, len(finest) * NOISE_QUANTILE // 100)]  # (blocks, channels)
    finest_energy = np.mean(np.take_along_axis(finest, flattest, axis=0) ** 2, axis=0)
    next_energy = np.mean(np.take_along_axis(next_band, flattest, axis=0) ** 2, axis=0)
    return float(np.median(np.sqrt(next_energy / np.maximum(finest_energy, 1e-12))))


def grain_level(image: np.ndarray) -> float:
    """The `noise_level` of `image` at half its size (`halved`: the area filter averages the finest band away), in
    grey levels there: where JPEG took the finest band of a noisy photo, its grain (see the module)."""
    return noise_level(halved(image))


def denoising_level(face: np.ndarray) -> float | None:
    """The noise level `denoised` takes a face's noise out at: its `noise_level` where that is above `DENOISE_ABOVE`
    and reads as white noise (`next_band_ratio` under `TEXTURE_BAND_RATIO`); else twice its `grain_level` where that
    is above `GRAIN_ABOVE` and reads as noise at half the face's size (a JPEG of a noisy photo: its finest band reads
    under the threshold, or as texture); else None (nothing to take out), and None for a face smaller than
    `MIN_DENOISED_SIZE` or of at most `MAX_DITHERED_LEVELS` levels."""
    if min(face.shape[:2]) < MIN_DENOISED_SIZE or _is_dithered(face):
        return None
    level = noise_level(face)
    if level > DENOISE_ABOVE and next_band_ratio(face) < TEXTURE_BAND_RATIO:
        return level
    grain = grain_level(face)  # a JPEG takes the finest band, and can leave it reading as texture
    if grain > GRAIN_ABOVE and next_band_ratio(halved(face)) < TEXTURE_BAND_RATIO:
        return 2 * grain
    return None


def denoised(face: np.ndarray) -> np.ndarray:
    """The face through non-local means at its `denoising_level`; the face itself where that is None."""
    level = denoising_level(face)
    return face if level is None else _non_local_means(face, level)


def fine_noise(image: np.ndarray, model_pixel: float) -> np.ndarray:
    """What reads as noise (see the module) in the finest octave of `image` (RGB uint8), detail finer than
    `FINE_BAND_PIXELS`, where the model does not see it: float32, the image's shape; the same in every channel of a
    gray or sepia image, which so keeps its tone. Zero unless `model_pixel` (the side of one of the model's pixels in
    the image's pixels) spans that octave, and for a dithered image (`MAX_DITHERED_LEVELS`: its dither would read as
    noise)."""
    if model_pixel < FINE_BAND_PIXELS or _is_dithered(image):
        return np.zeros(image.shape, np.float32)
    height, width = image.shape[:2]
    pixels = image.astype(np.float32)
    coarser = resize(pixels, max(1, round(width / FINE_BAND_PIXELS)), max(1, round(height / FINE_BAND_PIXELS)))
    fine = pixels - resize(coarser, width, height)
    if is_monochrome(image):
        fine = np.repeat(fine.mean(axis=2, keepdims=True), 3, axis=2)
    energy = cv2.GaussianBlur(np.sum(fine**2, axis=2), (0, 0), FINE_BAND_WINDOW * FINE_BAND_PIXELS)
    floor = np.percentile(energy, FINE_BAND_FLOOR_PERCENTILE)
    kept = np.clip(1.0 - floor / np.maximum(energy, 1e-6), 0.0, 1.0)[..., None]
    return (1.0 - kept) * fine


def face_region(box: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The region of a photo measured and denoised around a face box (x1, y1, x2, y2): a square of `FACE_REGION_SCALE`
    times the box's longer side, or of `MIN_DENOISED_SIZE` when that is larger, centred on the box and moved inside the
    photo where it would cross an edge (clipped only where the photo is smaller). Noise is the photo's, not the face's:
    around a small face the region reads it from the background."""
    x1, y1, x2, y2 = (float(value) for value in box)
    side = round(max(FACE_REGION_SCALE * max(x2 - x1, y2 - y1), MIN_DENOISED_SIZE))

    def span(centre: float, length: int) -> slice:
        start = int(min(max(centre - side / 2, 0), max(length - side, 0)))
        return slice(start, min(start + side, length))

    return span((y1 + y2) / 2, shape[0]), span((x1 + x2) / 2, shape[1])


def denoised_faces(photo: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The photo with the region around each face box (`face_region`) `denoised`; the photo itself when no region of
    at least `MIN_DENOISED_SIZE` has a noise level above `DENOISE_ABOVE`."""
    return with_face_regions_cleaned(photo, boxes, denoised)


def with_face_regions_cleaned(
    photo: np.ndarray, boxes: np.ndarray, clean: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The photo with the region around each face box (`face_region`) replaced by `clean` of it, fading into the
    photo over `REGION_FEATHER` of its side; the photo itself when `clean` returns every region it is given."""
    result = photo
    for box in boxes:
        region = face_region(box, photo.shape)
        region_pixels = photo[region]
        cleaned = clean(region_pixels)
        if cleaned is not region_pixels:
            result = photo.copy() if result is photo else result
            current = result[region].astype(np.float32)
            change = _feathered(region, photo.shape) * (cleaned - current)
            result[region] = np.clip(np.rint(current + change), 0, 255).astype(np.uint8)
    return result


def _is_dithered(image: np.ndarray) -> bool:
    """Whether every channel of the RGB uint8 image takes at most `MAX_DITHERED_LEVELS` values."""
    return all(np.count_nonzero(np.bincount(image[..., channel].ravel(), minlength=256)) <= MAX_DITHERED_LEVELS
               for channel in range(3))  # fmt: skip


def _feathered(region: tuple[slice, slice], shape: tuple[int, ...]) -> np.ndarray:
    """A weight over `region` (float32, (H, W, 1)): 1 inside, falling to 0 over `REGION_FEATHER` of its side towards
    each of its edges that is not the photo's edge."""

    def ramp(span: slice, photo_length: int) -> np.ndarray:
        length = span.stop - span.start
        width = max(1.0, REGION_FEATHER * length)
        position = np.arange(length, dtype=np.float32)
        weight = np.ones(length, np.float32)
        if span.start > 0:
            weight = np.minimum(weight, (position + 1) / width)
        if span.stop < photo_length:
            weight = np.minimum(weight, (length - position) / width)
        return weight

    rows, columns = region
    return (ramp(rows, shape[0])[:, None] * ramp(columns, shape[1])[None, :])[..., None]


def _whole_blocks(image: np.ndarray) -> np.ndarray:
    """The image (float32) cut to whole blocks of 2 ``NOISE_BLOCK`` pixels (16 x 16), those of ``HH`` coefficients."""
    side = 2 * NOISE_BLOCK
    return image[: image.shape[0] // side * side, : image.shape[1] // side * side].astype(np.float32)


def _block_levels(band: np.ndarray, block: int) -> np.ndarray:
    """The root mean square of a band in each block of `block` x `block` coefficients: (blocks, channels)."""
    blocks = band.reshape(band.shape[0] // block, block, band.shape[1] // block, block, band.shape[2])
    return np.sqrt(np.mean(blocks**2, axis=(1, 3))).reshape(-1, band.shape[2])


def _diagonal_band(pixels: np.ndarray) -> np.ndarray:
    """The diagonal Haar band of 2 x 2 cells (half the size): one pixel's difference from its neighbours."""
    return (pixels[0::2, 0::2] - pixels[0::2, 1::2] - pixels[1::2, 0::2] + pixels[1::2, 1::2]) / 2


def _non_local_means(image: np.ndarray, level: float) -> np.ndarray:
    """OpenCV's non-local means at a strength proportional to `level`: for colour images on lightness and chroma
    (`FILTER_STRENGTH_PER_LEVEL`), for gray ones (three equal channels) on the gray levels, so that they stay gray
    (`GRAY_FILTER_STRENGTH_PER_LEVEL`)."""
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]):
        strength = GRAY_FILTER_STRENGTH_PER_LEVEL * level
        gray = cv2.fastNlMeansDenoising(np.ascontiguousarray(image[..., 0]), None, strength, PATCH_SIZE, SEARCH_SIZE)
        return np.repeat(gray[..., None], 3, axis=2)
    strength = FILTER_STRENGTH_PER_LEVEL * level
    bgr = cv2.fastNlMeansDenoisingColored(image[..., ::-1].copy(), None, strength, strength, PATCH_SIZE, SEARCH_SIZE)
    return np.ascontiguousarray(bgr[..., ::-1])
