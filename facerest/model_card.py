"""Model cards for saved `FaceRestorePipeline` folders, for every push (`facerest.push`: hub/push.py,
hub/convert_gfpgan.py and the training scripts' `--push_to_hub`).

    from facerest.model_card import build_model_card

    card = build_model_card("runs/gfpgan64/pipeline", "user/facerest-gfpgan64",
                            metrics_file="runs/gfpgan64/metrics.md", sample_grid="sample_grid.png",
                            training_command="python train/train_gfpgan.py ...", training_budget="1000 steps x 4")
    card.save("runs/gfpgan64/pipeline/README.md")

The card reads only the saved folder's JSON files and safetensors headers (no model is loaded): the kind of
pipeline (gfpgan / idm / hybrid) comes from `model_index.json`, the face size and parameter counts from the
component configs and weights. The YAML metadata is written with huggingface_hub's `ModelCardData`.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from huggingface_hub import ModelCard, ModelCardData

from .errors import FacerestError
from .saved_pipeline import check_saved_pipeline

SAMPLE_GRID_NAME = "sample_grid.png"

KIND_DESCRIPTIONS = {
    "gfpgan": (
        "a **GFP-GAN** restorer (GFPGANv1Clean architecture: a U-Net encoder whose features modulate a StyleGAN2 "
        "decoder through spatial feature transforms). One forward pass restores a batch of aligned faces."
    ),
    "idm": (
        "an **IDM** conditional diffusion model (a `UNet2DModel` denoiser taking the noisy face concatenated with "
        "the degraded face, and the `IDMScheduler`). Faces are restored by the reverse diffusion process, "
        "conditioned on the degraded input."
    ),
    "hybrid": (
        "a **hybrid** of a GFP-GAN restorer and an IDM diffusion model: the GAN's estimate is noised to a level "
        "set by `strength` and refined by the last steps of the IDM reverse process, conditioned on the degraded "
        "face (`strength=1` is pure IDM)."
    ),
}
KIND_TAGS = {"gfpgan": ["gfpgan", "gan"], "idm": ["diffusion", "idm"], "hybrid": ["gfpgan", "gan", "diffusion", "idm"]}
BASE_TAGS = ["face-restoration", "image-restoration", "facerest"]


class NotASavedPipeline(ValueError):
    """The folder is not one written by `FaceRestorePipeline.save_pretrained`."""


@dataclass
class PipelineSummary:
    """What a saved pipeline folder holds, read from its files."""

    kind: str
    components: dict[str, str]  # component -> class name
    face_size: int | None = None
    parameters: dict[str, int] = field(default_factory=dict)  # component -> parameter count
    weight_bytes: int = 0


def read_pipeline(model_dir: str | os.PathLike) -> PipelineSummary:
    """Summarise a saved pipeline folder; raise `NotASavedPipeline` (with the reason) when it is not one."""
    model_dir = Path(model_dir)
    try:
        components = check_saved_pipeline(model_dir)
    except FacerestError as error:
        raise NotASavedPipeline(str(error)) from None
    kind = "gfpgan" if "unet" not in components else ("idm" if "restorer" not in components else "hybrid")
    summary = PipelineSummary(kind=kind, components=components)
    sizes = []
    for name, key in (("unet", "sample_size"), ("restorer", "out_size")):  # as the pipeline: the unet's when there is one
        config = _read_json(model_dir / name / "config.json") if name in components else {}
        size = config.get(key)
        size = size[0] if isinstance(size, list) and size and len(set(size)) == 1 else size
        if isinstance(size, int):
            sizes.append(size)
    summary.face_size = sizes[0] if sizes else None
    for name in components:
        for weights in sorted((model_dir / name).glob("*.safetensors")):
            summary.parameters[name] = summary.parameters.get(name, 0) + _safetensors_parameter_count(weights)
            summary.weight_bytes += weights.stat().st_size
    return summary


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _safetensors_parameter_count(path: Path) -> int:
    """Number of tensor elements in a safetensors file, from its JSON header (no tensor is read)."""
    try:
        with open(path, "rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            header = json.loads(file.read(length))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError):
        return 0
    count = 0
    for name, info in header.items():
        if name != "__metadata__" and isinstance(info, dict):
            elements = 1
            for dim in info.get("shape", []):
                elements *= dim
            count += elements
    return count


def read_metrics_table(path: str | os.PathLike) -> str:
    """The Markdown of a metrics file (e.g. ``python -m facerest evaluate --out`` or ``compare``): a table, with
    any notes under it. Headings are demoted below the card's own."""
    text = Path(path).read_text(encoding="utf-8").strip()
    if "|" not in text:
        raise ValueError(f"{path} holds no Markdown table")
    lines = [("###" + line.lstrip("#")) if line.startswith("#") else line for line in text.splitlines()]
    return "\n".join(lines)


