"""Timers, memory and FLOP counters: how the benchmark measures."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

import torch

from facerest.devices import synchronize


class PeakRSS:
    """Samples this process's resident memory every ``interval`` seconds while the block runs (CUDA: the peak
    allocated memory instead). ``peak_mib``: the highest RSS seen; ``growth_mib``: over the RSS at the start."""

    def __init__(self, device: torch.device | None = None, interval: float = 0.01):
        self.device, self.interval = device, interval
        self.peak_mib = self.start_mib = 0.0
        self._stop = threading.Event()

    def __enter__(self):
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mib = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self.start_mib = self.peak_mib = rss_mib()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_mib = max(self.peak_mib, rss_mib())

    def __exit__(self, *exc):
        if self.device is not None and self.device.type == "cuda":
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return False
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, rss_mib())
        return False

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.start_mib


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size in MiB from /proc (0 where /proc is not there)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def time_interleaved(calls: dict[str, Callable[[], object]], rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each call in ``rounds`` rounds of one call each, after one untimed round: on a shared machine a
    busy spell then falls on every call alike."""
    seconds = {name: [] for name in calls}
    for round_index in range(rounds + 1):
        for name, fn in calls.items():
            started = time.perf_counter()
            fn()
            synchronize(device)
            if round_index:
                seconds[name].append(time.perf_counter() - started)
    return seconds


def time_calls(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return seconds


def matmul_rate(size: int, repeats: int, device: torch.device) -> float:
    """The best fp32 GFLOP/s of a (size x size) @ (size x size) matrix product (2 size^3 FLOPs)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    seconds = time_calls(lambda: a @ b, repeats, device)
    return 2 * size**3 / min(seconds) / 1e9


def count_flops(build: Callable[[], torch.nn.Module], inputs: Callable[[], tuple]) -> float:
    """FLOPs of one call of the module built by ``build`` on ``inputs()``, counted on the meta device (no
    arithmetic is done; a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        module = build()
        args = inputs()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*args)
    return float(counter.get_total_flops())


def cpu_flags() -> str:
    """Whether the CPU has the vector and matrix instructions that decide fp32 and bf16 speed."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return "flags unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)


def has_bf16_instructions() -> bool:
    """Whether the CPU computes bf16 itself (AVX-512 BF16 or AMX); without them torch emulates it, tens of times
    slower than fp32."""
    flags = cpu_flags()
    return "avx512_bf16 yes" in flags or "amx_bf16 yes" in flags
