"""GFPGANModel: parity with the official GFPGANv1Clean (golden fixtures), save/load, strict conversion, config."""

import functools
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel

from facerest.models.gfpgan import CheckpointError, GFPGANConfig, GFPGANModel, load_original_weights
from facerest.models.gfpgan.convert_original import GFPGAN_V14_URL, convert_original_checkpoint, original_checkpoint_path
from facerest.models.gfpgan.modeling_gfpgan import StyleConv

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PARITY_FIXTURES = ["v14_small", "mapped_small"]  # made by fixtures/make_gfpgan_parity_fixture.py
TINY = dict(out_size=64, num_style_feat=16, channel_multiplier=1, narrow=1 / 32, num_mlp=2)


def read_parity_fixture(name):
    path = FIXTURES / f"gfpgan_parity_{name}.safetensors"
    with safe_open(path, framework="pt") as fixture:
        tensors = {key: fixture.get_tensor(key) for key in fixture.keys()}
        config = json.loads(fixture.metadata()["config"])
    original = {key.removeprefix("original."): value for key, value in tensors.items() if key.startswith("original.")}
    rgbs = [tensors[f"rgb.{i}"] for i in range(sum(key.startswith("rgb.") for key in tensors))]
    return config, original, tensors["input"], tensors["output"], rgbs


def write_official_checkpoint(path, state_dict, weight_key="params_ema"):
    torch.save({weight_key: state_dict}, path)
    return path


@torch.no_grad()
def tiny_model(**overrides):
    """A tiny model whose noise strengths are non-zero (the official init leaves them at 0), so noise matters."""
    model = GFPGANModel(GFPGANConfig(**{**TINY, **overrides})).eval()
    for module in model.modules():
        if isinstance(module, StyleConv):
            module.weight.fill_(0.5)
    return model


def lq_batch(size, batch_size=2, seed=0):
    return torch.rand(batch_size, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", PARITY_FIXTURES)
@torch.no_grad()
def test_matches_official_golden_output(name, tmp_path):
    config, original, lq, official_image, official_rgbs = read_parity_fixture(name)
    model = GFPGANModel(GFPGANConfig(**config)).eval()
    load_original_weights(model, write_official_checkpoint(tmp_path / "official.pth", original))

    output = model(lq, return_rgbs=True)

    assert official_image.abs().max() > 0.1  # the fixture holds a real output, not zeros
    assert (output.image - official_image).abs().max().item() <= 1e-4
    assert len(output.intermediate_rgbs) == len(official_rgbs) == model.config.log_size - 2
    for ours, official in zip(output.intermediate_rgbs, official_rgbs):
        assert (ours - official).abs().max().item() <= 1e-4


@torch.no_grad()
def test_auto_round_trip_keeps_weights_noise_and_outputs(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()

    config = AutoConfig.from_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()

    assert isinstance(config, GFPGANConfig) and isinstance(loaded, GFPGANModel)
    assert all(getattr(config, name) == getattr(model.config, name) for name in [*TINY, "sft_half", "different_w", "input_is_latent"])
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys() and any(key.startswith("stylegan_decoder.noises.") for key in saved)
    mismatched = [key for key in saved if not torch.equal(saved[key], restored[key])]
    assert mismatched == []
    lq = lq_batch(64)
    assert torch.equal(model(lq).image, loaded(lq).image)


@torch.no_grad()
def test_deterministic_by_default_and_stochastic_on_request():
    model = tiny_model()
    lq = lq_batch(64)
    fixed = model(lq).image
    assert torch.equal(fixed, model(lq).image)
    first, second = model(lq, randomize_noise=True).image, model(lq, randomize_noise=True).image
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, fixed)


@torch.no_grad()
def test_outputs_and_intermediate_rgbs_have_every_scale():
    model = tiny_model(out_size=128)
    output = model(lq_batch(128, batch_size=3), return_rgbs=True)
    assert output.image.shape == (3, 3, 128, 128)
    assert [rgb.shape[-1] for rgb in output.intermediate_rgbs] == [8, 16, 32, 64, 128]
    assert model(lq_batch(128)).intermediate_rgbs is None


def test_rejects_input_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\), got \(2, 3, 128, 128\)"):
        tiny_model()(lq_batch(128))


