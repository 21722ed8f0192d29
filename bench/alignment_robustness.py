"""How much of a model's gain holds on aligned faces cropped otherwise than FFHQ's template.

    python bench/alignment_robustness.py ../shared/data/ffhq256/test --model models/default --faces 40

Other datasets crop their aligned faces a little otherwise (CelebA-HQ's, for one, and any user's own aligner). Each of
the first --faces faces is moved in its frame (zoomed 0.88 or 1.12 about the centre, so the face is smaller or larger
in the frame, or shifted 12 px of 256 down and to the right; the frame's edge reflected where it is uncovered), then
made into a paired test set with make-testset's recipe at --resolution (`facerest.data.make_testset`, seed 0) and
restored as `restore --aligned` restores it (default settings, seeded per batch as bench/default_checks.py seeds).
Prints, per variant, PSNR and SSIM of the degraded and the restored faces against the moved clean ones.
"""

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from default_checks import restore_aligned  # a sibling script: bench/ is on sys.path when this one runs
from facerest import FaceRestorePipeline
from facerest.data import make_testset
from facerest.images import list_images, load_image, save_image
from facerest.metrics import psnr, ssim
from facerest.table import Table

# name -> (zoom about the centre, shift in pixels of a 256-px face, down and to the right)
VARIANTS = {"as aligned": (1.0, 0), "zoomed 0.88": (0.88, 0), "zoomed 1.12": (1.12, 0), "shifted 12 px": (1.0, 12)}


def moved(face: np.ndarray, zoom: float, shift_of_256: float) -> np.ndarray:
    """`face` zoomed about its centre and shifted, its uncovered edge reflected."""
    side = face.shape[0]
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), 0, zoom)
    matrix[:, 2] += shift_of_256 * side / 256
    return cv2.warpAffine(face, matrix, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("faces_dir", type=Path, help="aligned clean faces (e.g. ../shared/data/ffhq256/test)")
    parser.add_argument("--model", default="models/default", help="a saved FaceRestorePipeline")
    parser.add_argument("--faces", type=int, default=40, help="faces per variant (the first in name order)")
    parser.add_argument("--resolution", type=int, default=512, help="the test sets' face size (make-testset's)")
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.model)
    paths = list_images(args.faces_dir)[: args.faces]
    table = Table(["Variant", "Faces", "Input PSNR", "Input SSIM", "Restored PSNR", "Restored SSIM", "Gain (dB)"])
    with tempfile.TemporaryDirectory() as work:
        for name, (zoom, shift) in VARIANTS.items():
            source, testset = Path(work) / name / "source", Path(work) / name / "testset"
            source.mkdir(parents=True)
            for path in paths:
                save_image(moved(load_image(path), zoom, shift), source / f"{path.stem}.png")
            make_testset(source, testset, resolution=args.resolution, seed=0)
            degraded = [load_image(path) for path in list_images(testset / "lq")]
            originals = [load_image(path) for path in list_images(testset / "hq")]
            restored = restore_aligned(pipeline, degraded, {"output_type": "np", "progress": False})
            before, after = psnr(degraded, originals).mean(), psnr(restored, originals).mean()
            row = table.add(
                name, len(paths), f"{before:.2f}", f"{ssim(degraded, originals).mean():.4f}", f"{after:.2f}",
                f"{ssim(restored, originals).mean():.4f}", f"{after - before:+.2f}",
            )  # fmt: skip
            print(row, flush=True)
    print(table.markdown())


if __name__ == "__main__":
    main()
