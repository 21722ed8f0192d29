import dataclasses
import json
import math

import cv2

import numpy as np
import pytest
import torch

from facerest.degradation import (
    DegradationConfig,
    DegradationParams,
    degrade,
    degrade_batch,
    gaussian_blur_kernel,
    noise_field,
    sample_degradation,
)

# Every stage off: degrade() must then return its input unchanged. Parameters in pixels of the image itself.
IDENTITY = dict(
    reference_resolution=None,
    blur_sigma=None,
    downsample_range=None,
    noise_range=None,
    jpeg_range=None,
    color_jitter_prob=0.0,
    gray_prob=0.0,
    photometric_jitter_prob=0.0,
)


@pytest.fixture(scope="module")
def face():
    """A smooth colour image with some structure (no data needed)."""
    y, x = np.mgrid[0:96, 0:96] / 95.0
    image = np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x) * np.cos(4 * y)], axis=-1)
    return np.round(image * 255).astype(np.uint8)


def test_same_seed_gives_identical_output_and_other_seeds_differ(face):
    first, params = degrade(face, seed=7, return_params=True)
    second = degrade(face, seed=7)
    assert first.dtype == np.uint8 and first.shape == face.shape
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, degrade(face, rng=np.random.default_rng(7)))
    assert not np.array_equal(first, degrade(face, seed=8))
    # the drawn parameters replay the same bytes, also after a trip through JSON (as in a manifest)
    replayed = DegradationParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert replayed == params
    np.testing.assert_array_equal(first, degrade(face, params=replayed))


@pytest.mark.parametrize("size, sigma_x, sigma_y, rotation", [(41, 0.1, 0.1, 0.0), (41, 10, 10, 0), (41, 3, 0.5, 1.0), (7, 2, 5, -2.5)])
def test_kernel_sums_to_one(size, sigma_x, sigma_y, rotation):
    kernel = gaussian_blur_kernel(size, sigma_x, sigma_y, rotation)
    assert kernel.shape == (size, size)
    assert kernel.min() >= 0
    assert kernel.sum() == pytest.approx(1.0, abs=1e-9)


def test_isotropic_kernel_is_symmetric():
    kernel = gaussian_blur_kernel(41, 3.0, 3.0, 0.0)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[:, ::-1], atol=1e-15)
    assert kernel.argmax() == 20 * 41 + 20  # peak at the centre
    # with equal sigmas the rotation changes nothing
    np.testing.assert_allclose(kernel, gaussian_blur_kernel(41, 3.0, 3.0, 1.1), atol=1e-15)


def _second_moments(kernel):
    offsets = np.arange(kernel.shape[0]) - kernel.shape[0] // 2
    x, y = np.meshgrid(offsets, offsets)
    return (kernel * x * x).sum(), (kernel * y * y).sum(), (kernel * x * y).sum()


def test_anisotropic_kernel_has_the_asked_covariance():
    kernel = gaussian_blur_kernel(41, 4.0, 1.0, 0.0)
    assert not np.allclose(kernel, kernel.T)
    var_x, var_y, cov_xy = _second_moments(kernel)
    assert var_x == pytest.approx(16.0, rel=1e-3) and var_y == pytest.approx(1.0, rel=1e-3) and abs(cov_xy) < 1e-9
    # a quarter turn swaps the axes
    var_x, var_y, _ = _second_moments(gaussian_blur_kernel(41, 4.0, 1.0, math.pi / 2))
    assert var_x == pytest.approx(1.0, rel=1e-3) and var_y == pytest.approx(16.0, rel=1e-3)
    # at 45 degrees: Sigma = R diag(16, 1) R^T has the off-diagonal (16 - 1) / 2
    _, _, cov_xy = _second_moments(gaussian_blur_kernel(41, 4.0, 1.0, math.pi / 4))
    assert cov_xy == pytest.approx(7.5, rel=1e-3)


