"""`FaceRestorePipeline`: faces in, restored photo out, with GFP-GAN, the IDM diffusion model, or both.

The flow of one photo (see DESIGN.md, "How an image flows"): decode -> detect faces -> align each face to the FFHQ
template at 512 px and resize it to the model's resolution -> restore the photo's faces (in batches of 8 on a GPU, one
per forward pass on the CPU: `default_face_batch_size`) -> add what the model changed (restored minus degraded face,
times `fidelity`) back into the photo (optionally enlarged).

Only the model's change is warped back, never the photo's own pixels: a face that is larger in the photo than the
model's resolution keeps the photo's detail above that resolution (the band the model cannot see), and the band the
model restores is replaced by its restoration. A noisy face is denoised at the photo's own pixels first (`denoise`:
non-local means where the noise level around a face is above `facerest.denoise.DENOISE_ABOVE`), the faces of a photo
saved as a small JPEG and enlarged are deblocked first (`facerest.deblock`), and the model's change is added to the
photo so cleaned; of the band finer than the model's pixels, which the model never sees, the
photo keeps its own detail and loses what reads as noise there (`facerest.denoise.fine_noise`). A face that the
change leaves less sharp than the face it was given (`never_blur`) keeps that face. A face keeps the photo's lighting
(a Gaussian blur at a sixteenth of the face: `PHOTO_LIGHTING_SCALE`), and a gray or sepia face its tone (the
restoration's luma, the input's chroma).
"""

from __future__ import annotations

import functools
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import cv2
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, UNet2DModel
from diffusers.utils import BaseOutput
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError

from .deblock import JPEG_BLOCK, deblocked, enlarged_jpeg_period
from .denoise import denoised, denoised_faces, face_region, fine_noise, noise_level, with_face_regions_cleaned
from .errors import FacerestError, ImageReadError, one_line
from .faces import (
    FFHQ_TEMPLATE_512, FaceDetector, add_face_corrections, aligned_crop, face_alignment, face_window, points_before_turn,
)  # fmt: skip
from .images import (
    DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS, ImageSource, check_output_size, image_to_tensor, input_notes,
    is_monochrome, load_image, resize_square, tensor_to_image, with_chroma_of,
)
from .metrics import gradient_sharpness
from .models.gfpgan import GFPGANModel
from .models.idm import IDMScheduler, idm_sample
from .saved_pipeline import DOWNLOAD_ARGUMENTS, check_saved_pipeline, pipeline_folder

# Faces are aligned to the FFHQ template at this size (as GFP-GAN's FaceRestoreHelper) and pasted back from it.
ALIGN_SIZE = 512
# The hybrid's default strength: the GAN estimate is noised 30% of the way up the schedule, so IDM refines its
# detail and texture while keeping the GAN's structure, and only 30% of the steps are run.
DEFAULT_HYBRID_STRENGTH = 0.3
# The strength a call samples at when it names none, by pipeline kind (`FaceRestorePipeline.default_strength`): IDM
# starts from pure noise; GFP-GAN alone samples nothing and takes no strength.
DEFAULT_STRENGTHS = {"gfpgan": None, "idm": 1.0, "hybrid": DEFAULT_HYBRID_STRENGTH}
MAX_UPSCALE = 4
MAX_SEED = 2**63 - 1  # the largest seed torch.Generator.manual_seed takes
# IDM steps of the full schedule when neither the call nor the saved pipeline (`default_inference_steps`) says.
DEFAULT_INFERENCE_STEPS = 25
# How much of the model's change to a face is kept: 0 returns the input face, 1 the full restoration.
DEFAULT_FIDELITY = 1.0
# In a photo, a face keeps the lighting of the photo around it (`_in_lighting_of`): what a Gaussian blur at this
# fraction of the face's size keeps (its exposure, the colour cast over it) comes from the photo, not from the model,
# which learnt to undo the degradation's brightness and colour jitter and so lit up the faces of a dark photo as patches.
PHOTO_LIGHTING_SCALE = 1 / 16
# The largest size, in pixels, that the lighting is computed at (the blur keeps nothing finer; at 512 px it took
# 10 times as long as at 128).
LIGHTING_RESOLUTION = 128
# Added to both lightings before their ratio is taken (0-255 units), so that near-black regions do not blow it up.
LIGHTING_FLOOR = 8.0
# A deblocked face (`facerest.deblock`) whose restoration keeps less than this share of the photo's sharpness in its box
# lost detail of its own, not a JPEG's blocks: the grid was a tiled or brick wall's behind it, and the face is restored
# again without deblocking. Faces of photos from outside the project, shrunk 2-4 times, saved as JPEG of quality 30 or
# 50 and enlarged back, kept 0.94-1.17 of the blocky photo's; clean faces before tiles or bricks of 16-80 px, taken for
# grids, 0.43-0.93 (`bench/deblock_walls.py`; docs/restoring.md, "JPEG blocks of an enlarged photo").
DEBLOCKED_SHARPNESS_SHARE = 0.9
# Faces restored in one forward pass unless told otherwise (on the CPU: one, see `default_face_batch_size`).
DEFAULT_FACE_BATCH_SIZE = 8
OUTPUT_TYPES = ("pil", "np")

DetectorSettings = Union[FaceDetector, str, dict, None]


