"""How the faces of a photo, or aligned faces, are restored and put back: only the model's change goes back.

Each face of a photo is aligned to the FFHQ template at `ALIGN_SIZE` and resized to the model's face size; the model
restores it (`RestoreFaces`: the pipeline's model, in batches); the restored face keeps the photo's lighting (a
Gaussian blur at a sixteenth of the face: `PHOTO_LIGHTING_SCALE`) and a gray or sepia face its tone (the restoration's
luma, the input's chroma); and `fidelity` of the model's change (restored minus given face) is warped back and added
to the photo, optionally enlarged. A face larger in the photo than the model's resolution so keeps the photo's detail
above that resolution (the band the model cannot see). Before the model sees them, with `denoise`, the faces of a photo
saved as a small JPEG and enlarged are deblocked (`facerest.deblock`), a noisy face is denoised at the photo's own
pixels (`facerest.denoise`), and of the band finer than the model's pixels the photo keeps its own detail less what
reads as noise there (`facerest.denoise.fine_noise`). A face that the change leaves less sharp than the face it was
given (`never_blur`) keeps that face, and a deblocked face that loses its own detail is restored again undeblocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .deblock import JPEG_BLOCK, deblocked, enlarged_jpeg_period
from .denoise import denoised, denoised_faces, denoising_level, face_region, fine_noise, with_face_regions_cleaned
from .errors import ImageReadError
from .face_detection import DetectedFace, points_before_turn
from .faces import FFHQ_TEMPLATE_512, add_face_corrections, aligned_crop, face_alignment, face_window
from .images import is_monochrome, resize_square, with_chroma_of
from .metrics import gradient_sharpness

# Faces are aligned to the FFHQ template at this size (as GFP-GAN's FaceRestoreHelper) and pasted back from it.
ALIGN_SIZE = 512
# In a photo, a face keeps the lighting of the photo around it (`in_lighting_of`): what a Gaussian blur at this
# fraction of the face's size keeps (its exposure, the colour cast over it) comes from the photo, not from the model,
# which learnt to undo the degradation's brightness and colour jitter and so lit up the faces of a dark photo as patches.
PHOTO_LIGHTING_SCALE = 1 / 16
# The largest size, in pixels, that the lighting is computed at (the blur keeps nothing finer; at 512 px it took
# 10 times as long as at 128).
LIGHTING_RESOLUTION = 128
# Added to both lightings before their ratio is taken (0-255 units), so that near-black regions do not blow it up.
LIGHTING_FLOOR = 8.0
# An aligned face, which has no photo around it, keeps the model's change of its lighting in proportion to the change's
# size (`with_large_lighting_change`): none of a change whose root mean square (0-255 units) is at most the first, all
# of one of at least the second, linearly between.
LIGHTING_CHANGE_KEPT_FROM, LIGHTING_CHANGE_KEPT_FULLY = 3.0, 8.0
# A deblocked face (`facerest.deblock`) whose restoration keeps less than this share of the photo's sharpness in its box
# lost detail of its own, not a JPEG's blocks: the grid was a tiled or brick wall's behind it, and the face is restored
# again without deblocking. Faces of photos from outside the project, shrunk 2-4 times, saved as JPEG of quality 30 or
# 50 and enlarged back, kept 0.94-1.17 of the blocky photo's; clean faces before tiles or bricks of 16-80 px, taken for
# grids, 0.43-0.93 (`bench/deblock_walls.py`; docs/restoring.md, "JPEG blocks of an enlarged photo").
DEBLOCKED_SHARPNESS_SHARE = 0.9

# The model's restorations (uint8, at the model's face size) of the faces it is given (uint8, at that size).
RestoreFaces = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass
class RestoredPhoto:
    """One restored photo (or aligned face): the image, its restored faces at the model's size, their boxes and
    landmarks in the image's pixels, and the notes on what was done."""

    image: np.ndarray
    faces: list[np.ndarray]
    boxes: np.ndarray
    landmarks: np.ndarray
    messages: list[str]


