"""The shipped default, models/default, as README's main job runs it: it makes faces better and never worse.

Held-out faces only (ffhq256/test, also set into degraded photos; real low-quality faces, whole photos); the full measurements are in README's
"Results" and the model card.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, saved_small_and_enlarged, shared_path, with_noise

from bench.detection_recall import photo_with_a_face
from facerest import FaceRestorePipeline
from facerest.data import make_testset
from facerest.degradation import DegradationConfig, degrade
from facerest.face_detection import FaceDetector
from facerest.faces import face_window
from facerest.images import list_images, load_image
from facerest.metrics import gradient_sharpness, load_niqe_params, niqe, psnr, ssim

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


def faces_in_photos(pipeline: FaceRestorePipeline, faces: list[np.ndarray], degrade_photo) -> tuple[list, list, list, list]:
    """Each face set into a photo (`photo_with_a_face`, seeded by its index), the photo degraded by
    `degrade_photo(photo, seed)` and restored as README command 1 does: the face's square degraded, restored and
    clean, and the photo's messages."""
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    before, after, originals, messages = [], [], [], []
    for seed, face in enumerate(faces):
        clean, _, (top, left) = photo_with_a_face(face, seed)
        degraded = degrade_photo(clean, seed)
        output = pipeline(degraded, detector=detector, output_type="np", progress=False)
        assert len(output.face_boxes[0]) == 1
        square = np.s_[top : top + face.shape[0], left : left + face.shape[1]]
        before.append(degraded[square])
        after.append(output.images[0][square])
        originals.append(clean[square])
        messages.append(output.messages[0])
    return before, after, originals, messages


def test_faces_of_a_degraded_photo_come_out_closer_to_the_originals(default, ffhq_test_dir):
    """Each face set into a photo (bench/default_checks.py's photos part, at 192 px) and the whole photo degraded with
    the test set's recipe without its colour stages: a face in a photo keeps the photo's colours and lighting, so the
    colour shift and jitter stay, and the model's change to the face's detail is what is measured."""
    import cv2

    recipe = DegradationConfig(reference_resolution=round(512 * 2.4), color_jitter_prob=0, gray_prob=0, photometric_jitter_prob=0)
    faces = [cv2.resize(load_image(path), (192, 192), interpolation=cv2.INTER_AREA) for path in list_images(ffhq_test_dir)[:FACES]]
    before, after, originals, _ = faces_in_photos(default, faces, lambda photo, seed: degrade(photo, recipe, seed=seed))
    print(f"\nPSNR of the faces' squares {psnr(before, originals).mean():.2f} -> {psnr(after, originals).mean():.2f} dB")
    assert psnr(after, originals).mean() > psnr(before, originals).mean() + 0.3
    assert ssim(after, originals).mean() > ssim(before, originals).mean()


def test_no_face_of_a_whole_photo_comes_out_blurrier(default):
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    ratios = []  # per face: sharpness after / before
    for path in list_images(shared_path("data", "whole_imgs")):
        photo = load_image(path)
        output = default(photo, detector=detector, output_type="np", progress=False)
        for box in output.face_boxes[0]:
            window = face_window(box, photo.shape)
            ratios.append(gradient_sharpness(output.images[0][window]) / gradient_sharpness(photo[window]))
    print(f"\n{len(ratios)} faces, sharpness after / before: lowest {min(ratios):.3f}, median {np.median(ratios):.3f}")
    assert len(ratios) == 24 and min(ratios) >= 1.0


@pytest.mark.parametrize(("name", "times"), [("gfpgan_10045.png", 3), ("codeformer_02.png", 2)])
def test_the_faces_of_an_enlarged_jpeg_stay_deblocked(default, name, times):
    """A photo saved small as a JPEG and enlarged: its faces' regions are deblocked, and each restoration keeps at least
    DEBLOCKED_SHARPNESS_SHARE of the blocky photo's sharpness, so none is sent back to be restored undeblocked (as a
    face before a tiled wall is, whose grid is not its own)."""
    blocky = saved_small_and_enlarged(load_image(shared_path("data", "whole_imgs", name)), times, quality=30)
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    output = default(blocky, detector=detector, output_type="np", progress=False)
    assert len(output.messages[0]) == 1
    found = re.fullmatch(r"JPEG blocks of (\d+\.\d) px \(a JPEG enlarged \d\.\dx\): its faces deblocked first", output.messages[0][0])
    assert found and float(found[1]) == pytest.approx(8 * times, abs=0.5)


def test_noisy_faces_come_out_denoised(default, ffhq_test_dir):
    """White noise at the face's own pixels, which the model alone leaves (docs/what-the-default-undoes.md)."""
    clean = [load_image(path) for path in list_images(ffhq_test_dir)[:FACES]]
    noisy = [with_noise(face, 15.0, seed) for seed, face in enumerate(clean)]
    as_given, denoised = restore(default, noisy, aligned=True, denoise=False), restore(default, noisy, aligned=True)
    print(f"\nPSNR {psnr(noisy, clean).mean():.2f} -> {psnr(as_given, clean).mean():.2f} dB given as they are, "
          f"{psnr(denoised, clean).mean():.2f} dB denoised first")
    assert psnr(denoised, clean).mean() > psnr(as_given, clean).mean() + 2.0
    assert restore(default, noisy[:1], aligned=True, fidelity=0.0)[0].tobytes() == noisy[0].tobytes()


def test_a_noisy_face_in_a_photo_is_denoised_and_pasted(default, ffhq_test_dir):
    """The restoration of a denoised face is less sharp than the noisy photo: `never_blur` measures it against the
    photo with the face denoised, and a face it would leave keeps the denoised face, not the noise."""
    faces = [load_image(path) for path in list_images(ffhq_test_dir)[:4]]
    before, after, originals, messages = faces_in_photos(default, faces, lambda photo, seed: with_noise(photo, 15.0, seed))
    assert not any("as it was" in message for message in sum(messages, [])), messages
    print(f"\nPSNR of the faces' squares {psnr(before, originals).mean():.2f} -> {psnr(after, originals).mean():.2f} dB")
    assert psnr(after, originals).mean() > psnr(before, originals).mean() + 2.0
