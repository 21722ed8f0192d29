"""Training throughput of both models' steps, with one process and with two (gloo DistributedDataParallel)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch

from ..context import SMALL_GFPGAN_64, SMALL_IDM_64, TINY_GFPGAN_64, TINY_IDM_64, Context
from ..subjects import load_idm


def training(ctx: Context) -> None:
    """Samples per second of the IDM and the GFP-GAN (G + D) steps, 1 and 2 processes sharing the threads."""
    table = ctx.table(
        "Training throughput (forward, backward and optimiser step)",
        ["Model", "Processes x threads", "Batch per process", "Samples/s (all processes)", "Scaling vs 1 process"],
    )
    train_dir = ctx.options.train_data or ctx.shared("data", "ffhq256", "train")
    spec = {
        "seed": ctx.options.seed, "quick": ctx.quick, "steps": 2 if ctx.quick else 4,
        "train_dir": str(train_dir) if train_dir.is_dir() else None,
        "idm": TINY_IDM_64 if ctx.quick else SMALL_IDM_64,
        "idm_scheduler": dict(load_idm(Path(ctx.options.idm))[1].config) if ctx.options.idm else {},
        "gfpgan": TINY_GFPGAN_64 if ctx.quick else SMALL_GFPGAN_64,
        "batch": 4,
    }
    results = {}
    for world in (1, 2):
        threads = max(1, ctx.threads // world)
        ctx.log(f"training: {world} process(es) x {threads} thread(s)")
        try:
            results[world] = _train_throughput(spec, world, threads)
        except Exception as error:  # a failed launch must not lose the other parts
            results[world] = {"error": f"{type(error).__name__}: {error}"}
    for model, label in (("idm", "IDM UNet (64 px)"), ("gfpgan", "GFP-GAN G + D (64 px)")):
        base = results.get(1, {}).get(model)
        for world in (1, 2):
            value, processes = results[world].get(model), f"{world} x {max(1, ctx.threads // world)}"
            if value is None:
                table.add(label, processes, spec["batch"], results[world].get("error"), None)
            else:
                table.add(label, processes, spec["batch"], value, value / base if base else None)
    table.notes += [
        f"Models: random, the sizes of the 64-px training runs{' (tiny with --quick)' if ctx.quick else ''}; "
        f"{spec['steps']} timed steps after one warm-up; data: DegradedFaceDataset on "
        f"{spec['train_dir'] or 'random tensors (no training folder)'} (degradation in the training process).",
        "Limited by: the cores, shared between the processes and with other jobs (see 'How to run and read this').",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_throughput(spec: dict, world: int, threads: int) -> dict:
    """Samples per second of both models' training steps with ``world`` processes (in this process when 1)."""
    if world == 1:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _train_worker_body(0, 1, spec)
        finally:
            torch.set_num_threads(previous)
    import torch.multiprocessing as mp

    port = _free_port()
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    processes = [
        context.Process(target=_train_worker, args=(rank, world, port, threads, spec, queue), daemon=True)
        for rank in range(world)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    results = [queue.get() for _ in range(world) if not queue.empty()]
    errors = [result["error"] for result in results if "error" in result]
    if errors or len(results) < world:
        raise RuntimeError(errors[0] if errors else "a training process exited without a result")
    return next(result for result in results if result.get("rank") == 0)


def _train_worker(rank: int, world: int, port: int, threads: int, spec: dict, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        try:
            result = _train_worker_body(rank, world, spec)
        finally:
            dist.destroy_process_group()
        queue.put({**result, "rank": rank})
    except Exception as error:  # reported to the parent
        message = (str(error).strip().splitlines() or [""])[0][:200]
        queue.put({"error": f"{type(error).__name__}: {message}", "rank": rank})


def _train_worker_body(rank: int, world: int, spec: dict) -> dict:
    """Both models' samples per second in this process (one rank of ``world``)."""
    torch.manual_seed(spec["seed"])
    batches = _batch_source(rank, world, spec)
    distributed = world > 1

    def measure(step_fn) -> float:
        elapsed = 0.0
        for index, (lq, gt) in enumerate(batches()):
            _barrier(distributed)
            started = time.perf_counter()
            step_fn(lq, gt)
            _barrier(distributed)
            if index > 0:  # the first step is a warm-up
                elapsed += time.perf_counter() - started
        return world * spec["batch"] * spec["steps"] / elapsed

    return {"idm": _idm_throughput(rank, spec, distributed, measure),
            "gfpgan": _gfpgan_throughput(spec, distributed, measure)}


def _batch_source(rank: int, world: int, spec: dict):
    """A function yielding this rank's ``steps + 1`` (lq, gt) batches: degraded training faces, or random tensors."""
    from facerest.data import DegradedFaceDataset
    from facerest.images import list_images

    batch, steps = spec["batch"], spec["steps"]
    dataset = None
    if spec["train_dir"]:
        paths = list_images(spec["train_dir"])[: world * batch * (steps + 1)]
        dataset = DegradedFaceDataset(paths, 64, seed=spec["seed"])

    def batches():
        for step in range(steps + 1):
            if dataset is None:
                gt = torch.rand(batch, 3, 64, 64) * 2 - 1
                yield gt + 0.1 * torch.randn_like(gt), gt
                continue
            indices = [(step * world * batch + rank * batch + i) % len(dataset) for i in range(batch)]
            pairs = [dataset[index] for index in indices]
            yield torch.stack([lq for lq, _ in pairs]), torch.stack([gt for _, gt in pairs])

    return batches


def _wrap(module, distributed: bool, find_unused_parameters=False):
    if not distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    # the buffers (blur kernels, fixed noise) are constants: re-broadcasting them in place at every forward
    # breaks the discriminator's second forward before its backward on some torch versions (2.11)
    return DistributedDataParallel(module, find_unused_parameters=find_unused_parameters, broadcast_buffers=False)


def _barrier(distributed: bool) -> None:
    if distributed:
        torch.distributed.barrier()


def _idm_throughput(rank: int, spec: dict, distributed: bool, measure) -> float:
    """IDM: train/train_idm.py's step (noise level drawn as in SR3, the denoiser's L1 loss with the scheduler of the
    --idm model, else a default one), gradient clipping, AdamW."""
    from facerest.models.idm import IDMDenoiser, IDMScheduler, make_idm_unet

    unet = _wrap(make_idm_unet(64, **spec["idm"]).train(), distributed)
    scheduler = IDMScheduler.from_config(spec.get("idm_scheduler", {}))
    denoiser = IDMDenoiser(unet, scheduler)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(spec["seed"] + rank)

    def idm_step(lq, gt):
        noise = torch.randn(gt.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (gt.shape[0],), generator=generator)
        noise_level = scheduler.sample_noise_level(timesteps, generator=generator)
        loss = denoiser.loss(gt, lq, noise, noise_level, "l1")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    return measure(idm_step)


def _gfpgan_throughput(spec: dict, distributed: bool, measure) -> float:
    """GFP-GAN: generator L1 + image-pyramid L1 + adversarial loss, then the StyleGAN2 discriminator's step."""
    import torch.nn.functional as F

    from facerest.models.gfpgan import GFPGANConfig, GFPGANModel
    from facerest.training.discriminators import StyleGAN2Discriminator
    from facerest.training.losses import adversarial_loss, pyramid_l1_loss

    config = GFPGANConfig(**spec["gfpgan"])
    net_g = _wrap(GFPGANModel(config).train(), distributed, find_unused_parameters=True)  # the mapping network gets no gradient
    net_d = _wrap(StyleGAN2Discriminator(64, channel_multiplier=1, narrow=0.25), distributed)
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=2e-4)
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=2e-4)

    def gfpgan_step(lq, gt):
        output = net_g(lq, return_rgbs=True)
        loss = F.l1_loss(output.image, gt) + pyramid_l1_loss(output.intermediate_rgbs, gt)
        loss = loss + 0.1 * adversarial_loss(net_d(output.image), True)
        loss.backward()
        optimizer_g.step()
        optimizer_g.zero_grad()
        optimizer_d.zero_grad()  # the generator's step also filled the discriminator's gradients
        loss_d = adversarial_loss(net_d(gt), True) + adversarial_loss(net_d(output.image.detach()), False)
        loss_d.backward()
        optimizer_d.step()
        optimizer_d.zero_grad()

    return measure(gfpgan_step)