@dataclass
class FaceRestorePipelineOutput(BaseOutput):
    """
    Output of [`FaceRestorePipeline.__call__`], one entry per input image in each list.

    Args:
        images (`list[PIL.Image.Image]` or `list[np.ndarray]`):
            The restored photos, `upscale` times the input size; RGB uint8 arrays with `output_type="np"`.
        restored_faces (`list[list[PIL.Image.Image]]` or `list[list[np.ndarray]]`):
            Per photo, the restored aligned faces at the model's resolution (`face_size`), in the order of
            `face_boxes`.
        face_boxes (`list[np.ndarray]`):
            Per photo, the faces' boxes, `(num_faces, 4)` float32 `x1, y1, x2, y2` in input pixels (the whole image
            with `aligned=True`).
        face_landmarks (`list[np.ndarray]`):
            Per photo, the faces' 5 landmarks (eyes, nose, mouth corners), `(num_faces, 5, 2)` float32 in input
            pixels (the FFHQ template's with `aligned=True`).
        detector (`str` or `None`):
            The face detector that ran (`FaceDetector.name`, e.g. `"retinaface-resnet50"` or `"mtcnn"`); `None`
            with `aligned=True`.
        messages (`list[list[str]]`):
            Per photo, what the user should know, e.g. `"no face found: returned unchanged"`.
    """

    images: list
    restored_faces: list
    face_boxes: list
    face_landmarks: list
    detector: str | None
    messages: list


