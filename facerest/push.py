"""Push a saved `FaceRestorePipeline` folder to the Hugging Face Hub with its model card: the one push path of
hub/push.py, hub/convert_gfpgan.py and the training scripts' ``--push_to_hub``.

Only what loads the pipeline is uploaded (``model_index.json`` and the component folders), with README.md (the card
of `facerest.model_card`) and an optional sample grid, in one commit. The token comes from the argument, $HF_TOKEN
or `hf auth login`; $HF_ENDPOINT selects another Hub.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import one_line
from .model_card import SAMPLE_GRID_NAME, build_model_card, read_metrics_table, read_pipeline
from .saved_pipeline import SAVED_COMPONENT_FILES


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """The model-card options of hub/push.py and hub/convert_gfpgan.py (argparse), read back by `card_options`."""
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
    card.add_argument("--limitations", help="this model's own limitations, a paragraph under the card's general ones")


class HubError(Exception):
    """A Hub call failed: the Hub refused it (a bad token, no rights) or could not be reached. One line: what was being
    done and why it failed. The scripts report it as one `error:` line, exit status 1."""


@contextmanager
def reporting_hub_errors(action: str):
    """Raise what the Hub calls inside raise when the Hub refuses them or cannot be reached as one `HubError` line,
    ``"<action> failed: <why>"``: `HfHubHTTPError` and the HTTP library's own errors beneath it (a connection refused
    or timed out is not an `HfHubHTTPError`), a file that cannot be read, a value the Hub client rejects."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except (*HfHubHTTPError.__bases__, OSError, ValueError) as error:
        raise HubError(f"{action} failed: {one_line(error)}") from None


class UsageError(Exception):
    """Bad arguments (a card file that is not there, a Space source without app.py): the scripts report it as one
    `error:` line, exit status 2."""


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
    if args.metrics:
        try:
            read_metrics_table(args.metrics)
        except (ValueError, UnicodeDecodeError) as error:
            raise UsageError(f"--metrics {args.metrics}: {error}") from None
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
        "limitations": args.limitations,
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
    """Create ``repo_id`` (if needed) and upload the pipeline with its card in one commit, which also deletes what an
    earlier push left that this one does not replace (another kind's component folders, a sample grid). The card
    names the repository as the Hub does (``owner/name`` for a ``repo_id`` given without its owner). Returns
    ``(repo_url, commit_info)``. Raises `NotASavedPipeline` before any network call when ``model_dir`` is not one,
    and `HubError` when the Hub refuses the upload or cannot be reached (``model_dir`` is left as it was)."""
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    read_pipeline(model_dir)  # refuse early, before creating the repository
    with reporting_hub_errors(f"pushing to {repo_id}"), tempfile.TemporaryDirectory(prefix="facerest-push-") as staging:
        api = HfApi(token=token)
        repo_url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        kind = stage_repository(model_dir, repo_url.repo_id, Path(staging), sample_grid=sample_grid, **card)
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            repo_type="model",
            folder_path=staging,
            delete_patterns=[*(f"{component}/**" for component in SAVED_COMPONENT_FILES), SAMPLE_GRID_NAME],
            commit_message=commit_message or f"Upload FaceRestorePipeline ({kind})",
        )
    return repo_url, commit


def push_trained_pipeline(output_dir: str | os.PathLike, repo_id: str, **push_arguments):
    """`push_pipeline` at the end of a training run, whose model is saved in ``output_dir`` whatever the Hub does: the
    `HubError` of a failed push also says how to push that saved model later."""
    try:
        return push_pipeline(output_dir, repo_id, **push_arguments)
    except HubError as error:
        raise HubError(f"{error}; push the saved model with: python hub/push.py {output_dir} {repo_id}") from None
