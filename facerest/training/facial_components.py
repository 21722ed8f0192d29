"""Where the eyes and the mouth are, and their crops for the facial-component discriminators.

A component is described as GFP-GAN describes it: centre (x, y) and half side length, in the pixels of a
``source_size`` face (512 for GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth``). Boxes come from

- a landmarks file in GFP-GAN's format: ``torch.save``d ``{"%08d" % number: {"left_eye": [x, y, half],
  "right_eye": [...], "mouth": [...]}}``, ``number`` being the FFHQ image number, the number its file is
  named with (``00042.png`` -> ``"00000042"``); or
- the FFHQ alignment template, the same boxes for every face (the faces are aligned to it).

"left_eye" is the eye on the image's left. A horizontally flipped face swaps the two eyes and mirrors x,
as GFP-GAN's dataset does. Crops are cut with ``torchvision.ops.roi_align``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import roi_align

from ..errors import FacerestError
from ..faces import FFHQ_TEMPLATE_512
from .discriminators import FACIAL_COMPONENTS

TEMPLATE_SIZE = 512
# An eye is about 45 % as wide as the distance between the eye centres, so its half side is 0.225 of it;
# the mouth's half side is half the distance between its corners (its width dominates its height).
EYE_HALF_SIZE_PER_EYE_DISTANCE = 0.225

# GFP-GAN's crop sizes at 512 px (eyes 80, mouth 120), scaled with the face size.
EYE_CROP_SIZE_512 = 80
MOUTH_CROP_SIZE_512 = 120


def template_components() -> dict[str, tuple[float, float, float]]:
    """(x, y, half side) of each component of the FFHQ template at 512 px, from its 5 landmarks."""
    left_eye, right_eye, _nose, mouth_left, mouth_right = FFHQ_TEMPLATE_512.astype(np.float64)
    eye_half = EYE_HALF_SIZE_PER_EYE_DISTANCE * float(np.linalg.norm(right_eye - left_eye))
    mouth_centre = (mouth_left + mouth_right) / 2
    return {
        "left_eye": (*map(float, left_eye), eye_half),
        "right_eye": (*map(float, right_eye), eye_half),
        "mouth": (*map(float, mouth_centre), float(np.linalg.norm(mouth_right - mouth_left)) / 2),
    }


def load_component_landmarks(path: str | os.PathLike) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Read a landmarks file in GFP-GAN's format (see the module docstring); values as floats."""
    # GFP-GAN's files hold numpy float64 scalars; allow exactly those types in the weights-only unpickler.
    numpy_scalar_types = [np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType]
    try:
        with torch.serialization.safe_globals(numpy_scalar_types):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FacerestError(f"landmarks file not found: {path}") from None
    except Exception as error:  # unpickling raises many types; say which file and why
        raise FacerestError(f"cannot read landmarks file {path}: {error}") from None
    if not isinstance(raw, dict):
        raise FacerestError(f"landmarks file {path}: expected a dict keyed by 8-digit image numbers, got {type(raw).__name__}")
    landmarks = {}
    for key, parts in raw.items():
        try:
            landmarks[key] = {name: tuple(float(v) for v in parts[name][:3]) for name in FACIAL_COMPONENTS}
        except (KeyError, TypeError, ValueError, IndexError):
            raise FacerestError(
                f"landmarks file {path}: entry {key!r} needs {', '.join(FACIAL_COMPONENTS)} as [x, y, half size]"
            ) from None
    return landmarks


def image_numbers(paths: list[Path]) -> torch.Tensor:
    """The landmarks-file number of each image: the number its file is named with (``00042.png`` -> 42)."""
    bad = [path.name for path in paths if not path.stem.isdigit()]
    if bad:
        raise FacerestError(
            f"a landmarks file needs images named by their number (as FFHQ's 00042.png); not so: {', '.join(bad[:5])}"
        )
    return torch.tensor([int(path.stem) for path in paths])


class FacialComponentLocator:
    """Component boxes (x1, y1, x2, y2) in the pixels of ``resolution`` x ``resolution`` training faces.

    Args:
        resolution: size of the training faces.
        landmarks: from ``load_component_landmarks``; None uses the FFHQ template for every face.
        source_size: the face size the landmarks are given at (GFP-GAN's file: 512).
        eye_enlarge_ratio: eye boxes are enlarged by this factor (GFP-GAN: 1.4).
    """

    def __init__(
        self,
        resolution: int,
        landmarks: dict[str, dict[str, tuple[float, float, float]]] | None = None,
        source_size: int = TEMPLATE_SIZE,
        eye_enlarge_ratio: float = 1.4,
    ):
        self.resolution = resolution
        self.landmarks = landmarks
        self.source_size = source_size if landmarks is not None else TEMPLATE_SIZE
        self.eye_enlarge_ratio = eye_enlarge_ratio
        self.template = template_components()

    @property
    def crop_sizes(self) -> dict[str, int]:
        """roi_align output sizes: GFP-GAN's 80 (eyes) and 120 (mouth) at 512 px, scaled to ``resolution``."""
        scale = self.resolution / 512
        eye, mouth = max(round(EYE_CROP_SIZE_512 * scale), 1), max(round(MOUTH_CROP_SIZE_512 * scale), 1)
        return {"left_eye": eye, "right_eye": eye, "mouth": mouth}

    def components(self, image_number: int) -> dict[str, tuple[float, float, float]]:
        if self.landmarks is None:
            return self.template
        key = f"{image_number:08d}"
        if key not in self.landmarks:
            raise FacerestError(f"the landmarks file has no entry {key!r} for image number {image_number}")
        return self.landmarks[key]

    def boxes(self, image_number: int, flipped: bool) -> dict[str, torch.Tensor]:
        """Boxes of one face (its landmarks-file number, see ``image_numbers``), each a tensor (4,) = (x1, y1, x2, y2)."""
        components = dict(self.components(image_number))
        if flipped:  # mirror: the left eye becomes the right one, x -> size - x (GFP-GAN's convention)
            components["left_eye"], components["right_eye"] = components["right_eye"], components["left_eye"]
            components = {name: (self.source_size - x, y, half) for name, (x, y, half) in components.items()}
        scale = self.resolution / self.source_size
        boxes = {}
        for name, (x, y, half) in components.items():
            if name != "mouth":
                half *= self.eye_enlarge_ratio
            # GFP-GAN's box: (centre - half + 1, centre + half), in source pixels.
            box = torch.tensor([x - half + 1, y - half + 1, x + half, y + half], dtype=torch.float32)
            boxes[name] = box * scale
        return boxes

    def batch_boxes(self, image_numbers: torch.Tensor, flipped: torch.Tensor) -> dict[str, torch.Tensor]:
        """Boxes of a batch, each (N, 4), from the faces' numbers and whether each was flipped."""
        per_face = [self.boxes(int(n), bool(f)) for n, f in zip(image_numbers.tolist(), flipped.tolist())]
        return {name: torch.stack([boxes[name] for boxes in per_face]) for name in FACIAL_COMPONENTS}

    def crop(self, images: torch.Tensor, boxes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cut each component of each image (N, 3, R, R) with roi_align: {name: (N, 3, s, s)}."""
        batch_index = torch.arange(images.shape[0], dtype=images.dtype, device=images.device)[:, None]
        crops = {}
        for name, size in self.crop_sizes.items():
            rois = torch.cat([batch_index, boxes[name].to(images)], dim=1)
            crops[name] = roi_align(images, rois, output_size=size)
        return crops
