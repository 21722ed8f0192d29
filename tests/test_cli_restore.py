"""``python -m facerest restore``: aligned faces and whole photos, bad files listed, exit status."""

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facerest.cli import main
from facerest.images import list_images, load_image
from facerest.pipeline import FaceRestorePipeline
from conftest import shared_path, with_noise
from test_faces import EXPECTED_FACES, no_weights_anywhere  # noqa: F401 (a fixture)
from tiny_pipelines import FACE_SIZE, restoring_with, save_tiny_pipelines


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


def test_a_detector_fallback_is_told_once_with_what_to_do(models, no_weights_anywhere, tmp_path, capsys, caplog):
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    status, out, err = _restore(capsys, tmp_path / "wall.png", "-o", tmp_path / "out", "--model", models["gfpgan"])
    assert status == 0
    assert "face detector: mtcnn (RetinaFace weights not found: give them with --detector-weights DIR)" in out
    (warning,) = [record.getMessage() for record in caplog.records if "RetinaFace weights unavailable" in record.getMessage()]
    assert "detection_Resnet50_Final.pth" in warning and "looked in" not in out + err


def test_detector_weights_that_are_not_there_are_one_error_line(models, no_weights_anywhere, tmp_path, capsys):
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    arguments = [tmp_path / "wall.png", "-o", tmp_path / "out", "--model", models["gfpgan"]]
    status, _, err = _restore(capsys, *arguments, "--detector-weights", tmp_path / "typo")
    assert status == 2 and err.strip() == f"error: RetinaFace weights: {tmp_path / 'typo'} does not exist (give the folder that holds them)"
    status, _, err = _restore(capsys, *arguments, "--detector-weights", no_weights_anywhere)  # a folder without them
    assert status == 2 and err.strip().startswith("error: RetinaFace resnet50 needs detection_Resnet50_Final.pth; looked in:")
    assert "\n" not in err.strip() and not (tmp_path / "out").exists()


def test_strict_lists_photos_without_a_face(models, tmp_path, capsys):
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    arguments = [tmp_path / "wall.png", "-o", tmp_path / "out", "--model", models["gfpgan"], "--detector", "mtcnn"]
    status, out, err = _restore(capsys, *arguments)
    assert status == 0 and "wall.png: no face found: returned unchanged" in out
    assert "face detector: mtcnn" in out and "restored 1 of 1 images (0 faces; no face found in 1)" in out
    status, out, err = _restore(capsys, *arguments, "--strict")
    assert status == 1 and f"{tmp_path / 'wall.png'}: no face found" in err


