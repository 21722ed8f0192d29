"""Choosing a torch device and waiting for it."""

from __future__ import annotations

import torch

from .errors import FacerestError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device named by ``device``; ``None`` picks cuda when available, else the cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise FacerestError(f"unknown device {device!r}: {error}") from None


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU), so that a timer stopped next measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
