"""Training checkpoints, one rule for both training scripts.

A checkpoint is the folder ``<output_dir>/checkpoint-<step>`` written by Accelerate's ``save_state``: the optimisers,
learning-rate schedulers, random states and every prepared model, except the trained model named to
[`register_checkpoint_hooks`], which is kept in its own format with its EMA beside it:

    checkpoint-<step>/<name>/        the trained weights (``save_pretrained``: loads with ``from_pretrained``)
    checkpoint-<step>/<name>_ema/    the EMA weights, the same way, and the EMA's counters (``ema_state.json``)

    checkpoint-<step>/model_settings.json   the options that shape the model and its training target

[`save_checkpoint`] writes it atomically (into ``partial-checkpoint-<step>``, renamed once every process has written,
so that a run killed while saving never leaves a half-written checkpoint for ``--resume_from_checkpoint latest``) and
then deletes the oldest so that ``checkpoints_total_limit`` remain. [`resolve_checkpoint`] finds the checkpoint a run
resumes from and refuses one whose model settings differ from the run's: resumed with a forgotten or mistyped option,
the weights of one model would go on training as another.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel

from ..errors import FacerestError

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
EMA_STATE_FILENAME = "ema_state.json"
MODEL_SETTINGS_FILENAME = "model_settings.json"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders of ``output_dir``, oldest step first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [path for _, path in sorted(found)]


def resolve_checkpoint(
    output_dir: str | Path, resume_from_checkpoint: str | None, model_settings: dict | None = None
) -> Path | None:
    """Map ``--resume_from_checkpoint`` ("latest", a checkpoint folder, or the name of one in ``output_dir``) to a
    checkpoint folder, or None to start fresh. ``FacerestError`` when there is no such folder, and when the
    checkpoint was trained with other ``model_settings`` than the run's (see [`save_checkpoint`])."""
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        path = checkpoints[-1] if checkpoints else None
    else:
        given = Path(resume_from_checkpoint)
        path = given if given.is_dir() else Path(output_dir, given)
        if not path.is_dir():
            raise FacerestError(f"--resume_from_checkpoint: no checkpoint folder at {given} (nor in {output_dir})")
    if path is not None and model_settings is not None:
        _check_model_settings(path, model_settings)
    return path


def _check_model_settings(checkpoint: Path, model_settings: dict) -> None:
    """Refuse to resume ``checkpoint`` with settings that differ from those it recorded (none recorded: a checkpoint
    from before they were, taken as it is)."""
    recorded_path = checkpoint / MODEL_SETTINGS_FILENAME
    if not recorded_path.is_file():
        return
    recorded = json.loads(recorded_path.read_text())
    current = _as_json(model_settings)
    changed = [name for name in current if name in recorded and recorded[name] != current[name]]
    if changed:
        def options(settings: dict) -> str:
            return ", ".join(f"--{name} {json.dumps(settings[name])}" for name in changed)

        raise FacerestError(
            f"{checkpoint} was trained with {options(recorded)}, and this run has {options(current)}: resume with the "
            "checkpoint's options, or train into another --output_dir"
        )


def load_checkpoint(accelerator, checkpoint: Path) -> None:
    """``accelerator.load_state(checkpoint)``; a checkpoint that cannot be read (a file cut short or corrupt) is one
    ``FacerestError`` naming it and what to do, not a traceback from deep in the loader."""
    from safetensors import SafetensorError

    try:
        accelerator.load_state(str(checkpoint))
    except (OSError, RuntimeError, ValueError, EOFError, SafetensorError) as error:
        raise FacerestError(
            f"cannot load the checkpoint {checkpoint} ({type(error).__name__}: {str(error).splitlines()[0]}): delete "
            "it to resume from the one before, or start afresh in another --output_dir"
        ) from None


def checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    if not match:
        raise ValueError(f"not a checkpoint folder name (expected checkpoint-<step>): {path}")
    return int(match.group(1))


