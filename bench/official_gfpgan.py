"""The official side of ``python -m facerest bench``: TencentARC's ``gfpgan`` package, timed on the same work.

Runs in a throwaway environment that is never a project dependency (see BENCHMARKS.md, "The official
implementation"):

    python3 -m venv /tmp/official-env
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/official-env/lib/python3.11/site-packages/facerest_venv.pth
    /tmp/official-env/bin/pip install wheel
    /tmp/official-env/bin/pip install --no-deps --no-build-isolation gfpgan basicsr

``facerest bench`` writes a spec (JSON), runs ``/tmp/official-env/bin/python bench/official_gfpgan.py SPEC OUT`` with
the repository on ``PYTHONPATH`` (for ``facerest``, whose detector settings it gives the same weights file) and
reads OUT (JSON). For each GFPGANv1Clean configuration of the spec this script builds the official network with
seeded random weights, saves them as an official checkpoint (``{"params_ema": ...}`` in a ``.pth``, which the
bench converts into ``GFPGANModel`` with ``facerest.models.gfpgan.load_original_weights``) and times its forward
pass; then it times ``GFPGANer.enhance`` on each photo, stage by stage, with:

- the same detector as ours: facexlib's RetinaFace mobilenet0.25 with the weights of ``detector_weights_dir``,
  adjusted like ``facerest.face_detection`` adjusts it for the same file (anchor sizes, ReLU slope), score
  threshold 0.97;
- no face-parsing network (``use_parse=False``, and its loading skipped: its weights are not available offline;
  ours has none either);
- ``upscale=1``, no background upsampler.

``GFPGANer.__init__`` hard-codes the v1.3/v1.4 network (narrow 1, 512 px), a resnet50 detector, the parsing
network and a checkpoint path, so the helper is assembled here with the same attributes instead.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path


def _import_official():
    """The official classes, with the shim basicsr's import needs on current torchvision."""
    import torchvision.transforms.functional as functional

    # basicsr imports torchvision.transforms.functional_tensor (renamed _functional_tensor in torchvision 0.17).
    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional)
    from facexlib.utils.face_restoration_helper import FaceRestoreHelper
    from gfpgan import GFPGANer
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    return GFPGANer, GFPGANv1Clean, FaceRestoreHelper


