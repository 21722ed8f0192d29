"""How far IDM samples lie from the ground truth, from each other, and from the model's one-step estimate.

    python bench/idm_sample_spread.py runs/idm64/pipeline runs/testset64 --steps 25 --seeds 4

If the samples were drawn from the true posterior p(x | y), a sample and the ground truth would be two independent
draws from it, so PSNR(sample, GT) would equal PSNR(sample, other sample), both 3 dB below the posterior mean's
PSNR. The gap between the two and the distance of the samples' average from the one-step estimate (the model's
x0 prediction from pure noise, close to the posterior mean for a well-trained model) say whether a sampler loses
PSNR to the spread of the posterior (variance) or to drifting off the mean along the chain (bias).
"""

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from facerest import FaceRestorePipeline
from facerest.data import PairedFolderDataset
from facerest.metrics import psnr


def mean_psnr(restored: torch.Tensor, reference: torch.Tensor) -> float:
    return float(np.mean(psnr(restored, reference)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipeline", help="a saved IDM FaceRestorePipeline")
    parser.add_argument("testset", type=Path, help="paired test set (lq/, hq/)")
    parser.add_argument("--steps", type=int, default=25, help="sampling steps (default 25)")
    parser.add_argument("--seeds", type=int, default=4, help="samples per face (default 4)")
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.pipeline)
    if pipeline.kind != "idm":
        parser.error(f"{args.pipeline} is a {pipeline.kind!r} pipeline, not an 'idm' one")
    pairs = PairedFolderDataset(args.testset / "lq", args.testset / "hq", resolution=pipeline.face_size)
    lq = torch.stack([pairs[i][0] for i in range(len(pairs))])
    gt = torch.stack([pairs[i][1] for i in range(len(pairs))])

    def sample(steps: int, seed: int) -> torch.Tensor:
        return pipeline.restore_faces(lq, steps, generator=torch.Generator().manual_seed(seed), progress=False)

    one_step = sample(1, 0)
    samples = [sample(args.steps, seed) for seed in range(args.seeds)]
    rows = [
        ("degraded input vs GT", mean_psnr(lq, gt)),
        ("one-step estimate vs GT", mean_psnr(one_step, gt)),
        (f"sample ({args.steps} steps) vs GT", np.mean([mean_psnr(s, gt) for s in samples])),
        ("sample vs another sample", np.mean([mean_psnr(a, b) for a, b in itertools.combinations(samples, 2)])),
        (f"average of {args.seeds} samples vs GT", mean_psnr(torch.stack(samples).mean(0), gt)),
        ("sample vs one-step estimate", np.mean([mean_psnr(s, one_step) for s in samples])),
    ]
    print(f"{len(lq)} faces of {args.testset}, {args.pipeline}, DDIM (eta 0)")
    print("| Comparison | PSNR (dB) |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value:.2f} |")


if __name__ == "__main__":
    main()
