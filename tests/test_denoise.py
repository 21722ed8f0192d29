"""facerest.denoise: the noise level of a face (white noise read at its strength, texture not read as noise) and the
denoised copy the pipeline gives the model."""

import numpy as np
import pytest
from conftest import saved_small_and_enlarged, shared_path, with_noise

from facerest.denoise import (
    DENOISE_ABOVE,
    GRAIN_ABOVE,
    MIN_DENOISED_SIZE,
    TEXTURE_BAND_RATIO,
    denoised,
    denoised_faces,
    face_region,
    denoising_level,
    fine_noise,
    grain_level,
    next_band_ratio,
    noise_level,
)
from facerest.images import list_images, load_image, resize_square
from facerest.metrics import psnr


@pytest.mark.parametrize("sigma", [5.0, 10.0, 20.0])
def test_white_noise_on_a_flat_image_is_read_at_its_level(sigma):
    flat = np.full((256, 256, 3), 128, np.uint8)
    assert noise_level(with_noise(flat, sigma)) == pytest.approx(sigma, rel=0.1)


def test_clean_faces_read_below_the_threshold_and_come_back_as_they_are(ffhq_test_dir):
    faces = [load_image(path) for path in list_images(ffhq_test_dir)]
    levels = np.array([noise_level(face) for face in faces])
    print(f"\nnoise level of {len(faces)} clean faces: median {np.median(levels):.2f}, highest {levels.max():.2f}")
    assert levels.max() < DENOISE_ABOVE
    assert all(denoising_level(face) is None for face in faces)  # nor read as grain at half their size
    assert all(denoised(face) is face for face in faces[:8])


def test_a_face_under_a_net_of_hair_is_not_read_as_noisy():
    """01021: hair over the whole face; the median of the finest band over the face read 13.3 grey levels."""
    face = load_image(shared_path("data", "ffhq256", "test", "01021.jpg"))
    assert noise_level(face) < DENOISE_ABOVE


@pytest.mark.parametrize("sigma, least_gain", [(8.0, 1.5), (15.0, 3.0), (30.0, 5.0)])
def test_noisy_faces_are_read_near_their_level_and_denoised(ffhq_test_dir, sigma, least_gain):
    clean = [load_image(path) for path in list_images(ffhq_test_dir)[:8]]
    noisy = [with_noise(face, sigma, seed) for seed, face in enumerate(clean)]
    levels = np.array([noise_level(face) for face in noisy])
    assert np.all(levels > DENOISE_ABOVE) and np.all(levels < 1.1 * sigma)
    before, after = psnr(noisy, clean).mean(), psnr([denoised(face) for face in noisy], clean).mean()
    print(f"\nsigma {sigma:.0f}: read {levels.mean():.2f}; PSNR {before:.2f} -> {after:.2f} dB")
    assert after > before + least_gain


@pytest.mark.parametrize("sigma, least_denoised, least_gain", [(20.0, 5, 1.0), (30.0, 8, 2.0)])
def test_a_noisy_face_saved_as_jpeg_is_denoised_by_its_grain(ffhq_test_dir, sigma, least_denoised, least_gain):
    """White noise saved as JPEG of quality 50, as a camera saves a low-light photo: the JPEG takes the finest band,
    which then reads under DENOISE_ABOVE (noise of 20) or, weaker than the band one octave coarser, as texture (noise
    of 30); at half the face's size the grain reads above GRAIN_ABOVE, and non-local means at twice that level takes
    it out."""
    clean = [load_image(path) for path in list_images(ffhq_test_dir)[:8]]
    grainy = [saved_small_and_enlarged(with_noise(face, sigma, seed), 1, quality=50) for seed, face in enumerate(clean)]
    assert all(noise_level(face) < DENOISE_ABOVE or next_band_ratio(face) >= TEXTURE_BAND_RATIO for face in grainy)
    grains = np.array([grain_level(face) for face in grainy])
    levels = [denoising_level(face) for face in grainy]  # None where the grain is under GRAIN_ABOVE or reads as texture
    assert all(level is None or (grain > GRAIN_ABOVE and level == pytest.approx(2 * grain)) for level, grain in zip(levels, grains))
    assert sum(level is not None for level in levels) >= least_denoised
    before, after = psnr(grainy, clean).mean(), psnr([denoised(face) for face in grainy], clean).mean()
    print(f"\nsigma {sigma:.0f} at JPEG 50: grain {np.round(grains, 1)}; PSNR {before:.2f} -> {after:.2f} dB")
    assert after > before + least_gain


