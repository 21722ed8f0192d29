#!/usr/bin/env python
"""Train GFP-GAN (Wang et al., "Towards Real-World Blind Face Restoration with Generative Facial Prior",
CVPR 2021) with Accelerate, on HQ faces degraded on the fly.

    accelerate launch train/train_gfpgan.py --train_data_dir ../shared/data/ffhq256/train \\
        --resolution 256 --channel_multiplier 1 --output_dir runs/gfpgan256

On CPU with several processes: ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2
--num_machines 1 --mixed_precision no --dynamo_backend no train/train_gfpgan.py ...``.

The losses and their defaults are GFP-GAN's published recipe (``options/train_gfpgan_v1.yml``):
- reconstruction: L1 0.1; image-pyramid L1 on the U-Net's intermediate RGB outputs 1 (first 50k steps);
  VGG19 perceptual 1 and style 50;
- adversarial: StyleGAN2 discriminator, non-saturating softplus loss 0.1; lazy R1, gamma 10 every 16 steps;
- facial components: a discriminator each for the left eye, right eye and mouth (ROI-aligned crops), GAN
  loss 1, plus the Gram-matrix style loss 200 on their features;
- identity: L1 between ArcFace (ResNet-IR18) embeddings, 10.
Adam, lr 2e-3: betas (0, 0.99) for G and D (D's adjusted for lazy R1), (0.9, 0.99) for the component Ds;
learning rates halved at 600k and 700k steps. EMA of G with decay 0.5 ** (32 / 10k).

These weights were tuned for fine-tuning a pretrained StyleGAN2 decoder (``--pretrained_decoder``). Trained
from scratch, a lower learning rate and a stronger L1 are steadier: the 64 px CPU run in the project's notes
used ``--learning_rate 2e-4 --component_learning_rate 2e-4 --l1_weight 1``.

The final EMA generator is saved as a ``FaceRestorePipeline`` in ``<output_dir>`` (``model_index.json`` and
``restorer/``, which ``GFPGANModel.from_pretrained`` also loads). Checkpoints keep the generator and its EMA the same
way (``checkpoint-<step>/restorer/`` and ``restorer_ema/``, see ``facerest.training.checkpoints``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration, set_seed
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from facerest.data import DegradedFaceDataset, collate_deferred, degrade_deferred
from facerest.errors import FacerestError
from facerest.images import list_images
from facerest.models.arcface import ArcFaceResNet18
from facerest.models.gfpgan import GFPGANConfig, GFPGANModel, load_original_weights
from facerest.pipeline import FaceRestorePipeline
from facerest.push import HubError, push_trained_pipeline
from facerest.training.checkpoints import checkpoint_step, ema_weights, register_checkpoint_hooks, resolve_checkpoint
from facerest.training.checkpoints import load_checkpoint, save_checkpoint, weights_digest
from facerest.training.discriminators import FACIAL_COMPONENTS, FacialComponentDiscriminators, StyleGAN2Discriminator
from facerest.training.facial_components import FacialComponentLocator, image_numbers, load_component_landmarks
from facerest.training.losses import GFPGAN_RECIPE as RECIPE
from facerest.training.losses import adversarial_loss, component_style_loss, identity_loss, pyramid_l1_loss, r1_penalty
from facerest.training.perceptual import PerceptualLoss, load_feature_nets
from facerest.training.testset_eval import evaluate_testset
from facerest.training.utils import Deadline, command_line, first_pairs, log_validation_grid

logger = get_logger(__name__, log_level="INFO")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train GFP-GAN with Accelerate.")
    data = parser.add_argument_group("data")
    data.add_argument("--train_data_dir", required=True, help="Folder of aligned square HQ faces.")
    data.add_argument("--max_train_samples", type=int, default=None, help="Use only the first N images (by name).")
    data.add_argument("--resolution", type=int, default=512, help="Face size: 64 to 1024, a power of two.")
    data.add_argument("--no_flip", action="store_true", help="Do not flip faces horizontally at random.")
    data.add_argument(
        "--landmarks_file",
        default=None,
        help="Eye and mouth positions in GFP-GAN's format (FFHQ_eye_mouth_landmarks_512.pth); default: the FFHQ template.",
    )
    data.add_argument("--landmarks_resolution", type=int, default=512, help="Face size the landmarks file refers to.")
    data.add_argument("--validation_data_dir", default=None, help="Faces shown in the validation grid (default: the training folder).")
    data.add_argument("--num_validation_images", type=int, default=4)
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument(
        "--degradation_device",
        choices=["cpu", "accelerator"],
        default="cpu",
        help="cpu: the data loader degrades each face with numpy/OpenCV; accelerator: it only loads the HQ faces and "
        "draws their degradations, which run in batches on the training device (torch path of facerest.degradation).",
    )
    data.add_argument(
        "--testset", default=None, help="A paired test set (lq/, hq/; see make-testset) scored with the final EMA generator."
    )

    model = parser.add_argument_group("model")
    model.add_argument("--num_style_feat", type=int, default=512)
    model.add_argument("--channel_multiplier", type=int, default=2)
    model.add_argument("--narrow", type=float, default=1.0)
    model.add_argument("--num_mlp", type=int, default=8)
    model.add_argument("--discriminator_narrow", type=float, default=1.0, help="Width factor of the StyleGAN2 discriminator.")
    model.add_argument("--pretrained_decoder", default=None, help="A pretrained StyleGAN2 (official .pth or safetensors) for the decoder.")
    model.add_argument("--freeze_decoder", action="store_true", help="Keep the StyleGAN2 decoder fixed.")

    losses = parser.add_argument_group("losses (0 turns a loss off)")
    losses.add_argument("--l1_weight", type=float, default=RECIPE["l1_weight"])
    losses.add_argument("--pyramid_loss_weight", type=float, default=RECIPE["pyramid_loss_weight"])
    losses.add_argument("--pyramid_loss_steps", type=int, default=50_000, help="Apply the pyramid loss for the first N steps.")
    losses.add_argument("--perceptual_weight", type=float, default=RECIPE["perceptual_weight"])
    losses.add_argument("--style_weight", type=float, default=RECIPE["style_weight"])
    losses.add_argument("--gan_weight", type=float, default=RECIPE["gan_weight"])
    losses.add_argument("--r1_weight", type=float, default=RECIPE["r1_weight"], help="R1 gamma.")
    losses.add_argument("--r1_every", type=int, default=RECIPE["r1_every"], help="Lazy R1: regularise D every N steps.")
    losses.add_argument("--component_gan_weight", type=float, default=RECIPE["component_gan_weight"])
    losses.add_argument("--component_style_weight", type=float, default=RECIPE["component_style_weight"])
    losses.add_argument("--identity_weight", type=float, default=RECIPE["identity_weight"])
    losses.add_argument("--vgg_weights", default=None, help="vgg19-dcbb9e9d.pth, or a folder holding it.")
    losses.add_argument("--arcface_weights", default=None, help="arcface_resnet18.pth, or a folder holding it.")
    losses.add_argument(
        "--random_init_feature_nets", action="store_true", help="Randomly initialised VGG19 and ArcFace (tests only)."
    )

    training = parser.add_argument_group("training")
    training.add_argument("--output_dir", required=True)
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--train_batch_size", type=int, default=3, help="Per process.")
    training.add_argument("--num_epochs", type=int, default=100)
    training.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_epochs.")
    training.add_argument(
        "--max_train_minutes", type=float, default=None, help="Stop once this wall time (from the start) is spent: checkpoint and final save."
    )
    training.add_argument("--gradient_accumulation_steps", type=int, default=1)
    training.add_argument("--learning_rate", type=float, default=RECIPE["learning_rate"], help="Generator and discriminator.")
    training.add_argument("--component_learning_rate", type=float, default=RECIPE["component_learning_rate"])
    training.add_argument("--lr_milestones", type=int, nargs="*", default=[600_000, 700_000], help="Halve the learning rates at these steps.")
    training.add_argument("--ema_decay", type=float, default=RECIPE["ema_decay"])
    training.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None, help="Default: accelerate's config.")
    training.add_argument("--cpu", action="store_true", help="Train on the CPU even when an accelerator is present.")
    training.add_argument("--checkpointing_steps", type=int, default=5000)
    training.add_argument("--checkpoints_total_limit", type=int, default=None)
    training.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint folder.')
    training.add_argument("--validation_steps", type=int, default=5000, help="Save a validation grid every N steps.")
    training.add_argument("--logging_dir", default="logs", help="TensorBoard folder, inside output_dir.")
    training.add_argument("--report_to", default="tensorboard")
    training.add_argument(
        "--write_rank_checksums", action="store_true", help="Each process writes a hash of its final weights (replica check)."
    )

    hub = parser.add_argument_group("hub")
    hub.add_argument("--push_to_hub", action="store_true")
    hub.add_argument("--hub_model_id", default=None, help="Repository name; default: the output folder's name.")
    hub.add_argument("--hub_token", default=None)
    hub.add_argument("--hub_private_repo", action="store_true")

    args = parser.parse_args(argv)
    if args.train_batch_size > 4 and args.train_batch_size % 4:
        parser.error("--train_batch_size must be at most 4 or a multiple of 4 (the discriminator's minibatch-stddev groups)")
    for name in ("gradient_accumulation_steps", "r1_every", "checkpointing_steps", "validation_steps", "num_validation_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.max_train_minutes is not None and not args.max_train_minutes > 0:
        parser.error("--max_train_minutes must be positive")
    return args


# The options that shape the model and its training target: a run resumed from a checkpoint must give the same.
MODEL_SETTINGS = ("resolution", "num_style_feat", "channel_multiplier", "narrow", "num_mlp", "discriminator_narrow")


def model_settings(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in MODEL_SETTINGS}


def main(args: argparse.Namespace) -> None:
    deadline = Deadline(args.max_train_minutes)
    output_dir = Path(args.output_dir)
    settings = model_settings(args)  # as given, before anything below fills options in from a pretrained model
    checkpoint = resolve_checkpoint(output_dir, args.resume_from_checkpoint, settings)  # before any write
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        # Without cpu=True a multi-process launch on a machine without accelerators runs independent jobs.
        cpu=args.cpu or not torch.accelerator.is_available(),
        log_with=args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir)),
        # One shuffling seed for every process and epoch, so a resumed run sees the batches an uninterrupted one would.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # Official GFP-GAN trains with find_unused_parameters: the decoder's mapping MLP is unused with
        # input_is_latent, and the pyramid outputs are unused once that loss is off.
        # broadcast_buffers=False: the buffers (blur kernels, fixed noise) are constants, and re-broadcasting them in
        # place at each forward breaks a second discriminator forward before its backward on some torch versions
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True, broadcast_buffers=False)],
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    # Data. Every item's degradation depends only on (seed, epoch, index).
    on_device = args.degradation_device == "accelerator"
    train_paths = list_images(args.train_data_dir)[: args.max_train_samples]
    train_dataset = DegradedFaceDataset(
        train_paths, args.resolution, flip=not args.no_flip, seed=args.seed, with_info=True, defer_degradation=on_device
    )
    train_dataloader = DataLoader(
        train_dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=True,  # the discriminator's stddev groups need full batches
        num_workers=args.dataloader_num_workers,
        persistent_workers=args.dataloader_num_workers > 0,  # set_epoch reaches them (shared memory)
        generator=torch.Generator().manual_seed(args.seed),  # keeps the global RNG out of the data order
        collate_fn=collate_deferred if on_device else None,
    )
    if len(train_dataloader) == 0:
        raise FacerestError(f"{len(train_dataset)} usable training images: fewer than one batch of {args.train_batch_size}")
    locator = FacialComponentLocator(
        args.resolution,
        load_component_landmarks(args.landmarks_file) if args.landmarks_file else None,
        source_size=args.landmarks_resolution,
    )
    numbers = image_numbers(train_dataset.paths) if args.landmarks_file else torch.arange(len(train_dataset))
    validation_batch = make_validation_batch(args)

    # Networks.
    config = GFPGANConfig(
        out_size=args.resolution,
        num_style_feat=args.num_style_feat,
        channel_multiplier=args.channel_multiplier,
        narrow=args.narrow,
        num_mlp=args.num_mlp,
    )
    generator = GFPGANModel(config)
    if args.pretrained_decoder:
        load_original_weights(generator.stylegan_decoder, args.pretrained_decoder)  # a pretrained StyleGAN2
    if args.freeze_decoder:
        generator.stylegan_decoder.requires_grad_(False)
    discriminator = StyleGAN2Discriminator(args.resolution, args.channel_multiplier, args.discriminator_narrow)
    use_components = args.component_gan_weight > 0 or args.component_style_weight > 0
    component_discriminators = FacialComponentDiscriminators() if use_components else None
    try:
        perceptual_loss, arcface = load_feature_nets(
            args.perceptual_weight, args.style_weight, args.identity_weight, args.vgg_weights, args.arcface_weights,
            random_init=args.random_init_feature_nets,
        )  # fmt: skip
    except FacerestError as error:
        raise FacerestError(
            f"{error}\nGive the file with --vgg_weights / --arcface_weights, turn the loss off "
            "(--perceptual_weight 0 --style_weight 0, --identity_weight 0), or pass --random_init_feature_nets."
        ) from None
    if perceptual_loss is not None:
        perceptual_loss.to(accelerator.device)
    if arcface is not None:
        arcface.to(accelerator.device)

    ema = EMAModel(generator.parameters(), decay=args.ema_decay)
    ema.to(accelerator.device)

    # Optimisers. Lazy R1 (StyleGAN2, App. B): D's lr and betas are adjusted by r1_every / (r1_every + 1).
    d_ratio = args.r1_every / (args.r1_every + 1)
    optimizer_g = torch.optim.Adam([p for p in generator.parameters() if p.requires_grad], lr=args.learning_rate, betas=(0.0, 0.99))
    optimizer_d = torch.optim.Adam(
        discriminator.parameters(), lr=args.learning_rate * d_ratio, betas=(0.0**d_ratio, 0.99**d_ratio)
    )
    # Accelerate steps a prepared scheduler once per process per optimisation step: scale the milestones.
    milestones = [step * accelerator.num_processes for step in args.lr_milestones]
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.5) for optimizer in (optimizer_g, optimizer_d)]
    generator, discriminator, optimizer_g, optimizer_d, *schedulers, train_dataloader = accelerator.prepare(
        generator, discriminator, optimizer_g, optimizer_d, *schedulers, train_dataloader
    )
    trained = [generator, discriminator]
    optimizer_c = None
    if component_discriminators is not None:
        optimizer_c = torch.optim.Adam(component_discriminators.parameters(), lr=args.component_learning_rate, betas=(0.9, 0.99))
        scheduler_c = torch.optim.lr_scheduler.MultiStepLR(optimizer_c, milestones, gamma=0.5)
        component_discriminators, optimizer_c, scheduler_c = accelerator.prepare(component_discriminators, optimizer_c, scheduler_c)
        trained.append(component_discriminators)
        schedulers.append(scheduler_c)
    generator_module = accelerator.unwrap_model(generator)
    # In the generator's step the discriminators are fixed critics, called without DDP (which would expect
    # their gradients to be reduced).
    critics = GeneratorCritics(
        accelerator.unwrap_model(discriminator),
        accelerator.unwrap_model(component_discriminators) if component_discriminators is not None else None,
        perceptual_loss,
        arcface,
        locator,
    )
    register_checkpoint_hooks(accelerator, generator, ema, "restorer")  # checkpoint-<step>/restorer/, restorer_ema/

    num_update_steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_epochs * num_update_steps_per_epoch
    num_epochs = math.ceil(max_train_steps / num_update_steps_per_epoch)

    if accelerator.is_main_process:
        accelerator.init_trackers("train_gfpgan", config=tracker_config(args))

    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info(f"  Num examples = {len(train_dataset)}")
    logger.info(f"  Num epochs = {num_epochs}")
    logger.info(f"  Instantaneous batch size per device = {args.train_batch_size}")
    logger.info(f"  Total train batch size (w. parallel, distributed & accumulation) = {total_batch_size}")
    logger.info(f"  Gradient accumulation steps = {args.gradient_accumulation_steps}")
    logger.info(f"  Total optimization steps = {max_train_steps}")
    logger.info(f"  Generator parameters = {sum(p.numel() for p in generator_module.parameters()):,}")

    global_step = 0
    if args.resume_from_checkpoint and checkpoint is None:
        logger.info(f"No checkpoint in {output_dir}: starting a new training run.")
    if checkpoint is not None:
        logger.info(f"Resuming from {checkpoint}")
        load_checkpoint(accelerator, checkpoint)
        global_step = checkpoint_step(checkpoint)
    first_epoch = global_step // num_update_steps_per_epoch
    resume_batches = (global_step % num_update_steps_per_epoch) * args.gradient_accumulation_steps

    progress_bar = tqdm(range(max_train_steps), initial=global_step, disable=not accelerator.is_local_main_process)
    progress_bar.set_description("Steps")
    time_up = False
    for epoch in range(first_epoch, num_epochs):
        train_dataset.set_epoch(epoch)
        train_dataloader.set_epoch(epoch)
        batches = train_dataloader
        if epoch == first_epoch and resume_batches:
            batches = accelerator.skip_first_batches(train_dataloader, resume_batches)
        for batch in batches:
            lq, gt, info = (*degrade_deferred(batch, accelerator.device), batch) if on_device else batch
            boxes = locator.batch_boxes(numbers[info["index"].cpu()], info["flipped"].cpu())
            with accelerator.accumulate(*trained):
                logs, restored, crops = generator_step(args, accelerator, global_step, generator, optimizer_g, critics, lq, gt, boxes)
                logs.update(discriminator_step(args, accelerator, global_step, discriminator, optimizer_d, gt, restored))
                if component_discriminators is not None:
                    logs.update(component_discriminator_step(accelerator, component_discriminators, optimizer_c, crops))
                for scheduler in schedulers:
                    scheduler.step()

            if accelerator.sync_gradients:
                ema.step(generator_module.parameters())
                global_step += 1
                progress_bar.update(1)
                logs["ema_decay"] = ema.cur_decay_value
                logs["lr"] = schedulers[0].get_last_lr()[0]
                progress_bar.set_postfix(g=logs["g_total"], d=logs["d_loss"])
                accelerator.log(logs, step=global_step)

                time_up = deadline.passed(accelerator)
                if global_step % args.checkpointing_steps == 0 or time_up:
                    save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit, settings)
                if accelerator.is_main_process and global_step % args.validation_steps == 0:
                    log_validation(accelerator, ema, generator_module, validation_batch, output_dir / "samples" / f"step_{global_step:06d}.png", global_step)
            if global_step >= max_train_steps or time_up:
                break
        if time_up:
            logger.info(f"--max_train_minutes {args.max_train_minutes} spent at step {global_step}: stopping here")
            break

    accelerator.wait_for_everyone()
    if args.write_rank_checksums:
        write_rank_checksums(accelerator, output_dir, generator_module, critics.discriminator, critics.component_discriminators)
    if accelerator.is_main_process:
        log_validation(accelerator, ema, generator_module, validation_batch, output_dir / "samples" / "final.png", global_step)
        ema.copy_to(generator_module.parameters())
        FaceRestorePipeline(restorer=generator_module).save_pretrained(output_dir)
        logger.info(f"Saved the EMA generator as a FaceRestorePipeline in {output_dir} after {global_step} steps")
        if args.testset:
            score_testset(accelerator, generator_module, args.testset, output_dir / "testset", global_step)
        if args.push_to_hub:
            total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
            try:
                repo_url, _ = push_trained_pipeline(
                    output_dir, args.hub_model_id or output_dir.name, private=args.hub_private_repo, token=args.hub_token,
                    commit_message="GFP-GAN training: EMA generator", sample_grid=output_dir / "samples" / "final.png",
                    training_command=command_line(),
                    training_budget=f"{global_step} steps of batch {total_batch}, {args.resolution}-px faces",
                )  # fmt: skip
            except HubError as error:
                raise SystemExit(f"error: {error}") from None
            logger.info(f"Pushed {output_dir} to {repo_url}")
    accelerator.end_training()


@dataclass
class GeneratorCritics:
    """The fixed networks the generator's losses are computed with."""

    discriminator: StyleGAN2Discriminator
    component_discriminators: FacialComponentDiscriminators | None
    perceptual_loss: PerceptualLoss | None
    arcface: ArcFaceResNet18 | None
    locator: FacialComponentLocator

    def requires_grad_(self, requires_grad: bool) -> None:
        """Freeze the discriminators during the generator's step, so they collect no gradient from it."""
        for critic in (self.discriminator, self.component_discriminators):
            if critic is not None:
                critic.requires_grad_(requires_grad)


