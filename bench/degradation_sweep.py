"""Where a model helps: one degradation at a time, applied at the aligned face's own pixels, models side by side.

    python bench/degradation_sweep.py --model default=models/default --model other=runs/idm256noisy --faces 24

`make-testset`'s recipe (and the training data) degrades a face as its 512-px photo would be, mixing blur, downsampling,
noise and JPEG; this sweep applies each alone (`degrade` with one stage on, and a motion blur the recipe lacks) at
the 256-px face, some beyond the recipe's ranges (JPEG quality 20, noise that is not enlarged with the face) or
resampled otherwise (shrunk by the area filter and enlarged bicubically, as photo tools do), to show which a model
undoes and which it leaves or worsens. Each cell is
the mean PSNR (dB) and SSIM gain over the degraded input, and how many faces gained PSNR. The first `--faces` faces
of `--faces-dir` are used, restored in batches of eight seeded 0, 8, 16, ... as `bench/default_checks.py` does.

`--in-photos SIZE` measures a face in a photo instead: each face, resized to SIZE px, is set into a photo 2.4 x 1.8
times its size (`detection_recall.photo_with_a_face`), the whole photo is degraded, restored as README command 1
restores it (detection, alignment, the model's change pasted back, seeded 0) and the face's square is scored against
the clean photo's. `--photos DIR` takes whole photos instead, any you hold clean (faces the model never saw, in
photos of any size): each is degraded whole, restored as README command 1 restores it, and every face the detector
finds in the clean photo is scored in its box. `--no-denoise` gives the model each face as it is (`denoise=False`):
the model alone.
"""

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from facerest import FaceRestorePipeline
from facerest.degradation import DegradationConfig, degrade
from facerest.face_detection import FaceDetector
from facerest.images import list_images, load_image
from facerest.metrics import psnr, ssim
from facerest.table import Table

from default_checks import restore_aligned
from detection_recall import photo_with_a_face


def one_stage(**stage) -> Callable[[np.ndarray, int], np.ndarray]:
    """`degrade` with only the given stage of the recipe on, at the face's own pixels (no 512-px reference)."""
    every_stage_off = dict(
        reference_resolution=None, blur_sigma=None, downsample_range=None, noise_range=None, jpeg_range=None,
        color_jitter_prob=0.0, gray_prob=0.0, photometric_jitter_prob=0.0,
    )  # fmt: skip
    config = DegradationConfig(**{**every_stage_off, **stage})
    return lambda face, seed: degrade(face, config, seed=seed)


