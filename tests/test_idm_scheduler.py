"""IDMScheduler against the closed-form equations, computed independently in float64 with numpy."""

import math

import numpy as np
import pytest
import torch

from facerest.models.idm import IDMScheduler
from facerest.models.idm.scheduling_idm import PREDICTION_TYPES

T = 1000
SHAPE = (2, 3, 4, 4)


def reference_gammas(beta_schedule: str) -> np.ndarray:
    """gamma_t = prod_{i <= t} (1 - beta_i) for the default linear betas or the capped cosine schedule."""
    if beta_schedule == "linear":
        betas = np.linspace(2e-6, 2e-2, T)
    else:
        f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
    return np.cumprod(1.0 - betas)


def gamma_at(gammas: np.ndarray, t: int) -> float:
    return 1.0 if t < 0 else gammas[t]


def random_tensors(seed: int):
    rng = np.random.default_rng(seed)
    x_t, model_output = rng.standard_normal(SHAPE), rng.standard_normal(SHAPE)
    return x_t, model_output


def noise_for(seed: int) -> np.ndarray:
    """The z a scheduler step draws from `torch.Generator().manual_seed(seed)`."""
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()


def to_torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)


@pytest.mark.parametrize("beta_schedule", ["linear", "cosine"])
def test_alphas_cumprod_is_gamma(beta_schedule):
    scheduler = IDMScheduler(beta_schedule=beta_schedule)
    expected = reference_gammas(beta_schedule)
    np.testing.assert_allclose(scheduler.alphas_cumprod.numpy(), expected, rtol=1e-10)
    assert expected[-1] < 1e-4  # x_T is practically pure noise


def test_add_noise_closed_form_with_timesteps_and_gammas():
    scheduler = IDMScheduler()
    gammas = reference_gammas("linear")
    rng = np.random.default_rng(0)
    x0, noise = rng.uniform(-1, 1, SHAPE), rng.standard_normal(SHAPE)

    timesteps = np.array([0, 731])
    g = gammas[timesteps].reshape(-1, 1, 1, 1)
    expected = np.sqrt(g) * x0 + np.sqrt(1 - g) * noise  # x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) eps
    from_timesteps = scheduler.add_noise(to_torch(x0), to_torch(noise), torch.tensor(timesteps))
    np.testing.assert_allclose(from_timesteps.numpy(), expected, rtol=0, atol=1e-12)

    levels = np.array([0.999, 0.25])
    expected = np.sqrt(levels.reshape(-1, 1, 1, 1)) * x0 + np.sqrt(1 - levels.reshape(-1, 1, 1, 1)) * noise
    from_gammas = scheduler.add_noise(to_torch(x0), to_torch(noise), torch.tensor(levels))
    np.testing.assert_allclose(from_gammas.numpy(), expected, rtol=0, atol=1e-12)

    one_for_all = scheduler.add_noise(to_torch(x0), to_torch(noise), 500)
    expected = math.sqrt(gammas[500]) * x0 + math.sqrt(1 - gammas[500]) * noise
    np.testing.assert_allclose(one_for_all.numpy(), expected, rtol=0, atol=1e-12)

    float32 = scheduler.add_noise(to_torch(x0).float(), to_torch(noise).float(), torch.tensor(levels, dtype=torch.float32))
    assert float32.dtype == torch.float32


def test_add_noise_rejects_bad_levels():
    scheduler = IDMScheduler()
    x = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="timesteps must lie"):
        scheduler.add_noise(x, x, torch.tensor([0, T]))
    with pytest.raises(ValueError, match="gamma must lie"):
        scheduler.add_noise(x, x, torch.tensor([0.5, 1.5]))


