"""Quality against cost: PSNR, LPIPS and NIQE against sampling steps for IDM and the hybrid on a paired test set."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from facerest.errors import FacerestError
from facerest.evaluation import METRIC_COLUMNS, aligned_restorer, restore_and_score

from ..context import Context
from ..report import plot_quality
from ..subjects import quality_models

NIQE_SIZE = 384  # NIQE needs 96-px blocks: the faces are enlarged (bicubic) to 384 px, 4 x 4 blocks
QUALITY_COLUMNS = ["PSNR (dB)", "LPIPS", "NIQE"]


def testset(ctx: Context) -> Path | None:
    """--testset, else runs/testset64 when made, else a 64-px test set made from the shared test faces."""
    if ctx.options.testset:
        return Path(ctx.options.testset)
    default = Path("runs/testset64")
    if (default / "lq").is_dir():
        return default
    test_hq = ctx.shared("data", "ffhq256", "test")
    if not test_hq.is_dir():
        return None
    from facerest.data import make_testset

    make_testset(test_hq, ctx.work / "testset64", resolution=64, seed=0)
    return ctx.work / "testset64"


def _lpips_metric(ctx: Context) -> str:
    """``lpips`` when AlexNet's ImageNet weights are found, else ``lpips-random`` (comparable within the table only)."""
    from facerest.metrics import load_lpips

    try:
        load_lpips(device="cpu", extra_dirs=[ctx.shared("weights")])
        return "lpips"
    except FacerestError:
        return "lpips-random"


def quality(ctx: Context) -> None:
    """The degraded input, GFP-GAN, IDM at 1 to 100 steps and the hybrid at strength 0.3, each restored by the
    pipeline's aligned path and scored by facerest.evaluation.restore_and_score."""
    table = ctx.table("Quality against sampling steps (paired test set)", ["Method", "Steps run", *QUALITY_COLUMNS, "s per face"])
    folder = testset(ctx)
    if folder is None:
        table.notes.append("skipped: no paired test set (pass --testset, or put ../shared/data/ffhq256/test)")
        return
    from facerest.pipeline import FaceRestorePipeline

    restorer, unet, scheduler, labels = quality_models(ctx)
    count = ctx.options.quality_faces or (4 if ctx.quick else 16)
    faces = _testset_subset(folder, ctx.work / "quality_testset", count)
    metrics = ["psnr", _lpips_metric(ctx), "niqe"]
    pipelines = {"IDM": FaceRestorePipeline(unet=unet, scheduler=scheduler),
                 "hybrid": FaceRestorePipeline(restorer=restorer, unet=unet, scheduler=scheduler),
                 "GFP-GAN": FaceRestorePipeline(restorer=restorer)}
    notes = set()

    def run(method: str, steps_run: int, restore) -> tuple:
        """Restore and score the faces; one table row, whose values it returns (steps run, PSNR, LPIPS, NIQE)."""
        ctx.log(f"quality: {method}, {steps_run} step(s) run")
        evaluation = restore_and_score(
            restore, faces, ctx.work / "quality" / f"{method}_{steps_run}".replace(" ", "_").replace(",", ""),
            metrics=metrics, batch_size=count, device=ctx.device, weights_dirs=[ctx.shared("weights")], niqe_size=NIQE_SIZE,
        )  # fmt: skip
        notes.update(evaluation.notes)
        values = [_number(evaluation.rows[0].get(METRIC_COLUMNS[name])) for name in metrics]
        table.add(method, steps_run, *values, None if method == "degraded input" else evaluation.restore_seconds / count)
        return (steps_run, *values)

    def seeded() -> torch.Generator:
        return torch.Generator("cpu").manual_seed(ctx.options.seed)

    run("degraded input", 0, lambda lq: lq)
    run("GFP-GAN", 0, aligned_restorer(pipelines["GFP-GAN"]))
    curves = {"IDM": [], "hybrid": []}
    for steps in (1, 2, 5, 10) if ctx.quick else (1, 2, 5, 10, 25, 50, 100):
        curves["IDM"].append(run("IDM", steps, aligned_restorer(pipelines["IDM"], steps, 1.0, seeded())))
    for steps_run in (1, 2, 3) if ctx.quick else (1, 2, 3, 5, 10, 25):
        total = max(1, round(steps_run / 0.3))  # a schedule whose last round(0.3 x total) steps are run
        restore = aligned_restorer(pipelines["hybrid"], total, 0.3, seeded())
        curves["hybrid"].append(run("hybrid, strength 0.3", max(1, round(0.3 * total)), restore))
    _summarise(ctx, curves, labels)
    table.notes += [
        f"{count} faces of {folder} ({unet.config.sample_size} px); GFP-GAN {labels['gfpgan']}; IDM {labels['idm']}. "
        "DDIM (eta 0), seed fixed. Hybrid rows: strength 0.3 on a schedule of round(steps / 0.3) steps.",
        f"Metrics: {', '.join(metrics)} (facerest.metrics; NIQE on the faces enlarged to {NIQE_SIZE} px).",
        *sorted(notes),
        "Limited by: the number of faces (small sample) and the models' training; random models restore nothing.",
    ]
    out = Path(ctx.options.out)
    ctx.plot = plot_quality(Path(ctx.options.plot) if ctx.options.plot else out.with_name(f"{out.stem}_quality.png"),
                            curves, table, labels)


def _testset_subset(folder: Path, out: Path, count: int) -> Path:
    """A test set of the first ``count`` pairs of ``folder``, copied to ``out``."""
    from facerest.images import pair_by_stem

    shutil.rmtree(out, ignore_errors=True)
    for kind in ("lq", "hq"):
        (out / kind).mkdir(parents=True)
    for lq, hq in pair_by_stem(folder / "lq", folder / "hq")[:count]:
        shutil.copyfile(lq, out / "lq" / lq.name)
        shutil.copyfile(hq, out / "hq" / hq.name)
    return out


def _number(value):
    return value if isinstance(value, float) else None


def _summarise(ctx: Context, curves: dict, labels: dict) -> None:
    """The hybrid at 10 steps or fewer against IDM at its most steps, by LPIPS (target: within 2%)."""
    reference = curves["IDM"][-1]
    few = [row for row in curves["hybrid"] if row[0] <= 10 and row[2] is not None]
    if not few or reference[2] is None:
        return
    best = min(few, key=lambda row: row[2])
    gap = (best[2] - reference[2]) / reference[2] * 100
    verdict = "met" if gap <= 2 else "not met"
    ctx.summary.append(
        f"Hybrid at {best[0]} step(s) (<= 10): LPIPS {best[2]:.4f} vs IDM at {reference[0]} steps {reference[2]:.4f}, "
        f"{gap:+.1f}% (target within 2%: {verdict}; models: GFP-GAN {labels['gfpgan']}, IDM {labels['idm']})"
    )