def restore_photo(
    photo: np.ndarray, faces: list[DetectedFace], face_size: int, restore: RestoreFaces, upscale: int, never_blur: bool,
    fidelity: float, denoise: bool,
    undeblocked: frozenset[int] = frozenset(),
) -> RestoredPhoto:
    """With `denoise`, deblock the faces' regions of a photo showing an enlarged JPEG's grid, denoise the regions of
    the noisy faces and take what reads as noise out of the finest octave of each face whose crop is no
    enlargement (`_crop_fine_noise`), `fidelity` of each; align each face of that photo at 512 px, restore it at
    the model's size, and add `fidelity` of the model's change back; with `never_blur`, a face that the change
    leaves less sharp (`_faces_made_blurrier`) keeps the face the model was given. A deblocked face that comes out
    under `DEBLOCKED_SHARPNESS_SHARE` of the photo's sharpness is restored again without deblocking (the faces of
    `undeblocked` are not deblocked)."""
    boxes = np.array([face.box for face in faces], np.float32).reshape(-1, 4)
    landmarks = np.array([face.landmarks for face in faces], np.float32).reshape(-1, 5, 2)
    if not faces:
        note = "returned unchanged" if upscale == 1 else f"returned only enlarged {upscale}x"
        return RestoredPhoto(add_face_corrections(photo, [], [], upscale), [], boxes, landmarks, [f"no face found: {note}"])
    affines = [face_alignment(face.landmarks, ALIGN_SIZE) for face in faces]  # photo -> aligned crop
    whole_faces = [index for index, affine in enumerate(affines) if _resolves_whole_face(affine, face_size)]
    block_period = enlarged_jpeg_period(photo) if denoise and fidelity > 0 and whole_faces else None
    deblocked_indices = [] if block_period is None else [index for index in whole_faces if index not in undeblocked]
    deblocked_photo = photo
    if deblocked_indices:
        deblocked_photo = with_face_regions_cleaned(
            photo, boxes[deblocked_indices], lambda region: deblocked(region, block_period)
        )
    cleaned_photo = denoised_faces(deblocked_photo, boxes) if denoise else photo
    given_photo = _with_part_of(photo, cleaned_photo, fidelity)
    regions = [face_region(box, photo.shape) for box in boxes]
    denoised_indices = {
        index for index, region in enumerate(regions)
        if given_photo is not photo and cleaned_photo is not deblocked_photo
        and not np.array_equal(cleaned_photo[region], deblocked_photo[region])
    }  # fmt: skip
    crops = [aligned_crop(given_photo, affine, ALIGN_SIZE) for affine in affines]
    cleaned_indices = set()
    if denoise:  # the faces' band finer than the model's pixels, less what reads as noise in it
        cleanings = [-fidelity * _crop_fine_noise(crop, affine, face_size) for crop, affine in zip(crops, affines)]
        cleaned_indices = {index for index, cleaning in enumerate(cleanings) if cleaning.any()}
        if cleaned_indices:
            given_photo = add_face_corrections(given_photo, cleanings, affines)
    given_faces = [resize_square(crop, face_size) for crop in crops]
    restored = [in_tone_of(in_lighting_of(face, given), given) for face, given in zip(restore(given_faces), given_faces)]
    changes = [face.astype(np.float32) - given_face for face, given_face in zip(restored, given_faces)]
    restored = [_with_change(given_face, change, fidelity) for given_face, change in zip(given_faces, changes)]
    corrections = [resize_square(fidelity * change, ALIGN_SIZE) for change in changes]
    lost = _deblocked_faces_losing_detail(photo, given_photo, corrections, affines, boxes, deblocked_indices)
    if lost:
        again = restore_photo(
            photo, faces, face_size, restore, upscale, never_blur, fidelity, denoise, undeblocked | set(lost)
        )
        again.messages[:0] = [_undeblocked_note(index, share, block_period) for index, share in lost.items()]
        return again
    pasted = None
    messages = []
    if deblocked_indices:
        which = "its faces" if len(deblocked_indices) == len(faces) else f"face {', '.join(map(str, deblocked_indices))}"
        messages.append(_deblocked_note(block_period, which))
    messages += [_denoised_note(index, denoising_level(deblocked_photo[regions[index]])) for index in sorted(denoised_indices)]
    if never_blur:  # checked at the photo's own size, where the photo's sharpness is measured
        blurred, at_photo_size = _faces_made_blurrier(given_photo, corrections, affines, boxes)
        for index in blurred:
            restored[index], corrections[index] = given_faces[index], np.zeros_like(corrections[index])
            cleaning = "denoised" if index in denoised_indices else "deblocked" if index in deblocked_indices else None
            messages.append(_left_unrestored_note(index, cleaning, index in cleaned_indices))
        if upscale == 1:
            pasted = at_photo_size
    if pasted is None:
        pasted = add_face_corrections(given_photo, corrections, affines, upscale)
    return RestoredPhoto(pasted, restored, boxes, landmarks, messages)


