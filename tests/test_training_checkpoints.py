"""facerest.training: the one checkpoint rule of both training scripts, the EMA hooks, the command line for cards, the
time budget and the learning rate on its clock."""

import json
import math
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel

from facerest.errors import FacerestError
from facerest.training.checkpoints import list_checkpoints, load_checkpoint, register_checkpoint_hooks, resolve_checkpoint
from facerest.training.checkpoints import save_checkpoint, weights_digest
from facerest.training import utils
from facerest.training.utils import Deadline, clock_cosine_schedule, command_line


class FakeAccelerator:
    """One process; ``save_state`` writes a file where Accelerate would write its states."""

    is_main_process = True

    def wait_for_everyone(self):
        pass

    def save_state(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save({}, Path(folder) / "optimizer.bin")


def test_checkpoints_are_renamed_complete_and_pruned_to_the_limit(tmp_path):
    accelerator = FakeAccelerator()
    (tmp_path / "partial-checkpoint-3").mkdir()  # left by a run killed while saving step 3
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step, total_limit=2)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]
    assert not list(tmp_path.glob("partial-*")) and (tmp_path / "checkpoint-3" / "optimizer.bin").is_file()
    save_checkpoint(accelerator, tmp_path, 3, total_limit=0)  # the same step again (a resumed run); keeps itself
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-3"]
    save_checkpoint(accelerator, tmp_path, 4, total_limit=None)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-4"]


def test_a_checkpoint_is_resumed_only_with_the_model_settings_it_was_trained_with(tmp_path):
    settings = {"resolution": 64, "prediction_type": "residual", "unet_overrides": {"layers_per_block": 1}}
    save_checkpoint(FakeAccelerator(), tmp_path, 30, total_limit=None, model_settings=settings)
    checkpoint = tmp_path / "checkpoint-30"
    assert resolve_checkpoint(tmp_path, "latest", settings) == checkpoint
    assert resolve_checkpoint(tmp_path, "checkpoint-30", settings) == checkpoint  # a name in the output folder
    assert resolve_checkpoint(tmp_path, str(checkpoint), settings) == checkpoint
    changed = {**settings, "resolution": 32, "prediction_type": "epsilon"}
    with pytest.raises(FacerestError) as error:
        resolve_checkpoint(tmp_path, "latest", changed)
    assert str(error.value) == (
        f'{checkpoint} was trained with --resolution 64, --prediction_type "residual", and this run has --resolution '
        '32, --prediction_type "epsilon": resume with the checkpoint\'s options, or train into another --output_dir'
    )
    (checkpoint / "model_settings.json").unlink()  # a checkpoint from before the settings were recorded
    assert resolve_checkpoint(tmp_path, "latest", changed) == checkpoint
    with pytest.raises(FacerestError, match="^--resume_from_checkpoint: no checkpoint folder at checkpoint-99 \\(nor in "):
        resolve_checkpoint(tmp_path, "checkpoint-99", settings)
    assert resolve_checkpoint(tmp_path / "new", "latest", settings) is None  # nothing to resume: a new run


def test_a_checkpoint_that_cannot_be_read_is_one_error_naming_it(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    save_checkpoint(accelerator, tmp_path, 1, total_limit=None)
    weights = next((tmp_path / "checkpoint-1").glob("model*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # cut short, as by a full disk
    with pytest.raises(FacerestError, match=f"^cannot load the checkpoint {tmp_path / 'checkpoint-1'} .*: delete it to resume from the one before"):
        load_checkpoint(accelerator, tmp_path / "checkpoint-1")
    assert model.weight.shape == (2, 2)


def test_model_and_ema_round_trip_through_a_checkpoint(tmp_path):
    """The model and its EMA come back bit for bit, and the live weights are untouched by the save."""
    torch.manual_seed(0)
    config = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 8), norm_num_groups=4,
                  down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                  layers_per_block=1)  # fmt: skip
    accelerator = Accelerator(cpu=True)
    unet = accelerator.prepare(UNet2DModel(**config))
    ema = EMAModel(unet.parameters(), decay=0.9)
    for _ in range(3):  # the EMA drifts away from the weights
        with torch.no_grad():
            for parameter in unet.parameters():
                parameter.add_(0.1)
        ema.step(unet.parameters())
    register_checkpoint_hooks(accelerator, unet, ema, "unet")
    trained, shadow = weights_digest(unet), [p.clone() for p in ema.shadow_params]
    accelerator.save_state(str(tmp_path / "checkpoint-3"))
    assert weights_digest(unet) == trained
    assert {"unet", "unet_ema"} <= {path.name for path in (tmp_path / "checkpoint-3").iterdir()}
    assert json.loads((tmp_path / "checkpoint-3" / "unet_ema" / "ema_state.json").read_text())["optimization_step"] == 3
    assert not list((tmp_path / "checkpoint-3").glob("model*.safetensors"))  # not saved twice

    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.zero_()
    ema.shadow_params, ema.optimization_step = [torch.zeros_like(p) for p in shadow], 0
    accelerator.load_state(str(tmp_path / "checkpoint-3"))
    assert weights_digest(unet) == trained and ema.optimization_step == 3
    assert all(torch.equal(a, b) for a, b in zip(ema.shadow_params, shadow))
    ema_unet = UNet2DModel.from_pretrained(tmp_path / "checkpoint-3" / "unet_ema")  # loads like any saved UNet
    assert all(torch.equal(a, b) for a, b in zip(ema_unet.parameters(), shadow))


def test_command_line_leaves_secrets_out():
    line = command_line(["train/train_gfpgan.py", "--hub_token", "hf_secret", "--output_dir", "runs/a b"])
    assert line == "python train/train_gfpgan.py --hub_token '***' --output_dir 'runs/a b'"
    for spelling in (["--hub_token=hf_secret"], ["--hub_tok", "hf_secret"], ["--hub_t=hf_secret"]):  # argparse takes all
        line = command_line(["train/train_idm.py", *spelling, "--seed", "1"])
        assert "hf_secret" not in line and "***" in line and line.endswith(" --seed 1"), line
    assert command_line(["train/train_idm.py", "--hub_model_id", "me/model"]).endswith("--hub_model_id me/model")


def test_the_learning_rate_on_the_clock_warms_up_then_decays_to_zero_by_the_deadline(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(utils.time, "monotonic", lambda: now[0])
    deadline = Deadline(minutes=10)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
    schedule = clock_cosine_schedule(optimizer, deadline, warmup_steps=4)
    rates = [optimizer.param_groups[0]["lr"]]
    for seconds in (0, 0, 0, 150, 300, 450, 600, 900):  # the clock after each step
        now[0] = 1000.0 + seconds
        assert deadline.passed(Accelerator(cpu=True)) is (seconds >= 600)
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    expected = [0.1, 0.2, 0.3, 0.4] + [0.2 * (1 + math.cos(math.pi * fraction)) for fraction in (0.25, 0.5, 0.75, 1.0, 1.0)]
    assert rates == pytest.approx(expected, abs=1e-12)


def test_the_clock_schedule_needs_a_time_budget():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="time budget"):
        clock_cosine_schedule(optimizer, Deadline(None), warmup_steps=0)
