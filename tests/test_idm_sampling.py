"""IDM sampling: determinism, strength, batches, an exact denoiser, and overfitting one face."""

import math
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from facerest.images import image_to_tensor, list_images, load_image, tensor_to_image
from facerest.models.idm import IDMScheduler, idm_sample, make_idm_unet

RESOLUTION = 16


def tiny_unet(resolution: int = RESOLUTION, **overrides):
    torch.manual_seed(0)
    config = dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, attention_head_dim=16)
    config.update(overrides)
    return make_idm_unet(resolution, **config)


def random_faces(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def sample(unet, lq, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 5)
    return idm_sample(unet, IDMScheduler(), lq, generator=torch.Generator().manual_seed(seed), progress=False, **kwargs)


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.mark.parametrize("eta", [None, 0.0])
def test_same_seed_same_output_different_seed_different(unet, eta):
    lq = random_faces(2, 0)
    first, again, other = (sample(unet, lq, seed=s, eta=eta) for s in (0, 0, 1))
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3


def test_sampling_leaves_the_scheduler_as_it_was_so_threads_can_share_it(unet):
    """Each call sets the timesteps of its own copy: a pipeline called from two threads with different step counts
    shares one scheduler, and a call that reset the shared one broke the other's chain mid-way."""
    scheduler = IDMScheduler()
    scheduler.set_timesteps(10)
    lq = random_faces(1, 0)
    idm_sample(unet, scheduler, lq, num_inference_steps=3, generator=torch.Generator().manual_seed(0), progress=False)
    assert scheduler.num_inference_steps == 10 and len(scheduler.timesteps) == 10


def test_batch_shape_range_and_independent_noise(unet):
    lq = random_faces(1, 0).repeat(3, 1, 1, 1)
    restored = sample(unet, lq)
    assert restored.shape == lq.shape and restored.dtype == lq.dtype
    assert restored.min() >= -1 and restored.max() <= 1
    assert not torch.allclose(restored[0], restored[1])  # each face of the batch draws its own noise


def test_strength_one_ignores_init(unet):
    lq = random_faces(2, 0)
    with_lq = sample(unet, lq, strength=1.0)
    with_other = sample(unet, lq, strength=1.0, init=random_faces(2, 5))
    assert torch.equal(with_lq, with_other)


def test_strength_runs_the_tail_of_the_schedule_and_small_strength_stays_near_init(unet):
    lq, init = random_faces(2, 0), random_faces(2, 1)
    calls = []
    hook = unet.register_forward_hook(lambda module, args, output: calls.append(args[1].clone()))
    try:
        distances = {}
        for strength in (0.04, 0.2, 1.0):
            calls.clear()
            restored = sample(unet, lq, num_inference_steps=25, strength=strength, init=init)
            distances[strength] = (restored - init).abs().mean().item()
            scheduler = IDMScheduler()
            scheduler.set_timesteps(25)
            expected = scheduler.timesteps[-round(25 * strength) :].float()
            assert torch.allclose(torch.stack([c.reshape(-1)[0] for c in calls]), expected, atol=1e-3)
    finally:
        hook.remove()
    assert distances[0.04] < 0.15  # one step from 1.6% noise: still init, give or take the untrained net's correction
    assert distances[0.04] < distances[0.2] < distances[1.0]


def test_training_mode_is_restored_and_bad_inputs_are_rejected(unet):
    lq = random_faces(1, 0)
    unet.train()
    sample(unet, lq, num_inference_steps=1)
    assert unet.training
    unet.eval()
    with pytest.raises(ValueError, match="lq must be"):
        sample(unet, lq[0])
    with pytest.raises(ValueError, match="strength"):
        sample(unet, lq, strength=0.0)
    with pytest.raises(ValueError, match="init must have the shape"):
        sample(unet, lq, strength=0.5, init=random_faces(2, 0))


def test_progress_bar(unet, capsys):
    idm_sample(unet, IDMScheduler(), random_faces(1, 0), num_inference_steps=3, progress=True)
    assert "IDM sampling" in capsys.readouterr().err


class ExactDenoiser(torch.nn.Module):
    """Knows the clean faces: returns the true noise (or x_0) of any x_t, as a perfectly trained denoiser would."""

    def __init__(self, clean: torch.Tensor, scheduler: IDMScheduler):
        super().__init__()
        self.clean, self.scheduler = clean, scheduler
        self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))  # gives the sampler a device and dtype

    device = property(lambda self: self.anchor.device)
    dtype = property(lambda self: self.anchor.dtype)

    def forward(self, model_input, timestep):
        gamma = self.scheduler.alphas_cumprod[timestep.round().long()]  # the sampler only visits grid timesteps
        x_t, condition = model_input[:, :3], model_input[:, 3:]
        if self.scheduler.config.prediction_type == "residual_v":  # undo scale_model_input: c_in (x_t - sqrt(gamma) x_d)
            s2 = self.scheduler.config.sigma_data**2
            x_t = x_t * (1 - gamma + s2 * gamma).sqrt() + gamma.sqrt() * condition
        if self.scheduler.config.prediction_type == "sample":
            return SimpleNamespace(sample=self.clean)
        noise = (x_t - gamma.sqrt() * self.clean) / (1 - gamma).sqrt()
        if self.scheduler.config.prediction_type == "residual":
            return SimpleNamespace(sample=(self.clean - condition) / self.scheduler.config.sigma_data)
        if self.scheduler.config.prediction_type == "residual_v":
            return SimpleNamespace(sample=self.scheduler.training_target(self.clean, noise, condition, noise_level=gamma))
        return SimpleNamespace(sample=noise)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "residual", "residual_v"])
