"""Face detection, alignment and paste-back (facerest/face_detection.py, facerest/faces.py).

The photos of ../shared/data/whole_imgs are detected once per detector (module fixtures) and reused by the
alignment and paste-back tests. Run with ``-s`` to see the per-photo face counts and detection times.
"""

import sys
import time

import cv2
import numpy as np
import pytest
import torch

from facerest import face_detection
from facerest import faces as faces_module
from facerest.errors import FacerestError, MissingPackageError
from facerest.face_detection import DETECTOR_WEIGHTS_ENV, FaceDetector
from facerest.faces import FFHQ_TEMPLATE_512, align_face, face_paste_mask, paste_faces
from facerest.images import list_images, load_image
from facerest.weights import MissingWeightsError
from conftest import shared_path

# Counted by eye. codeformer_03 also shows a man from behind (no face); gfpgan_Blake_Lively is two portraits side
# by side (a girl and a woman); gfpgan_10045 is a man, a woman and a girl in a white dress.
EXPECTED_FACES = {
    "codeformer_00.jpg": 4,
    "codeformer_01.jpg": 4,
    "codeformer_02.png": 4,
    "codeformer_03.jpg": 1,
    "codeformer_04.jpg": 1,
    "codeformer_05.jpg": 1,
    "codeformer_06.png": 2,
    "gfpgan_00.jpg": 2,
    "gfpgan_10045.png": 3,
    "gfpgan_Blake_Lively.jpg": 2,
}


def _detect_all(detector):
    """{file name: (image, faces, seconds)} for every photo of whole_imgs."""
    results = {}
    for path in list_images(shared_path("data", "whole_imgs")):
        image = load_image(path)
        start = time.perf_counter()
        found = detector.detect(image)
        results[path.name] = (image, found, time.perf_counter() - start)
    return results


@pytest.fixture(scope="module")
def retinaface_results():
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    return _detect_all(detector)


@pytest.fixture(scope="module")
def mtcnn_results():
    return _detect_all(FaceDetector("mtcnn"))


@pytest.fixture(scope="module")
def retinaface_detector():
    return FaceDetector("retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))


def _iou(box_a, box_b):
    x1, y1 = np.maximum(box_a[:2], box_b[:2])
    x2, y2 = np.minimum(box_a[2:], box_b[2:])
    intersection = max(x2 - x1, 0) * max(y2 - y1, 0)
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return intersection / (area(box_a) + area(box_b) - intersection)


@pytest.mark.parametrize("results_fixture", ["retinaface_results", "mtcnn_results"])
def test_face_counts_on_whole_photos(results_fixture, request):
    results = request.getfixturevalue(results_fixture)
    print(f"\n{results_fixture.removesuffix('_results')}: faces found / expected, seconds")
    for name, (image, found, seconds) in results.items():
        size = f"{image.shape[1]}x{image.shape[0]}"
        print(f"  {name:26s} {len(found)} / {EXPECTED_FACES[name]}  {seconds:.2f} s  ({size})")
    assert {name: len(found) for name, (_, found, _) in results.items()} == EXPECTED_FACES
    for name, (_, found, _) in results.items():
        assert [face.box[0] for face in found] == sorted(face.box[0] for face in found), f"{name}: not left to right"
        for face in found:
            left_eye, right_eye, nose, left_mouth, right_mouth = face.landmarks
            assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0], f"{name}: landmark order"
            assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1]), f"{name}: upright"
            assert face.box[0] <= nose[0] <= face.box[2] and face.box[1] <= nose[1] <= face.box[3]


def test_detectors_find_the_same_faces(retinaface_results, mtcnn_results):
    for name, (_, retina_faces, _) in retinaface_results.items():
        mtcnn_faces = mtcnn_results[name][1]
        for retina_face, mtcnn_face in zip(retina_faces, mtcnn_faces):  # both sorted left to right
            assert _iou(retina_face.box, mtcnn_face.box) > 0.5, name
            eye_distance = np.linalg.norm(retina_face.landmarks[1] - retina_face.landmarks[0])
            landmark_gap = np.linalg.norm(retina_face.landmarks - mtcnn_face.landmarks, axis=1).max()
            assert landmark_gap < 0.3 * eye_distance, f"{name}: landmarks {landmark_gap:.1f} px apart"


