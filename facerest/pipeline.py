"""`FaceRestorePipeline`: faces in, restored photo out, with GFP-GAN, the IDM diffusion model, or both.

The flow of one photo (see DESIGN.md, "How an image flows"): decode -> detect faces -> align each face to the FFHQ
template at 512 px and resize it to the model's resolution -> restore the photo's faces (in batches of 8 on a GPU, one
per forward pass on the CPU: `default_face_batch_size`) -> add what the model changed (restored minus degraded face,
times `fidelity`) back into the photo (optionally enlarged). This module holds the models and the call; how a photo's
faces are cleaned, restored and put back is `facerest.photo_restoration`'s.
"""

from __future__ import annotations

import functools
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, UNet2DModel
from diffusers.utils import BaseOutput
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError

from .errors import FacerestError, ImageReadError, one_line
from .face_detection import FaceDetector
from .images import (
    DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS, ImageSource, check_output_size, image_to_tensor, input_notes,
    load_image, tensor_to_image,
)
from .models.gfpgan import GFPGANModel
from .models.idm import IDMScheduler, idm_sample
from .photo_restoration import restore_aligned_faces, restore_photo, turned_back
from .saved_pipeline import DOWNLOAD_ARGUMENTS, check_saved_pipeline, pipeline_folder

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
                `$FACEREST_DETECTOR_WEIGHTS` (or the usual places, see `facerest.face_detection`), else MTCNN. The
                detector runs on the pipeline's device unless the settings name one.
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
                model's change of its lighting where that is large (`with_large_lighting_change`: a colour cast
                undone), where a face in a photo keeps the photo's (`PHOTO_LIGHTING_SCALE`).
            upscale (`int`, defaults to 1):
                Enlarge the output 1 to 4 times; the background is resized with Lanczos interpolation.
            fidelity (`float`, defaults to `DEFAULT_FIDELITY`):
                From 0 to 1, how much of the model's change to each face is kept: 0 returns the input face, 1 the
                full restoration (in the band the model resolves; the photo's detail above it is always kept), the
                denoising included.
            denoise (`bool`, defaults to `True`):
                Denoise each face whose white noise, measured at the image's own pixels around it, is above
                `DENOISE_ABOVE`, or whose grain at half those pixels is above `GRAIN_ABOVE` (the noise of a photo
                saved as JPEG; `facerest.denoise`: non-local means) before the model sees it: the models leave such
                noise as it is. The faces of an image that shows the grid of a JPEG saved smaller and enlarged
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

        def restore(given_faces: list[np.ndarray], generator) -> list[np.ndarray]:
            """The model's restorations (uint8, face_size) of the faces it is given, drawing the IDM's noise from
            `generator` (a list: one per face)."""
            if not given_faces:  # an empty list of images
                return []
            lq = torch.stack([image_to_tensor(face) for face in given_faces])
            restored = self.restore_faces(lq, num_inference_steps, strength, eta, generator, progress, face_batch_size)
            return [tensor_to_image(face) for face in restored]

        load = functools.partial(_load_named, max_pixels=max_pixels, upscale=upscale, max_output_pixels=max_output_pixels)
        names = [str(source) if isinstance(source, (str, os.PathLike)) else f"image {index}" for index, source in enumerate(sources)]
        if aligned:  # the faces of all inputs restored together, in batches of face_batch_size
            faces = [load(source, name) for source, name in zip(sources, names)]
            restore_all = functools.partial(restore, generator=generator)  # a list: one per image, so one per face
            photos = restore_aligned_faces(faces, names, self.face_size, restore_all, upscale, fidelity, denoise)
        else:
            photos = []
            for name, source, photo_generator in zip(names, sources, generators):
                photo = load(source, name)
                turns, faces = face_detector.detect_turned(photo, only_center_face, min_face_size)
                if not faces and strict:
                    raise ImageReadError(name, "no face found, upright or turned")
                restore_faces = functools.partial(restore, generator=photo_generator)
                turned = np.ascontiguousarray(np.rot90(photo, -turns))
                restored = restore_photo(
                    turned, faces, self.face_size, restore_faces, upscale, never_blur, fidelity, denoise
                )
                photos.append(turned_back(restored, turns, turned.shape))
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
