"""Score a restorer on a paired test set (``lq/`` and ``hq/`` folders, as written by ``facerest.data.make_testset``).

Model-agnostic: the restorer is any callable mapping a batch of degraded faces to restored faces, both
``(N, 3, R, R)`` float tensors in [-1, 1]. Used for the periodic and final evaluations of the training scripts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data import PairedFolderDataset
from ..errors import FacerestError
from ..images import save_image, tensor_to_image
from ..metrics import psnr, ssim

Restorer = Callable[[torch.Tensor], torch.Tensor]


def evaluate_testset(
    restore: Restorer,
    testset_dir: Union[str, os.PathLike],
    output_dir: Union[str, os.PathLike],
    batch_size: int = 16,
    resolution: int | None = None,
) -> dict:
    """Restore every face of ``testset_dir/lq``, save it, and compare it and its input with ``testset_dir/hq``.

    Writes ``output_dir/<name>.png`` for each restored face and ``output_dir/metrics.json``. With ``resolution``
    both LQ and HQ faces are resized to it first (else the test set must match the restorer's size).

    Returns ``{"num_images", "psnr", "ssim", "input_psnr", "input_ssim"}``: the means over the test set of PSNR and
    SSIM (RGB in [0, 255], see ``facerest.metrics``) of the restored faces against the ground truth, and of the
    degraded inputs against the ground truth.
    """
    testset_dir, output_dir = Path(testset_dir), Path(output_dir)
    if batch_size < 1:
        raise FacerestError(f"batch_size must be a positive integer, got {batch_size}")
    dataset = PairedFolderDataset(testset_dir / "lq", testset_dir / "hq", resolution=resolution)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)

    scores = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    names = iter(dataset.names)
    for lq, hq in loader:
        with torch.no_grad():
            restored = restore(lq)
        if restored.shape != hq.shape:
            raise FacerestError(
                f"the restorer returned shape {tuple(restored.shape)} for test faces of shape {tuple(hq.shape)}; "
                "pass the model's resolution to resize the test set"
            )
        for image in restored:
            save_image(tensor_to_image(image), output_dir / f"{next(names)}.png")
        scores["psnr"].append(psnr(restored, hq))
        scores["ssim"].append(ssim(restored, hq))
        scores["input_psnr"].append(psnr(lq, hq))
        scores["input_ssim"].append(ssim(lq, hq))

    result = {"num_images": len(dataset), **{key: float(np.mean(np.concatenate(values))) for key, values in scores.items()}}
    (output_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
