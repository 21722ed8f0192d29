"""The shipped default, models/default, as README's main job runs it: it makes faces better and never worse.

Held-out faces only (ffhq256/test, also set into degraded photos; real low-quality faces, whole photos); the full measurements are in README's
"Results" and the model card.
"""

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path

from bench.detection_recall import photo_with_a_face
from facerest import FaceRestorePipeline
from facerest.data import make_testset
from facerest.degradation import DegradationConfig, degrade
from facerest.faces import FaceDetector, face_window
from facerest.images import list_images, load_image
from facerest.metrics import gradient_sharpness, halved, load_niqe_params, niqe, psnr, ssim

DEFAULT_MODEL = REPO_ROOT / "models" / "default"
FACES = 8  # held-out test faces per check: a few seconds each on one CPU thread


@pytest.fixture(scope="module")
def default() -> FaceRestorePipeline:
    return FaceRestorePipeline.from_pretrained(DEFAULT_MODEL)


def restore(pipeline: FaceRestorePipeline, images: list[np.ndarray], **options) -> list[np.ndarray]:
    """As `python -m facerest restore` runs it: default steps, strength and fidelity, seed 0."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return pipeline(images, output_type="np", progress=False, generator=generator, **options).images


@pytest.fixture(scope="module")
def testset(ffhq_test_dir, tmp_path_factory) -> Path:
    """The first held-out faces degraded as `make-testset --resolution 256 --seed 0` degrades them."""
    root = tmp_path_factory.mktemp("default_testset")
    (root / "source").mkdir()
    for path in list_images(ffhq_test_dir)[:FACES]:
        (root / "source" / path.name).symlink_to(path)
    make_testset(root / "source", root / "set", resolution=256, seed=0)
    return root / "set"


def test_degraded_faces_come_out_closer_to_the_originals(default, testset):
    lq = [load_image(path) for path in list_images(testset / "lq")]
    hq = [load_image(path) for path in list_images(testset / "hq")]
    restored = restore(default, lq, aligned=True)
    print(f"\nPSNR {psnr(lq, hq).mean():.2f} -> {psnr(restored, hq).mean():.2f} dB, "
          f"SSIM {ssim(lq, hq).mean():.4f} -> {ssim(restored, hq).mean():.4f}")
    assert psnr(restored, hq).mean() > psnr(lq, hq).mean() + 0.5
    assert ssim(restored, hq).mean() > ssim(lq, hq).mean()


def test_clean_faces_are_kept(default, ffhq_test_dir):
    """On average (the model was trained to undo colour and brightness jitter, so it darkens some bright clean faces:
    on the 100 test faces the lowest is 17.6 dB, README "Results at 256 px")."""
    clean = [load_image(path) for path in list_images(ffhq_test_dir)[:FACES]]
    scores = psnr(restore(default, clean, aligned=True), clean)
    print(f"\nPSNR(output, clean input) {scores.mean():.2f} dB, lowest {scores.min():.2f}")
    assert scores.mean() >= 30.0


def test_real_low_quality_faces_come_out_more_natural(default):
    faces = [load_image(path) for path in sorted(shared_path("data", "realworld_lq").rglob("*.png"))[::10]]
    params = load_niqe_params(extra_dirs=[shared_path("weights")])
    before, after = niqe(faces, params), niqe(restore(default, faces, aligned=True), params)
    print(f"\nNIQE of {len(faces)} real faces {before.mean():.3f} -> {after.mean():.3f}")
    assert after.mean() < before.mean()


def test_faces_of_a_degraded_photo_come_out_closer_to_the_originals(default, ffhq_test_dir):
    """Each face set into a photo (bench/default_checks.py's photos part, at 192 px) and the whole photo degraded with
    the test set's recipe without its colour stages: a face in a photo keeps the photo's colours and lighting, so the
    colour shift and jitter stay, and the model's change to the face's detail is what is measured."""
    import cv2

    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    recipe = DegradationConfig(reference_resolution=round(512 * 2.4), color_jitter_prob=0, gray_prob=0, photometric_jitter_prob=0)
    before, after, originals = [], [], []
    for seed, path in enumerate(list_images(ffhq_test_dir)[:FACES]):
        clean, _, (top, left) = photo_with_a_face(cv2.resize(load_image(path), (192, 192), interpolation=cv2.INTER_AREA), seed)
        degraded = degrade(clean, recipe, seed=seed)
        output = default(degraded, detector=detector, output_type="np", progress=False)
        assert len(output.face_boxes[0]) == 1
        square = np.s_[top : top + 192, left : left + 192]
        before.append(degraded[square])
        after.append(output.images[0][square])
        originals.append(clean[square])
    print(f"\nPSNR of the faces' squares {psnr(before, originals).mean():.2f} -> {psnr(after, originals).mean():.2f} dB")
    assert psnr(after, originals).mean() > psnr(before, originals).mean() + 0.3
    assert ssim(after, originals).mean() > ssim(before, originals).mean()


def test_no_face_of_a_whole_photo_comes_out_blurrier(default):
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    ratios = []  # per face: sharpness after / before, as it is and with both halved
    for path in list_images(shared_path("data", "whole_imgs")):
        photo = load_image(path)
        output = default(photo, detector=detector, output_type="np", progress=False)
        for box in output.face_boxes[0]:
            window = face_window(box, photo.shape)
            before, after = photo[window], output.images[0][window]
            ratios.append([gradient_sharpness(image(after)) / gradient_sharpness(image(before)) for image in (np.asarray, halved)])
    ratios = np.array(ratios)
    print(f"\n{len(ratios)} faces, sharpness after / before: lowest {ratios[:, 0].min():.3f}, median {np.median(ratios[:, 0]):.3f}")
    assert len(ratios) == 24 and ratios[:, 0].min() >= 0.99
    assert np.all(ratios.max(axis=1) >= 1.0)  # none smoothed at both sizes
