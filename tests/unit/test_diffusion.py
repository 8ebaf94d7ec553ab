"""Class-conditional pixel diffusion on diffusers: real tiny UNets, a few dozen steps each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from generator_support import Recorder, assert_varied_class_samples
from generator_support import bright_dark as toy_set

from models.datasets import ImageSet, Split
from models.generators import build_generator
from models.generators.diffusion import DEFAULT_SAMPLE_STEPS, Diffusion, load_pretrained_unet
from models.hooks import TrainHooks


def tiny(**overrides) -> dict:
    return {"steps": 20, "log_every": 5, **overrides}


def bright_dark(n: int = 24, size: int = 16, channels: int = 1, seed: int = 0) -> Split:
    return toy_set(n, size, channels, seed)


def test_profiles_share_keys_and_default_to_fast_bulk_sampling() -> None:
    keys = {name: set(p) for name, p in Diffusion.profiles.items()}
    assert keys["paper"] == keys["quick"] == keys["tiny"]
    for profile in Diffusion.profiles.values():
        assert profile["sampler"] == "dpm++" and profile["cfg_dropout"] > 0
    assert DEFAULT_SAMPLE_STEPS == {"dpm++": 20, "ddim": 50, "ddpm": 1000}
    with pytest.raises(ValueError, match="unknown diffusion settings"):
        Diffusion(2, 1, (28, 28), config={"step": 3}, profile="tiny")
    with pytest.raises(ValueError, match="sampler"):
        Diffusion(2, 1, (28, 28), config={"sampler": "euler"}, profile="tiny")


def test_short_run_on_breastmnist_lowers_the_loss_and_samples_varied_images(breast: ImageSet) -> None:
    progress = Recorder()
    model = build_generator("diffusion", 2, 1, (28, 28), config=tiny(steps=30), profile="tiny", seed=0)
    assert model.model_size == (28, 28) and model.unet.config.num_class_embeds == 3  # 2 classes + null class
    stats = model.fit(breast.train, TrainHooks(progress=progress))
    assert progress.steps == [5, 10, 15, 20, 25, 30]
    losses = [m["loss"] for _, _, m in progress.calls]
    assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2]), losses
    assert stats["steps"] == 30 and stats["trained_steps"] == 30

    out = model.sample([5, 7], seed=3)
    assert_varied_class_samples(out, [5, 7], 28)
    # DPM-Solver++ without x0 clipping saturates almost every pixel of an undertrained pixel model (> 0.99).
    assert ((out.images == 0) | (out.images == 255)).mean() < 0.6


def test_every_sampler_and_guidance_setting_gives_valid_images() -> None:
    model = Diffusion(2, 1, (16, 16), config=tiny(), profile="tiny", seed=1)
    model.fit(bright_dark(8))
    noise = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 0, 1, 1])
    results = {}
    for sampler in ("dpm++", "ddim", "ddpm"):
        x = model.denoise(noise, labels, sampler=sampler, steps=4, generator=torch.Generator().manual_seed(1))
        assert x.shape == (4, 1, 16, 16) and torch.isfinite(x).all()
        results[sampler] = x
    assert not torch.allclose(results["dpm++"], results["ddim"])
    model.config["guidance_scale"] = 4.0
    guided = model.denoise(noise, labels, sampler="dpm++", steps=4)
    assert not torch.allclose(guided, results["dpm++"])
    assert model.make_scheduler("dpm++").config.algorithm_type == "dpmsolver++"


def test_save_writes_plain_diffusers_folders_and_load_round_trips(tmp_path: Path) -> None:
    model = Diffusion(2, 1, (16, 16), config=tiny(), profile="tiny", seed=2)
    model.fit(bright_dark(8))
    first = model.sample([3, 3], seed=5)
    np.testing.assert_array_equal(first.images, model.sample([3, 3], seed=5).images)
    assert not np.array_equal(first.images, model.sample([3, 3], seed=6).images)

    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "model" / "genmix.json").is_file()
    # A lab needs nothing of GenMix to use the model: plain diffusers classes load it.
    unet = UNet2DModel.from_pretrained(tmp_path / "model" / "unet")
    scheduler = DDPMScheduler.from_pretrained(tmp_path / "model" / "scheduler")
    assert unet.config.num_class_embeds == 3 and scheduler.config.num_train_timesteps == 1000
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([10, 500]), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t, class_labels=y).sample, model.ema_unet(x, t, class_labels=y).sample)

    loaded = Diffusion.load(tmp_path / "model")
    assert loaded.config["pretrained_dir"] is None and loaded.step == model.step
    np.testing.assert_array_equal(loaded.sample([3, 3], seed=5).images, first.images)


def test_ema_weights_are_what_sampling_uses() -> None:
    model = Diffusion(2, 1, (16, 16), config=tiny(), profile="tiny", seed=3)
    model.fit(bright_dark(8))
    sampling = model._sampling_unet()
    trained = dict(model.unet.named_parameters())
    assert any(not torch.equal(p, trained[name]) for name, p in sampling.named_parameters())
    for p, shadow in zip(sampling.parameters(), model.ema.shadow_params, strict=True):
        assert torch.equal(p, shadow)


def test_fine_tunes_a_pretrained_rgb_unet_on_gray_data(tmp_path: Path) -> None:
    """An ImageNet-style start: RGB, 32 px, 10 classes; the data is gray 28 px with 2 classes."""
    torch.manual_seed(0)
    pretrained = UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        num_class_embeds=10,
    )
    pretrained.save_pretrained(tmp_path / "pipeline" / "unet")  # a pipeline folder with unet/ works too
    model = Diffusion(2, 1, (28, 28), config=tiny(pretrained_dir=str(tmp_path / "pipeline")), profile="tiny")
    assert model.model_size == (32, 32) and model.model_channels == 3
    assert model.unet.class_embedding.weight.shape[0] == 3
    assert torch.count_nonzero(model.unet.class_embedding.weight) == 0  # starts from the pretrained behaviour
    before = dict(pretrained.named_parameters())
    for name, p in model.unet.named_parameters():
        if not name.startswith("class_embedding"):
            assert torch.equal(p, before[name]), name

    model.fit(bright_dark(6, size=28))
    out = model.sample([2, 3], seed=0)
    assert out.images.shape == (5, 28, 28, 1) and out.labels.tolist() == [0, 0, 1, 1, 1]
    model.save(tmp_path / "tuned")
    reloaded = Diffusion.load(tmp_path / "tuned")
    assert reloaded.config["pretrained_dir"] == str(tmp_path / "pipeline")
    np.testing.assert_array_equal(reloaded.sample([2, 3], seed=0).images, out.images)

    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_pretrained_unet(tmp_path / "absent", 3)