def test_detected_landmarks_map_onto_the_template(retinaface_results):
    for name, (image, found, _) in retinaface_results.items():
        for face in found:
            crop, affine = align_face(image, face.landmarks)
            assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
            mapped = face.landmarks @ affine[:, :2].T + affine[:, 2]
            errors = np.linalg.norm(mapped - FFHQ_TEMPLATE_512, axis=1)
            # a similarity cannot fit a real face's 5 points exactly; at 512 px the residuals stay within a few
            # percent of the crop (15 px mean at most here, on the laughing faces)
            assert errors.mean() < 20 and errors.max() < 40, f"{name}: {errors.round(1)}"


def test_align_recovers_a_known_similarity():
    angle, scale, shift = np.deg2rad(20), 0.3, np.array([40.0, 25.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = FFHQ_TEMPLATE_512 @ rotation.T + shift  # the template placed in a 300x200 photo
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    crop, affine = align_face(image, landmarks, size=256)
    assert crop.shape == (256, 256, 3)
    mapped = landmarks @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_allclose(mapped, FFHQ_TEMPLATE_512 / 2, atol=1e-2)


@pytest.mark.parametrize("name", ["codeformer_02.png", "gfpgan_10045.png", "gfpgan_Blake_Lively.jpg"])
def test_paste_back_of_unchanged_faces(retinaface_results, name):
    image, found, _ = retinaface_results[name]
    assert len(found) >= 2  # several faces per photo
    crops, affines = zip(*(align_face(image, face.landmarks) for face in found))
    for upscale in (1, 2):
        height, width = image.shape[0] * upscale, image.shape[1] * upscale
        pasted = paste_faces(image, list(crops), list(affines), upscale=upscale)
        assert pasted.shape == (height, width, 3) and pasted.dtype == np.uint8
        masks = [face_paste_mask(affine, 512, image.shape, upscale) for affine in affines]
        assert all(mask.max() == pytest.approx(1.0, abs=1e-3) for mask in masks)
        union = np.maximum.reduce(masks)
        background = image if upscale == 1 else cv2.resize(image, (width, height), interpolation=cv2.INTER_LANCZOS4)
        outside = union == 0
        assert 0.3 < outside.mean() < 0.99
        np.testing.assert_array_equal(pasted[outside], background[outside])
        # inside the masks, warping to the crop and back only blurs a little
        difference = np.abs(pasted.astype(int) - background.astype(int))[union > 0.5]
        assert difference.mean() < 4 and np.percentile(difference, 99) < 24, (upscale, difference.mean())


def test_paste_blends_with_the_mask():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    landmarks = FFHQ_TEMPLATE_512 * 0.1 + np.array([30.0, 20.0])  # a 51 px face
    _, affine = align_face(image, landmarks, size=64)
    white = np.full((64, 64, 3), 255, np.uint8)
    for upscale in (1, 3):
        pasted = paste_faces(image, [white], [affine], upscale=upscale)
        mask = face_paste_mask(affine, 64, image.shape, upscale)[:, :, None]
        background = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LANCZOS4)
        expected = mask * 255.0 + (1 - mask) * background
        assert np.abs(pasted - expected).max() <= 0.5 + 1e-3
        assert (mask > 0.999).any() and (mask == 0).any()


def test_only_center_face(retinaface_detector, retinaface_results):
    image, found, _ = retinaface_results["gfpgan_10045.png"]
    (center_face,) = retinaface_detector.detect(image, only_center_face=True)
    girl = max(found, key=lambda face: face.box[1])  # the girl stands in front, in the lower middle of the photo
    np.testing.assert_allclose(center_face.box, girl.box)


def test_min_face_size(retinaface_results):
    image, found, _ = retinaface_results["gfpgan_Blake_Lively.jpg"]
    girl, woman = found
    assert girl.size < 175 < woman.size
    weights_dir = shared_path("weights", "facexlib")
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=weights_dir, min_face_size=175)
    (kept,) = detector.detect(image)
    np.testing.assert_allclose(kept.box, woman.box)


