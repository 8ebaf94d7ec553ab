"""StyleGAN2-style generator: real tiny networks, a few dozen steps each, on BreastMNIST or synthetic sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from generator_support import Recorder, assert_varied_class_samples
from generator_support import bright_dark as toy_set

from models.datasets import ImageSet, Split
from models.generators import build_generator
from models.generators.stylegan import ModulatedConv2d, StyleGAN, diff_augment, spatial_plan
from models.hooks import TrainHooks
from models.quality import flat_pixels, kid


def tiny(**overrides) -> dict:
    return {"iterations": 12, "log_every": 4, **overrides}


def bright_dark(n: int = 16, size: int = 28, channels: int = 1, seed: int = 0) -> Split:
    return toy_set(n, size, channels, seed)


def test_profiles_share_keys_and_paper_matches_section_3() -> None:
    keys = {name: set(p) for name, p in StyleGAN.profiles.items()}
    assert keys["paper"] == keys["quick"] == keys["tiny"]
    paper = StyleGAN.profiles["paper"]
    assert (paper["iterations"], paper["batch_size"], paper["lr"]) == (70_000, 8, 1e-3)
    assert spatial_plan(28) == (7, 2) and spatial_plan(128) == (4, 5)
    with pytest.raises(ValueError, match="unknown stylegan settings"):
        StyleGAN(2, 1, (28, 28), config={"iters": 1}, profile="tiny")
    with pytest.raises(ValueError, match="DiffAugment"):
        StyleGAN(2, 1, (28, 28), config={"augment": ["rotate"]}, profile="tiny")


def test_modulated_conv_equals_per_sample_weights() -> None:
    """The fast form (scale activations) equals StyleGAN2's definition (modulate and demodulate the weights)."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, w_dim=6)
    x, w = torch.randn(3, 5, 9, 9), torch.randn(3, 6)
    styles = conv.affine(w)
    expected = []
    for i in range(3):
        weight = conv.weight * conv.scale * styles[i][None, :, None, None]
        weight = weight / (weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        expected.append(F.conv2d(x[i : i + 1], weight, padding=1))
    torch.testing.assert_close(conv(x, w), torch.cat(expected), rtol=1e-4, atol=1e-5)


def test_diff_augment_keeps_shape_passes_gradients_and_owns_its_randomness() -> None:
    leaf = torch.rand(4, 1, 28, 28, requires_grad=True)
    x = leaf * 2 - 1
    policy = ["color", "translation", "cutout"]
    a = diff_augment(x, policy, torch.Generator().manual_seed(0))
    b = diff_augment(x, policy, torch.Generator().manual_seed(0))
    c = diff_augment(x, policy, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert (a == 0).flatten(1).float().mean(1).min() > 0.1  # cutout zeroed a patch in every image
    a.sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x, [], torch.Generator()), x)


def test_short_run_on_breastmnist_moves_samples_towards_the_data(breast: ImageSet) -> None:
    """A GAN's losses are a two-player game and need not fall; what must happen is samples nearing the data.

    Measured as pixel-space KID between G_ema samples and real images, before and after 24 steps.
    """
    real = flat_pixels(breast.train.images[:200])
    model = build_generator("stylegan", 2, 1, (28, 28), config=tiny(iterations=24), profile="tiny", seed=0)
    before = kid(real, flat_pixels(model.sample([40, 40], seed=0).images), 40, 20)["kid_mean"]
    progress = Recorder()
    stats = model.fit(breast.train, TrainHooks(progress=progress))
    after = kid(real, flat_pixels(model.sample([40, 40], seed=0).images), 40, 20)["kid_mean"]
    assert after < 0.5 * before, (before, after)
    assert progress.steps == [4, 8, 12, 16, 20, 24]
    assert all(np.isfinite(m[k]) for _, _, m in progress.calls for k in ("loss_d", "loss_g", "r1"))
    assert progress.calls[-1][2]["r1"] > 0  # lazy R1 ran (every 4 steps in the tiny profile)
    assert stats["steps"] == 24

    assert_varied_class_samples(model.sample([5, 7], seed=3), [5, 7], 28)


def test_style_mixing_and_noise_change_the_image() -> None:
    model = StyleGAN(2, 1, (28, 28), config=tiny(), profile="tiny", seed=0)
    g = model.netG
    assert g.synthesis.num_ws == 2 * 2 + 2
    for layer in g.synthesis.convs:  # noise must reach the image, so give it a strength
        layer.noise_strength.data.fill_(0.5)
    z, y = torch.randn(2, 16), torch.tensor([0, 1])
    with torch.no_grad():
        plain = g(z, y, torch.Generator().manual_seed(0), mix_prob=0.0)
        same = g(z, y, torch.Generator().manual_seed(0), mix_prob=0.0)
        mixed = g(z, y, torch.Generator().manual_seed(0), mix_prob=1.0)
        other_noise = g(z, y, torch.Generator().manual_seed(1), mix_prob=0.0)
        other_class = g(z, y.flip(0), torch.Generator().manual_seed(0), mix_prob=0.0)
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, mixed)
    assert not torch.allclose(plain, other_noise)
    assert not torch.allclose(plain, other_class)


def test_g_ema_is_sampled_and_saved_and_load_round_trips(tmp_path: Path) -> None:
    model = StyleGAN(2, 1, (28, 28), config=tiny(), profile="tiny", seed=1)
    model.fit(bright_dark(6))
    ema = dict(model.netG_ema.named_parameters())
    assert any(not torch.equal(p, ema[name]) for name, p in model.netG.named_parameters())
    first = model.sample([3, 3], seed=7)
    np.testing.assert_array_equal(first.images, model.sample([3, 3], seed=7).images)
    assert not np.array_equal(first.images, model.sample([3, 3], seed=8).images)

    model.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "generator_ema.safetensors"]
    meta = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (meta["generator"], meta["num_classes"], meta["image_size"], meta["step"]) == ("stylegan", 2, [28, 28], 12)
    loaded = StyleGAN.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.sample([3, 3], seed=7).images, first.images)


def test_needs_square_images() -> None:
    with pytest.raises(ValueError, match="square"):
        StyleGAN(2, 1, (28, 32), profile="tiny")
