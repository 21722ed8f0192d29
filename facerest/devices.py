"""Choosing a torch device and waiting for it."""

from __future__ import annotations

import torch

from .errors import FacerestError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device named by ``device``; ``None`` picks cuda when available, else the cpu.

    Raises ``FacerestError`` for a name torch does not know and for a device this machine lacks (``cuda`` without
    a GPU, ``cuda:3`` on a machine with two, ``mps`` off a Mac), before any model is moved there.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise FacerestError(f"unknown device {str(device)!r}: {error}") from None
    count, name = _device_count(device.type), repr(str(device))
    if count == 0:
        raise FacerestError(
            f"device {name} is not available on this machine (torch finds no {device.type} device): use --device cpu"
        )
    if device.index is not None and device.index >= count:
        raise FacerestError(
            f"device {name} is not available: this machine has {count} {device.type} device(s), numbered from 0"
        )
    return device


def _device_count(device_type: str) -> int:
    """How many devices of ``device_type`` torch can use here (the cpu counts as one)."""
    if device_type == "cpu":
        return 1
    if device_type == "mps":
        return int(torch.backends.mps.is_available())
    backend = getattr(torch, device_type, None)  # torch.cuda, torch.xpu, ...
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        return 0
    return backend.device_count() if hasattr(backend, "device_count") else 1


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU), so that a timer stopped next measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
