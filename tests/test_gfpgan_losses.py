"""Unit tests of GFP-GAN's training parts: losses, discriminators, facial-component boxes and crops."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from facerest.errors import FacerestError
from facerest.models.arcface import ArcFaceResNet18
from facerest.training.discriminators import (
    FIRBlur,
    FacialComponentDiscriminator,
    FacialComponentDiscriminators,
    StyleGAN2Discriminator,
)
from facerest.training.facial_components import FacialComponentLocator, load_component_landmarks, template_components
from facerest.training.losses import (
    adversarial_loss,
    component_style_loss,
    gram_matrix,
    identity_loss,
    image_pyramid,
    pyramid_l1_loss,
    r1_penalty,
)
from facerest.training.perceptual import (
    GFPGAN_LAYER_WEIGHTS,
    VGG19_FILENAME,
    PerceptualLoss,
    VGG19FeatureExtractor,
    load_vgg19_state_dict,
    vgg19_features,
)
from facerest.weights import MissingWeightsError


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- adversarial losses and R1


def test_adversarial_loss_values():
    zeros = torch.zeros(4, 1)
    assert adversarial_loss(zeros, True).item() == pytest.approx(math.log(2))
    assert adversarial_loss(zeros, False).item() == pytest.approx(math.log(2))
    # It is binary cross-entropy on logits.
    logits = torch.randn(8, 1)
    for target in (True, False):
        expected = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))
        assert adversarial_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    # A perfect discriminator has (almost) no loss; the generator it beats has a large one.
    assert adversarial_loss(torch.full((4, 1), 20.0), True).item() + adversarial_loss(torch.full((4, 1), -20.0), False).item() < 1e-6
    assert adversarial_loss(torch.full((4, 1), -20.0), True).item() == pytest.approx(20.0, abs=1e-6)
    # Non-saturating: the generator's gradient stays large where D is confident the sample is fake.
    fake = torch.full((1, 1), -10.0, requires_grad=True)
    adversarial_loss(fake, True).backward()
    assert fake.grad.item() == pytest.approx(-1.0, abs=1e-4)


def test_r1_penalty_on_toy_discriminators():
    images = torch.randn(3, 3, 8, 8, requires_grad=True)
    weight = torch.randn(1, 3, 8, 8, requires_grad=True)
    # Linear D(x) = <w, x>: grad_x D = w, so R1 = ||w||^2 for every sample.
    penalty = r1_penalty((images * weight).flatten(1).sum(1, keepdim=True), images)
    assert penalty.item() == pytest.approx(weight.pow(2).sum().item(), rel=1e-5)
    # Its gradient with respect to D's parameters is d||w||^2/dw = 2w: the penalty trains D.
    penalty.backward()
    torch.testing.assert_close(weight.grad, 2 * weight.detach())
    # Quadratic D(x) = sum x^2: grad = 2x, R1 = mean over samples of 4 ||x||^2.
    images = torch.randn(2, 3, 4, 4, requires_grad=True)
    penalty = r1_penalty(images.pow(2).flatten(1).sum(1), images)
    assert penalty.item() == pytest.approx((4 * images.detach().pow(2).flatten(1).sum(1)).mean().item(), rel=1e-5)


def test_r1_penalty_through_the_stylegan2_discriminator_trains_it():
    discriminator = StyleGAN2Discriminator(16, channel_multiplier=1, narrow=1 / 16)
    images = torch.randn(2, 3, 16, 16, requires_grad=True)
    penalty = r1_penalty(discriminator(images), images)
    assert penalty.item() > 0
    penalty.backward()
    grads = [p.grad for p in discriminator.conv_body.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


# ----------------------------------------------------------------------------- Gram matrix, style, pyramid


def test_gram_matrix_matches_definition():
    features = torch.randn(2, 5, 3, 4)
    gram = gram_matrix(features)
    assert gram.shape == (2, 5, 5)
    expected = torch.einsum("nchw,ndhw->ncd", features, features) / (5 * 3 * 4)
    torch.testing.assert_close(gram, expected)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    # Spatial rearrangement leaves the Gram matrix (a style statistic) unchanged.
    torch.testing.assert_close(gram_matrix(features.flip(-1).flip(-2)), gram)


def test_component_style_loss_zero_for_identical_and_weighted():
    features = [torch.randn(2, 8, 5, 5), torch.randn(2, 16, 2, 2)]
    assert component_style_loss(features, [f.clone() for f in features]).item() == 0
    fake = [f.clone().requires_grad_(True) for f in features]
    other = [torch.randn_like(f) for f in features]
    loss = component_style_loss(fake, other)
    expected = 0.5 * F.l1_loss(gram_matrix(fake[0]), gram_matrix(other[0])) + F.l1_loss(gram_matrix(fake[1]), gram_matrix(other[1]))
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert all(f.grad.abs().sum() > 0 for f in fake)
    real = [o.clone().requires_grad_(True) for o in other]
    component_style_loss(fake, real).backward()
    assert all(r.grad is None for r in real), "the real features are a fixed target"


def test_image_pyramid_and_pyramid_loss():
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    pyramid = image_pyramid(target, 4)
    assert [p.shape[-1] for p in pyramid] == [8, 16, 32, 64]
    assert pyramid[-1] is target
    assert pyramid_l1_loss([p.clone() for p in pyramid], target).item() == 0
    outputs = [(p + 0.1).requires_grad_(True) for p in pyramid]
    loss = pyramid_l1_loss(outputs, target)
    assert loss.item() == pytest.approx(4 * 0.1, rel=1e-4)
    loss.backward()
    assert all(o.grad is not None for o in outputs)
    with pytest.raises(ValueError, match="does not match"):
        pyramid_l1_loss([torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 32, 32)], target)


# ----------------------------------------------------------------------------- identity loss


def test_identity_loss_zero_for_identical_and_gradient_reaches_restored():
    net = ArcFaceResNet18().eval().requires_grad_(False)
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    assert identity_loss(net, target.clone(), target).item() == 0
    restored = (target + 0.2 * torch.randn_like(target)).requires_grad_(True)
    loss = identity_loss(net, restored, target)
    assert loss.item() > 0
    loss.backward()
    assert restored.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- perceptual and style


def test_vgg19_features_match_torchvision_layout():
    from torchvision.models import vgg19

    with torch.device("meta"):  # shapes only, no 140M-parameter initialisation
        reference = vgg19().features.state_dict()
    ours = vgg19_features().state_dict()
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in reference.items()]


def test_perceptual_and_style_losses():
    extractor = VGG19FeatureExtractor(list(GFPGAN_LAYER_WEIGHTS))
    assert not any(p.requires_grad for p in extractor.parameters())
    loss = PerceptualLoss(extractor, perceptual_weight=1.0, style_weight=50.0)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    perceptual, style = loss(target.clone(), target)
    assert perceptual.item() == 0 and style.item() == 0
    restored = torch.rand(2, 3, 32, 32, requires_grad=True)
    perceptual, style = loss(restored * 2 - 1, target)
    assert perceptual.item() > 0 and style.item() > 0
    (perceptual + style).backward()
    assert restored.grad.abs().sum() > 0
    # Weights scale each term; a zero weight switches it off.
    perceptual_only, no_style = PerceptualLoss(extractor, perceptual_weight=2.0, style_weight=0.0)(restored.detach() * 2 - 1, target)
    assert perceptual_only.item() == pytest.approx(2 * perceptual.item(), rel=1e-5)
    assert no_style.item() == 0


def test_feature_extractor_errors():
    with pytest.raises(ValueError, match="unknown VGG19 layers"):
        VGG19FeatureExtractor(["conv9_9"])
    with pytest.raises(ValueError, match="does not return layers"):
        PerceptualLoss(VGG19FeatureExtractor(["conv1_2"]), layer_weights={"conv2_2": 1.0})


def test_missing_vgg_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEREST_WEIGHTS_DIR", "")
    monkeypatch.setenv("FACEREST_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError, match=VGG19_FILENAME):
        load_vgg19_state_dict()


def test_vgg_weights_load_from_an_explicit_file(tmp_path):
    reference = vgg19_features()
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()} | {"classifier.0.bias": torch.zeros(3)}, tmp_path / VGG19_FILENAME)
    extractor = VGG19FeatureExtractor(["conv1_2"], load_vgg19_state_dict(tmp_path))
    torch.testing.assert_close(extractor.layers[0].weight, reference[0].weight)


# ----------------------------------------------------------------------------- discriminators


@pytest.mark.parametrize("size,batch", [(64, 4), (32, 3), (64, 8)])
def test_stylegan2_discriminator_shapes_and_gradients(size, batch):
    discriminator = StyleGAN2Discriminator(size, channel_multiplier=1, narrow=1 / 16)
    images = torch.randn(batch, 3, size, size, requires_grad=True)
    logits = discriminator(images)
    assert logits.shape == (batch, 1)
    logits.sum().backward()
    assert images.grad.abs().sum() > 0
    assert all(p.grad is not None for p in discriminator.parameters())


def test_stylegan2_discriminator_rejects_bad_input():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Discriminator(48)
    with pytest.raises(ValueError, match="multiple of the stddev group"):
        StyleGAN2Discriminator(16, narrow=1 / 16)(torch.randn(6, 3, 16, 16))


def test_fir_blur_is_a_normalised_low_pass():
    blur = FIRBlur((2, 2))
    constant = torch.full((1, 2, 8, 8), 3.0)
    out = blur(constant)
    assert out.shape == (1, 2, 9, 9)
    torch.testing.assert_close(out[..., 3:-3, 3:-3], torch.full_like(out[..., 3:-3, 3:-3], 3.0))
    checkerboard = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1
    assert blur(checkerboard.view(1, 1, 8, 8))[..., 3:-3, 3:-3].abs().max() < 1e-6  # Nyquist frequency removed


def test_facial_component_discriminators_shapes_and_features():
    locator = FacialComponentLocator(64)
    discriminator = FacialComponentDiscriminator()
    eyes = torch.randn(2, 3, locator.crop_sizes["left_eye"], locator.crop_sizes["left_eye"])
    logits, (mid, deep) = discriminator(eyes)
    assert mid.shape[:2] == (2, 128) and deep.shape[:2] == (2, 256) and logits.shape[:2] == (2, 1)
    crops = locator.crop(torch.randn(2, 3, 64, 64), locator.batch_boxes(torch.tensor([0, 1]), torch.tensor([False, True])))
    outputs = FacialComponentDiscriminators()(crops)
    assert set(outputs) == {"left_eye", "right_eye", "mouth"}
    assert all(out[0].shape[:2] == (2, 1) for out in outputs.values())


# ----------------------------------------------------------------------------- facial component boxes


def test_template_boxes_lie_where_the_face_parts_are():
    locator = FacialComponentLocator(64)
    boxes = locator.boxes(0, flipped=False)
    for box in boxes.values():
        x1, y1, x2, y2 = box.tolist()
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
    centre = {name: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for name, b in boxes.items()}
    assert centre["left_eye"][0] < 32 < centre["right_eye"][0]
    assert centre["mouth"][1] > centre["left_eye"][1] + 10
    assert abs(centre["mouth"][0] - 32) < 2
    # Boxes scale with the resolution.
    torch.testing.assert_close(FacialComponentLocator(128).boxes(0, False)["mouth"], 2 * boxes["mouth"])
    assert locator.crop_sizes == {"left_eye": 10, "right_eye": 10, "mouth": 15}
    assert FacialComponentLocator(512).crop_sizes == {"left_eye": 80, "right_eye": 80, "mouth": 120}


def test_flip_swaps_and_mirrors_the_eyes():
    template = template_components()
    locator = FacialComponentLocator(512, eye_enlarge_ratio=1.0)
    plain, flipped = locator.boxes(3, flipped=False), locator.boxes(3, flipped=True)
    x, y, half = template["right_eye"]
    torch.testing.assert_close(flipped["left_eye"], torch.tensor([512 - x - half + 1, y - half + 1, 512 - x + half, y + half]))
    # Mirroring twice is the identity: the flipped left eye is the mirror image of the plain right eye.
    mirrored = plain["right_eye"][[2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([512 + 1, 0, 512 + 1, 0])
    torch.testing.assert_close(flipped["left_eye"], mirrored)


def _write_landmarks(path, entries):
    torch.save({f"{i:08d}": parts for i, parts in entries.items()}, path)


def test_landmarks_file_gives_per_image_boxes(tmp_path):
    path = tmp_path / "landmarks.pth"
    # GFP-GAN's files store numpy scalars; they must load with torch.load(weights_only=True).
    _write_landmarks(
        path,
        {
            0: {"left_eye": [np.float64(200.0), np.float64(240.0), np.float64(20.0)], "right_eye": [320.0, 240.0, 20.0], "mouth": [256.0, 370.0, 50.0]},
            1: {"left_eye": [180.0, 250.0, 16.0], "right_eye": [330.0, 250.0, 16.0], "mouth": [250.0, 380.0, 60.0]},
        },
    )
    locator = FacialComponentLocator(64, load_component_landmarks(path), source_size=512, eye_enlarge_ratio=1.4)
    boxes = locator.batch_boxes(torch.tensor([0, 1]), torch.tensor([False, True]))
    assert boxes["mouth"].shape == (2, 4)
    torch.testing.assert_close(boxes["mouth"][0], torch.tensor([256 - 50 + 1, 370 - 50 + 1, 256 + 50, 370 + 50]) / 8.0)
    half = 16 * 1.4  # image 1 is flipped: its left eye is the mirrored right eye, enlarged
    torch.testing.assert_close(boxes["left_eye"][1], torch.tensor([512 - 330 - half + 1, 250 - half + 1, 512 - 330 + half, 250 + half]) / 8.0)
    with pytest.raises(FacerestError, match="no entry '00000002'"):
        locator.boxes(2, False)


def test_bad_landmarks_files(tmp_path):
    with pytest.raises(FacerestError, match="not found"):
        load_component_landmarks(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(FacerestError, match="cannot read landmarks file"):
        load_component_landmarks(tmp_path / "junk.pth")
    _write_landmarks(tmp_path / "partial.pth", {0: {"left_eye": [1.0, 2.0, 3.0]}})
    with pytest.raises(FacerestError, match="needs left_eye, right_eye, mouth"):
        load_component_landmarks(tmp_path / "partial.pth")


def test_crops_cut_the_boxed_region():
    locator = FacialComponentLocator(64)
    boxes = locator.batch_boxes(torch.tensor([0, 0]), torch.tensor([False, True]))
    images = -torch.ones(2, 3, 64, 64)
    x1, y1, x2, y2 = boxes["mouth"][0].round().int().tolist()
    images[0, :, y1:y2, x1:x2] = 1.0  # paint the mouth region of the first image white
    crops = locator.crop(images, boxes)
    assert crops["mouth"].shape == (2, 3, 15, 15)
    assert crops["left_eye"].shape == (2, 3, 10, 10)
    assert crops["mouth"][0, :, 2:-2, 2:-2].min() == pytest.approx(1.0)  # inside: all painted pixels
    assert crops["mouth"][1].mean() == pytest.approx(-1.0)
    assert crops["left_eye"][0].mean() == pytest.approx(-1.0)