class FaceRestorePipeline(DiffusionPipeline):
    r"""
    Blind face restoration of photos or aligned faces.

    Three kinds, by the components present (`kind`):

    - `"gfpgan"`: `restorer` only; one forward pass of GFP-GAN.
    - `"idm"`: `unet` and `scheduler`; the IDM reverse process conditioned on the degraded face.
    - `"hybrid"`: all three; the GAN estimate is noised to `strength` and refined by the last IDM steps,
      conditioned on the degraded face. `strength=1` is pure IDM.

    This model inherits from [`DiffusionPipeline`]: see it for the generic methods (`save_pretrained`,
    `push_to_hub`, `to`, ...). Weights are saved as safetensors, one folder per component.

    Args:
        restorer ([`GFPGANModel`], *optional*):
            The GAN restorer.
        unet ([`UNet2DModel`], *optional*):
            The IDM denoiser: `in_channels=6` (noisy sample and degraded face), `out_channels=3`.
        scheduler ([`IDMScheduler`], *optional*):
            The scheduler the `unet` was trained with; required with `unet`.
        default_inference_steps (`int`, *optional*):
            The IDM steps a call runs when it names none, saved with the pipeline (the count its model card
            recommends); `None` means `DEFAULT_INFERENCE_STEPS` (25).

    Example:

    ```python
    >>> from facerest import FaceRestorePipeline

    >>> pipeline = FaceRestorePipeline.from_pretrained("path/to/model").to("cuda")
    >>> output = pipeline("photo.jpg", upscale=2)
    >>> output.images[0].save("restored.png")
    ```
    """

    model_cpu_offload_seq = "restorer->unet"
    _optional_components = ["restorer", "unet", "scheduler"]

    def __init__(
        self,
        restorer: GFPGANModel | None = None,
        unet: UNet2DModel | None = None,
        scheduler: IDMScheduler | None = None,
        default_inference_steps: int | None = None,
    ):
        super().__init__()
        _check_components(restorer, unet, scheduler)
        if default_inference_steps is not None and (
            isinstance(default_inference_steps, bool) or not isinstance(default_inference_steps, int) or default_inference_steps < 1
        ):
            raise FacerestError(f"default_inference_steps must be a positive whole number, got {default_inference_steps!r}")
        self.register_modules(restorer=restorer, unet=unet, scheduler=scheduler)
        self.register_to_config(default_inference_steps=default_inference_steps)
        self._face_detector: FaceDetector | None = None
        self._face_detector_key: tuple | None = None

    @property
    def kind(self) -> str:
        """`"gfpgan"`, `"idm"` or `"hybrid"`, by the models present."""
        if self.unet is None:
            return "gfpgan"
        return "idm" if self.restorer is None else "hybrid"

    @property
    def default_strength(self) -> float | None:
        """The strength a call samples at when it names none: 1.0 for `"idm"`, `DEFAULT_HYBRID_STRENGTH` (0.3) for
        `"hybrid"`; None for `"gfpgan"`, which takes none (see `DEFAULT_STRENGTHS`)."""
        return DEFAULT_STRENGTHS[self.kind]

    @property
    def default_inference_steps(self) -> int:
        """The IDM steps a call runs when it names none: the saved pipeline's, else `DEFAULT_INFERENCE_STEPS`."""
        return self.config.get("default_inference_steps") or DEFAULT_INFERENCE_STEPS

    @property
    def face_size(self) -> int:
        """The side in pixels of the aligned faces the pipeline restores: the IDM unet's when there is one (a hybrid's
        GAN may work at another size: its estimate is then resized to the unet's), else the restorer's."""
        return _face_size(self.restorer, self.unet)

    @property
    def default_face_batch_size(self) -> int:
        """Faces per forward pass when `face_batch_size` is not given: 8 on an accelerator, 1 on the CPU.

        On the CPU a batch of faces' activations outgrows the caches, so one face per pass is faster (see
        BENCHMARKS.md); a GFP-GAN pipeline's passes moreover run side by side, one per CPU thread, since the
        convolutions of one face do not split well over the cores. An IDM's passes run one after the other, drawing
        their noise from the generator in turn.
        """
        return 1 if self.device.type == "cpu" else DEFAULT_FACE_BATCH_SIZE

    @property
    def _faces_side_by_side(self) -> bool:
        # only GFP-GAN: its forward draws no random numbers, so the order the passes run in cannot change the result
        return self.unet is None and self.restorer.device.type == "cpu"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "FaceRestorePipeline":
        r"""
        Load a pipeline saved with `save_pretrained`, from a folder or a Hub repository (`"owner/name"`).

        The saved files are checked first, so a missing or corrupt file gives a `FacerestError` naming it. Hub
        repositories are fetched with `huggingface_hub.snapshot_download` (accepting `revision`, `token`,
        `cache_dir`, `force_download` and `local_files_only`); the other keyword arguments (e.g. `dtype`) go to
        [`DiffusionPipeline.from_pretrained`].
        """
        download = {name: kwargs.pop(name) for name in DOWNLOAD_ARGUMENTS if name in kwargs}
        folder = pipeline_folder(pretrained_model_name_or_path, download)
        check_saved_pipeline(folder, kwargs.get("variant"))
        try:
            return super().from_pretrained(folder, **kwargs)
        except (OSError, ValueError, TypeError, RuntimeError, SafetensorError, StrictDataclassError) as error:
            # TypeError and StrictDataclassError: a config.json value of the wrong type (multi-line messages)
            raise FacerestError(f"cannot load a FaceRestorePipeline from {folder}: {one_line(error)}") from None

    @classmethod
    def hybrid(
        cls, gan: "FaceRestorePipeline | str | os.PathLike", idm: "FaceRestorePipeline | str | os.PathLike"
    ) -> "FaceRestorePipeline":
        """The hybrid of a GFP-GAN pipeline and an IDM pipeline (each loaded, or a folder or Hub id to load), sharing
        their modules. It restores at the IDM's face size; a GAN of another size restores the faces resized to its
        own, and its estimate is resized back."""
        gan, idm = (part if isinstance(part, FaceRestorePipeline) else cls.from_pretrained(part) for part in (gan, idm))
        if gan.restorer is None or idm.unet is None:
            raise FacerestError(f"a hybrid needs a GFP-GAN and an IDM pipeline, in that order; got {gan.kind!r} and {idm.kind!r}")
        return cls(
            restorer=gan.restorer, unet=idm.unet, scheduler=idm.scheduler,
            default_inference_steps=idm.config.get("default_inference_steps"),
        )  # fmt: skip

    def face_detector(self, detector: DetectorSettings = None) -> FaceDetector:
        """
        The face detector for these settings, created on first use and cached on the pipeline.

        Args:
            detector (`FaceDetector`, `str`, `dict` or `None`):
                A ready [`FaceDetector`] (returned as is), a backend name (`"auto"`, `"retinaface"`, `"mtcnn"`), or
                a dict of `FaceDetector` arguments. `None` is `"auto"`: RetinaFace with weights from
                `$FACEREST_DETECTOR_WEIGHTS` (or the usual places, see `facerest.faces`), else MTCNN. The detector
                runs on the pipeline's device unless the settings name one.
        """
        if isinstance(detector, FaceDetector):
            return detector
        if detector is not None and not isinstance(detector, (str, dict)):
            raise FacerestError(f"detector must be a FaceDetector, a backend name or a dict of its settings, got {detector!r}")
        settings = {"backend": detector} if isinstance(detector, str) else dict(detector or {})
        known = inspect.signature(FaceDetector).parameters
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise FacerestError(f"unknown detector setting(s) {', '.join(unknown)}; FaceDetector takes {', '.join(known)}")
        settings.setdefault("backend", "auto")
        settings.setdefault("device", self.device)
        key = tuple(sorted((name, str(value)) for name, value in settings.items()))
        if self._face_detector is None or self._face_detector_key != key:
            self._face_detector = FaceDetector(**settings)
            self._face_detector_key = key
        return self._face_detector

    def check_inputs(
        self,
        upscale: int = 1,
        num_inference_steps: int | None = None,
        strength: float | None = None,
        output_type: str = "pil",
        face_batch_size: int | None = None,
        fidelity: float = DEFAULT_FIDELITY,
        eta: float | None = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        generators_needed: int | None = None,
        min_face_size: float | None = None,
    ) -> None:
        """Raise a `FacerestError` saying which argument of [`~FaceRestorePipeline.__call__`] is out of range or of
        the wrong type; a list of generators must hold `generators_needed` (one per image, or per face)."""
        if not _is_whole(upscale) or not 1 <= upscale <= MAX_UPSCALE:
            raise FacerestError(f"upscale must be a whole number from 1 to {MAX_UPSCALE}, got {upscale!r}")
        if not _is_real(fidelity) or not 0.0 <= fidelity <= 1.0:
            raise FacerestError(f"fidelity must be a number from 0 (the input face) to 1 (the full restoration), got {fidelity!r}")
        if output_type not in OUTPUT_TYPES:
            raise FacerestError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        if face_batch_size is not None and (not _is_whole(face_batch_size) or face_batch_size < 1):
            raise FacerestError(f"face_batch_size must be a whole number of at least 1, got {face_batch_size!r}")
        if min_face_size is not None and (not _is_real(min_face_size) or min_face_size < 0):
            raise FacerestError(f"min_face_size must be a number of pixels, 0 or more, got {min_face_size!r}")
        if eta is not None and (not _is_real(eta) or not 0.0 <= eta <= 1.0):
            raise FacerestError(f"eta must be None (the ancestral update) or a number from 0 to 1 (DDIM), got {eta!r}")
        _check_generator(generator, generators_needed)
        models = [model for model in (self.restorer, self.unet) if model is not None]
        if any(model.dtype == torch.float16 and model.device.type == "cpu" for model in models):
            raise FacerestError(
                "the models are float16 on the CPU, which emulates float16 far slower than float32: use "
                "pipeline.to(torch.float32) (or torch.bfloat16) on the CPU; float16 is for GPUs"
            )
        if num_inference_steps is not None:
            max_steps = self.scheduler.config.num_train_timesteps if self.unet is not None else float("inf")
            if not _is_whole(num_inference_steps) or not 1 <= num_inference_steps <= max_steps:
                steps = f"from 1 to {max_steps}" if self.unet is not None else "of at least 1"
                raise FacerestError(f"num_inference_steps must be a whole number {steps}, got {num_inference_steps!r}")
        if strength is not None and self.unet is None:
            raise FacerestError("strength applies to pipelines with an IDM unet ('idm' or 'hybrid'), not 'gfpgan'")
        if strength is not None and (not _is_real(strength) or not 0.0 < strength <= 1.0):
            raise FacerestError(f"strength must lie in (0, 1], got {strength!r}")

    @torch.no_grad()
    def restore_faces(
        self,
        lq: torch.Tensor,
        num_inference_steps: int | None = None,
        strength: float | None = None,
        eta: float | None = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        progress: bool = True,
        face_batch_size: int | None = None,
    ) -> torch.Tensor:
        r"""
        Restore a batch of aligned degraded faces at the model's resolution.

        Args:
            lq (`torch.Tensor`):
                Degraded aligned faces, `(N, 3, face_size, face_size)` in [-1, 1], on any device and in any float
                dtype; they are computed in the models' device and dtype.
            num_inference_steps (`int`, *optional*):
                Steps of the full IDM schedule (default: `default_inference_steps`); with `strength < 1` only the
                last `round(strength * steps)` run. Ignored by `"gfpgan"` pipelines.
            strength (`float`, *optional*):
                In (0, 1]: how far up the schedule the starting estimate is noised (the GAN estimate for
                `"hybrid"`, the degraded face for `"idm"`). Defaults to `default_strength`: 1.0 for `"idm"` (start
                from pure noise), `DEFAULT_HYBRID_STRENGTH` (0.3) for `"hybrid"`; `"gfpgan"` pipelines take none.
            eta (`float` or `None`, defaults to 0.0):
                The DDIM update's noise (0.0: deterministic given the starting noise); `None` for the ancestral
                update of the IDM paper. See [`IDMScheduler.step`].
            generator (`torch.Generator` or a list of them, *optional*):
                Random generator for the IDM noise, or one per face; the same seed gives the same faces.
            progress (`bool`, defaults to `True`):
                Show a progress bar over the IDM steps.
            face_batch_size (`int`, *optional*):
                Faces per forward pass (default `default_face_batch_size`: 8, or 1 on the CPU, where GFP-GAN's
                passes run side by side on the CPU threads).

        Returns:
            `torch.Tensor`: the restored faces, `(N, 3, face_size, face_size)` in [-1, 1], on the device and in the
            dtype of `lq`.
        """
        size = self.face_size
        if lq.ndim != 4 or tuple(lq.shape[1:]) != (3, size, size):
            raise ValueError(f"expected aligned faces of shape (N, 3, {size}, {size}), got {tuple(lq.shape)}")
        self.check_inputs(num_inference_steps=num_inference_steps, strength=strength, face_batch_size=face_batch_size,
                          eta=eta, generator=generator, generators_needed=len(lq))  # fmt: skip
        batch_size = face_batch_size or self.default_face_batch_size
        starts = range(0, len(lq), batch_size)

        def restore(start: int) -> torch.Tensor:
            # a list of generators holds one per face: each batch takes its own
            batch_generator = generator[start : start + batch_size] if isinstance(generator, list) else generator
            return self._restore_batch(
                lq[start : start + batch_size], num_inference_steps, strength, eta, batch_generator, progress
            )

        if self._faces_side_by_side:
            return torch.cat(_map_side_by_side(restore, starts))
        return torch.cat([restore(start) for start in starts])

    @torch.no_grad()
    def _restore_batch(self, lq, num_inference_steps, strength, eta, generator, progress) -> torch.Tensor:
        num_inference_steps = num_inference_steps or self.default_inference_steps
        if strength is None:
            strength = self.default_strength
        gan_estimate = None
        if self.restorer is not None and (self.unet is None or strength < 1.0):
            restorer_input = _resized(lq.to(device=self.restorer.device, dtype=self.restorer.dtype), self.restorer.config.out_size)
            gan_estimate = _resized(self.restorer(restorer_input).image, lq.shape[-1]).clamp(-1.0, 1.0)
        if self.unet is None:
            restored = gan_estimate
        else:
            restored = idm_sample(
                self.unet,
                self.scheduler,
                lq.to(device=self.unet.device, dtype=self.unet.dtype),
                num_inference_steps=num_inference_steps,
                strength=strength,
                init=gan_estimate,
                generator=generator,
                eta=eta,
                progress=progress,
            )
        return restored.to(device=lq.device, dtype=lq.dtype)

    @torch.no_grad()
    def __call__(
        self,
        image: ImageSource | Sequence[ImageSource],
        aligned: bool = False,
        upscale: int = 1,
        fidelity: float = DEFAULT_FIDELITY,
        denoise: bool = True,
        never_blur: bool = True,
        num_inference_steps: int | None = None,
        strength: float | None = None,
        eta: float | None = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        face_batch_size: int | None = None,
        only_center_face: bool = False,
        min_face_size: float | None = None,
        strict: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
        detector: DetectorSettings = None,
        output_type: str = "pil",
        progress: bool = True,
    ) -> FaceRestorePipelineOutput:
        r"""
        Restore the faces of one photo or a list of photos.

        Args:
            image (`PIL.Image.Image`, `np.ndarray`, path, `bytes`, or a list of them):
                The photos: RGB uint8 arrays (float ones in [0, 1]), PIL images, file paths or encoded bytes. EXIF
                orientation is applied; gray, RGBA, CMYK, 16-bit and float images are converted to 8-bit RGB (the
                last two with a note in `messages`, as the frames an animation loses). A gray or sepia face
                (`is_monochrome`) keeps its tone: the restoration's luma with the input's chroma.
            aligned (`bool`, defaults to `False`):
                Each input already is a square face aligned to the FFHQ template: detection is skipped, the face is
                resized to `face_size`, restored, and returned at the input's size times `upscale`; it takes the
                model's whole change, its lighting too (a face in a photo keeps the photo's, `PHOTO_LIGHTING_SCALE`).
            upscale (`int`, defaults to 1):
                Enlarge the output 1 to 4 times; the background is resized with Lanczos interpolation.
            fidelity (`float`, defaults to `DEFAULT_FIDELITY`):
                From 0 to 1, how much of the model's change to each face is kept: 0 returns the input face, 1 the
                full restoration (in the band the model resolves; the photo's detail above it is always kept), the
                denoising included.
            denoise (`bool`, defaults to `True`):
                Denoise each face whose white noise, measured at the image's own pixels around it, is above
                `DENOISE_ABOVE` (`facerest.denoise`: non-local means) before the model sees it: the models leave
                such noise as it is. The faces of an image that shows the grid of a JPEG saved smaller and enlarged
                (`facerest.deblock.enlarged_jpeg_period`) are deblocked first (a blur the size of the enlargement): the
                models sharpen such blocks into strokes; a face that comes out under `DEBLOCKED_SHARPNESS_SHARE` of
                its sharpness had no blocks (a tiled wall behind it made the grid) and is restored again without
                it. A face larger than the model's resolution also loses what
                reads as noise in its finest octave above it (`fine_noise`), a band the model never sees.
            never_blur (`bool`, defaults to `True`):
                In photos (not `aligned`): a face whose box the restoration leaves less sharp than the face the model
                was given (the photo's, or the photo's denoised; the mean gradient, `gradient_sharpness`) keeps that
                face, with a message; the model smoothed it rather than restored it (a clean, sharp face). `False`
                pastes every restoration.
            num_inference_steps (`int`, *optional*):
                IDM steps of the full schedule (default: `default_inference_steps`), see
                [`~FaceRestorePipeline.restore_faces`].
            strength (`float`, *optional*):
                See [`~FaceRestorePipeline.restore_faces`]; defaults to `default_strength` (1.0 for `"idm"`, 0.3
                for `"hybrid"`).
            eta (`float` or `None`, defaults to 0.0):
                The DDIM update's noise; `None` for the ancestral update.
            generator (`torch.Generator` or a list of them, *optional*):
                Random generator for the IDM noise, for reproducible results. One generator draws for the faces of
                all images in turn, so an image's result depends on the images before it; a list, one generator per
                image, makes each image's result its own (the command line seeds each image afresh so).
            face_batch_size (`int`, *optional*):
                At most this many faces of a photo are restored in one forward pass (default
                `default_face_batch_size`: 8, or 1 on the CPU, where GFP-GAN's passes run side by side).
            only_center_face (`bool`, defaults to `False`):
                Restore only the face nearest the photo's centre.
            min_face_size (`float`, *optional*):
                Leave faces whose box's shorter side is under this many pixels as they are (default: the detector's
                `min_face_size`, 0 unless set).
            strict (`bool`, defaults to `False`):
                Raise a `FacerestError` for a photo without a face, instead of returning it unchanged with a message.
            max_pixels (`int`, *optional*):
                Refuse larger images before decoding their pixels (`None`: no limit).
            max_output_pixels (`int`, *optional*):
                Refuse an image whose result (the image enlarged `upscale` times) would be larger, before restoring
                it (`None`: no limit).
            detector (`FaceDetector`, `str` or `dict`, *optional*):
                The face detector or its settings, see [`~FaceRestorePipeline.face_detector`].
            output_type (`str`, defaults to `"pil"`):
                `"pil"` for PIL images, `"np"` for RGB uint8 arrays.
            progress (`bool`, defaults to `True`):
                Show a progress bar over the IDM steps.

        Returns:
            [`FaceRestorePipelineOutput`]: the restored photos, their restored faces, boxes and landmarks, the
            detector's name and the messages.

        Raises:
            `FacerestError` naming an argument out of range or of the wrong type (`check_inputs`), before any image
            is read; `ImageReadError` (a `FacerestError`) naming the image when it cannot be decoded, is too large, is
            an aligned face that is not square, or (with `strict`) shows no face.
        """
        sources = list(image) if isinstance(image, (list, tuple)) else [image]
        self.check_inputs(
            upscale, num_inference_steps, strength, output_type, face_batch_size, fidelity, eta, generator, len(sources),
            min_face_size,
        )  # fmt: skip
        face_detector = None if aligned else self.face_detector(detector)
        generators = generator if isinstance(generator, list) else [generator] * len(sources)

        def restore(given_faces: list[np.ndarray], in_photo: bool, generator) -> list[np.ndarray]:
            """The restored faces (uint8, face_size) of the faces the model is given, drawing the IDM's noise from
            `generator` (a list: one per face); faces `in_photo` keep the photo's lighting."""
            if not given_faces:  # an empty list of images
                return []
            lq = torch.stack([image_to_tensor(face) for face in given_faces])
            restored = self.restore_faces(lq, num_inference_steps, strength, eta, generator, progress, face_batch_size)
            restored = [tensor_to_image(face) for face in restored]
            if in_photo:
                restored = [_in_lighting_of(face, lq_face) for face, lq_face in zip(restored, given_faces)]
            return [_in_tone_of(face, lq_face) for face, lq_face in zip(restored, given_faces)]

        load = functools.partial(_load_named, max_pixels=max_pixels, upscale=upscale, max_output_pixels=max_output_pixels)
        names = [str(source) if isinstance(source, (str, os.PathLike)) else f"image {index}" for index, source in enumerate(sources)]
        if aligned:  # the faces of all inputs restored together, in batches of face_batch_size
            faces = [load(source, name) for source, name in zip(sources, names)]
            restore_all = functools.partial(restore, generator=generator)  # a list: one per image, so one per face
            photos = self._restore_aligned(faces, names, upscale, restore_all, fidelity, denoise)
        else:
            photos = []
            for name, source, photo_generator in zip(names, sources, generators):
                photo = load(source, name)
                turns, faces = face_detector.detect_turned(photo, only_center_face, min_face_size)
                if not faces and strict:
                    raise ImageReadError(name, "no face found, upright or turned")
                restore_photo = functools.partial(restore, generator=photo_generator)
                turned = np.ascontiguousarray(np.rot90(photo, -turns))
                restored = self._restore_photo(turned, faces, upscale, restore_photo, never_blur, fidelity, denoise)
                photos.append(_turned_back(restored, turns, turned.shape))
        for photo, source in zip(photos, sources):
            photo.messages[:0] = input_notes(source)

        convert = PIL.Image.fromarray if output_type == "pil" else (lambda array: array)
        return FaceRestorePipelineOutput(
            images=[convert(photo.image) for photo in photos],
            restored_faces=[[convert(face) for face in photo.faces] for photo in photos],
            face_boxes=[photo.boxes for photo in photos],
            face_landmarks=[photo.landmarks for photo in photos],
            detector=None if face_detector is None else face_detector.name,
            messages=[photo.messages for photo in photos],
        )

    def _restore_photo(
        self, photo: np.ndarray, faces: list, upscale: int, restore, never_blur: bool, fidelity: float, denoise: bool,
        undeblocked: frozenset[int] = frozenset(),
    ) -> "_RestoredPhoto":
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
            return _RestoredPhoto(add_face_corrections(photo, [], [], upscale), [], boxes, landmarks, [f"no face found: {note}"])
        affines = [face_alignment(face.landmarks, ALIGN_SIZE) for face in faces]  # photo -> aligned crop
        whole_faces = [index for index, affine in enumerate(affines) if self._resolves_whole_face(affine)]
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
            cleanings = [-fidelity * self._crop_fine_noise(crop, affine) for crop, affine in zip(crops, affines)]
            cleaned_indices = {index for index, cleaning in enumerate(cleanings) if cleaning.any()}
            if cleaned_indices:
                given_photo = add_face_corrections(given_photo, cleanings, affines)
        given_faces = [resize_square(crop, self.face_size) for crop in crops]
        restored = restore(given_faces, in_photo=True)
        changes = [face.astype(np.float32) - given_face for face, given_face in zip(restored, given_faces)]
        restored = [_with_change(given_face, change, fidelity) for given_face, change in zip(given_faces, changes)]
        corrections = [resize_square(fidelity * change, ALIGN_SIZE) for change in changes]
        lost = _deblocked_faces_losing_detail(photo, given_photo, corrections, affines, boxes, deblocked_indices)
        if lost:
            again = self._restore_photo(photo, faces, upscale, restore, never_blur, fidelity, denoise, undeblocked | set(lost))
            again.messages[:0] = [_undeblocked_note(index, share, block_period) for index, share in lost.items()]
            return again
        pasted = None
        messages = []
        if deblocked_indices:
            which = "its faces" if len(deblocked_indices) == len(faces) else f"face {', '.join(map(str, deblocked_indices))}"
            messages.append(_deblocked_note(block_period, which))
        messages += [
            f"face {index} denoised first: noise of {noise_level(deblocked_photo[regions[index]]):.1f} grey levels"
            for index in sorted(denoised_indices)
        ]
        if never_blur:  # checked at the photo's own size, where the photo's sharpness is measured
            blurred, at_photo_size = _faces_made_blurrier(given_photo, corrections, affines, boxes)
            for index in blurred:
                restored[index], corrections[index] = given_faces[index], np.zeros_like(corrections[index])
                if index in denoised_indices or index in deblocked_indices:
                    cleaning = "denoised" if index in denoised_indices else "deblocked"
                    messages.append(f"face {index} left {cleaning}: its restoration came out less sharp than that")
                elif index in cleaned_indices:
                    messages.append(
                        f"face {index} left as it was but for its finest pixels' noise: its restoration came out less "
                        "sharp than that"
                    )
                else:
                    messages.append(f"face {index} left as it was: its restoration came out less sharp than the photo")
            if upscale == 1:
                pasted = at_photo_size
        if pasted is None:
            pasted = add_face_corrections(given_photo, corrections, affines, upscale)
        return _RestoredPhoto(pasted, restored, boxes, landmarks, messages)

    def _resolves_whole_face(self, affine: np.ndarray) -> bool:
        """Whether the model restores every band of the photo's face aligned by `affine` (onto the ALIGN_SIZE crop):
        the crop spans at most the model's face size in the photo's pixels. Only such a face is deblocked
        (`facerest.deblock`): a larger one keeps the photo's own band above the model's, which the deblocking's blur
        would only take away (docs/experiments.md, "Deblocking only the faces the model restores whole")."""
        return ALIGN_SIZE / _crop_scale(affine) <= self.face_size

    def _crop_fine_noise(self, crop: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """`fine_noise` of a face's aligned crop where the crop is no enlargement of the photo (`affine`, from the
        photo onto the crop, scales by at most 1); zero where it is: its finest octave then holds interpolation and the
        photo's own finest detail, which the floor would thin out (`whole_imgs` faces, enlarged 1.2-9 times)."""
        if _crop_scale(affine) > 1.0:
            return np.zeros(crop.shape, np.float32)
        return fine_noise(crop, ALIGN_SIZE / self.face_size)

    def _restore_aligned(
        self, faces: list[np.ndarray], names: list[str], upscale: int, restore, fidelity: float, denoise: bool,
        undeblocked: frozenset[int] = frozenset(),
    ) -> list["_RestoredPhoto"]:
        """Restore aligned faces at the model's size (with `denoise`, `fidelity` of each face's deblocking and
        denoising first), and add `fidelity` of the model's change to each face the model was given, at its own
        size. As in a photo, a deblocked face that comes out under `DEBLOCKED_SHARPNESS_SHARE` of its sharpness is
        restored again without deblocking (the faces of `undeblocked` are not deblocked)."""
        for face, name in zip(faces, names):
            if face.shape[0] != face.shape[1]:
                raise ImageReadError(
                    name,
                    f"an aligned face must be square, got {face.shape[1]}x{face.shape[0]} (for a photo, turn aligned "
                    "off: its faces are then found and aligned)",
                )
        block_periods = [  # a face larger than the model's, like a photo's, keeps its own finest band undeblocked
            enlarged_jpeg_period(face)
            if denoise and fidelity > 0 and face.shape[0] <= self.face_size and index not in undeblocked else None
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
                notes[-1].append(f"denoised first: noise of {noise_level(deblocked_face):.1f} grey levels")
        model_faces = [resize_square(face, self.face_size) for face in given_faces]
        restored = restore(model_faces, in_photo=False)
        photos = []
        for given_face, model_face, restored_face, messages in zip(given_faces, model_faces, restored, notes):
            change = restored_face.astype(np.float32) - model_face
            width, size = given_face.shape[1], given_face.shape[1] * upscale
            image = resize_square(given_face, size).astype(np.float32) + resize_square(fidelity * change, size)
            if denoise:  # the face's band finer than the model's pixels, less what reads as noise there
                image -= resize_square(fidelity * fine_noise(given_face, width / self.face_size), size)
            boxes = np.array([[0, 0, width, width]], np.float32)
            landmarks = (FFHQ_TEMPLATE_512 * (width / ALIGN_SIZE))[None]
            kept_face = _with_change(model_face, change, fidelity)
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
            photos.append(_RestoredPhoto(image, [kept_face], boxes, landmarks, messages))
        shares = {  # each deblocked face's sharpness after its restoration, at its own size, over before
            index: _sharpness_share(resize_square(photo.image, face.shape[0]), face)
            for index, (face, period, photo) in enumerate(zip(faces, block_periods, photos)) if period is not None
        }  # fmt: skip
        lost = {index: share for index, share in shares.items() if share < DEBLOCKED_SHARPNESS_SHARE}
        if lost:
            photos = self._restore_aligned(faces, names, upscale, restore, fidelity, denoise, undeblocked | set(lost))
            for index, share in lost.items():
                photos[index].messages.insert(0, _undeblocked_note(None, share, block_periods[index]))
        return photos


def _crop_scale(affine: np.ndarray) -> float:
    """How many crop pixels a photo pixel spans under a similarity `affine` (photo -> crop)."""
    return float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))


