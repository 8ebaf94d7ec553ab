"""The GenMix mixer: Eq. (1) exactly, the λ law, partner pools, class balance, seeding, and MixUp."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from models.datasets import ImageSet
from models.genmix import SYNTHETIC, GenMixConfig, GenMixer, mixup_batch, sample_beta
from models.runtime import torch_rng
from models.tensors import to_tensor

K = 3


def _pools(n_real: int = 40, n_syn: int = 25, seed: int = 0, scale: float = 100.0):
    """Real and synthetic tensors at an arbitrary value scale (the mixer must not assume [0, 1])."""
    gen = torch_rng(seed)
    real = torch.rand(n_real, 2, 5, 4, generator=gen) * scale - scale / 2
    syn = torch.rand(n_syn, 2, 5, 4, generator=gen) * scale
    real_labels = torch.randint(0, K, (n_real,), generator=gen)
    syn_labels = torch.randint(0, K, (n_syn,), generator=gen)
    return real, real_labels, syn, syn_labels


def _expected(mixer_inputs, batch):
    """Eq. (1) recomputed from the batch's λ, pools and indices."""
    real, real_labels, syn, syn_labels = mixer_inputs
    is_syn = batch.partner_pool.bool()
    partner_x = torch.where(
        is_syn[:, None, None, None],
        syn[batch.partner_index.clamp(max=len(syn) - 1)] if len(syn) else real[batch.partner_index],
        real[batch.partner_index.clamp(max=len(real) - 1)],
    )
    partner_y = torch.where(
        is_syn,
        syn_labels[batch.partner_index.clamp(max=len(syn) - 1)] if len(syn) else real_labels[batch.partner_index],
        real_labels[batch.partner_index.clamp(max=len(real) - 1)],
    )
    lam = batch.lam.double()
    x_r = real[batch.real_index].double()
    x = lam[:, None, None, None] * partner_x.double() + (1 - lam[:, None, None, None]) * x_r
    one = torch.nn.functional.one_hot
    y = lam[:, None] * one(partner_y, K).double() + (1 - lam[:, None]) * one(real_labels[batch.real_index], K)
    return x, y