def generator_step(args, accelerator, global_step, generator, optimizer, critics: GeneratorCritics, lq, gt, boxes):
    """One generator update with the four loss groups. Returns the logged values, the restored batch and
    the component crops of the restored and real faces (both detached, for the discriminators' updates)."""
    critics.requires_grad_(False)
    use_pyramid = args.pyramid_loss_weight > 0 and global_step < args.pyramid_loss_steps
    output = generator(lq, return_rgbs=use_pyramid, randomize_noise=True)
    restored = output.image

    terms = {}
    # Reconstruction: L1, image pyramid on the intermediate outputs, VGG perceptual and style.
    terms["l1"] = args.l1_weight * F.l1_loss(restored, gt)
    if use_pyramid:
        terms["pyramid"] = args.pyramid_loss_weight * pyramid_l1_loss(output.intermediate_rgbs, gt)
    if critics.perceptual_loss is not None:
        terms["perceptual"], terms["style"] = critics.perceptual_loss(restored, gt)
    # Adversarial.
    terms["gan"] = args.gan_weight * adversarial_loss(critics.discriminator(restored), target_is_real=True)
    # Facial components: local GAN losses and the Gram style loss on the discriminators' features.
    crops = None
    if critics.component_discriminators is not None:
        crops = {"fake": critics.locator.crop(restored, boxes), "real": critics.locator.crop(gt, boxes)}
        fake_outputs = critics.component_discriminators(crops["fake"])
        real_outputs = critics.component_discriminators(crops["real"])
        for name in FACIAL_COMPONENTS:
            terms[f"gan_{name}"] = args.component_gan_weight * adversarial_loss(fake_outputs[name][0], target_is_real=True)
        terms["component_style"] = args.component_style_weight * sum(
            component_style_loss(fake_outputs[name][1], real_outputs[name][1]) for name in FACIAL_COMPONENTS
        )
        crops = {kind: {name: crop.detach() for name, crop in parts.items()} for kind, parts in crops.items()}
    # Identity.
    if critics.arcface is not None:
        terms["identity"] = args.identity_weight * identity_loss(critics.arcface, restored, gt)

    total = sum(terms.values())
    accelerator.backward(total)
    optimizer.step()
    optimizer.zero_grad()
    critics.requires_grad_(True)

    logs = {f"g_{name}": value.detach().item() for name, value in terms.items()}
    logs["g_total"] = total.detach().item()
    return logs, restored.detach(), crops


