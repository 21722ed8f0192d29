"""Train the IDM denoiser with intrinsic and extrinsic iterative learning.

In the shape of diffusers' ``examples/unconditional_image_generation/train_unconditional.py``: argparse, Accelerate
(one or many processes, mixed precision, gradient accumulation), EMA saved and restored with the checkpoints,
tensorboard scalars, a validation grid every N steps, and a final save that loads for sampling: a
``FaceRestorePipeline`` in ``<output_dir>`` (``model_index.json``, ``unet/`` with the EMA weights, ``scheduler/``).

Intrinsic learning is the usual denoising training on ``(degraded, target)`` pairs made on the fly by
``DegradedFaceDataset``. Extrinsic learning (``--extrinsic_rounds K``) repeats it K more times: after each round of
``--max_train_steps`` steps the EMA model restores the training targets (``x* = f_theta(x)``), a seeded fraction
``--replace_fraction`` of the target pool is replaced by the restored images (``<output_dir>/round-<r>/``, with a
manifest), and the next round continues from the current weights, optimiser and EMA on the new pool.

Every source of randomness is a function of ``--seed`` and the position in training (round, epoch, batch, process),
so ``--resume_from_checkpoint latest`` after a kill, during a round or during a cleaning pass, reproduces the weights
of an uninterrupted run. A checkpoint is always written at the end of a round, before its cleaning pass.

One process:   python train/train_idm.py --train_data_dir DIR --output_dir OUT ...
Two on CPU:    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
                   --mixed_precision no --dynamo_backend no train/train_idm.py ...
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, gather_object, set_seed
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from facerest.data import DegradedFaceDataset, PairedFolderDataset, collate_deferred, degrade_deferred
from facerest.degradation import DegradationConfig
from facerest.errors import FacerestError
from facerest.images import list_images
from facerest.metrics import load_niqe_params
from facerest.models.idm import IDMDenoiser, IDMScheduler, idm_sample, make_idm_unet
from facerest.models.idm.denoiser import LOSSES
from facerest.models.idm.scheduling_idm import PREDICTION_TYPES
from facerest.pipeline import FaceRestorePipeline
from facerest.push import HubError, push_trained_pipeline
from facerest.training.checkpoints import checkpoint_step, register_checkpoint_hooks, resolve_checkpoint
from facerest.training.checkpoints import load_checkpoint, save_checkpoint, weights_digest
from facerest.training.extrinsic import CleaningPass, choose_replaced, load_manifest, round_dir, score_cleaning_pass
from facerest.training.testset_eval import evaluate_testset
from facerest.training.utils import Deadline, clock_cosine_schedule, command_line, first_pairs, log_validation_grid

logger = get_logger(__name__, log_level="INFO")
# the arguments that shape the noise schedule: a pretrained model brings its own
SCHEDULE_ARGS = ("num_train_timesteps", "beta_schedule", "prediction_type", "sigma_data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the IDM denoiser (intrinsic + extrinsic iterative learning).")
    data = parser.add_argument_group("data")
    data.add_argument("--train_data_dir", required=True, help="folder of aligned high-quality training faces")
    data.add_argument("--max_train_samples", type=int, default=None, help="use only the first N faces (by name)")
    data.add_argument("--resolution", type=int, default=64, help="side of the faces the model restores, in pixels")
    data.add_argument(
        "--crop_size",
        type=int,
        default=None,
        help="train on random windows of this side cut from the degraded --resolution faces (the UNet is fully "
        "convolutional: it then restores whole faces); default: whole faces",
    )
    data.add_argument("--no_flip", action="store_true", help="do not flip the training faces horizontally")
    data.add_argument(
        "--degradation_device",
        choices=["cpu", "accelerator"],
        default="cpu",
        help="cpu: the data loader degrades each face with numpy/OpenCV; accelerator: it only loads the HQ faces and "
        "draws their degradations, which run in batches on the training device (torch path of facerest.degradation; "
        "the diffusion noise is then drawn there too)",
    )
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument("--testset", default=None, help="paired test set (lq/, hq/) scored at the end of every round")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--pretrained_model_name_or_path",
        default=None,
        help="fine-tune: start from the unet and scheduler of this saved IDM or hybrid FaceRestorePipeline (a folder "
        "or Hub id) instead of a new UNet; the options that shape a new model then must be left at their defaults",
    )
    model.add_argument(
        "--unet_overrides",
        type=json.loads,
        default={},
        help="JSON object of UNet2DModel arguments over the ready-made IDM UNet of --resolution, e.g. "
        '\'{"block_out_channels": [32, 64, 64, 128], "layers_per_block": 1}\'',
    )
    model.add_argument("--num_train_timesteps", type=int, default=1000)
    model.add_argument("--beta_schedule", choices=["linear", "cosine"], default="linear")
    model.add_argument(
        "--prediction_type",
        choices=list(PREDICTION_TYPES),
        default="epsilon",
        help="what the UNet predicts: the noise, the clean face, the clean face minus the degraded one (residual), "
        "or a velocity of that residual with EDM's preconditioning (residual_v, see IDMScheduler)",
    )
    model.add_argument(
        "--sigma_data",
        type=float,
        default=1.0,
        help="residual types: the scale of the residual (about its RMS over the training pairs); the UNet predicts "
        "residual / sigma_data (residual) or EDM's preconditioned velocity (residual_v; 1: v-prediction)",
    )
    model.add_argument("--loss", choices=list(LOSSES), default="l1", help="L1 or L2 distance to the prediction target")
    model.add_argument(
        "--detail_weight",
        type=float,
        default=0.0,
        help="weight of the detail term: the local gradient energy the estimate of the clean face lacks against the "
        "clean face (IDMDenoiser.loss, detail_deficit); above 0 it keeps the estimate from averaging texture away",
    )
    model.add_argument(
        "--ssim_weight",
        type=float,
        default=0.0,
        help="weight of the SSIM term: 1 - SSIM of the estimate of the clean face against it (IDMDenoiser.loss, "
        "structural_dissimilarity), the SSIM of the evaluation",
    )

    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", required=True)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--clean_prob",
        type=float,
        default=0.0,
        help="fraction of training faces left undegraded (clean pairs teach the model to keep a face that needs nothing)",
    )
    train.add_argument(
        "--train_at_sampling_steps",
        type=int,
        default=None,
        help="train only at the timesteps that sampling with this many steps visits (a model specialised for its "
        "step count, e.g. the 2 of the default); default: every timestep of the training chain",
    )
    train.add_argument(
        "--train_through_sampling_steps",
        type=int,
        default=None,
        help="train what sampling with this many DDIM steps restores, with gradients through the whole chain "
        "(IDMDenoiser.sampler_loss: the steps learn from the estimates the steps before them make), instead of one "
        "denoising step at a time; N forward and backward passes per batch",
    )
    train.add_argument(
        "--degradation_overrides",
        type=json.loads,
        default={},
        help="JSON object of DegradationConfig fields over GFP-GAN's recipe, e.g. CodeFormer's wider ranges "
        '\'{"downsample_range": [0.8, 16], "jpeg_range": [40, 100]}\'',
    )
    train.add_argument("--train_batch_size", type=int, default=16, help="batch size per process")
    train.add_argument("--max_train_steps", type=int, required=True, help="optimisation steps per (intrinsic) round")
    train.add_argument(
        "--max_train_minutes",
        type=float,
        default=None,
        help="stop once this wall time (from the start) is spent: checkpoint, evaluate and save as at the end of a run",
    )
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument("--learning_rate", type=float, default=1e-4)
    train.add_argument(
        "--lr_scheduler",
        default="constant_with_warmup",
        choices=["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "cosine_by_clock"],
        help="learning-rate schedule over all rounds; cosine_by_clock decays to 0 over --max_train_minutes (wall time)",
    )
    train.add_argument("--lr_warmup_steps", type=int, default=500)
    train.add_argument("--adam_beta1", type=float, default=0.9)
    train.add_argument("--adam_beta2", type=float, default=0.999)
    train.add_argument("--adam_weight_decay", type=float, default=1e-6)
    train.add_argument("--adam_epsilon", type=float, default=1e-8)
    train.add_argument("--max_grad_norm", type=float, default=1.0)
    train.add_argument("--ema_max_decay", type=float, default=0.9999)
    train.add_argument("--ema_inv_gamma", type=float, default=1.0)
    train.add_argument("--ema_power", type=float, default=3 / 4)
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None, help="default: accelerate's config")
    train.add_argument("--checkpointing_steps", type=int, default=500)
    train.add_argument("--checkpoints_total_limit", type=int, default=None)
    train.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint folder')
    train.add_argument("--logging_dir", default="logs", help="tensorboard folder, under --output_dir")

    sampling = parser.add_argument_group("sampling (validation, cleaning, evaluation)")
    sampling.add_argument("--sampler", choices=["ddim", "ancestral"], default="ddim", help="ddim: deterministic (eta 0)")
    sampling.add_argument(
        "--sampling_steps", type=int, default=25,
        help="steps for validation grids and cleaning, and the saved pipeline's default (default_inference_steps)",
    )  # fmt: skip
    sampling.add_argument("--eval_sampling_steps", type=int, nargs="+", default=[25], help="step counts for --testset")
    sampling.add_argument("--eval_batch_size", type=int, default=32)
    sampling.add_argument("--validation_steps", type=int, default=500, help="save a validation grid every N steps")
    sampling.add_argument("--num_validation_images", type=int, default=4)

    extrinsic = parser.add_argument_group("extrinsic iterative learning")
    extrinsic.add_argument("--extrinsic_rounds", type=int, default=0, help="clean-and-retrain rounds after the first")
    extrinsic.add_argument("--replace_fraction", type=float, default=0.5, help="fraction of the pool replaced per round")
    extrinsic.add_argument(
        "--cleaning_niqe", action="store_true", help="score cleaned and original targets with NIQE after each pass"
    )

    hub = parser.add_argument_group("hub")
    hub.add_argument("--push_to_hub", action="store_true")
    hub.add_argument("--hub_model_id", default=None, help="default: the name of --output_dir")
    hub.add_argument("--hub_private_repo", action="store_true")

    args = parser.parse_args(argv)
    for name in ("resolution", "train_batch_size", "max_train_steps", "gradient_accumulation_steps", "checkpointing_steps",
                 "sampling_steps", "eval_batch_size", "validation_steps", "num_validation_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.max_train_minutes is not None and not args.max_train_minutes > 0:
        parser.error("--max_train_minutes must be positive")
    if args.lr_scheduler == "cosine_by_clock" and args.max_train_minutes is None:
        parser.error("--lr_scheduler cosine_by_clock decays over --max_train_minutes: give it")
    if args.crop_size is not None and not 1 <= args.crop_size <= args.resolution:
        parser.error(f"--crop_size must be from 1 to --resolution ({args.resolution})")
    if args.extrinsic_rounds < 0:
        parser.error("--extrinsic_rounds must be 0 or more")
    if args.train_through_sampling_steps is not None:
        if args.train_through_sampling_steps < 1:
            parser.error("--train_through_sampling_steps must be at least 1")
        if args.train_at_sampling_steps is not None:
            parser.error("--train_through_sampling_steps trains the whole chain: it takes no --train_at_sampling_steps")
    if not 0.0 <= args.replace_fraction <= 1.0:
        parser.error("--replace_fraction must lie in [0, 1]")
    if not isinstance(args.unet_overrides, dict):
        parser.error("--unet_overrides must be a JSON object")
    try:
        degradation_config(args)
    except (TypeError, ValueError) as error:
        parser.error(f"--degradation_overrides: {error}")
    if args.pretrained_model_name_or_path:
        shaping = ("unet_overrides", *SCHEDULE_ARGS)
        changed = [f"--{name}" for name in shaping if getattr(args, name) != parser.get_default(name)]
        if changed:
            parser.error(f"{', '.join(changed)} cannot change a pretrained model (--pretrained_model_name_or_path)")
    return args


def degradation_config(args: argparse.Namespace) -> DegradationConfig:
    """GFP-GAN's degradation recipe with --clean_prob and the --degradation_overrides fields."""
    if not isinstance(args.degradation_overrides, dict):
        raise TypeError("must be a JSON object of DegradationConfig fields")
    if "clean_prob" in args.degradation_overrides:
        raise ValueError("give clean_prob as --clean_prob, not among the overrides")
    return DegradationConfig(clean_prob=args.clean_prob, **args.degradation_overrides)


