"""FaceRestorePipeline (facerest/pipeline.py): the three kinds, bad inputs, whole photos, saving and loading.

Run with ``-s`` to see the faces found per photo of ../shared/data/whole_imgs.
"""

import io
import json
import re
import threading

import cv2
import numpy as np
import pytest
import pillow_heif
import torch
from PIL import Image

from facerest import FaceRestorePipeline, IDMScheduler
from facerest import photo_restoration
from facerest.deblock import enlarged_jpeg_period
from facerest.denoise import DENOISE_ABOVE, face_region, noise_level
from facerest.errors import FacerestError, ImageReadError
from facerest.face_detection import RETINAFACE_MEAN_RGB, TURN_COUNT_SIDE, FaceDetector, _shrunk
from facerest.faces import add_face_corrections, align_face, face_paste_mask, face_window
from facerest.images import DEFAULT_MAX_PIXELS, is_monochrome, list_images, load_image, resize_square, with_chroma_of
from facerest.metrics import gradient_sharpness, psnr
from facerest.photo_restoration import ALIGN_SIZE, _faces_made_blurrier
from facerest.pipeline import DEFAULT_HYBRID_STRENGTH
from conftest import png_claiming, saved_small_and_enlarged, shared_path, with_noise
from test_faces import EXPECTED_FACES
from tiny_pipelines import FACE_SIZE, KINDS, restoring_with, tiny_pipeline, tiny_restorer, tiny_unet


@pytest.fixture(scope="module")
def pipelines():
    return {kind: tiny_pipeline(kind) for kind in KINDS}


@pytest.fixture(scope="module")
def gfpgan(pipelines):
    return pipelines["gfpgan"]


@pytest.fixture(scope="module")
def mtcnn():
    return FaceDetector("mtcnn")


@pytest.fixture(scope="module")
def retinaface():
    return FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))


def _faces(count=2, seed=0):
    return torch.rand(count, 3, FACE_SIZE, FACE_SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def _write(image: Image.Image, path, **save_kwargs):
    image.save(path, **save_kwargs)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Kinds and components
# ---------------------------------------------------------------------------------------------------------------


def test_kind_and_face_size(pipelines):
    assert {kind: pipeline.kind for kind, pipeline in pipelines.items()} == {kind: kind for kind in KINDS}
    assert all(pipeline.face_size == FACE_SIZE for pipeline in pipelines.values())
    for pipeline in pipelines.values():
        restored = pipeline.restore_faces(_faces(), num_inference_steps=2, generator=_seeded(), progress=False)
        assert restored.shape == (2, 3, FACE_SIZE, FACE_SIZE) and restored.dtype == torch.float32
        assert restored.abs().max() <= 1.0


def test_components_must_fit_together():
    with pytest.raises(FacerestError, match="needs a restorer"):
        FaceRestorePipeline()
    with pytest.raises(FacerestError, match="go together"):
        FaceRestorePipeline(unet=tiny_unet())


def test_a_hybrid_across_face_sizes_restores_at_the_unets_size(monkeypatch):
    """A 64-px GAN with a 128-px IDM: the faces go to the GAN at 64 px, its estimate comes back at 128 px as the
    starting point of the IDM steps."""
    hybrid = FaceRestorePipeline(restorer=tiny_restorer(), unet=tiny_unet(size=128), scheduler=IDMScheduler())
    assert hybrid.face_size == 128
    seen = []
    forward = hybrid.restorer.forward
    monkeypatch.setattr(hybrid.restorer, "forward", lambda faces, *a, **k: seen.append(faces.shape) or forward(faces, *a, **k))
    faces = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    restored = hybrid.restore_faces(faces, 10, strength=0.3, generator=_seeded(), progress=False, face_batch_size=2)
    assert seen == [(2, 3, 64, 64)] and restored.shape == (2, 3, 128, 128)


def test_restore_faces_arguments_are_checked(gfpgan, pipelines):
    with pytest.raises(FacerestError, match="strength applies"):
        gfpgan.restore_faces(_faces(), strength=0.5)
    with pytest.raises(ValueError, match=r"shape \(N, 3, 64, 64\)"):
        gfpgan.restore_faces(torch.zeros(1, 3, 32, 32))
    with pytest.raises(FacerestError, match=r"strength must lie in \(0, 1\], got 1.5"):
        pipelines["hybrid"].restore_faces(_faces(), strength=1.5)
    with pytest.raises(FacerestError, match="num_inference_steps must be a whole number from 1 to 1000, got 0"):
        pipelines["idm"].restore_faces(_faces(), num_inference_steps=0)


def test_hybrid_at_strength_one_is_pure_idm(pipelines):
    hybrid = pipelines["hybrid"]
    idm = FaceRestorePipeline(unet=hybrid.unet, scheduler=hybrid.scheduler)
    faces = _faces()
    from_hybrid = hybrid.restore_faces(faces, 4, strength=1.0, generator=_seeded(3), progress=False)
    from_idm = idm.restore_faces(faces, 4, generator=_seeded(3), progress=False)
    assert torch.equal(from_hybrid, from_idm)
    refined = hybrid.restore_faces(faces, 4, generator=_seeded(3), progress=False)  # default strength 0.3
    assert not torch.equal(refined, from_idm)


def test_a_call_without_strength_samples_at_the_default_strength(pipelines):
    assert {kind: pipeline.default_strength for kind, pipeline in pipelines.items()} == {
        "gfpgan": None, "idm": 1.0, "hybrid": DEFAULT_HYBRID_STRENGTH
    }
    faces = _faces()
    for kind in ("idm", "hybrid"):
        pipeline = pipelines[kind]
        default = pipeline.restore_faces(faces, 4, generator=_seeded(5), progress=False)
        named = pipeline.restore_faces(faces, 4, strength=pipeline.default_strength, generator=_seeded(5), progress=False)
        assert torch.equal(default, named), kind


def test_hybrid_of_a_gan_and_an_idm_pipeline_shares_their_models(pipelines):
    gan, idm = pipelines["gfpgan"], FaceRestorePipeline(unet=pipelines["hybrid"].unet, scheduler=pipelines["hybrid"].scheduler)
    hybrid = FaceRestorePipeline.hybrid(gan, idm)
    assert hybrid.kind == "hybrid" and hybrid.restorer is gan.restorer and hybrid.unet is idm.unet
    with pytest.raises(FacerestError, match="needs a GFP-GAN and an IDM pipeline, in that order; got 'idm' and 'gfpgan'"):
        FaceRestorePipeline.hybrid(idm, gan)


def test_gfpgan_faces_run_side_by_side_on_the_cpu_threads(gfpgan, monkeypatch):
    faces = _faces(count=5)
    one_pass = gfpgan.restore_faces(faces, face_batch_size=5)
    calls = []
    restore_batch = gfpgan._restore_batch

    def recorded(lq, *args):
        calls.append((threading.current_thread().name, torch.get_num_threads(), len(lq)))
        return restore_batch(lq, *args)

    monkeypatch.setattr(gfpgan, "_restore_batch", recorded)
    threads = torch.get_num_threads()  # the suite runs on one thread (conftest)
    torch.set_num_threads(2)
    try:
        side_by_side = gfpgan.restore_faces(faces)
        assert torch.get_num_threads() == 2  # the caller's thread count is left as it was
    finally:
        torch.set_num_threads(threads)
    assert gfpgan.default_face_batch_size == 1
    # Two full rounds side by side, one thread each; the fifth face alone on both threads, in the caller's thread.
    side_by_side_calls, last_call = calls[:4], calls[4]
    assert len(calls) == 5 and all(size == 1 for _, _, size in calls)
    assert all(name.startswith("facerest-face") and count == 1 for name, count, _ in side_by_side_calls)
    assert len({name for name, _, _ in side_by_side_calls}) == 2
    assert last_call[:2] == (threading.current_thread().name, 2)
    torch.testing.assert_close(side_by_side, one_pass, rtol=0, atol=1e-5)


def test_idm_faces_on_the_cpu_run_one_per_pass_one_after_the_other(pipelines, monkeypatch):
    idm = pipelines["idm"]
    assert idm.device.type == "cpu" and idm.default_face_batch_size == 1
    calls, restore_batch = [], idm._restore_batch

    def recorded(lq, *args):
        calls.append((threading.current_thread().name, len(lq)))
        return restore_batch(lq, *args)

    monkeypatch.setattr(idm, "_restore_batch", recorded)
    faces = _faces(count=3)
    one_by_one = idm.restore_faces(faces, 3, generator=_seeded(0), progress=False)
    assert calls == [(threading.current_thread().name, 1)] * 3
    torch.testing.assert_close(idm.restore_faces(faces, 3, generator=_seeded(0), progress=False), one_by_one)


def test_idm_faces_in_batches_keep_one_generator_per_face(pipelines):
    idm = pipelines["idm"]
    faces = _faces(count=3)
    batched = idm.restore_faces(faces, 3, generator=[_seeded(seed) for seed in range(3)], face_batch_size=2, progress=False)
    for seed in range(3):
        alone = idm.restore_faces(faces[seed : seed + 1], 3, generator=[_seeded(seed)], progress=False)
        # equal up to the rounding of batched kernels, grown over the steps; another face's noise would differ by ~1
        torch.testing.assert_close(batched[seed : seed + 1], alone, rtol=0, atol=1e-3)


@pytest.mark.parametrize("kind", ["idm", "hybrid"])
def test_same_seed_same_output(pipelines, kind):
    face = (np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)
    run = lambda seed, eta: pipelines[kind](  # noqa: E731
        face, aligned=True, num_inference_steps=4, eta=eta, generator=_seeded(seed), output_type="np", progress=False
    ).images[0]
    for eta in (0.0, None):  # deterministic DDIM and the ancestral update
        assert np.array_equal(run(1, eta), run(1, eta))
    assert not np.array_equal(run(1, 0.0), run(2, 0.0))


def test_low_precision_inputs_follow_the_models():
    pipeline = tiny_pipeline("hybrid").to(dtype=torch.bfloat16)
    assert pipeline.restorer.dtype == pipeline.unet.dtype == torch.bfloat16
    restored = pipeline.restore_faces(_faces(), 2, generator=_seeded(), progress=False)
    assert restored.dtype == torch.float32 and torch.isfinite(restored).all()


def test_call_arguments_are_checked(gfpgan):
    face = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(FacerestError, match="upscale must be a whole number from 1 to 4"):
        gfpgan(face, aligned=True, upscale=5)
    with pytest.raises(FacerestError, match="output_type"):
        gfpgan(face, aligned=True, output_type="latent")
    with pytest.raises(ImageReadError, match=r"must be square, got 48x64 \(for a photo, turn aligned off"):
        gfpgan(np.zeros((64, 48, 3), np.uint8), aligned=True)


def test_call_arguments_of_the_wrong_type_are_one_error_each(pipelines):
    """What an app passes from a form (strings, floats) or by mistake is told as a FacerestError naming the argument,
    not a TypeError from deep inside the call."""
    idm, face = pipelines["idm"], np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8)
    wrong = {
        "num_inference_steps": [2.5, "2", True, 0, 1001], "strength": ["0.5", True, 0], "face_batch_size": [2.5, "2", 0],
        "eta": [-1, "x", 1.5], "min_face_size": ["x", -1], "fidelity": [True, 2], "generator": [0, [_seeded()] * 2],
        "detector": [5, {"bogus": 1}],
    }  # fmt: skip
    for argument, values in wrong.items():
        for value in values:
            with pytest.raises(FacerestError, match=f"^{argument}|^a list of generators|^unknown detector setting"):
                idm(face, aligned=argument != "detector", progress=False, **{argument: value})
    with pytest.raises(FacerestError, match=r"a list of generators must hold one per image \(1\), got 2"):
        idm(face, aligned=True, generator=[_seeded(), _seeded()])
    with pytest.raises(FacerestError, match="unknown detector setting"):
        idm(face, detector={"bogus": 1})


