"""IDM sampling per step and per face, and the hybrid's time per face against its strength."""

from __future__ import annotations

import statistics
import time

import torch

from facerest.devices import synchronize

from ..context import GPU_FACE_BATCH, Context
from ..measure import count_flops, time_calls
from ..subjects import quality_models

IDM_STEPS = (10, 25, 50, 100)
HYBRID_STRENGTHS = (0.1, 0.2, 0.3, 0.5, 1.0)


def idm(ctx: Context) -> None:
    """The UNet step per face, and whole DDIM samplings of 10 to 100 steps within a time budget; then the hybrid."""
    from facerest.models.idm import make_idm_unet

    restorer, unet, scheduler, labels = quality_models(ctx)
    size = unet.config.sample_size
    batch = 2 if ctx.quick else (GPU_FACE_BATCH * 4 if ctx.device.type == "cuda" else 4)  # a GPU needs a full batch
    table = ctx.table(
        "IDM sampling: per step and per face",
        ["UNet", "Params (M)", "GFLOP per step per face", "Batch", "ms per step per face",
         *[f"s per face, {steps} steps" for steps in IDM_STEPS]],
    )
    candidates = [(f"64 px, {labels['idm']}", unet)]
    if not ctx.quick:
        torch.manual_seed(ctx.options.seed)
        candidates.append(("64 px, standard IDM config (make_idm_unet(64)), random weights", make_idm_unet(64).eval().to(ctx.device)))
    budget = 20.0 if ctx.quick else 60.0  # seconds of sampling per UNet; beyond it, times are extrapolated
    lq = torch.rand(batch, 3, size, size, device=ctx.device) * 2 - 1
    for label, model in candidates:
        table.add(label, *_unet_row(ctx, label, model, scheduler, lq, budget))
    default = _shipped_default_unet(ctx)
    if default is not None:
        label, default_unet, default_scheduler = default
        default_size = default_unet.config.sample_size
        default_lq = torch.rand(1, 3, default_size, default_size, device=ctx.device) * 2 - 1  # one face: 256 px
        table.add(label, *_unet_row(ctx, label, default_unet, default_scheduler, default_lq, budget))
    table.notes += [
        f"DDIM sampler (eta 0), fp32, batch {batch} (the shipped default: one face); '(est.)': the steps x the "
        f"per-step time, not run, to keep the bench within its budget ({budget:.0f} s of sampling per UNet).",
        "Limited by: the UNet's arithmetic (a step is one UNet call; the scheduler update is negligible).",
    ]
    _hybrid(ctx, restorer, unet, scheduler, lq, labels)


def _shipped_default_unet(ctx: Context):
    """(label, unet, scheduler) of the shipped default when it is an IDM (not with --quick unless it is given)."""
    from facerest.pipeline import FaceRestorePipeline

    folder = ctx.default_model_dir
    if (ctx.quick and not ctx.options.default_model) or not (folder / "model_index.json").is_file():
        return None
    pipeline = FaceRestorePipeline.from_pretrained(folder)
    if pipeline.unet is None:
        return None
    size = pipeline.unet.config.sample_size
    return f"{size} px, the shipped default ({folder})", pipeline.unet.eval().to(ctx.device), pipeline.scheduler


def _unet_row(ctx: Context, label: str, model, scheduler, lq: torch.Tensor, budget: float) -> list:
    """Params, GFLOP and ms per step per face, then seconds per face at each step count (estimated past the budget)."""
    from facerest.models.idm import idm_sample

    batch, size = lq.shape[0], lq.shape[-1]
    config = dict(model.config)
    flops = count_flops(lambda: type(model).from_config(config), lambda: (torch.empty(1, 6, size, size), torch.empty(1)))
    timestep = torch.full((batch,), 500.0, device=ctx.device)
    model_input = torch.rand(batch, 6, size, size, device=ctx.device)
    with torch.no_grad():
        step_seconds = statistics.median(time_calls(lambda: model(model_input, timestep), ctx.repeats, ctx.device)) / batch
    ctx.note_flops(f"IDM UNet step, {label}", flops, step_seconds)
    per_face, spent = [], 0.0
    for steps in IDM_STEPS:
        if spent + steps * step_seconds * batch > budget:
            per_face.append(f"~{steps * step_seconds:.3g} (est.)")
            continue
        ctx.log(f"idm {label}: {steps} steps, batch {batch}")
        generator = torch.Generator("cpu").manual_seed(ctx.options.seed)
        started = time.perf_counter()
        idm_sample(model, scheduler, lq, steps, generator=generator, eta=0.0, progress=False)
        synchronize(ctx.device)
        elapsed = time.perf_counter() - started
        spent += elapsed
        per_face.append(elapsed / batch)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return [params, flops / 1e9, batch, step_seconds * 1e3, *per_face]


def _hybrid(ctx: Context, restorer, unet, scheduler, lq: torch.Tensor, labels: dict) -> None:
    """The pipeline's hybrid restore_faces on 25-step schedules at several strengths."""
    from facerest.pipeline import FaceRestorePipeline

    batch = lq.shape[0]
    hybrid = FaceRestorePipeline(restorer=restorer, unet=unet, scheduler=scheduler)
    table = ctx.table(
        "Hybrid (GFP-GAN estimate refined by IDM): time per face against strength",
        ["Strength", "Steps run (of 25)", "s per face", "of which GFP-GAN (s)"],
    )
    with torch.no_grad():
        gan_seconds = statistics.median(time_calls(lambda: restorer(lq), ctx.repeats, ctx.device)) / batch
    for strength in HYBRID_STRENGTHS:
        generator = torch.Generator("cpu").manual_seed(ctx.options.seed)
        started = time.perf_counter()
        hybrid.restore_faces(lq, 25, strength, generator=generator, progress=False)
        synchronize(ctx.device)
        seconds = (time.perf_counter() - started) / batch
        table.add(f"{strength:g}", max(1, round(strength * 25)), seconds, gan_seconds if strength < 1 else 0.0)
    table.notes += [
        f"GFP-GAN {labels['gfpgan']}; IDM {labels['idm']}; 64-px faces, batch {batch}, DDIM (eta 0). Strength 1 "
        "is pure IDM (the GAN is skipped).",
        "Limited by: the IDM steps run (round(strength x 25)); the GAN pass costs about one to a few UNet steps.",
    ]
