"""Faces per second of the training data path: GFP-GAN's degradation in the DataLoader (numpy/OpenCV, with 0 or N
worker processes) against the same degradation in batches on a device (``degrade_batch``), after a loader that only
decodes the faces and draws their degradations.

    python bench/degradation_throughput.py --data ../shared/data/ffhq256/train --resolution 256 --device cuda \\
        --workers 0 8 --out degradation_throughput.md

Each row times at least --batches whole batches moved to the device (in whole waves of one batch per loader worker),
after one untimed wave (worker start, FFT plans, CUDA kernels), or fewer waves once --seconds are spent. The last row degrades one collated batch over and over: the
device's own rate, with no loader at all. Prints a Markdown table (and writes it to --out).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import time
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from facerest.data import DegradedFaceDataset, collate_deferred, degrade_deferred
from facerest.images import list_images


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Faces per second: degradation in the data loader or on a device.")
    parser.add_argument("--data", required=True, help="folder of aligned HQ faces")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to time")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, default=8, help="timed batches per row (rounded up to whole waves)")
    parser.add_argument("--seconds", type=float, default=30.0, help="no new wave after this many seconds of a row")
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(batches: Iterator, degrade, device: torch.device, wave: int, waves: int, seconds: float) -> float:
    """Faces per second over whole waves of ``wave`` batches after one untimed wave (worker start, FFT plans, CUDA
    kernels): a DataLoader's workers start together, so their batches arrive in waves, one batch from each, and only
    whole waves time their rate. Fewer than ``waves`` when ``seconds`` run out."""
    for batch in itertools.islice(batches, wave):
        degrade(batch)
    synchronize(device)
    faces, started = 0, time.perf_counter()
    for _ in range(waves):
        for batch in itertools.islice(batches, wave):
            faces += degrade(batch)[1].shape[0]
        synchronize(device)
        if time.perf_counter() - started > seconds:
            break
    return faces / (time.perf_counter() - started)


def waves(args, workers: int) -> tuple[int, int]:
    """(batches per wave, timed waves): at least --batches timed batches, in whole waves of one batch per worker."""
    wave = max(1, workers)
    return wave, math.ceil(args.batches / wave)


def loader_rate(args, paths: list[Path], deferred: bool, workers: int, device: torch.device) -> float:
    """Through a DataLoader: pairs degraded in it and moved to the device, or HQ faces degraded on the device."""
    dataset = DegradedFaceDataset(paths, args.resolution, seed=0, defer_degradation=deferred)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers, collate_fn=collate_deferred if deferred else None
    )

    def degrade(batch):
        return degrade_deferred(batch, device) if deferred else tuple(tensor.to(device) for tensor in batch)

    return time_batches(iter(loader), degrade, device, *waves(args, workers), args.seconds)


def device_only_rate(args, paths: list[Path], device: torch.device) -> float:
    """One collated batch, already on the device, degraded over and over."""
    dataset = DegradedFaceDataset(paths, args.resolution, seed=0, defer_degradation=True)
    batch = collate_deferred([dataset[index] for index in range(min(args.batch_size, len(dataset)))])
    batch["hq"] = batch["hq"].to(device)
    batch["noise"] = [None if field is None else field.to(device) for field in batch["noise"]]
    return time_batches(itertools.repeat(batch), lambda same: degrade_deferred(same, device), device, 1, args.batches, args.seconds)


def main(args: argparse.Namespace) -> str:
    device = torch.device(args.device)
    # enough faces for the longest row, no more (the datasets' validity scan reads every file they are given)
    batches = max(wave * (1 + count) for wave, count in (waves(args, workers) for workers in args.workers))
    paths = list_images(args.data)[: max(batches, args.batches + 1) * args.batch_size]
    rows = []
    for workers in args.workers:
        rate = loader_rate(args, paths, deferred=False, workers=workers, device=device)
        rows.append(("numpy/OpenCV, in the loader", "cpu", workers, rate))
        print(rows[-1], flush=True)
    for workers in args.workers:
        rate = loader_rate(args, paths, deferred=True, workers=workers, device=device)
        rows.append((f"torch batches on {device.type}, after the loader", device.type, workers, rate))
        print(rows[-1], flush=True)
    rows.append((f"torch batches on {device.type}, faces already loaded", device.type, "-", device_only_rate(args, paths, device)))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"Degradation throughput, {args.resolution}-px faces (degraded at the 512-px reference), batches of "
        f"{args.batch_size}; {device.type} ({name}), {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads",
        "",
        "| Degradation | Device | Loader workers | Faces/s | ms per face |",
        "|---|---|---|---|---|",
        *(f"| {what} | {where} | {workers} | {rate:.1f} | {1000 / rate:.1f} |" for what, where, workers, rate in rows),
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return table


if __name__ == "__main__":
    main(parse_args())
