"""The report: the machine and versions, the summary, the tables, the plot, and the fixed notes on how to read it
(``bench/how_to_read.md``, appended once)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from facerest.table import Table

from .context import SECTIONS, Context
from .measure import cpu_flags

HOW_TO_READ = Path(__file__).resolve().parent / "how_to_read.md"


@dataclass
class BenchReport:
    machine: list[str]
    tables: list[Table]
    summary: list[str]
    plot: Path | None
    seconds: float

    def markdown(self, title: str = "Benchmarks") -> str:
        parts = [f"# {title}", "", *[f"- {line}" for line in self.machine], ""]
        if self.summary:
            parts += ["## Summary", "", *[f"- {line}" for line in self.summary], ""]
        parts += [table.markdown() for table in self.tables]
        if self.plot is not None:
            parts.append(f"![quality against sampling steps]({self.plot.name})\n")
        return "\n".join(parts)


def write_report(report: BenchReport, path: Path) -> Path:
    """The report, then how to run and read it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.markdown() + "\n" + HOW_TO_READ.read_text())
    return path


def machine_lines(ctx: Context, load_before: str, seconds: float) -> list[str]:
    """The command, the machine, its load, the versions and the official side."""
    from importlib import metadata

    versions = []
    for name in ("torch", "diffusers", "transformers", "numpy", "opencv-python", "facexlib"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    device = str(ctx.device)
    if ctx.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(ctx.device)})"
    official = ctx.official or {}
    versions_there = official.get("versions")
    official_line = (", ".join(f"{key} {value}" for key, value in versions_there.items()) if versions_there else
                     official.get("error", "not run"))
    return [
        f"Command: `{ctx.options.command}` ({'quick' if ctx.quick else 'full'} run, parts: "
        f"{', '.join(s for s in SECTIONS if s in ctx.options.sections)}), "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {seconds:.0f} s",
        f"Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs{_memory()}; {cpu_flags()}; device {device}; "
        f"{ctx.threads} torch thread(s)",
        f"Load average (1, 5, 15 min) at the start: {load_before}; at the end: {load_average()} (other jobs share "
        "the machine when these exceed 0)",
        f"Python {platform.python_version()}, {', '.join(versions)}",
        f"Official side: {official_line}",
    ]


def load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        return f", {total_kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        return ""


def plot_quality(path: Path, curves: dict, table: Table, labels: dict) -> Path | None:
    """PSNR, LPIPS and NIQE against the IDM steps run, IDM and hybrid curves, the input and GFP-GAN as lines."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for index, metric in enumerate(("PSNR (dB)", "LPIPS", "NIQE")):
        axis = axes[index]
        for name, marker in (("IDM", "o"), ("hybrid", "s")):
            points = [(row[0], row[1 + index]) for row in curves[name] if row[1 + index] is not None]
            if points:
                axis.plot(*zip(*points), marker=marker, label=name)
        for row in table.rows:
            if row["Method"] in ("degraded input", "GFP-GAN") and row[metric] is not None:
                axis.axhline(row[metric], linestyle="--", linewidth=0.8, color="gray" if row["Method"] != "GFP-GAN" else "green")
                axis.annotate(row["Method"], (1, row[metric]), fontsize=7)
        axis.set_xscale("log")
        axis.set_xlabel("IDM steps run")
        axis.set_title(metric + (" (higher is better)" if index == 0 else " (lower is better)"), fontsize=9)
        axis.legend(fontsize=8)
    figure.suptitle(f"Quality against steps. GFP-GAN: {labels['gfpgan']}; IDM: {labels['idm']}", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
