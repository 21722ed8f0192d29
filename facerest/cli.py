"""``python -m facerest``: the command line.

Each sub-command parses its options here and calls one library function; errors meant for the user
(``FacerestError``) are printed as one line and exit with status 2; Ctrl-C ends a command with one line and status 130
(``restore`` first says how far it got; what it wrote stays, each file complete).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FacerestError, shown_value

if TYPE_CHECKING:  # the command line imports numpy, torch and the models only when a command runs
    import numpy as np
    import torch

# the exit status of a command ended by Ctrl-C, as a shell gives it (128 + SIGINT)
INTERRUPTED = 130
# --dtype choices -> torch dtype names
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# `restore`'s options by the pipeline argument each sets, to name them in an error as the user typed them
RESTORE_OPTIONS = {
    "upscale": "--upscale", "num_inference_steps": "--steps", "strength": "--strength", "fidelity": "--fidelity"
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facerest", description="Blind face restoration.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in (_add_make_testset_parser, _add_evaluate_parser, _add_restore_parser, _add_compare_parser,
                       _add_bench_parser):
        add_parser(commands)
    return parser


def _add_make_testset_parser(commands) -> None:
    """``make-testset``: degrade HQ faces into a paired test set."""
    testset = commands.add_parser(
        "make-testset",
        help="degrade a folder of HQ faces into a paired LQ/HQ test set (CelebA-Test style)",
        description="Writes OUT_DIR/lq, OUT_DIR/hq and OUT_DIR/manifest.json; the same seed gives the same bytes. "
        "Faces of any --resolution are degraded as their 512-px photo would be (GFP-GAN's degradation is defined there). "
        "OUT_DIR is replaced only once the new test set is complete, and only when it is new, empty or an earlier "
        "make-testset output (else --overwrite).",
    )
    testset.add_argument("hq_dir", help="folder of high-quality aligned faces")
    testset.add_argument("out_dir", help="output folder")
    testset.add_argument("--resolution", type=int, default=512, help="side of the square output images (default 512)")
    testset.add_argument("--seed", type=int, default=0, help="seed of the degradation draws (default 0)")
    testset.add_argument(
        "--overwrite", action="store_true", help="replace OUT_DIR even when make-testset did not write it (all it holds)"
    )
    testset.set_defaults(handler=_make_testset)


def _add_evaluate_parser(commands) -> None:
    """``evaluate``: score restored faces."""
    evaluate = commands.add_parser(
        "evaluate",
        help="score restored faces: LPIPS, FID, NIQE, PSNR, SSIM, identity",
        description="Prints the metrics table and writes it as Markdown and CSV.",
    )
    evaluate.add_argument("--restored", required=True, help="folder of restored images, with its sub-folders (restore's face crops, faces/, left out)")
    evaluate.add_argument("--gt", help="folder of ground-truth images under the same names, extension aside (full-reference metrics)")
    evaluate.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        help="any of lpips, lpips-random, fid, niqe, psnr, ssim, psnr-y, ssim-y, identity (default: all that apply "
        "but psnr-y and ssim-y, PSNR and SSIM on the BT.601 luma, which are computed when named; lpips-random, a "
        "random AlexNet, only when lpips's weights are missing)",
    )
    evaluate.add_argument("--fid-stats", help="FID against these saved statistics (.npz with mu, sigma) instead of --gt")
    evaluate.add_argument(
        "--weights-dir",
        action="append",
        default=[],
        help="folder holding metric weights (NIQE parameters, AlexNet, Inception, ArcFace), searched with its "
        "sub-folders before the caches; repeatable; $FACEREST_WEIGHTS_DIR works too",
    )
    evaluate.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    evaluate.add_argument("--out", help="write the table to OUT.md and OUT.csv (default: RESTORED/../<name>_metrics)")
    evaluate.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    evaluate.set_defaults(handler=_evaluate)


def _add_restore_parser(commands) -> None:
    """``restore``: restore a photo or a folder."""
    restore = commands.add_parser(
        "restore",
        help="restore the faces of a photo or a folder of photos",
        description="Writes OUTPUT_DIR/<name>.png for each image and OUTPUT_DIR/faces/<name>_<index>.png for each "
        "restored face (<name>: the image's path in INPUT without extension). Images that fail are listed at the "
        "end, and the exit status is then 1.",
    )
    restore.add_argument("input", help="an image file, or a folder of images (sub-folders included)")
    restore.add_argument("-o", "--output", required=True, help="output folder")
    restore.add_argument("--model", required=True, help="saved FaceRestorePipeline: a folder or a Hub repository id")
    restore.add_argument("--aligned", action="store_true", help="the inputs are aligned faces: skip detection")
    restore.add_argument("--upscale", type=int, default=1, help="enlarge the output 1 to 4 times (default 1)")
    restore.add_argument(
        "--fidelity",
        type=float,
        default=None,
        help="how much of the model's change to each face is kept, from 0 (the input face) to 1 (the full "
        "restoration); default: the pipeline's (DEFAULT_FIDELITY)",
    )
    restore.add_argument(
        "--no-denoise",
        action="store_true",
        help="give the model noisy faces as they are (default: a face whose noise level is above the pipeline's "
        "threshold goes through non-local means first, the faces of a photo saved as a small JPEG and enlarged are "
        "deblocked first, and a face over twice the model's size loses what reads as noise in its finest detail)",
    )
    restore.add_argument(
        "--steps", type=int, default=None, help="IDM sampling steps (default: the model's, saved with it; else 25)"
    )
    restore.add_argument(
        "--strength",
        type=float,
        help="IDM and hybrid: noise level to start from, in (0, 1] (default 1 for IDM, 0.3 for hybrid)",
    )
    restore.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the IDM noise, drawn afresh for each image: an image's result "
        "does not depend on the other images of the folder (default 0)",
    )
    restore.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    restore.add_argument("--dtype", choices=DTYPES, default="fp32", help="model precision (default fp32)")
    restore.add_argument(
        "--detector",
        choices=("auto", "retinaface", "mtcnn"),
        default="auto",
        help="face detector (default auto: RetinaFace when its weights are found, else MTCNN)",
    )
    restore.add_argument(
        "--detector-weights",
        help="folder (or file) of facexlib's RetinaFace weights (default: $FACEREST_DETECTOR_WEIGHTS)",
    )
    restore.add_argument(
        "--retinaface-model",
        choices=("resnet50", "mobilenet0.25"),
        help="RetinaFace backbone (default: the one whose weights file --detector-weights holds; resnet50 when "
        "it holds both or neither)",
    )
    restore.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    restore.add_argument("--strict", action="store_true", help="count a photo without a face as failed")
    restore.add_argument(
        "--paste-every-face",
        action="store_true",
        help="photos: paste every restored face, even one whose restoration came out less sharp than the photo had "
        "it (default: such a face keeps the photo's pixels, with a note)",
    )
    restore.set_defaults(handler=_restore)


def _add_compare_parser(commands) -> None:
    """``compare``: models on a paired test set."""
    compare = commands.add_parser(
        "compare",
        help="compare models on a paired test set (from make-testset): one table row per method",
        description="Restores TESTSET/lq with each model, scores the results against TESTSET/hq like evaluate, "
        "prints the table and writes it as Markdown and CSV, with the restored faces in a folder per row.",
    )
    compare.add_argument("--testset", required=True, help="paired test set folder (lq/ and hq/)")
    compare.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="NAME=PATH",
        help="a saved pipeline (folder or Hub id), or GAN_PATH+IDM_PATH for their hybrid, and its row name; repeatable",
    )
    compare.add_argument("--steps", default="10,25,100", help="IDM step counts, comma-separated (default 10,25,100)")
    compare.add_argument("--strength", type=float, help="the hybrids' strength (default 0.3)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the IDM noise (default 0)")
    compare.add_argument(
        "--out",
        help="write the table to OUT.md and OUT.csv and the faces under OUT/ (default: TESTSET/../<name>_compare)",
    )
    compare.add_argument(
        "--weights-dir", action="append", default=[], help="folder holding metric weights, as for evaluate; repeatable"
    )
    compare.add_argument("--batch-size", type=int, default=8, help="faces per batch (default 8)")
    compare.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    compare.add_argument("--dtype", choices=DTYPES, default="fp32", help="model precision (default fp32)")
    compare.set_defaults(handler=_compare)


def _make_testset(args) -> int:
    import json

    from .data import make_testset

    manifest_path = make_testset(
        args.hq_dir, args.out_dir, resolution=args.resolution, seed=args.seed, overwrite=args.overwrite
    )
    manifest = json.loads(manifest_path.read_text())
    print(f"wrote {len(manifest['images'])} LQ/HQ pairs of {args.resolution} px: {manifest_path.parent}/lq, hq, manifest.json")
    if manifest["skipped"]:  # the test set is written without them; the exit status says so, as restore's does
        print(f"skipped {len(manifest['skipped'])} files of {args.hq_dir}:", file=sys.stderr)
        for entry in manifest["skipped"]:
            print(f"  {entry['source']}: {entry['reason']}", file=sys.stderr)
        return 1
    return 0


def _evaluate(args) -> int:
    """Print the table and notes, write ``<out>.md`` and ``<out>.csv``; exit status 1 when images were skipped or
    no metric could be computed."""
    from .evaluation import METRIC_COLUMNS, UNAVAILABLE, evaluate_folders
    from .output_folders import check_writable_folder

    _check_whole("--batch-size", args.batch_size, 1)
    if args.metrics:  # "psnr ssim" and "psnr,ssim" alike
        args.metrics = [name for entry in args.metrics for name in entry.split(",") if name]
    restored = Path(args.restored).resolve()
    out = Path(args.out) if args.out else restored.parent / f"{restored.name}_metrics"
    check_writable_folder(out.parent, "folder of --out")  # before the metrics run, not after
    evaluation = evaluate_folders(
        args.restored, args.gt, metrics=args.metrics, device=args.device, fid_stats=args.fid_stats,
        weights_dirs=args.weights_dir, batch_size=args.batch_size,
    )  # fmt: skip
    markdown_path, csv_path = evaluation.write(out)
    print(evaluation.markdown(), end="")
    timings = ", ".join(f"{name} {seconds:.2f}" for name, seconds in evaluation.seconds.items())
    print(f"seconds per metric (loading and scoring): {timings}")
    print(f"wrote {markdown_path} and {csv_path}")
    scored = [value for column, value in evaluation.rows[0].items() if column in METRIC_COLUMNS.values()]
    problems = [f"{len(evaluation.skipped)} images skipped"] if evaluation.skipped else []
    if all(value == UNAVAILABLE for value in scored):
        problems.append("no metric could be computed")
    if problems:
        print(f"incomplete evaluation: {'; '.join(problems)} (see the notes above)", file=sys.stderr)
        return 1
    return 0


def _restore(args) -> int:
    from .devices import resolve_device
    from .face_detection import FaceDetector, detector_summary
    from .output_folders import RESTORE_COMMAND, check_writable_folder, mark_output_folder
    from .pipeline import DEFAULT_FIDELITY, MAX_SEED, FaceRestorePipeline

    source, output = Path(args.input), Path(args.output)
    _check_restore_output(source, output)
    check_writable_folder(output, "output folder")
    inputs, left_out = _restore_inputs(source)
    _check_whole("--seed", args.seed, 0, MAX_SEED)
    device = resolve_device(args.device)
    dtype = _model_dtype(args.dtype, device)
    detector = None
    if not args.aligned:  # before the model loads: a mistyped --detector-weights is told at once
        detector = FaceDetector(args.detector, args.retinaface_model, args.detector_weights, device=device)
    pipeline = FaceRestorePipeline.from_pretrained(args.model, dtype=dtype)
    pipeline.to(device)
    fidelity = DEFAULT_FIDELITY if args.fidelity is None else args.fidelity
    _check_restore_options(pipeline, args, fidelity)
    sampling = "" if pipeline.kind == "gfpgan" else f", {args.steps or pipeline.default_inference_steps} IDM steps"
    print(f"model: {args.model} ({pipeline.kind}, {pipeline.face_size} px faces{sampling}) on {pipeline.device}, {args.dtype}")
    if detector is not None:
        print(f"face detector: {detector_summary(detector)}")
    for note in left_out:
        print(note)
    mark_output_folder(output, RESTORE_COMMAND)
    settings = dict(
        aligned=args.aligned,
        upscale=args.upscale,
        fidelity=fidelity,
        denoise=not args.no_denoise,
        num_inference_steps=args.steps,
        strength=args.strength,
        only_center_face=args.only_center_face,
        strict=args.strict,
        never_blur=not args.paste_every_face,
        detector=detector,
        output_type="np",
        progress=False,
    )
    return _restore_each(pipeline, settings, args.seed, inputs, output)


def _restore_each(pipeline, settings: dict, seed: int, inputs: list[tuple[Path, str]], output: Path) -> int:
    """Restore each (path, output name) of ``inputs`` with ``settings`` into ``output``, going on past an image that
    fails; print a summary and return the exit status: 0, 1 when some failed, ``INTERRUPTED`` after Ctrl-C (what was
    written stays, each file complete)."""
    import time

    import torch
    from tqdm.auto import tqdm

    from .errors import ImageReadError
    from .images import colour_profile_options, is_gray_file, load_alpha

    failed, restored, faces_written, without_faces = [], 0, 0, 0
    interrupted, started = False, time.perf_counter()
    try:
        for path, name in tqdm(inputs, unit="image", desc="restoring"):
            try:  # seeded afresh for each image: as if it were restored alone
                result = pipeline(path, generator=torch.Generator("cpu").manual_seed(seed), **settings)
            except FacerestError as error:
                failed.append((path, error.reason if isinstance(error, ImageReadError) else str(error)))
                continue
            try:
                _save_restored(result, output, name, load_alpha(path), is_gray_file(path), colour_profile_options(path))
            except OSError as error:
                failed.append((path, f"cannot save the result: {error.strerror or error}"))
                continue
            restored += 1
            faces_written += len(result.restored_faces[0])
            without_faces += not result.restored_faces[0]
            for message in result.messages[0]:
                tqdm.write(f"{path}: {message}")
    except KeyboardInterrupt:
        interrupted = True

    seconds = time.perf_counter() - started
    faces = f"{faces_written} face{'' if faces_written == 1 else 's'}"
    if without_faces:
        faces += f"; no face found in {without_faces}"
    print(f"restored {restored} of {len(inputs)} images ({faces}) in {seconds:.1f} s into {output}")
    if interrupted:
        print(f"interrupted: {len(inputs) - restored - len(failed)} image(s) not restored", file=sys.stderr)
    if failed:
        print(f"failed {len(failed)}:", file=sys.stderr)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=sys.stderr)
    if interrupted:
        return INTERRUPTED
    return 1 if failed else 0


def _model_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch dtype of a --dtype choice; fp16 on the CPU is refused (the CPU emulates it, about 150 times slower
    than fp32 for one face)."""
    import torch

    if name == "fp16" and device.type == "cpu":
        raise FacerestError("--dtype fp16 runs on a GPU: the CPU emulates it, far slower than fp32; use --dtype fp32 or bf16")
    return getattr(torch, DTYPES[name])


