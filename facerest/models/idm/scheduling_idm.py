"""The IDM noise scheduler: SR3-style conditional diffusion with a continuous noise level.

Notation of the IDM / SR3 papers (Zhao et al., "Towards Authentic Face Restoration with Iterative Diffusion
Models and Beyond", ICCV 2023; Saharia et al., "Image Super-Resolution via Iterative Refinement", 2021):

    alpha_t = 1 - beta_t,        gamma_t = prod_{i <= t} alpha_i        (exposed as ``alphas_cumprod``)
    q(x_t | x_0) = N(sqrt(gamma_t) x_0, (1 - gamma_t) I)

Timesteps are 0-based as in diffusers: ``t = 0 .. num_train_timesteps - 1``, and ``gamma_{-1} = 1`` is the clean
image. The denoiser is conditioned on the continuous noise level gamma, not on the integer t: training draws gamma
uniformly between gamma_t and gamma_{t-1} (SR3, section 2.4), and :meth:`IDMScheduler.model_timestep` is the one map
from gamma to the UNet's timestep input, shared by training and sampling.

This file holds all of IDM's equations: the forward process (``add_noise``), the noise-level draw
(``sample_noise_level``), the preconditioning of every prediction type (``get_scalings``, applied by
``scale_model_input``, ``precondition_outputs`` and ``training_target``) and the reverse updates (``step``).
``denoiser.IDMDenoiser`` is the one call of the UNet built on it, for training and sampling alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor


PREDICTION_TYPES = ("epsilon", "sample", "residual", "residual_v")


class IDMScalings(NamedTuple):
    """The preconditioning of the denoiser `F` at one noise level (see [`IDMScheduler.get_scalings`]). `None` marks
    a term the prediction type does not have; tensors are float64, shaped like the noise level."""

    c_skip: torch.Tensor | None  # weight of the noisy input in the x_0 estimate
    c_out: torch.Tensor | float | None  # weight of F in the x_0 estimate; None: F is the noise (epsilon)
    c_in: torch.Tensor | None  # scale of the UNet's noisy input
    c_shift: torch.Tensor | None  # the noisy input is x_t - c_shift * x_d
    c_cond: float | None  # weight of the degraded face x_d in the x_0 estimate


@dataclass
class IDMSchedulerOutput(BaseOutput):
    """
    Output of [`IDMScheduler.step`].

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The sample at the previous timestep of the schedule, `x_{t-1}`; the next input of the denoising loop.
        pred_original_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The estimate of the clean image `x_0` made at this step (clipped when `clip_sample` is set).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class IDMScheduler(SchedulerMixin, ConfigMixin):
    """
    The forward process and the reverse updates of IDM, the conditional diffusion model for face restoration.

    Two reverse updates share [`~IDMScheduler.step`]:

    - `eta=None` (default): the ancestral update of the IDM / SR3 papers,
      `x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - gamma_t) * eps) / sqrt(alpha_t) + sqrt(1 - alpha_t) z`;
    - `eta` a float in [0, 1]: the strided DDIM update (Song et al., 2021), deterministic at `eta=0.0`. Note that
      `eta=1.0` is DDIM's stochastic sampler (posterior variance), not the ancestral update above.

    On a strided schedule (`set_timesteps(n)` with n < num_train_timesteps) `alpha_t` is the ratio
    `gamma_t / gamma_prev` over the whole stride. The last step (to the clean image) adds no noise.

    Args:
        num_train_timesteps (`int`, defaults to 1000):
            Length of the diffusion chain used in training.
        beta_start (`float`, defaults to 2e-6):
            First beta of the `"linear"` schedule.
        beta_end (`float`, defaults to 2e-2):
            Last beta of the `"linear"` schedule.
        beta_schedule (`"linear"` or `"cosine"`, defaults to `"linear"`):
            `"linear"`: betas evenly spaced from `beta_start` to `beta_end`. `"cosine"`: the schedule of Nichol &
            Dhariwal (2021), `gamma(t) = cos((t / T + 0.008) / 1.008 * pi / 2)^2` (betas capped at 0.999); it
            ignores `beta_start` and `beta_end`.
        prediction_type (`"epsilon"`, `"sample"`, `"residual"` or `"residual_v"`, defaults to `"epsilon"`):
            What the denoiser predicts: the noise `eps`, the clean image `x_0`, the correction `r = x_0 - x_d` to the
            degraded face it is conditioned on (`x_0` with a skip connection from `x_d`: a model that outputs zeros
            starts at the degraded face, not at grey), or a velocity `v` of that correction with EDM's
            preconditioning. [`~IDMScheduler.get_scalings`] gives the equations of each; the last two types need
            `condition`. Which works best at which budget is measured in README, "Results".
        sigma_data (`float`, defaults to 1.0):
            The scale `s` of the correction `r` (about its root-mean-square over the training pairs), used by the
            residual types (see [`~IDMScheduler.get_scalings`]); unused by the other types.
        clip_sample (`bool`, defaults to `True`):
            Clip the estimate of `x_0` to `[-clip_sample_range, clip_sample_range]` at every step. The noise used by
            the update is then re-derived from the clipped estimate, so both stay consistent.
        clip_sample_range (`float`, defaults to 1.0):
            The clipping bound.
    """

    order = 1

    # Defaults: the SR3 / IDM schedule (linear betas 1e-6 .. 1e-2 over 2000 steps) on a 1000-step chain. Halving the
    # number of steps and doubling every beta keeps the same gamma curve (gamma_T ~ 4e-5 in both), so x_T is
    # practically pure noise while the first steps add very little noise, which is where the fine facial detail of
    # a restoration is decided.
    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 2e-6,
        beta_end: float = 2e-2,
        beta_schedule: Literal["linear", "cosine"] = "linear",
        prediction_type: Literal["epsilon", "sample", "residual", "residual_v"] = "epsilon",
        sigma_data: float = 1.0,
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
    ):
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be at least 1, got {num_train_timesteps}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {', '.join(map(repr, PREDICTION_TYPES))}, got {prediction_type!r}")
        if not sigma_data > 0.0:
            raise ValueError(f"sigma_data must be positive, got {sigma_data}")
        if beta_schedule == "linear":
            if not 0.0 < beta_start <= beta_end < 1.0:
                raise ValueError(f"linear betas need 0 < beta_start <= beta_end < 1, got {beta_start} .. {beta_end}")
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        elif beta_schedule == "cosine":
            # Nichol & Dhariwal (2021), eq. 17: gamma(s) = f(s) / f(0), f(s) = cos((s + 0.008) / 1.008 * pi / 2)^2
            progress = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
            f = torch.cos((progress + 0.008) / 1.008 * math.pi / 2) ** 2
            betas = (1.0 - f[1:] / f[:-1]).clamp(max=0.999)  # beta_t = 1 - gamma_t / gamma_{t-1}, capped as in the paper
        else:
            raise ValueError(f"beta_schedule must be 'linear' or 'cosine', got {beta_schedule!r}")

        # Kept in float64: 1 - gamma_t is ~1e-6 at the first steps, which float32 resolves to a few digits only.
        self.betas = betas
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # gamma_t

        # standard deviation of the initial noise distribution
        self.init_noise_sigma = 1.0

        # set by set_timesteps; until then the schedule is the whole training chain
        self.num_inference_steps = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def scale_model_input(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        The sample as the denoiser sees it, `c_in * (x_t - c_shift * x_d)` (see [`~IDMScheduler.get_scalings`]):
        `x_t` itself, except for `prediction_type="residual_v"`.

        Args:
            sample (`torch.Tensor`): `x_t`, `(batch_size, C, H, W)`.
            timestep: its noise level, as in `add_noise` (an integer timestep, or gamma itself as a float).
            condition (`torch.Tensor`, *optional*): the degraded faces `x_d`; needed by `"residual_v"`.
        """
        scalings = self.get_scalings(timestep, like=sample)
        if scalings.c_in is None:
            return sample
        condition = self._condition(condition, sample)
        c_shift, c_in = (_like(value, sample) for value in (scalings.c_shift, scalings.c_in))
        return c_in * (sample - c_shift * condition)

    def get_scalings(self, noise_level: torch.Tensor | float | int | None, like: torch.Tensor | None = None) -> IDMScalings:
        """
        The preconditioning of the denoiser `F` at noise level gamma for this `prediction_type`, the one place it is
        written (EDM, Karras et al. 2022, Table 1, extended with the degraded face `x_d`; `s = sigma_data`):

            UNet input      c_in * (x_t - c_shift * x_d)                    (`scale_model_input`)
            x_0 estimate    c_cond * x_d + c_skip * (x_t - c_shift * x_d) + c_out * F    (`precondition_outputs`)
            training target the F that makes the estimate exact                      (`training_target`)

            prediction_type   c_in                   c_shift    c_cond   c_skip                   c_out
            "epsilon"         -                      -          -        -                        - (F is eps)
            "sample"          -                      -          -        -                        1
            "residual"        -                      -          1        -                        s
            "residual_v"      1 / sqrt(D)            sqrt(g)    1        s^2 sqrt(g) / D          -s sqrt(1 - g) / sqrt(D)

        with `g = gamma` and `D = 1 - g + s^2 g`; "-" is a term the type does not have (`None`). For `"epsilon"`
        the estimate inverts the forward process, `x_0 = (x_t - sqrt(1 - g) F) / sqrt(g)`. For `"residual_v"` the
        noisy input is the noisy correction `y_t = x_t - sqrt(g) x_d = sqrt(g) r + sqrt(1 - g) eps` (`r = x_0 - x_d`)
        at about unit variance; the estimate leans on `y_t` where the noise is below `s` and on `x_d` above it, and
        its target `v` has about unit variance. With `s = 1` it is the v-prediction of Salimans & Ho (2022).

        Args:
            noise_level: as in `add_noise` (an integer timestep, or gamma itself as a float); only `"residual_v"`
                reads it.
            like (`torch.Tensor`, *optional*): a batch; per-sample levels are then shaped to broadcast over it.
        """
        prediction_type, s = self.config.prediction_type, self.config.sigma_data
        if prediction_type == "epsilon":
            return IDMScalings(c_skip=None, c_out=None, c_in=None, c_shift=None, c_cond=None)
        if prediction_type == "sample":
            return IDMScalings(c_skip=None, c_out=1.0, c_in=None, c_shift=None, c_cond=None)
        if prediction_type == "residual":
            return IDMScalings(c_skip=None, c_out=s, c_in=None, c_shift=None, c_cond=1.0)
        if noise_level is None:
            raise ValueError("prediction_type 'residual_v' needs the noise_level of the noisy samples")
        gamma = self._noise_level(noise_level, like=like)
        denominator = 1.0 - gamma + s**2 * gamma
        return IDMScalings(
            c_skip=s**2 * gamma.sqrt() / denominator,
            c_out=-(s**2 * (1.0 - gamma) / denominator).sqrt(),
            c_in=denominator.rsqrt(),
            c_shift=gamma.sqrt(),
            c_cond=1.0,
        )

    def precondition_outputs(
        self,
        model_output: torch.Tensor,
        noise_level: torch.Tensor | float | int,
        sample: torch.Tensor,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The estimate of `x_0` from the denoiser's output `F` at `sample` (`x_t`) and its noise level, after
        [`~IDMScheduler.get_scalings`]; `condition` (`x_d`) is needed by the residual types."""
        scalings = self.get_scalings(noise_level, like=sample)
        if scalings.c_out is None:  # epsilon: invert the forward process x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) eps
            gamma = self._noise_level(noise_level, like=sample)
            return (sample - _like((1.0 - gamma).sqrt(), sample) * model_output) / _like(gamma.sqrt(), sample)
        estimate = None
        if scalings.c_cond is not None:
            estimate = scalings.c_cond * self._condition(condition, model_output)
        if scalings.c_skip is not None:
            noisy = sample - _like(scalings.c_shift, sample) * condition
            estimate = estimate + _like(scalings.c_skip, sample) * noisy
        output = _like(scalings.c_out, sample) * model_output
        return output if estimate is None else estimate + output

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """
        Choose `num_inference_steps` timesteps, evenly strided over the training chain, for sampling.

        The spacing is "trailing" (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed",
        Table 2): the first timestep is always the last training step, so sampling starts from pure noise whatever
        the step count, and `num_inference_steps == num_train_timesteps` gives the full chain.
        """
        self.timesteps = self.sampling_timesteps(num_inference_steps).to(device)
        self.num_inference_steps = num_inference_steps

    def sampling_timesteps(self, num_inference_steps: int) -> torch.Tensor:
        """The timesteps that `set_timesteps(num_inference_steps)` chooses, largest first (the schedule is unchanged)."""
        num_train_timesteps = self.config.num_train_timesteps
        if not 1 <= num_inference_steps <= num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be between 1 and num_train_timesteps ({num_train_timesteps}), "
                f"got {num_inference_steps}"
            )
        strides = np.arange(num_inference_steps) * num_train_timesteps // num_inference_steps
        return torch.from_numpy(num_train_timesteps - 1 - strides)

    def previous_timestep(self, timestep: int) -> int:
        """The timestep after `timestep` in the current schedule; -1 (the clean image) after the last one."""
        index = (self.timesteps == timestep).nonzero()
        if len(index) == 0:
            raise ValueError(f"timestep {timestep} is not in the current schedule; call set_timesteps first")
        next_index = index.item() + 1
        return int(self.timesteps[next_index]) if next_index < len(self.timesteps) else -1

    def _gamma(self, timestep: int) -> float:
        """gamma_t for one timestep, with gamma_{-1} = 1."""
        return 1.0 if timestep < 0 else self.alphas_cumprod[timestep].item()

    def _check_timesteps(self, timesteps: torch.Tensor) -> None:
        if timesteps.numel() and (timesteps.min() < 0 or timesteps.max() >= self.config.num_train_timesteps):
            raise ValueError(
                f"timesteps must lie in [0, {self.config.num_train_timesteps - 1}], "
                f"got {timesteps.min().item()} .. {timesteps.max().item()}"
            )

    def sample_noise_level(self, timesteps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """
        Draw a continuous noise level for each training timestep: `gamma ~ U(gamma_t, gamma_{t-1})` (SR3, 2.4).

        Args:
            timesteps (`torch.Tensor` of integers, shape `(batch_size,)`): timesteps in `[0, num_train_timesteps)`.
            generator (`torch.Generator`, *optional*): random generator for the uniform draw.

        Returns:
            `torch.Tensor` of shape `(batch_size,)`, float32, on the device of `timesteps`.
        """
        t = timesteps.long().cpu()
        self._check_timesteps(t)
        gamma_t = self.alphas_cumprod[t]
        gamma_prev = torch.where(t > 0, self.alphas_cumprod[(t - 1).clamp(min=0)], torch.ones((), dtype=torch.float64))
        rand_device = generator.device if generator is not None else "cpu"
        u = torch.rand(t.shape, generator=generator, device=rand_device).cpu().to(torch.float64)
        gamma = gamma_prev + u * (gamma_t - gamma_prev)
        return gamma.to(device=timesteps.device, dtype=torch.float32)

    def model_timestep(self, noise_level: torch.Tensor | float | int) -> torch.Tensor:
        """
        The denoiser's timestep input for a noise level gamma (or for integer timesteps, whose gamma_t it takes): the
        fractional timestep at which the schedule reaches gamma (linear interpolation between the discrete gamma_t,
        with gamma_{-1} = 1 at timestep -1).

        It is a continuous, monotone function of gamma, so the UNet is conditioned on the noise level itself, and it
        spreads the levels over the 0 .. T range the UNet's sinusoidal embedding is built for (gamma itself crowds the
        last half of the chain into [0, 0.08]). On the discrete grid it is the identity: `model_timestep(gamma_t) == t`.

        Returns a float32 tensor of the shape of `noise_level`, on its device.
        """
        noise_level = torch.as_tensor(noise_level).detach()
        gamma = self._noise_level(noise_level)
        gammas = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])  # decreasing: timesteps -1 .. T-1
        gamma = gamma.clamp(min=gammas[-1].item(), max=1.0)
        upper = torch.searchsorted(-gammas, -gamma).clamp(1, len(gammas) - 1)  # gammas[upper] <= gamma
        lower = upper - 1  # gammas[lower] > gamma
        fraction = (gammas[lower] - gamma) / (gammas[lower] - gammas[upper])
        timestep = (lower - 1) + fraction
        return timestep.to(device=noise_level.device, dtype=torch.float32)

    def _noise_level(self, noise_level: torch.Tensor | float | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """gamma as a float64 CPU tensor, from gammas (floats) or from integer timesteps; with `like`, shaped to
        broadcast over that batch (one level per sample, or one for all)."""
        noise_level = torch.as_tensor(noise_level).cpu()
        if noise_level.is_floating_point():
            gamma = noise_level.to(torch.float64)
            if gamma.numel() and (gamma.min() <= 0 or gamma.max() > 1):
                raise ValueError(f"noise levels gamma must lie in (0, 1], got {gamma.min().item()} .. {gamma.max().item()}")
        else:
            self._check_timesteps(noise_level)
            gamma = self.alphas_cumprod[noise_level.long()]
        if like is not None and gamma.ndim:
            gamma = gamma.reshape(-1, *([1] * (like.ndim - 1)))
        return gamma

    def add_noise(
        self,
        original_samples: torch.Tensor,
        noise: torch.Tensor,
        noise_level: torch.Tensor | float | int,
    ) -> torch.Tensor:
        """
        The forward process: `x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) eps`.

        Args:
            original_samples (`torch.Tensor`): the clean images `x_0`, `(batch_size, C, H, W)`.
            noise (`torch.Tensor`): the noise `eps`, same shape.
            noise_level (`torch.Tensor`, `float` or `int`): the noise level per sample (shape `(batch_size,)`) or
                one for all. A floating-point value is gamma itself (the continuous level used in training); an
                integer value is a timestep `t`, meaning `gamma_t` (the diffusers convention).
        """
        gamma = self._noise_level(noise_level, like=original_samples)
        sqrt_gamma = gamma.sqrt().to(device=original_samples.device, dtype=original_samples.dtype)
        sqrt_one_minus_gamma = (1.0 - gamma).sqrt().to(device=original_samples.device, dtype=original_samples.dtype)
        return sqrt_gamma * original_samples + sqrt_one_minus_gamma * noise

    def training_target(
        self,
        original_samples: torch.Tensor,
        noise: torch.Tensor,
        condition: torch.Tensor | None = None,
        noise_level: torch.Tensor | float | int | None = None,
    ) -> torch.Tensor:
        """What the denoiser is trained to output for `x_t = add_noise(original_samples, noise, noise_level)`: the
        `F` that makes [`~IDMScheduler.precondition_outputs`] return `x_0` exactly, after
        [`~IDMScheduler.get_scalings`]. That is the noise `eps`, the clean image `x_0`, `r / s` for `r = x_0 - x_d`
        (`condition`, the degraded face), or the velocity `v` (`noise_level` as in `add_noise`)."""
        scalings = self.get_scalings(noise_level, like=original_samples)
        if scalings.c_out is None:
            return noise
        if scalings.c_cond is None:
            return original_samples
        residual = original_samples - self._condition(condition, original_samples)
        if scalings.c_skip is None:
            return residual / scalings.c_out
        # (r - c_skip y_t) / c_out with y_t = sqrt(gamma) r + sqrt(1 - gamma) eps, simplified so that it stays finite
        # at gamma = 1 (where it is eps): v = (s sqrt(gamma) eps - sqrt(1 - gamma) r / s) * c_in
        sigma_data = self.config.sigma_data
        gamma = self._noise_level(noise_level, like=original_samples)
        noise_weight = _like(sigma_data * scalings.c_shift * scalings.c_in, original_samples)
        residual_weight = _like((1.0 - gamma).sqrt() / sigma_data * scalings.c_in, original_samples)
        return noise_weight * noise - residual_weight * residual

    def _condition(self, condition: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if condition is None or condition.shape != like.shape:
            shape = None if condition is None else tuple(condition.shape)
            raise ValueError(
                f"prediction_type {self.config.prediction_type!r} needs the degraded faces as condition, shaped "
                f"{tuple(like.shape)}; got {shape}"
            )
        return condition

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        eta: float | None = None,
        return_dict: bool = True,
        condition: torch.Tensor | None = None,
    ) -> IDMSchedulerOutput | tuple:
        """
        One reverse step, from `x_t` at `timestep` to the next timestep of the schedule.

        Args:
            model_output (`torch.Tensor`): the denoiser's output (noise, clean image or correction, see `prediction_type`).
            timestep (`int`): the current timestep, one of `self.timesteps`.
            sample (`torch.Tensor`): the current sample `x_t`.
            generator (`torch.Generator`, *optional*): random generator for the added noise.
            eta (`float`, *optional*): `None` for the ancestral IDM / SR3 update; a value in [0, 1] for the DDIM
                update with that eta (0.0: deterministic).
            return_dict (`bool`): return an [`IDMSchedulerOutput`] rather than a tuple.
            condition (`torch.Tensor`, *optional*): the degraded faces `x_d`; needed by the residual prediction types.
        """
        # Notation (code name -> paper name; IDM / SR3 and DDIM, Song et al. 2021):
        # - sample -> x_t;  condition -> x_d, the degraded face;  model_output -> f_theta(x_d, x_t, gamma_t)
        # - gamma_t, gamma_prev -> gamma_t, gamma_{t-1} (``alphas_cumprod``);  alpha_t -> alpha_t
        # - pred_original_sample -> x_0 estimate;  pred_epsilon -> eps_theta
        # - std -> sigma_t;  z -> z ~ N(0, I);  prev_sample -> x_{t-1}
        if eta is not None and not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be None (ancestral update) or lie in [0, 1] (DDIM update), got {eta}")
        t = int(timestep)
        prev_t = self.previous_timestep(t)

        # 1. noise levels; on a strided schedule alpha_t covers the whole stride
        gamma_t = self._gamma(t)
        gamma_prev = self._gamma(prev_t)
        alpha_t = gamma_t / gamma_prev

        # 2. estimates of x_0 (the preconditioning, see get_scalings) and of eps, inverting the forward process
        #    x_t = sqrt(gamma_t) x_0 + sqrt(1 - gamma_t) eps
        pred_original_sample = self.precondition_outputs(model_output, t, sample, condition)
        if self.config.prediction_type == "epsilon":
            pred_epsilon = model_output
        else:
            pred_epsilon = (sample - math.sqrt(gamma_t) * pred_original_sample) / math.sqrt(1.0 - gamma_t)

        # 3. clip x_0, and take eps from the clipped x_0 so that the update uses one consistent estimate
        if self.config.clip_sample:
            bound = self.config.clip_sample_range
            pred_original_sample = pred_original_sample.clamp(-bound, bound)
            pred_epsilon = (sample - math.sqrt(gamma_t) * pred_original_sample) / math.sqrt(1.0 - gamma_t)

        # 4. mean and standard deviation of x_{t-1}
        if eta is None:
            # ancestral update (IDM / SR3 Algorithm 2):
            # x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - gamma_t) * eps) / sqrt(alpha_t) + sqrt(1 - alpha_t) z
            prev_mean = (sample - (1.0 - alpha_t) / math.sqrt(1.0 - gamma_t) * pred_epsilon) / math.sqrt(alpha_t)
            std = math.sqrt(1.0 - alpha_t)
        else:
            # DDIM (Song et al. 2021), eq. 16: sigma_t = eta * sqrt((1 - gamma_prev) / (1 - gamma_t)) * sqrt(1 - alpha_t)
            std = eta * math.sqrt((1.0 - gamma_prev) / (1.0 - gamma_t) * (1.0 - alpha_t))
            # eq. 12: x_{t-1} = sqrt(gamma_prev) x_0 + sqrt(1 - gamma_prev - sigma_t^2) eps + sigma_t z
            prev_mean = math.sqrt(gamma_prev) * pred_original_sample + math.sqrt(
                max(1.0 - gamma_prev - std**2, 0.0)
            ) * pred_epsilon

        # 5. add noise, except at the last step, which lands on the clean image
        prev_sample = prev_mean
        if prev_t >= 0 and std > 0.0:
            z = randn_tensor(model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
            prev_sample = prev_mean + std * z

        if not return_dict:
            return prev_sample, pred_original_sample
        return IDMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


def _like(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """A scaling (a float64 CPU tensor, or a float) on the device and in the dtype of the batch it applies to."""
    return value.to(device=like.device, dtype=like.dtype) if isinstance(value, torch.Tensor) else value
