"""Reading, converting and writing images.

Conventions used across facerest:
- an *image* is a ``numpy.uint8`` array of shape (H, W, 3) in RGB order;
- a *tensor* is ``float32`` of shape (N, 3, H, W) or (3, H, W) with values in [-1, 1].
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Iterator, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from .errors import FacerestError, ImageReadError

register_heif_opener()  # phone photos: HEIC/HEIF (AVIF is Pillow's own)

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"
)

# 64 megapixels: a 8000 x 8000 photo. Larger inputs are refused before their pixels are decoded.
DEFAULT_MAX_PIXELS = 64_000_000
# 256 megapixels: a 12-MP phone photo enlarged 4x (192 MP) passes, a 48-MP one enlarged 4x (770 MP; about 15 GB of
# memory while its faces are pasted and minutes to write) is refused before any work.
DEFAULT_MAX_OUTPUT_PIXELS = 256_000_000

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

# The most a monochrome image's chroma (Cr and Cb of YCrCb, 0-255) varies, as a standard deviation. Over the faces of
# ../shared/data (ffhq256, realworld_lq, cropped_lq), gray ones measure 0, toned prints (sepia) 1-4.5, colour faces 6
# and more: 3.0 stays half the least colourful face's; a toned face above it is restored as a colour face.
MONOCHROME_MAX_CHROMA_STD = 3.0
# BT.601 luma of RGB (cv2's RGB2GRAY weights)
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
# Pillow's modes of gray images: 1-bit, 8-bit (and with alpha), 16- and 32-bit integer, float.
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def list_images(folder: Union[str, os.PathLike], recursive: bool = False) -> list[Path]:
    """The image files of ``folder`` (by extension; with ``recursive``, those of its sub-folders too), sorted by path.

    Raises ``FacerestError`` when the folder is missing, is not a folder, or holds no image files.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FacerestError(f"folder not found: {folder}")
    if not folder.is_dir():
        raise FacerestError(f"not a folder: {folder}")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    paths = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise FacerestError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}" + (" or its sub-folders" if recursive else ""))
    return paths