def discriminator_step(args, accelerator, global_step, discriminator, optimizer, gt, restored) -> dict:
    """One StyleGAN2-discriminator update: softplus loss on real and restored faces, plus lazy R1.

    Each forward is followed by its own backward, as DDP expects; the gradients add up to those of the sum.
    """
    fake_logits = discriminator(restored)
    fake_loss = adversarial_loss(fake_logits, target_is_real=False)
    accelerator.backward(fake_loss)
    real_logits = discriminator(gt)
    real_loss = adversarial_loss(real_logits, target_is_real=True)
    accelerator.backward(real_loss)
    logs = {
        "d_loss": (fake_loss + real_loss).item(),
        "d_real_score": real_logits.detach().mean().item(),
        "d_fake_score": fake_logits.detach().mean().item(),
    }
    if args.r1_weight > 0 and global_step % args.r1_every == 0:
        real = gt.detach().requires_grad_(True)
        real_logits = discriminator(real)
        penalty = r1_penalty(real_logits, real)
        # gamma / 2 * R1, times the interval so that the lazy penalty keeps its average strength. The
        # 0 * D(x) term keeps every D parameter in the backward graph (DDP waits for all of them).
        accelerator.backward(args.r1_weight / 2 * penalty * args.r1_every + 0 * real_logits.sum())
        logs["d_r1"] = penalty.detach().item()
    optimizer.step()
    optimizer.zero_grad()
    return logs


