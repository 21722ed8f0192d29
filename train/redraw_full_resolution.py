"""Save an IDM pipeline whose UNet has the layers that see the face at its own pixels drawn afresh, the rest kept.

    python train/redraw_full_resolution.py models/default runs/default_redrawn --seed 0
    # then fine-tune it: train/train_idm.py --pretrained_model_name_or_path runs/default_redrawn ...

Why: fine-tuned as it stands, the shipped UNet does not learn to remove noise at the face's own pixels
(`redraw_full_resolution_layers`, docs/experiments.md "Stage from redrawn full-resolution layers").
"""

import argparse

from facerest import FaceRestorePipeline
from facerest.models.idm import redraw_full_resolution_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a saved IDM pipeline")
    parser.add_argument("output_dir", help="where to save the pipeline with the redrawn layers")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fresh layers' initialisation")
    args = parser.parse_args()

    pipeline = FaceRestorePipeline.from_pretrained(args.model)
    if pipeline.unet is None:
        raise SystemExit(f"{args.model} is a {pipeline.kind!r} pipeline: it has no IDM unet")
    unet = pipeline.unet.float()
    redrawn = redraw_full_resolution_layers(unet, seed=args.seed)
    pipeline.register_modules(unet=unet)
    pipeline.save_pretrained(args.output_dir)
    count = sum(unet.state_dict()[name].numel() for name in redrawn)
    print(f"saved {args.output_dir}: {len(redrawn)} weight tensors ({count:,} parameters) drawn afresh")


if __name__ == "__main__":
    main()