@pytest.mark.parametrize("texture", ["grass", "gravel"])
def test_a_small_clean_face_before_fine_texture_is_not_denoised(texture):
    """The region around a 64-px face is mostly the texture behind it (scikit-image's photos of grass and gravel),
    whose flattest blocks read as noise above DENOISE_ABOVE; one octave coarser the texture holds as much, where white
    noise halves, so the region is left as it is. With white noise of 15 grey levels over it, it is denoised."""
    import skimage.data

    wall = np.tile(getattr(skimage.data, texture)()[..., None], (3, 3, 3))[:720, :960]
    photo = wall.copy()
    photo[150:214, 300:364] = resize_square(load_image(shared_path("data", "ffhq256", "test", "01001.jpg")), 64)
    region = photo[face_region(np.array([300, 150, 364, 214], np.float32), photo.shape)]
    assert noise_level(region) > DENOISE_ABOVE and next_band_ratio(region) >= TEXTURE_BAND_RATIO
    assert denoised(region) is region
    noisy = with_noise(region, 15.0)
    assert next_band_ratio(noisy) < TEXTURE_BAND_RATIO and denoised(noisy) is not noisy


def test_white_noise_halves_one_octave_coarser():
    noisy = with_noise(np.full((256, 256, 3), 128, np.uint8), 10.0)
    assert next_band_ratio(noisy) == pytest.approx(0.5, abs=0.1)


def test_an_image_smaller_than_a_block_reads_no_noise():
    assert noise_level(np.zeros((10, 40, 3), np.uint8)) == 0.0


def test_a_photos_noisy_face_region_is_denoised_and_fades_into_the_photo():
    photo = with_noise(np.full((600, 800, 3), 128, np.uint8), 15.0)
    box = np.array([300, 200, 450, 350], np.float32)  # a 150-px face: a 300-px region from (225, 125) to (525, 425)
    result = denoised_faces(photo, box[None])
    rows, columns = face_region(box, photo.shape)
    change = np.abs(result.astype(np.float32) - photo)
    outside = np.ones(photo.shape[:2], bool)
    outside[rows, columns] = False
    assert not change[outside].any()
    centre = result[rows.start + 100 : rows.stop - 100, columns.start + 100 : columns.stop - 100]
    assert noise_level(centre) < 3.0
    assert change[rows.start, columns].mean() < 0.1 * change[rows.start + 60, columns.start + 60 : columns.stop - 60].mean()


def test_a_small_faces_noise_is_read_from_the_photo_around_it():
    """Around a 40-px face the region grows to MIN_DENOISED_SIZE (an 80-px one would read the face's own detail as
    noise): the photo's noise is denoised there; a photo smaller than that is left as it is."""
    photo = with_noise(np.full((600, 800, 3), 128, np.uint8), 15.0)
    small_box = np.array([380, 280, 420, 320], np.float32)
    rows, columns = face_region(small_box, photo.shape)
    assert rows.stop - rows.start == columns.stop - columns.start == MIN_DENOISED_SIZE
    result = denoised_faces(photo, small_box[None])
    assert noise_level(result[rows, columns]) < 3.0
    outside = np.ones(photo.shape[:2], bool)
    outside[rows, columns] = False
    np.testing.assert_array_equal(result[outside], photo[outside])
    corner = face_region(np.array([5, 10, 45, 50], np.float32), photo.shape)  # moved inside the photo, not clipped
    assert (corner[0].start, corner[0].stop, corner[1].start, corner[1].stop) == (0, MIN_DENOISED_SIZE, 0, MIN_DENOISED_SIZE)
    small_photo = photo[250:350, 350:450]  # the same face in a 100-px photo
    assert denoised_faces(small_photo, (small_box - [350, 250, 350, 250])[None]) is small_photo