def _check_restore_output(source: Path, output: Path) -> None:
    """Refuse an output folder that holds the input, or files that restore did not write."""
    from .images import IMAGE_EXTENSIONS
    from .output_folders import MARKER_NAME, RESTORE_COMMAND, is_inside, output_folder_command

    if not output.exists() and output.suffix.lower() in IMAGE_EXTENSIONS:  # `-o restored.jpg`: a file was meant
        raise FacerestError(
            f"-o takes a folder, and {output} is named like an image file: restore writes OUTPUT/<name>.png and "
            f"OUTPUT/faces/ (e.g. -o {output.with_suffix('')})"
        )
    if is_inside(source, output):
        raise FacerestError(f"the output folder {output} holds the input {source}: choose another output folder")
    if output.exists() and not output.is_dir():
        raise FacerestError(f"output path exists and is not a folder: {output}")
    if output.is_dir() and any(output.iterdir()) and output_folder_command(output) != RESTORE_COMMAND:
        raise FacerestError(
            f"output folder {output} is not empty and was not written by restore (it has no {MARKER_NAME} marker): "
            "choose a new or empty folder"
        )


def _save_restored(result, output: Path, name: str, alpha: np.ndarray | None, gray: bool, save_options: dict) -> None:
    """Write the restored photo as OUTPUT/<name>.png, with the input's transparency `alpha` when it has one, and its
    faces as OUTPUT/faces/<name>_<index>.png (with `alpha` warped as each face was), gray where the input is (`gray`:
    `is_gray_file`), each saved with `save_options` (the input's colour profile: the pixels are in its colour space)
    and tagged as <name>'s (`FACE_CROP_KEY`); then remove the faces of <name> that an earlier run into this folder
    wrote beyond this run's (that photo had more faces), so that faces/ holds this run's only: files so tagged, never
    a photo restored from an input's own faces/ sub-folder that an earlier run put there under such a name."""
    import glob
    import re

    from PIL.PngImagePlugin import PngInfo

    from .faces import with_photo_alpha
    from .images import save_image, with_alpha
    from .output_folders import FACE_CROP_KEY, RESTORED_FACES_FOLDER

    photo = result.images[0] if alpha is None else with_alpha(result.images[0], alpha)
    save_image(photo, output / f"{name}.png", gray, **save_options)
    faces = result.restored_faces[0]
    tag = PngInfo()
    tag.add_text(FACE_CROP_KEY, name)
    for index, (face, landmarks) in enumerate(zip(faces, result.face_landmarks[0])):
        if alpha is not None:
            face = with_photo_alpha(face, alpha, landmarks)
        save_image(face, output / RESTORED_FACES_FOLDER / f"{name}_{index:02d}.png", gray, **save_options, pnginfo=tag)
    faces_of_name = output / RESTORED_FACES_FOLDER / name  # <name> may hold sub-folders
    earlier_face = re.compile(re.escape(faces_of_name.name) + r"_(\d{2,})\.png")
    for path in faces_of_name.parent.glob(f"{glob.escape(faces_of_name.name)}_*.png"):
        index = earlier_face.fullmatch(path.name)
        if index and int(index.group(1)) >= len(faces) and _face_crop_of(path) == name:
            path.unlink()


