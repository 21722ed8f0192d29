"""Whether a face keeps its deblocking where the grid is a JPEG's and loses it where the grid is a wall's.

    python bench/deblock_walls.py --photos runs/heldout_photos --photos runs/heldout_photos2 --model models/default

The pipeline looks for an enlarged JPEG's grid of blocks in the whole photo (`facerest.deblock`), where tiles or
bricks behind a face fold into a grid as the blocks do; deblocked, such a face loses detail of its own. A deblocked
face whose restoration keeps less than `DEBLOCKED_SHARPNESS_SHARE` of the photo's sharpness in its box is restored
again without the deblocking (`facerest.photo_restoration.restore_photo`). Two kinds of photos, each restored as README
command 1 restores it (seed 0):

- walls: clean faces of `ffhq256/test` (110-280 px) set before tiled walls (grout every 16-64 px) and brick walls;
- JPEGs: the photos of each `--photos` folder shrunk 2, 3 and 4 times (area), saved as JPEG of quality 30 and 50
  and enlarged back (bicubic), as photos passed around the web are: their grid is their own.

For each face deblocked: the share of the photo's sharpness (`gradient_sharpness` of `face_window`) that its
deblocked restoration keeps (measured with the check off), whether the check restored it again undeblocked, and its
sharpness after the pipeline, with the check; for the JPEGs also the PSNR of the face's box against the clean photo.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

import facerest.photo_restoration
from facerest import FaceRestorePipeline
from facerest.face_detection import FaceDetector
from facerest.faces import face_window
from facerest.images import list_images, load_image
from facerest.metrics import gradient_sharpness, psnr
from facerest.table import Table

from degradation_sweep import one_stage  # a sibling script: bench/ is on sys.path when this one runs

WALL_PHOTO_SHAPE = (720, 960)
FACE_SIZES = (110, 160, 220, 280)
SHRINKS = (2, 3, 4)
QUALITIES = (30, 50)


def tiled_wall(period: int, line: int, rng: np.random.Generator) -> np.ndarray:
    """Light tiles with grout lines every `period` px, a little texture over them."""
    wall = rng.normal(200, 3, (*WALL_PHOTO_SHAPE, 3))
    for start in range(line):
        wall[:, start::period], wall[start::period] = 120, 120
    return np.clip(wall, 0, 255).astype(np.uint8)


def brick_wall(width: int, height: int, line: int, rng: np.random.Generator) -> np.ndarray:
    """Red bricks of `width` x `height` px in light mortar, each course shifted half a brick."""
    wall = np.empty((*WALL_PHOTO_SHAPE, 3))
    wall[:] = (170, 90, 70)
    for course, top in enumerate(range(0, WALL_PHOTO_SHAPE[0], height)):
        wall[top : top + line] = 200
        for left in range(-(width // 2) * (course % 2), WALL_PHOTO_SHAPE[1], width):
            wall[top : top + height, max(left, 0) : max(left, 0) + line] = 200
    return np.clip(wall + rng.normal(0, 4, wall.shape), 0, 255).astype(np.uint8)


def walls() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "tiles 16 px": tiled_wall(16, 1, rng), "tiles 32 px": tiled_wall(32, 2, rng), "tiles 48 px": tiled_wall(48, 3, rng),
        "tiles 64 px": tiled_wall(64, 3, rng), "bricks 48 x 24 px": brick_wall(48, 24, 2, rng),
        "bricks 80 x 40 px": brick_wall(80, 40, 3, rng),
    }  # fmt: skip


def saved_small_and_enlarged(times: int, quality: int):
    """`degrade` shrinking a photo `times` times (area), saving it as a JPEG of `quality` and enlarging it back
    (bicubic), as photos passed around the web are."""
    return one_stage(
        downsample_range=(times, times), jpeg_range=(quality, quality), downsample_modes=("area",), upsample_modes=("cubic",)
    )


def restore(pipeline: FaceRestorePipeline, photo: np.ndarray, detector: FaceDetector, check: bool):
    """README command 1's restoration of `photo`; without `check`, the deblocked faces are never sent back."""
    share = facerest.photo_restoration.DEBLOCKED_SHARPNESS_SHARE
    facerest.photo_restoration.DEBLOCKED_SHARPNESS_SHARE = share if check else 0.0
    try:
        generator = torch.Generator().manual_seed(0)
        return pipeline(photo, detector=detector, output_type="np", progress=False, generator=generator)
    finally:
        facerest.photo_restoration.DEBLOCKED_SHARPNESS_SHARE = share


