"""The cleaning pass of extrinsic iterative learning: replaced fraction, files, manifest, resuming after a kill."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, shared_path

from facerest.errors import FacerestError
from facerest.images import image_to_tensor, load_image, save_image, tensor_to_image
from facerest.metrics import load_niqe_params
from facerest.training.extrinsic import CleaningPass, choose_replaced, cleaning_niqe, load_manifest


def negate(targets: torch.Tensor, indices: list[int]) -> torch.Tensor:
    """A stand-in restorer whose output is easy to check: the photographic negative."""
    return -targets


@pytest.fixture
def pool(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "hq"
    paths = []
    for index in range(6):
        path = folder / f"face{index}.png"
        save_image(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), path)
        paths.append(str(path))
    return paths


def make_pass(folder, pool, replaced, model_step=10) -> CleaningPass:
    return CleaningPass(folder=folder, round_index=1, model_step=model_step, pool=pool, replaced=replaced, resolution=32)


def test_choose_replaced_draws_the_fraction_reproducibly():
    chosen = choose_replaced(100, 0.3, seed=[0, 1])
    assert len(chosen) == 30 and len(set(chosen)) == 30
    assert chosen == sorted(chosen) and 0 <= chosen[0] and chosen[-1] < 100
    assert chosen == choose_replaced(100, 0.3, seed=[0, 1])
    assert chosen != choose_replaced(100, 0.3, seed=[0, 2])
    assert choose_replaced(7, 0.5, seed=0) == sorted(choose_replaced(7, 0.5, seed=0)) and len(choose_replaced(7, 0.5, seed=0)) == 4
    assert choose_replaced(5, 0.0, seed=0) == []
    assert choose_replaced(5, 1.0, seed=0) == [0, 1, 2, 3, 4]
    with pytest.raises(FacerestError, match="fraction"):
        choose_replaced(5, 1.5, seed=0)


def test_cleaning_pass_writes_cleaned_targets_and_manifest(tmp_path, pool):
    replaced = [1, 3, 4]
    cleaning = make_pass(tmp_path / "round-1", pool, replaced)
    assert cleaning.pending() == replaced
    assert load_manifest(cleaning.folder) is None

    cleaning.run(negate, cleaning.pending(), batch_size=2)
    manifest = cleaning.finish({"sampling_steps": 25})

    assert manifest == load_manifest(cleaning.folder)
    assert manifest["round"] == 1 and manifest["model_step"] == 10 and manifest["sampling_steps"] == 25
    assert manifest["pool_size"] == 6 and manifest["num_replaced"] == 3 and manifest["replaced_fraction"] == 0.5
    assert [record["index"] for record in manifest["replaced"]] == replaced
    for index, entry in enumerate(manifest["pool"]):
        if index not in replaced:
            assert entry == pool[index]
            continue
        record = manifest["replaced"][replaced.index(index)]
        assert record["source"] == pool[index] and record["round"] == 1 and record["model_step"] == 10
        assert Path(entry) == cleaning.folder / record["cleaned"]
        target = cv2.resize(load_image(pool[index]), (32, 32), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(load_image(entry), tensor_to_image(-image_to_tensor(target)))
    assert not list(cleaning.folder.glob("records-*.jsonl"))  # merged into the manifest


def test_interrupted_pass_redoes_only_the_missing_images(tmp_path, pool):
    replaced = [0, 2, 3, 5]
    folder = tmp_path / "round-1"
    calls = []

    def fails_after_two_batches(targets, indices):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(indices)
        return -targets

    first = make_pass(folder, pool, replaced)
    with pytest.raises(KeyboardInterrupt):
        first.run(fails_after_two_batches, first.pending(), batch_size=1)
    assert calls == [[0], [2]]
    with pytest.raises(RuntimeError, match="incomplete: 2 images"):
        first.finish()

    # Records of another model (an earlier run's pass) and a line cut short by a kill are not taken as done.
    stale = {"index": 3, "source": pool[3], "cleaned": "images/x.png", "round": 1, "model_step": 999}
    (folder / "records-1.jsonl").write_text(json.dumps(stale) + "\n" + '{"index": 5, "sou')
    save_image(np.zeros((32, 32, 3), np.uint8), first.cleaned_path(3))
    resumed = make_pass(folder, pool, replaced)
    assert resumed.pending() == [3, 5]

    written = {index: first.cleaned_path(index).stat().st_mtime_ns for index in (0, 2)}
    cleaned = []
    resumed.run(lambda targets, indices: cleaned.append(indices) or -targets, resumed.pending()[1:], records_name="1")
    resumed.run(lambda targets, indices: cleaned.append(indices) or -targets, resumed.pending()[:1], records_name="0")
    assert cleaned == [[5], [3]]
    assert {index: first.cleaned_path(index).stat().st_mtime_ns for index in (0, 2)} == written
    manifest = resumed.finish()
    assert [record["index"] for record in manifest["replaced"]] == replaced
    assert all(record["model_step"] == 10 for record in manifest["replaced"])


def test_killed_pass_resumes_where_it_stopped(tmp_path, pool):
    """SIGKILL a process in the middle of a pass; a new pass skips what was written and recorded."""
    folder = tmp_path / "round-1"
    replaced = [0, 1, 2, 3, 4, 5]
    script = textwrap.dedent(
        f"""
        import time
        from facerest.training.extrinsic import CleaningPass

        def slow_negate(targets, indices):
            time.sleep(0.4)
            return -targets

        cleaning = CleaningPass(folder={str(folder)!r}, round_index=1, model_step=10, pool={pool!r},
                                replaced={replaced!r}, resolution=32)
        cleaning.run(slow_negate, cleaning.pending(), batch_size=1, progress=False)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    records = folder / "records-0.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        if records.is_file() and len(records.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, f"the pass ended before it could be killed: {process.stderr.read()}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    resumed = make_pass(folder, pool, replaced)
    done = [index for index in replaced if index not in resumed.pending()]
    assert 2 <= len(done) < len(replaced)
    written = {index: resumed.cleaned_path(index).stat().st_mtime_ns for index in done}
    redone = []
    resumed.run(lambda targets, indices: redone.extend(indices) or -targets, resumed.pending())
    assert redone == [index for index in replaced if index not in done]
    assert {index: resumed.cleaned_path(index).stat().st_mtime_ns for index in done} == written
    assert len(resumed.finish()["replaced"]) == len(replaced)


