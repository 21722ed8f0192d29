"""Compare restoration models on a paired test set: the table behind ``python -m facerest compare``.

Each model restores the aligned degraded faces of ``TESTSET/lq`` (GFP-GAN once; IDM and hybrids once per step
count) as ``python -m facerest restore --aligned`` does (the pipeline's aligned path, default fidelity), the
restored faces are written to a folder per row, and each folder is scored against ``TESTSET/hq`` by
``facerest.evaluation.restore_and_score``, with the same metrics and the same handling of missing weights as
``python -m facerest evaluate``. A last column gives the restoration time per face.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch

from .devices import resolve_device
from .errors import FacerestError
from .evaluation import METRIC_COLUMNS, aligned_restorer, evaluate_folders, restore_and_score, testset_pairs
from .pipeline import FaceRestorePipeline
from .table import Row, Table

SECONDS_COLUMN = "Seconds per face"


def compare_models(
    testset_dir: str | os.PathLike,
    models: Mapping[str, str | os.PathLike | FaceRestorePipeline],
    output_dir: str | os.PathLike,
    steps: Sequence[int] = (10, 25, 100),
    strength: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    weights_dirs: Sequence[os.PathLike] = (),
    batch_size: int = 8,
    progress: bool = True,
) -> Table:
    """
    Restore the test set with each model and score every result the way ``evaluate`` does.

    Args:
        testset_dir: a paired test set from ``make_testset``: ``lq/`` and ``hq/`` with matching file names.
        models: row name -> saved pipeline (folder or Hub id), ``GAN+IDM`` (the hybrid of a saved GFP-GAN and a
            saved IDM pipeline), or a loaded [`FaceRestorePipeline`].
        output_dir: each row's restored faces go to ``output_dir/<row name as a folder name>/<name>.png``.
        steps: the IDM step counts, one row each for every IDM and hybrid model.
        strength: the hybrids' strength (default: the pipeline's, 0.3). IDM models run from pure noise.
        seed: the seed of the IDM noise, the same for every row.
        device, dtype: where and in which precision the models run (default device: cuda if available, else cpu).
        weights_dirs: folders holding the metrics' weights (see ``evaluate_folders``).
        batch_size: faces restored and scored at once.
        progress: show a progress bar over the IDM steps.

    Rows: the degraded input, the ground truth (NIQE only), then each model in the given order. Each face is
    restored by the pipeline as an aligned face and comes back at the test set's size (a model of another
    resolution restores the band it resolves), so every row is scored against the same ground truth.
    """
    testset_dir, output_dir = Path(testset_dir), Path(output_dir)
    lq_dir, hq_dir = testset_dir / "lq", testset_dir / "hq"
    pairs = testset_pairs(testset_dir)
    if not models:
        raise FacerestError("no models to compare; pass at least one --model NAME=PATH")
    if any(count < 1 for count in steps):
        raise FacerestError(f"step counts must be positive, got {list(steps)}")
    device = resolve_device(device)

    def named(method: str, evaluation) -> list[Row]:
        """The evaluation's rows named by method: the method's, then the ground truth's (NIQE only, when computed)."""
        names = [method, *["ground truth"] * (len(evaluation.rows) - 1)]
        return [{"Method": name, **_without_images(row)} for name, row in zip(names, evaluation.rows)]

    evaluation = evaluate_folders(lq_dir, hq_dir, device=device, weights_dirs=weights_dirs, batch_size=batch_size)
    rows, notes = named("degraded input", evaluation), list(evaluation.notes)
    folders: dict[Path, str] = {}
    kinds = set()
    for name, model in models.items():
        if not isinstance(model, FaceRestorePipeline):
            model = _load(model, dtype)
        kinds.add(model.kind)
        pipeline = model.to(device=device, dtype=None if model.dtype == dtype else dtype)
        for method, step_count, run_strength in _runs(name, pipeline.kind, steps, strength):
            images_dir = output_dir / _folder_name(method)
            if images_dir in folders:
                raise FacerestError(f"the rows {folders[images_dir]!r} and {method!r} would share the folder {images_dir}")
            folders[images_dir] = method
            generator = torch.Generator("cpu").manual_seed(seed)
            restore = aligned_restorer(pipeline, step_count, run_strength, generator, progress)
            evaluation = restore_and_score(
                restore, testset_dir, images_dir, device=device, weights_dirs=weights_dirs, batch_size=batch_size
            )
            rows.append({**named(method, evaluation)[0], SECONDS_COLUMN: evaluation.restore_seconds / len(pairs)})
            notes += evaluation.notes

    metric_columns = [column for column in METRIC_COLUMNS.values() if any(column in row for row in rows)]
    columns = ["Method", "Count", *metric_columns, SECONDS_COLUMN]
    notes = list(dict.fromkeys(notes))  # each row's evaluation repeats the notes on unavailable metrics
    if strength is not None and "hybrid" not in kinds:
        notes.append(f"strength {strength:g} not used: it applies to hybrids, and none was compared")
    notes.append(f"{SECONDS_COLUMN}: restoration only, on {device} in {str(dtype).removeprefix('torch.')}, seed {seed}")
    return Table(columns=columns, rows=rows, notes=notes)


def _load(source: str | os.PathLike, dtype: torch.dtype) -> FaceRestorePipeline:
    """A saved pipeline, or ``GAN+IDM``: the hybrid of two saved pipelines."""
    gan_source, plus, idm_source = str(source).partition("+")
    if not plus:
        return FaceRestorePipeline.from_pretrained(source, dtype=dtype)
    gan, idm = (FaceRestorePipeline.from_pretrained(part, dtype=dtype) for part in (gan_source, idm_source))
    return FaceRestorePipeline.hybrid(gan, idm)


def _runs(name: str, kind: str, steps: Sequence[int], strength: float | None):
    """(row name, step count, strength) of each row of one model."""
    if kind == "gfpgan":
        return [(name, 1, None)]
    label = "" if kind == "idm" or strength is None else f", strength {strength:g}"
    strength = 1.0 if kind == "idm" else strength  # the whole chain
    return [(f"{name} ({count} step{'' if count == 1 else 's'}{label})", count, strength) for count in steps]


def _without_images(row: Row) -> Row:
    return {column: value for column, value in row.items() if column != "Images"}


def _folder_name(method: str) -> str:
    """A row name as a folder name: ``"idm (25 steps)"`` -> ``"idm_25_steps"``."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", method).strip("_")