def test_options_are_checked_before_restoring(models, tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    arguments = [tmp_path, "-o", tmp_path / "out", "--aligned", "--model"]
    status, _, err = _restore(capsys, *arguments, models["gfpgan"], "--strength", "0.5")
    assert status == 2 and "error: --strength applies to pipelines with an IDM unet" in err
    status, _, err = _restore(capsys, *arguments, models["idm"], "--upscale", "8")
    assert status == 2 and "error: --upscale must be a whole number from 1 to 4, got 8" in err
    status, _, err = _restore(capsys, *arguments, models["idm"], "--steps", "0")
    assert status == 2 and "error: --steps must be a whole number from 1 to 1000, got 0" in err
    status, _, err = _restore(capsys, *arguments, models["gfpgan"], "--fidelity", "1.5")
    assert status == 2 and "error: --fidelity must be a number from 0 (the input face) to 1" in err
    assert not (tmp_path / "out").exists()


def test_fidelity_zero_returns_the_input_faces(models, tmp_path, capsys):
    faces = list_images(shared_path("data", "cropped_lq"))[:2]
    for path in faces:
        shutil.copy(path, tmp_path / path.name)
    status, out, err = _restore(capsys, tmp_path, "-o", tmp_path / "out", "--aligned", "--model", models["gfpgan"], "--fidelity", "0")
    assert status == 0, err
    for path in faces:
        np.testing.assert_array_equal(load_image(tmp_path / "out" / f"{path.stem}.png"), load_image(path))


def test_no_denoise_gives_the_model_the_noisy_face(models, tmp_path, capsys):
    face = load_image(list_images(shared_path("data", "ffhq256", "test"))[0])
    noisy = with_noise(face, 15.0)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    outputs = {}
    for flags in ((), ("--no-denoise",)):
        status, _, err = _restore(capsys, tmp_path / "noisy.png", "-o", tmp_path / f"out{len(flags)}", "--aligned", "--model", models["idm"], *flags)
        assert status == 0, err
        outputs[flags] = load_image(tmp_path / f"out{len(flags)}" / "noisy.png")
    as_given = FaceRestorePipeline.from_pretrained(models["idm"])(
        noisy, aligned=True, denoise=False, generator=torch.Generator("cpu").manual_seed(0), output_type="np", progress=False
    ).images[0]
    np.testing.assert_array_equal(outputs[("--no-denoise",)], as_given)
    assert np.abs(outputs[()].astype(int) - as_given).mean() > 1.0


def test_missing_model_or_input(models, tmp_path, capsys):
    status, _, err = _restore(capsys, tmp_path, "-o", tmp_path / "out", "--model", tmp_path / "no-model", "--aligned")
    assert status == 2 and err.startswith("error: ") and "no image files" in err
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    status, _, err = _restore(capsys, tmp_path, "-o", tmp_path / "out", "--model", tmp_path / "no-model", "--aligned")
    assert status == 2 and err.strip() == f"error: model folder not found: {tmp_path / 'no-model'}"


def test_help_and_option_errors_answer_before_torch_loads():
    """``python -m facerest`` imports the library's modules on first use: its help and an option error come without
    torch (it took 8 s to load it and diffusers and transformers)."""
    probe = (
        "import sys\n"
        "from facerest.cli import main\n"
        "for arguments in (['--help'], ['restore', '--help'], ['restore', 'photos', '-o', 'out']):\n"
        "    try:\n"
        "        main(arguments)\n"
        "    except SystemExit as exit:\n"
        "        print(arguments[-1], exit.code)\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    exits = [line for line in result.stdout.splitlines() if line in ("--help 0", "out 2") or line.startswith("torch")]
    assert exits == ["--help 0", "--help 0", "out 2", "torch loaded: False"], result.stderr
    assert "the following arguments are required: --model" in result.stderr


def _snapshot(folder):
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def face_folder(tmp_path):
    """A folder with two aligned faces, a.png and b.png."""
    folder = tmp_path / "faces_in"
    folder.mkdir()
    for name, path in zip("ab", list_images(shared_path("data", "cropped_lq"))):
        shutil.copy(path, folder / f"{name}.png")
    return folder


def test_an_output_folder_holding_the_input_is_refused(models, face_folder, capsys):
    before = _snapshot(face_folder)
    for source in (face_folder, face_folder / "a.png"):
        status, _, err = _restore(capsys, source, "-o", face_folder, "--model", models["gfpgan"], "--aligned")
        assert status == 2 and err.strip() == f"error: the output folder {face_folder} holds the input {source}: choose another output folder"
    assert _snapshot(face_folder) == before


def test_an_output_folder_with_files_of_the_users_is_refused(models, face_folder, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.png").write_bytes(b"my own a.png")
    status, _, err = _restore(capsys, face_folder, "-o", tmp_path / "mine", "--model", models["gfpgan"], "--aligned")
    assert status == 2 and "is not empty and was not written by restore (it has no .facerest-output marker)" in err
    assert _snapshot(tmp_path / "mine") == {"a.png": b"my own a.png"}
    (tmp_path / "a-file").write_text("mine")
    status, _, err = _restore(capsys, face_folder, "-o", tmp_path / "a-file", "--model", models["gfpgan"], "--aligned")
    assert status == 2 and "exists and is not a folder" in err and (tmp_path / "a-file").read_text() == "mine"


def test_an_output_named_like_an_image_file_is_refused_saying_it_takes_a_folder(models, face_folder, tmp_path, capsys):
    status, _, err = _restore(capsys, face_folder / "a.png", "-o", tmp_path / "restored.JPG", "--model", models["gfpgan"])
    assert status == 2 and err.strip() == (
        f"error: -o takes a folder, and {tmp_path / 'restored.JPG'} is named like an image file: restore writes "
        f"OUTPUT/<name>.png and OUTPUT/faces/ (e.g. -o {tmp_path / 'restored'})"
    )
    assert not (tmp_path / "restored.JPG").exists()


def test_earlier_outputs_inside_the_input_are_not_restored_again(models, face_folder, capsys):
    before = _snapshot(face_folder)
    arguments = ["--model", models["gfpgan"], "--aligned"]
    status, out, _ = _restore(capsys, face_folder, "-o", face_folder / "restored", *arguments)
    assert status == 0 and "restored 2 of 2 images" in out
    first_run = _snapshot(face_folder / "restored")
    status, out, _ = _restore(capsys, face_folder, "-o", face_folder / "restored2", *arguments)
    assert status == 0 and "restored 2 of 2 images" in out
    assert f"not restoring {face_folder / 'restored'}: it holds an earlier restore output" in out
    status, out, _ = _restore(capsys, face_folder, "-o", face_folder / "restored", *arguments)  # the same -o again
    assert status == 0 and "restored 2 of 2 images" in out
    assert _snapshot(face_folder / "restored") == first_run and _snapshot(face_folder / "restored2") == first_run
    snapshot = _snapshot(face_folder)
    assert {name: data for name, data in snapshot.items() if not name.startswith("restored")} == before


def test_a_second_run_into_the_same_folder_leaves_only_its_own_faces_of_each_photo(models, tmp_path, capsys):
    whole = shared_path("data", "whole_imgs")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(whole / "gfpgan_Blake_Lively.jpg", photos / "x.jpg")  # two faces
    shutil.copy(whole / "codeformer_04.jpg", photos / "x_01.jpg")  # one face: faces/x_01_00.png, not one of x's
    arguments = ["-o", tmp_path / "out", "--model", models["gfpgan"], "--detector-weights", shared_path("weights", "facexlib")]
    status, out, _ = _restore(capsys, photos, *arguments)
    assert status == 0 and "restored 2 of 2 images (3 faces)" in out
    assert sorted(path.name for path in (tmp_path / "out" / "faces").iterdir()) == ["x_00.png", "x_01.png", "x_01_00.png"]
    kept = (tmp_path / "out" / "faces" / "x_01_00.png").read_bytes()

    shutil.copy(whole / "codeformer_03.jpg", photos / "x.jpg")  # now one face
    status, out, _ = _restore(capsys, photos / "x.jpg", *arguments)
    assert status == 0 and "restored 1 of 1 images (1 face)" in out
    assert sorted(path.name for path in (tmp_path / "out" / "faces").iterdir()) == ["x_00.png", "x_01_00.png"]
    assert (tmp_path / "out" / "faces" / "x_01_00.png").read_bytes() == kept


def test_hidden_files_and_macos_zip_folders_are_left_out_with_a_note(models, face_folder, tmp_path, capsys):
    """Thumbnails in a hidden folder, macOS's "._" resource forks and its zips' __MACOSX folder are not photos."""
    (face_folder / ".thumbnails").mkdir()
    shutil.copy(face_folder / "a.png", face_folder / ".thumbnails" / "a.png")
    (face_folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    (face_folder / "__MACOSX").mkdir()
    (face_folder / "__MACOSX" / "._b.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    arguments = ["--model", models["gfpgan"], "--aligned"]
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", *arguments)
    assert status == 0 and "restored 2 of 2 images" in out, err
    assert "not restoring 3 hidden image file(s) (a name starting with '.', or in __MACOSX/)" in out
    assert sorted(path.name for path in (tmp_path / "out").glob("*.png")) == ["a.png", "b.png"]
    only_hidden = tmp_path / "only_hidden"
    (only_hidden / ".cache").mkdir(parents=True)
    shutil.copy(face_folder / "a.png", only_hidden / ".cache" / "a.png")
    status, _, err = _restore(capsys, only_hidden, "-o", tmp_path / "out2", *arguments)
    assert status == 2 and err.strip().endswith("or its sub-folders, only 1 hidden one(s)")


def test_a_later_run_never_removes_a_photo_that_an_earlier_run_restored_under_a_face_crops_name(
    models, face_folder, tmp_path, capsys
):
    """An input's own faces/ sub-folder puts its restored photos into OUTPUT/faces/; a later run of a photo whose
    face crops are named like them removes only its own earlier crops."""
    arguments = ["-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned"]
    earlier = tmp_path / "earlier"
    (earlier / "faces").mkdir(parents=True)
    shutil.copy(face_folder / "b.png", earlier / "faces" / "a_05.png")
    status, out, _ = _restore(capsys, earlier, *arguments)
    assert status == 0 and "restored 1 of 1 images" in out
    restored_photo = (tmp_path / "out" / "faces" / "a_05.png").read_bytes()
    shutil.copy(tmp_path / "out" / "faces" / "a_05.png", tmp_path / "out" / "faces" / "a_07.png")  # a copy the user made

    status, out, _ = _restore(capsys, face_folder / "a.png", *arguments)  # one face: faces/a_00.png
    assert status == 0 and "restored 1 of 1 images (1 face)" in out
    assert (tmp_path / "out" / "faces" / "a_05.png").read_bytes() == restored_photo
    assert (tmp_path / "out" / "faces" / "a_07.png").read_bytes() == restored_photo
    assert (tmp_path / "out" / "faces" / "a_00.png").exists()


def test_a_photo_named_like_another_photos_face_is_refused(models, face_folder, tmp_path, capsys):
    (face_folder / "faces").mkdir()
    shutil.copy(face_folder / "b.png", face_folder / "faces" / "a_00.png")
    status, _, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 2 and not (tmp_path / "out").exists()
    assert f"{face_folder / 'faces' / 'a_00.png'} would be written as faces/a_00.png, where the restored faces of " \
           f"{face_folder / 'a.png'} go" in err


def test_images_that_differ_only_by_extension_are_both_restored_under_names_with_it(models, face_folder, tmp_path, capsys):
    Image.open(face_folder / "b.png").save(face_folder / "a.jpg", quality=95)
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 0 and "restored 3 of 3 images" in out, err
    assert sorted(path.name for path in (tmp_path / "out").glob("*.png")) == ["a_jpg.png", "a_png.png", "b.png"]
    _restore(capsys, face_folder / "a.png", "-o", tmp_path / "a_alone", "--model", models["gfpgan"], "--aligned")
    np.testing.assert_array_equal(load_image(tmp_path / "out" / "a_png.png"), load_image(tmp_path / "a_alone" / "a.png"))
    shutil.copy(face_folder / "b.png", face_folder / "a_jpg.png")  # a third image already named as the first's output
    status, _, err = _restore(capsys, face_folder, "-o", tmp_path / "out2", "--model", models["gfpgan"], "--aligned")
    assert status == 2 and not (tmp_path / "out2").exists()
    assert err.strip().endswith("would both be written as a_jpg.png: rename one of them")


def test_an_unwritable_output_stops_before_the_first_image_and_a_failed_save_does_not_stop_the_run(
    models, face_folder, tmp_path, capsys
):
    (tmp_path / "a-file").write_text("mine")
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "a-file" / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 2 and err.startswith(f"error: cannot write into the output folder {tmp_path / 'a-file' / 'out'}: ")
    assert len(err.strip().splitlines()) == 1 and "restoring" not in out

    from facerest.output_folders import mark_output_folder

    (tmp_path / "out" / "a.png").mkdir(parents=True)  # the place of a.png's result is taken by a folder
    mark_output_folder(tmp_path / "out", "restore")
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 1 and "restored 1 of 2 images" in out and (tmp_path / "out" / "b.png").is_file()
    assert f"{face_folder / 'a.png'}: cannot save the result: Is a directory" in err


def test_a_save_that_fails_midway_leaves_the_earlier_result_whole(models, face_folder, tmp_path, capsys, monkeypatch):
    """A full disk (or a kill) during a write leaves neither a truncated image nor a damaged earlier result."""
    arguments = [face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned"]
    assert _restore(capsys, *arguments)[0] == 0
    before = _snapshot(tmp_path / "out")

    def write_half_then_fail(image, target, *args, **kwargs):
        Path(target).write_bytes(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", write_half_then_fail)
    status, out, err = _restore(capsys, *arguments)
    assert status == 1 and "restored 0 of 2 images" in out
    assert f"{face_folder / 'a.png'}: cannot save the result: No space left on device" in err
    assert _snapshot(tmp_path / "out") == before


def test_broken_links_are_listed_and_long_seeds_are_refused_in_one_line(models, face_folder, tmp_path, capsys):
    (face_folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 1 and "restored 2 of 3 images" in out
    assert f"{face_folder / 'gone.png'}: broken link to {tmp_path / 'nowhere.png'}" in err
    status, _, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--seed", str(10**300))
    assert status == 2 and err.strip() == f"error: --seed must be a whole number from 0 to {2**63 - 1}, got a number of 301 digits"


def test_an_animated_gif_is_restored_with_a_note(models, face_folder, tmp_path, capsys):
    first, second = (Image.open(face_folder / name).convert("RGB") for name in ("a.png", "b.png"))
    first.save(face_folder / "moving.gif", save_all=True, append_images=[second], duration=100)
    status, out, _ = _restore(capsys, face_folder / "moving.gif", "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 0 and (tmp_path / "out" / "moving.png").is_file()
    assert f"{face_folder / 'moving.gif'}: an image of 2 frames (animated): only the first was used" in out
    status, out, _ = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 0 and "restored 3 of 3 images" in out  # .gif files count in folders too


def test_a_config_value_of_the_wrong_type_is_one_error_line(models, face_folder, tmp_path, capsys):
    import json

    shutil.copytree(models["gfpgan"], tmp_path / "model")
    config_path = tmp_path / "model" / "restorer" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "out_size": "sixty-four"}))
    status, _, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", tmp_path / "model", "--aligned")
    last = err.strip().splitlines()[-1]  # above it: the loading progress bars
    assert status == 2 and last.startswith(f"error: cannot load a FaceRestorePipeline from {tmp_path / 'model'}: ")
    assert "out_size" in last and "sixty-four" in last and "Traceback" not in err


def test_a_device_this_machine_lacks_is_one_error_line_before_anything_is_written(models, face_folder, tmp_path, capsys):
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--device", "cuda:99")
    assert status == 2 and err.strip().startswith("error: device 'cuda:99' is not available") and "Traceback" not in err
    assert "\n" not in err.strip() and not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused on the CPU only; this machine has a GPU")
def test_fp16_on_the_cpu_is_one_error_line_before_the_model_loads(models, face_folder, tmp_path, capsys):
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--dtype", "fp16")
    assert status == 2 and err.strip() == (
        "error: --dtype fp16 runs on a GPU: the CPU emulates it, far slower than fp32; use --dtype fp32 or bf16"
    )
    assert "model:" not in out and not (tmp_path / "out").exists()


def test_an_images_result_does_not_depend_on_the_other_images_of_the_folder(models, tmp_path, capsys):
    """The IDM noise is seeded afresh for each image: a face restored in a folder is the face restored alone."""
    faces = list_images(shared_path("data", "ffhq256", "test"))[:2]
    for folder, chosen in (("both", faces), ("alone", faces[1:])):
        (tmp_path / folder).mkdir()
        for path in chosen:
            shutil.copy(path, tmp_path / folder / path.name)
        arguments = ["-o", tmp_path / f"{folder}_out", "--model", models["idm"], "--aligned", "--steps", "2"]
        assert _restore(capsys, tmp_path / folder, *arguments)[0] == 0
    name = f"{faces[1].stem}.png"
    in_folder, alone = load_image(tmp_path / "both_out" / name), load_image(tmp_path / "alone_out" / name)
    assert np.array_equal(in_folder, alone)


def test_a_face_the_model_would_blur_is_left_as_it_was_unless_every_face_is_pasted(models, tmp_path, capsys, monkeypatch):
    blurring = restoring_with(lambda face: cv2.GaussianBlur(face, (0, 0), 1.0))
    monkeypatch.setattr(FaceRestorePipeline, "restore_faces", staticmethod(blurring))  # the CLI loads its own pipeline
    path = shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg")
    (tmp_path / "in").mkdir()
    shutil.copy(path, tmp_path / "in" / path.name)
    detector = ["--model", models["gfpgan"], "--detector", "retinaface", "--detector-weights", shared_path("weights", "facexlib")]
    status, out, _ = _restore(capsys, tmp_path / "in", "-o", tmp_path / "kept", *detector)
    assert status == 0 and out.count("left as it was: its restoration came out less sharp than the photo") == 2
    np.testing.assert_array_equal(load_image(tmp_path / "kept" / "gfpgan_Blake_Lively.png"), load_image(path))

    status, out, _ = _restore(capsys, tmp_path / "in", "-o", tmp_path / "pasted", *detector, "--paste-every-face")
    assert status == 0 and "left as it was" not in out
    assert not np.array_equal(load_image(tmp_path / "pasted" / "gfpgan_Blake_Lively.png"), load_image(path))


def test_the_inputs_rgb_colour_profile_goes_with_its_outputs(models, face_folder, tmp_path, capsys):
    """A photo tagged with an RGB colour profile (a phone's Display P3, here sRGB) keeps it in its outputs, whose
    pixels are in that colour space; a profile of another colour space (Lab) or none leaves the outputs untagged."""
    from PIL import ImageCms

    srgb, lab = (ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes() for space in ("sRGB", "LAB"))
    face = Image.open(face_folder / "a.png").convert("RGB")
    photos = tmp_path / "photos"
    photos.mkdir()
    face.save(photos / "tagged.jpg", icc_profile=srgb, quality=95)
    face.save(photos / "lab.png", icc_profile=lab)
    face.save(photos / "plain.png")
    status, _, err = _restore(capsys, photos, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 0, err
    out = tmp_path / "out"
    assert Image.open(out / "tagged.png").info.get("icc_profile") == srgb
    assert Image.open(out / "faces" / "tagged_00.png").info.get("icc_profile") == srgb
    assert all("icc_profile" not in Image.open(out / name).info for name in ("lab.png", "plain.png"))


def test_the_inputs_transparency_goes_with_the_restored_photo(models, face_folder, tmp_path, capsys):
    """A cut-out portrait (RGBA, transparent around the face) and a palette PNG with a transparent colour keep their
    transparency in the restored photo, enlarged with it, and in its face crop; an opaque RGBA image gives RGB ones."""
    face = Image.open(face_folder / "a.png").convert("RGB")
    alpha = np.full(face.size[::-1], 255, np.uint8)
    alpha[:, : face.width // 4] = 0
    alpha[:8] = 128
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.merge("RGBA", (*face.split(), Image.fromarray(alpha))).save(photos / "cutout.png")
    face.convert("RGBA").save(photos / "opaque.png")
    palette = face.convert("P")
    palette.save(photos / "palette.png", transparency=int(np.asarray(palette)[0, -1]))
    status, _, err = _restore(capsys, photos, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned", "--upscale", "2")
    assert status == 0, err
    out = tmp_path / "out"
    cutout = Image.open(out / "cutout.png")
    assert cutout.mode == "RGBA" and cutout.size == (2 * face.width, 2 * face.height)
    expected = cv2.resize(alpha, cutout.size, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(np.asarray(cutout.getchannel("A")), expected)
    palette_out = Image.open(out / "palette.png")
    assert palette_out.mode == "RGBA" and np.asarray(palette_out.getchannel("A"))[0, -1] == 0
    assert Image.open(out / "opaque.png").mode == "RGB"
    assert Image.open(out / "faces" / "opaque_00.png").mode == "RGB"
    face_crop = Image.open(out / "faces" / "cutout_00.png")  # the aligned face at the model's size, alpha resized with it
    assert face_crop.mode == "RGBA"
    expected = cv2.resize(alpha, face_crop.size, interpolation=cv2.INTER_AREA)
    assert np.abs(np.asarray(face_crop.getchannel("A"), int) - expected).max() <= 64  # its edges differ by interpolation
    assert np.asarray(face_crop.getchannel("A"))[face_crop.height // 8 :, : face_crop.width // 4 - 2].max() == 0


def test_a_gray_photo_comes_back_gray(models, face_folder, tmp_path, capsys):
    """A gray scan (8- or 16-bit, with or without transparency) gives gray outputs, the photo and its face crops, of
    the gray levels its restoration as RGB has; a colour photo stays RGB."""
    face = Image.open(face_folder / "a.png").convert("RGB")
    gray = face.convert("L")
    alpha = np.full(face.size[::-1], 255, np.uint8)
    alpha[:, : face.width // 4] = 0
    photos = tmp_path / "photos"
    photos.mkdir()
    gray.save(photos / "scan.png")
    Image.merge("LA", (gray, Image.fromarray(alpha))).save(photos / "cutout.png")
    Image.fromarray(np.asarray(gray, np.uint16) * 257).save(photos / "deep.png")  # 16-bit gray (I;16)
    gray.convert("RGB").save(photos / "as_rgb.png")  # gray pixels in an RGB file: the user's choice of format stays
    face.save(photos / "colour.png")
    status, _, err = _restore(capsys, photos, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 0, err
    out = tmp_path / "out"
    modes = {path.name: Image.open(path).mode for path in [*out.glob("*.png"), *out.glob("faces/*.png")]}
    assert modes == {
        "scan.png": "L", "cutout.png": "LA", "deep.png": "L", "as_rgb.png": "RGB", "colour.png": "RGB",
        "scan_00.png": "L", "cutout_00.png": "LA", "deep_00.png": "L", "as_rgb_00.png": "RGB", "colour_00.png": "RGB",
    }  # fmt: skip
    as_rgb = np.asarray(Image.open(out / "as_rgb.png"))
    assert np.array_equal(as_rgb[..., 0], as_rgb[..., 2])  # the restoration of a gray face is gray
    for name in ("scan.png", "deep.png", "faces/scan_00.png"):
        restored_as_rgb = np.asarray(Image.open(out / name.replace("scan", "as_rgb").replace("deep", "as_rgb")))
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), restored_as_rgb[..., 0])
    np.testing.assert_array_equal(np.asarray(Image.open(out / "cutout.png").getchannel("A")), alpha)


def test_phone_photo_formats_are_restored(models, face_folder, tmp_path, capsys):
    """HEIC/HEIF (an iPhone's photos, read through pillow-heif) and AVIF are read like any other image."""
    face = Image.open(face_folder / "a.png").convert("RGB")
    photos = tmp_path / "photos"
    photos.mkdir()
    names = {"phone.heic": "phone", "camera.heif": "camera", "web.avif": "web"}
    for file_name in names:
        face.save(photos / file_name, quality=90)
        decoded = load_image(photos / file_name)  # close to the face it was made from (the codecs are lossy)
        assert np.abs(decoded.astype(int) - np.asarray(face, int)).mean() < 4.0, file_name
    exif = face.getexif()
    exif[0x0112] = 6  # EXIF orientation: turn 90 degrees clockwise to view; turned once, as a JPEG's is
    face.save(tmp_path / "turned.heic", exif=exif.tobytes(), quality=90)
    turned = load_image(tmp_path / "turned.heic")
    assert np.abs(turned.astype(int) - np.rot90(np.asarray(face, int), k=-1)).mean() < 4.0
    status, out, err = _restore(capsys, photos, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 0 and "failed" not in err, err
    assert "restored 3 of 3 images (3 faces)" in out
    for name in names.values():
        assert load_image(tmp_path / "out" / f"{name}.png").shape == (face.height, face.width, 3)


def test_files_that_are_not_images_are_counted_in_a_note(models, face_folder, tmp_path, capsys):
    """A folder of photos often holds other files (videos, sidecars, notes): they are left out, and the note says
    how many and of which kinds; a browser's .jfif download is a JPEG and is restored."""
    (face_folder / "a.png").rename(face_folder / "a.jfif")
    (face_folder / "clip.MOV").write_bytes(b"not a photo")
    (face_folder / "notes.txt").write_text("taken in 1962")
    (face_folder / "README").write_text("scans")
    arguments = ["--model", models["gfpgan"], "--aligned"]
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", *arguments)
    assert status == 0 and "restored 2 of 2 images" in out, err
    assert "not restoring 3 file(s) that are not images by their extension (.mov, .txt, no extension)" in out
    assert sorted(path.name for path in (tmp_path / "out").glob("*.png")) == ["a.png", "b.png"]
    only_notes = tmp_path / "only_notes"
    only_notes.mkdir()
    (only_notes / "notes.txt").write_text("taken in 1962")
    status, _, err = _restore(capsys, only_notes, "-o", tmp_path / "out2", *arguments)
    assert status == 2 and err.strip().endswith("it holds 1 file(s) that are not images by their extension (.txt)")


def test_a_linked_folder_is_left_out_with_a_note(models, face_folder, tmp_path, capsys):
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(face_folder / "b.png", tmp_path / "elsewhere" / "c.png")
    (face_folder / "linked").symlink_to(tmp_path / "elsewhere")
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 0 and "restored 2 of 2 images" in out, err
    assert f"not restoring {face_folder / 'linked'}: a link to a folder (give it as INPUT to restore it)" in out


def test_ctrl_c_keeps_what_was_written_and_says_how_far_it_got(models, face_folder, tmp_path, capsys, monkeypatch):
    restore = FaceRestorePipeline.__call__

    def interrupted_at_the_second_image(pipeline, image, *args, **kwargs):
        if Path(image).name == "b.png":
            raise KeyboardInterrupt
        return restore(pipeline, image, *args, **kwargs)

    monkeypatch.setattr(FaceRestorePipeline, "__call__", interrupted_at_the_second_image)
    status, out, err = _restore(capsys, face_folder, "-o", tmp_path / "out", "--model", models["gfpgan"], "--aligned")
    assert status == 130 and "restored 1 of 2 images" in out
    assert err.strip().endswith("\ninterrupted: 1 image(s) not restored") and "Traceback" not in err
    assert load_image(tmp_path / "out" / "a.png").shape == load_image(face_folder / "a.png").shape
    assert not (tmp_path / "out" / "b.png").exists()
