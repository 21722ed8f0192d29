"""The demo's library side (facerest/demo.py), without Gradio: the model menu, one request's check -> restore ->
files, and the result's text. app.py's interface and server are tested in test_app.py."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import PIL.Image
import pytest

from conftest import SHARED, shared_path, with_noise
from facerest import FacerestError, ImageReadError, demo
from facerest.face_detection import FaceDetector
from facerest.pipeline import DEFAULT_HYBRID_STRENGTH, DEFAULT_INFERENCE_STEPS, FaceRestorePipeline
from tiny_pipelines import restoring_with, save_tiny_pipelines

DETECTOR_WEIGHTS = SHARED / "weights" / "facexlib"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return save_tiny_pipelines(tmp_path_factory.mktemp("demo-models"))


@pytest.fixture(scope="module")
def detector():
    return FaceDetector("auto", weights_dir=DETECTOR_WEIGHTS if DETECTOR_WEIGHTS.is_dir() else None)


# ------------------------------------------------------------------------------------- the menu


def test_gan_and_idm_models_make_a_hybrid_sharing_their_weights(tiny_models):
    registry = demo.load_models([str(tiny_models["gfpgan"]), str(tiny_models["idm"])], offer_official=False)
    assert registry.names == ["gfpgan", "idm", "hybrid"]
    assert registry.default == "gfpgan"
    hybrid = registry.pipeline("hybrid")
    assert hybrid.kind == "hybrid"
    assert hybrid.restorer is registry.pipeline("gfpgan").restorer
    assert hybrid.unet is registry.pipeline("idm").unet
    # a saved hybrid is listed as it is and does not combine further
    registry = demo.load_models([str(tiny_models["hybrid"]), str(tiny_models["gfpgan"])], offer_official=False)
    assert registry.names == ["hybrid", "gfpgan"]


def test_every_gan_pairs_with_every_idm_and_names_stay_unique(tiny_models):
    specs = [str(tiny_models["gfpgan"]), str(tiny_models["idm"]), str(tiny_models["gfpgan"])]
    registry = demo.load_models(specs, offer_official=False)
    assert registry.names == [
        "gfpgan", "idm", "gfpgan (2)", "hybrid: gfpgan + idm", "hybrid: gfpgan (2) + idm"
    ]
    with pytest.raises(FacerestError, match="unknown model 'hybrid'; choose one of gfpgan, idm"):
        registry.entry("hybrid")


def test_diffusion_settings_follow_each_models_defaults(tiny_models, tmp_path):
    idm = FaceRestorePipeline.from_pretrained(tiny_models["idm"])
    FaceRestorePipeline(unet=idm.unet, scheduler=idm.scheduler, default_inference_steps=4).save_pretrained(tmp_path / "idm4")
    registry = demo.load_models([str(tiny_models["gfpgan"]), str(tmp_path / "idm4")], offer_official=False)
    registry.entries["later"] = demo.ModelEntry("later", "gfpgan", 512, "url", loader=lambda: None)
    assert registry.diffusion_settings("gfpgan") == (False, DEFAULT_INFERENCE_STEPS, DEFAULT_HYBRID_STRENGTH)
    assert registry.diffusion_settings("idm4") == (True, 4, 1.0)
    assert registry.diffusion_settings("hybrid") == (True, 4, DEFAULT_HYBRID_STRENGTH)  # the IDM's saved steps
    assert registry.diffusion_settings("later") == (False, DEFAULT_INFERENCE_STEPS, DEFAULT_HYBRID_STRENGTH)
    assert registry.diffusion_settings("no such model").live is False
    assert registry.choices[:3] == [
        ("gfpgan (GFP-GAN, 64 px)", "gfpgan"), ("idm4 (IDM diffusion, 64 px)", "idm4"),
        ("hybrid (GFP-GAN + IDM, 64 px)", "hybrid"),
    ]


def test_official_gfpgan_offline_is_listed_unavailable_with_the_reason(tiny_models, monkeypatch, tmp_path):
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry = demo.load_models([str(tiny_models["gfpgan"])])
    assert demo.OFFICIAL_NAME not in registry.names
    assert "offline" in registry.unavailable[demo.OFFICIAL_NAME]


def test_official_gfpgan_is_converted_on_first_use_and_cached(monkeypatch, tmp_path):
    """The official checkpoint's path through the menu, with a tiny GFP-GAN saved in the official format (a
    `params_ema` dict in a .pth file) under the official file name in facerest's cache."""
    import torch

    import tiny_pipelines
    from tiny_pipelines import tiny_restorer

    restorer = tiny_restorer(seed=3)
    names = ("out_size", "num_style_feat", "channel_multiplier", "narrow")
    config = {name: getattr(restorer.config, name) for name in names}
    monkeypatch.setattr(demo, "GFPGAN_V14_CONFIG", config)
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.save({"params_ema": restorer.state_dict()}, tmp_path / demo.GFPGAN_V14_URL.rsplit("/", 1)[-1])

    registry = demo.load_models([], offer_official=True)  # cached checkpoint: offered although offline
    assert registry.names == [demo.OFFICIAL_NAME] and registry.unavailable == {}
    ours = demo.load_models([str(tiny_pipelines.save_tiny_pipelines(tmp_path / "ours")["gfpgan"])], offer_official=True)
    assert ours.names == [demo.OFFICIAL_NAME, "gfpgan"] and ours.default == demo.OFFICIAL_NAME  # the best model first
    assert registry.entry(demo.OFFICIAL_NAME).pipeline is None  # nothing converted before it is chosen
    pipeline = registry.pipeline(demo.OFFICIAL_NAME)
    assert (demo.official_gfpgan_dir() / "model_index.json").is_file()
    for name, tensor in restorer.state_dict().items():
        assert torch.equal(pipeline.restorer.state_dict()[name], tensor), name
    (tmp_path / demo.GFPGAN_V14_URL.rsplit("/", 1)[-1]).unlink()  # the converted copy alone is enough now
    assert demo.official_gfpgan_unavailable() is None
    assert demo.load_official_gfpgan().kind == "gfpgan"


