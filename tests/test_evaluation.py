"""``facerest.evaluation``: scoring folders of images (``evaluate_folders``, the `evaluate` command, FID statistics of
a folder) and ``restore_and_score``, the one "restore a paired test set and score it" path (compare, the training
scripts' --testset, the benchmark's quality part)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from facerest import metrics
from facerest.data import make_testset
from facerest.errors import FacerestError
from facerest.evaluation import (
    METRIC_COLUMNS,
    UNAVAILABLE,
    aligned_restorer,
    evaluate_folders,
    restore_and_score,
    save_fid_statistics,
)
from facerest.images import list_images, load_image, resize_square, save_image
from facerest.output_folders import RESTORE_COMMAND, RESTORED_FACES_FOLDER, mark_output_folder
from conftest import REPO_ROOT, shared_path
from tiny_pipelines import tiny_pipeline

PSNR, NIQE = METRIC_COLUMNS["psnr"], METRIC_COLUMNS["niqe"]


@pytest.fixture(scope="module")
def testset(tmp_path_factory, ffhq_test_dir):
    """Four FFHQ test faces degraded at 64 px."""
    root = tmp_path_factory.mktemp("evaluation")
    (root / "hq_source").mkdir()
    for path in list_images(ffhq_test_dir)[:4]:
        (root / "hq_source" / path.name).write_bytes(path.read_bytes())
    make_testset(root / "hq_source", root / "testset", resolution=64, seed=0)
    return root / "testset"


def test_restored_faces_are_written_and_scored_like_evaluate(testset, tmp_path):
    def brighten(faces):
        return [np.clip(face.astype(int) + 10, 0, 255).astype(np.uint8) for face in faces]

    weights = [shared_path("weights")]
    evaluation = restore_and_score(brighten, testset, tmp_path / "out", metrics=["psnr", "ssim", "niqe"], batch_size=3,
                                   weights_dirs=weights, niqe_size=192)
    written = list_images(tmp_path / "out")
    assert [path.name for path in written] == [path.name for path in list_images(testset / "hq")]
    assert (load_image(written[0]) == brighten([load_image(testset / "lq" / written[0].name)])[0]).all()
    restored_row, gt_row = evaluation.rows  # the ground truth's NIQE comes second, as in evaluate
    evaluated = evaluate_folders(tmp_path / "out", testset / "hq", metrics=["psnr", "ssim"])
    assert restored_row["Count"] == 4 and restored_row[PSNR] == pytest.approx(evaluated.rows[0][PSNR])
    assert isinstance(restored_row[NIQE], float) and isinstance(gt_row[NIQE], float)  # 64 px scored at 192
    assert evaluation.restore_seconds > 0


def test_without_an_output_folder_nothing_is_written_and_small_faces_have_no_niqe(testset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evaluation = restore_and_score(lambda faces: faces, testset, None, metrics=["psnr", "niqe"],
                                   weights_dirs=[shared_path("weights")])
    assert list(tmp_path.iterdir()) == []
    assert evaluation.rows[0][NIQE] == UNAVAILABLE and any("NIQE needs images" in note for note in evaluation.notes)
    assert evaluation.rows[0][PSNR] == pytest.approx(evaluate_folders(testset / "lq", testset / "hq", metrics=["psnr"]).rows[0][PSNR])


def test_resolution_and_restorers_that_change_the_size(testset, tmp_path):
    halve = lambda faces: [resize_square(face, face.shape[0] // 2) for face in faces]  # noqa: E731
    with pytest.raises(FacerestError, match="pass the model's resolution"):
        restore_and_score(halve, testset, None, metrics=["psnr"])
    evaluation = restore_and_score(lambda faces: faces, testset, tmp_path / "small", metrics=["psnr"], resolution=32)
    assert load_image(tmp_path / "small" / list_images(testset / "hq")[0].name).shape == (32, 32, 3)
    assert evaluation.rows[0]["Count"] == 4


def test_aligned_restorer_returns_faces_at_their_input_size(testset):
    restore = aligned_restorer(tiny_pipeline("gfpgan"))
    faces = [resize_square(load_image(path), 48) for path in list_images(testset / "lq")[:2]]
    restored = restore(faces)
    assert [face.shape for face in restored] == [(48, 48, 3)] * 2 and not (restored[0] == faces[0]).all()


# Folder evaluation ------------------------------------------------------------------------------------------------


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


@pytest.fixture(scope="module")
def faces(ffhq_test_dir) -> list[np.ndarray]:
    return [load_image(path) for path in list_images(ffhq_test_dir)[:4]]


@pytest.fixture
def paired_folders(tmp_path, faces) -> tuple[Path, Path]:
    """hq/ with 4 real faces as PNG, lq/ with blurred JPEG-q20 copies of them under the same names."""
    hq, lq = tmp_path / "hq", tmp_path / "lq"
    hq.mkdir(), lq.mkdir()
    for index, face in enumerate(faces[:4]):
        cv2.imwrite(str(hq / f"face{index}.png"), face[..., ::-1])
        cv2.imwrite(str(lq / f"face{index}.jpg"), blur(face, 1.5)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])
    return lq, hq


def random_fid_inception() -> metrics.FIDInception:
    """A seeded random Inception whose features keep a usable scale (He init); for tests only."""
    torch.manual_seed(0)
    model = metrics.FIDInception()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.eval()



def test_a_metric_whose_package_is_missing_is_unavailable_with_what_to_install(paired_folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", None)
    lq, hq = paired_folders
    evaluation = evaluate_folders(lq, hq, metrics=["lpips-random", "fid", "psnr"])
    row = evaluation.rows[0]
    assert row[METRIC_COLUMNS["lpips-random"]] == row[METRIC_COLUMNS["fid"]] == UNAVAILABLE
    assert isinstance(row[METRIC_COLUMNS["psnr"]], float)
    assert any("LPIPS needs the lpips package" in note and "pip install lpips" in note for note in evaluation.notes)
    assert any("FID needs the pytorch-fid package" in note and "pip install pytorch-fid" in note for note in evaluation.notes)



def test_fid_statistics_of_a_folder_round_trip_through_npz(tmp_path, paired_folders):
    _, hq = paired_folders
    saved = save_fid_statistics(hq, tmp_path / "stats" / "hq.npz", model=random_fid_inception())
    loaded = metrics.FIDStatistics.load(tmp_path / "stats" / "hq.npz")
    assert loaded.mu.shape == (2048,) and loaded.sigma.shape == (2048, 2048) and np.isfinite(loaded.sigma).all()
    np.testing.assert_array_equal(saved.mu, loaded.mu)
    np.testing.assert_array_equal(saved.sigma, loaded.sigma)
    np.savez(tmp_path / "bad.npz", mean=saved.mu)
    with pytest.raises(FacerestError, match="'mu' and 'sigma'"):
        metrics.FIDStatistics.load(tmp_path / "bad.npz")


class PooledPixels(nn.Module):
    """A 48-d stand-in for Inception (4 x 4 average-pooled RGB), so the 2048-d matrix square root is not paid."""

    def __init__(self):
        super().__init__()
        self.identity = nn.Conv2d(3, 3, kernel_size=1, bias=False)
        nn.init.dirac_(self.identity.weight)

    def forward(self, images):
        return nn.functional.adaptive_avg_pool2d(self.identity(images), 4).flatten(1)


def test_evaluate_fid_against_gt_folder_equals_fid_against_its_saved_statistics(tmp_path, paired_folders, monkeypatch):
    lq, hq = paired_folders
    monkeypatch.setattr(metrics.FIDInception, "from_pretrained", classmethod(lambda cls, **kwargs: PooledPixels()))
    save_fid_statistics(hq, tmp_path / "hq.npz", model=PooledPixels())
    against_folder = evaluate_folders(lq, hq, metrics=["fid"]).rows[0]["FID↓"]
    against_statistics = evaluate_folders(lq, metrics=["fid"], fid_stats=tmp_path / "hq.npz").rows[0]["FID↓"]
    assert against_folder > 0
    assert against_statistics == pytest.approx(against_folder, rel=1e-9)
    assert evaluate_folders(hq, hq, metrics=["fid"]).rows[0]["FID↓"] == pytest.approx(0.0, abs=1e-6)


def test_fid_statistics_of_a_folder_take_its_sub_folders_as_evaluate_does(tmp_path, paired_folders, monkeypatch):
    lq, hq = paired_folders
    for folder in (lq, hq):  # half of each folder's images moved into a sub-folder
        (folder / "part").mkdir()
        for path in sorted(path for path in folder.iterdir() if path.is_file())[::2]:
            path.rename(folder / "part" / path.name)
    monkeypatch.setattr(metrics.FIDInception, "from_pretrained", classmethod(lambda cls, **kwargs: PooledPixels()))
    save_fid_statistics(hq, tmp_path / "hq.npz", model=PooledPixels())
    against_folder = evaluate_folders(lq, hq, metrics=["fid"]).rows[0]["FID↓"]
    against_statistics = evaluate_folders(lq, metrics=["fid"], fid_stats=tmp_path / "hq.npz").rows[0]["FID↓"]
    assert against_statistics == pytest.approx(against_folder, rel=1e-9)




def test_evaluate_skips_bad_files_and_reports_gt_niqe(isolated_weights, paired_folders):
    lq, hq = paired_folders
    (lq / "empty.png").write_bytes(b"")
    (hq / "empty.png").write_bytes((hq / "face0.png").read_bytes())
    (lq / "notes.jpg").write_text("not an image")
    (hq / "notes.jpg").write_bytes((hq / "face1.png").read_bytes())
    truncated = (hq / "face2.png").read_bytes()
    (lq / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    (hq / "cut.png").write_bytes(truncated)
    evaluation = evaluate_folders(lq, hq, metrics=["psnr", "ssim", "niqe"], device="cpu")
    restored_row, gt_row = evaluation.rows
    assert restored_row["Count"] == 4 and gt_row["Count"] == 4
    assert 15 < restored_row["PSNR↑ (RGB)"] < 40 and 0 < restored_row["SSIM↑ (RGB)"] < 1
    assert gt_row["NIQE↓"] < restored_row["NIQE↓"]
    skipped = "\n".join(note for note in evaluation.notes if note.startswith("skipped"))
    assert "empty.png: empty file" in skipped and "notes.jpg: not an image" in skipped and "cut.png" in skipped


def test_evaluate_marks_metrics_without_weights_unavailable_and_runs_the_rest(isolated_weights, paired_folders):
    lq, hq = paired_folders
    evaluation = evaluate_folders(lq, hq, device="cpu")  # default: all metrics that apply
    row = evaluation.rows[0]
    needed = {"lpips": metrics.ALEXNET_FILENAME, "fid": metrics.FID_INCEPTION_FILENAME, "identity": "arcface_resnet18.pth"}
    for name, filename in needed.items():
        assert row[METRIC_COLUMNS[name]] == UNAVAILABLE
        (note,) = [note for note in evaluation.notes if note.startswith(METRIC_COLUMNS[name] + " ")]
        assert filename in note and str(isolated_weights) in note
    assert 0 < row[METRIC_COLUMNS["lpips-random"]] < 1
    assert all(isinstance(row[METRIC_COLUMNS[name]], float) for name in ("niqe", "psnr", "ssim"))


def test_luma_psnr_and_ssim_are_computed_when_named(paired_folders):
    lq, hq = paired_folders
    row = evaluate_folders(lq, hq, metrics=["psnr", "psnr-y", "ssim-y"], device="cpu").rows[0]
    assert 15 < row["PSNR↑ (Y)"] < 45 and row["PSNR↑ (Y)"] != row["PSNR↑ (RGB)"] and 0 < row["SSIM↑ (Y)"] < 1
    assert METRIC_COLUMNS["psnr-y"] not in evaluate_folders(lq, hq, metrics=["psnr", "ssim"], device="cpu").columns


def test_evaluate_without_gt_gives_niqe_only(isolated_weights, paired_folders):
    lq, _ = paired_folders
    evaluation = evaluate_folders(lq)
    assert evaluation.columns == ["Images", "Count", "NIQE↓"]
    assert len(evaluation.rows) == 1 and evaluation.rows[0]["NIQE↓"] > 0
    with pytest.raises(FacerestError, match="'psnr' needs --gt"):
        evaluate_folders(lq, metrics=["psnr"])


def test_evaluate_folder_errors(tmp_path, paired_folders):
    lq, hq = paired_folders
    with pytest.raises(FacerestError, match="folder not found"):
        evaluate_folders(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacerestError, match="no image files"):
        evaluate_folders(tmp_path / "empty")
    (hq / "face0.png").rename(hq / "other.png")
    with pytest.raises(FacerestError, match=r"file names differ .*only in .*lq \(face0\).*only in .*hq \(other\)"):
        evaluate_folders(lq, hq, metrics=["psnr"])
    with pytest.raises(FacerestError, match="unknown metric 'psnr2'"):
        evaluate_folders(lq, metrics=["psnr2"])
    (hq / "other.png").rename(hq / "face0.png")
    for path in lq.iterdir():  # every restored face twice the ground truth's size: one line, the first three named
        image = cv2.imread(str(path))
        cv2.imwrite(str(path), cv2.resize(image, (2 * image.shape[1], 2 * image.shape[0])))
    with pytest.raises(FacerestError) as error:
        evaluate_folders(lq, hq, metrics=["psnr"])
    message = str(error.value)
    assert message.startswith(f"no usable images in {lq} (face0.jpg: its size differs from the ground truth face0.png")
    assert message.count("its size differs") == 3 and message.endswith("; and 1 more)")


def test_evaluate_reads_sub_folders_as_restore_writes_them_and_leaves_out_its_face_crops(tmp_path, faces):
    # restore keeps an input folder's sub-folders (realworld_lq/CelebA/..., realworld_lq/LFW-Test/...), where two
    # images may share a file name, and puts its face crops under OUTPUT/faces/
    restored, gt = tmp_path / "restored", tmp_path / "gt"
    for index, sub_folder in enumerate(["CelebA", "LFW-Test"]):
        save_image(blur(faces[index], 2.0), restored / sub_folder / "0001.png")
        save_image(faces[index], gt / sub_folder / "0001.jpg")
        save_image(faces[index][:64, :64], restored / RESTORED_FACES_FOLDER / sub_folder / "0001_00.png")
    mark_output_folder(restored, RESTORE_COMMAND)

    row = evaluate_folders(restored, gt, metrics=["psnr"]).rows[0]
    pairs = [(restored / name / "0001.png", gt / name / "0001.jpg") for name in ("CelebA", "LFW-Test")]
    expected = np.mean([metrics.psnr([load_image(a)], [load_image(b)])[0] for a, b in pairs])
    assert row["Count"] == 2 and row["PSNR↑ (RGB)"] == pytest.approx(expected, abs=1e-3)
    assert evaluate_folders(restored, metrics=["niqe"]).rows[0]["Count"] == 2

    (gt / "LFW-Test" / "0001.jpg").rename(gt / "LFW-Test" / "0002.jpg")
    with pytest.raises(FacerestError, match=r"file names differ .*only in .*restored \(LFW-Test/0001\)"):
        evaluate_folders(restored, gt, metrics=["psnr"])


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "facerest", "evaluate", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_prints_the_table_and_writes_markdown_and_csv(isolated_weights, paired_folders, tmp_path):
    lq, hq = paired_folders
    out = tmp_path / "out" / "t"
    result = _run_cli("--restored", str(lq), "--gt", str(hq), "--metrics", "psnr", "niqe", "--out", str(out))
    assert result.returncode == 0, result.stderr
    header = "| Images | Count | NIQE↓ | PSNR↑ (RGB) |"
    assert header in result.stdout and f"| {hq} (ground truth) | 4 |" in result.stdout
    assert (tmp_path / "out" / "t.md").read_text(encoding="utf-8").startswith(header)
    with open(tmp_path / "out" / "t.csv", newline="", encoding="utf-8") as handle:
        header, restored_row, gt_row = list(csv.reader(handle))
    assert header == ["Images", "Count", "NIQE↓", "PSNR↑ (RGB)"] and float(restored_row[3]) > 15 and gt_row[3] == ""


def test_cli_missing_folder_is_one_error_line(tmp_path):
    result = _run_cli("--restored", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: folder not found: {tmp_path / 'nowhere'}"]


def test_cli_option_errors_are_one_line_before_any_work(paired_folders, tmp_path, capsys):
    from facerest.cli import main

    lq, hq = paired_folders
    for batch_size in ("0", "-3"):
        assert main(["evaluate", "--restored", str(lq), "--batch-size", batch_size]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --batch-size must be a whole number of at least 1, got {batch_size}\n"
    (tmp_path / "a-file").write_text("mine")
    out = tmp_path / "a-file" / "table"
    assert main(["evaluate", "--restored", str(lq), "--gt", str(hq), "--metrics", "psnr", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: cannot write into the folder of --out") and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1


def test_cli_exit_status_says_when_the_evaluation_is_incomplete(isolated_weights, paired_folders, tmp_path, capsys):
    from facerest.cli import main

    lq, hq = paired_folders
    arguments = ["--restored", str(lq), "--gt", str(hq), "--out", str(tmp_path / "t")]
    assert main(["evaluate", *arguments, "--metrics", "psnr,ssim"]) == 0  # comma-separated, as other tools take them
    assert "| PSNR↑ (RGB) | SSIM↑ (RGB) |" in capsys.readouterr().out
    assert main(["evaluate", *arguments, "--metrics", "niqe"]) == 0
    capsys.readouterr()

    (lq / "face0.jpg").write_bytes(b"")  # an unreadable image is skipped and listed
    assert main(["evaluate", *arguments, "--metrics", "psnr"]) == 1
    captured = capsys.readouterr()
    assert f"skipped {lq / 'face0.jpg'}: empty file" in captured.out
    assert "incomplete evaluation: 1 images skipped" in captured.err

    small = tmp_path / "small"  # NIQE cannot score images this small: no metric gives a value
    small.mkdir()
    for index in range(2):
        cv2.imwrite(str(small / f"{index}.png"), np.full((64, 64, 3), 40 * index + 20, np.uint8))
    assert main(["evaluate", "--restored", str(small), "--metrics", "niqe", "--out", str(tmp_path / "s")]) == 1
    assert "incomplete evaluation: no metric could be computed" in capsys.readouterr().err


def test_a_metric_failing_on_the_images_is_reported_and_the_others_still_run(isolated_weights, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    for index in range(2):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((64, 64, 3), 40 * index + 20, np.uint8))
    evaluation = evaluate_folders(folder, folder, metrics=["psnr", "niqe"])
    restored_row, gt_row = evaluation.rows
    assert restored_row["PSNR↑ (RGB)"] == np.inf
    assert restored_row["NIQE↓"] == gt_row["NIQE↓"] == UNAVAILABLE
    expected_note = "NIQE↓ unavailable: NIQE needs images with at least two 96x96 blocks"
    assert any(note.startswith(expected_note) for note in evaluation.notes)