def test_max_detection_side_returns_photo_coordinates(retinaface_results):
    image, (face,), _ = retinaface_results["codeformer_03.jpg"]  # 400x225
    detector = FaceDetector(
        "retinaface", "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"), max_detection_side=200
    )
    (small_face,) = detector.detect(image)
    eye_distance = np.linalg.norm(face.landmarks[1] - face.landmarks[0])
    assert np.abs(small_face.landmarks - face.landmarks).max() < 0.15 * eye_distance


def _assert_one_face_at(found, landmarks, what):
    """One face was found, its 5 landmarks within a third of the eye distance of ``landmarks``."""
    assert len(found) == 1, f"{what}: {len(found)} faces, boxes {[face.box.round().tolist() for face in found]}"
    eye_distance = np.linalg.norm(landmarks[1] - landmarks[0])
    gap = np.linalg.norm(found[0].landmarks - landmarks, axis=1)
    assert gap.max() < eye_distance / 3, f"{what}: landmarks {gap.round()} px off, eyes {eye_distance:.0f} px apart"


# ffhq256/test faces with no other face in the picture (01000 and 01005 show people behind them)
PORTRAIT_FACES = ("01002.jpg", "01004.jpg", "01017.jpg")


@pytest.mark.parametrize("name", PORTRAIT_FACES)
def test_a_face_filling_a_large_portrait_is_one_face(retinaface_detector, ffhq_test_dir, name):
    """An FFHQ face enlarged to 768 or 1024 px, as is and padded: one face, with its landmarks at the FFHQ
    template's eyes, nose and mouth. (RetinaFace alone found 0 to 4 faces in these, eye regions and parts.)"""
    face = load_image(ffhq_test_dir / name)
    for side, pad in ((1024, 0), (1024, 128), (768, 64)):
        portrait = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        portrait = cv2.copyMakeBorder(portrait, pad, pad, 2 * pad, 0, cv2.BORDER_REPLICATE)
        expected = FFHQ_TEMPLATE_512 * (side / 512) + np.array([2 * pad, pad], np.float32)
        _assert_one_face_at(retinaface_detector.detect(portrait), expected, f"{name} at {side} px padded by {pad}")


@pytest.fixture(scope="module")
def unchecked_detector():
    """RetinaFace without the face check (``face_check_threshold=None``): shows each false face below is there."""
    weights = shared_path("weights", "facexlib")
    return FaceDetector("retinaface", "mobilenet0.25", weights_dir=weights, face_check_threshold=None)


@pytest.mark.parametrize(
    "name, bottom",
    [
        ("01051.jpg", 400),  # skin-coloured stripes: the face's bottom rows repeated below it, as a neck and clothes
        ("01052.jpg", 400),
        ("01040.jpg", 0),  # the ear at the frame's right edge
    ],
)
def test_what_retinaface_takes_for_a_face_beside_a_portrait_is_dropped(
    retinaface_detector, unchecked_detector, ffhq_test_dir, name, bottom
):
    """An FFHQ face enlarged to 1,024 px (over 400 px of its bottom row repeated, or as it is): RetinaFace also
    scores a second box a face (0.98-0.99); the face check drops it and keeps the face."""
    portrait = cv2.resize(load_image(ffhq_test_dir / name), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    portrait = cv2.copyMakeBorder(portrait, 0, bottom, 0, 0, cv2.BORDER_REPLICATE)
    assert len(unchecked_detector.detect(portrait)) == 2
    _assert_one_face_at(retinaface_detector.detect(portrait), FFHQ_TEMPLATE_512 * 2, f"{name} over {bottom} px")


def test_the_hair_above_a_blurred_face_is_dropped(retinaface_detector, unchecked_detector):
    """A real blurred face with sunglasses under curly hair (aligned at 512 px), where RetinaFace also takes the
    hair for a face (0.99): one face, the one whose box holds the template's eyes, nose and mouth."""
    image = load_image(shared_path("data", "realworld_lq", "Wider-Test", "0211.png"))
    assert len(unchecked_detector.detect(image)) == 2
    (face,) = retinaface_detector.detect(image)
    assert np.all((FFHQ_TEMPLATE_512 >= face.box[:2]) & (FFHQ_TEMPLATE_512 <= face.box[2:])), face.box


@pytest.mark.parametrize("name", PORTRAIT_FACES)
def test_the_face_check_keeps_a_tilted_face(retinaface_detector, unchecked_detector, ffhq_test_dir, name):
    """A face tilted 45 degrees in a photo: the check judges it turned upright by its eyes, and keeps it."""
    photo = np.full((640, 640, 3), (90, 110, 140), np.uint8)
    photo[192:448, 192:448] = load_image(ffhq_test_dir / name)
    photo = cv2.warpAffine(photo, cv2.getRotationMatrix2D((320, 320), 45, 1.0), (640, 640), borderValue=(90, 110, 140))
    assert len(unchecked_detector.detect(photo)) == 1
    assert len(retinaface_detector.detect(photo)) == 1


@pytest.mark.parametrize("name", PORTRAIT_FACES)
def test_a_noisy_face_shrunk_and_enlarged_again_is_found(retinaface_detector, ffhq_test_dir, name):
    """An FFHQ face shrunk to 48 px, noised there and enlarged back to 256 px in a 640 x 480 photo, as an old print's
    face: found once, its landmarks at the template's. (At the photo's size alone, ``coarse_scales=()``, RetinaFace
    scored 01002's and 01017's below the threshold; on the copies shrunk 2, 4 and 8 times, 0.99 or more.)"""
    face = load_image(ffhq_test_dir / name)
    small = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
    small += np.random.default_rng(0).normal(0, 16, small.shape)
    photo = np.full((480, 640, 3), (90, 110, 140), np.uint8)
    photo[100:356, 300:556] = cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (256, 256), interpolation=cv2.INTER_CUBIC)
    expected = FFHQ_TEMPLATE_512 / 2 + np.array([300, 100], np.float32)
    _assert_one_face_at(retinaface_detector.detect(photo), expected, f"{name} shrunk to 48 px and noised")