@pytest.mark.parametrize("eta", [None, 0.0, 1.0])
@pytest.mark.parametrize("num_inference_steps, strength", [(1, 1.0), (10, 1.0), (25, 0.3)])
def test_exact_denoiser_restores_the_clean_faces(prediction_type, eta, num_inference_steps, strength):
    scheduler = IDMScheduler(prediction_type=prediction_type, sigma_data=0.2)  # sigma_data: the residual types only
    clean = random_faces(2, 3).double() * 0.9
    restored = idm_sample(
        ExactDenoiser(clean, scheduler),
        scheduler,
        random_faces(2, 4).double(),
        num_inference_steps=num_inference_steps,
        strength=strength,
        eta=eta,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert (restored - clean).abs().max() < 1e-6


def psnr(restored: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB on RGB uint8 images (range 255)."""
    mse = np.mean((restored.astype(np.float64) - target.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


@pytest.fixture
def one_thread():
    """The machines this suite runs on are small and shared: one intra-op thread avoids oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_tiny_unet_overfits_one_face(ffhq_test_dir, one_thread):
    """Trained on one 32 px face, the denoiser restores it from its blurred, 4x downsampled copy: >= 25 dB."""
    face = cv2.resize(load_image(list_images(ffhq_test_dir)[0]), (32, 32), interpolation=cv2.INTER_AREA)
    degraded = cv2.GaussianBlur(face, (0, 0), 1.5)
    degraded = cv2.resize(cv2.resize(degraded, (8, 8), interpolation=cv2.INTER_AREA), (32, 32), interpolation=cv2.INTER_CUBIC)
    clean, condition = image_to_tensor(face)[None], image_to_tensor(degraded)[None]

    # "sample" prediction: the x_0 target is the same at every noise level, so one face is learnt in a few hundred
    # steps; the epsilon path is checked by the exact-denoiser test above and the scheduler's closed-form tests.
    scheduler = IDMScheduler(prediction_type="sample")
    unet = tiny_unet(
        32,
        block_out_channels=(32, 64),
        norm_num_groups=32,
        attention_head_dim=64,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    )
    optimizer = torch.optim.Adam(unet.parameters(), lr=2e-3)
    batch_size, steps = 4, 160
    generator = torch.Generator().manual_seed(0)
    x0, lq = clean.expand(batch_size, -1, -1, -1), condition.expand(batch_size, -1, -1, -1)
    start = time.perf_counter()
    for _ in range(steps):
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        gamma = scheduler.sample_noise_level(timesteps, generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        x_t = scheduler.add_noise(x0, noise, gamma)
        prediction = unet(torch.cat([x_t, lq], dim=1), scheduler.model_timestep(gamma)).sample
        loss = torch.nn.functional.mse_loss(prediction, x0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    training_seconds = time.perf_counter() - start

    degraded_psnr = psnr(degraded, face)
    for eta in (0.0, None):
        restored = idm_sample(unet, scheduler, condition, num_inference_steps=10, eta=eta, generator=generator, progress=False)
        restored_psnr = psnr(tensor_to_image(restored[0]), face)
        print(f"eta={eta}: restored {restored_psnr:.2f} dB, degraded {degraded_psnr:.2f} dB, training {training_seconds:.1f} s")
        assert restored_psnr >= 25.0
        assert restored_psnr >= degraded_psnr + 5.0


def test_sampler_loss_scores_what_sampling_restores_from_the_same_noise():
    """Training through the sampler trains the chain that `idm_sample` runs: its loss is the distance of
    `idm_sample`'s result (DDIM, eta 0, from the same noise) to the clean faces, in the units of the last step's
    output (`/ sigma_data` for residual), and the gradient reaches the first step's call of the UNet too."""
    from facerest.models.idm import IDMDenoiser
    from facerest.models.idm.denoiser import estimate_terms

    unet = tiny_unet()
    scheduler = IDMScheduler(prediction_type="residual", sigma_data=0.2)
    lq, x0 = random_faces(2, seed=1) * 0.5, random_faces(2, seed=2) * 0.5
    noise = torch.randn(lq.shape, generator=torch.Generator().manual_seed(3))
    restored = idm_sample(unet, scheduler, lq, num_inference_steps=2, eta=0.0, progress=False,
                          generator=torch.Generator().manual_seed(3))  # draws `noise` first
    unet.train()
    loss = IDMDenoiser(unet, scheduler).sampler_loss(x0, lq, noise, 2, "l1", detail_weight=1.0, ssim_weight=1.0)
    expected = torch.nn.functional.l1_loss(restored / 0.2, x0 / 0.2) + estimate_terms(restored, x0, 1.0, 1.0)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)

    timesteps_seen = []
    hook = unet.register_forward_hook(lambda module, args, output: timesteps_seen.append(int(args[1].flatten()[0])))
    first_input_gradients = []

    def watch_first_input(module, args):
        if len(timesteps_seen) == 0:  # the chain's first UNet call
            args[0].requires_grad_(True)
            args[0].register_hook(first_input_gradients.append)

    pre_hook = unet.register_forward_pre_hook(watch_first_input)
    IDMDenoiser(unet, scheduler).sampler_loss(x0, lq, noise, 2).backward()
    hook.remove(), pre_hook.remove()
    assert len(timesteps_seen) == 2 and timesteps_seen[0] > timesteps_seen[1]
    assert first_input_gradients and first_input_gradients[0].abs().sum() > 0  # the loss of the result reaches the first step


def test_sampler_loss_at_one_step_is_the_one_step_loss_of_pure_noise():
    """With one step the chain is one call at the last timestep from pure noise: for the residual type its loss is
    the ordinary training loss there (no clipping in play for faces well inside [-1, 1])."""
    from facerest.models.idm import IDMDenoiser

    unet = tiny_unet()
    scheduler = IDMScheduler(prediction_type="residual", sigma_data=0.2)
    lq, x0 = random_faces(2, seed=4) * 0.3, random_faces(2, seed=5) * 0.3
    noise = torch.randn(lq.shape, generator=torch.Generator().manual_seed(6))
    denoiser = IDMDenoiser(unet, scheduler)
    last = scheduler.config.num_train_timesteps - 1
    with torch.no_grad():
        through = denoiser.sampler_loss(x0, lq, noise, 1, "l1")
        x_t = noise * scheduler.init_noise_sigma
        one_step = torch.nn.functional.l1_loss(denoiser(x_t, lq, last), scheduler.training_target(x0, noise, lq, last))
    torch.testing.assert_close(through, one_step, rtol=1e-5, atol=1e-6)
