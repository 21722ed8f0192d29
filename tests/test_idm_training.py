"""train/train_idm.py end to end with a tiny UNet at 32 px: extrinsic rounds, kills and resumes, two processes."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.utils import set_seed
from conftest import REPO_ROOT, free_port
from diffusers import UNet2DModel
from safetensors.torch import load_file

from facerest import FaceRestorePipeline
from facerest.data import make_testset
from facerest.images import image_to_tensor, list_images, load_image
from facerest.models.idm import IDMScheduler, idm_sample, make_idm_unet

pytestmark = pytest.mark.slow

SCRIPT = REPO_ROOT / "train" / "train_idm.py"
TINY_UNET = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8, "attention_head_dim": 8}
ROUND_STEPS = 6  # --max_train_steps: steps per round; two rounds (--extrinsic_rounds 1) end at step 12


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true"}


def training_args(train_dir: Path, output_dir: Path, testset: Path, *extra: str) -> list[str]:
    return [
        "--train_data_dir", str(train_dir), "--max_train_samples", "8", "--resolution", "32",
        "--unet_overrides", json.dumps(TINY_UNET), "--output_dir", str(output_dir),
        "--train_batch_size", "2", "--gradient_accumulation_steps", "2", "--max_train_steps", str(ROUND_STEPS),
        "--learning_rate", "1e-3", "--lr_warmup_steps", "2", "--checkpointing_steps", "2", "--checkpoints_total_limit", "3",
        "--validation_steps", "4", "--num_validation_images", "2",
        # cleaning: 6 of 8 targets, one by one with 30 steps, slow enough to be killed half-way
        "--extrinsic_rounds", "1", "--replace_fraction", "0.75", "--sampling_steps", "30", "--eval_batch_size", "1",
        "--testset", str(testset), "--eval_sampling_steps", "5",
        *extra,
    ]  # fmt: skip


def run_training(args: list[str]) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def kill_when(args: list[str], ready, what: str) -> None:
    """Start a training run, SIGKILL it as soon as ``ready()`` holds, and check it was really cut short."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not ready() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    stderr = process.communicate()[1]
    assert alive, f"the run ended before {what}: {stderr[-3000:]}"


