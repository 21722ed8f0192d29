"""What the benchmark times: the GFP-GAN networks, the photos, the detector, the 64-px models of the quality part."""

from __future__ import annotations

from pathlib import Path

import torch

from facerest.errors import FacerestError

from .context import (
    BENCH_GFPGAN, GFPGAN_V14, SMALL_GFPGAN_64, SMALL_IDM_64, TINY_GFPGAN, TINY_GFPGAN_64, TINY_IDM_64, Context,
)
from .official import official_weights

_NOT_CONFIG = ("time_forward", "repeats")  # bench settings carried beside a network's arguments


def photo_config(ctx: Context) -> str:
    """The network of the whole-photo part: the released v1.4 on a GPU; on a CPU the bench network, so that
    photos with many faces fit the bench's budget (tiny with --quick)."""
    if ctx.quick:
        return "tiny"
    return "v1.4" if ctx.device.type == "cuda" else "bench"


def gfpgan_configs(ctx: Context) -> dict:
    """The official-format networks of the forward and photo parts (name -> GFPGANv1Clean arguments, time_forward)."""
    timed = "gfpgan" in ctx.options.sections
    if ctx.quick:
        return {"tiny": {**TINY_GFPGAN, "time_forward": timed}}
    v14_repeats = 1 if ctx.device.type == "cpu" else ctx.repeats  # ~40 s a pass on one CPU core
    configs = {
        "v1.4": {**GFPGAN_V14, "time_forward": timed, "repeats": v14_repeats},
        "bench": {**BENCH_GFPGAN, "time_forward": timed},
    }
    return {name: config for name, config in configs.items() if timed or name == photo_config(ctx)}


def network_arguments(config: dict) -> dict:
    """A network's GFPGANConfig arguments, without the bench's settings."""
    return {key: value for key, value in config.items() if key not in _NOT_CONFIG}


def gfpgan_model(ctx: Context, name: str, config: dict):
    """Our GFPGANModel for ``config``, with the official run's weights when there are some (else seeded random)."""
    from facerest.models.gfpgan import GFPGANConfig, GFPGANModel, load_original_weights

    torch.manual_seed(ctx.options.seed)
    model = GFPGANModel(GFPGANConfig(**network_arguments(config))).eval()
    weights = official_weights(ctx, name)
    if weights is not None:
        load_original_weights(model, weights)
    return model.to(ctx.device)


def gfpgan_label(name: str, config: dict) -> str:
    return f"{name} (512 px, channel_multiplier {config['channel_multiplier']}, narrow {config['narrow']:g})"


def detector(ctx: Context):
    """RetinaFace mobilenet0.25 from --detector-weights when there, else the library's automatic choice."""
    from facerest.face_detection import FaceDetector

    if (ctx.detector_dir / "detection_mobilenet0.25_Final.pth").is_file():
        return FaceDetector("retinaface", "mobilenet0.25", weights_dir=ctx.detector_dir, device=ctx.device)
    return FaceDetector("auto", "mobilenet0.25", device=ctx.device)


def photo_paths(ctx: Context) -> list[Path]:
    """The whole photos; with --quick two small photos with faces and the largest one."""
    from facerest.images import list_images

    if not ctx.photos_dir.is_dir():
        return []
    paths = list_images(ctx.photos_dir)
    if ctx.quick:
        by_size = sorted(paths, key=lambda path: path.stat().st_size)
        paths = sorted(set(by_size[:2] + by_size[-1:]))
    return paths


def quality_models(ctx: Context):
    """(restorer, unet, scheduler, labels) for the IDM, hybrid and quality parts: trained ones when given,
    else random 64-px ones of the training runs' sizes (tiny ones with --quick)."""
    from facerest.models.gfpgan import GFPGANConfig, GFPGANModel
    from facerest.models.idm import IDMScheduler, make_idm_unet

    options, random_label = ctx.options, "random weights (tiny)" if ctx.quick else "random weights (size of the 64-px training run)"
    labels = {"gfpgan": f"trained ({options.gfpgan})" if options.gfpgan else random_label,
              "idm": f"trained ({options.idm})" if options.idm else random_label}
    if options.gfpgan:
        restorer = load_restorer(Path(options.gfpgan))
    else:
        torch.manual_seed(options.seed)
        restorer = GFPGANModel(GFPGANConfig(**(TINY_GFPGAN_64 if ctx.quick else SMALL_GFPGAN_64))).eval()
    if options.idm:
        unet, scheduler = load_idm(Path(options.idm))
    else:
        torch.manual_seed(options.seed + 1)
        unet, scheduler = make_idm_unet(64, **(TINY_IDM_64 if ctx.quick else SMALL_IDM_64)).eval(), IDMScheduler()
    return restorer.to(ctx.device), unet.to(ctx.device), scheduler, labels


def load_restorer(path: Path):
    """A GFPGANModel from a saved pipeline, a training output (``restorer/``) or a GFPGANModel folder."""
    from facerest.models.gfpgan import GFPGANModel

    if (path / "model_index.json").is_file():
        from facerest.pipeline import FaceRestorePipeline

        restorer = FaceRestorePipeline.from_pretrained(path).restorer
        if restorer is None:
            raise FacerestError(f"{path} holds no GFP-GAN restorer")
        return restorer.eval()
    folder = path / "restorer" if (path / "restorer").is_dir() else path
    if not (folder / "config.json").is_file():
        raise FacerestError(f"no GFP-GAN model in {path} (expected model_index.json, restorer/ or config.json)")
    return GFPGANModel.from_pretrained(folder).eval()


def load_idm(path: Path):
    """(unet, scheduler) from a saved pipeline or a train_idm.py output folder (``unet/`` and ``scheduler/``)."""
    from diffusers import UNet2DModel

    from facerest.models.idm import IDMScheduler

    if (path / "model_index.json").is_file():
        from facerest.pipeline import FaceRestorePipeline

        pipeline = FaceRestorePipeline.from_pretrained(path)
        if pipeline.unet is None:
            raise FacerestError(f"{path} holds no IDM unet")
        return pipeline.unet.eval(), pipeline.scheduler
    if not (path / "unet").is_dir() or not (path / "scheduler").is_dir():
        raise FacerestError(f"no IDM model in {path} (expected model_index.json, or unet/ and scheduler/)")
    return UNet2DModel.from_pretrained(path / "unet").eval(), IDMScheduler.from_pretrained(path / "scheduler")
