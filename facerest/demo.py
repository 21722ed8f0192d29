"""The restoration demo without its interface: the model menu, one request (check -> restore -> files) and the text
shown with a result. app.py wires these to Gradio; nothing here imports Gradio.

    registry = load_models(["runs/gfpgan64", "runs/idm64"])         # gfpgan64, idm64 and their hybrid
    result = restore(registry, FaceDetector("auto"), "photo.jpg", "hybrid", upscale=2)
    result.png_path, result.info                                       # the full-resolution PNG, Markdown

The menu: each model given, then a "hybrid" of every GFP-GAN model with every IDM model (sharing their weights),
and, first and the default choice, the official GFP-GAN v1.4 when it is cached or can be downloaded (converted to
facerest's format on first use, in facerest's cache folder); else `ModelRegistry.unavailable` says why not.
"""

from __future__ import annotations

import html
import math
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import PIL.Image
import torch

from .errors import FacerestError, ImageReadError, shown_value
from .face_detection import FaceDetector
from .faces import with_photo_alpha
from .images import colour_profile_options, input_notes, is_gray_file, load_alpha, load_image, pil_image, with_alpha
from .models.gfpgan import GFPGANConfig
from .models.gfpgan.convert_original import GFPGAN_V14_CONFIG, GFPGAN_V14_URL, convert_original_checkpoint
from .pipeline import (
    DEFAULT_FIDELITY, DEFAULT_HYBRID_STRENGTH, DEFAULT_INFERENCE_STEPS, DEFAULT_STRENGTHS, MAX_SEED, MAX_UPSCALE,
    FaceRestorePipeline, FaceRestorePipelineOutput,
)
from .weights import cache_dir, is_offline

OFFICIAL_NAME = "gfpgan-v1.4"
HYBRID_NAME = "hybrid"
KIND_LABELS = {"gfpgan": "GFP-GAN", "idm": "IDM diffusion", "hybrid": "GFP-GAN + IDM"}

# A public server's limits on one request: the input's pixels (checked before decoding; 50 MP takes the 48- and
# 50-MP photos of today's phones) and the result's (input x upscale^2; a larger request is enlarged less, with a
# note). Lower than the library's own guard (images.DEFAULT_MAX_PIXELS, 64 MP, for files a user restores on their own
# machine): a shared server bounds the memory and time any one visitor's upload can take.
SERVER_MAX_PIXELS = 50_000_000
SERVER_MAX_OUTPUT_PIXELS = 64_000_000
# The longer side of the before/after preview (the PNG keeps full resolution).
PREVIEW_MAX_SIDE = 2048
MAX_STEPS = 200
# Result folders older than this are deleted from the output folder (Gradio keeps its own copy while served).
OUTPUT_MAX_AGE_S = 3600


# ---------------------------------------------------------------------------------------------------- the menu


@dataclass
class ModelEntry:
    """One choice of the model menu: loaded (`pipeline`) or loaded on first use (`loader`)."""

    name: str
    kind: str
    face_size: int | None
    source: str
    pipeline: FaceRestorePipeline | None = None
    loader: Callable[[], FaceRestorePipeline] | None = None

    @property
    def label(self) -> str:
        size = f", {self.face_size} px" if self.face_size else ""
        return f"{self.name} ({KIND_LABELS[self.kind]}{size})"


class DiffusionSettings(NamedTuple):
    """The diffusion controls for one model of the menu."""

    live: bool  # they apply: an IDM or hybrid model
    steps: int  # the steps it samples with by default
    strength: float  # the strength it samples at by default


@dataclass
class ModelRegistry:
    """The models offered, by name, in menu order; `unavailable` names the ones left out and why."""

    entries: dict[str, ModelEntry]
    unavailable: dict[str, str] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    @property
    def default(self) -> str:
        return self.names[0]

    @property
    def choices(self) -> list[tuple[str, str]]:
        """`(label, name)` of each choice, in menu order."""
        return [(entry.label, name) for name, entry in self.entries.items()]

    def entry(self, name: str) -> ModelEntry:
        if name not in self.entries:
            raise FacerestError(f"unknown model {name!r}; choose one of {', '.join(self.entries)}")
        return self.entries[name]

    def pipeline(self, name: str) -> FaceRestorePipeline:
        """The pipeline of a choice, loading it on first use (one load at a time)."""
        entry = self.entry(name)
        if entry.pipeline is None:
            with self._lock:
                if entry.pipeline is None:
                    entry.pipeline = entry.loader().to(self.device)
        return entry.pipeline

    def diffusion_settings(self, name: str) -> DiffusionSettings:
        """The diffusion controls of a choice. A GAN model, which samples nothing, and an unknown name show
        `DEFAULT_INFERENCE_STEPS` and the hybrid's default strength; a model not loaded yet, `DEFAULT_INFERENCE_STEPS`."""
        entry = self.entries.get(name)
        strength = DEFAULT_STRENGTHS["gfpgan" if entry is None else entry.kind]
        loaded = entry is not None and entry.pipeline is not None
        steps = entry.pipeline.default_inference_steps if loaded else DEFAULT_INFERENCE_STEPS
        return DiffusionSettings(strength is not None, steps, DEFAULT_HYBRID_STRENGTH if strength is None else strength)


