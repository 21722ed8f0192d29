"""The ready-made IDM denoiser configurations."""

import pytest
import torch

from facerest.models.idm import IDM_UNET_BLOCK_OUT_CHANNELS, IDMScheduler, idm_unet_config, make_idm_unet


@pytest.mark.parametrize("resolution", [64, 128, 256, 512])
def test_ready_made_configs_attend_at_32_to_8(resolution):
    config = idm_unet_config(resolution)
    assert config["sample_size"] == resolution and config["in_channels"] == 6 and config["out_channels"] == 3
    levels = [resolution // 2**i for i in range(len(config["block_out_channels"]))]
    assert levels[-1] == 8  # every configuration goes down to 8x8
    attended = [size for size, kind in zip(levels, config["down_block_types"]) if kind == "AttnDownBlock2D"]
    assert attended == [32, 16, 8]
    up_attended = [size for size, kind in zip(reversed(levels), config["up_block_types"]) if kind == "AttnUpBlock2D"]
    assert up_attended == [8, 16, 32]


def test_denoiser_takes_six_channels_and_a_continuous_noise_level():
    unet = make_idm_unet(64, block_out_channels=(32, 32, 32, 32), layers_per_block=1)
    assert unet.config.down_block_types == ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
    scheduler = IDMScheduler()
    x = torch.randn(2, 6, 64, 64, generator=torch.Generator().manual_seed(0))
    levels = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        out = unet(x, scheduler.model_timestep(levels)).sample
        nearby = unet(x, scheduler.model_timestep(levels * 0.999)).sample
    assert out.shape == (2, 3, 64, 64)
    assert not torch.allclose(out, nearby)  # conditioned on gamma itself, not on a rounded timestep


def test_overrides_and_bad_resolutions():
    config = idm_unet_config(32, block_out_channels=(16, 32), layers_per_block=1)
    assert config["down_block_types"] == ("AttnDownBlock2D", "AttnDownBlock2D")
    assert config["layers_per_block"] == 1
    assert idm_unet_config(128, dropout=0.1)["block_out_channels"] == IDM_UNET_BLOCK_OUT_CHANNELS[128]
    with pytest.raises(ValueError, match="no ready-made IDM UNet for 96 px"):
        idm_unet_config(96)
    with pytest.raises(ValueError, match="cannot be halved"):
        idm_unet_config(20, block_out_channels=(16, 32, 64, 64))
