"""``python -m facerest``: the command line.

Each sub-command parses its options here and calls one library function; errors meant for the user
(``FacerestError``) are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .errors import FacerestError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facerest", description="Blind face restoration.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    testset = commands.add_parser(
        "make-testset",
        help="degrade a folder of HQ faces into a paired LQ/HQ test set (CelebA-Test style)",
        description="Writes OUT_DIR/lq, OUT_DIR/hq and OUT_DIR/manifest.json; the same seed gives the same bytes.",
    )
    testset.add_argument("hq_dir", help="folder of high-quality aligned faces")
    testset.add_argument("out_dir", help="output folder")
    testset.add_argument("--resolution", type=int, default=512, help="side of the square output images (default 512)")
    testset.add_argument("--seed", type=int, default=0, help="seed of the degradation draws (default 0)")
    testset.set_defaults(handler=_make_testset)

    evaluate = commands.add_parser(
        "evaluate",
        help="score restored faces: LPIPS, FID, NIQE, PSNR, SSIM, identity",
        description="Prints the metrics table and writes it as Markdown and CSV.",
    )
    evaluate.add_argument("--restored", required=True, help="folder of restored images")
    evaluate.add_argument("--gt", help="folder of ground-truth images with the same file names (full-reference metrics)")
    evaluate.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        help="any of lpips, lpips-random, fid, niqe, psnr, ssim, identity (default: all that apply; "
        "lpips-random, a random AlexNet, only when lpips's weights are missing)",
    )
    evaluate.add_argument("--fid-stats", help="FID against these saved statistics (.npz with mu, sigma) instead of --gt")
    evaluate.add_argument(
        "--weights-dir",
        action="append",
        default=[],
        help="folder holding metric weights (NIQE parameters, AlexNet, Inception, ArcFace), searched with its "
        "sub-folders before the caches; repeatable; $FACEREST_WEIGHTS_DIR works too",
    )
    evaluate.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    evaluate.add_argument("--out", help="write the table to OUT.md and OUT.csv (default: RESTORED/../<name>_metrics)")
    evaluate.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    evaluate.set_defaults(handler=_evaluate)
    return parser


def _make_testset(args) -> int:
    import json

    from .data import make_testset

    manifest_path = make_testset(args.hq_dir, args.out_dir, resolution=args.resolution, seed=args.seed)
    manifest = json.loads(manifest_path.read_text())
    print(f"wrote {len(manifest['images'])} LQ/HQ pairs of {args.resolution} px: {manifest_path.parent}/lq, hq, manifest.json")
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} files of {args.hq_dir}:", file=sys.stderr)
        for entry in manifest["skipped"]:
            print(f"  {entry['source']}: {entry['reason']}", file=sys.stderr)
    return 0


def _evaluate(args) -> int:
    from .metrics import evaluate_cli

    return evaluate_cli(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except FacerestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