def component_discriminator_step(accelerator, component_discriminators, optimizer, crops) -> dict:
    """One update of the three facial-component discriminators (vanilla GAN loss on the crops' logit maps)."""
    fake_outputs = component_discriminators(crops["fake"])
    fake_losses = {name: adversarial_loss(fake_outputs[name][0], target_is_real=False) for name in FACIAL_COMPONENTS}
    accelerator.backward(sum(fake_losses.values()))
    real_outputs = component_discriminators(crops["real"])
    real_losses = {name: adversarial_loss(real_outputs[name][0], target_is_real=True) for name in FACIAL_COMPONENTS}
    accelerator.backward(sum(real_losses.values()))
    optimizer.step()
    optimizer.zero_grad()
    return {f"d_{name}": (fake_losses[name] + real_losses[name]).item() for name in FACIAL_COMPONENTS}


def make_validation_batch(args) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (lq, gt) faces for the validation grid: the first images of the validation folder, degraded at epoch 0."""
    paths = list_images(args.validation_data_dir or args.train_data_dir)[: args.num_validation_images]
    return first_pairs(DegradedFaceDataset(paths, args.resolution, flip=False, seed=args.seed), len(paths))


@torch.no_grad()
def log_validation(accelerator, ema, generator, batch, path: Path, step: int) -> None:
    """Restore the validation faces with the EMA weights; save LQ | restored | GT and log it to TensorBoard."""
    lq, gt = (t.to(accelerator.device) for t in batch)
    with ema_weights(ema, generator):
        generator.eval()
        restored = generator(lq).image.clamp(-1, 1)
        generator.train()
    log_validation_grid(accelerator, [lq, restored, gt], path, step)


def score_testset(accelerator, generator, testset_dir, output_dir: Path, step: int) -> None:
    """PSNR / SSIM of the restored test faces and of their degraded inputs against the ground truth."""
    generator.eval()

    def restore(lq: torch.Tensor) -> torch.Tensor:
        return generator(lq.to(accelerator.device)).image.clamp(-1, 1).cpu()

    scores = evaluate_testset(restore, testset_dir, output_dir, resolution=generator.config.out_size)
    logger.info(f"Test set {testset_dir}: {json.dumps(scores)}")
    accelerator.log({f"testset/{name}": value for name, value in scores.items()}, step=step)


def write_rank_checksums(accelerator, output_dir: Path, generator, discriminator, component_discriminators) -> None:
    """Each process writes the digests of its networks to ``rank_checksums/rank<i>.json`` (replicas must agree)."""
    folder = output_dir / "rank_checksums"
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "process_index": accelerator.process_index,
        "num_processes": accelerator.num_processes,
        "generator": weights_digest(generator),
        "discriminator": weights_digest(discriminator),
    }
    if component_discriminators is not None:
        record["component_discriminators"] = weights_digest(component_discriminators)
    (folder / f"rank{accelerator.process_index}.json").write_text(json.dumps(record, indent=2) + "\n")


def tracker_config(args) -> dict:
    """The arguments as TensorBoard hyperparameters (which take only scalars and strings)."""
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value) for key, value in vars(args).items()}


if __name__ == "__main__":
    try:
        main(parse_args())
    except FacerestError as error:  # a missing file or too few images: one line, no traceback
        raise SystemExit(f"error: {error}")