def test_official_initialisation():
    decoder = GFPGANModel(GFPGANConfig(**TINY)).stylegan_decoder
    assert torch.all(decoder.style_conv1.weight == 0) and torch.all(decoder.style_convs[0].bias == 0)
    assert torch.all(decoder.style_conv1.modulated_conv.modulation.bias == 1)
    assert torch.all(decoder.to_rgbs[0].modulated_conv.modulation.bias == 1)
    assert decoder.noises.noise0.std() > 0.5 and decoder.constant_input.weight.std() > 0.5


@pytest.mark.parametrize("out_size", [32, 100, 513, 2048])
def test_invalid_out_size_is_rejected(out_size):
    with pytest.raises(ValueError, match=f"out_size must be a power of two from 64 to 1024, got {out_size}"):
        GFPGANConfig(out_size=out_size)


def test_inconsistent_narrow_is_rejected():
    with pytest.raises(ValueError, match="narrow=0.3"):
        GFPGANConfig(narrow=0.3)


@pytest.mark.parametrize("out_size", [64, 128, 256, 512, 1024])
def test_every_out_size_builds_and_runs_at_full_width(out_size):
    config = GFPGANConfig(out_size=out_size)  # the v1.4 widths, built on the meta device (shapes, no memory)
    with torch.device("meta"):
        model = GFPGANModel(config)
        output = model(torch.empty(1, 3, out_size, out_size), return_rgbs=True)
    assert output.image.shape == (1, 3, out_size, out_size)
    assert len(output.intermediate_rgbs) == config.log_size - 2
    assert model.final_linear.out_features == (2 * config.log_size - 2) * 512
    assert len(list(model.stylegan_decoder.noises.buffers())) == 2 * (config.log_size - 2) + 1


# Strict conversion ---------------------------------------------------------------------------------------------


@pytest.fixture
def official_v14_small():
    config, original, *_ = read_parity_fixture("v14_small")
    return GFPGANModel(GFPGANConfig(**config)), original


def test_missing_key_is_named(official_v14_small, tmp_path):
    model, original = official_v14_small
    del original["stylegan_decoder.noises.noise3"]
    path = write_official_checkpoint(tmp_path / "official.pth", original)
    with pytest.raises(CheckpointError, match=r"official\.pth .*1 missing: stylegan_decoder\.noises\.noise3"):
        load_original_weights(model, path)


def test_unexpected_key_is_named(official_v14_small, tmp_path):
    model, original = official_v14_small
    original["stylegan_decoder.extra.weight"] = torch.zeros(1)
    path = write_official_checkpoint(tmp_path / "official.pth", original)
    with pytest.raises(CheckpointError, match=r"1 unexpected: stylegan_decoder\.extra\.weight"):
        load_original_weights(model, path)


def test_wrong_shape_is_named(official_v14_small, tmp_path):
    model, original = official_v14_small
    original["final_linear.weight"] = original["final_linear.weight"][:-1]
    path = write_official_checkpoint(tmp_path / "official.pth", original)
    with pytest.raises(CheckpointError, match=r"final_linear\.weight \(checkpoint \(319, 256\), model \(320, 256\)\)"):
        load_original_weights(model, path)


def test_params_is_used_without_params_ema(official_v14_small, tmp_path):
    model, original = official_v14_small
    load_original_weights(model, write_official_checkpoint(tmp_path / "official.pth", original, weight_key="params"))
    assert torch.equal(model.final_linear.weight, original["final_linear.weight"])


@pytest.mark.parametrize(
    "contents, message",
    [
        (b"not a checkpoint at all", "not a readable PyTorch checkpoint"),
        (None, "has neither 'params_ema' nor 'params' \\(top-level keys: 'state_dict'\\)"),
        ("truncated", "not a readable PyTorch checkpoint"),
        ("a tensor", "'params_ema' is a Tensor, not a dict of tensors"),
    ],
)
def test_unreadable_checkpoint_names_the_file(official_v14_small, tmp_path, contents, message):
    model, original = official_v14_small
    path = tmp_path / "broken.pth"
    if contents is None:
        torch.save({"state_dict": original}, path)
    elif contents == "truncated":
        write_official_checkpoint(path, original)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif contents == "a tensor":
        torch.save({"params_ema": torch.zeros(3)}, path)
    else:
        path.write_bytes(contents)
    with pytest.raises(CheckpointError, match=f"broken.pth: {message}"):
        load_original_weights(model, path)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pth: no such checkpoint file"):
        load_original_weights(tiny_model(), tmp_path / "nowhere.pth")


