"""Training RNGs live on the training device; a checkpoint puts their state back, or reseeds across device kinds."""

from __future__ import annotations

import pytest
import torch

from models.checkpoint import restore_rng, rng_state
from models.generators.dcgan import DCGAN
from models.runtime import as_input, memory_format, torch_rng


def test_a_state_of_the_same_device_kind_resumes_the_stream_exactly() -> None:
    gen = torch_rng(3)
    state = rng_state(gen)
    expected = torch.rand(5, generator=gen)
    other = torch_rng(99)
    assert restore_rng(other, state, fallback_seed=0)
    assert torch.equal(torch.rand(5, generator=other), expected)


def test_a_state_from_another_device_kind_reseeds_from_the_fallback() -> None:
    cuda_like = torch.zeros(16, dtype=torch.uint8)  # CUDA's Philox state: seed + offset, not a Mersenne Twister
    gen = torch_rng(3)
    assert not restore_rng(gen, cuda_like, fallback_seed=7)
    assert torch.equal(torch.rand(5, generator=gen), torch.rand(5, generator=torch_rng(7)))


def test_generators_draw_on_their_training_device() -> None:
    model = DCGAN(2, 1, (16, 16), profile="tiny", seed=0)
    assert model.rng.device == model.device == torch.device("cpu")
    assert memory_format("cpu") == torch.contiguous_format
    x = torch.rand(2, 3, 4, 4)
    assert as_input(x) is x  # the CPU layout is left alone


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generators_draw_on_the_gpu_in_channels_last() -> None:
    model = DCGAN(2, 1, (16, 16), profile="tiny", seed=0, device="cuda")
    assert model.rng.device.type == "cuda"
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    weight = next(p for p in model.netD.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
