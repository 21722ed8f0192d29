"""What every section of the benchmark reads (the options, device, threads, repeats, folders) and adds to (tables,
summary lines, FLOPs rows), and the networks it times."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from facerest.devices import resolve_device
from facerest.table import Table, significant

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("FACEREST_SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_OFFICIAL_PYTHON = os.environ.get("FACEREST_OFFICIAL_PYTHON", "/tmp/official-env/bin/python")
SECTIONS = ("matmul", "gfpgan", "photos", "idm", "training", "quality", "memory")
NOT_INSTALLED = "not installed"

# GFPGANv1Clean configurations (the official constructor's arguments). "v1.4" is the released network; the bench
# network is the same architecture at a quarter of the width (1/50 of the FLOPs), so that timing whole photos
# with many faces on a CPU fits the bench's budget; the tiny one is for --quick.
GFPGAN_V14 = dict(out_size=512, num_style_feat=512, channel_multiplier=2, narrow=1.0)
BENCH_GFPGAN = dict(out_size=512, num_style_feat=512, channel_multiplier=1, narrow=0.25)
TINY_GFPGAN = dict(out_size=512, num_style_feat=64, channel_multiplier=1, narrow=1 / 16)
GPU_FACE_BATCH = 16  # faces per forward pass in the GPU-only rows of the forward table

# Random 64-px models standing in for trained ones (the sizes of the 64-px training runs).
SMALL_GFPGAN_64 = dict(out_size=64, num_style_feat=128, channel_multiplier=1, narrow=0.25)
SMALL_IDM_64 = dict(
    block_out_channels=(32, 64, 64, 128), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
)
TINY_GFPGAN_64 = dict(out_size=64, num_style_feat=32, channel_multiplier=1, narrow=0.0625)
TINY_IDM_64 = dict(
    block_out_channels=(8, 16, 16, 16), layers_per_block=1, attention_head_dim=8, norm_num_groups=8,
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
)


@dataclass
class BenchOptions:
    """What to run; ``quick`` picks tiny models and few repeats (about a minute on a small CPU)."""

    quick: bool = False
    out: Path = Path("BENCHMARKS.md")
    plot: Path | None = None  # default: next to ``out``, <out stem>_quality.png
    shared: Path = DEFAULT_SHARED
    photos: Path | None = None  # default: shared/data/whole_imgs
    detector_weights: Path | None = None  # default: shared/weights/facexlib
    testset: Path | None = None  # default: runs/testset64, else made from shared/data/ffhq256/test
    train_data: Path | None = None  # default: shared/data/ffhq256/train
    gfpgan: Path | None = None  # trained 64-px GFP-GAN for the quality part (else random, labelled)
    idm: Path | None = None  # trained 64-px IDM for the quality part (else random, labelled)
    default_model: Path | None = None  # the shipped default, timed per face (default: models/default if present)
    official_python: str | None = DEFAULT_OFFICIAL_PYTHON
    sections: Sequence[str] = SECTIONS
    threads: int | None = None
    device: str | None = None
    compile: bool = False
    quality_faces: int | None = None
    memory_photos: int | None = None
    repeats: int | None = None
    seed: int = 0
    work_dir: Path | None = None
    command: str = "python -m bench"


@dataclass
class Context:
    """The run's settings, and what its sections have measured so far."""

    options: BenchOptions
    log: Callable[[str], None]
    work: Path  # intermediate files
    device: torch.device
    threads: int
    repeats: int
    tables: list[Table] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    plot: Path | None = None
    matmul_table: Table | None = None
    matmul_gflops: float | None = None  # the better of the start and end measurements
    flops_rows: list[list] = field(default_factory=list)  # model, GFLOP per face, seconds per face
    official: dict | None = None  # the official side's first run (bench.official), once run

    @classmethod
    def start(cls, options: BenchOptions, log: Callable[[str], None], work: Path) -> "Context":
        device = resolve_device(options.device)
        if options.threads:
            torch.set_num_threads(options.threads)
        repeats = options.repeats or (2 if options.quick else 3)
        return cls(options, log, work, device, torch.get_num_threads(), repeats)

    @property
    def quick(self) -> bool:
        return self.options.quick

    @property
    def photo_passes(self) -> int:
        """Passes over the photos on the official side, before ours and again after."""
        return 1 if self.quick else 2

    def shared(self, *parts: str) -> Path:
        return Path(self.options.shared).joinpath(*parts)

    @property
    def photos_dir(self) -> Path:
        return Path(self.options.photos) if self.options.photos else self.shared("data", "whole_imgs")

    @property
    def default_model_dir(self) -> Path:
        """The shipped default pipeline's folder (it may be missing)."""
        return Path(self.options.default_model or "models/default")

    @property
    def detector_dir(self) -> Path:
        return Path(self.options.detector_weights) if self.options.detector_weights else self.shared("weights", "facexlib")

    def table(self, title: str, columns: list[str]) -> Table:
        """A new table of the report, in the order made."""
        table = Table(columns, title=title, cell=significant)
        self.tables.append(table)
        return table

    def note_flops(self, name: str, flops: float, seconds: float) -> None:
        self.flops_rows.append([name, flops / 1e9, seconds])
