"""train/train_gfpgan.py: its recipe and feature nets (library), its arguments, a short run (all losses, logging,
checkpoints, final save, push to a fake Hub) and a time-limited one with device degradation, each as a user runs it,
in a subprocess; marked slow, two processes with the multi-GPU launcher on CPU and a run killed after a checkpoint
then resumed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from conftest import free_port
from test_hub_server import FakeHub, hub_env

from facerest.errors import FacerestError
from facerest.models.gfpgan import GFPGANConfig, GFPGANModel
from facerest.training.checkpoints import weights_digest
from facerest.training.losses import GFPGAN_RECIPE
from facerest.training.perceptual import load_feature_nets

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train" / "train_gfpgan.py"

# A tiny configuration: 64 px, 1/16 of the channels, random VGG19 and ArcFace, R1 every other step.
TINY = [
    "--resolution", "64", "--num_style_feat", "32", "--channel_multiplier", "1", "--narrow", "0.0625",
    "--discriminator_narrow", "0.0625", "--random_init_feature_nets", "--train_batch_size", "2",
    "--r1_every", "2", "--num_validation_images", "2",
]  # fmt: skip
TINY_CONFIG = GFPGANConfig(out_size=64, num_style_feat=32, channel_multiplier=1, narrow=0.0625)


def subprocess_env() -> dict:
    return os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true", "PYTHONUNBUFFERED": "1"}


def run_logged(command: list[str], log: Path, timeout: float, env: dict | None = None) -> None:
    with open(log, "w") as handle:
        result = subprocess.run(
            command, cwd=REPO_ROOT, env=env or subprocess_env(), stdout=handle, stderr=subprocess.STDOUT, timeout=timeout
        )
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{log.read_text()[-4000:]}"


def read_scalars(logging_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = logging_dir.glob("train_gfpgan/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def assert_final_model_is_the_checkpoints_ema(out: Path, step: int) -> GFPGANModel:
    """The saved restorer holds the EMA weights of the last checkpoint (``restorer_ema/``, a GFPGANModel folder)."""
    restorer = GFPGANModel.from_pretrained(out / "restorer")
    ema = GFPGANModel.from_pretrained(out / f"checkpoint-{step}" / "restorer_ema")
    for (name, parameter), (_, expected) in zip(restorer.named_parameters(), ema.named_parameters()):
        torch.testing.assert_close(parameter, expected, rtol=0, atol=0, msg=f"EMA weight {name} differs")
    assert json.loads((out / f"checkpoint-{step}" / "restorer_ema" / "ema_state.json").read_text())["optimization_step"] == step
    return restorer


# ----------------------------------------------------------------------------- recipe, arguments and feature nets


def test_defaults_are_the_published_recipe():
    recipe = GFPGAN_RECIPE
    assert (recipe["l1_weight"], recipe["pyramid_loss_weight"], recipe["perceptual_weight"], recipe["style_weight"]) == (0.1, 1.0, 1.0, 50.0)
    assert (recipe["gan_weight"], recipe["r1_weight"], recipe["r1_every"]) == (0.1, 10.0, 16)
    assert (recipe["component_gan_weight"], recipe["component_style_weight"], recipe["identity_weight"]) == (1.0, 200.0, 10.0)
    assert recipe["learning_rate"] == recipe["component_learning_rate"] == 2e-3
    assert recipe["ema_decay"] == pytest.approx(0.99778, abs=1e-5)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--train_batch_size", "6"], "multiple of 4"),
        (["--r1_every", "0"], "--r1_every must be at least 1"),
        (["--max_train_minutes", "0"], "--max_train_minutes must be positive"),
    ],
)
def test_bad_arguments_are_refused(extra, message):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--train_data_dir", "x", "--output_dir", "y", *extra],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and message in done.stderr


def test_missing_feature_weights_stop_with_the_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEREST_WEIGHTS_DIR", "")
    monkeypatch.setenv("FACEREST_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FacerestError, match="vgg19-dcbb9e9d.pth"):
        load_feature_nets(1.0, 50.0, 10.0)
    with pytest.raises(FacerestError, match="arcface_resnet18.pth"):
        load_feature_nets(0.0, 0.0, 10.0)
    # A loss turned off needs no weights; random_init gives random networks.
    assert load_feature_nets(0.0, 0.0, 0.0) == (None, None)
    perceptual, arcface = load_feature_nets(1.0, 50.0, 10.0, random_init=True)
    assert perceptual.style_weight == 50.0 and not any(p.requires_grad for p in arcface.parameters())


# ----------------------------------------------------------------------------- short runs


@pytest.fixture
def hub():
    server = FakeHub()
    yield server
    server.close()


def test_short_run_logs_every_loss_and_saves_a_loadable_model(ffhq_train_dir, ffhq_test_dir, tmp_path, hub):
    from facerest.data import make_testset

    hq = tmp_path / "test_hq"
    hq.mkdir()
    for path in sorted(ffhq_test_dir.iterdir())[:3]:
        shutil.copy(path, hq / path.name)
    make_testset(hq, tmp_path / "testset", resolution=64, seed=0)

    out = tmp_path / "run"
    command = [
        sys.executable, str(SCRIPT), "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", *TINY,
        "--max_train_steps", "2", "--checkpointing_steps", "1", "--checkpoints_total_limit", "1", "--validation_steps",
        "1", "--testset", str(tmp_path / "testset"), "--output_dir", str(out), "--push_to_hub", "--hub_model_id",
        "tester/tiny-gfpgan",
    ]  # fmt: skip
    run_logged(command, tmp_path / "run.log", timeout=600, env=hub_env(hub, tmp_path) | {"ACCELERATE_USE_CPU": "true"})

    # Every loss of the four groups, the discriminators' losses and the test-set scores reach TensorBoard.
    scalars = read_scalars(out / "logs")
    expected = [
        "g_l1", "g_pyramid", "g_perceptual", "g_style", "g_gan", "g_gan_left_eye", "g_gan_right_eye", "g_gan_mouth",
        "g_component_style", "g_identity", "g_total", "d_loss", "d_r1", "d_left_eye", "d_right_eye", "d_mouth",
        "testset/psnr", "testset/input_psnr",
    ]  # fmt: skip
    assert not set(expected) - set(scalars), f"missing scalars: {set(expected) - set(scalars)}"
    assert len(scalars["g_total"]) == 2 and all(torch.isfinite(torch.tensor(v)).all() for v in scalars.values())
    assert len(scalars["d_r1"]) == 1  # lazy R1: steps 0, 2, 4, ... (the run's steps are 0 and 1)

    # Checkpoints: pruned to the limit, never a half-written one left behind.
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint-2"]

    # The final model is the EMA generator, loadable with GFPGANModel and AutoModel.
    restorer = assert_final_model_is_the_checkpoints_ema(out, 2)
    assert restorer.config.out_size == 64
    from transformers import AutoModel

    assert isinstance(AutoModel.from_pretrained(out / "restorer"), GFPGANModel)
    from facerest import FaceRestorePipeline

    assert FaceRestorePipeline.from_pretrained(out).kind == "gfpgan"  # the output folder is a saved pipeline
    assert restorer(torch.zeros(1, 3, 64, 64)).image.shape == (1, 3, 64, 64)

    # Validation grids: 2 faces x (LQ | restored | GT) at 64 px with 2 px padding.
    for name in ("step_000001.png", "step_000002.png", "final.png"):
        assert Image.open(out / "samples" / name).size == (3 * 64 + 4 * 2, 2 * 64 + 3 * 2)
    assert json.loads((out / "testset" / "metrics.json").read_text())["num_images"] == 3

    # Pushed as a pipeline that loads, with its card and the final grid.
    files = hub.repo("tester/tiny-gfpgan").files()
    assert {"model_index.json", "restorer/config.json", "restorer/model.safetensors", "README.md", "sample_grid.png"} <= set(files)
    assert files["restorer/model.safetensors"] == (out / "restorer" / "model.safetensors").read_bytes()
    assert files["sample_grid.png"] == (out / "samples" / "final.png").read_bytes()
    readme = files["README.md"].decode()
    assert "**GFP-GAN**" in readme and "train_gfpgan.py" in readme and "2 steps of batch 2" in readme


def test_device_degradation_and_time_limit(ffhq_train_dir, tmp_path):
    """--degradation_device accelerator: batches degraded after the loader (on the CPU here), the facial-component
    boxes from the batch's draws; --max_train_minutes stops after the first step with a checkpoint and the final save."""
    out = tmp_path / "run"
    command = [
        sys.executable, str(SCRIPT), "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", *TINY,
        "--max_train_steps", "50", "--max_train_minutes", "0.0001", "--degradation_device", "accelerator",
        "--checkpointing_steps", "20", "--validation_steps", "20", "--output_dir", str(out), "--cpu",
    ]  # fmt: skip
    run_logged(command, tmp_path / "run.log", timeout=600)
    assert sorted(path.name for path in out.glob("checkpoint-*")) == ["checkpoint-1"]
    scalars = read_scalars(out / "logs")
    assert len(scalars["g_total"]) == 1 and "g_gan_left_eye" in scalars
    assert_final_model_is_the_checkpoints_ema(out, 1)