def prune_checkpoints(output_dir: str | Path, keep: int | None) -> None:
    """Delete the oldest checkpoints so that at most ``keep`` remain (None keeps all)."""
    if keep is None:
        return
    checkpoints = list_checkpoints(output_dir)
    for path in checkpoints[: max(len(checkpoints) - keep, 0)]:
        shutil.rmtree(path)


def save_checkpoint(
    accelerator, output_dir: str | Path, step: int, total_limit: int | None, model_settings: dict | None = None
) -> Path:
    """Write ``checkpoint-<step>`` atomically, with the run's ``model_settings`` (the options that shape the model and
    its training target, by option name, for [`resolve_checkpoint`] to compare on resuming), then keep the newest
    ``total_limit`` checkpoints (at least this one; None keeps all). Every process must call it."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    partial = output_dir / f"partial-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if model_settings is not None:
            (partial / MODEL_SETTINGS_FILENAME).write_text(json.dumps(_as_json(model_settings), indent=2) + "\n")
        if final.exists():  # the same step saved again (a run resumed at the end of a round)
            shutil.rmtree(final)
        os.replace(partial, final)
        prune_checkpoints(output_dir, None if total_limit is None else max(total_limit, 1))
        logger.info(f"saved {final}")
    accelerator.wait_for_everyone()
    return final


@contextlib.contextmanager
def ema_weights(ema: EMAModel, model: torch.nn.Module):
    """Swap the EMA weights into ``model`` for the ``with`` block; its own weights come back, bit for bit, after."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield model
    finally:
        ema.restore(model.parameters())


def register_checkpoint_hooks(accelerator, model: torch.nn.Module, ema: EMAModel, name: str) -> None:
    """Make ``save_state`` / ``load_state`` keep the prepared ``model`` and its ``ema`` as ``<name>/`` and
    ``<name>_ema/`` of the checkpoint (see the module's docstring), any model with ``save_pretrained`` and
    ``from_pretrained`` (diffusers or transformers). Accelerate keeps every other prepared model in its own files."""
    module = accelerator.unwrap_model(model)

    def index_of_model(models) -> int:
        return next(index for index, candidate in enumerate(models) if accelerator.unwrap_model(candidate) is module)

    def save_hook(models, weights, checkpoint_dir):
        index = index_of_model(models)
        if accelerator.is_main_process:
            module.save_pretrained(Path(checkpoint_dir, name))
            ema_folder = Path(checkpoint_dir, f"{name}_ema")
            with ema_weights(ema, module):
                module.save_pretrained(ema_folder)
            state = {key: value for key, value in ema.state_dict().items() if key != "shadow_params"}
            (ema_folder / EMA_STATE_FILENAME).write_text(json.dumps(state, indent=2) + "\n")
            weights.pop(index)  # saved above; Accelerate must not save it again

    def load_hook(models, checkpoint_dir):
        models.pop(index_of_model(models))  # loaded here, not by Accelerate
        module.load_state_dict(type(module).from_pretrained(Path(checkpoint_dir, name)).state_dict())
        ema_folder = Path(checkpoint_dir, f"{name}_ema")
        # checkpoints of train_idm.py before this file kept the EMA's counters in the folder's config.json
        state_file = ema_folder / EMA_STATE_FILENAME
        state = json.loads((state_file if state_file.is_file() else ema_folder / "config.json").read_text())
        shadow = [parameter.detach() for parameter in type(module).from_pretrained(ema_folder).parameters()]
        ema.load_state_dict({**state, "shadow_params": shadow})
        ema.to(accelerator.device)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _as_json(settings: dict) -> dict:
    """``settings`` as JSON reads them back (paths as strings, tuples as lists), so that saved and current compare."""
    return json.loads(json.dumps(settings, default=str))


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict (names and exact values): equal digests, equal weights."""
    sha = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()
