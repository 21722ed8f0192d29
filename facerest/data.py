"""Datasets of face pairs (degraded input, ground truth), and the synthesis of paired test sets.

- ``DegradedFaceDataset``: HQ faces degraded on the fly (training), reproducible from (seed, epoch, index), in the
  data loader or (``defer_degradation``, ``collate_deferred``, ``degrade_deferred``) in batches on the training device;
- ``PairedFolderDataset``: LQ and HQ images matched by file name (validation, evaluation);
- ``make_testset``: a CelebA-Test-style paired folder made with a fixed seed, and its manifest.

Unreadable files (empty, truncated, not an image) and images that are not square are skipped when a
dataset is built and listed in its ``skipped`` attribute (the test-set manifest lists them too).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .degradation import DegradationConfig, degrade, degrade_batch, noise_field, sample_degradation
from .errors import FacerestError
from .images import (
    DEFAULT_MAX_PIXELS,
    image_to_tensor,
    index_by_stem,
    iter_images,
    list_images,
    load_image,
    pair_by_stem,
    resize_square,
    save_image,
    uint8_to_tensor,
)
from .output_folders import MARKER_NAME, is_inside, mark_output_folder, output_folder_command

PathLike = Union[str, os.PathLike]

TESTSET_COMMAND = "make-testset"
TESTSET_ENTRIES = {"lq", "hq", "manifest.json", MARKER_NAME}  # what make_testset writes into its folder


class DegradedFaceDataset(Dataset):
    """Aligned HQ faces, each returned with a freshly degraded copy: ``(lq, gt)``, float32 (3, R, R) in [-1, 1].

    ``hq`` is a folder or a list of image paths. Faces are resized to ``resolution``, flipped horizontally
    with probability 1/2 (when ``flip``) and degraded with ``config`` (default: GFP-GAN's model).
    All randomness of item ``i`` comes from ``numpy.random.default_rng([seed, epoch, i])``: an epoch is the
    same whatever the number of DataLoader workers, and a resumed run sees the same pairs. Call
    ``set_epoch`` before each epoch, before the DataLoader iterator is created; the epoch lives in shared memory,
    so it reaches DataLoader workers that persist across epochs (``persistent_workers=True``).
    With ``crop_size``, each pair is cut down to the same random ``crop_size`` window of the degraded and the
    ground-truth face, after the degradation (which therefore still sees the whole face): a fully convolutional
    model trains on windows and restores whole faces.
    With ``with_info=True`` items are ``(lq, gt, {"index", "flipped"})``, and with ``crop_size`` the dict's ``crop``
    is the window's ``(top, left)`` (no ``None`` entry without crops, which DataLoader's default collation refuses).

    With ``defer_degradation=True`` nothing is degraded here: items are dicts of the whole HQ face (``hq``, uint8
    (3, R, R), flipped) and everything its degradation drew (``params``, its ``noise`` field as a tensor or ``None``,
    ``index``, ``flipped``, ``crop``), from the same random numbers as above. Batch them with ``collate_deferred`` and
    degrade the batch on the training device with ``degrade_deferred``, which gives the same pairs up to the torch
    path's arithmetic (``degrade_batch``). The workers then only decode and draw, and the device does the rest.
    """

    def __init__(
        self,
        hq: PathLike | Iterable[PathLike],
        resolution: int,
        config: DegradationConfig | None = None,
        flip: bool = True,
        seed: int = 0,
        with_info: bool = False,
        crop_size: int | None = None,
        defer_degradation: bool = False,
    ):
        _check_positive_int("resolution", resolution)
        if crop_size is not None:
            _check_positive_int("crop_size", crop_size)
            if crop_size > resolution:
                raise FacerestError(f"crop_size {crop_size} is larger than the faces ({resolution} px)")
        _check_non_negative_int("seed", seed)
        if isinstance(hq, (str, os.PathLike)):
            candidates, source = list_images(hq), str(hq)
        else:
            candidates, source = [Path(path) for path in hq], "the given list"
            if not candidates:
                raise FacerestError("no HQ images: the list of paths is empty")
        self.paths, self.skipped = _usable_images(candidates, require_square=True)
        if not self.paths:
            raise FacerestError(f"none of the {len(candidates)} files of {source} is a usable image: {_first_skip(self.skipped)}")
        self.resolution = resolution
        self.config = config or DegradationConfig()
        self.flip = flip
        self.seed = seed
        self.with_info = with_info
        self.crop_size = crop_size
        self.defer_degradation = defer_degradation
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # workers map the same memory

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        _check_non_negative_int("epoch", epoch)
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        index = _check_index(index, len(self))
        rng = np.random.default_rng([self.seed, self.epoch, index])
        gt = resize_square(load_image(self.paths[index]), self.resolution)
        flipped = bool(rng.random() < 0.5) and self.flip  # always drawn, so `flip` does not change the degradation
        if flipped:
            gt = np.ascontiguousarray(gt[:, ::-1])
        params = sample_degradation(self.config, rng)
        crop = None
        if self.crop_size is not None:  # drawn after the degradation, so cropping does not change it
            crop = tuple(int(value) for value in rng.integers(0, self.resolution - self.crop_size + 1, size=2))
        if self.defer_degradation:
            noise = noise_field(params, *gt.shape[:2])
            return {
                "hq": torch.from_numpy(gt).permute(2, 0, 1).contiguous(),
                "params": params,
                "noise": None if noise is None else torch.from_numpy(noise),
                "index": index,
                "flipped": flipped,
                "crop": crop,
                "crop_size": self.crop_size,
            }
        lq = degrade(gt, params=params)
        if crop is not None:
            window = np.s_[crop[0] : crop[0] + self.crop_size, crop[1] : crop[1] + self.crop_size]
            lq, gt = lq[window], gt[window]
        pair = (image_to_tensor(lq), image_to_tensor(gt))
        if not self.with_info:
            return pair
        return (*pair, {"index": index, "flipped": flipped, **({} if crop is None else {"crop": crop})})


def collate_deferred(items: list[dict]) -> dict:
    """Batch the items of a ``DegradedFaceDataset(defer_degradation=True)`` (a DataLoader's ``collate_fn``): ``hq`` and
    ``index``, ``flipped`` stacked into tensors, ``params``, ``noise`` and ``crop`` as lists, the dataset's ``crop_size``."""
    return {
        "hq": torch.stack([item["hq"] for item in items]),
        "params": [item["params"] for item in items],
        "noise": [item["noise"] for item in items],
        "index": torch.tensor([item["index"] for item in items]),
        "flipped": torch.tensor([item["flipped"] for item in items]),
        "crop": [item["crop"] for item in items],
        "crop_size": items[0]["crop_size"],
    }


def degrade_deferred(batch: dict, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lq, gt)`` float32 (N, 3, R, R) in [-1, 1] from a ``collate_deferred`` batch: the whole faces degraded together
    on ``device`` (default: that of ``batch["hq"]``) by ``degrade_batch``, then cut to each item's crop window."""
    hq = batch["hq"].to(device if device is not None else batch["hq"].device, non_blocking=True)
    lq = degrade_batch(hq, batch["params"], noise=batch["noise"])
    size = batch["crop_size"]
    if size is not None:
        windows = [np.s_[:, top : top + size, left : left + size] for top, left in batch["crop"]]
        lq = torch.stack([image[window] for image, window in zip(lq, windows)])
        hq = torch.stack([image[window] for image, window in zip(hq, windows)])
    return uint8_to_tensor(lq), uint8_to_tensor(hq)


class PairedFolderDataset(Dataset):
    """``(lq, gt)`` tensors in [-1, 1] from two folders whose images are paired by file stem (``a.png`` <-> ``a.jpg``).

    Both folders must hold the same names (else ``FacerestError`` naming the differences). With
    ``resolution``, both images are resized to (resolution, resolution). ``names`` lists the pairs' stems.
    """

    def __init__(self, lq_dir: PathLike, hq_dir: PathLike, resolution: int | None = None):
        if resolution is not None:
            _check_positive_int("resolution", resolution)
        pairs = pair_by_stem(lq_dir, hq_dir)
        _, self.skipped = _usable_images([path for pair in pairs for path in pair], require_square=False)
        unusable = {path for path, _ in self.skipped}
        pairs = [(lq, hq) for lq, hq in pairs if lq not in unusable and hq not in unusable]
        if not pairs:
            raise FacerestError(f"no readable LQ/HQ pair in {lq_dir} and {hq_dir}: {_first_skip(self.skipped)}")
        self.names = [lq.stem for lq, _ in pairs]
        self.lq_paths = [lq for lq, _ in pairs]
        self.hq_paths = [hq for _, hq in pairs]
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = _check_index(index, len(self))
        lq, gt = load_image(self.lq_paths[index]), load_image(self.hq_paths[index])
        if self.resolution is not None:
            lq, gt = resize_square(lq, self.resolution), resize_square(gt, self.resolution)
        return image_to_tensor(lq), image_to_tensor(gt)


def make_testset(
    hq_dir: PathLike,
    out_dir: PathLike,
    resolution: int = 512,
    seed: int = 0,
    config: DegradationConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a paired test set the way CelebA-Test was made: degrade held-out HQ faces with a fixed seed.

    Writes ``out_dir/hq/<stem>.png`` (the face resized to ``resolution``), ``out_dir/lq/<stem>.png`` (its
    degraded copy, same size) and ``out_dir/manifest.json`` (seed, config, and per image its source file and
    degradation parameters; also the skipped files and why). Image ``<stem>`` is degraded with
    ``numpy.random.default_rng([seed, key(stem)])``, key = the first 8 bytes of SHA-256(stem), so its pair
    does not depend on the other files. The same arguments give the same bytes. Returns the manifest's path.

    Nothing in ``out_dir`` changes until the new test set is complete: it is written into a folder beside
    ``out_dir`` and swapped in at the end, so a failed run leaves an earlier test set as it was. ``out_dir`` must
    be new, empty, or a test set written by ``make_testset`` (its marker file, ``output_folders.MARKER_NAME``,
    says so, not any ``manifest.json``); ``overwrite=True`` replaces any other folder, with all it holds.
    ``hq_dir`` may not lie inside ``out_dir``.
    """
    _check_positive_int("resolution", resolution)
    if resolution * resolution > DEFAULT_MAX_PIXELS:
        raise FacerestError(
            f"resolution {resolution} makes faces of {resolution * resolution / 1e6:.0f} megapixels; at most "
            f"{math.isqrt(DEFAULT_MAX_PIXELS)} px ({DEFAULT_MAX_PIXELS / 1e6:.0f} MP, the largest image facerest reads)"
        )
    _check_non_negative_int("seed", seed)
    config = config or DegradationConfig()
    hq_dir, out_dir = Path(hq_dir), Path(out_dir)
    sources = index_by_stem(list_images(hq_dir))
    _check_testset_folder(out_dir, hq_dir, overwrite)

    target = out_dir.resolve()
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)
        records, skipped = _write_testset_pairs(sources, staging, resolution, seed, config)
        if not records:
            raise FacerestError(f"none of the {len(sources)} files of {hq_dir} is a usable image: {_first_skip(skipped)}")
        manifest = {
            "hq_dir": str(hq_dir.resolve()),
            "resolution": resolution,
            "seed": seed,
            "rng": "numpy.random.default_rng([seed, int.from_bytes(sha256(name.encode()).digest()[:8], 'big')])",
            "config": config.to_dict(),
            "images": records,
            "skipped": [{"source": path.name, "reason": reason} for path, reason in skipped],
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        mark_output_folder(staging, TESTSET_COMMAND)
        _replace_folder(target, staging)
    except OSError as error:
        raise FacerestError(f"cannot write the test set {out_dir}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "manifest.json"


def _write_testset_pairs(
    sources: dict[str, Path], folder: Path, resolution: int, seed: int, config: DegradationConfig
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Write the HQ/LQ pair of each usable source into ``folder``; return their manifest records and the skipped files."""
    records, skipped = [], []
    for path, image, reason in _iter_usable_images(list(sources.values()), require_square=True):
        if image is None:
            skipped.append((path, reason))
            continue
        hq = resize_square(image, resolution)
        rng = np.random.default_rng([seed, _name_key(path.stem)])
        lq, params = degrade(hq, config, rng=rng, return_params=True)
        save_image(hq, folder / "hq" / f"{path.stem}.png")
        save_image(lq, folder / "lq" / f"{path.stem}.png")
        records.append({"name": path.stem, "source": path.name, "source_size": [image.shape[1], image.shape[0]], "params": params.to_dict()})
    return records, skipped


def _iter_usable_images(paths: list[Path], require_square: bool):
    """Like ``iter_images``, and with ``require_square`` an image that is not square counts as unusable."""
    for path, image, reason in iter_images(paths):
        if image is not None and require_square and image.shape[0] != image.shape[1]:
            image, reason = None, f"not square ({image.shape[1]}x{image.shape[0]}); expected an aligned square face crop"
        yield path, image, reason


def _usable_images(paths: list[Path], require_square: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split ``paths`` into the usable images and the others, each with the reason."""
    usable, skipped = [], []
    for path, image, reason in _iter_usable_images(paths, require_square):
        if image is None:
            skipped.append((path, reason))
        else:
            usable.append(path)
    return usable, skipped


def _check_testset_folder(out_dir: Path, hq_dir: Path, overwrite: bool) -> None:
    """Refuse an ``out_dir`` whose replacement would lose the user's files (see ``make_testset``)."""
    if is_inside(hq_dir, out_dir):
        raise FacerestError(f"the HQ folder {hq_dir} is inside the output folder {out_dir}, which the test set replaces: choose another output folder")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FacerestError(f"output path exists and is not a folder: {out_dir}")
    if overwrite or not any(out_dir.iterdir()):
        return
    choose = "choose a new folder, or overwrite it with all it holds (--overwrite)"
    if output_folder_command(out_dir) != TESTSET_COMMAND:
        raise FacerestError(f"output folder {out_dir} is not empty and is not a test set written by make-testset: {choose}")
    foreign = sorted(path.name for path in out_dir.iterdir() if path.name not in TESTSET_ENTRIES)
    if foreign:
        raise FacerestError(f"the test set {out_dir} also holds files make-testset did not write ({', '.join(foreign)}): {choose}")


def _replace_folder(target: Path, new: Path) -> None:
    """Put the folder ``new`` in the place of ``target`` (a folder beside it, replaced when it exists)."""
    if not target.exists():
        new.rename(target)
        return
    old = new.with_name(new.name + "-old")
    target.rename(old)
    try:
        new.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _first_skip(skipped: list[tuple[Path, str]]) -> str:
    path, reason = skipped[0]
    return f"{path}: {reason}"


def _check_index(index: int, length: int) -> int:
    if not -length <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} items")
    return index % length


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise FacerestError(f"{name} must be a positive integer, got {value!r}")


def _check_non_negative_int(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise FacerestError(f"{name} must be a non-negative integer, got {value!r}")
