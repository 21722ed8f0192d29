"""Faces found in large portraits: the face itself, and what else the detector takes for a face, with and without
the face check (`FaceDetector(face_check_threshold=...)`).

    python bench/portrait_detection.py ../shared/data/ffhq256/test --detector-weights ../shared/weights/facexlib

Each aligned face is enlarged to fill a portrait, in several layouts: as it is at 512, 1,024 and 1,500 px; at 1,024
px padded with its own edge rows and columns (`cv2.BORDER_REPLICATE`: around it, and 400 px below it, where the
repeated bottom rows make stripes of skin and clothes, and 300 px on each side); and at 700 px in a mirrored border,
turned 30 degrees. The face counts as found when a detection's landmarks all lie within 0.7 of the eye distance of
the FFHQ template's there; every other detection is counted as another one. Some of those are real: people behind
the face (01000, 01005), a second face cut by the frame (01072), the mirrored border's copies of the face.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from facerest.face_detection import FaceDetector
from facerest.faces import FFHQ_TEMPLATE_512
from facerest.images import list_images, load_image
from facerest.table import Table

# name: (side the face is enlarged to, border top, bottom, left, right, border type, degrees turned)
LAYOUTS = {
    "512 px": (512, 0, 0, 0, 0, cv2.BORDER_REPLICATE, 0),
    "1,024 px": (1024, 0, 0, 0, 0, cv2.BORDER_REPLICATE, 0),
    "1,500 px": (1500, 0, 0, 0, 0, cv2.BORDER_REPLICATE, 0),
    "1,024 px, edges repeated around": (1024, 128, 128, 256, 0, cv2.BORDER_REPLICATE, 0),
    "1,024 px over 400 px of stripes": (1024, 0, 400, 0, 0, cv2.BORDER_REPLICATE, 0),
    "900 px between 300-px stripes": (900, 0, 0, 300, 300, cv2.BORDER_REPLICATE, 0),
    "700 px, mirrored border, turned 30 degrees": (700, 100, 100, 100, 100, cv2.BORDER_REFLECT, 30),
}


def portrait(face: np.ndarray, layout: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(the portrait, the FFHQ template's landmarks in it)."""
    side, top, bottom, left, right, border, degrees = layout
    image = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, border)
    landmarks = FFHQ_TEMPLATE_512 * (side / 512) + np.array([left, top], np.float32)
    if degrees:
        height, width = image.shape[:2]
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        image = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
        landmarks = np.hstack([landmarks, np.ones((5, 1), np.float32)]) @ turn.T
    return image, landmarks.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "faces_dir", type=Path, help="aligned face images, its sub-folders too (e.g. ../shared/data/ffhq256/test)"
    )
    parser.add_argument("--count", type=int, default=100, help="faces (the first in name order)")
    parser.add_argument("--detector-weights", default=None, help="RetinaFace weights folder (else facerest's default)")
    args = parser.parse_args()

    detectors = {
        "without the face check": FaceDetector(
            "retinaface", weights_dir=args.detector_weights, face_check_threshold=None
        ),
        "with it (the default)": FaceDetector("retinaface", weights_dir=args.detector_weights),
    }
    faces = [load_image(path) for path in list_images(args.faces_dir, recursive=True)[: args.count]]
    table = Table(["Layout", "Portraits", "Detection", "Face found", "Other detections", "Portraits with others"])
    for name, layout in LAYOUTS.items():
        portraits = [portrait(face, layout) for face in faces]
        for label, detector in detectors.items():
            found, others, with_others = 0, 0, 0
            for image, landmarks in portraits:
                eye_distance = np.linalg.norm(landmarks[1] - landmarks[0])
                detections = detector.detect(image)
                gaps = [np.linalg.norm(face.landmarks - landmarks, axis=1).max() for face in detections]
                is_face = any(gap < 0.7 * eye_distance for gap in gaps)
                found += is_face
                others += len(detections) - is_face
                with_others += len(detections) > is_face
            table.add(name, len(portraits), label, found, others, with_others)
    table.notes.append(f"detector: {detectors['with it (the default)'].name}; faces from {args.faces_dir}")
    print(table.markdown())


if __name__ == "__main__":
    main()