def _deblocked_note(block_period: float, what: str) -> str:
    enlargement = block_period / JPEG_BLOCK
    return f"JPEG blocks of {block_period:.1f} px (a JPEG enlarged {enlargement:.1f}x): {what} deblocked first"


QUARTER_TURNS = {1: "turned a quarter clockwise", 2: "turned upside down", 3: "turned a quarter counter-clockwise"}


def _undeblocked_note(index: int | None, sharpness_share: float, block_period: float) -> str:
    """The note of a face (`index` in its photo; None: an aligned face) restored again without deblocking."""
    face, its_sharpness = ("the face", "its") if index is None else (f"face {index}", "the photo's")
    return (
        f"{face} restored without deblocking: deblocked, it kept {sharpness_share:.2f} of {its_sharpness} sharpness "
        f"(the grid of {block_period:.1f} px is not its own)"
    )


def _load_named(source: ImageSource, name: str, max_pixels, upscale: int, max_output_pixels) -> np.ndarray:
    """The image `source` as an RGB uint8 array; an `ImageReadError` names it `name` (its place in a list)."""
    try:
        image = load_image(source, max_pixels=max_pixels)
    except ImageReadError as error:
        if error.source == name:
            raise
        raise ImageReadError(f"{name} ({error.source})", error.reason) from None  # which of the list's arrays
    check_output_size(image, upscale, max_output_pixels, name)
    return image