def _face_crop_of(path: Path) -> str | None:
    """The output name of the photo whose face crop the PNG at ``path`` is (its `FACE_CROP_KEY` text), or None."""
    from PIL import Image

    from .output_folders import FACE_CROP_KEY

    try:
        with Image.open(path) as pil:
            return getattr(pil, "text", {}).get(FACE_CROP_KEY)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _check_restore_options(pipeline, args: argparse.Namespace, fidelity: float) -> None:
    """`FaceRestorePipeline.check_inputs` of `restore`'s options; its error names the option as the user typed it
    (`--steps`), where the pipeline names its argument (`num_inference_steps`)."""
    try:
        pipeline.check_inputs(upscale=args.upscale, num_inference_steps=args.steps, strength=args.strength, fidelity=fidelity)
    except FacerestError as error:
        argument, _, rest = str(error).partition(" ")
        raise FacerestError(f"{RESTORE_OPTIONS.get(argument, argument)} {rest}") from None


def _restore_inputs(source: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """The images to restore and their output names: the file itself, or a folder's images and those of its
    sub-folders (by extension; broken links too, to be listed as failed), each named by ``_output_names``; and a
    note on each thing left out: sub-folders that hold restore's output (known by its marker), links to folders
    (which may lead back into the input or the output), hidden files and folders (a name starting with ".":
    thumbnails, macOS's "._" resource forks), the "__MACOSX" folder of a zip made on a Mac, and files that are not
    images by their extension (a video, a sidecar: counted by extension)."""
    from .images import IMAGE_EXTENSIONS
    from .output_folders import MARKER_NAME, RESTORE_COMMAND, output_folder_command

    if not source.exists():
        raise FacerestError(f"input not found: {source}")
    if not source.is_dir():
        return [(source, source.stem)], []
    entries = sorted(source.rglob("*"))  # one walk of the folder; links to folders are listed, not followed
    earlier_outputs = sorted(
        entry.parent
        for entry in entries
        if entry.name == MARKER_NAME and output_folder_command(entry.parent) == RESTORE_COMMAND
    )
    files = [
        path
        for path in entries
        if (path.is_file() or (path.is_symlink() and not path.exists()))
        and not any(path.is_relative_to(folder) for folder in earlier_outputs)
    ]
    linked_folders = [path for path in entries if path.is_symlink() and path.is_dir()]
    visible = [path for path in files if not _is_hidden(path.relative_to(source))]
    paths = [path for path in visible if path.suffix.lower() in IMAGE_EXTENSIONS]
    hidden = sum(path.suffix.lower() in IMAGE_EXTENSIONS for path in files) - len(paths)
    others = [path for path in visible if path.suffix.lower() not in IMAGE_EXTENSIONS]
    left_out = [f"not restoring {folder}: it holds an earlier restore output" for folder in earlier_outputs]
    left_out += [f"not restoring {folder}: a link to a folder (give it as INPUT to restore it)" for folder in linked_folders]
    if hidden:
        left_out.append(f"not restoring {hidden} hidden image file(s) (a name starting with '.', or in __MACOSX/)")
    others_note = ""
    if others:
        kinds = ", ".join(sorted({path.suffix.lower() or "no extension" for path in others}))
        others_note = f"{len(others)} file(s) that are not images by their extension ({kinds})"
        left_out.append(f"not restoring {others_note}")
    if not paths:
        raise FacerestError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {source} or its sub-folders"
            + (f", only {hidden} hidden one(s)" if hidden else "")
            + (f"; it holds {others_note}" if others else "")
        )
    inputs = _output_names(paths, source)
    _check_face_names(inputs, source)
    return [(path, name) for name, path in inputs.items()], left_out