def fine_tune(train_dir: Path, pretrained: Path, output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Fine-tune `pretrained` for two steps at learning rate 0 (the weights cannot move), checkpointing at the end."""
    args = [
        "--train_data_dir", str(train_dir), "--max_train_samples", "4", "--resolution", "32",
        "--pretrained_model_name_or_path", str(pretrained), "--output_dir", str(output_dir),
        "--train_batch_size", "2", "--max_train_steps", "2", "--learning_rate", "0", "--checkpointing_steps", "2",
        "--validation_steps", "100", *extra,
    ]  # fmt: skip
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, env=environment(), capture_output=True, text=True)


def fine_tune_first_loss(train_dir: Path, pretrained: Path, output_dir: Path, *extra: str) -> float:
    """`fine_tune`'s first step's loss."""
    done = fine_tune(train_dir, pretrained, output_dir, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return float(re.search(r"loss=([\d.]+)", done.stderr).group(1))


def unet_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "diffusion_pytorch_model.safetensors")


def assert_same_weights(folder_a: Path, folder_b: Path) -> None:
    a, b = unet_weights(folder_a), unet_weights(folder_b)
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def assert_same_cleaned_pool(run_a: Path, run_b: Path) -> None:
    manifest_a = json.loads((run_a / "round-1" / "manifest.json").read_text())
    manifest_b = json.loads((run_b / "round-1" / "manifest.json").read_text())
    assert [r["index"] for r in manifest_a["replaced"]] == [r["index"] for r in manifest_b["replaced"]]
    for record in manifest_a["replaced"]:
        np.testing.assert_array_equal(load_image(run_a / "round-1" / record["cleaned"]), load_image(run_b / "round-1" / record["cleaned"]))


@pytest.fixture(scope="module")
def testset(ffhq_test_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("idm_testset")
    source = root / "hq"
    source.mkdir()
    for path in list_images(ffhq_test_dir)[:2]:
        (source / path.name).symlink_to(path)
    make_testset(source, root / "set", resolution=32, seed=0)
    return root / "set"


@pytest.fixture(scope="module")
def reference_run(ffhq_train_dir, testset, tmp_path_factory) -> Path:
    """An uninterrupted run: 2 rounds of 6 steps, one cleaning pass in between."""
    output_dir = tmp_path_factory.mktemp("idm_reference")
    run_training(training_args(ffhq_train_dir, output_dir, testset))
    return output_dir


def test_extrinsic_round_writes_cleaned_pool_and_manifest(reference_run, ffhq_train_dir):
    manifest = json.loads((reference_run / "round-1" / "manifest.json").read_text())
    originals = [str(path) for path in list_images(ffhq_train_dir)[:8]]
    assert manifest["round"] == 1 and manifest["model_step"] == ROUND_STEPS  # cleaned by the model at the round's end
    assert manifest["pool_size"] == 8 and manifest["num_replaced"] == 6 and manifest["replaced_fraction"] == 0.75
    assert manifest["sampling_steps"] == 30 and manifest["seed"] == 0
    replaced = [record["index"] for record in manifest["replaced"]]
    assert len(set(replaced)) == 6
    for index, entry in enumerate(manifest["pool"]):
        if index in replaced:
            record = manifest["replaced"][replaced.index(index)]
            assert record["source"] == originals[index] and record["model_step"] == ROUND_STEPS
            assert Path(entry) == reference_run / "round-1" / record["cleaned"]
            assert load_image(entry).shape == (32, 32, 3)
        else:
            assert entry == originals[index]
    assert not list((reference_run / "round-1").glob("records-*"))

    summary = json.loads((reference_run / "training_summary.json").read_text())
    assert summary["global_step"] == 2 * ROUND_STEPS and summary["num_processes"] == 1
    assert set(summary["evaluations"]) == {str(ROUND_STEPS), str(2 * ROUND_STEPS)}  # the test set after each round
    scores = summary["evaluations"][str(2 * ROUND_STEPS)]["5"]
    assert scores["num_images"] == 2 and np.isfinite(scores["psnr"]) and np.isfinite(scores["input_psnr"])
    assert len(list((reference_run / "eval" / f"step-{2 * ROUND_STEPS}" / "steps-5").glob("*.png"))) == 2
    assert sorted(path.name for path in (reference_run / "validation").iterdir()) == ["step-000004.png", "step-000008.png", "step-000012.png"]
    assert [path.name for path in sorted(reference_run.glob("checkpoint-*"))] == ["checkpoint-10", "checkpoint-12", "checkpoint-8"]
    assert list((reference_run / "logs").rglob("events.out.tfevents.*"))


def test_final_save_loads_and_samples(reference_run, testset):
    unet = UNet2DModel.from_pretrained(reference_run / "unet")
    scheduler = IDMScheduler.from_pretrained(reference_run / "scheduler")
    assert unet.config.in_channels == 6 and unet.config.out_channels == 3 and unet.config.sample_size == 32
    assert scheduler.config.prediction_type == "epsilon"
    assert FaceRestorePipeline.from_pretrained(reference_run).kind == "idm"  # the output folder is a saved pipeline
    # the final save holds the EMA weights of the last checkpoint
    assert_same_weights(reference_run / "unet", reference_run / f"checkpoint-{2 * ROUND_STEPS}" / "unet_ema")

    lq = torch.stack([image_to_tensor(load_image(path)) for path in list_images(testset / "lq")])
    first = idm_sample(unet, scheduler, lq, num_inference_steps=5, generator=torch.Generator().manual_seed(1), progress=False)
    again = idm_sample(unet, scheduler, lq, num_inference_steps=5, generator=torch.Generator().manual_seed(1), progress=False)
    assert first.shape == lq.shape and torch.isfinite(first).all() and first.abs().max() <= 1
    assert torch.equal(first, again)


def test_killed_training_resumes_to_the_same_weights(reference_run, ffhq_train_dir, testset, tmp_path):
    args = training_args(ffhq_train_dir, tmp_path, testset)
    kill_when(args, lambda: (tmp_path / "checkpoint-2").is_dir(), "its first checkpoint")
    assert not (tmp_path / "unet").exists() and not (tmp_path / "round-1").exists()

    run_training([*args, "--resume_from_checkpoint", "latest"])
    assert_same_cleaned_pool(reference_run, tmp_path)
    assert_same_weights(reference_run / "unet", tmp_path / "unet")
    assert_same_weights(reference_run / "checkpoint-12" / "unet", tmp_path / "checkpoint-12" / "unet")


def test_a_run_resumed_with_another_models_options_is_refused_in_one_line(reference_run, ffhq_train_dir, testset, tmp_path):
    output_dir = tmp_path / "copy"
    shutil.copytree(reference_run, output_dir)
    before = {path: path.stat().st_mtime_ns for path in output_dir.rglob("*") if path.is_file()}
    args = training_args(ffhq_train_dir, output_dir, testset, "--resume_from_checkpoint", "latest", "--prediction_type", "sample")
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, env=environment(), capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: {output_dir / "checkpoint-12"} was trained with --prediction_type "epsilon", and this run has '
        '--prediction_type "sample": resume with the checkpoint\'s options, or train into another --output_dir'
    )
    assert {path: path.stat().st_mtime_ns for path in output_dir.rglob("*") if path.is_file()} == before


def test_a_fine_tune_resumes_without_naming_its_pretrained_models_schedule(reference_run, ffhq_train_dir, tmp_path):
    """A fine-tune takes the pretrained model's schedule (here a residual one) without its options on the command line,
    as train_default.sh's stages do; run again with --resume_from_checkpoint latest it resumes (the checkpoint had
    recorded the schedule filled in from the model, and the same command was refused as another model's)."""
    pretrained = tmp_path / "residual"
    shutil.copytree(reference_run, pretrained, ignore=shutil.ignore_patterns("checkpoint-*", "round-*", "logs", "eval"))
    config_path = pretrained / "scheduler" / "scheduler_config.json"
    config_path.write_text(json.dumps(json.loads(config_path.read_text()) | {"prediction_type": "residual", "sigma_data": 0.5}))
    assert fine_tune(ffhq_train_dir, pretrained, tmp_path / "fine_tune").returncode == 0
    resumed = fine_tune(ffhq_train_dir, pretrained, tmp_path / "fine_tune", "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr, resumed.stderr[-3000:]


def test_killed_cleaning_pass_resumes_to_the_same_weights(reference_run, ffhq_train_dir, testset, tmp_path):
    args = training_args(ffhq_train_dir, tmp_path, testset)
    records = tmp_path / "round-1" / "records-0.jsonl"
    kill_when(args, lambda: records.is_file() and len(records.read_text().splitlines()) >= 2, "its cleaning pass")
    assert not (tmp_path / "round-1" / "manifest.json").exists()
    done = {line["cleaned"] for line in map(json.loads, records.read_text().splitlines()[:2])}
    written = {name: (tmp_path / "round-1" / name).stat().st_mtime_ns for name in done}

    run_training([*args, "--resume_from_checkpoint", "latest"])
    assert {name: (tmp_path / "round-1" / name).stat().st_mtime_ns for name in done} == written  # not cleaned again
    assert_same_cleaned_pool(reference_run, tmp_path)
    assert_same_weights(reference_run / "unet", tmp_path / "unet")


def test_two_processes_keep_identical_parameters(ffhq_train_dir, tmp_path):
    """The multi-GPU launcher on CPU: two processes, gradients averaged, the same weights on both ranks."""
    args = [
        "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "8", "--resolution", "32",
        "--unet_overrides", json.dumps(TINY_UNET), "--output_dir", str(tmp_path), "--train_batch_size", "2",
        "--max_train_steps", "3", "--learning_rate", "1e-3", "--lr_warmup_steps", "0", "--validation_steps", "100",
    ]  # fmt: skip
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    result = subprocess.run([*launcher, str(SCRIPT), *args], cwd=REPO_ROOT, env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]

    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["global_step"] == 3
    digests = summary["process_parameter_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    set_seed(0)  # as the script does before building the UNet: its initial weights
    initial = make_idm_unet(32, **TINY_UNET).state_dict()
    trained = unet_weights(tmp_path / "checkpoint-3" / "unet")
    assert initial.keys() == trained.keys()
    assert not all(torch.equal(initial[name], trained[name]) for name in initial)  # the steps did update the weights


def test_data_loader_workers_train_the_same_weights(ffhq_train_dir, tmp_path):
    """Persistent DataLoader workers see every epoch's degradations (set_epoch reaches them): 10 steps over three
    epochs of 4 batches give the same weights with 2 workers as with none."""
    def train(workers, output_dir):
        run_training([
            "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "8", "--resolution", "32",
            "--unet_overrides", json.dumps(TINY_UNET), "--output_dir", str(output_dir), "--train_batch_size", "2",
            "--max_train_steps", "10", "--learning_rate", "1e-3", "--lr_warmup_steps", "0", "--validation_steps", "100",
            "--dataloader_num_workers", str(workers),
        ])  # fmt: skip
        return output_dir / "unet"

    assert_same_weights(train(0, tmp_path / "no_workers"), train(2, tmp_path / "workers"))


def test_missing_niqe_parameters_stop_the_run_before_training(ffhq_train_dir, testset, tmp_path):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    output_dir = tmp_path / "run"
    args = [sys.executable, str(SCRIPT), *training_args(ffhq_train_dir, output_dir, testset, "--cleaning_niqe")]
    env = {**environment(), "FACEREST_WEIGHTS_DIR": str(empty), "FACEREST_CACHE": str(empty), "FACEREST_OFFLINE": "1"}
    result = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "niqe_pris_params.npz" in result.stderr
    assert not list(output_dir.glob("checkpoint-*"))  # stopped before the first round, not after it


def test_resumed_run_scores_a_complete_pass_that_lacks_niqe(ffhq_train_dir, tmp_path):
    """A run stopped between the end of a cleaning pass and its NIQE scores writes niqe.json when resumed."""
    from conftest import shared_path

    from facerest.metrics import load_niqe_params
    from facerest.training.extrinsic import CleaningPass, cleaning_niqe, score_cleaning_pass

    pool = [str(path) for path in list_images(ffhq_train_dir)[:4]]
    folder = tmp_path / "round-1"
    cleaning = CleaningPass(folder=folder, round_index=1, model_step=6, pool=pool, replaced=[0, 2], resolution=32)
    cleaning.run(lambda targets, indices: targets.flip(-1), cleaning.pending(), batch_size=2)
    cleaning.finish({})

    params = load_niqe_params(shared_path("weights", "niqe", "niqe_pris_params.npz"))
    # the pass is complete: no model is needed, only the scores are missing
    scores = score_cleaning_pass(folder, params)
    assert scores == json.loads((folder / "niqe.json").read_text()) == cleaning_niqe(folder, params)
    assert score_cleaning_pass(folder, params) is None  # scored once


def test_fine_tuning_starts_from_the_pretrained_pipeline(reference_run, ffhq_train_dir, tmp_path):
    loss = fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / "fine_tuned")
    assert_same_weights(tmp_path / "fine_tuned" / "unet", reference_run / "unet")  # bit for bit
    assert IDMScheduler.from_pretrained(tmp_path / "fine_tuned" / "scheduler").config == IDMScheduler.from_pretrained(reference_run / "scheduler").config

    # the loss follows the pretrained scheduler's prediction type, not the command line's default (noise): same
    # weights, batches and noise, so only the target (noise, x_0, x_0 - x_d or its velocity) can make the first losses differ
    losses = {"epsilon": loss}
    config = json.loads((reference_run / "scheduler" / "scheduler_config.json").read_text())
    for prediction_type in ("sample", "residual", "residual_v"):
        pretrained = tmp_path / f"as_{prediction_type}"
        shutil.copytree(reference_run / "unet", pretrained / "unet")
        shutil.copy(reference_run / "model_index.json", pretrained)
        (pretrained / "scheduler").mkdir()
        (pretrained / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "prediction_type": prediction_type, "sigma_data": 0.5}))
        losses[prediction_type] = fine_tune_first_loss(ffhq_train_dir, pretrained, tmp_path / f"fine_tuned_{prediction_type}")
        assert IDMScheduler.from_pretrained(tmp_path / f"fine_tuned_{prediction_type}" / "scheduler").config.prediction_type == prediction_type
        # the summary records the schedule the run trained with, not the command line's defaults
        summary = json.loads((tmp_path / f"fine_tuned_{prediction_type}" / "training_summary.json").read_text())
        assert summary["args"]["prediction_type"] == prediction_type
        assert summary["args"]["sigma_data"] == 0.5
    assert len(set(losses.values())) == 4, losses

    def refused(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--train_data_dir", str(ffhq_train_dir), "--max_train_steps", "1",
             "--pretrained_model_name_or_path", str(reference_run), "--output_dir", str(tmp_path / "refused"), *extra],
            cwd=REPO_ROOT, env=environment(), capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode != 0
        return done.stderr

    assert "restores 32-px faces, but --resolution is 64" in refused("--resolution", "64")
    assert "--prediction_type cannot change a pretrained model" in refused("--resolution", "32", "--prediction_type", "sample")