def load_models(
    specs: list[str], device: str | torch.device = "cpu", offer_official: bool = True
) -> ModelRegistry:
    """Load each model, add the hybrids of its GAN and IDM models, and the official GFP-GAN v1.4 when it is cached
    or can be downloaded. The official model, when offered, leads the menu as the default choice: GFP-GAN's own
    512-px model trained on all of FFHQ, where ours are small models trained on 1,000 faces (not measured side by
    side here: its weights cannot be had offline).

    A model that fails to load (a missing folder, a Hub repository that cannot be fetched, a broken checkpoint) is
    left out and listed in `unavailable` with the reason, so that a Space comes up with the others; `FacerestError`
    names every failure when no model is left to offer."""
    device = torch.device(device)
    entries: dict[str, ModelEntry] = {}
    unavailable: dict[str, str] = {}
    for spec in specs:
        name = _unique(model_name(spec), entries)
        try:
            pipeline = FaceRestorePipeline.from_pretrained(spec).to(device)
        except FacerestError as error:
            unavailable[name] = str(error)
            continue
        entries[name] = ModelEntry(name, pipeline.kind, pipeline.face_size, spec, pipeline=pipeline)

    gans = [entry for entry in entries.values() if entry.kind == "gfpgan"]
    idms = [entry for entry in entries.values() if entry.kind == "idm"]
    pairs = [(gan, idm) for gan in gans for idm in idms]  # across sizes too: at the IDM's size
    for gan, idm in pairs:
        name = _unique(HYBRID_NAME if len(pairs) == 1 else f"{HYBRID_NAME}: {gan.name} + {idm.name}", entries)
        hybrid = FaceRestorePipeline.hybrid(gan.pipeline, idm.pipeline)
        entries[name] = ModelEntry(name, "hybrid", gan.face_size, f"{gan.source} + {idm.source}", pipeline=hybrid)

    if offer_official:
        reason = official_gfpgan_unavailable()
        if reason is None:
            name = _unique(OFFICIAL_NAME, entries)
            size = GFPGAN_V14_CONFIG["out_size"]
            official = ModelEntry(name, "gfpgan", size, GFPGAN_V14_URL, loader=load_official_gfpgan)
            entries = {name: official, **entries}
        else:
            unavailable[OFFICIAL_NAME] = reason
    if not entries:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in unavailable.items())
        raise FacerestError(f"no model to offer ({reasons})")
    return ModelRegistry(entries, unavailable, device)


def model_name(spec: str) -> str:
    """A short menu name: a folder's name, or a Hub id as it is."""
    path = Path(spec)
    return path.name if path.exists() else spec


def _unique(name: str, taken: dict) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def official_gfpgan_dir() -> Path:
    return cache_dir() / "gfpgan-v1.4-facerest"


def official_gfpgan_unavailable(timeout: float = 3.0) -> str | None:
    """None when the official GFP-GAN v1.4 can be offered (converted already, or downloadable); else why not."""
    if (official_gfpgan_dir() / "model_index.json").is_file():
        return None
    checkpoint = cache_dir() / GFPGAN_V14_URL.rsplit("/", 1)[-1]
    if checkpoint.is_file():
        return None
    if is_offline():
        return "offline mode (HF_HUB_OFFLINE or FACEREST_OFFLINE) and not downloaded yet"
    try:
        socket.create_connection(("github.com", 443), timeout=timeout).close()
    except OSError as error:
        return f"no network to download it ({error})"
    return None


