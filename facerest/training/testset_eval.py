"""Score a restorer on a paired test set (``lq/`` and ``hq/`` folders, as written by ``facerest.data.make_testset``).

Model-agnostic: the restorer is any callable mapping a batch of degraded faces to restored faces, both
``(N, 3, R, R)`` float tensors in [-1, 1]. Used for the periodic and final evaluations of the training scripts;
the restoring and scoring are ``facerest.evaluation.restore_and_score``'s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch

from ..evaluation import METRIC_COLUMNS, restore_and_score
from ..images import image_to_tensor, tensor_to_image

Restorer = Callable[[torch.Tensor], torch.Tensor]
_SCORES = {"psnr": METRIC_COLUMNS["psnr"], "ssim": METRIC_COLUMNS["ssim"]}


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

    @torch.no_grad()
    def restore_images(faces: list[np.ndarray]) -> list[np.ndarray]:
        return [tensor_to_image(face) for face in restore(torch.stack([image_to_tensor(face) for face in faces]))]

    scored = {}
    for prefix, restorer, folder in (("", restore_images, output_dir), ("input_", lambda faces: faces, None)):
        evaluation = restore_and_score(
            restorer, testset_dir, folder, metrics=list(_SCORES), resolution=resolution, batch_size=batch_size, device="cpu"
        )
        row = evaluation.rows[0]
        scored["num_images"] = row["Count"]
        scored.update({prefix + name: float(row[column]) for name, column in _SCORES.items()})
    result = {key: scored[key] for key in ("num_images", "psnr", "ssim", "input_psnr", "input_ssim")}
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    Path(output_dir, "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