def _turned_back(restored: "_RestoredPhoto", turns: int, turned_shape: tuple[int, ...]) -> "_RestoredPhoto":
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
    return _RestoredPhoto(image, restored.faces, boxes, points[:, 2:].astype(np.float32), [note, *restored.messages])


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


def _in_tone_of(restored_face: np.ndarray, lq_face: np.ndarray) -> np.ndarray:
    """A gray or sepia face stays so: the restoration's luma with the degraded face's chroma, not the colours the
    model would give it (CodeFormer's script, too, keeps gray faces gray)."""
    return with_chroma_of(restored_face, lq_face) if is_monochrome(lq_face) else restored_face


def _in_lighting_of(restored_face: np.ndarray, lq_face: np.ndarray) -> np.ndarray:
    """The restored face in the degraded face's lighting: the restoration's detail (itself less its Gaussian blur at
    `PHOTO_LIGHTING_SCALE` of the face) on the degraded face's blur, scaled by the ratio of the two blurs, so that a
    model that brightens a face by a factor leaves it as it was rather than with its detail brightened too (the ratio
    kept within 1/4 and 4)."""
    restored, lq = restored_face.astype(np.float32), lq_face.astype(np.float32)
    restored_lighting, lq_lighting = _lighting(restored), _lighting(lq)
    gain = np.clip((lq_lighting + LIGHTING_FLOOR) / (restored_lighting + LIGHTING_FLOOR), 0.25, 4.0)
    return np.clip(np.rint(lq_lighting + (restored - restored_lighting) * gain), 0, 255).astype(np.uint8)


