"""Scoring a restorer on a paired test set: restored faces written, PSNR/SSIM of restored and of degraded inputs."""

import json

import numpy as np
import pytest
import torch

from facerest.data import make_testset
from facerest.errors import FacerestError
from facerest.images import list_images, load_image, save_image
from facerest.metrics import psnr, ssim
from facerest.training.testset_eval import evaluate_testset


@pytest.fixture(scope="module")
def testset(tmp_path_factory):
    """A 5-pair, 32 px test set made from smooth synthetic faces."""
    root = tmp_path_factory.mktemp("testset")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 48)
    for index in range(5):
        colour = rng.uniform(40, 215, 3)
        image = colour * (0.6 + 0.4 * ramp[:, None, None] * ramp[None, :, None])
        save_image(image.round().astype(np.uint8), root / "hq_source" / f"face{index}.png")
    make_testset(root / "hq_source", root / "set", resolution=32, seed=0)
    return root / "set"


def test_identity_restorer_scores_like_the_inputs(testset, tmp_path):
    result = evaluate_testset(lambda lq: lq.clone(), testset, tmp_path / "out", batch_size=2)

    names = [path.name for path in list_images(tmp_path / "out")]
    assert names == [f"face{index}.png" for index in range(5)]
    lq = [load_image(testset / "lq" / name) for name in names]
    hq = [load_image(testset / "hq" / name) for name in names]
    assert result["num_images"] == 5
    assert result["psnr"] == pytest.approx(result["input_psnr"]) == pytest.approx(np.mean(psnr(lq, hq)))
    assert result["ssim"] == pytest.approx(result["input_ssim"]) == pytest.approx(np.mean(ssim(lq, hq)))
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == result


def test_restored_faces_are_saved_and_scored_against_the_ground_truth(testset, tmp_path):
    gray = lambda lq: torch.zeros_like(lq)  # noqa: E731 - every face restored to mid-gray
    result = evaluate_testset(gray, testset, tmp_path / "out", batch_size=3)

    hq = [load_image(path) for path in list_images(testset / "hq")]
    restored = [load_image(path) for path in list_images(tmp_path / "out")]
    assert all((image == 128).all() for image in restored)  # (0 + 1) * 127.5 rounds to 128
    assert result["psnr"] == pytest.approx(np.mean(psnr(restored, hq)))
    assert result["psnr"] != pytest.approx(result["input_psnr"])


def test_restorer_of_the_wrong_size_is_refused(testset, tmp_path):
    half = lambda lq: torch.nn.functional.avg_pool2d(lq, 2)  # noqa: E731
    with pytest.raises(FacerestError, match="pass the model's resolution"):
        evaluate_testset(half, testset, tmp_path / "out")
    result = evaluate_testset(lambda lq: lq, testset, tmp_path / "resized", resolution=16)
    assert load_image(tmp_path / "resized" / "face0.png").shape == (16, 16, 3) and result["num_images"] == 5