def test_training_on_crops_restores_whole_faces(ffhq_train_dir, tmp_path):
    """--crop_size trains the fully convolutional UNet on windows; the saved pipeline restores whole faces."""
    base = [
        "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", "--resolution", "32",
        "--unet_overrides", json.dumps(TINY_UNET), "--train_batch_size", "2", "--max_train_steps", "2",
        "--learning_rate", "1e-3", "--lr_warmup_steps", "0", "--validation_steps", "2", "--num_validation_images", "2",
    ]  # fmt: skip
    run_training([*base, "--crop_size", "16", "--output_dir", str(tmp_path / "crops")])
    pipeline = FaceRestorePipeline.from_pretrained(tmp_path / "crops")
    assert pipeline.face_size == 32
    assert pipeline.default_inference_steps == 25  # --sampling_steps, saved with the pipeline
    face = load_image(list_images(ffhq_train_dir)[0])
    assert pipeline(face, aligned=True, num_inference_steps=2, output_type="np").restored_faces[0][0].shape == (32, 32, 3)

    refused = subprocess.run(
        [sys.executable, str(SCRIPT), *base, "--crop_size", "15", "--output_dir", str(tmp_path / "odd")],
        cwd=REPO_ROOT, env=environment(), capture_output=True, text=True,
    )
    assert refused.returncode != 0 and "--crop_size 15 cannot be halved 1 times" in refused.stderr


