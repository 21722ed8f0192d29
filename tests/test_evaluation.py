"""``facerest.evaluation.restore_and_score``: the one "restore a paired test set and score it" path (compare, the
training scripts' --testset, the benchmark's quality part)."""

import numpy as np
import pytest

from facerest.data import make_testset
from facerest.errors import FacerestError
from facerest.evaluation import METRIC_COLUMNS, UNAVAILABLE, aligned_restorer, evaluate_folders, restore_and_score
from facerest.images import list_images, load_image, resize_square
from conftest import shared_path
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
