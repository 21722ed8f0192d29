"""Model cards (facerest.model_card) and hub/: pushing pipelines, converting and pushing GFP-GAN, deploying the Space.

The Hub is `FakeHub` (tests/test_hub_server.py), a local HTTP server with the routes huggingface_hub uses; the
scripts run in subprocesses with $HF_ENDPOINT pointing at it and a fake $HF_TOKEN, as a user would run them.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from test_hub_server import FakeHub, FakeRepo, hub_env
from tiny_pipelines import tiny_pipeline

from facerest import model_card

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB = REPO_ROOT / "hub"
METRICS_MD = """| model | PSNR | SSIM |
|---|---|---|
| degraded input | 16.31 | 0.337 |
| restored | 16.71 | 0.390 |

- PSNR and SSIM on RGB in [0, 255].
"""


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"hub_{name}", HUB / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def front_matter(text: str) -> dict:
    assert text.startswith("---\n"), text[:80]
    return yaml.safe_load(text.split("---\n", 2)[1])


def run(args: list[str], hub: FakeHub, tmp_path: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=hub_env(hub, tmp_path), capture_output=True, text=True, timeout=timeout
    )
    return result


@pytest.fixture
def hub():
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture(scope="module")
def saved_pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    folders = {}
    for kind in ("gfpgan", "idm", "hybrid"):
        folders[kind] = root / kind
        tiny_pipeline(kind).save_pretrained(folders[kind])
    return folders


@pytest.fixture
def card_inputs(tmp_path):
    metrics = tmp_path / "metrics.md"
    metrics.write_text(METRICS_MD)
    grid = tmp_path / "grid.png"
    Image.new("RGB", (64, 32), (200, 120, 40)).save(grid)
    return metrics, grid


# -- facerest.model_card ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gfpgan", "idm", "hybrid"])
def test_model_card_describes_each_kind(saved_pipelines, card_inputs, kind):
    metrics, _ = card_inputs
    card = model_card.build_model_card(
        saved_pipelines[kind],
        "tester/tiny",
        metrics_file=metrics,
        sample_grid="sample_grid.png",
        training_command="python train/train_gfpgan.py --resolution 64",
        training_budget="10 steps x batch 2",
        hardware="1 CPU thread",
        datasets=["tester/faces"],
    )
    meta = front_matter(str(card))
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "image-to-image"
    assert meta["library_name"] == "facerest" and meta["datasets"] == ["tester/faces"]
    assert "face-restoration" in meta["tags"] and "base_model" not in meta
    assert ("gfpgan" in meta["tags"]) == (kind != "idm") and ("diffusion" in meta["tags"]) == (kind != "gfpgan")
    text = card.text
    assert {"gfpgan": "**GFP-GAN**", "idm": "**IDM**", "hybrid": "**hybrid**"}[kind] in text
    assert 'FaceRestorePipeline.from_pretrained("tester/tiny")' in text
    assert "| restored | 16.71 | 0.390 |" in text and "python train/train_gfpgan.py --resolution 64" in text
    assert "10 steps x batch 2" in text and "1 CPU thread" in text and "![sample grid](sample_grid.png)" in text
    assert "64 x 64 px" in text
    assert ("`restorer`" in text) == (kind != "idm") and ("`unet`" in text) == (kind != "gfpgan")


def test_a_hybrids_card_gives_the_size_it_restores_at_the_unets(tmp_path):
    from tiny_pipelines import FACE_SIZE, tiny_restorer, tiny_unet

    from facerest import FaceRestorePipeline, IDMScheduler

    hybrid = FaceRestorePipeline(restorer=tiny_restorer(), unet=tiny_unet(size=2 * FACE_SIZE), scheduler=IDMScheduler())
    hybrid.save_pretrained(tmp_path / "hybrid")
    assert model_card.read_pipeline(tmp_path / "hybrid").face_size == hybrid.face_size == 2 * FACE_SIZE


def test_read_pipeline_refuses_what_is_not_a_saved_pipeline(tmp_path, saved_pipelines):
    with pytest.raises(model_card.NotASavedPipeline, match="model_index.json not found"):
        model_card.read_pipeline(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(saved_pipelines["gfpgan"], broken)
    for weights in (broken / "restorer").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(model_card.NotASavedPipeline, match="missing weights file .*model.safetensors"):
        model_card.read_pipeline(broken)


# -- push.py -----------------------------------------------------------------------------------------------------


def test_push_refuses_a_folder_that_is_not_a_pipeline(tmp_path, capsys):
    push = load_script("push")
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    assert push.main([str(tmp_path), "tester/tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "model_index.json not found" in err[0]
    assert push.main([str(tmp_path / "missing"), "tester/tiny"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_push_refuses_a_metrics_file_without_a_table_before_anything_is_written(saved_pipelines, tmp_path, capsys):
    push = load_script("push")
    (tmp_path / "notes.md").write_text("no table here\n")
    for extra in ([], ["--dry-run", str(tmp_path / "dry")]):
        assert push.main([str(saved_pipelines["gfpgan"]), "tester/tiny", "--metrics", str(tmp_path / "notes.md"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: --metrics {tmp_path / 'notes.md'}: {tmp_path / 'notes.md'} holds no Markdown table"]
    assert not (tmp_path / "dry").exists()


def test_push_refuses_a_bad_repo_id(saved_pipelines, capsys):
    push = load_script("push")
    assert push.main([str(saved_pipelines["gfpgan"]), "not a repo id!"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: REPO_ID 'not a repo id!'")


def test_push_to_a_hub_that_cannot_be_reached_is_one_error_line(unreachable_hub, saved_pipelines, capsys):
    push = load_script("push")
    assert push.main([str(saved_pipelines["gfpgan"]), "tester/tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: pushing to tester/tiny failed: ") and "refused" in err[0].lower()


def test_push_then_load_by_repo_id(hub, tmp_path, saved_pipelines, card_inputs):
    metrics, grid = card_inputs
    command = tmp_path / "command.sh"
    command.write_text("python train/train_gfpgan.py --resolution 64 --max_train_steps 10\n")
    folder = saved_pipelines["hybrid"]
    args = ["hub/push.py", str(folder), "tester/tiny-hybrid", "--metrics", str(metrics), "--sample-grid", str(grid)]
    args += ["--training-command-file", str(command), "--training-budget", "10 steps", "--commit-message", "first"]
    result = run(args, hub, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pushed" in result.stdout and hub.unhandled == []

    repo = hub.repo("tester/tiny-hybrid")
    files = repo.files()
    local = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert local <= set(files) and {"README.md", "sample_grid.png", ".gitattributes"} <= set(files)
    assert files["sample_grid.png"] == grid.read_bytes()
    assert files["restorer/model.safetensors"] == (folder / "restorer" / "model.safetensors").read_bytes()
    assert repo.commits[-1][2] == "first"
    readme = files["README.md"].decode()
    meta = front_matter(readme)
    assert meta["pipeline_tag"] == "image-to-image" and "diffusion" in meta["tags"] and "gfpgan" in meta["tags"]
    assert "| degraded input | 16.31 | 0.337 |" in readme and "--max_train_steps 10" in readme

    # Load it back by its repository id, in a fresh process with an empty cache.
    local = tiny_pipeline("hybrid")
    with torch.no_grad():
        expected = {name: float(sum(p.double().sum() for p in getattr(local, name).parameters())) for name in ("restorer", "unet")}
    script = (
        "from facerest import FaceRestorePipeline\n"
        "p = FaceRestorePipeline.from_pretrained('tester/tiny-hybrid')\n"
        "print(p.kind, p.face_size)\n"
        "import torch; torch.set_grad_enabled(False)\n"
        "for name in ('restorer', 'unet'):\n"
        "    print(repr(float(sum(q.double().sum() for q in getattr(p, name).parameters()))))\n"
    )
    result = run(["-c", script], hub, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()[-3:]
    assert lines[0] == "hybrid 64"
    assert [float(value) for value in lines[1:]] == pytest.approx([expected["restorer"], expected["unet"]], rel=1e-12)
    assert hub.unhandled == []

    # Pushing again with nothing changed but the card makes one more commit (unchanged weights are skipped).
    result = run(["hub/push.py", str(folder), "tester/tiny-hybrid", "--training-budget", "20 steps"], hub, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(repo.commits) == 3 and "20 steps" in repo.files()["README.md"].decode()
    assert "sample_grid.png" not in repo.files()  # not given this time: the card shows none, and the old one went

    # Another kind of model into the same repository, named without its owner: the hybrid's restorer goes with the
    # same commit (a download would fetch it for nothing), and the card names the repository as the Hub does.
    result = run(["hub/push.py", str(saved_pipelines["idm"]), "tiny-hybrid"], hub, tmp_path)
    assert result.returncode == 0, result.stderr
    files = repo.files()
    assert not any(name.startswith("restorer/") for name in files) and "unet/config.json" in files
    assert 'from_pretrained("tester/tiny-hybrid")' in files["README.md"].decode()


# -- convert_gfpgan.py --push-to-hub -----------------------------------------------------------------------------


def test_convert_and_push_gfpgan(hub, tmp_path, monkeypatch, capsys):
    """In this process (the converter's model is narrowed as in the model tests), with huggingface_hub's
    endpoint, offline flag and token pointed at the fake hub."""
    import functools

    import huggingface_hub.constants
    from test_gfpgan_model import TINY, tiny_model, write_official_checkpoint

    from facerest import GFPGANConfig

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent_harnesses.json"))
    monkeypatch.setenv("HF_TOKEN", hub.token)
    convert = load_script("convert_gfpgan")
    widths = {key: TINY[key] for key in ("num_style_feat", "narrow", "num_mlp")}
    monkeypatch.setattr(convert, "GFPGANConfig", functools.partial(GFPGANConfig, **widths))
    checkpoint = write_official_checkpoint(tmp_path / "GFPGAN64.pth", tiny_model(out_size=64, channel_multiplier=1).state_dict())
    output = tmp_path / "converted"
    args = ["--checkpoint", str(checkpoint), "--output", str(output), "--out-size", "64", "--channel-multiplier", "1"]
    assert convert.main([*args, "--push-to-hub", "tester/gfpgan-tiny"]) == 0, capsys.readouterr().err
    assert "pushed to" in capsys.readouterr().out and hub.unhandled == []
    assert (output / "model_index.json").is_file() and (output / "restorer" / "model.safetensors").is_file()
    files = hub.repo("tester/gfpgan-tiny").files()
    assert {"model_index.json", "restorer/config.json", "restorer/model.safetensors", "README.md"} <= set(files)
    assert files["restorer/model.safetensors"] == (output / "restorer" / "model.safetensors").read_bytes()
    readme = files["README.md"].decode()
    assert front_matter(readme)["base_model"] == "TencentARC/GFPGAN"
    assert "GFPGAN64.pth" in readme and "**GFP-GAN**" in readme

    # A bad token: the Hub refuses, the script says so in one line and exits 1.
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    args[args.index(str(output))] = str(tmp_path / "converted2")
    assert convert.main([*args, "--push-to-hub", "tester/gfpgan-tiny2"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: pushing to tester/gfpgan-tiny2 failed")
    assert "401" in errors[0]


# -- deploy_space.py ---------------------------------------------------------------------------------------------


@pytest.fixture
def space_source(tmp_path):
    """A copy of what the Space needs, with a stand-in app.py (the real one may not exist yet)."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "app.py").write_text("import gradio as gr\nimport facerest\n")
    shutil.copyfile(REPO_ROOT / "requirements.txt", source / "requirements.txt")
    shutil.copytree(REPO_ROOT / "facerest", source / "facerest", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "facerest" / "stale_module.py").write_text("# removed before the second deploy\n")
    (source / "examples").mkdir()
    Image.new("RGB", (8, 8)).save(source / "examples" / "face.png")
    return source


def put_pipeline_repos(hub: FakeHub, *repo_ids: str) -> None:
    """Model repositories holding what marks a saved pipeline (model_index.json), as hub/push.py leaves them."""
    for repo_id in repo_ids:
        repo = FakeRepo("model", repo_id, private=False, sdk=None, hardware=None)
        repo.commit({**repo.files(), "model_index.json": b'{"_class_name": "FaceRestorePipeline"}'}, "pipeline")
        hub.repos[("model", repo_id)] = repo


def test_deploy_space_uploads_the_app_and_sets_the_model(hub, tmp_path, space_source):
    deploy = load_script("deploy_space")
    put_pipeline_repos(hub, "tester/gfpgan64", "tester/idm64", "tester/other")
    gradio = deploy.gradio_version(REPO_ROOT / "requirements.txt")
    args = ["hub/deploy_space.py", "tester/demo", "--model", "tester/gfpgan64", "--model", "tester/idm64"]
    result = run([*args, "--source", str(space_source), "--private"], hub, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.unhandled == []
    space = hub.repo("tester/demo", "space")
    assert space.sdk == "gradio" and space.private and space.hardware is None
    files = space.files()
    assert files["app.py"] == (space_source / "app.py").read_bytes()
    assert files["requirements.txt"] == (REPO_ROOT / "requirements.txt").read_bytes()
    assert files["packages.txt"] == b"libgl1\n"  # opencv-python's libGL.so.1
    assert {"facerest/__init__.py", "facerest/pipeline.py", "facerest/model_card.py", "facerest/stale_module.py"} <= set(files)
    assert not any("__pycache__" in name for name in files)
    assert files["examples/face.png"] == (space_source / "examples" / "face.png").read_bytes()
    meta = front_matter(files["README.md"].decode())
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio and meta["app_file"] == "app.py"
    assert meta["python_version"] == "3.11"  # as README's setup and CI, not the Hub's default
    assert meta["models"] == ["tester/gfpgan64", "tester/idm64"] and meta["suggested_hardware"] == "cpu-basic"
    assert meta["title"]
    assert space.variables["FACEREST_MODELS"]["value"] == "tester/gfpgan64,tester/idm64"

    # Update: a removed module disappears from the Space, the model variable and the hardware change.
    (space_source / "facerest" / "stale_module.py").unlink()
    result = run([*args[:3], "tester/other", "--source", str(space_source), "--hardware", "t4-small"], hub, tmp_path)
    assert result.returncode == 0, result.stderr
    files = space.files()
    assert "facerest/stale_module.py" not in files and "facerest/pipeline.py" in files
    assert front_matter(files["README.md"].decode())["suggested_hardware"] == "t4-small"
    assert space.variables["FACEREST_MODELS"]["value"] == "tester/other"
    assert space.hardware == "t4-small" and hub.unhandled == []


def test_deploy_space_refuses_a_model_that_is_not_on_the_hub(hub, tmp_path, space_source):
    put_pipeline_repos(hub, "tester/idm64")
    hub.repos[("model", "tester/weights-only")] = FakeRepo("model", "tester/weights-only", False, None, None)
    args = ["hub/deploy_space.py", "tester/demo", "--model", "tester/idm64", "--model", "tester/idm46"]
    result = run([*args, "--model", "tester/weights-only", "--source", str(space_source)], hub, tmp_path)
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no facerest pipeline at tester/idm46, tester/weights-only on the Hub")
    assert ("space", "tester/demo") not in hub.repos  # nothing was created or uploaded


def test_deploy_space_refuses_without_app_py(tmp_path, space_source, capsys):
    deploy = load_script("deploy_space")
    (space_source / "app.py").unlink()
    assert deploy.main(["tester/demo", "--model", "tester/m", "--source", str(space_source)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "app.py not found" in err[0]


def test_deploy_space_to_a_hub_that_cannot_be_reached_is_one_error_line(unreachable_hub, space_source, capsys):
    deploy = load_script("deploy_space")
    assert deploy.main(["tester/demo", "--model", "tester/m", "--source", str(space_source)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: deploying tester/demo failed: ") and "refused" in err[0].lower()


def test_push_dry_run_writes_the_repository_files(tmp_path, saved_pipelines, card_inputs, capsys):
    push = load_script("push")
    metrics, grid = card_inputs
    folder, out = saved_pipelines["gfpgan"], tmp_path / "repo"
    assert push.main([str(folder), "tester/x", "--metrics", str(tmp_path / "missing.md")]) == 2
    assert "--metrics" in capsys.readouterr().err
    args = [str(folder), "tester/x", "--dry-run", str(out), "--metrics", str(metrics), "--sample-grid", str(grid),
            "--limitations", "Leaves JPEG blocks as they are."]  # fmt: skip
    assert push.main(args) == 0
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert names == {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} | {"README.md", "sample_grid.png"}
    assert front_matter((out / "README.md").read_text())["tags"][:3] == ["face-restoration", "image-restoration", "facerest"]
    limitations = (out / "README.md").read_text().split("## Limitations")[1]
    assert "plausible detail" in limitations and limitations.rstrip().endswith("Leaves JPEG blocks as they are.")
    assert push.main(args) == 2  # the folder is no longer empty
