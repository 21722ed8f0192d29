"""facerest's Gradio demo (also the Hugging Face Space's entry point): restore the faces of a photo or of an
aligned face in the browser.

    python app.py                                            # the shipped default model, models/default
    python app.py --model runs/gfpgan64 --model runs/idm64   # two models, and their hybrid
    FACEREST_MODELS=USER/facerest-gfpgan64,USER/facerest-idm64 python app.py --host 0.0.0.0 --port 7860

Models: each `--model` (repeatable), else each entry of `$FACEREST_MODELS` (comma-separated), is a saved
`FaceRestorePipeline` folder or a Hub repository id. With neither, the shipped default pipeline in `models/default`
is loaded. A GFP-GAN model and an IDM model also make a "hybrid" choice sharing their weights (the GAN estimate
refined by the last IDM steps, at the IDM's face size). The official GFP-GAN v1.4 is offered as well, first in the
menu and the default choice, when it can be downloaded (it is converted to facerest's format on first use and cached
in facerest's cache folder) or is cached already; offline (`HF_HUB_OFFLINE=1`) and uncached it is listed as
unavailable, with the reason, and the first model given is the default choice.

Faces are found with RetinaFace when its weights are found (`--detector-weights` or `$FACEREST_DETECTOR_WEIGHTS`:
a folder holding facexlib's `detection_Resnet50_Final.pth` or `detection_mobilenet0.25_Final.pth`, or the file),
else with MTCNN, whose weights ship with facenet-pytorch; the result's info says which detector ran.

The restore function is the API endpoint `/restore`:

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    before_after, faces, png, info, details = client.predict(
        handle_file("photo.jpg"), "default", False, 2, 25, 0.3, 0, 1.0, api_name="/restore"
    )  # image, model, aligned, upscale, steps, strength, seed, fidelity

The model loading and restoring below are plain functions (`model_specs`, `load_models`, `make_detector`,
`restore`) that the tests call without a browser; `build_demo` wires them to the Gradio interface.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import html
import io
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import PIL.Image
import torch

from facerest import FaceRestorePipeline, FacerestError, ImageReadError
from facerest.errors import shown_value
from facerest.faces import DETECTOR_WEIGHTS_ENV, FaceDetector
from facerest.images import load_image
from facerest.pipeline import DEFAULT_FIDELITY, DEFAULT_HYBRID_STRENGTH, DEFAULT_INFERENCE_STEPS, MAX_UPSCALE
from facerest.weights import cache_dir, is_offline

try:  # ZeroGPU Spaces: the restore function runs under @spaces.GPU
    import spaces
except ImportError:
    spaces = None

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
MODELS_ENV = "FACEREST_MODELS"
EXAMPLES_DIR = REPO_ROOT / "examples"
SHARED_DIR = Path(os.environ.get("FACEREST_SHARED", REPO_ROOT.parent / "shared"))

OFFICIAL_NAME = "gfpgan-v1.4"
OFFICIAL_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth"
OFFICIAL_CONFIG = {"out_size": 512, "channel_multiplier": 2}  # GFPGANConfig of the v1.4 checkpoint
HYBRID_NAME = "hybrid"
KIND_LABELS = {"gfpgan": "GFP-GAN", "idm": "IDM diffusion", "hybrid": "GFP-GAN + IDM"}

# Limits of one request: the input's pixels (checked before decoding), the result's (input x upscale^2), and the
# longer side of the before/after preview (the download keeps full resolution).
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000
PREVIEW_MAX_SIDE = 2048
MAX_STEPS = 200
# Result PNGs older than this are deleted from the app's output folder (Gradio keeps its own copy while served).
OUTPUT_MAX_AGE_S = 3600


# ---------------------------------------------------------------------------------------------------- models


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


@dataclass
class ModelRegistry:
    """The models the app offers, by name, in menu order; `unavailable` names the ones left out and why."""

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


def model_specs(cli_models: list[str] | None = None, environ: dict | None = None) -> list[str]:
    """The models to load: `--model` values, else `$FACEREST_MODELS`, else the shipped `models/default`.

    Raises `FacerestError` naming `models/default` when none is configured and that folder holds no pipeline.
    """
    environ = os.environ if environ is None else environ
    if cli_models:
        return list(cli_models)
    from_env = [spec.strip() for spec in environ.get(MODELS_ENV, "").split(",") if spec.strip()]
    if from_env:
        return from_env
    if not (DEFAULT_MODEL_DIR / "model_index.json").is_file():
        raise FacerestError(
            f"no model configured and the shipped default model is missing: {DEFAULT_MODEL_DIR} holds no saved "
            f"FaceRestorePipeline (model_index.json); pass --model PATH_OR_HUB_ID or set {MODELS_ENV}"
        )
    return [str(DEFAULT_MODEL_DIR)]


def model_name(spec: str) -> str:
    """A short menu name: a folder's name, or a Hub id as it is."""
    path = Path(spec)
    return path.name if path.exists() else spec