def restore_aligned_faces(
    faces: list[np.ndarray], names: list[str], face_size: int, restore: RestoreFaces, upscale: int, fidelity: float,
    denoise: bool,
    undeblocked: frozenset[int] = frozenset(),
) -> list[RestoredPhoto]:
    """Restore aligned faces at the model's size (with `denoise`, `fidelity` of each face's deblocking and
    denoising first), and add `fidelity` of the model's change to each face the model was given, at its own
    size. As in a photo, a deblocked face that comes out under `DEBLOCKED_SHARPNESS_SHARE` of its sharpness is
    restored again without deblocking, alone (the faces of `undeblocked` are not deblocked)."""
    for face, name in zip(faces, names):
        if face.shape[0] != face.shape[1]:
            raise ImageReadError(
                name,
                f"an aligned face must be square, got {face.shape[1]}x{face.shape[0]} (for a photo, turn aligned "
                "off: its faces are then found and aligned)",
            )
    block_periods = [  # a face larger than the model's, like a photo's, keeps its own finest band undeblocked
        enlarged_jpeg_period(face)
        if denoise and fidelity > 0 and face.shape[0] <= face_size and index not in undeblocked else None
        for index, face in enumerate(faces)
    ]  # fmt: skip
    deblocked_faces = [
        face if period is None else deblocked(face, period) for face, period in zip(faces, block_periods)
    ]
    cleaned_faces = [denoised(face) if denoise else face for face in deblocked_faces]
    given_faces = [_with_part_of(face, cleaned, fidelity) for face, cleaned in zip(faces, cleaned_faces)]
    notes = []
    for face, given_face, period, deblocked_face, cleaned_face in zip(
        faces, given_faces, block_periods, deblocked_faces, cleaned_faces
    ):
        notes.append([] if period is None else [_deblocked_note(period, "the face")])
        if given_face is not face and cleaned_face is not deblocked_face:
            notes[-1].append(f"denoised first: noise of {denoising_level(deblocked_face):.1f} grey levels")
    model_faces = [resize_square(face, face_size) for face in given_faces]
    restored = [
        in_tone_of(with_large_lighting_change(face, model_face), model_face)
        for face, model_face in zip(restore(model_faces), model_faces)
    ]
    photos = []
    for given_face, model_face, restored_face, messages in zip(given_faces, model_faces, restored, notes):
        change = restored_face.astype(np.float32) - model_face
        width, size = given_face.shape[1], given_face.shape[1] * upscale
        image = resize_square(given_face, size).astype(np.float32) + resize_square(fidelity * change, size)
        if denoise:  # the face's band finer than the model's pixels, less what reads as noise there
            image -= resize_square(fidelity * fine_noise(given_face, width / face_size), size)
        boxes = np.array([[0, 0, width, width]], np.float32)
        landmarks = (FFHQ_TEMPLATE_512 * (width / ALIGN_SIZE))[None]
        kept_face = _with_change(model_face, change, fidelity)
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        photos.append(RestoredPhoto(image, [kept_face], boxes, landmarks, messages))
    shares = {  # each deblocked face's sharpness after its restoration, at its own size, over before
        index: _sharpness_share(resize_square(photo.image, face.shape[0]), face)
        for index, (face, period, photo) in enumerate(zip(faces, block_periods, photos)) if period is not None
    }  # fmt: skip
    lost = {index: share for index, share in shares.items() if share < DEBLOCKED_SHARPNESS_SHARE}
    if lost:  # only those faces again; the others keep their restorations
        again = restore_aligned_faces(
            [faces[index] for index in lost], [names[index] for index in lost], face_size, restore, upscale,
            fidelity, denoise, frozenset(range(len(lost))),
        )  # fmt: skip
        for (index, share), photo in zip(lost.items(), again):
            photo.messages.insert(0, _undeblocked_note(None, share, block_periods[index]))
            photos[index] = photo
    return photos


def turned_back(restored: RestoredPhoto, turns: int, turned_shape: tuple[int, ...]) -> RestoredPhoto:
    """`restored`, a photo restored turned `turns` quarters clockwise (`FaceDetector.detect_turned`), turned back:
    the image, and the face boxes and landmarks in the pixels of the photo as given (`turned_shape` is the turned
    photo's); a note says so."""
    if not turns:
        return restored
    points = points_before_turn(
        np.concatenate([restored.boxes.reshape(-1, 2, 2), restored.landmarks], axis=1), turns, turned_shape
    )
    corners = points[:, :2]
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)
    faces = "a face" if len(boxes) == 1 else f"{len(boxes)} faces"
    note = f"{faces} found with the photo {QUARTER_TURNS[turns]}: restored so, and the photo turned back"
    image = np.ascontiguousarray(np.rot90(restored.image, turns))
    return RestoredPhoto(image, restored.faces, boxes, points[:, 2:].astype(np.float32), [note, *restored.messages])


