"""Small helpers shared by the training scripts in ``train/``."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import torch
from torchvision.utils import make_grid

from ..images import save_image, tensor_to_image

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders of ``output_dir``, oldest step first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [path for _, path in sorted(found)]


def resolve_checkpoint(output_dir: str | Path, resume_from_checkpoint: str | None) -> Path | None:
    """Map ``--resume_from_checkpoint`` ("latest" or a path) to a checkpoint folder, or None to start fresh."""
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint: no checkpoint folder at {path}")
    return path


def checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    if not match:
        raise ValueError(f"not a checkpoint folder name (expected checkpoint-<step>): {path}")
    return int(match.group(1))


def prune_checkpoints(output_dir: str | Path, keep: int | None) -> None:
    """Delete the oldest checkpoints so that at most ``keep`` remain (None keeps all)."""
    if keep is None:
        return
    checkpoints = list_checkpoints(output_dir)
    for path in checkpoints[: max(len(checkpoints) - keep, 0)]:
        shutil.rmtree(path)


def save_image_grid(columns: list[torch.Tensor], path: str | Path) -> None:
    """Save images side by side: each tensor (N, 3, H, W) in [-1, 1] is a column, each sample a row."""
    rows = torch.stack([column.detach().float().cpu() for column in columns], dim=1).flatten(0, 1)
    grid = make_grid(rows, nrow=len(columns), padding=2, pad_value=1.0)
    save_image(tensor_to_image(grid), path)


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
