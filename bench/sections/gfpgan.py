"""The GFP-GAN forward pass per face, ours against the official network on the same weights, and the ways the
pipeline can run one photo's faces."""

from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import torch

from ..context import GPU_FACE_BATCH, NOT_INSTALLED, Context
from ..measure import PeakRSS, count_flops, has_bf16_instructions, time_calls, time_interleaved
from ..official import official_side, official_weights
from ..subjects import gfpgan_configs, gfpgan_label, gfpgan_model, network_arguments, photo_config, photo_paths

FORWARD_COLUMNS = ["Network", "Implementation", "Variant", "Batch", "ms per face", "Faces/s", "Official / ours",
                   "Peak RSS growth (MiB)"]


def gfpgan(ctx: Context) -> None:
    """One 512-px face through each network in fp32, batched and in bf16 (more on a GPU), next to the official
    GFPGANv1Clean; then the ways of running four faces of one photo."""
    configs = gfpgan_configs(ctx)
    photos = photo_paths(ctx) if "photos" in ctx.options.sections else []
    official = official_side(ctx, configs, photos, photo_config(ctx))
    table = ctx.table("GFP-GAN forward pass, one 512-px face", FORWARD_COLUMNS)
    for name, config in configs.items():
        _forward_rows(ctx, table, name, config, official.get("forward", {}).get(name), official.get("error"))
    if not ctx.quick or ctx.options.default_model:
        _default_model_rows(ctx, table)
    weights = ("the official run's seeded random GFPGANv1Clean weights, converted with "
               "facerest.models.gfpgan.load_original_weights, so both sides compute the same function"
               if official_weights(ctx, next(iter(configs))) else
               "seeded random (the official environment is not available to make and share them)")
    table.notes += [
        *([] if ctx.options.compile else ["torch.compile: not run (pass --compile)."]),
        f"Weights: {weights}; fp32 unless the variant says otherwise, on {ctx.device}, {ctx.threads} thread(s).",
        "Limited by: arithmetic (the FLOPs table puts the rate next to the matmul rate); why batching, bf16 and "
        "the official network fare as they do: see 'How to run and read this'.",
    ]
    if ctx.device.type == "cuda":
        table.notes.append(
            f"On the GPU ({torch.cuda.get_device_name(ctx.device)}): fp32 convolutions may use TF32 "
            f"(torch.backends.cudnn.allow_tf32 = {torch.backends.cudnn.allow_tf32}); half-precision rows hold "
            f"weights and input in bf16 or fp16 (no autocast); batches of {GPU_FACE_BATCH} faces show how far "
            "batching fills the device; channels-last converts the 4-d weights and the input."
        )


def _forward_rows(ctx: Context, table, name: str, config: dict, official: dict | None, official_error: str | None):
    """Our rows of one network (and its face-scheduling table), then the official row."""
    from facerest.models.gfpgan import GFPGANConfig, GFPGANModel

    label = gfpgan_label(name, config)
    model = gfpgan_model(ctx, name, config)
    flops = count_flops(lambda: GFPGANModel(GFPGANConfig(**network_arguments(config))), lambda: (torch.empty(1, 3, 512, 512),))
    face = torch.rand(1, 3, 512, 512, device=ctx.device) * 2 - 1
    heavy = name == "v1.4" and ctx.device.type == "cpu"  # one repeat, fp32 batch 1 only (see gfpgan_configs)
    repeats = config.get("repeats", ctx.repeats)
    ours_fp32 = None
    for variant, batch, call in _variants(ctx, model, face, heavy):
        emulated = variant.startswith("bf16") and _emulates_bf16(ctx)  # tens of times slower: one call, no warm-up
        ctx.log(f"gfpgan {label}: {variant}, batch {batch}")
        with PeakRSS(ctx.device) as memory, torch.no_grad():
            times = time_calls(call, 1 if emulated else repeats, ctx.device, warmup=0 if emulated else 1)
        seconds = statistics.median(times) / batch
        if variant == "fp32" and batch == 1:
            ours_fp32 = seconds
            ctx.note_flops(f"GFP-GAN {label}", flops, seconds)
        table.add(label, "facerest", variant, batch, seconds * 1e3, 1 / seconds, None, memory.growth_mib)
    if ctx.options.compile and name == photo_config(ctx):  # compiling takes minutes: one network
        table.add(*_compiled_row(ctx, label, model, face))
    official_seconds = (official or {}).get("median")
    if official_seconds is None:
        table.add(label, "official GFPGANv1Clean", f"fp32: {official_error or NOT_INSTALLED}", 1)
    else:
        ratio = official_seconds / ours_fp32 if ours_fp32 else None
        table.add(label, "official GFPGANv1Clean", "fp32", 1, official_seconds * 1e3, 1 / official_seconds, ratio)
        ctx.note_flops(f"GFP-GAN {label} (official)", flops, official_seconds)
    if not heavy:
        _face_scheduling(ctx, label, model, face.repeat(4, 1, 1, 1))


def _emulates_bf16(ctx: Context) -> bool:
    """Whether bf16 on the bench's device is emulated: a CPU without bf16 instructions."""
    return ctx.device.type == "cpu" and not has_bf16_instructions()


