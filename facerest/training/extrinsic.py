"""Extrinsic iterative learning (IDM, Zhao et al., ICCV 2023): clean the training targets with the model itself.

After an intrinsic round the model restores its own training targets, ``x* = f_theta(x)`` (the target is its own
conditioning input), and a fraction of the target pool is replaced by the cleaned images before the next round.

A cleaning pass of round ``r`` lives in one folder and can be killed and resumed at any point:

    round-<r>/images/<index>-<stem>.png    cleaned targets, at the training resolution
    round-<r>/records-<name>.jsonl         one line per cleaned image, appended (and flushed) once the image is on disk
    round-<r>/manifest.json                written last, by one process: the pass is complete

Only the targets chosen for replacement are restored (the others would be thrown away). Each process of a
multi-process run cleans its share of the images still missing, so a resumed pass may use another number of
processes than the pass it continues.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import FacerestError
from ..images import image_to_tensor, load_image, resize_square, save_image, tensor_to_image
from ..metrics import niqe

# (targets, their pool indices) -> cleaned targets, tensors (N, 3, R, R) in [-1, 1]. The indices let a sampler seed
# each image's randomness by its index, so that the result does not depend on batching, processes or interruptions.
Cleaner = Callable[[torch.Tensor, list[int]], torch.Tensor]

MANIFEST_NAME = "manifest.json"
NIQE_NAME = "niqe.json"


def choose_replaced(pool_size: int, fraction: float, seed: Sequence[int] | int) -> list[int]:
    """The indices of the pool entries to replace: ``round(fraction * pool_size)`` of them, drawn without replacement
    by ``numpy.random.default_rng(seed)``, sorted."""
    if not 0.0 <= fraction <= 1.0:
        raise FacerestError(f"the replaced fraction must lie in [0, 1], got {fraction}")
    count = round(fraction * pool_size)
    return sorted(np.random.default_rng(seed).choice(pool_size, size=count, replace=False).tolist())


def round_dir(output_dir: str | os.PathLike, round_index: int) -> Path:
    return Path(output_dir) / f"round-{round_index}"


def load_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of a complete cleaning pass in ``folder``, or None while the pass is unfinished."""
    path = Path(folder) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class CleaningPass:
    """Restore the chosen targets of ``pool`` with the model of ``model_step`` and write the new pool of round
    ``round_index`` to ``folder``.

    ``pool`` is the list of target images of the previous round; ``replaced`` the indices of those to clean.
    """

    folder: Path
    round_index: int
    model_step: int
    pool: list[str]
    replaced: list[int]
    resolution: int

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.pool = [str(path) for path in self.pool]
        if any(not 0 <= index < len(self.pool) for index in self.replaced):
            raise ValueError(f"replaced indices must lie in [0, {len(self.pool)})")

    def cleaned_path(self, index: int) -> Path:
        return self.folder / "images" / f"{index:06d}-{Path(self.pool[index]).stem}.png"

    def recorded(self) -> dict[int, dict]:
        """The records of this pass (same round, model step and source) whose image is on disk, by pool index."""
        records = {}
        for records_file in sorted(self.folder.glob("records-*.jsonl")):
            for line in records_file.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                index = record.get("index")
                if (
                    isinstance(index, int)
                    and 0 <= index < len(self.pool)
                    and record.get("round") == self.round_index
                    and record.get("model_step") == self.model_step
                    and record.get("source") == self.pool[index]
                    and self.cleaned_path(index).is_file()
                ):
                    records[index] = record
        return records

    def pending(self) -> list[int]:
        """The chosen indices not cleaned yet, in order."""
        done = self.recorded()
        return [index for index in self.replaced if index not in done]

    def run(self, clean: Cleaner, indices: list[int], batch_size: int = 16, records_name: str = "0", progress: bool = True) -> None:
        """Clean the pool entries ``indices`` (a share of ``pending()``) in batches, writing each image and its record.

        In a multi-process run every process must read ``pending()`` before any of them starts (a barrier between),
        so that their shares do not overlap; each writes its own ``records-<records_name>.jsonl``.
        """
        records_path = self.folder / f"records-{records_name}.jsonl"
        records_path.parent.mkdir(parents=True, exist_ok=True)
        with open(records_path, "a") as records_file:
            if records_file.tell() and not records_path.read_bytes().endswith(b"\n"):
                records_file.write("\n")  # end the line a kill cut short, so the next record starts on its own
            batches = [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]
            for batch in tqdm(batches, desc=f"cleaning round {self.round_index}", disable=not progress):
                targets = torch.stack([image_to_tensor(self.load_target(index)) for index in batch])
                with torch.no_grad():
                    cleaned = clean(targets, batch)  # x* = f_theta(x): the target conditions its own restoration
                for index, image in zip(batch, cleaned):
                    path = self.cleaned_path(index)
                    partial = path.with_name(f"partial-{path.name}")
                    save_image(tensor_to_image(image), partial)
                    os.replace(partial, path)
                    record = {
                        "index": index,
                        "source": self.pool[index],
                        "cleaned": str(path.relative_to(self.folder)),
                        "round": self.round_index,
                        "model_step": self.model_step,
                    }
                    records_file.write(json.dumps(record) + "\n")
                    records_file.flush()
                    os.fsync(records_file.fileno())

    def load_target(self, index: int) -> np.ndarray:
        """Pool entry ``index`` as the model sees it in training: resized to the training resolution."""
        return resize_square(load_image(self.pool[index]), self.resolution)

    def finish(self, details: dict | None = None) -> dict:
        """Write ``manifest.json`` once every chosen target is cleaned, and return it.

        The manifest holds the pass's parameters (plus ``details``), one entry per replaced target (pool index,
        source image, cleaned image, round, model step) and ``pool``: the targets of the next round, where the
        replaced entries point to their cleaned images.
        """
        records = self.recorded()
        missing = [index for index in self.replaced if index not in records]
        if missing:
            raise RuntimeError(f"cleaning pass {self.folder} is incomplete: {len(missing)} images not cleaned yet")
        pool = list(self.pool)
        for index in self.replaced:
            pool[index] = str(self.cleaned_path(index))
        manifest = {
            "round": self.round_index,
            "model_step": self.model_step,
            "resolution": self.resolution,
            "pool_size": len(self.pool),
            "num_replaced": len(self.replaced),
            "replaced_fraction": len(self.replaced) / len(self.pool) if self.pool else 0.0,
            **(details or {}),
            "replaced": [records[index] for index in self.replaced],
            "pool": pool,
        }
        partial = self.folder / f"partial-{MANIFEST_NAME}"
        partial.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(partial, self.folder / MANIFEST_NAME)
        for records_file in self.folder.glob("records-*.jsonl"):
            records_file.unlink()
        return manifest


