"""The default model's checks in one run, for choosing between candidate models or sampling settings.

    python bench/default_checks.py --model runs/idm256detail --parts whole,clean,test,real

Each part prints one line (and `--out` writes them all as JSON):

- whole: every face of `whole_imgs`, sharpness (`gradient_sharpness` of its box grown 1.2x, `face_window`) after /
  before; the lowest, the median, how many came out blurrier, and the lowest eight by name; and the same ratio of
  `laplacian_variance`, lowest and median (`--paste-every-face`: without the pipeline's `never_blur`, to see the
  model's own);
- clean: PSNR(output, input) with the clean faces of the test set as input (the model should keep them);
- test: PSNR, SSIM and NIQE of the restored degraded faces of the test set, and seconds per face;
- real: NIQE of the real low-quality faces of `realworld_lq` before and after;
- photos: paired photos, as README command 1 restores them. The first 24 clean faces of the test set, each resized to
  128, 256 and 512 px and set into a photo 2.4 x 1.8 times its size (`detection_recall.photo_with_a_face`), the photo
  degraded with the test set's recipe as if the face were 512 px (seeded per face); PSNR and SSIM of the face's square
  against the clean photo before and after, per face size, how many faces were found (a box centred in the square)
  and how many false faces; and the PSNR of the degraded square restored as an aligned face (`restore --aligned`).

Faces are restored in batches of eight with seed 0, 8, 16, ... (whole photos: seed 0 each), so figures can differ by
a little from the CLI's, which seeds one face at a time; compare candidates with this script alone. `--seed S` adds S
to every seed: the spread of a model's figures over seeds is what a difference between two models must exceed.
"""

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from detection_recall import photo_with_a_face  # a sibling script: bench/ is on sys.path when this one runs
from facerest import FaceRestorePipeline
from facerest.degradation import DegradationConfig, degrade
from facerest.face_detection import FaceDetector
from facerest.faces import face_window
from facerest.images import list_images, load_image
from facerest.metrics import gradient_sharpness, laplacian_variance, load_niqe_params, niqe, psnr, ssim
from facerest.pipeline import DEFAULT_FIDELITY

BATCH = 8
PARTS = ("whole", "clean", "test", "real", "photos")
PHOTO_FACE_SIZES = (128, 256, 512)
PHOTO_FACES = 24


def restore_aligned(pipeline, faces, settings, seed: int = 0) -> list[np.ndarray]:
    restored = []
    for start in range(0, len(faces), BATCH):
        generator = torch.Generator().manual_seed(seed + start)
        batch = faces[start : start + BATCH]
        restored += pipeline(batch, aligned=True, generator=generator, **settings).images
    return restored


def check_whole_photos(pipeline, settings, detector, shared: Path, seed: int) -> dict:
    ratios, laplacian_ratios = {}, []
    for path in list_images(shared / "data" / "whole_imgs"):
        photo = load_image(path)
        output = pipeline(photo, detector=detector, generator=torch.Generator().manual_seed(seed), **settings)
        for index, box in enumerate(output.face_boxes[0]):
            window = face_window(box, photo.shape)  # the box grown 1.2x, as bench/before_after.py measures it
            ratio = gradient_sharpness(output.images[0][window]) / gradient_sharpness(photo[window])
            ratios[f"{path.stem}_{index:02d} ({int(box[2] - box[0])} px)"] = ratio
            laplacian_ratios.append(laplacian_variance(output.images[0][window]) / laplacian_variance(photo[window]))
    values = np.array(list(ratios.values()))
    lowest = sorted(ratios.items(), key=lambda item: item[1])[:8]
    return {
        "faces": len(values), "lowest": float(values.min()), "median": float(np.median(values)),
        "blurrier": int((values < 1).sum()), "lowest_faces": {name: round(float(r), 3) for name, r in lowest},
        "laplacian_lowest": float(min(laplacian_ratios)), "laplacian_median": float(np.median(laplacian_ratios)),
    }  # fmt: skip


def check_clean_faces(pipeline, settings, testset: Path, seed: int) -> dict:
    clean = [load_image(path) for path in list_images(testset / "hq")]
    scores = psnr(restore_aligned(pipeline, clean, settings, seed), clean)
    return {"psnr_mean": float(scores.mean()), "psnr_lowest": float(scores.min()), "below_30_db": int((scores < 30).sum())}


def check_test_faces(pipeline, settings, testset: Path, niqe_params, seed: int) -> dict:
    degraded = [load_image(path) for path in list_images(testset / "lq")]
    originals = [load_image(path) for path in list_images(testset / "hq")]
    start = time.perf_counter()
    restored = restore_aligned(pipeline, degraded, settings, seed)
    seconds = (time.perf_counter() - start) / len(degraded)
    return {
        "psnr_input": float(psnr(degraded, originals).mean()), "psnr": float(psnr(restored, originals).mean()),
        "ssim_input": float(ssim(degraded, originals).mean()), "ssim": float(ssim(restored, originals).mean()),
        "niqe_input": float(niqe(degraded, niqe_params).mean()), "niqe": float(niqe(restored, niqe_params).mean()),
        "seconds_per_face": seconds,
    }  # fmt: skip


