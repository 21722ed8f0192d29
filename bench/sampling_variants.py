"""Other ways to sample a trained IDM, on the paired test set: other timesteps, and a face averaged with its mirror.

    python bench/sampling_variants.py --model models/default --timesteps 999,499 --timesteps 999,699 --mirror-average

Each row restores the degraded faces of `--testset` (in batches of eight seeded 0, 8, 16, ... as
`bench/default_checks.py` does, so the first row with the model's own timesteps matches its "test" part) and gives
PSNR, SSIM and NIQE against the clean faces and seconds per face:

- `--timesteps T1,T2,...`: sample at these timesteps, largest first, instead of the scheduler's evenly strided ones
  (the default model's two steps are 999,499);
- `--mirror-average`: also, for each of those, the mean of a face's restoration and that of its mirror image
  flipped back (a test-time ensemble: twice the time).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from default_checks import restore_aligned  # a sibling script: bench/ is on sys.path when this one runs
from facerest import FaceRestorePipeline
from facerest.images import list_images, load_image
from facerest.metrics import load_niqe_params, niqe, psnr, ssim
from facerest.models.idm.scheduling_idm import IDMScheduler
from facerest.table import Table


def scheduler_sampling_at(config, timesteps: tuple[int, ...]) -> IDMScheduler:
    """The IDM scheduler of `config`, sampling at `timesteps` whatever the step count asked for."""

    class FixedTimestepsScheduler(IDMScheduler):
        def sampling_timesteps(self, num_inference_steps: int) -> torch.Tensor:
            return torch.tensor(timesteps)

    return FixedTimestepsScheduler.from_config(config)


def restored_faces(pipeline, degraded: list[np.ndarray], timesteps: tuple[int, ...], mirror: bool) -> list[np.ndarray]:
    pipeline.scheduler = scheduler_sampling_at(pipeline.scheduler.config, timesteps)
    settings = dict(num_inference_steps=len(timesteps), output_type="np", progress=False)
    restored = restore_aligned(pipeline, degraded, settings)
    if not mirror:
        return restored
    mirrored = restore_aligned(pipeline, [np.ascontiguousarray(face[:, ::-1]) for face in degraded], settings)
    return [
        np.rint((face.astype(np.float32) + mirror_face[:, ::-1]) / 2).astype(np.uint8)
        for face, mirror_face in zip(restored, mirrored)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="a saved IDM pipeline (default: models/default)")
    parser.add_argument("--timesteps", action="append", required=True, help="comma-separated, largest first (repeatable)")
    parser.add_argument("--mirror-average", action="store_true", help="also average each face with its mirror's")
    parser.add_argument("--testset", type=Path, default=Path("runs/testset256"), help="make-testset's folder")
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared data and weights")
    parser.add_argument("--out", type=Path, help="write the table here (OUT.md and OUT.csv)")
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.model)
    if pipeline.kind != "idm":
        parser.error(f"{args.model} is a {pipeline.kind} pipeline; these variants sample an IDM")
    niqe_params = load_niqe_params(extra_dirs=[args.shared / "weights"])
    degraded = [load_image(path) for path in list_images(args.testset / "lq")]
    originals = [load_image(path) for path in list_images(args.testset / "hq")]
    table = Table(["timesteps", "mirror average", "PSNR", "SSIM", "NIQE", "seconds per face"])
    for spec in args.timesteps:
        timesteps = tuple(int(value) for value in spec.split(","))
        for mirror in (False, True) if args.mirror_average else (False,):
            start = time.perf_counter()
            restored = restored_faces(pipeline, degraded, timesteps, mirror)
            seconds = (time.perf_counter() - start) / len(degraded)
            row = table.add(
                spec, "yes" if mirror else "no", float(psnr(restored, originals).mean()),
                float(ssim(restored, originals).mean()), float(niqe(restored, niqe_params).mean()), seconds,
            )  # fmt: skip
            print(" | ".join(table.cell(value) for value in row.values()), flush=True)
    table.notes.append(f"{len(degraded)} faces of {args.testset}, restored as aligned faces by {args.model}")
    print(table.markdown())
    if args.out:
        table.write(args.out)


if __name__ == "__main__":
    main()