def test_a_noisy_gray_face_stays_gray(ffhq_test_dir):
    clean = np.repeat(load_image(list_images(ffhq_test_dir)[0]).mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    noisy = np.repeat(with_noise(clean[..., :1], 15.0), 3, axis=2)
    result = denoised(noisy)
    assert result is not noisy and (result == result[..., :1]).all()
    assert psnr([result], [clean])[0] > psnr([noisy], [clean])[0] + 3.0


def test_a_dithered_face_is_left_as_it_is(ffhq_test_dir):
    """A 1-bit (dithered) face reads as very noisy, but its dither is no white noise: denoising one face's region of a
    dithered photo would leave a grey patch in it."""
    from PIL import Image

    face = Image.open(list_images(ffhq_test_dir)[0]).convert("L").convert("1")  # Floyd-Steinberg dither
    dithered = np.asarray(face.convert("RGB"))
    assert noise_level(dithered) > DENOISE_ABOVE
    assert denoised(dithered) is dithered
    eight_colours = np.asarray(Image.open(list_images(ffhq_test_dir)[0]).convert("P", palette=Image.ADAPTIVE, colors=8).convert("RGB"))
    assert denoised(eight_colours) is eight_colours


def _without_fine_noise(image: np.ndarray, model_pixel: float) -> np.ndarray:
    return np.clip(np.rint(image - fine_noise(image, model_pixel)), 0, 255).astype(np.uint8)


def _finer_than(image: np.ndarray, model_pixel: float) -> np.ndarray:
    """The band of `image` finer than `model_pixel` pixels (float32)."""
    pixels, side = image.astype(np.float32), image.shape[0]
    return pixels - resize_square(resize_square(pixels, round(side / model_pixel)), side)


def test_noise_finer_than_the_models_pixels_is_shrunk(ffhq_test_dir):
    """Faces enlarged to 512 px (no detail finer than the model's 2-px pixels) with faint white noise, too faint for
    non-local means: the band the model never sees is cleaned of most of it."""
    clean = [resize_square(load_image(path), 512) for path in list_images(ffhq_test_dir)[:4]]
    noisy = [with_noise(face, 4.0, seed) for seed, face in enumerate(clean)]
    assert all(denoised(face) is face for face in noisy)
    cleaned = [_without_fine_noise(face, 2.0) for face in noisy]
    gains = psnr(cleaned, clean) - psnr(noisy, clean)
    print(f"\nPSNR gained: {np.round(gains, 2)} dB")
    assert gains.min() > 3.0


def test_a_sharp_faces_own_fine_detail_is_kept(ffhq_test_dir):
    """Clean 256-px faces with a model pixel of 2: their band finer than that is the faces' detail (lashes, hair,
    edges), which gathers where the band's floor is far below it, and is kept."""
    faces = [load_image(path) for path in list_images(ffhq_test_dir)[:8]]
    kept = [
        np.sum(_finer_than(_without_fine_noise(face, 2.0), 2.0) * _finer_than(face, 2.0)) / np.sum(_finer_than(face, 2.0) ** 2)
        for face in faces
    ]  # fmt: skip
    print(f"\nshare of the fine band kept: {np.round(kept, 3)}")
    assert min(kept) > 0.9
    assert psnr([_without_fine_noise(face, 2.0) for face in faces], faces).min() > 45.0


def test_nothing_finer_than_the_model_or_a_dither_is_left_as_it_is(ffhq_test_dir):
    from PIL import Image

    face = load_image(list_images(ffhq_test_dir)[0])
    assert not fine_noise(face, 1.9).any() and not fine_noise(face, 0.5).any()
    dithered = np.asarray(Image.fromarray(face).convert("L").convert("1").convert("RGB"))
    assert not fine_noise(dithered, 2.0).any() and fine_noise(face, 2.0).any()
