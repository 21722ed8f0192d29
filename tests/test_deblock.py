"""facerest.deblock: the grid of a JPEG saved small and enlarged, found at its period in photos and faces, none in clean
ones or in a JPEG at its own size, and taken off by the deblocking."""

import numpy as np
import pytest
from conftest import saved_small_and_enlarged, shared_path

from facerest.deblock import JPEG_BLOCK, deblocked, enlarged_jpeg_period
from facerest.images import list_images, load_image
from facerest.metrics import psnr


# Photos saved as PNG: a JPEG's own history would add a grid (gfpgan_Blake_Lively.jpg holds a faint one of 24 px).
PHOTOS = ["gfpgan_10045.png", "codeformer_02.png", "codeformer_06.png"]


@pytest.mark.parametrize("times", [2, 3, 4])
@pytest.mark.parametrize("name", PHOTOS)
def test_a_photo_saved_small_and_enlarged_shows_its_grid_at_eight_times_the_enlargement(name, times):
    photo = load_image(shared_path("data", "whole_imgs", name))
    period = enlarged_jpeg_period(saved_small_and_enlarged(photo, times, quality=30))
    assert period == pytest.approx(JPEG_BLOCK * times, abs=0.5)


def test_clean_photos_and_faces_show_no_grid(ffhq_test_dir):
    images = [load_image(path) for path in list_images(shared_path("data", "whole_imgs"))]
    images += [load_image(path) for path in list_images(ffhq_test_dir)[:40]]
    assert [enlarged_jpeg_period(image) for image in images] == [None] * len(images)


@pytest.mark.parametrize("name", PHOTOS)
def test_a_jpeg_at_its_own_size_is_left_to_the_model(name):
    """Quality 20 at the photo's own pixels: its 8-px grid is found as such, not as its multiple of 24 px."""
    photo = load_image(shared_path("data", "whole_imgs", name))
    assert enlarged_jpeg_period(saved_small_and_enlarged(photo, 1, quality=20)) is None


def test_an_image_too_small_to_hold_sixteen_blocks_is_not_searched():
    tiny = saved_small_and_enlarged(load_image(shared_path("data", "ffhq256", "test", "01000.jpg"))[:150, :150], 2, 30)
    assert enlarged_jpeg_period(tiny) is None


def test_deblocking_takes_the_grid_off_and_keeps_the_photo():
    blocky = saved_small_and_enlarged(load_image(shared_path("data", "whole_imgs", "codeformer_06.png")), 3, quality=30)
    smoothed = deblocked(blocky, enlarged_jpeg_period(blocky))
    assert smoothed.shape == blocky.shape and smoothed.dtype == np.uint8
    assert enlarged_jpeg_period(smoothed) is None
    print(f"\nPSNR of the deblocked photo against the blocky one: {psnr([smoothed], [blocky])[0]:.2f} dB")
    assert psnr([smoothed], [blocky])[0] > 30.0


def bordered(image: np.ndarray, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """``image`` in a plain frame ``width`` pixels wide."""
    return np.stack([np.pad(image[..., c], width, constant_values=colour[c]) for c in range(3)], axis=-1)


@pytest.mark.parametrize("name", ["codeformer_00.jpg", "gfpgan_Blake_Lively.jpg", "gfpgan_10045.png"])
def test_a_plain_border_is_no_grid(name):
    """A frame's straight edges stand in every row as a grid's steps do; they once showed grids of 20-46 px, whose
    deblocking blurred the faces."""
    photo = load_image(shared_path("data", "whole_imgs", name))
    assert enlarged_jpeg_period(bordered(photo, 40, (255, 255, 255))) is None
    assert enlarged_jpeg_period(bordered(photo, 25, (200, 200, 200))) is None


@pytest.mark.parametrize("times", [2, 3, 4])
def test_an_enlarged_jpeg_in_a_border_shows_its_own_grid(times):
    photo = load_image(shared_path("data", "whole_imgs", "codeformer_06.png"))
    blocky = bordered(saved_small_and_enlarged(photo, times, quality=30), 40, (255, 255, 255))
    assert enlarged_jpeg_period(blocky) == pytest.approx(JPEG_BLOCK * times, abs=0.5)


@pytest.mark.parametrize("times", [2, 3, 4])
def test_an_image_enlarged_by_repeating_its_pixels_shows_no_grid(times):
    """Its steps between cells fold into false grids by aliasing (28-30 px before it was looked for)."""
    photo = load_image(shared_path("data", "whole_imgs", "gfpgan_10045.png"))[: 1146 // times, : 783 // times]
    assert enlarged_jpeg_period(np.repeat(np.repeat(photo, times, axis=0), times, axis=1)) is None