def _lighting(face: np.ndarray) -> np.ndarray:
    """A square face's Gaussian blur at `PHOTO_LIGHTING_SCALE` of its side, computed on the face shrunk to at most
    `LIGHTING_RESOLUTION` px and enlarged back (float32)."""
    side = face.shape[0]
    small = resize_square(face, min(side, LIGHTING_RESOLUTION))
    blurred = cv2.GaussianBlur(small, (0, 0), PHOTO_LIGHTING_SCALE * small.shape[0])
    return cv2.resize(blurred, (side, side), interpolation=cv2.INTER_LINEAR)


def _is_whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_generator(generator, generators_needed: int | None) -> None:
    """A `FacerestError` unless `generator` is None, a `torch.Generator`, or a list of `generators_needed` of them."""
    generators = generator if isinstance(generator, list) else [generator]
    if generator is not None and not all(isinstance(item, torch.Generator) for item in generators):
        raise FacerestError(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or a list of them, got {generator!r}"
        )
    if isinstance(generator, list) and generators_needed is not None and len(generator) != generators_needed:
        raise FacerestError(f"a list of generators must hold one per image ({generators_needed}), got {len(generator)}")


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


@dataclass
class _RestoredPhoto:
    image: np.ndarray
    faces: list[np.ndarray]
    boxes: np.ndarray
    landmarks: np.ndarray
    messages: list[str]