def test_float16_models_on_the_cpu_are_refused_before_restoring():
    """The CPU emulates float16: one face took 209 s instead of 1.3 s in float32."""
    pipeline = tiny_pipeline("idm").to(torch.float16)
    with pytest.raises(FacerestError, match=r"float16 on the CPU.*pipeline.to\(torch.float32\)"):
        pipeline(np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8), aligned=True)


def test_one_generator_per_image_makes_each_result_its_own(pipelines):
    """A list of generators, one per image: an image restores the same alone or after another."""
    idm = pipelines["idm"]
    faces = [np.asarray(Image.effect_noise((FACE_SIZE, FACE_SIZE), 60 + 20 * i).convert("RGB")) for i in range(2)]
    run = lambda images, seeds: idm(images, aligned=True, generator=[_seeded(seed) for seed in seeds], output_type="np", progress=False)
    alone = run(faces[1:], [7]).images[0]
    np.testing.assert_array_equal(run(faces, [3, 7]).images[1], alone)
    shared = idm(faces, aligned=True, generator=_seeded(7), output_type="np", progress=False).images[1]
    assert not np.array_equal(shared, alone)  # one generator: the second image draws after the first


def test_a_hybrid_is_made_from_saved_pipelines_too(pipelines, tmp_path):
    pipelines["gfpgan"].save_pretrained(tmp_path / "gan")
    FaceRestorePipeline(unet=pipelines["idm"].unet, scheduler=pipelines["idm"].scheduler).save_pretrained(tmp_path / "idm")
    hybrid = FaceRestorePipeline.hybrid(str(tmp_path / "gan"), tmp_path / "idm")
    assert hybrid.kind == "hybrid" and hybrid.face_size == pipelines["idm"].face_size


def test_an_unreadable_image_of_a_list_is_named_by_its_place(gfpgan):
    face = np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8)
    with pytest.raises(ImageReadError, match=r"^image 2 \(<NoneType>\): expected a file path"):
        gfpgan([face, face, None], aligned=True)
    with pytest.raises(ImageReadError, match=r"^image 1 \(<ndarray>\): expected a uint8 array .*got dtype bool"):
        gfpgan([face, np.ones((8, 8), bool)], aligned=True)


