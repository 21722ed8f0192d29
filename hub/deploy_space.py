"""Create or update the Gradio Space that runs facerest's demo (app.py) on a model from the Hub.

    python hub/deploy_space.py USER/facerest-demo --model USER/facerest-gfpgan64
    python hub/deploy_space.py USER/facerest-demo --model USER/facerest-gfpgan64 --model USER/facerest-idm64 \\
        --hardware t4-small --private

Uploads app.py, requirements.txt, packages.txt (the Debian libraries OpenCV loads), the facerest/ package (its model
cards included), examples/ when present, and a README.md whose front matter configures the Space (sdk gradio at the
version pinned in requirements.txt, Python 3.11 as tested here rather than the Hub's default, app_file app.py, models,
suggested_hardware).
Files under facerest/ that no longer exist locally are deleted from the Space. The models are passed to the app
through the Space variable FACEREST_MODELS (comma-separated repository ids, the first is the default).
`--hardware` also requests that hardware for the Space (paid flavours are billed by the Hub).

The token comes from $HF_TOKEN or `hf auth login`; $HF_ENDPOINT selects another Hub.
Each --model must be a pipeline on the Hub (its model_index.json) before anything is uploaded.
Exit status: 0 deployed, 1 the Hub refused or failed, 2 bad arguments, missing files or models.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from facerest.push import HubError, UsageError, reporting_hub_errors

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_VARIABLE = "FACEREST_MODELS"
DEFAULT_HARDWARE = "cpu-basic"
SPACE_PYTHON_VERSION = "3.11"  # the Python that README's setup and CI run; the Hub would pick its own default
# Debian packages the Space installs (its packages.txt): opencv-python, which facexlib needs (not -headless), loads
# libGL.so.1
SPACE_DEBIAN_PACKAGES = ("libgl1",)
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".*")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space_id", metavar="SPACE_ID", help="Space repository, owner/name")
    parser.add_argument(
        "--model", action="append", required=True, metavar="REPO_ID", help="model repository the app offers; repeatable"
    )
    parser.add_argument(
        "--hardware",
        default=None,
        help=f"request this hardware (e.g. cpu-upgrade, t4-small) and suggest it in the README (default: suggest {DEFAULT_HARDWARE}, request nothing)",
    )
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--title", default="facerest: blind face restoration", help="the Space's title")
    parser.add_argument(
        "--source", default=str(REPO_ROOT), help="folder holding app.py, requirements.txt and facerest/ (default: this checkout)"
    )
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--token", default=None, help="Hub token (default: $HF_TOKEN or the saved login)")
    return parser.parse_args(argv)


def gradio_version(requirements: Path) -> str:
    """The gradio version pinned (``gradio==X``) in a requirements file."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*gradio\s*==\s*([0-9][^\s;#]*)", line, flags=re.IGNORECASE)
        if match:
            return match.group(1)
    raise UsageError(f"{requirements} does not pin gradio (a line gradio==X.Y.Z); the Space's sdk_version needs it")


def space_readme(title: str, sdk_version: str, models: list[str], hardware: str, license: str = "apache-2.0") -> str:
    from huggingface_hub import SpaceCardData

    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=sdk_version,
        python_version=SPACE_PYTHON_VERSION,
        app_file="app.py",
        license=license,
        models=models,
        tags=["face-restoration", "gfpgan", "diffusion"],
        emoji="🙂",
        colorFrom="indigo",
        colorTo="pink",
        pinned=False,
        suggested_hardware=hardware,
        short_description="Restore faces with GFP-GAN, IDM diffusion or both",
    )
    model_list = "\n".join(f"- [{model}](https://huggingface.co/{model})" for model in models)
    return (
        f"---\n{data.to_yaml()}\n---\n\n# {title}\n\n"
        "Upload a photo: faces are detected, aligned, restored and pasted back, with facerest's "
        "`FaceRestorePipeline`.\n\n"
        f"Models (Space variable `{MODELS_VARIABLE}`, the first is the default):\n\n{model_list}\n"
    )


def check_source(source: Path) -> None:
    """Raise `UsageError` naming what is missing when ``source`` cannot make a Space."""
    if not (source / "app.py").is_file():
        raise UsageError(f"{source / 'app.py'} not found: write the Gradio app first (the Space's entry point)")
    missing = [name for name in ("app.py", "requirements.txt", "facerest") if not (source / name).exists()]
    if missing:
        raise UsageError(f"{source} lacks {', '.join(missing)}: the Space needs app.py, requirements.txt and facerest/")
    if not (source / "facerest" / "__init__.py").is_file():
        raise UsageError(f"{source / 'facerest'} is not the facerest package (no __init__.py)")


def stage_space(source: Path, staging: Path, readme: str) -> list[str]:
    """Copy what the Space needs into ``staging``; return the top-level names staged."""
    check_source(source)
    shutil.copyfile(source / "app.py", staging / "app.py")
    shutil.copyfile(source / "requirements.txt", staging / "requirements.txt")
    shutil.copytree(source / "facerest", staging / "facerest", ignore=IGNORED)
    (staging / "packages.txt").write_text("".join(f"{package}\n" for package in SPACE_DEBIAN_PACKAGES))
    names = ["app.py", "requirements.txt", "packages.txt", "facerest", "README.md"]
    if (source / "examples").is_dir():  # the demo's example photos
        shutil.copytree(source / "examples", staging / "examples", ignore=IGNORED)
        names.append("examples")
    (staging / "README.md").write_text(readme, encoding="utf-8")
    return names


def check_models(api, repo_ids: list[str]) -> None:
    """Raise `UsageError` naming the model repositories that the Space could not load: those without a saved
    pipeline's model_index.json on the Hub (missing, misspelt, private to another account, or not a pipeline)."""
    missing = [repo_id for repo_id in repo_ids if not api.file_exists(repo_id, "model_index.json")]
    if missing:
        raise UsageError(
            f"no facerest pipeline at {', '.join(missing)} on the Hub (no model_index.json: the repository is missing, "
            "misspelt, private to another account or not a saved pipeline): push it first (hub/push.py)"
        )


def deploy(args) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    for repo_id in [args.space_id, *args.model]:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as error:
            raise UsageError(f"{repo_id!r} is not a repository id: {error}") from None
    source = Path(args.source)
    check_source(source)
    sdk_version = gradio_version(source / "requirements.txt")
    readme = space_readme(args.title, sdk_version, args.model, args.hardware or DEFAULT_HARDWARE)
    api = HfApi(token=args.token)
    check_models(api, args.model)
    with tempfile.TemporaryDirectory(prefix="facerest-space-") as staging:
        stage_space(source, Path(staging), readme)
        url = api.create_repo(args.space_id, repo_type="space", space_sdk="gradio", private=args.private, exist_ok=True)
        space_id = url.repo_id
        commit = api.upload_folder(
            repo_id=space_id,
            repo_type="space",
            folder_path=staging,
            delete_patterns=["facerest/**", "hub/**", "examples/**"],
            commit_message=args.commit_message or f"Deploy facerest demo ({', '.join(args.model)})",
        )
    api.add_space_variable(
        space_id, MODELS_VARIABLE, ",".join(args.model), description="facerest models offered by app.py (first = default)"
    )
    if args.hardware:
        api.request_space_hardware(space_id, args.hardware)
    print(f"deployed {source} to {url} ({commit.commit_url}); {MODELS_VARIABLE}={','.join(args.model)}")
    return space_id


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        with reporting_hub_errors(f"deploying {args.space_id}"):
            deploy(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except HubError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
