"""Save an IDM pipeline with its UNet one layer per block deeper, computing the same (``deepen_unet``), to fine-tune.

    python train/deepen_unet.py models/default runs/default_deep
    # then: train_idm.py --pretrained_model_name_or_path runs/default_deep ...
"""

import argparse

import torch

from facerest import FaceRestorePipeline
from facerest.models.idm import deepen_unet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a saved IDM pipeline")
    parser.add_argument("output_dir", help="where to save the deeper pipeline")
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.model)
    if pipeline.unet is None:
        raise SystemExit(f"{args.model} is a {pipeline.kind!r} pipeline: it has no IDM unet")
    unet = pipeline.unet.float().eval()
    deeper = deepen_unet(unet).eval()
    sample = torch.randn(2, unet.config.in_channels, pipeline.face_size, pipeline.face_size)
    timestep = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        difference = (deeper(sample, timestep).sample - unet(sample, timestep).sample).abs().max().item()
    pipeline.register_modules(unet=deeper)
    pipeline.save_pretrained(args.output_dir)
    print(
        f"saved {args.output_dir}: layers_per_block {deeper.config.layers_per_block}, "
        f"{deeper.num_parameters() / 1e6:.2f}M parameters (was {unet.num_parameters() / 1e6:.2f}M), "
        f"largest output difference {difference:.1e}"
    )


if __name__ == "__main__":
    main()