QUARTER_TURNS = {1: "turned a quarter clockwise", 2: "turned upside down", 3: "turned a quarter counter-clockwise"}


def _resolves_whole_face(affine: np.ndarray, face_size: int) -> bool:
    """Whether the model restores every band of the photo's face aligned by `affine` (onto the ALIGN_SIZE crop):
    the crop spans at most the model's face size in the photo's pixels. Only such a face is deblocked
    (`facerest.deblock`): a larger one keeps the photo's own band above the model's, which the deblocking's blur
    would only take away (docs/experiments.md, "Deblocking only the faces the model restores whole")."""
    return ALIGN_SIZE / _crop_scale(affine) <= face_size


def _crop_fine_noise(crop: np.ndarray, affine: np.ndarray, face_size: int) -> np.ndarray:
    """`fine_noise` of a face's aligned crop where the crop is no enlargement of the photo (`affine`, from the
    photo onto the crop, scales by at most 1); zero where it is: its finest octave then holds interpolation and the
    photo's own finest detail, which the floor would thin out (`whole_imgs` faces, enlarged 1.2-9 times)."""
    if _crop_scale(affine) > 1.0:
        return np.zeros(crop.shape, np.float32)
    return fine_noise(crop, ALIGN_SIZE / face_size)


def _crop_scale(affine: np.ndarray) -> float:
    """How many crop pixels a photo pixel spans under a similarity `affine` (photo -> crop)."""
    return float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))


def _deblocked_note(block_period: float, what: str) -> str:
    enlargement = block_period / JPEG_BLOCK
    return f"JPEG blocks of {block_period:.1f} px (a JPEG enlarged {enlargement:.1f}x): {what} deblocked first"


def _denoised_note(index: int, level: float | None) -> str:
    """The note of a face of a photo whose region was denoised: at its own region's noise `level`, or (None) as part of
    a neighbouring face's region."""
    where = f"noise of {level:.1f} grey levels" if level is not None else "its region overlaps a noisy face's"
    return f"face {index} denoised first: {where}"


def _undeblocked_note(index: int | None, sharpness_share: float, block_period: float) -> str:
    """The note of a face (`index` in its photo; None: an aligned face) restored again without deblocking."""
    face, its_sharpness = ("the face", "its") if index is None else (f"face {index}", "the photo's")
    return (
        f"{face} restored without deblocking: deblocked, it kept {sharpness_share:.2f} of {its_sharpness} sharpness "
        f"(the grid of {block_period:.1f} px is not its own)"
    )


def _left_unrestored_note(index: int, cleaning: str | None, finest_noise_taken: bool) -> str:
    """The note of a face whose restoration came out less sharp than the face the model was given: that face is kept,
    `cleaning` ("denoised", "deblocked") or only its finest pixels' noise taken out, or as it was."""
    if cleaning is not None:
        return f"face {index} left {cleaning}: its restoration came out less sharp than that"
    if finest_noise_taken:
        return f"face {index} left as it was but for its finest pixels' noise: its restoration came out less sharp than that"
    return f"face {index} left as it was: its restoration came out less sharp than the photo"


def _faces_made_blurrier(
    photo: np.ndarray, corrections: list[np.ndarray], affines: list[np.ndarray], boxes: np.ndarray
) -> tuple[list[int], np.ndarray]:
    """The faces whose corrections leave their box less sharp than in `photo` (`gradient_sharpness` of
    `face_window`), and the photo with the other faces' corrections added. Leaving a face out can change a
    neighbour's box where their corrections overlap, so the check repeats until no further face is left out."""
    windows = [face_window(box, photo.shape) for box in boxes]
    sharpness_before = [gradient_sharpness(photo[window]) for window in windows]
    blurred: list[int] = []
    while True:
        kept = [index for index in range(len(corrections)) if index not in blurred]
        result = add_face_corrections(photo, [corrections[index] for index in kept], [affines[index] for index in kept])
        newly_blurred = [
            index for index, (window, before) in enumerate(zip(windows, sharpness_before))
            if index not in blurred and gradient_sharpness(result[window]) < before
        ]  # fmt: skip
        if not newly_blurred:
            return sorted(blurred), result
        blurred += newly_blurred