def check_real_faces(pipeline, settings, shared: Path, niqe_params, seed: int) -> dict:
    faces = [load_image(path) for path in sorted((shared / "data" / "realworld_lq").rglob("*.png"))]
    before, after = niqe(faces, niqe_params), niqe(restore_aligned(pipeline, faces, settings, seed), niqe_params)
    return {"niqe_input": float(before.mean()), "niqe": float(after.mean()), "lower": int((after < before).sum()), "faces": len(faces)}


def check_paired_photos(pipeline, settings, testset: Path, detector, colour: bool, seed: int) -> dict:
    colour_stages = {} if colour else dict(color_jitter_prob=0.0, gray_prob=0.0, photometric_jitter_prob=0.0)
    figures = {}
    for size in PHOTO_FACE_SIZES:
        squares_before, squares_after, squares_aligned, clean_squares, found, false = [], [], [], [], 0, 0
        for photo_seed, path in enumerate(list_images(testset / "hq")[:PHOTO_FACES]):
            face = cv2.resize(load_image(path), (size, size), interpolation=cv2.INTER_AREA if size < 256 else cv2.INTER_CUBIC)
            clean, _, (top, left) = photo_with_a_face(face, photo_seed)
            recipe = DegradationConfig(reference_resolution=round(512 * max(clean.shape[:2]) / size), **colour_stages)
            degraded = degrade(clean, recipe, seed=photo_seed)
            output = pipeline(degraded, detector=detector, generator=torch.Generator().manual_seed(seed), **settings)
            centres = (output.face_boxes[0][:, :2] + output.face_boxes[0][:, 2:]) / 2
            inside = np.all((centres >= (left, top)) & (centres <= (left + size, top + size)), axis=1)
            found, false = found + int(inside.any()), false + int((~inside).sum())
            square = np.s_[top : top + size, left : left + size]
            squares_before.append(degraded[square])
            squares_after.append(output.images[0][square])
            squares_aligned += restore_aligned(pipeline, [degraded[square]], settings, seed)
            clean_squares.append(clean[square])
        figures[f"{size} px"] = {
            "found": f"{found} of {len(clean_squares)}", "false_faces": false,
            "psnr_input": float(psnr(squares_before, clean_squares).mean()), "psnr": float(psnr(squares_after, clean_squares).mean()),
            "ssim_input": float(ssim(squares_before, clean_squares).mean()), "ssim": float(ssim(squares_after, clean_squares).mean()),
            "psnr_square_as_aligned_face": float(psnr(squares_aligned, clean_squares).mean()),
            "gaining": int((psnr(squares_after, clean_squares) > psnr(squares_before, clean_squares)).sum()),
        }  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="a saved pipeline (default: models/default)")
    parser.add_argument("--steps", type=int, default=None, help="IDM steps (default: the model's)")
    parser.add_argument("--strength", type=float, default=None, help="IDM start (default: the pipeline's)")
    parser.add_argument("--eta", type=float, default=None, help="DDIM eta (default: the ancestral update)")
    parser.add_argument(
        "--fidelity", type=float, default=DEFAULT_FIDELITY, help=f"the pipeline's fidelity (default {DEFAULT_FIDELITY})"
    )
    parser.add_argument(
        "--paste-every-face", action="store_true", help="never_blur=False: paste a restoration even when it is less sharp"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated, of: " + ", ".join(PARTS))
    parser.add_argument("--testset", type=Path, default=Path("runs/testset256"), help="make-testset's folder")
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared data and weights")
    parser.add_argument(
        "--photos-without-colour", action="store_true", help="photos: the recipe without its colour shift, gray and jitter"
    )
    parser.add_argument("--seed", type=int, default=0, help="added to every seed of the restorations (default 0)")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()

    parts = args.parts.split(",")
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        parser.error(f"unknown part {', '.join(unknown)}: choose from {', '.join(PARTS)}")

    pipeline = FaceRestorePipeline.from_pretrained(args.model)
    settings = dict(
        num_inference_steps=args.steps, strength=args.strength, eta=args.eta, fidelity=args.fidelity, output_type="np",
        progress=False,
    )
    photo_settings = dict(settings, never_blur=not args.paste_every_face)
    niqe_params = load_niqe_params(extra_dirs=[args.shared / "weights"])
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=args.shared / "weights" / "facexlib")
    checks = {
        "whole": lambda: check_whole_photos(pipeline, photo_settings, detector, args.shared, args.seed),
        "clean": lambda: check_clean_faces(pipeline, settings, args.testset, args.seed),
        "test": lambda: check_test_faces(pipeline, settings, args.testset, niqe_params, args.seed),
        "real": lambda: check_real_faces(pipeline, settings, args.shared, niqe_params, args.seed),
        "photos": lambda: check_paired_photos(
            pipeline, photo_settings, args.testset, detector, not args.photos_without_colour, args.seed
        ),
    }
    figures = {}
    for part in parts:
        figures[part] = checks[part]()
        print(part, json.dumps(figures[part]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
