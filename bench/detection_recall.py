"""How many degraded faces in photos the detector finds, at the photo's size only and with its shrunk copies.

    python bench/detection_recall.py ../shared/data/ffhq256/test --detector-weights ../shared/weights/facexlib

Each aligned face, resized to --face-size px, is set at a random place in a photo 2.4 x 1.8 times its size whose
background holds no face (a smooth colour field with fine texture), and the whole photo is degraded with
make-testset's recipe, seeded per face. A face counts as found when a detection's centre lies in its square; any
other detection is a false face, counted also on each background alone. Run once at the photo's size only
(`coarse_scales=()`) and with the copies shrunk 2, 4 and 8 times (FaceDetector's default), with and without the check
of each face by MTCNN's last network (`face_check_threshold`).

Then group photos (`--group-photos N` of each size: 1280 x 960, 1600 x 1200, 2000 x 1500 px, shrunk to 1,024 px for
detection), each of 12 faces of 50-130 px (boxes of about 28-72 px) on a textured background, blurred slightly
(sigma 0.7 px) and saved as JPEG of quality 70: found with and without taking the faces the 1,024-px copy scores
under the threshold from the small-face search (`weak_face_score`).
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from facerest.degradation import degrade
from facerest.face_detection import WEAK_FACE_SCORE, FaceDetector
from facerest.faces import FFHQ_TEMPLATE_512
from facerest.images import list_images, load_image
from facerest.table import Table


def photo_with_a_face(face: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(photo, its background alone, the face's top-left corner), the face `face.shape[0]` px square."""
    rng = np.random.default_rng(seed)
    size = face.shape[0]
    height, width = int(1.8 * size), int(2.4 * size)
    colours = cv2.resize(rng.uniform(40, 220, (3, 4, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(rng.normal(0, 25, (height, width)).astype(np.float32), (0, 0), 2)[..., None]
    background = np.clip(colours + texture, 0, 255).astype(np.uint8)
    top, left = int(rng.integers(0, height - size)), int(rng.integers(0, width - size))
    photo = background.copy()
    photo[top : top + size, left : left + size] = face
    return photo, background, (top, left)


def group_photo(face_paths: list[Path], seed: int, width: int, height: int) -> tuple[np.ndarray, list[tuple]]:
    """(photo, the (top, left, size) square of each face): 12 faces in a 4 x 3 grid of cells, each at a random size
    and place in its cell."""
    rng = np.random.default_rng(seed)
    colours = cv2.resize(rng.uniform(40, 220, (3, 4, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(rng.normal(0, 25, (height, width)).astype(np.float32), (0, 0), 2)[..., None]
    photo = np.clip(colours + texture, 0, 255).astype(np.uint8)
    cell_width, cell_height = width // 4, height // 3
    squares = []
    for index in range(12):
        size = int(rng.integers(50, 131))
        left = (index % 4) * cell_width + int(rng.integers(0, cell_width - size))
        top = (index // 4) * cell_height + int(rng.integers(0, cell_height - size))
        face = load_image(face_paths[(12 * seed + index) % len(face_paths)])
        photo[top : top + size, left : left + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
        squares.append((top, left, size))
    photo = cv2.GaussianBlur(photo, (0, 0), 0.7)
    _, encoded = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR), squares  # both take BGR: the round trip keeps the channel order


def count_group_detections(detector: FaceDetector, photos: list) -> tuple[int, int]:
    """(faces found, false faces) over group photos: a detection whose centre lies in no face's square, or in the
    square of a face found already, is false."""
    found, false = 0, 0
    for photo, squares in photos:
        hits = set()
        for face in detector.detect(photo):
            inside = [index for index, (top, left, size) in enumerate(squares) if _centre_in_square(face, top, left, size)]
            if inside and inside[0] not in hits:
                hits.add(inside[0])
            else:
                false += 1
        found += len(hits)
    return found, false


def count_detections(detector: FaceDetector, photos: list) -> dict:
    """Faces found, the median landmark error of those (the farthest of the 5 landmarks from those found on the
    photo before it was degraded, over the eye distance), false faces in the photos, false faces on the backgrounds
    alone."""
    landmark_errors, false_in_photos, false_on_backgrounds = [], 0, 0
    for photo, background, (top, left), size, clean_landmarks in photos:
        eye_distance = np.linalg.norm(clean_landmarks[1] - clean_landmarks[0])
        for face in detector.detect(photo):
            if _centre_in_square(face, top, left, size):
                landmark_errors.append(np.linalg.norm(face.landmarks - clean_landmarks, axis=1).max() / eye_distance)
            else:
                false_in_photos += 1
        false_on_backgrounds += len(detector.detect(background))
    return {
        "found": len(landmark_errors),
        "landmark error": float(np.median(landmark_errors)) if landmark_errors else None,
        "false in photos": false_in_photos,
        "false on backgrounds": false_on_backgrounds,
    }


def _landmarks_in_square(faces: list, top: int, left: int, size: int) -> np.ndarray:
    """The landmarks of the face whose box centre lies in the square, else the FFHQ template's there."""
    for face in faces:
        if _centre_in_square(face, top, left, size):
            return face.landmarks
    return FFHQ_TEMPLATE_512 * (size / 512) + np.array([left, top], np.float32)


def _centre_in_square(face, top: int, left: int, size: int) -> bool:
    return top <= face.center[1] <= top + size and left <= face.center[0] <= left + size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("faces_dir", type=Path, help="aligned face images (e.g. ../shared/data/ffhq256/test)")
    parser.add_argument("--face-size", type=int, nargs="+", default=[128, 256, 512], help="face sizes in the photos, px")
    parser.add_argument("--count", type=int, default=40, help="faces per size (the first in name order)")
    parser.add_argument("--detector-weights", default=None, help="RetinaFace weights folder (else facerest's default)")
    parser.add_argument("--group-photos", type=int, default=8, help="group photos of each size (0: none)")
    args = parser.parse_args()

    detectors = {
        "photo size only": FaceDetector("retinaface", weights_dir=args.detector_weights, coarse_scales=()),
        "and shrunk 2x, 4x, 8x, without the face check": FaceDetector(
            "retinaface", weights_dir=args.detector_weights, face_check_threshold=None
        ),
        "and shrunk 2x, 4x, 8x (the default)": FaceDetector("retinaface", weights_dir=args.detector_weights),
    }
    table = Table([
        "Face size (px)", "Photos", "Detection", "Faces found", "Landmark error (median, of the eye distance)",
        "False faces in photos", "False faces on backgrounds",
    ])  # fmt: skip
    for size in args.face_size:
        photos = []
        for seed, path in enumerate(list_images(args.faces_dir)[: args.count]):
            face = cv2.resize(load_image(path), (size, size), interpolation=cv2.INTER_AREA if size < 256 else cv2.INTER_CUBIC)
            clean, background, (top, left) = photo_with_a_face(face, seed)
            clean_landmarks = _landmarks_in_square(detectors["photo size only"].detect(clean), top, left, size)
            photos.append((degrade(clean, seed=seed), degrade(background, seed=seed), (top, left), size, clean_landmarks))
        for label, detector in detectors.items():
            counts = count_detections(detector, photos)
            table.add(size, len(photos), label, *counts.values())
    table.notes.append(f"detector: {detector.name}, score threshold {detector.score_threshold}; faces from {args.faces_dir}")
    print(table.markdown())
    if args.group_photos:
        print()
        print(group_photo_table(args.faces_dir, args.group_photos, args.detector_weights).markdown())


def group_photo_table(faces_dir: Path, count: int, detector_weights: str | None) -> Table:
    """Faces found in group photos with and without taking weakly scored small faces from the small-face search."""
    face_paths = list_images(faces_dir)
    sizes = ((1280, 960), (1600, 1200), (2000, 1500))
    photos = [group_photo(face_paths, seed, *size) for seed in range(count) for size in sizes]
    detectors = {
        "threshold on the 1,024-px copy": FaceDetector("retinaface", weights_dir=detector_weights, weak_face_score=None),
        f"and weak faces ({WEAK_FACE_SCORE}+) the finer copy finds, without the face check": FaceDetector(
            "retinaface", weights_dir=detector_weights, face_check_threshold=None
        ),
        f"and weak faces ({WEAK_FACE_SCORE}+) the finer copy finds (the default)": FaceDetector(
            "retinaface", weights_dir=detector_weights
        ),
    }
    table = Table(["Group photos", "Faces", "Detection", "Faces found", "False faces"])
    for label, detector in detectors.items():
        table.add(len(photos), 12 * len(photos), label, *count_group_detections(detector, photos))
    table.notes.append(f"sizes {', '.join(f'{w}x{h}' for w, h in sizes)}; faces from {faces_dir} in name order")
    return table


if __name__ == "__main__":
    main()
