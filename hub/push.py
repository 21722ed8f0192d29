"""Push a saved `FaceRestorePipeline` folder to the Hugging Face Hub with a generated model card.

    python hub/push.py runs/gfpgan64/pipeline USER/facerest-gfpgan64 \\
        --metrics runs/gfpgan64/metrics.md --sample-grid runs/gfpgan64/samples/final.png \\
        --training-command-file runs/gfpgan64/command.sh --training-budget "1000 steps x batch 4" \\
        --training-hardware "1 CPU thread"

MODEL_DIR must hold `model_index.json` and its component folders (`restorer/`, `unet/`, `scheduler/`), as written
by `FaceRestorePipeline.save_pretrained`; only those are uploaded, with README.md (the card) and the sample grid,
in one commit. The token comes from $HF_TOKEN or `hf auth login`; $HF_ENDPOINT selects another Hub.
Exit status: 0 pushed, 1 the Hub refused or failed, 2 bad arguments (e.g. MODEL_DIR is not a saved pipeline).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerest.model_card import NotASavedPipeline, read_pipeline
from facerest.push import HubError, UsageError, add_card_arguments, card_options, push_pipeline, stage_repository


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a saved FaceRestorePipeline folder")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub model repository, owner/name")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--commit-message", default=None, help="default: Upload FaceRestorePipeline (<kind>)")
    parser.add_argument("--token", default=None, help="Hub token (default: $HF_TOKEN or the saved login)")
    parser.add_argument(
        "--dry-run", metavar="DIR", help="write the repository's files (card included) to DIR instead of pushing"
    )
    add_card_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        card = card_options(args)
        read_pipeline(args.model_dir)
        try:
            validate_repo_id(args.repo_id)
        except HFValidationError as error:
            raise UsageError(f"REPO_ID {args.repo_id!r}: {error}") from None
    except (UsageError, NotASavedPipeline) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        target = Path(args.dry_run)
        if target.exists() and any(target.iterdir()):
            print(f"error: --dry-run {target} exists and is not empty", file=sys.stderr)
            return 2
        target.mkdir(parents=True, exist_ok=True)
        kind = stage_repository(
            Path(args.model_dir), args.repo_id, target, sample_grid=args.sample_grid, link=False, **card
        )
        print(f"wrote the files of {args.repo_id} ({kind}) to {target}; nothing pushed")
        return 0
    try:
        repo_url, commit = push_pipeline(
            args.model_dir,
            args.repo_id,
            private=args.private,
            commit_message=args.commit_message,
            token=args.token,
            sample_grid=args.sample_grid,
            **card,
        )
    except HubError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"pushed {args.model_dir} to {repo_url} ({commit.commit_url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
