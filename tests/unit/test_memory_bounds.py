"""Memory stays bounded by the uint8 data: no whole-set float copies in quality, export and the GenMix arm;
predictions honour ``eval_batch_size``; the uint8 GenMix pool gives the float pool's batches bit for bit.

Peak memory is read from the kernel in a fresh child process (``VmHWM`` after a reset through
``/proc/self/clear_refs``), so allocations by torch, which ``tracemalloc`` cannot see, count too; each bounded
case comes with a control that does make the whole-set copy and must exceed the bound, so the check can tell.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.memory import CAN_RESET_PEAK, run_measured

from models.arms import ArmSettings, build_arm
from models.classifiers import build_classifier
from models.datasets import Split
from models.export import build_mixer, save_export
from models.genmix import GenMixConfig, GenMixer
from models.runtime import torch_rng
from models.train import classifier_config, predict, train_classifier

CPU = torch.device("cpu")
"""Child processes map every block over 1 MiB on its own and unmap it on free: freed memory is never reused
unseen, so the peak counts every large allocation."""


def _uint8_pools(seed: int = 0):
    gen = torch_rng(seed)
    real = torch.randint(0, 256, (50, 3, 6, 5), generator=gen, dtype=torch.uint8)
    syn = torch.randint(0, 256, (30, 3, 6, 5), generator=gen, dtype=torch.uint8)
    return real, torch.randint(0, 3, (50,), generator=gen), syn, torch.randint(0, 3, (30,), generator=gen)


@pytest.mark.parametrize("class_balanced", [False, True])
def test_uint8_pool_gives_the_float_pools_batches_bit_for_bit(class_balanced: bool) -> None:
    real, real_labels, syn, syn_labels = _uint8_pools()
    config = GenMixConfig(class_balanced=class_balanced, mix_prob=0.8)
    as_float = GenMixer(real.float() / 255.0, real_labels, syn.float() / 255.0, syn_labels, 3, config, seed=4)
    as_uint8 = GenMixer(real, real_labels, syn, syn_labels, 3, config, seed=4, value_divisor=255.0)
    assert as_uint8.real_images.dtype == torch.uint8 and as_float.real_images.dtype == torch.float32
    index = torch.arange(50).repeat(3)
    for a, b in ((as_float.mix(index), as_uint8.mix(index)), (as_float.mix_export(64), as_uint8.mix_export(64))):
        for name in ("images", "soft_labels", "lam", "partner_pool", "partner_index", "real_index"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    raw = GenMixer(real, real_labels, syn, syn_labels, 3, config, seed=4).mix(index)  # 0–255 scale
    assert torch.equal(
        raw.images, GenMixer(real.float(), real_labels, syn.float(), syn_labels, 3, config, 4).mix(index).images
    )


def test_channels_last_view_is_the_pool_itself_and_chunks_equal_the_whole() -> None:
    rng = np.random.default_rng(0)
    real = Split(rng.integers(0, 256, (40, 7, 5, 3), dtype=np.uint8), np.arange(40) % 2)
    syn = Split(rng.integers(0, 256, (0, 7, 5, 3), dtype=np.uint8), np.zeros(0, np.int64))
    mixer = build_mixer(real, syn, 2, GenMixConfig(), seed=1)
    assert mixer.real_images.data_ptr() == torch.from_numpy(real.images).data_ptr()  # no copy, no float
    batch = mixer.mix_export(33, seed=2)
    nchw = torch.from_numpy(real.images).permute(0, 3, 1, 2).double()
    lam = batch.lam.double()[:, None, None, None]
    expected = (1 - lam) * nchw[batch.real_index] + lam * nchw[batch.partner_index]
    torch.testing.assert_close(batch.images.double(), expected, rtol=1e-5, atol=1e-3)
    assert torch.equal(torch.cat(list(batch.image_chunks(5))), batch.images)
    with pytest.raises(ValueError, match="chunk size"):
        next(batch.image_chunks(0))


@pytest.mark.parametrize("channels", [1, 3])
def test_genmix_arm_keeps_one_uint8_pool_and_its_batches_match_a_float_pool(channels: int) -> None:
    rng = np.random.default_rng(1)
    real = Split(rng.integers(0, 256, (30, 8, 8, channels), dtype=np.uint8), np.arange(30) % 2)
    syn = Split(rng.integers(0, 256, (12, 8, 8, channels), dtype=np.uint8), np.arange(12) % 2)
    settings = ArmSettings(genmix=GenMixConfig(alpha=0.3))
    arm = build_arm("genmix", real, 2, CPU, seed=5, synthetic=syn, settings=settings)
    assert arm.images.dtype == torch.uint8 and arm.mixer.synthetic_images.dtype == torch.uint8
    assert arm.images.data_ptr() == arm.mixer.real_images.data_ptr()  # the arm's real rows are the mixer's
    # gray and RGB: real ∪ synthetic costs no copy of either set (RGB rows keep the split's channels-last memory)
    assert arm.mixer.real_images.data_ptr() == torch.from_numpy(real.images).data_ptr()
    assert arm.mixer.synthetic_images.data_ptr() == torch.from_numpy(syn.images).data_ptr()
    # the pre-uint8 arm: a float pool of images / 255 and the same seed
    as_float = GenMixer(
        torch.from_numpy(real.images).permute(0, 3, 1, 2).float().div_(255.0),
        torch.from_numpy(real.labels),
        torch.from_numpy(syn.images).permute(0, 3, 1, 2).float().div_(255.0),
        torch.from_numpy(syn.labels),
        2,
        settings.genmix,
        seed=5,
    )
    order = torch.randperm(30, generator=torch_rng(5))
    for (x, y), start in zip(arm.epoch(8), range(0, 30, 8), strict=True):
        expected = as_float.mix(order[start : start + 8])
        assert torch.equal(x, expected.images) and torch.equal(y, expected.soft_labels)
        assert x.is_contiguous()  # the NCHW layout the classifiers trained on before


@pytest.mark.parametrize("name", ["baseline", "mixup", "augmix", "generative"])
def test_rgb_arms_read_the_split_in_place_and_batch_contiguous_nchw(name: str) -> None:
    """No arm keeps an NCHW copy of an RGB split (the baseline's pool is the split's memory); batches are the
    contiguous NCHW floats an arm built from a contiguous copy gives, seed for seed."""
    rng = np.random.default_rng(2)
    real = Split(rng.integers(0, 256, (20, 6, 5, 3), dtype=np.uint8), np.arange(20) % 2)
    syn = Split(rng.integers(0, 256, (8, 6, 5, 3), dtype=np.uint8), np.arange(8) % 2)
    arm = build_arm(name, real, 2, CPU, seed=3, synthetic=syn)
    if name != "generative":  # the generative arm's pool is real ∪ synthetic, one concatenation
        assert arm.images.data_ptr() == torch.from_numpy(real.images).data_ptr()
    reference = build_arm(name, real, 2, CPU, seed=3, synthetic=syn)
    reference.images = reference.images.contiguous()  # what the arm held before: an NCHW copy
    assert reference.images.data_ptr() != torch.from_numpy(real.images).data_ptr()
    for (x, y), (x_ref, y_ref) in zip(arm.epoch(6), reference.epoch(6), strict=True):
        assert x.is_contiguous() and torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_export_file_matches_the_batch(tmp_path) -> None:
    rng = np.random.default_rng(2)
    real = Split(rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8), np.arange(20) % 3)
    syn = Split(rng.integers(0, 256, (9, 6, 6, 3), dtype=np.uint8), np.arange(9) % 3)
    batch = build_mixer(real, syn, 3, GenMixConfig(), seed=0).mix_export(23)
    path = save_export(batch, tmp_path / "export.npz", ["a", "b", "c"], chunk=4)
    with np.load(path) as data:
        assert data["images"].dtype == np.float32 and data["images"].shape == (23, 3, 6, 6)
        assert np.array_equal(data["images"], batch.images.numpy())
        assert np.array_equal(data["real_index"], batch.real_index.numpy())
        assert np.array_equal(data["partner_pool"], batch.partner_pool.numpy())
        assert list(data["class_names"]) == ["a", "b", "c"]


class _CountingNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = build_classifier("smallcnn", 1, 2, (12, 12))
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return self.net(x)


def test_predict_and_training_validation_honour_eval_batch_size() -> None:
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (23, 12, 12, 1), dtype=np.uint8), np.arange(23) % 2)
    model = _CountingNet()
    assert predict(model, split, CPU).shape == (23, 2) and model.sizes == [23]  # untrained: 256 default
    model.sizes.clear()
    predict(model, split, CPU, batch_size=10)
    assert model.sizes == [10, 10, 3]
    config = classifier_config("quick", {"epochs": 1, "batch_size": 8, "eval_batch_size": 7})
    result = train_classifier(model, build_arm("baseline", split, 2, CPU, seed=0), split, ["a", "b"], config, CPU)
    assert model.sizes[-4:] == [7, 7, 7, 2]  # validation after the epoch
    model.sizes.clear()
    predict(result.model, split, CPU)  # a trained model keeps its eval batch size
    assert model.sizes == [7, 7, 7, 2]
    with pytest.raises(ValueError, match="eval batch size"):
        predict(model, split, CPU, batch_size=0)


@pytest.mark.skipif(not CAN_RESET_PEAK, reason="needs Linux /proc peak-RSS reset")
def test_quality_and_export_peaks_stay_far_below_a_whole_set_float_copy(tmp_path) -> None:
    """3000 × 32² RGB (9 MB uint8; a float32 copy 37 MB, float64 74 MB): memorisation in 1 MB blocks and an
    export of 1500 images (float32 images 18 MB) in chunks of 64 grow the peak by a few MB only."""
    figures = run_measured(
        f"""
        from models.datasets import Split
        from models.export import build_mixer, save_export
        from models.genmix import GenMixConfig
        from models.quality import flat_pixels, memorisation
        rng = np.random.default_rng(0)
        train = rng.integers(0, 256, (3000, 32, 32, 3), dtype=np.uint8)
        syn = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
        held = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
        mem = growth_mb(lambda: memorisation(train, syn, held, chunk_bytes=1 << 20))
        mem_control = growth_mb(lambda: flat_pixels(train))
        real = Split(train, np.arange(3000) % 2)
        synth = Split(syn, np.arange(400) % 2)
        mixer = build_mixer(real, synth, 2, GenMixConfig(), seed=0)
        save_export(mixer.mix_export(64), {str(tmp_path / "w.npz")!r}, ["a", "b"], chunk=64)  # warm up zlib, kernels
        exp = growth_mb(lambda: save_export(mixer.mix_export(1500), {str(tmp_path / "e.npz")!r}, ["a", "b"], chunk=64))
        exp_control = growth_mb(lambda: mixer.mix_export(1500).images)
        print(json.dumps({{"mem": mem, "mem_control": mem_control, "exp": exp, "exp_control": exp_control}}))
        """
    )
    assert figures["mem_control"] > 30, figures  # a float32 copy of train: the measurement sees it
    assert figures["mem"] < 12, figures
    assert figures["exp_control"] > 15, figures  # 1500 float images at once
    assert figures["exp"] < 10, figures
    json.dumps(figures)


@pytest.mark.parametrize("uint8", [True, False])
def test_two_part_pool_blends_what_a_concatenated_pool_would_bit_for_bit(uint8: bool) -> None:
    real, real_labels, syn, syn_labels = _uint8_pools(3)
    if not uint8:
        real, syn = real.float(), syn.float()
    divisor = 255.0 if uint8 else 1.0
    mixer = GenMixer(real, real_labels, syn, syn_labels, 3, GenMixConfig(), seed=2, value_divisor=divisor)
    batch = mixer.mix(torch.randperm(50, generator=torch_rng(1))[:40])
    assert bool((batch.partner_pool == 1).any()) and bool((batch.partner_pool == 0).any())  # both kinds drawn
    pool = torch.cat([real, syn]).flatten(1).float() / divisor  # the copy the mixer no longer makes
    expected = torch.nn.functional.embedding_bag(batch.rows, pool, per_sample_weights=batch.weights, mode="sum")
    assert torch.equal(batch.images, expected.view_as(batch.images))
