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
import os
import shutil
import sys
import tempfile
from pathlib import Path

try:  # `python hub/push.py` puts hub/ on the path; `python -m hub.push` and app.py import the package
    from hub.model_card import SAMPLE_GRID_NAME, NotASavedPipeline, build_model_card, read_pipeline
except ImportError:
    from model_card import SAMPLE_GRID_NAME, NotASavedPipeline, build_model_card, read_pipeline


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """The model-card options, shared with convert_gfpgan.py."""
    card = parser.add_argument_group("model card")
    card.add_argument("--metrics", metavar="FILE", help="Markdown metrics table (python -m facerest evaluate / compare)")
    card.add_argument("--sample-grid", metavar="PNG", help="sample grid image, copied into the repository")
    card.add_argument("--training-command", metavar="TEXT", help="the command the model was trained with")
    card.add_argument("--training-command-file", metavar="FILE", help="read the training command from this file")
    card.add_argument("--training-budget", metavar="TEXT", help='e.g. "1000 steps x batch 4, 45 min"')
    card.add_argument("--training-hardware", metavar="TEXT", help='e.g. "1 CPU thread" or "1x H100"')
    card.add_argument("--training-data", metavar="TEXT", help='e.g. "1,000 FFHQ faces at 64 px, degraded on the fly"')
    card.add_argument("--dataset", action="append", default=[], help="Hub dataset id for the card's metadata; repeatable")
    card.add_argument("--base-model", help="Hub id of the model this one was converted or fine-tuned from")
    card.add_argument("--license", default="apache-2.0", help="licence identifier for the metadata (default apache-2.0)")
    card.add_argument("--tag", action="append", default=[], help="extra tag; repeatable")
    card.add_argument("--description", help="a paragraph at the top of the card")


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


class UsageError(Exception):
    """Bad input from the user: reported as one `error:` line, exit status 2."""


def card_options(args) -> dict:
    """build_model_card's keyword arguments from the parsed card options (files checked here)."""
    command = args.training_command
    if args.training_command_file:
        path = Path(args.training_command_file)
        if not path.is_file():
            raise UsageError(f"--training-command-file {path}: no such file")
        command = path.read_text(encoding="utf-8")
    for option, value in (("--metrics", args.metrics), ("--sample-grid", args.sample_grid)):
        if value and not Path(value).is_file():
            raise UsageError(f"{option} {value}: no such file")
    return {
        "metrics_file": args.metrics,
        "training_command": command,
        "training_budget": args.training_budget,
        "hardware": args.training_hardware,
        "training_data": args.training_data,
        "datasets": args.dataset,
        "base_model": args.base_model,
        "license": args.license,
        "tags": args.tag,
        "description": args.description,
    }


def stage_repository(
    model_dir: Path, repo_id: str, staging: Path, sample_grid: str | None = None, link: bool = True, **card
) -> str:
    """Fill ``staging`` with what the repository will hold: model_index.json, the component folders (with
    ``link``, hard-linked rather than copied where the file system allows), the sample grid and README.md.
    Returns the pipeline's kind."""
    summary = read_pipeline(model_dir)
    files = [model_dir / "model_index.json"]
    for component in summary.components:
        files += sorted(path for path in (model_dir / component).rglob("*") if path.is_file())
    for source in files:
        target = staging / source.relative_to(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if link:
            _link_or_copy(source, target)
        else:
            shutil.copyfile(source, target)
    grid_name = None
    if sample_grid:
        grid_name = SAMPLE_GRID_NAME
        shutil.copyfile(sample_grid, staging / grid_name)
    model_card = build_model_card(model_dir, repo_id, sample_grid=grid_name, **card)
    model_card.save(staging / "README.md")
    return summary.kind


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def push_pipeline(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    sample_grid: str | None = None,
    **card,
):
    """Create ``repo_id`` (if needed) and upload the pipeline with its card in one commit. Returns
    ``(repo_url, commit_info)``. Raises `NotASavedPipeline` before any network call when ``model_dir`` is not one."""
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    read_pipeline(model_dir)  # refuse early, before creating the repository
    with tempfile.TemporaryDirectory(prefix="facerest-push-") as staging:
        kind = stage_repository(model_dir, repo_id, Path(staging), sample_grid=sample_grid, **card)
        api = HfApi(token=token)
        repo_url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            repo_type="model",
            folder_path=staging,
            commit_message=commit_message or f"Upload FaceRestorePipeline ({kind})",
        )
    return repo_url, commit


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
    from huggingface_hub.errors import HfHubHTTPError

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
    except (HfHubHTTPError, OSError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: pushing to {args.repo_id} failed: {message}", file=sys.stderr)
        return 1
    print(f"pushed {args.model_dir} to {repo_url} ({commit.commit_url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