def measure(pipeline, photo: np.ndarray, detector: FaceDetector, clean: np.ndarray | None) -> list[dict]:
    """One record per face deblocked in `photo` (none when no grid is found)."""
    unchecked = restore(pipeline, photo, detector, check=False)
    if not any("deblocked first" in message for message in unchecked.messages[0]):
        return []
    checked = restore(pipeline, photo, detector, check=True)
    records = []
    for index, box in enumerate(unchecked.face_boxes[0]):
        window = face_window(box, photo.shape)
        sharpness = gradient_sharpness(photo[window])
        sent_back = f"face {index} restored without deblocking"
        record = {
            "kept": gradient_sharpness(unchecked.images[0][window]) / sharpness,
            "sent back": any(message.startswith(sent_back) for message in checked.messages[0]),
            "after": gradient_sharpness(checked.images[0][window]) / sharpness,
        }
        if clean is not None:
            x1, y1, x2, y2 = np.round(box).astype(int)
            in_box = (slice(max(y1, 0), y2), slice(max(x1, 0), x2))
            images = (photo, unchecked.images[0], checked.images[0])
            record["psnr"] = [psnr([image[in_box]], [clean[in_box]])[0] for image in images]
        records.append(record)
    return records


def add_row(table: Table, what: str, records: list[dict]) -> None:
    """One row of `table` for the faces of `records` (`measure`), printed: ranges of their sharpness, means of their
    PSNR."""
    cells = [what, len(records), "-", "-", "-", "-"]
    if records:
        kept = np.array([record["kept"] for record in records])
        after = np.array([record["after"] for record in records])
        psnrs = np.array([record["psnr"] for record in records]) if "psnr" in records[0] else None
        cells[2:] = [
            f"{kept.min():.2f}-{kept.max():.2f}", sum(record["sent back"] for record in records),
            f"{after.min():.2f}-{after.max():.2f}",
            "-" if psnrs is None else " / ".join(f"{value:.2f}" for value in psnrs.mean(axis=0)),
        ]  # fmt: skip
    row = table.add(*cells)
    print(" | ".join(table.cell(value) for value in row.values()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="a saved pipeline (default: models/default)")
    parser.add_argument("--photos", type=Path, action="append", default=[], help="clean whole photos (repeatable)")
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/data/ffhq256/test"), help="clean aligned faces")
    parser.add_argument("--detector-weights", default="../shared/weights/facexlib", help="RetinaFace weights")
    parser.add_argument("--out", type=Path, help="write the table here (OUT.md and OUT.csv)")
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.model)
    detector = FaceDetector(weights_dir=args.detector_weights)
    faces = [load_image(path) for path in list_images(args.faces_dir)[: len(FACE_SIZES)]]
    table = Table([
        "photos", "faces deblocked", "sharpness kept deblocked", "sent back undeblocked", "sharpness after",
        "PSNR: input / deblocked / after (dB)",
    ])  # fmt: skip
    for name, wall in walls().items():
        records = []
        for face, size in zip(faces, FACE_SIZES):
            photo = wall.copy()
            photo[150 : 150 + size, 300 : 300 + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
            records += measure(pipeline, photo, detector, clean=None)
        add_row(table, f"clean faces of {', '.join(map(str, FACE_SIZES))} px before {name}", records)
    for folder in args.photos:
        for quality in QUALITIES:
            records = []
            for path in list_images(folder):
                clean = load_image(path)
                for times in SHRINKS:
                    records += measure(pipeline, saved_small_and_enlarged(times, quality)(clean, times), detector, clean)
            add_row(table, f"{folder.name}, shrunk {', '.join(map(str, SHRINKS))}x, JPEG {quality}, enlarged", records)
    share = facerest.photo_restoration.DEBLOCKED_SHARPNESS_SHARE
    table.notes.append(f"DEBLOCKED_SHARPNESS_SHARE = {share}; sharpness: the face box's gradient over the photo's")
    print(table.markdown())
    if args.out:
        table.write(args.out)


if __name__ == "__main__":
    main()