def load_image(source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (path, encoded bytes, PIL image or array) to an RGB uint8 array.

    EXIF orientation is applied; grayscale, palette, CMYK, 16-bit and float images are converted to 8-bit RGB
    (``input_notes`` says so); an alpha channel is dropped (``load_alpha`` reads it). Raises ``ImageReadError``
    saying why an image cannot be used.
    """
    name = source if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:  # other shapes are refused, with the shape named, by _array_to_rgb
            _check_pixel_count(source.shape[1], source.shape[0], name, max_pixels)
        return _array_to_rgb(source, name)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, name, max_pixels)
    if isinstance(source, bytes):
        return _open_and_convert(io.BytesIO(source), name, max_pixels)
    if not isinstance(source, (str, os.PathLike)):
        hint = "; for a (3, H, W) tensor in [0, 1], pass tensor.permute(1, 2, 0).cpu().numpy()"
        raise ImageReadError(
            name, "expected a file path, encoded bytes, a PIL image or an (H, W, 3) array" + (hint if _is_tensor(source) else "")
        )
    path = Path(source)
    if not path.exists():
        raise ImageReadError(path, f"broken link to {os.readlink(path)}" if path.is_symlink() else "file not found")
    if not path.is_file():
        raise ImageReadError(path, "not a file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    with open(path, "rb") as handle:
        return _open_and_convert(handle, path, max_pixels)


def input_notes(source: ImageSource) -> list[str]:
    """Notes on what ``load_image`` leaves out of ``source``: the frames after the first (an animated GIF, WebP or
    PNG, a multi-page TIFF) and the bits after the eighth (a 16-bit PNG or TIFF, a float TIFF, a 10-bit HEIC). Empty
    for an 8-bit still image, an array, or a file that cannot be read."""
    if isinstance(source, np.ndarray):
        return []
    try:
        if isinstance(source, Image.Image):
            return _notes_on(source)
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as pil:
            return _notes_on(pil)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return []


def _notes_on(pil: Image.Image) -> list[str]:
    notes = []
    frames = getattr(pil, "n_frames", 1)
    if frames > 1:
        notes.append(f"an image of {frames} frames (animated): only the first was used")
    bits = _bits_per_channel(pil)
    if bits > 8:
        notes.append(f"a {bits}-bit image: restored and saved at 8 bits per channel")
    return notes


def _bits_per_channel(pil: Image.Image) -> int:
    """The bits per channel of the file's pixels: its decoder's raw mode says 16 where Pillow opens a 48-bit PNG
    or TIFF as 8-bit ``RGB``, and pillow-heif's ``bit_depth`` says 10 or 12 where it opens a HEIC so."""
    if pil.mode in ("I", "F"):
        return 32
    if isinstance(pil.info.get("bit_depth"), int):
        return pil.info["bit_depth"]
    raw_modes = [pil.mode] + [str(tile.args) for tile in getattr(pil, "tile", ())]  # e.g. "RGB;16B", ("RGB;16N", ...)
    return 16 if any(";16" in mode for mode in raw_modes) else 8


def check_output_size(image: np.ndarray, upscale: int, max_output_pixels: int | None, name: str) -> None:
    """`ImageReadError` naming `name` when `image` enlarged `upscale` times would exceed `max_output_pixels`."""
    height, width = image.shape[:2]
    if max_output_pixels is not None and width * height * upscale**2 > max_output_pixels:
        raise ImageReadError(
            name,
            f"the result at upscale {upscale} would be {width * upscale}x{height * upscale}, "
            f"{width * height * upscale**2 / 1e6:.3g} megapixels, more than the {max_output_pixels / 1e6:g}-megapixel "
            "limit on results; choose a smaller upscale",
        )


def iter_images(paths, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[tuple[Path, np.ndarray | None, str | None]]:
    """Yield ``(path, image, None)`` for each readable file and ``(path, None, reason)`` for the others."""
    for path in paths:
        try:
            yield Path(path), load_image(path, max_pixels), None
        except ImageReadError as error:
            yield Path(path), None, error.reason


def load_alpha(path: Union[str, os.PathLike], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """The transparency of the image file at ``path``, which ``load_image`` drops: its alpha channel as an (H, W) uint8
    array, turned upright as ``load_image`` turns the image; None for an image without one or fully opaque, or a file
    ``load_image`` refuses."""
    try:
        with Image.open(path) as pil:  # reads the header only
            if max_pixels is not None and pil.width * pil.height > max_pixels:
                return None
            if "A" not in pil.getbands() and "transparency" not in pil.info:
                return None
            alpha = np.asarray(ImageOps.exif_transpose(pil).convert("RGBA").getchannel("A"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return alpha if alpha.min() < 255 else None


def with_alpha(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``alpha`` resized to its size as a fourth channel: (H, W, 4) RGBA."""
    height, width = image.shape[:2]
    if alpha.shape != (height, width):
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.dstack([image, alpha])


def save_image(image: np.ndarray, path: Union[str, os.PathLike], gray: bool = False, **save_kwargs) -> None:
    """Write an RGB (or RGBA) uint8 array; the format follows the file extension; with `gray`, as a gray image
    (`pil_image`). The file is written beside its place under a hidden name and moved there once complete, so a run
    killed or failing mid-write (a full disk) leaves no truncated image, and an earlier image at `path` stays whole
    until it is replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.partial{path.suffix}")  # unique per call
    try:
        pil_image(image, gray).save(partial, **save_kwargs)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def pil_image(image: np.ndarray, gray: bool = False) -> Image.Image:
    """An RGB or RGBA uint8 array as a PIL image; with `gray`, a gray one (L, or LA with the alpha): its luma, which is
    each channel where they are equal, as they are in the restoration of a gray photo (a face crop reaching past the
    photo's edge is filled with facexlib's near-gray there). A gray input (`is_gray_file`) so comes back gray."""
    pil = Image.fromarray(image)
    return pil.convert("LA" if pil.mode == "RGBA" else "L") if gray else pil


def is_gray_file(path: Union[str, os.PathLike]) -> bool:
    """Whether the image file at `path` holds gray levels only (a 1-bit, 8-bit or 16-bit gray image, with or without
    alpha), by its header; False for a colour image or an unreadable file."""
    try:
        with Image.open(path) as pil:  # reads the header only
            return pil.mode in GRAY_MODES
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


def colour_profile_options(path: Union[str, os.PathLike]) -> dict:
    """PIL save options that tag an RGB image made from the image file at `path` with that file's ICC colour profile
    (a phone photo's Display P3, say): ``{"icc_profile": ...}`` when it embeds an RGB one, else ``{}`` (none, a gray
    or CMYK one, or an unreadable file)."""
    try:
        with Image.open(path) as pil:  # reads the header only
            profile = pil.info.get("icc_profile")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return {}
    # an ICC profile's header holds its data colour space at bytes 16-19
    return {"icc_profile": profile} if isinstance(profile, bytes) and profile[16:20] == b"RGB " else {}


def check_rgb_image(image: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``image`` is an RGB ``uint8`` array (H, W, 3) with pixels."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{what} must be an RGB uint8 array of shape (H, W, 3), got {dtype} with shape {shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} has no pixels (shape {image.shape})")


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]. A copy: a read-only array (`np.asarray` of a PIL image) is
    fine."""
    return uint8_to_tensor(torch.from_numpy(np.array(image)).permute(2, 0, 1))


def uint8_to_tensor(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 in [-1, 1], on its device."""
    return pixels.float().div(127.5).sub(1.0)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, rounded and clipped."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    array = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round()
    return array.permute(1, 2, 0).to(torch.uint8).numpy()


def _open_and_convert(handle, name, max_pixels: int | None) -> np.ndarray:
    try:
        with Image.open(handle) as pil:  # reads the header only
            _check_pixel_count(*pil.size, name, max_pixels)
            pil.load()
            return _pil_to_rgb(pil, name, max_pixels)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image file (unknown format)") from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(name, too_large_for_pillow(error, max_pixels)) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(name, f"cannot decode image (truncated or corrupt): {error}") from None


def too_large_for_pillow(error: Image.DecompressionBombError, max_pixels: int | None) -> str:
    """The reason for an image Pillow refused to open (over twice ``Image.MAX_IMAGE_PIXELS``), in the words of our
    own size check: its pixel count (Pillow's message holds it) and ``max_pixels``, else Pillow's limit."""
    import re

    count = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(count.group(1)):,} pixels" if count else "more pixels than Pillow opens"
    limit = max_pixels if max_pixels is not None else 2 * Image.MAX_IMAGE_PIXELS
    return f"image too large: {size}, the limit is {limit:,}"


def too_many_pixels(width: int, height: int, max_pixels: int | None) -> str | None:
    """Why an image of ``width`` x ``height`` is refused under ``max_pixels`` (``None``: no limit), or None."""
    if max_pixels is None or width * height <= max_pixels:
        return None
    return f"image too large: {width}x{height} = {width * height:,} pixels, the limit is {max_pixels:,}"


def _check_pixel_count(width: int, height: int, name, max_pixels: int | None) -> None:
    reason = too_many_pixels(width, height, max_pixels)
    if reason is not None:
        raise ImageReadError(name, reason)


def _pil_to_rgb(pil: Image.Image, name, max_pixels: int | None) -> np.ndarray:
    _check_pixel_count(*pil.size, name, max_pixels)
    pil = ImageOps.exif_transpose(pil)
    if pil.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(pil)
        if pil.mode == "F" and array.max() > 1.0:
            array = array.clip(0, 255) / 255  # Pillow's float images (``convert("F")``, most float TIFFs) hold 0-255
        return _array_to_rgb(array, name)
    if pil.mode != "RGB":
        pil = pil.convert("RGB")
    return np.asarray(pil, dtype=np.uint8).copy()


def _array_to_rgb(array: np.ndarray, name) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        channels_first = array.ndim == 3 and array.shape[0] in (1, 3, 4)
        raise ImageReadError(
            name,
            f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {array.shape}"
            + (" (channels first: pass array.transpose(1, 2, 0))" if channels_first else ""),
        )
    if array.size == 0:
        raise ImageReadError(name, "empty image (no pixels)")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageReadError(name, f"expected a uint8 array (or floats in [0, 1]), got dtype {array.dtype} (a mask? "
                             "multiply it by 255 and pass it as uint8)")  # fmt: skip
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16 or (np.issubdtype(array.dtype, np.integer) and array.max() > 255):
        array = np.round(array.astype(np.float64) / 65535.0 * 255.0).clip(0, 255).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        _check_unit_range(array, name)
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        array = array.clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array)


def _is_tensor(source) -> bool:
    return type(source).__module__.startswith("torch")


def _check_unit_range(array: np.ndarray, name) -> None:
    """A float image holds values in [0, 1] (half a level of 255 either side rounds into it)."""
    low, high = float(np.min(array)), float(np.max(array))
    if not (-0.5 / 255 <= low and high <= 1 + 0.5 / 255):  # NaN fails both
        raise ImageReadError(
            name,
            f"a float image must hold values in [0, 1], this one holds {low:g} to {high:g} "
            "(divide a 0-255 image by 255, or pass it as uint8)",
        )


def resize_square(image: np.ndarray, resolution: int) -> np.ndarray:
    """Resize an (H, W, C) image to ``resolution`` x ``resolution``: area filter down, bicubic up."""
    height, width = image.shape[:2]
    if height == width == resolution:
        return image
    return resize(image, resolution, resolution)


def halved(image: np.ndarray) -> np.ndarray:
    """``image`` at half its size (area filter): detail finer than two pixels, noise among it, averaged away."""
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, C) image to ``width`` x ``height``: area filter when the longer side shrinks, else bicubic."""
    interpolation = cv2.INTER_AREA if max(width, height) < max(image.shape[:2]) else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def is_monochrome(image: np.ndarray, max_chroma_std: float = MONOCHROME_MAX_CHROMA_STD) -> bool:
    """Whether an image is gray or one-toned (sepia): neither of its chroma channels (YCrCb) varies by more than
    `max_chroma_std` (standard deviation)."""
    _, std = cv2.meanStdDev(cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb))
    return bool(std[1:].max() <= max_chroma_std)


def with_chroma_of(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`reference` with `image`'s luma (BT.601): the luma difference added to each of its channels, which keeps
    its chroma (a gray reference gives a gray image)."""
    luma_change = (image.astype(np.float32) - reference.astype(np.float32)) @ LUMA_WEIGHTS
    return np.clip(np.rint(reference + luma_change[..., None]), 0, 255).astype(np.uint8)


def pair_by_stem(lq_dir: Union[str, os.PathLike], hq_dir: Union[str, os.PathLike]) -> list[tuple[Path, Path]]:
    """The (LQ, HQ) image paths of two folders matched by file name without extension, sorted by name.

    Raises ``FacerestError`` (one line) for a missing or empty folder, two images with one name in a
    folder, or names found in only one of the folders.
    """
    return pair_by_name(index_by_stem(list_images(lq_dir)), index_by_stem(list_images(hq_dir)), lq_dir, hq_dir)


def pair_by_name(
    first: dict[str, Path], second: dict[str, Path], first_dir: Union[str, os.PathLike], second_dir: Union[str, os.PathLike]
) -> list[tuple[Path, Path]]:
    """The paths of two folders' images (each by name) paired by name, sorted; ``FacerestError`` naming the names
    found in only one of the folders."""
    if first.keys() != second.keys():
        differences = (_unmatched(first, second, first_dir), _unmatched(second, first, second_dir))
        raise FacerestError(f"file names differ between {first_dir} and {second_dir}: " + "; ".join(part for part in differences if part))
    return [(first[name], second[name]) for name in sorted(first)]


def images_by_relative_name(folder: Union[str, os.PathLike], leave_out: Sequence[Path] = ()) -> dict[str, Path]:
    """The image files of ``folder`` and its sub-folders by their path below ``folder`` without extension
    (``CelebA/0001``, as ``restore`` names its outputs), sorted; files under a ``leave_out`` folder are left out.

    Raises ``FacerestError`` for a missing folder, one without image files, or two images with one name.
    """
    folder = Path(folder)
    paths = [path for path in list_images(folder, recursive=True) if not any(path.is_relative_to(skipped) for skipped in leave_out)]
    if not paths:
        raise FacerestError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder} or its sub-folders")
    return index_by_stem(paths, root=folder)


def index_by_stem(paths: list[Path], root: Path | None = None) -> dict[str, Path]:
    """Paths by file name without extension (with ``root``: by path below ``root`` without extension,
    ``CelebA/0001``); ``FacerestError`` when two share one."""
    by_stem: dict[str, Path] = {}
    for path in paths:
        name = path.stem if root is None else path.relative_to(root).with_suffix("").as_posix()
        if name in by_stem:
            raise FacerestError(f"two images share the name {name!r}: {by_stem[name].name} and {path.name} in {path.parent}")
        by_stem[name] = path
    return by_stem


def _unmatched(names: dict[str, Path], others: dict[str, Path], folder: Union[str, os.PathLike]) -> str:
    missing = sorted(names.keys() - others.keys())
    if not missing:
        return ""
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return f"{len(missing)} only in {folder} ({shown})"
