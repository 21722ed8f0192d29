"""Where a model's change to a face is right or wrong: PSNR against the original in the coarse band (the face's
Gaussian blur at --sigma px: shading, colour), in the fine band (the face less that blur: detail), and over the whole
face once the restoration's mean colour is set to the input's, for degradations of `degradation_sweep.py`.

    python bench/band_errors.py --model models/default --degradation "JPEG quality 40" --degradation "downsampled 2x"

A model that loses PSNR on a face in the coarse band alone has moved its shading or colour, not added or removed
detail. The faces are restored as `degradation_sweep.py` restores them (the first --faces of --faces-dir).
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from facerest import FaceRestorePipeline
from facerest.images import list_images, load_image
from facerest.metrics import psnr
from facerest.table import Table

from default_checks import restore_aligned
from degradation_sweep import DEGRADATIONS


def band_psnrs(restored: np.ndarray, original: np.ndarray, sigma: float) -> tuple[float, float]:
    """(coarse-band PSNR, fine-band PSNR) in dB, 0-255 units (float bands, which `metrics.psnr`, uint8 only, cannot take)."""
    restored, original = restored.astype(np.float64), original.astype(np.float64)
    coarse_restored, coarse_original = cv2.GaussianBlur(restored, (0, 0), sigma), cv2.GaussianBlur(original, (0, 0), sigma)
    return (
        decibels(coarse_restored - coarse_original),
        decibels((restored - coarse_restored) - (original - coarse_original)),
    )


def decibels(difference: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean(difference**2)))


def with_mean_colour_of(restored: np.ndarray, reference: np.ndarray) -> np.ndarray:
    restored = restored.astype(np.float64)
    return restored - restored.mean((0, 1)) + reference.astype(np.float64).mean((0, 1))


def band_table(pipeline: FaceRestorePipeline, originals: list[np.ndarray], degradations: list[str], sigma: float) -> Table:
    table = Table(["degradation", "face", "PSNR", f"coarse band (sigma {sigma:g} px)", "fine band", "PSNR, input's mean colour"])
    for name in degradations:
        degraded = [DEGRADATIONS[name](face, seed) for seed, face in enumerate(originals)]
        restored = restore_aligned(pipeline, degraded, dict(output_type="np", progress=False))
        for label, faces in (("input", degraded), ("restored", restored)):
            whole = psnr(faces, originals)
            bands = np.array([band_psnrs(face, original, sigma) for face, original in zip(faces, originals)])
            matched = [
                decibels(with_mean_colour_of(face, lq) - original) for face, lq, original in zip(faces, degraded, originals)
            ]
            table.add(name, label, float(np.mean(whole)), float(bands[:, 0].mean()), float(bands[:, 1].mean()), float(np.mean(matched)))
    table.notes.append(f"{len(originals)} aligned 256-px faces; PSNR in dB, the mean over the faces")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="a saved pipeline")
    parser.add_argument("--degradation", action="append", choices=list(DEGRADATIONS), help="repeatable (default: all)")
    parser.add_argument("--sigma", type=float, default=2.0, help="the coarse band's Gaussian blur, in pixels")
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/data/ffhq256/test"), help="clean aligned faces")
    parser.add_argument("--faces", type=int, default=24)
    parser.add_argument("--out", type=Path, help="write the table here (OUT.md and OUT.csv)")
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.model)
    originals = [load_image(path) for path in list_images(args.faces_dir)[: args.faces]]
    table = band_table(pipeline, originals, args.degradation or list(DEGRADATIONS), args.sigma)
    print(table.markdown())
    if args.out:
        table.write(args.out)


if __name__ == "__main__":
    main()