@pytest.mark.parametrize(
    "folder, name",
    [
        ("cropped_lq", "codeformer_gray_089_Miley_Cyrus_00.png"),  # a halftone print
        ("cropped_lq", "vqfr_029_Blake_Lively_00_lq.png"),  # a halftone print
        ("realworld_lq/WebPhoto-Test", "00013_00.png"),  # a blurred, faded child's face
    ],
)
def test_blurred_and_halftone_aligned_faces_are_found(retinaface_detector, folder, name):
    """Real low-quality faces, aligned at 512 px, that RetinaFace found only on shrunk copies: one face each, its
    landmarks at the FFHQ template's."""
    image = load_image(shared_path("data", *folder.split("/"), name))
    _assert_one_face_at(retinaface_detector.detect(image), FFHQ_TEMPLATE_512, name)


@pytest.mark.parametrize("name, index", [("gfpgan_Blake_Lively.jpg", 1), ("codeformer_03.jpg", 0)])
def test_a_face_of_a_photo_enlarged_to_fill_the_frame_is_one_face(retinaface_results, retinaface_detector, name, index):
    image, found, _ = retinaface_results[name]
    face = found[index]
    side = int(1.3 * max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
    x0, y0 = (face.center - side / 2).astype(int)
    assert x0 >= 0 and y0 >= 0 and x0 + side <= image.shape[1] and y0 + side <= image.shape[0]
    portrait = cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (1024, 1024), interpolation=cv2.INTER_CUBIC)
    expected = (face.landmarks - np.array([x0, y0], np.float32)) * (1024 / side)
    _assert_one_face_at(retinaface_detector.detect(portrait), expected, f"{name}'s face {index} at 1024 px")


@pytest.mark.parametrize("scale", [1.5, 2.5, 4])
def test_an_enlarged_photo_shows_the_same_faces(retinaface_results, retinaface_detector, scale):
    """Each photo enlarged 1.5 to 4 times: the faces found in it are those of the photo, scaled. (Enlarged, the
    girl's hair bow in gfpgan_Blake_Lively was scored as the eyes of a second face around hers.)"""
    for name, (image, found, _) in retinaface_results.items():
        enlarged = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LANCZOS4)
        found_enlarged = retinaface_detector.detect(enlarged)
        assert len(found_enlarged) == EXPECTED_FACES[name], f"{name} enlarged {scale}x"
        for face, face_enlarged in zip(found, found_enlarged):  # both left to right
            assert _iou(face.box * scale, face_enlarged.box) > 0.5, f"{name} enlarged {scale}x"


