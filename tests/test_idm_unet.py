"""The ready-made IDM denoiser configurations."""

import pytest
import torch

from facerest.models.idm import (
    IDM_UNET_BLOCK_OUT_CHANNELS,
    IDMScheduler,
    average_unets,
    deepen_unet,
    idm_unet_config,
    make_idm_unet,
    redraw_full_resolution_layers,
)


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


@pytest.mark.parametrize("attention", [True, False])
def test_a_deepened_unet_computes_the_same_and_trains_its_new_layers(attention):
    plain = dict(down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3)  # the shipped default's kind
    torch.manual_seed(0)
    unet = make_idm_unet(32, block_out_channels=(32, 32, 32), norm_num_groups=8, layers_per_block=1, **({} if attention else plain))
    deeper = deepen_unet(unet)
    assert deeper.config.layers_per_block == 2 and len(deeper.up_blocks[0].resnets) == 3
    assert sum(p.numel() for p in deeper.parameters()) > 1.4 * sum(p.numel() for p in unet.parameters())
    x, level = torch.randn(2, 6, 32, 32), torch.tensor([0.2, 0.8])
    with torch.no_grad():
        torch.testing.assert_close(deeper(x, level).sample, unet(x, level).sample, rtol=0, atol=1e-6)
    deeper(x, level).sample.square().mean().backward()
    new_output_convs = [deeper.down_blocks[0].resnets[1].conv2, deeper.up_blocks[0].resnets[1].conv2]
    assert all(conv.weight.grad.abs().sum() > 0 for conv in new_output_convs)


def test_averaged_unets_hold_the_mean_of_their_weights_and_refuse_different_shapes():
    small = dict(block_out_channels=(32, 32, 32), norm_num_groups=8, layers_per_block=1)
    torch.manual_seed(0)
    first, second = make_idm_unet(32, **small), make_idm_unet(32, **small)
    second.register_to_config(_name_or_path="elsewhere")  # where a fine-tune was loaded from does not matter
    averaged = average_unets([first, second])
    for name, value in averaged.state_dict().items():
        torch.testing.assert_close(value, (first.state_dict()[name] + second.state_dict()[name]) / 2)
    assert not torch.equal(averaged.state_dict()["conv_in.weight"], first.state_dict()["conv_in.weight"])
    with torch.no_grad():  # averaging a model with itself changes nothing
        x, level = torch.randn(1, 6, 32, 32), torch.tensor([0.5])
        torch.testing.assert_close(average_unets([first, first])(x, level).sample, first(x, level).sample)
    with pytest.raises(ValueError, match="differ in configuration"):
        average_unets([first, deepen_unet(first)])


def test_redrawing_changes_exactly_the_layers_at_the_input_resolution_the_same_way_for_a_seed():
    small = dict(block_out_channels=(32, 32, 32), norm_num_groups=8, layers_per_block=1)
    torch.manual_seed(0)
    trained = make_idm_unet(32, **small)
    before = {name: value.clone() for name, value in trained.state_dict().items()}
    torch.manual_seed(123)  # the global random state is neither used nor moved
    state = torch.random.get_rng_state()
    redrawn = redraw_full_resolution_layers(trained, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert {name.split(".")[0] for name in redrawn} == {"conv_in", "down_blocks", "up_blocks", "conv_norm_out", "conv_out"}
    assert all(name.startswith(("down_blocks.0.", "up_blocks.2.")) for name in redrawn if "blocks" in name)
    after = trained.state_dict()
    changed = {name for name in after if not torch.equal(after[name], before[name])}
    assert changed and changed <= set(redrawn)  # norms' ones and zeros may be redrawn as they were
    assert all(torch.equal(after[name], before[name]) for name in after if name not in redrawn)
    again = make_idm_unet(32, **small)
    redraw_full_resolution_layers(again, seed=7)
    assert all(torch.equal(again.state_dict()[name], after[name]) for name in redrawn)