def test_degradation_on_the_device_with_crops_and_workers(ffhq_train_dir, tmp_path):
    """--degradation_device accelerator (the CPU here): the loader yields HQ faces and their draws, the whole faces
    are degraded in batches and then cropped; 2 workers train the same weights as none, and the pipeline restores
    whole faces."""
    def train(workers, output_dir):
        run_training([
            "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", "--resolution", "32", "--crop_size", "16",
            "--unet_overrides", json.dumps(TINY_UNET), "--output_dir", str(output_dir), "--train_batch_size", "2",
            "--max_train_steps", "3", "--learning_rate", "1e-3", "--lr_warmup_steps", "0", "--validation_steps", "100",
            "--degradation_device", "accelerator", "--dataloader_num_workers", str(workers),
        ])  # fmt: skip
        return output_dir

    run = train(0, tmp_path / "no_workers")
    assert_same_weights(run / "unet", train(2, tmp_path / "workers") / "unet")
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["global_step"] == 3 and summary["args"]["degradation_device"] == "accelerator"
    pipeline = FaceRestorePipeline.from_pretrained(run)
    face = load_image(list_images(ffhq_train_dir)[0])
    assert pipeline(face, aligned=True, num_inference_steps=2, output_type="np").restored_faces[0][0].shape == (32, 32, 3)


