"""models/augment.py: light flips / shifts / rotations of classifier batches, seeded, applied to every arm alike."""

from __future__ import annotations

import pytest
import torch

from models.augment import BatchAugment


def _batch(n: int = 8, side: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(0))


def test_no_ops_returns_the_batch_untouched() -> None:
    x = _batch()
    augment = BatchAugment([], seed=0)
    assert not augment and augment(x) is x


def test_hflip_alone_flips_about_half_of_the_images_exactly() -> None:
    x = _batch(64)
    out = BatchAugment(["hflip"], seed=0)(x)
    flipped = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x, strict=True)]
    kept = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48


def test_shifts_and_rotations_are_small_and_keep_the_shape() -> None:
    x = torch.zeros(32, 3, 32, 48)
    x[:, :, 12:20, 20:28] = 1.0  # a centred square
    out = BatchAugment(["shift", "rotate"], seed=1)(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, x)
    centre = lambda t: t.sum(1).nonzero()[:, 1:].float().mean(0)  # noqa: E731
    for o, i in zip(out, x, strict=True):  # the square moves by at most 1/16 of each side (and rounding)
        dy, dx = (centre(o[None]) - centre(i[None])).abs().tolist()
        assert dy <= 32 / 16 + 1 and dx <= 48 / 16 + 1


def test_same_seed_same_warps_whatever_the_batch_holds() -> None:
    """Every arm is augmented alike: the warps depend on the seed and the step, not on the images."""
    a, b = BatchAugment(["hflip", "shift", "rotate"], seed=3), BatchAugment(["hflip", "shift", "rotate"], seed=3)
    x = _batch()
    assert torch.equal(a(x), b(x))
    assert torch.allclose(a(x * 0.5), b(x) * 0.5)  # linear in the images: the same warp on other content
    state = a.get_state()
    first = a(x)
    a.set_state(state)
    assert torch.equal(a(x), first)
    assert not torch.equal(BatchAugment(["rotate"], seed=4)(x), BatchAugment(["rotate"], seed=3)(x))


def test_unknown_ops_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown augmentation"):
        BatchAugment(["cutout"], seed=0)