@pytest.mark.parametrize("backend", ["retinaface", "mtcnn"])
def test_no_face_gives_an_empty_list(backend, retinaface_results):
    photo = retinaface_results["gfpgan_00.jpg"][0]
    background = np.ascontiguousarray(photo[1450:1850, 100:700])  # the bench and the ground below the children
    gray = np.full((240, 320, 3), 128, np.uint8)
    detector = FaceDetector(backend, "mobilenet0.25", weights_dir=shared_path("weights", "facexlib"))
    assert detector.detect(gray) == []
    assert detector.detect(background) == []
    assert detector.detect(gray, only_center_face=True) == []


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    """Every place RetinaFace weights are looked for is an empty folder, and downloads are off."""
    for variable in ("FACEREST_WEIGHTS_DIR", "FACEREST_CACHE"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    monkeypatch.delenv("FACEREST_DETECTOR_WEIGHTS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(face_detection, "_facexlib_weights_dirs", lambda: (tmp_path / "facexlib_weights",))
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize(
    ("backend", "module", "package"),
    [("mtcnn", "facenet_pytorch", "facenet-pytorch"), ("retinaface", "facexlib.detection.retinaface", "facexlib")],
)
def test_a_detector_whose_package_is_missing_names_what_to_install(backend, module, package, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # what a missing package gives: ImportError on import
    weights = shared_path("weights", "facexlib") if backend == "retinaface" else None
    with pytest.raises(MissingPackageError, match=f"face detection needs the {package} package.*: pip install {package}$"):
        FaceDetector(backend, weights_dir=weights)


def test_auto_falls_back_to_mtcnn(no_weights_anywhere, monkeypatch):
    monkeypatch.setenv("FACEREST_DETECTOR_WEIGHTS", str(no_weights_anywhere))
    detector = FaceDetector("auto")
    assert detector.name == "mtcnn" and detector.backend == "mtcnn"
    assert "detection_Resnet50_Final.pth" in detector.fallback_reason
    assert str(no_weights_anywhere) in detector.fallback_reason


def test_auto_does_not_fall_back_when_retinaface_was_asked_for(no_weights_anywhere):
    with pytest.raises(FacerestError, match=f"RetinaFace weights: {no_weights_anywhere / 'typo'} does not exist"):
        FaceDetector("auto", weights_dir=no_weights_anywhere / "typo")
    with pytest.raises(MissingWeightsError, match=f"^RetinaFace resnet50 needs detection_Resnet50_Final.pth; looked in: {no_weights_anywhere}"):
        FaceDetector("auto", weights_dir=no_weights_anywhere)  # a folder without them
    with pytest.raises(MissingWeightsError, match="^RetinaFace mobilenet0.25 needs detection_mobilenet0.25_Final.pth"):
        FaceDetector("auto", "mobilenet0.25")  # a backbone named, its weights nowhere


def test_retinaface_without_weights_names_the_file_and_places(no_weights_anywhere):
    with pytest.raises(MissingWeightsError) as info:
        FaceDetector("retinaface", "mobilenet0.25", weights_dir=no_weights_anywhere)
    message = str(info.value)
    assert "detection_mobilenet0.25_Final.pth" in message
    assert str(no_weights_anywhere) in message and "facexlib_weights" in message and "offline" in message


def test_auto_uses_retinaface_from_the_environment_variable(no_weights_anywhere, monkeypatch):
    monkeypatch.setenv("FACEREST_DETECTOR_WEIGHTS", str(shared_path("weights", "facexlib")))
    detector = FaceDetector("auto", "mobilenet0.25")
    assert detector.name == "retinaface-mobilenet0.25" and detector.fallback_reason is None


def test_loads_weights_saved_with_a_module_prefix(tmp_path):
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    network = RetinaFace(network_name="mobile0.25", device="cpu")
    path = tmp_path / "detection_mobilenet0.25_Final.pth"
    torch.save({f"module.{key}": value for key, value in network.state_dict().items()}, path)  # as DataParallel saves
    detector = FaceDetector("retinaface", "mobilenet0.25", weights_dir=tmp_path)
    assert detector.name == "retinaface-mobilenet0.25"
    # The loaded network (BatchNorms folded, channels-last) computes what the saved one computes.
    pixels = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        expected, loaded = network(pixels), detector._detect_faces.network(pixels)
    for want, got in zip(expected, loaded):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert isinstance(detector.detect(np.full((64, 64, 3), 128, np.uint8)), list)


def _facexlib_retinaface(weights_path):
    """facexlib's own RetinaFace with the ../shared weights, set up as FaceDetector sets up its network."""
    from facexlib.detection.retinaface import RetinaFace

    network = RetinaFace(network_name="mobile0.25", half=False, device="cpu")
    network.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    network.eval()
    variant = face_detection.RETINAFACE_VARIANTS_BY_SHA256.get(face_detection._sha256(weights_path))
    if variant is not None:
        network.cfg = {**network.cfg, "min_sizes": variant["anchor_sizes"]}
        for module in network.modules():
            if isinstance(module, torch.nn.LeakyReLU):
                module.negative_slope = variant["leaky_relu_slope"]
    return network


@pytest.mark.parametrize("size", [(64, 96), (189, 248), (1000, 677)])
def test_prior_boxes_are_facexlibs(retinaface_detector, size):
    from facexlib.detection.retinaface_utils import PriorBox

    ours = retinaface_detector._detect_faces
    cfg = {"min_sizes": ours.anchor_sizes, "steps": ours.strides, "clip": False}
    torch.testing.assert_close(ours.prior_boxes(*size), PriorBox(cfg, image_size=size).forward(), atol=0, rtol=0)


def test_prior_boxes_are_kept_for_a_few_sizes_only(retinaface_detector):
    ours = retinaface_detector._detect_faces
    sizes = [(64 + i, 96) for i in range(ours.PRIOR_CACHE_SIZES + 3)]
    for size in sizes:
        ours.prior_boxes(*size)
    assert list(ours._priors) == sizes[-ours.PRIOR_CACHE_SIZES :]  # a folder of many photo sizes stays bounded
    assert ours.prior_boxes(*sizes[-1]) is ours._priors[sizes[-1]]


@pytest.mark.parametrize("name", ["codeformer_00.jpg", "codeformer_06.png"])
def test_retinaface_matches_facexlibs_detect_faces(retinaface_detector, name):
    """Our decoding around facexlib's network (cached priors, folded BatchNorms, channels-last) finds what
    facexlib's RetinaFace.detect_faces finds, to a hundredth of a pixel."""
    image = load_image(shared_path("data", "whole_imgs", name))
    boxes, landmarks, scores = retinaface_detector._detect_faces(image, 0.97)
    weights = shared_path("weights", "facexlib", "detection_mobilenet0.25_Final.pth")
    with torch.inference_mode():
        rows = _facexlib_retinaface(weights).detect_faces(image[:, :, ::-1].copy(), conf_threshold=0.97)
    assert len(boxes) == len(rows) == EXPECTED_FACES[name]
    np.testing.assert_allclose(boxes, rows[:, :4], atol=0.01)
    np.testing.assert_allclose(landmarks, rows[:, 5:15].reshape(-1, 5, 2), atol=0.01)
    np.testing.assert_allclose(scores, rows[:, 4], atol=1e-4)


def test_corrupt_weights_file_is_named(tmp_path):
    corrupt = tmp_path / "detection_mobilenet0.25_Final.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(FacerestError, match="detection_mobilenet0.25_Final.pth"):
        FaceDetector("retinaface", "mobilenet0.25", weights_dir=tmp_path)


def test_retinaface_backbone_follows_the_weights_file_present(tmp_path, monkeypatch):
    weights = shared_path("weights", "facexlib", "detection_mobilenet0.25_Final.pth")
    assert FaceDetector("retinaface", weights_dir=weights.parent).name == "retinaface-mobilenet0.25"
    assert FaceDetector("retinaface", weights_dir=weights).name == "retinaface-mobilenet0.25"
    monkeypatch.setenv(DETECTOR_WEIGHTS_ENV, str(weights.parent))
    assert FaceDetector("retinaface").name == "retinaface-mobilenet0.25"
    # with no file of either backbone, resnet50 is asked for (and named when it cannot be found)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FacerestError, match="detection_Resnet50_Final.pth"):
        FaceDetector("retinaface", weights_dir=tmp_path)


def test_bad_options_and_inputs():
    with pytest.raises(FacerestError, match="unknown face detector 'dlib'"):
        FaceDetector("dlib")
    with pytest.raises(FacerestError, match="unknown RetinaFace model"):
        FaceDetector("retinaface", retinaface_model="resnet18")
    for scales in ((0.5, 1.0), (0,)):
        with pytest.raises(FacerestError, match="coarse_scales must lie between 0 and 1"):
            FaceDetector("mtcnn", coarse_scales=scales)
    with pytest.raises(FacerestError, match="weak_face_score must lie between 0 and 1, got 1.5"):
        FaceDetector("mtcnn", weak_face_score=1.5)
    with pytest.raises(FacerestError, match="face_check_threshold must lie between 0 and 1, got 1.5"):
        FaceDetector("mtcnn", face_check_threshold=1.5)
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="RGB uint8"):
        align_face(image.astype(np.float32), FFHQ_TEMPLATE_512)
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        align_face(image, FFHQ_TEMPLATE_512[:3])
    crop = np.zeros((32, 32, 3), np.uint8)
    affine = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    with pytest.raises(ValueError, match="2 restored faces but 1 affine"):
        paste_faces(image, [crop, crop], [affine])
    for upscale in (0, 1.5):
        with pytest.raises(ValueError, match="upscale"):
            paste_faces(image, [crop], [affine], upscale=upscale)


def _group_photo(ffhq_test_dir, crop: int, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A ``width`` x 3/4 ``width`` px photo of 35 FFHQ faces (PORTRAIT_FACES in turn) in 7 columns and 5 rows, each
    crop ``crop`` px, as a phone's group photo; with each face's expected landmarks."""
    faces = [load_image(ffhq_test_dir / name) for name in PORTRAIT_FACES]
    height = width * 3 // 4
    photo = np.full((height, width, 3), (120, 110, 100), np.uint8)
    column_step, row_step = (width - 300) // 7, (height - 300) // 5
    jitter = min(100, column_step - crop, row_step - crop)
    rng = np.random.default_rng(0)
    expected = []
    for index in range(35):
        x = 150 + (index % 7) * column_step + rng.integers(0, jitter)
        y = 150 + (index // 7) * row_step + rng.integers(0, jitter)
        face = cv2.resize(faces[index % len(faces)], (crop, crop), interpolation=cv2.INTER_AREA)
        photo[y : y + crop, x : x + crop] = face
        expected.append(FFHQ_TEMPLATE_512 * (crop / 512) + np.array([x, y], np.float32))
    return photo, expected


@pytest.mark.parametrize(
    "width, crop",
    [
        # a phone's photo, faces 96 px (boxes about 48 px): on the 1,024-px copy alone RetinaFace found 1
        (4000, 96),
        # shrunk less than twice, faces 56 px (boxes about 28 px): searched for small faces only because it shows
        # some; without that search RetinaFace found 25
        (2000, 56),
    ],
)
def test_every_face_of_a_group_photo_is_found(retinaface_detector, ffhq_test_dir, width, crop):
    """Each face of a group photo shrunk for detection is found once, its landmarks at the template's."""
    photo, expected = _group_photo(ffhq_test_dir, crop, width)
    found = retinaface_detector.detect(photo)
    assert len(found) == len(expected), f"{len(found)} faces of {len(expected)}"
    for landmarks in expected:
        nearest = min(found, key=lambda face: np.linalg.norm(face.landmarks - landmarks))
        _assert_one_face_at([nearest], landmarks, f"the face at {landmarks[2].round().tolist()}")


def test_a_portrait_shrunk_less_than_twice_is_not_searched_for_small_faces(
    retinaface_detector, ffhq_test_dir, monkeypatch
):
    """A 1,600-px portrait, its one face large: no search on the finer copy, which would double its detection time."""
    portrait = cv2.resize(load_image(ffhq_test_dir / PORTRAIT_FACES[0]), (1600, 1600), interpolation=cv2.INTER_CUBIC)
    copy_sides = []
    detect_on_copy = retinaface_detector._detect_on_copy

    def recording_detect_on_copy(image, max_side, score_threshold=None):
        copy_sides.append(max_side)
        return detect_on_copy(image, max_side, score_threshold)

    monkeypatch.setattr(retinaface_detector, "_detect_on_copy", recording_detect_on_copy)
    assert len(retinaface_detector.detect(portrait)) == 1
    assert retinaface_detector.small_face_detection_side not in copy_sides, copy_sides


def test_a_small_face_scored_low_on_the_shrunk_copy_is_found_on_the_finer_one(retinaface_detector, ffhq_test_dir):
    """A face with a 42-px box in a 1,200-px photo: on the 1,024-px copy it scores under the threshold (0.95, 36 px
    there), on the photo itself above it (0.99); the search on the finer copy adds it, as `weak_face_score` says."""
    photo = np.full((700, 1200, 3), 120, np.uint8)
    photo[80:152, 40:112] = cv2.resize(load_image(ffhq_test_dir / "01000.jpg"), (72, 72), interpolation=cv2.INTER_AREA)
    _, encoded = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 85])
    photo = cv2.imdecode(encoded, cv2.IMREAD_COLOR)  # both take BGR: the round trip keeps the channel order
    assert retinaface_detector._detect_on_copy(photo, retinaface_detector.max_detection_side) == []
    found = retinaface_detector.detect(photo)
    assert len(found) == 1 and 40 <= found[0].center[0] <= 112 and 80 <= found[0].center[1] <= 152
    weights = shared_path("weights", "facexlib")
    assert FaceDetector("retinaface", "mobilenet0.25", weights_dir=weights, weak_face_score=None).detect(photo) == []


def test_a_small_face_of_a_small_photo_scored_low_is_found_on_an_enlarged_copy(retinaface_detector, ffhq_test_dir):
    """A face with a 24-px box in a 240-px photo (a thumbnail): detected at the photo's own size it scores under the
    threshold (0.93), on the copy enlarged `SMALL_PHOTO_ENLARGEMENT` times above it (0.99); that search adds it."""
    photo = np.full((180, 240, 3), 120, np.uint8)
    photo[40:88, 60:108] = cv2.resize(load_image(ffhq_test_dir / "01030.jpg"), (48, 48), interpolation=cv2.INTER_AREA)
    _, encoded = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 85])
    photo = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    assert retinaface_detector._detect_on_copy(photo, None) == []
    found = retinaface_detector.detect(photo)
    assert len(found) == 1 and 60 <= found[0].center[0] <= 108 and 40 <= found[0].center[1] <= 88
    assert found[0].landmarks[0, 0] < found[0].landmarks[1, 0] and found[0].landmarks[2, 1] < found[0].landmarks[3, 1]
    weights = shared_path("weights", "facexlib")
    assert FaceDetector("retinaface", "mobilenet0.25", weights_dir=weights, weak_face_score=None).detect(photo) == []