def _output_names(paths: list[Path], source: Path) -> dict[str, Path]:
    """Each image by its output name: its path in ``source`` without extension, or, where two images differ only by
    extension (photo.jpg and photo.png), with it (photo_jpg, photo_png), so that neither overwrites the other."""
    from collections import Counter

    stems = [path.relative_to(source).with_suffix("").as_posix() for path in paths]
    shared_stems = {stem for stem, count in Counter(stems).items() if count > 1}
    inputs = {}
    for path, stem in zip(paths, stems):
        name = f"{stem}_{path.suffix[1:]}" if stem in shared_stems else stem
        if name in inputs:
            raise FacerestError(f"{inputs[name]} and {path} would both be written as {name}.png: rename one of them")
        inputs[name] = path
    return inputs


def _is_hidden(relative_path: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative_path.parts)


def _check_face_names(inputs: dict[str, Path], source: Path) -> None:
    """Refuse an image whose output name is that of another image's restored face (faces/<name>_<index>)."""
    import re

    for name, path in inputs.items():
        face_of = re.fullmatch(r"faces/(.+)_\d{2,}", name)
        if face_of and face_of.group(1) in inputs:
            raise FacerestError(
                f"{path} would be written as {name}.png, where the restored faces of {inputs[face_of.group(1)]} go: "
                f"restore the sub-folder {source / 'faces'} on its own, or rename it"
            )


