"""Photos given sideways or upside down: how many of their faces are found and aligned right as given
(`FaceDetector.detect`) and with the turn search (`FaceDetector.detect_turned`, what the pipeline runs), how many
upright photos the search turns, and what it costs.

    python bench/turned_photos.py ../shared/data/ffhq256/test --upright ../shared/data/whole_imgs \
        --upright ../shared/data/realworld_lq --upright ../shared/data/cropped_lq \
        --detector-weights ../shared/weights/facexlib [--model models/default]

Each face is made a degraded photo (`bench.detection_recall.photo_with_a_face`, the face 96, 160, 256 or 320 px in
turn, degraded with `make-testset`'s recipe at the face's size) and given turned a quarter counter-clockwise, a half
and three quarters. A face counts as aligned right when its five landmarks, taken back to the upright photo, lie within
0.2 of the eye distance of those found in the upright photo (photos whose upright detection is not one face are left
out). With `--model`, each photo is also restored (README command 1's settings) and the face's square scored against
the clean photo's (PSNR, dB).
"""

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from detection_recall import photo_with_a_face  # a sibling script: bench/ is on sys.path when this one runs
from facerest import FaceRestorePipeline
from facerest.degradation import DegradationConfig, degrade
from facerest.face_detection import FaceDetector, points_before_turn
from facerest.images import list_images, load_image
from facerest.metrics import psnr
from facerest.table import Table

FACE_SIZES = (96, 160, 256, 320)
GIVEN_TURNS = {0: "upright", 1: "a quarter counter-clockwise", 2: "upside down", 3: "a quarter clockwise"}
ALIGNED_WITHIN = 0.2  # of the eye distance


def degraded_photo(face: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """(degraded photo, clean photo, the face's square) of the `index`-th face, at its turn of `FACE_SIZES`."""
    size = FACE_SIZES[index % len(FACE_SIZES)]
    face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if size < face.shape[0] else cv2.INTER_CUBIC)
    clean, _, (top, left) = photo_with_a_face(face, seed=index)
    recipe = DegradationConfig(reference_resolution=round(512 * max(clean.shape[:2]) / size))
    return degrade(clean, recipe, seed=index), clean, np.s_[top : top + size, left : left + size]


class DetectorAsGiven(FaceDetector):
    """The detector without the turn search: the pipeline as it was before it."""

    def detect_turned(self, image, only_center_face=False, min_face_size=None):
        return 0, self.detect(image, only_center_face, min_face_size)


def aligned_right(detector: FaceDetector, given: np.ndarray, quarters: int, reference: np.ndarray) -> bool:
    """Whether a face `detector` finds in `given` (the photo turned `quarters` counter-clockwise), as the pipeline
    finds them, has the `reference` landmarks."""
    turns, faces = detector.detect_turned(given)
    turned_shape = np.rot90(given, -turns).shape
    eye_distance = np.linalg.norm(reference[1] - reference[0])
    for face in faces:  # back to `given`, then upright (`given` is the photo turned 4 - quarters clockwise)
        points = points_before_turn(points_before_turn(face.landmarks, turns, turned_shape), -quarters, given.shape)
        if np.linalg.norm(points - reference, axis=1).max() < ALIGNED_WITHIN * eye_distance:
            return True
    return False


def restore(pipeline: FaceRestorePipeline, photo: np.ndarray, detector: FaceDetector, seed: int) -> np.ndarray:
    """`photo` restored with README command 1's settings."""
    generator = torch.Generator().manual_seed(seed)
    return pipeline(photo, detector=detector, output_type="np", progress=False, generator=generator).images[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("faces_dir", type=Path, help="aligned clean faces (e.g. ../shared/data/ffhq256/test)")
    parser.add_argument("--count", type=int, default=60, help="faces (the first in name order)")
    parser.add_argument("--upright", type=Path, action="append", default=[], help="a folder of upright photos")
    parser.add_argument("--detector-weights", default=None, help="RetinaFace weights folder (else facerest's default)")
    parser.add_argument("--model", default=None, help="also restore each photo with this pipeline")
    args = parser.parse_args()

    detector = FaceDetector("retinaface", weights_dir=args.detector_weights)
    detector_as_given = DetectorAsGiven("retinaface", weights_dir=args.detector_weights)
    pipeline = FaceRestorePipeline.from_pretrained(args.model) if args.model else None
    faces = [load_image(path) for path in list_images(args.faces_dir, recursive=True)[: args.count]]
    photos = [degraded_photo(face, index) for index, face in enumerate(faces)]
    detections = [detector.detect(photo) for photo, _, _ in photos]
    references = {index: found[0].landmarks for index, found in enumerate(detections) if len(found) == 1}

    columns = ["Photo given", "Photos", "Aligned right as given", "With the turn search"]
    if pipeline is not None:
        columns += ["PSNR input (dB)", "Restored as given", "Restored with the turn search"]
    table = Table(columns)
    for quarters, label in GIVEN_TURNS.items():
        given = {index: np.ascontiguousarray(np.rot90(photos[index][0], quarters)) for index in references}
        aligned = [
            sum(aligned_right(photo_detector, given[index], quarters, references[index]) for index in references)
            for photo_detector in (detector_as_given, detector)
        ]
        row = table.add(label, len(references), *aligned)
        if pipeline is not None:
            scores = []
            for index in references:
                degraded, clean, square = photos[index]
                restored = [
                    np.rot90(restore(pipeline, given[index], photo_detector, index), -quarters)[square]
                    for photo_detector in (detector_as_given, detector)
                ]
                scores.append(psnr([degraded[square], *restored], [clean[square]] * 3))
            row.update(zip(columns[4:], (f"{score:.2f}" for score in np.mean(scores, axis=0))))
    for folder in args.upright:
        paths = list_images(folder, recursive=True)
        started = time.perf_counter()
        turned = [path.name for path in paths if detector.detect_turned(load_image(path))[0]]
        seconds = time.perf_counter() - started
        table.notes.append(f"{folder}: {len(turned)} of {len(paths)} upright photos turned {turned}, in {seconds:.1f} s")
        started = time.perf_counter()
        for path in paths:
            detector.detect(load_image(path))
        table.notes.append(f"{folder}: detection without the search {time.perf_counter() - started:.1f} s")
    table.notes.append(
        f"detector: {detector.name}; faces from {args.faces_dir}; aligned right: each landmark within {ALIGNED_WITHIN}"
        " of the eye distance of the upright photo's"
    )
    print(table.markdown())


if __name__ == "__main__":
    main()