def _format_count(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count:,}"


def build_model_card(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    metrics_file: str | os.PathLike | None = None,
    sample_grid: str | None = None,
    training_command: str | None = None,
    training_budget: str | None = None,
    hardware: str | None = None,
    training_data: str | None = None,
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    license: str = "apache-2.0",
    tags: Sequence[str] = (),
    description: str | None = None,
    limitations: str | None = None,
) -> ModelCard:
    """A model card for the saved pipeline in ``model_dir``, to be pushed as ``repo_id``.

    ``sample_grid`` is the image's path *inside the repository* (the caller copies the file there); the metrics
    table is read from ``metrics_file``. ``base_model`` is set for converted or fine-tuned models (e.g.
    ``TencentARC/GFPGAN``). ``limitations`` is this model's own, added to those of every restoration model.
    """
    summary = read_pipeline(model_dir)
    all_tags = list(dict.fromkeys([*BASE_TAGS, *KIND_TAGS[summary.kind], *tags]))
    card_data = ModelCardData(
        license=license,
        library_name="facerest",  # not plain diffusers: DiffusionPipeline.from_pretrained cannot load its components
        pipeline_tag="image-to-image",
        tags=all_tags,
        datasets=list(datasets) or None,
        base_model=base_model,
    )

    lines = [f"# {repo_id.split('/')[-1]}", ""]
    lines += [description.strip(), ""] if description else []
    lines += _contents_lines(summary, base_model) + _usage_lines(repo_id)
    lines += _training_lines(training_command, training_budget, hardware, training_data)
    if metrics_file:
        lines += ["## Evaluation", "", read_metrics_table(metrics_file), ""]
    if sample_grid:
        lines += ["## Samples", "", f"![sample grid]({sample_grid})", ""]

    lines += [
        "## Limitations",
        "",
        "Restoration invents plausible detail: the output is not evidence of what a face looked like. "
        "Faces are expected to be roughly frontal and detectable; results on very small models and short "
        "training budgets are blurry.",
        "",
    ]
    lines += [limitations.strip(), ""] if limitations else []
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)


def _contents_lines(summary: PipelineSummary, base_model: str | None) -> list[str]:
    """What the repository holds: the kind, a table of the components, the face size, the model it comes from."""
    lines = [
        f"A blind face restoration model for **facerest**, saved as a `FaceRestorePipeline` "
        f"(a diffusers `DiffusionPipeline`). This repository holds {KIND_DESCRIPTIONS[summary.kind]}",
        "",
        "| component | class | parameters |",
        "|---|---|---|",
    ]
    for name, class_name in summary.components.items():
        count = summary.parameters.get(name)
        lines.append(f"| `{name}` | `{class_name}` | {_format_count(count) if count else '-'} |")
    lines.append("")
    if summary.face_size:
        lines += [
            f"Faces are restored at **{summary.face_size} x {summary.face_size} px**, aligned to the FFHQ template; "
            "whole photos are handled by the pipeline (detection, alignment, paste-back).",
            "",
        ]
    if base_model:
        lines += [f"Converted from [{base_model}](https://huggingface.co/{base_model}).", ""]
    return lines


def _usage_lines(repo_id: str) -> list[str]:
    return [
        "## How to use",
        "",
        "```bash",
        "pip install -r requirements.txt && pip install -e .   # in a facerest checkout",
        "```",
        "",
        "```python",
        "from facerest import FaceRestorePipeline",
        "",
        f'pipeline = FaceRestorePipeline.from_pretrained("{repo_id}")',
        'output = pipeline("photo.jpg")            # detects, aligns, restores and pastes back every face',
        'output.images[0].save("restored.png")',
        "```",
        "",
        "Command line: `python -m facerest restore INPUT -o OUTPUT_DIR --model " + repo_id + "`.",
        "",
    ]


def _training_lines(command: str | None, budget: str | None, hardware: str | None, data: str | None) -> list[str]:
    if not (command or budget or hardware or data):
        return []
    lines = ["## Training", ""]
    if data:
        lines += [f"- **Data:** {data}"]
    if budget:
        lines += [f"- **Budget:** {budget}"]
    if hardware:
        lines += [f"- **Hardware:** {hardware}"]
    lines.append("")
    if command:
        lines += ["```bash", command.strip(), "```", ""]
    return lines