def _deblocked_faces_losing_detail(
    photo: np.ndarray, given_photo: np.ndarray, corrections: list[np.ndarray], affines: list[np.ndarray],
    boxes: np.ndarray, deblocked_indices: list[int],
) -> dict[int, float]:
    """The deblocked faces whose box (`face_window`) keeps less than `DEBLOCKED_SHARPNESS_SHARE` of the `photo`'s
    `gradient_sharpness` in the photo restored (`given_photo`, deblocked, with the `corrections`), each with the share
    it kept."""
    if not deblocked_indices:
        return {}
    result = add_face_corrections(given_photo, corrections, affines)
    windows = {index: face_window(boxes[index], photo.shape) for index in deblocked_indices}
    shares = {index: _sharpness_share(result[window], photo[window]) for index, window in windows.items()}
    return {index: share for index, share in shares.items() if share < DEBLOCKED_SHARPNESS_SHARE}


def _sharpness_share(image: np.ndarray, before: np.ndarray) -> float:
    """The `gradient_sharpness` of `image` over that of `before`."""
    return gradient_sharpness(image) / max(gradient_sharpness(before), 1e-6)


def in_tone_of(restored_face: np.ndarray, lq_face: np.ndarray) -> np.ndarray:
    """A gray or sepia face stays so: the restoration's luma with the degraded face's chroma, not the colours the
    model would give it (CodeFormer's script, too, keeps gray faces gray)."""
    return with_chroma_of(restored_face, lq_face) if is_monochrome(lq_face) else restored_face


def in_lighting_of(restored_face: np.ndarray, lq_face: np.ndarray) -> np.ndarray:
    """The restored face in the degraded face's lighting: the restoration's detail (itself less its Gaussian blur at
    `PHOTO_LIGHTING_SCALE` of the face) on the degraded face's blur, scaled by the ratio of the two blurs, so that a
    model that brightens a face by a factor leaves it as it was rather than with its detail brightened too (the ratio
    kept within 1/4 and 4)."""
    restored, lq = restored_face.astype(np.float32), lq_face.astype(np.float32)
    restored_lighting, lq_lighting = _lighting(restored), _lighting(lq)
    gain = np.clip((lq_lighting + LIGHTING_FLOOR) / (restored_lighting + LIGHTING_FLOOR), 0.25, 4.0)
    return np.clip(np.rint(lq_lighting + (restored - restored_lighting) * gain), 0, 255).astype(np.uint8)


def with_large_lighting_change(restored_face: np.ndarray, lq_face: np.ndarray) -> np.ndarray:
    """The restored face with the part of its change of lighting (`_lighting`) that `LIGHTING_CHANGE_KEPT_FROM` and
    `LIGHTING_CHANGE_KEPT_FULLY` keep for the change's root mean square: a large change undoes a colour cast or an
    exposure, as the model learnt from the recipe's jitter; a small one is the model's error on a face without."""
    restored = restored_face.astype(np.float32)
    change = _lighting(restored) - _lighting(lq_face.astype(np.float32))
    size = float(np.sqrt(np.mean(change**2)))
    kept = np.clip((size - LIGHTING_CHANGE_KEPT_FROM) / (LIGHTING_CHANGE_KEPT_FULLY - LIGHTING_CHANGE_KEPT_FROM), 0.0, 1.0)
    return np.clip(np.rint(restored - (1.0 - kept) * change), 0, 255).astype(np.uint8)


def _lighting(face: np.ndarray) -> np.ndarray:
    """A square face's Gaussian blur at `PHOTO_LIGHTING_SCALE` of its side, computed on the face shrunk to at most
    `LIGHTING_RESOLUTION` px and enlarged back (float32)."""
    side = face.shape[0]
    small = resize_square(face, min(side, LIGHTING_RESOLUTION))
    blurred = cv2.GaussianBlur(small, (0, 0), PHOTO_LIGHTING_SCALE * small.shape[0])
    return cv2.resize(blurred, (side, side), interpolation=cv2.INTER_LINEAR)


def _with_part_of(image: np.ndarray, changed_image: np.ndarray, fidelity: float) -> np.ndarray:
    """`image` with `fidelity` of the change to `changed_image` (the image itself when there is none to keep)."""
    if changed_image is image or fidelity == 0.0:
        return image
    if fidelity == 1.0:
        return changed_image
    return _with_change(image, changed_image.astype(np.float32) - image, fidelity)


def _with_change(image: np.ndarray, change: np.ndarray, fidelity: float) -> np.ndarray:
    """`image` (uint8) with `fidelity` of `change` (float32, 0-255 units) added."""
    return np.clip(np.rint(image + fidelity * change), 0, 255).astype(np.uint8)
