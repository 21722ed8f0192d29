"""``python -m facerest bench``: how fast facerest restores faces, side by side with the official GFP-GAN.

One run measures, in this order, and prints and writes (``BENCHMARKS.md``) one table per part:

1. the machine's fp32 matrix-multiply rate (the yardstick of part 8);
2. the GFP-GAN forward pass per face: the v1.3/v1.4 network at 512 px (full run) and a narrower 512-px network
   (``BENCH_GFPGAN``) in fp32, bf16, batched, side by side on the CPU threads, optionally ``torch.compile``-d, next
   to the official
   ``GFPGANv1Clean`` on the same weights;
3. the whole-photo pipeline, stage by stage (decode, detect, align, restore, paste back), next to the official
   ``GFPGANer.enhance`` on the same photos, detector and weights;
4. IDM sampling: per step and per face at 10, 25, 50 and 100 steps; the hybrid at several strengths;
5. training throughput (samples per second) with one and with two processes (gloo ``DistributedDataParallel``);
6. quality against cost: PSNR, LPIPS and NIQE against sampling steps for IDM and the hybrid on a paired test
   set (table and plot);
7. bounded memory: ``python -m facerest restore`` over a folder of many photos, its RSS sampled as it goes;
8. FLOPs per face (``FlopCounterMode``) over the measured time, against the matrix-multiply rate.

The official side runs in a separate environment (``--official-python``, see ``bench/official_gfpgan.py``); when
it is absent its rows say so and the rest still runs. Times are medians of repeats on a machine that may be
shared; the report says what limits each number. ``--quick`` runs tiny configurations with few repeats.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import FacerestError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("FACEREST_SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_OFFICIAL_PYTHON = os.environ.get("FACEREST_OFFICIAL_PYTHON", "/tmp/official-env/bin/python")
OFFICIAL_SCRIPT = REPO_ROOT / "bench" / "official_gfpgan.py"
SECTIONS = ("matmul", "gfpgan", "photos", "idm", "training", "quality", "memory")
IDM_STEPS = (10, 25, 50, 100)
HYBRID_STRENGTHS = (0.1, 0.2, 0.3, 0.5, 1.0)
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
    command: str = "python -m facerest bench"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.rows:
            lines.append("| " + " | ".join(self.columns) + " |")
            lines.append("|" + "|".join("---" for _ in self.columns) + "|")
            lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in self.rows]
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


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


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01 or magnitude == 0:
            return f"{value:.3g}" if magnitude < 1 else f"{value:.2f}"
        return f"{value:.2e}"
    return str(value).replace("|", "/")


# ------------------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------------------


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(calls: dict[str, Callable[[], object]], rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each call in ``rounds`` rounds of one call each, after one untimed round: on a shared machine a
    busy spell then falls on every call alike."""
    seconds = {name: [] for name in calls}
    for round_index in range(rounds + 1):
        for name, fn in calls.items():
            started = time.perf_counter()
            fn()
            _sync(device)
            if round_index:
                seconds[name].append(time.perf_counter() - started)
    return seconds