def test_max_train_minutes_stops_with_a_checkpoint_and_the_final_save(ffhq_train_dir, tmp_path):
    run_training([
        "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", "--resolution", "32",
        "--unet_overrides", json.dumps(TINY_UNET), "--output_dir", str(tmp_path), "--train_batch_size", "2",
        "--max_train_steps", "50", "--max_train_minutes", "0.0001", "--checkpointing_steps", "20", "--validation_steps", "100",
    ])  # fmt: skip
    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["stopped_by_max_train_minutes"] is True  # checked after every step
    assert [path.name for path in tmp_path.glob("checkpoint-*")] == ["checkpoint-1"]
    assert_same_weights(tmp_path / "unet", tmp_path / "checkpoint-1" / "unet_ema")
    assert FaceRestorePipeline.from_pretrained(tmp_path).kind == "idm"


def test_a_run_killed_while_it_scores_the_testset_keeps_its_final_model(ffhq_train_dir, testset, tmp_path):
    """A time limit (gpu_run.sh's hard stop) or a kill that lands while the last round is scored loses no weights."""
    args = [
        "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", "--resolution", "32",
        "--unet_overrides", json.dumps(TINY_UNET), "--output_dir", str(tmp_path), "--train_batch_size", "2",
        "--max_train_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "100",
        "--testset", str(testset), "--eval_sampling_steps", "1000", "--eval_batch_size", "1",
    ]  # fmt: skip
    kill_when(args, lambda: (tmp_path / "eval").is_dir(), "scoring the test set")
    assert not (tmp_path / "training_summary.json").exists()  # killed before the end
    assert_same_weights(tmp_path / "unet", tmp_path / "checkpoint-2" / "unet_ema")
    assert FaceRestorePipeline.from_pretrained(tmp_path).kind == "idm"


