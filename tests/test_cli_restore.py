"""``python -m facerest restore``: aligned faces and whole photos, bad files listed, exit status."""

import shutil

import numpy as np
import pytest
from PIL import Image

from facerest.cli import main
from facerest.images import list_images, load_image
from conftest import shared_path
from test_faces import EXPECTED_FACES
from tiny_pipelines import FACE_SIZE, save_tiny_pipelines


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return save_tiny_pipelines(tmp_path_factory.mktemp("models"))


def _restore(capsys, *arguments):
    status = main(["restore", *map(str, arguments)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_realworld_aligned_faces(models, tmp_path, capsys):
    """Two faces of each real-world set (sub-folders mirrored in the output), restored by the hybrid."""
    sets = [folder for folder in sorted(shared_path("data", "realworld_lq").iterdir()) if folder.is_dir()]
    for folder in sets:
        for path in list_images(folder)[:2]:
            (tmp_path / "in" / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, tmp_path / "in" / folder.name / path.name)
    arguments = ["-o", tmp_path / "out", "--model", models["hybrid"], "--aligned", "--steps", "4", "--seed", "1"]
    status, out, err = _restore(capsys, tmp_path / "in", *arguments)

    count = 2 * len(sets)
    assert status == 0 and "failed" not in err, err
    assert f"restored {count} of {count} images ({count} faces)" in out
    for source in (tmp_path / "in").rglob("*.png"):
        name = source.relative_to(tmp_path / "in").with_suffix("")
        assert load_image(tmp_path / "out" / f"{name}.png").shape == load_image(source).shape
        assert load_image(tmp_path / "out" / "faces" / f"{name}_00.png").shape == (FACE_SIZE, FACE_SIZE, 3)


@pytest.mark.slow  # about 10 s on one free core: detection and PNG writing of photos up to 1920 px
def test_whole_photos(models, tmp_path, capsys):
    whole = shared_path("data", "whole_imgs")
    weights = shared_path("weights", "facexlib")
    status, out, err = _restore(
        capsys, whole, "-o", tmp_path, "--model", models["gfpgan"], "--detector", "retinaface",
        "--detector-weights", weights,
    )
    assert status == 0 and "failed" not in err, err
    assert "face detector: retinaface-mobilenet0.25" in out
    total = sum(EXPECTED_FACES.values())
    assert f"restored {len(EXPECTED_FACES)} of {len(EXPECTED_FACES)} images ({total} faces)" in out
    for path in list_images(whole):
        height, width = load_image(path).shape[:2]
        assert load_image(tmp_path / f"{path.stem}.png").shape == (height, width, 3)
        assert len(list((tmp_path / "faces").glob(f"{path.stem}_??.png"))) == EXPECTED_FACES[path.name]


def test_bad_files_are_listed_and_the_run_goes_on(models, tmp_path, capsys):
    face = shared_path("data", "cropped_lq")
    shutil.copy(list_images(face)[0], tmp_path / "good.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    good_bytes = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good_bytes[: len(good_bytes) // 3])
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "notes.txt").write_text("not an image extension: not read")
    status, out, err = _restore(capsys, tmp_path, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")

    assert status == 1
    assert "restored 1 of 4 images" in out and (tmp_path / "out" / "good.png").is_file()
    assert "failed 3:" in err
    assert f"{tmp_path / 'empty.jpg'}: empty file (0 bytes)" in err
    assert f"{tmp_path / 'truncated.png'}: cannot decode image (truncated or corrupt)" in err
    assert f"{tmp_path / 'text.png'}: not an image file" in err


def test_strict_lists_photos_without_a_face(models, tmp_path, capsys):
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    arguments = [tmp_path / "wall.png", "-o", tmp_path / "out", "--model", models["gfpgan"], "--detector", "mtcnn"]
    status, out, err = _restore(capsys, *arguments)
    assert status == 0 and "wall.png: no face found: returned unchanged" in out
    assert "face detector: mtcnn" in out
    status, out, err = _restore(capsys, *arguments, "--strict")
    assert status == 1 and f"{tmp_path / 'wall.png'}: no face found" in err


def test_options_are_checked_before_restoring(models, tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    arguments = [tmp_path, "-o", tmp_path / "out", "--aligned", "--model"]
    status, _, err = _restore(capsys, *arguments, models["gfpgan"], "--strength", "0.5")
    assert status == 2 and "error: strength applies to pipelines with an IDM unet" in err
    status, _, err = _restore(capsys, *arguments, models["idm"], "--upscale", "8")
    assert status == 2 and "error: upscale must be a whole number from 1 to 4, got 8" in err
    status, _, err = _restore(capsys, *arguments, models["gfpgan"], "--fidelity", "1.5")
    assert status == 2 and "error: fidelity must be a number from 0 (the input face) to 1" in err
    assert not (tmp_path / "out").exists()


def test_fidelity_zero_returns_the_input_faces(models, tmp_path, capsys):
    faces = list_images(shared_path("data", "cropped_lq"))[:2]
    for path in faces:
        shutil.copy(path, tmp_path / path.name)
    status, out, err = _restore(capsys, tmp_path, "-o", tmp_path / "out", "--aligned", "--model", models["gfpgan"], "--fidelity", "0")
    assert status == 0, err
    for path in faces:
        np.testing.assert_array_equal(load_image(tmp_path / "out" / f"{path.stem}.png"), load_image(path))


def test_missing_model_or_input(models, tmp_path, capsys):
    status, _, err = _restore(capsys, tmp_path, "-o", tmp_path / "out", "--model", tmp_path / "no-model", "--aligned")
    assert status == 2 and err.startswith("error: ") and "no image files" in err
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    status, _, err = _restore(capsys, tmp_path, "-o", tmp_path / "out", "--model", tmp_path / "no-model", "--aligned")
    assert status == 2 and err.strip() == f"error: model folder not found: {tmp_path / 'no-model'}"