def load_models(
    specs: list[str], device: str | torch.device = "cpu", offer_official: bool = True
) -> ModelRegistry:
    """Load each model (`FacerestError` names the one that fails), add the hybrids of its GAN and IDM models, and
    the official GFP-GAN v1.4 when it is cached or can be downloaded. The official model, when offered, leads the
    menu as the default choice: GFP-GAN's own 512-px model trained on all of FFHQ, where ours are small models
    trained on 1,000 faces (not measured side by side here: its weights cannot be had offline)."""
    device = torch.device(device)
    entries: dict[str, ModelEntry] = {}
    for spec in specs:
        pipeline = FaceRestorePipeline.from_pretrained(spec).to(device)
        name = _unique(model_name(spec), entries)
        entries[name] = ModelEntry(name, pipeline.kind, pipeline.face_size, spec, pipeline=pipeline)

    gans = [entry for entry in entries.values() if entry.kind == "gfpgan"]
    idms = [entry for entry in entries.values() if entry.kind == "idm"]
    pairs = [(gan, idm) for gan in gans for idm in idms]  # across sizes too: at the IDM's size
    for gan, idm in pairs:
        name = _unique(HYBRID_NAME if len(pairs) == 1 else f"{HYBRID_NAME}: {gan.name} + {idm.name}", entries)
        hybrid = FaceRestorePipeline.hybrid(gan.pipeline, idm.pipeline)
        entries[name] = ModelEntry(name, "hybrid", gan.face_size, f"{gan.source} + {idm.source}", pipeline=hybrid)

    unavailable = {}
    if offer_official:
        reason = official_gfpgan_unavailable()
        if reason is None:
            name = _unique(OFFICIAL_NAME, entries)
            size = OFFICIAL_CONFIG["out_size"]
            entries = {name: ModelEntry(name, "gfpgan", size, OFFICIAL_URL, loader=load_official_gfpgan), **entries}
        else:
            unavailable[OFFICIAL_NAME] = reason
    return ModelRegistry(entries, unavailable, device)


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
    checkpoint = cache_dir() / OFFICIAL_URL.rsplit("/", 1)[-1]
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
    """The official GFP-GAN v1.4: downloaded into facerest's cache and converted once (as hub/convert_gfpgan.py
    does; that script is not part of the Space, so the conversion is done here with facerest's converter)."""
    folder = official_gfpgan_dir()
    if not (folder / "model_index.json").is_file():
        from facerest import GFPGANConfig, GFPGANModel
        from facerest.models.gfpgan import load_original_weights
        from facerest.weights import find_weights

        checkpoint = find_weights(OFFICIAL_URL.rsplit("/", 1)[-1], url=OFFICIAL_URL)
        model = GFPGANModel(GFPGANConfig(**OFFICIAL_CONFIG)).eval()
        load_original_weights(model, checkpoint)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        FaceRestorePipeline(restorer=model).save_pretrained(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return FaceRestorePipeline.from_pretrained(folder)


def make_detector(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FaceDetector:
    """RetinaFace when its weights are found (`weights`, else `$FACEREST_DETECTOR_WEIGHTS`, else facerest's usual
    places or a download), else MTCNN; the backbone follows the weights file present (resnet50 preferred)."""
    return FaceDetector("auto", weights_dir=weights or None, device=device)


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
    output_dir: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
) -> RestoreResult:
    """Restore one photo (or aligned face) with the named model; `FacerestError` says what is wrong with the
    request. `strength` applies to IDM and hybrid models (None: the model kind's default); `fidelity` (0: the input
    face, 1: the full restoration) to all."""
    if image is None:
        raise FacerestError("no image: upload a photo or an aligned face first")
    upscale = _whole(upscale, "upscale", 1, MAX_UPSCALE)
    steps = None if steps is None else _whole(steps, "diffusion steps", 1, MAX_STEPS)
    seed = _whole(seed, "seed", 0, 2**63 - 1)
    if strength is not None and not 0.0 < float(strength) <= 1.0:
        raise FacerestError(f"strength must be in (0, 1], got {strength}")

    source_name = Path(image).name if isinstance(image, (str, os.PathLike)) else "image"
    try:
        photo = load_image(image, max_pixels=max_pixels)
    except ImageReadError as error:
        raise ImageReadError(source_name, _reason(error)) from None
    height, width = photo.shape[:2]
    if width * height * upscale**2 > max_output_pixels:
        raise ImageReadError(
            source_name,
            f"image too large for upscale {upscale}: the result would be {width * upscale}x{height * upscale}, "
            f"more than {max_output_pixels / 1e6:g} megapixels; choose a smaller upscale or a smaller image",
        )

    entry = registry.entry(model)
    pipeline = registry.pipeline(model)
    arguments = dict(aligned=bool(aligned), upscale=upscale, fidelity=fidelity, detector=detector, max_pixels=None)
    if pipeline.kind != "gfpgan":
        generator = torch.Generator(device=pipeline.unet.device).manual_seed(seed)
        default_strength = 1.0 if pipeline.kind == "idm" else DEFAULT_HYBRID_STRENGTH
        arguments.update(
            num_inference_steps=steps or pipeline.default_inference_steps,
            strength=default_strength if strength is None else float(strength),
            generator=generator,
        )
    started = time.perf_counter()
    try:
        output = pipeline(photo, **arguments)
    except ImageReadError as error:
        raise ImageReadError(source_name, _reason(error)) from None
    seconds = time.perf_counter() - started

    restored = output.images[0]
    # Files rather than PIL images go to Gradio: it writes a returned PIL image to a cache path named by the
    # image's hash without a lock, so two requests with identical outputs could serve a half-written file; it
    # copies returned files atomically.
    folder = Path(output_dir or tempfile.gettempdir()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    png_path = folder / f"{Path(source_name).stem or 'image'}_restored.png"
    restored.save(png_path, format="PNG", compress_level=1)  # level 6 takes ~5x longer on a 10 MP photo
    preview_size = _preview_size(restored.size)
    before_path, after_path = folder / "before.webp", folder / "after.webp"
    PIL.Image.fromarray(photo).resize(preview_size, PIL.Image.LANCZOS).save(before_path, quality=90)
    (restored if restored.size == preview_size else restored.resize(preview_size, PIL.Image.LANCZOS)).save(
        after_path, quality=90
    )
    face_paths = []
    for index, face in enumerate(output.restored_faces[0]):
        face_paths.append(folder / f"face_{index + 1}.png")
        face.save(face_paths[-1])

    boxes = output.face_boxes[0]
    warnings = []
    if not aligned and len(boxes) == 0:
        warnings.append(
            "No face found in the photo, so it was only "
            + ("returned unchanged." if upscale == 1 else f"enlarged {upscale}x.")
            + " If it is a cropped, aligned face, tick 'Aligned face' and restore again."
        )
    detector_text = "none (aligned input)" if output.detector is None else output.detector
    note = detector_note(detector) if output.detector is not None else None
    if note:
        detector_text += f" ({note})"
    details = {
        "model": entry.name,
        "kind": pipeline.kind,
        "face_size": pipeline.face_size,
        "detector": output.detector,
        "detector_note": note,
        "input_size": [width, height],
        "output_size": list(restored.size),
        "upscale": upscale,
        "fidelity": fidelity,
        "steps": arguments.get("num_inference_steps"),
        "strength": arguments.get("strength"),
        "seed": seed if pipeline.kind != "gfpgan" else None,
        "face_boxes": np.round(boxes, 1).tolist(),
        "face_landmarks": np.round(output.face_landmarks[0], 1).tolist(),
        "messages": list(output.messages[0]),
        "seconds": round(seconds, 3),
    }
    lines = [
        f"**Model:** {html.escape(entry.label)}",
        f"**Detector:** {html.escape(detector_text)}",
        f"**Faces restored:** {len(output.restored_faces[0])}",
        f"**Size:** {width}x{height} -> {restored.width}x{restored.height} (upscale {upscale}x)",
        f"**Fidelity:** {fidelity:g} (0: the input face, 1: the full restoration)",
        f"**Time:** {seconds:.2f} s",
    ]
    if pipeline.kind != "gfpgan":
        lines.append(f"**Diffusion:** {details['steps']} steps, strength {details['strength']:g}, seed {seed}")
    if len(boxes) and not aligned:
        shown = "; ".join(", ".join(f"{value:.0f}" for value in box) for box in boxes)
        lines.append(f"**Face boxes (x1, y1, x2, y2):** {shown}")
    lines += [f"**Note:** {html.escape(message)}" for message in output.messages[0]]
    return RestoreResult(
        image=restored,
        faces=list(output.restored_faces[0]),
        png_path=png_path,
        before_path=before_path,
        after_path=after_path,
        face_paths=face_paths,
        info="\n\n".join(lines),
        details=details,
        warnings=warnings,
    )


def detector_note(detector: FaceDetector) -> str | None:
    """One short line for the result when the detector fell back to MTCNN; the long reason, with the places searched
    for RetinaFace's weights, is for the server's log."""
    return "RetinaFace weights not found: faces found with MTCNN" if detector.fallback_reason else None


def data_url_too_large(url: str, max_pixels: int) -> str | None:
    """Why the image of a `data:` URL is refused, from its header alone, or None. Gradio decodes such an image and
    re-encodes it to a file before the app sees it, so its size is checked here first."""
    try:
        with PIL.Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) as image:  # reads the header only
            width, height = image.size
    except PIL.Image.DecompressionBombError as error:
        return f"image too large: {error}"
    except (ValueError, OSError, SyntaxError):  # not base64 or not an image: Gradio's decoding says so
        return None
    if width * height > max_pixels:
        return f"image too large: {width}x{height} = {width * height:,} pixels, the limit is {max_pixels:,}"
    return None


def _whole(value, what: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not number.is_integer() or not low <= number <= high:
        raise FacerestError(f"{what} must be a whole number from {low} to {high}, got {shown_value(value)}")
    return int(number)


def _reason(error: FacerestError) -> str:
    return error.reason if isinstance(error, ImageReadError) else str(error)


def _preview_size(size: tuple[int, int]) -> tuple[int, int]:
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


def example_rows(limit: int = 6) -> list[list]:
    """Examples for the interface, [image path, aligned]: images in the repository's examples/ folder (a name
    containing "aligned" marks an aligned face), then, when the shared data folder is present at run time, whole
    photos from its data/whole_imgs and aligned crops from data/cropped_lq."""
    rows = []
    suffixes = (".png", ".jpg", ".jpeg", ".webp")
    if EXAMPLES_DIR.is_dir():
        for path in sorted(EXAMPLES_DIR.iterdir()):
            if path.suffix.lower() in suffixes:
                rows.append([str(path), "aligned" in path.stem.lower()])
    for folder, aligned, count in (("whole_imgs", False, 4), ("cropped_lq", True, 2)):
        shared = SHARED_DIR / "data" / folder
        if shared.is_dir():
            paths = sorted(path for path in shared.iterdir() if path.suffix.lower() in suffixes)
            rows += [[str(path), aligned] for path in paths[:count]]
    return rows[:limit]


# ---------------------------------------------------------------------------------------------------- interface

DESCRIPTION = """\
# facerest: blind face restoration

Upload a photo (faces are found, aligned, restored and pasted back) or a cropped face aligned like FFHQ (tick
**Aligned face**). GFP-GAN restores in one pass; the IDM diffusion model samples over **Diffusion steps**; a
hybrid noises the GAN's estimate to **Strength** and refines it with the last IDM steps. **Fidelity** sets how much
of the model's change is kept (0: the input face); detail of the photo finer than the model's resolution is kept.
"""


def build_demo(
    registry: ModelRegistry,
    detector: FaceDetector,
    output_dir: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
    concurrency: int = 1,
    examples: list[list] | None = None,
):
    import gradio as gr

    def readable_uploads(image_input):
        """Give unreadable uploads a clear error instead of PIL's exception, which gr.Image's preprocessing raises.

        (The instance's method is wrapped: a gr.Image subclass would make Gradio write a .pyi stub beside app.py.)
        """
        preprocess = image_input.preprocess

        def checked_preprocess(payload):
            url = getattr(payload, "url", None) or ""
            too_large = data_url_too_large(url, max_pixels) if url.startswith("data:") else None
            if too_large:
                raise gr.Error(html.escape(too_large), title="Image too large")
            try:
                return preprocess(payload)
            except PIL.Image.DecompressionBombError as error:
                raise gr.Error(f"The image is too large: {html.escape(str(error))}", title="Image too large") from None
            except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
                name = html.escape(getattr(payload, "orig_name", None) or "the uploaded file")
                raise gr.Error(
                    f"{name} cannot be read as an image ({html.escape(type(error).__name__)}); "
                    "upload a PNG, JPEG or WebP photo.",
                    title="Unreadable file",
                ) from None

        image_input.preprocess = checked_preprocess
        return image_input

    def kind_of(name: str) -> str:
        return registry.entries[name].kind if name in registry.entries else "gfpgan"

    def default_steps_of(name: str) -> int:
        """The steps the model was saved to run (its pipeline is loaded already: only GAN models load lazily)."""
        entry = registry.entries.get(name)
        return entry.pipeline.default_inference_steps if entry is not None and entry.pipeline is not None else DEFAULT_INFERENCE_STEPS

    def restore_endpoint(
        image, model, aligned, upscale, steps, strength, seed, fidelity, progress=gr.Progress(track_tqdm=True)
    ):
        progress(0, desc="starting")
        prune_outputs(output_dir)
        entry = registry.entries.get(model)
        if entry is not None and entry.pipeline is None:
            progress(0, desc=f"loading {model} (first use: download and conversion)")
        try:
            result = restore(
                registry,
                detector,
                image,
                model,
                aligned=aligned,
                upscale=upscale,
                steps=steps,
                strength=None if kind_of(model) == "gfpgan" else strength,
                seed=seed,
                fidelity=fidelity,
                output_dir=output_dir,
                max_pixels=max_pixels,
                max_output_pixels=max_output_pixels,
            )
        except ImageReadError as error:
            title = "Image too large" if "too large" in error.reason else "Cannot use this image"
            raise gr.Error(html.escape(str(error)), title=title, print_exception=False) from None
        except FacerestError as error:
            raise gr.Error(html.escape(str(error)), print_exception=False) from None
        for warning in result.warnings:
            gr.Warning(warning)
        faces = [(str(path), f"face {index + 1}") for index, path in enumerate(result.face_paths)]
        before_after = (str(result.before_path), str(result.after_path))
        return before_after, faces, str(result.png_path), result.info, result.details

    if spaces is not None:
        restore_endpoint = spaces.GPU(duration=120)(restore_endpoint)

    def on_model_change(name):
        kind = kind_of(name)
        diffusion = kind != "gfpgan"
        return (
            gr.Slider(interactive=diffusion, value=default_steps_of(name)),
            gr.Slider(interactive=diffusion, value=1.0 if kind == "idm" else DEFAULT_HYBRID_STRENGTH),
            gr.Number(interactive=diffusion),
        )

    unavailable = "".join(
        f"\n\n*{html.escape(name)} is not available: {html.escape(reason)}.*"
        for name, reason in registry.unavailable.items()
    )
    first_kind = kind_of(registry.default)
    with gr.Blocks(title="facerest", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Row():
            with gr.Column(scale=1):
                image = readable_uploads(
                    gr.Image(
                        label="Photo or aligned face", type="filepath", image_mode=None,
                        sources=["upload", "clipboard"], elem_id="input-image", height=360,
                    )
                )
                model = gr.Dropdown(
                    choices=[(entry.label, name) for name, entry in registry.entries.items()],
                    value=registry.default, label="Model", elem_id="model",
                )
                aligned = gr.Checkbox(
                    label="Aligned face", value=False, elem_id="aligned",
                    info="the image is a square face crop aligned like FFHQ: skip face detection",
                )
                upscale = gr.Slider(1, MAX_UPSCALE, value=2, step=1, label="Upscale", elem_id="upscale")
                fidelity = gr.Slider(
                    0.0, 1.0, value=DEFAULT_FIDELITY, step=0.05, label="Fidelity", elem_id="fidelity",
                    info="how much of the model's change to each face is kept: 0 the input face, 1 the full restoration",
                )
                diffusion = first_kind != "gfpgan"  # the diffusion controls are live for IDM and hybrid models
                with gr.Accordion("Diffusion (IDM and hybrid models)", open=diffusion):
                    steps = gr.Slider(
                        1, MAX_STEPS, value=default_steps_of(registry.default), step=1, label="Diffusion steps",
                        interactive=diffusion, elem_id="steps",
                        info="steps of the full schedule; a hybrid runs only the last strength x steps",
                    )
                    strength = gr.Slider(
                        0.05, 1.0, value=1.0 if first_kind == "idm" else DEFAULT_HYBRID_STRENGTH, step=0.05,
                        label="Strength", interactive=diffusion, elem_id="strength",
                        info="how far up the schedule the start is noised (1: pure diffusion)",
                    )
                    seed = gr.Number(
                        value=0, precision=0, minimum=0, label="Seed", interactive=diffusion, elem_id="seed"
                    )
                button = gr.Button("Restore", variant="primary", elem_id="restore-button")
                gr.Markdown(
                    f"Inputs up to {max_pixels / 1e6:g} megapixels; results up to {max_output_pixels / 1e6:g} "
                    f"megapixels.{unavailable}"
                )
            with gr.Column(scale=1):
                slider = gr.ImageSlider(label="Before / after", type="filepath", elem_id="before-after")
                faces = gr.Gallery(label="Restored faces", columns=4, height=200, format="png", elem_id="faces")
                download = gr.File(label="Restored image (full-resolution PNG)", elem_id="download")
                info = gr.Markdown(label="Result info", elem_id="info")
                with gr.Accordion("Details (JSON)", open=False):
                    details = gr.JSON(label="Details")
        if examples:
            gr.Examples(examples=examples, inputs=[image, aligned], cache_examples=False, label="Examples")

        model.change(on_model_change, model, [steps, strength, seed], api_visibility="private", queue=False)
        button.click(
            restore_endpoint,
            inputs=[image, model, aligned, upscale, steps, strength, seed, fidelity],
            outputs=[slider, faces, download, info, details],
            api_name="restore",
            concurrency_limit=concurrency,
        )
    return demo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", metavar="PATH_OR_HUB_ID",
        help=f"a saved FaceRestorePipeline folder or Hub id; repeatable (default: ${MODELS_ENV}, else models/default)",
    )
    parser.add_argument(
        "--host", default=None, help="address to serve on (default: Gradio's, 127.0.0.1 or $GRADIO_SERVER_NAME)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or $GRADIO_SERVER_PORT)")
    parser.add_argument(
        "--detector-weights", default=None,
        help=f"folder or file of facexlib's RetinaFace weights (default: ${DETECTOR_WEIGHTS_ENV}; without them MTCNN)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--no-official", action="store_true", help="do not offer the official GFP-GAN v1.4")
    parser.add_argument("--concurrency", type=int, default=1, help="restorations run at once (default 1)")
    parser.add_argument("--queue-size", type=int, default=64, help="requests waiting at most (default 64)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest input, in pixels")
    parser.add_argument(
        "--max-output-pixels", type=int, default=DEFAULT_MAX_OUTPUT_PIXELS, help="largest result, in pixels"
    )
    parser.add_argument("--max-file-size", default="50mb", help="largest upload (Gradio's max_file_size)")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.queue_size < 1:
        parser.error("--concurrency and --queue-size must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        specs = model_specs(args.model)
        print(f"loading models: {', '.join(specs)}", flush=True)
        registry = load_models(specs, device, offer_official=not args.no_official)
        detector = make_detector(args.detector_weights, device)
    except FacerestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, reason in registry.unavailable.items():
        print(f"{name} not offered: {reason}", flush=True)
    note = f" ({detector.fallback_reason})" if detector.fallback_reason else ""
    print(f"models: {', '.join(registry.names)}; face detector: {detector.name}{note}", flush=True)

    output_dir = Path(tempfile.mkdtemp(prefix="facerest-app-"))
    atexit.register(shutil.rmtree, output_dir, True)
    examples = example_rows()
    demo = build_demo(
        registry, detector, output_dir, args.max_pixels, args.max_output_pixels, args.concurrency, examples
    )
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    allowed = sorted({str(Path(row[0]).parent) for row in examples})
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        show_error=True,
        max_file_size=args.max_file_size,
        allowed_paths=allowed or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