def load_pretrained_idm(name_or_path: str, resolution: int) -> tuple[UNet2DModel, IDMScheduler]:
    """The unet and scheduler of a saved IDM or hybrid pipeline, checked against the training resolution."""
    pipeline = FaceRestorePipeline.from_pretrained(name_or_path)
    if pipeline.unet is None:
        raise FacerestError(f"{name_or_path} is a {pipeline.kind!r} pipeline: it has no IDM unet to fine-tune")
    if pipeline.face_size != resolution:
        raise FacerestError(f"{name_or_path} restores {pipeline.face_size}-px faces, but --resolution is {resolution}")
    return pipeline.unet.train(), IDMScheduler.from_config(pipeline.scheduler.config)


def batch_generator(*key: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from a tuple of integers (seed, epoch, batch, process): the same key, the same draws."""
    seed = np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(seed))


def ema_unet(ema: EMAModel, config) -> UNet2DModel:
    """A standalone UNet holding the EMA weights, for sampling and saving."""
    unet = UNet2DModel.from_config(config)
    ema.copy_to(unet.parameters())
    return unet.eval()


def make_restorer(unet: UNet2DModel, noise_scheduler: IDMScheduler, num_steps: int, sampler: str, seed: int, device):
    """``restore(lq, keys=None)``: IDM sampling of ``lq`` (CPU tensors in [-1, 1]). Image ``i`` draws its noise from
    ``batch_generator(seed, *keys[i])`` when keys (tuples of integers) are given, else from one generator seeded once.
    """
    unet = unet.to(device)
    scheduler = IDMScheduler.from_config(noise_scheduler.config)
    shared_generator = torch.Generator().manual_seed(seed)
    eta = 0.0 if sampler == "ddim" else None

    def restore(lq: torch.Tensor, keys: list[tuple[int, ...]] | None = None) -> torch.Tensor:
        generator = shared_generator if keys is None else [batch_generator(seed, *key) for key in keys]
        return idm_sample(unet, scheduler, lq, num_steps, generator=generator, eta=eta, progress=False).cpu()

    return restore


def initial_pool(args) -> list[str]:
    paths = list_images(args.train_data_dir)[: args.max_train_samples]
    return [str(path) for path in DegradedFaceDataset(paths, args.resolution).paths]


def round_pool(args, round_index: int) -> list[str]:
    """The training targets of a round: the original faces, or the pool written by that round's cleaning pass."""
    if round_index == 0:
        return initial_pool(args)
    manifest = load_manifest(round_dir(args.output_dir, round_index))
    if manifest is None:
        raise RuntimeError(f"round {round_index} has no complete cleaning pass")
    return manifest["pool"]


def run_cleaning_pass(args, accelerator, ema, unet_config, noise_scheduler, round_index: int, model_step: int) -> None:
    """Clean the targets of round ``round_index - 1`` with the EMA model (each process its share) and write the pool
    of round ``round_index``; continues a pass that was interrupted."""
    folder = round_dir(args.output_dir, round_index)
    if load_manifest(folder) is None:
        clean_targets(args, accelerator, ema, unet_config, noise_scheduler, round_index, model_step)
    # scored apart from the pass, so that a run stopped between the two (or resumed) still writes niqe.json
    scores = score_cleaning_pass(folder, load_niqe_params()) if args.cleaning_niqe and accelerator.is_main_process else None
    if scores is not None:
        accelerator.log({"cleaning/niqe_cleaned": scores["cleaned"], "cleaning/niqe_original": scores["original"]},
                        step=model_step)
        logger.info(f"round {round_index}: NIQE cleaned {scores['cleaned']:.3f}, original {scores['original']:.3f}")
    accelerator.wait_for_everyone()


def clean_targets(args, accelerator, ema, unet_config, noise_scheduler, round_index: int, model_step: int) -> None:
    """The cleaning pass itself: restore this process's share of the pending targets, then (main process) write the
    manifest."""
    folder = round_dir(args.output_dir, round_index)
    previous_pool = round_pool(args, round_index - 1)
    cleaning = CleaningPass(
        folder=folder,
        round_index=round_index,
        model_step=model_step,
        pool=previous_pool,
        replaced=choose_replaced(len(previous_pool), args.replace_fraction, seed=[args.seed, round_index]),
        resolution=args.resolution,
    )
    pending = cleaning.pending()
    logger.info(f"round {round_index}: cleaning {len(pending)} of {len(cleaning.replaced)} chosen targets")
    accelerator.wait_for_everyone()  # every process has read the pending list before any writes
    restore = make_restorer(
        ema_unet(ema, unet_config), noise_scheduler, args.sampling_steps, args.sampler, args.seed, accelerator.device
    )
    cleaning.run(
        # each image's noise is keyed by (round, pool index): the same cleaned pool whatever the processes or restarts
        lambda targets, indices: restore(targets, [(round_index, index) for index in indices]),
        pending[accelerator.process_index :: accelerator.num_processes],
        batch_size=args.eval_batch_size,
        records_name=str(accelerator.process_index),
        progress=accelerator.is_local_main_process,
    )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        details = {
            "seed": args.seed,
            "sampling_steps": args.sampling_steps,
            "sampler": args.sampler,
            "replace_fraction": args.replace_fraction,
        }
        cleaning.finish(details)
    accelerator.wait_for_everyone()


def evaluate(args, accelerator, ema, unet_config, noise_scheduler, step: int) -> None:
    """Score the EMA model on --testset for each --eval_sampling_steps into ``eval/step-<step>/steps-<n>/`` (main
    process; step counts already scored are skipped)."""
    if args.testset is None or not accelerator.is_main_process:
        return
    unet = ema_unet(ema, unet_config)
    for num_steps in args.eval_sampling_steps:
        folder = Path(args.output_dir) / "eval" / f"step-{step}" / f"steps-{num_steps}"
        if (folder / "metrics.json").is_file():
            continue
        started = time.time()
        restore = make_restorer(unet, noise_scheduler, num_steps, args.sampler, seed=args.seed, device=accelerator.device)
        scores = evaluate_testset(restore, args.testset, folder, batch_size=args.eval_batch_size, resolution=args.resolution)
        accelerator.log({f"eval/{key}_{num_steps}steps": value for key, value in scores.items()}, step=step)
        logger.info(
            f"step {step}, {num_steps} sampling steps: PSNR {scores['psnr']:.2f} dB (inputs {scores['input_psnr']:.2f}), "
            f"SSIM {scores['ssim']:.4f} (inputs {scores['input_ssim']:.4f}), {time.time() - started:.0f} s"
        )


def collect_evaluations(output_dir: Path) -> dict:
    """``{step: {sampling steps: metrics}}`` of every evaluation written under ``eval/``."""
    results: dict = {}
    for path in sorted(output_dir.glob("eval/step-*/steps-*/metrics.json")):
        step, num_steps = path.parent.parent.name.removeprefix("step-"), path.parent.name.removeprefix("steps-")
        results.setdefault(step, {})[num_steps] = json.loads(path.read_text())
    return results


def validation_batch(args) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of (degraded, ground truth) faces: the first test pairs, else the first training pairs."""
    if args.testset is not None:
        dataset = PairedFolderDataset(Path(args.testset) / "lq", Path(args.testset) / "hq", resolution=args.resolution)
    else:
        dataset = DegradedFaceDataset(initial_pool(args), args.resolution, flip=False, seed=args.seed)
    return first_pairs(dataset, args.num_validation_images)


def log_validation(args, accelerator, ema, unet_config, noise_scheduler, batch, step: int) -> Path:
    lq, gt = batch
    restore = make_restorer(ema_unet(ema, unet_config), noise_scheduler, args.sampling_steps, args.sampler, args.seed,
                            accelerator.device)
    path = Path(args.output_dir) / "validation" / f"step-{step:06d}.png"
    log_validation_grid(accelerator, [lq, restore(lq), gt], path, step)  # LQ | restored | GT
    return path


# The options that shape the model and its training target: a run resumed from a checkpoint must give the same.
MODEL_SETTINGS = (
    "resolution", "pretrained_model_name_or_path", "unet_overrides", "num_train_timesteps", "beta_schedule",
    "prediction_type", "sigma_data",
)


def model_settings(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in MODEL_SETTINGS}


def main(args: argparse.Namespace) -> None:
    deadline = Deadline(args.max_train_minutes)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    output_dir = Path(args.output_dir)
    settings = model_settings(args)  # as given, before anything below fills options in from a pretrained model
    checkpoint = resolve_checkpoint(output_dir, args.resume_from_checkpoint, settings)  # before any write
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir)),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    if args.cleaning_niqe and args.extrinsic_rounds:
        load_niqe_params()  # a missing parameter file stops the run now, not after the first round
    set_seed(args.seed)  # the initial weights
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    if args.pretrained_model_name_or_path:
        unet, noise_scheduler = load_pretrained_idm(args.pretrained_model_name_or_path, args.resolution)
        for name in SCHEDULE_ARGS:  # the training summary records the schedule this run trains with
            setattr(args, name, noise_scheduler.config[name])
    else:
        unet = make_idm_unet(args.resolution, **args.unet_overrides)
        noise_scheduler = IDMScheduler(
            num_train_timesteps=args.num_train_timesteps,
            beta_schedule=args.beta_schedule,
            prediction_type=args.prediction_type,
            sigma_data=args.sigma_data,
        )
    # every timestep of the chain, 0 .. T-1, unless --train_at_sampling_steps names a sampling schedule's
    steps = args.train_at_sampling_steps or noise_scheduler.config.num_train_timesteps
    training_timesteps = noise_scheduler.sampling_timesteps(steps).flip(0)
    halvings = len(unet.config.block_out_channels) - 1
    if args.crop_size is not None and args.crop_size % 2**halvings:
        raise FacerestError(f"--crop_size {args.crop_size} cannot be halved {halvings} times, once per UNet level")
    ema = EMAModel(
        unet.parameters(), decay=args.ema_max_decay, use_ema_warmup=True, inv_gamma=args.ema_inv_gamma, power=args.ema_power
    )

    optimizer = torch.optim.AdamW(
        unet.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )
    num_rounds = args.extrinsic_rounds + 1
    total_steps = num_rounds * args.max_train_steps
    if args.lr_scheduler == "cosine_by_clock":  # the deadline's clock, not the step count, sets the decay
        lr_scheduler = clock_cosine_schedule(optimizer, deadline, args.lr_warmup_steps * accelerator.num_processes)
    else:
        lr_scheduler = get_scheduler(
            args.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=total_steps * accelerator.num_processes,
        )
    unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    register_checkpoint_hooks(accelerator, unet, ema, "unet")  # checkpoint-<step>/unet/ and unet_ema/
    denoiser = IDMDenoiser(unet, noise_scheduler)  # f_theta(x_d, x_t, gamma) and its loss
    ema.to(accelerator.device)
    unet_config = accelerator.unwrap_model(unet).config

    if accelerator.is_main_process:
        accelerator.init_trackers("train_idm", config={k: str(v) for k, v in vars(args).items()})
        validation = validation_batch(args)

    global_step = 0
    validation_grid = None  # the latest, for the model card
    if checkpoint is not None:
        load_checkpoint(accelerator, checkpoint)
        global_step = checkpoint_step(checkpoint)
        logger.info(f"resumed from {checkpoint} at step {global_step}")
    elif args.resume_from_checkpoint:
        logger.info(f"no checkpoint in {output_dir}: starting a new run")

    started = time.time()
    on_device = args.degradation_device == "accelerator"
    time_up = False
    start_round = min(global_step // args.max_train_steps, num_rounds)
    if global_step > 0 and global_step % args.max_train_steps == 0:  # resumed at the end of a round
        evaluate(args, accelerator, ema, unet_config, noise_scheduler, global_step)

    for round_index in range(start_round, num_rounds):
        round_start, round_end = round_index * args.max_train_steps, (round_index + 1) * args.max_train_steps
        if round_index > 0:
            run_cleaning_pass(args, accelerator, ema, unet_config, noise_scheduler, round_index, model_step=round_start)

        dataset = DegradedFaceDataset(
            round_pool(args, round_index),
            args.resolution,
            config=degradation_config(args),
            flip=not args.no_flip,
            seed=args.seed,
            crop_size=args.crop_size,
            defer_degradation=on_device,
        )
        train_dataloader = accelerator.prepare(
            torch.utils.data.DataLoader(
                dataset,
                batch_size=args.train_batch_size,
                shuffle=True,
                num_workers=args.dataloader_num_workers,
                persistent_workers=args.dataloader_num_workers > 0,  # set_epoch reaches them (shared memory)
                collate_fn=collate_deferred if on_device else None,
            )
        )
        updates_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
        epochs_per_round = math.ceil(args.max_train_steps / updates_per_epoch)
        logger.info(
            f"round {round_index}: {len(dataset)} targets, {updates_per_epoch} steps per epoch, steps {round_start} to "
            f"{round_end}, batch {accelerator.num_processes} process(es) x {args.train_batch_size} x "
            f"{args.gradient_accumulation_steps} accumulated"
        )

        progress_bar = tqdm(
            total=args.max_train_steps,
            initial=global_step - round_start,
            desc=f"round {round_index}",
            disable=not accelerator.is_local_main_process,
        )
        unet.train()
        first_epoch = (global_step - round_start) // updates_per_epoch
        for epoch in range(first_epoch, epochs_per_round):
            data_epoch = round_index * epochs_per_round + epoch  # all data randomness: (seed, data_epoch, index)
            dataset.set_epoch(data_epoch)
            train_dataloader.set_epoch(data_epoch)
            skipped_batches = 0
            if epoch == first_epoch:  # resuming inside this epoch: skip the batches already trained on
                skipped_batches = (global_step - round_start - epoch * updates_per_epoch) * args.gradient_accumulation_steps
            batches = accelerator.skip_first_batches(train_dataloader, skipped_batches) if skipped_batches else train_dataloader
            for batch_index, batch in enumerate(batches, start=skipped_batches):
                lq, gt = degrade_deferred(batch, accelerator.device) if on_device else batch
                key = (args.seed, data_epoch, batch_index, accelerator.process_index)
                generator = batch_generator(*key)
                if on_device:  # the host draws nothing per pixel
                    noise = torch.randn(gt.shape, generator=batch_generator(*key, 1, device=gt.device), device=gt.device)
                else:
                    noise = torch.randn(gt.shape, generator=generator).to(gt.device)
                timesteps = training_timesteps[torch.randint(0, len(training_timesteps), (gt.shape[0],), generator=generator)]
                # gamma ~ U(gamma_t, gamma_{t-1}) (SR3)
                noise_level = noise_scheduler.sample_noise_level(timesteps, generator=generator).to(gt.device)

                with accelerator.accumulate(unet):
                    # E || f_theta(x_d, x_t, gamma) - target ||_p^p at x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) eps,
                    # plus the detail the x_0 estimate lacks and its SSIM term, weighted (IDMDenoiser.loss)
                    if args.train_through_sampling_steps:  # the same terms on the N-step chain's result
                        loss = denoiser.sampler_loss(
                            gt, lq, noise, args.train_through_sampling_steps, args.loss, args.detail_weight, args.ssim_weight
                        )
                    else:
                        loss = denoiser.loss(gt, lq, noise, noise_level, args.loss, args.detail_weight, args.ssim_weight)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(unet.parameters(), args.max_grad_norm)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()

                if not accelerator.sync_gradients:
                    continue
                ema.step(unet.parameters())
                global_step += 1
                progress_bar.update(1)
                logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "ema_decay": ema.cur_decay_value,
                        "round": round_index}
                progress_bar.set_postfix(loss=f"{logs['loss']:.4f}")
                accelerator.log(logs, step=global_step)

                time_up = deadline.passed(accelerator)
                if global_step % args.checkpointing_steps == 0 or global_step == round_end or time_up:
                    save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit, settings)
                if global_step % args.validation_steps == 0 and accelerator.is_main_process:
                    validation_grid = log_validation(args, accelerator, ema, unet_config, noise_scheduler, validation, global_step)
                if global_step == round_end or time_up:
                    break
            if global_step == round_end or time_up:
                break
        progress_bar.close()
        if time_up:
            logger.info(f"--max_train_minutes {args.max_train_minutes} spent at step {global_step}: stopping here")
            break
        if round_index < num_rounds - 1:  # the last round is scored after the final save
            evaluate(args, accelerator, ema, unet_config, noise_scheduler, global_step)

    # Every process must hold the same weights: a cheap check that the processes really trained one model together.
    digests = gather_object([weights_digest(accelerator.unwrap_model(unet))])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        FaceRestorePipeline(
            unet=ema_unet(ema, unet_config), scheduler=noise_scheduler, default_inference_steps=args.sampling_steps
        ).save_pretrained(output_dir)
        logger.info(f"saved {output_dir / 'unet'} and {output_dir / 'scheduler'}")
    # scored after the save, so that a run stopped while it scores (a time limit, a kill) keeps its model
    evaluate(args, accelerator, ema, unet_config, noise_scheduler, global_step)
    if accelerator.is_main_process:
        summary = {
            "global_step": global_step,
            "rounds": num_rounds,
            "num_processes": accelerator.num_processes,
            "process_parameter_digests": digests,
            "seconds_this_session": round(time.time() - started, 1),
            "stopped_by_max_train_minutes": time_up,
            "evaluations": collect_evaluations(output_dir),
            "args": {key: value for key, value in vars(args).items()},
        }
        (output_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if len(set(digests)) != 1:
            raise RuntimeError(f"the processes ended with different weights: {digests}")
        if args.push_to_hub:
            try:
                repo_url, _ = push_trained_pipeline(
                    output_dir, args.hub_model_id or output_dir.name, private=args.hub_private_repo,
                    commit_message="IDM training: final EMA weights", sample_grid=validation_grid,
                    training_command=command_line(), training_budget=training_budget(args, accelerator, global_step),
                )  # fmt: skip
            except HubError as error:
                raise SystemExit(f"error: {error}") from None
            logger.info(f"pushed {output_dir} to {repo_url}")
    accelerator.end_training()


def training_budget(args, accelerator, global_step: int) -> str:
    batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    rounds = f" in {args.extrinsic_rounds + 1} rounds" if args.extrinsic_rounds else ""
    return f"{global_step} steps of batch {batch}{rounds}, {args.resolution}-px faces"


if __name__ == "__main__":
    try:
        main(parse_args())
    except FacerestError as error:  # a bad path or input file: one line, no traceback
        raise SystemExit(f"error: {error}")
