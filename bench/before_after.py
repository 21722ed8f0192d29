"""Faces of whole photos before and after restoration, side by side, and whether any came out blurrier.

    python bench/before_after.py ../shared/data/whole_imgs outputs/whole_imgs --out docs/whole_imgs_before_after.png

Reads each photo of the input folder and its restored copy (`OUTPUT/<name>.png`, as `python -m facerest restore`
writes it), finds the faces in the input, and for each face prints its size in the photo and the sharpness of its
box before and after (`facerest.metrics.gradient_sharpness`, the mean Sobel gradient magnitude: it falls when a
face is blurred), and the same ratio with both boxes halved first: a face whose finest pixels lost only noise,
halftone dots or compression blocks keeps its halved ratio, a face that was smoothed loses it at both sizes; and
the ratio of the Laplacian's variance (`facerest.metrics.laplacian_variance`, the common blur measure, which weighs
the finest detail most).
The picture shows every face's box from the input (left) and the output (right), one face per row pair.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from facerest.face_detection import FaceDetector
from facerest.faces import face_window
from facerest.images import halved, list_images, load_image, save_image
from facerest.metrics import gradient_sharpness, laplacian_variance

TILE = 128  # side of one face tile in the picture, px
COLUMNS = 4  # before/after pairs per row


def compare_faces(input_dir: Path, output_dir: Path, detector: FaceDetector) -> list[dict]:
    """One record per face found in the input photos: name, size, sharpness before/after, the after / before ratio
    of both halved, and both tiles."""
    faces = []
    for path in list_images(input_dir):
        before = load_image(path)
        after = load_image(output_dir / path.relative_to(input_dir).with_suffix(".png"))
        if after.shape != before.shape:
            after = cv2.resize(after, (before.shape[1], before.shape[0]), interpolation=cv2.INTER_AREA)
        for index, face in enumerate(detector.detect(before)):
            window = face_window(face.box, before.shape)
            tiles = [cv2.resize(image[window], (TILE, TILE), interpolation=cv2.INTER_AREA) for image in (before, after)]
            faces.append({
                "face": f"{path.stem}_{index:02d}",
                "size": int(max(face.box[2] - face.box[0], face.box[3] - face.box[1])),
                "before": gradient_sharpness(before[window]),
                "after": gradient_sharpness(after[window]),
                "halved": gradient_sharpness(halved(after[window])) / gradient_sharpness(halved(before[window])),
                "laplacian": laplacian_variance(after[window]) / laplacian_variance(before[window]),
                "tiles": tiles,
            })  # fmt: skip
    return faces


def picture(faces: list[dict]) -> np.ndarray:
    """The before/after tiles, COLUMNS pairs per row, with a white gap between pairs."""
    gap = 8
    pair_width = 2 * TILE + gap
    rows = -(-len(faces) // COLUMNS)
    canvas = np.full((rows * (TILE + gap), COLUMNS * pair_width, 3), 255, np.uint8)
    for number, face in enumerate(faces):
        top, left = (number // COLUMNS) * (TILE + gap), (number % COLUMNS) * pair_width
        canvas[top : top + TILE, left : left + 2 * TILE] = np.concatenate(face["tiles"], axis=1)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir", type=Path, help="the photos")
    parser.add_argument("output_dir", type=Path, help="their restored copies (OUTPUT/<name>.png)")
    parser.add_argument("--out", type=Path, help="write the before/after picture here (PNG)")
    parser.add_argument("--detector-weights", default=None, help="RetinaFace weights folder (else facerest's default)")
    args = parser.parse_args()

    faces = compare_faces(args.input_dir, args.output_dir, FaceDetector("auto", weights_dir=args.detector_weights))
    print("| face | size (px) | sharpness before | after | after / before | halved | Laplacian |\n|---|---|---|---|---|---|---|")
    ratios = [face["after"] / face["before"] for face in faces]
    for face, ratio in zip(faces, ratios):
        print(f"| {face['face']} | {face['size']} | {face['before']:.2f} | {face['after']:.2f} | {ratio:.3f} | {face['halved']:.3f} | {face['laplacian']:.3f} |")
    halved_ratios, laplacian_ratios = [face["halved"] for face in faces], [face["laplacian"] for face in faces]
    print(f"\n{len(faces)} faces; after / before: lowest {min(ratios):.3f}, median {np.median(ratios):.3f}; "
          f"halved: lowest {min(halved_ratios):.3f}, median {np.median(halved_ratios):.3f}; "
          f"Laplacian: lowest {min(laplacian_ratios):.3f}, median {np.median(laplacian_ratios):.3f}")
    if args.out:
        save_image(picture(faces), args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