def cleaning_niqe(folder: str | os.PathLike, niqe_params, block_size: int = 96) -> dict:
    """Mean NIQE (lower is better) of the cleaned targets of a complete pass and of the targets they replaced.

    Both are compared at the training resolution, enlarged by the same bicubic factor to at least two NIQE blocks
    per side (NIQE cannot score a 64 px face directly). Returns ``{"cleaned", "original", "upscale", "num_images"}``.
    """
    folder = Path(folder)
    manifest = load_manifest(folder)
    if manifest is None:
        raise FacerestError(f"no complete cleaning pass in {folder} ({MANIFEST_NAME} is missing)")
    resolution = manifest["resolution"]
    upscale = -(-2 * block_size // resolution)  # ceil

    def enlarged(image: np.ndarray) -> np.ndarray:
        image = resize_square(image, resolution)
        return resize_square(image, resolution * upscale) if upscale > 1 else image

    cleaned = [enlarged(load_image(folder / record["cleaned"])) for record in manifest["replaced"]]
    original = [enlarged(load_image(record["source"])) for record in manifest["replaced"]]
    return {
        "cleaned": float(np.mean(niqe(cleaned, niqe_params, block_size=block_size))),
        "original": float(np.mean(niqe(original, niqe_params, block_size=block_size))),
        "upscale": upscale,
        "num_images": len(cleaned),
    }


def score_cleaning_pass(folder: str | os.PathLike, niqe_params) -> dict | None:
    """Write ``niqe.json`` (the scores of `cleaning_niqe`) for a complete pass that lacks it, as a run resumed
    between the end of a pass and its scores does; returns the scores, or None when the file was already there."""
    path = Path(folder) / NIQE_NAME
    if path.is_file():
        return None
    scores = cleaning_niqe(folder, niqe_params)
    path.write_text(json.dumps(scores, indent=2) + "\n")
    return scores