def test_limits_text_names_what_is_not_offered():
    registry = demo.ModelRegistry({}, {"gfpgan-v1.4": "no network <here>"})
    text = demo.limits_text(registry, 16_000_000, 64_000_000)
    assert text == (
        "Inputs up to 16 megapixels; results up to 64 megapixels."
        "\n\n*gfpgan-v1.4 is not available: no network &lt;here&gt;.*"
    )


# ------------------------------------------------------------------------------------- one request


def test_request_numbers_from_the_interface_are_whole_numbers():
    assert demo.check_request("photo.png", 2.0, 10.0, 0.5, 3.0) == (2, 10, 3)
    assert demo.check_request("photo.png", 1, None, None, 0) == (1, None, 0)
    with pytest.raises(FacerestError, match="diffusion steps must be a whole number from 1 to 200, got 2.5"):
        demo.check_request("photo.png", 1, 2.5, None, 0)
    with pytest.raises(FacerestError, match=r"strength must be in \(0, 1\], got 0"):
        demo.check_request("photo.png", 1, None, 0, 0)
    with pytest.raises(FacerestError, match="seed must be a whole number from 0 to"):
        demo.check_request("photo.png", 1, None, None, "seven")


def test_restore_function_messages(tiny_models, detector, tmp_path):
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)

    def run(image, **options):
        return demo.restore(registry, detector, image, "gfpgan", output_dir=tmp_path, **options)

    garbage = tmp_path / "notes.jpg"
    garbage.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes\.jpg: not an image file"):
        run(str(garbage))
    with pytest.raises(FacerestError, match="no image"):
        run(None)
    photo = tmp_path / "blank.png"
    PIL.Image.new("RGB", (300, 200), (120, 130, 140)).save(photo)
    with pytest.raises(ImageReadError, match="too large"):
        run(str(photo), max_pixels=10_000)
    with pytest.raises(ImageReadError, match="more than this server's 0.05-megapixel limit on results"):
        run(str(photo), upscale=1, max_output_pixels=50_000)
    with pytest.raises(ImageReadError, match="must be square"):
        run(str(photo), aligned=True)
    with pytest.raises(FacerestError, match="upscale"):
        run(str(photo), upscale=5)

    result = run(str(photo), upscale=2)  # no face: enlarged only, with a warning and a note
    assert result.image.size == (600, 400) and result.faces == []
    assert "No face found" in result.warnings[0]
    assert "no face found" in result.info
    with PIL.Image.open(result.png_path) as png:
        assert png.format == "PNG" and png.size == (600, 400)

    animated = tmp_path / "wave.gif"  # decoded by the app, not the pipeline: its note comes from the app
    PIL.Image.new("RGB", (120, 80), "gray").save(animated, save_all=True, append_images=[PIL.Image.new("RGB", (120, 80))])
    assert run(str(animated), upscale=1).details["messages"][0] == "an image of 2 frames (animated): only the first was used"

    lowered = run(str(photo), upscale=4, max_output_pixels=500_000)  # 1200x800 would not fit; 600x400 does
    assert lowered.image.size == (600, 400) and lowered.details["upscale"] == 2
    assert lowered.warnings[0] == (
        "Enlarged 2x instead of 4x: at 4x the result would be 1200x800, more than this server's 0.5-megapixel limit "
        "on results."
    )
    assert lowered.details["messages"][0] == lowered.warnings[0]  # in the result too: API clients get no pop-ups
    assert f"**Note:** {lowered.warnings[0]}" in lowered.info

    aligned = run(np.full((128, 128, 3), 90, np.uint8), aligned=True, upscale=1)
    assert aligned.image.size == (128, 128) and len(aligned.faces) == 1
    assert aligned.details["detector"] is None and "aligned input" in aligned.info

    face = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    unchanged = run(face, aligned=True, upscale=1, fidelity=0.0)
    np.testing.assert_array_equal(np.asarray(unchanged.image), face)
    assert unchanged.details["fidelity"] == 0.0 and "**Fidelity:** 0" in unchanged.info
    with pytest.raises(FacerestError, match="fidelity must be a number from 0"):
        run(face, aligned=True, fidelity=1.5)