def _compare(args) -> int:
    from .compare import compare_models
    from .devices import resolve_device
    from .output_folders import COMPARE_COMMAND, check_writable_folder, mark_output_folder
    from .pipeline import MAX_SEED

    models = {}
    for entry in args.model:
        name, separator, path = entry.partition("=")
        if not separator or not name or not path:
            raise FacerestError(f"--model takes NAME=PATH, got {entry!r}")
        if name in models:
            raise FacerestError(f"two models are named {name!r}")
        models[name] = path
    try:
        steps = [int(count) for count in args.steps.split(",")]
    except ValueError:
        raise FacerestError(f"--steps takes comma-separated whole numbers, got {args.steps!r}") from None
    _check_whole("--batch-size", args.batch_size, 1)
    _check_whole("--seed", args.seed, 0, MAX_SEED)
    device = resolve_device(args.device)
    dtype = _model_dtype(args.dtype, device)
    if args.strength is not None and not 0 < args.strength <= 1:
        raise FacerestError(f"--strength must lie in (0, 1], got {shown_value(args.strength)}")
    testset = Path(args.testset).resolve()
    out = Path(args.out) if args.out else testset.parent / f"{testset.name}_compare"
    check_writable_folder(out.parent, "folder of --out")
    _check_compare_output(out)
    comparison = compare_models(
        testset, models, out, steps=steps, strength=args.strength, seed=args.seed, device=device,
        dtype=dtype, weights_dirs=args.weights_dir, batch_size=args.batch_size,
    )
    mark_output_folder(out, COMPARE_COMMAND)
    markdown_path, csv_path = comparison.write(out)
    print(comparison.markdown(), end="")
    print(f"wrote {markdown_path}, {csv_path} and the restored faces under {out}/")
    return 0