def test_a_failed_push_keeps_the_saved_model_and_says_how_to_push_it(ffhq_train_dir, tmp_path):
    """The Hub cannot be reached at the end of a run: the model is saved, and one error line says how to push it."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    args = [
        "--train_data_dir", str(ffhq_train_dir), "--max_train_samples", "4", "--resolution", "32",
        "--unet_overrides", json.dumps(TINY_UNET), "--output_dir", str(tmp_path / "run"), "--train_batch_size", "2",
        "--max_train_steps", "1", "--validation_steps", "100", "--push_to_hub", "--hub_model_id", "tester/tiny-idm",
    ]  # fmt: skip
    hub = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint, "HF_TOKEN": "hf_unused", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, env=environment() | hub, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr[-3000:]
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: pushing to tester/tiny-idm failed: ") and "Traceback" not in result.stderr
    assert error.endswith(f"push the saved model with: python hub/push.py {tmp_path / 'run'} tester/tiny-idm")
    assert FaceRestorePipeline.from_pretrained(tmp_path / "run").kind == "idm"


def test_degradation_overrides_reach_the_training_pairs(reference_run, ffhq_train_dir, tmp_path):
    """--degradation_overrides replaces fields of the recipe: with every stage off the pairs are clean pairs."""
    def first_loss(name: str, *extra: str) -> float:
        return fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / name, *extra)

    nothing = {"blur_sigma": None, "downsample_range": None, "noise_range": None, "jpeg_range": None,
               "color_jitter_prob": 0, "gray_prob": 0, "photometric_jitter_prob": 0}  # fmt: skip
    undegraded = first_loss("undegraded", "--degradation_overrides", json.dumps(nothing))
    assert undegraded == first_loss("clean_pairs", "--clean_prob", "1")
    assert undegraded != first_loss("recipe")

    refusals = {'{"jpeg_range": [40, 101]}': "jpeg_range must be", '{"clean_prob": 0.5}': "give clean_prob as --clean_prob"}
    for overrides, message in refusals.items():
        refused = subprocess.run(
            [sys.executable, str(SCRIPT), "--train_data_dir", str(ffhq_train_dir), "--max_train_steps", "1",
             "--output_dir", str(tmp_path / "refused"), "--degradation_overrides", overrides],
            cwd=REPO_ROOT, env=environment(), capture_output=True, text=True,
        )  # fmt: skip
        assert refused.returncode != 0 and f"--degradation_overrides: {message}" in refused.stderr, refused.stderr


def test_training_at_the_sampling_steps_draws_only_their_timesteps(reference_run, ffhq_train_dir, tmp_path):
    """--train_at_sampling_steps N trains where N-step sampling calls the model: N equal to the chain's length is the
    whole chain (the same draws as without it), one step is the last timestep alone (another loss)."""
    chain_length = str(json.loads((reference_run / "scheduler" / "scheduler_config.json").read_text())["num_train_timesteps"])
    every_timestep = fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / "every")
    assert every_timestep == fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / "chain", "--train_at_sampling_steps", chain_length)
    assert every_timestep != fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / "one", "--train_at_sampling_steps", "1")


def test_training_through_the_sampler_trains_its_chain(reference_run, ffhq_train_dir, tmp_path):
    """--train_through_sampling_steps N scores the N-step chain's result (another loss than one step at its
    timesteps, and another for another N); with --train_at_sampling_steps as well it is refused before any work."""
    one_step = fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / "one", "--train_at_sampling_steps", "1")
    through_one = fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / "through1", "--train_through_sampling_steps", "1")
    through_two = fine_tune_first_loss(ffhq_train_dir, reference_run, tmp_path / "through2", "--train_through_sampling_steps", "2")
    assert len({one_step, through_one, through_two}) == 3
    refused = fine_tune(ffhq_train_dir, reference_run, tmp_path / "both", "--train_through_sampling_steps", "2",
                        "--train_at_sampling_steps", "2")  # fmt: skip
    assert refused.returncode != 0 and "takes no --train_at_sampling_steps" in refused.stderr, refused.stderr[-2000:]
    assert not (tmp_path / "both").exists()