def _map_side_by_side(function: Callable, items: Sequence) -> list:
    """`[function(item) for item in items]`, the calls side by side on the CPU threads, one intra-op thread each;
    what is left over after the full rounds (3 faces on 2 threads: the third) runs on all the threads.

    On 2 cores, 512-px GFP-GAN faces side by side beat them one after the other on both cores (BENCHMARKS.md,
    "Restoring 4 faces of one photo"), but a face alone on one thread would leave the other cores idle.
    """
    threads = torch.get_num_threads()
    workers = min(threads, len(items))
    if workers < 2:
        return [function(item) for item in items]
    full_rounds = len(items) - len(items) % workers

    def call(item):
        torch.set_num_threads(threads // workers)  # this worker thread's intra-op threads
        try:
            return function(item)
        finally:
            torch.set_num_threads(threads)  # so that threads started later begin with the caller's count

    with ThreadPoolExecutor(workers, thread_name_prefix="facerest-face") as pool:
        results = list(pool.map(call, items[:full_rounds]))
    return results + [function(item) for item in items[full_rounds:]]


def _check_components(restorer, unet, scheduler) -> None:
    if restorer is None and unet is None:
        raise FacerestError("a FaceRestorePipeline needs a restorer (GFP-GAN), a unet (IDM), or both")
    if (unet is None) != (scheduler is None):
        raise FacerestError("an IDM unet and its scheduler go together: pass both or neither")
    if unet is not None and (unet.config.in_channels != 6 or unet.config.out_channels != 3):
        raise FacerestError(
            "the IDM unet must take 6 channels (noisy sample and degraded face) and give 3, got "
            f"{unet.config.in_channels} -> {unet.config.out_channels}"
        )
    _face_size(restorer, unet)


def _face_size(restorer, unet) -> int:
    """The unet's square sample size when there is a unet, else the restorer's output size."""
    if unet is None:
        return restorer.config.out_size
    sample_size = unet.config.sample_size
    if isinstance(sample_size, (list, tuple)):
        if len(set(sample_size)) != 1:
            raise FacerestError(f"the IDM unet must work on square faces, its sample_size is {sample_size}")
        sample_size = sample_size[0]
    return sample_size


def _resized(faces: torch.Tensor, size: int) -> torch.Tensor:
    """A batch of square faces at ``size`` px: area filter down, bicubic up (as ``images.resize_square``)."""
    if faces.shape[-1] == size:
        return faces
    if faces.shape[-1] > size:
        return F.interpolate(faces, size=(size, size), mode="area")
    return F.interpolate(faces, size=(size, size), mode="bicubic", align_corners=False)
