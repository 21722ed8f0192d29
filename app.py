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
unavailable, with the reason, and the first model given is the default choice. A model that fails to load (a
missing folder, a Hub repository that cannot be fetched) is listed unavailable in the same way and the app serves the
others; with none left it exits with the reasons.

Faces are found with RetinaFace when its weights are found (`--detector-weights` or `$FACEREST_DETECTOR_WEIGHTS`:
a folder holding facexlib's `detection_Resnet50_Final.pth` or `detection_mobilenet0.25_Final.pth`, or the file),
else with MTCNN, whose weights ship with facenet-pytorch; the result's info says which detector ran.

The restore function is the API endpoint `/restore`:

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    before_after, faces, png, info, details = client.predict(
        handle_file("photo.jpg"), "default", False, 2, 25, 0.3, 0, 1.0, False, True, api_name="/restore"
    )  # image, model, aligned, upscale, steps, strength, seed, fidelity, paste_every_face (optional, False),
       # denoise (optional, True)

The model menu, one request (check -> restore -> files) and the result's text are the library's, `facerest.demo`
(`load_models`, `restore`), which the tests call without a browser; here are the configuration (`model_specs`,
`make_detector`, `example_rows`) and `build_demo`, which wires them to the Gradio interface.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import PIL.Image
import torch

from facerest import FacerestError, ImageReadError
from facerest.demo import (
    MAX_STEPS, SERVER_MAX_OUTPUT_PIXELS, SERVER_MAX_PIXELS, ModelRegistry, limits_text, load_models, prune_outputs,
    restore,
)
from facerest.devices import resolve_device
from facerest.face_detection import DETECTOR_WEIGHTS_ENV, FaceDetector, detector_summary
from facerest.images import too_large_for_pillow, too_many_pixels
from facerest.pipeline import DEFAULT_FIDELITY, MAX_UPSCALE

try:  # ZeroGPU Spaces: the restore function runs under @spaces.GPU
    import spaces
except ImportError:
    spaces = None

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
MODELS_ENV = "FACEREST_MODELS"
EXAMPLES_DIR = REPO_ROOT / "examples"
SHARED_DIR = Path(os.environ.get("FACEREST_SHARED", REPO_ROOT.parent / "shared"))


# ---------------------------------------------------------------------------------------------------- configuration


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


def make_detector(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FaceDetector:
    """RetinaFace when its weights are found (`weights`, else `$FACEREST_DETECTOR_WEIGHTS`, else facerest's usual
    places or a download), else MTCNN; the backbone follows the weights file present (resnet50 preferred)."""
    return FaceDetector("auto", weights_dir=weights or None, device=device)


def error_text(text: str) -> str:
    """Text for a `gr.Error`: the browser shows its message as HTML, so no tag may pass; an API client gets the rest
    as it is (a file name's quotes and ampersands unescaped)."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def data_url_too_large(url: str, max_pixels: int) -> str | None:
    """Why the image of a `data:` URL is refused, from its header alone, or None. Gradio decodes such an image and
    re-encodes it to a file before the app sees it, so its size is checked here first."""
    try:
        with PIL.Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) as image:  # reads the header only
            width, height = image.size
    except PIL.Image.DecompressionBombError as error:
        return too_large_for_pillow(error, max_pixels)
    except (ValueError, OSError, SyntaxError):  # not base64 or not an image: Gradio's decoding says so
        return None
    return too_many_pixels(width, height, max_pixels)


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


def readable_uploads(image_input, max_pixels: int):
    """Give unreadable uploads a clear error instead of PIL's exception, which gr.Image's preprocessing raises, and
    refuse a `data:` URL image above `max_pixels` before Gradio decodes it.

    (The instance's method is wrapped: a gr.Image subclass would make Gradio write a .pyi stub beside app.py.)
    """
    import gradio as gr

    preprocess = image_input.preprocess

    def checked_preprocess(payload):
        url = getattr(payload, "url", None) or ""
        too_large = data_url_too_large(url, max_pixels) if url.startswith("data:") else None
        if too_large:
            raise gr.Error(error_text(too_large), title="Image too large")
        try:
            return preprocess(payload)
        except PIL.Image.DecompressionBombError as error:
            raise gr.Error(error_text(too_large_for_pillow(error, max_pixels)), title="Image too large") from None
        except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            name = error_text(getattr(payload, "orig_name", None) or "the uploaded file")
            raise gr.Error(
                f"{name} cannot be read as an image ({type(error).__name__}); "
                "upload a PNG, JPEG or WebP photo.",
                title="Unreadable file",
            ) from None

    image_input.preprocess = checked_preprocess
    return image_input


def restore_endpoint(
    registry: ModelRegistry, detector: FaceDetector, output_dir: Path, max_pixels: int, max_output_pixels: int
):
    """The `/restore` endpoint: `facerest.demo.restore` with Gradio's progress, errors and warnings, returning
    file paths (before/after, faces, PNG), the info and the details."""
    import gradio as gr

    def endpoint(
        image, model, aligned, upscale, steps, strength, seed, fidelity, paste_every_face=False, denoise=True,
        progress=gr.Progress(track_tqdm=True),
    ):  # fmt: skip
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
                strength=strength if registry.diffusion_settings(model).live else None,  # a GAN takes none
                seed=seed,
                fidelity=fidelity,
                paste_every_face=bool(paste_every_face),
                denoise=bool(denoise),
                output_dir=output_dir,
                max_pixels=max_pixels,
                max_output_pixels=max_output_pixels,
            )
        except ImageReadError as error:
            title = "Image too large" if "too large" in error.reason else "Cannot use this image"
            raise gr.Error(error_text(str(error)), title=title, print_exception=False) from None
        except FacerestError as error:
            raise gr.Error(error_text(str(error)), print_exception=False) from None
        for warning in result.warnings:
            gr.Warning(warning)
        faces = [(str(path), f"face {index + 1}") for index, path in enumerate(result.face_paths)]
        before_after = (str(result.before_path), str(result.after_path))
        return before_after, faces, str(result.png_path), result.info, result.details

    return spaces.GPU(duration=120)(endpoint) if spaces is not None else endpoint


def build_demo(
    registry: ModelRegistry,
    detector: FaceDetector,
    output_dir: Path,
    max_pixels: int = SERVER_MAX_PIXELS,
    max_output_pixels: int = SERVER_MAX_OUTPUT_PIXELS,
    concurrency: int = 1,
    examples: list[list] | None = None,
):
    import gradio as gr

    def on_model_change(name):
        diffusion, default_steps, default_strength = registry.diffusion_settings(name)
        return (
            gr.Slider(interactive=diffusion, value=default_steps),
            gr.Slider(interactive=diffusion, value=default_strength),
            gr.Number(interactive=diffusion),
        )

    # the diffusion controls are live for IDM and hybrid models
    diffusion, default_steps, default_strength = registry.diffusion_settings(registry.default)
    with gr.Blocks(title="facerest", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Row():
            with gr.Column(scale=1):
                image = readable_uploads(
                    gr.Image(
                        label="Photo or aligned face", type="filepath", image_mode=None,
                        sources=["upload", "clipboard"], elem_id="input-image", height=360,
                    ),
                    max_pixels,
                )
                model = gr.Dropdown(choices=registry.choices, value=registry.default, label="Model", elem_id="model")
                aligned = gr.Checkbox(
                    label="Aligned face", value=False, elem_id="aligned",
                    info="the image is a square face crop aligned like FFHQ: skip face detection",
                )
                upscale = gr.Slider(1, MAX_UPSCALE, value=2, step=1, label="Upscale", elem_id="upscale")
                fidelity = gr.Slider(
                    0.0, 1.0, value=DEFAULT_FIDELITY, step=0.05, label="Fidelity", elem_id="fidelity",
                    info="how much of the model's change to each face is kept: 0 the input face, 1 the full restoration",
                )
                paste_every_face = gr.Checkbox(
                    label="Paste every face", value=False, elem_id="paste-every-face",
                    info="also where the restoration is less sharp than the photo (such faces are left as they were)",
                )
                denoise = gr.Checkbox(
                    label="Denoise noisy faces", value=True, elem_id="denoise",
                    info="a face with visible grain goes through non-local means before the model (skin comes out smooth), "
                    "the faces of a small JPEG enlarged lose its blocks first, and a large face's finest detail loses "
                    "what reads as noise",
                )
                with gr.Accordion("Diffusion (IDM and hybrid models)", open=diffusion):
                    steps = gr.Slider(
                        1, MAX_STEPS, value=default_steps, step=1, label="Diffusion steps",
                        interactive=diffusion, elem_id="steps",
                        info="steps of the full schedule: more draw sharper detail, a little further from the input; "
                        "a hybrid runs only the last strength x steps",
                    )
                    strength = gr.Slider(
                        0.05, 1.0, value=default_strength, step=0.05,
                        label="Strength", interactive=diffusion, elem_id="strength",
                        info="how far up the schedule the start is noised (1: pure diffusion)",
                    )
                    seed = gr.Number(
                        value=0, precision=0, minimum=0, label="Seed", interactive=diffusion, elem_id="seed"
                    )
                button = gr.Button("Restore", variant="primary", elem_id="restore-button")
                gr.Markdown(limits_text(registry, max_pixels, max_output_pixels))
            with gr.Column(scale=1):
                slider = gr.ImageSlider(label="Before / after", type="filepath", elem_id="before-after")
                faces = gr.Gallery(
                    label="Restored faces", columns=4, fit_columns=False, height=200, format="png", elem_id="faces"
                )
                download = gr.File(label="Restored image (full-resolution PNG)", elem_id="download")
                info = gr.Markdown(label="Result info", elem_id="info")
                with gr.Accordion("Details (JSON)", open=False):
                    details = gr.JSON(label="Details")
        if examples:
            gr.Examples(examples=examples, inputs=[image, aligned], cache_examples=False, label="Examples")

        model.change(on_model_change, model, [steps, strength, seed], api_visibility="private", queue=False)
        button.click(
            restore_endpoint(registry, detector, output_dir, max_pixels, max_output_pixels),
            inputs=[image, model, aligned, upscale, steps, strength, seed, fidelity, paste_every_face, denoise],
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
    parser.add_argument("--max-pixels", type=int, default=SERVER_MAX_PIXELS, help="largest input, in pixels")
    parser.add_argument(
        "--max-output-pixels", type=int, default=SERVER_MAX_OUTPUT_PIXELS, help="largest result, in pixels"
    )
    parser.add_argument("--max-file-size", default="50mb", help="largest upload (Gradio's max_file_size)")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.queue_size < 1:
        parser.error("--concurrency and --queue-size must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
        specs = model_specs(args.model)
        print(f"loading models: {', '.join(specs)}", flush=True)
        registry = load_models(specs, device, offer_official=not args.no_official)
        detector = make_detector(args.detector_weights, device)
    except FacerestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, reason in registry.unavailable.items():
        print(f"{name} not offered: {reason}", flush=True)
    print(f"models: {', '.join(registry.names)}; face detector: {detector_summary(detector)}", flush=True)

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
