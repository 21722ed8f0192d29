"""Convert an official GFP-GAN checkpoint (TencentARC v1.3 / v1.4 `.pth`) into a `GFPGANModel` folder.

    python hub/convert_gfpgan.py --output runs/gfpgan-v1.4                      # the official v1.4, downloaded once
    python hub/convert_gfpgan.py --checkpoint GFPGANv1.3.pth --output runs/gfpgan-v1.3
    python hub/convert_gfpgan.py --output runs/gfpgan-v1.4 --push-to-hub USER/gfpgan-v1.4

The folder is a saved `FaceRestorePipeline` (model_index.json and the GAN under restorer/): it loads with
`FaceRestorePipeline.from_pretrained(DIR)`, the GAN alone with `GFPGANModel.from_pretrained(DIR + "/restorer")`.
`--push-to-hub` uploads it with a model card (base_model TencentARC/GFPGAN; the card options are hub/push.py's).
A URL is downloaded into facerest's weight cache (see `facerest.weights`), so a second run reads the cached file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerest import FaceRestorePipeline
from facerest.errors import FacerestError
from facerest.models.gfpgan import GFPGANConfig, GFPGANModel
from facerest.models.gfpgan.convert_original import (
    GFPGAN_V14_CONFIG, GFPGAN_V14_URL, convert_original_checkpoint, original_checkpoint_path
)
from facerest.push import HubError, UsageError, add_card_arguments, card_options, push_pipeline


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint", default=GFPGAN_V14_URL, help=f"official .pth file or URL (default: the v1.4 release, {GFPGAN_V14_URL})"
    )
    parser.add_argument("--output", required=True, help="folder to write the converted model to")
    out_size, channel_multiplier = GFPGAN_V14_CONFIG["out_size"], GFPGAN_V14_CONFIG["channel_multiplier"]
    parser.add_argument("--out-size", type=int, default=out_size, help=f"face resolution of the checkpoint (default {out_size})")
    parser.add_argument(
        "--channel-multiplier", type=int, default=channel_multiplier, help=f"StyleGAN2 channel multiplier (default {channel_multiplier})"
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload the converted model to this Hub repository")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    add_card_arguments(parser)
    parser.set_defaults(base_model=BASE_MODEL)
    return parser.parse_args(argv)


BASE_MODEL = "TencentARC/GFPGAN"


def convert(args) -> GFPGANModel:
    if args.push_to_hub:  # check the card's files before the conversion
        try:
            card = card_options(args)
        except UsageError as error:
            raise FacerestError(str(error)) from None
    output = Path(args.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):  # its old files would stay beside the new
        raise FacerestError(f"--output {output} exists and is not an empty folder: choose a new one")
    config = GFPGANConfig(out_size=args.out_size, channel_multiplier=args.channel_multiplier)
    path = original_checkpoint_path(args.checkpoint)
    try:
        model = convert_original_checkpoint(path, config)
    except FacerestError as error:
        raise FacerestError(
            f"{error} (converting for --out-size {args.out_size} --channel-multiplier {args.channel_multiplier})"
        ) from None
    FaceRestorePipeline(restorer=model).save_pretrained(args.output)
    print(f"converted {path} -> {args.output} ({len(model.state_dict())} tensors, {args.out_size} px)")
    if args.push_to_hub:
        if not card["description"]:
            card["description"] = f"The official GFP-GAN checkpoint `{path.name}` converted to facerest's `GFPGANModel`."
        repo_url, commit = push_pipeline(
            args.output, args.push_to_hub, private=args.private, sample_grid=args.sample_grid, **card
        )
        print(f"pushed to {repo_url} ({commit.commit_url})")
    return model


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        convert(args)
    except (FacerestError, ValueError) as error:  # ValueError: a configuration GFPGANConfig rejects
        print(f"error: {error}", file=sys.stderr)
        return 2
    except HubError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