def load_official_gfpgan() -> FaceRestorePipeline:
    """The official GFP-GAN v1.4: downloaded into facerest's cache, converted (`convert_original_checkpoint`, as
    hub/convert_gfpgan.py does) and saved there as a pipeline once, then loaded from that folder."""
    folder = official_gfpgan_dir()
    if not (folder / "model_index.json").is_file():
        model = convert_original_checkpoint(GFPGAN_V14_URL, GFPGANConfig(**GFPGAN_V14_CONFIG))
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        FaceRestorePipeline(restorer=model).save_pretrained(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return FaceRestorePipeline.from_pretrained(folder)


def limits_text(registry: ModelRegistry, max_pixels: int, max_output_pixels: int) -> str:
    """Markdown under the controls: the request limits, and the models not offered with why."""
    unavailable = "".join(
        f"\n\n*{html.escape(name)} is not available: {html.escape(reason)}.*"
        for name, reason in registry.unavailable.items()
    )
    return (
        f"Inputs up to {max_pixels / 1e6:g} megapixels; results up to {max_output_pixels / 1e6:g} megapixels."
        f"{unavailable}"
    )


# ---------------------------------------------------------------------------------------------------- restore


@dataclass
class RestoreResult:
    image: PIL.Image.Image  # the restored photo at full resolution (input size x upscale)
    faces: list[PIL.Image.Image]  # the restored aligned faces
    png_path: Path  # the full-resolution PNG
    # Files for the interface, in the request's own folder: the input (enlarged as the result) and the result at
    # the preview size as WebP, for the before/after slider, and the restored faces as PNG.
    before_path: Path
    after_path: Path
    face_paths: list[Path]
    info: str  # Markdown: model, detector, faces, size, time
    details: dict  # the same, and boxes and landmarks, as JSON
    warnings: list[str]


def restore(
    registry: ModelRegistry,
    detector: FaceDetector,
    image: str | os.PathLike | np.ndarray | PIL.Image.Image | None,
    model: str,
    aligned: bool = False,
    upscale: int = 2,
    steps: int | None = None,
    strength: float | None = None,
    seed: int = 0,
    fidelity: float = DEFAULT_FIDELITY,
    paste_every_face: bool = False,
    denoise: bool = True,
    output_dir: str | os.PathLike | None = None,
    max_pixels: int = SERVER_MAX_PIXELS,
    max_output_pixels: int = SERVER_MAX_OUTPUT_PIXELS,
) -> RestoreResult:
    """Restore one photo (or aligned face) with the named model; `FacerestError` says what is wrong with the
    request. `strength` applies to IDM and hybrid models (None: the pipeline's `default_strength`); `fidelity` (0:
    the input face, 1: the full restoration) to all; `paste_every_face` pastes a face's restoration even where it
    is less sharp than the photo (the pipeline's `never_blur=False`); `denoise` gives the model noisy faces
    denoised (the pipeline's `denoise`)."""
    upscale, steps, seed = check_request(image, upscale, steps, strength, seed)
    source_name = Path(image).name if isinstance(image, (str, os.PathLike)) else "image"
    with _named_errors(source_name):
        photo = load_image(image, max_pixels=max_pixels)
    upscale, upscale_note = fitting_upscale(photo, upscale, max_output_pixels, source_name)

    entry, pipeline = registry.entry(model), registry.pipeline(model)
    arguments = pipeline_arguments(
        pipeline, detector, aligned, upscale, steps, strength, seed, fidelity, paste_every_face, denoise
    )
    started = time.perf_counter()
    with _named_errors(source_name):
        output = pipeline(photo, **arguments)
    seconds = time.perf_counter() - started

    is_file = isinstance(image, (str, os.PathLike))
    save_options = colour_profile_options(image) if is_file else {}
    alpha = load_alpha(image, max_pixels=max_pixels) if is_file else None
    png_path, before_path, after_path, face_paths = write_result_files(
        photo, output, source_name, output_dir, alpha, is_file and is_gray_file(image), save_options
    )
    details = result_details(entry, pipeline, photo, output, arguments, seed, detector, seconds)
    # what the app decoded itself, the pipeline cannot see: the upload's frames and bit depth (`input_notes`)
    details["messages"][:0] = input_notes(image)
    if upscale_note:  # in the result itself, not only the interface's pop-up: API clients see it too
        details["messages"].insert(0, upscale_note)
    return RestoreResult(
        image=output.images[0],
        faces=list(output.restored_faces[0]),
        png_path=png_path,
        before_path=before_path,
        after_path=after_path,
        face_paths=face_paths,
        info=result_info(entry, output, details),
        details=details,
        warnings=([upscale_note] if upscale_note else []) + result_warnings(output, aligned, upscale),
    )


def check_request(image, upscale, steps, strength, seed) -> tuple[int, int | None, int]:
    """The request's whole numbers `(upscale, steps, seed)`, as the interface may send them as floats; a
    `FacerestError` for a missing image or a value out of range."""
    if image is None:
        raise FacerestError("no image: upload a photo or an aligned face first")
    upscale = _whole(upscale, "upscale", 1, MAX_UPSCALE)
    steps = None if steps is None else _whole(steps, "diffusion steps", 1, MAX_STEPS)
    seed = _whole(seed, "seed", 0, MAX_SEED)
    if strength is not None and not 0.0 < float(strength) <= 1.0:
        raise FacerestError(f"strength must be in (0, 1], got {strength}")
    return upscale, steps, seed


def fitting_upscale(photo: np.ndarray, upscale: int, max_output_pixels: int, source_name: str) -> tuple[int, str | None]:
    """The largest upscale up to the requested one whose result (the photo enlarged that many times) fits in
    `max_output_pixels`, and a note when it is lower than the request, as CodeFormer's demo lowers its upscale for
    large photos; `ImageReadError` when even the photo itself does not fit."""
    height, width = photo.shape[:2]
    fitting = next((factor for factor in range(upscale, 0, -1) if width * height * factor**2 <= max_output_pixels), None)
    if fitting is None:
        raise ImageReadError(
            source_name,
            f"image too large: {width}x{height} is more than this server's {max_output_pixels / 1e6:g}-megapixel "
            "limit on results; choose a smaller image",
        )
    if fitting == upscale:
        return upscale, None
    return fitting, (
        f"Enlarged {fitting}x instead of {upscale}x: at {upscale}x the result would be {width * upscale}x"
        f"{height * upscale}, more than this server's {max_output_pixels / 1e6:g}-megapixel limit on results."
    )


def pipeline_arguments(pipeline, detector, aligned, upscale, steps, strength, seed, fidelity, paste_every_face, denoise) -> dict:
    """The keyword arguments of the pipeline's call (the image is decoded and its result's size checked already, so no
    pixel limits); the IDM ones, at the pipeline's defaults where the request leaves them out, for IDM and hybrid
    models only."""
    arguments = dict(
        aligned=bool(aligned), upscale=upscale, fidelity=fidelity, denoise=bool(denoise), never_blur=not paste_every_face,
        detector=detector, max_pixels=None, max_output_pixels=None,
    )  # fmt: skip
    if pipeline.kind != "gfpgan":
        arguments.update(
            num_inference_steps=steps or pipeline.default_inference_steps,
            strength=pipeline.default_strength if strength is None else float(strength),
            generator=torch.Generator(device=pipeline.unet.device).manual_seed(seed),
        )
    return arguments


def write_result_files(
    photo: np.ndarray,
    output: FaceRestorePipelineOutput,
    source_name: str,
    output_dir: str | os.PathLike | None,
    alpha: np.ndarray | None,
    gray: bool,
    save_options: dict,
) -> tuple[Path, Path, Path, list[Path]]:
    """Write the result into a new folder of its own under `output_dir`: the full-resolution PNG (transparent where
    the input is, `alpha`: `load_alpha`), the before and after previews (WebP, at most `PREVIEW_MAX_SIDE`,
    transparent as the PNG is) and the restored faces (PNG, with `alpha` warped as each face was; the PNGs gray where
    the input is, `gray`: `is_gray_file`), each saved with `save_options` (the input's colour profile,
    `colour_profile_options`); returns their paths.

    Files rather than PIL images go to Gradio: it writes a returned PIL image to a cache path named by the image's
    hash without a lock, so two requests with identical outputs could serve a half-written file; it copies returned
    files atomically."""
    restored = output.images[0]
    folder = Path(output_dir or tempfile.gettempdir()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    png_path = folder / f"{Path(source_name).stem or 'image'}_restored.png"
    full = pil_image(np.asarray(restored) if alpha is None else with_alpha(np.asarray(restored), alpha), gray)
    full.save(png_path, format="PNG", compress_level=1, **save_options)  # level 6 takes ~5x longer on a 10 MP photo
    before = PIL.Image.fromarray(photo if alpha is None else with_alpha(photo, alpha))
    size = preview_size(restored.size)
    before_path, after_path = folder / "before.webp", folder / "after.webp"
    before.resize(size, PIL.Image.LANCZOS).save(before_path, quality=90, **save_options)
    (full if full.size == size else full.resize(size, PIL.Image.LANCZOS)).save(after_path, quality=90, **save_options)
    face_paths = [folder / f"face_{index + 1}.png" for index in range(len(output.restored_faces[0]))]
    for face, landmarks, path in zip(output.restored_faces[0], output.face_landmarks[0], face_paths):
        face = np.asarray(face) if alpha is None else with_photo_alpha(np.asarray(face), alpha, landmarks)
        pil_image(face, gray).save(path, **save_options)
    return png_path, before_path, after_path, face_paths


def preview_size(size: tuple[int, int]) -> tuple[int, int]:
    """`size` scaled down, if need be, to at most `PREVIEW_MAX_SIDE` on its longer side."""
    scale = min(1.0, PREVIEW_MAX_SIDE / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def prune_outputs(output_dir: Path, max_age_s: float = OUTPUT_MAX_AGE_S) -> None:
    """Delete result folders older than `max_age_s` (Gradio has copied what it serves into its own cache)."""
    now = time.time()
    for folder in output_dir.iterdir() if output_dir.is_dir() else ():
        try:
            if now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------- result text


def result_details(entry, pipeline, photo, output, arguments, seed, detector, seconds) -> dict:
    """The result's facts as JSON: model, detector, sizes, settings, face boxes and landmarks, messages, time."""
    height, width = photo.shape[:2]
    return {
        "model": entry.name,
        "kind": pipeline.kind,
        "face_size": pipeline.face_size,
        "detector": output.detector,
        "detector_note": detector_note(detector) if output.detector is not None else None,
        "input_size": [width, height],
        "output_size": list(output.images[0].size),
        "upscale": arguments["upscale"],
        "fidelity": arguments["fidelity"],
        "paste_every_face": not arguments["never_blur"],
        "denoise": arguments["denoise"],
        "steps": arguments.get("num_inference_steps"),
        "strength": arguments.get("strength"),
        "seed": seed if pipeline.kind != "gfpgan" else None,
        "face_boxes": np.round(output.face_boxes[0], 1).tolist(),
        "face_landmarks": np.round(output.face_landmarks[0], 1).tolist(),
        "messages": list(output.messages[0]),
        "seconds": round(seconds, 3),
    }


def result_info(entry: ModelEntry, output: FaceRestorePipelineOutput, details: dict) -> str:
    """The result's info as Markdown, one fact a paragraph (from `details`, the boxes unrounded)."""
    detector = "none (aligned input)" if details["detector"] is None else details["detector"]
    if details["detector_note"]:
        detector += f" ({details['detector_note']})"
    (width, height), (out_width, out_height) = details["input_size"], details["output_size"]
    lines = [
        f"**Model:** {html.escape(entry.label, quote=False)}",
        f"**Detector:** {html.escape(detector, quote=False)}",
        f"**Faces restored:** {len(output.restored_faces[0])}",
        f"**Size:** {width}x{height} -> {out_width}x{out_height} (upscale {details['upscale']}x)",
        f"**Fidelity:** {details['fidelity']:g} (0: the input face, 1: the full restoration)",
        f"**Time:** {details['seconds']:.2f} s",
    ]
    if details["kind"] != "gfpgan":
        lines.append(
            f"**Diffusion:** {details['steps']} steps, strength {details['strength']:g}, seed {details['seed']}"
        )
    boxes = output.face_boxes[0]
    if len(boxes) and details["detector"] is not None:  # not for an aligned input
        shown = "; ".join(", ".join(f"{value:.0f}" for value in box) for box in boxes)
        lines.append(f"**Face boxes (x1, y1, x2, y2):** {shown}")
    lines += [f"**Note:** {html.escape(message, quote=False)}" for message in details["messages"]]
    return "\n\n".join(lines)


def result_warnings(output: FaceRestorePipelineOutput, aligned: bool, upscale: int) -> list[str]:
    """What to show as a warning: a photo in which no face was found."""
    if aligned or len(output.face_boxes[0]):
        return []
    enlarged = "returned unchanged." if upscale == 1 else f"enlarged {upscale}x."
    return [
        f"No face found in the photo, so it was only {enlarged}"
        " If it is a cropped, aligned face, tick 'Aligned face' and restore again."
    ]


def detector_note(detector: FaceDetector) -> str | None:
    """One short line for the result when the detector fell back to MTCNN; the long reason, with the places searched
    for RetinaFace's weights, is for the server's log."""
    return "RetinaFace weights not found: faces found with MTCNN" if detector.fallback_reason else None


# ---------------------------------------------------------------------------------------------------- helpers


@contextmanager
def _named_errors(source_name: str):
    """An `ImageReadError` raised inside names the request's file (`source_name`), not a full path or an array."""
    try:
        yield
    except ImageReadError as error:
        raise ImageReadError(source_name, error.reason) from None


def _whole(value, what: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not number.is_integer() or not low <= number <= high:
        raise FacerestError(f"{what} must be a whole number from {low} to {high}, got {shown_value(value)}")
    return int(number)