# Pretrained StyleGAN2 decoder ----------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["pth", "safetensors"])
def test_a_pretrained_stylegan2_loads_into_the_decoder(tmp_path, file_format):
    decoder_state = {key: value.clone() for key, value in tiny_model().stylegan_decoder.state_dict().items()}
    path = tmp_path / f"stylegan2.{file_format}"
    if file_format == "pth":
        write_official_checkpoint(path, decoder_state)
    else:
        save_file(decoder_state, path)
    model = GFPGANModel(GFPGANConfig(**TINY))
    load_original_weights(model.stylegan_decoder, path)
    assert all(torch.equal(value, decoder_state[key]) for key, value in model.stylegan_decoder.state_dict().items())


def test_the_decoder_refuses_a_whole_gfpgan_checkpoint(tmp_path):
    path = write_official_checkpoint(tmp_path / "gfpgan.pth", tiny_model().state_dict())
    with pytest.raises(CheckpointError, match=r"missing: constant_input\.weight.*unexpected: condition_scale"):
        load_original_weights(tiny_model().stylegan_decoder, path)


def test_convert_original_checkpoint_from_a_path_or_a_cached_url(tmp_path, monkeypatch):
    official = tiny_model().state_dict()
    path = write_official_checkpoint(tmp_path / "tiny.pth", official)
    from_path = convert_original_checkpoint(path, GFPGANConfig(**TINY))
    assert not from_path.training and all(torch.equal(value, official[key]) for key, value in from_path.state_dict().items())

    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEREST_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "cache").mkdir()
    cached = write_official_checkpoint(tmp_path / "cache" / GFPGAN_V14_URL.rsplit("/", 1)[-1], official)
    assert original_checkpoint_path(GFPGAN_V14_URL) == cached and original_checkpoint_path(str(path)) == path
    from_url = convert_original_checkpoint(GFPGAN_V14_URL, GFPGANConfig(**TINY))
    assert all(torch.equal(value, official[key]) for key, value in from_url.state_dict().items())


# hub/convert_gfpgan.py -----------------------------------------------------------------------------------------


@pytest.fixture
def convert_script():
    spec = importlib.util.spec_from_file_location("convert_gfpgan", REPO_ROOT / "hub" / "convert_gfpgan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_script_default_source_goes_through_the_weight_cache(convert_script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEREST_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert convert_script.main(["--output", str(tmp_path / "out"), "--out-size", "64"]) == 2
    assert "needs GFPGANv1.4.pth" in capsys.readouterr().err

    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "GFPGANv1.4.pth").write_bytes(b"corrupt download")
    assert convert_script.main(["--output", str(tmp_path / "out"), "--out-size", "64"]) == 2
    error = capsys.readouterr().err
    assert "cache/GFPGANv1.4.pth: not a readable PyTorch checkpoint" in error and "--out-size 64" in error
    assert not (tmp_path / "out").exists()


def test_convert_script_writes_a_loadable_model(convert_script, tmp_path, monkeypatch, capsys):
    # The script builds full-width models; narrow them so that the test stays small.
    tiny_widths = {key: TINY[key] for key in ("num_style_feat", "narrow", "num_mlp")}
    monkeypatch.setattr(convert_script, "GFPGANConfig", functools.partial(GFPGANConfig, **tiny_widths))
    official = tiny_model(out_size=128, channel_multiplier=2).state_dict()
    checkpoint = write_official_checkpoint(tmp_path / "GFPGAN128.pth", official)
    output = tmp_path / "converted"
    arguments = ["--checkpoint", str(checkpoint), "--output", str(output), "--out-size", "128", "--channel-multiplier", "2"]
    assert convert_script.main(arguments) == 0
    assert f"converted {checkpoint} -> {output}" in capsys.readouterr().out
    loaded = GFPGANModel.from_pretrained(output / "restorer")  # a FaceRestorePipeline folder
    assert loaded.config.out_size == 128 and loaded.config.channel_multiplier == 2
    assert all(torch.equal(value, official[key]) for key, value in loaded.state_dict().items())
    written = {path: path.read_bytes() for path in output.rglob("*") if path.is_file()}
    assert convert_script.main(arguments) == 2  # again into the same folder: its files would mix with the new ones
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: --output {output} exists and is not an empty folder: choose a new one"
    assert {path: path.read_bytes() for path in output.rglob("*") if path.is_file()} == written