def _variants(ctx: Context, model, face: torch.Tensor, heavy: bool) -> list:
    """(variant, faces per call, the call): fp32 one face; unless heavy, four faces and bf16; more on a GPU."""
    variants = [("fp32", 1, lambda: model(face))]
    if heavy:
        return variants
    faces = face.repeat(4, 1, 1, 1)
    bf16_model, bf16_face = copy.deepcopy(model).to(torch.bfloat16), face.bfloat16()
    variants.append(("fp32", 4, lambda: model(faces)))
    variants.append(("bf16 weights and input", 1, lambda: bf16_model(bf16_face)))
    if ctx.device.type == "cuda":
        variants += _gpu_variants(model, bf16_model, face)
    return variants


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


def _compiled_row(ctx: Context, label: str, model, face) -> list:
    ctx.log(f"gfpgan {label}: torch.compile (slow to compile on a CPU)")
    compiled = torch.compile(model)
    started = time.perf_counter()
    with torch.no_grad():
        compiled(face)
        compile_seconds = time.perf_counter() - started
        seconds = statistics.median(time_calls(lambda: compiled(face), ctx.repeats, ctx.device, warmup=0))
    return [label, "facerest", f"fp32 torch.compile (compiling took {compile_seconds:.0f} s)", 1, seconds * 1e3,
            1 / seconds, None, None]


def _default_model_rows(ctx: Context, table) -> None:
    """The shipped default restoring one aligned 512-px face as README's main job runs it (the pipeline's aligned
    path with its default steps and fidelity), in fp32 and in bf16 (``--dtype bf16``) in interleaved rounds; then
    four faces in one call, one face per pass (the default on the CPU) and all four in one pass, timed so too."""
    from facerest.pipeline import FaceRestorePipeline

    folder = ctx.default_model_dir
    if not (folder / "model_index.json").is_file():
        table.add(f"shipped default ({folder})", "facerest pipeline", "not found", 1)
        return
    pipeline = FaceRestorePipeline.from_pretrained(folder).to(ctx.device)
    face = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    sampling = "" if pipeline.kind == "gfpgan" else f", {pipeline.default_inference_steps} steps"
    network = f"shipped default ({folder}: {pipeline.kind}, {pipeline.face_size} px{sampling})"
    ctx.log(f"shipped default {folder}: one aligned face")
    with PeakRSS(ctx.device) as memory:
        call = lambda: pipeline(face, aligned=True, output_type="np", progress=False)  # noqa: E731
        call()
    ways = {"fp32": call}
    if _emulates_bf16(ctx):
        table.notes.append("The shipped default in bf16: not timed, this CPU lacks bf16 instructions (emulated).")
    else:
        bf16_pipeline = FaceRestorePipeline.from_pretrained(folder, dtype=torch.bfloat16).to(ctx.device)  # --dtype bf16
        ways["bf16 weights (--dtype bf16)"] = lambda: bf16_pipeline(
            face, aligned=True, output_type="np", progress=False
        )
    for variant, times in time_interleaved(ways, ctx.repeats, ctx.device).items():
        seconds = statistics.median(times)
        table.add(network, "facerest pipeline, aligned 512-px face", variant, 1, seconds * 1e3, 1 / seconds, None,
                  memory.growth_mib if variant == "fp32" else None)
    faces, batch = [face] * 4, pipeline.default_face_batch_size
    ways = {size: (lambda size=size: pipeline(faces, aligned=True, output_type="np", progress=False, face_batch_size=size))
            for size in sorted({batch, len(faces)})}  # fmt: skip
    ctx.log(f"shipped default {folder}: {len(faces)} aligned faces, {len(ways)} ways")
    for size, times in time_interleaved(ways, 2 * ctx.repeats, ctx.device).items():
        per_face = statistics.median(times) / len(faces)
        way = f"facerest pipeline, {len(faces)} aligned 512-px faces in one call" + (" (default)" if size == batch else "")
        table.add(network, way, "fp32", size, per_face * 1e3, 1 / per_face, None, None)


def _face_scheduling(ctx: Context, label: str, model, faces: torch.Tensor) -> None:
    """The ways FaceRestorePipeline.restore_faces can run a photo's faces, timed in interleaved rounds."""
    from facerest.pipeline import FaceRestorePipeline

    pipeline = FaceRestorePipeline(restorer=model)
    count = len(faces)
    ways = {
        f"one after the other, one face per pass ({ctx.threads} thread(s) each)":
            lambda: [pipeline.restore_faces(faces[i : i + 1]) for i in range(count)],
        f"one pass over all {count} faces": lambda: pipeline.restore_faces(faces, face_batch_size=count),
    }
    if ctx.device.type == "cpu":
        ways["one face per pass, side by side on the CPU threads (default on the CPU)"] = (
            lambda: pipeline.restore_faces(faces)
        )
    rounds = 2 * ctx.repeats
    ctx.log(f"gfpgan {label}: {count} faces, {len(ways)} ways, {rounds} interleaved rounds")
    with torch.no_grad():
        seconds = time_interleaved(ways, rounds, ctx.device)
    first = statistics.median(next(iter(seconds.values())))
    table = ctx.table(
        f"Restoring {count} faces of one photo: faces per forward pass and threads (GFP-GAN {label})",
        ["Way", "ms per face (median)", "ms per face (fastest round)", "vs one after the other"],
    )
    for way, times in seconds.items():
        table.add(way, statistics.median(times) / count * 1e3, min(times) / count * 1e3, first / statistics.median(times))
    table.notes += [
        f"{rounds} rounds, each running every way once in turn (after one untimed round); fp32 on {ctx.device}, "
        f"{ctx.threads} thread(s).",
        "Limited by: how well one face's convolutions split over the cores against the caches a batch outgrows "
        "(see 'How to run and read this').",
    ]