def time_calls(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _sync(device)
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


# ------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------


class _Bench:
    def __init__(self, options: BenchOptions, log: Callable[[str], None]):
        self.options, self.log = options, log
        self.quick = options.quick
        self.device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if options.threads:
            torch.set_num_threads(options.threads)
        self.threads = torch.get_num_threads()
        self.repeats = options.repeats or (2 if self.quick else 3)
        self.photo_passes = 1 if self.quick else 2
        shared = Path(options.shared)
        self.photos_dir = Path(options.photos) if options.photos else shared / "data" / "whole_imgs"
        self.detector_dir = Path(options.detector_weights) if options.detector_weights else shared / "weights" / "facexlib"
        self.train_dir = Path(options.train_data) if options.train_data else shared / "data" / "ffhq256" / "train"
        self.test_hq_dir = shared / "data" / "ffhq256" / "test"
        self.tables: list[Table] = []
        self.summary: list[str] = []
        self.plot: Path | None = None
        self.matmul_gflops: float | None = None
        self.matmul_table: Table | None = None
        self.flops_rows: list[list] = []  # model, GFLOP per face, seconds per face (for part 8)
        self.official_versions: dict | None = None
        self._official_cache: dict | None = None

    # -- helpers --------------------------------------------------------------------------------------------
    def note_flops(self, name: str, flops: float, seconds: float) -> None:
        self.flops_rows.append([name, flops / 1e9, seconds])

    def detector(self):
        from .faces import FaceDetector

        if (self.detector_dir / "detection_mobilenet0.25_Final.pth").is_file():
            return FaceDetector("retinaface", "mobilenet0.25", weights_dir=self.detector_dir, device=self.device)
        return FaceDetector("auto", "mobilenet0.25", device=self.device)

    def photo_paths(self) -> list[Path]:
        from .images import list_images

        if not self.photos_dir.is_dir():
            return []
        paths = list_images(self.photos_dir)
        if self.quick:  # two small photos with faces, and the largest one
            by_size = sorted(paths, key=lambda path: path.stat().st_size)
            paths = sorted(set(by_size[:2] + by_size[-1:]))
        return paths

    # -- 1. matmul ------------------------------------------------------------------------------------------
    def run_matmul(self, when: str = "start of the run") -> None:
        size = 1024 if self.quick else 2048
        rate = matmul_rate(size, self.repeats + 2, self.device)
        self.matmul_gflops = max(rate, self.matmul_gflops or 0.0)
        if self.matmul_table is not None:  # measured again at the end: the yardstick is the better of the two
            self.matmul_table.rows.append([f"fp32 {size}x{size} @ {size}x{size}", when, self.threads, rate])
            return
        table = Table(
            "Matrix-multiply rate (the machine's practical limit)",
            ["Operation", "When", "Threads", "GFLOP/s (best of repeats)"],
            [[f"fp32 {size}x{size} @ {size}x{size}", when, self.threads, rate]],
            [f"Limited by: the CPU's vector units ({_cpu_flags()}) and the {self.threads} thread(s) allowed; on a "
             "shared machine, by the other jobs' use of the same cores. Parts below divide model FLOPs by time and "
             "compare with the better of the measurements (at the start and at the end of the run)."],
        )
        self.matmul_table = table
        self.tables.append(table)

    # -- official side ----------------------------------------------------------------------------------------
    def official(self, configs: dict, photos: list[Path], photo_config: str | None) -> dict:
        """Run bench/official_gfpgan.py once in the official environment; ``{"error": ...}`` when unavailable."""
        if self._official_cache is None:
            self._official_cache = self._run_official(configs, photos, photo_config, "official")
            self.official_versions = self._official_cache.get("versions")
        return self._official_cache

    def _run_official(self, configs: dict, photos: list[Path], photo_config: str | None, tag: str) -> dict:
        python = self.options.official_python
        if not python or python == "none" or not Path(python).exists():
            return {"error": f"{NOT_INSTALLED} (no interpreter at {python})"}
        if not OFFICIAL_SCRIPT.is_file():
            return {"error": f"{NOT_INSTALLED} ({OFFICIAL_SCRIPT} missing)"}
        spec = {
            "configs": configs, "seed": self.options.seed, "threads": self.threads,
            "forward_repeats": self.repeats, "weights_dir": str(self.work / "official_weights"),
            "photos": [str(path) for path in photos], "photo_config": photo_config,
            "detector_weights_dir": str(self.detector_dir), "passes": self.photo_passes, "device": str(self.device),
        }
        (self.work / "official_weights").mkdir(exist_ok=True)
        spec_path, out_path = self.work / f"{tag}_spec.json", self.work / f"{tag}_result.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        self.log(f"official side: {python} {OFFICIAL_SCRIPT.name} ({len(photos)} photos)")
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        done = subprocess.run(
            [python, str(OFFICIAL_SCRIPT), str(spec_path), str(out_path)], env=env, capture_output=True, text=True
        )
        if done.returncode != 0 or not out_path.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"error": f"failed (exit {done.returncode}): {tail[0]}"}
        return json.loads(out_path.read_text())

    def official_weights(self, name: str) -> Path | None:
        path = self.work / "official_weights" / f"{name}.pth"
        return path if path.is_file() else None

    def gfpgan_model(self, name: str, config: dict):
        """Our GFPGANModel for ``config``, with the official run's weights when there are some (else seeded random)."""
        from .models.gfpgan import GFPGANConfig, GFPGANModel, load_original_weights

        torch.manual_seed(self.options.seed)
        arguments = {key: value for key, value in config.items() if key not in ("time_forward", "repeats")}
        model = GFPGANModel(GFPGANConfig(**arguments)).eval()
        weights = self.official_weights(name)
        if weights is not None:
            load_original_weights(model, weights)
        return model.to(self.device)

    # -- 2. GFP-GAN forward -----------------------------------------------------------------------------------
    def photo_config(self) -> str:
        """The network of the whole-photo part: the released v1.4 on a GPU; on a CPU the bench network, so that
        photos with many faces fit the bench's budget (tiny with --quick)."""
        if self.quick:
            return "tiny"
        return "v1.4" if self.device.type == "cuda" else "bench"

    def gfpgan_configs(self) -> dict:
        """The official-format networks of parts 2 and 3 (name -> GFPGANv1Clean arguments, time_forward)."""
        timed = "gfpgan" in self.options.sections
        if self.quick:
            return {"tiny": {**TINY_GFPGAN, "time_forward": timed}}
        v14_repeats = 1 if self.device.type == "cpu" else self.repeats  # ~40 s a pass on one CPU core
        configs = {
            "v1.4": {**GFPGAN_V14, "time_forward": timed, "repeats": v14_repeats},
            "bench": {**BENCH_GFPGAN, "time_forward": timed},
        }
        return {name: config for name, config in configs.items() if timed or name == self.photo_config()}

    def run_gfpgan(self) -> None:
        from .models.gfpgan import GFPGANConfig, GFPGANModel

        configs = self.gfpgan_configs()
        scheduling_tables = []
        photos = self.photo_paths() if "photos" in self.options.sections else []
        official = self.official(configs, photos, self.photo_config())
        table = Table(
            "GFP-GAN forward pass, one 512-px face",
            ["Network", "Implementation", "Variant", "Batch", "ms per face", "Faces/s", "Official / ours",
             "Peak RSS growth (MiB)"],
        )
        for name, config in configs.items():
            label = _gfpgan_label(name, config)
            model = self.gfpgan_model(name, config)
            config_only = {key: value for key, value in config.items() if key not in ("time_forward", "repeats")}
            flops = count_flops(lambda: GFPGANModel(GFPGANConfig(**config_only)), lambda: (torch.empty(1, 3, 512, 512),))
            face = torch.rand(1, 3, 512, 512, device=self.device) * 2 - 1
            heavy = name == "v1.4" and self.device.type == "cpu"  # one repeat, fp32 batch 1 only (see gfpgan_configs)
            repeats = config.get("repeats", self.repeats)
            faces = face.repeat(4, 1, 1, 1)
            bf16_model, bf16_face = (None, None) if heavy else (copy.deepcopy(model).to(torch.bfloat16), face.bfloat16())
            variants = [("fp32", 1, lambda: model(face))]  # (variant, faces per call, the call)
            if not heavy:
                variants.append(("fp32", 4, lambda: model(faces)))
                variants.append(("bf16 weights and input", 1, lambda: bf16_model(bf16_face)))
            if self.device.type == "cuda":
                variants += self._gpu_variants(model, bf16_model, face)
            ours_fp32 = None
            for variant, batch, call in variants:
                # bf16 on a CPU without bf16 instructions is emulated (tens of times slower): one call, no warm-up
                emulated = variant.startswith("bf16") and self.device.type == "cpu" and "avx512_bf16 yes" not in _cpu_flags()
                self.log(f"gfpgan {label}: {variant}, batch {batch}")
                with PeakRSS(self.device) as memory, torch.no_grad():
                    seconds = statistics.median(
                        time_calls(call, 1 if emulated else repeats, self.device, warmup=0 if emulated else 1)
                    ) / batch
                if variant == "fp32" and batch == 1:
                    ours_fp32 = seconds
                    self.note_flops(f"GFP-GAN {label}", flops, seconds)
                table.rows.append([label, "facerest", variant, batch, seconds * 1e3, 1 / seconds, None, memory.growth_mib])
            if self.options.compile and name == self.photo_config():  # compiling takes minutes: one network
                table.rows.append(self._compiled_row(label, model, face))
            official_seconds = official.get("forward", {}).get(name, {}).get("median")
            if official_seconds is not None:
                ratio = official_seconds / ours_fp32 if ours_fp32 else None
                table.rows.append([label, "official GFPGANv1Clean", "fp32", 1, official_seconds * 1e3,
                                   1 / official_seconds, ratio, None])
                self.note_flops(f"GFP-GAN {label} (official)", flops, official_seconds)
            else:
                table.rows.append([label, "official GFPGANv1Clean", f"fp32: {official.get('error', NOT_INSTALLED)}", 1,
                                   None, None, None, None])
            if not heavy:
                scheduling_tables.append(self.face_scheduling_table(label, model, faces))
            del model, bf16_model
        if not self.quick:
            table.rows.append(self.default_model_row())
        if not self.options.compile:
            table.notes.append(
                "torch.compile: not run (pass --compile). Measured once while writing this bench on the bench network "
                "(2 shared CPU cores, 1 thread): 402 s to compile, then 0.37-0.49 s per face against 0.46 s eager: "
                "no gain worth the compile time on CPU."
            )
        table.notes += [
            "Weights: the official run's seeded random GFPGANv1Clean weights, converted with "
            "facerest.models.gfpgan.load_original_weights, so both sides compute the same function"
            if self.official_weights(next(iter(configs))) else
            "Weights: seeded random (the official environment is not available to make and share them).",
            "Limited by: arithmetic (the 3x3 convolutions at 256 and 512 px are most of the FLOPs; part 8 puts the "
            "rate next to the matmul rate). bf16 on a CPU without bf16 instructions (no avx512_bf16/amx) is emulated "
            "and far slower: kept to show it, timed once. Batching faces does not pay on a CPU: a batch of 512-px "
            "activations outgrows the caches and there are no idle cores for it to fill (the modulated convolutions "
            "run as one grouped convolution over the batch; rewriting them as a shared convolution on modulated "
            "inputs was tried and was no faster); it pays on a GPU. What pays on a CPU is single-face passes side "
            "by side, one per CPU thread (the convolutions of one narrow face network do not split well over the "
            "cores): the pipeline's default there. Ours is faster than the official network, which computes the same "
            "function, because on the CPU it runs channels-last throughout, the StyleGAN2 decoder included (with one "
            "face per pass; several faces per grouped convolution leave that layout), and its modulated convolutions "
            "apply the activation gain and the bias themselves, with noise and leaky ReLU in place.",
            "Peak RSS growth: the highest resident memory during the timed calls over that before them (CPU).",
        ]
        if self.device.type == "cuda":
            table.notes.append(
                f"On the GPU ({torch.cuda.get_device_name(self.device)}): fp32 convolutions may use TF32 "
                f"(torch.backends.cudnn.allow_tf32 = {torch.backends.cudnn.allow_tf32}); half-precision rows hold "
                f"weights and input in bf16 or fp16 (no autocast); batches of {GPU_FACE_BATCH} faces show how far "
                "batching fills the device; channels-last converts the 4-d weights and the input."
            )
        self.tables += [table, *scheduling_tables]

    def default_model_row(self) -> list:
        """The shipped default restoring one aligned 512-px face as README's main job runs it (the pipeline's aligned
        path with its default steps and fidelity), a row of the forward-pass table."""
        from .pipeline import FaceRestorePipeline

        folder = self.options.default_model or Path("models/default")
        if not (folder / "model_index.json").is_file():
            return [f"shipped default ({folder})", "facerest pipeline", "not found", 1, None, None, None, None]
        pipeline = FaceRestorePipeline.from_pretrained(folder).to(self.device)
        face = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
        self.log(f"shipped default {folder}: one aligned face")
        with PeakRSS(self.device) as memory:
            seconds = statistics.median(
                time_calls(lambda: pipeline(face, aligned=True, output_type="np", progress=False), self.repeats, self.device)
            )
        sampling = "" if pipeline.kind == "gfpgan" else f", {pipeline.default_inference_steps} steps"
        network = f"shipped default ({folder}: {pipeline.kind}, {pipeline.face_size} px{sampling})"
        return [network, "facerest pipeline, aligned 512-px face", "fp32", 1, seconds * 1e3, 1 / seconds, None,
                memory.growth_mib]

    @staticmethod
    def _gpu_variants(model, bf16_model, face: torch.Tensor) -> list:
        """On a GPU, also: batches of 16 faces, fp16, and bf16 with channels-last activations and weights."""
        batch = GPU_FACE_BATCH
        faces = face.repeat(batch, 1, 1, 1)
        bf16_faces, fp16_face, fp16_faces = faces.bfloat16(), face.half(), faces.half()
        fp16_model = copy.deepcopy(model).half()
        channels_last_model = copy.deepcopy(bf16_model)
        for parameter in channels_last_model.parameters():  # the 4-d ones; modulated weights are made per call
            if parameter.ndim == 4:
                parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)
        channels_last_faces = bf16_faces.contiguous(memory_format=torch.channels_last)
        return [
            ("fp32", batch, lambda: model(faces)),
            ("bf16 weights and input", batch, lambda: bf16_model(bf16_faces)),
            ("fp16 weights and input", 1, lambda: fp16_model(fp16_face)),
            ("fp16 weights and input", batch, lambda: fp16_model(fp16_faces)),
            ("bf16, channels-last", batch, lambda: channels_last_model(channels_last_faces)),
        ]

    def face_scheduling_table(self, label: str, model, faces: torch.Tensor) -> "Table":
        """The ways FaceRestorePipeline.restore_faces can run a photo's faces, timed in interleaved rounds."""
        from .pipeline import FaceRestorePipeline

        pipeline = FaceRestorePipeline(restorer=model)
        count = len(faces)
        ways = {
            f"one after the other, one face per pass ({self.threads} thread(s) each)":
                lambda: [pipeline.restore_faces(faces[i : i + 1]) for i in range(count)],
            f"one pass over all {count} faces": lambda: pipeline.restore_faces(faces, face_batch_size=count),
        }
        if self.device.type == "cpu":
            ways["one face per pass, side by side on the CPU threads (default on the CPU)"] = (
                lambda: pipeline.restore_faces(faces)
            )
        rounds = 2 * self.repeats
        self.log(f"gfpgan {label}: {count} faces, {len(ways)} ways, {rounds} interleaved rounds")
        with torch.no_grad():
            seconds = time_interleaved(ways, rounds, self.device)
        first = statistics.median(next(iter(seconds.values())))
        table = Table(
            f"Restoring {count} faces of one photo: faces per forward pass and threads (GFP-GAN {label})",
            ["Way", "ms per face (median)", "ms per face (fastest round)", "vs one after the other"],
        )
        for way, times in seconds.items():
            table.rows.append([way, statistics.median(times) / count * 1e3, min(times) / count * 1e3,
                               first / statistics.median(times)])
        table.notes += [
            f"{rounds} rounds, each running every way once in turn (after one untimed round), so a busy spell of the "
            f"shared machine falls on all of them alike; fp32 on {self.device}, {self.threads} thread(s).",
            "Limited by: on a CPU, how well one face's convolutions split over the cores (a narrow network's small "
            "feature maps do not) against the caches a batch outgrows; on a GPU, batches fill the device.",
        ]
        return table

    def _compiled_row(self, label: str, model, face) -> list:
        self.log(f"gfpgan {label}: torch.compile (slow to compile on a CPU)")
        compiled = torch.compile(model)
        started = time.perf_counter()
        with torch.no_grad():
            compiled(face)
            compile_seconds = time.perf_counter() - started
            seconds = statistics.median(time_calls(lambda: compiled(face), self.repeats, self.device, warmup=0))
        return [label, "facerest", f"fp32 torch.compile (compiling took {compile_seconds:.0f} s)", 1, seconds * 1e3,
                1 / seconds, None, None]

    # -- 3. whole photos ----------------------------------------------------------------------------------------
    def run_photos(self) -> None:
        from .images import image_to_tensor, load_image, resize_square, tensor_to_image
        from .faces import align_face, paste_faces
        from .pipeline import ALIGN_SIZE, FaceRestorePipeline

        photos = self.photo_paths()
        table = Table(
            "Whole photos: our pipeline stage by stage, and the official GFPGANer.enhance",
            ["Photo", "Size", "Faces (ours / official)", "Decode (ms)", "Detect (ms)", "Align (ms)", "Restore (ms)",
             "Paste back (ms)", "Ours: sum of stages (ms)", "Ours: pipeline() (ms)",
             "Ours: pipeline(), 8 faces per pass (ms)", "Official: enhance() (ms)", "Official / ours",
             "Ours: pipeline(), detection at full size (ms, faces)"],
        )
        if not photos:
            table.notes.append(f"skipped: no photos in {self.photos_dir}")
            self.tables.append(table)
            return
        name = self.photo_config()
        configs = self.gfpgan_configs()
        official = self.official(configs, photos, name)
        model = self.gfpgan_model(name, configs[name])
        pipeline = FaceRestorePipeline(restorer=model).to(self.device)
        detector = self.detector()
        full_size_detector = copy.copy(detector)  # the same network on the full-size photo, as the official side
        full_size_detector.max_detection_side = None
        # warm-up (first-call allocations), as on the official side
        pipeline(str(photos[0]), detector=detector, output_type="np", progress=False)

        stage_names = ("decode", "detect", "align", "restore", "paste")
        # As many passes as the official side gets (photo_passes before ours and as many after), the fastest kept.
        our_passes = 2 * self.photo_passes

        def time_stages(path):
            stages = {}
            started = time.perf_counter()
            image = load_image(path)
            stages["decode"] = time.perf_counter() - started
            with torch.no_grad():
                started = time.perf_counter()
                faces = detector.detect(image)
                stages["detect"] = time.perf_counter() - started
                started = time.perf_counter()
                aligned = [align_face(image, face.landmarks, ALIGN_SIZE) for face in faces]
                lq = torch.stack([image_to_tensor(resize_square(crop, pipeline.face_size)) for crop, _ in aligned]) if faces else None
                stages["align"] = time.perf_counter() - started
                started = time.perf_counter()
                restored = [tensor_to_image(face) for face in pipeline.restore_faces(lq, progress=False)] if faces else []
                _sync(self.device)
                stages["restore"] = time.perf_counter() - started
                started = time.perf_counter()
                paste_faces(image, [resize_square(face, ALIGN_SIZE) for face in restored], [a for _, a in aligned])
                stages["paste"] = time.perf_counter() - started
            return image, faces, stages

        measured = []  # per photo: (path, image, faces, stages, end_to_end, faces found at full size)
        with PeakRSS(self.device) as memory:
            for path in photos:
                self.log(f"photo {path.name}")
                passes = [time_stages(path) for _ in range(our_passes)]
                image, faces, _ = passes[0]
                stages = {stage: min(timed[stage] for _, _, timed in passes) for stage in stage_names}
                end_to_end = {}
                for key, batch, face_detector, repeats in (("default", None, detector, our_passes),
                                                           (8, 8, detector, self.photo_passes),
                                                           ("full size", None, full_size_detector, self.photo_passes)):
                    runs = []
                    for _ in range(repeats):
                        started = time.perf_counter()
                        result = pipeline(str(path), detector=face_detector, face_batch_size=batch, output_type="np",
                                          progress=False)
                        _sync(self.device)
                        runs.append(time.perf_counter() - started)
                    end_to_end[key] = min(runs)
                measured.append((path, image, faces, stages, end_to_end, len(result.restored_faces[0])))

        # The official photos once more, now that ours are done: each enhance() time is the better of the runs
        # before and after ours, so a busy spell of the shared machine does not fall on one side only.
        official_after = {}
        if "error" not in official:
            again = self._run_official({name: {**configs[name], "time_forward": False}}, photos, name, "official_after")
            official_after = {Path(entry["path"]).name: entry for entry in again.get("photos", [])}
        official_photos = {Path(entry["path"]).name: entry for entry in official.get("photos", [])}
        totals = {"ours": {}, "official": {}}
        sums = {key: 0.0 for key in ("ours", "official", "ours_multi", "official_multi", "ours_b8")}
        for path, image, faces, stages, end_to_end, full_size_faces in measured:
            theirs = official_photos.get(path.name)
            if theirs and path.name in official_after:  # the better of the two official runs
                after = official_after[path.name]
                theirs = {**theirs, "enhance": min(theirs["enhance"], after["enhance"]),
                          "stages": {stage: min(theirs["stages"][stage], after["stages"][stage]) for stage in stage_names}}
            official_total = theirs["enhance"] if theirs else None
            ratio = official_total / end_to_end["default"] if theirs else None
            face_counts = f"{len(faces)} / {theirs['faces'] if theirs else '–'}"
            height, width = image.shape[:2]
            milliseconds = [*(stages[stage] for stage in stage_names), sum(stages.values()),
                            end_to_end["default"], end_to_end[8], official_total]
            table.rows.append([
                path.name, f"{width}x{height}", face_counts,
                *(None if value is None else value * 1e3 for value in milliseconds), ratio,
                f"{end_to_end['full size'] * 1e3:.0f} ({full_size_faces})",
            ])
            for stage in stage_names:
                totals["ours"][stage] = totals["ours"].get(stage, 0.0) + stages[stage]
                if theirs:
                    totals["official"][stage] = totals["official"].get(stage, 0.0) + theirs["stages"][stage]
            multi = len(faces) >= 2
            sums["ours"] += end_to_end["default"]
            sums["ours_b8"] += end_to_end[8]
            if multi:
                sums["ours_multi"] += end_to_end["default"]
            if theirs:
                sums["official"] += official_total
                if multi:
                    sums["official_multi"] += official_total

        stage_table = Table(
            "Whole photos: seconds per stage, summed over the photos",
            ["Stage", "Ours (s)", "Official (s)", "Official / ours"],
        )
        for stage in stage_names:
            ours_s, theirs_s = totals["ours"].get(stage), totals["official"].get(stage)
            stage_table.rows.append([stage, ours_s, theirs_s, theirs_s / ours_s if theirs_s and ours_s else None])
        label = _gfpgan_label(name, configs[name])
        table.notes += [
            f"Network: GFP-GAN {label}, fp32, on {self.device}; detector: {detector.name} on both sides (same weights "
            "and settings, score threshold 0.97, no face-parsing network); upscale 1. After one warm-up photo on both sides.",
            "Stages are timed by running the pipeline's own steps one by one (facerest.faces and "
            "FaceRestorePipeline.restore_faces); 'pipeline()' is the whole FaceRestorePipeline.__call__ on the file, "
            f"with its default {pipeline.default_face_batch_size} face(s) per forward pass"
            + (" (on the CPU, the passes side by side on the CPU threads)" if self.device.type == "cpu" else "")
            + ", and with 8 faces per pass. The official stages are GFPGANer.enhance's own steps timed the "
            "same way (its face-to-tensor conversion falls in restore, ours in align); its column is the whole "
            "enhance() call after cv2.imread. Milliseconds per photo; the "
            f"official side ran {self.photo_passes} pass(es) over the photos before ours and as many after, ours "
            f"{our_passes} in between (stage by stage and pipeline()), so a busy spell of the shared machine does not "
            "fall on one side only; each side's fastest is shown, per stage too (the 8-faces and full-size columns: "
            f"the fastest of {self.photo_passes}).",
            "Our detector works on the photo shrunk to 1024 px on its longer side (FaceDetector's default "
            "max_detection_side); the official one on the full-size photo. Last column: ours with detection at full "
            "size too (max_detection_side=None), with the faces it found.",
            f"Peak RSS growth over all photos (ours): {memory.growth_mib:.0f} MiB.",
            "Limited by: restore (the network's arithmetic; see the forward table) on photos with faces; detection on "
            "large photos (RetinaFace on the photo shrunk to at most 1024 px for us, on the full-size photo for the "
            "official side; the same network, but ours builds its prior boxes once per input size with array "
            "operations where facexlib rebuilds them in a Python loop on every call, about as long as the network "
            "itself on a 1024-px photo, and runs with BatchNorms folded into the convolutions, channels-last); "
            "paste-back works on each face's window for us, on the whole photo for the official helper (its masks "
            "are full-size).",
        ]
        if "error" in official:
            table.notes.append(f"Official side: {official['error']}.")
        else:
            mismatched = [row[0] for row in table.rows if row[2].split(" / ")[0] != row[2].split(" / ")[1]]
            if mismatched:
                table.notes.append(f"The two sides found different numbers of faces in: {', '.join(mismatched)}.")
            if sums["ours"]:
                whole = sums["official"] / sums["ours"]
                line = f"Whole photos, all {len(photos)}: official / ours = {whole:.2f}x (our default; " \
                       f"{sums['official'] / sums['ours_b8']:.2f}x with 8 faces per forward pass)"
                if sums["ours_multi"]:
                    multi = sums["official_multi"] / sums["ours_multi"]
                    line += f"; photos with 2+ faces: {multi:.2f}x (target 1.5x: {'met' if multi >= 1.5 else 'not met'})"
                self.summary.append(line)
        self.tables += [table, stage_table]

    # -- 4. IDM and the hybrid ----------------------------------------------------------------------------------
    def quality_models(self):
        """(restorer, unet, scheduler, labels) for the IDM, hybrid and quality parts: trained ones when given,
        else random 64-px ones of the training runs' sizes (tiny ones with --quick)."""
        from .models.gfpgan import GFPGANConfig, GFPGANModel
        from .models.idm import IDMScheduler, make_idm_unet

        restorer = unet = scheduler = None
        labels = {}
        if self.options.gfpgan:
            restorer = _load_restorer(Path(self.options.gfpgan))
            labels["gfpgan"] = f"trained ({self.options.gfpgan})"
        if self.options.idm:
            unet, scheduler = _load_idm(Path(self.options.idm))
            labels["idm"] = f"trained ({self.options.idm})"
        if restorer is None:
            torch.manual_seed(self.options.seed)
            restorer = GFPGANModel(GFPGANConfig(**(TINY_GFPGAN_64 if self.quick else SMALL_GFPGAN_64))).eval()
            labels["gfpgan"] = "random weights (tiny)" if self.quick else "random weights (size of the 64-px training run)"
        if unet is None:
            torch.manual_seed(self.options.seed + 1)
            unet = make_idm_unet(64, **(TINY_IDM_64 if self.quick else SMALL_IDM_64)).eval()
            scheduler = IDMScheduler()
            labels["idm"] = "random weights (tiny)" if self.quick else "random weights (size of the 64-px training run)"
        return restorer.to(self.device), unet.to(self.device), scheduler, labels

    def run_idm(self) -> None:
        from .models.idm import idm_sample, make_idm_unet
        from .pipeline import FaceRestorePipeline

        restorer, unet, scheduler, labels = self.quality_models()
        size = unet.config.sample_size
        batch = 2 if self.quick else (GPU_FACE_BATCH * 4 if self.device.type == "cuda" else 4)  # a GPU needs a full batch
        table = Table(
            "IDM sampling: per step and per face",
            ["UNet", "Params (M)", "GFLOP per step per face", "Batch", "ms per step per face",
             *[f"s per face, {steps} steps" for steps in IDM_STEPS]],
        )
        candidates = [(f"64 px, {labels['idm']}", unet)]
        if not self.quick:
            torch.manual_seed(self.options.seed)
            candidates.append(("64 px, standard IDM config (make_idm_unet(64)), random weights", make_idm_unet(64).eval().to(self.device)))
        budget = 20.0 if self.quick else 60.0  # seconds of sampling per UNet; beyond it, times are extrapolated
        lq = torch.rand(batch, 3, size, size, device=self.device) * 2 - 1
        for label, model in candidates:
            config = dict(model.config)
            flops = count_flops(lambda: type(model).from_config(config), lambda: (torch.empty(1, 6, size, size), torch.empty(1)))
            timestep = torch.full((batch,), 500.0, device=self.device)
            model_input = torch.rand(batch, 6, size, size, device=self.device)
            with torch.no_grad():
                step_seconds = statistics.median(
                    time_calls(lambda: model(model_input, timestep), self.repeats, self.device)
                ) / batch
            self.note_flops(f"IDM UNet step, {label}", flops, step_seconds)
            per_face = []
            spent = 0.0
            for steps in IDM_STEPS:
                estimate = steps * step_seconds * batch
                if spent + estimate > budget:
                    per_face.append(f"~{steps * step_seconds:.3g} (est.)")
                    continue
                self.log(f"idm {label}: {steps} steps, batch {batch}")
                generator = torch.Generator("cpu").manual_seed(self.options.seed)
                started = time.perf_counter()
                idm_sample(model, scheduler, lq, steps, generator=generator, eta=0.0, progress=False)
                _sync(self.device)
                elapsed = time.perf_counter() - started
                spent += elapsed
                per_face.append(elapsed / batch)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            table.rows.append([label, params, flops / 1e9, batch, step_seconds * 1e3, *per_face])
        table.notes += [
            "DDIM sampler (eta 0), fp32; a step is one UNet call plus the scheduler update. '(est.)': the steps x the "
            f"per-step time, not run, to keep the bench within its budget ({budget:.0f} s of sampling per UNet).",
            "Limited by: the UNet's arithmetic (a step is one UNet call; the scheduler update is negligible), so time "
            "grows linearly with the steps; the self-attention at 8x8-32x32 and GroupNorm are memory-bound on a CPU.",
        ]
        self.tables.append(table)

        hybrid = FaceRestorePipeline(restorer=restorer, unet=unet, scheduler=scheduler)
        hybrid_table = Table(
            "Hybrid (GFP-GAN estimate refined by IDM): time per face against strength",
            ["Strength", "Steps run (of 25)", "s per face", "of which GFP-GAN (s)"],
        )
        with torch.no_grad():
            gan_seconds = statistics.median(time_calls(lambda: restorer(lq), self.repeats, self.device)) / batch
        for strength in HYBRID_STRENGTHS:
            generator = torch.Generator("cpu").manual_seed(self.options.seed)
            started = time.perf_counter()
            hybrid.restore_faces(lq, 25, strength, generator=generator, progress=False)
            _sync(self.device)
            seconds = (time.perf_counter() - started) / batch
            steps_run = max(1, round(strength * 25))
            hybrid_table.rows.append([f"{strength:g}", steps_run, seconds, gan_seconds if strength < 1 else 0.0])
        hybrid_table.notes += [
            f"GFP-GAN {labels['gfpgan']}; IDM {labels['idm']}; 64-px faces, batch {batch}, DDIM (eta 0). Strength 1 "
            "is pure IDM (the GAN is skipped).",
            "Limited by: the IDM steps run (round(strength x 25)); the GAN pass costs about one to a few UNet steps.",
        ]
        self.tables.append(hybrid_table)

    # -- 5. training throughput ---------------------------------------------------------------------------------
    def run_training(self) -> None:
        table = Table(
            "Training throughput (forward, backward and optimiser step)",
            ["Model", "Processes x threads", "Batch per process", "Samples/s (all processes)", "Scaling vs 1 process"],
        )
        spec = {
            "seed": self.options.seed, "quick": self.quick, "steps": 2 if self.quick else 4,
            "train_dir": str(self.train_dir) if self.train_dir.is_dir() else None,
            "idm": TINY_IDM_64 if self.quick else SMALL_IDM_64,
            "gfpgan": TINY_GFPGAN_64 if self.quick else SMALL_GFPGAN_64,
            "batch": 4,
        }
        results = {}
        for world in (1, 2):
            threads = max(1, self.threads // world)
            self.log(f"training: {world} process(es) x {threads} thread(s)")
            try:
                results[world] = _train_throughput(spec, world, threads)
            except Exception as error:  # a failed launch must not lose the other parts
                results[world] = {"error": f"{type(error).__name__}: {error}"}
        for model in ("idm", "gfpgan"):
            base = results.get(1, {}).get(model)
            for world in (1, 2):
                threads = max(1, self.threads // world)
                value = results[world].get(model)
                label = "IDM UNet (64 px)" if model == "idm" else "GFP-GAN G + D (64 px)"
                if value is None:
                    table.rows.append([label, f"{world} x {threads}", spec["batch"], results[world].get("error"), None])
                    continue
                table.rows.append([label, f"{world} x {threads}", spec["batch"], value, value / base if base else None])
        table.notes += [
            f"Models: random, the sizes of the 64-px training runs{' (tiny with --quick)' if self.quick else ''}; "
            f"{spec['steps']} timed steps after one warm-up; data: DegradedFaceDataset on "
            f"{spec['train_dir'] or 'random tensors (no training folder)'} (degradation included, in the training "
            "process as with --dataloader_num_workers 0).",
            "IDM: the loss of train/train_idm.py (noise level drawn as in SR3, L1 on the noise), gradient clipping, "
            "AdamW. GFP-GAN: generator L1 + image-pyramid L1 + adversarial loss, then the StyleGAN2 discriminator's "
            "step (no perceptual, identity or facial-component terms, which need weights not available offline).",
            "Two processes: torch.distributed (gloo) DistributedDataParallel, the machine's threads split between them.",
            "Limited by: the cores. Two processes on two cores gain only where one process leaves a core idle "
            "(data degradation, Python overhead, small kernels); gradient all-reduce through gloo adds a cost per "
            "step; other jobs on the machine take their share.",
        ]
        self.tables.append(table)

    # -- 6. quality against cost --------------------------------------------------------------------------------
    def testset(self) -> Path | None:
        if self.options.testset:
            return Path(self.options.testset)
        default = Path("runs/testset64")
        if (default / "lq").is_dir():
            return default
        if self.test_hq_dir.is_dir():
            from .data import make_testset

            out = self.work / "testset64"
            make_testset(self.test_hq_dir, out, resolution=64, seed=0)
            return out
        return None

    def run_quality(self) -> None:
        from .images import image_to_tensor, load_image, pair_by_stem, resize_square, tensor_to_image
        from .metrics import load_lpips, load_niqe_params, lpips_distance, niqe, psnr
        from .pipeline import FaceRestorePipeline

        table = Table(
            "Quality against sampling steps (paired test set)",
            ["Method", "Steps run", "PSNR (dB)", "LPIPS", "NIQE", "s per face"],
        )
        testset = self.testset()
        if testset is None:
            table.notes.append("skipped: no paired test set (pass --testset, or put ../shared/data/ffhq256/test)")
            self.tables.append(table)
            return
        restorer, unet, scheduler, labels = self.quality_models()
        size = unet.config.sample_size
        count = self.options.quality_faces or (4 if self.quick else 16)
        pairs = pair_by_stem(testset / "lq", testset / "hq")[:count]
        lq_images = [load_image(lq) for lq, _ in pairs]
        hq_images = [load_image(hq) for _, hq in pairs]
        lq = torch.stack([image_to_tensor(resize_square(image, size)) for image in lq_images]).to(self.device)

        lpips_note = "LPIPS: AlexNet backbone"
        try:
            lpips_model = load_lpips(device=self.device)
        except FacerestError:
            lpips_model = load_lpips(random_backbone=True, device=self.device)
            lpips_note = ("LPIPS: random AlexNet backbone ('lpips-random': ImageNet weights not available offline), "
                          "so only comparable within this table")
        try:
            niqe_params = load_niqe_params(extra_dirs=[Path(self.options.shared) / "weights" / "niqe"])
        except FacerestError:
            niqe_params = None
        niqe_size = 384  # NIQE needs 96-px blocks: the faces are enlarged (bicubic) to 384 px, 4 x 4 blocks

        def score(restored: torch.Tensor) -> tuple[float, float, float]:
            images = [resize_square(tensor_to_image(face), hq_images[0].shape[0]) for face in restored.cpu()]
            value_psnr = float(np.mean(psnr(images, hq_images)))
            value_lpips = float(np.mean(lpips_distance(images, hq_images, lpips_model)))
            value_niqe = None
            if niqe_params is not None:
                value_niqe = float(np.mean(niqe([resize_square(image, niqe_size) for image in images], niqe_params)))
            return value_psnr, value_lpips, value_niqe

        rows = {"IDM": [], "hybrid": []}
        table.rows.append(["degraded input", 0, *score(lq.cpu()), None])
        idm = FaceRestorePipeline(unet=unet, scheduler=scheduler)
        hybrid = FaceRestorePipeline(restorer=restorer, unet=unet, scheduler=scheduler)
        gfpgan = FaceRestorePipeline(restorer=restorer)
        started = time.perf_counter()
        restored = gfpgan.restore_faces(lq, progress=False)
        table.rows.append(["GFP-GAN", 0, *score(restored), (time.perf_counter() - started) / count])
        idm_steps = (1, 2, 5, 10) if self.quick else (1, 2, 5, 10, 25, 50, 100)
        hybrid_runs = [(1, 0.3), (2, 0.3), (3, 0.3)] if self.quick else [(1, 0.3), (2, 0.3), (3, 0.3), (5, 0.3), (10, 0.3), (25, 0.3)]
        for steps in idm_steps:
            self.log(f"quality: IDM {steps} steps")
            generator = torch.Generator("cpu").manual_seed(self.options.seed)
            started = time.perf_counter()
            restored = idm.restore_faces(lq, steps, 1.0, generator=generator, progress=False)
            seconds = (time.perf_counter() - started) / count
            values = score(restored)
            rows["IDM"].append((steps, *values))
            table.rows.append(["IDM", steps, *values, seconds])
        for steps_run, strength in hybrid_runs:
            total = max(1, round(steps_run / strength))
            self.log(f"quality: hybrid {steps_run} steps (strength {strength}, {total}-step schedule)")
            generator = torch.Generator("cpu").manual_seed(self.options.seed)
            started = time.perf_counter()
            restored = hybrid.restore_faces(lq, total, strength, generator=generator, progress=False)
            seconds = (time.perf_counter() - started) / count
            values = score(restored)
            actual = max(1, round(strength * total))
            rows["hybrid"].append((actual, *values))
            table.rows.append([f"hybrid, strength {strength}", actual, *values, seconds])

        reference = rows["IDM"][-1]
        few = [row for row in rows["hybrid"] if row[0] <= 10]
        if few:
            best = min(few, key=lambda row: row[2])
            gap = (best[2] - reference[2]) / reference[2] * 100
            verdict = "met" if gap <= 2 else "not met"
            self.summary.append(
                f"Hybrid at {best[0]} step(s) (<= 10): LPIPS {best[2]:.4f} vs IDM at {reference[0]} steps {reference[2]:.4f}, "
                f"{gap:+.1f}% (target within 2%: {verdict}; models: GFP-GAN {labels['gfpgan']}, IDM {labels['idm']})"
            )
        table.notes += [
            f"{count} faces of {testset} ({size} px); GFP-GAN {labels['gfpgan']}; IDM {labels['idm']}. DDIM (eta 0), "
            "seed fixed. Hybrid rows: strength 0.3 on a schedule of round(steps / 0.3) steps, so 'steps run' IDM "
            "steps follow one GAN pass.",
            "PSNR on RGB in [0, 255]. " + lpips_note + ". NIQE: faces enlarged to 384 px (bicubic) first, because "
            "NIQE needs 96-px blocks; lower is better" + ("" if niqe_params else " (unavailable: parameters not found)") + ".",
            "Random models restore nothing: with them the table shows the cost side and that the code runs; the "
            "quality columns only mean something with trained models (--gfpgan, --idm).",
            "Limited by: the number of faces (small sample: differences under about 0.3 dB / 0.01 LPIPS are noise); "
            "the models' training.",
        ]
        self.tables.append(table)
        self.plot = self._plot(rows, table.rows, labels)

    def _plot(self, rows: dict, table_rows: list, labels: dict) -> Path | None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        out = Path(self.options.out)
        path = Path(self.options.plot) if self.options.plot else out.with_name(f"{out.stem}_quality.png")
        figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for index, metric in enumerate(("PSNR (dB)", "LPIPS", "NIQE")):
            axis = axes[index]
            for name, marker in (("IDM", "o"), ("hybrid", "s")):
                points = [(row[0], row[1 + index]) for row in rows[name] if row[1 + index] is not None]
                if points:
                    axis.plot(*zip(*points), marker=marker, label=name)
            for row in table_rows:
                if row[0] in ("degraded input", "GFP-GAN") and row[2 + index] is not None:
                    axis.axhline(row[2 + index], linestyle="--", linewidth=0.8, color="gray" if row[0] != "GFP-GAN" else "green")
                    axis.annotate(row[0], (1, row[2 + index]), fontsize=7)
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

    # -- 7. bounded memory --------------------------------------------------------------------------------------
    def run_memory(self) -> None:
        from .pipeline import FaceRestorePipeline
        from .models.gfpgan import GFPGANConfig, GFPGANModel

        table = Table(
            "Bounded memory: python -m facerest restore over a folder",
            ["Photos restored so far", "Faces", "Peak RSS so far (MiB)", "Seconds so far"],
        )
        photos = self.photo_paths()
        if not photos:
            table.notes.append(f"skipped: no photos in {self.photos_dir}")
            self.tables.append(table)
            return
        total = self.options.memory_photos or (10 if self.quick else 100)
        checkpoint = min(len(photos), total)  # one pass over the distinct photos, the largest included
        folder = self.work / "memory_photos"
        folder.mkdir(exist_ok=True)
        sources = photos
        for index in range(total):
            source = sources[index % len(sources)]
            shutil.copyfile(source, folder / f"{index:03d}_{source.name}")
        model_dir = self.work / "memory_model"
        torch.manual_seed(self.options.seed)
        FaceRestorePipeline(restorer=GFPGANModel(GFPGANConfig(**TINY_GFPGAN_64)).eval()).save_pretrained(model_dir)
        out_dir = self.work / "memory_out"
        command = [sys.executable, "-m", "facerest", "restore", str(folder), "-o", str(out_dir), "--model", str(model_dir),
                   "--device", str(self.device)]
        if (self.detector_dir / "detection_mobilenet0.25_Final.pth").is_file():
            command += ["--detector", "retinaface", "--detector-weights", str(self.detector_dir)]
        self.log(f"memory: restoring {total} photos with the CLI")
        python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "PYTHONPATH": python_path}
        samples = []  # (seconds, photos written, rss MiB)
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = []
        reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
        reader.start()
        while process.poll() is None:
            written = sum(1 for entry in os.scandir(out_dir) if entry.name.endswith(".png")) if out_dir.is_dir() else 0
            samples.append((time.perf_counter() - started, written, rss_mib(process.pid)))
            time.sleep(0.05)
        reader.join()
        if process.returncode != 0:
            table.notes.append(f"the restore command failed (exit {process.returncode}): {''.join(output[-3:]).strip()}")
            self.tables.append(table)
            return
        faces_dir = out_dir / "faces"
        face_names = sorted(path.name for path in faces_dir.iterdir()) if faces_dir.is_dir() else []
        marks = sorted({1, checkpoint, total // 2, total} - {0})
        first_photo = None
        for mark in marks:
            seen = [sample for sample in samples if sample[1] < mark]  # until photo number `mark` is written
            if not seen:
                continue
            prefixes = {f"{index:03d}_" for index in range(mark)}
            faces = sum(1 for name in face_names if name[:4] in prefixes)
            peak = max(sample[2] for sample in seen)
            table.rows.append([mark, faces, peak, seen[-1][0]])
            if mark == 1:
                first_photo = peak
        peak_all = max(sample[2] for sample in samples)
        peak_mark = next((row[2] for row in table.rows if row[0] == checkpoint), None)
        if peak_mark:
            growth = (peak_all - peak_mark) / peak_mark * 100
            self.summary.append(
                f"Streaming restore (CLI): peak RSS {peak_mark:.0f} MiB after the {checkpoint} distinct photos, "
                f"{peak_all:.0f} MiB after {total} ({growth:+.1f}%)"
            )
        table.notes += [
            f"{total} photos: copies of the {len(sources)} photos of {self.photos_dir}, restored by a separate "
            "`python -m facerest restore` process (tiny random 64-px GFP-GAN: the measure is of the pipeline's "
            "buffers, not the network's) whose RSS is sampled every 50 ms; 'so far' rows take the samples taken "
            "before that many result files were written. Each photo's result is written and dropped before the next "
            "is read, so memory does not grow with the number of photos.",
            "Limited by: the largest photo (1297x1920 px: decoded image, float32 paste-back buffer, detector "
            "feature maps), reached as soon as it is first met; sampling every 50 ms can miss a short peak.",
        ]
        if first_photo is not None:
            table.notes.append(f"The first photo's peak ({first_photo:.0f} MiB) is mostly the imported libraries and the models.")
        self.tables.append(table)

    # -- 8. FLOPs against the machine's limit ---------------------------------------------------------------------
    def run_flops_table(self) -> None:
        table = Table(
            "How close to the machine's limit: FLOPs per face over measured time",
            ["Model", "GFLOP per face", "Seconds per face", "Achieved GFLOP/s", "% of the matmul rate"],
        )
        for name, gflop, seconds in self.flops_rows:
            rate = gflop / seconds if seconds else None
            percent = rate / self.matmul_gflops * 100 if rate and self.matmul_gflops else None
            table.rows.append([name, gflop, seconds, rate, percent])
        table.notes += [
            "FLOPs from torch.utils.flop_counter.FlopCounterMode on the meta device (a multiply-add is 2 FLOPs; "
            "convolutions, matmuls and attention are counted, elementwise work, normalisation and resampling are "
            "not); times from the tables above (fp32, batch 1 for GFP-GAN, per face for the IDM step).",
            "Limited by: large convolutions reach close to the matmul rate (compute-bound); small feature maps, "
            "GroupNorm, attention softmax and elementwise ops are memory- or overhead-bound and pull the average down. "
            "Over 100% means the yardstick was measured while other jobs took more of the cores than during the "
            "model's timing (a single-thread fp32 FMA peak on this class of CPU is roughly 2-3x the matmul rates "
            "seen on a busy machine), so read the percentages against each other, within the run.",
        ]
        self.tables.append(table)

    # -- all ------------------------------------------------------------------------------------------------------
    def run(self) -> BenchReport:
        started = time.perf_counter()
        load_before = _load_average()
        with tempfile.TemporaryDirectory(prefix="facerest-bench-") as temporary:
            self.work = Path(self.options.work_dir) if self.options.work_dir else Path(temporary)
            self.work.mkdir(parents=True, exist_ok=True)
            steps = {
                "matmul": self.run_matmul, "gfpgan": self.run_gfpgan, "photos": self.run_photos, "idm": self.run_idm,
                "training": self.run_training, "quality": self.run_quality, "memory": self.run_memory,
            }
            if "matmul" not in self.options.sections and any(s in self.options.sections for s in ("gfpgan", "idm")):
                self.run_matmul()
            for name in SECTIONS:
                if name in self.options.sections:
                    self.log(f"== {name}")
                    steps[name]()
            if self.flops_rows:
                self.run_matmul("end of the run")
                self.run_flops_table()
        seconds = time.perf_counter() - started
        machine = _machine_lines(self, load_before, seconds)
        return BenchReport(machine=machine, tables=self.tables, summary=self.summary, plot=self.plot, seconds=seconds)


def run_benchmarks(options: BenchOptions, log: Callable[[str], None] | None = None) -> BenchReport:
    """Run the parts named in ``options.sections`` and return the report (see the module's docstring)."""
    unknown = set(options.sections) - set(SECTIONS)
    if unknown:
        raise FacerestError(f"unknown bench part(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return _Bench(options, log or (lambda message: print(message, file=sys.stderr, flush=True))).run()


def write_report(report: BenchReport, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.markdown() + "\n" + _HOW_TO_READ)
    return path


_HOW_TO_READ = """## How to run and read this

- `python -m facerest bench` (about 15 minutes on 2 CPU cores) or `--quick` (tiny networks, about a minute);
  `--sections` runs some parts only, `--gfpgan` / `--idm` take trained 64-px models for the quality part, `--out`
  and `--plot` say where to write. Compare numbers within one run only: the machine is shared, and the official
  side runs in the same run so that ratios are like for like.
- The official implementation runs in a throwaway environment, never a project dependency:

  ```bash
  python3 -m venv /tmp/official-env
  echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/official-env/lib/python3.11/site-packages/facerest_venv.pth
  /tmp/official-env/bin/pip install wheel
  /tmp/official-env/bin/pip install --no-deps --no-build-isolation gfpgan basicsr
  ```

  (`--no-build-isolation`: basicsr's build would otherwise download torch into a build environment.) Point
  `--official-python` elsewhere, or at `none`, to change or skip it; without it those rows say "not installed".
- What runs on the official side, and why its helper is assembled rather than built by `GFPGANer.__init__`, is
  described in `bench/official_gfpgan.py`.
"""


# ------------------------------------------------------------------------------------------------------------
# Training throughput (torch.distributed, gloo)
# ------------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_throughput(spec: dict, world: int, threads: int) -> dict:
    """Samples per second of both models' training steps with ``world`` processes (in this process when 1)."""
    if world == 1:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _train_worker_body(0, 1, spec)
        finally:
            torch.set_num_threads(previous)
    import torch.multiprocessing as mp

    port = _free_port()
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    processes = [
        context.Process(target=_train_worker, args=(rank, world, port, threads, spec, queue), daemon=True)
        for rank in range(world)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    results = [queue.get() for _ in range(world) if not queue.empty()]
    errors = [result["error"] for result in results if "error" in result]
    if errors or len(results) < world:
        raise RuntimeError(errors[0] if errors else "a training process exited without a result")
    return next(result for result in results if result.get("rank") == 0)


def _train_worker(rank: int, world: int, port: int, threads: int, spec: dict, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        try:
            result = _train_worker_body(rank, world, spec)
        finally:
            dist.destroy_process_group()
        queue.put({**result, "rank": rank})
    except Exception as error:  # reported to the parent
        message = (str(error).strip().splitlines() or [""])[0][:200]
        queue.put({"error": f"{type(error).__name__}: {message}", "rank": rank})


def _train_worker_body(rank: int, world: int, spec: dict) -> dict:
    import torch.nn.functional as F

    from .data import DegradedFaceDataset
    from .images import list_images
    from .models.gfpgan import GFPGANConfig, GFPGANModel
    from .models.idm import IDMScheduler, make_idm_unet
    from .training.discriminators import StyleGAN2Discriminator
    from .training.losses import adversarial_loss, pyramid_l1_loss

    distributed = world > 1
    batch, steps = spec["batch"], spec["steps"]
    torch.manual_seed(spec["seed"])
    if spec["train_dir"]:
        paths = list_images(spec["train_dir"])[: world * batch * (steps + 1)]
        dataset = DegradedFaceDataset(paths, 64, seed=spec["seed"])
    else:
        dataset = None

    def batches():
        for step in range(steps + 1):
            if dataset is None:
                gt = torch.rand(batch, 3, 64, 64) * 2 - 1
                yield gt + 0.1 * torch.randn_like(gt), gt
                continue
            indices = [(step * world * batch + rank * batch + i) % len(dataset) for i in range(batch)]
            pairs = [dataset[index] for index in indices]
            yield torch.stack([lq for lq, _ in pairs]), torch.stack([gt for _, gt in pairs])

    def wrap(module, find_unused_parameters=False):
        if not distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        # the buffers (blur kernels, fixed noise) are constants: re-broadcasting them in place at every forward
        # breaks the discriminator's second forward before its backward on some torch versions (2.11)
        return DistributedDataParallel(module, find_unused_parameters=find_unused_parameters, broadcast_buffers=False)

    def barrier():
        if distributed:
            torch.distributed.barrier()

    def measure(step_fn) -> float:
        elapsed = 0.0
        for index, (lq, gt) in enumerate(batches()):
            barrier()
            started = time.perf_counter()
            step_fn(lq, gt)
            barrier()
            if index > 0:  # the first step is a warm-up
                elapsed += time.perf_counter() - started
        return world * batch * steps / elapsed

    # IDM: as train/train_idm.py's step (L1 on the noise, noise level drawn as in SR3)
    unet = wrap(make_idm_unet(64, **spec["idm"]).train())
    scheduler = IDMScheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(spec["seed"] + rank)

    def idm_step(lq, gt):
        noise = torch.randn(gt.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (gt.shape[0],), generator=generator)
        noise_level = scheduler.sample_noise_level(timesteps, generator=generator)
        noisy = scheduler.add_noise(gt, noise, noise_level)
        output = unet(torch.cat([noisy, lq], dim=1), scheduler.model_timestep(noise_level)).sample
        loss = F.l1_loss(output, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    result = {"idm": measure(idm_step)}

    config = GFPGANConfig(**spec["gfpgan"])
    net_g = wrap(GFPGANModel(config).train(), find_unused_parameters=True)  # the mapping network gets no gradient
    net_d = wrap(StyleGAN2Discriminator(64, channel_multiplier=1, narrow=0.25))
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=2e-4)
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=2e-4)

    def gfpgan_step(lq, gt):
        output = net_g(lq, return_rgbs=True)
        loss = F.l1_loss(output.image, gt) + pyramid_l1_loss(output.intermediate_rgbs, gt)
        loss = loss + 0.1 * adversarial_loss(net_d(output.image), True)
        loss.backward()
        optimizer_g.step()
        optimizer_g.zero_grad()
        optimizer_d.zero_grad()  # the generator's step also filled the discriminator's gradients
        loss_d = adversarial_loss(net_d(gt), True) + adversarial_loss(net_d(output.image.detach()), False)
        loss_d.backward()
        optimizer_d.step()
        optimizer_d.zero_grad()

    result["gfpgan"] = measure(gfpgan_step)
    return result


# ------------------------------------------------------------------------------------------------------------
# Loading trained models, machine description
# ------------------------------------------------------------------------------------------------------------


def _load_restorer(path: Path):
    """A GFPGANModel from a saved pipeline, a training output (``restorer/``) or a GFPGANModel folder."""
    from .models.gfpgan import GFPGANModel

    if (path / "model_index.json").is_file():
        from .pipeline import FaceRestorePipeline

        restorer = FaceRestorePipeline.from_pretrained(path).restorer
        if restorer is None:
            raise FacerestError(f"{path} holds no GFP-GAN restorer")
        return restorer.eval()
    folder = path / "restorer" if (path / "restorer").is_dir() else path
    if not (folder / "config.json").is_file():
        raise FacerestError(f"no GFP-GAN model in {path} (expected model_index.json, restorer/ or config.json)")
    return GFPGANModel.from_pretrained(folder).eval()


def _load_idm(path: Path):
    """(unet, scheduler) from a saved pipeline or a train_idm.py output folder (``unet/`` and ``scheduler/``)."""
    from diffusers import UNet2DModel

    from .models.idm import IDMScheduler

    if (path / "model_index.json").is_file():
        from .pipeline import FaceRestorePipeline

        pipeline = FaceRestorePipeline.from_pretrained(path)
        if pipeline.unet is None:
            raise FacerestError(f"{path} holds no IDM unet")
        return pipeline.unet.eval(), pipeline.scheduler
    if not (path / "unet").is_dir() or not (path / "scheduler").is_dir():
        raise FacerestError(f"no IDM model in {path} (expected model_index.json, or unet/ and scheduler/)")
    return UNet2DModel.from_pretrained(path / "unet").eval(), IDMScheduler.from_pretrained(path / "scheduler")


def _gfpgan_label(name: str, config: dict) -> str:
    return f"{name} (512 px, channel_multiplier {config['channel_multiplier']}, narrow {config['narrow']:g})"


def _cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return "flags unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _machine_lines(bench: _Bench, load_before: str, seconds: float) -> list[str]:
    from importlib import metadata

    versions = []
    for name in ("torch", "diffusers", "transformers", "numpy", "opencv-python", "facexlib"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    memory = ""
    try:
        total_kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory = f", {total_kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    device = str(bench.device)
    if bench.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(bench.device)})"
    official = bench.official_versions
    official_line = (
        ", ".join(f"{key} {value}" for key, value in official.items()) if official else
        (bench._official_cache or {}).get("error", "not run")
    )
    return [
        f"Command: `{bench.options.command}` ({'quick' if bench.quick else 'full'} run, parts: "
        f"{', '.join(s for s in SECTIONS if s in bench.options.sections)}), "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {seconds:.0f} s",
        f"Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs{memory}; {_cpu_flags()}; device {device}; "
        f"{bench.threads} torch thread(s)",
        f"Load average (1, 5, 15 min) at the start: {load_before}; at the end: {_load_average()} (other jobs share "
        "the machine when these exceed 0)",
        f"Python {platform.python_version()}, {', '.join(versions)}",
        f"Official side: {official_line}",
    ]