def test_a_failed_push_keeps_the_saved_model_and_says_how_to_push_it(ffhq_train_dir, tmp_path):
    """The Hub cannot be reached at the end of a run: the model is saved, and one error line says how to push it."""
    out = tmp_path / "run"
    command = [
        sys.executable, str(SCRIPT), "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", *TINY,
        "--max_train_steps", "1", "--validation_steps", "10", "--output_dir", str(out), "--push_to_hub",
        "--hub_model_id", "tester/tiny-gfpgan",
    ]  # fmt: skip
    nothing_listens = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_TOKEN": "hf_unused"}
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=subprocess_env() | nothing_listens | {"HF_HOME": str(tmp_path / "hf_home")},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-4000:]
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: pushing to tester/tiny-gfpgan failed: ") and "Traceback" not in result.stderr
    assert error.endswith(f"push the saved model with: python hub/push.py {out} tester/tiny-gfpgan")
    assert (out / "restorer" / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- multi-process and resume (slow)


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_replicas(ffhq_train_dir, tmp_path):
    out = tmp_path / "ddp"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), str(SCRIPT),
    ]  # fmt: skip
    training = [
        "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "8", *TINY, "--max_train_steps", "3",
        "--checkpointing_steps", "100", "--validation_steps", "100", "--write_rank_checksums", "--output_dir", str(out),
    ]  # fmt: skip
    run_logged(launch + training, tmp_path / "ddp.log", timeout=400)

    records = [json.loads((out / "rank_checksums" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["num_processes"] for r in records] == [2, 2], "the launcher must start one job of two processes"
    for network in ("generator", "discriminator", "component_discriminators"):
        assert records[0][network] == records[1][network], f"the {network} differs between the two processes"
    # The replicas did train: the generator is no longer its seeded initialisation.
    from accelerate.utils import set_seed

    set_seed(0)  # the script's seeding before it builds the generator
    assert records[0]["generator"] != weights_digest(GFPGANModel(TINY_CONFIG))
    assert "Num processes: 2" in (tmp_path / "ddp.log").read_text()


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(ffhq_train_dir, tmp_path):
    # 10 faces in batches of 2 with 2 accumulation steps: 3 updates per epoch, checkpoints inside epochs.
    common = [
        sys.executable, str(SCRIPT), "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "10", *TINY,
        "--gradient_accumulation_steps", "2", "--max_train_steps", "8", "--checkpointing_steps", "2",
        "--validation_steps", "100", "--perceptual_weight", "0", "--style_weight", "0", "--identity_weight", "0",
        "--write_rank_checksums",
    ]  # fmt: skip
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    with open(tmp_path / "whole.log", "w") as whole_log, open(tmp_path / "killed.log", "w") as killed_log:
        whole_run = subprocess.Popen([*common, "--output_dir", str(whole)], cwd=REPO_ROOT, env=subprocess_env(), stdout=whole_log, stderr=subprocess.STDOUT)
        killed_run = subprocess.Popen([*common, "--output_dir", str(interrupted)], cwd=REPO_ROOT, env=subprocess_env(), stdout=killed_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 400
        while killed_run.poll() is None and time.monotonic() < deadline:
            if (interrupted / "checkpoint-2").is_dir():
                killed_run.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        killed_run.wait(timeout=60)
        assert whole_run.wait(timeout=400) == 0, (tmp_path / "whole.log").read_text()[-4000:]
    assert killed_run.returncode == -signal.SIGKILL, f"the run was not killed after its first checkpoint:\n{(tmp_path / 'killed.log').read_text()[-3000:]}"
    assert not (interrupted / "restorer").exists()

    run_logged([*common, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"], tmp_path / "resumed.log", timeout=400)
    assert "Resuming from" in (tmp_path / "resumed.log").read_text()

    whole_weights = load_file(whole / "restorer" / "model.safetensors")
    resumed_weights = load_file(interrupted / "restorer" / "model.safetensors")
    assert whole_weights.keys() == resumed_weights.keys()
    for name in whole_weights:
        torch.testing.assert_close(resumed_weights[name], whole_weights[name], rtol=0, atol=0, msg=f"EMA weight {name} differs")
    whole_record = json.loads((whole / "rank_checksums" / "rank0.json").read_text())
    resumed_record = json.loads((interrupted / "rank_checksums" / "rank0.json").read_text())
    assert whole_record == resumed_record  # the trained G, D and component Ds, not only the EMA


def test_a_pretrained_frozen_decoder_is_loaded_and_kept(ffhq_train_dir, tmp_path):
    """--pretrained_decoder loads a StyleGAN2 (here a safetensors state dict) into the decoder; --freeze_decoder keeps
    it through training, so the saved restorer holds it unchanged."""
    torch.manual_seed(1)
    decoder = {key: torch.randn_like(value) for key, value in GFPGANModel(TINY_CONFIG).stylegan_decoder.state_dict().items()}
    save_file(decoder, tmp_path / "stylegan2.safetensors")
    out = tmp_path / "run"
    command = [
        sys.executable, str(SCRIPT), "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", *TINY,
        "--max_train_steps", "1", "--validation_steps", "10", "--output_dir", str(out),
        "--pretrained_decoder", str(tmp_path / "stylegan2.safetensors"), "--freeze_decoder",
    ]  # fmt: skip
    run_logged(command, tmp_path / "train.log", timeout=600)
    saved = load_file(out / "restorer" / "model.safetensors")
    assert all(torch.equal(saved[f"stylegan_decoder.{key}"].float(), value) for key, value in decoder.items())