def test_drawn_parameters_cover_the_configured_ranges():
    config = DegradationConfig()
    rng = np.random.default_rng(0)
    draws = [sample_degradation(config, rng) for _ in range(5000)]

    kinds = [d.kernel_type for d in draws]
    assert 0.45 < kinds.count("anisotropic") / len(draws) < 0.55
    assert set(kinds) == {"isotropic", "anisotropic"}
    assert all(d.sigma_x == d.sigma_y and d.rotation == 0.0 for d in draws if d.kernel_type == "isotropic")
    assert any(d.sigma_x != d.sigma_y for d in draws if d.kernel_type == "anisotropic")

    def assert_covers(values, low, high, margin):
        assert low <= min(values) < low + margin and high - margin < max(values) <= high, (min(values), max(values))

    assert_covers([d.sigma_x for d in draws] + [d.sigma_y for d in draws], 0.1, 10.0, 0.1)
    assert_covers([d.rotation for d in draws if d.kernel_type == "anisotropic"], -math.pi, math.pi, 0.1)
    assert_covers([d.scale for d in draws], 0.8, 8.0, 0.1)
    assert_covers([d.noise_std for d in draws], 0.0, 20.0, 0.1)
    qualities = [d.jpeg_quality for d in draws]
    assert set(qualities) == set(range(60, 101))  # every integer quality, both ends included

    jittered = [d.color_shift for d in draws if d.color_shift is not None]
    assert 0.27 < len(jittered) / len(draws) < 0.33
    shifts = np.array(jittered)
    assert shifts.min() >= -20 and shifts.max() <= 20 and shifts.min() < -19 and shifts.max() > 19
    assert 0.004 < sum(d.gray for d in draws) / len(draws) < 0.02
    photometric = [d.photometric for d in draws if d.photometric]
    assert 0.27 < len(photometric) / len(draws) < 0.33
    assert all(sorted(name for name, _ in ops) == ["brightness", "contrast", "hue", "saturation"] for ops in photometric)
    assert len({tuple(name for name, _ in ops) for ops in photometric}) == 24  # every order of the four occurs


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 9, 3), (300, 200, 3), (64, 64, 3)])
def test_any_size_uint8_and_float(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    out = degrade(image, seed=3)
    assert out.dtype == np.uint8 and out.shape == shape
    for dtype in (np.float32, np.float64):
        as_float = image.astype(dtype) / 255.0
        out_float = degrade(as_float, seed=3)
        assert out_float.dtype == dtype and out_float.shape == shape
        assert out_float.min() >= 0.0 and out_float.max() <= 1.0
        # the float path is the uint8 path in other units
        np.testing.assert_allclose(out_float * 255.0, out, atol=1e-3)


def test_every_stage_can_be_switched_off(face):
    np.testing.assert_array_equal(degrade(face, DegradationConfig(**IDENTITY), seed=0), face)


def test_clean_faces_are_left_as_they_are_and_the_other_draws_do_not_change(face):
    config = DegradationConfig(clean_prob=0.4)
    clean = 0
    for seed in range(40):
        degraded, params = degrade(face, config, seed=seed, return_params=True)
        if params == sample_degradation(DegradationConfig(), np.random.default_rng(seed)):
            assert not np.array_equal(degraded, face)
        else:  # a clean pair: every stage off, the face as it was
            clean += 1
            assert params.kernel_type is None and params.scale is None and params.jpeg_quality is None
            assert params.color_shift is None and not params.gray and params.photometric == ()
            np.testing.assert_array_equal(degraded, face)
    assert 8 <= clean <= 24  # 40 draws at 0.4
    with pytest.raises(ValueError, match="clean_prob"):
        DegradationConfig(clean_prob=1.5)


def test_each_stage_does_what_it_says():
    gray_face = np.full((128, 128, 3), 128, dtype=np.uint8)
    noisy = degrade(gray_face, DegradationConfig(**{**IDENTITY, "noise_range": (10.0, 10.0)}), seed=0)
    assert np.std(noisy.astype(float) - 128) == pytest.approx(10.0, rel=0.05)

    shifted, params = degrade(
        gray_face, DegradationConfig(**{**IDENTITY, "color_jitter_prob": 1.0}), seed=0, return_params=True
    )
    np.testing.assert_allclose(shifted[0, 0].astype(float) - 128, params.color_shift, atol=0.5)

    rng = np.random.default_rng(0)
    colourful = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    gray = degrade(colourful, DegradationConfig(**{**IDENTITY, "gray_prob": 1.0}), seed=0)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()

    def jpeg_error(quality):
        out = degrade(colourful, DegradationConfig(**{**IDENTITY, "jpeg_range": (quality, quality)}), seed=0)
        return np.abs(out.astype(float) - colourful).mean()

    assert 0 < jpeg_error(100) < jpeg_error(60)

    blurred = degrade(colourful, DegradationConfig(**{**IDENTITY, "blur_sigma": (3.0, 3.0)}), seed=0)
    assert blurred.astype(float).std() < 0.5 * colourful.astype(float).std()
    small_scale = degrade(colourful, DegradationConfig(**{**IDENTITY, "downsample_range": (4.0, 4.0)}), seed=0)
    assert small_scale.shape == colourful.shape and not np.array_equal(small_scale, colourful)


def test_pixel_parameters_are_those_of_a_512_px_face():
    """A 64-px face is degraded as its 512-px photo would be: noise of std 8 there is std 1 after shrinking 8x."""
    gray_face = np.full((64, 64, 3), 128, dtype=np.uint8)
    noise_only = {**IDENTITY, "noise_range": (8.0, 8.0)}
    at_512 = degrade(gray_face, DegradationConfig(**{**noise_only, "reference_resolution": 512}), seed=0)
    as_is = degrade(gray_face, DegradationConfig(**noise_only), seed=0)
    assert np.std(as_is.astype(float) - 128) == pytest.approx(8.0, rel=0.05)
    assert np.std(at_512.astype(float) - 128) == pytest.approx(1.0, rel=0.15)

    # the same as degrading the bicubic 512-px enlargement in its own pixels and area-averaging it back
    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.random((64, 64, 3), dtype=np.float32), (5, 5), 1.0)
    config = DegradationConfig(color_jitter_prob=0.0, gray_prob=0.0, photometric_jitter_prob=0.0)
    assert config.reference_resolution == 512  # GFP-GAN's, the default
    degraded, params = degrade(small, config, seed=5, return_params=True)
    enlarged = np.clip(cv2.resize(small, (512, 512), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    in_own_pixels = degrade(enlarged, params=dataclasses.replace(params, reference_resolution=None))
    expected = cv2.resize(in_own_pixels, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(degraded, expected, atol=1.5 / 255)

    # a 512-px face is unchanged by the reference, and a manifest written before it existed replays at the image's size
    face_512 = cv2.resize(small, (512, 512))
    np.testing.assert_array_equal(degrade(face_512, params=params), degrade(face_512, params=dataclasses.replace(params, reference_resolution=None)))
    old_manifest_entry = {key: value for key, value in params.to_dict().items() if key != "reference_resolution"}
    assert DegradationParams.from_dict(old_manifest_entry).reference_resolution is None


def test_bad_input_gives_clear_errors(face):
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        degrade(face[..., 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        degrade(face.astype(np.float32))  # float images must be scaled to [0, 1]
    with pytest.raises(ValueError, match="dtype int32"):
        degrade(face.astype(np.int32))
    with pytest.raises(ValueError, match="empty"):
        degrade(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="seed or rng"):
        degrade(face, seed=1, rng=np.random.default_rng(1))
    params = sample_degradation(DegradationConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="params already fix"):
        degrade(face, seed=1, params=params)
    with pytest.raises(ValueError, match="kernel_size"):
        DegradationConfig(kernel_size=40)
    with pytest.raises(ValueError, match="blur_sigma"):
        DegradationConfig(blur_sigma=(10.0, 0.1))
    with pytest.raises(ValueError, match="gray_prob"):
        DegradationConfig(gray_prob=1.5)
    with pytest.raises(ValueError, match="jpeg_range"):
        DegradationConfig(jpeg_range=(60, 101))
    with pytest.raises(ValueError, match="reference_resolution"):
        DegradationConfig(reference_resolution=0)
    with pytest.raises(ValueError, match="hue_range"):
        DegradationConfig(hue_range=None)


def test_config_reads_back_from_json():
    config = DegradationConfig(noise_range=None, jpeg_range=(30, 90))
    assert DegradationConfig(**json.loads(json.dumps(config.to_dict()))) == config


# ----------------------------------------------------------------------------- the batched torch path


def _batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _unbatch(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).cpu().numpy()


def _both_paths(images: list[np.ndarray], config: DegradationConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy path image by image and the torch path on the batch, with the same drawn parameters."""
    rng = np.random.default_rng(seed)
    params = [sample_degradation(config, rng) for _ in images]
    expected = np.stack([degrade(image, params=p) for image, p in zip(images, params)])
    return expected, _unbatch(degrade_batch(_batch(images), params))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def faces(face):
    """Four different synthetic faces of 96 px."""
    return [face, face[::-1].copy(), np.roll(face, 30, axis=1), face.transpose(1, 0, 2).copy()]


# stage -> (config fields over IDENTITY, share of 8-bit values allowed to differ by one level (none by more)). Measured
# on CPU: blur 1e-5 and downsampling 4e-5 of the values off by one (float rounding of FFT and F.interpolate against
# cv2 near a rounding boundary), JPEG 0.9% at the 512-px reference (its input differs by such roundings; at the
# image's own size libjpeg gives the same bytes), the colour stages 0 to 1e-4.
STAGES = {
    "blur": ({"blur_sigma": (0.1, 10.0)}, 1e-3),
    "downsample": ({"downsample_range": (0.8, 8.0)}, 1e-3),
    "noise": ({"noise_range": (0.0, 20.0)}, 0.0),
    "jpeg": ({"jpeg_range": (60, 100)}, 0.02),
    "color_shift": ({"color_jitter_prob": 1.0}, 0.0),
    "gray": ({"gray_prob": 1.0}, 1e-3),
    "photometric": ({"photometric_jitter_prob": 1.0}, 1e-3),
}


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("reference_resolution", [None, 512])
def test_batch_stages_match_the_numpy_path(faces, stage, reference_resolution):
    fields, allowed = STAGES[stage]
    config = DegradationConfig(**{**IDENTITY, **fields, "reference_resolution": reference_resolution})
    expected, batched = _both_paths([image[:64, :64] for image in faces], config, seed=1)
    difference = np.abs(expected.astype(int) - batched.astype(int))
    assert difference.max() <= 1, stage
    assert (difference > 0).mean() <= allowed, (stage, (difference > 0).mean())
    if stage == "jpeg" and reference_resolution is None:
        np.testing.assert_array_equal(batched, expected)  # torchvision's CPU codec writes libjpeg's bytes, as cv2 does


def test_batch_every_stage_off_returns_the_input(faces):
    batch = _batch(faces)
    params = [sample_degradation(DegradationConfig(**IDENTITY), np.random.default_rng(0)) for _ in faces]
    torch.testing.assert_close(degrade_batch(batch, params), batch, rtol=0, atol=0)


def test_batch_whole_pipeline_is_close_to_the_numpy_path(ffhq_test_dir):
    """GFP-GAN's whole model at 64 and 256 px (degraded at 512): measured 72-89 dB PSNR on CPU, at most 4 levels."""
    from facerest.images import list_images, load_image, resize_square

    faces_256 = [load_image(path) for path in list_images(ffhq_test_dir)[:4]]
    for size in (64, 256):
        for seed in (0, 1):
            expected, batched = _both_paths([resize_square(face, size) for face in faces_256], DegradationConfig(), seed)
            assert _psnr(expected, batched) > 60.0, (size, seed)
            assert np.abs(expected.astype(int) - batched.astype(int)).max() <= 8


def test_batch_is_deterministic_and_independent_of_the_batch(faces):
    params = [sample_degradation(DegradationConfig(), np.random.default_rng(seed)) for seed in range(len(faces))]
    batch = _batch(faces)
    first = degrade_batch(batch, params)
    assert first.dtype == torch.uint8 and first.shape == batch.shape
    torch.testing.assert_close(degrade_batch(batch, params), first, rtol=0, atol=0)
    alone = torch.cat([degrade_batch(batch[i : i + 1], params[i : i + 1]) for i in range(len(faces))])
    torch.testing.assert_close(alone, first, rtol=0, atol=0)
    # given noise fields (drawn elsewhere, e.g. by data-loader workers) are the ones it would draw
    fields = [torch.from_numpy(noise_field(p, 96, 96)) for p in params]
    torch.testing.assert_close(degrade_batch(batch, params, noise=fields), first, rtol=0, atol=0)
    # float input: the same levels in [0, 1]
    as_float = degrade_batch(batch.float() / 255.0, params)
    assert as_float.dtype == torch.float32
    torch.testing.assert_close(as_float * 255.0, first.float(), rtol=0, atol=1e-3)


def test_batch_bad_input_gives_clear_errors(faces):
    params = [sample_degradation(DegradationConfig(), np.random.default_rng(0)) for _ in range(2)]
    batch = _batch(faces[:2])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        degrade_batch(batch[0], params)
    with pytest.raises(ValueError, match="for 2 sets of parameters"):
        degrade_batch(batch[:1], params)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        degrade_batch(batch.float(), params)
    with pytest.raises(ValueError, match="dtype torch.int32"):
        degrade_batch(batch.int(), params)
    other = sample_degradation(DegradationConfig(kernel_size=21), np.random.default_rng(0))
    with pytest.raises(ValueError, match="one config"):
        degrade_batch(batch, [params[0], other])
    with pytest.raises(ValueError, match="noise field of shape"):
        degrade_batch(batch, params, noise=[torch.zeros(5, 5, 3)] * 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_on_cuda_is_close_to_the_cpu(ffhq_test_dir):
    """On CUDA the FFT, resizes and nvJPEG differ from the CPU's libraries: without JPEG as on the CPU, with it a
    close PSNR (this test prints the figures)."""
    from facerest.images import list_images, load_image

    faces_256 = _batch([load_image(path) for path in list_images(ffhq_test_dir)[:8]])
    rng = np.random.default_rng(0)
    for name, config in (("no JPEG", DegradationConfig(jpeg_range=None)), ("whole model", DegradationConfig())):
        params = [sample_degradation(config, rng) for _ in range(len(faces_256))]
        on_cpu = _unbatch(degrade_batch(faces_256, params))
        on_cuda = _unbatch(degrade_batch(faces_256.cuda(), params))
        psnr = _psnr(on_cpu, on_cuda)
        print(f"CUDA against CPU, {name}: PSNR {psnr:.2f} dB, max difference {np.abs(on_cpu.astype(int) - on_cuda).max()}")
        assert psnr > (50.0 if name == "no JPEG" else 30.0)


def test_resize_modes_are_drawn_from_a_choice_and_one_mode_draws_as_before():
    before = [sample_degradation(DegradationConfig(), np.random.default_rng(seed)) for seed in range(20)]
    assert {(p.downsample_mode, p.upsample_mode) for p in before} == {("linear", "linear")}
    config = DegradationConfig(downsample_modes=("linear", "cubic", "area"), upsample_modes=("linear", "cubic"))
    mixed = [sample_degradation(config, np.random.default_rng(seed)) for seed in range(20)]
    # the other draws are the same; the modes cover the choices
    assert [dataclasses.replace(p, downsample_mode="linear", upsample_mode="linear") for p in mixed] == before
    assert {p.downsample_mode for p in mixed} == {"linear", "cubic", "area"}
    assert {p.upsample_mode for p in mixed} == {"linear", "cubic"}
    # each mode resamples otherwise (on texture: on the smooth face's ramps they agree), and replays from a manifest;
    # one written before the modes existed reads as linear
    texture = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    params = dataclasses.replace(before[0], scale=3.0, kernel_type=None, sigma_x=None, sigma_y=None, noise_std=None,
                                 noise_seed=None, jpeg_quality=None, color_shift=None, gray=False, photometric=())  # fmt: skip
    outputs = {
        (down, up): degrade(texture, params=dataclasses.replace(params, downsample_mode=down, upsample_mode=up))
        for down in ("linear", "cubic", "area") for up in ("linear", "cubic")
    }  # fmt: skip
    assert len({output.tobytes() for output in outputs.values()}) == 6
    old_manifest = {k: v for k, v in params.to_dict().items() if k not in ("downsample_mode", "upsample_mode")}
    np.testing.assert_array_equal(degrade(texture, params=DegradationParams.from_dict(old_manifest)), outputs["linear", "linear"])
    with pytest.raises(ValueError, match="upsample_modes"):
        DegradationConfig(upsample_modes=("area",))
    with pytest.raises(ValueError, match="downsample_modes"):
        DegradationConfig(downsample_modes=())


@pytest.mark.parametrize("reference_resolution", [None, 512])
def test_batch_resize_modes_match_the_numpy_path(faces, reference_resolution):
    """Measured on CPU: at most one level apart, on 0.1-0.4% of the values (cubic's and the area matrix's float
    rounding against cv2's fixed-point arithmetic)."""
    config = DegradationConfig(
        **{**IDENTITY, "downsample_range": (0.8, 8.0), "reference_resolution": reference_resolution},
        downsample_modes=("linear", "cubic", "area"), upsample_modes=("linear", "cubic"),
    )  # fmt: skip
    for seed in range(3):
        expected, batched = _both_paths([image[:64, :64] for image in faces], config, seed=seed)
        difference = np.abs(expected.astype(int) - batched.astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() <= 0.01, (seed, difference.max(), (difference > 0).mean())