def test_aligned_faces_come_back_at_input_size_times_upscale(gfpgan):
    faces = [np.full((100, 100, 3), 90, np.uint8), Image.new("RGB", (64, 64), (10, 200, 30))]
    output = gfpgan(faces, aligned=True, upscale=2)
    assert [image.size for image in output.images] == [(200, 200), (128, 128)]
    assert [[face.size for face in faces] for faces in output.restored_faces] == [[(64, 64)], [(64, 64)]]
    assert output.detector is None and output.messages == [[], []]
    np.testing.assert_array_equal(output.face_boxes[0], [[0, 0, 100, 100]])


# ---------------------------------------------------------------------------------------------------------------
# Bad input, each a test
# ---------------------------------------------------------------------------------------------------------------


def test_zero_byte_file(gfpgan, tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.jpg: empty file \(0 bytes\)"):
        gfpgan(path, aligned=True)


def test_truncated_file(gfpgan, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        gfpgan(path, aligned=True)


def test_non_image_file(gfpgan, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image\n")
    with pytest.raises(ImageReadError, match="not an image file"):
        gfpgan(path, aligned=True)


def test_16_bit_png(gfpgan, tmp_path):
    path = _write(Image.fromarray(np.full((64, 64), 32896, np.uint16)), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    output = gfpgan(path, aligned=True, output_type="np")
    assert output.images[0].shape == (64, 64, 3) and output.images[0].dtype == np.uint8
    assert output.messages[0] == ["a 16-bit image: restored and saved at 8 bits per channel"]


def test_48_bit_png_is_noted_though_pillow_opens_it_as_8_bit_rgb(gfpgan, tmp_path):
    path = tmp_path / "deep_rgb.png"
    cv2.imwrite(str(path), np.full((64, 64, 3), 40000, np.uint16))
    assert Image.open(path).mode == "RGB"
    output = gfpgan([path, np.full((64, 64, 3), 156, np.uint8)], aligned=True, output_type="np")
    assert output.messages == [["a 16-bit image: restored and saved at 8 bits per channel"], []]


def test_10_bit_heic_is_noted_though_pillow_heif_opens_it_as_8_bit_rgb(gfpgan, tmp_path):
    path = tmp_path / "phone.heic"
    pixels = np.full((64, 64, 3), 40000, np.uint16)
    pillow_heif.from_bytes(mode="RGB;16", size=(64, 64), data=pixels.tobytes()).save(path, quality=-1)
    assert Image.open(path).mode == "RGB"
    output = gfpgan(path, aligned=True, output_type="np")
    assert output.messages[0] == ["a 10-bit image: restored and saved at 8 bits per channel"]


def test_deep_images_keep_their_brightness(tmp_path):
    gray = np.linspace(0, 255, 64 * 64).reshape(64, 64)
    deep = {
        "16-bit.png": Image.fromarray(np.round(gray * 257).astype(np.uint16)),
        "float-0-255.tiff": Image.fromarray(gray.astype(np.float32)),  # Pillow's convention: convert("F")
        "float-0-1.tiff": Image.fromarray((gray / 255).astype(np.float32)),
    }
    for name, image in deep.items():
        loaded = load_image(_write(image, tmp_path / name))
        assert np.abs(loaded[..., 0].astype(float) - gray).max() <= 1, name


def test_a_float_array_outside_zero_to_one_is_refused_in_one_line():
    photo = np.full((64, 64, 3), 200.0, np.float32)  # cv2.imread(...).astype(np.float32)
    with pytest.raises(ImageReadError, match=r"a float image must hold values in \[0, 1\], this one holds 200 to 200"):
        load_image(photo)
    with pytest.raises(ImageReadError, match="holds nan"):
        load_image(np.full((8, 8), np.nan))
    np.testing.assert_array_equal(load_image(photo / 255), np.full((64, 64, 3), 200, np.uint8))


def test_a_tensor_or_channels_first_array_is_refused_saying_how_to_pass_it():
    with pytest.raises(ImageReadError, match=r"<Tensor>: expected a file path.*tensor.permute\(1, 2, 0\)"):
        load_image(torch.rand(3, 16, 16))
    with pytest.raises(ImageReadError, match=r"shape \(3, 16, 16\) \(channels first: pass array.transpose\(1, 2, 0\)\)"):
        load_image(np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(ImageReadError, match="<NoneType>: expected a file path"):
        load_image(None)


def test_cmyk_jpeg(gfpgan, mtcnn, tmp_path):
    path = _write(Image.new("CMYK", (64, 64), (0, 200, 200, 0)), tmp_path / "cmyk.jpg", quality=95)
    output = gfpgan(path, detector=mtcnn, output_type="np")
    np.testing.assert_array_equal(output.images[0], load_image(path))
    assert output.images[0].shape == (64, 64, 3) and output.images[0][32, 32, 0] > 200  # red stays red
    assert gfpgan(path, aligned=True).images[0].mode == "RGB"


def test_rgba_png(gfpgan, tmp_path):
    path = _write(Image.new("RGBA", (64, 64), (200, 100, 50, 0)), tmp_path / "alpha.png")
    output = gfpgan(path, aligned=True, output_type="np")
    assert output.images[0].shape == (64, 64, 3)


def test_grayscale(gfpgan, mtcnn, tmp_path):
    path = _write(Image.new("L", (80, 60), 77), tmp_path / "gray.png")
    output = gfpgan(path, detector=mtcnn, output_type="np")
    assert output.images[0].shape == (60, 80, 3) and (output.images[0] == 77).all()


def test_exif_rotated(gfpgan, mtcnn, tmp_path):
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :8] = 255  # a white band on the left, which the rotation moves to the top
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = _write(Image.fromarray(pixels), tmp_path / "rotated.jpg", exif=exif, quality=95)
    output = gfpgan(path, detector=mtcnn, output_type="np")
    assert output.images[0].shape == (64, 48, 3)
    assert output.images[0][:8].mean() > 200 and output.images[0][-8:].mean() < 50


def test_an_empty_list_gives_an_empty_output_aligned_or_not(gfpgan, mtcnn):
    for aligned in (True, False):
        output = gfpgan([], aligned=aligned, detector=None if aligned else mtcnn)
        assert output.images == output.restored_faces == output.messages == []


def test_one_pixel_image(gfpgan, mtcnn):
    pixel = np.full((1, 1, 3), 50, np.uint8)
    output = gfpgan(pixel, detector=mtcnn, output_type="np")
    assert output.images[0].shape == (1, 1, 3) and output.messages == [["no face found: returned unchanged"]]
    assert gfpgan(pixel, aligned=True, upscale=2, output_type="np").images[0].shape == (2, 2, 3)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_and_results_over_the_pixel_limits_are_refused(gfpgan, mtcnn, tmp_path):
    limit = f"the limit is {DEFAULT_MAX_PIXELS:,}$"  # over Pillow's own limit (179 MP) too: the same words
    for side, message in [(10_000, f"image too large: 10000x10000 = 100,000,000 pixels, {limit}"),
                          (100_000, f"image too large: 10,000,000,000 pixels, {limit}")]:  # fmt: skip
        path = tmp_path / f"huge{side}.png"
        path.write_bytes(png_claiming(side))
        with pytest.raises(ImageReadError, match=message):
            gfpgan(path, aligned=True)
    small = _write(Image.new("RGB", (20, 20)), tmp_path / "small.png")
    for given in (small, load_image(small), Image.open(small)):
        with pytest.raises(ImageReadError, match="image too large: 20x20 = 400 pixels, the limit is 100$"):
            gfpgan(given, aligned=True, max_pixels=100)
    with pytest.raises(ImageReadError, match=(
        r"small.png: the result at upscale 4 would be 80x80, 0.0064 megapixels, more than the 0.005-megapixel limit on "
        r"results; choose a smaller upscale"
    )):  # fmt: skip
        gfpgan(small, aligned=True, upscale=4, max_output_pixels=5_000)
    assert gfpgan(small, aligned=True, upscale=3, max_output_pixels=5_000).images[0].size == (60, 60)
    photo = np.zeros((3000, 6000, 3), np.uint8)  # 18 MP: 288 MP at 4x, over the default; no face sought
    with pytest.raises(ImageReadError, match="image 0: the result at upscale 4 would be 24000x12000, 288 megapixels"):
        gfpgan(photo, upscale=4, detector=mtcnn)


def test_photo_without_a_face(gfpgan, mtcnn):
    photo = np.random.default_rng(0).integers(100, 140, (120, 160, 3), dtype=np.uint8)
    output = gfpgan(photo, detector=mtcnn, output_type="np")
    np.testing.assert_array_equal(output.images[0], photo)
    assert output.messages == [["no face found: returned unchanged"]] and output.restored_faces == [[]]
    assert output.face_boxes[0].shape == (0, 4) and output.detector == "mtcnn"
    enlarged = gfpgan(photo, detector=mtcnn, upscale=2, output_type="np")
    assert enlarged.images[0].shape == (240, 320, 3)
    assert enlarged.messages == [["no face found: returned only enlarged 2x"]]
    with pytest.raises(ImageReadError, match="image 0: no face found"):
        gfpgan(photo, detector=mtcnn, strict=True)


def test_a_photo_turned_sideways_has_its_faces_restored_turned_upright(gfpgan, retinaface):
    """RetinaFace finds none of the four faces of codeformer_00 turned a quarter counter-clockwise (a scan fed in
    sideways): they are found and restored with the photo turned back upright, and the photo comes back as it was
    given, its faces where the upright photo's are, restored as the upright photo's are."""
    upright = load_image(shared_path("data", "whole_imgs", "codeformer_00.jpg"))
    sideways = np.ascontiguousarray(np.rot90(upright))
    assert retinaface.detect(sideways) == []
    output = gfpgan(sideways, detector=retinaface, output_type="np", never_blur=False)
    expected = gfpgan(upright, detector=retinaface, output_type="np", never_blur=False)
    assert not np.array_equal(expected.images[0], upright)
    assert output.messages == [
        ["4 faces found with the photo turned a quarter clockwise: restored so, and the photo turned back"]
    ]
    np.testing.assert_array_equal(output.images[0], np.rot90(expected.images[0]))
    width = upright.shape[1]
    # a point (x, y) of the upright photo lies at (y, width - 1 - x) in the photo turned a quarter counter-clockwise
    expected_landmarks = np.stack([expected.face_landmarks[0][..., 1], width - 1 - expected.face_landmarks[0][..., 0]], -1)
    np.testing.assert_allclose(output.face_landmarks[0], expected_landmarks, atol=1e-3)
    corners = np.stack([expected.face_boxes[0][:, 1::2], width - 1 - expected.face_boxes[0][:, 0::2]], -1)
    np.testing.assert_allclose(output.face_boxes[0], np.concatenate([corners.min(1), corners.max(1)], 1), atol=1e-3)


def test_a_turned_photo_showing_some_of_its_faces_as_given_is_searched_turned_too(retinaface):
    """gfpgan_10045 given a quarter turned clockwise shows one of its three faces as given, found sideways: the turn
    that shows all three is taken, with the faces the upright photo shows."""
    upright = load_image(shared_path("data", "whole_imgs", "gfpgan_10045.png"))
    upright_faces = retinaface.detect(upright)
    turned = np.ascontiguousarray(np.rot90(upright, -1))
    assert len(retinaface.detect(turned)) == 1 and len(upright_faces) == 3
    turns, faces = retinaface.detect_turned(turned)
    assert turns == 3
    np.testing.assert_allclose(
        sorted(face.box.tolist() for face in faces), sorted(face.box.tolist() for face in upright_faces), atol=2.0
    )


def test_the_turns_of_photos_of_any_shape_are_counted_at_one_input_size(monkeypatch):
    """An upright photo showing faces has its turns counted on its copy set in a TURN_COUNT_SIDE square, so that
    photos of every shape, and their turns, give the network one input size: new sizes made the CPU's convolution
    library build and cache code for each, and the resident memory of a long CLI run climbed with them."""
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    network_inputs = []
    network_call = type(detector._detect_faces).__call__

    def recording(network, image, score_threshold):
        network_inputs.append(image)
        return network_call(network, image, score_threshold)

    monkeypatch.setattr(type(detector._detect_faces), "__call__", recording)
    for name in ("gfpgan_00.jpg", "codeformer_01.jpg"):  # 1297 x 1920 and 248 x 189 px
        photo = load_image(shared_path("data", "whole_imgs", name))
        network_inputs.clear()
        given = detector.detect(photo)
        detection_passes = len(network_inputs)
        turns, faces = detector.detect_turned(photo)
        assert turns == 0 and [face.box.tolist() for face in faces] == [face.box.tolist() for face in given], name
        counting = network_inputs[2 * detection_passes :]  # detect_turned's own detect, then the four counts
        assert [image.shape for image in counting] == [(TURN_COUNT_SIDE, TURN_COUNT_SIDE, 3)] * 4, name
        copy, _ = _shrunk(photo, TURN_COUNT_SIDE)
        np.testing.assert_array_equal(counting[-1][: copy.shape[0], : copy.shape[1]], copy)  # upright, at the top left
        below, beside = counting[-1][copy.shape[0] :], counting[-1][:, copy.shape[1] :]
        assert (below == RETINAFACE_MEAN_RGB).all() and (beside == RETINAFACE_MEAN_RGB).all()


def test_an_upright_photo_is_not_turned_and_a_faceless_one_finds_nothing_turned(retinaface):
    """The photos of whole_imgs, given upright, are taken as upright; an empty image shows no face at any turn."""
    for path in list_images(shared_path("data", "whole_imgs")):
        photo = load_image(path)
        turns, faces = retinaface.detect_turned(photo)
        assert turns == 0 and len(faces) == len(retinaface.detect(photo)), path.name
    assert retinaface.detect_turned(np.zeros((64, 64, 3), np.uint8)) == (0, [])
    with pytest.raises(ImageReadError, match="^image 0: no face found, upright or turned$"):
        tiny_pipeline("gfpgan")(np.zeros((64, 64, 3), np.uint8), detector=retinaface, strict=True)


@pytest.mark.parametrize(
    "component, damage",
    [("restorer", "missing"), ("restorer", "corrupt"), ("unet", "missing"), ("unet", "corrupt")],
)
def test_model_folder_with_a_bad_weights_file(tmp_path, component, damage):
    tiny_pipeline("hybrid").save_pretrained(tmp_path)
    (weights,) = (tmp_path / component).glob("*.safetensors")
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(FacerestError, match=f"{damage} weights file {weights}"):
        FaceRestorePipeline.from_pretrained(tmp_path)


def test_model_folder_missing_or_without_index(tmp_path):
    with pytest.raises(FacerestError, match="model folder not found"):
        FaceRestorePipeline.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FacerestError, match="model_index.json not found"):
        FaceRestorePipeline.from_pretrained(tmp_path)


def test_a_hub_id_that_cannot_be_fetched_is_one_error_line(unreachable_hub):
    with pytest.raises(FacerestError) as raised:
        FaceRestorePipeline.from_pretrained("tester/missing")
    message = str(raised.value)
    assert message.startswith("model 'tester/missing' is neither a local folder nor a Hub repository") and "\n" not in message


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(pipelines, kind, tmp_path):
    pipeline = pipelines[kind]
    pipeline.save_pretrained(tmp_path)
    assert not list(tmp_path.rglob("*.bin")) and list(tmp_path.rglob("*.safetensors"))
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "FaceRestorePipeline"
    if kind != "idm":
        assert index["restorer"] == ["facerest.models.gfpgan.modeling_gfpgan", "GFPGANModel"]
    if kind != "gfpgan":
        assert index["scheduler"] == ["facerest.models.idm.scheduling_idm", "IDMScheduler"]

    loaded = FaceRestorePipeline.from_pretrained(tmp_path)
    assert loaded.kind == kind and loaded.face_size == FACE_SIZE
    faces = _faces()
    expected = pipeline.restore_faces(faces, 3, generator=_seeded(5), progress=False)
    # Same function up to float rounding: the loaded weights are memory-mapped at other alignments, and the CPU's
    # convolution kernels round differently there (measured 7e-7 on single-face passes, grown to 1.3e-4 over the
    # IDM's three steps; another noise would differ by ~1).
    torch.testing.assert_close(loaded.restore_faces(faces, 3, generator=_seeded(5), progress=False), expected,
                               rtol=0, atol=1e-5 if kind == "gfpgan" else 1e-3)


def test_load_from_a_hub_id_fetches_a_snapshot(pipelines, tmp_path, monkeypatch):
    import huggingface_hub

    pipelines["gfpgan"].save_pretrained(tmp_path)
    requests = []

    def snapshot_download(repo_id, allow_patterns, **kwargs):
        requests.append((repo_id, kwargs))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = FaceRestorePipeline.from_pretrained("someone/tiny-gfpgan", revision="main")
    assert loaded.kind == "gfpgan" and requests == [("someone/tiny-gfpgan", {"revision": "main"})]


# ---------------------------------------------------------------------------------------------------------------
# Whole photos
# ---------------------------------------------------------------------------------------------------------------


def _outside_masks(photo, landmarks, upscale):
    affines = [align_face(photo, points, ALIGN_SIZE)[1] for points in landmarks]
    masks = [face_paste_mask(affine, ALIGN_SIZE, photo.shape, upscale) for affine in affines]
    return np.maximum.reduce(masks) == 0


def test_whole_photos(gfpgan, retinaface):
    print("\nfaces found / expected per photo of whole_imgs")
    for path in list_images(shared_path("data", "whole_imgs")):
        photo = load_image(path)
        output = gfpgan(path, detector=retinaface, never_blur=False, output_type="np")
        found = len(output.restored_faces[0])
        print(f"  {path.name:26s} {found} / {EXPECTED_FACES[path.name]}")
        assert found == EXPECTED_FACES[path.name] == len(output.face_boxes[0]) == len(output.face_landmarks[0])
        assert output.images[0].shape == photo.shape and output.detector == "retinaface-mobilenet0.25"
        assert all(face.shape == (FACE_SIZE, FACE_SIZE, 3) for face in output.restored_faces[0])
        outside = _outside_masks(photo, output.face_landmarks[0], 1)
        assert 0.05 < outside.mean() < 1.0
        np.testing.assert_array_equal(output.images[0][outside], photo[outside])
        assert not np.array_equal(output.images[0], photo)  # the random restorer changed the faces


@pytest.mark.parametrize("name", ["codeformer_01.jpg", "gfpgan_Blake_Lively.jpg"])
def test_whole_photo_upscaled(gfpgan, retinaface, name):
    path = shared_path("data", "whole_imgs", name)
    photo = load_image(path)
    output = gfpgan(path, detector=retinaface, upscale=2, never_blur=False, output_type="np", face_batch_size=1)
    height, width = photo.shape[0] * 2, photo.shape[1] * 2
    assert output.images[0].shape == (height, width, 3)
    background = cv2.resize(photo, (width, height), interpolation=cv2.INTER_LANCZOS4)
    outside = _outside_masks(photo, output.face_landmarks[0], 2)
    np.testing.assert_array_equal(output.images[0][outside], background[outside])
    batched = gfpgan(path, detector=retinaface, upscale=2, never_blur=False, output_type="np", face_batch_size=8)
    # one batch or one face at a time: the same faces, up to float rounding (convolutions sum in another order)
    assert np.abs(batched.images[0].astype(int) - output.images[0]).max() <= 1


def test_detector_is_created_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREST_DETECTOR_WEIGHTS", str(tmp_path))  # no RetinaFace weights there
    monkeypatch.setenv("FACEREST_OFFLINE", "1")
    pipeline = tiny_pipeline("gfpgan")
    detector = pipeline.face_detector()
    assert detector.name == "mtcnn" and "RetinaFace weights unavailable" in detector.fallback_reason
    assert pipeline.face_detector() is detector and pipeline.face_detector("auto") is detector
    assert pipeline.face_detector("mtcnn") is not detector


# ---------------------------------------------------------------------------------------------------------------
# Fidelity, and the photo's detail above the model's resolution
# ---------------------------------------------------------------------------------------------------------------


def _returns_its_input(pipeline, monkeypatch):
    """Make the pipeline's model return the degraded faces unchanged (a model that changes nothing)."""
    monkeypatch.setattr(pipeline, "restore_faces", lambda lq, *args, **kwargs: lq.clone())


def test_a_model_that_changes_nothing_leaves_the_photo_as_it_was(gfpgan, retinaface, monkeypatch):
    """Faces larger than the model's 64 px are not shrunk and enlarged: with a model that changes nothing, every
    pixel of the photo and of a 512-px aligned face (without `denoise`) comes back exactly (pasting enlarged
    restorations blurred them)."""
    _returns_its_input(gfpgan, monkeypatch)
    path = shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg")
    photo = load_image(path)
    output = gfpgan(path, detector=retinaface, denoise=False, output_type="np")
    assert len(output.restored_faces[0]) == EXPECTED_FACES[path.name]
    np.testing.assert_array_equal(output.images[0], photo)
    face = cv2.resize(photo[:512, :512], (512, 512))
    np.testing.assert_array_equal(gfpgan(face, aligned=True, denoise=False, output_type="np").images[0], face)
    # with `denoise`, what reads as noise in a face's finest octave is taken out where the model's pixels span it: in
    # the 512-px aligned face, and in the photo enlarged 4x (its faces' crops then are no enlargements), within the
    # faces' masks; the photo as it is, whose crops are, comes back exactly
    np.testing.assert_array_equal(gfpgan(path, detector=retinaface, output_type="np").images[0], photo)
    cleaned = gfpgan(face, aligned=True, output_type="np").images[0]
    assert 40.0 < psnr([cleaned], [face])[0] < np.inf
    large = cv2.resize(photo, (photo.shape[1] * 4, photo.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    large_output = gfpgan(large, detector=retinaface, output_type="np")
    outside = _outside_masks(large, large_output.face_landmarks[0], 1)
    np.testing.assert_array_equal(large_output.images[0][outside], large[outside])
    assert 40.0 < psnr([large_output.images[0]], [large])[0] < np.inf


def test_fidelity_scales_the_change_to_each_face(gfpgan, retinaface):
    path = shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg")
    photo = load_image(path).astype(np.float64)
    outputs = {
        fidelity: gfpgan(path, detector=retinaface, fidelity=fidelity, never_blur=False, output_type="np") for fidelity in (0, 0.5, 1)
    }
    np.testing.assert_array_equal(outputs[0].images[0], photo)  # 0: the input face
    full, half = outputs[1].images[0] - photo, outputs[0.5].images[0] - photo
    assert np.abs(full).mean() > 1.0  # the random restorer changes the faces
    unclipped = (outputs[1].images[0] > 0) & (outputs[1].images[0] < 255)
    assert np.abs(half - full / 2)[unclipped].max() <= 1.0  # half the change, up to rounding
    face = np.asarray(Image.open(path).convert("RGB").resize((64, 64)))
    aligned = {fidelity: gfpgan(face, aligned=True, fidelity=fidelity, output_type="np") for fidelity in (0, 1)}
    np.testing.assert_array_equal(aligned[0].images[0], face)
    np.testing.assert_array_equal(aligned[0].restored_faces[0][0], face)
    np.testing.assert_array_equal(aligned[1].images[0], aligned[1].restored_faces[0][0])  # at the model's size: its output


def test_noisy_faces_are_denoised_at_the_photos_pixels_and_fidelity_scales_it_too(gfpgan, retinaface, monkeypatch):
    """With a model that changes nothing, what the pipeline changes is the denoising: around each face only, the
    noise gone there, none of it at fidelity 0 or with denoise off."""
    monkeypatch.setattr(gfpgan, "restore_faces", restoring_with(lambda face: face))
    photo = load_image(shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg"))
    noisy = with_noise(photo, 15.0)
    output = gfpgan(noisy, detector=retinaface, never_blur=False, output_type="np")
    boxes = output.face_boxes[0]
    assert len(boxes) == 2
    assert [message.split(":")[0] for message in output.messages[0]] == ["face 0 denoised first", "face 1 denoised first"]
    regions = [face_region(box, noisy.shape) for box in boxes]
    for region in regions:
        assert noise_level(noisy[region]) > 12.0 and noise_level(output.images[0][region]) < DENOISE_ABOVE
    outside = np.ones(noisy.shape[:2], bool)
    for region in regions:
        outside[region] = False
    np.testing.assert_array_equal(output.images[0][outside], noisy[outside])
    for options in (dict(fidelity=0.0), dict(denoise=False)):
        unchanged = gfpgan(noisy, detector=retinaface, never_blur=False, output_type="np", **options)
        np.testing.assert_array_equal(unchanged.images[0], noisy)
        assert unchanged.messages[0] == []
    face = resize_square(noisy[:400, 400:], 256)  # an aligned face of 256 px: measured and denoised at its own size
    aligned = gfpgan(face, aligned=True, output_type="np")
    assert aligned.messages[0][0].startswith("denoised first: noise of") and noise_level(aligned.images[0]) < DENOISE_ABOVE


def test_the_faces_of_a_jpeg_saved_small_and_enlarged_are_deblocked_first_where_the_model_restores_them_whole(
    gfpgan, retinaface, monkeypatch
):
    """With models that change nothing, what the pipeline changes is the deblocking: around each face whose aligned
    crop is no larger than the model's faces only, the grid gone there, nothing with denoise off; a face larger than
    the model's is not deblocked (it keeps the photo's own finest band); an aligned face is deblocked at its own size
    when no larger than the model's faces."""
    large = FaceRestorePipeline(unet=tiny_unet(size=512), scheduler=IDMScheduler())  # faces of 512 px: crops fit
    for pipeline in (gfpgan, large):
        monkeypatch.setattr(pipeline, "restore_faces", restoring_with(lambda face: face))
    # a deblocked face restored by a model that changes nothing keeps only the blur: the check that sends a face that
    # lost its own detail back undeblocked is for the next test
    monkeypatch.setattr(photo_restoration, "DEBLOCKED_SHARPNESS_SHARE", 0.0)
    blocky = saved_small_and_enlarged(load_image(shared_path("data", "whole_imgs", "codeformer_06.png")), 3, quality=30)
    output = large(blocky, detector=retinaface, never_blur=False, output_type="np")
    assert output.messages[0] == ["JPEG blocks of 24.0 px (a JPEG enlarged 3.0x): its faces deblocked first"]
    outside = np.ones(blocky.shape[:2], bool)
    for box in output.face_boxes[0]:
        region = face_region(box, blocky.shape)
        outside[region] = False
        assert np.abs(output.images[0][region].astype(int) - blocky[region]).mean() > 1.0
    np.testing.assert_array_equal(output.images[0][outside], blocky[outside])
    as_given = large(blocky, detector=retinaface, never_blur=False, output_type="np", denoise=False)
    np.testing.assert_array_equal(as_given.images[0], blocky)
    assert as_given.messages[0] == []
    assert gfpgan(blocky, detector=retinaface, never_blur=False).messages[0] == []  # its faces' crops span about 400 px

    face = resize_square(saved_small_and_enlarged(load_image(shared_path("data", "ffhq256", "test", "01000.jpg")), 2, quality=30), 512)
    aligned = large(face, aligned=True, output_type="np")
    assert re.fullmatch(r"JPEG blocks of 3[12]\.\d px \(a JPEG enlarged 4\.0x\): the face deblocked first", aligned.messages[0][0])
    assert not any("JPEG blocks" in message for message in gfpgan(face, aligned=True).messages[0])


def test_a_clean_face_before_a_tiled_wall_is_restored_undeblocked(retinaface, monkeypatch):
    """Tiles fold into a grid in the whole photo as an enlarged JPEG's blocks do; deblocked, the face (which has no
    grid of its own) keeps under DEBLOCKED_SHARPNESS_SHARE of its sharpness, and is restored again without the
    deblocking: with a model that changes nothing, the photo comes back as it was; so does an aligned face."""
    large = FaceRestorePipeline(unet=tiny_unet(size=512), scheduler=IDMScheduler())  # faces of 512 px: crops fit
    monkeypatch.setattr(large, "restore_faces", restoring_with(lambda face: face))
    wall = np.random.default_rng(0).normal(200, 3, (480, 640, 3))  # tiles with some texture
    wall[:, ::24], wall[::24] = 120, 120  # grout lines every 24 px
    photo = np.clip(wall, 0, 255).astype(np.uint8)
    photo[100:260, 240:400] = resize_square(load_image(shared_path("data", "ffhq256", "test", "01000.jpg")), 160)
    assert enlarged_jpeg_period(photo) == pytest.approx(24.0, abs=0.5)
    output = large(photo, detector=retinaface, never_blur=False, output_type="np")
    assert re.fullmatch(
        r"face 0 restored without deblocking: deblocked, it kept 0\.\d\d of the photo's sharpness \(the grid of 2\d\.\d "
        r"px is not its own\)",
        output.messages[0][0],
    )
    assert len(output.messages[0]) == 1
    np.testing.assert_array_equal(output.images[0], photo)

    face = photo[60:316, 192:448]  # an aligned face before the wall: searched, and sent back, at its own size
    assert enlarged_jpeg_period(face) is not None
    aligned = large(face, aligned=True, output_type="np")
    assert aligned.messages[0][0].startswith("the face restored without deblocking: deblocked, it kept 0.")
    np.testing.assert_array_equal(aligned.images[0], face)

    faces_restored = []  # with another face in the call, only the face sent back is restored again

    def identity_counting(face):
        faces_restored.append(face)
        return face

    monkeypatch.setattr(large, "restore_faces", restoring_with(identity_counting))
    other = resize_square(load_image(shared_path("data", "ffhq256", "test", "01001.jpg")), 256)
    both = large([other, face], aligned=True, output_type="np")
    assert len(faces_restored) == 3 and both.messages == [[], aligned.messages[0]]
    np.testing.assert_array_equal(both.images[1], face)


def test_the_noise_around_small_faces_is_read_from_the_photo(gfpgan, retinaface, monkeypatch):
    """codeformer_00's faces have 40- to 52-px boxes: twice a box is under MIN_DENOISED_SIZE, so each region grows to
    it and reads the photo's noise from the background around the face."""
    monkeypatch.setattr(gfpgan, "restore_faces", restoring_with(lambda face: face))
    noisy = with_noise(load_image(shared_path("data", "whole_imgs", "codeformer_00.jpg")), 12.0)
    output = gfpgan(noisy, detector=retinaface, never_blur=False, output_type="np")
    assert len(output.face_boxes[0]) == 4 and all(np.ptp(output.face_boxes[0][:, 0::2], axis=1) < 60)
    assert [message.split(":")[0] for message in output.messages[0]] == [f"face {index} denoised first" for index in range(4)]


def test_a_face_left_as_it_was_is_checked_again_without_its_neighbours_change():
    """Face 1's correction blurs face 1 but sharpens face 0's box, where it overlaps; face 0's own blurs it a little.
    With both, face 0 reads sharper; once face 1 is left as it was, face 0 reads less sharp too, and is left."""
    rng = np.random.default_rng(0)
    photo = np.clip(cv2.GaussianBlur(rng.normal(128, 60, (ALIGN_SIZE, ALIGN_SIZE, 3)), (0, 0), 1.0), 0, 255).astype(np.uint8)
    pixels = photo.astype(np.float32)
    boxes = np.array([[120, 200, 200, 280], [300, 200, 380, 280]], np.float32)
    box0, box1 = (slice(190, 290), slice(110, 210)), (slice(190, 290), slice(290, 390))
    corrections = [np.zeros_like(pixels), np.zeros_like(pixels)]
    corrections[0][box0] = 0.3 * (cv2.GaussianBlur(pixels, (0, 0), 1.0) - pixels)[box0]
    corrections[1][box1] = (cv2.GaussianBlur(pixels, (0, 0), 2.0) - pixels)[box1]
    corrections[1][box0] = (pixels - cv2.GaussianBlur(pixels, (0, 0), 1.5))[box0]
    identity = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    blurred, result = _faces_made_blurrier(photo, corrections, [identity, identity], boxes)
    assert blurred == [0, 1]
    np.testing.assert_array_equal(result, photo)


def test_a_face_the_model_would_blur_keeps_the_photos_pixels(gfpgan, retinaface, monkeypatch):
    path = shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg")
    photo = load_image(path)
    monkeypatch.setattr(gfpgan, "restore_faces", restoring_with(lambda face: cv2.GaussianBlur(face, (0, 0), 1.0)))
    output = gfpgan(path, detector=retinaface, denoise=False, output_type="np")
    np.testing.assert_array_equal(output.images[0], photo)
    assert output.messages[0] == [f"face {index} left as it was: its restoration came out less sharp than the photo" for index in range(2)]
    lq_faces = [resize_square(align_face(photo, points, ALIGN_SIZE)[0], FACE_SIZE) for points in output.face_landmarks[0]]
    for face, lq in zip(output.restored_faces[0], lq_faces):
        np.testing.assert_array_equal(face, lq)  # the faces returned are the ones in the photo: the inputs
    enlarged = gfpgan(path, detector=retinaface, upscale=2, denoise=False, output_type="np")  # checked at the photo's size
    assert enlarged.messages[0] == output.messages[0]
    np.testing.assert_array_equal(enlarged.images[0], add_face_corrections(photo, [], [], 2))  # only enlarged

    large = cv2.resize(photo, (photo.shape[1] * 4, photo.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    cleaned = gfpgan(large, detector=retinaface, output_type="np")  # crops no enlargement: the finest octave cleaned
    assert cleaned.messages[0] == [
        f"face {index} left as it was but for its finest pixels' noise: its restoration came out less sharp than that"
        for index in range(2)
    ]
    assert 40.0 < psnr([cleaned.images[0]], [large])[0] < np.inf

    blurred = gfpgan(path, detector=retinaface, never_blur=False, output_type="np")
    assert blurred.messages[0] == []
    for x1, y1, x2, y2 in blurred.face_boxes[0].astype(int):
        window = np.s_[y1:y2, x1:x2]
        assert gradient_sharpness(blurred.images[0][window]) < 0.95 * gradient_sharpness(photo[window])

    sharpening = restoring_with(lambda face: cv2.addWeighted(face, 1.5, cv2.GaussianBlur(face, (0, 0), 1.0), -0.5, 0))
    monkeypatch.setattr(gfpgan, "restore_faces", sharpening)
    sharpened = gfpgan(path, detector=retinaface, output_type="np")
    assert sharpened.messages[0] == [] and not np.array_equal(sharpened.images[0], photo)


def test_a_face_in_a_photo_keeps_the_photos_lighting(gfpgan, retinaface, monkeypatch):
    """A model that brightens faces 1.8 times and sharpens them (as the default lit up a dark photo's faces as
    patches): in a photo only the sharpening reaches the faces; an aligned face takes the whole change, which is large
    (`with_large_lighting_change`)."""
    brightening_and_sharpening = restoring_with(
        lambda face: cv2.addWeighted(face, 2.7, cv2.GaussianBlur(face, (0, 0), 1.0), -0.9, 0)  # 1.8 x (1.5, -0.5)
    )
    monkeypatch.setattr(gfpgan, "restore_faces", brightening_and_sharpening)
    photo = (load_image(shared_path("data", "whole_imgs", "codeformer_01.jpg")) * 0.35).astype(np.uint8)  # a dark photo
    output = gfpgan(photo, detector=retinaface, output_type="np")
    assert len(output.face_boxes[0]) == 4 and output.messages[0] == []
    for box in output.face_boxes[0]:
        window = face_window(box, photo.shape)
        assert abs(output.images[0][window].mean() - photo[window].mean()) < 1.0
        sharpness = gradient_sharpness(output.images[0][window]) / gradient_sharpness(photo[window])
        assert 1.1 < sharpness < 1.5  # sharpened (1.17 alone), its detail not brightened too (1.85)
    face = resize_square(photo[: min(photo.shape[:2]), : min(photo.shape[:2])], FACE_SIZE)
    assert gfpgan(face, aligned=True, output_type="np").images[0].mean() > 1.7 * face.mean()


def test_an_aligned_face_keeps_a_large_change_of_its_lighting_and_not_a_small_one(gfpgan, monkeypatch):
    """A model that adds a constant to every pixel changes only the face's lighting: an aligned face keeps none of a
    change of 2 grey levels, part of one of 5 and all of one of 12 (LIGHTING_CHANGE_KEPT_FROM, _FULLY: 3 and 8)."""
    face = resize_square(load_image(shared_path("data", "ffhq256", "test", "01000.jpg")), FACE_SIZE)
    for added, kept in ((2, 0.0), (5, 0.4), (12, 1.0)):
        brightening = restoring_with(lambda image: np.clip(image.astype(np.int16) + added, 0, 255).astype(np.uint8))
        monkeypatch.setattr(gfpgan, "restore_faces", brightening)
        restored = gfpgan(face, aligned=True, output_type="np").images[0].astype(np.float32)
        unclipped = (face > 5) & (face < 240)  # where adding the constant was not clipped
        assert abs((restored - face)[unclipped].mean() - kept * added) < 0.1, (added, kept)


def _gray(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _sepia(image: np.ndarray) -> np.ndarray:
    """A one-toned print: gray, warmed by a constant tint."""
    return np.clip(_gray(image).astype(np.float32) + np.array([24.0, 8.0, -12.0]), 0, 255).astype(np.uint8)


def test_a_gray_or_sepia_face_keeps_its_tone(gfpgan, retinaface, monkeypatch):
    """A model that tints faces red (as the default model tinted gray faces pink) does so only to colour faces: a
    gray photo comes back gray and a sepia face sepia, with the model's change to their luma."""
    reddening = restoring_with(lambda face: np.clip(face.astype(np.int16) + [40, 0, 0], 0, 255).astype(np.uint8))
    monkeypatch.setattr(gfpgan, "restore_faces", reddening)
    photo = load_image(shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg"))
    gray_photo = _gray(photo)
    output = gfpgan(gray_photo, detector=retinaface, never_blur=False, output_type="np")
    assert len(output.restored_faces[0]) == 2 and not np.array_equal(output.images[0], gray_photo)
    restored_photo = output.images[0]
    assert (restored_photo[..., 0] == restored_photo[..., 1]).all() and (restored_photo[..., 1] == restored_photo[..., 2]).all()
    assert all(is_monochrome(face) for face in output.restored_faces[0])  # gray, but for the crop's border beyond the photo

    face = resize_square(photo[:512, :512], FACE_SIZE)
    sepia_face = _sepia(face)
    restored_sepia = gfpgan(sepia_face, aligned=True, output_type="np").images[0]
    chroma = cv2.cvtColor(restored_sepia, cv2.COLOR_RGB2YCrCb)[..., 1:] - cv2.cvtColor(sepia_face, cv2.COLOR_RGB2YCrCb)[..., 1:]
    assert not np.array_equal(restored_sepia, sepia_face) and np.abs(chroma.astype(np.int8)).max() <= 1
    restored_colour = gfpgan(face, aligned=True, output_type="np").images[0].astype(np.int16)
    assert (restored_colour - face)[..., 0].mean() > 35  # a colour face takes the model's colours


def test_monochrome_faces_are_told_from_colour_faces():
    colour = [load_image(path) for path in list_images(shared_path("data", "ffhq256", "test"))[:50]]
    assert not any(is_monochrome(face) for face in colour)
    gray = [_gray(face) for face in colour]
    assert all(is_monochrome(face) for face in gray) and all(is_monochrome(_sepia(face)) for face in colour)
    np.testing.assert_array_equal(with_chroma_of(colour[0], gray[1])[..., 0], with_chroma_of(colour[0], gray[1])[..., 2])


def test_fidelity_is_checked(gfpgan):
    face = np.zeros((64, 64, 3), np.uint8)
    for fidelity in (-0.1, 1.5, "high", True):
        with pytest.raises(FacerestError, match="fidelity must be a number from 0"):
            gfpgan(face, aligned=True, fidelity=fidelity)


def test_a_saved_pipeline_keeps_its_default_step_count(pipelines, tmp_path):
    idm = pipelines["idm"]
    assert idm.default_inference_steps == 25  # DEFAULT_INFERENCE_STEPS when none was saved
    four = FaceRestorePipeline(unet=idm.unet, scheduler=idm.scheduler, default_inference_steps=4)
    four.save_pretrained(tmp_path / "four")
    loaded = FaceRestorePipeline.from_pretrained(tmp_path / "four")
    assert loaded.default_inference_steps == 4
    assert FaceRestorePipeline.hybrid(pipelines["gfpgan"], loaded).default_inference_steps == 4
    faces = _faces(1)
    default = loaded.restore_faces(faces, generator=_seeded(), progress=False)
    torch.testing.assert_close(default, loaded.restore_faces(faces, 4, generator=_seeded(), progress=False), rtol=0, atol=0)
    assert not torch.equal(default, loaded.restore_faces(faces, 25, generator=_seeded(), progress=False))
    with pytest.raises(FacerestError, match="default_inference_steps must be a positive whole number"):
        FaceRestorePipeline(unet=idm.unet, scheduler=idm.scheduler, default_inference_steps=0)
