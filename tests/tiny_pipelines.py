"""Tiny random FaceRestorePipelines (64 px faces) for the pipeline, restore and compare tests."""

from pathlib import Path

import torch

from facerest.images import image_to_tensor, tensor_to_image

from facerest import FaceRestorePipeline, GFPGANConfig, GFPGANModel, IDMScheduler, make_idm_unet

FACE_SIZE = 64
KINDS = ("gfpgan", "idm", "hybrid")


def tiny_restorer(seed: int = 0) -> GFPGANModel:
    torch.manual_seed(seed)
    config = GFPGANConfig(out_size=FACE_SIZE, num_style_feat=32, channel_multiplier=1, narrow=0.0625)
    return GFPGANModel(config).eval()


def tiny_unet(seed: int = 0, size: int = FACE_SIZE):
    """About 100k parameters; self-attention only at 8x8, which keeps a step near 15 ms per face on one CPU thread."""
    torch.manual_seed(seed)
    return make_idm_unet(
        size,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        attention_head_dim=8,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    ).eval()


def tiny_pipeline(kind: str, seed: int = 0) -> FaceRestorePipeline:
    restorer = tiny_restorer(seed) if kind in ("gfpgan", "hybrid") else None
    unet = tiny_unet(seed + 1) if kind in ("idm", "hybrid") else None
    return FaceRestorePipeline(restorer=restorer, unet=unet, scheduler=IDMScheduler() if unet is not None else None)


def save_tiny_pipelines(root: Path) -> dict[str, Path]:
    """Save one tiny pipeline of each kind under ``root/<kind>``; returns kind -> folder."""
    folders = {}
    for kind in KINDS:
        folders[kind] = root / kind
        tiny_pipeline(kind).save_pretrained(folders[kind])
    return folders


def restoring_with(filter_face):
    """A stand-in for `FaceRestorePipeline.restore_faces` that returns ``filter_face`` of each degraded face (an RGB
    uint8 array function): set it on a pipeline, or as a ``staticmethod`` on the class."""

    def restore_faces(lq, *args, **kwargs):
        return torch.stack([image_to_tensor(filter_face(tensor_to_image(face))) for face in lq])

    return restore_faces