def motion_blur(face: np.ndarray, seed: int, length: int = 9, angle: float = 30.0) -> np.ndarray:
    """A straight-line blur, which the recipe (Gaussian kernels only) does not have."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1.0
    centre = (length / 2 - 0.5, length / 2 - 0.5)
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle, 1.0), (length, length))
    return cv2.filter2D(face, -1, kernel / kernel.sum())


DEGRADATIONS = {
    "gaussian blur, sigma 3 px": one_stage(blur_sigma=(3.0, 3.0), anisotropic_prob=0.0),
    "motion blur, 9 px at 30°": motion_blur,
    "downsampled 2x": one_stage(downsample_range=(2.0, 2.0)),
    "downsampled 4x": one_stage(downsample_range=(4.0, 4.0)),
    "downsampled 8x": one_stage(downsample_range=(8.0, 8.0)),
    "noise, sigma 15": one_stage(noise_range=(15.0, 15.0)),
    "noise, sigma 30": one_stage(noise_range=(30.0, 30.0)),
    "JPEG quality 20": one_stage(jpeg_range=(20, 20)),
    # a low-light photo's grain as a camera saves it: the JPEG takes the finest band's noise, the coarser grain stays
    "noise, sigma 10, JPEG 70": one_stage(noise_range=(10.0, 10.0), jpeg_range=(70, 70)),
    "noise, sigma 20, JPEG 50": one_stage(noise_range=(20.0, 20.0), jpeg_range=(50, 50)),
    "JPEG quality 40": one_stage(jpeg_range=(40, 40)),
    "downsampled 4x, JPEG 30 there": one_stage(downsample_range=(4.0, 4.0), jpeg_range=(30, 30)),
    # shrunk and enlarged as photo tools do it (the recipe resamples bilinearly)
    "downsampled 2x (area), enlarged bicubic": one_stage(
        downsample_range=(2.0, 2.0), downsample_modes=("area",), upsample_modes=("cubic",)
    ),
    "downsampled 4x (area), enlarged bicubic": one_stage(
        downsample_range=(4.0, 4.0), downsample_modes=("area",), upsample_modes=("cubic",)
    ),
    "downsampled 3x (area), JPEG 70 there, enlarged bicubic": one_stage(
        downsample_range=(3.0, 3.0), jpeg_range=(70, 70), downsample_modes=("area",), upsample_modes=("cubic",)
    ),
}


def restore_in_photos(pipeline: FaceRestorePipeline, photos: list[np.ndarray], settings: dict) -> list[np.ndarray]:
    """Each photo restored as README command 1 restores it (detection, alignment, the change pasted back), seeded 0."""
    return [pipeline(photo, generator=torch.Generator().manual_seed(0), **settings).images[0] for photo in photos]


def face_pairs(
    originals: list[np.ndarray], apply_degradation: Callable, photo_face_size: int | None, settings: dict
) -> tuple[list[np.ndarray], list[np.ndarray], Callable]:
    """(clean faces, degraded faces, restore) for one degradation, where `restore(pipeline)` gives the restored
    faces: the aligned faces themselves, or with `photo_face_size` each face's square in a photo (`photo_with_a_face`,
    the face resized to that size) that is degraded and restored whole; `settings`: the pipeline call's options."""
    if not photo_face_size:
        degraded = [apply_degradation(face, seed) for seed, face in enumerate(originals)]
        return originals, degraded, lambda pipeline: restore_aligned(pipeline, degraded, settings)
    faces = [cv2.resize(face, (photo_face_size,) * 2, interpolation=cv2.INTER_AREA) for face in originals]
    photos, _, corners = zip(*(photo_with_a_face(face, seed) for seed, face in enumerate(faces)))
    degraded_photos = [apply_degradation(photo, seed) for seed, photo in enumerate(photos)]

    def squares(images: list[np.ndarray]) -> list[np.ndarray]:
        return [image[top : top + photo_face_size, left : left + photo_face_size] for image, (top, left) in zip(images, corners)]

    return squares(photos), squares(degraded_photos), lambda pipeline: squares(restore_in_photos(pipeline, degraded_photos, settings))


FaceBox = tuple[int, slice, slice]  # (photo index, rows, columns)


def faces_of_photos(photos: list[np.ndarray], detector: dict) -> list[FaceBox]:
    """The box of every face the detector finds in the clean photos (16 px at least, which SSIM's window needs)."""
    find_faces = FaceDetector(**detector, min_face_size=16)
    boxes = []
    for index, photo in enumerate(photos):
        for face in find_faces.detect(photo):
            left, top = np.maximum(np.round(face.box[:2]).astype(int), 0)
            right, bottom = np.round(face.box[2:]).astype(int)
            boxes.append((index, slice(top, bottom), slice(left, right)))
    if not boxes:
        raise SystemExit(f"no face found in the {len(photos)} clean photo(s): nothing to score")
    return boxes


def photo_face_pairs(
    photos: list[np.ndarray], boxes: list[FaceBox], apply_degradation: Callable, settings: dict
) -> tuple[list[np.ndarray], list[np.ndarray], Callable]:
    """`face_pairs` for whole photos: each photo degraded whole, each face scored in its box (`faces_of_photos`)."""
    degraded_photos = [apply_degradation(photo, seed) for seed, photo in enumerate(photos)]

    def faces(images: list[np.ndarray]) -> list[np.ndarray]:
        return [images[index][rows, columns] for index, rows, columns in boxes]

    return faces(photos), faces(degraded_photos), lambda pipeline: faces(restore_in_photos(pipeline, degraded_photos, settings))