@pytest.mark.parametrize("n", [1, 10, 25, 100, 333, T])
def test_set_timesteps_strided(n):
    scheduler = IDMScheduler()
    scheduler.set_timesteps(n)
    timesteps = scheduler.timesteps.numpy()
    assert len(timesteps) == n and scheduler.num_inference_steps == n
    assert timesteps[0] == T - 1  # always starts from pure noise
    strides = -np.diff(timesteps)
    assert np.all(strides >= T // n) and np.all(strides <= -(-T // n))  # evenly strided, within rounding
    assert 0 <= timesteps[-1] < -(-T // n)  # the last stride reaches the clean image
    if n == T:
        np.testing.assert_array_equal(timesteps, np.arange(T - 1, -1, -1))


@pytest.mark.parametrize("n", [0, T + 1])
def test_set_timesteps_rejects_bad_counts(n):
    with pytest.raises(ValueError, match="num_inference_steps"):
        IDMScheduler().set_timesteps(n)
    with pytest.raises(ValueError, match="num_inference_steps"):
        IDMScheduler().sampling_timesteps(n)


def test_sampling_timesteps_leave_the_schedule_as_it_is():
    """`train_idm.py --train_at_sampling_steps 2` trains at the timesteps two-step sampling visits."""
    scheduler = IDMScheduler()
    scheduler.set_timesteps(10)
    assert scheduler.sampling_timesteps(2).tolist() == [T - 1, T // 2 - 1]
    assert len(scheduler.timesteps) == 10 and scheduler.num_inference_steps == 10


def step_cases():
    """(n, index in the schedule): first, middle and last steps of several strided schedules."""
    return [(n, i) for n in (1, 10, 25, T) for i in sorted({0, n // 2, n - 1})]


def step_timesteps(scheduler: IDMScheduler, n: int, index: int) -> tuple[int, int]:
    """Timestep number `index` of the n-step schedule and the one after it (-1 past the end)."""
    scheduler.set_timesteps(n)
    timesteps = scheduler.timesteps.tolist()
    return timesteps[index], timesteps[index + 1] if index + 1 < n else -1


# The degraded faces x_d the denoiser is conditioned on (used by the prediction types "residual" and "residual_v").
CONDITION = np.random.default_rng(99).uniform(-1, 1, SHAPE)


def reference_estimates(prediction_type: str, x_t: np.ndarray, model_output: np.ndarray, g: float):
    """(x_0, eps) from the model output, inverting x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) eps."""
    if prediction_type == "epsilon":
        return (x_t - np.sqrt(1 - g) * model_output) / np.sqrt(g), model_output
    if prediction_type == "residual_v":
        # v = sqrt(g) eps - sqrt(1 - g) r for r = x_0 - x_d, whose noisy version is y_t = x_t - sqrt(g) x_d:
        # with y_t = sqrt(g) r + sqrt(1 - g) eps, r = sqrt(g) y_t - sqrt(1 - g) v and eps = sqrt(1 - g) y_t + sqrt(g) v
        y_t = x_t - np.sqrt(g) * CONDITION
        return CONDITION + np.sqrt(g) * y_t - np.sqrt(1 - g) * model_output, np.sqrt(1 - g) * y_t + np.sqrt(g) * model_output
    x0 = model_output if prediction_type == "sample" else CONDITION + model_output  # residual: x_0 - x_d
    return x0, (x_t - np.sqrt(g) * x0) / np.sqrt(1 - g)


@pytest.mark.parametrize("beta_schedule", ["linear", "cosine"])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("n, index", step_cases())
def test_ancestral_step_closed_form(beta_schedule, prediction_type, n, index):
    scheduler = IDMScheduler(beta_schedule=beta_schedule, prediction_type=prediction_type, clip_sample=False)
    t, prev_t = step_timesteps(scheduler, n, index)
    gammas = reference_gammas(beta_schedule)
    g, g_prev = gamma_at(gammas, t), gamma_at(gammas, prev_t)
    alpha = g / g_prev
    x_t, model_output = random_tensors(index)
    x0, eps = reference_estimates(prediction_type, x_t, model_output, g)
    # x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - gamma_t) * eps) / sqrt(alpha_t) + sqrt(1 - alpha_t) z, no z at the end
    z = noise_for(7) if prev_t >= 0 else 0.0
    expected = (x_t - (1 - alpha) / np.sqrt(1 - g) * eps) / np.sqrt(alpha) + np.sqrt(1 - alpha) * z

    generator = torch.Generator().manual_seed(7)
    out = scheduler.step(to_torch(model_output), t, to_torch(x_t), generator=generator, condition=to_torch(CONDITION))
    np.testing.assert_allclose(out.pred_original_sample.numpy(), x0, rtol=1e-9)
    np.testing.assert_allclose(out.prev_sample.numpy(), expected, rtol=1e-9)
    if prev_t < 0:  # the last step lands on the x_0 estimate, noise-free
        np.testing.assert_allclose(out.prev_sample.numpy(), x0, rtol=1e-9)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("n, index", step_cases())
def test_ddim_step_closed_form(prediction_type, eta, n, index):
    scheduler = IDMScheduler(prediction_type=prediction_type, clip_sample=False)
    t, prev_t = step_timesteps(scheduler, n, index)
    gammas = reference_gammas("linear")
    g, g_prev = gamma_at(gammas, t), gamma_at(gammas, prev_t)
    x_t, model_output = random_tensors(100 + index)
    x0, eps = reference_estimates(prediction_type, x_t, model_output, g)
    # DDIM: sigma = eta sqrt((1 - g_prev) / (1 - g)) sqrt(1 - g / g_prev);
    # x_prev = sqrt(g_prev) x0 + sqrt(1 - g_prev - sigma^2) eps + sigma z
    sigma = eta * np.sqrt((1 - g_prev) / (1 - g)) * np.sqrt(1 - g / g_prev)
    z = noise_for(3) if prev_t >= 0 else 0.0
    expected = np.sqrt(g_prev) * x0 + np.sqrt(1 - g_prev - sigma**2) * eps + sigma * z

    generator = torch.Generator().manual_seed(3)
    out = scheduler.step(to_torch(model_output), t, to_torch(x_t), generator=generator, eta=eta, condition=to_torch(CONDITION))
    np.testing.assert_allclose(out.pred_original_sample.numpy(), x0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out.prev_sample.numpy(), expected, rtol=0, atol=1e-9)


def test_training_target_follows_the_prediction_type():
    x0, noise = map(to_torch, random_tensors(5))
    condition = to_torch(CONDITION)
    assert torch.equal(IDMScheduler(prediction_type="epsilon").training_target(x0, noise, condition), noise)
    assert torch.equal(IDMScheduler(prediction_type="sample").training_target(x0, noise, condition), x0)
    residual = IDMScheduler(prediction_type="residual")
    assert torch.equal(residual.training_target(x0, noise, condition), x0 - condition)
    scaled = IDMScheduler(prediction_type="residual", sigma_data=0.25)  # predicts (x_0 - x_d) / s
    torch.testing.assert_close(scaled.training_target(x0, noise, condition), (x0 - condition) / 0.25, rtol=0, atol=1e-12)
    scaled.set_timesteps(10)
    t = int(scaled.timesteps[4])
    estimate = scaled.step((x0 - condition) / 0.25, t, scaled.add_noise(x0, noise, torch.tensor([t])), eta=0.0, condition=condition)
    torch.testing.assert_close(estimate.pred_original_sample, x0.clamp(-1, 1), rtol=0, atol=1e-12)
    # the step inverts it: the target as model output gives back x_0 exactly
    residual.set_timesteps(10)
    t = int(residual.timesteps[4])
    x_t = residual.add_noise(x0, noise, torch.tensor([t]))
    estimate = residual.step(x0 - condition, t, x_t, eta=0.0, condition=condition).pred_original_sample
    torch.testing.assert_close(estimate, x0.clamp(-1, 1))
    with pytest.raises(ValueError, match="residual.*condition"):
        residual.training_target(x0, noise)
    with pytest.raises(ValueError, match="residual.*condition"):
        residual.step(x0, t, x_t)


@pytest.mark.parametrize("sigma_data", [1.0, 0.2])
def test_residual_v_target_is_edm_preconditioned_and_the_step_inverts_it(sigma_data):
    x0, noise = map(to_torch, random_tensors(6))
    condition = to_torch(CONDITION)
    scheduler = IDMScheduler(prediction_type="residual_v", sigma_data=sigma_data, clip_sample=False)
    gamma = torch.tensor([0.3, 0.9], dtype=torch.float64)  # continuous levels, one per sample, as in training
    g = gamma.numpy().reshape(-1, 1, 1, 1)
    # EDM (Karras et al. 2022, Table 1) on r = x_0 - x_d in the variance-exploding form r~ = r + sigma eps:
    # sigma^2 = (1 - g) / g, estimate r = c_skip r~ + c_out F, so the target is F = (r - c_skip r~) / c_out = -v
    r = x0.numpy() - CONDITION
    sigma = np.sqrt((1 - g) / g)
    r_noisy = r + sigma * noise.numpy()
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / np.sqrt(sigma**2 + sigma_data**2)
    expected = -(r - c_skip * r_noisy) / c_out
    if sigma_data == 1.0:  # Salimans & Ho's v = sqrt(g) eps - sqrt(1 - g) r
        np.testing.assert_allclose(expected, np.sqrt(g) * noise.numpy() - np.sqrt(1 - g) * r, rtol=0, atol=1e-12)
    target = scheduler.training_target(x0, noise, condition, noise_level=gamma)
    np.testing.assert_allclose(target.numpy(), expected, rtol=0, atol=1e-12)
    # on the grid, the target as model output gives back x_0 exactly
    scheduler.set_timesteps(10)
    t = int(scheduler.timesteps[4])
    x_t = scheduler.add_noise(x0, noise, torch.tensor([t]))
    target = scheduler.training_target(x0, noise, condition, noise_level=torch.tensor([t]))
    out = scheduler.step(target, t, x_t, eta=0.0, condition=condition)
    torch.testing.assert_close(out.pred_original_sample, x0, rtol=0, atol=1e-12)
    # at gamma = 1 (no noise; training draws it now and then) the target is finite: the noise itself
    at_one = scheduler.training_target(x0, noise, condition, noise_level=torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(at_one, noise, rtol=0, atol=1e-12)
    # the UNet sees EDM's c_in r~ = (r + sigma eps) / sqrt(sigma^2 + s^2), r~ = x_t / sqrt(g) - x_d
    x_t = scheduler.add_noise(x0, noise, gamma)
    expected_input = r_noisy / np.sqrt(sigma**2 + sigma_data**2)
    model_input = scheduler.scale_model_input(x_t, gamma, condition)
    np.testing.assert_allclose(model_input.numpy(), expected_input, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="noise_level"):
        scheduler.training_target(x0, noise, condition)
    with pytest.raises(ValueError, match="residual_v.*condition"):
        scheduler.step(target, t, x_t)
    with pytest.raises(ValueError, match="residual_v.*condition"):
        scheduler.scale_model_input(x_t, t)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_training_target_and_x0_estimate_are_one_preconditioning(prediction_type):
    """For continuous per-sample levels, the target of training_target, fed back as the model's output, gives
    precondition_outputs the clean faces: training and sampling read the same get_scalings."""
    x0, noise = map(to_torch, random_tensors(9))
    condition = to_torch(CONDITION)
    scheduler = IDMScheduler(prediction_type=prediction_type, sigma_data=0.3, clip_sample=False)
    gamma = torch.tensor([0.05, 0.999], dtype=torch.float64)
    x_t = scheduler.add_noise(x0, noise, gamma)
    target = scheduler.training_target(x0, noise, condition, noise_level=gamma)
    estimate = scheduler.precondition_outputs(target, gamma, x_t, condition)
    torch.testing.assert_close(estimate, x0, rtol=0, atol=1e-10)


def test_denoiser_feeds_the_unet_and_takes_the_loss_as_the_scheduler_says():
    from facerest.models.idm import IDMDenoiser

    class Recorder(torch.nn.Module):
        def forward(self, sample, timestep):
            self.seen = (sample, timestep)
            return type("Output", (), {"sample": sample[:, :3] * 0.5})()

    x0, noise = map(to_torch, random_tensors(10))
    condition = to_torch(CONDITION)
    scheduler = IDMScheduler(prediction_type="residual_v", sigma_data=0.3)
    gamma = torch.tensor([0.2, 0.7], dtype=torch.float64)
    denoiser = IDMDenoiser(Recorder(), scheduler)
    loss = denoiser.loss(x0, condition, noise, gamma, "l2")
    sample, timestep = denoiser.unet.seen
    x_t = scheduler.add_noise(x0, noise, gamma)
    torch.testing.assert_close(sample, torch.cat([scheduler.scale_model_input(x_t, gamma, condition), condition], dim=1))
    torch.testing.assert_close(timestep, scheduler.model_timestep(gamma))
    target = scheduler.training_target(x0, noise, condition, noise_level=gamma)
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(sample[:, :3].float() * 0.5, target.float()))


def test_detail_deficit_counts_only_the_detail_an_estimate_lacks():
    from facerest.models.idm.denoiser import detail_deficit

    generator = torch.Generator().manual_seed(0)
    face = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(face, 3, stride=1, padding=1, count_include_pad=False)
    shifted = face.roll(1, dims=-1)  # the same texture one pixel to the side: no detail missing
    assert detail_deficit(face, face) == 0
    assert detail_deficit(face, blurred) == 0  # more detail than the target is not asked back
    assert detail_deficit(blurred, face) > 0.1
    assert detail_deficit(shifted, face) < 0.1 * detail_deficit(blurred, face)


class ZeroUNet(torch.nn.Module):
    """A UNet that predicts 0: with the residual prediction type the estimate of x_0 is the degraded face itself."""

    def forward(self, sample, timestep):
        return type("Output", (), {"sample": torch.zeros_like(sample[:, :3])})()


def zero_residual_case():
    """A denoiser around `ZeroUNet` and its inputs: (denoiser, x0, condition, noise, gamma), the condition a blurred x0."""
    from facerest.models.idm import IDMDenoiser

    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(2, 3, 16, 16, generator=generator), torch.randn(2, 3, 16, 16, generator=generator)
    condition = torch.nn.functional.avg_pool2d(x0, 3, stride=1, padding=1)  # a blurred face: residual 0 keeps it
    denoiser = IDMDenoiser(ZeroUNet(), IDMScheduler(prediction_type="residual", sigma_data=0.2))
    return denoiser, x0, condition, noise, torch.tensor([0.3, 0.6])


def test_denoiser_loss_adds_the_weighted_detail_deficit_of_its_estimate():
    from facerest.models.idm.denoiser import detail_deficit

    denoiser, x0, condition, noise, gamma = zero_residual_case()
    plain = denoiser.loss(x0, condition, noise, gamma, "l1")
    with_detail = denoiser.loss(x0, condition, noise, gamma, "l1", detail_weight=2.0)
    torch.testing.assert_close(with_detail - plain, 2.0 * detail_deficit(condition, x0))
    assert detail_deficit(condition, x0) > 0


def test_structural_dissimilarity_is_one_minus_the_evaluations_ssim():
    from facerest.metrics import ssim
    from facerest.models.idm.denoiser import structural_dissimilarity

    generator = torch.Generator().manual_seed(0)
    face = torch.randint(0, 256, (1, 3, 40, 48), generator=generator).double()
    noisy = (face + 40 * torch.randn(face.shape, generator=generator, dtype=face.dtype)).round().clamp(0, 255)
    as_uint8 = lambda images: np.ascontiguousarray(images[0].permute(1, 2, 0).numpy().astype(np.uint8))
    evaluated = ssim([as_uint8(noisy)], [as_uint8(face)])[0]
    assert 0.5 < evaluated < 0.95
    dissimilarity = structural_dissimilarity(noisy / 127.5 - 1, face / 127.5 - 1)
    assert dissimilarity.item() == pytest.approx(1 - evaluated, abs=1e-9)
    assert structural_dissimilarity(face / 127.5 - 1, face / 127.5 - 1).item() == pytest.approx(0, abs=1e-12)


def test_denoiser_loss_adds_the_weighted_structural_dissimilarity_of_its_estimate():
    from facerest.models.idm.denoiser import structural_dissimilarity

    denoiser, x0, condition, noise, gamma = zero_residual_case()
    plain = denoiser.loss(x0, condition, noise, gamma, "l1")
    with_ssim = denoiser.loss(x0, condition, noise, gamma, "l1", ssim_weight=3.0)
    torch.testing.assert_close(with_ssim - plain, 3.0 * structural_dissimilarity(condition, x0))
    assert structural_dissimilarity(condition, x0) > 0


def test_other_prediction_types_see_x_t_itself():
    x_t = to_torch(random_tensors(8)[0])
    for prediction_type in ("epsilon", "sample", "residual"):
        assert IDMScheduler(prediction_type=prediction_type).scale_model_input(x_t, 10) is x_t


def test_ddim_eta_zero_is_deterministic_and_ancestral_is_not():
    scheduler = IDMScheduler()
    scheduler.set_timesteps(10)
    x_t, model_output = map(to_torch, random_tensors(0))
    t = int(scheduler.timesteps[3])
    runs = {
        eta: [scheduler.step(model_output, t, x_t, generator=torch.Generator().manual_seed(s), eta=eta).prev_sample for s in (1, 2)]
        for eta in (None, 0.0)
    }
    assert torch.equal(*runs[0.0])
    assert not torch.allclose(*runs[None])


def test_clipping_bounds_x0_and_keeps_eps_consistent():
    scheduler = IDMScheduler(clip_sample=True, clip_sample_range=1.0)
    scheduler.set_timesteps(10)
    t, prev_t = 599, 499
    gammas = reference_gammas("linear")
    g, g_prev = gammas[t], gammas[prev_t]
    x_t, eps = random_tensors(5)
    eps = 3.0 * eps  # pushes the x_0 estimate well outside [-1, 1]
    unclipped_x0, _ = reference_estimates("epsilon", x_t, eps, g)
    x0 = np.clip(unclipped_x0, -1, 1)
    _, eps_from_clipped = reference_estimates("sample", x_t, x0, g)  # the eps the update uses

    out = scheduler.step(to_torch(eps), t, to_torch(x_t), eta=0.0)
    assert out.pred_original_sample.abs().max() <= 1.0
    np.testing.assert_allclose(out.pred_original_sample.numpy(), x0, rtol=0, atol=1e-12)
    expected = np.sqrt(g_prev) * x0 + np.sqrt(1 - g_prev) * eps_from_clipped
    np.testing.assert_allclose(out.prev_sample.numpy(), expected, rtol=0, atol=1e-9)


def test_step_rejects_timestep_outside_schedule_and_bad_eta():
    scheduler = IDMScheduler()
    scheduler.set_timesteps(10)
    x = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="not in the current schedule"):
        scheduler.step(x, 500, x)
    with pytest.raises(ValueError, match="eta"):
        scheduler.step(x, 999, x, eta=1.5)


def test_step_without_set_timesteps_walks_the_full_chain():
    scheduler = IDMScheduler()
    assert scheduler.previous_timestep(T - 1) == T - 2 and scheduler.previous_timestep(0) == -1


def test_noise_level_sampler_lies_between_neighbouring_gammas():
    scheduler = IDMScheduler()
    gammas = reference_gammas("linear")
    t = torch.tensor([0, 1, 2, 500, 998, T - 1]).repeat(200)
    levels = scheduler.sample_noise_level(t, generator=torch.Generator().manual_seed(0))
    assert levels.shape == t.shape and levels.dtype == torch.float32
    upper = np.where(t.numpy() > 0, gammas[np.maximum(t.numpy() - 1, 0)], 1.0)  # gamma_{t-1}
    lower = gammas[t.numpy()]  # gamma_t
    levels64 = levels.double().numpy()
    assert np.all(levels64 >= lower - 1e-7) and np.all(levels64 <= upper + 1e-7)  # float32 rounding

    # uniform: the relative position inside [gamma_t, gamma_{t-1}] averages 1/2 and fills the interval
    middle = t.numpy() == 500
    position = (levels64[middle] - lower[middle]) / (upper[middle] - lower[middle])
    assert abs(position.mean() - 0.5) < 0.1 and position.min() < 0.05 and position.max() > 0.95

    again = scheduler.sample_noise_level(t, generator=torch.Generator().manual_seed(0))
    assert torch.equal(levels, again)
    with pytest.raises(ValueError, match="timesteps must lie"):
        scheduler.sample_noise_level(torch.tensor([T]))


@pytest.mark.parametrize("beta_schedule", ["linear", "cosine"])
def test_model_timestep_is_identity_on_the_grid_and_continuous_between(beta_schedule):
    scheduler = IDMScheduler(beta_schedule=beta_schedule)
    grid = scheduler.model_timestep(scheduler.alphas_cumprod)
    np.testing.assert_allclose(grid.numpy(), np.arange(T), rtol=0, atol=1e-4)
    assert scheduler.model_timestep(1.0).item() == -1.0 and scheduler.model_timestep(1.0).shape == ()
    torch.testing.assert_close(scheduler.model_timestep(torch.arange(T)), grid, rtol=0, atol=1e-4)  # timesteps: their gamma_t

    t = torch.arange(T)
    levels = scheduler.sample_noise_level(t, generator=torch.Generator().manual_seed(1))
    model_t = scheduler.model_timestep(levels)
    assert model_t.dtype == torch.float32 and model_t.shape == (T,)
    assert torch.all(model_t >= t - 1 - 1e-3) and torch.all(model_t <= t + 1e-3)

    dense = scheduler.model_timestep(torch.linspace(1.0, scheduler.alphas_cumprod[-1].item(), 5000, dtype=torch.float64))
    assert torch.all(torch.diff(dense) >= 0)  # less noise, earlier timestep


def test_config_round_trip(tmp_path):
    scheduler = IDMScheduler(
        num_train_timesteps=500, beta_schedule="cosine", prediction_type="residual_v", sigma_data=0.25, clip_sample=False,
        clip_sample_range=2.0,
    )
    scheduler.save_pretrained(tmp_path)
    loaded = IDMScheduler.from_pretrained(tmp_path)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(scheduler.config)
    assert loaded.config.prediction_type == "residual_v" and loaded.config.sigma_data == 0.25 and len(loaded) == 500
    assert torch.equal(loaded.alphas_cumprod, scheduler.alphas_cumprod)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beta_schedule": "quadratic"}, "beta_schedule"),
        ({"prediction_type": "v_prediction"}, "prediction_type"),
        ({"sigma_data": 0.0}, "sigma_data"),
        ({"beta_start": 0.1, "beta_end": 0.01}, "beta_start"),
        ({"num_train_timesteps": 0}, "num_train_timesteps"),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IDMScheduler(**kwargs)