def test_cleaning_niqe_compares_cleaned_and_original_targets(tmp_path):
    params = load_niqe_params(shared_path("weights", "niqe", "niqe_pris_params.npz"))
    faces = [str(path) for path in sorted(shared_path("data", "ffhq256", "test").iterdir())[:3]]

    unchanged = CleaningPass(tmp_path / "same", 1, 0, faces, [0, 1, 2], resolution=64)
    unchanged.run(lambda targets, indices: targets, [0, 1, 2])
    unchanged.finish()
    scores = cleaning_niqe(unchanged.folder, params)
    assert scores["upscale"] == 3 and scores["num_images"] == 3  # 64 px -> 192 px: two 96 px blocks per side
    assert np.isfinite(scores["original"]) and scores["cleaned"] == pytest.approx(scores["original"], abs=1e-9)

    blurred = CleaningPass(tmp_path / "blur", 1, 0, faces, [0, 1, 2], resolution=64)
    blur = torch.nn.functional.avg_pool2d
    blurred.run(lambda targets, indices: blur(targets, 3, stride=1, padding=1, count_include_pad=False), [0, 1, 2])
    blurred.finish()
    blurred_scores = cleaning_niqe(blurred.folder, params)
    assert blurred_scores["original"] == pytest.approx(scores["original"])
    assert blurred_scores["cleaned"] > scores["cleaned"]  # NIQE penalises the blur

    with pytest.raises(FacerestError, match="no complete cleaning pass"):
        cleaning_niqe(tmp_path / "missing", params)
