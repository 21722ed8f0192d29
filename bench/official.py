"""The official GFP-GAN side: ``bench/official_gfpgan.py`` run in its own environment (``--official-python``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .context import NOT_INSTALLED, Context

OFFICIAL_SCRIPT = Path(__file__).resolve().parent / "official_gfpgan.py"
REPO_ROOT = OFFICIAL_SCRIPT.parents[1]  # on the official side's PYTHONPATH: its own environment lacks facerest


def official_side(ctx: Context, configs: dict, photos: list[Path], photo_config: str | None) -> dict:
    """The official run of the forward and photo parts, run once per bench; ``{"error": ...}`` when unavailable."""
    if ctx.official is None:
        ctx.official = run_official(ctx, configs, photos, photo_config, "official")
    return ctx.official


def run_official(ctx: Context, configs: dict, photos: list[Path], photo_config: str | None, tag: str) -> dict:
    """Run the official script on a spec of the work (networks, photos, repeats); its JSON result."""
    python = ctx.options.official_python
    if not python or python == "none" or not Path(python).exists():
        return {"error": f"{NOT_INSTALLED} (no interpreter at {python})"}
    if not OFFICIAL_SCRIPT.is_file():
        return {"error": f"{NOT_INSTALLED} ({OFFICIAL_SCRIPT} missing)"}
    spec = {
        "configs": configs, "seed": ctx.options.seed, "threads": ctx.threads,
        "forward_repeats": ctx.repeats, "weights_dir": str(ctx.work / "official_weights"),
        "photos": [str(path) for path in photos], "photo_config": photo_config,
        "detector_weights_dir": str(ctx.detector_dir), "passes": ctx.photo_passes, "device": str(ctx.device),
    }
    (ctx.work / "official_weights").mkdir(exist_ok=True)
    spec_path, out_path = ctx.work / f"{tag}_spec.json", ctx.work / f"{tag}_result.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    ctx.log(f"official side: {python} {OFFICIAL_SCRIPT.name} ({len(photos)} photos)")
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": str(ctx.threads), "PYTHONPATH": python_path}
    done = subprocess.run(
        [python, str(OFFICIAL_SCRIPT), str(spec_path), str(out_path)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0 or not out_path.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"failed (exit {done.returncode}): {tail[0]}"}
    return json.loads(out_path.read_text())


def official_weights(ctx: Context, name: str) -> Path | None:
    """The official run's seeded random weights of network ``name``, when it ran."""
    path = ctx.work / "official_weights" / f"{name}.pth"
    return path if path.is_file() else None
