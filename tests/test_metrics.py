"""The metrics of facerest.metrics on real faces: PSNR and SSIM against scikit-image, NIQE against basicsr, LPIPS,
FID's Fréchet distance and the ArcFace identity angle (scoring folders with them: test_evaluation.py)."""

import cv2
import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from facerest import metrics
from facerest.errors import FacerestError
from facerest.images import image_to_tensor, list_images, load_image
from facerest.models.arcface import ArcFaceResNet18
from facerest.weights import MissingWeightsError


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].copy()


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


@pytest.fixture(scope="module")
def faces(ffhq_test_dir) -> list[np.ndarray]:
    return [load_image(path) for path in list_images(ffhq_test_dir)[:6]]


# PSNR / SSIM ------------------------------------------------------------------------------------------------------


def test_psnr_and_ssim_agree_with_scikit_image_on_degraded_real_faces(faces):
    degraded = [jpeg(faces[0], 25), blur(faces[1], 2.0), jpeg(blur(faces[2], 1.0), 40), blur(jpeg(faces[3], 10), 0.8)]
    ours_psnr, ours_ssim = metrics.psnr(degraded, faces[:4]), metrics.ssim(degraded, faces[:4])
    for restored, gt, p, s in zip(degraded, faces, ours_psnr, ours_ssim):
        assert p == pytest.approx(peak_signal_noise_ratio(gt, restored, data_range=255), abs=1e-4)
        reference = structural_similarity(
            gt, restored, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert s == pytest.approx(reference, abs=1e-4)
    assert 15 < ours_psnr.min() and ours_psnr.max() < 45 and 0.3 < ours_ssim.min() and ours_ssim.max() < 1


def test_psnr_and_ssim_on_luma_agree_with_scikit_images_bt601_y(faces):
    """On the luma as basicsr's test_y_channel takes it: MATLAB's rgb2ycbcr Y, in [16, 235], scored with 255 as peak."""
    degraded = [jpeg(faces[0], 25), blur(faces[1], 2.0)]
    ours_psnr, ours_ssim = metrics.psnr(degraded, faces[:2], on_luma=True), metrics.ssim(degraded, faces[:2], on_luma=True)
    for restored, gt, p, s in zip(degraded, faces, ours_psnr, ours_ssim):
        y_restored, y_gt = rgb2ycbcr(restored)[..., 0], rgb2ycbcr(gt)[..., 0]
        assert p == pytest.approx(peak_signal_noise_ratio(y_gt, y_restored, data_range=255), abs=1e-4)
        reference = structural_similarity(
            y_gt, y_restored, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert s == pytest.approx(reference, abs=1e-4)
    np.testing.assert_allclose(metrics.luma(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)), [[16.0, 235.0]])
    assert not np.allclose(ours_psnr, metrics.psnr(degraded, faces[:2]))  # RGB is another figure


def test_pixel_metrics_accept_arrays_lists_and_tensors():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)
    as_tensor = torch.stack([image_to_tensor(image) for image in a])
    assert metrics.psnr(a, a).tolist() == [np.inf, np.inf]
    np.testing.assert_allclose(metrics.psnr(list(a), b), metrics.psnr(as_tensor, b))
    assert metrics.ssim(a[0], a[0])[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="2 restored images but 1"):
        metrics.ssim(a, b[:1])


# NIQE -------------------------------------------------------------------------------------------------------------


def test_niqe_matches_basicsr_on_real_faces(isolated_weights, ffhq_test_dir):
    # basicsr 1.4.2's calculate_niqe(img, crop_border=0) on these test faces. On smoother faces basicsr's float32
    # local variance loses precision and drifts by up to ~0.02 from this float64 port (MATLAB computes in double).
    expected = {"01000.jpg": 4.095123, "01004.jpg": 5.648657, "01005.jpg": 5.266541}
    params = metrics.load_niqe_params()
    images = [load_image(ffhq_test_dir / name) for name in expected]
    np.testing.assert_allclose(metrics.niqe(images, params), list(expected.values()), atol=1e-3)


def test_niqe_scores_clean_faces_better_than_degraded_ones(isolated_weights, faces):
    params = metrics.load_niqe_params()
    clean = metrics.niqe(faces, params)
    degraded = metrics.niqe([jpeg(blur(face, 3.0), 10) for face in faces], params)
    assert np.all(clean < degraded), (clean, degraded)


