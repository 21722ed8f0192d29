"""Faces in whole photos: 5-point alignment to the FFHQ template, and paste-back.

The flow for one photo, as in facexlib's ``FaceRestoreHelper`` (which is not used: it also loads a face-parsing
network that is not needed here):

1. ``facerest.face_detection.FaceDetector`` finds each face's box and 5 landmarks (eyes, nose, mouth corners);
2. ``align_face`` warps each face onto the FFHQ template with a similarity transform (rotation, uniform scale,
   translation) fitted to the 5 landmarks;
3. a model restores the crops;
4. ``paste_faces`` warps the restored crops back with the inverse transforms and blends them in with a feathered
   square mask, over the photo enlarged by ``upscale``; ``add_face_corrections`` instead adds what the model changed
   (restored minus degraded crop) to the photo, so the photo's own detail is never resampled.

Images are RGB ``uint8`` arrays (H, W, 3); landmarks and boxes are in the input photo's pixel coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np

from .images import check_rgb_image

# The 5 landmarks of an FFHQ-aligned face at 512 x 512 (facexlib FaceRestoreHelper's face_template): left eye,
# right eye, nose tip, left mouth corner, right mouth corner; "left" is the image's left.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)

# facexlib fills the part of an aligned crop that lies outside the photo with this gray (its BGR (135, 133, 132)).
ALIGN_BORDER_RGB = (132, 133, 135)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face with these 5 landmarks onto the FFHQ template scaled to ``size``.

    Returns the (size, size, 3) crop and the 2x3 similarity transform from photo pixels to crop pixels
    (``face_alignment``); crop pixels outside the photo are gray.
    """
    check_rgb_image(image, "image")
    affine = face_alignment(landmarks, size)
    return aligned_crop(image, affine, size), affine