def test_a_face_the_model_would_blur_is_left_as_it_was_unless_every_face_is_pasted(tiny_models, detector, tmp_path, monkeypatch):
    blurring = restoring_with(lambda face: cv2.GaussianBlur(face, (0, 0), 1.0))
    monkeypatch.setattr(FaceRestorePipeline, "restore_faces", staticmethod(blurring))
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)
    path = shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg")
    photo = np.asarray(PIL.Image.open(path).convert("RGB"))

    def run(**options):
        return demo.restore(registry, detector, str(path), "gfpgan", upscale=1, output_dir=tmp_path, **options)

    kept = run()
    assert kept.details["paste_every_face"] is False and len(kept.details["messages"]) == 2
    assert "left as it was" in kept.info
    np.testing.assert_array_equal(np.asarray(kept.image), photo)
    pasted = run(paste_every_face=True)
    assert pasted.details["paste_every_face"] is True and pasted.details["messages"] == []
    assert not np.array_equal(np.asarray(pasted.image), photo)


def test_noisy_faces_are_denoised_unless_turned_off(tiny_models, detector, tmp_path, monkeypatch):
    """With a model that changes nothing, what changes is the denoising of the faces' regions."""
    monkeypatch.setattr(FaceRestorePipeline, "restore_faces", staticmethod(restoring_with(lambda face: face)))
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)
    noisy = with_noise(np.asarray(PIL.Image.open(shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg")).convert("RGB")), 15.0)
    PIL.Image.fromarray(noisy).save(tmp_path / "noisy.png")

    def run(**options):
        return demo.restore(registry, detector, str(tmp_path / "noisy.png"), "gfpgan", upscale=1, output_dir=tmp_path, **options)

    denoised = run()
    assert denoised.details["denoise"] is True and np.abs(np.asarray(denoised.image).astype(int) - noisy).mean() > 1.0
    as_given = run(denoise=False)
    assert as_given.details["denoise"] is False
    np.testing.assert_array_equal(np.asarray(as_given.image), noisy)


def test_a_detector_fallback_is_one_short_note_and_long_seeds_are_refused_briefly(tiny_models, tmp_path):
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)
    fallback = FaceDetector("mtcnn")
    fallback.fallback_reason = "RetinaFace weights unavailable (needs detection_Resnet50_Final.pth; looked in: " + "/a/b, " * 20 + ")"
    photo = np.full((200, 300, 3), 120, np.uint8)
    result = demo.restore(registry, fallback, photo, "gfpgan", upscale=1, output_dir=tmp_path)
    assert "**Detector:** mtcnn (RetinaFace weights not found: faces found with MTCNN)" in result.info
    assert result.details["detector_note"] == "RetinaFace weights not found: faces found with MTCNN"
    assert "looked in" not in result.info
    with pytest.raises(FacerestError) as error:
        demo.restore(registry, fallback, photo, "gfpgan", seed=10**300, output_dir=tmp_path)
    assert str(error.value) == f"seed must be a whole number from 0 to {2**63 - 1}, got a number of 301 digits"


def test_a_large_photo_gets_a_preview_and_the_full_resolution_png(tiny_models, detector, tmp_path):
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)
    photo = np.full((1100, 900, 3), 90, np.uint8)
    result = demo.restore(registry, detector, photo, "gfpgan", upscale=3, output_dir=tmp_path)
    assert result.png_path.name == "image_restored.png" and result.png_path.parent.parent == tmp_path
    with PIL.Image.open(result.png_path) as png, PIL.Image.open(result.after_path) as after:
        assert png.size == (2700, 3300) and after.format == "WEBP" and after.size == (1676, 2048)
    with PIL.Image.open(result.before_path) as before:
        assert before.size == (1676, 2048)


def test_a_photos_rgb_colour_profile_goes_with_every_result_file(tiny_models, detector, tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = tmp_path / "tagged.jpg"
    PIL.Image.open(shared_path("data", "whole_imgs", "codeformer_04.jpg")).save(source, icc_profile=srgb, quality=95)
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)
    result = demo.restore(registry, detector, str(source), "gfpgan", upscale=1, output_dir=tmp_path / "out")
    assert result.face_paths
    for path in [result.png_path, result.before_path, result.after_path, *result.face_paths]:
        with PIL.Image.open(path) as written:
            assert written.info.get("icc_profile") == srgb, path.name


def test_a_transparent_uploads_png_and_previews_keep_its_transparency(tiny_models, detector, tmp_path):
    photo = PIL.Image.open(shared_path("data", "whole_imgs", "codeformer_04.jpg")).convert("RGBA")
    alpha = np.full(photo.size[::-1], 255, np.uint8)
    alpha[: photo.height // 3] = 0
    photo.putalpha(PIL.Image.fromarray(alpha))
    photo.save(tmp_path / "cutout.png")
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)
    result = demo.restore(registry, detector, str(tmp_path / "cutout.png"), "gfpgan", upscale=2, output_dir=tmp_path / "out")
    with PIL.Image.open(result.png_path) as png:
        assert png.mode == "RGBA" and png.size == (2 * photo.width, 2 * photo.height)
        expected = cv2.resize(alpha, png.size, interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(np.asarray(png.getchannel("A")), expected)
    for preview_path in (result.before_path, result.after_path):
        with PIL.Image.open(preview_path) as preview:
            assert preview.mode == "RGBA", preview_path.name
            preview_alpha = np.asarray(preview.getchannel("A"))
            top, bottom = preview_alpha[: preview.height // 4], preview_alpha[preview.height // 2 :]
            assert top.max() == 0 and bottom.min() == 255, preview_path.name
    (face_path,) = result.face_paths
    with PIL.Image.open(face_path) as face:  # the crop reaches into the transparent third above the face
        face_alpha = np.asarray(face.getchannel("A"))
        assert face.mode == "RGBA" and face_alpha[0].max() == 0 and face_alpha[face.height // 2 :].min() == 255


def test_a_gray_uploads_png_and_faces_are_gray(tiny_models, detector, tmp_path):
    PIL.Image.open(shared_path("data", "whole_imgs", "codeformer_04.jpg")).convert("L").save(tmp_path / "scan.png")
    registry = demo.load_models([str(tiny_models["gfpgan"])], offer_official=False)
    result = demo.restore(registry, detector, str(tmp_path / "scan.png"), "gfpgan", upscale=1, output_dir=tmp_path / "out")
    assert result.face_paths
    for path in [result.png_path, *result.face_paths]:
        with PIL.Image.open(path) as written:
            assert written.mode == "L", path.name
    with PIL.Image.open(result.png_path) as png:
        np.testing.assert_array_equal(np.asarray(png), np.asarray(result.image)[..., 0])


def test_previews_are_at_most_the_preview_side_and_old_results_are_pruned(tmp_path):
    assert demo.preview_size((4000, 1000)) == (demo.PREVIEW_MAX_SIDE, 512)
    assert demo.preview_size((300, 200)) == (300, 200)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    os.utime(old, (time.time() - 2 * demo.OUTPUT_MAX_AGE_S,) * 2)
    demo.prune_outputs(tmp_path)
    assert not old.exists() and new.is_dir()
    demo.prune_outputs(tmp_path / "missing")  # nothing to prune: no error


def test_a_model_that_fails_to_load_is_listed_unavailable_and_the_others_are_offered(tiny_models, tmp_path):
    missing = tmp_path / "idm_typo"
    registry = demo.load_models([str(missing), str(tiny_models["gfpgan"])], offer_official=False)
    assert registry.names == ["gfpgan"] and registry.default == "gfpgan"
    (reason,) = registry.unavailable.values()  # named as given: a folder that is not there may be a Hub id
    assert list(registry.unavailable) == [str(missing)] and "idm_typo" in reason
    with pytest.raises(FacerestError, match=r"no model to offer \(.*idm_typo: .*; .*other: "):
        demo.load_models([str(missing), str(tmp_path / "other")], offer_official=False)
