"""Small helpers shared by the training scripts in ``train/``: validation grids, the time budget, the command line."""

from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR
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
    """The command that started this process, for a model card; the values of secret options are left out, however
    they were given (``--hub_token X``, ``--hub_token=X``, or an abbreviation argparse accepts, ``--hub_tok X``)."""
    argv = list(sys.argv if argv is None else argv)
    for index, word in enumerate(argv):
        name, equals, _ = word.partition("=")
        if not _names_a_secret_option(name):
            continue
        if equals:
            argv[index] = f"{name}=***"
        elif index + 1 < len(argv):
            argv[index + 1] = "***"
    return "python " + shlex.join(argv)


def _names_a_secret_option(word: str) -> bool:
    """Whether ``word`` is a secret option or a prefix of one (argparse takes unambiguous prefixes)."""
    return word.startswith("--") and len(word) > 2 and any(secret.startswith(word) for secret in SECRET_OPTIONS)


class Deadline:
    """A wall-clock budget (``--max_train_minutes``) counted from the deadline's creation; ``None`` never runs out.

    ``spent`` is the fraction of the budget used at the latest ``passed`` call, the largest over the processes, so a
    learning-rate schedule on the clock (``clock_cosine_schedule``) gives every process the same rate."""

    def __init__(self, minutes: float | None):
        if minutes is not None and not minutes > 0:
            raise ValueError(f"a time budget must be positive minutes, got {minutes!r}")
        self.start = time.monotonic()
        self.seconds = None if minutes is None else 60.0 * minutes
        self.spent = 0.0

    def passed(self, accelerator) -> bool:
        """Whether the budget is spent on any process: every process gets the same answer, so all stop together."""
        if self.seconds is None:
            return False
        spent = torch.tensor([(time.monotonic() - self.start) / self.seconds], device=accelerator.device)
        self.spent = float(accelerator.gather(spent).max())
        return self.spent >= 1.0


def clock_cosine_schedule(optimizer: torch.optim.Optimizer, deadline: Deadline, warmup_steps: int) -> LambdaLR:
    """The learning rate warmed up linearly over ``warmup_steps`` scheduler steps, then decayed to 0 by a cosine of
    the wall-clock budget spent (``deadline.spent``) instead of the step count: a run stopped by ``--max_train_minutes``
    ends at rate 0 however many steps the machine managed."""
    if deadline.seconds is None:
        raise ValueError("a schedule on the clock needs a time budget (--max_train_minutes)")

    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warmup * 0.5 * (1.0 + math.cos(math.pi * min(deadline.spent, 1.0)))

    return LambdaLR(optimizer, factor)