def test_matlab_downscale_keeps_constants_and_halves_sizes():
    image = np.full((192, 130), 0.25)
    resized = metrics._matlab_bicubic_downscale(image, 0.5)
    assert resized.shape == (96, 65)
    np.testing.assert_allclose(resized, 0.25)


def test_niqe_needs_two_blocks(isolated_weights):
    params = metrics.load_niqe_params()
    with pytest.raises(FacerestError, match="two 96x96 blocks"):
        metrics.niqe(np.zeros((100, 150, 3), np.uint8), params)


# LPIPS ------------------------------------------------------------------------------------------------------------


def test_random_backbone_lpips_is_seeded_and_orders_degradations(faces):
    model = metrics.load_lpips(random_backbone=True, device="cpu")
    again = metrics.load_lpips(random_backbone=True, device="cpu")
    mild, strong = [jpeg(face, 60) for face in faces[:3]], [blur(jpeg(face, 10), 2.5) for face in faces[:3]]
    mild_scores = metrics.lpips_distance(mild, faces[:3], model)
    np.testing.assert_allclose(mild_scores, metrics.lpips_distance(mild, faces[:3], again))
    np.testing.assert_allclose(metrics.lpips_distance(faces[:3], faces[:3], model), 0.0, atol=1e-7)
    assert np.all(mild_scores < metrics.lpips_distance(strong, faces[:3], model))


def test_missing_alexnet_names_the_file_and_places(isolated_weights, tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        metrics.load_lpips(extra_dirs=[tmp_path / "mine"])
    message = str(info.value)
    assert metrics.ALEXNET_FILENAME in message
    for place in (isolated_weights, tmp_path / "mine", tmp_path / "torch-home" / "hub" / "checkpoints"):
        assert str(place) in message


# FID --------------------------------------------------------------------------------------------------------------


def _independent_frechet(mu1, sigma1, mu2, sigma2) -> float:
    # Tr((S1 S2)^1/2) = sum of sqrt(eigenvalues of S1^1/2 S2 S1^1/2), a symmetric PSD matrix.
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


@pytest.mark.parametrize("samples", [400, 12], ids=["full-rank", "rank-deficient"])
def test_frechet_distance_agrees_with_independent_float64(samples):
    rng = np.random.default_rng(samples)
    dims = 32
    a = rng.normal(0.0, 1.0, (samples, dims))
    b = rng.normal(0.3, 1.0, (samples, dims)) @ rng.normal(0.0, 0.5, (dims, dims))
    mu1, sigma1, mu2, sigma2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    expected = _independent_frechet(mu1, sigma1, mu2, sigma2)
    assert metrics.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert metrics.frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0.0, abs=1e-6)


# Identity ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_arcface() -> ArcFaceResNet18:
    torch.manual_seed(0)
    return ArcFaceResNet18().eval()


def test_arcface_matches_gfpgan_state_dict_layout_and_loads_it(tmp_path, random_arcface):
    model = random_arcface
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 1, 3, 3)
    assert shapes["layer1.0.bn0.weight"] == (64,)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["layer4.1.prelu.weight"] == (1,)
    assert shapes["fc5.weight"] == (512, 512 * 8 * 8)
    assert shapes["bn5.running_var"] == (512,)
    assert not any(".se." in name for name in shapes)
    # GFP-GAN's file was saved from DataParallel: keys carry a "module." prefix.
    prefixed = {f"module.{name}": tensor for name, tensor in model.state_dict().items()}
    torch.save(prefixed, tmp_path / "arcface_resnet18.pth")
    loaded = ArcFaceResNet18.from_pretrained(tmp_path)
    faces = torch.rand(2, 3, 96, 96) * 2 - 1
    torch.testing.assert_close(loaded(loaded.prepare_input(faces)), model(model.prepare_input(faces)))
    assert model(model.prepare_input(faces)).shape == (2, 512)


def test_identity_angle_is_zero_for_the_same_face_and_in_degrees(faces, random_arcface):
    np.testing.assert_allclose(metrics.identity_angle(faces[:2], faces[:2], random_arcface), 0.0, atol=1e-3)
    angles = metrics.identity_angle(faces[:2], faces[2:4], random_arcface)
    assert np.all((angles > 0) & (angles <= 180))
