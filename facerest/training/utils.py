"""Small helpers shared by the training scripts in ``train/``: validation grids, the time budget, the command line."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import torch
from torchvision.utils import make_grid

from ..images import load_image, save_image, tensor_to_image

SECRET_OPTIONS = ("--hub_token",)


def save_image_grid(columns: list[torch.Tensor], path: str | Path) -> None:
    """Save images side by side: each tensor (N, 3, H, W) in [-1, 1] is a column, each sample a row."""
    rows = torch.stack([column.detach().float().cpu() for column in columns], dim=1).flatten(0, 1)
    grid = make_grid(rows, nrow=len(columns), padding=2, pad_value=1.0)
    save_image(tensor_to_image(grid), path)


def first_pairs(dataset, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` (degraded, ground truth) pairs of a dataset, stacked: a fixed validation batch."""
    pairs = [dataset[index][:2] for index in range(min(count, len(dataset)))]
    return torch.stack([lq for lq, _ in pairs]), torch.stack([gt for _, gt in pairs])


def log_validation_grid(accelerator, columns: list[torch.Tensor], path: str | Path, step: int) -> None:
    """Save a validation grid (``[lq, restored, gt]``: a column each, a face per row) to ``path`` and add it to
    TensorBoard as ``validation`` when the run is tracked there."""
    save_image_grid(columns, path)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("validation", load_image(path), step, dataformats="HWC")


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, for a model card; the values of secret options are left out."""
    argv = list(sys.argv if argv is None else argv)
    for index, word in enumerate(argv[:-1]):
        if word in SECRET_OPTIONS:
            argv[index + 1] = "***"
    return "python " + shlex.join(argv)


class Deadline:
    """A wall-clock budget (``--max_train_minutes``) counted from the deadline's creation; ``None`` never runs out."""

    def __init__(self, minutes: float | None):
        if minutes is not None and not minutes > 0:
            raise ValueError(f"a time budget must be positive minutes, got {minutes!r}")
        self.end = None if minutes is None else time.monotonic() + 60.0 * minutes

    def passed(self, accelerator) -> bool:
        """Whether the budget is spent on any process: every process gets the same answer, so all stop together."""
        if self.end is None:
            return False
        spent = torch.tensor([time.monotonic() >= self.end], dtype=torch.int32, device=accelerator.device)
        return bool(accelerator.gather(spent).any())
