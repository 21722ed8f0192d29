"""Restore a paired test set and score it: the one path behind ``compare``, the training scripts' ``--testset`` and
the benchmark's quality part.

A paired test set is ``lq/`` and ``hq/`` with matching file names (``facerest.data.make_testset``). The restorer is
any callable from a batch of degraded faces to restored faces of the same size, both as lists of RGB uint8 arrays;
``aligned_restorer`` makes one of a ``FaceRestorePipeline`` (its aligned path, as ``restore --aligned`` runs it).
Scoring is ``evaluate``'s (``facerest.metrics.score_batches``): the same metrics, columns and handling of missing
weights.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .devices import resolve_device, synchronize
from .errors import FacerestError
from .images import pair_by_stem, resize_square, save_image
from .metrics import Evaluation, PairBatch, read_pairs_in_batches, score_batches

ImageRestorer = Callable[[list[np.ndarray]], list[np.ndarray]]


def restore_and_score(
    restore: ImageRestorer,
    testset_dir: str | os.PathLike,
    output_dir: str | os.PathLike | None,
    metrics: Sequence[str] | None = None,
    resolution: int | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    weights_dirs: Sequence[os.PathLike] = (),
    niqe_size: int | None = None,
) -> Evaluation:
    """Restore every face of ``testset_dir/lq`` in batches, write it, and score it against ``testset_dir/hq``.

    Args:
        restore: degraded faces -> restored faces of the same size (lists of (H, W, 3) uint8 RGB arrays).
        output_dir: each restored face goes to ``output_dir/<name>.png``; ``None`` writes nothing.
        metrics: names of ``facerest.metrics.METRIC_COLUMNS`` (default: all that apply, as ``evaluate``).
        resolution: resize LQ and HQ faces to this size first (else the restorer must keep the test set's size).
        batch_size: faces restored and scored at once.
        device: where the metrics run (default: cuda if available, else cpu); waited for around each restoration.
        weights_dirs, niqe_size: see ``facerest.metrics.score_batches``.

    Returns the ``Evaluation`` (first row: the restored faces, named ``output_dir``), its ``restore_seconds`` the
    time spent in ``restore``. Raises ``FacerestError`` when the restorer changes the faces' size.
    """
    testset_dir = Path(testset_dir)
    output_dir = None if output_dir is None else Path(output_dir)
    if batch_size < 1:
        raise FacerestError(f"batch_size must be a positive integer, got {batch_size}")
    pairs = testset_pairs(testset_dir)
    device = resolve_device(device)
    seconds = 0.0

    def restored_batches():
        nonlocal seconds
        for batch in read_pairs_in_batches(pairs, batch_size):
            lq, hq = batch.images, batch.gt
            if resolution is not None:
                lq, hq = [resize_square(face, resolution) for face in lq], [resize_square(face, resolution) for face in hq]
            restored = []
            if lq:
                synchronize(device)
                started = time.perf_counter()
                restored = restore(lq)
                synchronize(device)
                seconds += time.perf_counter() - started
            _check_sizes(restored, hq)
            for name, face in zip(batch.names, restored if output_dir is not None else []):
                save_image(face, output_dir / f"{name}.png")
            yield PairBatch(batch.names, restored, hq, batch.skipped)

    label = str(output_dir or f"{testset_dir / 'lq'}, restored")
    evaluation = score_batches(
        restored_batches(), label, f"{testset_dir / 'hq'} (ground truth)", metrics=metrics, device=device,
        weights_dirs=weights_dirs, batch_size=batch_size, niqe_size=niqe_size,
    )  # fmt: skip
    evaluation.restore_seconds = seconds
    return evaluation


def testset_pairs(testset_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """The (LQ, HQ) image paths of the paired test set ``testset_dir``, matched by name; ``FacerestError`` (one line)
    when it is not one: no ``lq/`` or ``hq/`` folder, or names found in only one of them."""
    testset_dir = Path(testset_dir)
    if not testset_dir.is_dir():
        raise FacerestError(f"test set folder not found: {testset_dir}")
    missing = [name for name in ("lq", "hq") if not (testset_dir / name).is_dir()]
    if missing:
        raise FacerestError(
            f"{testset_dir} is not a paired test set: it has no {' or '.join(f'{name}/' for name in missing)} folder "
            f"(python -m facerest make-testset HQ_FOLDER {testset_dir} writes one)"
        )
    return pair_by_stem(testset_dir / "lq", testset_dir / "hq")


def aligned_restorer(
    pipeline,
    num_inference_steps: int | None = None,
    strength: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> ImageRestorer:
    """A ``FaceRestorePipeline`` as a restorer of aligned faces: its aligned path with the default fidelity, each
    face returned at its input size (a model of another resolution restores the band it resolves)."""

    def restore(faces: list[np.ndarray]) -> list[np.ndarray]:
        return pipeline(
            faces, aligned=True, num_inference_steps=num_inference_steps, strength=strength, generator=generator,
            output_type="np", progress=progress,
        ).images  # fmt: skip

    return restore


def _check_sizes(restored: list[np.ndarray], hq: list[np.ndarray]) -> None:
    if len(restored) != len(hq):
        raise FacerestError(f"the restorer returned {len(restored)} faces for {len(hq)}")
    for face, target in zip(restored, hq):
        if face.shape != target.shape:
            raise FacerestError(
                f"the restorer returned faces of shape {face.shape} for test faces of shape {target.shape}; "
                "pass the model's resolution to resize the test set"
            )