def sweep(
    models: dict[str, FaceRestorePipeline], originals: list[np.ndarray], photo_face_size: int | None, detector: dict,
    denoise: bool = True, photos: list[np.ndarray] | None = None, degradations: list[str] | None = None,
) -> Table:
    """Each degradation's input PSNR and SSIM and each model's gains (`face_pairs`; with `photos`, `photo_face_pairs`
    instead, `originals` unused); `degradations` names the rows of `DEGRADATIONS` to measure (default: all)."""
    in_photos = bool(photo_face_size or photos)
    settings = dict(output_type="np", progress=False, denoise=denoise) | (dict(detector=detector) if in_photos else {})
    boxes = faces_of_photos(photos, detector) if photos else []
    table = Table(["degradation", "input PSNR", "input SSIM"] + [f"{name}: ΔPSNR, ΔSSIM, faces gaining" for name in models])
    for degradation_name in degradations or DEGRADATIONS:
        apply_degradation = DEGRADATIONS[degradation_name]
        if photos:
            targets, degraded, restore = photo_face_pairs(photos, boxes, apply_degradation, settings)
        else:
            targets, degraded, restore = face_pairs(originals, apply_degradation, photo_face_size, settings)
        psnr_in, ssim_in = psnr(degraded, targets), ssim(degraded, targets)
        row = table.add(degradation_name, float(psnr_in.mean()), float(ssim_in.mean()))
        for name, pipeline in models.items():
            restored = restore(pipeline)
            psnr_out, ssim_out = psnr(restored, targets), ssim(restored, targets)
            gain = f"{(psnr_out - psnr_in).mean():+.2f} dB, {(ssim_out - ssim_in).mean():+.3f}, {int((psnr_out > psnr_in).sum())}/{len(targets)}"
            row[f"{name}: ΔPSNR, ΔSSIM, faces gaining"] = gain
        print(" | ".join(table.cell(value) for value in row.values()), flush=True)
    if photos:
        sizes = sorted(rows.stop - rows.start for _, rows, _ in boxes)
        where = f"faces ({sizes[0]}-{sizes[-1]} px boxes) of {len(photos)} whole photos, each photo"
    else:
        where = f"{photo_face_size}-px faces in photos, each photo" if photo_face_size else "aligned 256-px faces; each"
    table.notes.append(f"{len(boxes or originals)} {where} degraded by one degradation alone, at its own pixels")
    if not denoise:
        table.notes.append("denoise=False: the model given each face as it is")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH of a saved pipeline (repeatable)")
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/data/ffhq256/test"), help="clean aligned faces")
    parser.add_argument("--faces", type=int, default=24, help="how many of them (default 24)")
    parser.add_argument(
        "--in-photos", type=int, metavar="SIZE",
        help="set each face, resized to SIZE px, into a photo, degrade the photo and restore it as README command 1 does",
    )  # fmt: skip
    parser.add_argument(
        "--photos", type=Path, metavar="DIR",
        help="clean whole photos: each degraded whole and restored as README command 1 does, its faces scored in their boxes",
    )  # fmt: skip
    parser.add_argument(
        "--detector-weights", default="../shared/weights/facexlib", help="RetinaFace weights (--in-photos, --photos)"
    )
    parser.add_argument("--no-denoise", action="store_true", help="give the model each face as it is (denoise=False)")
    parser.add_argument(
        "--degradation", action="append", choices=list(DEGRADATIONS), help="measure only this row (repeatable; default: all)"
    )
    parser.add_argument("--out", type=Path, help="write the table here (OUT.md and OUT.csv)")
    args = parser.parse_args()

    named = [spec.split("=", 1) for spec in args.model]
    if any(len(pair) != 2 for pair in named):
        parser.error("--model takes NAME=PATH")
    models = {name: FaceRestorePipeline.from_pretrained(path) for name, path in named}
    if args.photos and args.in_photos:
        parser.error("--photos and --in-photos are two sources of faces: give one")
    photos = [load_image(path) for path in list_images(args.photos)] if args.photos else None
    originals = [] if photos else [load_image(path) for path in list_images(args.faces_dir)[: args.faces]]
    detector = {"weights_dir": args.detector_weights}
    table = sweep(
        models, originals, args.in_photos, detector, denoise=not args.no_denoise, photos=photos, degradations=args.degradation
    )
    print(table.markdown())
    if args.out:
        table.write(args.out)


if __name__ == "__main__":
    main()
