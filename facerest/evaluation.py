"""Score folders of images and paired test sets with ``facerest.metrics``: the one home of ``evaluate``'s table and
of "restore a paired test set and score it", the path behind ``compare``, the training scripts' ``--testset`` and
the benchmark's quality part.

``evaluate_folders`` scores a folder of restored images (and its ground truth, matched by name); ``score_batches``
scores batches however they were made, with the same metrics, columns and handling of missing weights (a metric
whose weights are missing is ``unavailable``, the others still run).

A paired test set is ``lq/`` and ``hq/`` with matching file names (``facerest.data.make_testset``). The restorer of
``restore_and_score`` is any callable from a batch of degraded faces to restored faces of the same size, both as
lists of RGB uint8 arrays; ``aligned_restorer`` makes one of a ``FaceRestorePipeline`` (its aligned path, as
``restore --aligned`` runs it).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .devices import resolve_device, synchronize
from .errors import FacerestError, ImageReadError
from .images import images_by_relative_name, load_image, pair_by_name, pair_by_stem, resize_square, save_image
from .metrics import (
    FIDInception, FIDStatistics, frechet_distance, identity_angle, inception_features, load_lpips, load_niqe_params,
    lpips_distance, niqe, psnr, ssim,
)
from .models.arcface import ArcFaceResNet18
from .output_folders import RESTORE_COMMAND, RESTORED_FACES_FOLDER, output_folder_command
from .table import Row, Table

logger = logging.getLogger(__name__)

# Metric name (as in --metrics) -> table column, in the field's usual column order.
METRIC_COLUMNS = {
    "lpips": "LPIPS↓",
    "lpips-random": "LPIPS↓ (random AlexNet, not comparable)",
    "fid": "FID↓",
    "niqe": "NIQE↓",
    "psnr": "PSNR↑ (RGB)",
    "ssim": "SSIM↑ (RGB)",
    "psnr-y": "PSNR↑ (Y)",
    "ssim-y": "SSIM↑ (Y)",
    "identity": "Identity↓ (ArcFace angle, °)",
}
FULL_REFERENCE_METRICS = {"lpips", "lpips-random", "psnr", "ssim", "psnr-y", "ssim-y", "identity"}
# Metrics computed only when asked for by name: a random AlexNet's LPIPS (offered when lpips's weights are missing),
# and PSNR and SSIM on the luma (BT.601 Y), as papers that follow basicsr's test_y_channel report them.
ON_REQUEST_METRICS = {"lpips-random", "psnr-y", "ssim-y"}
UNAVAILABLE = "unavailable"


@dataclass
class Evaluation(Table):
    """A metrics table (rows: the restored images, then the ground truth's NIQE), with seconds per metric, the
    files skipped, and the restoration's seconds when the images were restored by ``restore_and_score``."""

    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unusable files and why (also in the notes)
    restore_seconds: float | None = None


class _MeanScorer:
    """Averages a per-image metric over the batches it is given; ``score(restored, gt)`` returns the values."""

    def __init__(self, score):
        self.score = score
        self.values: list[float] = []

    def update(self, restored: list[np.ndarray], gt: list[np.ndarray] | None) -> None:
        self.values.extend(self.score(restored, gt))

    def result(self) -> float:
        return float(np.mean(self.values))


class _FIDScorer:
    """Collects Inception features of the restored images (and of the ground truth unless given statistics)."""

    def __init__(self, model: FIDInception, reference: FIDStatistics | None, batch_size: int):
        self.model, self.reference, self.batch_size = model, reference, batch_size
        self.features: list[np.ndarray] = []
        self.gt_features: list[np.ndarray] = []

    def update(self, restored: list[np.ndarray], gt: list[np.ndarray] | None) -> None:
        self.features.append(inception_features(restored, self.model, self.batch_size))
        if self.reference is None:
            self.gt_features.append(inception_features(gt, self.model, self.batch_size))

    def result(self) -> float:
        statistics = FIDStatistics.from_features(np.concatenate(self.features))
        reference = self.reference or FIDStatistics.from_features(np.concatenate(self.gt_features))
        if reference.mu.shape != statistics.mu.shape:
            raise FacerestError(
                f"the FID statistics have {len(reference.mu)} dimensions, Inception gives {len(statistics.mu)}"
            )
        return frechet_distance(statistics.mu, statistics.sigma, reference.mu, reference.sigma)


def evaluate_folders(
    restored_dir: str | os.PathLike,
    gt_dir: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    fid_stats: str | os.PathLike | None = None,
    weights_dirs: Sequence[os.PathLike] = (),
    batch_size: int = 16,
) -> Evaluation:
    """Score the images of ``restored_dir`` and its sub-folders, against those of ``gt_dir`` matched by path below the
    folder without extension (``restore``'s face crops, ``faces/``, left out).

    ``metrics`` are names from ``METRIC_COLUMNS``; by default every metric that applies: the no-reference ones
    (NIQE, and FID when ``fid_stats`` is given) without ``gt_dir``, all of them with it, plus ``lpips-random`` when
    ``lpips`` is unavailable (its AlexNet weights missing); ``psnr-y`` and ``ssim-y`` (on the BT.601 luma) only when
    named. With ``gt_dir``, a second row gives the ground truth's NIQE.
    FID compares with ``fid_stats`` (an ``.npz`` from ``save_fid_statistics``) when given, else with ``gt_dir``.

    A metric whose weights cannot be found shows as ``unavailable``, with a note naming the file and the places
    looked in, and the other metrics still run. Unusable files are skipped and listed in the notes. Raises
    ``FacerestError`` for a missing or empty folder, file names that differ, an unknown or inapplicable metric.
    """
    pairs = _pair_files(restored_dir, gt_dir)
    gt_label = None if gt_dir is None else f"{gt_dir} (ground truth)"
    return score_batches(
        read_pairs_in_batches(pairs, batch_size), str(restored_dir), gt_label, metrics=metrics, device=device,
        fid_stats=fid_stats, weights_dirs=weights_dirs, batch_size=batch_size,
    )  # fmt: skip


def score_batches(
    batches: Iterable["PairBatch"],
    label: str,
    gt_label: str | None = None,
    metrics: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    fid_stats: str | os.PathLike | None = None,
    weights_dirs: Sequence[os.PathLike] = (),
    batch_size: int = 16,
    niqe_size: int | None = None,
) -> Evaluation:
    """The metrics table of batches of images and their ground truth (``PairBatch``), as ``evaluate_folders``
    describes; ``label`` and ``gt_label`` name the two rows (``gt_label`` None: no ground truth). With
    ``niqe_size``, NIQE scores the images enlarged (bicubic) to that size, for faces under NIQE's two 96-px blocks."""
    names = _choose_metrics(metrics, has_gt=gt_label is not None, has_fid_stats=fid_stats is not None)
    extra_dirs = tuple(map(Path, weights_dirs))
    torch_device = resolve_device(device)
    scorers: dict[tuple[str, str], object] = {}  # (metric name, "restored" or "gt" row) -> scorer
    notes: list[str] = []
    seconds: dict[str, float] = {}

    def timed(name: str, action):
        """Run one step of a metric, adding to its time; a ``FacerestError`` makes the metric unavailable."""
        started = time.perf_counter()
        try:
            return action()
        except FacerestError as error:
            notes.append(f"{METRIC_COLUMNS[name]} {UNAVAILABLE}: {error}")
            for key in [key for key in scorers if key[0] == name]:
                del scorers[key]
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

    def build(name: str) -> None:
        built = _build_scorers(name, gt_label is not None, torch_device, extra_dirs, fid_stats, batch_size, niqe_size)
        scorers.update({(name, row): scorer for row, scorer in built})

    for name in list(names):
        timed(name, lambda: build(name))
    if metrics is None and "lpips" in names and not any(key[0] == "lpips" for key in scorers):
        names.insert(names.index("lpips") + 1, "lpips-random")
        timed("lpips-random", lambda: build("lpips-random"))

    skipped, count = [], 0
    for batch in batches:
        skipped += batch.skipped
        count += len(batch.images)
        for key in list(scorers):
            if batch.images and key in scorers:  # a metric may have been dropped after its other row failed
                timed(key[0], lambda: scorers[key].update(batch.images, batch.gt))
    if count == 0:
        raise FacerestError(f"no usable images in {label} ({_first_reasons(skipped)})")

    rows: dict[str, Row] = {"restored": {"Images": label, "Count": count}}
    rows["restored"].update({METRIC_COLUMNS[name]: UNAVAILABLE for name in names})
    if gt_label is not None and "niqe" in names:
        rows["gt"] = {"Images": gt_label, "Count": count, METRIC_COLUMNS["niqe"]: UNAVAILABLE}
    for key in list(scorers):
        value = timed(key[0], scorers[key].result) if key in scorers else None
        if key in scorers:
            rows[key[1]][METRIC_COLUMNS[key[0]]] = value
    notes += [f"skipped {path}: {reason}" for path, reason in skipped]
    columns = ["Images", "Count", *(METRIC_COLUMNS[name] for name in names)]
    return Evaluation(columns=columns, rows=list(rows.values()), notes=notes, seconds=seconds, skipped=skipped)


def _first_reasons(skipped: list[tuple[Path, str]], shown: int = 3) -> str:
    """Why the first ``shown`` images were skipped, and how many more were: one line however large the folder."""
    listed = "; ".join(f"{path.name}: {reason}" for path, reason in skipped[:shown])
    more = len(skipped) - shown
    return listed + (f"; and {more} more" if more > 0 else "")


def _choose_metrics(metrics: Sequence[str] | None, has_gt: bool, has_fid_stats: bool) -> list[str]:
    def applies(name: str) -> bool:
        if name == "fid":
            return has_gt or has_fid_stats
        return has_gt or name not in FULL_REFERENCE_METRICS

    if metrics is None:
        return [name for name in METRIC_COLUMNS if name not in ON_REQUEST_METRICS and applies(name)]
    for name in metrics:
        if name not in METRIC_COLUMNS:
            raise FacerestError(f"unknown metric {name!r}; choose from {', '.join(METRIC_COLUMNS)}")
        if not applies(name):
            needs = "--gt or --fid-stats" if name == "fid" else "--gt (ground-truth images)"
            raise FacerestError(f"metric {name!r} needs {needs}")
    return [name for name in METRIC_COLUMNS if name in metrics]


def _build_scorers(
    name: str, has_gt: bool, device: torch.device, extra_dirs: tuple[Path, ...], fid_stats, batch_size: int,
    niqe_size: int | None = None,
):
    """``(row, scorer)`` pairs for one metric: the restored row, plus the ground-truth row for NIQE."""
    if name in ("psnr", "psnr-y"):
        return [("restored", _MeanScorer(functools.partial(psnr, on_luma=name == "psnr-y")))]
    if name in ("ssim", "ssim-y"):
        return [("restored", _MeanScorer(functools.partial(ssim, on_luma=name == "ssim-y")))]
    if name == "niqe":
        params = load_niqe_params(extra_dirs=extra_dirs)

        def score(images: list[np.ndarray]) -> np.ndarray:
            return niqe(images if niqe_size is None else [resize_square(image, niqe_size) for image in images], params)

        scorers = [("restored", _MeanScorer(lambda restored, gt: score(restored)))]
        return scorers + ([("gt", _MeanScorer(lambda restored, gt: score(gt)))] if has_gt else [])
    if name in ("lpips", "lpips-random"):
        model = load_lpips(random_backbone=name == "lpips-random", device=device, extra_dirs=extra_dirs)
        return [("restored", _MeanScorer(lambda restored, gt: lpips_distance(restored, gt, model, batch_size)))]
    if name == "identity":
        arcface = ArcFaceResNet18.from_pretrained(extra_dirs=extra_dirs).to(device)
        return [("restored", _MeanScorer(lambda restored, gt: identity_angle(restored, gt, arcface, batch_size)))]
    if name == "fid":
        reference = FIDStatistics.load(fid_stats) if fid_stats is not None else None
        model = FIDInception.from_pretrained(extra_dirs=extra_dirs).to(device)
        return [("restored", _FIDScorer(model, reference, batch_size))]
    raise ValueError(f"unknown metric {name!r}")


def _pair_files(restored_dir, gt_dir) -> list[tuple[Path, Path | None]]:
    """(restored, ground truth) paths of the two folders and their sub-folders, matched by path below the folder
    without extension; in a folder that ``restore`` wrote, its face crops (``faces/``) are left out. One-line errors
    for any mismatch."""
    face_crops = [Path(restored_dir) / RESTORED_FACES_FOLDER] if output_folder_command(restored_dir) == RESTORE_COMMAND else []
    restored = images_by_relative_name(restored_dir, leave_out=face_crops)
    if gt_dir is None:
        return [(path, None) for path in restored.values()]
    return pair_by_name(restored, images_by_relative_name(gt_dir), restored_dir, gt_dir)


@dataclass
class PairBatch:
    """One batch of readable pairs: their names (file stems), the images, the ground truth (None without it), and
    the pairs left out as (path, reason)."""

    names: list[str]
    images: list[np.ndarray]
    gt: list[np.ndarray] | None
    skipped: list[tuple[Path, str]]


def read_pairs_in_batches(pairs: Sequence[tuple[Path, Path | None]], batch_size: int) -> Iterator[PairBatch]:
    """The pairs read in batches of ``batch_size``, ``gt`` None when there is no ground truth.

    A pair with an unusable file (or two sizes) is left out and listed in ``skipped`` as (path, reason).
    """
    has_gt = bool(pairs) and pairs[0][1] is not None
    for start in range(0, len(pairs), batch_size):
        batch = PairBatch([], [], [] if has_gt else None, [])
        for restored_path, gt_path in pairs[start : start + batch_size]:
            try:
                image = load_image(restored_path)
                gt_image = load_image(gt_path) if has_gt else None
            except ImageReadError as error:
                batch.skipped.append((Path(error.source), error.reason))
                continue
            if has_gt and gt_image.shape != image.shape:
                sizes = f"{image.shape[1]}x{image.shape[0]} vs {gt_image.shape[1]}x{gt_image.shape[0]}"
                batch.skipped.append((restored_path, f"its size differs from the ground truth {gt_path.name} ({sizes})"))
                continue
            batch.names.append(restored_path.stem)
            batch.images.append(image)
            if has_gt:
                batch.gt.append(gt_image)
        yield batch


def folder_fid_statistics(
    folder: str | os.PathLike, model: FIDInception, batch_size: int = 32
) -> tuple[FIDStatistics, list[tuple[Path, str]]]:
    """Inception statistics of the readable images of ``folder`` and its sub-folders (those ``evaluate`` scores), and
    the files skipped with the reason."""
    features, skipped = [], []
    for batch in read_pairs_in_batches(_pair_files(folder, None), batch_size):
        skipped += batch.skipped
        if batch.images:
            features.append(inception_features(batch.images, model, batch_size))
    return FIDStatistics.from_features(np.concatenate(features) if features else np.zeros((0, 2048))), skipped


def save_fid_statistics(
    folder: str | os.PathLike,
    path: str | os.PathLike,
    model: FIDInception | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 32,
) -> FIDStatistics:
    """Compute the Inception statistics of ``folder`` and save them to ``path`` (``.npz``) for later FIDs."""
    model = model if model is not None else FIDInception.from_pretrained().to(resolve_device(device))
    statistics, skipped = folder_fid_statistics(folder, model, batch_size)
    for bad_path, reason in skipped:
        logger.warning("skipped %s: %s", bad_path, reason)
    statistics.save(path)
    return statistics


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
        metrics: names of ``METRIC_COLUMNS`` (default: all that apply, as ``evaluate``).
        resolution: resize LQ and HQ faces to this size first (else the restorer must keep the test set's size).
        batch_size: faces restored and scored at once.
        device: where the metrics run (default: cuda if available, else cpu); waited for around each restoration.
        weights_dirs, niqe_size: see ``score_batches``.

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