@pytest.mark.parametrize("pool", ["real+synthetic", "synthetic"])
@pytest.mark.parametrize("class_balanced", [False, True])
def test_mix_is_equation_one_exactly(pool: str, class_balanced: bool) -> None:
    inputs = _pools()
    mixer = GenMixer(*inputs, num_classes=K, config=GenMixConfig(pool=pool, class_balanced=class_balanced))
    index = torch.arange(40).repeat(5)
    batch = mixer.mix(index)
    x, y = _expected(inputs, batch)
    assert batch.images.shape == (200, 2, 5, 4) and batch.images.dtype == torch.float32
    torch.testing.assert_close(batch.images.double(), x, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(batch.soft_labels.double(), y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(batch.soft_labels.sum(1), torch.ones(200))
    assert (batch.soft_labels >= 0).all()
    assert torch.equal(batch.real_index, index)
    assert ((batch.lam >= 0) & (batch.lam <= 1)).all()
    if pool == "synthetic":
        assert (batch.partner_pool == SYNTHETIC).all()
    else:  # partners from both pools, in proportion to their sizes (25 of 65)
        share = float(batch.partner_pool.float().mean())
        assert 0.25 < share < 0.52


def test_lambda_follows_beta_alpha_one_and_the_test_can_tell() -> None:
    mixer = GenMixer(*_pools(), num_classes=K, config=GenMixConfig(alpha=0.3), seed=7)
    lam = mixer.mix_export(10_000).lam.double().numpy()
    assert stats.kstest(lam, stats.beta(0.3, 1.0).cdf).pvalue > 0.01
    assert stats.kstest(lam, stats.beta(0.3, 0.3).cdf).pvalue < 1e-6
    assert stats.kstest(lam, stats.beta(0.5, 1.0).cdf).pvalue < 1e-6
    assert abs(np.median(lam) - 0.5 ** (1 / 0.3)) < 0.02  # median 0.099: half the images are >= 90 % real


def test_general_beta_uses_the_gamma_path() -> None:
    lam = sample_beta(10_000, 0.3, 0.6, torch_rng(3)).double().numpy()
    assert stats.kstest(lam, stats.beta(0.3, 0.6).cdf).pvalue > 0.01
    assert stats.kstest(lam, stats.beta(0.3, 1.0).cdf).pvalue < 1e-6


def test_class_balanced_draws_partner_classes_uniformly() -> None:
    gen = torch_rng(5)
    real = torch.rand(200, 1, 3, 3, generator=gen)
    real_labels = torch.tensor([0] * 170 + [1] * 25 + [2] * 5)  # strongly imbalanced, like FLL
    syn = torch.rand(60, 1, 3, 3, generator=gen)
    syn_labels = torch.tensor([0] * 40 + [1] * 15 + [2] * 5)
    index = torch.arange(200).repeat(15)

    def partner_classes(balanced: bool) -> np.ndarray:
        mixer = GenMixer(real, real_labels, syn, syn_labels, K, GenMixConfig(class_balanced=balanced), seed=1)
        batch = mixer.mix(index)
        labels = torch.where(batch.partner_pool.bool(), syn_labels[batch.partner_index.clamp(max=59)], 0)
        labels = torch.where(batch.partner_pool.bool(), labels, real_labels[batch.partner_index])
        return np.bincount(labels.numpy(), minlength=K)

    assert stats.chisquare(partner_classes(True)).pvalue > 0.01
    assert stats.chisquare(partner_classes(False)).pvalue < 1e-6


def test_class_balanced_skips_classes_absent_from_the_pool() -> None:
    real, real_labels, syn, _ = _pools()
    syn_labels = torch.tensor([0, 2] * 12 + [0])  # the generator produced no class 1
    config = GenMixConfig(pool="synthetic", class_balanced=True)
    batch = GenMixer(real, real_labels, syn, syn_labels, K, config).mix_export(3000)
    counts = np.bincount(syn_labels[batch.partner_index].numpy(), minlength=K)
    assert counts[1] == 0
    assert stats.chisquare(counts[[0, 2]]).pvalue > 0.01


def test_same_seed_same_batch_different_seed_different() -> None:
    inputs = _pools()
    index = torch.arange(40)
    a = GenMixer(*inputs, num_classes=K, seed=11).mix(index)
    b = GenMixer(*inputs, num_classes=K, seed=11).mix(index)
    c = GenMixer(*inputs, num_classes=K, seed=12).mix(index)
    for field in ("images", "soft_labels", "lam", "partner_pool", "partner_index"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.lam, c.lam) and not torch.equal(a.partner_index, c.partner_index)


def test_mixer_rng_is_private_and_export_seed_is_independent() -> None:
    inputs = _pools()
    mixer = GenMixer(*inputs, num_classes=K, seed=2)
    torch.manual_seed(123)
    global_state = torch.random.get_rng_state()
    first = mixer.mix(torch.arange(10))
    assert torch.equal(torch.random.get_rng_state(), global_state)
    export_a = mixer.mix_export(50, seed=9)
    export_b = GenMixer(*inputs, num_classes=K, seed=99).mix_export(50, seed=9)
    assert torch.equal(export_a.images, export_b.images) and torch.equal(export_a.real_index, export_b.real_index)
    # the seeded export did not advance the mixer's own stream
    fresh = GenMixer(*inputs, num_classes=K, seed=2)
    fresh.mix(torch.arange(10))
    assert torch.equal(mixer.mix(torch.arange(10)).lam, fresh.mix(torch.arange(10)).lam)
    assert not torch.equal(first.lam, fresh.mix(torch.arange(10)).lam)


def test_mix_prob_zero_returns_the_real_images_and_half_mixes_about_half() -> None:
    inputs = _pools()
    real, real_labels = inputs[0], inputs[1]
    index = torch.arange(40).flip(0)
    batch = GenMixer(*inputs, num_classes=K, config=GenMixConfig(mix_prob=0.0)).mix(index)
    assert torch.equal(batch.images, real[index])
    assert torch.equal(batch.soft_labels, torch.nn.functional.one_hot(real_labels[index], K).float())
    assert (batch.lam == 0).all()
    half = GenMixer(*inputs, num_classes=K, config=GenMixConfig(mix_prob=0.5)).mix_export(4000)
    assert 0.45 < float((half.lam == 0).float().mean()) < 0.55


def test_empty_synthetic_pool_degenerates_to_real_real_mixing() -> None:
    real, real_labels, _, _ = _pools()
    for syn, syn_labels in ((None, None), (real[:0], real_labels[:0])):
        mixer = GenMixer(real, real_labels, syn, syn_labels, K)
        batch = mixer.mix(torch.arange(40).repeat(3))
        assert (batch.partner_pool == 0).all()
        x, y = _expected((real, real_labels, real[:0], real_labels[:0]), batch)
        torch.testing.assert_close(batch.images.double(), x, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(batch.soft_labels.double(), y)
    with pytest.raises(ValueError, match="pool='synthetic' needs at least one synthetic image"):
        GenMixer(real, real_labels, None, None, K, GenMixConfig(pool="synthetic"))


def test_mixes_real_breastmnist_with_itself_in_range(breast: ImageSet) -> None:
    images = to_tensor(breast.train.images)
    labels = torch.from_numpy(breast.train.labels)
    batch = GenMixer(images, labels, images[:100], labels[:100], 2, seed=0).mix(torch.arange(128))
    assert batch.images.shape == (128, 1, 28, 28)
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0  # convex blend stays in range


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"beta": -1.0}, "beta must be > 0"),
        ({"mix_prob": 1.5}, "mix_prob must be in"),
        ({"pool": "real"}, "pool must be one of"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenMixConfig(**kwargs)


def test_bad_inputs_are_refused() -> None:
    real, real_labels, syn, syn_labels = _pools()
    mixer = GenMixer(real, real_labels, syn, syn_labels, K)
    with pytest.raises(ValueError, match="real_index must lie in 0..39"):
        mixer.mix(torch.tensor([40]))  # would otherwise silently pick a synthetic image
    with pytest.raises(ValueError, match="must match real images"):
        GenMixer(real, real_labels, syn[:, :1], syn_labels, K)
    with pytest.raises(ValueError, match="synthetic_labels must lie in 0..1"):
        GenMixer(real, real_labels.clamp(max=1), syn, syn_labels.fill_(2), 2)


def test_mixup_batch_is_one_lambda_and_a_permutation() -> None:
    gen = torch_rng(0)
    x = torch.rand(16, 3, 4, 4, generator=gen)
    y = torch.eye(16)  # one distinct label per row, so the partner can be read back from the mixed label
    mixed_x, mixed_y, lam = mixup_batch(x, y, 0.4, gen)
    lam_value = float(lam)
    assert 0.0 < lam_value < 1.0 and lam.ndim == 0 and lam_value != 0.5  # seeded: an informative draw
    off_diagonal = torch.where(y.bool(), 0.0, mixed_y)
    partner = torch.where(off_diagonal.sum(1) > 0, off_diagonal.argmax(1), torch.arange(16))
    assert sorted(partner.tolist()) == list(range(16))  # a permutation
    torch.testing.assert_close(mixed_x, lam_value * x[partner] + (1 - lam_value) * x)  # λ: the partner's weight
    torch.testing.assert_close(mixed_y, lam_value * y[partner] + (1 - lam_value) * y)
    lams = np.array([float(mixup_batch(x[:2], y[:2, :2], 0.4, gen)[2]) for _ in range(3000)])
    assert stats.kstest(lams, stats.beta(0.4, 0.4).cdf).pvalue > 0.01
    assert stats.kstest(lams, stats.beta(0.4, 1.0).cdf).pvalue < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixer_on_cuda_matches_equation_one() -> None:
    inputs = tuple(t.cuda() for t in _pools())
    batch = GenMixer(*inputs, num_classes=K, config=GenMixConfig(class_balanced=True)).mix(torch.arange(40).cuda())
    x, y = _expected(inputs, batch)
    torch.testing.assert_close(batch.images.double(), x, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(batch.soft_labels.double(), y)
