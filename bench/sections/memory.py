"""Bounded memory: ``python -m facerest restore`` over a folder of many photos, its RSS sampled as it goes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from ..context import REPO_ROOT, TINY_GFPGAN_64, Context
from ..measure import rss_mib
from ..subjects import photo_paths


def memory(ctx: Context) -> None:
    """Copies of the photos restored by one CLI process; its peak RSS after 1, the distinct photos, half and all."""
    table = ctx.table(
        "Bounded memory: python -m facerest restore over a folder",
        ["Photos restored so far", "Faces", "Peak RSS so far (MiB)", "Seconds so far"],
    )
    photos = photo_paths(ctx)
    if not photos:
        table.notes.append(f"skipped: no photos in {ctx.photos_dir}")
        return
    total = ctx.options.memory_photos or (10 if ctx.quick else 100)
    checkpoint = min(len(photos), total)  # one pass over the distinct photos, the largest included
    folder, out_dir = ctx.work / "memory_photos", ctx.work / "memory_out"
    for earlier_run in (folder, out_dir):  # a --work-dir used before: its photos and results would be counted
        shutil.rmtree(earlier_run, ignore_errors=True)
    folder.mkdir()
    for index in range(total):
        shutil.copyfile(photos[index % len(photos)], folder / f"{index:03d}_{photos[index % len(photos)].name}")
    returncode, samples, output = _restore_folder(ctx, folder, out_dir, total)
    if returncode != 0:
        table.notes.append(f"the restore command failed (exit {returncode}): {''.join(output[-3:]).strip()}")
        return
    faces_dir = out_dir / "faces"
    face_names = sorted(path.name for path in faces_dir.iterdir()) if faces_dir.is_dir() else []
    peaks = {}
    for mark in sorted({1, checkpoint, total // 2, total} - {0}):
        seen = [sample for sample in samples if sample[1] < mark]  # until photo number `mark` is written
        if seen:
            prefixes = {f"{index:03d}_" for index in range(mark)}
            peaks[mark] = max(sample[2] for sample in seen)
            table.add(mark, sum(1 for name in face_names if name[:4] in prefixes), peaks[mark], seen[-1][0])
    if peaks.get(checkpoint) and peaks.get(total):
        growth = (peaks[total] - peaks[checkpoint]) / peaks[checkpoint] * 100
        ctx.summary.append(
            f"Streaming restore (CLI): peak RSS {peaks[checkpoint]:.0f} MiB after the {checkpoint} distinct photos, "
            f"{peaks[total]:.0f} MiB after {total} ({growth:+.1f}%)"
        )
    exit_peak = max(sample[2] for sample in samples)
    table.notes += [
        f"{total} photos: copies of the {len(photos)} photos of {ctx.photos_dir}, restored by one `python -m facerest "
        "restore` process with a tiny random 64-px GFP-GAN, its RSS sampled every 50 ms; a 'so far' row takes the "
        "samples taken before that many result files were written.",
        f"Limited by: the largest photo ({_largest(photos)}), reached as soon as it is first met.",
    ]
    if exit_peak > max(peaks.values(), default=0.0):
        table.notes.append(
            f"After the last result was written, the process's exit peaked at {exit_peak:.0f} MiB (not restoring, "
            "and once a run whatever its length: left out of the rows and the summary)."
        )
    if 1 in peaks:
        table.notes.append(f"The first photo's peak ({peaks[1]:.0f} MiB) is mostly the imported libraries and the models.")


def _restore_folder(ctx: Context, folder: Path, out_dir: Path, total: int) -> tuple[int, list[tuple], list[str]]:
    """Run the CLI's restore on the folder, sampling its RSS: (exit status, samples of (seconds, photos written,
    RSS MiB), output lines)."""
    from facerest.models.gfpgan import GFPGANConfig, GFPGANModel
    from facerest.pipeline import FaceRestorePipeline

    model_dir = ctx.work / "memory_model"
    torch.manual_seed(ctx.options.seed)
    FaceRestorePipeline(restorer=GFPGANModel(GFPGANConfig(**TINY_GFPGAN_64)).eval()).save_pretrained(model_dir)
    command = [sys.executable, "-m", "facerest", "restore", str(folder), "-o", str(out_dir), "--model", str(model_dir),
               "--device", str(ctx.device)]
    if (ctx.detector_dir / "detection_mobilenet0.25_Final.pth").is_file():
        command += ["--detector", "retinaface", "--detector-weights", str(ctx.detector_dir)]
    ctx.log(f"memory: restoring {total} photos with the CLI")
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": str(ctx.threads), "PYTHONPATH": python_path}
    samples, output = [], []
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:
        written = sum(1 for entry in os.scandir(out_dir) if entry.name.endswith(".png")) if out_dir.is_dir() else 0
        samples.append((time.perf_counter() - started, written, rss_mib(process.pid)))
        time.sleep(0.05)
    reader.join()
    return process.returncode, samples, output


def _largest(photos: list[Path]) -> str:
    """The largest photo's size in pixels, read from its header."""
    from PIL import Image

    sizes = []
    for path in photos:
        with Image.open(path) as image:
            sizes.append(image.size)
    width, height = max(sizes, key=lambda size: size[0] * size[1])
    return f"{width}x{height} px"