def aligned_crop(image: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) crop of ``image`` under ``affine`` (``face_alignment``'s); pixels outside it are gray."""
    return cv2.warpAffine(
        image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=ALIGN_BORDER_RGB,
    )


def with_photo_alpha(face: np.ndarray, alpha: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A face crop (size, size, 3) with its photo's transparency ``alpha`` (H, W) warped as ``align_face`` warped the
    face with these ``landmarks``: (size, size, 4) RGBA, transparent outside the photo."""
    size = face.shape[0]
    affine = face_alignment(landmarks, size)
    face_alpha = cv2.warpAffine(alpha, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.dstack([face, face_alpha])


def face_alignment(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity transform from photo pixels onto the FFHQ template scaled to ``size``, fitted to the 5
    ``landmarks`` with ``cv2.estimateAffinePartial2D`` (least median of squares), as facexlib does."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks as a (5, 2) array, got shape {landmarks.shape}")
    template = FFHQ_TEMPLATE_512 * (size / 512.0)
    affine, _ = cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)
    if affine is None:
        raise ValueError(f"cannot fit a similarity transform to the landmarks {landmarks.tolist()}")
    return affine


def paste_faces(
    image: np.ndarray, restored_crops: list[np.ndarray], affines: list[np.ndarray], upscale: int = 1
) -> np.ndarray:
    """Blend restored face crops back into ``image`` enlarged ``upscale`` times.

    Each crop must have the size its affine was made for (``align_face``'s ``size``). The background is resized
    with Lanczos interpolation (a copy of ``image`` when ``upscale`` is 1); each crop is warped back with the inverse
    transform and blended with its feathered mask (``face_paste_mask``), later faces over earlier ones. Pixels
    outside every mask are exactly the background's.
    """
    for crop in restored_crops:
        check_rgb_image(crop, "restored face")
    output = _enlarged_background(image, upscale)
    for slices, warped, mask in _warped_into_output(restored_crops, affines, output.shape, upscale):
        background, warped = output[slices], warped.astype(np.float32)
        warped -= background  # in place, as below: an enlarged face's window can be a few hundred megapixels
        warped *= mask
        warped += background
        output[slices] = _to_uint8(warped)
        del warped, mask  # before the next face's window is made
    return output


def face_window(box: np.ndarray, shape: tuple[int, ...], scale: float = 1.2) -> tuple[slice, slice]:
    """The face's box (x1, y1, x2, y2) grown to a square of `scale` times its longer side, clipped to the photo."""
    x1, y1, x2, y2 = box
    side = scale * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    top, left = int(max(cy - side / 2, 0)), int(max(cx - side / 2, 0))
    bottom, right = int(min(cy + side / 2, shape[0])), int(min(cx + side / 2, shape[1]))
    return slice(top, bottom), slice(left, right)


def add_face_corrections(
    image: np.ndarray, corrections: list[np.ndarray], affines: list[np.ndarray], upscale: int = 1
) -> np.ndarray:
    """Add each face's correction (restored minus degraded crop, float32 (S, S, 3) in 0-255 units) to ``image``
    enlarged ``upscale`` times, warped back with the inverse transform and weighted by the face's feathered mask.

    Unlike ``paste_faces`` the photo's own pixels are never resampled: whatever detail the photo has above the
    model's resolution stays as it was, and only the model's change is warped back. Pixels outside every mask are
    exactly the background's.
    """
    for correction in corrections:
        if not (isinstance(correction, np.ndarray) and correction.ndim == 3 and correction.shape[2] == 3):
            raise ValueError(f"a face correction must be an (S, S, 3) array, got shape {getattr(correction, 'shape', None)}")
    output = _enlarged_background(image, upscale)
    for slices, warped, mask in _warped_into_output(
        [correction.astype(np.float32) for correction in corrections], affines, output.shape, upscale
    ):
        warped *= mask  # in place, as below: an enlarged face's window can be a few hundred megapixels
        warped += output[slices]
        output[slices] = _to_uint8(warped)
        del warped, mask  # before the next face's window is made
    return output


def _enlarged_background(image: np.ndarray, upscale: int) -> np.ndarray:
    """A copy of ``image`` (uint8) enlarged ``upscale`` times with Lanczos interpolation. The faces are blended into
    it window by window in float32, so a large photo is never held as floats whole."""
    check_rgb_image(image, "image")
    _check_upscale(upscale)
    if upscale == 1:
        return image.copy()
    height, width = image.shape[:2]
    return cv2.resize(image, (width * upscale, height * upscale), interpolation=cv2.INTER_LANCZOS4)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels rounded and clipped to uint8, in place until the cast."""
    return np.clip(np.rint(pixels, out=pixels), 0, 255, out=pixels).astype(np.uint8)


def _warped_into_output(crops: list[np.ndarray], affines: list[np.ndarray], output_shape: tuple, upscale: int):
    """For each square crop: the output window it reaches, the crop warped into that window, and its feathered mask
    ((h, w, 1)); faces entirely outside the output are left out."""
    if len(crops) != len(affines):
        raise ValueError(f"got {len(crops)} restored faces but {len(affines)} affine transforms")
    out_size = (output_shape[1], output_shape[0])
    for crop, affine in zip(crops, affines):
        if crop.shape[0] != crop.shape[1]:
            raise ValueError(f"restored faces must be square, got {crop.shape[1]}x{crop.shape[0]}")
        region = _PasteRegion(affine, crop.shape[0], out_size, upscale)
        if region.is_empty:
            continue
        # yielded without a name here, so that the caller's `del` frees them before the next face's are made
        yield region.slices, cv2.warpAffine(
            crop, region.crop_to_region, region.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ), region.soft_mask()[:, :, None]


def face_paste_mask(affine: np.ndarray, crop_size: int, image_shape: tuple[int, ...], upscale: int = 1) -> np.ndarray:
    """The feathered blending mask of one face in output pixels: float32 (H * upscale, W * upscale) in [0, 1].

    As facexlib's paste without a parsing network: the crop's square warped back, eroded to drop its
    interpolated rim, eroded again by twice the feather width (a twentieth of the square's side), then
    Gaussian-blurred by that width, so the mask falls to 0 inside the square.
    """
    _check_upscale(upscale)
    height, width = image_shape[:2]
    mask = np.zeros((height * upscale, width * upscale), np.float32)
    region = _PasteRegion(affine, crop_size, (width * upscale, height * upscale), upscale)
    if not region.is_empty:
        mask[region.slices] = region.soft_mask()
    return mask


# The widest feather, in pixels, that a face's mask is blurred by at full size: the erosion and blur cost grows with
# the feather times the mask's area (an 8,000-px mask, a 2,000-px face enlarged 4x: 56 s), so a wider one is made on
# a copy shrunk to this feather and enlarged back, as smooth as the feather is wide.
MAX_MASK_FEATHER = 64


class _PasteRegion:
    """The part of the output image a pasted face can touch, and the crop-to-region transform.

    Working on this window instead of the whole output keeps pasting cheap for large, upscaled photos.
    """

    MARGIN = 2  # pixels around the warped square, so erosion and blurring see zeros at the window's edge

    def __init__(self, affine: np.ndarray, crop_size: int, out_size: tuple[int, int], upscale: int):
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (2, 3):
            raise ValueError(f"expected a 2x3 affine transform, got shape {affine.shape}")
        self.crop_size = crop_size
        self.upscale = upscale
        # crop -> photo, then photo -> output: pixel centres map as u = s * x + (s - 1) / 2 for cv2.resize by s
        crop_to_output = cv2.invertAffineTransform(affine) * upscale
        crop_to_output[:, 2] += (upscale - 1) / 2
        corners = np.array([[0, 0, 1], [crop_size, 0, 1], [0, crop_size, 1], [crop_size, crop_size, 1]], np.float64)
        corners_out = corners @ crop_to_output.T
        out_width, out_height = out_size
        x0 = max(int(np.floor(corners_out[:, 0].min())) - self.MARGIN, 0)
        y0 = max(int(np.floor(corners_out[:, 1].min())) - self.MARGIN, 0)
        x1 = min(int(np.ceil(corners_out[:, 0].max())) + self.MARGIN, out_width)
        y1 = min(int(np.ceil(corners_out[:, 1].max())) + self.MARGIN, out_height)
        self.is_empty = x1 <= x0 or y1 <= y0
        self.slices = (slice(y0, y1), slice(x0, x1))
        self.size = (x1 - x0, y1 - y0)
        self.crop_to_region = crop_to_output - np.array([[0, 0, x0], [0, 0, y0]], np.float64)

    def soft_mask(self) -> np.ndarray:
        square = np.ones((self.crop_size, self.crop_size), np.float32)
        inside = cv2.warpAffine(square, self.crop_to_region, self.size, flags=cv2.INTER_LINEAR)
        rim = 2 * self.upscale
        inside = cv2.erode(inside, np.ones((rim, rim), np.uint8))
        feather = max(int(np.sqrt(inside.sum())) // 20, 1)
        shrink = feather // MAX_MASK_FEATHER
        if shrink < 2:
            return _feathered(inside, feather)
        # A large face's mask (an enlarged portrait's), feathered on a copy `shrink` times smaller and enlarged back.
        # The copy is padded by its edge pixels, as the erosion sees the region's border: zeros where the square ends
        # inside the output (the margin), the square going on where the output's edge cuts it.
        pad = self.MARGIN * shrink
        grown = cv2.copyMakeBorder(inside, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        grown_size = (grown.shape[1], grown.shape[0])
        small = cv2.resize(grown, (grown_size[0] // shrink, grown_size[1] // shrink), interpolation=cv2.INTER_AREA)
        enlarged = cv2.resize(_feathered(small, round(feather / shrink)), grown_size, interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(enlarged[pad:-pad, pad:-pad])


def _feathered(inside: np.ndarray, feather: int) -> np.ndarray:
    """The mask ``inside`` eroded by twice ``feather`` pixels, then Gaussian-blurred by ``feather``."""
    core = cv2.erode(inside, np.ones((2 * feather, 2 * feather), np.uint8))
    return cv2.GaussianBlur(core, (2 * feather + 1, 2 * feather + 1), 0)


def _check_upscale(upscale: int) -> None:
    if isinstance(upscale, bool) or not isinstance(upscale, (int, np.integer)) or upscale < 1:
        raise ValueError(f"upscale must be a whole number of at least 1, got {upscale!r}")