def _check_compare_output(out: Path) -> None:
    """``FacerestError`` unless ``compare --out OUT`` writes only what it owns: the folder ``OUT`` (the restored faces)
    new, empty or an earlier comparison's, and ``OUT.md`` and ``OUT.csv`` new or that comparison's."""
    from .output_folders import COMPARE_COMMAND, output_folder_command

    if out.exists() and not out.is_dir():
        raise FacerestError(f"--out {out} is a file; give the name of a folder for the restored faces")
    if output_folder_command(out) == COMPARE_COMMAND:
        return
    if out.is_dir() and any(out.iterdir()):
        raise FacerestError(f"--out {out} holds files that compare did not write; give a new or empty folder")
    tables = [path for path in (out.with_name(out.name + ".md"), out.with_name(out.name + ".csv")) if path.exists()]
    if tables:
        raise FacerestError(f"--out {out}: {tables[0]} exists and compare did not write it; give another --out")


def _check_whole(option: str, value: int, low: int, high: int | None = None) -> None:
    """``FacerestError`` when a whole-number option is out of range."""
    if value >= low and (high is None or value <= high):
        return
    limits = f"from {low} to {high}" if high is not None else f"of at least {low}"
    raise FacerestError(f"{option} must be a whole number {limits}, got {shown_value(value)}")


def _add_bench_parser(commands) -> None:
    """``bench`` is listed here but parsed by the benchmark itself (``python -m bench``), which ships with the
    source repository, not with the library."""
    commands.add_parser(
        "bench",
        add_help=False,
        help="time the models and the whole-photo pipeline, side by side with the official GFP-GAN "
        "(from a source checkout; see python -m facerest bench --help)",
    )


def _bench(arguments: list[str]) -> int:
    """Run ``python -m bench ARGUMENTS`` from the working directory when it holds the repository's bench package."""
    import subprocess

    if not (Path.cwd() / "bench" / "__main__.py").is_file():
        raise FacerestError(
            "the benchmark ships with the source repository, not with the library: run python -m facerest bench "
            "(or python -m bench) from the root of a facerest checkout"
        )
    # `python -m` puts the working directory first on the path: the checkout's bench and facerest are run
    return subprocess.run([sys.executable, "-m", "bench", "--prog", "python -m facerest bench", *arguments]).returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["bench"]:
            return _bench(argv[1:])
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except FacerestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