def test_a_large_faces_mask_is_made_small_and_matches_the_full_size_one(monkeypatch):
    """A 1,500-px face enlarged 2x (a 3,000-px window): its mask is feathered on a copy shrunk to at most
    MAX_MASK_FEATHER and enlarged back, and differs from the mask made at full size only by a few hundredths."""
    affine = np.array([[0.98, -0.1, 50.0], [0.1, 0.98, 20.0]]) * (512 / 1500)  # photo -> 512-px crop, tilted
    feathered_sides = []
    feathered = faces_module._feathered

    def recording_feathered(inside, feather):
        feathered_sides.append(max(inside.shape))
        return feathered(inside, feather)

    monkeypatch.setattr(faces_module, "_feathered", recording_feathered)
    shrunk = face_paste_mask(affine, 512, (1700, 1700, 3), upscale=2)
    assert feathered_sides and max(feathered_sides) < 3400 // 2, feathered_sides
    monkeypatch.setattr(faces_module, "MAX_MASK_FEATHER", 10**6)
    full_size = face_paste_mask(affine, 512, (1700, 1700, 3), upscale=2)
    assert max(feathered_sides) > 3000
    difference = np.abs(shrunk - full_size)
    assert difference.max() < 0.1 and difference.mean() < 0.005, (difference.max(), difference.mean())
    assert shrunk.max() == pytest.approx(1.0, abs=1e-3) and shrunk[full_size == 0].max() < 0.01
