"""Finding faces and their 5 landmarks in RGB photos: facexlib's RetinaFace, each face it finds judged again by
MTCNN's last network, or MTCNN from facenet-pytorch when RetinaFace's weights cannot be had.

``FaceDetector.detect`` looks at the photo and at copies of it (shrunk for blurred faces, finer or enlarged for small
ones, the longer side at RetinaFace's largest anchor for a face filling the frame) and merges what each finds;
``FaceDetector.detect_turned`` also looks at the photo turned a quarter, a half and three quarters (a scan fed in
sideways). Boxes and landmarks are in the input photo's pixels.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import FacerestError, import_package
from .images import check_rgb_image
from .weights import MissingWeightsError, find_weights

logger = logging.getLogger(__name__)

DETECTOR_WEIGHTS_ENV = "FACEREST_DETECTOR_WEIGHTS"
BACKENDS = ("auto", "retinaface", "mtcnn")

_FACEXLIB_RELEASE = "https://github.com/xinntao/facexlib/releases/download/v0.1.0"
# our model name -> (facexlib's network_name, weights file, download URL)
RETINAFACE_MODELS = {
    "resnet50": ("resnet50", "detection_Resnet50_Final.pth", f"{_FACEXLIB_RELEASE}/detection_Resnet50_Final.pth"),
    "mobilenet0.25": (
        "mobile0.25",
        "detection_mobilenet0.25_Final.pth",
        f"{_FACEXLIB_RELEASE}/detection_mobilenet0.25_Final.pth",
    ),
}

# Weight files with the layers of facexlib's RetinaFace but trained in another configuration, known by SHA-256:
# the anchor (prior box) sizes in pixels per feature level (strides 8, 16, 32), and the negative slope of the
# network's LeakyReLUs (facexlib uses 0.1 in its mobilenet0.25; a slope of 0 makes them plain ReLUs).
RETINAFACE_VARIANTS_BY_SHA256 = {
    # biubug6/Face-Detector-1MB-with-landmark's weights/mobilenet0.25_Final.pth (the offline copy in ../shared):
    # same parameter names and shapes as facexlib's mobilenet0.25, but trained with smaller anchors and ReLUs.
    "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1": {
        "anchor_sizes": [[10, 20], [32, 64], [128, 256]],
        "leaky_relu_slope": 0.0,
    },
}

# Scores below these are dropped: RetinaFace's as in FaceRestoreHelper.get_face_landmarks_5; MTCNN's final stage
# scores the real faces of ../shared/data/whole_imgs 0.98 or more, so 0.95 only removes doubtful boxes.
DEFAULT_SCORE_THRESHOLDS = {"retinaface": 0.97, "mtcnn": 0.95}

# The copies, as fractions of the detection size, that RetinaFace also looks for faces on (FaceDetector.detect),
# and the smallest such copy, in pixels on its longer side.
COARSE_DETECTION_SCALES = (0.5, 0.25, 0.125)
SMALLEST_DETECTION_SIDE = 32

# A photo shrunk more than SMALL_FACE_SEARCH_SHRINK times for detection, or shrunk at all and showing faces under
# twice SMALL_FACE_AT_DETECTION_SIZE there or none, is also searched, on a finer copy, for the faces whose boxes shrink
# below SMALL_FACE_AT_DETECTION_SIZE there (FaceDetector.detect): twice RetinaFace's smallest anchor, below which its
# scores fall short of the threshold.
SMALL_FACE_SEARCH_SHRINK = 2
SMALL_FACE_AT_DETECTION_SIZE = 32
# Faces up to twice that size often score a little under the threshold there (a face with a 42-px box in a 1,200-px
# photo: 0.95 at 1,024 px, 0.99 at 1,200): such a face found on the finer copy is added too when the detection copy
# scored it at least WEAK_FACE_SCORE. Found on the finer copy alone it may be a false face of an enlarged photo (a
# hand in codeformer_02 enlarged 4x: 0.99 at 4,096 px, 0.87 at 1,024).
WEAK_FACE_SCORE = 0.9
# A photo that is not shrunk for detection (its longer side at most `max_detection_side`) has no finer copy: where it
# shows faces that small scored at least WEAK_FACE_SCORE but under the threshold, it is searched on a copy enlarged
# this many times, and each such face found there is added. The faces of a group photo at a web thumbnail's size
# (insightface's t1.jpg shrunk to 320 px, boxes of 26-38 px) scored 0.93-0.97 on the photo, three of six under the
# threshold, and all six 0.998 or more enlarged twice.
SMALL_PHOTO_ENLARGEMENT = 2

# RetinaFace scores some things that are not faces at 0.97 and more: skin-coloured stripes, an ear, the hair above a
# face, a blurred patch of background. MTCNN's last network (ONet: a face classifier on 48-px crops, whose weights ship
# in facenet-pytorch's wheel) judges each box again, turned upright by its eyes (`_FaceCheck`), and a face it scores
# under this probability is dropped. It scored those false faces 0.0001-0.06 (bench/portrait_detection.py,
# bench/detection_recall.py, realworld_lq's Wider-Test/0211); the faces of 100 FFHQ portraits 0.74 or more, those of
# whole_imgs 0.97 upright and 0.25 or more turned 45 degrees; but a few of the most degraded faces 0.02-0.07 (2 of the
# 120 of bench/detection_recall.py are lost).
FACE_CHECK_THRESHOLD = 0.1

# A photo given sideways or upside down without an EXIF orientation (a scan fed in sideways): RetinaFace finds few of
# its faces, or none, and puts the landmarks of those it finds where an upright face's would lie in the box.
# `FaceDetector.detect_turned` also looks at the photo turned a quarter, a half and three quarters, and takes the turn
# showing the most faces (then the highest summed score) where the photo as given shows none, or where that turn shows
# at least twice as many and `MORE_FACES_TURNED` more (a group photo given sideways: t1.jpg of insightface's samples,
# six faces, showed one or two as given). Otherwise the photo stays as given: the face check's ONet scores clean faces
# lying sideways as face-like as upright ones (the two faces of `gfpgan_Blake_Lively` enlarged 4x: 0.75 and 1.0
# upright, 0.97 and 1.0 turned a quarter), and RetinaFace finds both at every turn, so no score tells a photo with its
# faces found upright from one with them found sideways; and a portrait turned may show one more face than upright (a
# false one beside it: 2 of realworld_lq's 100). A photo whose one face is found sideways as given stays so
# (bench/turned_photos.py measures the search). Where the photo as given shows faces, the turns are first counted on
# a copy of at most TURN_COUNT_SIDE px, one pass each, and only a turn counted so is detected in full: a full `detect`
# of each turn tripled the detection time of realworld_lq's 100 portraits, counting on 640 px doubled it, on 320 px
# it adds about 0.07 s a photo; insightface's t1.jpg (1280 px) given at each turn still shows its six faces. The copy
# is set in a TURN_COUNT_SIDE square of RETINAFACE_MEAN_RGB, so that every photo's counts, at every turn, are one
# input size for the network: each new size had the CPU's convolution library build and cache code for it, and a long
# CLI run's resident memory climbed with the sizes (BENCHMARKS.md, "Bounded memory"); the counts are the same.
MORE_FACES_TURNED = 2
TURN_COUNT_SIDE = 320
# The colour RetinaFace subtracts from its input (facexlib's mean_tensor, there in BGR order): what it sees as zero.
RETINAFACE_MEAN_RGB = (123, 117, 104)


@dataclass
class DetectedFace:
    box: np.ndarray  # (4,) float32: x1, y1, x2, y2 in input pixels
    landmarks: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left mouth corner, right mouth corner
    score: float

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels (what ``min_face_size`` is compared with)."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], dtype=np.float32)


class FaceDetector:
    """Finds faces and their 5 landmarks in RGB photos.

    Args:
        backend: ``"retinaface"`` (facexlib's RetinaFace), ``"mtcnn"`` (facenet-pytorch's MTCNN, whose weights
            ship inside its wheel) or ``"auto"``: RetinaFace when its weights are found or can be downloaded,
            else MTCNN (``fallback_reason`` then says why). ``"auto"`` falls back only when RetinaFace was not
            asked for: given ``retinaface_model`` or ``weights_dir`` (a folder that must exist), weights that
            cannot be found raise ``MissingWeightsError``, as with ``"retinaface"``.
        retinaface_model: ``"resnet50"`` or ``"mobilenet0.25"``; by default the one whose weights file
            ``weights_dir`` holds or is (resnet50 when it holds both or neither).
        weights_dir: a folder holding facexlib's RetinaFace weight files (or one such file); defaults to
            ``$FACEREST_DETECTOR_WEIGHTS``. Without either, the usual places are searched (see
            ``facerest.weights``, plus facexlib's own ``weights`` folder) and the file is downloaded when allowed.
        device: where the detector runs.
        min_face_size: faces whose box's shorter side is below this many pixels are dropped.
        score_threshold: the lowest detection score kept; ``None`` takes the backend's default
            (``DEFAULT_SCORE_THRESHOLDS``).
        max_detection_side: photos whose longer side exceeds this are shrunk for detection only (boxes and
            landmarks come back in the photo's pixels); ``None`` detects at full size.
        small_face_detection_side: a photo shrunk for detection is also searched for small faces on a copy whose
            longer side is at most this (see ``detect``); ``None`` turns that off. RetinaFace only, as
            ``coarse_scales``.
        weak_face_score: a small face that the detection copy scores at least this, under the threshold, is taken
            from the finer copy of the small-face search when found there (see ``detect``); ``None`` turns that off.
            RetinaFace only.
        coarse_scales: RetinaFace also looks for faces on copies this many times the detection size, where blurred
            and noisy faces score higher (see ``detect``); ``()`` turns that off. MTCNN's own image pyramid already
            shrinks the photo, so it ignores them.
        face_check_threshold: a RetinaFace face that MTCNN's last network scores under this probability is dropped
            (``FACE_CHECK_THRESHOLD``); ``None`` turns the check off. MTCNN ends with that network itself.

    ``backend`` says which detector runs (``"retinaface"`` or ``"mtcnn"``) and ``name`` which exactly:
    ``"retinaface-resnet50"``, ``"retinaface-mobilenet0.25"`` or ``"mtcnn"``.
    """

    def __init__(
        self,
        backend: str = "auto",
        retinaface_model: str | None = None,
        weights_dir: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        min_face_size: float = 0,
        score_threshold: float | None = None,
        max_detection_side: int | None = 1024,
        small_face_detection_side: int | None = 4096,
        weak_face_score: float | None = WEAK_FACE_SCORE,
        coarse_scales: tuple[float, ...] = COARSE_DETECTION_SCALES,
        face_check_threshold: float | None = FACE_CHECK_THRESHOLD,
    ):
        if backend not in BACKENDS:
            raise FacerestError(f"unknown face detector {backend!r}; choose one of {', '.join(BACKENDS)}")
        # RetinaFace was asked for by name, model or weights folder: no falling back to MTCNN then
        retinaface_asked = backend == "retinaface" or retinaface_model is not None or weights_dir is not None
        if weights_dir is not None and not Path(weights_dir).exists():
            raise FacerestError(f"RetinaFace weights: {weights_dir} does not exist (give the folder that holds them)")
        if weights_dir is None:
            weights_dir = os.environ.get(DETECTOR_WEIGHTS_ENV) or None
        if retinaface_model is None:
            retinaface_model = _retinaface_model_of(weights_dir)
        if retinaface_model not in RETINAFACE_MODELS:
            raise FacerestError(
                f"unknown RetinaFace model {retinaface_model!r}; choose one of {', '.join(RETINAFACE_MODELS)}"
            )
        if min_face_size < 0:
            raise FacerestError(f"min_face_size must be 0 or more, got {min_face_size}")
        if max_detection_side is not None and max_detection_side < SMALLEST_DETECTION_SIDE:
            raise FacerestError(
                f"max_detection_side must be at least {SMALLEST_DETECTION_SIDE} pixels, got {max_detection_side}"
            )
        if small_face_detection_side is not None and small_face_detection_side < SMALLEST_DETECTION_SIDE:
            raise FacerestError(
                f"small_face_detection_side must be at least {SMALLEST_DETECTION_SIDE} pixels, "
                f"got {small_face_detection_side}"
            )
        if weak_face_score is not None and not 0 < weak_face_score < 1:
            raise FacerestError(f"weak_face_score must lie between 0 and 1, got {weak_face_score}")
        if not all(0 < scale < 1 for scale in coarse_scales):
            raise FacerestError(f"coarse_scales must lie between 0 and 1, got {tuple(coarse_scales)}")
        if face_check_threshold is not None and not 0 < face_check_threshold < 1:
            raise FacerestError(f"face_check_threshold must lie between 0 and 1, got {face_check_threshold}")
        self.device = torch.device(device)
        self.min_face_size = min_face_size
        self.max_detection_side = max_detection_side
        self.fallback_reason: str | None = None

        weights_path = None
        if backend != "mtcnn":
            try:
                weights_path = _find_retinaface_weights(retinaface_model, weights_dir)
            except MissingWeightsError as error:
                if retinaface_asked:
                    raise MissingWeightsError(
                        error.filename, error.looked_in, error.download_note, needed_by=f"RetinaFace {retinaface_model}"
                    ) from None
                self.fallback_reason = f"RetinaFace weights unavailable ({error})"
                logger.warning("%s; detecting faces with MTCNN instead", self.fallback_reason)
        if weights_path is not None:
            self.backend = "retinaface"
            self.name = f"retinaface-{retinaface_model}"
            self._detect_faces = _RetinaFace(retinaface_model, weights_path, self.device)
        else:
            self.backend = "mtcnn"
            self.name = "mtcnn"
            self._detect_faces = _MTCNN(self.device)
        self.score_threshold = DEFAULT_SCORE_THRESHOLDS[self.backend] if score_threshold is None else score_threshold
        self.coarse_scales = tuple(coarse_scales) if self.backend == "retinaface" else ()
        self.small_face_detection_side = small_face_detection_side if self.backend == "retinaface" else None
        retinaface_weak_score = weak_face_score is not None and self.backend == "retinaface"
        self.weak_face_score = min(weak_face_score, self.score_threshold) if retinaface_weak_score else None
        checked = face_check_threshold is not None and self.backend == "retinaface"
        self._face_check = _FaceCheck(face_check_threshold, self.device) if checked else None

    def detect(
        self, image: np.ndarray, only_center_face: bool = False, min_face_size: float | None = None
    ) -> list[DetectedFace]:
        """The faces of ``image`` (RGB uint8), sorted left to right by the box's left edge.

        Faces smaller than ``min_face_size`` (default: the detector's) are dropped; then, with
        ``only_center_face``, only the face whose box centre is nearest the photo's centre is kept.
        An image without faces gives an empty list.

        RetinaFace finds faces up to about its largest anchor (``largest_face`` pixels at the size it detects at);
        on a larger face, a portrait filling the frame, it finds parts of it instead, eye regions scored as faces.
        So it also runs on a copy whose longer side is ``largest_face``: each face found there that is larger than
        that at the detection size replaces the detections lying mostly inside it.

        A blurred or noisy face (an old print, a face shrunk and enlarged again) scores too low at the photo's size
        and higher once shrunk, where its blur spans fewer pixels and its noise is averaged: RetinaFace also runs on
        copies ``coarse_scales`` times the detection size (down to ``SMALLEST_DETECTION_SIDE``), and each face found
        there and not on a finer copy is added (the finest copy's landmarks are the most precise).

        A photo shrunk for detection loses the faces that shrink below ``SMALL_FACE_AT_DETECTION_SIZE``: it is
        also searched on a copy at most ``small_face_detection_side`` px, and each face found there that would be
        that small is added, unless it lies inside a face twice its size (a part of a large face, which RetinaFace
        finds on an enlarged copy); so is each face up to twice that size that the detection copy scored under the
        threshold but at least ``weak_face_score``. A photo detected at its own size has no finer copy: such faces
        of it are looked for on a copy enlarged ``SMALL_PHOTO_ENLARGEMENT`` times, and each found there is added. A
        face found on both copies is kept once, the better-scored.
        That search doubles the detection time or more, so a photo shrunk at most ``SMALL_FACE_SEARCH_SHRINK`` times
        has it only when it shows small faces (a group photo, whose smallest faces are missed) or none: a portrait,
        whose face is large, does not.
        """
        check_rgb_image(image, "image")
        height, width = image.shape[:2]
        faces, weak = self._detect_on_copy(image, self.max_detection_side, self.weak_face_score), []
        if self.weak_face_score is not None:  # those under the threshold count only if the small-face search finds them
            weak = [face for face in faces if face.score <= self.score_threshold]
            faces = [face for face in faces if face.score > self.score_threshold]
        detection_side = min(self.max_detection_side or max(height, width), max(height, width))
        for scale in self.coarse_scales:
            if scale * detection_side < SMALLEST_DETECTION_SIDE:
                continue
            coarse = self._detect_on_copy(image, round(scale * detection_side))
            faces += [face for face in coarse if not any(_nested(face, finer) for finer in faces)]
        detection_scale = detection_side / max(height, width)
        largest = self._detect_faces.largest_face
        if largest is not None and max(height, width) * detection_scale > largest:
            large = [face for face in self._detect_on_copy(image, largest) if face.size * detection_scale > largest]
            faces = [face for face in faces if not any(_lies_inside(face, large_face) for large_face in large)] + large
        if self._may_miss_small_faces(faces, detection_scale):
            small = [
                face
                for face in self._detect_on_copy(image, self.small_face_detection_side)
                if face.size * detection_scale < SMALL_FACE_AT_DETECTION_SIZE
                or (face.size * detection_scale < 2 * SMALL_FACE_AT_DETECTION_SIZE and any(_nested(face, w) for w in weak))
            ]
            faces += [face for face in small if not any(_part_of(face, other) for other in faces)]
        elif detection_scale == 1 and (small_weak := [w for w in weak if w.size < 2 * SMALL_FACE_AT_DETECTION_SIZE]):
            enlarged = self._detect_on_enlarged(image, SMALL_PHOTO_ENLARGEMENT)
            faces += [face for face in enlarged if any(_nested(face, w) for w in small_weak)]
        faces = _best_of_nested(faces)
        minimum = self.min_face_size if min_face_size is None else min_face_size
        faces = [face for face in faces if face.size >= minimum]
        if only_center_face and faces:
            photo_center = np.array([width / 2, height / 2])
            faces = [min(faces, key=lambda face: np.linalg.norm(face.center - photo_center))]
        return sorted(faces, key=lambda face: face.box[0])

    def detect_turned(
        self, image: np.ndarray, only_center_face: bool = False, min_face_size: float | None = None
    ) -> tuple[int, list[DetectedFace]]:
        """The quarter turns clockwise (0 to 3) that show ``image``'s faces upright, and the faces ``detect`` finds in
        ``image`` so turned (``np.rot90(image, -turns)``), in that turned image's pixels.

        Of the turns, the one showing the most faces, then the highest summed score, is taken where ``image`` as given
        shows no face, or where it shows at least twice as many and ``MORE_FACES_TURNED`` more (why: the note above
        ``DetectedFace``). ``(0, [])`` when no turn shows a face."""
        given = self.detect(image, only_center_face, min_face_size)
        turns_to_detect = (1, 2, 3)
        if given:  # counted on one shrunk copy in a square, turned (turning the photo and shrinking each took longer)
            counting_copy = _in_square(_shrunk(image, TURN_COUNT_SIDE)[0], TURN_COUNT_SIDE)
            counted = {turns: self._detect_on_copy(_turned(counting_copy, turns), None) for turns in turns_to_detect}
            turns = _showing_most_faces(counted)
            if not _shows_more_faces(counted[turns], self._detect_on_copy(counting_copy, None)):
                return 0, given
            turns_to_detect = (turns,)
        turned = {
            turns: self.detect(_turned(image, turns), only_center_face, min_face_size) for turns in turns_to_detect
        }
        turns = _showing_most_faces(turned)
        return (turns, turned[turns]) if _shows_more_faces(turned[turns], given) else (0, given)

    def _may_miss_small_faces(self, faces: list[DetectedFace], detection_scale: float) -> bool:
        """Whether a photo detected at ``detection_scale`` of its size, where ``faces`` were found, is also searched
        for small faces on a finer copy (see ``detect``)."""
        if self.small_face_detection_side is None or detection_scale >= 1:
            return False
        if detection_scale * SMALL_FACE_SEARCH_SHRINK < 1 or not faces:
            return True
        return any(face.size * detection_scale < 2 * SMALL_FACE_AT_DETECTION_SIZE for face in faces)

    def _detect_on_enlarged(self, image: np.ndarray, factor: int) -> list[DetectedFace]:
        """The faces found on a copy of ``image`` enlarged ``factor`` times (bicubic), in ``image``'s pixels."""
        enlarged = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        return [
            DetectedFace(face.box / factor, face.landmarks / factor, face.score)
            for face in self._detect_on_copy(enlarged, None)
        ]

    def _detect_on_copy(
        self, image: np.ndarray, max_side: int | None, score_threshold: float | None = None
    ) -> list[DetectedFace]:
        """The faces found on a copy of ``image`` shrunk so its longer side is at most ``max_side`` (``None``: the
        image itself), with boxes and landmarks in ``image``'s pixels, scored above ``score_threshold`` (``None``: the
        detector's)."""
        image, scale = _shrunk(image, max_side)
        threshold = self.score_threshold if score_threshold is None else score_threshold
        boxes, landmarks, scores = self._detect_faces(image, threshold)
        if self._face_check is not None and len(boxes):
            keep = self._face_check.faces(image, boxes, landmarks)
            boxes, landmarks, scores = boxes[keep], landmarks[keep], scores[keep]
        return [
            DetectedFace((box / scale).astype(np.float32), (points / scale).astype(np.float32), float(score))
            for box, points, score in zip(boxes, landmarks, scores)
        ]


def _shrunk(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area filter) so that its longer side is at most ``max_side``, and the scale it was shrunk by:
    ``(image, 1.0)`` when it is no larger or ``max_side`` is ``None``."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, 1.0
    scale = max_side / max(height, width)
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, small_size, interpolation=cv2.INTER_AREA), scale


def _in_square(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` (at most ``side`` px each way) at the top left of a ``side`` x ``side`` square of
    ``RETINAFACE_MEAN_RGB``: every photo's copy, and each of its turns, is then one input size for the detector's
    network."""
    square = np.empty((side, side, 3), np.uint8)
    square[...] = RETINAFACE_MEAN_RGB
    square[: image.shape[0], : image.shape[1]] = image
    return square


def _turned(image: np.ndarray, turns: int) -> np.ndarray:
    """``image`` turned ``turns`` quarters clockwise, as a contiguous array (what the detector takes)."""
    return np.ascontiguousarray(np.rot90(image, -turns))


def _showing_most_faces(faces_by_turn: dict[int, list[DetectedFace]]) -> int:
    """The turn whose faces are the most, then the highest scored in sum."""
    return max(faces_by_turn, key=lambda turn: (len(faces_by_turn[turn]), sum(f.score for f in faces_by_turn[turn])))


def _shows_more_faces(turned: list[DetectedFace], given: list[DetectedFace]) -> bool:
    """Whether a turn's faces outnumber a photo's faces as given enough to take the turn (the note above
    `DetectedFace`): any where none shows as given, else at least twice as many and `MORE_FACES_TURNED` more."""
    return len(turned) >= (1 if not given else max(2 * len(given), len(given) + MORE_FACES_TURNED))


def points_before_turn(points: np.ndarray, turns: int, turned_shape: tuple[int, ...]) -> np.ndarray:
    """``points`` (..., 2: x, y) of an image turned ``turns`` quarters clockwise (``np.rot90(image, -turns)``, of
    ``turned_shape``), in ``image``'s pixels."""
    height, width = turned_shape[:2]
    for _ in range(turns % 4):  # undo one quarter turn clockwise: (x, y) of the turned image was (y, width - 1 - x)
        points = np.stack([points[..., 1], width - 1 - points[..., 0]], axis=-1)
        height, width = width, height
    return points


def detector_summary(detector: FaceDetector) -> str:
    """The detector's name for the line the CLI and the app print at the start, with what to do when RetinaFace's
    weights were not found (the detector's warning, logged before it, gives the reason and the places searched)."""
    if detector.fallback_reason:
        return f"{detector.name} (RetinaFace weights not found: give them with --detector-weights DIR)"
    return detector.name


def _best_of_nested(faces: list[DetectedFace]) -> list[DetectedFace]:
    """The faces without those whose box holds a better-scored face's centre, or whose centre such a face's box holds.

    RetinaFace at times also scores a region around a face as a face (in a photo enlarged 2.5 times, a child's hair
    bow as the eyes of a face whose mouth is the child's face): two boxes of which one holds the other's centre are
    not two faces side by side, as the overlap that non-maximum suppression measures would let them be."""
    kept = []
    for face in sorted(faces, key=lambda face: -face.score):
        if not any(_nested(face, other) for other in kept):
            kept.append(face)
    return kept


def _nested(face: DetectedFace, other: DetectedFace) -> bool:
    """Whether either face's box holds the other's centre."""
    return _holds_centre(face, other) or _holds_centre(other, face)


def _holds_centre(face: DetectedFace, other: DetectedFace) -> bool:
    x, y = other.center
    return bool(face.box[0] <= x <= face.box[2] and face.box[1] <= y <= face.box[3])


def _lies_inside(face: DetectedFace, other: DetectedFace) -> bool:
    """Whether at least half of ``face``'s box lies inside ``other``'s."""
    x1, y1 = np.maximum(face.box[:2], other.box[:2])
    x2, y2 = np.minimum(face.box[2:], other.box[2:])
    overlap = max(x2 - x1, 0) * max(y2 - y1, 0)
    return overlap >= 0.5 * (face.box[2] - face.box[0]) * (face.box[3] - face.box[1])


def _part_of(face: DetectedFace, other: DetectedFace) -> bool:
    """Whether ``face`` lies mostly inside ``other`` and is less than half its size."""
    return _lies_inside(face, other) and other.size > 2 * face.size


def _retinaface_model_of(weights_dir: str | os.PathLike | None) -> str:
    """The RetinaFace backbone whose weights file ``weights_dir`` holds or is (resnet50 first); else resnet50."""
    if weights_dir is not None:
        path = Path(weights_dir)
        for model, (_, filename, _) in RETINAFACE_MODELS.items():
            if (path.is_file() and path.name == filename) or (path / filename).is_file():
                return model
    return "resnet50"


def _find_retinaface_weights(model: str, weights_dir: str | os.PathLike | None) -> Path:
    _, filename, url = RETINAFACE_MODELS[model]
    return find_weights(filename, url=url, explicit=weights_dir, extra_dirs=_facexlib_weights_dirs())


def _facexlib_weights_dirs() -> tuple[Path, ...]:
    """facexlib's default download folder (``<site-packages>/facexlib/weights``), found without importing it."""
    from importlib.util import find_spec

    spec = find_spec("facexlib")
    if spec is None or not spec.submodule_search_locations:
        return ()
    return tuple(Path(location) / "weights" for location in spec.submodule_search_locations)


class _RetinaFace:
    """facexlib's RetinaFace network with its weights loaded safely; returns boxes, landmarks and scores.

    The network is facexlib's; what runs around it is ours, for speed, computing what facexlib's
    ``RetinaFace.detect_faces(..., use_origin_size=True)`` computes: the prior boxes are built with array operations
    and kept per input size (facexlib rebuilds them in a Python loop on every call, as long as the network itself
    on a 1024-px photo), each BatchNorm is folded into the convolution before it, and the network runs
    channels-last (faster convolutions on a CPU).
    """

    NMS_THRESHOLD = 0.4  # facexlib's default
    PRIOR_CACHE_SIZES = 8  # input sizes whose prior boxes are kept (~0.5 MB each for a 1024-px photo), oldest out first

    def __init__(self, model: str, weights_path: Path, device: torch.device):
        retinaface = import_package("facexlib.detection.retinaface", "facexlib", "RetinaFace face detection")
        network_name = RETINAFACE_MODELS[model][0]
        with warnings.catch_warnings():  # facexlib builds its resnet50 with torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            self.network = retinaface.RetinaFace(network_name=network_name, half=False, device=device)
        try:
            state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
            state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
            self.network.load_state_dict(state_dict, strict=True)
        except Exception as error:  # unpickling and state-dict errors come in many types
            raise FacerestError(f"cannot load RetinaFace {model} weights from {weights_path}: {error}") from None
        self.network.eval()
        self.anchor_sizes = self.network.cfg["min_sizes"]
        variant = RETINAFACE_VARIANTS_BY_SHA256.get(_sha256(weights_path))
        if variant is not None:
            self.anchor_sizes = variant["anchor_sizes"]
            for module in self.network.modules():
                if isinstance(module, torch.nn.LeakyReLU):
                    module.negative_slope = variant["leaky_relu_slope"]
        _fold_batch_norms(self.network)
        self.network.to(memory_format=torch.channels_last)
        self.device = device
        self.strides = self.network.cfg["steps"]
        self.variances = self.network.cfg["variance"]
        self.bgr_mean = torch.tensor(RETINAFACE_MEAN_RGB[::-1], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._priors: dict[tuple[int, int], torch.Tensor] = {}
        # The largest face found whole, in input pixels: the largest anchor, and a quarter more that the box
        # regression reaches. Larger faces come out as parts (an eye region scored as a face; see FaceDetector.detect).
        self.largest_face = round(1.25 * max(max(sizes) for sizes in self.anchor_sizes))

    def __call__(self, image: np.ndarray, score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from facexlib.detection.retinaface_utils import decode, decode_landm
        from torchvision.ops import nms

        height, width = image.shape[:2]
        bgr = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1]))  # facexlib subtracts BGR channel means
        with torch.inference_mode():
            pixels = bgr.to(self.device).permute(2, 0, 1).unsqueeze(0).float() - self.bgr_mean
            box_offsets, class_probs, landmark_offsets = self.network(pixels.contiguous(memory_format=torch.channels_last))
            priors = self.prior_boxes(height, width)
            scores = class_probs[0, :, 1]
            keep = scores > score_threshold
            priors, scores = priors[keep], scores[keep]
            boxes = decode(box_offsets[0, keep], priors, self.variances) * pixels.new_tensor([width, height] * 2)
            landmarks = decode_landm(landmark_offsets[0, keep], priors, self.variances)
            landmarks = landmarks * pixels.new_tensor([width, height] * 5)
            keep = nms(boxes, scores, self.NMS_THRESHOLD)  # sorted by decreasing score
        boxes, landmarks, scores = (tensor[keep].cpu().numpy() for tensor in (boxes, landmarks, scores))
        return boxes, landmarks.reshape(-1, 5, 2), scores

    def prior_boxes(self, height: int, width: int) -> torch.Tensor:
        """The anchors of an input of this size, (N, 4) as (centre x, centre y, width, height) over the image's size,
        in facexlib's ``PriorBox`` order: feature level, row, column, anchor size."""
        if (height, width) not in self._priors:
            levels = []
            for stride, sizes in zip(self.strides, self.anchor_sizes):
                rows, cols = -(-height // stride), -(-width // stride)  # ceil
                centre_y = (torch.arange(rows, dtype=torch.float64) + 0.5) * stride / height
                centre_x = (torch.arange(cols, dtype=torch.float64) + 0.5) * stride / width
                grid_y, grid_x = torch.meshgrid(centre_y, centre_x, indexing="ij")
                for_sizes = [
                    torch.stack([grid_x, grid_y, torch.full_like(grid_x, size / width), torch.full_like(grid_y, size / height)], -1)
                    for size in sizes
                ]
                levels.append(torch.stack(for_sizes, dim=2).reshape(-1, 4))
            if len(self._priors) == self.PRIOR_CACHE_SIZES:
                del self._priors[next(iter(self._priors))]
            self._priors[(height, width)] = torch.cat(levels).float().to(self.device)
        return self._priors[(height, width)]


def _fold_batch_norms(network: torch.nn.Module) -> None:
    """Fold every BatchNorm that directly follows a convolution in an ``nn.Sequential`` into that convolution
    (inference only: the running statistics become the convolution's weight and bias)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in network.modules():
        if not isinstance(module, torch.nn.Sequential):
            continue
        for index in range(1, len(module)):
            conv, norm = module[index - 1], module[index]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                module[index - 1] = fuse_conv_bn_eval(conv, norm)
                module[index] = torch.nn.Identity()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _MTCNN:
    """facenet-pytorch's MTCNN (weights inside its wheel); returns boxes, landmarks and scores."""

    largest_face = None  # its image pyramid already shrinks the photo until the largest faces fit

    def __init__(self, device: torch.device):
        facenet = import_package("facenet_pytorch", "facenet-pytorch", "MTCNN face detection")
        self.network = facenet.MTCNN(keep_all=True, select_largest=False, device=device)

    def __call__(self, image: np.ndarray, score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # facenet-pytorch fails on photos smaller than its smallest face (its image pyramid is then empty)
        too_small = min(image.shape[:2]) < self.network.min_face_size
        boxes, scores, landmarks = (None, None, None) if too_small else self.network.detect(image, landmarks=True)
        if boxes is None:
            return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32)
        keep = scores.astype(np.float32) >= score_threshold
        return boxes[keep].astype(np.float32), landmarks[keep].astype(np.float32), scores[keep].astype(np.float32)


class _FaceCheck:
    """MTCNN's last network (ONet) as a second judge of other detectors' faces: each box holds a face when ONet scores
    it at least ``threshold``, seen as ONet sees its own candidates (the box made square, 48 px, pixels scaled to about
    [-1, 1]) and turned so that the eyes' landmarks lie level (a face tilted 45 degrees scored 0.01 as it lay, 0.25
    turned upright)."""

    SIZE = 48

    def __init__(self, threshold: float, device: torch.device):
        mtcnn = import_package("facenet_pytorch.models.mtcnn", "facenet-pytorch", "checking RetinaFace's faces")
        self.network = mtcnn.ONet(pretrained=True).to(device).eval()
        self.threshold = threshold
        self.device = device

    def faces(self, image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Which of the (N, 4) ``boxes`` with their (N, 5, 2) ``landmarks`` in ``image`` hold a face: (N,) bool."""
        crops = np.stack([self._upright_square(image, box, points) for box, points in zip(boxes, landmarks)])
        with torch.inference_mode():
            pixels = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float()
            probabilities = self.network((pixels - 127.5) / 128)[2][:, 1].cpu().numpy()
        return probabilities >= self.threshold

    def _upright_square(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The square around ``box``'s centre with its longer side, turned by the eyes' angle, at ``SIZE`` px (black
        outside the image)."""
        centre = (float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2)
        side = max(float(max(box[2] - box[0], box[3] - box[1])), 1.0)
        left_eye, right_eye = landmarks[0], landmarks[1]
        angle = float(np.degrees(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])))
        crop_side = max(self.SIZE, round(side))  # warped at the box's own size, then shrunk by area averaging
        affine = cv2.getRotationMatrix2D(centre, angle, crop_side / side)
        affine[:, 2] += (crop_side / 2 - centre[0], crop_side / 2 - centre[1])
        crop = cv2.warpAffine(image, affine, (crop_side, crop_side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        return cv2.resize(crop, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA)
