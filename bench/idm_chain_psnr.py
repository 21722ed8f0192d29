"""Where along the reverse process an IDM model's x_0 estimate gains or loses PSNR.

    python bench/idm_chain_psnr.py runs/idm64 runs/testset64 --steps 25

Two columns per noise level gamma_t of a `--steps` schedule:

- "on its own chain": the PSNR of the x_0 estimate (`pred_original_sample`) at each step of a DDIM (eta 0) sampling
  run from pure noise, i.e. what the sampler would output if it stopped there;
- "from the true x_t": the estimate when the model is given the ground truth noised to that level instead
  (`add_noise(gt, eps, t)`), as in training.

A model whose own-chain estimate falls while its true-x_t estimate rises denoises well what it was trained on but
not the samples its own chain makes (exposure bias); a model whose true-x_t estimate stays flat as the noise goes
to zero ignores `x_t` and restores from the degraded face alone.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from facerest import FaceRestorePipeline
from facerest.data import PairedFolderDataset
from facerest.metrics import psnr
from facerest.models.idm import IDMDenoiser


def mean_psnr(restored: torch.Tensor, reference: torch.Tensor) -> float:
    return float(np.mean(psnr(restored.clamp(-1, 1), reference)))


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipeline", help="a saved IDM FaceRestorePipeline (or train_idm.py output folder)")
    parser.add_argument("testset", type=Path, help="paired test set (lq/, hq/)")
    parser.add_argument("--steps", type=int, default=25, help="sampling steps (default 25)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.pipeline)
    if pipeline.kind != "idm":
        parser.error(f"{args.pipeline} is a {pipeline.kind!r} pipeline, not an 'idm' one")
    unet, scheduler = pipeline.unet.eval(), pipeline.scheduler
    pairs = PairedFolderDataset(args.testset / "lq", args.testset / "hq", resolution=pipeline.face_size)
    lq = torch.stack([pairs[i][0] for i in range(len(pairs))])
    gt = torch.stack([pairs[i][1] for i in range(len(pairs))])

    denoiser = IDMDenoiser(unet, scheduler)

    def estimate(x_t: torch.Tensor, t: int):
        return scheduler.step(denoiser(x_t, lq, t), t, x_t, eta=0.0, condition=lq)

    generator = torch.Generator().manual_seed(args.seed)
    sample = torch.randn(lq.shape, generator=generator)
    scheduler.set_timesteps(args.steps)
    rows = []
    for t in scheduler.timesteps.tolist():
        noise = torch.randn(gt.shape, generator=generator)
        true_x_t = scheduler.add_noise(gt, noise, torch.tensor([t]))
        from_truth = mean_psnr(estimate(true_x_t, t).pred_original_sample, gt)
        step = estimate(sample, t)
        rows.append((t, scheduler.alphas_cumprod[t].item(), mean_psnr(step.pred_original_sample, gt), from_truth))
        sample = step.prev_sample
    print(f"{len(lq)} faces of {args.testset}, {args.pipeline}, {args.steps} DDIM steps; degraded input "
          f"{mean_psnr(lq, gt):.2f} dB, final sample {mean_psnr(sample, gt):.2f} dB")
    print("| t | gamma_t | x_0 estimate on its own chain (dB) | x_0 estimate from the true x_t (dB) |\n|---|---|---|---|")
    for t, gamma, own, truth in rows:
        print(f"| {t} | {gamma:.4f} | {own:.2f} | {truth:.2f} |")


if __name__ == "__main__":
    main()