def _versions() -> dict:
    from importlib import metadata

    import torch

    versions = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("gfpgan", "basicsr", "facexlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_network(GFPGANv1Clean, config: dict, seed: int):
    import torch

    torch.manual_seed(seed)
    network = GFPGANv1Clean(
        out_size=config["out_size"],
        num_style_feat=config["num_style_feat"],
        channel_multiplier=config["channel_multiplier"],
        narrow=config["narrow"],
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        sft_half=True,
    )
    return network.eval()


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(network, out_size: int, repeats: int, device) -> list[float]:
    """Seconds of each forward pass of one face (after one untimed warm-up pass), as ``GFPGANer.enhance`` calls it."""
    import torch

    face = torch.rand(1, 3, out_size, out_size).to(device) * 2 - 1
    seconds = []
    with torch.no_grad():
        network(face, return_rgb=False)
        _sync(device)
        for _ in range(repeats):
            started = time.perf_counter()
            network(face, return_rgb=False)
            _sync(device)
            seconds.append(time.perf_counter() - started)
    return seconds


def make_restorer(GFPGANer, FaceRestoreHelper, network, detector_weights_dir: str, device):
    """A ``GFPGANer`` holding ``network`` and a FaceRestoreHelper with the mobilenet0.25 detector, no parsing net."""
    import facexlib.utils.face_restoration_helper as helper_module

    restorer = GFPGANer.__new__(GFPGANer)
    restorer.upscale = 1
    restorer.bg_upsampler = None
    restorer.device = device
    restorer.gfpgan = network.to(device)
    # FaceRestoreHelper loads its parsing network even with use_parse=False (and would download it): skip that.
    init_parsing_model = helper_module.init_parsing_model
    helper_module.init_parsing_model = lambda *args, **kwargs: None
    try:
        restorer.face_helper = FaceRestoreHelper(
            1,
            face_size=512,
            crop_ratio=(1, 1),
            det_model="retinaface_mobile0.25",
            save_ext="png",
            use_parse=False,
            device=restorer.device,
            model_rootpath=detector_weights_dir,
        )
    finally:
        helper_module.init_parsing_model = init_parsing_model
    _adjust_detector(restorer.face_helper.face_det, Path(detector_weights_dir) / "detection_mobilenet0.25_Final.pth")
    return restorer


def _adjust_detector(network, weights_path: Path) -> None:
    """Give the official detector the settings ``facerest.face_detection`` gives the same weights file (known by
    SHA-256)."""
    import torch
    from facerest.face_detection import RETINAFACE_VARIANTS_BY_SHA256, _sha256

    variant = RETINAFACE_VARIANTS_BY_SHA256.get(_sha256(weights_path))
    if variant is None:
        return
    network.cfg = {**network.cfg, "min_sizes": variant["anchor_sizes"]}
    for module in network.modules():
        if isinstance(module, torch.nn.LeakyReLU):
            module.negative_slope = variant["leaky_relu_slope"]


def time_photo(restorer, path: str) -> dict:
    """``GFPGANer.enhance(img)`` on one photo, step by step as its source runs them, each step timed; then the
    whole ``enhance`` call again, as a check that the steps add up to it."""
    import cv2
    import torch
    from basicsr.utils import img2tensor, tensor2img
    from torchvision.transforms.functional import normalize

    helper = restorer.face_helper
    stages = {}

    def lap(name, started):
        stages[name] = time.perf_counter() - started
        return time.perf_counter()

    started = time.perf_counter()
    first = started
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    started = lap("decode", started)
    with torch.no_grad():
        helper.clean_all()
        helper.read_image(image)
        helper.get_face_landmarks_5(only_center_face=False, eye_dist_threshold=5)
        started = lap("detect", started)
        helper.align_warp_face()
        started = lap("align", started)
        for cropped_face in helper.cropped_faces:
            face = img2tensor(cropped_face / 255.0, bgr2rgb=True, float32=True)
            normalize(face, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), inplace=True)
            output = restorer.gfpgan(face.unsqueeze(0).to(restorer.device), return_rgb=False, weight=0.5)[0]
            helper.add_restored_face(tensor2img(output.squeeze(0), rgb2bgr=True, min_max=(-1, 1)).astype("uint8"))
        _sync(restorer.device)
        started = lap("restore", started)
        helper.get_inverse_affine(None)
        helper.paste_faces_to_input_image(upsample_img=None)
        lap("paste", started)
    total = time.perf_counter() - first
    faces = len(helper.cropped_faces)

    started = time.perf_counter()
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    restorer.enhance(image, has_aligned=False, only_center_face=False, paste_back=True)
    enhance = time.perf_counter() - started
    return {"path": path, "faces": faces, "stages": stages, "total": total, "enhance": enhance}


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec.get("device", "cpu"))
    result = {"versions": _versions(), "threads": torch.get_num_threads(), "forward": {}, "photos": []}
    try:
        GFPGANer, GFPGANv1Clean, FaceRestoreHelper = _import_official()
    except Exception as error:  # any import failure means: not usable here
        result["error"] = f"cannot import the official gfpgan: {type(error).__name__}: {error}"
        Path(out_path).write_text(json.dumps(result, indent=1))
        return 0

    networks = {}
    for name, config in spec["configs"].items():
        network = build_network(GFPGANv1Clean, config, spec["seed"])
        torch.save({"params_ema": network.state_dict()}, Path(spec["weights_dir"]) / f"{name}.pth")
        networks[name] = network
        if config.get("time_forward", True):
            seconds = time_forward(network.to(device), config["out_size"], config.get("repeats", spec["forward_repeats"]), device)
            result["forward"][name] = {"seconds": seconds, "median": statistics.median(seconds)}

    if spec.get("photos"):
        restorer = make_restorer(
            GFPGANer, FaceRestoreHelper, networks[spec["photo_config"]], spec["detector_weights_dir"], device
        )
        time_photo(restorer, spec["photos"][0])  # warm-up: first-call allocations of the detector and the network
        for path in spec["photos"]:  # the fastest of `passes` runs of each photo (the machine may be shared)
            runs = [time_photo(restorer, path) for _ in range(spec.get("passes", 1))]
            best = min(runs, key=lambda run: run["enhance"])
            best["total"] = min(run["total"] for run in runs)
            best["stages"] = {name: min(run["stages"][name] for run in runs) for name in best["stages"]}
            result["photos"].append(best)
    Path(out_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: official_gfpgan.py SPEC.json OUT.json", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main(sys.argv[1], sys.argv[2]))
