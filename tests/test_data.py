import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from facerest.data import DegradedFaceDataset, PairedFolderDataset, collate_deferred, degrade_deferred, make_testset
from facerest.degradation import DegradationParams, degrade
from facerest.errors import FacerestError
from facerest.images import load_image, save_image

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def faces(tmp_path, ffhq_test_dir):
    """Five real 256 px faces copied to a scratch folder."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for path in sorted(ffhq_test_dir.glob("*.jpg"))[:5]:
        shutil.copy(path, folder / path.name)
    return folder


def _add_bad_files(folder: Path) -> set[str]:
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    good = (folder / sorted(p.name for p in folder.glob("*.jpg"))[0]).read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    save_image(np.zeros((20, 30, 3), np.uint8), folder / "wide.png")
    return {"empty.png", "notes.png", "truncated.jpg", "wide.png"}


def test_degraded_dataset_shapes_range_and_pairs(faces):
    dataset = DegradedFaceDataset(faces, resolution=64, seed=0)
    assert len(dataset) == 5 and dataset.skipped == []
    lq, gt = dataset[0]
    for tensor in (lq, gt):
        assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.float32
        assert tensor.min() >= -1 and tensor.max() <= 1
    assert (lq - gt).abs().mean() > 0.01  # the input really is degraded
    batch_lq, batch_gt = next(iter(DataLoader(dataset, batch_size=5)))
    assert batch_lq.shape == batch_gt.shape == (5, 3, 64, 64)


def test_flip_and_epoch_determinism(faces):
    dataset = DegradedFaceDataset(faces, resolution=64, seed=3, with_info=True)
    unflipped = DegradedFaceDataset(faces, resolution=64, seed=3, flip=False, with_info=True)
    seen = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        unflipped.set_epoch(epoch)
        for index in range(len(dataset)):
            lq, gt, info = dataset[index]
            assert info["index"] == index
            seen.add(info["flipped"])
            _, plain_gt, plain_info = unflipped[index]
            assert plain_info["flipped"] is False
            torch.testing.assert_close(gt, plain_gt.flip(-1) if info["flipped"] else plain_gt, rtol=0, atol=0)
    assert seen == {True, False}

    # an epoch is a function of (seed, epoch, index) only: a fresh dataset and DataLoader workers agree
    dataset.set_epoch(2)
    again = DegradedFaceDataset(faces, resolution=64, seed=3, with_info=True)
    again.set_epoch(2)
    torch.testing.assert_close(dataset[1][0], again[1][0], rtol=0, atol=0)
    single = torch.cat([lq for lq, _, _ in DataLoader(dataset, batch_size=2, num_workers=0)])
    workers = torch.cat([lq for lq, _, _ in DataLoader(dataset, batch_size=2, num_workers=2)])
    torch.testing.assert_close(single, workers, rtol=0, atol=0)
    dataset.set_epoch(3)
    assert not torch.equal(dataset[1][0], again[1][0])
    other_seed = DegradedFaceDataset(faces, resolution=64, seed=4)
    other_seed.set_epoch(2)
    assert not torch.equal(other_seed[1][0], again[1][0])


def test_persistent_workers_follow_set_epoch(faces):
    """Workers that live across epochs (persistent_workers=True) degrade each epoch as set_epoch says."""
    dataset = DegradedFaceDataset(faces, resolution=32, seed=5)
    loader = DataLoader(dataset, batch_size=5, num_workers=2, persistent_workers=True)
    reference = DegradedFaceDataset(faces, resolution=32, seed=5)
    epochs = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        reference.set_epoch(epoch)
        (lq, _), = list(loader)
        torch.testing.assert_close(lq, torch.stack([reference[i][0] for i in range(len(reference))]), rtol=0, atol=0)
        epochs.append(lq)
    assert dataset.epoch == 2
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])


def test_degraded_dataset_takes_a_list_of_paths(faces, tmp_path):
    cleaned = tmp_path / "cleaned"
    save_image(np.full((32, 32, 3), 200, np.uint8), cleaned / "00000.png")
    paths = sorted(faces.glob("*.jpg"))[:2] + [cleaned / "00000.png"]
    dataset = DegradedFaceDataset(paths, resolution=32)
    assert dataset.paths == paths and len(dataset) == 3
    assert dataset[2][1].shape == (3, 32, 32)


def test_degraded_dataset_skips_and_lists_bad_files(faces):
    bad = _add_bad_files(faces)
    dataset = DegradedFaceDataset(faces, resolution=32)
    assert len(dataset) == 5
    reasons = {path.name: reason for path, reason in dataset.skipped}
    assert set(reasons) == bad
    assert "empty" in reasons["empty.png"] and "not an image" in reasons["notes.png"]
    assert "truncated" in reasons["truncated.jpg"] and "not square" in reasons["wide.png"]


def test_degraded_dataset_bad_folders(tmp_path):
    with pytest.raises(FacerestError, match="folder not found"):
        DegradedFaceDataset(tmp_path / "missing", resolution=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacerestError, match="no image files"):
        DegradedFaceDataset(tmp_path / "empty", resolution=32)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"")
    with pytest.raises(FacerestError, match="none of the 1 files"):
        DegradedFaceDataset(tmp_path / "bad", resolution=32)
    with pytest.raises(FacerestError, match="list of paths is empty"):
        DegradedFaceDataset([], resolution=32)
    with pytest.raises(FacerestError, match="resolution"):
        DegradedFaceDataset(tmp_path / "bad", resolution=0)


def test_paired_folder_dataset(tmp_path, faces):
    lq_dir, hq_dir = tmp_path / "lq", tmp_path / "hq"
    hq_dir.mkdir()
    for path in sorted(faces.glob("*.jpg"))[:3]:
        save_image(load_image(path)[::4, ::4], lq_dir / f"{path.stem}.png")  # 64 px LQ, 256 px HQ, other extension
        shutil.copy(path, hq_dir / path.name)
    dataset = PairedFolderDataset(lq_dir, hq_dir)
    assert dataset.names == sorted(p.stem for p in faces.glob("*.jpg"))[:3]
    lq, gt = dataset[0]
    assert lq.shape == (3, 64, 64) and gt.shape == (3, 256, 256)
    assert lq.min() >= -1 and gt.max() <= 1
    resized = PairedFolderDataset(lq_dir, hq_dir, resolution=128)
    assert resized[2][0].shape == resized[2][1].shape == (3, 128, 128)

    (hq_dir / "extra.png").write_bytes((lq_dir / f"{dataset.names[0]}.png").read_bytes())
    (lq_dir / f"{dataset.names[1]}.png").unlink()
    with pytest.raises(FacerestError, match="file names differ") as error:
        PairedFolderDataset(lq_dir, hq_dir)
    message = str(error.value)
    assert "extra" in message and dataset.names[1] in message and "\n" not in message

    (lq_dir / "extra.png").write_bytes(b"")  # names match again; this pair is unreadable
    shutil.copy(lq_dir / f"{dataset.names[0]}.png", lq_dir / f"{dataset.names[1]}.png")
    partial = PairedFolderDataset(lq_dir, hq_dir)
    assert "extra" not in partial.names and [p.name for p, _ in partial.skipped] == ["extra.png"]

    shutil.copy(lq_dir / f"{dataset.names[0]}.png", lq_dir / f"{dataset.names[0]}.jpg")
    with pytest.raises(FacerestError, match="share the name"):
        PairedFolderDataset(lq_dir, hq_dir)


def test_make_testset_is_byte_identical_and_replayable(faces, tmp_path):
    bad = _add_bad_files(faces)
    first = make_testset(faces, tmp_path / "first", resolution=64, seed=5)
    second = make_testset(faces, tmp_path / "second", resolution=64, seed=5)
    files = sorted(p.relative_to(first.parent) for p in first.parent.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second.parent) for p in second.parent.rglob("*") if p.is_file())
    assert len(files) == 2 * 5 + 2  # and manifest.json and the marker file
    for relative in files:
        assert (first.parent / relative).read_bytes() == (second.parent / relative).read_bytes(), relative

    manifest = json.loads(first.read_text())
    assert manifest["seed"] == 5 and manifest["resolution"] == 64
    assert {entry["source"] for entry in manifest["skipped"]} == bad
    assert [entry["source"] for entry in manifest["images"]] == sorted(p.name for p in faces.glob("*.jpg") if p.name != "truncated.jpg")
    for entry in manifest["images"]:
        hq = load_image(first.parent / "hq" / f"{entry['name']}.png")
        lq = load_image(first.parent / "lq" / f"{entry['name']}.png")
        assert hq.shape == lq.shape == (64, 64, 3)
        # the manifest's parameters are enough to remake the LQ image from the HQ one
        np.testing.assert_array_equal(degrade(hq, params=DegradationParams.from_dict(entry["params"])), lq)

    # another seed gives other pairs; writing over an earlier test set replaces it
    make_testset(faces, tmp_path / "first", resolution=64, seed=6)
    assert (first.parent / "lq" / "01000.png").read_bytes() != (second.parent / "lq" / "01000.png").read_bytes()


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_make_testset_leaves_an_earlier_set_as_it_was_when_it_fails(faces, tmp_path):
    testset = tmp_path / "set"
    make_testset(faces, testset, resolution=32, seed=1)
    earlier = _snapshot(testset)
    (tmp_path / "wide").mkdir()
    save_image(np.zeros((20, 30, 3), np.uint8), tmp_path / "wide" / "a.png")
    with pytest.raises(FacerestError, match="none of the 1 files .* not square"):
        make_testset(tmp_path / "wide", testset, resolution=32)
    assert _snapshot(testset) == earlier
    assert sorted(path.name for path in tmp_path.iterdir()) == ["faces", "set", "wide"]  # no partial folder left


def test_make_testset_refuses_a_resolution_beyond_the_largest_image_before_any_work(faces, tmp_path):
    testset = tmp_path / "set"
    make_testset(faces, testset, resolution=32, seed=1)
    earlier = _snapshot(testset)
    with pytest.raises(FacerestError, match="resolution 100000 makes faces of 10000 megapixels; at most 8000 px"):
        make_testset(faces, testset, resolution=100_000)
    assert _snapshot(testset) == earlier


def test_make_testset_refuses_a_source_inside_the_output(faces, tmp_path):
    testset = tmp_path / "set"
    make_testset(faces, testset, resolution=32, seed=1)
    shutil.copytree(faces, testset / "hq" / "originals")
    before = _snapshot(testset)
    for overwrite in (False, True):
        with pytest.raises(FacerestError, match="is inside the output folder"):
            make_testset(testset / "hq" / "originals", testset, resolution=32, overwrite=overwrite)
    assert _snapshot(testset) == before


def test_make_testset_replaces_only_its_own_folders(faces, tmp_path):
    mine = tmp_path / "mine"  # a user's folder that happens to look like a test set
    (mine / "hq").mkdir(parents=True)
    shutil.copy(next(faces.glob("*.jpg")), mine / "hq" / "mine.jpg")
    (mine / "manifest.json").write_text('{"my": "notes"}')
    before = _snapshot(mine)
    with pytest.raises(FacerestError, match="not a test set written by make-testset: .*--overwrite"):
        make_testset(faces, mine, resolution=32)
    assert _snapshot(mine) == before

    testset = tmp_path / "set"
    make_testset(faces, testset, resolution=32)
    (testset / "notes.txt").write_text("mine")
    before = _snapshot(testset)
    with pytest.raises(FacerestError, match=r"also holds files make-testset did not write \(notes.txt\)"):
        make_testset(faces, testset, resolution=32, seed=3)
    assert _snapshot(testset) == before

    make_testset(faces, mine, resolution=32, overwrite=True)
    assert sorted(path.name for path in mine.iterdir()) == [".facerest-output", "hq", "lq", "manifest.json"]
    assert "hq/mine.jpg" not in _snapshot(mine)
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(FacerestError, match="exists and is not a folder"):
        make_testset(faces, tmp_path / "a-file", resolution=32, overwrite=True)


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "facerest", "make-testset", *map(str, args)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )


def test_make_testset_cli(tmp_path, faces):
    missing = _run_cli(tmp_path / "missing", tmp_path / "out")
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: folder not found") and len(missing.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    empty = _run_cli(tmp_path / "empty", tmp_path / "out", "--resolution", "32")
    assert empty.returncode == 2 and empty.stderr.strip().startswith("error: no image files")
    assert len(empty.stderr.strip().splitlines()) == 1

    bad = _add_bad_files(faces)
    made = _run_cli(faces, tmp_path / "out", "--resolution", "32", "--seed", "1")
    assert made.returncode == 1, made.stderr  # written, but without the files it skipped
    assert "wrote 5 LQ/HQ pairs" in made.stdout
    assert f"skipped {len(bad)} files" in made.stderr and all(name in made.stderr for name in bad)
    assert Image.open(tmp_path / "out" / "lq" / "01000.png").size == (32, 32)

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "manifest.json").write_text("{}")
    refused = _run_cli(faces, tmp_path / "mine", "--resolution", "32")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "is not a test set written by make-testset" in refused.stderr
    overwritten = _run_cli(faces, tmp_path / "mine", "--resolution", "32", "--overwrite")
    assert overwritten.returncode == 1 and (tmp_path / "mine" / "lq" / "01000.png").is_file()


def test_crops_are_windows_of_the_whole_degraded_pair(faces):
    """With crop_size, each pair is one window of the pair the dataset gives without it: same degradation, same
    window in the input and the ground truth, windows spread over the face."""
    whole = DegradedFaceDataset(faces, resolution=64, seed=1)
    cropped = DegradedFaceDataset(faces, resolution=64, seed=1, crop_size=24, with_info=True)
    corners = set()
    for epoch in range(4):
        whole.set_epoch(epoch)
        cropped.set_epoch(epoch)
        for index in range(len(whole)):
            lq, gt = whole[index]
            lq_crop, gt_crop, info = cropped[index]
            top, left = info["crop"]
            corners.add((top, left))
            assert lq_crop.shape == gt_crop.shape == (3, 24, 24)
            torch.testing.assert_close(lq_crop, lq[:, top : top + 24, left : left + 24], rtol=0, atol=0)
            torch.testing.assert_close(gt_crop, gt[:, top : top + 24, left : left + 24], rtol=0, atol=0)
    assert len(corners) > 10
    with pytest.raises(FacerestError, match="crop_size 65 is larger than the faces"):
        DegradedFaceDataset(faces, resolution=64, crop_size=65)


def test_deferred_degradation_gives_the_loader_pairs(faces):
    """defer_degradation: items carry the whole HQ face and its draws; degrade_deferred on a batch gives the pairs the
    data loader would (ground truth and windows bit for bit, degraded faces up to the torch path's arithmetic)."""
    for crop_size in (None, 24):
        in_loader = DegradedFaceDataset(faces, resolution=64, seed=3, crop_size=crop_size, with_info=True)
        deferred = DegradedFaceDataset(faces, resolution=64, seed=3, crop_size=crop_size, defer_degradation=True)
        in_loader.set_epoch(2)
        deferred.set_epoch(2)
        items = [deferred[index] for index in range(len(deferred))]
        assert items[0]["hq"].dtype == torch.uint8 and items[0]["hq"].shape == (3, 64, 64)  # whole faces, cut later
        lq, gt = degrade_deferred(collate_deferred(items))
        expected = [in_loader[index] for index in range(len(in_loader))]
        assert [(item["index"], item["flipped"], item["crop"]) for item in items] == [
            (info["index"], info["flipped"], info.get("crop")) for _, _, info in expected
        ]
        torch.testing.assert_close(gt, torch.stack([pair_gt for _, pair_gt, _ in expected]), rtol=0, atol=0)
        expected_lq = torch.stack([pair_lq for pair_lq, _, _ in expected])
        assert lq.shape == expected_lq.shape == (5, 3, crop_size or 64, crop_size or 64)
        levels = ((lq - expected_lq) * 127.5).abs()
        assert levels.max() <= 8.0 and levels.mean() < 0.01, (levels.max(), levels.mean())


def test_deferred_items_are_the_same_in_workers(faces):
    """The draws and noise fields made in DataLoader workers are those made in the main process."""
    dataset = DegradedFaceDataset(faces, resolution=32, seed=5, defer_degradation=True)
    batches = {
        workers: list(DataLoader(dataset, batch_size=2, num_workers=workers, collate_fn=collate_deferred))
        for workers in (0, 2)
    }
    for alone, in_worker in zip(*batches.values()):
        torch.testing.assert_close(alone["hq"], in_worker["hq"], rtol=0, atol=0)
        assert alone["params"] == in_worker["params"] and alone["crop"] == in_worker["crop"]
        for field, worker_field in zip(alone["noise"], in_worker["noise"]):
            torch.testing.assert_close(field, worker_field, rtol=0, atol=0)
        torch.testing.assert_close(degrade_deferred(alone)[0], degrade_deferred(in_worker)[0], rtol=0, atol=0)
